//! The libFuzzer harness behind the `fuzz/` targets: fuzz bytes → a driver-aware program → the
//! supervised executor on that driver's node → the oracles, with the kernel's coverage of the
//! execution (KCOV, per-thread and remote) handed back as hashed edges for libFuzzer's extra
//! counters. Findings are stored like stress findings (one directory per signature, the first
//! input that showed it kept beside its program, hit counts) and fuzzing goes on.
pub mod mutate;

use crate::exec::supervise::run_supervised_with;
use crate::exec::ExecOptions;
use crate::kcov::{self, Area};
use crate::oracle::{Finding, OracleOptions, OracleSet};
use crate::profile::driver::by_name;
use crate::profile::DriverProfile;
use crate::program::generate::from_bytes;
use crate::program::Program;
use crate::stress::store::{FindingMeta, RunDir};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// KCOV buffer size in PCs, per area.
const WORDS: usize = 1 << 20;
/// Size of the bitmap that counts distinct kernel edges (2 MiB; collisions undercount slightly).
const SEEN_BITS: usize = 1 << 24;

/// How kernel coverage is used (`M2MFUZZ_KCOV`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guidance {
    /// Collect and feed it to libFuzzer (default).
    On,
    /// Collect and count it, but do not feed it (the benchmark's baseline).
    Observe,
    /// Do not collect.
    Off,
}

impl Guidance {
    /// From `M2MFUZZ_KCOV` (`on`, `observe`, `off`; unset is `on`).
    pub fn from_env() -> Guidance {
        match std::env::var("M2MFUZZ_KCOV").as_deref() {
            Ok("off") | Ok("0") => Guidance::Off,
            Ok("observe") => Guidance::Observe,
            _ => Guidance::On,
        }
    }
}

struct Coverage {
    /// Remote coverage (m2m jobs in kworkers); enabled on the dispatching thread.
    remote: Area,
    /// Per-thread coverage; each executor thread enables it for itself.
    thread: Arc<Area>,
}

/// One fuzz target's state, created on the first input.
pub struct Harness {
    profile: &'static DriverProfile,
    cov: Option<Coverage>,
    guidance: Guidance,
    /// Kernel edges seen so far, as a bitmap of edge hashes (a HashSet costs too much per PC).
    seen: Vec<u64>,
    distinct: usize,
    execs: u64,
    /// Seconds in the executor, in the oracles' conclusion, and in coverage collection.
    secs: [f64; 3],
    last_note: Instant,
    edges_file: Option<std::path::PathBuf>,
    /// The ledger's tracefs instance, kept from input to input (removed when the harness drops).
    trace: crate::oracle::TraceKeeper,
    /// Where findings are stored (`M2MFUZZ_FINDINGS`).
    store: RunDir,
    /// Module parameters the boot set, recorded as each stored program's `# switch:`.
    switches: Vec<String>,
    /// Inputs that showed a finding, and findings stored new, in this process.
    finding_inputs: u64,
    new_findings: u64,
    started: Instant,
}

impl Harness {
    /// A harness for `driver` (a profile name: `rga`, `hantro`, `vim2m`, `visl`, `vicodec`).
    /// Must be created on the thread that will call [`Harness::run`]: remote coverage is tied to
    /// it and to the executor threads it spawns.
    pub fn new(driver: &str) -> Harness {
        let profile = by_name(driver).unwrap_or_else(|| panic!("no driver profile `{driver}`"));
        // A missing node is the setup's fault, not the input's: exit rather than let libFuzzer
        // save a crash artifact for it.
        let selector = profile.node_selector();
        let var = crate::device::override_var(&selector);
        match crate::device::resolve(&crate::program::Node::Driver(selector.clone())) {
            Ok(path) => eprintln!(
                "m2mfuzz: {driver} programs on {} ({selector}; {var} overrides)",
                path.display()
            ),
            Err(e) => {
                eprintln!("m2mfuzz: no {selector} node: {e:#}; set {var}=/dev/videoN");
                std::process::exit(2);
            }
        }
        let mut guidance = Guidance::from_env();
        let cov = if guidance == Guidance::Off {
            eprintln!("m2mfuzz: M2MFUZZ_KCOV=off: running without kernel coverage");
            None
        } else {
            match Self::open_coverage() {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("m2mfuzz: no kernel coverage ({e:#}); running without it");
                    guidance = Guidance::Off;
                    None
                }
            }
        };
        if cov.is_some() {
            eprintln!(
                "m2mfuzz: kernel coverage from KCOV (per-thread and remote), guidance {guidance:?}"
            );
        }
        let dir: PathBuf = std::env::var_os("M2MFUZZ_FINDINGS")
            .map(Into::into)
            .unwrap_or_else(|| PathBuf::from("m2mfuzz-findings").join(driver));
        let store = match RunDir::findings_only(&dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "m2mfuzz: cannot keep findings in {}: {e:#}; set M2MFUZZ_FINDINGS=DIR to a \
                     writable directory",
                    dir.display()
                );
                std::process::exit(2);
            }
        };
        let known = store.known.lock().unwrap().len();
        eprintln!(
            "m2mfuzz: findings are stored in {}/findings ({known} there already; M2MFUZZ_FINDINGS \
             overrides) and fuzzing goes on after each",
            dir.display()
        );
        let switches = crate::corpus::cmdline_switches(
            &std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
            std::path::Path::new("/sys/module"),
        );
        Harness {
            profile,
            cov,
            guidance,
            seen: vec![0; SEEN_BITS / 64],
            distinct: 0,
            execs: 0,
            secs: [0.0; 3],
            last_note: Instant::now(),
            edges_file: std::env::var_os("M2MFUZZ_EDGES_FILE").map(Into::into),
            trace: Default::default(),
            store,
            switches,
            finding_inputs: 0,
            new_findings: 0,
            started: Instant::now(),
        }
    }

    /// Store the findings of one input (the input that ran last, as [`Harness::run`]'s number
    /// for it): a new signature gets a directory with `input.bin` (these bytes), its decoded
    /// program (every finding of the input as `# expect:`, the boot's switches as `# switch:`)
    /// and the evidence; a known one gets its hit count raised. A write that fails is reported
    /// and counted, and fuzzing goes on. Returns the findings stored new, each with its
    /// directory.
    pub fn keep(&mut self, data: &[u8], findings: &[Finding]) -> Vec<(Finding, PathBuf)> {
        let mut new = Vec::new();
        if findings.is_empty() {
            return new;
        }
        self.finding_inputs += 1;
        let mut program = self.program(data);
        if !self.switches.is_empty() {
            program.set_header("switch", &self.switches.join(" "));
        }
        let mut expects: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
        expects.sort();
        expects.dedup();
        for e in &expects {
            program.add_header("expect", e);
        }
        let at = self.started.elapsed().as_secs_f64();
        for f in findings {
            let meta = FindingMeta::of(f, at, self.execs, &self.switches);
            let r = self
                .store
                .finding(f, meta, &program, &[], &[("input.bin", data)]);
            if self.store.keep("a finding", r) == Some(true) {
                self.new_findings += 1;
                new.push((f.clone(), self.store.finding_dir(&f.signature)));
            }
        }
        new
    }

    fn open_coverage() -> anyhow::Result<Coverage> {
        let remote = Area::open(WORDS)?;
        remote.enable_remote(kcov::common_handle())?;
        let thread = Arc::new(Area::open(WORDS)?);
        Ok(Coverage { remote, thread })
    }

    /// Distinct kernel edges seen so far.
    pub fn kernel_edges(&self) -> usize {
        self.distinct
    }

    /// The program these bytes decode to ([`mutate::decode`]: program text as it is, other
    /// bytes through the generator).
    pub fn program(&self, data: &[u8]) -> Program {
        mutate::decode(data, self.profile)
    }

    /// The driver profile the harness runs programs for.
    pub fn profile(&self) -> &'static DriverProfile {
        self.profile
    }

    /// Run one input. Each kernel edge it covered is passed to `feed` (when guiding); the
    /// findings in the code under test are returned.
    pub fn run(&mut self, data: &[u8], feed: &mut dyn FnMut(u64)) -> Vec<Finding> {
        let prog = Arc::new(self.program(data));
        let oracle_opts = OracleOptions {
            grace: Duration::from_millis(100),
            ..Default::default()
        };
        let margin = oracle_opts.fence_deadline + Duration::from_secs(10);
        let oracles = OracleSet::keeping(oracle_opts, &mut self.trace);
        if let Some(c) = &self.cov {
            c.remote.reset();
            c.thread.reset();
        }
        let thread = self.cov.as_ref().map(|c| c.thread.clone());
        let on_thread = move || {
            if let Some(t) = thread {
                // The previous executor thread releases the area as it exits, which may be a
                // moment after it reported; EBUSY for longer means it is stuck in the kernel.
                for _ in 0..100 {
                    if t.enable_this_thread().is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        // Short waits (as `from_bytes` generates them): an input's time goes into ops, not into
        // sleeping; a fence still pending after them is judged by the hang oracle's deadline.
        let exec = ExecOptions {
            max_wait: Duration::from_millis(150),
            default_wait: Duration::from_millis(150),
            ..Default::default()
        };
        let t0 = Instant::now();
        let result = run_supervised_with(prog.clone(), exec, oracles, margin, on_thread);
        let t1 = Instant::now();
        let findings = match result {
            Ok((_, mut oracles)) => oracles.finish().findings,
            Err(run) => {
                // What the oracles saw before the op stuck is kept (a WARN that preceded it).
                let mut v = run.with_observer(|o| o.so_far()).findings;
                v.push(Finding::stuck(&prog.ops[run.stuck.index], &run.stuck));
                // The stuck thread keeps its KCOV area enabled: the next inputs get a new one
                // (the stuck thread's is left to it) so coverage goes on with fuzzing.
                if let Some(c) = self.cov.as_mut() {
                    match Area::open(WORDS) {
                        Ok(a) => c.thread = Arc::new(a),
                        Err(e) => eprintln!(
                            "m2mfuzz: no new KCOV area after a stuck op ({e:#}): per-thread \
                             coverage stops here, remote coverage goes on"
                        ),
                    }
                }
                v
            }
        };
        let t2 = Instant::now();
        self.execs += 1;
        if let Some(c) = &self.cov {
            for area in [&*c.thread, &c.remote] {
                for e in kcov::edges(&area.pcs()) {
                    if self.guidance == Guidance::On {
                        feed(e);
                    }
                    let bit = (e >> 40) as usize % SEEN_BITS;
                    let (w, m) = (bit / 64, 1u64 << (bit % 64));
                    if self.seen[w] & m == 0 {
                        self.seen[w] |= m;
                        self.distinct += 1;
                    }
                }
            }
        }
        self.secs[0] += (t1 - t0).as_secs_f64();
        self.secs[1] += (t2 - t1).as_secs_f64();
        self.secs[2] += t2.elapsed().as_secs_f64();
        self.note_edges();
        findings
    }

    fn note_edges(&mut self) {
        if let (Some(f), true) = (&self.edges_file, self.cov.is_some()) {
            let _ = std::fs::write(f, format!("{} {}\n", self.execs, self.distinct));
        }
        if self.last_note.elapsed() > Duration::from_secs(10) {
            self.last_note = Instant::now();
            let ms = |s: f64| s * 1000.0 / self.execs as f64;
            eprintln!(
                "m2mfuzz: {} execs, {} kernel edges; per exec: {:.0} ms ops, {:.0} ms oracles, {:.0} ms coverage; \
                 findings: {} new, on {} inputs",
                self.execs,
                self.distinct,
                ms(self.secs[0]),
                ms(self.secs[1]),
                ms(self.secs[2]),
                self.new_findings,
                self.finding_inputs
            );
        }
    }
}

/// FNV-1a of an input: stable file names for seeds.
pub fn content_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Seed inputs for a target: from a fixed PRNG stream of candidate byte strings, greedily keep
/// the one whose decoded program adds the most (op name, queue-or-not) kinds not yet covered,
/// until `count` are kept or nothing new is added. Deterministic, so the committed seeds can be
/// regenerated.
pub fn seed_inputs(profile: &'static DriverProfile, count: usize) -> Vec<Vec<u8>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x6d32_6d66);
    let candidates: Vec<Vec<u8>> = (0..400)
        .map(|_| {
            let len = rng.gen_range(64..2048);
            (0..len).map(|_| rng.gen()).collect()
        })
        .collect();
    let kinds = |b: &[u8]| -> HashSet<String> {
        from_bytes(b, profile)
            .ops
            .iter()
            .map(|op| {
                op.to_string()
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let sets: Vec<HashSet<String>> = candidates.iter().map(|c| kinds(c)).collect();
    let mut covered = HashSet::new();
    let mut out = Vec::new();
    while out.len() < count {
        let best = (0..candidates.len())
            .max_by_key(|&i| sets[i].difference(&covered).count())
            .filter(|&i| sets[i].difference(&covered).count() > 0);
        let Some(i) = best else { break };
        covered.extend(sets[i].iter().cloned());
        out.push(candidates[i].clone());
    }
    out
}
