//! Bounds blocking ioctls: a ticker (its own thread, or the run's supervisor) interrupts the
//! executor's thread with a signal once a deadline passes, so an interruptible kernel wait returns EINTR. A task stuck in an
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

/// Arming is two atomic stores and wakes nobody: the ticker looks every [`TICK`]
/// instead. A deadline fires up to one tick late, which is nothing next to the deadlines
/// (seconds), while arming per op stays off the syscall path and takes no lock (the harness
/// overhead benchmark counts every instruction per op).
pub const TICK: Duration = Duration::from_millis(20);

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

/// A per-executor watchdog: its own thread ([`Watchdog::new`]) or ticked by the run's
/// supervisor ([`Watchdog::ticked`]).
pub struct Watchdog {
    word: Arc<AtomicU64>,
    tid: Arc<AtomicI32>,
    base: Instant,
    gen: AtomicU64,
    /// Its own thread and that thread's stop flag; None when a supervisor ticks it.
    own: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

thread_local! {
    static TID: libc::pid_t = {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    };
}

impl Watchdog {
    /// Start the watchdog with its own thread.
    pub fn new() -> Watchdog {
        let (mut w, mut ticker) = Watchdog::ticked();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("m2mfuzz-watchdog".into())
            .spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    std::thread::park_timeout(TICK);
                    ticker.tick();
                }
            })
            .expect("spawn watchdog thread");
        w.own = Some((stop, thread));
        w
    }

    /// A watchdog with no thread of its own: whoever holds the [`Ticker`] calls
    /// [`Ticker::tick`] at least every [`TICK`] (the supervisor of a run, which wakes anyway,
    /// so a run starts one thread fewer).
    pub fn ticked() -> (Watchdog, Ticker) {
        install_handler();
        let word = Arc::new(AtomicU64::new(0));
        let tid = Arc::new(AtomicI32::new(0));
        let base = Instant::now();
        let ticker = Ticker {
            word: word.clone(),
            tid: tid.clone(),
            base,
            last_signal: None,
        };
        let w = Watchdog {
            word,
            tid,
            base,
            gen: AtomicU64::new(0),
            own: None,
        };
        (w, ticker)
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

/// The watchdog's judging side: looks at the armed op and interrupts it once late.
pub struct Ticker {
    word: Arc<AtomicU64>,
    tid: Arc<AtomicI32>,
    base: Instant,
    last_signal: Option<Instant>,
}

impl Ticker {
    /// Look once: past the armed op's deadline, mark it fired and interrupt its thread (again
    /// every 50 ms until it returns).
    pub fn tick(&mut self) {
        let w = self.word.load(Ordering::SeqCst);
        if w == 0 {
            self.last_signal = None;
            return;
        }
        let now = self.base.elapsed().as_millis() as u64 + 1;
        if now < w & DEADLINE_MASK
            || self
                .last_signal
                .is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            return;
        }
        // Marks fired only if the same arming is still in place; a signal that lands after that
        // op returned interrupts the next one, which retries (its deadline has not fired).
        if w & FIRED == 0
            && self
                .word
                .compare_exchange(w, w | FIRED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        let t = self.tid.load(Ordering::SeqCst);
        // SAFETY: signals a thread of this process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), t, SIG) };
        self.last_signal = Some(Instant::now());
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some((stop, t)) = self.own.take() {
            stop.store(true, Ordering::SeqCst);
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
    fn a_ticked_watchdog_interrupts_a_late_op_as_its_own_thread_does() {
        let (w, mut ticker) = Watchdog::ticked();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let (r, w_) = nix::unistd::pipe().unwrap();
        let unblock = w_.try_clone().unwrap();
        // What a supervisor does between its looks at the run; after 5 s it ends the read itself,
        // so a watchdog that never fires fails the test instead of hanging it.
        let t = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut unblock = Some(unblock);
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(TICK);
                ticker.tick();
                if t0.elapsed() > Duration::from_secs(5) {
                    if let Some(u) = unblock.take() {
                        nix::unistd::write(&u, b"x").unwrap();
                    }
                }
            }
        });
        let flag = w.fired_flag();
        let start = Instant::now();
        let (n, fired) = w.guard(start, Duration::from_millis(50), || {
            let n = blocking_read(&r);
            (n, flag.is_set())
        });
        assert_eq!(n, (-libc::EINTR as isize, true));
        assert!(fired && start.elapsed() >= Duration::from_millis(50));
        let (n, fired) = w.guard(Instant::now(), Duration::from_secs(10), || {
            nix::unistd::write(&w_, b"x").unwrap();
            blocking_read(&r)
        });
        assert_eq!((n, fired), (1, false));
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
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
