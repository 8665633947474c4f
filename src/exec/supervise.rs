//! Running a program on a thread that is watched from another: an op stuck in an
//! uninterruptible kernel wait cannot be interrupted by the watchdog, so the supervisor reports
//! it (with the thread's kernel stack) instead of waiting forever. The supervisor also ticks the
//! executor's watchdog. [`super::fork`] does the same with the supervisor in a parent process.
use super::watchdog::{Ticker, Watchdog, TICK};
use super::{ExecOptions, Executor, Observer, Outcome};
use crate::program::Program;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
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
    let (watchdog, ticker) = Watchdog::ticked();
    let mut ex = Executor::with_watchdog(opts, watchdog);
    let mut watch = Watch::new(ticker, margin);
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("m2mfuzz-exec".into())
        .spawn(move || {
            on_thread();
            let outcomes = ex.run_observed(&prog, &mut obs);
            d.store(true, Ordering::SeqCst);
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
                .spawn(move || watch.tick_until(&done));
            return Err(stuck);
        }
    }
}
