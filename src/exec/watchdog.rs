//! Bounds blocking ioctls: a thread that interrupts the executor's thread with a signal once a
//! deadline passes, so an interruptible kernel wait returns EINTR. A task stuck in an
//! uninterruptible wait cannot be interrupted; the watchdog then keeps a record of it, which the
//! hang oracle reports instead of waiting forever.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
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

#[derive(Default)]
struct State {
    /// Armed: (thread id to interrupt, deadline).
    armed: Option<(libc::pid_t, Instant)>,
    stop: bool,
}

/// A per-executor watchdog thread.
pub struct Watchdog {
    shared: Arc<(Mutex<State>, Condvar)>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Start the watchdog thread.
    pub fn new() -> Watchdog {
        install_handler();
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let fired = Arc::new(AtomicBool::new(false));
        let (s, f) = (shared.clone(), fired.clone());
        let thread = std::thread::Builder::new()
            .name("m2mfuzz-watchdog".into())
            .spawn(move || run(&s, &f))
            .expect("spawn watchdog thread");
        Watchdog {
            shared,
            fired,
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
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.fired.store(false, Ordering::SeqCst);
        {
            let (m, cv) = &*self.shared;
            m.lock().unwrap().armed = Some((tid, Instant::now() + deadline));
            cv.notify_all();
        }
        let r = f();
        let (m, _) = &*self.shared;
        m.lock().unwrap().armed = None;
        (r, self.fired.load(Ordering::SeqCst))
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new()
    }
}

fn run(shared: &(Mutex<State>, Condvar), fired: &AtomicBool) {
    let (m, cv) = shared;
    let mut st = m.lock().unwrap();
    loop {
        if st.stop {
            return;
        }
        match st.armed {
            None => st = cv.wait(st).unwrap(),
            Some((tid, deadline)) => {
                let now = Instant::now();
                if now < deadline {
                    st = cv.wait_timeout(st, deadline - now).unwrap().0;
                    continue;
                }
                fired.store(true, Ordering::SeqCst);
                // SAFETY: signals a thread of this process that is inside `guard`.
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, SIG) };
                st = cv.wait_timeout(st, Duration::from_millis(50)).unwrap().0;
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        {
            let (m, cv) = &*self.shared;
            m.lock().unwrap().stop = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
