//! The benchmark: every figure m2mfuzz is judged by, measured in the lab (fresh boots, TCG) and
//! written as one Markdown report (OUT/bench.md, also printed) and one JSON document
//! (OUT/bench.json) from whatever parts ran. A benchmark, not a test: it asserts nothing about
//! speed. Parts: overhead ([`super::bench_overhead`]), find (`stress-faults.sh`), shrink
//! (`shrink.sh` and `repro-check.sh` on a finding of find), scaling ([`super::bench_scaling`]),
//! coverage (`bench-coverage.sh`), duty ([`super::bench_duty`]). Also the helpers the benchmarks
//! share.
use crate::checks::{bench_duty, bench_overhead, bench_scaling, stress_faults};
use crate::lab::Lab;
use anyhow::{bail, Context, Result};
use m2mfuzz::stress::store::FindingMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The parts, in the order they run.
pub const PARTS: [&str; 6] = ["overhead", "find", "shrink", "scaling", "coverage", "duty"];

/// What to run.
#[derive(Clone, Debug)]
pub struct Bench {
    /// Output directory (kept: a part's earlier files are reported when it does not run).
    pub out: PathBuf,
    /// Parts to run.
    pub parts: Vec<String>,
    /// Stress seeds of find.
    pub seeds: Vec<String>,
    /// Seconds stress gets to find each fault.
    pub budget: u64,
    /// Fault programs of find (default: every one of corpora/faults).
    pub faults: Vec<String>,
    /// Seconds of each coverage mode.
    pub coverage_seconds: u64,
}

/// Run the parts and write the report; returns the exit code (0; a part's own when it failed;
/// 1 when a find boot timed out or died).
pub fn run(lab: &Lab, b: &Bench) -> Result<u8> {
    let out = &b.out;
    if let Some(p) = b.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        anyhow::bail!("--parts: no part {p:?} (the parts: {})", PARTS.join(" "));
    }
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let progs = fault_programs(lab, &b.faults)?;
    let has = |p: &str| b.parts.iter().any(|x| x == p);
    let seeds = b.seeds.join(" ");
    if has("overhead") {
        let s = bench_overhead::Settings {
            reps: 11,
            n: 1000,
            n_ioctls: 10000,
        };
        match bench_overhead::run(lab, &out.join("overhead"), s)? {
            Ok(md) => eprint!("{md}"),
            Err(rc) => return Ok(code(rc)),
        }
    }
    if has("find") || has("shrink") {
        // A fault missed is a figure of the table; a guest that timed out or died fails the
        // benchmark once the figures are written (below; stress-faults.sh names the consoles).
        let mut args = vec![
            arg(out.join("find")),
            "--budget".into(),
            b.budget.to_string(),
            "--seeds".into(),
            seeds.clone(),
        ];
        args.insert(0, "--out".into());
        args.extend(progs.iter().map(|p| p.to_string_lossy().into_owned()));
        // 0 all found, 1 a fault missed or a guest failed (both figures of the table); anything
        // else (an interruption, an error) leaves no figures.
        match script(lab, "stress-faults.sh", &args)? {
            0 | 1 => {}
            rc => bail!("stress-faults.sh exited {rc}: the find part has no figures"),
        }
    }
    if has("shrink") {
        shrink(lab, out, &progs, &b.seeds)?;
    }
    if has("scaling") {
        let md = bench_scaling::run(lab, &out.join("scaling"), 30, &[1, 2, 4, 8])?;
        eprint!("{md}");
    }
    if has("coverage") {
        let rc = script(
            lab,
            "bench-coverage.sh",
            &[
                "--out".into(),
                arg(out.join("coverage")),
                "--seconds".into(),
                b.coverage_seconds.to_string(),
            ],
        )?;
        if rc != 0 {
            return Ok(code(rc));
        }
    }
    if has("duty") {
        match bench_duty::run(lab, &out.join("duty"), 60, 15)? {
            Ok(md) => eprint!("{md}"),
            Err(rc) => return Ok(code(rc)),
        }
    }
    let (json, md) = compose(out, &seeds, &crate::clock::utc_now(), &machine())?;
    write_json(&out.join("bench.json"), &json)?;
    std::fs::write(out.join("bench.md"), &md)?;
    print!("{md}");
    let dead = if has("find") || has("shrink") {
        let results = out.join("find/results.jsonl");
        dead_boots(
            &std::fs::read_to_string(&results)
                .with_context(|| format!("read {}", results.display()))?,
        )?
    } else {
        0
    };
    if dead > 0 {
        crate::say!(
            "error: {dead} stress boot(s) of the find part timed out or died: their figures are not times (consoles: {}/find/*/console.log)",
            out.display()
        );
        return Ok(1);
    }
    Ok(0)
}

/// An exit code as the lab's commands give it.
fn code(rc: i32) -> u8 {
    rc.clamp(1, 255) as u8
}

fn arg(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// The fault programs: the named ones, or all of corpora/faults in name order.
fn fault_programs(lab: &Lab, names: &[String]) -> Result<Vec<PathBuf>> {
    let dir = lab.repo.join("corpora/faults");
    if !names.is_empty() {
        return Ok(names.iter().map(|n| dir.join(format!("{n}.m2m"))).collect());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "m2m"))
        .collect();
    v.sort();
    Ok(v)
}

/// Run another lab check by its wrapper (`ci/lab/NAME`, so it runs as a user runs it), its
/// output on our stderr (stdout is the report's); returns its exit code.
fn script(lab: &Lab, name: &str, args: &[String]) -> Result<i32> {
    let err = std::io::stderr().as_fd().try_clone_to_owned()?;
    let mut c = Command::new(lab.file(name));
    c.args(args).stdout(Stdio::from(err));
    let st = c
        .status()
        .with_context(|| format!("cannot start {}", crate::cmd::show(&c)))?;
    Ok(st.code().unwrap_or(128 + 2))
}

/// A line of `shrink.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShrinkRow {
    /// The fault program's name.
    pub program: String,
    /// Its ops (the hand-written reproducer).
    pub hand_written_ops: u64,
    /// shrink.sh's `result.json`; null when find found nothing to shrink; "failed".
    pub shrunk: Value,
    /// Whether the shrunk program's C reproducer gave the same finding in a fresh boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_reproducer_reproduces: Option<bool>,
}

/// Shrink each fault's first stress finding of the expected kind and title (seeds in order);
/// writes OUT/shrink.jsonl. A shrink that fails is a row of the table.
fn shrink(lab: &Lab, out: &Path, progs: &[PathBuf], seeds: &[String]) -> Result<()> {
    let jsonl = out.join("shrink.jsonl");
    std::fs::write(&jsonl, "")?;
    for p in progs {
        let name = p
            .file_stem()
            .context("a program name")?
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
        let (expect, hand) = (expectation(&text), hand_ops(&text));
        let found = seeds.iter().find_map(|s| {
            matching_finding(&out.join(format!("find/{name}-{s}/run/findings")), &expect)
        });
        let mut row = ShrinkRow {
            program: name.clone(),
            hand_written_ops: hand,
            shrunk: Value::Null,
            c_reproducer_reproduces: None,
        };
        if let Some(dir) = found {
            let dest = out.join("shrink").join(&name);
            let ok = script(
                lab,
                "shrink.sh",
                &[
                    "--out".into(),
                    arg(dest.clone()),
                    arg(dir),
                    "--finding".into(),
                    expect.clone(),
                ],
            )? == 0;
            if ok {
                // Its C reproducer, compiled and run in a fresh boot, must give the same finding.
                let shrunk = dest.join("shrunk.m2m");
                let repro = shrunk.exists()
                    && script(
                        lab,
                        "repro-check.sh",
                        &[
                            "--at-least".into(),
                            "--out".into(),
                            arg(dest.join("repro")),
                            arg(shrunk),
                        ],
                    )? == 0;
                let r = dest.join("result.json");
                row.shrunk = serde_json::from_str(
                    &std::fs::read_to_string(&r)
                        .with_context(|| format!("read {}", r.display()))?,
                )
                .with_context(|| r.display().to_string())?;
                row.c_reproducer_reproduces = Some(repro);
            } else {
                row.shrunk = Value::from("failed");
            }
        }
        let mut line = serde_json::to_string(&row)?;
        line.push('\n');
        std::fs::OpenOptions::new()
            .append(true)
            .open(&jsonl)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
            .with_context(|| format!("append to {}", jsonl.display()))?;
    }
    Ok(())
}

/// The first `# expect:` line's finding (`kind: title`).
fn expectation(program: &str) -> String {
    program
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_default()
        .to_string()
}

/// A program's ops: lines neither comments nor empty.
fn hand_ops(program: &str) -> u64 {
    program
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count() as u64
}

/// The directory of the first finding (in name order) under `findings` that is `expect`.
fn matching_finding(findings: &Path, expect: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(findings)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.into_iter().find(|d| {
        std::fs::read_to_string(d.join("finding.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<FindingMeta>(&t).ok())
            .is_some_and(|f| format!("{}: {}", f.kind, f.title) == expect)
    })
}

/// "x86_64, 2 cores, QEMU TCG".
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{}, {cores} cores, QEMU TCG", std::env::consts::ARCH)
}

/// A part's JSON document, or None (null) when it did not run. The benchmarks of this crate
/// read as their types, so their keys keep their order; the shell parts' as values.
fn json_file<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(
            serde_json::from_str(&t).with_context(|| p.display().to_string())?,
        )),
        Err(_) => Ok(None),
    }
}

/// A part's JSON lines, or None (null) when it did not run.
fn jsonl_file<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<Vec<T>>> {
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).with_context(|| p.display().to_string()))
                .collect::<Result<_>>()?,
        )),
        Err(_) => Ok(None),
    }
}

/// `bench.json`'s document.
#[derive(Serialize)]
struct Doc {
    date: String,
    machine: String,
    overhead: Option<bench_overhead::Overhead>,
    find: Option<Vec<Value>>,
    shrink: Option<Vec<ShrinkRow>>,
    scaling: Option<bench_scaling::Scaling>,
    coverage: Option<Value>,
    duty: Option<bench_duty::Duty>,
}

/// bench.json and bench.md from the parts' files in `out`.
fn compose(out: &Path, seeds: &str, date: &str, machine: &str) -> Result<(Doc, String)> {
    let doc = Doc {
        date: date.into(),
        machine: machine.into(),
        overhead: json_file(&out.join("overhead/overhead.json"))?,
        find: jsonl_file(&out.join("find/results.jsonl"))?,
        shrink: jsonl_file(&out.join("shrink.jsonl"))?,
        scaling: json_file(&out.join("scaling/scaling.json"))?,
        coverage: json_file(&out.join("coverage/coverage.json"))?,
        duty: json_file(&out.join("duty/duty.json"))?,
    };
    let section = |md: &mut String, title: &str, file: &str| {
        if let Ok(t) = std::fs::read_to_string(out.join(file)) {
            *md += &format!("\n## {title}\n\n{t}");
        }
    };
    let mut md = format!("# m2mfuzz benchmark, {date} ({machine})\n");
    section(&mut md, "Harness overhead", "overhead/overhead.md");
    section(
        &mut md,
        &format!("Time to first finding (stress, lab-smoke, seeds: {seeds})"),
        "find/results.md",
    );
    if let Some(rows) = &doc.shrink {
        md += "\n## Shrink quality (a stress finding, shrunk in the lab with reboots)\n\n\
               | fault | hand-written ops | stress finding ops | shrunk ops | boots | runs | wall s | C repro |\n\
               |---|---:|---:|---:|---:|---:|---:|---|\n";
        for r in rows {
            md += &shrink_line(r);
        }
    }
    section(
        &mut md,
        "Scaling (lab-bench, vim2m 1 ms)",
        "scaling/scaling.md",
    );
    section(&mut md, "Kernel coverage", "coverage/coverage.md");
    section(
        &mut md,
        "Stress duty cycle (lab-duty, vim2m 1 ms, 320x240)",
        "duty/duty.md",
    );
    Ok((doc, md))
}

/// A value as jq's string interpolation shows it: strings bare, the rest as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// A row of the shrink table.
fn shrink_line(r: &ShrinkRow) -> String {
    match &r.shrunk {
        Value::Object(_) => {
            let s = &r.shrunk;
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.program,
                r.hand_written_ops,
                show(&s["ops_before"]),
                show(&s["ops_after"]),
                show(&s["boots"]),
                show(&s["runs"]),
                show(&s["seconds"]),
                if r.c_reproducer_reproduces == Some(true) {
                    "same finding"
                } else {
                    "different"
                }
            )
        }
        other => format!(
            "| {} | {} | {} | - | - | - | - | - |\n",
            r.program,
            r.hand_written_ops,
            if other.is_null() {
                "not found"
            } else {
                "shrink failed"
            }
        ),
    }
}

/// find's boots that timed out or died (stress-faults' typed results).
fn dead_boots(results: &str) -> Result<usize> {
    let mut n = 0;
    for l in results.lines().filter(|l| !l.trim().is_empty()) {
        let row: stress_faults::Row =
            serde_json::from_str(l).with_context(|| format!("stress-faults result: {l}"))?;
        n += usize::from(row.guest_failed);
    }
    Ok(n)
}

/// `x` rounded to `1/scale` (jq's `x * scale | round / scale`).
pub fn round(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

/// The median of `v`: the lower middle one of an even count (the shell benchmarks' median).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Write `v` as pretty JSON (with a final newline).
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut t = serde_json::to_string_pretty(v)?;
    t.push('\n');
    std::fs::write(path, t).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_are_the_lower_middle_and_rounding_is_jqs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(round(106.30051867580808, 10.0).to_string(), "106.3");
        assert_eq!(round(0.5048605723825854, 1000.0).to_string(), "0.505");
        assert_eq!(round(2.0, 100.0).to_string(), "2");
    }

    #[test]
    fn programs_count_ops_and_expectations_as_the_shell_did() {
        let p = "# m2mfuzz program v1\n# expect: leaked-fence: release fence never signalled\n# expect: splat: x\n\nopen node=vim2m -> c0\nclose c0\n";
        assert_eq!(
            expectation(p),
            "leaked-fence: release fence never signalled"
        );
        assert_eq!(hand_ops(p), 2);
        assert_eq!(expectation("open x\n"), "");
    }

    #[test]
    fn dead_find_boots_are_counted_from_the_results() {
        let r = r#"{"program":"a","switch":"s","expect":"e","seed":1,"seconds":12.5,"found":"hang: x","guest_failed":false}
{"program":"a","switch":"s","expect":"e","seed":2,"seconds":null,"found":"guest failed (exit 124); recovered: nothing","guest_failed":true}
{"program":"b","switch":"s","expect":"e","seed":1,"seconds":null,"found":""}
"#;
        assert_eq!(dead_boots(r).unwrap(), 1);
        assert_eq!(dead_boots("").unwrap(), 0);
        assert!(dead_boots("not json\n").is_err());
    }

    fn dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("m2mfuzz-lab-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_first_finding_of_the_expected_kind_and_title_is_shrunk() {
        let d = dir("find");
        let meta = |kind: &str, title: &str| {
            // A stress-faults finding.json's shape.
            serde_json::json!({"kind": kind, "title": title,
                "signature": format!("{kind}: {title}"), "under_test": true,
                "first_seen_s": 25.41655564, "epoch": 6, "hits": 1, "worker": 0,
                "program": [17, 7532132519142351463u64], "op": 66,
                "switches": ["videobuf2_common.rf_fault=256"],
                "epoch_programs": [[1, 13, 16823470030920740621u64]],
                "clause": "signals-after-data"})
            .to_string()
        };
        for (n, k, t) in [("b", "hang", "x"), ("a", "splat", "y"), ("c", "hang", "x")] {
            std::fs::create_dir_all(d.join(n)).unwrap();
            std::fs::write(d.join(n).join("finding.json"), meta(k, t)).unwrap();
        }
        assert_eq!(matching_finding(&d, "hang: x"), Some(d.join("b")));
        assert_eq!(matching_finding(&d, "hang: z"), None);
        assert_eq!(matching_finding(&d.join("none"), "hang: x"), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A bench-duty.sh duty.json (2026-12-07).
    const DUTY: &str = r#"{
  "date": "2026-12-07T20:35:24Z", "cpus": 2, "accel": "tcg",
  "limit_jobs_per_s": 106.30051867580808,
  "limit_setup": "MMAP, 2 buffers a queue in flight, 320x240 RGBP→RGBP, TRANS_TIME 1 ms",
  "stress_seconds": 61.713970586, "capture_buf_done": 3312, "output_buf_done": 3305,
  "trace_lost": 0, "frames_dequeued": 2506, "stress_capture_done": 3312,
  "capture_done_per_s": 53.666940703234175, "frames_done_per_s": 40.60668882919832,
  "duty_cycle": 0.5048605723825854, "duty_cycle_dequeued_done": 0.38199897173634023
}"#;

    /// The driver's report from the parts' files, as bench.sh composed it.
    #[test]
    fn the_report_composes_whatever_parts_ran() {
        let d = dir("compose");
        std::fs::create_dir_all(d.join("duty")).unwrap();
        std::fs::write(d.join("duty/duty.json"), DUTY).unwrap();
        std::fs::write(d.join("duty/duty.md"), "| duty |\n").unwrap();
        let rows = [
            r#"{"program":"a","hand_written_ops":9,"shrunk":{"ops_before":40,"ops_after":9,"boots":2,"runs":31,"seconds":95.5},"c_reproducer_reproduces":true}"#,
            r#"{"program":"b","hand_written_ops":7,"shrunk":null}"#,
            r#"{"program":"c","hand_written_ops":5,"shrunk":"failed"}"#,
        ];
        std::fs::write(d.join("shrink.jsonl"), rows.join("\n") + "\n").unwrap();
        let (json, md) = compose(
            &d,
            "1 2",
            "2026-12-07T20:00:00Z",
            "x86_64, 2 cores, QEMU TCG",
        )
        .unwrap();
        let text = serde_json::to_string(&json).unwrap();
        // bench.sh's keys in its order, a part's own keys in theirs.
        assert!(text.starts_with(r#"{"date":"2026-12-07T20:00:00Z","machine":"x86_64, 2 cores, QEMU TCG","overhead":null,"find":null,"shrink":[{"program":"a""#), "{text}");
        assert!(text.contains(r#""scaling":null,"coverage":null,"duty":{"date":"2026-12-07T20:35:24Z","cpus":2,"accel":"tcg","limit_jobs_per_s":106.30051867580808,"#), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["shrink"][2]["shrunk"], "failed");
        assert_eq!(v["duty"]["duty_cycle"], 0.5048605723825854);
        assert!(md.starts_with(
            "# m2mfuzz benchmark, 2026-12-07T20:00:00Z (x86_64, 2 cores, QEMU TCG)\n"
        ));
        assert!(md.contains("| a | 9 | 40 | 9 | 2 | 31 | 95.5 | same finding |\n"));
        assert!(md.contains("| b | 7 | not found | - | - | - | - | - |\n"));
        assert!(md.contains("| c | 5 | shrink failed | - | - | - | - | - |\n"));
        assert!(
            md.ends_with("\n## Stress duty cycle (lab-duty, vim2m 1 ms, 320x240)\n\n| duty |\n")
        );
        assert!(!md.contains("Harness overhead"));
        // Each row of shrink.jsonl keeps its keys.
        let r: ShrinkRow = serde_json::from_str(rows[1]).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), rows[1]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
