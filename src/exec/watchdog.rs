//! Bounds blocking ioctls: a thread that interrupts the executor's thread with a signal once a
//! deadline passes, so an interruptible kernel wait returns EINTR. A task stuck in an
//! uninterruptible wait cannot be interrupted; the watchdog then keeps a record of it, which the
//! hang oracle reports instead of waiting forever.
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Once};
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

/// Arming is two atomic stores and wakes nobody: the watchdog thread looks every [`TICK`]
/// instead. A deadline fires up to one tick late, which is nothing next to the deadlines
/// (seconds), while arming per op stays off the syscall path and takes no lock (the harness
/// overhead benchmark counts every instruction per op).
const TICK: Duration = Duration::from_millis(20);

/// The armed word: 0 when nothing is armed; otherwise the deadline in milliseconds since the
/// watchdog started (plus one, so never 0) in the low [`GEN_SHIFT`] bits, an arming counter
/// above them, and [`FIRED`] on top. The counter makes each arming a distinct word, so the
/// watchdog can only mark fired (compare-and-swap) the op it judged late.
const GEN_SHIFT: u32 = 40;
const DEADLINE_MASK: u64 = (1 << GEN_SHIFT) - 1;
const FIRED: u64 = 1 << 63;

/// Whether the deadline of the op armed now has fired (readable from inside the guarded call).
#[derive(Clone, Debug)]
pub struct FiredFlag(Arc<AtomicU64>);

impl FiredFlag {
    /// True once the watchdog judged the armed op late.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst) & FIRED != 0
    }
}

/// A per-executor watchdog thread.
pub struct Watchdog {
    word: Arc<AtomicU64>,
    tid: Arc<AtomicI32>,
    base: Instant,
    gen: AtomicU64,
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
        let word = Arc::new(AtomicU64::new(0));
        let tid = Arc::new(AtomicI32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let base = Instant::now();
        let (w, t, st) = (word.clone(), tid.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("m2mfuzz-watchdog".into())
            .spawn(move || run(&w, &t, base, &st))
            .expect("spawn watchdog thread");
        Watchdog {
            word,
            tid,
            base,
            gen: AtomicU64::new(0),
            stop,
            thread: Some(thread),
        }
    }

    /// The flag `guard` sets when the deadline fires (readable from inside the guarded call).
    pub fn fired_flag(&self) -> FiredFlag {
        FiredFlag(self.word.clone())
    }

    /// Run `f` on this thread, interrupting it every 50 ms once `deadline` has passed since
    /// `start` (the caller's clock reading, so arming reads no clock). Returns what `f` returned
    /// and whether the deadline fired.
    pub fn guard<T>(&self, start: Instant, deadline: Duration, f: impl FnOnce() -> T) -> (T, bool) {
        let due = (start.saturating_duration_since(self.base) + deadline).as_millis() as u64 + 1;
        let gen = self.gen.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let word = (due & DEADLINE_MASK) | ((gen << GEN_SHIFT) & !FIRED & !DEADLINE_MASK);
        self.tid.store(TID.with(|t| *t), Ordering::SeqCst);
        self.word.store(word, Ordering::SeqCst);
        let r = f();
        let w = self.word.swap(0, Ordering::SeqCst);
        (r, w & FIRED != 0)
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new()
    }
}

fn run(word: &AtomicU64, tid: &AtomicI32, base: Instant, stop: &AtomicBool) {
    let mut last_signal: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        std::thread::park_timeout(TICK);
        let w = word.load(Ordering::SeqCst);
        if w == 0 {
            last_signal = None;
            continue;
        }
        // Past the deadline: interrupt now and every 50 ms until the op returns.
        let now = base.elapsed().as_millis() as u64 + 1;
        if now < w & DEADLINE_MASK
            || last_signal.is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            continue;
        }
        // Marks fired only if the same arming is still in place; a signal that lands after that
        // op returned interrupts the next one, which retries (its deadline has not fired).
        if w & FIRED == 0
            && word
                .compare_exchange(w, w | FIRED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            continue;
        }
        let t = tid.load(Ordering::SeqCst);
        // SAFETY: signals a thread of this process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), t, SIG) };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A blocking read on an empty pipe, as a stand-in for a blocking ioctl: EINTR once fired.
    fn blocking_read(fd: &std::os::fd::OwnedFd) -> isize {
        let mut b = [0u8; 1];
        // SAFETY: reads into a local buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n < 0 {
            -(std::io::Error::last_os_error().raw_os_error().unwrap() as isize)
        } else {
            n
        }
    }

    #[test]
    fn a_late_op_is_interrupted_and_marked_fired_and_the_next_one_is_not() {
        let w = Watchdog::new();
        let flag = w.fired_flag();
        let (r, w_) = nix::unistd::pipe().unwrap();
        let (n, fired) = w.guard(Instant::now(), Duration::from_millis(50), || {
            let n = blocking_read(&r);
            (n, flag.is_set())
        });
        assert_eq!(n, (-libc::EINTR as isize, true));
        assert!(fired);
        // A quick op armed after it is neither marked nor left marked.
        let (set_inside, fired) =
            w.guard(Instant::now(), Duration::from_secs(10), || flag.is_set());
        assert!(!set_inside && !fired);
        drop(w_);
    }

    #[test]
    fn an_op_that_returns_in_time_is_not_fired() {
        let w = Watchdog::new();
        let (r, w_) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w_, b"x").unwrap();
        let (n, fired) = w.guard(Instant::now(), Duration::from_secs(10), || {
            blocking_read(&r)
        });
        assert_eq!(n, 1);
        assert!(!fired);
    }
}
