//! Kernel coverage benchmark: the same fuzz target for the same time in fresh boots, once with
//! KCOV guiding libFuzzer and once with KCOV only counted (observe), so both figures are distinct
//! kernel edges seen by the same measurement. Writes OUT/coverage.{md,json} (bench.sh reads
//! them). A benchmark: it asserts nothing.
use crate::checks::fuzz::{self, FuzzRun, Kcov, Mutator};
use crate::lab::{fresh_dir, Lab};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// coverage.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// When it was measured (UTC, RFC 3339).
    pub date: String,
    /// The fuzz target.
    pub target: String,
    /// Seconds of fuzzing per mode.
    pub seconds: u64,
    /// The guest's vCPUs.
    pub cpus: u32,
    /// QEMU's accelerator.
    pub accel: String,
    /// One per mode, guiding first.
    pub results: Vec<Mode>,
}

/// One mode's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    /// `on` (guiding) or `observe` (counted only).
    pub kcov: String,
    /// Inputs run.
    pub execs: u64,
    /// Distinct kernel edges seen.
    pub kernel_edges: u64,
    /// Inputs libFuzzer added to the corpus.
    pub new_corpus_inputs: usize,
}

/// Run both modes; prints the table.
pub fn run(lab: &Lab, out: &Path, target: &str, seconds: u64) -> Result<Coverage> {
    fresh_dir(out, &lab.repo)?;
    let mut results = Vec::new();
    for kcov in [Kcov::On, Kcov::Observe] {
        let r = FuzzRun {
            out: out.join(kcov.name()),
            target: target.into(),
            seconds,
            kcov,
            mutator: Mutator::Programs,
            cmdline: String::new(),
            seeds: None,
            libfuzzer_args: vec![],
        };
        let o = fuzz::run(lab, &r)?;
        results.push(Mode {
            kcov: kcov.name().into(),
            execs: o.execs,
            kernel_edges: o.edges,
            new_corpus_inputs: o.corpus,
        });
    }
    let c = Coverage {
        date: utc_now(),
        target: target.into(),
        seconds,
        cpus: 2,
        accel: "tcg".into(),
        results,
    };
    std::fs::write(out.join("coverage.json"), serde_json::to_string(&c)? + "\n")?;
    let t = table(&c);
    std::fs::write(out.join("coverage.md"), &t)?;
    print!("{t}");
    Ok(c)
}

/// The Markdown table.
fn table(c: &Coverage) -> String {
    let mut t = format!(
        "| {}, {} s | execs | kernel edges | inputs added to the corpus |\n|---|---:|---:|---:|\n",
        c.target, c.seconds
    );
    for m in &c.results {
        let how = if m.kcov == "on" {
            "guiding"
        } else {
            "counted only"
        };
        t += &format!(
            "| KCOV {how} | {} | {} | {} |\n",
            m.execs, m.kernel_edges, m.new_corpus_inputs
        );
    }
    t
}

/// Now, as `2026-12-07T22:53:00Z`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the epoch as an RFC 3339 UTC time (the civil calendar from days, after Howard
/// Hinnant's `civil_from_days`).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let s = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // A leap day and the end of a year.
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_796_687_580), "2026-12-07T23:53:00Z");
    }

    #[test]
    fn the_table_and_json_keep_bench_shs_shape() {
        let c = Coverage {
            date: "2026-12-07T22:33:00Z".into(),
            target: "m2m_vim2m".into(),
            seconds: 300,
            cpus: 2,
            accel: "tcg".into(),
            results: vec![
                Mode {
                    kcov: "on".into(),
                    execs: 63,
                    kernel_edges: 11639,
                    new_corpus_inputs: 45,
                },
                Mode {
                    kcov: "observe".into(),
                    execs: 70,
                    kernel_edges: 10020,
                    new_corpus_inputs: 0,
                },
            ],
        };
        let t = table(&c);
        assert!(t.starts_with("| m2m_vim2m, 300 s | execs |"), "{t}");
        assert!(t.contains("| KCOV guiding | 63 | 11639 | 45 |"));
        assert!(t.contains("| KCOV counted only | 70 | 10020 | 0 |"));
        let j: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(j["results"][0]["kernel_edges"], 11639);
        assert_eq!(j["accel"], "tcg");
    }
}
