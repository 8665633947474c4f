//! The stress duty cycle (a benchmark: figures and OUT/duty.{md,json}, no assertions about
//! speed). In one boot: `m2mfuzz limit` (the node's built-in client loop: vim2m, 320x240, 1 ms,
//! MMAP, two buffers a queue in flight), then `m2mfuzz stress` with `lab-duty.toml` (same size
//! and time) while an independent tracefs instance counts `vb2_buf_done` by queue type. Duty
//! cycle = CAPTURE `vb2_buf_done` a second during stress over the limit's jobs a second. The event
//! has no buffer state, so buffers a STREAMOFF or close handed back with ERROR count too; the
//! CAPTURE buffers stress dequeued DONE a second over the limit is printed beside it, a lower
//! bound of the DONE share.
use crate::boot::{self, Boot, Guest};
use crate::checks::bench::{round, write_json};
use crate::clock::utc_now;
use crate::guest_bins;
use crate::lab::Lab;
use anyhow::{bail, Context, Result};
use m2mfuzz::stress::limit::Limit;
use m2mfuzz::stress::Totals;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The tracefs instance of the guest job.
const INSTANCE: &str = "/sys/kernel/tracing/instances/m2mfuzz-duty";

/// The figures (`duty.json`; its keys are quoted by the README and bench.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Duty {
    /// When it was measured (UTC).
    pub date: String,
    /// The guest's vCPUs.
    pub cpus: u32,
    /// QEMU's accelerator.
    pub accel: String,
    /// `m2mfuzz limit`'s jobs a second.
    pub limit_jobs_per_s: f64,
    /// Its setup, in words.
    pub limit_setup: String,
    /// Stress's wall seconds.
    pub stress_seconds: f64,
    /// CAPTURE `vb2_buf_done` events the independent instance counted.
    pub capture_buf_done: u64,
    /// OUTPUT `vb2_buf_done` events.
    pub output_buf_done: u64,
    /// Events that instance lost (overruns).
    pub trace_lost: u64,
    /// CAPTURE buffers stress dequeued DONE.
    pub frames_dequeued: u64,
    /// CAPTURE `vb2_buf_done` by stress's own count.
    pub stress_capture_done: u64,
    /// `capture_buf_done` a second.
    pub capture_done_per_s: f64,
    /// `frames_dequeued` a second.
    pub frames_done_per_s: f64,
    /// The duty cycle.
    pub duty_cycle: f64,
    /// Dequeued DONE a second over the limit (a lower bound of the DONE share).
    pub duty_cycle_dequeued_done: f64,
}

/// Measure; returns the table, or the job's exit code when it failed (stress's own: no figures
/// then); an error when the guest gave no answer or a result is missing.
pub fn run(
    lab: &Lab,
    out: &Path,
    secs: u64,
    limit_secs: u64,
) -> Result<std::result::Result<String, i32>> {
    let share = guest_bins::fresh_share(lab, out, &["stress-profiles"])?;
    let text = job(secs, limit_secs);
    std::fs::write(out.join("job.sh"), &text)?;
    let booted = boot::run(
        &Guest::of(lab)?,
        &Boot::new(out, &share, text).timeout(secs + limit_secs + 300),
    )?;
    let rc = booted.rc()?;
    if rc != 0 {
        crate::say!(
            "the duty job exited {rc}: no figures (see {})",
            booted.result("stress.log").display()
        );
        return Ok(Err(rc));
    }
    let r = &booted.results;
    let limit: Limit = serde_json::from_str(
        &std::fs::read_to_string(r.join("limit.json"))
            .with_context(|| format!("no limit measured (see {})", booted.console.display()))?,
    )
    .context("limit.json")?;
    let summary = r.join("run/summary.json");
    let totals: Totals =
        serde_json::from_str(&std::fs::read_to_string(&summary).with_context(|| {
            format!(
                "the stress run wrote no summary (see {})",
                r.join("stress.log").display()
            )
        })?)
        .with_context(|| summary.display().to_string())?;
    let by_type = done_by_type(&std::fs::read_to_string(r.join("done-by-type.txt"))?)?;
    let lost = overruns(&std::fs::read_to_string(r.join("trace-overrun.txt"))?);
    let d = figures(&limit, &totals, by_type, lost, utc_now());
    write_json(&out.join("duty.json"), &d)?;
    let md = table(&d);
    std::fs::write(out.join("duty.md"), &md)?;
    Ok(Ok(md))
}

/// The guest's job: the limit, then stress with the limit given (its progress shows the duty
/// cycle as it goes) under the counting instance.
fn job(secs: u64, limit_secs: u64) -> String {
    let mut j = String::from("cd /host\n");
    j += &format!("./bin/m2mfuzz limit --driver vim2m --size 320x240 --trans-time-ms 1 --seconds {limit_secs} --json > out/limit.json\n");
    j += &format!("mkdir {INSTANCE} && echo 65536 > {INSTANCE}/buffer_size_kb && echo 1 > {INSTANCE}/events/vb2/vb2_buf_done/enable\n");
    // The guest has no JSON reader; limit.json is one line of m2mfuzz's own.
    j += "lim=$(sed -n 's/.*\"jobs_per_s\":\\([0-9.]*\\).*/\\1/p' out/limit.json)\n";
    j += &format!("./bin/m2mfuzz stress --profile stress-profiles/lab-duty.toml --duration {secs}s --seed 1 --plain --limit $lim --out out/run > out/stress.log 2>&1; rc=$?\n");
    j += &format!("echo 0 > {INSTANCE}/events/vb2/vb2_buf_done/enable\n");
    j += &format!("grep -h overrun {INSTANCE}/per_cpu/cpu*/stats > out/trace-overrun.txt\n");
    // vim2m is single-planar: type 1 is CAPTURE, 2 OUTPUT.
    j += &format!("sed -n 's/.* vb2_buf_done: .* type = \\([0-9]*\\),.*/\\1/p' {INSTANCE}/trace | sort | uniq -c > out/done-by-type.txt\n");
    j += "exit $rc\n";
    j
}

/// `vb2_buf_done` events by queue type, from `uniq -c` lines: (CAPTURE, OUTPUT).
fn done_by_type(text: &str) -> Result<(u64, u64)> {
    let (mut cap, mut outp) = (0, 0);
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut w = l.split_whitespace();
        let (Some(n), Some(t)) = (w.next(), w.next()) else {
            bail!("done-by-type.txt: not a count and a type: {l:?}");
        };
        let n: u64 = n
            .parse()
            .with_context(|| format!("done-by-type.txt: {l:?}"))?;
        match t {
            "1" => cap = n,
            "2" => outp = n,
            _ => {}
        }
    }
    Ok((cap, outp))
}

/// Lost events: the `overrun:` lines summed (`commit overrun:` is another figure).
fn overruns(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|l| l.trim().strip_prefix("overrun:"))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// The figures from the limit, stress's totals and the instance's counts.
fn figures(limit: &Limit, t: &Totals, (cap, outp): (u64, u64), lost: u64, date: String) -> Duty {
    let s = t.seconds;
    Duty {
        date,
        cpus: 2,
        accel: "tcg".into(),
        limit_jobs_per_s: limit.jobs_per_s,
        limit_setup: limit.setup.clone(),
        stress_seconds: s,
        capture_buf_done: cap,
        output_buf_done: outp,
        trace_lost: lost,
        frames_dequeued: t.frames,
        stress_capture_done: t.capture_done,
        capture_done_per_s: cap as f64 / s,
        frames_done_per_s: t.frames as f64 / s,
        duty_cycle: cap as f64 / s / limit.jobs_per_s,
        duty_cycle_dequeued_done: t.frames as f64 / s / limit.jobs_per_s,
    }
}

/// `duty.md`.
fn table(d: &Duty) -> String {
    format!(
        "| limit (jobs/s) | stress CAPTURE buf_done/s | duty cycle | dequeued DONE/s over the limit (lower bound) | CAPTURE buf_done: tracefs / stress's own | CAPTURE frames dequeued DONE | seconds | trace lost |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} | {} / {} | {} | {} | {} |\n",
        round(d.limit_jobs_per_s, 10.0),
        round(d.capture_done_per_s, 100.0),
        round(d.duty_cycle, 1000.0),
        round(d.duty_cycle_dequeued_done, 1000.0),
        d.capture_buf_done,
        d.stress_capture_done,
        d.frames_dequeued,
        d.stress_seconds.round(),
        d.trace_lost
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2026-12-07 lab run's files.
    const LIMIT: &str = r#"{"driver":"vim2m","jobs_per_s":106.30051867580808,"jobs":1600,"seconds":15.051666915,"programs":16,"failed_ops":0,"setup":"MMAP, 2 buffers a queue in flight, 320x240 RGBP→RGBP, TRANS_TIME 1 ms"}"#;
    const SUMMARY: &str = r#"{"capture_done": 3312, "epochs": 17, "errors": 1028,
      "events": {"vb2_buf_done": 6617, "vb2_dqbuf": 4989},
      "fence_latency": {"count": 2704, "max_ms": 62.8, "mean_ms": 8.6, "p50_ms": 7.8, "p99_ms": 60.4},
      "fences_published": 2704, "fences_signalled": 2704, "findings": {}, "frames": 2506,
      "limit_jobs_per_s": 106.30051867580808, "ops": 9323, "programs": 133,
      "seconds": 61.713970586, "splats_elsewhere": 0, "splats_under_test": 0,
      "store_errors": 0, "trace_lost": 0}"#;

    #[test]
    fn the_figures_and_table_are_the_shell_versions() {
        let limit: Limit = serde_json::from_str(LIMIT).unwrap();
        let totals: Totals = serde_json::from_str(SUMMARY).unwrap();
        let by = done_by_type("   3312 1\n   3305 2\n").unwrap();
        assert_eq!(by, (3312, 3305));
        let stats = "overrun: 0\ncommit overrun: 5\noverrun: 2\ncommit overrun: 0\n";
        let d = figures(
            &limit,
            &totals,
            by,
            overruns(stats),
            "2026-12-07T20:35:24Z".into(),
        );
        assert_eq!(d.trace_lost, 2);
        assert!((d.duty_cycle - 0.5048605723825854).abs() < 1e-12);
        assert!((d.duty_cycle_dequeued_done - 0.38199897173634023).abs() < 1e-12);
        // What bench-duty.sh printed for these files.
        assert_eq!(
            table(&d).lines().nth(2).unwrap(),
            "| 106.3 | 53.67 | 0.505 | 0.382 | 3312 / 3312 | 2506 | 62 | 2 |"
        );
        // Every key of the shell's duty.json, in its order.
        let v = serde_json::to_string(&d).unwrap();
        let keys = [
            "date",
            "cpus",
            "accel",
            "limit_jobs_per_s",
            "limit_setup",
            "stress_seconds",
            "capture_buf_done",
            "output_buf_done",
            "trace_lost",
            "frames_dequeued",
            "stress_capture_done",
            "capture_done_per_s",
            "frames_done_per_s",
            "duty_cycle",
            "duty_cycle_dequeued_done",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| v.find(&format!("\"{k}\":")).expect(k))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{v}");
    }

    #[test]
    fn a_missing_queue_type_counts_zero_and_garbage_is_an_error() {
        assert_eq!(done_by_type("     7 1\n").unwrap(), (7, 0));
        assert_eq!(done_by_type("").unwrap(), (0, 0));
        assert!(done_by_type("x 1\n").is_err());
    }

    #[test]
    fn the_job_gives_stress_the_limit_and_counts_by_type() {
        let j = job(60, 15);
        assert!(j.contains("--seconds 15 --json > out/limit.json"));
        assert!(j.contains("--duration 60s --seed 1 --plain --limit $lim"));
        assert!(j.contains("uniq -c > out/done-by-type.txt"));
        assert!(j.trim_end().ends_with("exit $rc"));
    }
}
