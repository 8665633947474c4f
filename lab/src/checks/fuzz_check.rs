//! The fuzz path end to end: `m2m_vim2m` with a fault switch on must store a finding within the
//! budget and go on fuzzing after it (libFuzzer runs to its time limit and exits 0; later inputs
//! ran); the stored input decodes (m2mfuzz's own `decode`) to a program which `replay` (a fresh
//! boot, the same switch) must reproduce with every finding that input showed.
use crate::checks::fuzz::{self, FuzzRun, Kcov, Mutator};
use crate::checks::replay;
use crate::lab::{fresh_dir, Lab};
use anyhow::{bail, Context, Result};
use m2mfuzz::program::Program;
use m2mfuzz::stress::store::FindingMeta;
use std::path::{Path, PathBuf};

/// The fault switch the check fuzzes under by default: a release fence destroyed unsignalled
/// when vim2m fails a job, which it does for every job.
pub const DEFAULT_SWITCH: &str = "videobuf2_common.rf_fault=2 vim2m.rf_error_every=1";

/// The target the check fuzzes.
const TARGET: &str = "m2m_vim2m";

/// Run the check; an error says what failed.
pub fn run(lab: &Lab, out: &Path, budget: u64, switch: &str) -> Result<()> {
    fresh_dir(out, &lab.repo)?;
    let r = FuzzRun {
        out: out.join("fuzz"),
        target: TARGET.into(),
        seconds: budget,
        kcov: Kcov::On,
        mutator: Mutator::Programs,
        cmdline: switch.into(),
        seeds: None,
        libfuzzer_args: vec![],
    };
    let o = fuzz::run(lab, &r)?;
    let log = o.results.join("fuzz.log");
    if o.libfuzzer_rc != Some(0) {
        bail!(
            "libFuzzer did not run to its time limit: exit {} (see {})",
            o.libfuzzer_rc
                .map_or("unknown".to_string(), |rc| rc.to_string()),
            log.display()
        );
    }
    if o.artifacts.iter().any(|a| a.starts_with("crash-")) {
        bail!(
            "libFuzzer saved a crash artifact: m2mfuzz itself crashed (see {})",
            log.display()
        );
    }
    let (dir, first) = first_finding(&o.findings).with_context(|| {
        format!(
            "{TARGET} with {switch} stored no finding in {budget}s (see {})",
            log.display()
        )
    })?;
    if o.execs <= first.epoch {
        bail!(
            "no input ran after the first finding (input {} of {}): fuzzing stopped at it",
            first.epoch,
            o.execs
        );
    }
    crate::say!(
        "first finding on input {} of {}, seen on {} inputs: {}",
        first.epoch,
        o.execs,
        first.hits,
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    // Every finding that input showed, as the stored program's `# expect:` lines: replay
    // expects them all.
    let stored = m2mfuzz::program::text::parse_file(&dir.join("program.m2m"))?;
    let expects = expects(&stored);
    if expects.is_empty() {
        bail!("{}/program.m2m names no finding", dir.display());
    }
    let input = dir.join("input.bin");
    let bytes =
        std::fs::read(&input).with_context(|| format!("{} has no input.bin", dir.display()))?;
    let driver = TARGET.trim_start_matches("m2m_");
    let profile = m2mfuzz::profile::by_name(driver).context("the vim2m driver profile")?;
    let prog = replay_program(
        m2mfuzz::fuzz::mutate::decode(&bytes, profile),
        &format!("{TARGET} input {}", input.display()),
        switch,
        &expects,
    );
    let path = out.join("fuzz-finding.m2m");
    std::fs::write(&path, prog.to_string())?;
    replay::run(lab, &out.join("replay"), &[path])
}

/// The finding stored first: the lowest input number.
fn first_finding(f: &[(PathBuf, FindingMeta)]) -> Option<(&Path, &FindingMeta)> {
    f.iter()
        .min_by_key(|(_, m)| m.epoch)
        .map(|(d, m)| (d.as_path(), m))
}

/// A program's `# expect:` lines.
fn expects(p: &Program) -> Vec<String> {
    p.header
        .iter()
        .filter(|(k, _)| k == "expect")
        .map(|(_, v)| v.clone())
        .collect()
}

/// The decoded input as a replay program: where it came from, the switch it needs and what it
/// must show.
fn replay_program(mut p: Program, from: &str, switch: &str, expects: &[String]) -> Program {
    p.set_header("decoded-from", from);
    p.set_header("switch", switch);
    p.header.retain(|(k, _)| k != "expect");
    for e in expects {
        p.add_header("expect", e);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(epoch: u64) -> FindingMeta {
        FindingMeta {
            kind: "leaked-fence".into(),
            epoch,
            ..Default::default()
        }
    }

    #[test]
    fn the_first_finding_is_the_lowest_input_number() {
        let f = vec![
            (PathBuf::from("findings/b"), meta(7)),
            (PathBuf::from("findings/a"), meta(2)),
            (PathBuf::from("findings/c"), meta(11)),
        ];
        let (d, m) = first_finding(&f).unwrap();
        assert_eq!(d, Path::new("findings/a"));
        assert_eq!(m.epoch, 2);
        assert!(first_finding(&[]).is_none());
    }

    #[test]
    fn a_decoded_input_becomes_a_program_replay_judges() {
        let stored = m2mfuzz::program::text::parse(
            "# m2mfuzz program v1\n# driver: vim2m\n# switch: vim2m.rf_error_every=1\n\
             # expect: leaked-fence: release fence destroyed unsignalled on vim2m-cap\n\
             # expect: splat: WARNING in vb2_buffer_done\nopen node=vim2m -> c0\n",
        )
        .unwrap();
        let e = expects(&stored);
        assert_eq!(e.len(), 2);
        let profile = m2mfuzz::profile::by_name("vim2m").unwrap();
        let decoded = m2mfuzz::fuzz::mutate::decode(&stored.to_string().into_bytes(), profile);
        let p = replay_program(decoded, "m2m_vim2m input x", DEFAULT_SWITCH, &e);
        let text = p.to_string();
        let back = m2mfuzz::program::text::parse(&text).unwrap();
        assert_eq!(back.header("switch"), Some(DEFAULT_SWITCH));
        assert_eq!(expects(&back), e, "{text}");
        assert_eq!(back.header("decoded-from"), Some("m2m_vim2m input x"));
        assert!(!back.ops.is_empty());
    }
}
