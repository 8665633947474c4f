//! The regression corpus: programs whose headers say what they must give (`# expect: clean`, or
//! one `# expect: <kind>: <title>` line per finding) and under which module parameters
//! (`# switch: videobuf2_common.rf_fault=8 vim2m.abort_mode=1`). `replay` runs them and says,
//! for each, whether the kernel still behaves as recorded.
use crate::exec::{ExecOptions, Executor};
use crate::oracle::{OracleOptions, OracleSet};
use crate::program::{text, Program};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A module parameter to set while a program runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Switch {
    /// Module (`vim2m`, `videobuf2_common`).
    pub module: String,
    /// Parameter.
    pub param: String,
    /// Value.
    pub value: String,
}

impl Switch {
    fn path(&self) -> PathBuf {
        Path::new("/sys/module")
            .join(&self.module)
            .join("parameters")
            .join(&self.param)
    }
}

/// Parse `module.param=value …`.
pub fn parse_switches(s: &str) -> Result<Vec<Switch>, String> {
    s.split_whitespace()
        .map(|w| {
            let (mp, value) = w
                .split_once('=')
                .ok_or_else(|| format!("`{w}` is not module.param=value"))?;
            let (module, param) = mp
                .split_once('.')
                .ok_or_else(|| format!("`{w}` is not module.param=value"))?;
            Ok(Switch {
                module: module.into(),
                param: param.into(),
                value: value.into(),
            })
        })
        .collect()
}

/// What a corpus program must give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// No finding.
    Clean,
    /// Exactly these findings, as `kind: title`.
    Findings(BTreeSet<String>),
}

/// A corpus program with its expectation.
#[derive(Clone, Debug)]
pub struct Entry {
    /// File.
    pub path: PathBuf,
    /// The program.
    pub program: Program,
    /// Parameters to set.
    pub switches: Vec<Switch>,
    /// What it must give.
    pub expect: Expect,
}

/// The `module.param=value` tokens of a kernel command line whose parameter exists under
/// `sys_module` (e.g. `/sys/module`): what the boot set, as `# switch:` takes them.
pub fn cmdline_switches(cmdline: &str, sys_module: &Path) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter(|t| {
            let Some((name, _)) = t.split_once('=') else {
                return false;
            };
            let Some((module, param)) = name.split_once('.') else {
                return false;
            };
            sys_module
                .join(module)
                .join("parameters")
                .join(param)
                .exists()
        })
        .map(str::to_string)
        .collect()
}

/// Whether a finding title (or signature) is a lockdep report, which a kernel gives once per boot.
pub fn is_lockdep_title(t: &str) -> bool {
    [
        "circular locking",
        "lock state",
        "recursive locking",
        "invalid wait context",
        "RCU usage",
    ]
    .iter()
    .any(|k| t.contains(k))
}

impl Entry {
    /// Whether the expectation involves a lockdep report (one per boot).
    pub fn needs_lockdep(&self) -> bool {
        match &self.expect {
            Expect::Clean => false,
            Expect::Findings(f) => f.iter().any(|t| is_lockdep_title(t)),
        }
    }
}

/// Read one corpus file.
pub fn load_file(path: &Path) -> Result<Entry> {
    let program = text::parse_file(path)?;
    let expects: Vec<&str> = program
        .header
        .iter()
        .filter(|(k, _)| k == "expect")
        .map(|(_, v)| v.as_str())
        .collect();
    let expect = match expects.as_slice() {
        [] => bail!(
            "{}: no `# expect:` header (use `# expect: clean` or `# expect: <kind>: <title>`)",
            path.display()
        ),
        ["clean"] => Expect::Clean,
        list if list.contains(&"clean") => {
            bail!(
                "{}: `# expect: clean` cannot be combined with expected findings",
                path.display()
            )
        }
        list => {
            for l in list {
                let kind = l.split(':').next().unwrap_or("");
                if crate::oracle::Kind::from_name(kind).is_none() {
                    let kinds: Vec<&str> =
                        crate::oracle::Kind::ALL.iter().map(|k| k.name()).collect();
                    bail!(
                        "{}: `# expect: {l}`: a finding is `<kind>: <title>` with kind one of {}",
                        path.display(),
                        kinds.join(", ")
                    );
                }
            }
            Expect::Findings(list.iter().map(|s| s.to_string()).collect())
        }
    };
    let switches = parse_switches(program.header("switch").unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("{}: `# switch:` {e}", path.display()))?;
    Ok(Entry {
        path: path.to_path_buf(),
        program,
        switches,
        expect,
    })
}

/// Every `.m2m` file under the paths (files or directories), sorted.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Entry>> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files).with_context(|| format!("read corpus {}", p.display()))?;
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "no .m2m programs under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    files.iter().map(|f| load_file(f)).collect()
}

/// A file named on the command line counts whatever its name; in directories, `.m2m` files.
fn collect(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !p.is_dir() {
        std::fs::metadata(p)?;
        out.push(p.to_path_buf());
        return Ok(());
    }
    for e in std::fs::read_dir(p)? {
        let e = e?.path();
        if e.is_dir() {
            collect(&e, out)?;
        } else if e.extension().is_some_and(|x| x == "m2m") {
            out.push(e);
        }
    }
    Ok(())
}

/// How one replay went.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Gave what it must.
    Pass,
    /// Gave something else.
    Fail {
        /// What differs.
        reason: String,
    },
    /// Could not be judged here.
    NotRun {
        /// Why, and what to do.
        reason: String,
    },
}

/// One program's replay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Replayed {
    /// File.
    pub path: PathBuf,
    /// Verdict.
    pub status: Status,
    /// Findings as `kind: title`.
    pub got: BTreeSet<String>,
    /// Wall time.
    pub seconds: f64,
    /// Runs made: more than one only for a threaded program that expects findings (see
    /// [`replay_one`]).
    pub runs: u32,
}

/// Sets switches; puts the old values back when dropped.
pub struct Applied(Vec<(PathBuf, String)>);

impl Applied {
    /// Set the switches (module parameters under /sys/module).
    pub fn apply(switches: &[Switch]) -> Result<Applied, String> {
        let mut done = Applied(Vec::new());
        for s in switches {
            let p = s.path();
            let old = std::fs::read_to_string(&p).map_err(|e| {
                format!(
                    "switch {}.{}: {} ({e}); is this the lab kernel?",
                    s.module,
                    s.param,
                    p.display()
                )
            })?;
            std::fs::write(&p, &s.value).map_err(|e| format!("set {}: {e}", p.display()))?;
            done.0.push((p, old.trim().to_string()));
        }
        Ok(done)
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        for (p, old) in self.0.iter().rev() {
            let _ = std::fs::write(p, old);
        }
    }
}

/// Replay one entry in this boot, the ledger reading `keeper`'s tracefs instance.
pub fn replay_one(e: &Entry, keeper: &mut crate::oracle::TraceKeeper) -> Replayed {
    let start = Instant::now();
    let mut runs = 0;
    let done = |status, got, runs| Replayed {
        path: e.path.clone(),
        status,
        got,
        seconds: start.elapsed().as_secs_f64(),
        runs,
    };
    let lockdep_on = crate::device::debug_state::read().lockdep_enabled;
    if lockdep_on == Some(false) {
        return done(
            Status::NotRun {
                reason: "lockdep is off since an earlier report in this boot: replay this program in a fresh boot \
                         (ci/lab/replay.sh boots one per lockdep program)"
                    .into(),
            },
            BTreeSet::new(),
            runs,
        );
    }
    let applied = match Applied::apply(&e.switches) {
        Ok(a) => a,
        Err(reason) => return done(Status::NotRun { reason }, BTreeSet::new(), runs),
    };
    let want = match &e.expect {
        Expect::Clean => BTreeSet::new(),
        Expect::Findings(f) => f.clone(),
    };
    // A race shows in some runs only: a threaded program that expects findings gets up to as
    // many runs as a shrink candidate does, until it shows them. One that expects none runs once
    // (a run with a finding is a finding).
    let tries = if e.program.is_threaded() && !want.is_empty() {
        crate::shrink::session::RACE_TRIES
    } else {
        1
    };
    let (verdict, got) = loop {
        let mut oracles = OracleSet::keeping(
            OracleOptions {
                fence_deadline: Duration::from_secs(5),
                ..Default::default()
            },
            keeper,
        );
        Executor::new(ExecOptions::default()).run_observed(&e.program, &mut oracles);
        let verdict = oracles.finish();
        runs += 1;
        let got: BTreeSet<String> = verdict.findings.iter().map(|f| f.to_string()).collect();
        if got == want || runs >= tries || !got.is_empty() {
            break (verdict, got);
        }
    };
    drop(applied);
    let status = if !verdict.notes.is_empty() && verdict.notes.iter().any(|n| n.starts_with("no "))
    {
        Status::NotRun {
            reason: verdict.notes.join("; "),
        }
    } else if got == want {
        Status::Pass
    } else {
        let missing: Vec<&String> = want.difference(&got).collect();
        let extra: Vec<&String> = got.difference(&want).collect();
        let mut r = Vec::new();
        if !missing.is_empty() {
            r.push(format!(
                "expected but not found: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if !extra.is_empty() {
            r.push(format!(
                "found but not expected: {}",
                extra
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Status::Fail {
            reason: r.join("; "),
        }
    };
    done(status, got, runs)
}

/// A summary table of replays.
pub fn table(results: &[Replayed]) -> String {
    let mut s = format!(
        "{:<44} {:<8} {:>7}  {}\n",
        "program", "result", "seconds", "findings / reason"
    );
    for r in results {
        let name = r.path.display().to_string();
        let got = if r.got.is_empty() {
            "none".to_string()
        } else {
            r.got.iter().cloned().collect::<Vec<_>>().join("; ")
        };
        let (status, why) = match &r.status {
            Status::Pass => ("pass", got),
            Status::Fail { reason } => ("FAIL", reason.clone()),
            Status::NotRun { reason } => ("NOT RUN", reason.clone()),
        };
        let runs = if r.runs > 1 {
            format!(" ({} runs)", r.runs)
        } else {
            String::new()
        };
        s += &format!("{name:<44} {status:<8} {:>7.1}  {why}{runs}\n", r.seconds);
    }
    let pass = results
        .iter()
        .filter(|r| matches!(r.status, Status::Pass))
        .count();
    s += &format!("{pass} passed, {} failed\n", results.len() - pass);
    s
}
