//! Ground truth of `vim2m.race_mode` (patches/0008): found by two threads and only by two
//! threads. Each run is a fresh boot; the race programs (ci/lab/race/, C) run under `m2mfuzz
//! watch --json`, so the oracles judge the kernel log independently of the programs' own kmsg
//! check, and the console is read on the host as a third opinion:
//! - single: race_mode=1, `race-single ITERATIONS` (one thread, every cancel right after the
//!   QBUF that started the job): no symptom, no finding, and the program saw none (exit 0);
//! - threads: race_mode=1, BOOTS boots of `race-threads SECONDS` (a streamer and a
//!   STREAMOFF/ON thread on one context): the console's WARNING in vb2_buffer_done and the
//!   finding `splat: WARNING in vb2_buffer_done` in at least NEED of them;
//! - control: race_mode=0, `race-threads SECONDS` then `race-single ITERATIONS`: nothing, and
//!   lockdep still on.
use crate::boot::{self, Boot, Guest};
use crate::checks::faults::lockdep_on;
use crate::guest_bins;
use crate::lab::Lab;
use anyhow::{Context, Result};
use m2mfuzz::oracle::{Exited, JsonLine};
use std::collections::BTreeSet;
use std::path::Path;

/// The finding two threads must give.
const WANT: &str = "splat: WARNING in vb2_buffer_done";

/// The switch.
const SWITCH: &str = "vim2m.race_mode=1";

/// Settings of a race check.
#[derive(Clone, Debug)]
pub struct RaceCheck {
    /// Boots of the two-thread program.
    pub boots: u32,
    /// Of which at least this many must show it.
    pub need: u32,
    /// How long `race-threads` runs.
    pub seconds: u32,
    /// `race-single`'s iterations.
    pub iterations: u32,
}

/// What a watched race program left.
#[derive(Debug, Default)]
struct Watched {
    /// The oracles' findings, `kind: title`.
    findings: BTreeSet<String>,
    /// How the program ended (its exit code is its own verdict: 1 when it saw the symptom).
    exit: Option<Exited>,
    /// The program's summary line (stderr), for the table only.
    summary: String,
}

/// `m2mfuzz watch --json` lines: the findings and the command's end.
fn parse_watch(text: &str) -> Result<(BTreeSet<String>, Option<Exited>)> {
    let mut findings = BTreeSet::new();
    let mut exit = None;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<JsonLine>(l).with_context(|| format!("watch line: {l}"))? {
            JsonLine::Finding { finding } => {
                findings.insert(finding.to_string());
            }
            JsonLine::Exit { exit: e } => exit = Some(e),
            _ => {}
        }
    }
    Ok((findings, exit))
}

/// The console shows the symptom: a `WARNING: CPU: …` line naming vb2_buffer_done.
fn console_symptom(console: &str) -> bool {
    console.lines().any(|l| {
        l.split_once("WARNING: CPU: ")
            .is_some_and(|(_, rest)| rest.contains("vb2_buffer_done"))
    })
}

/// The console has any WARNING or BUG (the control's test).
fn console_report(console: &str) -> bool {
    console.contains("WARNING:") || console.contains("BUG:")
}

/// A race program's own summary line on stderr, without its `race-x: /dev/videoN: ` prefix.
fn summary(err: &str) -> String {
    err.lines()
        .find(|l| l.starts_with("race-"))
        .map(|l| {
            let mut parts = l.splitn(3, ": ");
            let (_, _, rest) = (parts.next(), parts.next(), parts.next());
            rest.unwrap_or(l).chars().take(160).collect()
        })
        .unwrap_or_default()
}

/// One boot running `programs` (name, argument) in turn, each under `watch --json`.
fn job(programs: &[(&str, u32)]) -> String {
    let mut j = String::from("cd /host\n");
    for (p, arg) in programs {
        j += &format!(
            "./bin/m2mfuzz watch --json -- ./bin/{p} {arg} > out/{p}.jsonl 2> out/{p}.err; echo $? > out/{p}.rc\n"
        );
    }
    j += "cat /proc/lockdep_stats > out/lockdep_stats\n";
    j
}

/// A boot's results: each program's, the console, lockdep's state.
struct Run {
    programs: Vec<Watched>,
    console: String,
    lockdep_on: bool,
}

fn boot_one(
    guest: &Guest,
    out: &Path,
    share: &Path,
    name: &str,
    switch: &str,
    programs: &[(&str, u32)],
    timeout: u64,
) -> Result<Run> {
    let d = out.join(name);
    let booted = boot::run(
        guest,
        &Boot::new(&d, share, job(programs))
            .timeout(timeout)
            .cmdline(switch),
    )?;
    // A time-out or a dead guest is no answer; the job's own exit code is no verdict.
    booted.rc()?;
    for e in std::fs::read_dir(&booted.results)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), d.join(e.file_name()))?;
        }
    }
    let read = |f: String| std::fs::read_to_string(d.join(f)).unwrap_or_default();
    let mut ws = Vec::new();
    for (p, _) in programs {
        let (findings, exit) =
            parse_watch(&read(format!("{p}.jsonl"))).with_context(|| format!("{name}: {p}"))?;
        ws.push(Watched {
            findings,
            exit,
            summary: summary(&read(format!("{p}.err"))),
        });
    }
    let console = String::from_utf8_lossy(&std::fs::read(&booted.console)?).into_owned();
    Ok(Run {
        programs: ws,
        console,
        lockdep_on: lockdep_on(&read("lockdep_stats".into())),
    })
}

fn joined(f: &BTreeSet<String>) -> String {
    f.iter().cloned().collect::<Vec<_>>().join(";")
}

/// Run it; prints the table (also OUT/results.md). False when an expectation failed.
pub fn run(lab: &Lab, out: &Path, c: &RaceCheck) -> Result<bool> {
    let share = guest_bins::fresh_share(lab, out, &[])?;
    let guest = Guest::of(lab)?;
    let timeout = u64::from(c.seconds) * 2 + 300;
    let mut md = String::from(
        "| run | switch | program | console symptom | findings (oracles) | program's summary |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut row = |run: &str, sw: &str, prog: &str, s: &str, f: &str, sum: &str| {
        let f = if f.is_empty() { "none" } else { f };
        let sw = if sw.is_empty() { "none" } else { sw };
        let line = format!("| {run} | `{sw}` | {prog} | {s} | {f} | {sum} |\n");
        print!("{line}");
        md += &line;
    };
    let mut fail = false;

    let single = format!("race-single {}", c.iterations);
    let r = boot_one(
        &guest,
        out,
        &share,
        "single",
        SWITCH,
        &[("race-single", c.iterations)],
        timeout,
    )?;
    let w = &r.programs[0];
    let shown = console_symptom(&r.console);
    // The program's own kmsg check: exit 0 when it saw nothing.
    let own_none = w.exit.is_some_and(|e| e.code == Some(0));
    fail |= shown || !w.findings.is_empty() || !own_none;
    let s = if shown { "shown" } else { "none" };
    row(
        "single",
        SWITCH,
        &single,
        s,
        &joined(&w.findings),
        &w.summary,
    );

    let threads = format!("race-threads {}", c.seconds);
    let mut hits = 0;
    for i in 1..=c.boots {
        let name = format!("threads-{i}");
        let r = boot_one(
            &guest,
            out,
            &share,
            &name,
            SWITCH,
            &[("race-threads", c.seconds)],
            timeout,
        )?;
        let w = &r.programs[0];
        let hit = console_symptom(&r.console) && joined(&w.findings) == WANT;
        hits += u32::from(hit);
        let s = if hit { "shown" } else { "none" };
        row(&name, SWITCH, &threads, s, &joined(&w.findings), &w.summary);
    }
    if hits < c.need {
        crate::say!(
            "race_mode=1: two threads showed the symptom in {hits} of {} boots (need {})",
            c.boots,
            c.need
        );
        fail = true;
    }

    let r = boot_one(
        &guest,
        out,
        &share,
        "control",
        "",
        &[("race-threads", c.seconds), ("race-single", c.iterations)],
        timeout,
    )?;
    let found: BTreeSet<String> = r
        .programs
        .iter()
        .flat_map(|w| w.findings.iter().cloned())
        .collect();
    let shown = console_report(&r.console);
    fail |= shown || !found.is_empty();
    if !r.lockdep_on {
        crate::say!("control: lockdep switched off");
        fail = true;
    }
    let sums: Vec<&str> = r.programs.iter().map(|w| w.summary.as_str()).collect();
    row(
        "control",
        "",
        &format!("{threads}, {single}"),
        if shown { "shown" } else { "none" },
        &joined(&found),
        &sums.join("; "),
    );
    std::fs::write(out.join("results.md"), &md)?;
    let kernel = guest
        .kernel
        .parent()
        .and_then(Path::file_name)
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    crate::say!(
        "kernel {kernel}: two threads showed it in {hits} of {} boots",
        c.boots
    );
    if fail {
        crate::say!("race check failed; results in {}", out.display());
    }
    Ok(!fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_give_the_findings_and_the_programs_own_verdict() {
        let text = r#"{"finding":{"kind":"splat","title":"WARNING in vb2_buffer_done","signature":"splat: WARNING in vb2_buffer_done","op":null,"evidence":"WARNING: CPU: 1 PID: 52 at drivers/media/common/videobuf2/videobuf2-core.c:1203 vb2_buffer_done+0x2c/0x1f0","under_test":true}}
{"note":"lockdep is off after this report"}
{"exit":{"code":1,"signal":null}}
"#;
        let (f, exit) = parse_watch(text).unwrap();
        assert_eq!(joined(&f), WANT);
        assert_eq!(exit.unwrap().code, Some(1));
        let (f, exit) = parse_watch("").unwrap();
        assert!(f.is_empty() && exit.is_none());
        assert!(parse_watch("{\"finding\":{\"kind\":\"nope\"}}").is_err());
    }

    #[test]
    fn the_console_symptom_is_a_warning_in_vb2_buffer_done() {
        let c = "[   12.3] ------------[ cut here ]------------\n\
                 [   12.3] WARNING: CPU: 1 PID: 52 at drivers/media/common/videobuf2/videobuf2-core.c:1203 vb2_buffer_done+0x2c/0x1f0\n";
        assert!(console_symptom(c));
        assert!(console_report(c));
        // Another WARNING, or vb2_buffer_done in a call trace line only, is not it.
        let other = "[ 1.0] WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x1/0x2\n[ 1.1]  vb2_buffer_done+0x2c/0x1f0\n";
        assert!(!console_symptom(other));
        assert!(!console_report("[ 1.0] vim2m: job done\n"));
    }

    #[test]
    fn the_summary_drops_the_programs_and_nodes_prefix() {
        let err = "race-single: /dev/video3: 200 iterations in 12.6 s, 2000 QBUF (0 failed), 1017 windows (QBUF >= 2 ms), 0 other ioctl errors; symptom: none\n";
        assert_eq!(
            summary(err),
            "200 iterations in 12.6 s, 2000 QBUF (0 failed), 1017 windows (QBUF >= 2 ms), 0 other ioctl errors; symptom: none"
        );
        assert_eq!(summary("m2mfuzz: no such file\n"), "");
    }

    #[test]
    fn the_job_watches_each_program_and_keeps_lockdeps_state() {
        let j = job(&[("race-threads", 60), ("race-single", 200)]);
        assert!(j.contains("./bin/m2mfuzz watch --json -- ./bin/race-threads 60 > out/race-threads.jsonl 2> out/race-threads.err; echo $? > out/race-threads.rc\n"));
        assert!(j.find("race-threads").unwrap() < j.find("race-single").unwrap());
        assert!(j.ends_with("cat /proc/lockdep_stats > out/lockdep_stats\n"));
    }
}
