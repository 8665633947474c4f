//! The executor: runs a [`Program`] against real nodes, recording each op's result and duration.
//! It never panics on a kernel error, retries EINTR while the op's deadline allows, bounds every
//! wait, and releases every fd and mapping when the program ends. Oracles watch through
//! [`Observer`] without the executor knowing them.
pub mod fork;
pub mod memfault;
mod ops;
pub mod outcome;
mod stream;
pub mod supervise;
mod threads;
pub mod watchdog;

use crate::program::{Handle, Op, Program, ResKind};
use memmap2::MmapRaw;
use nix::errno::Errno;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use ops::fence_info;
pub use outcome::{OpResult, Outcome};
pub use watchdog::Watchdog;

/// How long the phases of `m2mfuzz run` took: what `run --timings` prints to stderr as one JSON
/// line (the overhead benchmark reads it; its C loop, ci/lab/bench/loop.c, prints `run_ms`,
/// `ops` and `us_per_op` alone, timed the same way).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunTimings {
    /// Forking the executor, from the process's start (this and the other phases are absent
    /// from the C loop's line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_ms: Option<f64>,
    /// Reading and parsing the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_parse_ms: Option<f64>,
    /// Finding the program's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_search_ms: Option<f64>,
    /// Running the ops, from the first after the node search to the last.
    pub run_ms: f64,
    /// Ops run.
    pub ops: u64,
    /// `run_ms` an op, in µs.
    pub us_per_op: f64,
    /// Judging and printing the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_ms: Option<f64>,
}

/// Executor settings.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Deadline of an op beyond its own wait (a blocking ioctl, a close).
    pub op_deadline: Duration,
    /// Cap on any single wait a program asks for.
    pub max_wait: Duration,
    /// Default wait of `dqbuf` without `timeout_ms`.
    pub default_wait: Duration,
}

impl ExecOptions {
    /// The watchdog's deadline for `op`: [`ExecOptions::op_deadline`] plus the op's own wait
    /// (its `timeout_ms` or `ms`, else the default wait), capped at the longest wait.
    pub fn deadline(&self, op: &Op) -> Duration {
        let ms = match op {
            Op::Wait { timeout_ms, .. } | Op::PollDmabuf { timeout_ms, .. } => Some(*timeout_ms),
            Op::Dqbuf { timeout_ms, .. } => *timeout_ms,
            Op::Sleep { ms } => Some(*ms),
            // A client waits up to its timeout (capped as any wait) for every job it asked for.
            Op::Stream {
                jobs, timeout_ms, ..
            } => {
                let stall = Duration::from_millis((*timeout_ms).into()).min(self.max_wait);
                return self.op_deadline + stream::budget(stall, *jobs);
            }
            _ => None,
        };
        self.op_deadline
            + ms.map_or(self.default_wait, |m| Duration::from_millis(m.into()))
                .min(self.max_wait)
    }
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            op_deadline: Duration::from_secs(10),
            max_wait: Duration::from_secs(30),
            default_wait: Duration::from_secs(2),
        }
    }
}

/// Hooks the oracles use to watch a run.
pub trait Observer {
    /// Before op `index` runs.
    fn before_op(&mut self, _index: usize, _op: &Op) {}
    /// The ops `ops` (indices) are about to run concurrently, on several program threads: from
    /// here on the order of `after_op` calls is the order the ops ended, not the order of their
    /// effects in the kernel.
    fn concurrent(&mut self, _ops: std::ops::Range<usize>) {}
    /// After it ran.
    fn after_op(&mut self, _index: usize, _op: &Op, _outcome: &Outcome, _state: &ExecState) {}
    /// A probe to run now, after op `index` and its `after_op` (asked again after each probe):
    /// observers issue no ioctls of their own, so every wait runs under the watchdog.
    fn probe(&mut self, _index: usize) -> Option<Probe> {
        None
    }
    /// What a probe asked for saw.
    fn after_probe(&mut self, _index: usize, _probe: &Probe, _seen: &ProbeOutcome) {}
}

/// A look at fences an observer asks for: the executor runs it under its watchdog (as op
/// `index`'s follow-up) and reports a [`ProbeOutcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// A sync_file, or a dmabuf to export one from (read and write: every fence it holds).
    pub of: Handle,
    /// How long to wait for the fences to signal while a producer (vb2) fence is pending and
    /// no other is (a fence of the program's own holds it otherwise); zero: only look.
    pub wait: Duration,
}

/// What a [`Probe`] saw.
#[derive(Clone, Debug)]
pub struct ProbeOutcome {
    /// SYNC_IOC_FILE_INFO before the wait, or why there is none (export or info failed, or the
    /// handle is unbound).
    pub before: Result<outcome::SyncFacts, OpResult>,
    /// Whether the poll saw the fences signal within the wait (false when it did not wait).
    pub signalled: bool,
    /// SYNC_IOC_FILE_INFO after a wait that did not see them signal.
    pub after: Option<Result<outcome::SyncFacts, OpResult>>,
}

/// At most this many probes follow one op (an observer that keeps asking is cut off).
const MAX_PROBES: usize = 4;

impl Observer for () {}

/// Per-queue facts the executor learns as it goes.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueState {
    /// Memory type of the last successful REQBUFS/CREATE_BUFS.
    pub memory: u32,
    /// Size of plane 0 from the last S_FMT/G_FMT.
    pub sizeimage: u32,
    /// Planes per buffer.
    pub num_planes: u32,
    /// Buffers the last successful REQBUFS/CREATE_BUFS left (a `stream` client queues these).
    pub count: u32,
}

/// An open m2m context. Clones share its fds (program threads use one context at once): the fd
/// closes when the last clone goes.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The video node fd.
    pub video: Arc<OwnedFd>,
    /// The media node fd, opened on the first request.
    pub media: Option<Arc<OwnedFd>>,
    /// Node path.
    pub path: PathBuf,
    /// QUERYCAP driver name.
    pub driver: String,
    /// Multi-planar API.
    pub mplane: bool,
    /// [OUTPUT, CAPTURE].
    pub queues: [QueueState; 2],
    /// This context's place in the process's count of contexts per node (last: the fd closes,
    /// which waits for the context's running job, before the count drops).
    pub claim: Arc<NodeClaim>,
}

/// How many contexts this process has open on one node, and how many it ever opened there.
#[derive(Debug, Default)]
struct NodeUsers {
    open: std::sync::atomic::AtomicU32,
    opened: std::sync::atomic::AtomicU64,
}

/// Nodes by device number (`st_rdev`), shared by every executor of the process (stress workers
/// are threads): whether another program's context could have a job on a node is a fact the
/// stale-read oracle needs, and no one program's state has it.
static NODE_USERS: std::sync::Mutex<BTreeMap<u64, std::sync::Arc<NodeUsers>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// One open context's share of its node's [`NodeClaim::users`]; dropping it closes the share.
#[derive(Debug)]
pub struct NodeClaim(std::sync::Arc<NodeUsers>);

impl NodeClaim {
    /// A claim on the node with device number `key` (tests use keys no device has).
    pub fn new(key: u64) -> NodeClaim {
        use std::sync::atomic::Ordering::SeqCst;
        let users = {
            let mut map = NODE_USERS.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key).or_default().clone()
        };
        users.opened.fetch_add(1, SeqCst);
        users.open.fetch_add(1, SeqCst);
        NodeClaim(users)
    }

    /// A claim on the node `fd` is open on.
    pub fn of_fd(fd: &OwnedFd) -> NodeClaim {
        use std::os::fd::AsRawFd;
        let key = nix::sys::stat::fstat(fd.as_raw_fd()).map_or(u64::MAX, |s| s.st_rdev);
        NodeClaim::new(key)
    }

    /// (contexts of the process open on the node now, contexts ever opened on it).
    pub fn users(&self) -> (u32, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.0.open.load(SeqCst), self.0.opened.load(SeqCst))
    }

    /// Another share of the same node's count: a V4L2 mapping keeps its context's file, and so
    /// the context and its jobs, alive after the context's fd is closed.
    pub fn share(&self) -> NodeClaim {
        self.0
            .open
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        NodeClaim(self.0.clone())
    }

    /// Whether `other` is a claim on the same node.
    pub fn same_node(&self, other: &NodeClaim) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Drop for NodeClaim {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A live resource behind a handle. A clone shares the fd or mapping: it is closed (unmapped)
/// when the last clone goes, as the kernel releases a file when its last in-flight user is done.
#[derive(Clone, Debug)]
pub enum Resource {
    /// A context.
    Ctx(Ctx),
    /// An fd: dmabuf, sync_file, request or timeline.
    Fd(Arc<OwnedFd>),
    /// A CPU mapping; of a V4L2 buffer (not of a dmabuf), with its share of the node's count.
    Map(Arc<MmapRaw>, Option<Arc<NodeClaim>>),
}

/// Which V4L2 buffer a dmabuf, mapping or sync_file stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId {
    /// The context.
    pub ctx: Handle,
    /// Its queue.
    pub queue: crate::program::Queue,
    /// Buffer index.
    pub index: u32,
}

/// Live resources of a run, by handle.
#[derive(Default, Debug)]
pub struct ExecState {
    /// Handle → resource.
    pub res: BTreeMap<Handle, Resource>,
    /// Handle (dmabuf, mapping, sync_file) → the buffer it came from.
    pub provenance: BTreeMap<Handle, BufId>,
    opts: ExecOptions,
    fired: Option<watchdog::FiredFlag>,
    /// The fds of the program's other handles, in a view that holds only some: an fd the
    /// kernel returns must be none of those still open (weak: one another thread closes
    /// meanwhile is free for the kernel to hand out again).
    others: Vec<std::sync::Weak<OwnedFd>>,
    /// In a view for a thread of `stream` ops only in a concurrent segment: how many of the
    /// segment's threads with other ops are still running (a client stops when none is).
    working: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

/// Runs programs.
pub struct Executor {
    watchdog: Watchdog,
    state: ExecState,
    abandon: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// One watchdog per program thread of a concurrent segment, made on first use and kept.
    dogs: Vec<Watchdog>,
}

impl Executor {
    /// A new executor with its watchdog thread.
    pub fn new(opts: ExecOptions) -> Executor {
        Executor::with_watchdog(opts, Watchdog::new())
    }

    /// A new executor with this watchdog (e.g. one its supervisor ticks).
    pub fn with_watchdog(opts: ExecOptions, watchdog: Watchdog) -> Executor {
        std_fds_open();
        let state = ExecState {
            res: BTreeMap::new(),
            provenance: BTreeMap::new(),
            opts,
            fired: Some(watchdog.fired_flag()),
            others: Vec::new(),
            working: None,
        };
        Executor {
            watchdog,
            state,
            abandon: Default::default(),
            dogs: Vec::new(),
        }
    }

    /// A flag that, once set, skips every op not yet started: a supervisor that reported an op
    /// stuck sets it, so the program does not go on unjournaled when the op comes back.
    pub fn abandon_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.abandon.clone()
    }

    /// Bind a resource the program does not open itself, e.g. a context on an fd opened
    /// elsewhere (the executor-overhead benchmark binds one on `/dev/null`).
    pub fn bind(&mut self, h: Handle, r: Resource) {
        self.state.bind(h, r);
    }

    /// Run a program; resources are released at the end.
    pub fn run(&mut self, prog: &Program) -> Vec<Outcome> {
        self.run_observed(prog, &mut ())
    }

    /// Run a program with an observer.
    pub fn run_observed(&mut self, prog: &Program, obs: &mut dyn Observer) -> Vec<Outcome> {
        self.run_keeping(prog, obs, &mut |_| true)
    }

    /// Run a program with an observer, returning only the outcomes `keep` accepts (after the
    /// observer saw them): `m2mfuzz run --quiet` keeps the failures alone, as a 10 000-op
    /// program's outcomes were 117 pages, each a page fault of about 100 µs under the lab's TCG.
    pub fn run_keeping(
        &mut self,
        prog: &Program,
        obs: &mut dyn Observer,
        keep: &mut dyn FnMut(&Outcome) -> bool,
    ) -> Vec<Outcome> {
        // Capacity nobody writes to is never faulted in.
        let mut out = Vec::with_capacity(prog.ops.len());
        let mut run = RunFlags::default();
        if !prog.is_threaded() {
            for (index, op) in prog.ops.iter().enumerate() {
                self.step(index, op, obs, keep, &mut out, &mut run);
            }
        } else {
            for seg in prog.segments() {
                if threads::is_serial(prog, &seg) {
                    for index in seg {
                        self.step(index, &prog.ops[index], obs, keep, &mut out, &mut run);
                    }
                } else {
                    self.segment(prog, seg, obs, keep, &mut out, &mut run);
                }
            }
        }
        self.release();
        out
    }

    /// Run op `index` on this thread, with its observer calls and probes.
    fn step(
        &mut self,
        index: usize,
        op: &Op,
        obs: &mut dyn Observer,
        keep: &mut dyn FnMut(&Outcome) -> bool,
        out: &mut Vec<Outcome>,
        run: &mut RunFlags,
    ) {
        if run.observer_panic.is_none() {
            obs.before_op(index, op);
        }
        let start = Instant::now();
        let (result, detail) = match run.skip(&self.state, op, &self.abandon) {
            Some(r) => (r, None),
            None => {
                let deadline = self.state.opts.deadline(op);
                let st = &mut self.state;
                let r = self.watchdog.guard(index, start, deadline, || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| st.exec(op)))
                });
                r.0.unwrap_or_else(|p| {
                    run.panicked = Some(index);
                    (
                        OpResult::Panicked {
                            message: Box::new(panic_message(&*p)),
                        },
                        None,
                    )
                })
            }
        };
        let o = Outcome {
            index: index as u32,
            result,
            duration_us: Outcome::micros(start.elapsed()),
            detail,
        };
        after(&self.state, index, op, &o, obs, run);
        let (dog, st) = (&self.watchdog, &mut self.state);
        probes(index, obs, run, &mut |p| {
            let deadline = st.opts.op_deadline + p.wait;
            dog.guard(index, Instant::now(), deadline, || st.probe(p)).0
        });
        if keep(&o) {
            out.push(o);
        }
    }

    /// Close every fd and unmap every mapping    /// Close every fd and unmap every mapping (timelines first, so their fences signal).
    pub fn release(&mut self) {
        self.state.provenance.clear();
        let res = std::mem::take(&mut self.state.res);
        let (timelines, rest): (Vec<_>, Vec<_>) = res
            .into_iter()
            .partition(|(h, _)| h.kind == ResKind::Timeline);
        drop(timelines);
        let (maps, rest): (Vec<_>, Vec<_>) = rest
            .into_iter()
            .partition(|(h, _)| h.kind == ResKind::Mapping);
        drop(maps);
        for r in rest.into_iter().rev() {
            drop(r);
        }
    }
}

/// What a run carries from op to op: whether m2mfuzz or an observer panicked.
#[derive(Clone, Default)]
struct RunFlags {
    /// Set once an op panicked: the rest of the program is skipped, not run on a state the
    /// panic may have left half-updated.
    panicked: Option<usize>,
    /// An observer that panicked is not called again; its message explains the skips.
    observer_panic: Option<String>,
}

impl RunFlags {
    /// Why `op` is not run, if it is not.
    fn skip(
        &self,
        st: &ExecState,
        op: &Op,
        abandon: &std::sync::atomic::AtomicBool,
    ) -> Option<OpResult> {
        let reason = if let Some(p) = self.panicked {
            match &self.observer_panic {
                Some(m) => format!("an oracle panicked after op {p}: {m}"),
                None => format!("m2mfuzz panicked at op {p}"),
            }
        } else if abandon.load(std::sync::atomic::Ordering::Relaxed) {
            "abandoned: an earlier op was reported stuck in the kernel".to_string()
        } else if let Some(h) = st.unbound(op) {
            format!("{h} is unbound")
        } else {
            return None;
        };
        Some(OpResult::Skipped {
            reason: reason.into(),
        })
    }
}

/// The observer's look at op `index`'s outcome.
fn after(
    st: &ExecState,
    index: usize,
    op: &Op,
    o: &Outcome,
    obs: &mut dyn Observer,
    run: &mut RunFlags,
) {
    if run.observer_panic.is_none() {
        let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            obs.after_op(index, op, o, st)
        }));
        if let Err(p) = seen {
            run.observer_panic = Some(panic_message(&*p));
            run.panicked = run.panicked.or(Some(index));
        }
    }
}

/// The probes the observer asks for after op `index`, each run by `probe` (under a watchdog).
fn probes(
    index: usize,
    obs: &mut dyn Observer,
    run: &mut RunFlags,
    probe: &mut dyn FnMut(&Probe) -> ProbeOutcome,
) {
    for _ in 0..MAX_PROBES {
        if run.observer_panic.is_some() {
            break;
        }
        let Some(p) = obs.probe(index) else { break };
        let seen = probe(&p);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            obs.after_probe(index, &p, &seen)
        }));
        if let Err(e) = r {
            run.observer_panic = Some(panic_message(&*e));
            run.panicked = run.panicked.or(Some(index));
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.release();
    }
}

impl ExecState {
    /// The fd behind a handle, if it is a live fd resource.
    pub fn raw_fd(&self, h: &Handle) -> Option<i32> {
        use std::os::fd::AsRawFd;
        match self.res.get(h)? {
            Resource::Fd(f) => Some(f.as_raw_fd()),
            Resource::Ctx(c) => Some(c.video.as_raw_fd()),
            Resource::Map(..) => None,
        }
    }

    /// The driver of a context, while it is open.
    pub fn driver_of(&self, ctx: &Handle) -> Option<&str> {
        match self.res.get(ctx)? {
            Resource::Ctx(c) => Some(c.driver.as_str()),
            _ => None,
        }
    }

    /// Contexts open on `ctx`'s node in this process that are not this run's, and how many
    /// contexts the process ever opened there: (others now, opened ever).
    pub fn foreign_users(&self, ctx: &Handle) -> Option<(u32, u64)> {
        let Resource::Ctx(c) = self.res.get(ctx)? else {
            return None;
        };
        let own = self
            .res
            .values()
            .filter(|r| match r {
                Resource::Ctx(o) => o.claim.same_node(&c.claim),
                Resource::Map(_, Some(m)) => m.same_node(&c.claim),
                _ => false,
            })
            .count() as u32;
        let (open, opened) = c.claim.users();
        Some((open.saturating_sub(own), opened))
    }

    /// Whether two handles are contexts on the same node.
    pub fn same_node(&self, a: &Handle, b: &Handle) -> bool {
        match (self.res.get(a), self.res.get(b)) {
            (Some(Resource::Ctx(x)), Some(Resource::Ctx(y))) => x.claim.same_node(&y.claim),
            _ => false,
        }
    }

    /// The first input handle with no live resource.
    fn unbound(&self, op: &Op) -> Option<Handle> {
        op.find_input(|h| !self.res.contains_key(h))
    }

    /// Whether the watchdog interrupted the current op.
    fn deadline_fired(&self) -> bool {
        self.fired.as_ref().is_some_and(|f| f.is_set())
    }

    /// Call `f`, retrying EINTR until the watchdog says the deadline passed.
    fn retry<T>(&self, mut f: impl FnMut() -> nix::Result<T>) -> Result<T, OpResult> {
        loop {
            match f() {
                Err(Errno::EINTR) if self.deadline_fired() => return Err(OpResult::TimedOut),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(OpResult::errno(e)),
                Ok(v) => return Ok(v),
            }
        }
    }
}

/// The text of a caught panic's payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into())
}

/// Make sure fds 0-2 are open (on /dev/null if they were closed), once per process: then no
/// fd the kernel hands the executor can be one of them, and one that is shows a lying driver
/// (see `ExecState::adopt_fd`).
fn std_fds_open() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for fd in 0..3 {
            // SAFETY: F_GETFD probes; open() of /dev/null takes the lowest free fd, this one.
            unsafe {
                if libc::fcntl(fd, libc::F_GETFD) < 0 {
                    libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                }
            }
        }
    });
}

/// No observer: `Option<O>` observes when it holds one.
impl<O: Observer> Observer for Option<O> {
    fn before_op(&mut self, index: usize, op: &Op) {
        if let Some(o) = self {
            o.before_op(index, op)
        }
    }
    fn after_op(&mut self, index: usize, op: &Op, outcome: &Outcome, state: &ExecState) {
        if let Some(o) = self {
            o.after_op(index, op, outcome, state)
        }
    }
    fn concurrent(&mut self, ops: std::ops::Range<usize>) {
        if let Some(o) = self {
            o.concurrent(ops)
        }
    }
    fn probe(&mut self, index: usize) -> Option<Probe> {
        self.as_mut()?.probe(index)
    }
    fn after_probe(&mut self, index: usize, probe: &Probe, seen: &ProbeOutcome) {
        if let Some(o) = self {
            o.after_probe(index, probe, seen)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::text;

    /// Counts the outcomes it is shown.
    #[derive(Default)]
    struct Count(Vec<u32>);

    impl Observer for Count {
        fn after_op(&mut self, _index: usize, _op: &Op, outcome: &Outcome, _state: &ExecState) {
            self.0.push(outcome.index);
        }
    }

    /// Panics after its second op.
    struct PanicsAfterOne(u32);

    impl Observer for PanicsAfterOne {
        fn after_op(&mut self, index: usize, _op: &Op, _outcome: &Outcome, _state: &ExecState) {
            self.0 += 1;
            assert!(index != 1, "oracle bug at op {index}");
        }
    }

    /// Asks a probe of `of` after every op, and keeps what each saw.
    struct Prober {
        of: Handle,
        seen: Vec<(usize, Result<outcome::SyncFacts, OpResult>)>,
    }

    impl Observer for Prober {
        fn probe(&mut self, _index: usize) -> Option<Probe> {
            Some(Probe {
                of: self.of,
                wait: Duration::from_millis(1),
            })
        }
        fn after_probe(&mut self, index: usize, _probe: &Probe, seen: &ProbeOutcome) {
            assert!(!seen.signalled && seen.after.is_none(), "{seen:?}");
            self.seen.push((index, seen.before.clone()));
        }
    }

    #[test]
    fn the_executor_runs_an_observers_probes_a_bounded_number_of_times_per_op() {
        let prog = text::parse("# m2mfuzz program v1\nsleep ms=0\nsleep ms=0\n").unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        let s0 = Handle {
            kind: ResKind::SyncFile,
            id: 0,
        };
        // Unbound: the probe says so instead of running an ioctl on nothing.
        let mut obs = Prober {
            of: s0,
            seen: Vec::new(),
        };
        ex.run_observed(&prog, &mut obs);
        let ops: Vec<usize> = obs.seen.iter().map(|(i, _)| *i).collect();
        assert_eq!(ops, [0, 0, 0, 0, 1, 1, 1, 1], "MAX_PROBES after each op");
        assert!(
            matches!(&obs.seen[0].1, Err(OpResult::Skipped { reason }) if reason.contains("s0 is unbound")),
            "{:?}",
            obs.seen[0]
        );
        // Bound to what is no sync_file: SYNC_IOC_FILE_INFO's error is the answer.
        let null = std::fs::File::open("/dev/null").unwrap();
        ex.bind(s0, Resource::Fd(Arc::new(null.into())));
        let mut obs = Prober {
            of: s0,
            seen: Vec::new(),
        };
        ex.run_observed(&prog, &mut obs);
        assert!(
            matches!(obs.seen[0].1, Err(OpResult::Err { errno }) if errno == libc::ENOTTY),
            "{:?}",
            obs.seen[0]
        );
    }

    #[test]
    fn a_panicking_oracle_costs_the_rest_of_its_program_not_the_process() {
        let prog =
            text::parse("# m2mfuzz program v1\nsleep ms=0\nsleep ms=0\nsleep ms=0\nsleep ms=0\n")
                .unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        let mut obs = PanicsAfterOne(0);
        let out = ex.run_observed(&prog, &mut obs);
        assert_eq!(
            obs.0, 2,
            "the observer is not called again after it panicked"
        );
        assert_eq!(out.len(), 4);
        assert_eq!(out[1].result, OpResult::Ok { value: 0 });
        for o in &out[2..] {
            match &o.result {
                OpResult::Skipped { reason } => assert!(
                    reason.starts_with("an oracle panicked after op 1: oracle bug at op 1"),
                    "{reason}"
                ),
                r => panic!("op {} ran after the oracle panicked: {r:?}", o.index),
            }
        }
        // The executor is still usable: the next program runs.
        assert_eq!(ex.run(&prog).len(), 4);
    }

    #[test]
    fn run_keeping_returns_what_the_filter_keeps_and_the_observer_sees_every_outcome() {
        // A context on /dev/null: its QUERYBUFs fail at once (ENOTTY); sleeps succeed.
        let prog = text::parse(
            "# m2mfuzz program v1\nquerybuf c0 queue=out index=0\nsleep ms=0\n\
             querybuf c0 queue=cap index=1\nsleep ms=0\n",
        )
        .unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        let null = std::fs::File::open("/dev/null").unwrap();
        ex.bind(
            Handle {
                kind: ResKind::Ctx,
                id: 0,
            },
            Resource::Ctx(Ctx {
                video: Arc::new(null.into()),
                media: None,
                path: "/dev/null".into(),
                driver: "null".into(),
                mplane: false,
                queues: [QueueState::default(); 2],
                claim: Arc::new(NodeClaim::new(u64::MAX)),
            }),
        );
        let mut seen = Count::default();
        let kept = ex.run_keeping(&prog, &mut seen, &mut |o| {
            !matches!(o.result, OpResult::Ok { .. })
        });
        assert_eq!(seen.0, [0, 1, 2, 3]);
        let kept: Vec<_> = kept.iter().map(|o| (o.index, o.result.clone())).collect();
        assert_eq!(
            kept,
            [
                (
                    0,
                    OpResult::Err {
                        errno: libc::ENOTTY
                    }
                ),
                (
                    2,
                    OpResult::Err {
                        errno: libc::ENOTTY
                    }
                )
            ]
        );
    }
}
