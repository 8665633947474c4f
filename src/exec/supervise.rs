//! Running a program on a worker thread that is watched from outside: an op stuck in an
//! uninterruptible kernel wait cannot be interrupted by the watchdog, so the supervisor reports
//! it (with the thread's kernel stack) instead of waiting forever.
use super::watchdog::{Watchdog, TICK};
use super::{ExecOptions, ExecState, Executor, Observer, Outcome};
use crate::program::{Op, Program};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
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
    done: AtomicBool,
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
/// On success the observer comes back with the outcomes. The program is shared with the worker,
/// not copied: pass an `Arc` to keep using it (a copy of a long program is one page fault per
/// 56 ops, and page faults are what a process's time goes to under the lab's TCG).
pub fn run_supervised<O: Observer + Send + 'static>(
    prog: impl Into<Arc<Program>>,
    opts: ExecOptions,
    obs: O,
    margin: Duration,
) -> Result<(Vec<Outcome>, O), Stuck> {
    run_supervised_with(prog, opts, obs, margin, || {})
}

/// [`run_supervised`], calling `on_thread` first on the executor thread (e.g. to enable KCOV
/// for that thread).
pub fn run_supervised_with<O: Observer + Send + 'static>(
    prog: impl Into<Arc<Program>>,
    opts: ExecOptions,
    mut obs: O,
    margin: Duration,
    on_thread: impl FnOnce() + Send + 'static,
) -> Result<(Vec<Outcome>, O), Stuck> {
    let prog: Arc<Program> = prog.into();
    let p = Arc::new(Progress::default());
    let (tx, rx) = mpsc::channel();
    let limit = {
        let opts = opts.clone();
        move |op: Option<&Op>| {
            op.map_or(margin, |op| {
                opts.op_deadline + wait_hint(op, &opts).min(opts.max_wait) + margin
            })
        }
    };
    let worker_p = p.clone();
    let worker_prog = prog.clone();
    // This thread wakes to watch for stuck ops anyway: it also ticks the executor's watchdog.
    let (watchdog, mut ticker) = Watchdog::ticked();
    std::thread::Builder::new()
        .name("m2mfuzz-exec".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            worker_p
                .tid
                .store(unsafe { libc::gettid() }, Ordering::SeqCst);
            on_thread();
            let mut ex = Executor::with_watchdog(opts, watchdog);
            let outcomes = {
                let mut beat = Beat {
                    inner: &mut obs,
                    p: &worker_p,
                    t0: Instant::now(),
                };
                ex.run_observed(&worker_prog, &mut beat)
            };
            worker_p.done.store(true, Ordering::SeqCst);
            let _ = tx.send((outcomes, obs));
        })
        .expect("spawn executor thread");
    let t0 = Instant::now();
    loop {
        match rx.recv_timeout(TICK) {
            Ok(r) => return Ok(r),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("executor thread died"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        ticker.tick();
        let started = p.started_ms.load(Ordering::SeqCst);
        if started == 0 {
            continue;
        }
        let index = p.index.load(Ordering::SeqCst);
        let running = t0
            .elapsed()
            .saturating_sub(Duration::from_millis(started - 1));
        if running > limit(prog.ops.get(index)) {
            let tid = p.tid.load(Ordering::SeqCst);
            let kernel_stack =
                std::fs::read_to_string(format!("/proc/self/task/{tid}/stack")).unwrap_or_default();
            // The stuck op may still come back: the rest of its program stays bounded.
            let (p, mut ticker) = (p.clone(), ticker);
            let _ = std::thread::Builder::new()
                .name("m2mfuzz-watchdog".into())
                .spawn(move || {
                    while !p.done.load(Ordering::SeqCst) {
                        std::thread::park_timeout(TICK);
                        ticker.tick();
                    }
                });
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
