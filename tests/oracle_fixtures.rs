//! The oracles' parsers against real lab output (tests/fixtures/lab, captured by ci/lab/faults.sh
//! and the lab runner): one report class per fault switch, plus a report from an unrelated
//! subsystem that must be attributed elsewhere, and a clean control boot; and the stale-read
//! oracle fed a recorded run op by op.
use m2mfuzz::exec::outcome::{BufFacts, Detail, SyncFacts};
use m2mfuzz::exec::{BufId, Ctx, ExecState, NodeClaim, OpResult, Outcome, QueueState, Resource};
use m2mfuzz::oracle::hang::vb2_fences;
use m2mfuzz::oracle::ledger::{stable_timeline, Ledger};
use m2mfuzz::oracle::splat::{self, SplatClass, UnderTest};
use m2mfuzz::oracle::stale::StaleOracle;
use m2mfuzz::oracle::{expectation_of, splat_finding, splat_signature, Clause, Finding, Kind};
use m2mfuzz::program::{text, Node, Op};
use std::path::Path;

fn fixture(name: &str, file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lab")
        .join(name)
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn splats(name: &str) -> Vec<splat::Splat> {
    splat::parse(&fixture(name, "console.log"), &UnderTest::default())
}

#[test]
fn lockdep_circular_dependencies_are_titled_by_the_publishing_function() {
    for name in [
        "alloc-in-section",
        "mutex-in-section",
        "section-before-resv-lock",
    ] {
        let s = splats(name);
        assert_eq!(
            s.len(),
            1,
            "{name}: {:#?}",
            s.iter().map(|s| &s.title).collect::<Vec<_>>()
        );
        assert_eq!(s[0].class, SplatClass::CircularLocking, "{name}");
        assert_eq!(
            s[0].title, "possible circular locking dependency in vb2_buffer_attach_release_fence",
            "{name}"
        );
        assert!(s[0].under_test, "{name}: {}", s[0].attribution);
        assert!(
            s[0].text.contains("*** DEADLOCK ***"),
            "{name}: the whole report is kept"
        );
    }
}

#[test]
fn lock_pairs_tell_the_three_lockdep_faults_apart() {
    // One title, three bugs: the signature the finding store and the shrinker compare carries
    // the lock pair.
    let signature = |name: &str| splat_signature(&splats(name)[0]);
    let title = "splat: possible circular locking dependency in vb2_buffer_attach_release_fence";
    assert_eq!(
        signature("alloc-in-section"),
        format!("{title} [dma_fence_map -> fs_reclaim]")
    );
    assert_eq!(
        signature("mutex-in-section"),
        format!("{title} [dma_fence_map -> rf_fi_mutex]")
    );
    assert_eq!(
        signature("section-before-resv-lock"),
        format!("{title} [dma_fence_map -> reservation_ww_class_mutex]")
    );
    // A corpus `# expect:` line names the title alone.
    assert_eq!(expectation_of(&signature("mutex-in-section")), title);
    // Reports that name no lock pair are signed by their title.
    let s = splats("attach-under-spinlock");
    assert_eq!(
        splat_signature(&s[0]),
        "splat: sleeping function called from invalid context in vb2_buffer_attach_release_fence"
    );
    assert_eq!(
        splat_signature(&s[1]),
        "splat: invalid wait context in vb2_buffer_attach_release_fence"
    );
}

#[test]
fn attach_under_spinlock_gives_sleep_in_atomic_and_invalid_wait_context() {
    let s = splats("attach-under-spinlock");
    let titles: Vec<&str> = s.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "sleeping function called from invalid context in vb2_buffer_attach_release_fence",
            "invalid wait context in vb2_buffer_attach_release_fence",
        ]
    );
    assert_eq!(s[0].class, SplatClass::SleepInAtomic);
    assert_eq!(s[1].class, SplatClass::InvalidWaitContext);
    assert!(s.iter().all(|s| s.under_test));
}

/// The same fault in the arm64 lab: its call traces begin with `dump_backtrace` and
/// `show_stack`, and end in the `el0t_64_sync` entry, none of which may title the report.
#[test]
fn arm64_call_traces_are_titled_by_the_same_function() {
    let s = splats("arm64-attach-under-spinlock");
    let sleep: Vec<&splat::Splat> = s
        .iter()
        .filter(|s| s.class == SplatClass::SleepInAtomic)
        .collect();
    assert!(
        !sleep.is_empty(),
        "{:#?}",
        s.iter().map(|s| &s.title).collect::<Vec<_>>()
    );
    for s in sleep {
        assert_eq!(
            s.title,
            "sleeping function called from invalid context in vb2_buffer_attach_release_fence"
        );
        assert!(s.under_test, "{}", s.attribution);
        assert!(
            s.text.contains("dump_backtrace"),
            "the arm64 trace is kept whole"
        );
    }
}

#[test]
fn hang_and_leak_programs_and_the_control_boot_have_no_splat() {
    for name in [
        "v1-shape",
        "publish-held",
        "no-signal-on-error",
        "no-signal-on-cancel",
        "control",
    ] {
        let s = splats(name);
        assert!(
            s.is_empty(),
            "{name}: {:?}",
            s.iter().map(|s| &s.title).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_report_from_another_subsystem_is_attributed_elsewhere() {
    let s = splats("elsewhere-lkdtm-warning");
    assert_eq!(
        s.len(),
        1,
        "{:?}",
        s.iter().map(|s| &s.title).collect::<Vec<_>>()
    );
    assert_eq!(s[0].class, SplatClass::Warning);
    assert!(
        s[0].title.starts_with("WARNING in lkdtm_"),
        "{}",
        s[0].title
    );
    assert!(!s[0].under_test, "{}", s[0].attribution);
}

#[test]
fn a_report_names_the_contract_clause_it_breaks_only_when_it_is_a_fence_clause() {
    let clauses = |name: &str| -> Vec<Option<Clause>> {
        splats(name)
            .iter()
            .map(|s| splat_finding(s, None).clause)
            .collect()
    };
    // Locks and sleeps the signalling annotations forbid, in the publish path: clause 6.
    for name in [
        "alloc-in-section",
        "mutex-in-section",
        "section-before-resv-lock",
        "attach-under-spinlock",
    ] {
        let c = clauses(name);
        assert!(!c.is_empty(), "{name}");
        assert!(
            c.iter().all(|c| *c == Some(Clause::Annotations)),
            "{name}: {c:?}"
        );
    }
    // A fence put once too often (the double put's console): clause 5, freed too early.
    let dp: Vec<_> = splat::parse(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab/double-put/console.log"),
        )
        .unwrap(),
        &UnderTest::default(),
    );
    let refcount = dp.iter().find(|s| s.class == SplatClass::Refcount).unwrap();
    assert_eq!(splat_finding(refcount, None).clause, Some(Clause::Freed));
    // Reports of other subsystems, and kernel bugs that are not a fence's promise: none.
    for name in [
        "elsewhere-lkdtm-warning",
        "elsewhere-lkdtm-bug",
        "elsewhere-lkdtm-hung-task",
    ] {
        assert!(clauses(name).iter().all(Option::is_none), "{name}");
    }
    // Names round-trip, in JSON too.
    for c in Clause::ALL {
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Clause>(&j).unwrap(), c);
        assert_eq!(Clause::ALL[c.number() - 1], c);
    }
    assert!(serde_json::from_str::<Clause>("\"finite-ish\"").is_err());
}

fn ledger(name: &str) -> Ledger {
    let mut l = Ledger::default();
    l.add_text(&fixture(name, "trace.txt"));
    l
}

#[test]
fn the_ledger_finds_fences_published_and_never_signalled() {
    for name in ["no-signal-on-error", "no-signal-on-cancel"] {
        let l = ledger(name);
        let abandoned: Vec<_> = l.abandoned().collect();
        assert_eq!(abandoned.len(), 1, "{name}: {:?}", l.fences);
        assert_eq!(abandoned[0].driver, "vb2");
        assert_eq!(stable_timeline(&abandoned[0].timeline), "vim2m-cap");
        assert_eq!(
            l.unsignalled().count(),
            0,
            "{name}: destroyed once the program closed its fds"
        );
    }
}

#[test]
fn the_ledger_is_clean_when_fences_signal() {
    // v1 shape: the fence hangs while the program runs, but the queue cancel at close signals it.
    for name in [
        "v1-shape",
        "publish-held",
        "alloc-in-section",
        "attach-under-spinlock",
    ] {
        let l = ledger(name);
        assert!(
            l.count("dma_fence_emit") >= 1,
            "{name}: a fence was published"
        );
        assert_eq!(
            l.abandoned().count() + l.unsignalled().count() + l.undestroyed().count(),
            0,
            "{name}: {:?}",
            l.fences
        );
        assert_eq!(
            l.other_alive().count(),
            0,
            "{name}: every other fence is freed once the program closed its fds"
        );
    }
}

#[test]
fn hung_waits_name_the_pending_vb2_fence() {
    for (name, timeline) in [("v1-shape", "vim2m-cap"), ("publish-held", "visl-cap")] {
        let text = fixture(name, "run.jsonl");
        let wait: serde_json::Value = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["op"].as_str().unwrap().starts_with("wait "))
            .unwrap();
        assert_eq!(wait["result"]["result"], "timed_out", "{name}");
        let facts = SyncFacts::parse(wait["detail"].as_str().unwrap()).unwrap();
        let fences = vb2_fences(&facts);
        assert_eq!(fences.len(), 1, "{name}");
        assert_eq!(stable_timeline(&fences[0].0), timeline);
        assert_eq!(fences[0].1, 0, "pending");
    }
}

#[test]
fn bug_oops_hung_task_soft_lockup_and_rcu_stall_are_classified_and_titled() {
    let titles = |name: &str| -> Vec<(SplatClass, String, bool)> {
        splats(name)
            .into_iter()
            .map(|s| (s.class, s.title, s.under_test))
            .collect()
    };
    assert_eq!(
        titles("elsewhere-lkdtm-bug"),
        [(SplatClass::Bug, "kernel BUG in lkdtm_BUG".into(), false)]
    );
    assert_eq!(
        titles("elsewhere-lkdtm-exception"),
        [(
            SplatClass::Bug,
            "BUG: kernel NULL pointer dereference in lkdtm_EXCEPTION".into(),
            false
        )]
    );
    // The detector reports again after each timeout period.
    assert_eq!(
        titles("elsewhere-lkdtm-hung-task"),
        vec![
            (
                SplatClass::HungTask,
                "hung task in lkdtm_HUNG_TASK".to_string(),
                false
            );
            2
        ]
    );
    assert_eq!(
        titles("elsewhere-lkdtm-softlockup"),
        [
            (
                SplatClass::RcuStall,
                "RCU stall in lkdtm_SOFTLOCKUP".into(),
                false
            ),
            (
                SplatClass::SoftLockup,
                "soft lockup in lkdtm_SOFTLOCKUP".into(),
                false
            ),
        ]
    );
    // The Oops line after a BUG header belongs to the same report.
    assert!(splats("elsewhere-lkdtm-bug")[0]
        .text
        .contains("Oops: invalid opcode"));
}

/// The lab run of `corpora/faults/stale-read-fences-off.m2m` (`m2mfuzz run --json`): each op's
/// text and outcome, then the finding the oracles gave in the lab.
fn stale_run() -> Vec<serde_json::Value> {
    fixture("stale-read-fences-off", "run.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn recorded_finding(run: &[serde_json::Value]) -> serde_json::Value {
    let f: Vec<_> = run.iter().filter_map(|l| l.get("finding")).collect();
    assert_eq!(f.len(), 1, "one finding recorded: {f:?}");
    f[0].clone()
}

/// An outcome as `m2mfuzz run --json` printed it; a returned buffer's facts and a sync_file's
/// as the executor keeps them ([`Detail::Buf`], [`Detail::Fences`]).
fn outcome(l: &serde_json::Value) -> Outcome {
    let r = &l["result"];
    let result = match r["result"].as_str().unwrap() {
        "ok" => OpResult::Ok {
            value: r["value"].as_i64().unwrap(),
        },
        "err" => OpResult::Err {
            errno: r["errno"].as_i64().unwrap() as i32,
        },
        "timed_out" => OpResult::TimedOut,
        "skipped" => OpResult::Skipped {
            reason: Box::new(r["reason"].as_str().unwrap().into()),
        },
        other => panic!("result {other}"),
    };
    let buf = |d: &str| -> Option<BufFacts> {
        let field = |k: &str| d.split_whitespace().find_map(|w| w.strip_prefix(k));
        Some(BufFacts {
            index: field("index=")?.parse().ok()?,
            flags: u32::from_str_radix(field("flags=0x")?.split('[').next()?, 16).ok()?,
            bytesused: field("bytesused=")?.parse().ok()?,
            sequence: field("seq=")?.parse().ok()?,
            revents: None,
        })
    };
    Outcome {
        index: l["index"].as_u64().unwrap() as u32,
        result,
        duration_us: l["duration"].as_u64().unwrap() as u32,
        detail: l["detail"]
            .as_str()
            .map(|d| match (buf(d), SyncFacts::parse(d)) {
                (Some(b), _) => Detail::Buf(b),
                (None, Some(f)) => Detail::Fences(Box::new(f)),
                (None, None) => Detail::Text(d.into()),
            }),
    }
}

/// The stale-read oracle's findings for a recorded run, fed op by op with the state the
/// executor had after each op: every context open on its node's driver, and each dmabuf,
/// mapping and sync_file traced to its buffer (EXPBUF and MMAP name it, EXPORT_SYNC_FILE
/// inherits its dmabuf's).
fn stale_findings(run: &[serde_json::Value]) -> Vec<Finding> {
    stale_findings_beside(run, false)
}

/// A node key of this test's own: tests run in parallel threads, and the executor counts
/// contexts per node process-wide.
fn fresh_node() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// As [`stale_findings`]; with `other_program`, another program of the process (a stress
/// worker) has a context open on the node the whole time.
fn stale_findings_beside(run: &[serde_json::Value], other_program: bool) -> Vec<Finding> {
    let node = fresh_node();
    let _other = other_program.then(|| NodeClaim::new(node));
    let lines: Vec<_> = run.iter().filter(|l| l.get("op").is_some()).collect();
    let src: String = lines
        .iter()
        .map(|l| format!("{}\n", l["op"].as_str().unwrap()))
        .collect();
    let prog = text::parse(&format!("# m2mfuzz program v1\n{src}")).unwrap();
    let mut st = ExecState::default();
    let mut oracle = StaleOracle::default();
    for (i, (op, line)) in prog.ops.iter().zip(&lines).enumerate() {
        let o = outcome(line);
        assert_eq!(o.index as usize, i);
        if matches!(o.result, OpResult::Ok { .. }) {
            match op {
                Op::Open {
                    node: Node::Driver(selector),
                    ret,
                } => {
                    let driver = selector.split(':').next().unwrap().to_string();
                    let ctx = Ctx {
                        video: std::sync::Arc::new(
                            std::fs::File::open("/dev/null").unwrap().into(),
                        ),
                        media: None,
                        path: "/dev/null".into(),
                        driver,
                        mplane: false,
                        queues: [QueueState::default(); 2],
                        claim: std::sync::Arc::new(NodeClaim::new(node)),
                    };
                    st.res.insert(*ret, Resource::Ctx(ctx));
                }
                Op::Close { h } => {
                    st.res.remove(h);
                }
                Op::Expbuf {
                    ctx,
                    queue,
                    index,
                    ret,
                    ..
                }
                | Op::Mmap {
                    ctx,
                    queue,
                    index,
                    ret,
                    ..
                } => {
                    let b = BufId {
                        ctx: *ctx,
                        queue: *queue,
                        index: *index,
                    };
                    st.provenance.insert(*ret, b);
                }
                Op::ExportSyncFile { dmabuf, ret, .. } => {
                    if let Some(b) = st.provenance.get(dmabuf).copied() {
                        st.provenance.insert(*ret, b);
                    }
                }
                _ => {}
            }
        }
        oracle.after_op(i, op, &o, &st);
    }
    oracle.findings
}

/// The fence the fixture's exported sync_file held: vim2m's release fences were switched off,
/// so an already-signalled stub.
const STUB: &str = "fences=[stub/stub:1]";
/// The fence the same kernel publishes with its release fences on (as in the other fixtures),
/// signalled.
const VB2_SIGNALLED: &str = "fences=[vb2/vim2m-cap-22:1]";

/// The recorded run with every `from` in its text replaced by `to`.
fn edited(run: &[serde_json::Value], from: &str, to: &str) -> Vec<serde_json::Value> {
    run.iter()
        .map(|l| serde_json::from_str(&l.to_string().replace(from, to)).unwrap())
        .collect()
}

/// The recorded run with `op` (succeeding with `value`) inserted before op `at`.
fn inserted(run: &[serde_json::Value], at: usize, op: &str, value: i64) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for l in run {
        let mut l = l.clone();
        if let Some(i) = l["index"].as_u64() {
            if i as usize == at {
                out.push(
                    serde_json::json!({"detail": null, "duration": 1, "index": at, "op": op,
                    "result": {"result": "ok", "value": value}}),
                );
            }
            if i as usize >= at {
                l["index"] = (i + 1).into();
            }
        }
        out.push(l);
    }
    out
}

/// The recorded run with op `index` failed with `errno`.
fn with_error(run: &[serde_json::Value], index: usize, errno: i32) -> Vec<serde_json::Value> {
    let mut run = run.to_vec();
    let l = run.iter_mut().find(|l| l["index"] == index).unwrap();
    l["result"] = serde_json::json!({"result": "err", "errno": errno});
    l["detail"] = serde_json::Value::Null;
    run
}

/// The recorded run with op `index`'s outcome replaced.
fn with_outcome(
    run: &[serde_json::Value],
    index: usize,
    value: i64,
    detail: &str,
) -> Vec<serde_json::Value> {
    let mut run = run.to_vec();
    let l = run.iter_mut().find(|l| l["index"] == index).unwrap();
    l["result"] = serde_json::json!({"result": "ok", "value": value});
    l["detail"] = detail.into();
    run
}

#[test]
fn a_reader_trusting_a_signalled_fence_reads_the_canary_a_stale_read() {
    // The lab run: a 300 ms vim2m job; the sync_file exported while it runs says done (op 17),
    // and a check of the CAPTURE buffer right after (op 18) finds none of the job's output.
    // Here the sync_file holds a signalled vim2m fence, where the lab's had a stub: a producer
    // fence that signals before the data is written is a stale read at once.
    let run = edited(&stale_run(), STUB, VB2_SIGNALLED);
    let findings = stale_findings(&run);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.kind, Kind::StaleRead);
    // Not the missing fence of the recorded stub (clause 1) but a fence that signalled before
    // the data (clause 2): its own title, so the two bugs are two findings.
    assert_eq!(f.clause, Some(Clause::SignalsAfterData));
    assert_eq!(
        f.title,
        "release fence signalled before the frame was written on vim2m"
    );
    assert_eq!(f.op, Some(18), "the check that found the canary");
    // The evidence quotes the fence it was shown, and the check.
    let recorded = recorded_finding(&run);
    assert_ne!(f.signature, recorded["signature"].as_str().unwrap());
    for part in [
        "op 18 `check m1 byte=0x3c`: 614400 of 614400 bytes differ from 0x3c",
        "(fence signalled: status=1 fences=[vb2/vim2m-cap-22:1",
    ] {
        assert!(f.evidence.contains(part), "{part}\nnot in\n{}", f.evidence);
    }
}

#[test]
fn a_fence_pending_at_export_that_signals_before_the_frame_breaks_clause_2() {
    // As a kernel with the early-signal fault shows it: the export (op 16) and fence_info
    // (op 17) see the vb2 fence pending; a wait (inserted as op 18) returns it signalled
    // without error; the check (op 19) then finds the canary.
    let pending = "status=0 fences=[vb2/vim2m-cap-22:0]";
    let run = edited(&stale_run(), &format!("status=1 {STUB}"), pending);
    let run = inserted(&run, 18, "wait s0 timeout_ms=1000", 1);
    let run = with_outcome(&run, 18, 1, &format!("status=1 {VB2_SIGNALLED}"));
    let f = stale_findings(&run);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].clause, Some(Clause::SignalsAfterData));
    assert_eq!(
        f[0].title,
        "release fence signalled before the frame was written on vim2m"
    );
    assert_eq!(f[0].op, Some(19));
    assert!(
        f[0].evidence
            .contains("op 18 `wait s0 timeout_ms=1000` (fence signalled"),
        "{}",
        f[0].evidence
    );
    // The same wait with the fence still pending (it timed out) says nothing.
    let run = with_outcome(&run, 18, 0, pending);
    assert!(stale_findings(&run).is_empty());
}

#[test]
fn the_same_check_is_no_stale_read_when_the_fence_is_pending_or_the_frame_is_there() {
    // The fence is still pending at ops 16-17: nothing said the buffer was complete.
    let pending = "status=0 fences=[vb2/vim2m-cap-22:0]";
    let run = edited(&stale_run(), &format!("status=1 {STUB}"), pending);
    let findings = stale_findings(&with_outcome(&run, 17, 0, pending));
    assert!(findings.is_empty(), "{findings:#?}");
    // The fence signalled, and at op 18 the frame is there.
    let run = edited(&stale_run(), STUB, VB2_SIGNALLED);
    let written = with_outcome(&run, 18, 0, "0 of 614400 bytes differ from 0x3c");
    let findings = stale_findings(&written);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn the_recorded_stub_exported_after_the_job_started_is_a_stale_read_without_the_labs_switch() {
    // As recorded on the lab kernel with vim2m's release fences off (a stock kernel): STREAMON
    // (op 14) made the only context on the node ready, so the m2m core ran its job before the
    // ioctl returned; the sync_file exported 50 ms later (op 16) is a signalled stub, the check
    // (op 18) finds none of the frame, and DQBUF (op 19) returns the buffer without ERROR: the
    // frame came after the check, so the job was running at the export. No module parameter
    // is read (this host has none of the lab's).
    let run = stale_run();
    let findings = stale_findings(&run);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    let recorded = recorded_finding(&run);
    assert_eq!(f.kind, Kind::StaleRead);
    assert_eq!(f.title, recorded["title"].as_str().unwrap());
    assert_eq!(f.signature, recorded["signature"].as_str().unwrap());
    assert_eq!(f.op, Some(19), "named by the op that showed it");
    assert_eq!(f.clause, Some(Clause::SeesWrite));
    for clause in [
        "op 16 `export_sync_file d0 dir=read -> s0` (stale read: export_sync_file(read) returned \
         a signalled stub while the frame was being written: status=1 fences=[stub/stub:1]; op 14 \
         had started the job writing it",
        "op 18 `check m1 byte=0x3c`: 614400 of 614400 bytes differ from 0x3c",
        "op 19 `dqbuf c0 queue=cap timeout_ms=3000` showed the frame written after that check",
    ] {
        assert!(
            f.evidence.contains(clause),
            "{clause}\nnot in\n{}",
            f.evidence
        );
    }
}

#[test]
fn poll_and_dma_buf_sync_saying_ready_while_the_job_runs_are_stale_reads_of_clause_1() {
    // The recorded run with a consumer's other implicit-sync query before the export (op 16):
    // poll() on the dmabuf said POLLIN ready, or DMA_BUF_IOCTL_SYNC's START returned, 50 ms
    // after STREAMON started the node's only job; the check (op 19) then finds no frame and
    // DQBUF (op 20) returns it without ERROR.
    for (op, value, via) in [
        ("poll_dmabuf d0 events=in timeout_ms=100", 1, "poll"),
        (
            "dmabuf_sync d0 phase=start dir=read",
            0,
            "DMA_BUF_IOCTL_SYNC",
        ),
    ] {
        let run = inserted(&stale_run(), 16, op, value);
        let f = stale_findings(&run);
        assert_eq!(f.len(), 1, "{op}: {f:#?}");
        assert_eq!(
            f[0].title,
            format!("stale read after {via} on vim2m"),
            "{op}"
        );
        assert_eq!(f[0].clause, Some(Clause::SeesWrite), "{op}");
        assert_eq!(f[0].op, Some(20), "{op}");
        assert!(
            f[0].evidence
                .contains("while the frame was being written; op 14 had started the job"),
            "{}",
            f[0].evidence
        );
        // The same query before the job started (before STREAMON, op 14) says nothing.
        let early = inserted(&stale_run(), 13, op, value);
        let f = stale_findings(&early);
        assert!(f.iter().all(|f| !f.title.contains(via)), "{op}: {f:#?}");
    }
    // poll() that did not say ready (it timed out waiting) says nothing either.
    let run = inserted(
        &stale_run(),
        16,
        "poll_dmabuf d0 events=in timeout_ms=100",
        0,
    );
    assert!(stale_findings(&run)
        .iter()
        .all(|f| !f.title.contains("poll")));
}

#[test]
fn a_context_closed_under_a_live_mapping_may_still_run_a_job_so_a_stub_is_not_judged() {
    // Before the recorded program: another context of the node, mapped, then closed. Its
    // mapping keeps the file, so the context and a job of it may live on: the stub exported
    // after op 14's STREAMON may come before this context's job and is not judged.
    let with = |ops: &[&str]| {
        let mut run = stale_run();
        for (i, op) in ops.iter().enumerate() {
            run = inserted(&run, 1 + i, op, 0);
        }
        stale_findings(&run)
    };
    let zombie = [
        "open node=vim2m -> c5",
        "mmap c5 queue=cap index=0 -> m5",
        "close c5",
    ];
    let f = with(&zombie);
    assert!(f.is_empty(), "{f:#?}");
    // Once the mapping is gone, so is the context: judged again.
    let f = with(&[zombie[0], zombie[1], zombie[2], "munmap m5"]);
    assert_eq!(f.len(), 1, "{f:#?}");
    // Closed with no mapping: gone at once.
    let f = with(&[zombie[0], zombie[2]]);
    assert_eq!(f.len(), 1, "{f:#?}");
}

#[test]
fn a_stub_is_no_stale_read_unless_the_job_had_certainly_started() {
    let run = stale_run();
    // OUTPUT's QBUF failed: no job could start, the stub is the design's.
    let findings = stale_findings(&with_error(&run, 12, libc::EINVAL));
    assert!(findings.is_empty(), "{findings:#?}");
    // Another program's context on the node might have had a job running: ours may have
    // waited behind it, and its stub been right.
    let findings = stale_findings_beside(&run, true);
    assert!(findings.is_empty(), "{findings:#?}");
    // The job ended in ERROR (DQBUF says so): it may have failed before the export, leaving the
    // canary, and then the stub was right.
    let failed = with_outcome(
        &run,
        19,
        0,
        "index=0 flags=0x4041[ERROR] bytesused=614400 seq=0",
    );
    let findings = stale_findings(&failed);
    assert!(findings.is_empty(), "{findings:#?}");
    // The dmabuf was exported from a buffer a REQBUFS then freed (op 7 here): the sync_file is
    // of the old memory, which no job writes, and the stub is right (a 10-minute lab-smoke run
    // on the correct kernel found this, before the oracle knew it).
    let realloc = inserted(&run, 7, "reqbufs c0 queue=cap count=1 memory=mmap", 1);
    let findings = stale_findings(&realloc);
    assert!(findings.is_empty(), "{findings:#?}");
    // The same run unedited does give it (the test above): each edit is what took it away.
    assert_eq!(stale_findings(&run).len(), 1);
}
