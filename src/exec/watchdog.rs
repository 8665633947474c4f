//! Bounds blocking ioctls: a thread that interrupts the executor's thread with a signal once a
//! deadline passes, so an interruptible kernel wait returns EINTR. A task stuck in an
//! uninterruptible wait cannot be interrupted; the watchdog then keeps a record of it, which the
//! hang oracle reports instead of waiting forever.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The signal used to interrupt (its handler does nothing; installed without SA_RESTART).
const SIG: libc::c_int = libc::SIGURG;

extern "C" fn on_signal(_: libc::c_int) {}

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: installs an async-signal-safe no-op handler; no SA_RESTART so blocking ioctls
        // return EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(SIG, &sa, std::ptr::null_mut());
        }
    });
}

/// Arming takes an uncontended lock and wakes nobody: the watchdog thread looks every [`TICK`]
/// instead. A deadline fires up to one tick late, which is nothing next to the deadlines
/// (seconds), while arming per op stays off the syscall path (the harness overhead budget).
const TICK: Duration = Duration::from_millis(20);

#[derive(Default)]
struct State {
    /// Armed: (thread id to interrupt, deadline).
    armed: Option<(libc::pid_t, Instant)>,
    /// Set (under the lock, so for the op armed then) when the deadline fired.
    fired: bool,
}

/// A per-executor watchdog thread.
pub struct Watchdog {
    state: Arc<Mutex<State>>,
    /// Mirrors `State::fired` for the guarded call, which must not take the lock.
    fired: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

thread_local! {
    static TID: libc::pid_t = {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    };
}

impl Watchdog {
    /// Start the watchdog thread.
    pub fn new() -> Watchdog {
        install_handler();
        let state = Arc::new(Mutex::new(State::default()));
        let fired = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, f, st) = (state.clone(), fired.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("m2mfuzz-watchdog".into())
            .spawn(move || run(&s, &f, &st))
            .expect("spawn watchdog thread");
        Watchdog {
            state,
            fired,
            stop,
            thread: Some(thread),
        }
    }

    /// The flag `guard` sets when the deadline fires (readable from inside the guarded call).
    pub fn fired_flag(&self) -> Arc<AtomicBool> {
        self.fired.clone()
    }

    /// Run `f` on this thread, interrupting it every 50 ms after `deadline` passes. Returns what
    /// `f` returned and whether the deadline fired.
    pub fn guard<T>(&self, deadline: Duration, f: impl FnOnce() -> T) -> (T, bool) {
        let tid = TID.with(|t| *t);
        {
            let mut st = self.state.lock().unwrap();
            st.armed = Some((tid, Instant::now() + deadline));
            st.fired = false;
            self.fired.store(false, Ordering::SeqCst);
        }
        let r = f();
        let mut st = self.state.lock().unwrap();
        st.armed = None;
        (r, st.fired)
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new()
    }
}

fn run(state: &Mutex<State>, fired: &AtomicBool, stop: &AtomicBool) {
    let mut last_signal: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        std::thread::park_timeout(TICK);
        let mut st = state.lock().unwrap();
        let Some((tid, deadline)) = st.armed else {
            last_signal = None;
            continue;
        };
        // Past the deadline: interrupt now and every 50 ms until the op returns.
        if Instant::now() < deadline
            || last_signal.is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            continue;
        }
        // Under the lock, so it is the armed op's flag; a signal that lands after that op
        // returned interrupts the next one, which retries (its deadline has not fired).
        st.fired = true;
        fired.store(true, Ordering::SeqCst);
        // SAFETY: signals a thread of this process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, SIG) };
        last_signal = Some(Instant::now());
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
