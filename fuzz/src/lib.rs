//! What every m2mfuzz fuzz target shares: the harness for its driver, libFuzzer's extra
//! counters, into which the kernel edges (KCOV) of each execution are hashed, and the program
//! mutator and crossover libFuzzer calls instead of its byte mutations.
use m2mfuzz::fuzz::{mutate, Harness};
use m2mfuzz::profile::DriverProfile;
use std::sync::{Mutex, OnceLock};

/// Counter slots for kernel edges.
const SLOTS: usize = 1 << 16;

/// libFuzzer reads every byte of this section as an 8-bit coverage counter, cleared before each
/// input and collected after it (FuzzerExtraCounters.cpp).
#[used]
#[link_section = "__libfuzzer_extra_counters"]
static mut KERNEL_EDGES: [u8; SLOTS] = [0; SLOTS];

static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);

/// The driver's profile, for the mutator (which must not wait for an input's lock).
static PROFILE: OnceLock<&'static DriverProfile> = OnceLock::new();

/// `M2MFUZZ_MUTATOR=bytes`: libFuzzer's own byte mutations (the baseline of the benchmarks).
static BYTES_ONLY: OnceLock<bool> = OnceLock::new();

/// Set up the harness for `driver` before the first input, on libFuzzer's main thread (which
/// then runs every input: remote coverage is tied to it). A missing node exits here, before
/// libFuzzer would count the exit as a crash of some input.
pub fn init(driver: &str) {
    let h = Harness::new(driver);
    let _ = PROFILE.set(h.profile());
    let bytes = std::env::var("M2MFUZZ_MUTATOR").as_deref() == Ok("bytes");
    let _ = BYTES_ONLY.set(bytes);
    eprintln!(
        "m2mfuzz: mutations: {}",
        if bytes {
            "libFuzzer's byte mutations (M2MFUZZ_MUTATOR=bytes)"
        } else {
            "of programs (an op removed, duplicated, inserted, an argument, handle or thread \
             changed; crossover splices ops); M2MFUZZ_MUTATOR=bytes for libFuzzer's"
        }
    );
    *HARNESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
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
        // The hash's high bits: a multiplicative hash mixes into them, not into the low ones.
        let i = (edge >> 48) as usize % SLOTS;
        // Whether an edge ran, not how often: how many times a job's or a retry's code runs
        // varies from run to run of the same program (timing), and libFuzzer would count each
        // new count bucket as new coverage.
        // SAFETY: libFuzzer runs inputs one at a time on this thread; `i` is in bounds.
        unsafe {
            *counters.add(i) = 1;
        }
    });
    if findings.is_empty() {
        return;
    }
    for (f, dir) in &h.keep(data, &findings) {
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

/// libFuzzer's custom mutator: the input's program mutated once, written back as program text;
/// libFuzzer's byte mutation when no program mutation applies or fits in `max_size`.
pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let program = match (PROFILE.get(), BYTES_ONLY.get()) {
        (Some(p), Some(false)) => mutate::mutate_input(&data[..size], max_size, seed, p),
        _ => None,
    };
    match program {
        Some(text) => {
            data[..text.len()].copy_from_slice(text.as_bytes());
            text.len()
        }
        None => libfuzzer_sys::fuzzer_mutate(data, size, max_size),
    }
}

/// libFuzzer's custom crossover: a run of the second input's ops spliced into the first's
/// program; 0 (no crossover) when none applies or fits.
pub fn crossover(a: &[u8], b: &[u8], out: &mut [u8], seed: u32) -> usize {
    let (Some(p), Some(false)) = (PROFILE.get(), BYTES_ONLY.get()) else {
        return 0;
    };
    match mutate::crossover_inputs(a, b, out.len(), seed, p) {
        Some(text) => {
            out[..text.len()].copy_from_slice(text.as_bytes());
            text.len()
        }
        None => 0,
    }
}
