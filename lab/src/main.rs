//! `m2mfuzz-lab` (`cargo lab`): the QEMU lab as code. Builds and caches the lab kernels and
//! initramfs images by content key, boots guests with a typed ending, and runs the lab's checks
//! and the main job without hardware.
mod apt;
mod arch;
mod board;
mod boot;
mod checks;
mod clock;
mod cmd;
mod fuzz_build;
mod guest_bins;
mod initramfs;
mod kernel;
mod lab;
mod log;

use anyhow::Result;
use arch::Arch;
use clap::{Parser, Subcommand};
use lab::Lab;
use std::path::PathBuf;
use std::process::ExitCode;

/// The m2mfuzz QEMU lab.
#[derive(Parser)]
#[command(name = "m2mfuzz-lab", version)]
struct Cli {
    /// Guest architecture: x86_64, or arm64 (the boards').
    #[arg(long, env = "LAB_ARCH", default_value = "x86_64", global = true)]
    arch: Arch,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The main job without hardware: `m2mfuzz stress` with the lab-smoke profile (10 minutes),
    /// its report (lab-out/main/report.md) and the tracefs count check. Exit 0 clean, 1 findings.
    Main {
        /// Run this long instead of the profile's duration (e.g. 90s, 10m).
        #[arg(long)]
        duration: Option<String>,
        /// Stress profile, relative to the repository or absolute.
        #[arg(long, default_value = "stress-profiles/lab-smoke.toml")]
        profile: PathBuf,
        /// Extra kernel command line (e.g. a fault switch: vim2m.rf_error_every=3).
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Further `m2mfuzz stress` arguments (after --).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// `m2mfuzz stress` in the lab and its report on the host. Exit 0 clean, 1 findings.
    Stress {
        /// Output directory (emptied first; default lab-out/stress).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stress profile, relative to the repository or absolute.
        #[arg(long, default_value = "stress-profiles/lab-smoke.toml")]
        profile: PathBuf,
        /// Extra kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Boot time limit in seconds (default: the run's duration plus 300).
        #[arg(long)]
        timeout: Option<u64>,
        /// Count the events in an independent tracefs instance; the report must equal them.
        #[arg(long)]
        check_trace: bool,
        /// Further `m2mfuzz stress` arguments (after --).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The device tests (lab_devices) and `m2mfuzz probe` in the lab.
    Tests {
        /// Output directory (emptied first; default lab-out/tests).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Extra kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
    },
    /// Replay corpus programs in the lab; any unexpected outcome fails.
    Replay {
        /// Output directory (emptied first; default lab-out/replay).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Programs or directories (default: corpora).
        paths: Vec<PathBuf>,
    },
    /// v4l2-compliance on every lab node against ci/lab/compliance-baseline.txt (x86_64 only).
    /// Exit 0 no node worse, 1 a node worse.
    Compliance {
        /// Output directory (emptied first; default lab-out/compliance).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Extra kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Store this run's figures as the baseline instead of comparing.
        #[arg(long)]
        write_baseline: bool,
    },
    /// The race switch's ground truth: `vim2m.race_mode=1` shows with two threads (in NEED of
    /// BOOTS boots) and not with one, nothing without the switch. Exit 0 as expected, 1 not.
    RaceCheck {
        /// Output directory (emptied first; default lab-out/race).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Boots of the two-thread program.
        #[arg(long, default_value_t = 5)]
        boots: u32,
        /// Of which at least this many must show the symptom and the finding.
        #[arg(long, default_value_t = 4)]
        need: u32,
        /// How long race-threads runs, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// race-single's iterations.
        #[arg(long, default_value_t = 200)]
        iterations: u32,
    },
    /// Ground truth for the oracles: a boot per fault program with its `# switch:`, its
    /// symptom checked independently and its findings equal to its `# expect:` lines, then a
    /// control boot with no switch. Exit 0 all as expected, 1 not.
    Faults {
        /// Output directory (emptied first; default lab-out/faults).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the switch → finding table into README.md and ci/lab/README.md.
        #[arg(long)]
        update_docs: bool,
        /// Programs (default: corpora/faults/*.m2m).
        programs: Vec<PathBuf>,
    },
    /// C reproducers reproduce: each program's `repro --c` compiled on the host and run in a
    /// fresh boot under `m2mfuzz watch`; its findings must be its `# expect:` lines.
    Repro {
        /// Output directory (emptied first; default lab-out/repro).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The expected findings and maybe more (a shrunk finding names only its own).
        #[arg(long)]
        at_least: bool,
        /// Programs (default: corpora/*/*.m2m).
        programs: Vec<PathBuf>,
    },
    /// Lose nothing when the kernel dies: a guest killed mid-run, then `stress --recover` in a
    /// fresh boot; and a wedged kernel (rf_fault=128) whose report the stress check recovers.
    Recover {
        /// Output directory (emptied first; default lab-out/recover).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Kill the stress boot after this many seconds.
        #[arg(long, default_value_t = 40)]
        kill_after: u64,
        /// Time limit of the wedged boot in seconds.
        #[arg(long, default_value_t = 150)]
        wedge_limit: u64,
    },
    /// Shrink a program or a stress finding directory in the lab: `m2mfuzz shrink --state` in one
    /// boot, `--resume` in a fresh boot each time it exits 3, until it ends. Writes
    /// OUT/shrunk.m2m and OUT/result.json; prints the result line.
    Shrink {
        /// Output directory (emptied first; default lab-out/shrink).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up when it still asks for a reboot after this many boots.
        #[arg(long, default_value_t = 80)]
        max_boots: u32,
        /// Shrink on the host instead, each candidate in a fresh boot of its own (takes
        /// `--finding` and `--tries`).
        #[arg(long)]
        each_boot: bool,
        /// A program or a finding directory.
        input: PathBuf,
        /// Further `m2mfuzz shrink` options (e.g. --finding "kind: title").
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The board's way to shrink a lockdep finding: a padded fault program shrunk across boots
    /// must come back no longer than the hand-written one, need more than one boot, and replay.
    ShrinkResume {
        /// Output directory (default lab-out/shrink-resume).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The program (default corpora/faults/alloc-in-section.m2m).
        program: Option<PathBuf>,
    },
    /// The benchmark: the parts' figures as one report (OUT/bench.md, printed) and
    /// OUT/bench.json. Asserts nothing about speed; exit 1 when a find boot timed out or died.
    Bench {
        /// Output directory (kept; default lab-out/bench).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Parts, space-separated: overhead find shrink scaling coverage duty.
        #[arg(long, default_value = "overhead find shrink scaling coverage duty")]
        parts: String,
        /// Stress seeds of find, space-separated.
        #[arg(long, default_value = "1 2 3 4 5")]
        seeds: String,
        /// Seconds stress gets to find each fault.
        #[arg(long, default_value_t = 120)]
        budget: u64,
        /// Fault programs of corpora/faults by name, space-separated (default: all).
        #[arg(long, default_value = "")]
        faults: String,
        /// Seconds of each coverage mode.
        #[arg(long, default_value_t = 300)]
        coverage_seconds: u64,
    },
    /// Harness overhead: `m2mfuzz run` vs a plain C loop of the same ioctls, one boot
    /// (OUT/overhead.{md,json}). Exit 1 when an op failed.
    BenchOverhead {
        /// Output directory (emptied first; default lab-out/bench-overhead).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Timed runs of each side per program.
        #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u64).range(1..))]
        reps: u64,
        /// Ops of the m2m jobs program (four a job).
        #[arg(long, default_value_t = 1000)]
        n: u64,
        /// QUERYBUFs of the ioctls program.
        #[arg(long, default_value_t = 10000)]
        n_ioctls: u64,
    },
    /// Stress throughput by worker count, one boot (OUT/scaling.{md,json}).
    BenchScaling {
        /// Output directory (emptied first; default lab-out/bench-scaling).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds of each run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Worker counts, space-separated.
        #[arg(long, default_value = "1 2 4")]
        workers: String,
    },
    /// The stress duty cycle: `m2mfuzz limit`, then stress under a tracefs count, one boot
    /// (OUT/duty.{md,json}). Exit: stress's when it failed.
    BenchDuty {
        /// Output directory (emptied first; default lab-out/bench-duty).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds of stress.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seconds of the limit's loop.
        #[arg(long, default_value_t = 15)]
        limit_seconds: u64,
    },
    /// A fuzz target built static (libFuzzer without interceptors, no sanitizer) and run in a
    /// fresh boot; prints one summary line. Results in OUT/share/out.
    Fuzz {
        /// Output directory (emptied first; default lab-out/fuzz).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The fuzz target.
        #[arg(long, default_value = "m2m_vim2m")]
        target: String,
        /// libFuzzer's time limit.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// KCOV guiding libFuzzer (on), only counted (observe), or not collected (off).
        #[arg(long, value_enum, default_value_t = checks::fuzz::Kcov::On)]
        kcov: checks::fuzz::Kcov,
        /// Mutate inputs as programs or as bytes.
        #[arg(long, value_enum, default_value_t = checks::fuzz::Mutator::Programs)]
        mutator: checks::fuzz::Mutator,
        /// Extra kernel command line (a fault switch).
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Seed inputs (default fuzz/seeds/TARGET).
        #[arg(long)]
        seeds: Option<PathBuf>,
        /// Further libFuzzer arguments (after --).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The fuzz path end to end: m2m_vim2m under a fault switch stores a finding and goes on;
    /// the stored input, decoded, replays with every finding it showed.
    FuzzCheck {
        /// Output directory (emptied first; default lab-out/fuzz-check).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds of fuzzing.
        #[arg(long, default_value_t = 90)]
        budget: u64,
        /// The fault switch (module parameters).
        #[arg(long, default_value = checks::fuzz_check::DEFAULT_SWITCH)]
        switch: String,
    },
    /// Kernel edges of a fuzz target with KCOV guiding vs only counted, same time, fresh boots.
    BenchCoverage {
        /// Output directory (emptied first; default lab-out/bench-coverage).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The fuzz target.
        #[arg(long, default_value = "m2m_vim2m")]
        target: String,
        /// Seconds per mode.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
    },
    /// Stress must find each fault program's `# expect:` finding under its switch within the
    /// budget; a table of the time to it. Exit 1 when a fault is missed or a guest failed.
    StressFaults {
        /// Output directory (emptied first; default lab-out/stress-faults).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds per seed.
        #[arg(long, default_value_t = 120)]
        budget: u64,
        /// Stress seeds, space-separated ("1 2 3").
        #[arg(long, default_value = "1")]
        seeds: String,
        /// Fault programs (default corpora/faults/*.m2m).
        programs: Vec<PathBuf>,
    },
    /// Boot the lab once for a job script (run in the guest as `sh /host/job.sh`, in /host: the
    /// share; what it writes to /host/out comes back in SHARE/out). Exit: the job's; 124 when
    /// the guest timed out; 125 when it died without a result.
    Boot {
        /// Where the console log goes (default: a fresh temporary directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The 9p share (default OUT/share, holding only the job).
        #[arg(long)]
        share: Option<PathBuf>,
        /// Time limit in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Extra kernel command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Stream the job's output as it runs.
        #[arg(long)]
        follow: bool,
        /// Kernel image (default: the lab kernel; `M2MFUZZ_LAB_KERNEL` too).
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// The job script.
        job: PathBuf,
    },
    /// The boards' binaries (aarch64, static) built on this x86_64 machine; prints their paths
    /// (target/aarch64-unknown-linux-gnu/release/m2mfuzz, with --fuzz the fuzz targets too).
    BoardBuild {
        /// Also the cargo fuzz targets (one per driver).
        #[arg(long)]
        fuzz: bool,
        /// Also run the uapi layout test (and with --fuzz m2m_vim2m) under qemu-aarch64-static.
        #[arg(long)]
        test: bool,
    },
    /// Build (or find cached) the lab kernel; prints the image's path.
    Kernel {
        /// Which configuration.
        #[arg(long, value_enum, default_value_t = kernel::Variant::Default)]
        variant: kernel::Variant,
    },
    /// Build (or find cached) the lab initramfs; prints its path.
    Initramfs,
    /// Build the guest's static binaries into DIR/bin.
    GuestBins {
        /// Destination.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("[lab] error: {e:#}");
            if boot::interrupted() {
                ExitCode::from(130)
            } else if let Some(n) = e.downcast_ref::<boot::NoAnswer>() {
                ExitCode::from(n.code)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let lab = Lab::new(cli.arch)?;
    match cli.cmd {
        Cmd::Main {
            duration,
            profile,
            cmdline,
            mut args,
        } => {
            if let Some(d) = duration {
                args.splice(0..0, ["--duration".to_string(), d]);
            }
            let s = checks::stress::StressRun {
                out: lab.out("main"),
                profile,
                cmdline,
                timeout: None,
                check_trace: true,
                args,
            };
            let o = checks::stress::run(&lab, &s)?;
            Ok(ExitCode::from(o.rc.clamp(0, 255) as u8))
        }
        Cmd::Stress {
            out,
            profile,
            cmdline,
            timeout,
            check_trace,
            args,
        } => {
            let s = checks::stress::StressRun {
                out: out.unwrap_or_else(|| lab.out("stress")),
                profile,
                cmdline,
                timeout,
                check_trace,
                args,
            };
            let o = checks::stress::run(&lab, &s)?;
            Ok(ExitCode::from(o.rc.clamp(0, 255) as u8))
        }
        Cmd::Tests { out, cmdline } => {
            checks::devices::run(&lab, &out.unwrap_or_else(|| lab.out("tests")), &cmdline)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Replay { out, paths } => {
            let paths = if paths.is_empty() {
                vec![lab.repo.join("corpora")]
            } else {
                paths
            };
            checks::replay::run(&lab, &out.unwrap_or_else(|| lab.out("replay")), &paths)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Compliance {
            out,
            cmdline,
            write_baseline,
        } => {
            let out = out.unwrap_or_else(|| lab.out("compliance"));
            let passed = checks::compliance::run(&lab, &out, &cmdline, write_baseline)?;
            Ok(ExitCode::from(u8::from(!passed)))
        }
        Cmd::RaceCheck {
            out,
            boots,
            need,
            seconds,
            iterations,
        } => {
            let out = out.unwrap_or_else(|| lab.out("race"));
            let c = checks::race_check::RaceCheck {
                boots,
                need,
                seconds,
                iterations,
            };
            let passed = checks::race_check::run(&lab, &out, &c)?;
            Ok(ExitCode::from(u8::from(!passed)))
        }
        Cmd::Faults {
            out,
            update_docs,
            programs,
        } => {
            let out = out.unwrap_or_else(|| lab.out("faults"));
            let passed = checks::faults::run(&lab, &out, update_docs, &programs)?;
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Repro {
            out,
            at_least,
            programs,
        } => {
            let out = out.unwrap_or_else(|| lab.out("repro"));
            checks::repro::run(&lab, &out, at_least, &programs)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Recover {
            out,
            kill_after,
            wedge_limit,
        } => {
            let out = out.unwrap_or_else(|| lab.out("recover"));
            checks::recover::run(&lab, &out, kill_after, wedge_limit)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Shrink {
            out,
            max_boots,
            each_boot,
            input,
            args,
        } => {
            let s = checks::shrink::ShrinkRun {
                out: out.unwrap_or_else(|| lab.out("shrink")),
                max_boots,
                input,
                args,
            };
            if each_boot {
                checks::shrink::each_boot(&lab, &s)?;
            } else {
                checks::shrink::run(&lab, &s)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ShrinkResume { out, program } => {
            let program =
                program.unwrap_or_else(|| lab.repo.join("corpora/faults/alloc-in-section.m2m"));
            let out = out.unwrap_or_else(|| lab.out("shrink-resume"));
            checks::shrink_resume::run(&lab, &out, &program)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            out,
            parts,
            seeds,
            budget,
            faults,
            coverage_seconds,
        } => {
            let words = |s: &str| s.split_whitespace().map(str::to_string).collect();
            let b = checks::bench::Bench {
                out: out.unwrap_or_else(|| lab.out("bench")),
                parts: words(&parts),
                seeds: words(&seeds),
                budget,
                faults: words(&faults),
                coverage_seconds,
            };
            Ok(ExitCode::from(checks::bench::run(&lab, &b)?))
        }
        Cmd::BenchOverhead {
            out,
            reps,
            n,
            n_ioctls,
        } => {
            let s = checks::bench_overhead::Settings {
                reps: reps as usize,
                n,
                n_ioctls,
            };
            let out = out.unwrap_or_else(|| lab.out("bench-overhead"));
            table_or_code(checks::bench_overhead::run(&lab, &out, s)?)
        }
        Cmd::BenchScaling {
            out,
            seconds,
            workers,
        } => {
            let w = checks::bench_scaling::parse_workers(&workers)?;
            let out = out.unwrap_or_else(|| lab.out("bench-scaling"));
            print!("{}", checks::bench_scaling::run(&lab, &out, seconds, &w)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::BenchDuty {
            out,
            seconds,
            limit_seconds,
        } => {
            let out = out.unwrap_or_else(|| lab.out("bench-duty"));
            table_or_code(checks::bench_duty::run(&lab, &out, seconds, limit_seconds)?)
        }
        Cmd::Fuzz {
            out,
            target,
            seconds,
            kcov,
            mutator,
            cmdline,
            seeds,
            args,
        } => {
            let r = checks::fuzz::FuzzRun {
                out: out.unwrap_or_else(|| lab.out("fuzz")),
                target,
                seconds,
                kcov,
                mutator,
                cmdline,
                seeds,
                libfuzzer_args: args,
            };
            checks::fuzz::run(&lab, &r)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FuzzCheck {
            out,
            budget,
            switch,
        } => {
            let out = out.unwrap_or_else(|| lab.out("fuzz-check"));
            checks::fuzz_check::run(&lab, &out, budget, &switch)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::BenchCoverage {
            out,
            target,
            seconds,
        } => {
            let out = out.unwrap_or_else(|| lab.out("bench-coverage"));
            checks::bench_coverage::run(&lab, &out, &target, seconds)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::StressFaults {
            out,
            budget,
            seeds,
            programs,
        } => {
            let seeds = seeds
                .split_whitespace()
                .map(|s| s.parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--seeds \"{seeds}\": {e}"))?;
            let out = out.unwrap_or_else(|| lab.out("stress-faults"));
            let pass = checks::stress_faults::run(&lab, &out, budget, &seeds, &programs)?;
            Ok(if pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Boot {
            out,
            share,
            timeout,
            cmdline,
            follow,
            kernel,
            job,
        } => {
            let out = match out {
                Some(o) => o,
                None => std::env::temp_dir().join(format!("m2mfuzz-lab.{}", std::process::id())),
            };
            let share = share.unwrap_or_else(|| out.join("share"));
            std::fs::create_dir_all(&share)?;
            let text = std::fs::read_to_string(&job)
                .map_err(|e| anyhow::anyhow!("job script {}: {e}", job.display()))?;
            let mut b = boot::Boot::new(&out, &share, text)
                .timeout(timeout)
                .cmdline(&cmdline);
            b.follow = follow;
            if let Some(k) = kernel {
                std::env::set_var("M2MFUZZ_LAB_KERNEL", k);
            }
            let booted = boot::run(&boot::Guest::of(&lab)?, &b)?;
            Ok(ExitCode::from(booted.rc()?.clamp(0, 255) as u8))
        }
        Cmd::BoardBuild { fuzz, test } => {
            for b in board::build(fuzz, test)? {
                println!("{}", b.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kernel { variant } => {
            println!("{}", kernel::build(&lab, variant)?.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Initramfs => {
            println!("{}", initramfs::build(&lab)?.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::GuestBins { dir } => {
            guest_bins::build(&lab, &dir)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A benchmark's table printed, or the exit code of its job that failed.
fn table_or_code(r: std::result::Result<String, i32>) -> Result<ExitCode> {
    match r {
        Ok(md) => {
            print!("{md}");
            Ok(ExitCode::SUCCESS)
        }
        Err(rc) => Ok(ExitCode::from(rc.clamp(1, 255) as u8)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_passes_the_options_after_the_input_to_m2mfuzz() {
        // As bench.sh calls shrink.sh.
        let cli = Cli::try_parse_from([
            "lab",
            "shrink",
            "--out",
            "o",
            "run/findings/x",
            "--finding",
            "splat: a b",
        ])
        .unwrap();
        let Cmd::Shrink {
            out, input, args, ..
        } = cli.cmd
        else {
            panic!("not shrink");
        };
        assert_eq!(out, Some(PathBuf::from("o")));
        assert_eq!(input, PathBuf::from("run/findings/x"));
        assert_eq!(
            args,
            vec!["--finding".to_string(), "splat: a b".to_string()]
        );
    }
}
