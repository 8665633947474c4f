//! Does the stress engine find each fault? For every fault program (corpora/faults/*.m2m), a
//! boot per seed with its `# switch:` on the kernel command line runs `m2mfuzz stress`
//! (lab-smoke, `--until` the program's `# expect:` finding) for up to the budget, and the
//! finding must be stored; findings on the way (the same fault seen on the other driver, say)
//! are kept and pass. The table gives the time to that finding (median and max over the seeds);
//! OUT/results.md and OUT/results.jsonl hold it. A guest that times out or dies is recovered
//! from its console (its findings stored as stress's own) and fails the check.
use crate::boot::{self, Boot, Ending, Guest};
use crate::checks::fuzz::findings;
use crate::checks::stress::{copy_dir, quote, recover};
use crate::guest_bins;
use crate::lab::Lab;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One boot's result: a line of results.jsonl (bench.sh reads them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The program's name (its file stem).
    pub program: String,
    /// Its `# switch:`.
    pub switch: String,
    /// Its `# expect:` finding.
    pub expect: String,
    /// The stress seed.
    pub seed: u64,
    /// Seconds into the run the expected finding was first seen; none when it was not.
    pub seconds: Option<f64>,
    /// Every finding stored, `kind: title; …`; for a guest that gave no answer, "guest failed
    /// (…); recovered: …".
    pub found: String,
    /// The guest timed out or died: no time is a figure of this row.
    #[serde(default)]
    pub guest_failed: bool,
}

/// The outcome: whether every fault was found with every guest answering.
pub fn run(
    lab: &Lab,
    out: &Path,
    budget: u64,
    seeds: &[u64],
    programs: &[PathBuf],
) -> Result<bool> {
    let programs = if programs.is_empty() {
        default_programs(&lab.repo.join("corpora/faults"))?
    } else {
        programs.to_vec()
    };
    let share = guest_bins::fresh_share(lab, out, &["stress-profiles"])?;
    let guest = Guest::of(lab)?;
    let mut rows = Vec::new();
    let (mut missed, mut dead) = (0, 0);
    'programs: for p in &programs {
        let prog = m2mfuzz::program::text::parse_file(p)?;
        let name = p
            .file_stem()
            .context("a program file")?
            .to_string_lossy()
            .into_owned();
        let switch = prog.header("switch").unwrap_or("").to_string();
        let expect = prog
            .header("expect")
            .with_context(|| format!("{} has no `# expect:` finding", p.display()))?
            .to_string();
        let mut found_once = false;
        for &seed in seeds {
            let dir = out.join(format!("{name}-{seed}"));
            let b = Boot {
                stoppable: true,
                ..Boot::new(&dir, &share, job(budget, seed, &expect))
                    .timeout(budget + 240)
                    .cmdline(&switch)
            };
            let booted = boot::run(&guest, &b)?;
            let run = booted.result("run");
            let died = match booted.ending {
                Ending::Exited(_) => None,
                Ending::TimedOut => Some(124),
                Ending::GuestDied { .. } => Some(125),
            };
            if died.is_some() {
                dead += 1;
                // Nothing lost: what the console holds becomes findings of the run.
                if run.join("run.json").exists() {
                    recover(&run, &booted.console, &dir.join("recover.txt"))?;
                }
            }
            let stored = findings(&run.join("findings"))?;
            let names: Vec<String> = stored
                .iter()
                .map(|(_, m)| format!("{}: {}", m.kind, m.title))
                .collect();
            let seconds = stored
                .iter()
                .find(|(_, m)| format!("{}: {}", m.kind, m.title) == expect)
                .map(|(_, m)| m.first_seen_s);
            if run.is_dir() {
                copy_dir(&run, &dir.join("run"))?;
            }
            let mut found = names.join("; ");
            let seconds = match (died, seconds) {
                (Some(code), _) => {
                    found = format!(
                        "guest failed (exit {code}; console: {}); recovered: {}",
                        booted.console.display(),
                        if found.is_empty() { "nothing" } else { &found }
                    );
                    crate::say!("{name} seed {seed}: {found}");
                    None
                }
                (None, Some(t)) => {
                    found_once = true;
                    crate::say!("{name} seed {seed}: found in {t:.1}s");
                    Some(t)
                }
                (None, None) => {
                    crate::say!(
                        "{name} seed {seed}: NOT found in {budget}s (found: {})",
                        if found.is_empty() { "nothing" } else { &found }
                    );
                    None
                }
            };
            rows.push(Row {
                program: name.clone(),
                switch: switch.clone(),
                expect: expect.clone(),
                seed,
                seconds,
                found,
                guest_failed: died.is_some(),
            });
            write_jsonl(&out.join("results.jsonl"), &rows)?;
            if booted.interrupted {
                missed += usize::from(!found_once);
                break 'programs;
            }
        }
        missed += usize::from(!found_once);
    }
    let t = table(&rows);
    std::fs::write(out.join("results.md"), &t)?;
    print!("{t}");
    if boot::interrupted() {
        bail!("interrupted (Ctrl-C): the table holds the boots that ran");
    }
    if dead > 0 {
        crate::say!("{dead} boot(s) timed out or died (the console paths are above)");
    }
    if missed > 0 {
        crate::say!("{missed} fault(s) not found by stress within {budget}s");
    }
    Ok(missed == 0 && dead == 0)
}

/// corpora/faults/*.m2m, sorted (not the subdirectories: evil/ is a set of its own).
fn default_programs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "m2m"))
        .collect();
    v.sort();
    Ok(v)
}

/// The guest's job: stress until the expected finding, stoppable by Ctrl-C.
fn job(budget: u64, seed: u64, expect: &str) -> String {
    let cmd = format!(
        "./bin/m2mfuzz stress --profile stress-profiles/lab-smoke.toml --duration {budget}s \
         --seed {seed} --until {} --plain --out out/run",
        quote(expect)
    );
    format!("cd /host\n{}exit $rc\n", boot::stoppable(&cmd))
}

fn write_jsonl(path: &Path, rows: &[Row]) -> Result<()> {
    let mut s = String::new();
    for r in rows {
        s += &serde_json::to_string(r)?;
        s.push('\n');
    }
    std::fs::write(path, s).with_context(|| format!("write {}", path.display()))
}

/// The Markdown table: a line per program (by name), times rounded to 0.1 s, the median the
/// lower middle of the sorted times.
fn table(rows: &[Row]) -> String {
    let mut by: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by.entry(&r.program).or_default().push(r);
    }
    let mut t = String::from(
        "| fault (switch) | expected finding | found | median s | max s |\n|---|---|---:|---:|---:|\n",
    );
    let tenth = |x: f64| format!("{}", (x * 10.0).round() / 10.0);
    for (name, g) in by {
        let mut times: Vec<f64> = g.iter().filter_map(|r| r.seconds).collect();
        times.sort_by(f64::total_cmp);
        let (median, max) = match times.len() {
            0 => ("-".to_string(), "-".to_string()),
            n => (tenth(times[(n - 1) / 2]), tenth(times[n - 1])),
        };
        t += &format!(
            "| {name} (`{}`) | {} | {}/{} | {median} | {max} |\n",
            g[0].switch,
            g[0].expect,
            times.len(),
            g.len()
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(program: &str, seed: u64, seconds: Option<f64>) -> Row {
        Row {
            program: program.into(),
            switch: "videobuf2_common.rf_fault=256".into(),
            expect: "stale-read: release fence signalled before the frame was written on vim2m"
                .into(),
            seed,
            seconds,
            found: String::new(),
            guest_failed: false,
        }
    }

    #[test]
    fn the_table_gives_found_counts_lower_medians_and_maxima() {
        let rows = vec![
            row("reference-leak", 1, Some(22.751209397)),
            row("early-signal", 1, Some(26.976508156)),
            row("early-signal", 2, Some(8.519191541)),
            row("early-signal", 3, None),
            row("v1-shape", 1, None),
            row("reference-leak", 2, Some(16.289603429)),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        // Sorted by program; two of three found; the median of two is the lower one.
        assert_eq!(
            lines[2],
            "| early-signal (`videobuf2_common.rf_fault=256`) | stale-read: release fence signalled \
             before the frame was written on vim2m | 2/3 | 8.5 | 27 |"
        );
        assert!(lines[3].starts_with("| reference-leak "));
        assert!(lines[3].ends_with("| 2/2 | 16.3 | 22.8 |"), "{}", lines[3]);
        assert!(lines[4].ends_with("| 0/1 | - | - |"), "{}", lines[4]);
    }

    #[test]
    fn rows_read_back_as_bench_sh_reads_them() {
        let mut r = row("v1-shape", 3, None);
        r.found = "guest failed (exit 124; console: c.log); recovered: nothing".into();
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""seconds":null"#), "{line}");
        assert!(line.contains(r#""seed":3"#));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["found"].as_str().unwrap().starts_with("guest failed"));
        assert_eq!(serde_json::from_str::<Row>(&line).unwrap(), r);
    }

    #[test]
    fn the_job_stops_at_the_expected_finding_and_is_stoppable() {
        let j = job(180, 2, "hang: release fence hang on vim2m-cap");
        assert!(
            j.contains("--duration 180s --seed 2 --until 'hang: release fence hang on vim2m-cap' --plain --out out/run &"),
            "{j}"
        );
        assert!(j.contains("/host/stop"));
        assert!(j.trim_end().ends_with("exit $rc"));
    }

    #[test]
    fn the_default_programs_are_the_faults_without_the_lies() {
        let repo = Lab::new(crate::arch::Arch::X86_64).unwrap().repo;
        let p = default_programs(&repo.join("corpora/faults")).unwrap();
        assert!(p.len() >= 12, "{p:?}");
        assert!(p.iter().all(|x| !x.to_string_lossy().contains("/evil/")));
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        // Every one names its switch and its finding.
        for x in &p {
            let prog = m2mfuzz::program::text::parse_file(x).unwrap();
            assert!(prog.header("switch").is_some(), "{}", x.display());
            assert!(prog.header("expect").is_some(), "{}", x.display());
        }
    }
}
