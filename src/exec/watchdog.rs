//! Bounds blocking ioctls: a ticker (its own thread, the run's supervisor thread, or a forked
//! parent process) interrupts the executor's thread with a signal once a deadline passes, so an
//! interruptible kernel wait returns EINTR. A task stuck in an uninterruptible wait cannot be
//! interrupted; the supervisor then reports it from what the watchdog shares ([`Running`]).
use std::ptr::NonNull;
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

/// Arming is a few atomic stores and wakes nobody: the ticker looks every [`TICK`]
/// instead. A deadline fires up to one tick late, which is nothing next to the deadlines
/// (seconds), while arming per op stays off the syscall path and takes no lock (the harness
/// overhead benchmark counts every instruction per op).
pub const TICK: Duration = Duration::from_millis(20);

/// The armed word: 0 when nothing is armed; otherwise the deadline in milliseconds since the
/// watchdog started (plus one, so never 0) in the low [`GEN_SHIFT`] bits, an arming counter
/// above them, and [`FIRED`] on top. The counter makes each arming a distinct word, so the
/// watchdog can only mark fired (compare-and-swap) the op it judged late, and a reader can tell
/// that the words it read belong to one arming.
const GEN_SHIFT: u32 = 40;
const DEADLINE_MASK: u64 = (1 << GEN_SHIFT) - 1;
const FIRED: u64 = 1 << 63;

/// What the executor's thread tells its watcher about the op it runs. Plain atomics, so they
/// work the same between threads and between a process and its forked child.
#[repr(C)]
struct Words {
    /// The armed word (above).
    armed: AtomicU64,
    /// When the armed op started: milliseconds since the watchdog started, plus one.
    started: AtomicU64,
    /// The armed op's index in its program.
    index: AtomicU64,
    /// The executor's thread id.
    tid: AtomicI32,
}

/// A page holding the [`Words`], mapped shared: a child forked after it was made shares it
/// with its parent (a heap allocation would be copied).
struct SharedWords(NonNull<Words>);

// SAFETY: the page is only ever accessed through the atomics in `Words`.
unsafe impl Send for SharedWords {}
// SAFETY: as above.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    fn new() -> SharedWords {
        const { assert!(std::mem::size_of::<Words>() <= 4096) };
        // SAFETY: a fresh anonymous mapping; zeroed pages are valid `Words` (atomics of 0).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            p != libc::MAP_FAILED,
            "mapping the watchdog's page: {}",
            std::io::Error::last_os_error()
        );
        SharedWords(NonNull::new(p.cast()).expect("mmap returned a non-null address"))
    }
}

impl std::ops::Deref for SharedWords {
    type Target = Words;
    fn deref(&self) -> &Words {
        // SAFETY: mapped in `new`, unmapped only in `drop`.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; nothing refers to it after the last owner.
        unsafe { libc::munmap(self.0.as_ptr().cast(), 4096) };
    }
}

/// Whether the deadline of the op armed now has fired (readable from inside the guarded call).
#[derive(Clone)]
pub struct FiredFlag(Arc<SharedWords>);

impl FiredFlag {
    /// True once the watchdog judged the armed op late.
    pub fn is_set(&self) -> bool {
        self.0.armed.load(Ordering::SeqCst) & FIRED != 0
    }
}

impl std::fmt::Debug for FiredFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FiredFlag({})", self.is_set())
    }
}

/// The op a watchdog has armed, as its ticker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Running {
    /// Its index in the program.
    pub index: usize,
    /// The executor's process id.
    pub pid: libc::pid_t,
    /// The executor's thread id.
    pub tid: libc::pid_t,
    /// How long it has been running.
    pub elapsed: Duration,
    /// How far past its deadline it is (zero while in time).
    pub late: Duration,
}

/// A per-executor watchdog: its own thread ([`Watchdog::new`]) or ticked by the run's
/// supervisor ([`Watchdog::ticked`]).
pub struct Watchdog {
    words: Arc<SharedWords>,
    base: Instant,
    gen: AtomicU64,
    /// Its own thread and that thread's stop flag; None when a supervisor ticks it.
    own: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

thread_local! {
    /// This thread's id, once asked (0 before).
    static TID: std::cell::Cell<libc::pid_t> = const { std::cell::Cell::new(0) };
}

/// This thread's id, asked of the kernel once per thread.
pub(super) fn tid() -> libc::pid_t {
    TID.with(|t| {
        if t.get() == 0 {
            // SAFETY: gettid has no preconditions.
            t.set(unsafe { libc::gettid() });
        }
        t.get()
    })
}

/// Forget the cached thread id: the forking thread calls it in a new child, whose id differs.
pub(super) fn forget_tid() {
    TID.with(|t| t.set(0));
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
    /// [`Ticker::tick`] at least every [`TICK`] (a run's supervisor, which wakes anyway, so a
    /// run starts one thread fewer; or the parent of a forked executor, which shares the
    /// watchdog's words with it).
    pub fn ticked() -> (Watchdog, Ticker) {
        install_handler();
        let words = Arc::new(SharedWords::new());
        let base = Instant::now();
        let ticker = Ticker {
            words: words.clone(),
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
            base,
            last_signal: None,
        };
        let w = Watchdog {
            words,
            base,
            gen: AtomicU64::new(0),
            own: None,
        };
        (w, ticker)
    }

    /// The flag `guard` sets when the deadline fires (readable from inside the guarded call).
    pub fn fired_flag(&self) -> FiredFlag {
        FiredFlag(self.words.clone())
    }

    /// Run op `index` as `f` on this thread, interrupting it every 50 ms once `deadline` has
    /// passed since `start` (the caller's clock reading, so arming reads no clock). Returns what
    /// `f` returned and whether the deadline fired.
    pub fn guard<T>(
        &self,
        index: usize,
        start: Instant,
        deadline: Duration,
        f: impl FnOnce() -> T,
    ) -> (T, bool) {
        let since = start.saturating_duration_since(self.base);
        let due = (since + deadline).as_millis() as u64 + 1;
        let gen = self.gen.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let word = (due & DEADLINE_MASK) | ((gen << GEN_SHIFT) & !FIRED & !DEADLINE_MASK);
        let w = &self.words;
        // Published by the armed word's store, which a reader loads first.
        w.started
            .store(since.as_millis() as u64 + 1, Ordering::Relaxed);
        w.index.store(index as u64, Ordering::Relaxed);
        w.tid.store(tid(), Ordering::Relaxed);
        w.armed.store(word, Ordering::SeqCst);
        let r = f();
        let w = w.armed.swap(0, Ordering::SeqCst);
        (r, w & FIRED != 0)
    }

    /// While a call guarded by this watchdog waits for other threads (a concurrent segment's
    /// program threads): judge op `index` of thread `tid` instead, started at `start`, due after
    /// `deadline`. The supervisor then reports the op really stuck, with its thread's stack.
    pub fn retarget(&self, index: usize, start: Instant, deadline: Duration, tid: libc::pid_t) {
        let w = &self.words;
        if w.armed.load(Ordering::SeqCst) == 0 {
            return;
        }
        let since = start.saturating_duration_since(self.base);
        let due = (since + deadline).as_millis() as u64 + 1;
        let gen = self.gen.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let word = (due & DEADLINE_MASK) | ((gen << GEN_SHIFT) & !FIRED & !DEADLINE_MASK);
        w.started
            .store(since.as_millis() as u64 + 1, Ordering::Relaxed);
        w.index.store(index as u64, Ordering::Relaxed);
        w.tid.store(tid, Ordering::Relaxed);
        w.armed.store(word, Ordering::SeqCst);
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new()
    }
}

/// The watchdog's judging side: looks at the armed op and interrupts it once late.
pub struct Ticker {
    words: Arc<SharedWords>,
    /// The executor's process: this one, or a forked child.
    pid: libc::pid_t,
    base: Instant,
    last_signal: Option<Instant>,
}

impl Ticker {
    /// Tick for the executor in child process `pid`, forked after [`Watchdog::ticked`].
    pub(super) fn for_child(&mut self, pid: libc::pid_t) {
        self.pid = pid;
    }

    /// Milliseconds since the watchdog started, plus one (the words' unit).
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    /// Look once: past the armed op's deadline, mark it fired and interrupt its thread (again
    /// every 50 ms until it returns).
    pub fn tick(&mut self) {
        let w = self.words.armed.load(Ordering::SeqCst);
        if w == 0 {
            self.last_signal = None;
            return;
        }
        if self.now_ms() < w & DEADLINE_MASK
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
                .words
                .armed
                .compare_exchange(w, w | FIRED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        let t = self.words.tid.load(Ordering::SeqCst);
        // SAFETY: signals a thread of the executor's process (this one or a forked child).
        unsafe { libc::syscall(libc::SYS_tgkill, self.pid, t, SIG) };
        self.last_signal = Some(Instant::now());
    }

    /// The armed op, if any: the words are read between two loads of the armed word, and
    /// given only if it did not change (so they are one arming's).
    pub fn running(&self) -> Option<Running> {
        let w = self.words.armed.load(Ordering::SeqCst);
        if w == 0 {
            return None;
        }
        let started = self.words.started.load(Ordering::SeqCst);
        let index = self.words.index.load(Ordering::SeqCst) as usize;
        let tid = self.words.tid.load(Ordering::SeqCst);
        if self.words.armed.load(Ordering::SeqCst) & !FIRED != w & !FIRED {
            return None;
        }
        let now = self.now_ms();
        let ms = Duration::from_millis;
        Some(Running {
            index,
            pid: self.pid,
            tid,
            elapsed: ms(now.saturating_sub(started)),
            late: ms(now.saturating_sub(w & DEADLINE_MASK)),
        })
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
        let (n, fired) = w.guard(0, Instant::now(), Duration::from_millis(50), || {
            let n = blocking_read(&r);
            (n, flag.is_set())
        });
        assert_eq!(n, (-libc::EINTR as isize, true));
        assert!(fired);
        // A quick op armed after it is neither marked nor left marked.
        let (set_inside, fired) =
            w.guard(0, Instant::now(), Duration::from_secs(10), || flag.is_set());
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
        let (n, fired) = w.guard(0, start, Duration::from_millis(50), || {
            let n = blocking_read(&r);
            (n, flag.is_set())
        });
        assert_eq!(n, (-libc::EINTR as isize, true));
        assert!(fired && start.elapsed() >= Duration::from_millis(50));
        let (n, fired) = w.guard(0, Instant::now(), Duration::from_secs(10), || {
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
        let (n, fired) = w.guard(0, Instant::now(), Duration::from_secs(10), || {
            blocking_read(&r)
        });
        assert_eq!(n, 1);
        assert!(!fired);
    }
}
