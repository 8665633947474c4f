//! Reports of stress runs: Markdown for a cover letter (one run, or a baseline and a patched run
//! side by side) and JSON lines for CI, from a run directory's files alone. The Markdown links
//! the PNG plots [`plot`] draws into the run directory.
pub mod plot;

use crate::stress::store::FindingMeta;
use crate::stress::{EpochStats, Totals};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Everything a report says about one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The run directory.
    pub dir: PathBuf,
    /// `run.json`.
    pub run: serde_json::Value,
    /// Totals summed over the epochs (`findings` there counts them by kind).
    pub totals: Totals,
    /// Kernel reports elsewhere, by title.
    pub splats_elsewhere: BTreeMap<String, u64>,
    /// Fences other than release fences still alive at an epoch's end, by driver/timeline (the
    /// kernel's static stub is not counted).
    pub fences_alive: BTreeMap<String, u64>,
    /// Findings, first seen first.
    pub findings: Vec<FindingMeta>,
    /// True when `summary.json` is missing: the run did not end normally (panic, power loss).
    pub unfinished: bool,
    /// `run.json`'s kernel debug state, typed (what the kernel let the oracles judge); the
    /// default, nothing judgeable, when the run did not record it.
    #[serde(skip)]
    pub debug: crate::device::debug_state::DebugState,
    /// `epochs.jsonl`, in its order (a torn last line left out).
    #[serde(skip)]
    pub epochs: Vec<EpochStats>,
    /// The plots [`draw_plots`] drew into `RUN/plots/`, or why it could not; none before.
    #[serde(skip)]
    pub plots: Option<std::result::Result<plot::Plots, String>>,
}

/// The events a report tabulates, in the order of a fence's life.
pub const EVENTS: &[&str] = &[
    "dma_fence_init",
    "dma_fence_emit",
    "dma_fence_enable_signal",
    "dma_fence_signaled",
    "dma_fence_wait_start",
    "dma_fence_wait_end",
    "dma_fence_destroy",
    "vb2_qbuf",
    "vb2_buf_queue",
    "vb2_buf_done",
    "vb2_dqbuf",
];

/// Read a run directory.
pub fn load(dir: &Path) -> Result<RunReport> {
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("run.json")).with_context(|| {
            format!(
                "{} has no run.json: is it a run directory of `m2mfuzz stress`?",
                dir.display()
            )
        })?,
    )
    .with_context(|| format!("{}/run.json", dir.display()))?;
    let mut r = RunReport {
        dir: dir.to_path_buf(),
        debug: serde_json::from_value(run["debug"].clone()).unwrap_or_default(),
        run,
        totals: Totals::default(),
        splats_elsewhere: BTreeMap::new(),
        fences_alive: BTreeMap::new(),
        findings: Vec::new(),
        unfinished: !dir.join("summary.json").exists(),
        epochs: Vec::new(),
        plots: None,
    };
    let epochs = std::fs::read_to_string(dir.join("epochs.jsonl")).unwrap_or_default();
    for (i, line) in epochs.lines().enumerate() {
        // The last line may be torn by a crash; anything else is corruption worth telling.
        let Ok(e) = serde_json::from_str::<EpochStats>(line) else {
            if i + 1 < epochs.lines().count() {
                anyhow::bail!(
                    "{}/epochs.jsonl:{}: not an epoch record",
                    dir.display(),
                    i + 1
                );
            }
            continue;
        };
        r.totals.add(&e);
        for t in &e.splats_elsewhere {
            *r.splats_elsewhere.entry(t.clone()).or_default() += 1;
        }
        for f in &e.fences_alive {
            *r.fences_alive.entry(f.clone()).or_default() += 1;
        }
        r.epochs.push(e);
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("findings")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue; // a finding that was being written when the run died
            }
            let p = e.path().join("finding.json");
            let m: FindingMeta = serde_json::from_str(
                &std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?,
            )
            .with_context(|| format!("{}", p.display()))?;
            r.findings.push(m);
        }
    }
    for f in &r.findings {
        *r.totals.findings.entry(f.kind.clone()).or_default() += 1;
    }
    r.findings
        .sort_by(|a, b| a.first_seen_s.total_cmp(&b.first_seen_s));
    Ok(r)
}

/// Draw the run's plots into `RUN/plots/` (again, if a report drew them before), for
/// [`markdown`] to link. A run with no epoch yet gets none; a failure (a read-only run
/// directory) is told in the report, not fatal to it.
pub fn draw_plots(r: &mut RunReport) {
    if r.epochs.is_empty() {
        return;
    }
    r.plots = Some(
        plot::render(&r.dir.join("plots"), &r.epochs, &r.findings, true)
            .map_err(|e| format!("{e:#}")),
    );
}

/// A Markdown link target for `target` as seen from a report in directory `from`: relative
/// when both resolve, so the report and the run directory can move together.
fn link(target: &Path, from: &Path) -> String {
    let rel = match (target.canonicalize(), from.canonicalize()) {
        (Ok(abs), Ok(f)) => {
            let (t, f): (Vec<_>, Vec<_>) = (abs.components().collect(), f.components().collect());
            let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
            if common <= 1 {
                // Nothing shared but the root: the absolute path reads better than ../../..
                return plain_link(&abs);
            }
            let mut p = PathBuf::new();
            for _ in common..f.len() {
                p.push("..");
            }
            p.extend(&t[common..]);
            p
        }
        _ => target.to_path_buf(),
    };
    plain_link(&rel)
}

/// A path as a Markdown link destination: CommonMark wants one with spaces in angle brackets.
fn plain_link(p: &Path) -> String {
    let s = p.to_string_lossy().into_owned();
    if s.contains(' ') {
        format!("<{s}>")
    } else {
        s
    }
}

/// The "Over time" section: each run's plots, or why there are none.
fn over_time(o: &mut String, runs: &[RunReport], names: &[String], report_dir: &Path) {
    let _ = writeln!(o, "\n## Over time\n");
    for (r, name) in runs.iter().zip(names) {
        if runs.len() > 1 {
            let _ = writeln!(o, "### {name}\n");
        }
        match &r.plots {
            _ if r.epochs.is_empty() => {
                let _ = writeln!(o, "No epoch recorded yet: nothing to plot.\n");
            }
            None => {
                let _ = writeln!(o, "Plots not drawn.\n");
            }
            Some(Err(e)) => {
                let _ = writeln!(o, "Plots not drawn: {e}\n");
            }
            Some(Ok(p)) => {
                if p.font.is_none() {
                    let _ = writeln!(
                        o,
                        "No font found (looked in $M2MFUZZ_FONT, {}; Debian: apt-get install \
                         fonts-dejavu-core): the plots have no titles, axis labels or legends. \
                         x is the time since the run's start, 0 to {:.1} {}.\n",
                        plot::FONT_PATHS.join(", "),
                        p.x_end,
                        p.x_unit
                    );
                }
                for pl in &p.plots {
                    let _ = writeln!(o, "![{}]({})\n", pl.alt, link(&pl.path, report_dir));
                    if p.font.is_none() {
                        let _ = writeln!(o, "{}: {}.\n", pl.alt, pl.key);
                    }
                }
            }
        }
    }
}

/// Each run's name in the tables: the part of its path that tells it from the others (runs
/// made by the lab all end in `share/out/run`: `ab-base/share/out/run` and
/// `ab-patched/share/out/run` are `ab-base` and `ab-patched`), else its directory's name.
pub fn labels(runs: &[RunReport]) -> Vec<String> {
    let parts: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            r.dir
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let shortest = parts.iter().map(Vec::len).min().unwrap_or(0);
    let all_equal =
        |at: &dyn Fn(&Vec<String>) -> &String| parts.iter().all(|p| at(p) == at(&parts[0]));
    let head = (0..shortest).take_while(|&i| all_equal(&|p| &p[i])).count();
    let tail = (1..=shortest - head)
        .take_while(|&i| all_equal(&|p| &p[p.len() - i]))
        .count();
    runs.iter()
        .zip(&parts)
        .map(|(r, p)| match &p[head..p.len() - tail] {
            mid if runs.len() > 1 && !mid.is_empty() => mid.join("/"),
            _ => r
                .dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        })
        .collect()
}

/// A bullet per run and entry of a by-name count, under the table it explains.
fn bullets(
    o: &mut String,
    runs: &[RunReport],
    map: impl Fn(&RunReport) -> &BTreeMap<String, u64>,
    text: impl Fn(&str, u64) -> String,
) {
    for (r, name) in runs.iter().zip(labels(runs)) {
        for (k, n) in map(r) {
            let _ = writeln!(o, "\n- {name}: {}", text(k, *n));
        }
    }
}

fn s(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Markdown for one run or several side by side (the first is the baseline), to be written in
/// `report_dir` (plots are linked from there).
pub fn markdown(runs: &[RunReport], report_dir: &Path) -> String {
    let mut o = String::new();
    let names = labels(runs);
    let head = |o: &mut String, what: &str| {
        let _ = write!(o, "| {what} |");
        for name in &names {
            let _ = write!(o, " {name} |");
        }
        let _ = write!(o, "\n|---|");
        for _ in runs {
            let _ = write!(o, "---:|");
        }
        o.push('\n');
    };
    let row = |o: &mut String, what: &str, f: &dyn Fn(&RunReport) -> String| {
        let _ = write!(o, "| {what} |");
        for r in runs {
            let _ = write!(o, " {} |", f(r));
        }
        o.push('\n');
    };
    let _ = writeln!(o, "# m2mfuzz stress report\n");
    head(&mut o, "run");
    row(&mut o, "profile", &|r| s(&r.run["profile"]));
    row(&mut o, "kernel", &|r| s(&r.run["kernel"]));
    row(&mut o, "switches", &|r| {
        let v: Vec<String> = r.run["switches"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(" ")
        }
    });
    row(&mut o, "lockdep", &|r| s(&r.run["debug"]["lockdep"]));
    row(&mut o, "KCOV", &|r| s(&r.run["debug"]["kcov"]));
    row(&mut o, "hung-task timeout (s)", &|r| {
        s(&r.run["debug"]["hung_task_timeout_secs"])
    });
    row(&mut o, "seed", &|r| s(&r.run["seed"]));
    row(&mut o, "workers", &|r| s(&r.run["workers"]));
    row(&mut o, "duration (s)", &|r| {
        format!(
            "{:.0}{}",
            r.totals.seconds,
            if r.unfinished {
                " (did not end: crash?)"
            } else {
                ""
            }
        )
    });
    row(&mut o, "epochs", &|r| r.totals.epochs.to_string());
    row(&mut o, "programs", &|r| r.totals.programs.to_string());
    row(&mut o, "ops (failed with errno)", &|r| {
        format!("{} ({})", r.totals.ops, r.totals.errors)
    });
    row(&mut o, "ops/s", &|r| {
        format!("{:.0}", r.totals.ops as f64 / r.totals.seconds.max(1e-9))
    });
    row(&mut o, "CAPTURE frames dequeued done (not ERROR)", &|r| {
        r.totals.frames.to_string()
    });
    over_time(&mut o, runs, &names, report_dir);

    let _ = writeln!(o, "\n## Fences and buffers (tracefs)\n");
    head(&mut o, "event");
    for ev in EVENTS {
        row(&mut o, ev, &|r| {
            r.totals.events.get(*ev).copied().unwrap_or(0).to_string()
        });
    }
    row(&mut o, "release fences published", &|r| {
        r.totals.fences_published.to_string()
    });
    row(&mut o, "release fences signalled", &|r| {
        r.totals.fences_signalled.to_string()
    });
    row(
        &mut o,
        "release fence publish-to-signal ms (mean / worst epoch's p99 / max)",
        &|r| {
            let l = &r.totals.fence_latency;
            if l.count == 0 {
                "-".into()
            } else {
                format!("{:.2} / {:.2} / {:.2}", l.mean_ms, l.p99_ms, l.max_ms)
            }
        },
    );
    row(&mut o, "trace events lost", &|r| {
        r.totals.trace_lost.to_string()
    });
    row(&mut o, "other fences alive after every fd closed", &|r| {
        r.fences_alive.values().sum::<u64>().to_string()
    });
    bullets(
        &mut o,
        runs,
        |r| &r.fences_alive,
        |which, n| format!("{n}× a {which} fence alive after every fd closed"),
    );

    let _ = writeln!(o, "\n## Kernel reports\n");
    head(&mut o, "where");
    row(&mut o, "in the code under test", &|r| {
        r.totals.splats_under_test.to_string()
    });
    row(&mut o, "elsewhere (not findings)", &|r| {
        r.splats_elsewhere.values().sum::<u64>().to_string()
    });
    bullets(
        &mut o,
        runs,
        |r| &r.splats_elsewhere,
        |t, n| format!("elsewhere, {n}×: {t}"),
    );

    let _ = writeln!(o, "\n## Release-fence contract\n");
    head(&mut o, "clause");
    for c in crate::oracle::Clause::ALL {
        row(&mut o, &format!("{c}: {}", c.promise()), &|r| {
            let n = r.findings.iter().filter(|f| f.clause == Some(c)).count();
            match r.debug.unjudged(c) {
                Some(why) if n == 0 => format!("not judged: {why}"),
                _ if n == 0 => "no finding".into(),
                _ => format!("{n} finding(s)"),
            }
        });
    }

    let _ = writeln!(o, "\n## Findings\n");
    let _ = writeln!(
        o,
        "| run | kind | title | clause | first seen (s) | epochs | program |"
    );
    let _ = writeln!(o, "|---|---|---|---|---:|---:|---|");
    let mut any = false;
    for (r, name) in runs.iter().zip(&names) {
        for f in &r.findings {
            any = true;
            let prog = match (f.worker, f.program) {
                (Some(w), Some((k, _))) => format!("worker {w} program {k}"),
                _ => format!("{} programs serialized", f.epoch_programs.len()),
            };
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {:.1} | {} | {prog} |",
                f.kind,
                f.title.replace('|', "\\|"),
                f.clause.map_or(String::new(), |c| c.number().to_string()),
                f.first_seen_s,
                f.hits
            );
        }
    }
    if !any {
        let _ = writeln!(o, "| | none | | | | | |");
    }
    o
}

/// JSON lines: one per finding, then one summary line per run.
pub fn json_lines(runs: &[RunReport]) -> String {
    let mut o = String::new();
    for r in runs {
        for f in &r.findings {
            let _ = writeln!(o, "{}", serde_json::json!({ "run": r.dir, "finding": f }));
        }
        let mut sum = serde_json::to_value(r).unwrap_or_default();
        sum.as_object_mut().map(|m| m.remove("findings"));
        let _ = writeln!(o, "{}", serde_json::json!({ "summary": sum }));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_left_alive_in_epochs_are_counted_by_driver_and_timeline() {
        let dir = std::env::temp_dir().join(format!("m2mfuzz-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.json"), "{}").unwrap();
        std::fs::write(
            dir.join("epochs.jsonl"),
            "{\"epoch\":0,\"fences_alive\":[\"sw_sync/m2mfuzz-sw\"]}\n\
             {\"epoch\":1}\n\
             {\"epoch\":2,\"fences_alive\":[\"sw_sync/m2mfuzz-sw\",\"vb2/vim2m-cap\"]}\n",
        )
        .unwrap();
        let r = load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(r.fences_alive.get("sw_sync/m2mfuzz-sw"), Some(&2));
        assert_eq!(r.fences_alive.get("vb2/vim2m-cap"), Some(&1));
        let md = markdown(std::slice::from_ref(&r), Path::new("."));
        assert!(
            md.contains("| other fences alive after every fd closed | 3 |"),
            "{md}"
        );
        assert!(md.contains("2× a sw_sync/m2mfuzz-sw fence alive"), "{md}");
        // Lab runs all end in share/out/run: the part that differs names them.
        let at = |p: &str| RunReport {
            dir: p.into(),
            ..r.clone()
        };
        let ab = [
            at("lab-out/ab-base/share/out/run"),
            at("lab-out/ab-patched/share/out/run"),
        ];
        assert_eq!(labels(&ab), ["ab-base", "ab-patched"]);
        assert_eq!(
            labels(&[at("/x/run-1"), at("/x/run-2")]),
            ["run-1", "run-2"]
        );
        assert_eq!(labels(&[at("/x/run"), at("/x/run")]), ["run", "run"]);
        assert_eq!(labels(&[at("/x/run")]), ["run"]);
        // run.json says nothing of the kernel: what needs tracefs or lockdep is not judged.
        assert!(md.contains("| clause 1 (sees-write): once the job has started, implicit sync sees its write | no finding |"), "{md}");
        assert!(md.contains("| clause 5 (freed): freed once nothing references it, not before | not judged: no dma_fence trace events (tracefs, CONFIG_FTRACE) |"), "{md}");
        assert!(
            md.contains("clause 6 (annotations)")
                && md.contains("not judged: lockdep not built in"),
            "{md}"
        );
    }
}
