//! The stress engine: N worker threads run generated programs concurrently on their own m2m
//! contexts, in epochs. At each epoch's end every worker has released its resources, so the
//! kernel-wide oracles (kmsg, fence ledger) read evidence at a quiet point and attribute it to the
//! epoch's programs; per-program oracles (hangs, stale reads) attribute to one program. Findings
//! go to the run directory as they come: nothing waits for the end of the run.
pub mod limit;
pub mod progress;
pub mod recover;
pub mod store;
pub mod worker;

use crate::exec::ExecOptions;
use crate::oracle::ledger::{stable_timeline, Latency, Ledger};
use crate::oracle::Verdict;
use crate::oracle::{Finding, Kind, OracleOptions, OracleSet};
use crate::profile::stress::StressProfile;
use crate::program::{concat, Program};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use store::{FindingMeta, ProgramRef, RunDir};
use worker::{ProgramRun, Worker};

/// Set by SIGINT/SIGTERM: workers finish their program, the epoch concludes, the run ends.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Stop cleanly on the first Ctrl-C; a second one kills (the handler resets itself).
pub fn install_stop_handler() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESETHAND,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(s, &act) };
    }
}

/// Whether the findings stored so far end the run (`--stop-on-finding`, `--until`).
fn should_stop(
    known: &std::collections::BTreeMap<String, store::FindingMeta>,
    stop_on_finding: bool,
    until: Option<&str>,
) -> bool {
    match until {
        Some(text) => known
            .values()
            .any(|m| format!("{}: {}", m.kind, m.title).contains(text)),
        None => stop_on_finding && !known.is_empty(),
    }
}

/// Command-line choices that override the profile.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run directory.
    pub out: PathBuf,
    /// Base seed.
    pub seed: Option<u64>,
    /// Duration.
    pub duration: Option<Duration>,
    /// Worker count (0: one per CPU).
    pub workers: Option<u32>,
    /// Extra module parameters.
    pub switches: Vec<String>,
    /// Stop at the first finding.
    pub stop_on_finding: bool,
    /// Stop once a finding whose `kind: title` contains this text is stored: the other findings
    /// on the way are kept, and the run goes on past them.
    pub until: Option<String>,
    /// Progress lines even on a terminal (no carriage-return redraw).
    pub plain: bool,
    /// The nodes' limit in jobs a second, for the duty cycle (from `m2mfuzz limit`).
    pub limit: Option<f64>,
    /// Measure the limit before the run: each target node's built-in job loop for this long,
    /// summed over the nodes (a target whose driver the loop cannot drive is left out, and
    /// said so).
    pub measure_limit: Option<Duration>,
}

/// Totals of a run (`RUN/summary.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Wall seconds.
    pub seconds: f64,
    /// Epochs concluded.
    pub epochs: u64,
    /// Programs run.
    pub programs: u64,
    /// Ops that ran (ioctls, mmaps, polls, closes…).
    pub ops: u64,
    /// Ops that failed with an errno.
    pub errors: u64,
    /// CAPTURE buffers dequeued done (not ERROR).
    pub frames: u64,
    /// CAPTURE buffers the drivers completed (`vb2_buf_done`, DONE and ERROR): jobs that ended.
    pub capture_done: u64,
    /// The nodes' limit in jobs a second (`--limit`, `--measure-limit`): the duty cycle is
    /// `capture_done` a second over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_jobs_per_s: Option<f64>,
    /// Trace event counts summed over epochs.
    pub events: BTreeMap<String, u64>,
    /// Producer (vb2) fences published.
    pub fences_published: u64,
    /// Producer fences signalled.
    pub fences_signalled: u64,
    /// Their publish-to-signal latency over the epochs (the quantiles are the worst epoch's).
    pub fence_latency: Latency,
    /// Kernel reports in the code under test / elsewhere.
    pub splats_under_test: u64,
    /// Kernel reports attributed elsewhere (not findings).
    pub splats_elsewhere: u64,
    /// Distinct findings by kind.
    pub findings: BTreeMap<String, u64>,
    /// Trace ring-buffer losses (counts are low when non-zero).
    pub trace_lost: u64,
    /// Writes to the run directory that failed (the run went on without them).
    pub store_errors: u64,
}

/// One epoch's statistics: a line of `RUN/epochs.jsonl`, read back by the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EpochStats {
    /// Epoch number.
    pub epoch: u64,
    /// The drain after the last epoch: late events, not an epoch of its own.
    #[serde(rename = "final")]
    pub final_drain: bool,
    /// Written by `stress --recover`: the kernel reports a dead run left only on its console.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
    /// Seconds from the run's start.
    pub start_s: f64,
    /// Seconds from the run's start.
    pub end_s: f64,
    /// Programs run.
    pub programs: u64,
    /// Ops that ran.
    pub ops: u64,
    /// Ops that failed with an errno.
    pub errors: u64,
    /// Ops that timed out.
    pub timeouts: u64,
    /// CAPTURE buffers dequeued done (not ERROR).
    pub frames: u64,
    /// CAPTURE buffers the drivers completed (`vb2_buf_done` of CAPTURE, DONE and ERROR).
    pub capture_done: u64,
    /// Trace event counts.
    pub events: BTreeMap<String, u64>,
    /// Producer fences published.
    pub fences_published: u64,
    /// Producer fences published and signalled.
    pub fences_signalled: u64,
    /// Their publish-to-signal latency, from the trace's timestamps (absent from runs made
    /// before it was recorded, and when the trace saw none).
    #[serde(skip_serializing_if = "latency_is_empty")]
    pub fence_latency: Latency,
    /// Kernel reports in the code under test.
    pub splats_under_test: u64,
    /// Titles of kernel reports elsewhere.
    pub splats_elsewhere: Vec<String>,
    /// Trace losses.
    pub trace_lost: u64,
    /// Fences other than checked release fences still alive at the epoch's end, as
    /// `driver/timeline` (see `Ledger::other_alive`).
    pub fences_alive: Vec<String>,
    /// Oracle notes.
    pub notes: Vec<String>,
    /// Findings first seen in this epoch.
    pub new_findings: Vec<String>,
}

fn latency_is_empty(l: &Latency) -> bool {
    l.count == 0
}

impl EpochStats {
    fn new(epoch: u64, start_s: f64, end_s: f64, runs: &[ProgramRun], v: &Verdict) -> EpochStats {
        let sum = |f: fn(&ProgramRun) -> u64| runs.iter().map(f).sum();
        EpochStats {
            epoch,
            final_drain: false,
            recovered: false,
            start_s,
            end_s,
            programs: runs.len() as u64,
            ops: sum(|r| r.ops),
            errors: sum(|r| r.errors),
            timeouts: sum(|r| r.timeouts),
            frames: sum(|r| r.frames),
            capture_done: v.ledger.capture_done,
            events: v.ledger.counts.clone(),
            fences_published: v.ledger.producer_published(),
            fences_signalled: v.ledger.producer_signalled(),
            fence_latency: v.ledger.producer_latency(),
            splats_under_test: v.findings.iter().filter(|f| f.kind == Kind::Splat).count() as u64,
            splats_elsewhere: v.elsewhere.iter().map(|f| f.title.clone()).collect(),
            trace_lost: v.ledger.lost,
            fences_alive: v
                .ledger
                .other_alive()
                .map(|f| format!("{}/{}", f.driver, stable_timeline(&f.timeline)))
                .collect(),
            notes: v.notes.clone(),
            new_findings: Vec::new(),
        }
    }
}

impl Totals {
    /// Add one epoch (or the final drain) to the totals.
    pub fn add(&mut self, e: &EpochStats) {
        self.seconds = self.seconds.max(e.end_s);
        self.epochs += u64::from(!e.final_drain);
        self.programs += e.programs;
        self.ops += e.ops;
        self.errors += e.errors;
        self.frames += e.frames;
        self.capture_done += e.capture_done;
        for (k, n) in &e.events {
            *self.events.entry(k.clone()).or_default() += n;
        }
        self.fences_published += e.fences_published;
        self.fences_signalled += e.fences_signalled;
        self.fence_latency.add(&e.fence_latency);
        self.splats_under_test += e.splats_under_test;
        self.splats_elsewhere += e.splats_elsewhere.len() as u64;
        self.trace_lost += e.trace_lost;
    }
}

/// A leak the ledger suggested at one epoch's end; confirmed only if a later epoch does not
/// show the fence signalled / freed after all (RCU-delayed frees, a late signal).
struct PendingLeak {
    finding: Finding,
    epoch: u64,
    programs: Vec<(ProgramRef, Program)>,
}

impl PendingLeak {
    /// Whether a later ledger shows the fence signalled (or, for "never freed", freed) after all.
    fn resolved_by(&self, ledger: &Ledger) -> bool {
        let never_freed = self.finding.title.contains("never freed");
        self.finding
            .fence_key
            .and_then(|k| ledger.fences.get(&k))
            .is_some_and(|f| if never_freed { f.destroyed } else { f.signaled })
    }
}

/// Run a stress profile to its end (duration, Ctrl-C, or the first finding if asked).
pub fn run(profile: &StressProfile, opts: &RunOptions) -> Result<Totals> {
    let seed = opts.seed.or(profile.seed).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let duration = opts.duration.unwrap_or(profile.duration);
    let nworkers = match opts.workers.unwrap_or(profile.workers) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => n,
    };
    let stop_on_finding = opts.stop_on_finding || profile.stop_on_finding;
    let mut switches = profile.switches.clone();
    switches.extend(opts.switches.iter().cloned());
    let parsed: Vec<_> = switches
        .iter()
        .map(|s| crate::corpus::parse_switches(s).map_err(|e| anyhow::anyhow!("switch {s}: {e}")))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let _applied = crate::corpus::Applied::apply(&parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Module parameters given on the kernel command line are part of the conditions too: record
    // them first, so a finding's `# switch:` header reproduces it in a boot without them.
    let mut booted = crate::corpus::cmdline_switches(
        &std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
        std::path::Path::new("/sys/module"),
    );
    booted.retain(|b| !switches.contains(b));
    let switches: Vec<String> = booted.into_iter().chain(switches).collect();

    // Node overrides and a check that every target has a node, before anything is journalled.
    for t in &profile.targets {
        let selector = t.gen.profile.node_selector();
        if let Some(node) = &t.node {
            crate::device::set_node_override(&selector, node);
        }
        crate::device::resolve(&crate::program::Node::Driver(selector)).with_context(|| {
            format!(
                "target {} of {}",
                t.gen.profile.name,
                profile.path.display()
            )
        })?;
    }

    let limit = match opts.measure_limit {
        Some(d) => limit::of_targets(profile, d),
        None => opts.limit,
    };
    let dbg = crate::device::debug_state::read();
    let run_json = serde_json::json!({
        "limit_jobs_per_s": limit,
        "profile": profile.name,
        "profile_path": profile.path,
        "description": profile.description,
        "seed": seed,
        "workers": nworkers,
        "duration_s": duration.as_secs(),
        "epoch_ms": profile.epoch.as_millis() as u64,
        "switches": switches,
        "targets": profile.targets.iter().map(|t| t.gen.profile.name).collect::<Vec<_>>(),
        "kernel": dbg.kernel,
        "uname": uname(),
        "debug": dbg,
        "started_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "m2mfuzz": env!("CARGO_PKG_VERSION"),
    });
    let store = RunDir::create(&opts.out, &run_json)?;
    let exec = ExecOptions {
        op_deadline: profile.op_deadline,
        max_wait: profile.max_wait,
        ..Default::default()
    };
    let oracle_opts = OracleOptions {
        fence_deadline: profile.fence_deadline,
        grace: profile.grace,
    };
    let mut workers: Vec<Worker> = (0..nworkers)
        .map(|w| {
            Worker::new(
                w,
                profile.target_of(w).gen.clone(),
                seed,
                exec.clone(),
                oracle_opts.clone(),
            )
        })
        .collect();
    let mut global = OracleSet::new(oracle_opts.clone());
    let mut progress = progress::Progress::new(opts.plain);
    // Markers in the kernel log (the run's start, each epoch's read) let `--recover` tell the
    // reports the oracles read live from those a dead run left only on the console.
    let mut kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .ok();
    let mut mark = |m: String| {
        if let Some(k) = &mut kmsg {
            let _ = std::io::Write::write_all(k, m.as_bytes());
        }
    };
    mark(store::run_marker(seed));
    let t0 = Instant::now();
    let mut totals = Totals {
        limit_jobs_per_s: limit,
        ..Default::default()
    };
    let mut pending: Vec<PendingLeak> = Vec::new();
    let mut epoch = 0u64;
    eprintln!(
        "m2mfuzz stress: profile {} seed {seed}, {nworkers} workers, {} s, run directory {}",
        profile.name,
        duration.as_secs(),
        opts.out.display()
    );
    loop {
        let elapsed = t0.elapsed();
        if STOP.load(Ordering::SeqCst) || elapsed >= duration {
            break;
        }
        let until = Instant::now() + profile.epoch.min(duration - elapsed);
        let (tx, rx) = crossbeam::channel::unbounded::<ProgramRun>();
        let epoch_t0 = t0.elapsed().as_secs_f64();
        std::thread::scope(|s| {
            for w in workers.iter_mut() {
                let tx = tx.clone();
                let store = &store;
                s.spawn(move || w.run_epoch(until, &STOP, store, &tx));
            }
        });
        drop(tx);
        let runs: Vec<ProgramRun> = rx.iter().collect();
        let mut local = Vec::new();
        for r in &runs {
            for f in &r.findings {
                local.push((f.clone(), r.r.clone(), r.program.clone()));
            }
        }
        global.absorb(local.iter().map(|(f, _, _)| f.clone()).collect());
        mark(store::epoch_marker(Some(epoch)));
        let mut v = global.finish();
        let programs: Vec<(ProgramRef, Program)> = runs
            .iter()
            .map(|r| (r.r.clone(), r.program.clone()))
            .collect();

        // Leaks from earlier epochs that this epoch's ledger shows resolved were late, not lost.
        pending.retain(|p| !p.resolved_by(&v.ledger));
        // Pending leaks one full epoch old are confirmed.
        let mut confirmed = Vec::new();
        pending.retain(|p| {
            if p.epoch + 1 < epoch || epoch > p.epoch && STOP.load(Ordering::SeqCst) {
                confirmed.push((p.finding.clone(), p.epoch, p.programs.clone()));
                false
            } else {
                true
            }
        });
        let mut fresh: Vec<(Finding, Option<(ProgramRef, Program)>)> = Vec::new();
        for f in v.findings.drain(..) {
            let unresolved_leak = f.kind == Kind::LeakedFence
                && (f.title.contains("never freed") || f.title.contains("never signalled"));
            if unresolved_leak {
                pending.push(PendingLeak {
                    finding: f,
                    epoch,
                    programs: programs.clone(),
                });
                continue;
            }
            let own = local
                .iter()
                .find(|(lf, _, _)| lf.signature == f.signature)
                .map(|(_, r, p)| (r.clone(), p.clone()));
            fresh.push((f, own));
        }

        let mut new_findings = Vec::new();
        for (f, own) in fresh {
            // Seen = when the oracles concluded, not when the epoch began.
            let seen = t0.elapsed().as_secs_f64();
            let r = store_finding(&store, &f, own, &programs, epoch, seen, &switches);
            if let Some(Some(n)) = store.keep(&format!("finding {f}"), r) {
                new_findings.push(n);
            }
        }
        for (f, e, progs) in confirmed {
            let seen = t0.elapsed().as_secs_f64();
            let r = store_finding(&store, &f, None, &progs, e, seen, &switches);
            if let Some(Some(n)) = store.keep(&format!("finding {f}"), r) {
                new_findings.push(n);
            }
        }

        let mut stats = EpochStats::new(epoch, epoch_t0, t0.elapsed().as_secs_f64(), &runs, &v);
        stats.new_findings = new_findings;
        store.keep("epochs.jsonl", store.epoch(&serde_json::to_value(&stats)?));
        totals.add(&stats);
        for n in &v.notes {
            progress.note(n);
        }
        for n in &stats.new_findings {
            progress.note(&format!("FINDING {n}"));
        }
        totals.seconds = t0.elapsed().as_secs_f64();
        totals.findings = count_findings(&store);
        progress.update(&totals);
        epoch += 1;
        if should_stop(
            &store.known.lock().unwrap(),
            stop_on_finding,
            opts.until.as_deref(),
        ) {
            break;
        }
    }
    // One last look after a grace: late signals and frees, so the counts are complete, and
    // leaks still pending are confirmed or resolved.
    std::thread::sleep(profile.grace.max(Duration::from_millis(500)));
    mark(store::epoch_marker(None));
    let mut v = global.finish();
    let now = t0.elapsed().as_secs_f64();
    if epoch > 0 {
        let mut stats = EpochStats::new(epoch, now, now, &[], &v);
        stats.final_drain = true;
        store.keep("epochs.jsonl", store.epoch(&serde_json::to_value(&stats)?));
        totals.add(&stats);
    }
    // Every fd is closed and the grace has passed: what the drain shows is final.
    for f in v.findings.drain(..) {
        let r = store_finding(&store, &f, None, &[], epoch, now, &switches);
        store.keep(&format!("finding {f}"), r);
    }
    for p in pending.into_iter().filter(|p| !p.resolved_by(&v.ledger)) {
        let r = store_finding(
            &store,
            &p.finding,
            None,
            &p.programs,
            p.epoch,
            now,
            &switches,
        );
        store.keep(&format!("finding {}", p.finding), r);
    }
    totals.seconds = t0.elapsed().as_secs_f64();
    totals.findings = count_findings(&store);
    totals.store_errors = store.errors.load(Ordering::Relaxed);
    progress.finish(&totals);
    store.summary(&serde_json::to_value(&totals)?)?;
    if totals.store_errors > 0 {
        anyhow::bail!(
            "{} writes to the run directory {} failed (reported above): its record of the run is \
             incomplete; free space or fix the file system and run again",
            totals.store_errors,
            opts.out.display()
        );
    }
    Ok(totals)
}

fn count_findings(store: &RunDir) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for f in store.known.lock().unwrap().values() {
        *m.entry(f.kind.clone()).or_default() += 1;
    }
    m
}

/// Store a finding with its program: its own program when one showed it; otherwise the epoch's
/// programs serialized into one (the shrinker starts there). Returns the title when new.
pub(crate) fn store_finding(
    store: &RunDir,
    f: &Finding,
    own: Option<(ProgramRef, Program)>,
    programs: &[(ProgramRef, Program)],
    epoch: u64,
    at: f64,
    switches: &[String],
) -> Result<Option<String>> {
    let mut program = match &own {
        Some((_, p)) => p.clone(),
        None => {
            let ps: Vec<&Program> = programs.iter().map(|(_, p)| p).collect();
            let mut p = concat(&ps);
            if ps.len() > 1 {
                let who: Vec<String> = programs
                    .iter()
                    .map(|(r, _)| format!("w{}-p{}", r.worker, r.k))
                    .collect();
                p.set_header("serialized", &who.join(" "));
            }
            p
        }
    };
    if !switches.is_empty() {
        program.set_header("switch", &switches.join(" "));
    }
    program.set_header("expect", &format!("{}: {}", f.kind, f.title));
    let meta = FindingMeta {
        worker: own.as_ref().map(|(r, _)| r.worker),
        program: own.as_ref().map(|(r, _)| (r.k, r.seed)),
        epoch_programs: programs
            .iter()
            .map(|(r, _)| (r.worker, r.k, r.seed))
            .collect(),
        ..FindingMeta::of(f, at, epoch, switches)
    };
    let new = store.finding(
        f,
        meta,
        &program,
        if own.is_some() { &[] } else { programs },
        &[],
    )?;
    Ok(new.then(|| f.to_string()))
}

/// Kernel release, build string and machine, as `uname -rvm` says.
fn uname() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{} {} {}",
        read("osrelease"),
        read("version"),
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_waits_for_its_finding_and_passes_others() {
        let mut known = std::collections::BTreeMap::new();
        assert!(!should_stop(&known, true, None));
        let meta = |kind: &str, title: &str| store::FindingMeta {
            kind: kind.into(),
            title: title.into(),
            ..Default::default()
        };
        known.insert("a".into(), meta("hang", "release fence hang on visl-cap"));
        assert!(should_stop(&known, true, None));
        assert!(!should_stop(&known, false, None));
        let want = Some("hang: release fence hang on vim2m-cap");
        assert!(!should_stop(&known, true, want));
        known.insert("b".into(), meta("hang", "release fence hang on vim2m-cap"));
        assert!(should_stop(&known, false, want));
    }
}
