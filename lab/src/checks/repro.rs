//! C reproducers reproduce: each program's `repro --c`, compiled statically on the host against
//! the lab kernel's uapi headers, run in a fresh boot (its `# switch:` on the kernel command
//! line) under `m2mfuzz watch --json`; its findings must be the program's `# expect:` lines:
//! exactly, or with `at_least` those and maybe more (a shrunk stress finding names the one it was
//! shrunk for; lockdep may report the same bad lock use as another class too). A threaded program
//! that expects a finding repeats for up to 60 s (a race shows in some rounds only) and is
//! judged at least: once the race has hit, what the corrupted state does next (a fence the lost
//! buffer never signals, say) varies with the interleaving. A guest
//! that times out or dies is a failure of that program, with its console; the table is finished.
use crate::boot::{self, Boot, Guest};
use crate::lab::Lab;
use crate::{apt, cmd, guest_bins, kernel};
use anyhow::{bail, Context, Result};
use m2mfuzz::oracle::JsonLine;
use m2mfuzz::program::Program;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds a threaded reproducer that expects a finding repeats for.
const RACE_SECONDS: u32 = 60;

/// Check `programs` (default: corpora/*/*.m2m); prints a line per program.
pub fn run(lab: &Lab, out: &Path, at_least: bool, programs: &[PathBuf]) -> Result<()> {
    let programs = if programs.is_empty() {
        default_programs(&lab.repo.join("corpora"))?
    } else {
        programs.to_vec()
    };
    let share = guest_bins::fresh_share(lab, out, &[])?;
    let repros = share.join("repros");
    std::fs::create_dir_all(&repros)?;
    // Builds the kernel when needed, which installs the uapi headers the C compiles against.
    kernel::build(lab, kernel::Variant::Default)?;
    let headers = lab
        .cache
        .join(format!("headers{}/include", lab.arch.suffix()));
    let (cc, pkgs) = lab.arch.cc();
    apt::need(pkgs)?;
    let guest = Guest::of(lab)?;
    let mut failed = false;
    for path in &programs {
        let name = path
            .file_stem()
            .context("a program file")?
            .to_string_lossy()
            .into_owned();
        let p = m2mfuzz::program::text::parse_file(path)?;
        let c = repros.join(format!("{name}.c"));
        std::fs::write(&c, m2mfuzz::repro::to_c(&p))?;
        cmd::run(
            Command::new(cc)
                .args(["-Wall", "-Wextra", "-Werror", "-O2", "-static", "-pthread"])
                .arg("-I")
                .arg(&headers)
                .arg("-o")
                .arg(repros.join(&name))
                .arg(&c),
        )
        .with_context(|| format!("{name}: the reproducer does not compile"))?;
        let want = expected(&p);
        let b = Boot::new(&out.join(&name), &share, job(&name, &p, &want))
            .timeout(300)
            .cmdline(p.header("switch").unwrap_or(""));
        let booted = boot::run(&guest, &b)?;
        if let Err(e) = booted.rc() {
            println!("{name:<28} GUEST FAILED ({e:#})");
            failed = true;
            continue;
        }
        // No results is no answer, not "nothing found".
        let Ok(text) = std::fs::read_to_string(booted.result(&format!("{name}.jsonl"))) else {
            println!(
                "{name:<28} NO RESULTS (console: {})",
                booted.console.display()
            );
            failed = true;
            continue;
        };
        // watch's last line says how the reproducer ended; without it watch did not finish.
        let ended = text.lines().any(|l| {
            matches!(
                serde_json::from_str::<JsonLine>(l),
                Ok(JsonLine::Exit { .. })
            )
        });
        if !ended {
            println!(
                "{name:<28} NO EXIT LINE (watch did not finish; console: {})",
                booted.console.display()
            );
            failed = true;
            continue;
        }
        let got = found(&text)?;
        let v = judge(&want, &got, at_least || repeats(&p, &want));
        failed |= v.is_none();
        let res = match v {
            Some(Verdict::Exact) => "reproduced".to_string(),
            Some(Verdict::AndMore) => "reproduced, and more:".to_string(),
            None => format!("DIFFERENT (expected: {})", join(&want, "none")),
        };
        println!("{name:<28} {res:<12} {}", join(&got, "none"));
    }
    if failed {
        bail!(
            "some C reproducers did not reproduce; see {}",
            out.display()
        );
    }
    Ok(())
}

/// corpora/*/*.m2m, in the shell glob's order.
fn default_programs(corpora: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpora)
        .with_context(|| format!("read {}", corpora.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let mut ps: Vec<PathBuf> = std::fs::read_dir(&d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "m2m"))
            .collect();
        ps.sort();
        v.extend(ps);
    }
    Ok(v)
}

/// The `# expect:` findings (`kind: title`), `clean` left out.
fn expected(p: &Program) -> BTreeSet<String> {
    p.header
        .iter()
        .filter(|(k, v)| k == "expect" && v != "clean")
        .map(|(_, v)| v.clone())
        .collect()
}

/// A threaded program that expects a finding: its reproducer repeats until the race hits.
fn repeats(p: &Program, want: &BTreeSet<String>) -> bool {
    p.is_threaded() && !want.is_empty()
}

/// The guest's job: the reproducer under `watch --json`; a threaded one that expects a finding
/// repeats for up to [`RACE_SECONDS`].
fn job(name: &str, p: &Program, want: &BTreeSet<String>) -> String {
    let secs = if repeats(p, want) {
        format!(" {RACE_SECONDS}")
    } else {
        String::new()
    };
    format!(
        "/host/bin/m2mfuzz watch --json -- /host/repros/{name}{secs} > /host/out/{name}.jsonl\n"
    )
}

/// The findings of `watch --json` lines, as `kind: title`.
fn found(jsonl: &str) -> Result<BTreeSet<String>> {
    let mut got = BTreeSet::new();
    for l in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let line: JsonLine = serde_json::from_str(l).with_context(|| format!("watch line: {l}"))?;
        if let JsonLine::Finding { finding: f } = line {
            got.insert(format!("{}: {}", f.kind, f.title));
        }
    }
    Ok(got)
}

/// How a reproducer's findings met its expectations.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Exactly the expected ones.
    Exact,
    /// With `at_least`: every expected one, and more.
    AndMore,
}

/// `None`: they differ.
fn judge(want: &BTreeSet<String>, got: &BTreeSet<String>, at_least: bool) -> Option<Verdict> {
    if want == got {
        Some(Verdict::Exact)
    } else if at_least && !want.is_empty() && want.is_subset(got) {
        Some(Verdict::AndMore)
    } else {
        None
    }
}

fn join(s: &BTreeSet<String>, empty: &str) -> String {
    if s.is_empty() {
        empty.to_string()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn watch_lines_give_the_findings_not_what_is_elsewhere_or_noted() {
        // Lines of a lab run (lab-out/faults), the elsewhere line shaped as the finding.
        let text = r#"{"finding":{"clause":"error-signalled","evidence":"vb2/vim2m-cap-8 context 8 seqno 1: destroyed unsignalled (init true, emit true, signaled false, destroy true)","fence_timelines":["vim2m-cap-8"],"kind":"leaked-fence","op":null,"signature":"leaked-fence: release fence destroyed unsignalled on vim2m-cap","title":"release fence destroyed unsignalled on vim2m-cap","under_test":true}}
{"finding":{"clause":"finite","evidence":"op 10 `wait s0 timeout_ms=3000` timed out; the fence was still pending 5 s later with no other op running: status=0 fences=[vb2/visl-cap-10:0]","fence_timelines":["visl-cap-10"],"kind":"hang","op":10,"signature":"hang: release fence hang on visl-cap","title":"release fence hang on visl-cap","under_test":true}}
{"elsewhere":{"evidence":"WARNING: CPU: 0 PID: 7 at fs/ext4/inode.c:1 ext4_foo+0x33/0x2fb","kind":"splat","op":null,"signature":"splat: WARNING in ext4_foo","title":"WARNING in ext4_foo","under_test":false}}
{"note":"lockdep is off (debug_locks 0): further lockdep findings need a reboot"}
"#;
        assert_eq!(
            found(text).unwrap(),
            set(&[
                "hang: release fence hang on visl-cap",
                "leaked-fence: release fence destroyed unsignalled on vim2m-cap"
            ])
        );
        // The old snake_case spelling is not read: one spelling of every kind.
        assert!(found(r#"{"finding":{"kind":"leaked_fence","title":"x","signature":"x","op":null,"evidence":"","under_test":false}}"#).is_err());
    }

    #[test]
    fn exactly_or_at_least_the_expected_findings() {
        let want = set(&["splat: a"]);
        assert_eq!(
            judge(&want, &set(&["splat: a"]), false),
            Some(Verdict::Exact)
        );
        assert_eq!(judge(&want, &set(&["splat: a", "splat: b"]), false), None);
        assert_eq!(
            judge(&want, &set(&["splat: a", "splat: b"]), true),
            Some(Verdict::AndMore)
        );
        assert_eq!(judge(&want, &set(&[]), true), None);
        // A clean program must stay clean even with --at-least.
        assert_eq!(judge(&set(&[]), &set(&["splat: b"]), true), None);
        assert_eq!(judge(&set(&[]), &set(&[]), false), Some(Verdict::Exact));
    }

    #[test]
    fn a_threaded_program_expecting_a_finding_repeats_and_clean_ones_do_not() {
        let racy = m2mfuzz::program::text::parse(
            "# m2mfuzz program v2\n# expect: splat: WARNING in vb2_buffer_done\nopen node=vim2m -> c0\n@1 close c0\n",
        )
        .unwrap();
        let want = expected(&racy);
        assert_eq!(want, set(&["splat: WARNING in vb2_buffer_done"]));
        assert!(job("r", &racy, &want).contains("/host/repros/r 60 > /host/out/r.jsonl"));
        assert!(repeats(&racy, &want));
        let clean = m2mfuzz::program::text::parse(
            "# m2mfuzz program v2\n# expect: clean\nopen node=vim2m -> c0\n@1 close c0\n",
        )
        .unwrap();
        let want = expected(&clean);
        assert!(want.is_empty());
        assert!(job("c", &clean, &want).contains("/host/repros/c > /host/out/c.jsonl"));
        assert!(!repeats(&clean, &want));
    }

    #[test]
    fn the_default_programs_are_the_corpora_one_level_down() {
        let lab = Lab::new(crate::arch::Arch::X86_64).unwrap();
        let ps = default_programs(&lab.repo.join("corpora")).unwrap();
        assert!(ps
            .iter()
            .any(|p| p.ends_with("faults/alloc-in-section.m2m")));
        // corpora/faults/evil/ is not one level down.
        assert!(!ps.iter().any(|p| p.to_string_lossy().contains("/evil/")));
        let mut sorted = ps.clone();
        sorted.sort();
        assert_eq!(ps, sorted);
    }
}
