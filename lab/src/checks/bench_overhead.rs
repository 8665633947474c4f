//! Harness overhead (a benchmark: figures and OUT/overhead.{md,json}, no assertions): ops a second
//! of `m2mfuzz run --no-oracles --quiet` executing a fixed vim2m program vs the same ioctls as a
//! plain C loop (ci/lab/bench/loop.c, the C reproducer's helpers, nothing printed per op),
//! alternated in one boot. Programs: 10 000 QUERYBUFs (cheap ioctls, where the harness's own
//! cost shows most), m2m jobs (QBUF/DQBUF, 1 ms) and the bare prologue (each process's fixed
//! cost). Figures from the same timed runs:
//! - execution (the target): each side's own clock around its ops after the node search (the
//!   [`RunTimings`] line `run --timings` prints, and the loop's line of the same keys);
//! - whole runs (ci/lab/bench/timeit.c, one clock for both): also reading and parsing the
//!   program, process start and exit;
//! - marginal: whole-run ops a second past each side's fixed cost (the prologue's run).
//!
//! Ratios are of medians, and "paired": the median over reps of the C run's time over the
//! m2mfuzz run's just before it, steadier when the boot drifts. The first run of each side is
//! untimed and checked (a failing op would make either side faster; it also pays TCG's
//! translation and the page cache). Medians of 11 by default: single runs vary by 15 % under TCG.
use crate::boot::{self, Boot, Guest};
use crate::checks::bench::{median, round, write_json};
use crate::clock::utc_now;
use crate::lab::{fresh_dir, Lab};
use crate::{apt, cmd, guest_bins, kernel};
use anyhow::{bail, Context, Result};
use m2mfuzz::exec::RunTimings;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// The programs, in the order they run (the prologue first: the others' fixed cost).
const PROGRAMS: [&str; 3] = ["prologue", "ioctls", "jobs"];

/// The prologue every program starts with (the loop's own, in C).
const HEAD: &str = "# m2mfuzz program v1
# driver: vim2m
open node=vim2m -> c0
set_ctrl c0 id=0x981900 value=1
s_fmt c0 queue=out fourcc=RGBP width=64 height=48
s_fmt c0 queue=cap fourcc=RGBP width=64 height=48
reqbufs c0 queue=out count=4 memory=mmap
reqbufs c0 queue=cap count=4 memory=mmap
";

/// What to measure.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Timed runs of each side per program.
    pub reps: usize,
    /// Ops of the jobs program's loop (four per job).
    pub n: u64,
    /// QUERYBUFs of the ioctls program.
    pub n_ioctls: u64,
}

/// One program's figures (`overhead.json`'s `results`; the README quotes its keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// ioctls or jobs.
    pub program: String,
    /// Its ops (the prologue's included).
    pub ops: u64,
    /// Timed runs a side.
    pub reps: usize,
    /// m2mfuzz's own clock, µs an op (median).
    pub m2mfuzz_exec_us_per_op: f64,
    /// The C loop's.
    pub c_exec_us_per_op: f64,
    /// m2mfuzz's execution rate.
    pub m2mfuzz_exec_ops_per_s: f64,
    /// The C loop's.
    pub c_exec_ops_per_s: f64,
    /// C's µs an op over m2mfuzz's (the target: at least 0.90).
    pub exec_ratio: f64,
    /// The same, paired run by run.
    pub exec_paired_ratio: f64,
    /// m2mfuzz whole runs, seconds (median).
    pub m2mfuzz_s: f64,
    /// C loop whole runs.
    pub c_s: f64,
    /// m2mfuzz whole runs printing the per-op table.
    pub m2mfuzz_with_table_s: f64,
    /// Whole runs, paired.
    pub paired_ratio: f64,
    /// m2mfuzz's fixed cost: the prologue's whole run.
    pub m2mfuzz_fixed_s: f64,
    /// The C loop's.
    pub c_fixed_s: f64,
    /// Whole-run rates.
    pub m2mfuzz_ops_per_s: f64,
    /// The C loop's.
    pub c_ops_per_s: f64,
    /// C's whole run over m2mfuzz's.
    pub ratio: f64,
    /// Ops past the prologue a second past the fixed cost.
    pub m2mfuzz_marginal_ops_per_s: f64,
    /// The C loop's.
    pub c_marginal_ops_per_s: f64,
    /// C's over m2mfuzz's.
    pub marginal_ratio: f64,
    /// m2mfuzz's phases (medians).
    pub m2mfuzz_fork_ms: f64,
    /// Reading and parsing the program.
    pub m2mfuzz_read_parse_ms: f64,
    /// Finding the nodes.
    pub m2mfuzz_node_search_ms: f64,
}

/// `overhead.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// When (UTC).
    pub date: String,
    /// The guest's vCPUs.
    pub cpus: u32,
    /// QEMU's accelerator.
    pub accel: String,
    /// ioctls, then jobs.
    pub results: Vec<Figures>,
}

/// Measure; returns the table, or the job's exit code when it failed (an op failed, no figures).
pub fn run(lab: &Lab, out: &Path, s: Settings) -> Result<std::result::Result<String, i32>> {
    let (cc, pkgs) = lab.arch.cc();
    apt::need(pkgs)?;
    fresh_dir(out, &lab.repo)?;
    let share = out.join("share");
    let progs = share.join("progs");
    std::fs::create_dir_all(&progs)?;
    guest_bins::build(lab, &share)?;
    kernel::build(lab, kernel::Variant::Default)?;
    let headers = lab
        .cache
        .join(format!("headers{}", lab.arch.suffix()))
        .join("include");
    let bin = share.join("bin");
    cmd::run(
        Command::new(cc)
            .args(["-O2", "-static", "-o"])
            .arg(bin.join("timeit"))
            .arg(lab.file("bench/timeit.c")),
    )?;
    cmd::run(
        Command::new(cc)
            .args(["-O2", "-static", "-Wall"])
            .arg(format!("-I{}", headers.display()))
            .arg(format!("-I{}", lab.repo.join("src/repro").display()))
            .arg("-o")
            .arg(bin.join("loop"))
            .arg(lab.file("bench/loop.c")),
    )?;
    for p in PROGRAMS {
        std::fs::write(progs.join(format!("{p}.m2m")), program(p, s))?;
    }
    let text = job(s);
    std::fs::write(out.join("job.sh"), &text)?;
    let booted = boot::run(
        &Guest::of(lab)?,
        &Boot::new(out, &share, text).timeout(1800),
    )?;
    let rc = booted.rc()?;
    if rc != 0 {
        crate::say!(
            "the overhead job exited {rc}: an op failed, no figures (see {})",
            booted.result("job.log").display()
        );
        return Ok(Err(rc));
    }
    let r = &booted.results;
    let read = |name: &str| {
        std::fs::read_to_string(r.join(name))
            .with_context(|| format!("{}: missing (see {})", name, booted.console.display()))
    };
    let seconds = |name: &str| -> Result<Vec<f64>> { parse_seconds(&read(name)?, name) };
    let fixed = (
        median(&seconds("prologue-m2mfuzz.txt")?),
        median(&seconds("prologue-c.txt")?),
    );
    let prologue_ops = ops(&program("prologue", s));
    let mut results = Vec::new();
    for p in &PROGRAMS[1..] {
        let runs = Runs {
            m2mfuzz: seconds(&format!("{p}-m2mfuzz.txt"))?,
            c: seconds(&format!("{p}-c.txt"))?,
            table: seconds(&format!("{p}-table.txt"))?,
            m2mfuzz_timings: timings(&read(&format!("{p}-m2mfuzz-phases.txt"))?),
            c_timings: timings(&read(&format!("{p}-c-phases.txt"))?),
        };
        results.push(figures(
            p,
            ops(&program(p, s)),
            prologue_ops,
            fixed,
            s.reps,
            &runs,
        )?);
    }
    let o = Overhead {
        date: utc_now(),
        cpus: 2,
        accel: "tcg".into(),
        results,
    };
    write_json(&out.join("overhead.json"), &o)?;
    let md = table(&o);
    std::fs::write(out.join("overhead.md"), &md)?;
    Ok(Ok(md))
}

/// A program's text: the prologue, then its ops.
fn program(name: &str, s: Settings) -> String {
    let mut t = String::from(HEAD);
    match name {
        "ioctls" => {
            for i in 0..s.n_ioctls {
                t += &format!("querybuf c0 queue=out index={}\n", i % 4);
            }
        }
        "jobs" => {
            t += "streamon c0 queue=out\nstreamon c0 queue=cap\n";
            for _ in 0..s.n / 4 {
                t += "qbuf c0 queue=out index=0 bytesused=6144\nqbuf c0 queue=cap index=0\n\
                      dqbuf c0 queue=out timeout_ms=2000\ndqbuf c0 queue=cap timeout_ms=2000\n";
            }
        }
        _ => {}
    }
    t
}

/// A program's ops: its lines that are not comments.
fn ops(program: &str) -> u64 {
    program.lines().filter(|l| !l.starts_with('#')).count() as u64
}

/// What the C loop is told to do for a program: the same ops.
fn loop_n(name: &str, s: Settings) -> u64 {
    match name {
        "ioctls" => s.n_ioctls,
        "jobs" => s.n,
        _ => 0,
    }
}

/// The guest's job. Both sides run from the guest's tmpfs, as from a board's local disk: over 9p
/// a page fault in the (much larger) m2mfuzz binary costs a round trip to the host.
fn job(s: Settings) -> String {
    let mut j = String::from("mkdir -p /tmp/b && cp /host/bin/m2mfuzz /host/bin/timeit /host/bin/loop /host/progs/* /tmp/b/ && cd /tmp/b\n");
    for p in PROGRAMS {
        let n = loop_n(p, s);
        // Untimed, and checked: a failing op would make either side faster.
        j += &format!("./loop {p} {n} || {{ echo 'C loop {p}: ops failed'; exit 1; }}\n");
        j += &format!("./m2mfuzz run --no-oracles --quiet {p}.m2m > {p}.out\n");
        j += &format!(
            "if grep -E '^ *[0-9]+ ' {p}.out; then echo 'm2mfuzz {p}: ops failed'; exit 1; fi\n"
        );
        for _ in 0..s.reps {
            j += &format!("./timeit -e /tmp/b/{p}-m2mfuzz-phases.txt 1 /tmp/b/m2mfuzz run --no-oracles --quiet --timings {p}.m2m >> /host/out/{p}-m2mfuzz.txt\n");
            j += &format!("./timeit -e /tmp/b/{p}-c-phases.txt 1 /tmp/b/loop {p} {n} >> /host/out/{p}-c.txt\n");
            // The default per-op table, for what printing it costs.
            j += &format!(
                "./timeit 1 /tmp/b/m2mfuzz run --no-oracles {p}.m2m >> /host/out/{p}-table.txt\n"
            );
        }
        j += &format!("cp /tmp/b/{p}-*-phases.txt /host/out/\n");
    }
    j += "exit 0\n";
    j
}

/// timeit's output: seconds, one a line.
fn parse_seconds(text: &str, name: &str) -> Result<Vec<f64>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .with_context(|| format!("{name}: not seconds: {l:?}"))
        })
        .collect()
}

/// The timings lines of a side's stderr, in run order (other lines, such as the loop's count of
/// failed ops, are not timings).
fn timings(stderr: &str) -> Vec<RunTimings> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<RunTimings>(l.trim()).ok())
        .collect()
}

/// One program's timed runs, in run order (rep r of each side pairs up).
struct Runs {
    m2mfuzz: Vec<f64>,
    c: Vec<f64>,
    table: Vec<f64>,
    m2mfuzz_timings: Vec<RunTimings>,
    c_timings: Vec<RunTimings>,
}

/// The median over reps of `c[i] / m[i]`.
fn paired(c: &[f64], m: &[f64]) -> f64 {
    median(&c.iter().zip(m).map(|(c, m)| c / m).collect::<Vec<_>>())
}

/// The figures of one program; `fixed` = the prologue's whole-run medians (m2mfuzz, C).
fn figures(
    program: &str,
    ops: u64,
    prologue_ops: u64,
    fixed: (f64, f64),
    reps: usize,
    r: &Runs,
) -> Result<Figures> {
    if r.m2mfuzz_timings.len() != reps || r.c_timings.len() != reps {
        bail!(
            "{program}: {} m2mfuzz and {} C in-process figures for {reps} reps",
            r.m2mfuzz_timings.len(),
            r.c_timings.len()
        );
    }
    let us_m: Vec<f64> = r.m2mfuzz_timings.iter().map(|t| t.us_per_op).collect();
    let us_c: Vec<f64> = r.c_timings.iter().map(|t| t.us_per_op).collect();
    let phase = |f: fn(&RunTimings) -> Option<f64>| -> Result<f64> {
        let v: Option<Vec<f64>> = r.m2mfuzz_timings.iter().map(f).collect();
        Ok(median(&v.with_context(|| {
            format!("{program}: an m2mfuzz timings line without its phases")
        })?))
    };
    let (m, c, t) = (median(&r.m2mfuzz), median(&r.c), median(&r.table));
    let (um, uc) = (median(&us_m), median(&us_c));
    let (pm, pc) = fixed;
    let ops_f = ops as f64;
    let marginal = (ops - prologue_ops) as f64;
    Ok(Figures {
        program: program.into(),
        ops,
        reps,
        m2mfuzz_exec_us_per_op: um,
        c_exec_us_per_op: uc,
        m2mfuzz_exec_ops_per_s: 1e6 / um,
        c_exec_ops_per_s: 1e6 / uc,
        exec_ratio: uc / um,
        exec_paired_ratio: paired(&us_c, &us_m),
        m2mfuzz_s: m,
        c_s: c,
        m2mfuzz_with_table_s: t,
        paired_ratio: paired(&r.c, &r.m2mfuzz),
        m2mfuzz_fixed_s: pm,
        c_fixed_s: pc,
        m2mfuzz_ops_per_s: ops_f / m,
        c_ops_per_s: ops_f / c,
        ratio: c / m,
        m2mfuzz_marginal_ops_per_s: marginal / (m - pm),
        c_marginal_ops_per_s: marginal / (c - pc),
        marginal_ratio: (c - pc) / (m - pm),
        m2mfuzz_fork_ms: phase(|t| t.fork_ms)?,
        m2mfuzz_read_parse_ms: phase(|t| t.read_parse_ms)?,
        m2mfuzz_node_search_ms: phase(|t| t.node_search_ms)?,
    })
}

/// `overhead.md`: the execution table, then the whole runs'.
fn table(o: &Overhead) -> String {
    let reps = o.results.first().map_or(0, |r| r.reps);
    let mut t = format!(
        "Execution (target ≥ 0.90): each side's own clock from the first op after the node search to the last; medians of {reps} alternated runs.\n\n\
         | program | ops | m2mfuzz ops/s | C loop ops/s | ratio | paired ratio |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for r in &o.results {
        t += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.program,
            r.ops,
            r.m2mfuzz_exec_ops_per_s.round(),
            r.c_exec_ops_per_s.round(),
            round(r.exec_ratio, 100.0),
            round(r.exec_paired_ratio, 100.0)
        );
    }
    t += "\nWhole runs, the same runs timed from outside: also reading and parsing the program text, the fork of the executor, process start and exit.\n\n\
          | program | m2mfuzz ops/s | C loop ops/s | ratio | paired ratio | with per-op table | marginal: m2mfuzz | C | ratio | fixed s: m2mfuzz | C | m2mfuzz read+parse ms | fork ms | node search ms |\n\
          |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in &o.results {
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.program,
            r.m2mfuzz_ops_per_s.round(),
            r.c_ops_per_s.round(),
            round(r.ratio, 100.0),
            round(r.paired_ratio, 100.0),
            (r.ops as f64 / r.m2mfuzz_with_table_s).round(),
            r.m2mfuzz_marginal_ops_per_s.round(),
            r.c_marginal_ops_per_s.round(),
            round(r.marginal_ratio, 100.0),
            round(r.m2mfuzz_fixed_s, 100.0),
            round(r.c_fixed_s, 1000.0),
            // To 0.1 ms, as `run --timings` printed them before its JSON line.
            round(r.m2mfuzz_read_parse_ms, 10.0),
            round(r.m2mfuzz_fork_ms, 10.0),
            round(r.m2mfuzz_node_search_ms, 10.0)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        reps: 3,
        n: 8,
        n_ioctls: 5,
    };

    #[test]
    fn programs_and_the_loop_do_the_same_ops() {
        // The open and five more (the loop times those five and its N).
        assert_eq!(ops(&program("prologue", S)), 6);
        assert_eq!(ops(&program("ioctls", S)), 6 + 5);
        assert!(program("ioctls", S).ends_with("querybuf c0 queue=out index=0\n"));
        // Two STREAMONs, then N/4 jobs of four ops.
        assert_eq!(ops(&program("jobs", S)), 6 + 2 + 8);
        assert_eq!(loop_n("jobs", S), 8);
        let j = job(S);
        assert_eq!(
            j.matches("--timings ioctls.m2m >> /host/out/ioctls-m2mfuzz.txt")
                .count(),
            3
        );
        assert!(j.contains("./loop ioctls 5 || "));
        assert!(j.contains("/tmp/b/loop prologue 0 >> /host/out/prologue-c.txt"));
    }

    #[test]
    fn timings_lines_are_read_from_both_sides_stderr() {
        let m = "{\"fork_ms\":1.2,\"read_parse_ms\":3.5,\"node_search_ms\":9.0,\"run_ms\":150.0,\"ops\":10005,\"us_per_op\":15.0,\"report_ms\":0.2}\n";
        // The C loop's line has no phases; its failed-ops count is no timings line.
        let c = "{\"run_ms\":140.0,\"ops\":10004,\"us_per_op\":14.0}\nloop ioctls: 3 ops failed\n";
        let tm = timings(m);
        assert_eq!(tm.len(), 1);
        assert_eq!(tm[0].fork_ms, Some(1.2));
        let tc = timings(c);
        assert_eq!(tc.len(), 1);
        assert_eq!((tc[0].us_per_op, tc[0].fork_ms), (14.0, None));
        assert!(parse_seconds("0.5\nx\n", "f").is_err());
    }

    fn t(us: f64) -> RunTimings {
        serde_json::from_value(serde_json::json!({
            "fork_ms": 1.0, "read_parse_ms": us, "node_search_ms": 7.879506999999999,
            "run_ms": us * 10.0, "ops": 10, "us_per_op": us, "report_ms": 0.1
        }))
        .unwrap()
    }

    #[test]
    fn ratios_are_of_medians_and_paired_run_by_run() {
        let r = Runs {
            m2mfuzz: vec![0.30, 0.20, 0.25],
            c: vec![0.15, 0.20, 0.10],
            table: vec![0.5, 0.5, 0.5],
            m2mfuzz_timings: vec![t(20.0), t(10.0), t(15.0)],
            c_timings: vec![t(10.0), t(10.0), t(12.0)],
        };
        let f = figures("ioctls", 1005, 5, (0.05, 0.01), 3, &r).unwrap();
        assert_eq!(f.m2mfuzz_exec_us_per_op, 15.0);
        assert_eq!(f.c_exec_us_per_op, 10.0);
        assert!((f.exec_ratio - 10.0 / 15.0).abs() < 1e-12);
        // Pairs 0.5, 1.0, 0.8: median 0.8 (not the ratio of the medians).
        assert!((f.exec_paired_ratio - 0.8).abs() < 1e-12);
        assert!((f.paired_ratio - 0.5).abs() < 1e-12);
        assert!((f.m2mfuzz_marginal_ops_per_s - 1000.0 / 0.20).abs() < 1e-9);
        assert_eq!(f.m2mfuzz_read_parse_ms, 15.0);
        // A missing run's line fails instead of shifting the pairs.
        let short = Runs {
            c_timings: vec![t(1.0)],
            ..r
        };
        assert!(figures("ioctls", 1005, 5, (0.05, 0.01), 3, &short).is_err());
        let o = Overhead {
            date: "d".into(),
            cpus: 2,
            accel: "tcg".into(),
            results: vec![f],
        };
        let md = table(&o);
        assert!(md.contains("medians of 3 alternated runs"));
        assert!(
            md.contains("| ioctls | 1005 | 66667 | 100000 | 0.67 | 0.8 |"),
            "{md}"
        );
        assert!(md.contains("| ioctls | 4020 | 6700 | 0.6 | 0.5 | 2010 | 5000 | 7143 | 0.7 | 0.05 | 0.01 | 15 | 1 | 7.9 |"), "{md}");
    }
}
