//! `stress --recover` after a run died (a panic, a wedged kernel, a power cut): the kernel
//! reports the dead boot's console or pstore holds become findings of the run directory, stored
//! through its findings store like any other, attributed to the programs running then.
//!
//! The run writes markers into the kernel log: `m2mfuzz: stress run seed S started` when it
//! starts, `m2mfuzz: worker N program K seed S` before each program, and
//! `m2mfuzz: stress epoch E concluding` (`… final drain`) just before the oracles read the log
//! at an epoch's end. Reports before the marker of the last epoch `epochs.jsonl` holds were read
//! live; those after it are what the run lost, and each belongs to the programs whose markers
//! came last before it, one per worker (their text from the journal, or regenerated from the
//! run's profile and seed).
use super::store::{self, ProgramRef, RunDir};
use super::worker::{program_of, program_seed};
use super::EpochStats;
use crate::oracle::splat::{self, UnderTest};
use crate::oracle::splat_finding;
use crate::profile::stress::StressProfile;
use crate::program::Program;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One kernel report recovered from the console.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveredReport {
    /// `kind: title`.
    pub finding: String,
    /// In the code under test (stored as a finding) or elsewhere (counted as the run counts them).
    pub under_test: bool,
    /// True when the store had no finding with its signature yet.
    pub new: bool,
    /// Seconds from the run's start (console timestamps), when the console has them.
    pub at_s: Option<f64>,
    /// The epoch it came in.
    pub epoch: u64,
    /// The programs running then, `wW-pK`.
    pub programs: Vec<String>,
}

/// What the recovery did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recovery {
    /// Where the text came from.
    pub source: String,
    /// The reports after the log's last live reading.
    pub reports: Vec<RecoveredReport>,
    /// What could not be told for sure.
    pub notes: Vec<String>,
}

/// What `stress --recover` found, as `--json` prints it (one object).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The run directory.
    pub run: PathBuf,
    /// Per worker, its last journalled program.
    pub workers: Vec<store::Recovered>,
    /// Where the kernel's words came from (a console log, a pstore record), when any.
    pub source: Option<String>,
    /// Per worker, the last `m2mfuzz: worker W program K seed S` marker in that text.
    pub last_markers: BTreeMap<u32, String>,
    /// The reports of that text the run did not read live.
    pub recovery: Option<Recovery>,
    /// What the pstore search noted.
    pub notes: Vec<String>,
}

impl Summary {
    /// True when it stored a finding (a report in the code under test).
    pub fn stored(&self) -> bool {
        self.recovery
            .as_ref()
            .is_some_and(|r| r.reports.iter().any(|x| x.under_test))
    }
}

/// A console line: seconds since boot when timestamped, and the message. Accepts the serial
/// console's `[   12.345678] msg`, pstore dmesg records' `<4>[   12.345678] msg` and bare lines.
fn split_line(l: &str) -> (Option<f64>, &str) {
    let mut t = l.trim_end_matches('\r');
    if let Some(rest) = t.strip_prefix('<') {
        if let Some((pri, after)) = rest.split_once('>') {
            if !pri.is_empty() && pri.chars().all(|c| c.is_ascii_digit()) {
                t = after;
            }
        }
    }
    if let Some(rest) = t.strip_prefix('[') {
        if let Some((ts, msg)) = rest.split_once("] ") {
            if let Ok(v) = ts.trim().parse::<f64>() {
                return (Some(v), msg);
            }
        }
    }
    (None, t)
}

/// `m2mfuzz: worker W program K seed S` → (W, K, S).
pub fn worker_marker(msg: &str) -> Option<(u32, u64, u64)> {
    let rest = &msg[msg.find("m2mfuzz: worker ")? + "m2mfuzz: worker ".len()..];
    let mut it = rest.split_whitespace();
    let w = it.next()?.parse().ok()?;
    (it.next()? == "program").then_some(())?;
    let k = it.next()?.parse().ok()?;
    (it.next()? == "seed").then_some(())?;
    Some((w, k, it.next()?.parse().ok()?))
}

/// What a line of the run's section is to the recovery.
#[derive(Debug, PartialEq)]
enum Marker {
    Run(u64),
    Worker(u32, u64, u64),
    Epoch(u64),
    Final,
}

fn marker(msg: &str) -> Option<Marker> {
    if let Some(m) = worker_marker(msg) {
        return Some(Marker::Worker(m.0, m.1, m.2));
    }
    let rest = &msg[msg.find("m2mfuzz: stress ")? + "m2mfuzz: stress ".len()..];
    let rest = rest.trim_end();
    if let Some(s) = rest
        .strip_prefix("run seed ")
        .and_then(|r| r.strip_suffix(" started"))
    {
        return s.parse().ok().map(Marker::Run);
    }
    if let Some(e) = rest
        .strip_prefix("epoch ")
        .and_then(|r| r.strip_suffix(" concluding"))
    {
        return e.parse().ok().map(Marker::Epoch);
    }
    (rest == "final drain").then_some(Marker::Final)
}

/// The records a pstore directory holds, as `(name, text)`, best first, and notes on what was
/// skipped.
pub type PstoreText = (Vec<(String, String)>, Vec<String>);

/// The text of the console records a pstore directory holds (`/sys/fs/pstore` on a board after
/// a reboot), best first: the previous boot's console (`console-*`), then the kernel log dumps
/// (`dmesg-*`) from the last one, its parts in log order (kmsg_dump writes the newest part as
/// Part1). Compressed records are skipped with a note. `Ok(None)`: no such directory or no
/// records.
pub fn pstore_sources(dir: &Path) -> Result<Option<PstoreText>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut notes = Vec::new();
    let mut consoles: Vec<(String, String)> = Vec::new();
    // (dump number, part) → (file name, text without its header line).
    let mut dumps: BTreeMap<(u64, u64), (String, String)> = BTreeMap::new();
    for e in entries {
        let path = e.with_context(|| format!("read {}", dir.display()))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !(name.starts_with("console-") || name.starts_with("dmesg-")) {
            continue;
        }
        if name.ends_with(".enc.z") {
            notes.push(format!(
                "{}: compressed pstore record skipped: decompress it and give it with --console",
                path.display()
            ));
            continue;
        }
        let bytes = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes).to_string();
        if name.starts_with("console-") {
            consoles.push((path.display().to_string(), text));
            continue;
        }
        // "Panic#2 Part1" / "Oops#1 Part3" heads each dump part.
        let (head, body) = text.split_once('\n').unwrap_or((&text, ""));
        let num = |s: &str| s.trim().parse::<u64>().ok();
        let key = head
            .split_once('#')
            .and_then(|(_, r)| r.split_once(" Part"))
            .and_then(|(n, p)| Some((num(n)?, num(p)?)));
        match key {
            Some(k) => {
                dumps.insert(k, (path.display().to_string(), body.to_string()));
            }
            None => notes.push(format!(
                "{}: no `Reason#N PartM` header, read as one part",
                path.display()
            )),
        }
    }
    consoles.sort();
    let mut out = consoles;
    if let Some(last) = dumps.keys().map(|k| k.0).max() {
        let parts: Vec<&(String, String)> = dumps
            .range((last, 0)..=(last, u64::MAX))
            .rev()
            .map(|(_, v)| v)
            .collect();
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        let text: String = parts.iter().map(|(_, t)| t.as_str()).collect();
        out.push((names.join(" + "), text));
    }
    Ok((!out.is_empty()).then_some((out, notes)))
}

/// The run's seed, switches and profile, from `run.json`.
struct RunInfo {
    seed: u64,
    switches: Vec<String>,
    profile: Option<PathBuf>,
}

fn run_info(run: &Path) -> Result<RunInfo> {
    let p = run.join("run.json");
    let v: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?,
    )
    .with_context(|| format!("parse {}", p.display()))?;
    let seed = v["seed"]
        .as_u64()
        .with_context(|| format!("{}: no seed", p.display()))?;
    let switches = v["switches"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let profile = v["profile_path"].as_str().map(PathBuf::from);
    Ok(RunInfo {
        seed,
        switches,
        profile,
    })
}

/// Where the run's section of the console starts: its run marker (the last with its seed), or,
/// from a binary that wrote none, its first program marker.
fn find_start(lines: &[(Option<f64>, &str)], seed: u64) -> Option<usize> {
    lines
        .iter()
        .rposition(|(_, m)| marker(m) == Some(Marker::Run(seed)))
        .or_else(|| {
            lines.iter().position(|(_, m)| {
                matches!(marker(m), Some(Marker::Worker(w, k, s)) if s == program_seed(seed, w, k))
            })
        })
}

/// Whether `text` holds a marker of the run in `run` (to pick among pstore records).
pub fn has_run(run: &Path, text: &str) -> Result<bool> {
    let seed = run_info(run)?.seed;
    let lines: Vec<_> = text.lines().map(split_line).collect();
    Ok(find_start(&lines, seed).is_some())
}

/// Programs of the run, from the journal or regenerated from the profile and seed.
struct Programs {
    seed: u64,
    journal: Vec<store::Recovered>,
    profile: Option<std::result::Result<StressProfile, String>>,
    profile_path: Option<PathBuf>,
    run: PathBuf,
}

impl Programs {
    fn get(&mut self, w: u32, k: u64, notes: &mut Vec<String>) -> Option<Program> {
        if let Some(j) = self.journal.iter().find(|j| j.worker == w && j.k == k) {
            match crate::program::text::parse(&j.text) {
                Ok(p) => return Some(p),
                Err(e) => notes.push(format!("{}: {e}: regenerated instead", j.path.display())),
            }
        }
        if self.profile.is_none() {
            self.profile = Some(self.load_profile());
        }
        match self.profile.as_ref()? {
            Ok(p) => Some(program_of(&p.target_of(w).gen, self.seed, w, k)),
            Err(e) => {
                let n = format!("worker {w} program {k}: not in the journal and {e}");
                if !notes.contains(&n) {
                    notes.push(n);
                }
                None
            }
        }
    }

    /// The run's profile: its path as run.json gives it, looked up from the run directory up
    /// (the run was started in one of its ancestors, `--out runs/x`), then here.
    fn load_profile(&self) -> std::result::Result<StressProfile, String> {
        let Some(rel) = &self.profile_path else {
            return Err("run.json names no profile to regenerate it from".into());
        };
        let here = PathBuf::from(".");
        let found = std::iter::once(rel.clone())
            .filter(|p| p.is_absolute())
            .chain(self.run.ancestors().map(|a| a.join(rel)))
            .chain(std::iter::once(here.join(rel)))
            .find(|p| p.is_file());
        match found {
            Some(p) => StressProfile::load(&p).map_err(|e| format!("{e:#}")),
            None => Err(format!(
                "its profile {} is not found from {} up: run --recover where the run started",
                rel.display(),
                self.run.display()
            )),
        }
    }
}

/// A torn last line of `epochs.jsonl` (the run died writing it) moves to `epochs.jsonl.torn`, so
/// that the line the recovery appends does not make it look like corruption to `report`.
fn set_torn_tail_aside(run: &Path, notes: &mut Vec<String>) -> Result<()> {
    let p = run.join("epochs.jsonl");
    let Ok(text) = fs::read_to_string(&p) else {
        return Ok(());
    };
    if text.is_empty() || text.ends_with('\n') {
        return Ok(());
    }
    let keep = text.rfind('\n').map_or(0, |i| i + 1);
    fs::write(run.join("epochs.jsonl.torn"), &text[keep..])
        .with_context(|| format!("write {}/epochs.jsonl.torn", run.display()))?;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .with_context(|| format!("open {}", p.display()))?;
    f.set_len(keep as u64)?;
    f.sync_all()?;
    notes.push(format!(
        "the last line of {} was torn by the crash: kept in epochs.jsonl.torn",
        p.display()
    ));
    Ok(())
}

/// The epochs `epochs.jsonl` holds as concluded: the last one, and whether the final drain ran.
fn concluded(run: &Path) -> (Option<u64>, bool) {
    let text = fs::read_to_string(run.join("epochs.jsonl")).unwrap_or_default();
    let mut last = None;
    let mut fin = false;
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<EpochStats>(l).ok())
        .filter(|e| !e.recovered)
    {
        if e.final_drain {
            fin = true;
        } else {
            last = last.max(Some(e.epoch));
        }
    }
    (last, fin)
}

/// Turn the kernel reports in `text` (the dead boot's console or pstore, named `source`) that
/// the run in `run` did not read live into findings of its store. Refuses a run already
/// recovered (`RUN/recovered.json`), so hit counts are not raised twice.
pub fn recover_console(run: &Path, text: &str, source: &str) -> Result<Recovery> {
    let done = run.join("recovered.json");
    if done.exists() {
        anyhow::bail!(
            "{} was already recovered ({}): remove it to recover again",
            run.display(),
            done.display()
        );
    }
    let info = run_info(run)?;
    let lines: Vec<(Option<f64>, &str)> = text.lines().map(split_line).collect();
    let start = find_start(&lines, info.seed).with_context(|| {
        format!(
            "{source} holds no kernel-log marker of the run in {} (seed {}): is it the console of \
             the boot that ran it? (`m2mfuzz: stress run seed {} started`, `m2mfuzz: worker N \
             program K seed S`; on a board `echo on > /proc/sys/kernel/printk_devkmsg` keeps the \
             kernel from rate-limiting them)",
            run.display(),
            info.seed,
            info.seed
        )
    })?;
    // The section ends where another run starts.
    let end = lines[start + 1..]
        .iter()
        .position(|(_, m)| matches!(marker(m), Some(Marker::Run(_))))
        .map_or(lines.len(), |i| start + 1 + i);
    let section = &lines[start..end];
    let mut notes = Vec::new();

    // What the oracles read live: everything before the last concluded epoch's marker.
    let (last_epoch, final_drain) = concluded(run);
    let want = if final_drain {
        Some(Marker::Final)
    } else {
        last_epoch.map(Marker::Epoch)
    };
    let cut = match &want {
        None => 0,
        Some(w) => match section
            .iter()
            .rposition(|(_, m)| marker(m).as_ref() == Some(w))
        {
            Some(i) => i + 1,
            None => {
                notes.push(format!(
                    "no `{}` marker in {source}: every report since the run's start is taken, \
                     some may have been stored live already (their hit counts rise)",
                    store::epoch_marker(last_epoch.filter(|_| !final_drain)).trim_end()
                ));
                0
            }
        },
    };
    let t_start = section[0].0;
    let body: Vec<&str> = section[cut..].iter().map(|(_, m)| *m).collect();
    let splats = splat::parse(&body.join("\n"), &UnderTest::default());

    set_torn_tail_aside(run, &mut notes)?;
    let journal = store::recover(run).unwrap_or_else(|e| {
        notes.push(format!(
            "journal not read ({e:#}): programs are regenerated"
        ));
        Vec::new()
    });
    let mut programs = Programs {
        seed: info.seed,
        journal,
        profile: None,
        profile_path: info.profile.clone(),
        run: run.to_path_buf(),
    };
    let store = RunDir::open(run, source)?;
    let mut reports = Vec::new();
    let mut elsewhere = Vec::new();
    let mut new_findings = Vec::new();
    let mut under_test = 0u64;
    let (mut first_s, mut last_s) = (None::<f64>, None::<f64>);
    for s in &splats {
        let at = cut + s.line;
        // Per worker, its last program marker before the report; the epoch it came in.
        let mut last: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut epoch = 0u64;
        for (_, m) in &section[..at] {
            match marker(m) {
                Some(Marker::Worker(w, k, sd)) if sd == program_seed(info.seed, w, k) => {
                    last.insert(w, (k, sd));
                }
                Some(Marker::Epoch(e)) => epoch = e + 1,
                _ => {}
            }
        }
        let at_s = match (section[at].0, t_start) {
            (Some(t), Some(t0)) => Some(((t - t0) * 1000.0).round() / 1000.0),
            _ => None,
        };
        if let Some(t) = at_s {
            first_s = Some(first_s.map_or(t, |f: f64| f.min(t)));
            last_s = Some(last_s.map_or(t, |l: f64| l.max(t)));
        }
        let mut running: Vec<(ProgramRef, Program)> = Vec::new();
        for (&w, &(k, seed)) in &last {
            if let Some(p) = programs.get(w, k, &mut notes) {
                running.push((ProgramRef { worker: w, k, seed }, p));
            }
        }
        let names: Vec<String> = last
            .iter()
            .map(|(w, (k, _))| format!("w{w}-p{k}"))
            .collect();
        let mut f = splat_finding(s, None);
        f.evidence = format!(
            "recovered from {source} after the run died; programs running (each worker's last \
             marker before the report): {}\n\n{}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            f.evidence
        );
        let mut new = false;
        if s.under_test {
            under_test += u64::from(f.kind == crate::oracle::Kind::Splat);
            let seen = at_s.unwrap_or(0.0);
            if let Some(t) =
                super::store_finding(&store, &f, None, &running, epoch, seen, &info.switches)?
            {
                new = true;
                new_findings.push(t);
            }
        } else {
            elsewhere.push(f.title.clone());
        }
        reports.push(RecoveredReport {
            finding: f.to_string(),
            under_test: s.under_test,
            new,
            at_s,
            epoch,
            programs: names,
        });
    }

    // Counted as the run counts kernel reports: an epochs.jsonl line of its own.
    let stats = EpochStats {
        epoch: last_epoch.map_or(0, |e| e + 1),
        final_drain: true,
        recovered: true,
        start_s: first_s.unwrap_or(0.0),
        end_s: last_s.unwrap_or(0.0),
        splats_under_test: under_test,
        splats_elsewhere: elsewhere,
        notes: vec![format!(
            "recovered from {source}: {} kernel report(s) after the log's last live reading",
            reports.len()
        )],
        new_findings,
        ..Default::default()
    };
    store.epoch(&serde_json::to_value(&stats)?)?;
    let rec = Recovery {
        source: source.to_string(),
        reports,
        notes,
    };
    let mut f = fs::File::create(&done).with_context(|| format!("create {}", done.display()))?;
    f.write_all(serde_json::to_string_pretty(&rec)?.as_bytes())?;
    f.sync_all()?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_and_markers_are_read_in_every_format() {
        assert_eq!(
            split_line("[   12.500000] m2mfuzz: worker 1 program 7 seed 99"),
            (Some(12.5), "m2mfuzz: worker 1 program 7 seed 99")
        );
        assert_eq!(split_line("<4>[    6.25] refcount_t: x").0, Some(6.25));
        assert_eq!(split_line("<4>[    6.25] refcount_t: x").1, "refcount_t: x");
        assert_eq!(split_line("plain"), (None, "plain"));
        assert_eq!(
            marker("m2mfuzz: worker 1 program 7 seed 99"),
            Some(Marker::Worker(1, 7, 99))
        );
        assert_eq!(
            marker("m2mfuzz: stress run seed 5 started"),
            Some(Marker::Run(5))
        );
        assert_eq!(
            marker(store::epoch_marker(Some(3)).trim_end()),
            Some(Marker::Epoch(3))
        );
        assert_eq!(
            marker(store::epoch_marker(None).trim_end()),
            Some(Marker::Final)
        );
        assert_eq!(
            marker(store::run_marker(8).trim_end()),
            Some(Marker::Run(8))
        );
        assert_eq!(marker("m2mfuzz: worker x program 7 seed 99"), None);
    }
}
