//! `m2mfuzz-lab` (`cargo lab`): the QEMU lab as code. Builds and caches the lab kernels and
//! initramfs images by content key, boots guests with a typed ending, and runs the lab's checks
//! and the main job without hardware.
mod apt;
mod arch;
mod boot;
mod checks;
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
            if let Some(n) = e.downcast_ref::<boot::NoAnswer>() {
                ExitCode::from(n.code)
            } else if boot::interrupted() {
                ExitCode::from(130)
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
