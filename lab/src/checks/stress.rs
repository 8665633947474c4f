//! `m2mfuzz stress` in the lab, its report written on the host; the main job without hardware.
//! With `check_trace`, an independent tracefs instance counts the dma_fence and vb2 events over
//! the whole run and the report's counts must equal them. When the guest times out or dies (a
//! wedged or crashed kernel) the console's kernel reports the run could not store itself become
//! findings of its store (the directory as the guest left it is kept in OUT/guest-run).
use crate::boot::{self, Boot, Guest};
use crate::lab::Lab;
use crate::{apt, guest_bins};
use anyhow::{bail, Context, Result};
use m2mfuzz::profile::stress::{parse_duration, StressProfile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A stress run in the lab.
#[derive(Clone, Debug)]
pub struct StressRun {
    /// Output directory (emptied first).
    pub out: PathBuf,
    /// Profile: relative to the repository, or a path of its own.
    pub profile: PathBuf,
    /// Extra kernel command line.
    pub cmdline: String,
    /// Time limit of the boot (default: the run's duration plus 300 s).
    pub timeout: Option<u64>,
    /// Count the events in an independent tracefs instance and compare.
    pub check_trace: bool,
    /// Further `m2mfuzz stress` arguments.
    pub args: Vec<String>,
}

/// What a lab stress run ended with.
#[derive(Debug)]
pub struct StressOutcome {
    /// m2mfuzz's exit code: 0 clean, 1 findings.
    pub rc: i32,
}

/// The tracefs instance the guest job counts events in.
const INSTANCE: &str = "/sys/kernel/tracing/instances/m2mfuzz-check";

/// The events compared against the report.
const CHECKED: &[&str] = &[
    "dma_fence_init",
    "dma_fence_emit",
    "dma_fence_signaled",
    "dma_fence_destroy",
    "vb2_qbuf",
    "vb2_buf_queue",
    "vb2_buf_done",
    "vb2_dqbuf",
];

/// Run it; an error when the guest gave no answer (after recovering what it could) or the
/// counts differ.
pub fn run(lab: &Lab, s: &StressRun) -> Result<StressOutcome> {
    let (src, rel) = if s.profile.is_absolute() {
        let name = s.profile.file_name().context("a profile file")?;
        (s.profile.clone(), Path::new("stress-profiles").join(name))
    } else {
        (lab.repo.join(&s.profile), s.profile.clone())
    };
    let profile = StressProfile::load(&src).with_context(|| {
        format!(
            "profile {} (give it relative to the repository, or absolute)",
            src.display()
        )
    })?;
    let duration = match s.args.iter().position(|a| a == "--duration") {
        Some(i) => parse_duration(s.args.get(i + 1).map_or("", |d| d.as_str()))
            .map_err(anyhow::Error::msg)?,
        None => profile.duration,
    };
    let timeout = s.timeout.unwrap_or(duration.as_secs() + 300);
    let share = guest_bins::fresh_share(lab, &s.out, &["stress-profiles"])?;
    std::fs::create_dir_all(share.join(rel.parent().unwrap_or(Path::new("."))))?;
    std::fs::copy(&src, share.join(&rel))?;
    let job = job(&rel, &s.args, s.check_trace);
    crate::say!(
        "stress in the lab: {} {}, time limit {timeout}s",
        rel.display(),
        s.args.join(" ")
    );
    let guest = Guest::of(lab)?;
    let mut b = Boot::new(&s.out, &share, job)
        .timeout(timeout)
        .cmdline(&s.cmdline)
        .follow();
    b.stoppable = true;
    let booted = boot::run(&guest, &b)?;
    let run = booted.result("run");
    let has_run = run.join("run.json").exists();
    if booted.failed() && has_run {
        crate::say!(
            "the guest gave no answer: recovering the run's findings from its console on the host"
        );
        let kept = s.out.join("guest-run");
        copy_dir(&run, &kept)?;
        recover(&run, &booted.console, &s.out.join("recover.txt"))?;
    } else if booted.failed() {
        crate::say!("the guest failed before the run directory was written: nothing to recover");
    }
    if has_run {
        // The plots' text; without the font they are drawn without it.
        if let Err(e) = apt::need(&["fonts-dejavu-core"]) {
            crate::say!("fonts-dejavu-core not installed ({e:#}): the plots have no text");
        }
        let path = s.out.join("report.md");
        write_report(&run, &path)?;
        crate::say!(
            "report: {} (plots in {})",
            path.display(),
            run.join("plots").display()
        );
    }
    let rc = booted.rc()?;
    if s.check_trace {
        check_trace(&booted.results, &run, &s.out.join("trace-check.md"))?;
    }
    if booted.interrupted {
        bail!("interrupted (Ctrl-C): the run stopped early; its report is written");
    }
    Ok(StressOutcome { rc })
}

/// The guest's job: the reference instance around a stoppable `m2mfuzz stress`.
fn job(profile: &Path, args: &[String], check: bool) -> String {
    let mut j = String::from("cd /host\n");
    if check {
        j += &format!("mkdir {INSTANCE} && echo 131072 > {INSTANCE}/buffer_size_kb\n");
        j += &format!(
            "echo 1 > {INSTANCE}/events/dma_fence/enable; echo 1 > {INSTANCE}/events/vb2/enable\n"
        );
    }
    let mut cmd = format!(
        "./bin/m2mfuzz stress --profile {} --out out/run --plain",
        quote(&profile.to_string_lossy())
    );
    for a in args {
        cmd.push(' ');
        cmd += &quote(a);
    }
    j += &boot::stoppable(&cmd);
    if check {
        j += &format!(
            "echo 0 > {INSTANCE}/events/dma_fence/enable; echo 0 > {INSTANCE}/events/vb2/enable\n"
        );
        j += &format!("cat {INSTANCE}/per_cpu/cpu*/stats > out/trace-stats.txt\n");
        // The event names only: the host counts them.
        j += &format!(
            "sed -n -E 's/.* [0-9]+\\.[0-9]+: ([a-z0-9_]+):.*/\\1/p' {INSTANCE}/trace > out/trace-events.txt\n"
        );
    }
    j += "exit $rc\n";
    j
}

/// Single-quote `s` for sh.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Turn the console's kernel reports after the run's last live reading into findings.
pub fn recover(run: &Path, console: &Path, out: &Path) -> Result<()> {
    let text = String::from_utf8_lossy(&std::fs::read(console)?).into_owned();
    let source = console.display().to_string();
    let mut lines = Vec::new();
    match m2mfuzz::stress::recover::recover_console(run, &text, &source) {
        Ok(r) => {
            let stored = r.reports.iter().filter(|x| x.under_test).count();
            for rep in &r.reports {
                lines.push(format!(
                    "{} {} (epoch {}; running: {})",
                    if rep.under_test {
                        "FINDING"
                    } else {
                        "elsewhere"
                    },
                    rep.finding,
                    rep.epoch,
                    rep.programs.join(" ")
                ));
            }
            lines.extend(r.notes.iter().map(|n| format!("note: {n}")));
            crate::say!(
                "stress --recover: {stored} kernel report(s) of the console stored as findings in {} ({})",
                run.join("findings").display(),
                out.display()
            );
        }
        Err(e) => {
            lines.push(format!("recovery failed: {e:#}"));
            crate::say!("recovery failed: {e:#}");
        }
    }
    std::fs::write(out, lines.join("\n") + "\n")?;
    Ok(())
}

/// The Markdown report of a run directory, its plots drawn.
pub fn write_report(run: &Path, to: &Path) -> Result<()> {
    let mut r = m2mfuzz::report::load(run)?;
    m2mfuzz::report::draw_plots(&mut r);
    let at = to.parent().unwrap_or(Path::new("."));
    std::fs::write(to, m2mfuzz::report::markdown(&[r], at))
        .with_context(|| format!("write {}", to.display()))
}

/// The reference instance's event counts against the report's; the table goes to `table`.
fn check_trace(results: &Path, run: &Path, table: &Path) -> Result<()> {
    let events = std::fs::read_to_string(results.join("trace-events.txt"))
        .context("no reference trace events (the guest job did not finish)")?;
    let stats = std::fs::read_to_string(results.join("trace-stats.txt"))?;
    let reference = count_events(&events);
    let lost = overruns(&stats);
    let report = m2mfuzz::report::load(run)?;
    let (text, equal) = compare(&report.totals.events, &reference, lost);
    std::fs::write(table, &text)?;
    print!("{text}");
    if lost != 0 {
        bail!(
            "the reference trace lost {lost} events: counts not comparable ({})",
            table.display()
        );
    }
    if !equal {
        bail!(
            "the report's counts differ from tracefs ({})",
            table.display()
        );
    }
    crate::say!("report counts equal the independent tracefs counts");
    Ok(())
}

/// Events by name.
fn count_events(names: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for n in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        *m.entry(n.to_string()).or_insert(0) += 1;
    }
    m
}

/// Lost events (`overrun:` lines of the per-CPU stats, summed).
fn overruns(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|l| l.strip_prefix("overrun:"))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// The comparison table and whether every count is equal.
fn compare(
    report: &BTreeMap<String, u64>,
    reference: &BTreeMap<String, u64>,
    lost: u64,
) -> (String, bool) {
    let mut equal = true;
    let mut t =
        String::from("| event | report | tracefs (independent instance) |\n|---|---:|---:|\n");
    for ev in CHECKED {
        let r = report.get(*ev).copied().unwrap_or(0);
        let x = reference.get(*ev).copied().unwrap_or(0);
        equal &= r == x;
        t += &format!("| {ev} | {r} | {x} |\n");
    }
    t += &format!("\ntracefs overruns (lost events) in the reference instance: {lost}\n");
    (t, equal)
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)
                .with_context(|| format!("copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_compare_event_by_event_and_a_missing_one_is_zero() {
        let refs = count_events("vb2_qbuf\nvb2_qbuf\ndma_fence_emit\n\n");
        assert_eq!(refs["vb2_qbuf"], 2);
        let mut rep = BTreeMap::new();
        rep.insert("vb2_qbuf".to_string(), 2);
        rep.insert("dma_fence_emit".to_string(), 1);
        let (t, eq) = compare(&rep, &refs, 0);
        assert!(eq, "{t}");
        assert!(t.contains("| vb2_qbuf | 2 | 2 |"));
        assert!(t.contains("| vb2_dqbuf | 0 | 0 |"));
        rep.insert("vb2_dqbuf".to_string(), 1);
        assert!(!compare(&rep, &refs, 0).1);
    }

    #[test]
    fn overruns_are_summed_over_the_cpus() {
        let stats = "entries: 10\noverrun: 0\ncommit overrun: 0\nentries: 3\noverrun: 7\n";
        assert_eq!(overruns(stats), 7);
    }

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("--duration"), "--duration");
        assert_eq!(quote("vim2m.rf_error_every=3"), "vim2m.rf_error_every=3");
        assert_eq!(quote("leaked-fence: a b"), "'leaked-fence: a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn the_job_runs_stress_stoppably_and_counts_only_when_checking() {
        let j = job(
            Path::new("stress-profiles/lab-smoke.toml"),
            &["--seed".into(), "7".into()],
            false,
        );
        assert!(j.contains("./bin/m2mfuzz stress --profile stress-profiles/lab-smoke.toml --out out/run --plain --seed 7 &"));
        assert!(j.contains("/host/stop"));
        assert!(!j.contains(INSTANCE));
        assert!(j.trim_end().ends_with("exit $rc"));
        assert!(job(Path::new("p.toml"), &[], true).contains("trace-events.txt"));
    }
}
