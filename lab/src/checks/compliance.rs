//! The peer suite: v4l2-compliance (Debian v4l-utils, in the x86_64 initramfs) with streaming
//! tests on each lab node, its per-node totals against `ci/lab/compliance-baseline.txt` (the
//! stock lab kernel's figures): no node may have more failures than there.
use crate::arch::Arch;
use crate::boot::{self, Boot, Guest};
use crate::cmd;
use crate::lab::{fresh_dir, Lab};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `-s` streams N buffers; the stateful vicodec decoder waits forever for input with `-s`, so
/// vicodec's nodes run without it.
const JOB: &str = r#"for d in /sys/class/video4linux/video*; do
    name=$(cat "$d/name"); dev=/dev/$(basename "$d")
    case "$name" in
        vim2m|visl) args="-s10" ;;
        *) args="" ;;
    esac
    mkdir -p /host/out/v4l2
    timeout 300 v4l2-compliance -d "$dev" $args > "/host/out/v4l2/$name.log" 2>&1
    echo "$name: exit $?" >> /host/out/exits
done
grep debug_locks /proc/lockdep_stats > /host/out/debug_locks
"#;

/// One node's v4l2-compliance totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Tests run.
    pub total: u32,
    /// Passed.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
    /// Warnings.
    pub warnings: u32,
}

/// The last `Total for …: N, Succeeded: N, Failed: N, Warnings: N` line of a log.
pub fn parse_totals(log: &str) -> Option<Totals> {
    log.lines().rev().find_map(|l| {
        let rest = l.strip_prefix("Total for ")?;
        let (head, rest) = rest.split_once(", Succeeded: ")?;
        let (_, total) = head.rsplit_once(": ")?;
        let (succeeded, rest) = rest.split_once(", Failed: ")?;
        let (failed, rest) = rest.split_once(", Warnings: ")?;
        let warnings: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(Totals {
            total: total.trim().parse().ok()?,
            succeeded: succeeded.trim().parse().ok()?,
            failed: failed.trim().parse().ok()?,
            warnings: warnings.parse().ok()?,
        })
    })
}

/// `node total succeeded failed warnings` lines, sorted by node (summary.txt, the baseline).
fn summary(nodes: &BTreeMap<String, Totals>) -> String {
    nodes
        .iter()
        .map(|(n, t)| {
            format!(
                "{n} {} {} {} {}\n",
                t.total, t.succeeded, t.failed, t.warnings
            )
        })
        .collect()
}

/// A summary or the baseline back; `#` lines are comments.
pub fn parse_summary(text: &str) -> Result<BTreeMap<String, Totals>> {
    let mut m = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = l.split_whitespace().collect();
        let n = |i: usize| -> Result<u32> {
            f.get(i).and_then(|v| v.parse().ok()).with_context(|| {
                format!("baseline line `{l}`: node total succeeded failed warnings")
            })
        };
        m.insert(
            f[0].to_string(),
            Totals {
                total: n(1)?,
                succeeded: n(2)?,
                failed: n(3)?,
                warnings: n(4)?,
            },
        );
    }
    Ok(m)
}

/// What is worse than the baseline: more failures on a node, or a node it does not know.
pub fn worse(got: &BTreeMap<String, Totals>, baseline: &BTreeMap<String, Totals>) -> Vec<String> {
    got.iter()
        .filter_map(|(n, t)| match baseline.get(n) {
            None => Some(format!("node {n} is not in the baseline")),
            Some(b) if t.failed > b.failed => {
                Some(format!("{n}: {} failures, baseline {}", t.failed, b.failed))
            }
            Some(_) => None,
        })
        .collect()
}

/// Run it; with `write_baseline`, store the figures as the baseline instead of comparing.
/// False when a node is worse than the baseline.
pub fn run(lab: &Lab, out: &Path, cmdline: &str, write_baseline: bool) -> Result<bool> {
    if lab.arch != Arch::X86_64 {
        bail!(
            "compliance runs in the x86_64 lab only: the {} initramfs has no v4l2-compliance",
            lab.arch.kernel_arch()
        );
    }
    let baseline = lab.file("compliance-baseline.txt");
    fresh_dir(out, &lab.repo)?;
    let share = out.join("share");
    std::fs::create_dir_all(&share)?;
    let booted = boot::run(
        &Guest::of(lab)?,
        &Boot::new(out, &share, JOB).timeout(900).cmdline(cmdline),
    )?;
    let rc = booted.rc()?;
    if rc != 0 {
        bail!(
            "the guest job failed (exit {rc}); console: {}",
            booted.console.display()
        );
    }
    let logs = booted.result("v4l2");
    let mut nodes = BTreeMap::new();
    for e in std::fs::read_dir(&logs).with_context(|| format!("no logs in {}", logs.display()))? {
        let p = e?.path();
        if p.extension().is_none_or(|x| x != "log") {
            continue;
        }
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let text = String::from_utf8_lossy(&std::fs::read(&p)?).into_owned();
        let t = parse_totals(&text)
            .with_context(|| format!("no v4l2-compliance total for {name}; see {}", p.display()))?;
        nodes.insert(name, t);
    }
    let text = summary(&nodes);
    std::fs::write(out.join("summary.txt"), &text)?;
    println!(
        "{:<20} {:>6} {:>10} {:>7} {:>9}",
        "node", "total", "succeeded", "failed", "warnings"
    );
    for (n, t) in &nodes {
        println!(
            "{n:<20} {:>6} {:>10} {:>7} {:>9}",
            t.total, t.succeeded, t.failed, t.warnings
        );
    }
    let locks = std::fs::read_to_string(booted.result("debug_locks")).unwrap_or_default();
    print!("{locks}");
    if !crate::checks::faults::lockdep_on(&locks) {
        bail!(
            "lockdep switched off during v4l2-compliance; console: {}",
            booted.console.display()
        );
    }
    if write_baseline {
        let version =
            cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "v4l-utils"]))?;
        std::fs::write(
            &baseline,
            format!(
                "# node total succeeded failed warnings: v4l2-compliance {}, stock lab kernel\n{text}",
                version.trim()
            ),
        )?;
        crate::say!("baseline written: {}", baseline.display());
        return Ok(true);
    }
    let base = std::fs::read_to_string(&baseline).with_context(|| {
        format!(
            "no baseline {}; run with --write-baseline on the stock lab kernel",
            baseline.display()
        )
    })?;
    let bad = worse(&nodes, &parse_summary(&base)?);
    for b in &bad {
        crate::say!("{b}");
    }
    if !bad.is_empty() {
        crate::say!(
            "v4l2-compliance is worse than the baseline; logs: {}",
            logs.display()
        );
        return Ok(false);
    }
    crate::say!("v4l2-compliance: no node worse than the baseline");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_total_line_counts() {
        let log = "Required ioctls:\n\ttest VIDIOC_QUERYCAP: OK\n\
                   Total for vim2m device /dev/video0: 46, Succeeded: 44, Failed: 2, Warnings: 0\n\
                   Streaming ioctls:\n\
                   Total for vim2m device /dev/video0: 53, Succeeded: 51, Failed: 2, Warnings: 1\n\
                   Grand Total for vim2m device /dev/video0: 53, Succeeded: 51, Failed: 2, Warnings: 1\n";
        assert_eq!(
            parse_totals(log),
            Some(Totals {
                total: 53,
                succeeded: 51,
                failed: 2,
                warnings: 1
            })
        );
        assert_eq!(
            parse_totals("v4l2-compliance: cannot open /dev/video9\n"),
            None
        );
    }

    #[test]
    fn more_failures_or_an_unknown_node_is_worse_and_fewer_is_not() {
        let base = parse_summary(
            "# node total succeeded failed warnings: v4l2-compliance 1.22.1-5+b2, stock lab kernel\n\
             stateful-decoder 46 41 5 0\nvim2m 53 51 2 0\nvisl 53 47 6 0\n",
        )
        .unwrap();
        assert_eq!(base.len(), 3);
        let mut got = base.clone();
        assert!(worse(&got, &base).is_empty());
        got.get_mut("visl").unwrap().failed = 4;
        assert!(worse(&got, &base).is_empty());
        got.get_mut("vim2m").unwrap().failed = 3;
        got.insert(
            "new-node".into(),
            Totals {
                total: 1,
                succeeded: 1,
                failed: 0,
                warnings: 0,
            },
        );
        assert_eq!(
            worse(&got, &base),
            [
                "node new-node is not in the baseline",
                "vim2m: 3 failures, baseline 2"
            ]
        );
        // The summary reads back as it was written.
        assert_eq!(parse_summary(&summary(&got)).unwrap(), got);
        assert!(parse_summary("vim2m 53 51\n").is_err());
        let real = include_str!("../../../ci/lab/compliance-baseline.txt");
        assert_eq!(parse_summary(real).unwrap()["vim2m"].failed, 2);
    }
}
