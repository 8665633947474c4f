//! Running a program on a thread that is watched from another: an op stuck in an
//! uninterruptible kernel wait cannot be interrupted by the watchdog, so the supervisor reports
//! it (with the thread's kernel stack) instead of waiting forever. The supervisor also ticks the
//! executor's watchdog.
use super::watchdog::{Ticker, Watchdog, TICK};
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
    /// `/proc/<pid>/task/<tid>/stack` of the executor's thread, when readable.
    pub kernel_stack: String,
}

/// What the executor's thread tells the supervisor; times in ms since `t0`, plus one (0: no op
/// running).
struct Progress {
    t0: Instant,
    index: AtomicUsize,
    started_ms: AtomicU64,
    tid: AtomicI32,
    done: AtomicBool,
}

impl Progress {
    fn new() -> Arc<Progress> {
        Arc::new(Progress {
            t0: Instant::now(),
            index: AtomicUsize::new(0),
            started_ms: AtomicU64::new(0),
            tid: AtomicI32::new(0),
            done: AtomicBool::new(false),
        })
    }

    /// Run `prog` on this thread, reporting each op's start and end; the outcomes `keep`
    /// accepts are returned.
    fn run<O: Observer>(
        &self,
        ex: &mut Executor,
        prog: &Program,
        obs: &mut O,
        keep: &mut dyn FnMut(&Outcome) -> bool,
    ) -> Vec<Outcome> {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
        let outcomes = ex.run_keeping(
            prog,
            &mut Beat {
                inner: obs,
                p: self,
            },
            keep,
        );
        self.done.store(true, Ordering::SeqCst);
        outcomes
    }
}

struct Beat<'a, O: Observer> {
    inner: &'a mut O,
    p: &'a Progress,
}

impl<O: Observer> Observer for Beat<'_, O> {
    fn before_op(&mut self, index: usize, op: &Op) {
        self.p.index.store(index, Ordering::SeqCst);
        self.p
            .started_ms
            .store(self.p.t0.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
        self.inner.before_op(index, op);
    }
    fn after_op(&mut self, index: usize, op: &Op, outcome: &Outcome, state: &ExecState) {
        self.p.started_ms.store(0, Ordering::SeqCst);
        self.inner.after_op(index, op, outcome, state);
    }
}

/// The supervisor's side: ticks the watchdog and judges the running op.
struct Watch {
    p: Arc<Progress>,
    prog: Arc<Program>,
    opts: ExecOptions,
    margin: Duration,
    ticker: Ticker,
}

impl Watch {
    /// One look, every [`TICK`]: the op running past its watchdog deadline plus the margin is
    /// stuck (the watchdog's signal did not bring it back).
    fn look(&mut self) -> Option<Stuck> {
        self.ticker.tick();
        let started = self.p.started_ms.load(Ordering::SeqCst);
        if started == 0 {
            return None;
        }
        let index = self.p.index.load(Ordering::SeqCst);
        let running = self
            .p
            .t0
            .elapsed()
            .saturating_sub(Duration::from_millis(started - 1));
        let limit = self
            .prog
            .ops
            .get(index)
            .map_or(self.margin, |op| self.opts.deadline(op) + self.margin);
        if running <= limit {
            return None;
        }
        let tid = self.p.tid.load(Ordering::SeqCst);
        let kernel_stack =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stack")).unwrap_or_default();
        Some(Stuck {
            index,
            seconds: running.as_secs_f64(),
            kernel_stack,
        })
    }

    /// Keep the watchdog ticking until the program ends: a stuck op may still come back, and the
    /// rest of its program stays bounded.
    fn tick_until_done(mut self) {
        while !self.p.done.load(Ordering::SeqCst) {
            std::thread::park_timeout(TICK);
            self.ticker.tick();
        }
    }
}

/// An executor whose watchdog the returned [`Watch`] ticks.
fn watched(prog: Arc<Program>, opts: &ExecOptions, margin: Duration) -> (Executor, Watch) {
    let (watchdog, ticker) = Watchdog::ticked();
    let w = Watch {
        p: Progress::new(),
        prog,
        opts: opts.clone(),
        margin,
        ticker,
    };
    (Executor::with_watchdog(opts.clone(), watchdog), w)
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
    let (mut ex, mut watch) = watched(prog.clone(), &opts, margin);
    let p = watch.p.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("m2mfuzz-exec".into())
        .spawn(move || {
            on_thread();
            let outcomes = p.run(&mut ex, &prog, &mut obs, &mut |_| true);
            let _ = tx.send((outcomes, obs));
        })
        .expect("spawn executor thread");
    loop {
        match rx.recv_timeout(TICK) {
            Ok(r) => return Ok(r),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("executor thread died"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(stuck) = watch.look() {
            let _ = std::thread::Builder::new()
                .name("m2mfuzz-watchdog".into())
                .spawn(move || watch.tick_until_done());
            return Err(stuck);
        }
    }
}

/// [`run_supervised`] with the executor on this thread and the supervisor on a new one, for a
/// process that runs one program (`m2mfuzz run`): the new thread starts while the program runs
/// (under the lab's TCG a process's first thread took 5-15 ms to start) and is not waited for.
/// A stuck op cannot be returned from: `on_stuck` gets it on the supervisor's thread, and
/// should end the process. Only the outcomes `keep` accepts are returned.
pub fn run_supervised_here<O: Observer>(
    prog: impl Into<Arc<Program>>,
    opts: ExecOptions,
    obs: &mut O,
    margin: Duration,
    on_stuck: impl FnOnce(Stuck) + Send + 'static,
    mut keep: impl FnMut(&Outcome) -> bool,
) -> Vec<Outcome> {
    let prog: Arc<Program> = prog.into();
    let (mut ex, mut watch) = watched(prog.clone(), &opts, margin);
    let p = watch.p.clone();
    let supervisor = std::thread::Builder::new()
        .name("m2mfuzz-supervisor".into())
        .spawn(move || {
            while !watch.p.done.load(Ordering::SeqCst) {
                std::thread::park_timeout(TICK);
                if let Some(stuck) = watch.look() {
                    on_stuck(stuck);
                    return watch.tick_until_done();
                }
            }
        })
        .expect("spawn supervisor thread");
    let outcomes = p.run(&mut ex, &prog, obs, &mut keep);
    // It ends at its next look; unparked, now.
    supervisor.thread().unpark();
    outcomes
}
