//! What every m2mfuzz fuzz target shares: the harness for its driver, and libFuzzer's extra
//! counters, into which the kernel edges (KCOV) of each execution are hashed.
use m2mfuzz::fuzz::Harness;
use std::sync::Mutex;

/// Counter slots for kernel edges.
const SLOTS: usize = 1 << 16;

/// libFuzzer reads every byte of this section as an 8-bit coverage counter, cleared before each
/// input and collected after it (FuzzerExtraCounters.cpp).
#[used]
#[link_section = "__libfuzzer_extra_counters"]
static mut KERNEL_EDGES: [u8; SLOTS] = [0; SLOTS];

static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);

/// Set up the harness for `driver` before the first input, on libFuzzer's main thread (which
/// then runs every input: remote coverage is tied to it). A missing node exits here, before
/// libFuzzer would count the exit as a crash of some input.
pub fn init(driver: &str) {
    *HARNESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(Harness::new(driver));
    // libFuzzer ends with exit(), which drops no Rust static: drop the harness then, so its
    // tracefs instance does not stay behind tracing (an abort on a finding still leaves it).
    // SAFETY: registers a plain function with no arguments.
    unsafe { libc::atexit(drop_harness) };
}

extern "C" fn drop_harness() {
    let _ = std::panic::catch_unwind(|| {
        // Not when exit() came while an input held the lock (a signal handler's exit).
        if let Ok(mut g) = HARNESS.try_lock() {
            *g = None;
        }
    });
}

/// Run one fuzz input. Its findings are stored in the harness's findings directory (a new
/// signature with this input as `input.bin`; `m2mfuzz decode` turns it back into a program) and
/// fuzzing goes on. `M2MFUZZ_ABORT_ON_FINDING=1` aborts on the first finding instead, so
/// libFuzzer keeps the input as a crash artifact (for `-minimize_crash`).
pub fn run(data: &[u8]) {
    let mut guard = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    let h = guard.as_mut().expect("init ran first");
    let counters = std::ptr::addr_of_mut!(KERNEL_EDGES) as *mut u8;
    let findings = h.run(data, &mut |edge| {
        let i = (edge as usize) % SLOTS;
        // SAFETY: libFuzzer runs inputs one at a time on this thread; `i` is in bounds.
        unsafe {
            let c = counters.add(i);
            *c = (*c).saturating_add(1);
        }
    });
    if findings.is_empty() {
        return;
    }
    let kept = h.keep(data, &findings);
    for (f, dir) in &kept.new {
        eprintln!(
            "m2mfuzz: new finding on input ({} bytes), stored in {}:\n{}\n{}\nFINDING: {}: {}",
            data.len(),
            dir.display(),
            h.program(data),
            f.evidence,
            f.kind,
            f.title
        );
    }
    if std::env::var("M2MFUZZ_ABORT_ON_FINDING").as_deref() == Ok("1") {
        let f = &findings[0];
        panic!("m2mfuzz finding: {}: {}", f.kind, f.title);
    }
}
