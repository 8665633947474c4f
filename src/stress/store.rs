//! The run directory: journal (what each worker is running, fsynced before it runs), per-epoch
//! statistics, and findings deduplicated by signature, each written atomically.
//!
//! ```text
//! RUN/run.json                 profile, seed, kernel, debug state, switches
//! RUN/journal/worker-N.current the program worker N runs now (written and fsynced first)
//! RUN/journal/worker-N.log     "K SEED RESULT" per finished program
//! RUN/epochs.jsonl             one line of counts per epoch
//! RUN/findings/SLUG/           finding.json, program.m2m, evidence.txt, programs/*.m2m
//! RUN/summary.json             totals, written at the end
//! RUN/recovered.json           what `stress --recover` stored from a dead run's console
//! ```
//!
//! A fuzz target keeps its findings in the same layout ([`RunDir::findings_only`]): `findings/`
//! only, each with the input that first showed it as `input.bin`.
use crate::oracle::Finding;
use crate::program::Program;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Metadata of one finding, as `finding.json` holds it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FindingMeta {
    /// [`crate::oracle::Kind::name`]: `hang`, `leaked-fence`, `splat`, `stale-read`, `bad-reply`,
    /// `memory-fault`.
    pub kind: String,
    /// Short stable title.
    pub title: String,
    /// Dedup signature.
    pub signature: String,
    /// Whether the call chains ran through the code under test (splats).
    pub under_test: bool,
    /// Seconds from the run's start to the first time it was seen.
    pub first_seen_s: f64,
    /// Epoch it was first seen in (stress), or the number of the fuzz input that first showed
    /// it, counted from 1 in its fuzz process (fuzz targets).
    pub epoch: u64,
    /// How many epochs (stress) or fuzz inputs (fuzz targets) showed it.
    pub hits: u64,
    /// The worker whose program showed it, when one program did (hangs, stale reads).
    pub worker: Option<u32>,
    /// That program's number and seed.
    pub program: Option<(u64, u64)>,
    /// The op that showed it.
    pub op: Option<usize>,
    /// Module parameters the run set (`# switch:` for the program).
    pub switches: Vec<String>,
    /// The programs of the epoch (worker, number, seed), when the evidence is kernel-wide.
    pub epoch_programs: Vec<(u32, u64, u64)>,
    /// Where `stress --recover` found it after the run died (a console log, pstore), when it
    /// was not seen live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_from: Option<String>,
    /// The release-fence contract clause it breaks, when it is one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clause: Option<crate::oracle::Clause>,
}

impl FindingMeta {
    /// The metadata of `f` first seen `at` seconds into the run, in `epoch` (a fuzz input's
    /// number), under `switches`; who ran it is the caller's to add.
    pub fn of(f: &Finding, at: f64, epoch: u64, switches: &[String]) -> FindingMeta {
        FindingMeta {
            kind: f.kind.to_string(),
            title: f.title.clone(),
            signature: f.signature.clone(),
            under_test: f.under_test,
            first_seen_s: at,
            epoch,
            hits: 1,
            op: f.op,
            switches: switches.to_vec(),
            clause: f.clause,
            ..Default::default()
        }
    }
}

/// One program a worker ran: enough to find it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgramRef {
    /// Worker.
    pub worker: u32,
    /// Its program number.
    pub k: u64,
    /// Its generator seed.
    pub seed: u64,
}

/// An open run directory.
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
    /// `epochs.jsonl`; none in a fuzz target's findings directory.
    epochs: Mutex<Option<File>>,
    /// Signature → metadata of findings stored so far.
    pub known: Mutex<BTreeMap<String, FindingMeta>>,
    /// Writes that failed (each reported on stderr as it happened; see [`RunDir::keep`]).
    pub errors: std::sync::atomic::AtomicU64,
    /// Set by [`RunDir::open`]: the findings stored now come from this console or pstore text.
    recovered_from: Option<String>,
}

/// fsync a directory, so the names created or renamed in it survive a crash (a file's own
/// fsync does not make its directory entry durable).
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// A file-name-safe, stable slug of a signature.
pub fn slug(signature: &str) -> String {
    let mut s: String = signature
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    // FNV-1a: signatures that differ only in dropped characters still get their own directory.
    let h = signature.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}-{:08x}", &s[..s.len().min(72)], h as u32)
}

impl RunDir {
    /// Create a run directory (must not exist yet, or be empty) with `run.json`.
    pub fn create(path: &Path, run_json: &serde_json::Value) -> Result<RunDir> {
        if path.exists() && fs::read_dir(path)?.next().is_some() {
            anyhow::bail!(
                "run directory {} exists and is not empty: give another --out",
                path.display()
            );
        }
        fs::create_dir_all(path.join("journal"))
            .and_then(|_| fs::create_dir_all(path.join("findings")))
            .with_context(|| format!("create run directory {}", path.display()))?;
        sync_dir(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        write_synced(
            &path.join("run.json"),
            serde_json::to_string_pretty(run_json)?.as_bytes(),
        )?;
        let epochs = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.join("epochs.jsonl"))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            epochs: Mutex::new(Some(epochs)),
            known: Mutex::new(BTreeMap::new()),
            errors: Default::default(),
            recovered_from: None,
        })
    }

    /// Open the run directory of an earlier run to add the findings recovered from `source` (a
    /// console log, pstore) to it (`stress --recover`): the findings already stored are known,
    /// so one seen again raises its hit count; new ones say where they came from.
    pub fn open(path: &Path, source: &str) -> Result<RunDir> {
        let findings = path.join("findings");
        if !findings.is_dir() {
            anyhow::bail!(
                "{} has no findings directory: is it a run directory of `m2mfuzz stress`?",
                path.display()
            );
        }
        let known = load_known(&findings)?;
        let epochs = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.join("epochs.jsonl"))
            .with_context(|| format!("open {}/epochs.jsonl", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            epochs: Mutex::new(Some(epochs)),
            known: Mutex::new(known),
            errors: Default::default(),
            recovered_from: Some(source.to_string()),
        })
    }

    /// Open (or create) a fuzz target's findings directory: `findings/` as a run has it, and
    /// nothing else. Findings already there are known, so a restarted fuzz run raises their hit
    /// counts instead of storing them again.
    pub fn findings_only(path: &Path) -> Result<RunDir> {
        let findings = path.join("findings");
        fs::create_dir_all(&findings)
            .with_context(|| format!("create findings directory {}", findings.display()))?;
        sync_dir(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            epochs: Mutex::new(None),
            known: Mutex::new(load_known(&findings)?),
            errors: Default::default(),
            recovered_from: None,
        })
    }

    /// `r`'s value, or None with the error reported on stderr and counted in
    /// [`RunDir::errors`]: a full disk costs the record that could not be written, not the run
    /// and the findings after it.
    pub fn keep<T>(&self, what: &str, r: Result<T>) -> Option<T> {
        r.map_err(|e| {
            self.errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            eprintln!(
                "m2mfuzz: could not write {what} in {}: {e:#}; the run goes on",
                self.path.display()
            );
        })
        .ok()
    }

    /// Journal a program before it runs: on disk (fsynced) before the first ioctl.
    pub fn journal_start(&self, r: &ProgramRef, prog: &Program) -> Result<()> {
        let p = self
            .path
            .join("journal")
            .join(format!("worker-{}.current", r.worker));
        write_synced(&p, prog.to_string().as_bytes())
    }

    /// Note a finished program: `K SEED RESULT MS` (how long it ran; not fsynced: the `.current`
    /// file is the safety net).
    pub fn journal_end(
        &self,
        r: &ProgramRef,
        result: &str,
        took: std::time::Duration,
    ) -> Result<()> {
        let p = self
            .path
            .join("journal")
            .join(format!("worker-{}.log", r.worker));
        let mut f = OpenOptions::new().create(true).append(true).open(&p)?;
        writeln!(f, "{} {} {result} {}", r.k, r.seed, took.as_millis())
            .with_context(|| format!("append to {}", p.display()))?;
        Ok(())
    }

    /// Append one epoch's statistics (fsynced: the report must survive a panic).
    pub fn epoch(&self, line: &serde_json::Value) -> Result<()> {
        let mut g = self.epochs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = g.as_mut() else {
            return Ok(()); // a fuzz target's findings directory has no epochs
        };
        writeln!(f, "{line}")
            .and_then(|_| f.sync_data())
            .with_context(|| format!("append to {}", self.path.join("epochs.jsonl").display()))
    }

    /// The directory of the finding with this signature.
    pub fn finding_dir(&self, signature: &str) -> PathBuf {
        self.path.join("findings").join(slug(signature))
    }

    /// Store a finding: new signatures get a directory, written under a temporary name and
    /// renamed into place, with `files` (name, bytes) beside its program; known ones get their
    /// hit count raised. Returns true when new.
    pub fn finding(
        &self,
        f: &Finding,
        mut meta: FindingMeta,
        program: &Program,
        epoch_programs: &[(ProgramRef, Program)],
        files: &[(&str, &[u8])],
    ) -> Result<bool> {
        let mut known = self.known.lock().unwrap();
        let dir = self.finding_dir(&f.signature);
        if let Some(m) = known.get_mut(&f.signature) {
            m.hits += 1;
            write_synced(
                &dir.join("finding.json"),
                serde_json::to_string_pretty(m)?.as_bytes(),
            )?;
            return Ok(false);
        }
        let tmp = self
            .path
            .join("findings")
            .join(format!(".tmp-{}", slug(&f.signature)));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.join("programs"))?;
        meta.hits = 1;
        if meta.recovered_from.is_none() {
            meta.recovered_from.clone_from(&self.recovered_from);
        }
        write_synced(
            &tmp.join("finding.json"),
            serde_json::to_string_pretty(&meta)?.as_bytes(),
        )?;
        write_synced(&tmp.join("program.m2m"), program.to_string().as_bytes())?;
        write_synced(&tmp.join("evidence.txt"), f.evidence.as_bytes())?;
        for (name, bytes) in files {
            write_synced(&tmp.join(name), bytes)?;
        }
        for (r, p) in epoch_programs {
            write_synced(
                &tmp.join("programs")
                    .join(format!("w{}-p{}.m2m", r.worker, r.k)),
                p.to_string().as_bytes(),
            )?;
        }
        sync_dir(&tmp.join("programs"))?;
        sync_dir(&tmp)?;
        fs::rename(&tmp, &dir).with_context(|| format!("store finding in {}", dir.display()))?;
        sync_dir(&self.path.join("findings"))?;
        known.insert(f.signature.clone(), meta);
        Ok(true)
    }

    /// Write `summary.json`.
    pub fn summary(&self, v: &serde_json::Value) -> Result<()> {
        write_synced(
            &self.path.join("summary.json"),
            serde_json::to_string_pretty(v)?.as_bytes(),
        )
    }
}

/// The findings stored in `findings` (a directory being written when a run died, `.tmp-*`, is
/// not one), by signature.
fn load_known(findings: &Path) -> Result<BTreeMap<String, FindingMeta>> {
    let mut known = BTreeMap::new();
    let entries = fs::read_dir(findings).with_context(|| format!("read {}", findings.display()))?;
    for e in entries {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue; // being written when the run died: not stored
        }
        let p = e.path().join("finding.json");
        let text = fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
        let m: FindingMeta =
            serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))?;
        known.insert(m.signature.clone(), m);
    }
    Ok(known)
}

/// The kernel-log line a worker writes before each program (one write, one record).
pub fn marker(worker: u32, k: u64, seed: u64) -> String {
    format!("m2mfuzz: worker {worker} program {k} seed {seed}\n")
}

/// The kernel-log line the coordinator writes when the run starts.
pub fn run_marker(seed: u64) -> String {
    format!("m2mfuzz: stress run seed {seed} started\n")
}

/// The kernel-log line the coordinator writes just before it reads the kernel log to conclude
/// epoch `epoch` (`None`: the final drain): what comes before it in the log was read live.
pub fn epoch_marker(epoch: Option<u64>) -> String {
    match epoch {
        Some(e) => format!("m2mfuzz: stress epoch {e} concluding\n"),
        None => "m2mfuzz: stress final drain\n".to_string(),
    }
}

/// The last marker of each worker in a console log or kmsg dump.
pub fn last_markers(text: &str) -> BTreeMap<u32, String> {
    let mut last = BTreeMap::new();
    for l in text.lines() {
        let Some(i) = l.find("m2mfuzz: worker ") else {
            continue;
        };
        let m = l[i..].trim_end();
        if let Some(w) = m.split_whitespace().nth(2).and_then(|w| w.parse().ok()) {
            last.insert(w, m.to_string());
        }
    }
    last
}

/// What `stress --recover` found: per worker, its last journalled program and whether it ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recovered {
    /// Worker.
    pub worker: u32,
    /// The journalled program's number.
    pub k: u64,
    /// Its seed.
    pub seed: Option<u64>,
    /// True when the log says it finished (the worker was between programs).
    pub finished: bool,
    /// The program's path in the journal.
    pub path: PathBuf,
    /// The program text (at `path`; not in `--json`).
    #[serde(skip)]
    pub text: String,
}

/// Read a run directory's journal after a crash.
pub fn recover(run: &Path) -> Result<Vec<Recovered>> {
    let dir = run.join("journal");
    let entries = fs::read_dir(&dir).with_context(|| {
        format!(
            "{} has no journal: is it a run directory of `m2mfuzz stress`?",
            run.display()
        )
    })?;
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(w) = name
            .strip_prefix("worker-")
            .and_then(|n| n.strip_suffix(".current"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let text = fs::read_to_string(&path)?;
        let prog = crate::program::text::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let k: u64 = prog
            .header("program")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{}: no `# program:` header", path.display()))?;
        let seed = prog.header("seed").and_then(|v| v.parse().ok());
        let log = fs::read_to_string(dir.join(format!("worker-{w}.log"))).unwrap_or_default();
        let finished = log
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .any(|done| done == k);
        out.push(Recovered {
            worker: w,
            k,
            seed,
            finished,
            path,
            text,
        });
    }
    out.sort_by_key(|r| r.worker);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{Finding, Kind};

    #[test]
    fn a_finding_that_cannot_be_written_is_reported_and_the_next_one_is_stored() {
        let dir = std::env::temp_dir().join(format!("m2mfuzz-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = RunDir::create(&dir, &serde_json::json!({})).unwrap();
        let prog = crate::program::text::parse("# m2mfuzz program v1\nsleep ms=0\n").unwrap();
        let a = Finding::new(Kind::Hang, "a".into(), "evidence".into(), None);
        let b = Finding::new(Kind::Hang, "b".into(), "evidence".into(), None);
        // A file where the finding's temporary directory goes: its write fails as on a broken
        // file system (permissions would not stop root).
        let blocker = dir
            .join("findings")
            .join(format!(".tmp-{}", slug(&a.signature)));
        fs::write(&blocker, "not a directory").unwrap();
        let meta = FindingMeta::default();
        let r = store.finding(&a, meta.clone(), &prog, &[], &[]);
        assert!(r.is_err(), "the blocked write fails");
        assert_eq!(store.keep("finding a", r), None);
        assert_eq!(store.errors.load(std::sync::atomic::Ordering::Relaxed), 1);
        let r = store.finding(&b, meta, &prog, &[], &[]);
        assert_eq!(store.keep("finding b", r), Some(true));
        assert!(dir
            .join("findings")
            .join(slug(&b.signature))
            .join("finding.json")
            .is_file());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fuzz_findings_directory_keeps_the_first_input_and_counts_on_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("m2mfuzz-fuzzstore-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let prog = crate::program::text::parse("# m2mfuzz program v1\nsleep ms=0\n").unwrap();
        let a = Finding::new(Kind::Hang, "a".into(), "evidence".into(), None);
        let meta = FindingMeta {
            signature: a.signature.clone(),
            ..Default::default()
        };
        let store = RunDir::findings_only(&dir).unwrap();
        let first: &[u8] = b"first input";
        let r = store.finding(&a, meta.clone(), &prog, &[], &[("input.bin", first)]);
        assert_eq!(store.keep("a", r), Some(true));
        store.epoch(&serde_json::json!({})).unwrap();
        drop(store);
        // A restarted fuzz process: the signature is known, its hit count goes on.
        let store = RunDir::findings_only(&dir).unwrap();
        let r = store.finding(&a, meta, &prog, &[], &[("input.bin", b"second input")]);
        assert_eq!(store.keep("a again", r), Some(false));
        let d = dir.join("findings").join(slug(&a.signature));
        assert_eq!(fs::read(d.join("input.bin")).unwrap(), first);
        let m: FindingMeta =
            serde_json::from_str(&fs::read_to_string(d.join("finding.json")).unwrap()).unwrap();
        assert_eq!(m.hits, 2);
        // Only findings/: no run.json, journal or epochs of a stress run.
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["findings"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
