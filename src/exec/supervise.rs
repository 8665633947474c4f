//! Running a program on a thread that is watched from another: an op stuck in an
//! uninterruptible kernel wait cannot be interrupted by the watchdog, so the supervisor reports
//! it (with the thread's kernel stack) instead of waiting forever. The supervisor also ticks the
//! executor's watchdog. [`super::fork`] does the same with the supervisor in a parent process.
use super::watchdog::{Ticker, Watchdog, TICK};
use super::{ExecOptions, Executor, Observer, Outcome};
use crate::program::Program;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

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

/// A program whose op did not come back: the stuck op, and the observer with what it saw
/// before (earlier findings, kernel log read so far). The executor thread stays blocked in the
/// kernel; if the op ever returns, the rest of the program is skipped, not run.
pub struct StuckRun<O> {
    /// The stuck op.
    pub stuck: Stuck,
    /// The observer, shared with the blocked executor thread (which calls it only for the
    /// skipped ops' outcomes, if the op comes back).
    pub observer: Arc<Mutex<O>>,
}

impl<O> std::fmt::Debug for StuckRun<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.stuck.fmt(f)
    }
}

impl<O> StuckRun<O> {
    /// `f` applied to the observer (waiting for a call of the executor thread's to end).
    pub fn with_observer<T>(&self, f: impl FnOnce(&mut O) -> T) -> T {
        f(&mut self.observer.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The observer behind a lock, so the supervisor can read it while the executor is stuck.
struct Shared<O>(Arc<Mutex<O>>);

impl<O: Observer> Observer for Shared<O> {
    fn before_op(&mut self, index: usize, op: &crate::program::Op) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .before_op(index, op)
    }
    fn after_op(
        &mut self,
        index: usize,
        op: &crate::program::Op,
        outcome: &Outcome,
        state: &super::ExecState,
    ) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .after_op(index, op, outcome, state)
    }
    fn concurrent(&mut self, ops: std::ops::Range<usize>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .concurrent(ops)
    }
    fn probe(&mut self, index: usize) -> Option<super::Probe> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .probe(index)
    }
    fn after_probe(&mut self, index: usize, probe: &super::Probe, seen: &super::ProbeOutcome) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .after_probe(index, probe, seen)
    }
}

/// The supervisor's side: ticks the watchdog and judges the running op.
pub(super) struct Watch {
    pub(super) ticker: Ticker,
    margin: Duration,
}

impl Watch {
    /// A watch on the executor whose watchdog `ticker` ticks.
    pub(super) fn new(ticker: Ticker, margin: Duration) -> Watch {
        Watch { ticker, margin }
    }

    /// One look, every [`TICK`]: the op running past its watchdog deadline plus the margin is
    /// stuck (the watchdog's signal did not bring it back).
    pub(super) fn look(&mut self) -> Option<Stuck> {
        self.ticker.tick();
        let r = self.ticker.running()?;
        if r.late <= self.margin {
            return None;
        }
        let kernel_stack = std::fs::read_to_string(format!("/proc/{}/task/{}/stack", r.pid, r.tid))
            .unwrap_or_default();
        Some(Stuck {
            index: r.index,
            seconds: r.elapsed.as_secs_f64(),
            kernel_stack,
        })
    }

    /// Keep the watchdog ticking until `done`: a stuck op may still come back, and the rest of
    /// its program stays bounded.
    fn tick_until(mut self, done: &AtomicBool) {
        while !done.load(Ordering::SeqCst) {
            std::thread::park_timeout(TICK);
            self.ticker.tick();
        }
    }
}

/// Run `prog` on a worker thread; `Err(StuckRun)` when an op exceeds its deadline plus `margin`.
/// On success the observer comes back with the outcomes. The program is shared with the worker,
/// not copied: pass an `Arc` to keep using it (a copy of a long program is one page fault per
/// 56 ops, and page faults are what a process's time goes to under the lab's TCG).
pub fn run_supervised<O: Observer + Send + 'static>(
    prog: impl Into<Arc<Program>>,
    opts: ExecOptions,
    obs: O,
    margin: Duration,
) -> Result<(Vec<Outcome>, O), StuckRun<O>> {
    run_supervised_with(prog, opts, obs, margin, || {})
}

/// [`run_supervised`], calling `on_thread` first on the executor thread (e.g. to enable KCOV
/// for that thread).
pub fn run_supervised_with<O: Observer + Send + 'static>(
    prog: impl Into<Arc<Program>>,
    opts: ExecOptions,
    obs: O,
    margin: Duration,
    on_thread: impl FnOnce() + Send + 'static,
) -> Result<(Vec<Outcome>, O), StuckRun<O>> {
    let prog: Arc<Program> = prog.into();
    let (watchdog, ticker) = Watchdog::ticked();
    let mut ex = Executor::with_watchdog(opts, watchdog);
    let abandon = ex.abandon_flag();
    let shared = Arc::new(Mutex::new(obs));
    let mut theirs = Shared(shared.clone());
    let mut watch = Watch::new(ticker, margin);
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("m2mfuzz-exec".into())
        .spawn(move || {
            on_thread();
            let outcomes = ex.run_observed(&prog, &mut theirs);
            drop(theirs);
            d.store(true, Ordering::SeqCst);
            let _ = tx.send(outcomes);
        })
        .expect("spawn executor thread");
    loop {
        match rx.recv_timeout(TICK) {
            Ok(outcomes) => {
                // The executor thread dropped its reference before sending.
                let obs = Arc::try_unwrap(shared)
                    .ok()
                    .expect("the executor thread let go of the observer")
                    .into_inner()
                    .unwrap_or_else(|e| e.into_inner());
                return Ok((outcomes, obs));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("executor thread died"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(stuck) = watch.look() {
            abandon.store(true, Ordering::SeqCst);
            let _ = std::thread::Builder::new()
                .name("m2mfuzz-watchdog".into())
                .spawn(move || watch.tick_until(&done));
            return Err(StuckRun {
                stuck,
                observer: shared,
            });
        }
    }
}
