//! A fuzz target in the lab: built static without a sanitizer ([`crate::fuzz_build`]), run in a
//! fresh boot for a time against the lab's drivers, with kernel coverage guiding it (KCOV on),
//! only counted (observe) or not collected (off). Results in OUT/share/out: fuzz.log
//! (libFuzzer's output), edges ("EXECS EDGES"), corpus/, findings/ (one directory per finding
//! signature; fuzzing goes on after each) and artifacts/ (libFuzzer's own: a crash of m2mfuzz
//! itself).
use crate::boot::{self, Boot, Guest};
use crate::checks::stress::{copy_dir, quote};
use crate::lab::{fresh_dir, Lab};
use anyhow::{bail, Context, Result};
use m2mfuzz::stress::store::FindingMeta;
use std::path::{Path, PathBuf};

/// How KCOV serves the fuzzer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kcov {
    /// Kernel edges guide libFuzzer.
    On,
    /// Kernel edges are only counted.
    Observe,
    /// Not collected.
    Off,
}

impl Kcov {
    /// `M2MFUZZ_KCOV`'s value.
    pub fn name(self) -> &'static str {
        match self {
            Kcov::On => "on",
            Kcov::Observe => "observe",
            Kcov::Off => "off",
        }
    }
}

/// How inputs are mutated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mutator {
    /// As programs (the targets' custom mutator).
    Programs,
    /// libFuzzer's byte mutations.
    Bytes,
}

impl Mutator {
    /// `M2MFUZZ_MUTATOR`'s value.
    pub fn name(self) -> &'static str {
        match self {
            Mutator::Programs => "programs",
            Mutator::Bytes => "bytes",
        }
    }
}

/// A fuzz run in the lab.
#[derive(Clone, Debug)]
pub struct FuzzRun {
    /// Output directory (emptied first).
    pub out: PathBuf,
    /// The fuzz target (m2m_vim2m, …).
    pub target: String,
    /// libFuzzer's `-max_total_time`.
    pub seconds: u64,
    /// KCOV's part.
    pub kcov: Kcov,
    /// The mutator.
    pub mutator: Mutator,
    /// Extra kernel command line (a fault switch).
    pub cmdline: String,
    /// Seed inputs (default fuzz/seeds/TARGET).
    pub seeds: Option<PathBuf>,
    /// Further libFuzzer arguments.
    pub libfuzzer_args: Vec<String>,
}

/// What a fuzz run left.
#[derive(Debug)]
pub struct FuzzOutcome {
    /// SHARE/out: fuzz.log, edges, corpus/, findings/, artifacts/.
    pub results: PathBuf,
    /// libFuzzer's exit code (0: it ran to its time limit).
    pub libfuzzer_rc: Option<i32>,
    /// Inputs run and distinct kernel edges seen (the harness's edges file).
    pub execs: u64,
    /// Distinct kernel edges.
    pub edges: u64,
    /// libFuzzer's last `cov:` figure.
    pub cov: u64,
    /// libFuzzer's `NEW` lines.
    pub new: usize,
    /// The stored findings with their directories.
    pub findings: Vec<(PathBuf, FindingMeta)>,
    /// libFuzzer's artifacts (crash-…, slow-unit-…).
    pub artifacts: Vec<String>,
    /// Inputs libFuzzer added to the corpus.
    pub corpus: usize,
}

impl FuzzOutcome {
    /// The summary line fuzz.sh printed.
    pub fn summary(&self, r: &FuzzRun) -> String {
        let hits: u64 = self.findings.iter().map(|(_, m)| m.hits).sum();
        let arts = if self.artifacts.is_empty() {
            "none".to_string()
        } else {
            self.artifacts.join(" ")
        };
        format!(
            "{} kcov={} mutator={} {}s: execs {}, kernel edges {}, libFuzzer cov {}, NEW {}, findings {} (hits {hits}), artifacts: {arts}",
            r.target,
            r.kcov.name(),
            r.mutator.name(),
            r.seconds,
            self.execs,
            self.edges,
            self.cov,
            self.new,
            self.findings.len()
        )
    }
}

/// Build the target, boot, fuzz; an error when the guest gave no answer.
pub fn run(lab: &Lab, r: &FuzzRun) -> Result<FuzzOutcome> {
    // fuzz_build builds for either architecture (ci/board-build.sh --fuzz: the boards'), but no
    // aarch64 target has run in the arm64 lab yet.
    if lab.arch != crate::arch::Arch::X86_64 {
        bail!("fuzz runs in the x86_64 lab only; for the boards: ci/board-build.sh --fuzz");
    }
    fresh_dir(&r.out, &lab.repo)?;
    let share = r.out.join("share");
    let seeds = r
        .seeds
        .clone()
        .unwrap_or_else(|| lab.repo.join("fuzz/seeds").join(&r.target));
    std::fs::create_dir_all(share.join("seeds"))?;
    if seeds.is_dir() {
        copy_dir(&seeds, &share.join("seeds"))?;
    }
    crate::fuzz_build::build_target(lab, &r.target, Some(&share))?;
    crate::say!(
        "fuzzing {} for {}s in the lab (KCOV {}, mutator {}) {}",
        r.target,
        r.seconds,
        r.kcov.name(),
        r.mutator.name(),
        if r.cmdline.is_empty() {
            String::new()
        } else {
            format!("with {}", r.cmdline)
        }
    );
    let guest = Guest::of(lab)?;
    let b = Boot::new(&r.out, &share, job(r))
        .timeout(r.seconds + 300)
        .cmdline(&r.cmdline);
    let booted = boot::run(&guest, &b)?;
    // The job exits 0 whatever libFuzzer found; a time-out or a dead guest fails the run.
    booted.rc()?;
    let results = booted.results.clone();
    let log = std::fs::read_to_string(results.join("fuzz.log"))
        .with_context(|| format!("no fuzz.log: see {} (console)", booted.console.display()))?;
    let (execs, edges) = std::fs::read_to_string(results.join("edges"))
        .ok()
        .and_then(|s| parse_edges(&s))
        .unwrap_or((0, 0));
    let libfuzzer_rc = std::fs::read_to_string(results.join("libfuzzer-rc"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let o = FuzzOutcome {
        libfuzzer_rc,
        execs,
        edges,
        cov: last_cov(&log),
        new: new_lines(&log),
        findings: findings(&results.join("findings"))?,
        artifacts: names(&results.join("artifacts")),
        corpus: names(&results.join("corpus")).len(),
        results,
    };
    println!("{}", o.summary(r));
    Ok(o)
}

/// The guest's job: libFuzzer on the corpus and seeds, its exit code in out/libfuzzer-rc.
/// `-max_len=16384 -len_control=0`: a program's text is 2-6 KB, and a smaller limit costs a
/// mutated program its ops (the mutator removes ops until it fits).
fn job(r: &FuzzRun) -> String {
    let mut cmd = format!(
        "M2MFUZZ_KCOV={} M2MFUZZ_MUTATOR={} M2MFUZZ_EDGES_FILE=/host/out/edges M2MFUZZ_FINDINGS=/host/out \
         ./bin/{} -max_total_time={} -max_len=16384 -len_control=0 -rss_limit_mb=0 -timeout=120 \
         -artifact_prefix=/host/out/artifacts/",
        r.kcov.name(),
        r.mutator.name(),
        quote(&r.target),
        r.seconds
    );
    for a in &r.libfuzzer_args {
        cmd.push(' ');
        cmd += &quote(a);
    }
    cmd += " /host/out/corpus /host/seeds > /host/out/fuzz.log 2>&1";
    format!(
        "cd /host && mkdir -p out/corpus out/artifacts\n{cmd}\nrc=$?\n\
         echo $rc > /host/out/libfuzzer-rc\n\
         echo \"libfuzzer exit $rc\" >> /host/out/fuzz.log\n\
         # The harness removes its tracefs instance at exit.\n\
         echo \"tracefs instances left: $(ls /sys/kernel/tracing/instances | tr \"\\n\" \" \")\" >> /host/out/fuzz.log\n\
         exit 0\n"
    )
}

/// "EXECS EDGES" as the harness writes it.
fn parse_edges(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split_whitespace().map(|w| w.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

/// libFuzzer's last `cov: N` (its own status lines: the log is libFuzzer's, not m2mfuzz's).
fn last_cov(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| {
            let at = l.find("cov: ")?;
            l[at + 5..].split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// libFuzzer's status lines for inputs added to the corpus (`#N<tab>NEW ...`).
fn new_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.starts_with('#') && l.contains("NEW "))
        .count()
}

/// The stored findings (findings/*/finding.json), in directory order.
pub fn findings(dir: &Path) -> Result<Vec<(PathBuf, FindingMeta)>> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(v);
    };
    let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for d in dirs {
        let j = d.join("finding.json");
        if !j.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&j)?;
        let m: FindingMeta =
            serde_json::from_str(&text).with_context(|| format!("read {}", j.display()))?;
        v.push((d, m));
    }
    Ok(v)
}

/// The file names in a directory, sorted; none when it is missing.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libFuzzer's output as the lab's fuzz.log holds it (m2m_vim2m, 90 s, a fault switch).
    const LOG: &str = "\
INFO: Running with entropic power schedule (0xFF, 100).
INFO: Seed: 1234
m2mfuzz: findings are stored in /host/out/findings (0 there already)
INFO:        4 files found in /host/seeds
#2\tINITED cov: 3921 ft: 5012 corp: 4/10Kb exec/s: 0 rss: 60Mb
#5\tNEW    cov: 4012 ft: 5230 corp: 5/13Kb lim: 16384 exec/s: 0 rss: 61Mb L: 2980/4096 MS: 1 Custom-
m2mfuzz: 10 execs, 11855 kernel edges; per exec: 2100 ms ops, 270 ms oracles, 300 ms coverage; findings: 2 new, on 9 inputs
#9\tNEW    cov: 4065 ft: 5301 corp: 6/16Kb lim: 16384 exec/s: 0 rss: 62Mb L: 3100/4096 MS: 1 Custom-
#13\tDONE   cov: 4065 ft: 5301 corp: 6/16Kb lim: 16384 exec/s: 0 rss: 62Mb
Done 13 runs in 91 second(s)
libfuzzer exit 0
";

    #[test]
    fn libfuzzers_figures_are_read_from_its_log() {
        assert_eq!(last_cov(LOG), 4065);
        assert_eq!(new_lines(LOG), 2);
        assert_eq!(last_cov("no status lines\n"), 0);
        assert_eq!(parse_edges("13 11855\n"), Some((13, 11855)));
        assert_eq!(parse_edges("13\n"), None);
    }

    #[test]
    fn the_job_passes_the_modes_and_records_libfuzzers_exit() {
        let r = FuzzRun {
            out: "o".into(),
            target: "m2m_vim2m".into(),
            seconds: 90,
            kcov: Kcov::Observe,
            mutator: Mutator::Bytes,
            cmdline: String::new(),
            seeds: None,
            libfuzzer_args: vec!["-dict=a b".into()],
        };
        let j = job(&r);
        assert!(
            j.contains("M2MFUZZ_KCOV=observe M2MFUZZ_MUTATOR=bytes "),
            "{j}"
        );
        assert!(j.contains("./bin/m2m_vim2m -max_total_time=90 -max_len=16384"));
        assert!(j.contains(" '-dict=a b' /host/out/corpus /host/seeds"));
        assert!(j.contains("echo $rc > /host/out/libfuzzer-rc"));
        assert!(j.trim_end().ends_with("exit 0"));
    }

    #[test]
    fn findings_are_read_with_their_directories_and_the_summary_counts_hits() {
        let d = std::env::temp_dir().join(format!("m2mfuzz-lab-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for (slug, epoch, hits) in [("leaked-fence-a", 2, 9), ("splat-b", 5, 6)] {
            std::fs::create_dir_all(d.join(slug)).unwrap();
            std::fs::write(
                d.join(slug).join("finding.json"),
                format!(
                    r#"{{"kind":"leaked-fence","title":"release fence destroyed unsignalled on vim2m-cap",
                    "signature":"{slug}","under_test":true,"first_seen_s":12.5,"epoch":{epoch},"hits":{hits},
                    "worker":null,"program":null,"op":14,"switches":["vim2m.rf_error_every=1"],"epoch_programs":[]}}"#
                ),
            )
            .unwrap();
        }
        std::fs::create_dir_all(d.join("no-json")).unwrap();
        let f = findings(&d).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].1.epoch, 2);
        let o = FuzzOutcome {
            results: d.clone(),
            libfuzzer_rc: Some(0),
            execs: 13,
            edges: 11855,
            cov: 4065,
            new: 0,
            findings: f,
            artifacts: vec!["slow-unit-8d".into()],
            corpus: 0,
        };
        let r = FuzzRun {
            out: "o".into(),
            target: "m2m_vim2m".into(),
            seconds: 90,
            kcov: Kcov::On,
            mutator: Mutator::Programs,
            cmdline: String::new(),
            seeds: None,
            libfuzzer_args: vec![],
        };
        assert_eq!(
            o.summary(&r),
            "m2m_vim2m kcov=on mutator=programs 90s: execs 13, kernel edges 11855, libFuzzer cov 4065, \
             NEW 0, findings 2 (hits 15), artifacts: slow-unit-8d"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
