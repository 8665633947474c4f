//! The m2mfuzz command line: subcommands only; the work is in the library.
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use m2mfuzz::exec::{fork, ExecOptions};
use m2mfuzz::oracle::{OracleOptions, OracleSet, Verdict};
use m2mfuzz::program::generate::{generate, GenConfig, RngChoices};
use m2mfuzz::{corpus, device, profile, program, report, stress};
use rand::SeedableRng;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "m2mfuzz",
    version,
    about = "Fuzzer and stress tester for V4L2 mem2mem drivers and their dma-buf fences"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// `m2mfuzz run`'s arguments.
#[derive(Args, Debug, PartialEq)]
struct RunArgs {
    /// Program file (.m2m).
    program: PathBuf,
    /// Use this node for a driver: DRIVER=/dev/videoN (repeatable).
    #[arg(long = "node", value_name = "DRIVER=PATH")]
    nodes: Vec<String>,
    /// JSON lines for scripts.
    #[arg(long)]
    json: bool,
    /// Run without the oracles (no kmsg, ledger, hang or stale-read checks).
    #[arg(long)]
    no_oracles: bool,
    /// Print only the ops that did not succeed (and the verdict), not the whole table.
    #[arg(long, conflicts_with = "json")]
    quiet: bool,
    /// Print to stderr, as one JSON line (`RunTimings`), how long forking the executor, reading
    /// the program, finding its nodes and running its ops took (the overhead benchmark's
    /// per-phase figures).
    #[arg(long)]
    timings: bool,
}

/// The command line. A plain `m2mfuzz run` line is read by hand (`parse_run_only`): clap
/// builds every subcommand's arguments first, 60% of a one-op run's instructions (callgrind),
/// and even a clap command of `run` alone took 4-6 ms of its start under the lab's TCG, where
/// the lab scripts (faults, repro-check, the overhead benchmark) start one `run` per program.
/// Help, `--version`, every error and anything unusual come from the full parser, so they
/// read the same.
fn parse_cli(args: &[std::ffi::OsString]) -> Cli {
    parse_run_only(args).unwrap_or_else(|| Cli::parse_from(args))
}

/// A plain `m2mfuzz run [--json|--quiet] [--no-oracles] [--timings] [--node D=P]… PROGRAM` line (flags in
/// any order, each once; `--node=D=P` too); None for anything else, left to the full parser.
fn parse_run_only(args: &[std::ffi::OsString]) -> Option<Cli> {
    let mut it = args.iter().skip(1);
    if it.next()? != "run" {
        return None;
    }
    let (mut json, mut no_oracles, mut quiet, mut timings) = (false, false, false, false);
    let (mut nodes, mut program) = (Vec::new(), None);
    let set = |flag: &mut bool| (!std::mem::replace(flag, true)).then_some(());
    let value = |v: &str| (!v.is_empty() && !v.starts_with('-')).then(|| v.to_string());
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--json") => set(&mut json)?,
            Some("--no-oracles") => set(&mut no_oracles)?,
            Some("--quiet") => set(&mut quiet)?,
            Some("--timings") => set(&mut timings)?,
            Some("--node") => nodes.push(value(it.next()?.to_str()?)?),
            Some(s) if s.starts_with("--node=") => nodes.push(value(&s["--node=".len()..])?),
            _ if a.as_encoded_bytes().starts_with(b"-") || program.is_some() => return None,
            _ => program = Some(PathBuf::from(a)),
        }
    }
    if json && quiet {
        return None;
    }
    Some(Cli {
        cmd: Cmd::Run(RunArgs {
            program: program?,
            nodes,
            json,
            no_oracles,
            quiet,
            timings,
        }),
    })
}

#[derive(Subcommand)]
enum Cmd {
    /// List V4L2/media nodes, their queues and formats, and the kernel's debug state.
    Probe {
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Run one program and print each op's outcome (in a forked child; an op stuck in the
    /// kernel is reported at once).
    Run(RunArgs),
    /// Replay corpus programs (files or directories) and check each gives what its `# expect:`
    /// header says, with its `# switch:` module parameters set; exit 1 on any other outcome.
    Replay {
        /// Programs or directories of `.m2m` programs.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// JSON lines for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Shrink a program to the shortest one that still gives the same finding(s).
    Shrink {
        /// A program (with its `# switch:` header, if it needs one), or a stress finding
        /// directory (RUN/findings/<slug>): its worker programs are tried alone, then
        /// serialized, then concurrently (the interleaving kept), and the first that still gives
        /// the finding is shrunk.
        #[arg(required_unless_present = "resume")]
        input: Option<PathBuf>,
        /// Keep this finding (`kind: title`, as `run` prints it); default: every finding of the
        /// first run (a finding directory names its own).
        #[arg(long)]
        finding: Vec<String>,
        /// Where to write the shrunk program (default: stdout; several concurrent programs go to
        /// OUT.1.m2m, OUT.2.m2m…).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Save progress to FILE after every candidate. A lockdep finding reports once per boot:
        /// outside the lab its shrink saves here (default INPUT.shrink.json) and stops when the
        /// next candidate needs a reboot (exit code 3); `--resume FILE` then continues.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Continue a shrink from its state file, after a reboot.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["input", "finding", "state"])]
        resume: Option<PathBuf>,
        /// Runs a candidate with threads (or several programs at once) gets before it counts as
        /// not reproducing: a race shows in some runs only. A candidate on one thread runs once.
        #[arg(long, default_value_t = m2mfuzz::shrink::session::RACE_TRIES)]
        tries: u32,
    },
    /// Write a standalone C reproducer of a program (libc and kernel headers only).
    Repro {
        /// Emit C (the only format).
        #[arg(long)]
        c: bool,
        /// The program.
        program: PathBuf,
        /// Where to write it (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Run a command (e.g. a compiled reproducer) under the oracles: kmsg splats and the fence
    /// ledger, plus the `FINDING: <kind>: <title>` lines it prints itself.
    Watch {
        /// JSON lines for scripts: the verdict's, then the command's end
        /// (`{"exit":{"code":0,"signal":null}}`).
        #[arg(long)]
        json: bool,
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Run a stress profile: workers running generated programs concurrently, findings stored in
    /// a run directory as they come. `--recover DIR` names the programs a crashed run was running
    /// and turns the kernel reports of its console (or pstore) into findings.
    Stress {
        /// Stress profile (stress-profiles/*.toml).
        #[arg(long, required_unless_present = "recover")]
        profile: Option<PathBuf>,
        /// Run directory (default: runs/PROFILE-UNIXTIME).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Base seed (default: the profile's, else the clock).
        #[arg(long)]
        seed: Option<u64>,
        /// Override the profile's duration (90s, 10m, 8h).
        #[arg(long, value_parser = profile::stress::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Override the worker count (0: one per CPU).
        #[arg(long)]
        workers: Option<u32>,
        /// Set a module parameter for the run: module.param=value (repeatable).
        #[arg(long = "switch", value_name = "MODULE.PARAM=VALUE")]
        switches: Vec<String>,
        /// End the run at the first finding.
        #[arg(long)]
        stop_on_finding: bool,
        /// End the run once a finding whose `kind: title` contains TEXT is stored (e.g. "hang:
        /// release fence hang on vim2m-cap"); other findings on the way are stored and passed.
        #[arg(long, value_name = "TEXT")]
        until: Option<String>,
        /// Plain progress lines even on a terminal.
        #[arg(long)]
        plain: bool,
        /// The nodes' limit in jobs a second (`m2mfuzz limit`): progress and summary show the
        /// duty cycle, CAPTURE jobs ended a second over it.
        #[arg(long, value_name = "JOBS_PER_S", conflicts_with = "measure_limit")]
        limit: Option<f64>,
        /// Measure the limit first: each target node's built-in job loop for this long (5s).
        #[arg(long, value_parser = profile::stress::parse_duration, value_name = "DURATION")]
        measure_limit: Option<std::time::Duration>,
        /// After a crash: name the programs the run directory's journal says were running, and
        /// store the kernel reports the run did not read live (from --console, else from
        /// /sys/fs/pstore when it holds records) as findings, attributed to the programs running
        /// then. Exit code 1 when that stored a finding.
        #[arg(long, value_name = "RUN_DIR", conflicts_with = "profile")]
        recover: Option<PathBuf>,
        /// With --recover: the dead boot's console log (serial console, QEMU's -serial file).
        #[arg(long, requires = "recover")]
        console: Option<PathBuf>,
        /// With --recover: what it found as one JSON object (for scripts).
        #[arg(long, requires = "recover")]
        json: bool,
    },
    /// Report on stress runs: Markdown tables (a second run dir is compared side by side with the
    /// first, e.g. baseline vs patched kernel), or JSON lines.
    Report {
        /// One or two run directories.
        #[arg(required = true, num_args = 1..=2)]
        runs: Vec<PathBuf>,
        /// JSON lines for CI.
        #[arg(long)]
        json: bool,
        /// Write here (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Generate a program for a driver from a seed and print it.
    Generate {
        /// Driver profile: vim2m, visl, vicodec, vicodec-stateless, rga, hantro.
        #[arg(long, default_value = "vim2m")]
        driver: String,
        /// PRNG seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Ops after the set-up prologue.
        #[arg(long, default_value_t = 30)]
        ops: usize,
        /// Contexts.
        #[arg(long, default_value_t = 1)]
        contexts: u32,
        /// Percentage of ops with a corrupted argument.
        #[arg(long, default_value_t = 5)]
        invalid: u32,
        /// Chance (percent) that the body runs on several threads over shared handles.
        #[arg(long, default_value_t = 0)]
        threads: u32,
        /// Chance (percent) that every streaming context gets a pump thread (a client keeping
        /// its buffers in flight).
        #[arg(long, default_value_t = 0)]
        pumps: u32,
        /// Print the program a stress run with this profile and `--seed` ran as `--program` of
        /// `--worker` (the generator options above are then the profile's).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// With `--profile`: the worker.
        #[arg(long, default_value_t = 0)]
        worker: u32,
        /// With `--profile`: the program's number in the worker's stream.
        #[arg(long, default_value_t = 0)]
        program: u64,
    },
    /// Write a libFuzzer seed corpus for a fuzz target: deterministic inputs whose programs
    /// together use the most kinds of ops (greedy cover), named by content hash.
    FuzzSeeds {
        /// Driver profile (the target m2m_<driver>).
        #[arg(long)]
        driver: String,
        /// Inputs to keep.
        #[arg(long, default_value_t = 12)]
        count: usize,
        /// Output directory (e.g. fuzz/seeds/m2m_vim2m).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print the program a fuzz input (a libFuzzer artifact or corpus file) decodes to, ready
    /// for `run`, `replay`, `shrink` and `repro`.
    Decode {
        /// The input file (e.g. fuzz/artifacts/m2m_vim2m/crash-…).
        artifact: PathBuf,
        /// The fuzz target's driver profile (default: from an `m2m_<driver>` path component).
        #[arg(long)]
        driver: Option<String>,
        /// Where to write the program (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Measure the node's limit: m2m jobs a second for a plain client that keeps both queues
    /// fed (MMAP, two buffers a queue in flight), the denominator of a stress run's duty cycle.
    Limit {
        /// Driver profile (vim2m, rga, vicodec; not the stateless decoders yet).
        #[arg(long, default_value = "vim2m")]
        driver: String,
        /// Use this node for a driver: DRIVER=/dev/videoN (repeatable).
        #[arg(long = "node", value_name = "DRIVER=PATH")]
        nodes: Vec<String>,
        /// Seconds to loop.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Frame size, WxH (default: the profile's).
        #[arg(long, value_parser = parse_size)]
        size: Option<(u32, u32)>,
        /// Transaction time in ms, where the driver has that control (vim2m).
        #[arg(long)]
        trans_time_ms: Option<u32>,
        /// One JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

/// A program on stdout. A reader that stopped early (`| head`) is not an error: the rest is not
/// wanted (`print!` would panic on the closed pipe).
fn print_program(p: &program::Program) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(p.to_string().as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write the program to stdout"),
    }
}

/// `320x240` as (width, height).
fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("`{s}`: give WIDTHxHEIGHT, e.g. 320x240"))?;
    let n = |v: &str| v.parse::<u32>().map_err(|e| format!("`{v}` in `{s}`: {e}"));
    Ok((n(w)?, n(h)?))
}

/// `--node vim2m=/dev/video3` becomes the override `device::resolve` reads.
fn apply_node_overrides(nodes: &[String]) -> Result<()> {
    for n in nodes {
        let (drv, path) = n.split_once('=').with_context(|| {
            format!("--node {n}: expected DRIVER=/dev/videoN, e.g. vim2m=/dev/video3")
        })?;
        device::set_node_override(drv, path);
    }
    Ok(())
}

fn print_verdict(v: &Verdict, json: bool) -> Result<()> {
    if json {
        for l in v.json_lines() {
            println!("{}", serde_json::to_string(&l)?);
        }
        return Ok(());
    }
    println!(
        "\nledger: {} fences published (vb2), {} signalled; vb2 buffers queued {} done {}",
        v.ledger.producer_published(),
        v.ledger.producer_signalled(),
        v.ledger.count("vb2_buf_queue"),
        v.ledger.count("vb2_buf_done"),
    );
    for n in &v.notes {
        println!("note: {n}");
    }
    for f in &v.elsewhere {
        println!("elsewhere (not a finding): {}", f.title);
    }
    if v.findings.is_empty() {
        println!("findings: none");
    }
    for f in &v.findings {
        let op = f.op.map_or(String::new(), |i| format!(" (op {i})"));
        let clause = f.clause.map_or(String::new(), |c| {
            format!(
                "\n  breaks the release-fence contract, {c}: {}",
                c.promise()
            )
        });
        println!(
            "FINDING {f}{op}{clause}\n  {}",
            f.evidence.lines().take(12).collect::<Vec<_>>().join("\n  ")
        );
    }
    Ok(())
}

/// `m2mfuzz run`'s parent: its executor child's exit status as its own, or the child's stuck op
/// reported (status 1) without waiting for the child, which stays blocked in the kernel.
fn supervise_run(
    parent: &mut fork::Parent,
    program: &std::path::Path,
    json: bool,
    kmsg: Option<m2mfuzz::oracle::kmsg::KmsgReader>,
) -> Result<ExitCode> {
    use std::os::unix::process::ExitStatusExt;
    let stuck = match parent.watch() {
        Ok(status) => {
            if let Some(sig) = status.signal() {
                // Die as the child did, so a shell sees the same.
                // SAFETY: restores the default action of the child's signal and raises it.
                unsafe {
                    libc::signal(sig, libc::SIG_DFL);
                    libc::raise(sig);
                }
                return Ok(ExitCode::from(128 + sig as u8));
            }
            return Ok(ExitCode::from(status.code().unwrap_or(2) as u8));
        }
        Err(stuck) => stuck,
    };
    // The child holds the parsed program; only this rare path reads it again.
    let prog = program::text::parse_file(program)?;
    let op = prog.ops.get(stuck.index).with_context(|| {
        format!(
            "op {} is stuck in the kernel, but {} has no such op now",
            stuck.index,
            program.display()
        )
    })?;
    let mut v = match kmsg {
        Some(k) => OracleSet::kmsg_only(OracleOptions::default(), k).so_far(),
        None => Verdict::default(),
    };
    v.findings.push(m2mfuzz::oracle::Finding::stuck(op, &stuck));
    print_verdict(&v, json)?;
    Ok(ExitCode::from(1))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("m2mfuzz: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match parse_cli(&args).cmd {
        Cmd::Probe { json } => {
            let (nodes, errors) = device::video_nodes();
            let media = device::media_nodes();
            let dbg = device::debug_state::read();
            if json {
                let v = serde_json::json!({ "video": nodes, "media": media, "errors": errors, "debug": dbg });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", device::render::render(&nodes, &media, &errors, &dbg));
            }
            Ok(if nodes.iter().any(|n| n.m2m) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Run(RunArgs {
            program,
            nodes,
            json,
            no_oracles,
            quiet,
            timings,
        }) => {
            let t0 = std::time::Instant::now();
            apply_node_overrides(&nodes)?;
            // The program runs in a child process with one thread; this one watches it.
            let margin = std::time::Duration::from_secs(30);
            // The parent reads the kernel log from here if the child gets stuck: what the
            // kernel printed before (a WARN, a lockdep report) is still judged then.
            let kmsg = (!no_oracles)
                .then(m2mfuzz::oracle::kmsg::KmsgReader::open)
                .and_then(|r| r.ok());
            let child = match fork::fork(margin).context("forking the executor process")? {
                fork::Side::Supervisor(mut parent) => {
                    return supervise_run(&mut parent, &program, json, kmsg)
                }
                fork::Side::Executor(child) => {
                    drop(kmsg);
                    child
                }
            };
            let t_forked = t0.elapsed();
            let prog = program::text::parse_file(&program)?;
            let t_parsed = t0.elapsed();
            // A node that cannot be found is the user's problem to fix, not an op outcome.
            for op in &prog.ops {
                if let program::Op::Open { node, .. } = op {
                    device::resolve(node)?;
                }
            }
            let t_resolved = t0.elapsed();
            let mut oracles = (!no_oracles).then(|| OracleSet::new(OracleOptions::default()));
            let outcomes = child.run(
                &prog,
                ExecOptions::default(),
                &mut oracles,
                // --quiet prints the failures alone: only they are kept.
                |o| !quiet || !matches!(o.result, m2mfuzz::exec::OpResult::Ok { .. }),
            );
            let t_ran = t0.elapsed();
            let verdict = oracles.as_mut().map(|o| o.finish()).unwrap_or_default();
            // One write for the whole table, not one per line.
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for o in &outcomes {
                let op = &prog.ops[o.index as usize];
                if json {
                    let line = m2mfuzz::oracle::JsonLine::Op {
                        outcome: o.clone(),
                        op: op.to_string(),
                    };
                    serde_json::to_writer(&mut out, &line)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{:>4} {:<60} {:<24} {:>9.3} ms  {}",
                        o.index,
                        op.to_string(),
                        o.result.to_string(),
                        o.duration().as_secs_f64() * 1e3,
                        o.detail_text().unwrap_or_default()
                    )?;
                }
            }
            out.flush()?;
            drop(out);
            print_verdict(&verdict, json)?;
            if timings {
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                let run = t_ran - t_resolved;
                let t = m2mfuzz::exec::RunTimings {
                    fork_ms: Some(ms(t_forked)),
                    read_parse_ms: Some(ms(t_parsed - t_forked)),
                    node_search_ms: Some(ms(t_resolved - t_parsed)),
                    run_ms: ms(run),
                    ops: prog.ops.len() as u64,
                    us_per_op: run.as_secs_f64() * 1e6 / prog.ops.len().max(1) as f64,
                    report_ms: Some(ms(t0.elapsed() - t_ran)),
                };
                eprintln!("{}", serde_json::to_string(&t)?);
            }
            // The process ends here: the kernel frees a long program and its outcomes at once
            // at exit (freeing them first cost 3-4 ms of a 10 000-op run in the lab guest).
            std::mem::forget((prog, outcomes));
            Ok(if verdict.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Replay { paths, json } => {
            let mut entries = corpus::load(&paths)?;
            // Lockdep reports once per boot: programs that need it go last.
            entries.sort_by_key(|e| e.needs_lockdep());
            let mut results = Vec::new();
            let mut keeper = m2mfuzz::oracle::TraceKeeper::default();
            for e in &entries {
                let r = corpus::replay_one(e, &mut keeper);
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    eprintln!("{}: {:?}", e.path.display(), r.status);
                }
                results.push(r);
            }
            if !json {
                print!("{}", corpus::table(&results));
            }
            let ok = results
                .iter()
                .all(|r| matches!(r.status, corpus::Status::Pass));
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Shrink {
            input,
            finding,
            out,
            state,
            resume,
            tries,
        } => shrink_cmd(input, &finding, out, state, resume, tries),
        Cmd::Repro { c, program, out } => {
            anyhow::ensure!(c, "give the format: --c (the only one so far)");
            let prog = program::text::parse_file(&program)?;
            let code = m2mfuzz::repro::to_c(&prog);
            match out {
                Some(o) => {
                    std::fs::write(&o, code).with_context(|| format!("write {}", o.display()))?
                }
                None => print!("{code}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Watch { json, command } => {
            let mut oracles = OracleSet::new(OracleOptions::default());
            let output = std::process::Command::new(&command[0])
                .args(&command[1..])
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("run {}", command[0]))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !json {
                print!("{stdout}");
            }
            let mut verdict = oracles.finish();
            for line in stdout.lines() {
                if let Some((kind, title)) = line
                    .strip_prefix("FINDING: ")
                    .and_then(|f| f.split_once(": "))
                {
                    let kind = m2mfuzz::oracle::Kind::from_name(kind)
                        .unwrap_or(m2mfuzz::oracle::Kind::Splat);
                    let f = m2mfuzz::oracle::Finding::new(
                        kind,
                        title.to_string(),
                        line.to_string(),
                        None,
                    );
                    if !verdict.findings.iter().any(|g| g.signature == f.signature) {
                        verdict.findings.push(f);
                    }
                }
            }
            // A leak explains a hang on the same timeline, as in `run`.
            if verdict
                .findings
                .iter()
                .any(|f| f.kind == m2mfuzz::oracle::Kind::LeakedFence)
            {
                verdict
                    .findings
                    .retain(|f| f.kind != m2mfuzz::oracle::Kind::Hang);
            }
            print_verdict(&verdict, json)?;
            if json {
                // The command's own verdict (a reproducer's, a race program's), typed.
                let exit = m2mfuzz::oracle::JsonLine::Exit {
                    exit: m2mfuzz::oracle::Exited::of(output.status),
                };
                println!("{}", serde_json::to_string(&exit)?);
            }
            Ok(if verdict.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Stress {
            profile: prof,
            out,
            seed,
            duration,
            workers,
            switches,
            stop_on_finding,
            until,
            plain,
            limit,
            measure_limit,
            recover,
            console,
            json,
        } => {
            if let Some(dir) = recover {
                return recover_cmd(&dir, console.as_deref(), json);
            }
            let path = prof.expect("clap requires --profile");
            let p = profile::stress::StressProfile::load(&path)?;
            let out = out.unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                PathBuf::from("runs").join(format!("{}-{now}", p.name))
            });
            stress::install_stop_handler();
            let opts = stress::RunOptions {
                out: out.clone(),
                seed,
                duration,
                workers,
                switches,
                stop_on_finding,
                until,
                plain,
                limit,
                measure_limit,
            };
            let t = stress::run(&p, &opts)?;
            eprintln!(
                "run directory: {} (m2mfuzz report {})",
                out.display(),
                out.display()
            );
            Ok(if t.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Report { runs, json, out } => {
            let mut reports = runs
                .iter()
                .map(|r| report::load(r))
                .collect::<Result<Vec<_>>>()?;
            let text = if json {
                report::json_lines(&reports)
            } else {
                reports.iter_mut().for_each(report::draw_plots);
                // The plots are linked from where the report is written.
                let at = out
                    .as_deref()
                    .and_then(std::path::Path::parent)
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                report::markdown(&reports, at)
            };
            match out {
                Some(o) => {
                    std::fs::write(&o, text).with_context(|| format!("write {}", o.display()))?
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Generate {
            driver,
            seed,
            ops,
            contexts,
            invalid,
            threads,
            pumps,
            profile: stress_profile,
            worker,
            program,
        } => {
            // A stress run's program: the generator settings are the profile's target's.
            if let Some(path) = stress_profile {
                let p = m2mfuzz::profile::stress::StressProfile::load(&path)?;
                let gen = &p.target_of(worker).gen;
                print_program(&m2mfuzz::stress::worker::program_of(
                    gen, seed, worker, program,
                ))?;
                return Ok(ExitCode::SUCCESS);
            }
            let p = profile::by_name(&driver).with_context(|| {
                let names: Vec<&str> = profile::ALL.iter().map(|p| p.name).collect();
                format!(
                    "unknown driver profile `{driver}` (known: {})",
                    names.join(", ")
                )
            })?;
            let mut cfg = GenConfig::new(p);
            cfg.body_ops = ops;
            cfg.contexts = contexts;
            cfg.invalid_percent = invalid;
            cfg.thread_percent = threads.min(100);
            cfg.pump_percent = pumps.min(100);
            let mut c = RngChoices(rand::rngs::SmallRng::seed_from_u64(seed));
            let mut prog = generate(&mut c, &cfg);
            prog.set_header("seed", &seed.to_string());
            print_program(&prog)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FuzzSeeds { driver, count, out } => {
            let p = profile::by_name(&driver)
                .with_context(|| format!("unknown driver profile `{driver}`"))?;
            std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
            let seeds = m2mfuzz::fuzz::seed_inputs(p, count);
            for s in &seeds {
                let name = format!("seed-{:016x}", m2mfuzz::fuzz::content_hash(s));
                std::fs::write(out.join(&name), s)?;
            }
            eprintln!(
                "{} seeds for m2m_{driver} in {}",
                seeds.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Limit {
            driver,
            nodes,
            seconds,
            size,
            trans_time_ms,
            json,
        } => {
            apply_node_overrides(&nodes)?;
            let p = profile::by_name(&driver)
                .with_context(|| format!("unknown driver profile `{driver}`"))?;
            let opts = stress::limit::LimitOptions {
                size,
                trans_time_ms,
                duration: std::time::Duration::from_secs_f64(seconds),
            };
            let l = stress::limit::measure(p, &opts)?;
            if json {
                println!("{}", serde_json::to_string(&l)?);
            } else {
                println!(
                    "{}: {:.1} jobs/s ({} CAPTURE buffers done in {:.1} s, {} loop programs, {} ops failed; {})",
                    l.driver, l.jobs_per_s, l.jobs, l.seconds, l.programs, l.failed_ops, l.setup
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Decode {
            artifact,
            driver,
            out,
        } => {
            let driver = match driver {
                Some(d) => d,
                None => fuzz_target_driver(&artifact).with_context(|| {
                    format!(
                        "cannot tell the fuzz target from {}: give --driver (vim2m, visl, vicodec, rga, hantro)",
                        artifact.display()
                    )
                })?,
            };
            let p = profile::by_name(&driver)
                .with_context(|| format!("unknown driver profile `{driver}`"))?;
            let bytes =
                std::fs::read(&artifact).with_context(|| format!("read {}", artifact.display()))?;
            let mut prog = m2mfuzz::fuzz::mutate::decode(&bytes, p);
            let name = artifact
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            prog.set_header("decoded-from", &format!("m2m_{driver} input {name}"));
            match out {
                Some(o) => std::fs::write(&o, prog.to_string())
                    .with_context(|| format!("write {}", o.display()))?,
                None => print_program(&prog)?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `m2mfuzz shrink`: start or resume a shrink session and write its result.
fn shrink_cmd(
    input: Option<PathBuf>,
    finding: &[String],
    out: Option<PathBuf>,
    state_file: Option<PathBuf>,
    resume: Option<PathBuf>,
    tries: u32,
) -> Result<ExitCode> {
    use m2mfuzz::shrink::session::{self, Outcome, State, Where};
    // Candidates run in this boot; a boot per candidate is the lab's (`lab shrink --each-boot`).
    let place = Where::Here;
    let (state, state_file) = match resume {
        Some(f) => {
            let st = State::load(&f)?;
            anyhow::ensure!(
                !st.done,
                "the shrink in {} has finished already",
                f.display()
            );
            eprintln!(
                "resuming the shrink of {}: {} candidates answered, {} runs in {} boots so far",
                st.input,
                st.answers.len(),
                st.runs,
                st.boots
            );
            (st, Some(f))
        }
        None => {
            let input = input.expect("clap requires INPUT without --resume");
            let mut st = State::new(&input, finding, out)?;
            st.tries = tries.max(1);
            // Lockdep targets get a state file whether asked or not.
            let default_state = || {
                let mut p = input.clone().into_os_string();
                p.push(".shrink.json");
                PathBuf::from(p)
            };
            let expects_lockdep = st.lockdep_target()
                || finding.iter().any(|f| corpus::is_lockdep_title(f))
                || std::fs::read_to_string(&input).is_ok_and(|t| {
                    t.lines()
                        .filter_map(|l| l.strip_prefix("# expect:"))
                        .any(|e| corpus::is_lockdep_title(e.trim()))
                });
            let f = match state_file {
                Some(f) => Some(f),
                None if expects_lockdep => Some(default_state()),
                None => None,
            };
            (st, f)
        }
    };
    eprintln!(
        "shrinking {} for {:?}",
        state.input,
        if state.target.is_empty() {
            "the findings of its first run".to_string()
        } else {
            format!("{:?}", state.target)
        }
    );
    match session::run(state, state_file.as_deref(), &place)? {
        Outcome::NeedsReboot { state_file, state } => {
            eprintln!(
                "lockdep has reported in this boot, so the next candidate needs a fresh one. \
                 Progress is saved in {} ({} candidates answered, {} runs, {} boots). \
                 Reboot (with the same kernel and command line), then run:\n  m2mfuzz shrink --resume {}",
                state_file.display(),
                state.answers.len(),
                state.runs,
                state.boots,
                state_file.display()
            );
            Ok(ExitCode::from(3))
        }
        Outcome::Done {
            programs,
            ops_before,
            ops_after,
            state,
        } => {
            eprintln!(
                "shrunk {ops_before} -> {ops_after} ops: {} candidates, {} runs, {} boots, {:.1} s",
                state.answers.len(),
                state.runs,
                state.boots.max(1),
                state.seconds
            );
            if programs.len() > 1 {
                eprintln!(
                    "the finding needs its {} programs run concurrently: the interleaving is kept",
                    programs.len()
                );
            }
            match (&state.out, programs.as_slice()) {
                (Some(o), [one]) => std::fs::write(o, one.to_string())
                    .with_context(|| format!("write {}", o.display()))?,
                (Some(o), many) => {
                    for (i, p) in many.iter().enumerate() {
                        let mut f = o.clone().into_os_string();
                        f.push(format!(".{}.m2m", i + 1));
                        std::fs::write(&f, p.to_string())
                            .with_context(|| format!("write {}", PathBuf::from(&f).display()))?;
                    }
                }
                (None, many) => {
                    for p in many {
                        print!("{p}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The driver of the fuzz target an artifact path names (`…/m2m_vim2m/crash-…`).
fn fuzz_target_driver(path: &std::path::Path) -> Option<String> {
    // A fuzz target's stored finding: its program beside the input names the driver.
    let beside = path.parent().map(|d| d.join("program.m2m"));
    if let Some(p) = beside.and_then(|p| program::text::parse_file(&p).ok()) {
        if let Some(d) = p.header("driver").filter(|d| profile::by_name(d).is_some()) {
            return Some(d.to_string());
        }
    }
    path.components().rev().find_map(|c| {
        let s = c.as_os_str().to_str()?;
        let d = s.strip_prefix("m2m_")?;
        profile::by_name(d).map(|_| d.to_string())
    })
}

/// `stress --recover`: the journal's programs, and the console's last markers when given.
fn recover_cmd(
    dir: &std::path::Path,
    console: Option<&std::path::Path>,
    json: bool,
) -> Result<ExitCode> {
    let workers = stress::store::recover(dir)?;
    anyhow::ensure!(
        !workers.is_empty(),
        "{}: the journal is empty: the run died before its first program",
        dir.display()
    );
    // The kernel's own words: the console given, else the board's pstore after a reboot.
    let mut notes = Vec::new();
    let source = match console {
        Some(log) => {
            let bytes = std::fs::read(log).with_context(|| format!("read {}", log.display()))?;
            Some((
                log.display().to_string(),
                String::from_utf8_lossy(&bytes).to_string(),
            ))
        }
        None => pstore_source(dir, &mut notes)?,
    };
    let (last_markers, recovery) = match &source {
        Some((name, text)) => (
            stress::store::last_markers(text),
            Some(stress::recover::recover_console(dir, text, name)?),
        ),
        None => Default::default(),
    };
    let summary = stress::recover::Summary {
        run: dir.to_path_buf(),
        workers,
        source: source.map(|(name, _)| name),
        last_markers,
        recovery,
        notes,
    };
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_recovery(&summary);
    }
    Ok(if summary.stored() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `stress --recover` for a person.
fn print_recovery(s: &stress::recover::Summary) {
    for n in &s.notes {
        println!("note: {n}");
    }
    let running: Vec<_> = s.workers.iter().filter(|r| !r.finished).collect();
    println!(
        "{}: {} workers journalled; {} were running a program:",
        s.run.display(),
        s.workers.len(),
        running.len()
    );
    for r in &s.workers {
        println!(
            "  worker {} program {} seed {}: {} ({})",
            r.worker,
            r.k,
            r.seed.map_or("?".into(), |s| s.to_string()),
            if r.finished {
                "had finished"
            } else {
                "RUNNING"
            },
            r.path.display()
        );
    }
    match (&s.source, &s.recovery) {
        (Some(name), Some(r)) => {
            println!("last markers in {name}:");
            for m in s.last_markers.values() {
                println!("  {m}");
            }
            println!(
                "{} kernel report(s) in {name} after the run's last live reading of the log:",
                r.reports.len()
            );
            for rep in &r.reports {
                println!(
                    "  {} {}{} (epoch {}{}; running: {})",
                    if rep.under_test {
                        "FINDING"
                    } else {
                        "elsewhere"
                    },
                    rep.finding,
                    if rep.under_test && !rep.new {
                        ", stored before: hit count raised"
                    } else {
                        ""
                    },
                    rep.epoch,
                    rep.at_s.map_or(String::new(), |t| format!(", {t:.1} s in")),
                    if rep.programs.is_empty() {
                        "none".to_string()
                    } else {
                        rep.programs.join(" ")
                    }
                );
            }
            for n in &r.notes {
                println!("  note: {n}");
            }
            if s.stored() {
                println!("findings stored in {}", s.run.join("findings").display());
            }
        }
        _ => println!(
            "no --console and no records in /sys/fs/pstore: only the journal was read; give the \
             dead boot's console log with --console to turn its kernel reports into findings"
        ),
    }
    println!(
        "replay one with: m2mfuzz run {}",
        running.first().unwrap_or(&&s.workers[0]).path.display()
    );
}

/// A board after a reboot: the pstore record holding the run's markers (console first).
fn pstore_source(
    run: &std::path::Path,
    notes: &mut Vec<String>,
) -> Result<Option<(String, String)>> {
    let dir = std::path::Path::new("/sys/fs/pstore");
    let Some((sources, found)) = stress::recover::pstore_sources(dir)? else {
        return Ok(None);
    };
    notes.extend(found);
    for (name, text) in &sources {
        if stress::recover::has_run(run, text)? {
            return Ok(Some((name.clone(), text.clone())));
        }
    }
    let names: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
    anyhow::bail!(
        "{} holds records ({}) but none has a marker of the run in {}: give the console log of \
         the boot that ran it with --console",
        dir.display(),
        names.join(", "),
        run.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<std::ffi::OsString> {
        s.split_whitespace().map(Into::into).collect()
    }

    fn run_args(cli: Cli) -> RunArgs {
        match cli.cmd {
            Cmd::Run(r) => r,
            _ => panic!("not run"),
        }
    }

    #[test]
    fn the_run_only_parser_gives_what_the_full_one_does_and_leaves_the_rest_to_it() {
        for a in [
            "m2mfuzz run p.m2m",
            "m2mfuzz run --quiet --no-oracles p.m2m",
            "m2mfuzz run p.m2m --quiet",
            "m2mfuzz run --node vim2m=/dev/video3 --node visl=/dev/video4 --json p.m2m",
            "m2mfuzz run --node=vim2m=/dev/video3 p.m2m --no-oracles --node visl=x",
            "m2mfuzz run --timings --quiet p.m2m",
            "m2mfuzz run p.m2m --json --no-oracles",
        ] {
            let full = run_args(Cli::try_parse_from(argv(a)).unwrap());
            let fast = run_args(parse_run_only(&argv(a)).expect(a));
            assert_eq!(fast, full, "{a}");
        }
        // Help, errors, other subcommands and anything unusual: the full parser's.
        for a in [
            "m2mfuzz run --help",
            "m2mfuzz run -h p.m2m",
            "m2mfuzz run",
            "m2mfuzz run --json --quiet p.m2m",
            "m2mfuzz run --quiet p.m2m --quiet",
            "m2mfuzz run --timings --timings p.m2m",
            "m2mfuzz run --bogus p.m2m",
            "m2mfuzz run p.m2m q.m2m",
            "m2mfuzz run -- p.m2m",
            "m2mfuzz run - ",
            "m2mfuzz run p.m2m --node",
            "m2mfuzz run --node --json p.m2m",
            "m2mfuzz run --node= p.m2m",
            "m2mfuzz run --no-oracles=1 p.m2m",
            "m2mfuzz replay p.m2m",
            "m2mfuzz --version",
            "m2mfuzz",
        ] {
            assert!(parse_run_only(&argv(a)).is_none(), "{a}");
        }
    }
}
