//! Shrink a program or a stress finding directory in the lab the way a board does: `m2mfuzz
//! shrink --state` in one boot, then `m2mfuzz shrink --resume` in a fresh boot each time it exits
//! 3 (a lockdep report switched lockdep off, so the next candidate needs a new boot), until it
//! ends. The program's `# switch:` (or the finding's switches) are set at run time in each boot.
//! Or, with `each_boot`, the shrink runs on the host and every candidate gets a fresh boot of its
//! own (slower; the boot is the lab's, so m2mfuzz needs no knowledge of the lab).
use crate::boot::{self, Boot, Guest};
use crate::checks::stress::{copy_dir, quote};
use crate::guest_bins;
use crate::lab::{fresh_dir, Lab};
use anyhow::{bail, Context, Result};
use clap::Parser;
use m2mfuzz::oracle::JsonLine;
use m2mfuzz::program::Program;
use m2mfuzz::shrink::run::Found;
use m2mfuzz::shrink::session::{self, Outcome, State, Where};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A shrink in the lab.
#[derive(Clone, Debug)]
pub struct ShrinkRun {
    /// Output directory (emptied first).
    pub out: PathBuf,
    /// Give up when the shrink still asks for a reboot after this many boots.
    pub max_boots: u32,
    /// A program or a finding directory.
    pub input: PathBuf,
    /// Further `m2mfuzz shrink` arguments (e.g. `--finding "kind: title"`).
    pub args: Vec<String>,
}

/// OUT/result.json: what the shrink did, wall seconds including the boots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShrinkResult {
    /// What was shrunk.
    pub input: String,
    /// Ops before.
    pub ops_before: usize,
    /// Ops after.
    pub ops_after: usize,
    /// Boots it took.
    pub boots: u64,
    /// Wall seconds, boots included.
    pub seconds: u64,
    /// Candidates answered.
    pub candidates: usize,
    /// Candidate runs.
    pub runs: u64,
}

impl ShrinkResult {
    /// The result line.
    pub fn line(&self) -> String {
        format!(
            "shrunk {}: {} -> {} ops in {} boots, {}s wall ({} runs)",
            self.input, self.ops_before, self.ops_after, self.boots, self.seconds, self.runs
        )
    }
}

/// Shrink with `--state`/`--resume` across boots; writes OUT/shrunk.m2m (OUT/shrunk.m2m.N.m2m
/// when the interleaving is kept) and OUT/result.json, and prints the result line.
pub fn run(lab: &Lab, s: &ShrinkRun) -> Result<ShrinkResult> {
    let t0 = Instant::now();
    fresh_dir(&s.out, &lab.repo)?;
    let share = s.out.join("share");
    let state_dir = share.join("state");
    std::fs::create_dir_all(&state_dir)?;
    guest_bins::build(lab, &share)?;
    copy_input(&s.input, &share.join("input"))?;
    let guest = Guest::of(lab)?;
    let state_file = state_dir.join("shrink.json");
    let mut boots = 0;
    let mut rc = 3;
    while rc == 3 {
        boots += 1;
        if boots > s.max_boots {
            bail!(
                "the shrink still asks for a reboot after {} boots (state: {})",
                s.max_boots,
                state_dir.display()
            );
        }
        let _ = std::fs::remove_file(state_dir.join("rc"));
        let before = std::fs::read(&state_file).ok();
        let b = Boot::new(
            &s.out.join(format!("boot-{boots}")),
            &share,
            job(boots == 1, &s.args),
        )
        .timeout(1200);
        let booted = boot::run(&guest, &b)?;
        if let Err(e) = booted.rc() {
            // The candidate running took the guest down: the state names it and --resume
            // counts it as not reproducing; a boot that moved the state on not at all fails.
            if std::fs::read(&state_file).ok() == before {
                return Err(e.context(format!("boot {boots}: the shrink made no progress")));
            }
            crate::say!("boot {boots}: {e:#}; the running candidate counts as not reproducing");
        }
        rc = std::fs::read_to_string(state_dir.join("rc"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(3);
        crate::say!("boot {boots}: shrink exit {rc}");
    }
    let log = state_dir.join("shrink.log");
    if rc != 0 {
        bail!("the shrink failed (exit {rc}); log: {}", log.display());
    }
    for e in std::fs::read_dir(&state_dir)? {
        let p = e?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("shrunk.m2m"))
        {
            std::fs::copy(&p, s.out.join(p.file_name().unwrap()))?;
        }
    }
    let state = State::load(&state_file)?;
    let (ops_before, ops_after) = state
        .ops
        .with_context(|| format!("{} is not a finished shrink", state_file.display()))?;
    finish(s, (ops_before, ops_after), boots.into(), t0, &state)
}

/// The result: written to OUT/result.json and printed as its line.
fn finish(
    s: &ShrinkRun,
    (ops_before, ops_after): (usize, usize),
    boots: u64,
    t0: std::time::Instant,
    state: &State,
) -> Result<ShrinkResult> {
    let r = ShrinkResult {
        input: s.input.display().to_string(),
        ops_before,
        ops_after,
        boots,
        seconds: t0.elapsed().as_secs(),
        candidates: state.answers.len(),
        runs: state.runs,
    };
    std::fs::write(s.out.join("result.json"), serde_json::to_string_pretty(&r)?)?;
    println!("{}", r.line());
    Ok(r)
}

/// A program file or a finding directory, copied into the share.
fn copy_input(input: &Path, to: &Path) -> Result<()> {
    if input.is_dir() {
        copy_dir(input, to)
    } else {
        std::fs::copy(input, to)
            .map(|_| ())
            .with_context(|| format!("copy {}", input.display()))
    }
}

/// One boot's job: start the shrink (first boot) or resume it; its exit code left in state/rc.
fn job(first: bool, args: &[String]) -> String {
    let cmd = if first {
        let mut c = String::from(
            "./bin/m2mfuzz shrink input --state state/shrink.json -o state/shrunk.m2m",
        );
        for a in args {
            c.push(' ');
            c += &quote(a);
        }
        c
    } else {
        "./bin/m2mfuzz shrink --resume state/shrink.json".to_string()
    };
    format!("cd /host\n{cmd} >> state/shrink.log 2>&1\necho $? > state/rc\n")
}

/// The shrink options the host-side shrink (`each_boot`) takes.
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct EachBootOpts {
    /// Keep this finding (`kind: title`).
    #[arg(long)]
    finding: Vec<String>,
    /// Runs a threaded candidate gets.
    #[arg(long, default_value_t = session::RACE_TRIES)]
    tries: u32,
}

/// Shrink on the host, each candidate in a fresh boot; writes OUT/shrunk.m2m and
/// OUT/result.json (boots = candidate runs).
pub fn each_boot(lab: &Lab, s: &ShrinkRun) -> Result<ShrinkResult> {
    let t0 = Instant::now();
    let opts = EachBootOpts::try_parse_from(&s.args)?;
    let share = guest_bins::fresh_share(lab, &s.out, &[])?;
    let guest = Guest::of(lab)?;
    let mut state = State::new(&s.input, &opts.finding, Some(s.out.join("shrunk.m2m")))?;
    state.tries = opts.tries.max(1);
    let runner = |p: &Program| candidate_in_a_boot(&guest, &s.out, &share, p);
    let Outcome::Done {
        programs,
        ops_before,
        ops_after,
        state,
    } = session::run(state, None, &Where::Boot(&runner))?
    else {
        bail!("a shrink with a boot per candidate asked for a reboot");
    };
    let [one] = programs.as_slice() else {
        bail!("the finding needs its programs run concurrently: shrink it without --each-boot");
    };
    std::fs::write(s.out.join("shrunk.m2m"), one.to_string())?;
    finish(s, (ops_before, ops_after), state.runs, t0, &state)
}

/// One candidate's findings from a fresh boot (its `# switch:` on the kernel command line); a
/// guest that gave no answer is an error, which the shrink counts as not reproducing.
fn candidate_in_a_boot(guest: &Guest, out: &Path, share: &Path, p: &Program) -> Result<Found> {
    std::fs::write(share.join("cand.m2m"), p.to_string())?;
    let job =
        "/host/bin/m2mfuzz run --json /host/cand.m2m > /host/out/cand.jsonl 2>/host/out/cand.err\n";
    let b = Boot::new(&out.join("boot"), share, job)
        .timeout(300)
        .cmdline(p.header("switch").unwrap_or(""));
    let booted = boot::run(guest, &b)?;
    booted.rc()?;
    let text = std::fs::read_to_string(booted.result("cand.jsonl"))
        .with_context(|| format!("no results; console: {}", booted.console.display()))?;
    found(&text)
}

/// `run --json` lines as the shrinker's signatures and ops.
fn found(text: &str) -> Result<Found> {
    let mut f = Found::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        if let JsonLine::Finding { finding: x } = serde_json::from_str(l)? {
            f.insert(x.signature, x.op);
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_boot_starts_the_shrink_and_the_others_resume_it() {
        let first = job(true, &["--finding".into(), "splat: a b".into()]);
        assert!(first.contains(
            "./bin/m2mfuzz shrink input --state state/shrink.json -o state/shrunk.m2m --finding 'splat: a b' >> state/shrink.log 2>&1"
        ));
        assert!(first.ends_with("echo $? > state/rc\n"));
        let next = job(false, &["--finding".into(), "x".into()]);
        assert!(next.contains("./bin/m2mfuzz shrink --resume state/shrink.json >> "));
        assert!(!next.contains("--finding"));
    }

    #[test]
    fn the_result_reads_back_and_prints_the_line() {
        // OUT/result.json of a lab run (lab-out/shrink-resume/shrink).
        let r: ShrinkResult = serde_json::from_str(
            r#"{"input": "/work/ci6/lab-out/shrink-resume/padded.m2m", "ops_before": 19,
                "ops_after": 7, "boots": 5, "seconds": 51, "candidates": 17, "runs": 17}"#,
        )
        .unwrap();
        assert_eq!(
            r.line(),
            "shrunk /work/ci6/lab-out/shrink-resume/padded.m2m: 19 -> 7 ops in 5 boots, 51s wall (17 runs)"
        );
    }

    #[test]
    fn run_lines_give_signatures_and_ops() {
        let text = r#"{"finding":{"clause":"finite","evidence":"op 10 `wait s0 timeout_ms=3000` timed out","fence_timelines":["visl-cap-10"],"kind":"hang","op":10,"signature":"hang: release fence hang on visl-cap","title":"release fence hang on visl-cap","under_test":true}}
{"note":"lockdep is off (debug_locks 0): further lockdep findings need a reboot"}
"#;
        let f = found(text).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f["hang: release fence hang on visl-cap"], Some(10));
    }

    #[test]
    fn each_boot_options_parse_and_unknown_ones_fail() {
        let o = EachBootOpts::try_parse_from(["--finding", "splat: x", "--tries", "2"]).unwrap();
        assert_eq!(o.finding, vec!["splat: x".to_string()]);
        assert_eq!(o.tries, 2);
        assert!(EachBootOpts::try_parse_from(["--state", "f"]).is_err());
    }
}
