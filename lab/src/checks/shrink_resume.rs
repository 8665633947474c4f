//! The board's way to shrink a lockdep finding (one report per boot), checked in the lab through
//! the shrink check (`shrink --state`, then `--resume` in a fresh boot whenever it exits 3): a
//! fault-corpus program padded with unrelated ops on a second context must come back no longer
//! than the hand-written program, must have needed more than one boot, and must replay as
//! written.
use crate::checks::{replay, shrink};
use crate::lab::Lab;
use anyhow::{ensure, Result};
use std::path::Path;

/// Ops on a second context before the body: buffers and an export.
const BEFORE: &[&str] = &[
    "open node=vim2m -> c1",
    "reqbufs c1 queue=out count=2 memory=mmap",
    "reqbufs c1 queue=cap count=2 memory=mmap",
    "expbuf c1 queue=cap index=1 -> d1",
];

/// And after it: a sync file, a stream start and stop.
const AFTER: &[&str] = &[
    "export_sync_file d1 dir=rw -> s1",
    "streamon c1 queue=out",
    "fence_info s1",
    "streamoff c1 queue=out",
    "reqbufs c1 queue=cap count=0 memory=mmap",
];

/// Shrink the padded `program` in the lab and check the result.
pub fn run(lab: &Lab, out: &Path, program: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let text = std::fs::read_to_string(program)?;
    let hand = op_lines(&text).count();
    let padded = out.join("padded.m2m");
    std::fs::write(&padded, pad(&text))?;
    let r = shrink::run(
        lab,
        &shrink::ShrinkRun {
            out: out.join("shrink"),
            max_boots: 80,
            input: padded,
            args: Vec::new(),
        },
    )?;
    println!(
        "shrink --resume: {} -> {} ops (hand-written: {hand}) in {} boots, {}s",
        r.ops_before, r.ops_after, r.boots, r.seconds
    );
    ensure!(
        r.ops_after <= hand,
        "the shrunk program ({} ops) is longer than the hand-written one ({hand})",
        r.ops_after
    );
    ensure!(
        r.boots > 1,
        "a lockdep shrink finished in one boot: the one-shot report was not exercised"
    );
    // The result is a regression program as it stands: its # switch: and # expect: replay.
    replay::run(lab, &out.join("replay"), &[out.join("shrink/shrunk.m2m")])
}

/// A program's op lines: neither comments nor blank.
fn op_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The program with [`BEFORE`] and [`AFTER`] around its ops (their trailing comments dropped),
/// its header kept.
fn pad(text: &str) -> String {
    let header = text.lines().filter(|l| l.starts_with('#'));
    let body = op_lines(text).map(|l| match l.find('#') {
        Some(i) => l[..i].trim_end(),
        None => l,
    });
    let all: Vec<&str> = header
        .chain(BEFORE.iter().copied())
        .chain(body)
        .chain(AFTER.iter().copied())
        .collect();
    all.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_padded_program_keeps_the_header_and_body_and_parses() {
        let lab = Lab::new(crate::arch::Arch::X86_64).unwrap();
        let text =
            std::fs::read_to_string(lab.repo.join("corpora/faults/alloc-in-section.m2m")).unwrap();
        assert_eq!(op_lines(&text).count(), 10);
        let padded = pad(&text);
        let p = m2mfuzz::program::text::parse(&padded).unwrap();
        assert_eq!(p.ops.len(), 10 + BEFORE.len() + AFTER.len());
        assert_eq!(
            p.header("switch"),
            Some("videobuf2_common.rf_fault=8"),
            "{padded}"
        );
        assert!(padded.contains("\nset_ctrl c0 id=0x981900 value=20\n"));
        assert!(padded.starts_with("# m2mfuzz program v1\n"));
        assert!(padded.ends_with("reqbufs c1 queue=cap count=0 memory=mmap\n"));
    }
}
