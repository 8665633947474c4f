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
        date: crate::clock::utc_now(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
