//! Lose nothing when the kernel dies. First a guest killed mid-run (QEMU ended at the time limit,
//! as a hard hang or power loss would), then `m2mfuzz stress --recover --json` in a fresh boot:
//! it must name, per worker, the program running when the guest died, the same program as that
//! worker's last marker in the dead boot's console. Then the wedge: the lab's stress run (the
//! `stress` check) with `videobuf2_common.rf_fault=128` (a release fence put twice), whose
//! refcount underflow wedges the kernel so the run stores nothing itself; the guest must time out
//! or die, and the stress check must by itself recover a splat finding "refcount bug in
//! <caller>" from the console, attributed to the programs running then.
use crate::boot::{self, Boot, Guest, NoAnswer};
use crate::checks::stress::{self as stress_check, copy_dir, StressRun};
use crate::guest_bins;
use crate::lab::{fresh_dir, Lab};
use anyhow::{bail, ensure, Context, Result};
use m2mfuzz::oracle::Kind;
use m2mfuzz::stress::recover::{worker_marker, Summary};
use m2mfuzz::stress::store::FindingMeta;
use std::path::{Path, PathBuf};

/// The console line of the wedge's report.
const UNDERFLOW: &str = "refcount_t: underflow";

/// Run both halves.
pub fn run(lab: &Lab, out: &Path, kill_after: u64, wedge_limit: u64) -> Result<()> {
    // Absolute: the stress check takes the wedge's profile by an absolute path.
    let out = std::path::absolute(out)?;
    fresh_dir(&out, &lab.repo)?;
    let share = out.join("share");
    std::fs::create_dir_all(share.join("runs"))?;
    guest_bins::build(lab, &share)?;
    copy_dir(
        &lab.repo.join("stress-profiles"),
        &share.join("stress-profiles"),
    )?;
    // lab-smoke with one long epoch, so the kill lands while programs run, not in the quiet
    // point between epochs where every worker has finished (which --recover would rightly
    // report as such).
    let smoke = std::fs::read_to_string(lab.repo.join("stress-profiles/lab-smoke.toml"))?;
    let profile = share.join("recover.toml");
    std::fs::write(&profile, one_long_epoch(&smoke)?)?;
    let guest = Guest::of(lab)?;
    killed_mid_run(&guest, &out, &share, kill_after)?;
    wedge(lab, &out, &profile, wedge_limit)
}

/// The profile with one 120 s epoch.
fn one_long_epoch(profile: &str) -> Result<String> {
    let mut found = false;
    let text: Vec<String> = profile
        .lines()
        .map(|l| {
            if l.starts_with("epoch_ms = ") {
                found = true;
                "epoch_ms = 120000".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    ensure!(
        found,
        "lab-smoke.toml has no `epoch_ms = ` line to lengthen"
    );
    Ok(text.join("\n") + "\n")
}

/// The killed boot and `--recover` in the next one.
fn killed_mid_run(guest: &Guest, out: &Path, share: &Path, kill_after: u64) -> Result<()> {
    let job = "cd /host\n./bin/m2mfuzz stress --profile recover.toml --duration 10m --seed 5 --plain --out runs/run\n";
    let dead = boot::run(
        guest,
        &Boot::new(&out.join("dead"), share, job).timeout(kill_after),
    )?;
    if dead.ending != boot::Ending::TimedOut {
        bail!(
            "the stress boot was to be killed at {kill_after}s, but it ended: {:?}; console: {}",
            dead.ending,
            dead.console.display()
        );
    }
    let console = std::fs::read_to_string(&dead.console)
        .with_context(|| format!("read {}", dead.console.display()))?;
    std::fs::write(share.join("dead-console.log"), &console)?;
    let job = "cd /host\n./bin/m2mfuzz stress --recover runs/run --console dead-console.log --json > out/recover.json\n";
    let again = boot::run(
        guest,
        &Boot::new(&out.join("again"), share, job).timeout(120),
    )?;
    // --recover exits 1 when the dead boot's console held kernel reports it stored as findings.
    let rc = again.rc()?;
    ensure!(
        rc == 0 || rc == 1,
        "the recover boot failed (exit {rc}); console: {}",
        again.console.display()
    );
    let path = again.result("recover.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let summary: Summary =
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    std::fs::write(out.join("recover.json"), &text)?;
    let running = running_agree(&summary, &console)?;
    crate::say!("recover: {running} running program(s) named, journal and console agree");
    Ok(())
}

/// Each running program `--recover` names must be its worker's last program marker in the dead
/// boot's console (or the one after it: the journal is written before the marker, and a kill
/// between the two leaves the marker one behind). Returns how many it named.
fn running_agree(s: &Summary, console: &str) -> Result<usize> {
    let mut n = 0;
    for w in s.workers.iter().filter(|w| !w.finished) {
        n += 1;
        let last = last_program(console, w.worker, None);
        println!(
            "  worker {} program {} seed {}: RUNNING ({})",
            w.worker,
            w.k,
            w.seed.map_or("?".into(), |s| s.to_string()),
            w.path.display()
        );
        ensure!(
            last == Some(w.k) || last.is_some_and(|l| l + 1 == w.k),
            "worker {}: --recover says program {}, the console's last marker says {}",
            w.worker,
            w.k,
            last.map_or("none".into(), |l| l.to_string())
        );
        crate::say!(
            "worker {}: program {} was running when the guest died (console marker agrees)",
            w.worker,
            w.k
        );
    }
    ensure!(n >= 1, "--recover named no running program");
    Ok(n)
}

/// The last `m2mfuzz: worker W program K` marker of `worker` in the console, before the first
/// line containing `before` when given.
fn last_program(console: &str, worker: u32, before: Option<&str>) -> Option<u64> {
    let mut last = None;
    for l in console.lines() {
        if before.is_some_and(|b| l.contains(b)) {
            break;
        }
        if let Some((w, k, _)) = worker_marker(l) {
            if w == worker {
                last = Some(k);
            }
        }
    }
    last
}

/// The wedge, recovered by the stress check itself.
fn wedge(lab: &Lab, out: &Path, profile: &Path, limit: u64) -> Result<()> {
    // One long epoch again: the report comes before any epoch could conclude, so the run's own
    // oracles never read it (with lab-smoke's 2 s epochs the first epoch may still conclude and
    // store it live; what wedges after is recovered then).
    let w = out.join("wedge");
    let p = out.join("wedge.toml");
    std::fs::copy(profile, &p)?;
    let s = StressRun {
        out: w.clone(),
        profile: p,
        cmdline: "videobuf2_common.rf_fault=128".into(),
        timeout: Some(limit),
        check_trace: false,
        args: ["--duration", "60s", "--seed", "1"]
            .map(String::from)
            .into(),
    };
    let code = match stress_check::run(lab, &s) {
        Err(e) => match e.downcast_ref::<NoAnswer>() {
            Some(n) => n.code,
            None => return Err(e.context("the wedge run")),
        },
        Ok(o) => bail!(
            "the wedge run was to time out or kill the guest (124/125), it ended with {}; console: {}",
            o.rc,
            w.join("console.log").display()
        ),
    };
    let console = std::fs::read_to_string(w.join("console.log"))?;
    ensure!(
        console.contains(UNDERFLOW),
        "no refcount underflow in the wedged boot's console {}",
        w.join("console.log").display()
    );
    // The stress check writes recover.txt when it ran the recovery after the guest failed.
    ensure!(
        w.join("recover.txt").exists(),
        "the stress check did not recover the run after the guest failed ({})",
        w.display()
    );
    let run = w.join("share/out/run");
    let (dir, meta) = recovered_refcount(&findings(&run)?).with_context(|| {
        format!(
            "no recovered splat finding \"refcount bug in …\" with its programs in {} ({})",
            run.join("findings").display(),
            w.join("recover.txt").display()
        )
    })?;
    ensure!(
        !meta.title.contains("refcount_warn_saturate"),
        "the finding is titled by refcount_warn_saturate: {}",
        meta.title
    );
    let evidence = std::fs::read_to_string(dir.join("evidence.txt"))?;
    ensure!(
        evidence.contains(UNDERFLOW),
        "{}/evidence.txt lacks the report",
        dir.display()
    );
    let program = std::fs::read_to_string(dir.join("program.m2m"))?;
    let expect = format!("# expect: splat: {}", meta.title);
    ensure!(
        program.lines().any(|l| l.starts_with(&expect)),
        "{}/program.m2m does not expect its finding",
        dir.display()
    );
    // Each program it names must be that worker's last marker before the report.
    let mut named = Vec::new();
    for &(wk, k, _) in &meta.epoch_programs {
        let f = dir.join(format!("programs/w{wk}-p{k}.m2m"));
        ensure!(f.exists(), "{} is missing", f.display());
        let last = last_program(&console, wk, Some(UNDERFLOW));
        ensure!(
            last == Some(k),
            "worker {wk}: the finding names program {k}, the console's last marker before the report says {}",
            last.map_or("none".into(), |l| l.to_string())
        );
        named.push(format!("w{wk}-p{k}"));
    }
    crate::say!(
        "wedge: the guest failed ({code}) and the stress check stored \"splat: {}\" from the console, attributed to {} ({})",
        meta.title,
        named.join(" "),
        dir.display()
    );
    Ok(())
}

/// A run's findings: their directories and `finding.json`.
fn findings(run: &Path) -> Result<Vec<(PathBuf, FindingMeta)>> {
    let mut v = Vec::new();
    let dir = run.join("findings");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(v);
    };
    for e in rd {
        let d = e?.path();
        let f = d.join("finding.json");
        if f.is_file() {
            let meta: FindingMeta = serde_json::from_str(&std::fs::read_to_string(&f)?)
                .with_context(|| format!("parse {}", f.display()))?;
            v.push((d, meta));
        }
    }
    Ok(v)
}

/// The first (by time) recovered splat "refcount bug in …" in the code under test that names the
/// programs running then.
fn recovered_refcount(fs: &[(PathBuf, FindingMeta)]) -> Option<(PathBuf, FindingMeta)> {
    fs.iter()
        .filter(|(_, m)| {
            m.kind == Kind::Splat.name()
                && m.title.starts_with("refcount bug in ")
                && m.under_test
                && m.recovered_from.is_some()
                && !m.epoch_programs.is_empty()
        })
        .min_by(|a, b| a.1.first_seen_s.total_cmp(&b.1.first_seen_s))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wedged boot's console around the report (lab-out/recover/wedge).
    const CONSOLE: &str = "[    5.059322] m2mfuzz: stress run seed 1 started
[    5.180532] m2mfuzz: worker 0 program 0 seed 6238072747940578789
[    5.182313] m2mfuzz: worker 1 program 0 seed 14097533113477868031
[    6.557237] refcount_t: underflow; use-after-free.
[    6.669056] m2mfuzz: worker 0 program 1 seed 16490336266968443936
[    7.899745] m2mfuzz: worker 0 program 2 seed 13757245211066428519
";

    #[test]
    fn the_last_marker_is_per_worker_and_stops_at_the_report() {
        assert_eq!(last_program(CONSOLE, 0, None), Some(2));
        assert_eq!(last_program(CONSOLE, 0, Some(UNDERFLOW)), Some(0));
        assert_eq!(last_program(CONSOLE, 1, None), Some(0));
        assert_eq!(last_program(CONSOLE, 2, None), None);
    }

    fn meta(json: &str) -> FindingMeta {
        serde_json::from_str(json).unwrap()
    }

    /// Two finding.json files of a wedged run (lab-out/recover/wedge).
    const REFCOUNT: &str = r#"{"kind": "splat", "title": "refcount bug in dma_resv_list_free",
  "signature": "splat: refcount bug in dma_resv_list_free", "under_test": true, "first_seen_s": 1.497,
  "epoch": 0, "hits": 1, "worker": null, "program": null, "op": null,
  "switches": ["videobuf2_common.rf_fault=128"],
  "epoch_programs": [[0, 0, 6238072747940578789], [1, 0, 14097533113477868031]],
  "recovered_from": "/work/ci6/lab-out/recover/wedge/console.log", "clause": "freed"}"#;
    const STALL: &str = r#"{"kind": "splat", "title": "RCU stall in dma_resv_list_entry",
  "signature": "splat: RCU stall in dma_resv_list_entry", "under_test": true, "first_seen_s": 26.313,
  "epoch": 0, "hits": 1, "worker": null, "program": null, "op": null,
  "switches": ["videobuf2_common.rf_fault=128"],
  "epoch_programs": [[0, 2, 13757245211066428519], [1, 0, 14097533113477868031]],
  "recovered_from": "/work/ci6/lab-out/recover/wedge/console.log"}"#;

    #[test]
    fn the_recovered_refcount_finding_is_picked_and_a_live_one_is_not() {
        let fs = vec![
            (PathBuf::from("stall"), meta(STALL)),
            (PathBuf::from("refcount"), meta(REFCOUNT)),
        ];
        let (dir, m) = recovered_refcount(&fs).unwrap();
        assert_eq!(dir, PathBuf::from("refcount"));
        assert_eq!(m.epoch_programs[0], (0, 0, 6238072747940578789));
        // Stored live (not recovered), or with no programs: not what the check looks for.
        let mut live = meta(REFCOUNT);
        live.recovered_from = None;
        assert!(recovered_refcount(&[(PathBuf::from("x"), live)]).is_none());
        let mut alone = meta(REFCOUNT);
        alone.epoch_programs.clear();
        assert!(recovered_refcount(&[(PathBuf::from("x"), alone)]).is_none());
    }

    /// `stress --recover --json` of a killed run, its workers as the journal names them.
    fn summary(k0: u64, finished1: bool) -> Summary {
        serde_json::from_value(serde_json::json!({
            "run": "runs/run",
            "workers": [
                {"worker": 0, "k": k0, "seed": 11828389778830673623u64, "finished": false,
                 "path": "runs/run/journal/worker-0.current"},
                {"worker": 1, "k": 0, "seed": 14097533113477868031u64, "finished": finished1,
                 "path": "runs/run/journal/worker-1.current"}
            ],
            "source": "dead-console.log",
            "last_markers": {},
            "recovery": {"source": "dead-console.log", "reports": [], "notes": []},
            "notes": []
        }))
        .unwrap()
    }

    #[test]
    fn running_programs_must_match_the_consoles_last_markers() {
        // Worker 0's last marker is program 2: the journal may be one ahead, not behind.
        assert_eq!(running_agree(&summary(2, false), CONSOLE).unwrap(), 2);
        assert_eq!(running_agree(&summary(3, true), CONSOLE).unwrap(), 1);
        assert!(running_agree(&summary(1, true), CONSOLE).is_err());
        assert!(running_agree(&summary(4, true), CONSOLE).is_err());
    }

    #[test]
    fn the_profile_gets_one_long_epoch() {
        let p = "name = \"lab-smoke\"\nepoch_ms = 2000\nworkers = 2\n";
        let t = one_long_epoch(p).unwrap();
        assert!(t.contains("epoch_ms = 120000\n"));
        assert!(!t.contains("2000\n"));
        assert!(one_long_epoch("workers = 2\n").is_err());
    }
}
