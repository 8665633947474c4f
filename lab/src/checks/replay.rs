//! The regression gate: replay corpus programs in the lab; any unexpected outcome fails. One
//! boot replays them all (lockdep programs last); a program left unjudged because an earlier
//! report switched lockdep off is replayed again in a fresh boot of its own.
use crate::boot::{self, Boot, Guest};
use crate::checks::stress::{copy_dir, quote};
use crate::guest_bins;
use crate::lab::Lab;
use anyhow::{bail, Context, Result};
use m2mfuzz::corpus::{Replayed, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Replay `paths` (files or directories of the repository); prints a table.
pub fn run(lab: &Lab, out: &Path, paths: &[PathBuf]) -> Result<()> {
    let share = guest_bins::fresh_share(lab, out, &[])?;
    // The paths as the user gave them, relative to the repository, inside the share.
    let mut rels = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p)?;
        let rel = abs
            .strip_prefix(&lab.repo)
            .with_context(|| format!("{} is not inside the repository", p.display()))?
            .to_path_buf();
        let dst = share.join("corpus").join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap())?;
        if abs.is_dir() {
            copy_dir(&abs, &dst)?;
        } else {
            std::fs::copy(&abs, &dst).with_context(|| format!("copy {}", abs.display()))?;
        }
        rels.push(rel.to_string_lossy().into_owned());
    }
    let guest = Guest::of(lab)?;
    let mut results: BTreeMap<PathBuf, Replayed> = BTreeMap::new();
    let mut pending = vec![rels];
    let mut boots = 0;
    while let Some(batch) = pending.pop() {
        boots += 1;
        let args: Vec<String> = batch.iter().map(|r| quote(r)).collect();
        let job = format!(
            "cd /host/corpus\n/host/bin/m2mfuzz replay --json {} > /host/out/replay.jsonl\n",
            args.join(" ")
        );
        let booted = boot::run(
            &guest,
            &Boot::new(&out.join(format!("boot-{boots}")), &share, job).timeout(900),
        )?;
        booted.rc()?;
        let text = std::fs::read_to_string(booted.result("replay.jsonl")).unwrap_or_default();
        std::fs::write(out.join(format!("replay-{boots}.jsonl")), &text)?;
        let got = parse(&text)?;
        if got.is_empty() {
            bail!(
                "boot {boots} gave no replay results; console: {}",
                booted.console.display()
            );
        }
        for r in got {
            // A program lockdep left unjudged in the first boot gets one of its own.
            if boots == 1 && lockdep_off(&r) {
                pending.push(vec![r.path.to_string_lossy().into_owned()]);
            }
            results.insert(r.path.clone(), r);
        }
    }
    let mut lines = String::new();
    for r in results.values() {
        lines += &serde_json::to_string(r)?;
        lines.push('\n');
    }
    std::fs::write(out.join("results.jsonl"), lines)?;
    print!("{}", table(results.values()));
    let pass = results
        .values()
        .filter(|r| matches!(r.status, Status::Pass))
        .count();
    println!(
        "replay: {pass} passed, {} failed ({boots} boots)",
        results.len() - pass
    );
    if pass != results.len() {
        bail!(
            "replay: unexpected outcomes; results in {}",
            out.join("results.jsonl").display()
        );
    }
    Ok(())
}

/// `m2mfuzz replay --json` lines.
fn parse(text: &str) -> Result<Vec<Replayed>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("replay line: {l}")))
        .collect()
}

fn lockdep_off(r: &Replayed) -> bool {
    matches!(&r.status, Status::NotRun { reason } if reason.contains("lockdep is off"))
}

/// The results as the table the gate prints.
fn table<'a>(rs: impl Iterator<Item = &'a Replayed>) -> String {
    let mut t = format!(
        "{:<48} {:<8} {:>7}  findings / reason\n",
        "program", "result", "seconds"
    );
    for r in rs {
        let (res, why) = match &r.status {
            Status::Pass if r.got.is_empty() => ("pass", "none".to_string()),
            Status::Pass => ("pass", r.got.iter().cloned().collect::<Vec<_>>().join("; ")),
            Status::Fail { reason } => ("FAIL", reason.clone()),
            Status::NotRun { reason } => ("NOT RUN", reason.clone()),
        };
        t += &format!(
            "{:<48} {res:<8} {:>7.1}  {why}\n",
            r.path.display(),
            r.seconds
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_lines_read_back_and_lockdep_skips_are_seen() {
        let text = r#"{"path":"corpora/a.m2m","status":{"status":"pass"},"got":[],"seconds":1.24,"runs":1}
{"path":"corpora/b.m2m","status":{"status":"not_run","reason":"lockdep is off (an earlier report)"},"got":[],"seconds":0.0,"runs":0}
"#;
        let rs = parse(text).unwrap();
        assert_eq!(rs.len(), 2);
        assert!(!lockdep_off(&rs[0]));
        assert!(lockdep_off(&rs[1]));
        let t = table(rs.iter());
        assert!(t.contains("corpora/a.m2m"), "{t}");
        assert!(t.contains("NOT RUN"));
        assert!(t.contains("1.2"));
    }
}
