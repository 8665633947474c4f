//! Device tests: real V4L2 m2m nodes of the lab kernel (vim2m, visl, vicodec), driven through the
//! executor. They are `#[ignore]`d on the host and run in the QEMU lab by ci/lab/run-tests.sh
//! (`--include-ignored --test-threads=1`), where every node must be present.
use m2mfuzz::device;
use m2mfuzz::exec::outcome::{Detail, StreamFacts, StreamStop};
use m2mfuzz::exec::{ExecOptions, Executor, OpResult, Outcome};
use m2mfuzz::oracle::{Clause, Kind, OracleOptions, OracleSet, Verdict};
use m2mfuzz::program::{text, Program};
use m2mfuzz::uapi::v4l2::*;
use std::time::Duration;

const LAB: &str = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)";

/// Run a program under the oracles; every test but the stale-read one must give no finding.
fn run(src: &str) -> (Program, Vec<Outcome>) {
    let (p, o, v) = run_judged(src);
    assert!(v.findings.is_empty(), "findings: {:#?}", v.findings);
    (p, o)
}

fn run_judged(src: &str) -> (Program, Vec<Outcome>, Verdict) {
    // Programs with threads are text v2.
    let v = if src.lines().any(|l| l.starts_with('@')) {
        2
    } else {
        1
    };
    let prog = text::parse(&format!("# m2mfuzz program v{v}\n{src}"))
        .unwrap_or_else(|e| panic!("{e}\n{src}"));
    let mut oracles = OracleSet::new(OracleOptions::default());
    let outcomes = Executor::new(ExecOptions::default()).run_observed(&prog, &mut oracles);
    let verdict = oracles.finish();
    for (op, o) in prog.ops.iter().zip(&outcomes) {
        eprintln!(
            "{:>3} {:<56} {:<16} {:>8.2} ms {}",
            o.index,
            op.to_string(),
            o.result.to_string(),
            o.duration().as_secs_f64() * 1e3,
            o.detail_text().unwrap_or_default()
        );
    }
    assert!(
        verdict.notes.is_empty(),
        "the lab gives every oracle what it needs: {:?}",
        verdict.notes
    );
    (prog, outcomes, verdict)
}

/// The outcome of the op whose text starts with `prefix` (the first such op after `from`).
fn find<'a>(p: &Program, o: &'a [Outcome], prefix: &str, from: usize) -> &'a Outcome {
    let i = p
        .ops
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, op)| op.to_string().starts_with(prefix))
        .unwrap_or_else(|| panic!("no op `{prefix}`"))
        .0;
    &o[i]
}

fn value(o: &Outcome) -> i64 {
    match o.result {
        OpResult::Ok { value } => value,
        ref r => panic!("op {} was not ok: {r} ({:?})", o.index, o.detail),
    }
}

fn assert_all_ok(p: &Program, o: &[Outcome]) {
    for (op, out) in p.ops.iter().zip(o) {
        assert!(
            matches!(out.result, OpResult::Ok { .. }),
            "`{op}` gave {} ({:?})",
            out.result,
            out.detail
        );
    }
}

/// Lockdep must still be on: any lockdep report switches it off.
fn assert_lockdep_on() {
    let stats = std::fs::read_to_string("/proc/lockdep_stats").expect("lab kernel has lockdep");
    assert_eq!(
        device::debug_state::debug_locks(&stats),
        Some(true),
        "lockdep switched off: a report happened"
    );
}

const VIM2M_JOB: &str = "\
open node=vim2m -> c0
set_ctrl c0 id=0x981900 value=20
s_fmt c0 queue=out fourcc=RGBP width=640 height=480
s_fmt c0 queue=cap fourcc=RGBP width=640 height=480
reqbufs c0 queue=out count=2 memory=mmap
reqbufs c0 queue=cap count=2 memory=mmap
expbuf c0 queue=cap index=0 -> d0
mmap c0 queue=out index=0 -> m0
fill m0 byte=0x3c
mmap c0 queue=cap index=0 -> m1
fill m1 byte=0x5a
qbuf c0 queue=cap index=0
qbuf c0 queue=out index=0
streamon c0 queue=out
streamon c0 queue=cap
dqbuf c0 queue=cap timeout_ms=5000
dqbuf c0 queue=out timeout_ms=5000
check m1 byte=0x3c
";

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn probe_finds_lab_nodes() {
    let _ = LAB;
    let (nodes, errors) = device::video_nodes();
    assert!(errors.is_empty(), "{errors:?}");
    let m2m: Vec<_> = nodes.iter().filter(|n| n.m2m).collect();
    let vim2m = m2m
        .iter()
        .find(|n| n.driver == "vim2m")
        .expect("vim2m node");
    assert!(!vim2m.mplane, "vim2m is single-planar");
    assert_ne!(vim2m.device_caps & V4L2_CAP_VIDEO_M2M, 0);
    assert_ne!(vim2m.device_caps & V4L2_CAP_STREAMING, 0);
    assert_eq!(vim2m.queues[0].memory, ["mmap", "userptr", "dmabuf"]);
    assert!(vim2m.queues[0].formats.iter().any(|f| f.fourcc == "RGBP"));
    assert!(
        vim2m.queues[1].formats.iter().any(|f| f.fourcc == "YUYV"),
        "YUYV is CAPTURE-only on vim2m"
    );
    assert!(!vim2m.queues[0].formats.iter().any(|f| f.fourcc == "YUYV"));
    assert!(vim2m.media.is_some());

    let visl = m2m.iter().find(|n| n.driver == "visl").expect("visl node");
    assert!(visl.mplane, "visl is multi-planar");
    assert_ne!(visl.device_caps & V4L2_CAP_VIDEO_M2M_MPLANE, 0);
    assert!(visl.queues[0].requests, "visl OUTPUT supports requests");
    assert!(
        visl.queues[0].hold_capture,
        "visl supports HOLD_CAPTURE_BUF"
    );
    assert!(visl.queues[0].formats.iter().any(|f| f.fourcc == "SFWH"));

    let vicodec: Vec<&str> = m2m
        .iter()
        .filter(|n| n.driver == "vicodec")
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(
        vicodec,
        ["stateful-encoder", "stateful-decoder", "stateless-decoder"]
    );
    assert_eq!(
        device::media_nodes().len(),
        3,
        "vicodec, vim2m and visl media nodes"
    );

    let dbg = device::debug_state::read();
    assert!(
        dbg.lockdep
            && dbg.lockdep_enabled == Some(true)
            && dbg.kcov
            && dbg.dma_fence_events
            && dbg.vb2_events
    );
    assert_eq!(dbg.hung_task_timeout_secs, Some(20));
    assert!(dbg.sw_sync);
    // Discovery by driver name, including the vicodec node name.
    let p = device::resolve(&m2mfuzz::program::Node::Driver(
        "vicodec:stateless-decoder".into(),
    ))
    .unwrap();
    assert_eq!(
        p,
        m2m.iter()
            .find(|n| n.name == "stateless-decoder")
            .unwrap()
            .path
    );
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn vim2m_job_end_to_end() {
    let (p, o) = run(VIM2M_JOB);
    assert_all_ok(&p, &o);
    let cap = find(&p, &o, "dqbuf c0 queue=cap", 0);
    let d = cap.detail_text().unwrap();
    assert!(d.starts_with("index=0 ") && !d.contains("ERROR"), "{d}");
    assert!(
        d.contains("bytesused=614400"),
        "a full RGB565 640x480 frame: {d}"
    );
    assert_eq!(
        value(find(&p, &o, "check m1", 0)),
        0,
        "CAPTURE holds exactly the OUTPUT pattern"
    );
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn vim2m_dmabuf_import_from_another_context() {
    // c0 produces a frame into its CAPTURE buffer; c1 consumes that buffer as DMABUF OUTPUT.
    let src = format!(
        "{VIM2M_JOB}\
open node=vim2m -> c1
set_ctrl c1 id=0x981900 value=20
s_fmt c1 queue=out fourcc=RGBP width=640 height=480
s_fmt c1 queue=cap fourcc=RGBP width=640 height=480
reqbufs c1 queue=out count=1 memory=dmabuf
reqbufs c1 queue=cap count=1 memory=mmap
mmap c1 queue=cap index=0 -> m2
fill m2 byte=0x5a
qbuf c1 queue=cap index=0
qbuf c1 queue=out index=0 dmabuf=d0
streamon c1 queue=out
streamon c1 queue=cap
dqbuf c1 queue=cap timeout_ms=5000
dqbuf c1 queue=out timeout_ms=5000
check m2 byte=0x3c
"
    );
    let (p, o) = run(&src);
    assert_all_ok(&p, &o);
    assert_eq!(
        value(find(&p, &o, "check m2", 0)),
        0,
        "c1's CAPTURE holds c0's output, read through the dmabuf"
    );
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn vim2m_streamoff_with_buffers_in_flight() {
    let src = "\
open node=vim2m -> c0
set_ctrl c0 id=0x981900 value=500
reqbufs c0 queue=out count=2 memory=mmap
reqbufs c0 queue=cap count=2 memory=mmap
qbuf c0 queue=cap index=0
qbuf c0 queue=cap index=1
qbuf c0 queue=out index=0
qbuf c0 queue=out index=1
streamon c0 queue=out
streamon c0 queue=cap
sleep ms=50
streamoff c0 queue=cap
streamoff c0 queue=out
querybuf c0 queue=cap index=0
dqbuf c0 queue=cap timeout_ms=100
reqbufs c0 queue=cap count=0 memory=mmap
reqbufs c0 queue=out count=0 memory=mmap
";
    let (p, o) = run(src);
    for (op, out) in p.ops.iter().zip(&o).take(14) {
        assert!(
            matches!(out.result, OpResult::Ok { .. }),
            "`{op}` gave {}",
            out.result
        );
    }
    // STREAMOFF cancels the running job: it waits for it (≤ one 500 ms transaction), not forever.
    let off = find(&p, &o, "streamoff c0 queue=cap", 0);
    assert!(
        off.duration() < Duration::from_secs(2),
        "STREAMOFF took {:?}",
        off.duration()
    );
    // After STREAMOFF the buffer is back with userspace, neither queued nor done.
    let flags = value(find(&p, &o, "querybuf c0 queue=cap", 0)) as u32;
    assert_eq!(
        flags & (V4L2_BUF_FLAG_QUEUED | V4L2_BUF_FLAG_DONE),
        0,
        "flags {flags:#x}"
    );
    // Nothing to dequeue once the queue is off.
    assert!(matches!(
        find(&p, &o, "dqbuf", 0).result,
        OpResult::Err { .. } | OpResult::TimedOut
    ));
    assert!(
        matches!(o[15].result, OpResult::Ok { .. }) && matches!(o[16].result, OpResult::Ok { .. })
    );
    assert_lockdep_on();
}

/// What a `stream` op reported.
fn stream_facts(o: &Outcome) -> StreamFacts {
    match &o.detail {
        Some(Detail::Stream(f)) => *f,
        d => panic!("op {} gave no stream facts: {} {d:?}", o.index, o.result),
    }
}

const STREAM_SETUP: &str = "\
open node=vim2m -> c0
s_fmt c0 queue=out fourcc=RGBP width=320 height=240
s_fmt c0 queue=cap fourcc=RGBP width=320 height=240
set_ctrl c0 id=0x981900 value=1
reqbufs c0 queue=out count=3 memory=mmap
reqbufs c0 queue=cap count=3 memory=mmap
streamon c0 queue=out
";

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn stream_keeps_every_buffer_in_flight_and_stops_when_nothing_comes_back() {
    // Both queues on: the client sees the jobs it asked for, each buffer queued again as it came
    // back (3 pairs primed, then one QBUF per buffer returned but the last round's).
    let src = format!("{STREAM_SETUP}streamon c0 queue=cap\nstream c0 jobs=40 timeout_ms=2000\n");
    let (p, o) = run(&src);
    let s = find(&p, &o, "stream c0", 0);
    let f = stream_facts(s);
    assert_eq!(value(s), 40, "{f}");
    assert_eq!(
        (f.stop, f.capture, f.capture_errors),
        (StreamStop::Jobs, 40, 0),
        "{f}"
    );
    assert!(f.output >= 39 && f.queued >= 6 + 60, "{f}");
    // CAPTURE off: no job can run, so the client gives up after its timeout, not its budget.
    let src = format!("{STREAM_SETUP}stream c0 jobs=40 timeout_ms=300\n");
    let (p, o) = run(&src);
    let s = find(&p, &o, "stream c0", 0);
    let f = stream_facts(s);
    assert_eq!((f.stop, f.capture), (StreamStop::Stalled, 0), "{f}");
    assert!(
        s.duration() >= Duration::from_millis(300) && s.duration() < Duration::from_secs(3),
        "{:?}",
        s.duration()
    );
    // DMABUF memory on a queue: not a client this op can be.
    let src = "\
open node=vim2m -> c0
reqbufs c0 queue=out count=2 memory=dmabuf
reqbufs c0 queue=cap count=2 memory=mmap
stream c0 jobs=4 timeout_ms=100
";
    let (p, o) = run(src);
    assert_eq!(
        find(&p, &o, "stream c0", 0).result,
        OpResult::Err {
            errno: libc::EINVAL
        }
    );
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn stream_goes_on_through_restarts_by_another_thread() {
    // A restarter hands the queued buffers back again and again; the client queues them again
    // and keeps getting frames until the restarter is done, the fences all signal and nothing
    // is reported.
    let mut src = format!(
        "{STREAM_SETUP}streamon c0 queue=cap\nbarrier\n@1 stream c0 jobs=100000 timeout_ms=2000\n"
    );
    for q in ["cap", "out", "cap", "out", "cap", "out"] {
        src += &format!("@2 sleep ms=50\n@2 streamoff c0 queue={q}\n@2 streamon c0 queue={q}\n");
    }
    let (p, o) = run(&src);
    let f = stream_facts(find(&p, &o, "stream c0", 0));
    assert_eq!(f.stop, StreamStop::Others, "{f}");
    // About 100 jobs a second under TCG for 300 ms, less what the restarts cancelled.
    assert!(f.capture >= 10, "{f}");
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_client_thread_stops_when_the_other_threads_are_done() {
    // Thread 1 holds only a client that asks for far more jobs than it gets: it stops when
    // thread 2, the one with other ops, is done, not at its jobs, timeout or budget.
    let src = format!(
        "{STREAM_SETUP}streamon c0 queue=cap\nbarrier\n@1 stream c0 jobs=100000 timeout_ms=2000\n\
         @2 sleep ms=400\n@2 querybuf c0 queue=cap index=0\n"
    );
    let (p, o) = run(&src);
    let s = find(&p, &o, "stream c0", 0);
    let f = stream_facts(s);
    assert_eq!(f.stop, StreamStop::Others, "{f}");
    assert!(f.capture > 0, "{f}");
    assert!(
        s.duration() >= Duration::from_millis(400) && s.duration() < Duration::from_secs(2),
        "{:?}",
        s.duration()
    );
    // With a client on the same thread as other ops it is not a client of that thread: it
    // runs to its jobs.
    let src = format!(
        "{STREAM_SETUP}streamon c0 queue=cap\nbarrier\n@1 stream c0 jobs=30 timeout_ms=2000\n\
         @1 querybuf c0 queue=cap index=0\n@2 sleep ms=1\n"
    );
    let (p, o) = run(&src);
    let f = stream_facts(find(&p, &o, "stream c0", 0));
    assert_eq!((f.stop, f.capture), (StreamStop::Jobs, 30), "{f}");
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn export_sync_file_and_poll_on_capture_buffer() {
    let src = "\
open node=vim2m -> c0
set_ctrl c0 id=0x981900 value=300
reqbufs c0 queue=out count=1 memory=mmap
reqbufs c0 queue=cap count=1 memory=mmap
expbuf c0 queue=cap index=0 -> d0
expbuf c0 queue=cap index=0 -> d1
qbuf c0 queue=cap index=0
qbuf c0 queue=out index=0
streamon c0 queue=out
streamon c0 queue=cap
sleep ms=50
export_sync_file d0 dir=read -> s0
export_sync_file d1 dir=rw -> s1
fence_info s0
wait s0 timeout_ms=2000
wait s1 timeout_ms=2000
poll_dmabuf d0 events=in timeout_ms=2000
dqbuf c0 queue=cap timeout_ms=5000
";
    let (p, o) = run(src);
    assert_all_ok(&p, &o);
    // Whatever fence the kernel publishes (none: the signalled stub), it must be signalled by the
    // time the job is done, and poll must say so.
    assert_eq!(value(find(&p, &o, "wait s0", 0)), 1);
    assert_eq!(value(find(&p, &o, "wait s1", 0)), 1);
    let info = find(&p, &o, "fence_info s0", 0)
        .detail_text()
        .unwrap()
        .into_owned();
    assert!(info.starts_with("status="), "{info}");
    assert_ne!(
        value(find(&p, &o, "poll_dmabuf", 0)) & i64::from(libc::POLLIN),
        0
    );
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn visl_job_through_request_api() {
    let src = "\
open node=visl -> c0
reqbufs c0 queue=out count=2 memory=mmap
reqbufs c0 queue=cap count=2 memory=mmap
qbuf c0 queue=cap index=0
streamon c0 queue=out
streamon c0 queue=cap
request_alloc c0 -> r0
qbuf c0 queue=out index=0 request=r0 bytesused=1024
request_queue r0
dqbuf c0 queue=cap timeout_ms=5000
dqbuf c0 queue=out timeout_ms=5000
request_reinit r0
close_request r0
";
    let (p, o) = run(src);
    assert_all_ok(&p, &o);
    let q = find(&p, &o, "qbuf c0 queue=out", 0)
        .detail_text()
        .unwrap()
        .into_owned();
    assert!(q.contains("IN_REQUEST"), "queued into the request: {q}");
    let d = find(&p, &o, "dqbuf c0 queue=cap", 0)
        .detail_text()
        .unwrap()
        .into_owned();
    assert!(!d.contains("ERROR"), "{d}");
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn executor_bounds_waits_and_skips_unbound_handles() {
    let src = "\
sw_timeline -> t0
sw_fence t0 value=5 -> s0
wait s0 timeout_ms=200
fence_info s0
qbuf c9 queue=cap index=0
sw_inc t0 by=5
wait s0 timeout_ms=200
";
    let (p, o) = run(src);
    let w = find(&p, &o, "wait s0", 0);
    assert_eq!(w.result, OpResult::TimedOut);
    assert!(
        w.duration() >= Duration::from_millis(190) && w.duration() < Duration::from_secs(2),
        "{:?}",
        w.duration()
    );
    assert_eq!(
        value(find(&p, &o, "fence_info", 0)),
        0,
        "unsignalled sw_sync fence: status 0"
    );
    assert!(matches!(o[4].result, OpResult::Skipped { .. }));
    assert_eq!(value(&o[6]), 1, "signalled after sw_inc");
}

/// Sets a module parameter for the duration of a test (lab kernels have no modules: the
/// parameters of built-in drivers live under /sys/module too).
struct Param {
    path: String,
    old: String,
}

impl Param {
    fn set(module: &str, name: &str, value: &str) -> Param {
        let path = format!("/sys/module/{module}/parameters/{name}");
        let old = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .to_string();
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
        Param { path, old }
    }
}

impl Drop for Param {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.old);
    }
}

fn release_fences_built() -> bool {
    std::path::Path::new("/sys/module/videobuf2_common/parameters/rf_fault").exists()
}

/// A 300 ms vim2m job with two exports of its CAPTURE buffer, canary in CAPTURE, pattern in OUTPUT.
const VIM2M_SLOW_JOB: &str = "\
open node=vim2m -> c0
set_ctrl c0 id=0x981900 value=300
s_fmt c0 queue=out fourcc=RGBP width=640 height=480
s_fmt c0 queue=cap fourcc=RGBP width=640 height=480
reqbufs c0 queue=out count=1 memory=mmap
reqbufs c0 queue=cap count=1 memory=mmap
expbuf c0 queue=cap index=0 -> d0
expbuf c0 queue=cap index=0 -> d1
mmap c0 queue=out index=0 -> m0
fill m0 byte=0x3c
mmap c0 queue=cap index=0 -> m1
fill m1 byte=0x5a
qbuf c0 queue=cap index=0
qbuf c0 queue=out index=0
streamon c0 queue=out
streamon c0 queue=cap
sleep ms=50
export_sync_file d0 dir=read -> s0
export_sync_file d1 dir=read -> s1
fence_info s0
fence_info s1
check m1 byte=0x3c
";

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn release_fence_pending_during_job_and_signalled_with_the_data() {
    assert!(
        release_fences_built(),
        "lab kernel built without CONFIG_VIDEOBUF2_RELEASE_FENCES"
    );
    let src = format!("{VIM2M_SLOW_JOB}wait s0 timeout_ms=3000\nfence_info s1\ncheck m1 byte=0x3c\ndqbuf c0 queue=cap timeout_ms=3000\n");
    let (p, o) = run(&src);
    assert_all_ok(&p, &o);
    let info0 = find(&p, &o, "fence_info s0", 0);
    assert_eq!(
        value(info0),
        0,
        "published fence is pending while the job runs"
    );
    let d0 = info0.detail_text().unwrap().into_owned();
    assert!(d0.contains("fences=[vb2/vim2m-cap-"), "{d0}");
    // Both EXPBUF fds share the buffer's resv: the same fence.
    assert_eq!(
        find(&p, &o, "fence_info s1", 0).detail_text().as_deref(),
        Some(d0.as_str())
    );
    // While pending, the frame is not written yet: a reader that waits is protected.
    let first_check = p
        .ops
        .iter()
        .position(|op| op.to_string() == "check m1 byte=0x3c")
        .unwrap();
    assert_eq!(
        value(&o[first_check]),
        614400,
        "CAPTURE still holds the canary mid-job"
    );
    let w = find(&p, &o, "wait s0", 0);
    assert_eq!(value(w), 1);
    assert!(
        w.duration() >= Duration::from_millis(150),
        "the fence waited for the job: {:?}",
        w.duration()
    );
    // Signalled means written: right after the wait the buffer holds the driver's output.
    assert_eq!(value(find(&p, &o, "check m1", first_check + 1)), 0);
    assert_eq!(
        value(find(&p, &o, "fence_info s1", first_check)),
        1,
        "s1 snapshot signalled too"
    );
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn streamoff_mid_job_signals_the_fence_with_an_error() {
    assert!(release_fences_built());
    let src =
        format!("{VIM2M_SLOW_JOB}streamoff c0 queue=cap\nfence_info s0\nwait s1 timeout_ms=1000\n");
    {
        // abort_mode: STREAMOFF really cancels the running job (as a hardware driver would).
        let _abort = Param::set("vim2m", "abort_mode", "1");
        let (p, o) = run(&src);
        assert_all_ok(&p, &o);
        assert_eq!(value(find(&p, &o, "fence_info s0", 0)), 0);
        let after = find(&p, &o, "fence_info s0", 20);
        assert_eq!(
            value(after),
            -5,
            "cancelled job: fence signalled with -EIO: {:?}",
            after.detail
        );
        assert_eq!(value(find(&p, &o, "wait s1", 0)), 1);
    }
    // Without abort_mode, STREAMOFF waits for the running job, which completes normally.
    let (p, o) = run(&src);
    assert_all_ok(&p, &o);
    assert_eq!(value(find(&p, &o, "fence_info s0", 20)), 1);
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn release_fence_in_an_imported_capture_dmabuf() {
    assert!(release_fences_built());
    // c1 writes into c0's OUTPUT buffer, imported as its CAPTURE DMABUF: the fence goes into the
    // exporter's resv, where c0's fds see it.
    let src = "\
open node=vim2m -> c0
reqbufs c0 queue=out count=1 memory=mmap
expbuf c0 queue=out index=0 -> d0
open node=vim2m -> c1
set_ctrl c1 id=0x981900 value=300
reqbufs c1 queue=out count=1 memory=mmap
reqbufs c1 queue=cap count=1 memory=dmabuf
qbuf c1 queue=cap index=0 dmabuf=d0
qbuf c1 queue=out index=0
streamon c1 queue=out
streamon c1 queue=cap
sleep ms=50
export_sync_file d0 dir=read -> s0
fence_info s0
wait s0 timeout_ms=3000
dqbuf c1 queue=cap timeout_ms=3000
";
    let (p, o) = run(src);
    assert_all_ok(&p, &o);
    let info = find(&p, &o, "fence_info s0", 0);
    assert_eq!(value(info), 0, "{:?}", info.detail);
    assert!(info.detail_text().unwrap().contains("vb2/vim2m-cap-"));
    assert_eq!(value(find(&p, &o, "wait s0", 0)), 1);
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn visl_publishes_no_fence_on_a_held_capture_buffer() {
    assert!(release_fences_built());
    let src = "\
open node=visl -> c0
reqbufs c0 queue=out count=2 memory=mmap
reqbufs c0 queue=cap count=1 memory=mmap
expbuf c0 queue=cap index=0 -> d0
streamon c0 queue=out
streamon c0 queue=cap
qbuf c0 queue=cap index=0
qbuf c0 queue=out index=0 bytesused=1024 flags=0x200
dqbuf c0 queue=out timeout_ms=3000
export_sync_file d0 dir=read -> s0
fence_info s0
qbuf c0 queue=out index=1 bytesused=1024
dqbuf c0 queue=cap timeout_ms=3000
";
    let (p, o) = run(src);
    assert_all_ok(&p, &o);
    // Held after the first job: no fence (the stub), so nothing waits on future OUTPUT.
    let info = find(&p, &o, "fence_info s0", 0);
    assert_eq!(value(info), 1, "{:?}", info.detail);
    assert!(
        info.detail_text().unwrap().contains("stub"),
        "{:?}",
        info.detail
    );
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_fence_signalled_before_its_frame_breaks_clause_2_and_only_with_the_switch() {
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpora/faults/early-signal.m2m"),
    )
    .or_else(|_| std::fs::read_to_string("/host/corpora/faults/early-signal.m2m"))
    .expect("the corpus program");
    let body: String = src
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    // The correct kernel first: the fence signals with the data, so the reader waiting on it
    // finds the frame and nothing is judged stale.
    let (p, o, v) = run_judged(&body);
    assert_all_ok(&p, &o);
    assert_eq!(value(find(&p, &o, "check m1", 0)), 0, "the frame is there");
    assert!(v.findings.is_empty(), "{:#?}", v.findings);
    // Signalled 100 ms after publishing (device_run), while the 300 ms job still runs.
    let early = Param::set("videobuf2_common", "rf_fault", "256");
    let (p, o, v) = run_judged(&body);
    drop(early);
    assert_all_ok(&p, &o);
    let info = find(&p, &o, "fence_info s0", 0);
    assert_eq!(value(info), 1, "{:?}", info.detail);
    assert!(
        info.detail_text().unwrap().contains("vb2/"),
        "{:?}",
        info.detail
    );
    assert!(
        value(find(&p, &o, "check m1", 0)) > 0,
        "the canary is still there"
    );
    let titles: Vec<String> = v.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        titles,
        ["stale-read: release fence signalled before the frame was written on vim2m"]
    );
    assert_eq!(v.findings[0].clause, Some(Clause::SignalsAfterData));
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_fence_never_freed_breaks_clause_5_and_only_with_the_switch() {
    let job = VIM2M_JOB;
    let (p, o, v) = run_judged(job);
    assert_all_ok(&p, &o);
    assert!(v.findings.is_empty(), "{:#?}", v.findings);
    assert!(
        v.ledger.count("dma_fence_emit") >= 1,
        "a fence was published"
    );
    // Publishing takes a reference nobody drops.
    let leak = Param::set("videobuf2_common", "rf_fault", "512");
    let (p, o, v) = run_judged(job);
    drop(leak);
    assert_all_ok(&p, &o);
    let titles: Vec<String> = v.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        titles,
        ["leaked-fence: release fence never freed on vim2m-cap"]
    );
    assert_eq!(v.findings[0].clause, Some(Clause::Freed));
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn fences_off_shows_the_stale_read() {
    let _off = Param::set("vim2m", "release_fences", "N");
    let (p, o, v) = run_judged(&format!(
        "{VIM2M_SLOW_JOB}dqbuf c0 queue=cap timeout_ms=3000\ncheck m1 byte=0x3c\n"
    ));
    assert_all_ok(&p, &o);
    // The baseline: the exported fence says "done" while the frame is not written.
    let info = find(&p, &o, "fence_info s0", 0);
    assert_eq!(
        value(info),
        1,
        "stub fence, already signalled: {:?}",
        info.detail
    );
    assert!(info.detail_text().unwrap().contains("stub"));
    let stale = p
        .ops
        .iter()
        .position(|op| op.to_string() == "check m1 byte=0x3c")
        .unwrap();
    assert_eq!(
        value(&o[stale]),
        614400,
        "a reader trusting the fence reads the canary"
    );
    assert_eq!(
        value(find(&p, &o, "check m1", stale + 1)),
        0,
        "the data arrives only at completion"
    );
    // The stale-read oracle names it.
    let titles: Vec<String> = v.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(titles, ["stale-read: stale read after fence on vim2m"]);
    assert_eq!(v.findings[0].kind, Kind::StaleRead);
    // Judged from what the kernel showed, not from the switch: the stub was exported after the
    // STREAMON that started the only job on the node, and the DQBUF after the check (which
    // names the finding) returned the buffer without ERROR, so the job was still running.
    assert_eq!(v.findings[0].op, Some(stale + 1));
    assert!(
        v.findings[0].evidence.contains(
            "stale read: export_sync_file(read) returned a signalled stub while the frame was \
             being written"
        ),
        "{}",
        v.findings[0].evidence
    );
    assert_lockdep_on();
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_canary_written_after_the_frame_is_the_programs_not_a_stale_read() {
    // The lab kernel always has them: without them this test would judge nothing.
    assert!(
        release_fences_built(),
        "lab kernel built without CONFIG_VIDEOBUF2_RELEASE_FENCES: a broken lab"
    );
    // The frame completes and its fence signals; then the program writes the canary over it,
    // asks the old fence again and dequeues the buffer: it holds the program's write, not a
    // stale frame.
    let (p, o, v) = run_judged(&format!(
        "{VIM2M_SLOW_JOB}wait s0 timeout_ms=3000\nfill m1 byte=0x5a\nfence_info s0\n\
         wait s1 timeout_ms=100\ncheck m1 byte=0x5a\ndqbuf c0 queue=cap timeout_ms=1000\n\
         check m1 byte=0x5a\n"
    ));
    assert_all_ok(&p, &o);
    let last = o.len() - 1;
    assert_eq!(
        value(&o[last]),
        0,
        "the canary is what the program wrote last"
    );
    let titles: Vec<String> = v.findings.iter().map(|f| f.to_string()).collect();
    assert!(titles.is_empty(), "{titles:?}");
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn replay_fails_clearly_on_a_broken_expectation() {
    use m2mfuzz::corpus::{self, Status};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = std::fs::read_to_string(root.join("corpora/lab/vim2m-job.m2m"))
        .or_else(|_| std::fs::read_to_string("/host/corpora/lab/vim2m-job.m2m"))
        .expect("the sample corpus program");
    let dir = std::env::temp_dir();
    let ok_path = dir.join("good.m2m");
    std::fs::write(&ok_path, &good).unwrap();
    let mut keeper = m2mfuzz::oracle::TraceKeeper::default();
    let r = corpus::replay_one(&corpus::load_file(&ok_path).unwrap(), &mut keeper);
    assert!(matches!(r.status, Status::Pass), "{:?}", r.status);
    // The same program, recorded as if it hung: replay must say what it expected and did not see.
    let broken = good.replace(
        "# expect: clean",
        "# expect: hang: release fence hang on vim2m-cap",
    );
    let bad_path = dir.join("broken.m2m");
    std::fs::write(&bad_path, broken).unwrap();
    let r = corpus::replay_one(&corpus::load_file(&bad_path).unwrap(), &mut keeper);
    match &r.status {
        Status::Fail { reason } => {
            assert_eq!(
                reason,
                "expected but not found: hang: release fence hang on vim2m-cap"
            )
        }
        s => panic!("broken expectation gave {s:?}"),
    }
    let table = corpus::table(&[r]);
    assert!(
        table.contains("FAIL") && table.ends_with("0 passed, 1 failed\n"),
        "{table}"
    );
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn shrink_reaches_the_hand_written_stale_read_program() {
    use m2mfuzz::shrink;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("corpora/faults/stale-read-fences-off.m2m"))
        .or_else(|_| std::fs::read_to_string("/host/corpora/faults/stale-read-fences-off.m2m"))
        .expect("the corpus program");
    let hand = text::parse(&src).unwrap();
    // The same bug inside a noisier program: a second context's job, extra exports and sleeps.
    // The second context is closed before the stale read's job: one still streaming after its
    // job could still be finishing it, and then the oracle does not judge a stub. Its mappings
    // go first: a mapping keeps the context's file, and the context with it, alive.
    let mut noisy = hand.clone();
    let noise = text::parse(&format!(
        "# m2mfuzz program v1\n{VIM2M_JOB}munmap m0\nmunmap m1\nclose c0\n"
    ))
    .unwrap();
    let mut renamed: Vec<_> = noise.ops.clone();
    for op in &mut renamed {
        for h in op.inputs_mut() {
            h.id += 7;
        }
        if let Some(h) = op.output_mut() {
            h.id += 7;
        }
    }
    noisy.ops.splice(3..3, renamed);
    noisy.ops.insert(1, text::parse_op("sleep ms=5").unwrap());
    let target = "stale-read: stale read after fence on vim2m".to_string();
    // One tracefs instance for every candidate, as the shrink session keeps it.
    let mut keeper = m2mfuzz::oracle::TraceKeeper::default();
    let found = shrink::findings_here(&noisy, &mut keeper).unwrap();
    // The stale read is tied to the op that read the buffer: the shrink cuts after it first.
    let cut = *found.get(&target).expect("the noisy program reproduces");
    assert!(cut.is_some(), "a stale read names its op");
    let r = shrink::shrink(&noisy, cut, &mut |p| {
        shrink::findings_here(p, &mut keeper)
            .map(|f| f.contains_key(&target))
            .unwrap_or(false)
    });
    eprintln!(
        "shrunk {} -> {} ops ({} candidates, {:.1} s):\n{}",
        r.ops_before, r.ops_after, r.tries, r.seconds, r.program
    );
    assert!(
        r.ops_after <= hand.ops.len(),
        "{} ops, the hand-written program has {}",
        r.ops_after,
        hand.ops.len()
    );
    assert!(
        shrink::findings_here(&r.program, &mut keeper)
            .unwrap()
            .contains_key(&target),
        "the shrunk program still reproduces"
    );
}

/// STREAMOFF during a 10 s vim2m job waits for it uninterruptibly (m2m cancel_job): the
/// watchdog's signal cannot break that wait, so the supervisor must report it. Op 8.
const STUCK_STREAMOFF: &str = "# m2mfuzz program v1\n\
     open node=vim2m -> c0\n\
     set_ctrl c0 id=0x981900 value=10000\n\
     reqbufs c0 queue=out count=1 memory=mmap\n\
     reqbufs c0 queue=cap count=1 memory=mmap\n\
     qbuf c0 queue=cap index=0\n\
     qbuf c0 queue=out index=0\n\
     streamon c0 queue=out\n\
     streamon c0 queue=cap\n\
     streamoff c0 queue=cap\n";

/// [`STUCK_STREAMOFF`] with a 500 ms op deadline.
fn stuck_streamoff() -> (Program, ExecOptions) {
    let opts = ExecOptions {
        op_deadline: Duration::from_millis(500),
        ..Default::default()
    };
    (text::parse(STUCK_STREAMOFF).unwrap(), opts)
}

/// The STREAMOFF, waiting in m2m cancel_job.
fn assert_the_stuck_streamoff(stuck: &m2mfuzz::exec::supervise::Stuck) {
    assert_eq!(stuck.index, 8, "the STREAMOFF");
    assert!(
        stuck.kernel_stack.contains("v4l2_m2m_cancel_job"),
        "{}",
        stuck.kernel_stack
    );
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_worker_stuck_uninterruptibly_is_reported_not_waited_for() {
    use m2mfuzz::exec::supervise::run_supervised;
    use m2mfuzz::exec::{ExecState, Observer};
    /// What the observer was shown: (op, result).
    #[derive(Debug, Default)]
    struct Seen(Vec<(u32, OpResult)>);
    impl Observer for Seen {
        fn after_op(&mut self, _: usize, _: &m2mfuzz::program::Op, o: &Outcome, _: &ExecState) {
            self.0.push((o.index, o.result.clone()));
        }
    }
    let (mut prog, opts) = stuck_streamoff();
    // An op after the stuck one: it must not run when the STREAMOFF comes back.
    prog.ops.push(
        text::parse("# m2mfuzz program v1\nsleep ms=0\n")
            .unwrap()
            .ops[0]
            .clone(),
    );
    let t = std::time::Instant::now();
    let run = run_supervised(prog, opts, Seen::default(), Duration::from_millis(500))
        .expect_err("STREAMOFF is stuck");
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "reported in time: {:?}",
        t.elapsed()
    );
    assert_the_stuck_streamoff(&run.stuck);
    // The observer's record of the ops before the stuck one is the caller's, not lost.
    let before: Vec<u32> = run.with_observer(|s| s.0.iter().map(|o| o.0).collect());
    assert_eq!(before, (0..8).collect::<Vec<_>>());
    // Let the job end (the STREAMOFF returns) before the next test uses vim2m.
    std::thread::sleep(Duration::from_secs(10));
    let after = run.with_observer(|s| s.0.clone());
    assert_eq!(after.len(), 10, "{after:?}");
    match &after[9].1 {
        OpResult::Skipped { reason } => assert!(reason.starts_with("abandoned"), "{reason}"),
        r => panic!("the op after the stuck one ran: {r}"),
    }
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_forked_program_s_stuck_op_is_reported_by_the_parent_while_it_is_stuck() {
    use m2mfuzz::exec::fork::{fork, Side};
    let (prog, opts) = stuck_streamoff();
    let t = std::time::Instant::now();
    match fork(Duration::from_millis(500)).expect("fork") {
        Side::Executor(child) => {
            // Once the job ends the program does too, every op accounted for; the STREAMOFF's
            // outcome alone kept. The child says so by its exit status, and must not return
            // into the test harness.
            let mut seen = 0;
            let kept = child.run(&prog, opts, &mut (), |o| {
                seen += 1;
                o.index >= 8
            });
            let ok = seen == 9 && kept.iter().map(|o| o.index).eq([8]);
            // SAFETY: ends the child without running the harness's exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) }
        }
        Side::Supervisor(mut parent) => {
            let stuck = parent.watch().expect_err("STREAMOFF is stuck");
            assert!(
                t.elapsed() < Duration::from_secs(6),
                "reported in time: {:?}",
                t.elapsed()
            );
            assert_the_stuck_streamoff(&stuck);
            let status = parent.wait();
            assert_eq!(
                status.code(),
                Some(0),
                "the child ran all nine ops and kept the STREAMOFF's outcome alone"
            );
            assert!(t.elapsed() >= Duration::from_secs(9), "{:?}", t.elapsed());
        }
    }
}

/// Count trace lines per event name in `cat trace` text.
fn count_events(text: &str) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(ev) = l
            .split(": ")
            .nth(1)
            .map(str::trim)
            .filter(|e| !e.contains(' '))
        {
            *m.entry(ev.to_string()).or_default() += 1;
        }
    }
    m
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_short_stress_run_is_clean_and_its_counts_match_tracefs() {
    use m2mfuzz::profile::stress::StressProfile;
    assert_lockdep_on();
    // The nodes' limit first (its jobs are not the run's): vim2m's job loop.
    let limit = m2mfuzz::stress::limit::measure(
        m2mfuzz::profile::by_name("vim2m").unwrap(),
        &m2mfuzz::stress::limit::LimitOptions {
            size: Some((320, 240)),
            trans_time_ms: Some(1),
            duration: Duration::from_secs(2),
        },
    )
    .unwrap()
    .jobs_per_s;
    assert!(limit > 2.0, "limit {limit} jobs/s");
    // An independent tracefs instance, read by this test alone, is the reference count.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let inst = std::path::Path::new("/sys/kernel/tracing/instances/stress-check");
    let _ = std::fs::remove_dir(inst);
    std::fs::create_dir(inst).unwrap();
    std::fs::write(inst.join("buffer_size_kb"), "16384").unwrap();
    for sys in ["dma_fence", "vb2"] {
        std::fs::write(inst.join("events").join(sys).join("enable"), "1").unwrap();
    }
    let profile = StressProfile::parse(
        "duration = 30\nworkers = 2\nepoch_ms = 2000\n\
         [[target]]\ndriver = \"vim2m\"\ncontexts = 2\ntrans_time_ms = 1\n\
         [[target]]\ndriver = \"visl\"\n",
        std::path::Path::new("lab-test.toml"),
    )
    .unwrap();
    let out = std::env::temp_dir().join("stress-run");
    let _ = std::fs::remove_dir_all(&out);
    let opts = m2mfuzz::stress::RunOptions {
        out: out.clone(),
        seed: Some(11),
        plain: true,
        limit: Some(limit),
        ..Default::default()
    };
    let totals = m2mfuzz::stress::run(&profile, &opts).unwrap();
    let trace = std::fs::read_to_string(inst.join("trace")).unwrap();
    let reference = count_events(&trace);
    // CAPTURE completions (vim2m single-planar type 1, visl multi-planar type 9) as the duty
    // cycle counts them, from the reference trace.
    let capture_done = trace
        .lines()
        .filter(|l| {
            l.contains(" vb2_buf_done: ") && (l.contains(" type = 1,") || l.contains(" type = 9,"))
        })
        .count() as u64;
    for sys in ["dma_fence", "vb2"] {
        std::fs::write(inst.join("events").join(sys).join("enable"), "0").unwrap();
    }
    let _ = std::fs::remove_dir(inst);
    let report = m2mfuzz::report::load(&out).unwrap();
    let findings: Vec<String> = report.findings.iter().map(|f| f.title.clone()).collect();
    assert!(
        findings.is_empty(),
        "a clean kernel gave findings: {findings:?}"
    );
    assert!(
        totals.programs >= 4,
        "only {} programs ran",
        totals.programs
    );
    assert_eq!(totals.capture_done, capture_done, "CAPTURE vb2_buf_done");
    assert!(capture_done > 0);
    assert_eq!(totals.limit_jobs_per_s, Some(limit));
    assert!(
        report.totals.fences_published > 0,
        "no release fence was published"
    );
    assert_eq!(
        report.totals.fences_published,
        report.totals.fences_signalled
    );
    assert_eq!(report.totals.trace_lost, 0);
    for ev in [
        "dma_fence_init",
        "dma_fence_emit",
        "dma_fence_signaled",
        "dma_fence_destroy",
        "vb2_buf_queue",
        "vb2_buf_done",
        "vb2_qbuf",
        "vb2_dqbuf",
    ] {
        assert_eq!(
            report.totals.events.get(ev).copied().unwrap_or(0),
            reference.get(ev).copied().unwrap_or(0),
            "{ev}: the report and tracefs disagree (report {:?}, tracefs {:?})",
            report.totals.events,
            reference
        );
    }
    // The publish-to-signal times come from the same trace, of the fences signalled in the
    // epoch that published them.
    let lat = report.totals.fence_latency.clone();
    assert!(
        lat.count > 0 && lat.count <= report.totals.fences_signalled && lat.max_ms >= lat.mean_ms,
        "{lat:?}"
    );
    let mut report = report;
    m2mfuzz::report::draw_plots(&mut report);
    let md = m2mfuzz::report::markdown(&[report], &out);
    assert!(md.contains("| dma_fence_emit |"), "{md}");
    assert!(md.contains("![jobs per second](plots/jobs.png)"), "{md}");
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn the_ledger_s_trace_reads_lose_no_event_that_arrives_between_them() {
    use m2mfuzz::oracle::ledger::TraceInstance;
    let t = TraceInstance::create().expect("the lab kernel has tracefs and the fence events");
    t.take();
    // Markers go into the same ring buffer; the old read-then-clear dropped every one written
    // between the read and the clear.
    let marker = t.dir().join("trace_marker");
    // The writer waits for a read after each chunk, so reads and writes interleave however the
    // machine schedules the two threads (a busy 2-core machine once gave the reader only two
    // reads while the writer wrote everything).
    let (chunks, per_chunk) = (200, 100);
    let n = chunks * per_chunk;
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = {
        let reads = reads.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            use std::sync::atomic::Ordering::SeqCst;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&marker)
                .unwrap();
            for c in 0..chunks {
                for i in 0..per_chunk {
                    f.write_all(format!("m2mfuzz-marker {}\n", c * per_chunk + i).as_bytes())
                        .unwrap();
                }
                let r = reads.load(SeqCst);
                while reads.load(SeqCst) == r {
                    std::thread::yield_now();
                }
            }
            tx.send(()).unwrap();
        })
    };
    let mut seen = 0;
    loop {
        let done = rx.try_recv().is_ok();
        seen += t.take().matches("m2mfuzz-marker").count();
        reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if done {
            break;
        }
    }
    writer.join().unwrap();
    seen += t.take().matches("m2mfuzz-marker").count();
    // The writer waited for a read after each chunk, so at least `chunks` reads overlapped it.
    let reads = reads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(seen, n, "every marker read exactly once over {reads} reads");
}

/// The race shapes of `corpora/races` (a context closed during DQBUF and poll, STREAMOFF during
/// QBUF, buffers freed while their mappings are used, a dmabuf closed while its sync_file is
/// waited on, imported and merged, a request queued while reinit and closed): on the correct
/// kernel each is clean ten times over, with lockdep still on. Not vacuously: the setup before
/// the first barrier succeeds every time, and each thread's first op finds its handles live in
/// some round (in others another thread may have closed them first: that is the race).
#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn race_shapes_on_shared_handles_are_clean_ten_times_each() {
    use m2mfuzz::corpus;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpora/races");
    let root = if root.is_dir() {
        root
    } else {
        std::path::PathBuf::from("/host/corpora/races")
    };
    let entries = corpus::load(&[root]).expect("the race corpus");
    assert!(entries.len() >= 5, "{} race programs", entries.len());
    for e in &entries {
        let p = &e.program;
        let name = e.path.display();
        assert_eq!(p.header("expect"), Some("clean"), "{name}");
        let segs = p.segments();
        let race = segs
            .iter()
            .find(|s| (*s).clone().any(|i| p.thread(i) != p.thread(s.start)))
            .unwrap_or_else(|| panic!("{name}: no concurrent segment"))
            .clone();
        let firsts: std::collections::BTreeMap<u8, usize> =
            race.clone().rev().map(|i| (p.thread(i), i)).collect();
        let mut ran: std::collections::BTreeSet<u8> = Default::default();
        for round in 0..10 {
            let mut oracles = OracleSet::new(OracleOptions::default());
            let o = Executor::new(ExecOptions::default()).run_observed(p, &mut oracles);
            let v = oracles.finish();
            assert!(
                v.findings.is_empty(),
                "{name} round {round}: {:#?}",
                v.findings
            );
            assert!(v.notes.is_empty(), "{name}: {:?}", v.notes);
            for (op, out) in p.ops.iter().zip(&o).take(race.start) {
                assert!(
                    matches!(out.result, OpResult::Ok { .. }),
                    "{name} round {round}: setup op {} `{op}` gave {}",
                    out.index,
                    out.result
                );
            }
            for (t, i) in &firsts {
                if !matches!(o[*i].result, OpResult::Skipped { .. }) {
                    ran.insert(*t);
                }
            }
        }
        let never: Vec<_> = firsts.keys().filter(|t| !ran.contains(t)).collect();
        assert!(
            never.is_empty(),
            "{name}: threads {never:?} never ran their first op"
        );
        eprintln!("{name}: clean 10/10");
    }
    assert_lockdep_on();
}

/// A program thread stuck in the kernel is reported as itself: the STREAMOFF of thread 1, with
/// its thread's kernel stack, while thread 2 has long finished.
#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn a_program_thread_stuck_uninterruptibly_is_reported_as_its_op() {
    use m2mfuzz::exec::supervise::run_supervised;
    let (flat, opts) = stuck_streamoff();
    let mut steps = flat.to_steps();
    let streamoff = steps.pop().unwrap().1;
    steps.push((0, text::parse_op("barrier").unwrap()));
    steps.push((1, streamoff));
    steps.push((2, text::parse_op("sleep ms=0").unwrap()));
    let prog = Program::from_steps(flat.header.clone(), steps);
    let t = std::time::Instant::now();
    let run =
        run_supervised(prog, opts, (), Duration::from_millis(500)).expect_err("STREAMOFF is stuck");
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "reported in time: {:?}",
        t.elapsed()
    );
    assert_eq!(run.stuck.index, 9, "the STREAMOFF on thread 1");
    assert!(
        run.stuck.kernel_stack.contains("v4l2_m2m_cancel_job"),
        "{}",
        run.stuck.kernel_stack
    );
    // Let the job end (the STREAMOFF returns) before the next test uses vim2m.
    std::thread::sleep(Duration::from_secs(10));
}

#[test]
#[ignore = "lab: needs the QEMU lab kernel's test drivers (ci/lab/run-tests.sh)"]
fn the_job_loop_measures_a_limit_and_is_a_clean_client() {
    use m2mfuzz::stress::limit::{loop_program, measure, LimitOptions};
    let p = m2mfuzz::profile::by_name("vim2m").unwrap();
    let opts = LimitOptions {
        size: Some((320, 240)),
        trans_time_ms: Some(1),
        duration: Duration::from_secs(3),
    };
    // The loop is a correct client: every op succeeds and the oracles find nothing.
    let prog = loop_program(p, &opts, 20);
    let (_, o) = run(&prog.to_string().replace("# m2mfuzz program v1\n", ""));
    assert_all_ok(&prog, &o);
    let l = measure(p, &opts).unwrap();
    eprintln!("{l:?}");
    assert_eq!(l.failed_ops, 0, "{l:?}");
    assert!(l.seconds >= 3.0 && l.programs >= 1, "{l:?}");
    // 1 ms jobs: several a second even under TCG on either architecture (x86_64: 102 jobs/s, as
    // a C loop of the same ioctls gives 110).
    assert!(l.jobs_per_s > 2.0, "{l:?}");
    let hantro = m2mfuzz::profile::by_name("hantro").unwrap();
    let e = measure(hantro, &opts).unwrap_err().to_string();
    assert!(e.contains("requests"), "{e}");
}
