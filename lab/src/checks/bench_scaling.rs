//! Stress throughput by worker count (vim2m, 1 ms transaction time, `lab-bench.toml`), one run
//! after the other in one boot: programs, ops and CAPTURE frames a second from each run's
//! summary. A benchmark: figures and OUT/scaling.{md,json}, no assertions about speed.
use crate::boot::{self, Boot, Guest};
use crate::checks::bench::{round, write_json};
use crate::clock::utc_now;
use crate::guest_bins;
use crate::lab::Lab;
use anyhow::{Context, Result};
use m2mfuzz::stress::Totals;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One worker count's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Workers.
    pub workers: u32,
    /// Wall seconds.
    pub seconds: f64,
    /// Programs run.
    pub programs: u64,
    /// Ops run.
    pub ops: u64,
    /// CAPTURE buffers dequeued DONE.
    pub frames: u64,
    /// Programs a second.
    pub programs_per_s: f64,
    /// Ops a second.
    pub ops_per_s: f64,
    /// Frames a second.
    pub frames_per_s: f64,
}

/// `scaling.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// When (UTC).
    pub date: String,
    /// The guest's vCPUs.
    pub cpus: u32,
    /// QEMU's accelerator.
    pub accel: String,
    /// In the order run.
    pub results: Vec<Row>,
}

/// Measure; returns the table.
pub fn run(lab: &Lab, out: &Path, secs: u64, workers: &[u32]) -> Result<String> {
    let share = guest_bins::fresh_share(lab, out, &["stress-profiles"])?;
    let text = job(secs, workers);
    std::fs::write(out.join("job.sh"), &text)?;
    let timeout = workers.len() as u64 * (secs + 60) + 120;
    let booted = boot::run(
        &Guest::of(lab)?,
        &Boot::new(out, &share, text).timeout(timeout),
    )?;
    booted.rc()?;
    let mut results = Vec::new();
    for &w in workers {
        let p = booted.result(&format!("w{w}/summary.json"));
        let t: Totals =
            serde_json::from_str(&std::fs::read_to_string(&p).with_context(|| {
                format!("the {w}-worker run wrote no summary ({})", p.display())
            })?)
            .with_context(|| p.display().to_string())?;
        results.push(row(w, &t));
    }
    let s = Scaling {
        date: utc_now(),
        cpus: 2,
        accel: "tcg".into(),
        results,
    };
    write_json(&out.join("scaling.json"), &s)?;
    let md = table(&s);
    std::fs::write(out.join("scaling.md"), &md)?;
    Ok(md)
}

/// The guest's job: one stress run per worker count, each to its own run directory.
fn job(secs: u64, workers: &[u32]) -> String {
    let mut j = String::from("cd /host\n");
    for w in workers {
        j += &format!("./bin/m2mfuzz stress --profile stress-profiles/lab-bench.toml --workers {w} --duration {secs}s --seed 3 --plain --out out/w{w}\n");
    }
    j += "exit 0\n";
    j
}

fn row(workers: u32, t: &Totals) -> Row {
    Row {
        workers,
        seconds: t.seconds,
        programs: t.programs,
        ops: t.ops,
        frames: t.frames,
        programs_per_s: t.programs as f64 / t.seconds,
        ops_per_s: t.ops as f64 / t.seconds,
        frames_per_s: t.frames as f64 / t.seconds,
    }
}

/// `scaling.md`: the first row is the base of the last column.
fn table(s: &Scaling) -> String {
    let mut t = String::from(
        "| workers | programs/s | ops/s | frames/s | vs 1 worker (frames) |\n|---:|---:|---:|---:|---:|\n",
    );
    let one = s.results.first().map_or(0.0, |r| r.frames_per_s);
    for r in &s.results {
        let vs = if one > 0.0 {
            round(r.frames_per_s / one, 100.0).to_string()
        } else {
            "-".into()
        };
        t += &format!(
            "| {} | {} | {} | {} | {vs} |\n",
            r.workers,
            round(r.programs_per_s, 10.0),
            r.ops_per_s.round(),
            round(r.frames_per_s, 10.0)
        );
    }
    t
}

/// Worker counts from the shell's `--workers "1 2 4"`.
pub fn parse_workers(s: &str) -> Result<Vec<u32>> {
    let w: Vec<u32> = s
        .split_whitespace()
        .map(|x| x.parse().with_context(|| format!("--workers: {x:?}")))
        .collect::<Result<_>>()?;
    anyhow::ensure!(!w.is_empty(), "--workers: no worker count");
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(seconds: f64, programs: u64, ops: u64, frames: u64) -> Totals {
        serde_json::from_value(serde_json::json!({
            "capture_done": frames + 3, "epochs": 10, "errors": 0, "events": {},
            "fence_latency": {"count": 0, "max_ms": 0.0, "mean_ms": 0.0, "p50_ms": 0.0, "p99_ms": 0.0},
            "fences_published": 0, "fences_signalled": 0, "findings": {}, "frames": frames,
            "ops": ops, "programs": programs, "seconds": seconds, "splats_elsewhere": 0,
            "splats_under_test": 0, "store_errors": 0, "trace_lost": 0
        }))
        .unwrap()
    }

    #[test]
    fn the_table_compares_each_row_with_the_first() {
        let s = Scaling {
            date: "d".into(),
            cpus: 2,
            accel: "tcg".into(),
            results: vec![
                row(1, &totals(30.2, 60, 1117, 18)),
                row(2, &totals(30.1, 110, 1836, 39)),
            ],
        };
        let t = table(&s);
        assert_eq!(t.lines().nth(2).unwrap(), "| 1 | 2 | 37 | 0.6 | 1 |");
        assert_eq!(t.lines().nth(3).unwrap(), "| 2 | 3.7 | 61 | 1.3 | 2.17 |");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["results"][1]["workers"], 2);
        assert_eq!(v["results"][0]["frames"], 18);
    }

    #[test]
    fn no_frames_with_one_worker_leaves_the_ratio_out() {
        let s = Scaling {
            date: "d".into(),
            cpus: 2,
            accel: "tcg".into(),
            results: vec![
                row(1, &totals(2.0, 1, 10, 0)),
                row(2, &totals(2.0, 2, 20, 4)),
            ],
        };
        assert!(table(&s).lines().nth(3).unwrap().ends_with("| 2 | - |"));
    }

    #[test]
    fn workers_parse_as_the_shell_gave_them() {
        assert_eq!(parse_workers("1 2 4 8").unwrap(), [1, 2, 4, 8]);
        assert!(parse_workers("").is_err());
        assert!(parse_workers("1 two").is_err());
        assert!(
            job(2, &[1, 2]).contains("--workers 2 --duration 2s --seed 3 --plain --out out/w2\n")
        );
    }
}
