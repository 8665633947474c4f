//! Memory faults in `fill` and `check`: a SIGBUS or SIGSEGV the kernel raises inside the mapping
//! being accessed becomes the op's outcome ([`super::OpResult::Fault`]) instead of killing
//! m2mfuzz.
//!
//! - **Resuming.** One process-wide handler for SIGBUS and SIGSEGV (installed on the first
//!   access) and, per thread, a guard: the address range the thread is accessing. A fault the
//!   kernel raised (`si_code > 0`) at an address inside the faulting thread's guard is answered
//!   by mapping anonymous memory (`MAP_FIXED`) over the mapping from the faulting page to its
//!   end, noting the fault in the thread's record, and returning: the faulting instruction runs
//!   again on the anonymous page and the access completes. After the access, the op reads the
//!   record. No jump out of the handler, so no Rust frame is skipped.
//! - **Not ours.** Any other fault (no guard, outside it, sent by `kill`) goes to the action
//!   that was installed before (Rust's stack-overflow handler, a fuzzer's, or the default: the
//!   process dies with a core), as if this handler were not there.
//! - **Poison.** After the access, the replaced pages are made `PROT_NONE` and the range is
//!   noted with its fault. A later access faults there (SIGSEGV, `SEGV_ACCERR`), is resumed the
//!   same way, and reports the first fault again ([`MemFault::again`]): the anonymous bytes are
//!   never taken for the buffer's. A noted range whose mapping was since unmapped cannot
//!   mislead: a new mapping there, made readable and writable as the executor makes them, does
//!   not fault that way.
//! - **Threads.** The guard and the record are thread-local (the kernel delivers a fault to
//!   the thread that faulted); the handler touches only atomics and calls only `mmap(2)`,
//!   `sigaction(2)` and `raise(3)`, all async-signal-safe. Each replacement is also published
//!   in a small lock-free ring, so that another thread accessing the same mapping (program
//!   threads sharing a handle) learns that some of the bytes it read or wrote were the
//!   anonymous page's: it reports the fault too.
//! - **Soundness.** To the Rust program, the replacement is bytes behind a raw pointer changing
//!   value during the access, as they do when the device or another process writes the shared
//!   mapping: no reference covers them (`write_bytes` and raw reads only), so the compiler
//!   assumes nothing about them. `compiler_fence`s keep the access between the guard's setting
//!   and its clearing, and the handler shares only atomics with the interrupted code.
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicI32, AtomicU64, AtomicUsize};
use std::sync::{Mutex, Once, OnceLock};

/// A fault met accessing a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemFault {
    /// SIGBUS or SIGSEGV.
    pub signal: i32,
    /// The kernel's `si_code` (`BUS_ADRERR`, `SEGV_MAPERR`, …).
    pub code: i32,
    /// Where, from the start of the mapping.
    pub offset: u64,
    /// The fault an earlier access met: the mapping was replaced from there on then, and from
    /// there on this access did not reach the buffer's memory.
    pub again: bool,
}

/// Write `byte` over `len` bytes at `ptr`.
///
/// # Safety
/// `ptr..ptr + len` is a whole mapping the caller owns (e.g. a `memmap2::MmapRaw`), which no
/// Rust reference points into: a fault in it may replace its pages by anonymous memory.
pub unsafe fn fill(ptr: *mut u8, len: usize, byte: u8) -> Result<(), MemFault> {
    // SAFETY: the caller's promise; the bytes are plain data, which the device or another
    // thread may write at the same time (the race under test, outside the Rust program).
    guarded(ptr, len, || unsafe {
        std::ptr::write_bytes(ptr, byte, len)
    })
}

/// How many of the `len` bytes at `ptr` differ from `byte`.
///
/// # Safety
/// As for [`fill`].
pub unsafe fn differing(ptr: *const u8, len: usize, byte: u8) -> Result<usize, MemFault> {
    guarded(ptr.cast_mut(), len, || {
        // Raw reads, no slice: the bytes may change under us (the device, another thread,
        // a replaced page), which a `&[u8]` would promise they do not.
        // SAFETY: the caller's promise; `i < len`.
        (0..len)
            .filter(|&i| unsafe { ptr.add(i).read() } != byte)
            .count()
    })
}

/// The name of a signal (`SIGBUS`), or its number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        s => format!("signal {s}"),
    }
}

/// The name of a fault's `si_code` (`BUS_ADRERR`), or its number.
pub fn code_name(signal: i32, code: i32) -> String {
    const BUS: [&str; 5] = [
        "BUS_ADRALN",
        "BUS_ADRERR",
        "BUS_OBJERR",
        "BUS_MCEERR_AR",
        "BUS_MCEERR_AO",
    ];
    const SEGV: [&str; 10] = [
        "SEGV_MAPERR",
        "SEGV_ACCERR",
        "SEGV_BNDERR",
        "SEGV_PKUERR",
        "SEGV_ACCADI",
        "SEGV_ADIDERR",
        "SEGV_ADIPERR",
        "SEGV_MTEAERR",
        "SEGV_MTESERR",
        "SEGV_CPERR",
    ];
    let names: &[&str] = match signal {
        libc::SIGBUS => &BUS,
        libc::SIGSEGV => &SEGV,
        _ => &[],
    };
    usize::try_from(code - 1)
        .ok()
        .and_then(|i| names.get(i))
        .map_or_else(|| format!("code {code}"), |n| n.to_string())
}

/// The page size, read when the handler is installed (sysconf is not async-signal-safe).
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The actions for SIGBUS and SIGSEGV before ours, in that order.
static PREV: OnceLock<[libc::sigaction; 2]> = OnceLock::new();

/// `si_code` of a SIGSEGV on a page whose protection forbids the access (not in libc).
const SEGV_ACCERR: i32 = 2;

const SIGNALS: [libc::c_int; 2] = [libc::SIGBUS, libc::SIGSEGV];

/// One thread's guard (the range it is accessing; empty when none) and the first fault the
/// access met (`signal` 0: none).
struct Guard {
    start: AtomicUsize,
    end: AtomicUsize,
    signal: AtomicI32,
    code: AtomicI32,
    addr: AtomicUsize,
    /// The fault's number in [`SEQ`] (its ring slot).
    seq: AtomicU64,
}

thread_local! {
    // Const-initialised and without a destructor: on Linux a plain `#[thread_local]` static,
    // so the handler reaches it without allocating or registering anything.
    static GUARD: Guard = const {
        Guard {
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            signal: AtomicI32::new(0),
            code: AtomicI32::new(0),
            addr: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
        }
    };
}

/// One replacement, for other threads: the range replaced, its fault, and whether the thread
/// that met it is still accessing (its pages are anonymous and readable until it settles).
struct Slot {
    /// The replacement's number; 0 while the slot is being written.
    seq: AtomicU64,
    start: AtomicUsize,
    end: AtomicUsize,
    signal: AtomicI32,
    code: AtomicI32,
    addr: AtomicUsize,
    settled: AtomicBool,
    /// The publishing thread's guard (its address): an access that met more than one fault
    /// settles all of its slots when it poisons.
    owner: AtomicUsize,
}

const RING: usize = 64;

/// Replacements so far.
static SEQ: AtomicU64 = AtomicU64::new(0);

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    seq: AtomicU64::new(0),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    signal: AtomicI32::new(0),
    code: AtomicI32::new(0),
    addr: AtomicUsize::new(0),
    settled: AtomicBool::new(true),
    owner: AtomicUsize::new(0),
};

static SLOTS: [Slot; RING] = [EMPTY; RING];

/// A replaced range's fault, as a slot holds it.
#[derive(Clone, Copy)]
struct Replaced {
    start: usize,
    end: usize,
    signal: i32,
    code: i32,
    addr: usize,
    settled: bool,
}

impl Slot {
    /// The slot's replacement, if it is `seq`'s (not being rewritten meanwhile).
    fn read(&self, seq: u64) -> Option<Replaced> {
        if seq == 0 || self.seq.load(SeqCst) != seq {
            return None;
        }
        let r = Replaced {
            start: self.start.load(SeqCst),
            end: self.end.load(SeqCst),
            signal: self.signal.load(SeqCst),
            code: self.code.load(SeqCst),
            addr: self.addr.load(SeqCst),
            settled: self.settled.load(SeqCst),
        };
        (self.seq.load(SeqCst) == seq).then_some(r)
    }
}

/// Ranges replaced after a fault and made `PROT_NONE`, with their fault (the address).
static POISONED: Mutex<Vec<Replaced>> = Mutex::new(Vec::new());

/// At most this many poisoned ranges are remembered (the oldest go first): each is a fault the
/// kernel raised in a live mapping, a finding, so there are few.
const MAX_POISONED: usize = 256;

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sysconf, and sigaction with a handler that is async-signal-safe (above); the
        // previous actions are stored before ours can run.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, SeqCst);
            }
            let mut prev: [libc::sigaction; 2] = std::mem::zeroed();
            for (sig, old) in SIGNALS.iter().zip(prev.iter_mut()) {
                libc::sigaction(*sig, std::ptr::null(), old);
            }
            let _ = PREV.set(prev);
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            // On the alternate stack where there is one: a stack overflow, chained to Rust's
            // handler, must still be reported as one.
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            for sig in SIGNALS {
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno is this thread's; the handler's mmap may set it, the interrupted code must
    // not see that.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; for SIGBUS and
    // SIGSEGV its address field is the faulting address.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // `try_with`: never a panic in a handler (it cannot fail for this key).
    let resumed = code > 0
        && GUARD
            .try_with(|g| g.resume(sig, code, addr))
            .unwrap_or(false);
    if !resumed {
        chain(sig, info, ctx);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

impl Guard {
    /// In the handler: if `addr` is inside this thread's guard, replace the guarded mapping
    /// from its page on by anonymous memory and note the fault.
    fn resume(&self, sig: i32, code: i32, addr: usize) -> bool {
        let (start, end) = (self.start.load(SeqCst), self.end.load(SeqCst));
        if !(start..end).contains(&addr) {
            return false;
        }
        let page = PAGE.load(SeqCst);
        let from = addr & !(page - 1);
        // The mapping covers whole pages: its last page ends at `end` rounded up.
        let to = end.div_ceil(page) * page;
        // Published before the pages change: a thread that starts an access of this range
        // later sees the replacement unsettled and does not access it, and one that started
        // before sees the sequence moved when it is done. Published after the mmap, a thread
        // preempting this one between the two could run its whole access over the anonymous
        // pages and see nothing.
        let seq = SEQ.fetch_add(1, SeqCst) + 1;
        let slot = &SLOTS[seq as usize % RING];
        slot.seq.store(0, SeqCst);
        slot.start.store(from, SeqCst);
        slot.end.store(to, SeqCst);
        slot.signal.store(sig, SeqCst);
        slot.code.store(code, SeqCst);
        slot.addr.store(addr, SeqCst);
        slot.settled.store(false, SeqCst);
        slot.owner.store(self as *const Guard as usize, SeqCst);
        slot.seq.store(seq, SeqCst);
        // SAFETY: `from..to` lies inside the guarded mapping, which the accessing code owns
        // and reaches only through raw pointers (see `fill`); MAP_FIXED replaces those pages
        // atomically and touches nothing else. mmap is a plain system call.
        let p = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                to - from,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            // Nothing was replaced: withdraw the notice.
            slot.seq.store(0, SeqCst);
            return false;
        }
        if self.signal.load(SeqCst) == 0 {
            self.code.store(code, SeqCst);
            self.addr.store(addr, SeqCst);
            self.seq.store(seq, SeqCst);
            self.signal.store(sig, SeqCst);
        }
        true
    }
}

/// A fault that is not ours: what would have happened without our handler.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let i = usize::from(sig == libc::SIGSEGV);
    let Some(prev) = PREV.get().map(|p| p[i]) else {
        return default_action(sig, info);
    };
    match prev.sa_sigaction {
        libc::SIG_DFL | libc::SIG_IGN => default_action(sig, info),
        h if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: an SA_SIGINFO handler has this signature; it was installed for `sig`.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(h) };
            f(sig, info, ctx)
        }
        h => {
            // SAFETY: a plain handler has this signature.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
            f(sig)
        }
    }
}

/// The default action: a fault the kernel raised comes again when the handler returns, now
/// with the default action (death, with a core); one sent by `kill` is raised again (blocked
/// while the handler runs, it is delivered on return).
fn default_action(sig: libc::c_int, info: *mut libc::siginfo_t) {
    // SAFETY: sigaction and raise are async-signal-safe; `info` is the kernel's.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
        if (*info).si_code <= 0 {
            libc::raise(sig);
        }
    }
}

/// Run `access`, which touches only `ptr..ptr + len`, with that range guarded: its value, or
/// the first fault it met (or one another thread met in the same range meanwhile). The range is
/// then poisoned from the fault on.
fn guarded<R>(ptr: *mut u8, len: usize, access: impl FnOnce() -> R) -> Result<R, MemFault> {
    install();
    let start = ptr as usize;
    let end = start.saturating_add(len);
    let before = SEQ.load(SeqCst);
    // Another thread is still accessing this mapping after a fault it met there: the pages
    // from the fault on are anonymous until it settles them. Not accessed.
    if let Some(r) = replaced_since(0, start, end, true) {
        return Err(r.fault(start, true));
    }
    GUARD.with(|g| {
        g.signal.store(0, SeqCst);
        g.start.store(start, SeqCst);
        g.end.store(end, SeqCst);
    });
    // The access stays between the guard's stores and its clearing.
    compiler_fence(SeqCst);
    let out = access();
    compiler_fence(SeqCst);
    let page = PAGE.load(SeqCst);
    let own = GUARD.with(|g| {
        g.start.store(0, SeqCst);
        g.end.store(0, SeqCst);
        let signal = g.signal.load(SeqCst);
        let addr = g.addr.load(SeqCst);
        (signal != 0).then(|| {
            let r = Replaced {
                start: addr & !(page - 1),
                end: end.div_ceil(page) * page,
                signal,
                code: g.code.load(SeqCst),
                addr,
                settled: false,
            };
            (r, g.seq.load(SeqCst))
        })
    });
    match own {
        Some((r, seq)) => Err(poison(r, seq, start)),
        // Another thread's fault replaced pages of this range while we accessed it.
        None if SEQ.load(SeqCst) != before => match replaced_since(before, start, end, false) {
            Some(r) => Err(r.fault(start, true)),
            None => Ok(out),
        },
        None => Ok(out),
    }
}

impl Replaced {
    /// The fault as a mapping starting at `base` sees it.
    fn fault(&self, base: usize, again: bool) -> MemFault {
        MemFault {
            signal: self.signal,
            code: self.code,
            offset: self.addr.saturating_sub(base) as u64,
            again,
        }
    }
}

/// A replacement published after `after` that overlaps `start..end` (only unsettled ones when
/// `unsettled`).
fn replaced_since(after: u64, start: usize, end: usize, unsettled: bool) -> Option<Replaced> {
    let now = SEQ.load(SeqCst);
    let first = after.max(now.saturating_sub(RING as u64)) + 1;
    (first..=now)
        .filter_map(|seq| SLOTS[seq as usize % RING].read(seq))
        .find(|r| r.start < end && start < r.end && !(unsettled && r.settled))
}

/// After an access that met fault `r` (ring number `seq`) in the mapping at `base`: note the
/// replaced range and make it inaccessible, so that later accesses fault there and report it;
/// the fault to report (the first one, when this is a later access meeting the poison).
fn poison(r: Replaced, seq: u64, base: usize) -> MemFault {
    let mut list = POISONED.lock().unwrap_or_else(|e| e.into_inner());
    let earlier = (r.signal == libc::SIGSEGV && r.code == SEGV_ACCERR)
        .then(|| {
            list.iter()
                .find(|p| (p.start..p.end).contains(&r.addr))
                .copied()
        })
        .flatten();
    let fault = match earlier {
        Some(p) => p.fault(base, true),
        None => {
            // A range noted before at these addresses belonged to a mapping since unmapped.
            list.retain(|p| !(p.start < r.end && r.start < p.end));
            if list.len() >= MAX_POISONED {
                list.remove(0);
            }
            list.push(r);
            r.fault(base, false)
        }
    };
    drop(list);
    // SAFETY: the range is the replaced part of the caller's mapping, anonymous now; nothing
    // reaches it until the next guarded access, which faults there and is resumed.
    unsafe {
        libc::mprotect(
            r.start as *mut libc::c_void,
            r.end - r.start,
            libc::PROT_NONE,
        );
    }
    let slot = &SLOTS[seq as usize % RING];
    if slot.seq.load(SeqCst) == seq {
        slot.settled.store(true, SeqCst);
    }
    // A second fault in the same access (another thread's poison landing in the range this one
    // was still accessing) published a slot of its own, inside the range just made
    // inaccessible: settled too, or a later mapping at those addresses would be refused as
    // still being replaced.
    let me = GUARD.with(|g| g as *const Guard as usize);
    for s in &SLOTS {
        if s.owner.load(SeqCst) == me && !s.settled.load(SeqCst) {
            s.settled.store(true, SeqCst);
        }
    }
    fault
}

/// A `fill` or `check` (`what`: "writing", "reading") of a `len`-byte mapping that met `f`: the
/// op's result, and in words what happened to the mapping.
pub(super) fn done(
    f: &MemFault,
    len: usize,
    what: &str,
) -> (super::OpResult, Option<super::outcome::Detail>) {
    let text = if f.again {
        format!(
            "the mapping was replaced from offset {:#x} after that fault: from there on the op \
             was not {what} the buffer's memory",
            f.offset
        )
    } else {
        format!(
            "{} ({}) {what} at offset {:#x} of {len} bytes; the mapping is replaced from there \
             on",
            signal_name(f.signal),
            code_name(f.signal, f.code),
            f.offset
        )
    };
    (
        super::OpResult::fault(f),
        Some(super::outcome::Detail::Text(text.into())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{ExecOptions, Executor, OpResult, Resource};
    use crate::program::{text, Handle, ResKind};
    use std::os::fd::FromRawFd;

    fn page() -> usize {
        // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
    }

    /// A shared mapping of `pages` pages of a memfd, the memfd then cut to its first `keep`
    /// pages: accessing the others makes the kernel raise SIGBUS (BUS_ADRERR), as a driver's
    /// fault handler would. The file stays open for the test to read.
    fn cut_mapping(pages: usize, keep: usize) -> (memmap2::MmapRaw, std::fs::File) {
        // SAFETY: memfd_create with a valid name; the fd is new and owned by the File.
        let f = unsafe {
            let fd = libc::memfd_create(c"m2mfuzz-memfault-test".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            std::fs::File::from_raw_fd(fd)
        };
        f.set_len((pages * page()) as u64).unwrap();
        let m = memmap2::MmapOptions::new()
            .len(pages * page())
            .map_raw(&f)
            .unwrap();
        f.set_len((keep * page()) as u64).unwrap();
        (m, f)
    }

    const M0: Handle = Handle {
        kind: ResKind::Mapping,
        id: 0,
    };

    fn sigbus_at(offset: usize, again: bool) -> OpResult {
        OpResult::Fault {
            signal: libc::SIGBUS as u8,
            code: libc::BUS_ADRERR,
            offset: offset as u64,
            again,
        }
    }

    #[test]
    fn a_fault_in_a_mapping_is_the_op_s_outcome_and_the_program_goes_on() {
        let prog = text::parse(
            "# m2mfuzz program v1\nfill m0 byte=0xa5\ncheck m0 byte=0xa5\nsleep ms=0\n\
             check m0 byte=0\n",
        )
        .unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        let (m, _file) = cut_mapping(2, 0);
        ex.bind(M0, Resource::Map(m.into(), None));
        let out = ex.run(&prog);
        let results: Vec<_> = out.iter().map(|o| o.result.clone()).collect();
        assert_eq!(
            results,
            [
                sigbus_at(0, false),
                // The mapping was replaced: the check says so instead of counting zeros.
                sigbus_at(0, true),
                OpResult::Ok { value: 0 },
                sigbus_at(0, true),
            ]
        );
        assert_eq!(
            out[0].result.to_string(),
            "FAULT (SIGBUS BUS_ADRERR at offset 0x0)"
        );
        assert_eq!(
            out[1].result.to_string(),
            "FAULT again (SIGBUS BUS_ADRERR at offset 0x0)"
        );
        let detail = out[0].detail_text().unwrap();
        assert!(
            detail.starts_with("SIGBUS (BUS_ADRERR) writing at offset 0x0 of"),
            "{detail}"
        );
        let v = serde_json::to_value(&out[1]).unwrap();
        assert_eq!(
            v["result"],
            serde_json::json!({"result": "fault", "signal": libc::SIGBUS, "code": 2, "offset": 0, "again": true})
        );
        // The executor is still usable, with a fresh mapping of the same kind.
        let (m, _file) = cut_mapping(1, 0);
        ex.bind(M0, Resource::Map(m.into(), None));
        assert_eq!(ex.run(&prog)[0].result, sigbus_at(0, false));
    }

    #[test]
    fn the_pages_before_the_fault_are_the_buffer_s_and_the_rest_stays_poisoned() {
        let (m, file) = cut_mapping(3, 1);
        let p = page();
        // SAFETY: the test owns the whole mapping and makes no reference into it.
        unsafe {
            assert_eq!(
                differing(m.as_ptr(), m.len(), 0),
                Err(MemFault {
                    signal: libc::SIGBUS,
                    code: libc::BUS_ADRERR,
                    offset: p as u64,
                    again: false
                })
            );
            let again = fill(m.as_mut_ptr(), m.len(), 0x5a).unwrap_err();
            assert_eq!((again.offset, again.again), (p as u64, true));
            // The first page is the file's: the fill reached it before the poison.
            let mut first = vec![0u8; p];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut first, 0).unwrap();
            assert!(first.iter().all(|&b| b == 0x5a));
            assert_eq!(
                differing(m.as_ptr(), p, 0x5a),
                Ok(0),
                "page 0 is still live"
            );
        }
    }

    #[test]
    fn threads_fault_at_once_each_on_its_own_mapping_or_on_a_shared_one() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let prog = text::parse(
                        "# m2mfuzz program v1\nfill m0 byte=0x11\ncheck m0 byte=0x11\n",
                    )
                    .unwrap();
                    let mut ex = Executor::new(ExecOptions::default());
                    for _ in 0..20 {
                        let (m, _file) = cut_mapping(4, 2);
                        ex.bind(M0, Resource::Map(m.into(), None));
                        let out = ex.run(&prog);
                        assert_eq!(out[0].result, sigbus_at(2 * page(), false));
                        assert_eq!(out[1].result, sigbus_at(2 * page(), true));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // One mapping, several threads: each either meets the fault itself or learns of the
        // replacement another thread made; none reads the anonymous page as the buffer.
        let (m, _file) = cut_mapping(64, 32);
        let (addr, len) = (m.as_mut_ptr() as usize, m.len());
        let faults: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    // SAFETY: the mapping outlives the threads (joined below); no references.
                    unsafe { fill(addr as *mut u8, len, 0x22) }
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        for f in faults {
            let f = f.unwrap_err();
            assert_eq!(f.offset, 32 * page() as u64, "{f:?}");
            // A thread that starts its access after another poisoned the range meets the
            // poison (SIGSEGV) and says it is the same fault again.
            assert!(f.signal == libc::SIGBUS || f.again, "{f:?}");
        }
        drop(m);
    }

    /// The child of [`a_fault_outside_a_guarded_access_still_kills`], run as a test of its own
    /// binary: meets a fault that must kill it. Without the variable it does nothing.
    #[test]
    fn memfault_child() {
        let Ok(how) = std::env::var("M2MFUZZ_MEMFAULT_CHILD") else {
            return;
        };
        // SAFETY: no core file from the deaths below.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
        let (m, _file) = cut_mapping(1, 0);
        // The handler is installed and catches what is guarded.
        // SAFETY: the test owns the mapping.
        assert!(unsafe { fill(m.as_mut_ptr(), m.len(), 1) }.is_err());
        println!("guarded fault caught");
        let (other, _other_file) = cut_mapping(1, 0);
        let p = other.as_mut_ptr();
        // SAFETY: deliberately faulting writes (the process is meant to die of them).
        unsafe {
            match how.as_str() {
                "unguarded" => p.write_volatile(1),
                // Guarded, but at an address outside the guard.
                "outside" => {
                    let (fresh, _f) = cut_mapping(1, 1);
                    let _ = guarded(fresh.as_mut_ptr(), fresh.len(), || p.write_volatile(1));
                }
                "segv" => (8 as *mut u8).write_volatile(1),
                _ => panic!("{how}"),
            }
        }
        println!("survived");
    }

    #[test]
    fn a_fault_outside_a_guarded_access_still_kills() {
        use std::os::unix::process::ExitStatusExt;
        for (how, signal) in [
            ("unguarded", libc::SIGBUS),
            ("outside", libc::SIGBUS),
            ("segv", libc::SIGSEGV),
        ] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "exec::memfault::tests::memfault_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("M2MFUZZ_MEMFAULT_CHILD", how)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("guarded fault caught"), "{how}: {stdout}");
            assert!(!stdout.contains("survived"), "{how}: {stdout}");
            assert_eq!(out.status.signal(), Some(signal), "{how}: {:?}", out.status);
        }
    }
}
