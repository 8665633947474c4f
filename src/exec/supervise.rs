//! Running a program on a worker thread that is watched from outside: an op stuck in an
//! uninterruptible kernel wait cannot be interrupted by the watchdog, so the supervisor reports
//! it (with the thread's kernel stack) instead of waiting forever.
use super::{ExecOptions, ExecState, Executor, Observer, Outcome};
use crate::program::{Op, Program};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// An op that did not come back from the kernel.
#[derive(Clone, Debug)]
pub struct Stuck {
    /// Its index.
    pub index: usize,
    /// How long it had been running.
    pub seconds: f64,
    /// `/proc/<pid>/task/<tid>/stack` of the worker, when readable.
    pub kernel_stack: String,
}

#[derive(Default)]
struct Progress {
    index: AtomicUsize,
    started_ms: AtomicU64,
    tid: AtomicI32,
}

struct Beat<'a, O: Observer> {
    inner: &'a mut O,
    p: &'a Progress,
    t0: Instant,
}

impl<O: Observer> Observer for Beat<'_, O> {
    fn before_op(&mut self, index: usize, op: &Op) {
        self.p.index.store(index, Ordering::SeqCst);
        self.p
            .started_ms
            .store(self.t0.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
        self.inner.before_op(index, op);
    }
    fn after_op(&mut self, index: usize, op: &Op, outcome: &Outcome, state: &ExecState) {
        self.p.started_ms.store(0, Ordering::SeqCst);
        self.inner.after_op(index, op, outcome, state);
    }
}

/// Run `prog` on a worker thread; `Err(Stuck)` when an op exceeds its deadline plus `margin`.
/// On success the observer comes back with the outcomes.
pub fn run_supervised<O: Observer + Send + 'static>(
    prog: Program,
    opts: ExecOptions,
    obs: O,
    margin: Duration,
) -> Result<(Vec<Outcome>, O), Stuck> {
    run_supervised_with(prog, opts, obs, margin, || {})
}

/// [`run_supervised`], calling `on_thread` first on the executor thread (e.g. to enable KCOV
/// for that thread).
pub fn run_supervised_with<O: Observer + Send + 'static>(
    prog: Program,
    opts: ExecOptions,
    mut obs: O,
    margin: Duration,
    on_thread: impl FnOnce() + Send + 'static,
) -> Result<(Vec<Outcome>, O), Stuck> {
    let p = Arc::new(Progress::default());
    let (tx, rx) = mpsc::channel();
    let limit = |op: &Op| opts.op_deadline + wait_hint(op, &opts).min(opts.max_wait) + margin;
    let limits: Vec<Duration> = prog.ops.iter().map(limit).collect();
    let worker_p = p.clone();
    std::thread::Builder::new()
        .name("m2mfuzz-exec".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            worker_p
                .tid
                .store(unsafe { libc::gettid() }, Ordering::SeqCst);
            on_thread();
            let mut ex = Executor::new(opts);
            let outcomes = {
                let mut beat = Beat {
                    inner: &mut obs,
                    p: &worker_p,
                    t0: Instant::now(),
                };
                ex.run_observed(&prog, &mut beat)
            };
            let _ = tx.send((outcomes, obs));
        })
        .expect("spawn executor thread");
    let t0 = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => return Ok(r),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("executor thread died"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let started = p.started_ms.load(Ordering::SeqCst);
        if started == 0 {
            continue;
        }
        let index = p.index.load(Ordering::SeqCst);
        let running = t0
            .elapsed()
            .saturating_sub(Duration::from_millis(started - 1));
        if running > limits.get(index).copied().unwrap_or(margin) {
            let tid = p.tid.load(Ordering::SeqCst);
            let kernel_stack =
                std::fs::read_to_string(format!("/proc/self/task/{tid}/stack")).unwrap_or_default();
            return Err(Stuck {
                index,
                seconds: running.as_secs_f64(),
                kernel_stack,
            });
        }
    }
}

/// The op's own wait (a program-chosen timeout), which its limit must exceed.
fn wait_hint(op: &Op, opts: &ExecOptions) -> Duration {
    let ms = |v: u32| Duration::from_millis(v.into());
    match op {
        Op::Wait { timeout_ms, .. } | Op::PollDmabuf { timeout_ms, .. } => ms(*timeout_ms),
        Op::Dqbuf { timeout_ms, .. } => timeout_ms.map_or(opts.default_wait, ms),
        Op::Sleep { ms: m } => ms(*m),
        _ => Duration::ZERO,
    }
}
