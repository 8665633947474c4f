//! One guest boot: the lab kernel and initramfs under QEMU (TCG, 2 vCPUs), a job script run by
//! the guest's /init from the 9p share, and a typed ending. The job's output (SHARE/out/job.log)
//! streams to stderr while it runs when asked; Ctrl-C asks the job to stop (SHARE/stop, which a
//! stoppable job watches), a second one ends the guest.
use crate::arch::Arch;
use crate::lab::Lab;
use crate::{apt, cmd, initramfs, kernel};
use anyhow::{Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kernel log lines that say what killed a guest (shown with a dead guest's console path).
pub const REPORT_LINES: &[&str] = &["Kernel panic", "BUG:", "Oops", "WARNING:", "refcount_t:"];

/// The kernel and initramfs a boot uses.
#[derive(Clone, Debug)]
pub struct Guest {
    /// Guest architecture.
    pub arch: Arch,
    /// Kernel image.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
}

impl Guest {
    /// The lab's kernel (`M2MFUZZ_LAB_KERNEL` overrides it) and initramfs, built or cached.
    pub fn of(lab: &Lab) -> Result<Guest> {
        Guest::with(lab, kernel::Variant::Default)
    }

    /// As [`Guest::of`] with a kernel variant.
    pub fn with(lab: &Lab, variant: kernel::Variant) -> Result<Guest> {
        let kernel = match std::env::var_os("M2MFUZZ_LAB_KERNEL") {
            Some(k) if variant == kernel::Variant::Default => PathBuf::from(k),
            _ => kernel::build(lab, variant)?,
        };
        Ok(Guest {
            arch: lab.arch,
            kernel,
            initrd: initramfs::build(lab)?,
        })
    }
}

/// What a boot runs and where.
#[derive(Clone, Debug)]
pub struct Boot {
    /// Console log and QEMU's own messages go here.
    pub out: PathBuf,
    /// The 9p share, /host in the guest; the job's results come back in SHARE/out.
    pub share: PathBuf,
    /// The job (a busybox sh script, run in /host).
    pub job: String,
    /// Extra kernel command line (module parameters: a fault switch).
    pub cmdline: String,
    /// Time limit for the whole boot.
    pub timeout: Duration,
    /// Stream SHARE/out/job.log to stderr as it grows.
    pub follow: bool,
    /// The job watches /host/stop: Ctrl-C asks it to finish instead of ending the guest.
    pub stoppable: bool,
}

impl Boot {
    /// A boot of `job` with results in `out` and the share at `share`, 600 s, quiet.
    pub fn new(out: &Path, share: &Path, job: impl Into<String>) -> Boot {
        Boot {
            out: out.to_path_buf(),
            share: share.to_path_buf(),
            job: job.into(),
            cmdline: String::new(),
            timeout: Duration::from_secs(600),
            follow: false,
            stoppable: false,
        }
    }

    /// Set the time limit.
    pub fn timeout(mut self, secs: u64) -> Boot {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// Set the extra kernel command line.
    pub fn cmdline(mut self, c: &str) -> Boot {
        self.cmdline = c.to_string();
        self
    }

    /// Stream the job's output live.
    pub fn follow(mut self) -> Boot {
        self.follow = true;
        self
    }
}

/// How a boot ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The job ran to its end with this exit code.
    Exited(i32),
    /// The time limit passed; the guest was ended.
    TimedOut,
    /// The guest stopped without the job's exit code (a panic, a reboot, QEMU failing), or
    /// Ctrl-C ended it.
    GuestDied {
        /// QEMU's exit status.
        qemu: String,
    },
}

/// A finished boot.
#[derive(Clone, Debug)]
pub struct Booted {
    /// How it ended.
    pub ending: Ending,
    /// The console log.
    pub console: PathBuf,
    /// SHARE/out: what the job wrote.
    pub results: PathBuf,
    /// Wall time of the boot.
    pub seconds: f64,
    /// Ctrl-C was pressed during it.
    pub interrupted: bool,
}

impl Booted {
    /// The job's exit code; a [`NoAnswer`] error naming the console when the guest gave none.
    pub fn rc(&self) -> Result<i32> {
        let (code, what) = match &self.ending {
            Ending::Exited(rc) => return Ok(*rc),
            Ending::TimedOut => (
                124,
                format!("the guest timed out after {:.0} s", self.seconds),
            ),
            Ending::GuestDied { qemu } => (
                125,
                format!(
                    "the guest died without a result (qemu: {qemu}){}",
                    if self.interrupted {
                        ", ended by Ctrl-C"
                    } else {
                        ""
                    }
                ),
            ),
        };
        let reports: String = self.reports().iter().map(|l| format!("\n  {l}")).collect();
        Err(NoAnswer {
            code,
            message: format!(
                "{what}: the job gave no answer; console: {}{reports}",
                self.console.display()
            ),
        }
        .into())
    }

    /// True when the guest gave no answer (time-out or death).
    pub fn failed(&self) -> bool {
        !matches!(self.ending, Ending::Exited(_))
    }

    /// The console's first kernel report lines.
    pub fn reports(&self) -> Vec<String> {
        let text = std::fs::read(&self.console).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| REPORT_LINES.iter().any(|r| l.contains(r)))
            .take(5)
            .map(str::to_string)
            .collect()
    }

    /// The job's output file `name` in SHARE/out.
    pub fn result(&self, name: &str) -> PathBuf {
        self.results.join(name)
    }
}

/// A guest that gave no answer: the exit code the lab's commands give for it (124 timed out,
/// 125 died, as `timeout` and the shell lab did) and what happened.
#[derive(Debug)]
pub struct NoAnswer {
    /// 124 or 125.
    pub code: u8,
    /// What happened, with the console's path.
    pub message: String,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NoAnswer {}

/// Ctrl-C presses (and SIGTERMs) seen since the runner started.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

/// Catch SIGINT and SIGTERM from here on (the guest's QEMU runs in its own process group, so
/// the terminal's Ctrl-C reaches only the runner, which decides).
pub fn catch_interrupts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only touches an atomic, which is async-signal-safe.
            unsafe {
                libc::signal(sig, on_interrupt as *const () as libc::sighandler_t);
            }
        }
    });
}

/// Has Ctrl-C been pressed?
pub fn interrupted() -> bool {
    INTERRUPTS.load(Ordering::SeqCst) > 0
}

/// Boot `guest` for `b`.
pub fn run(guest: &Guest, b: &Boot) -> Result<Booted> {
    let (qemu, pkg) = guest.arch.qemu();
    apt::need(&[pkg])?;
    catch_interrupts();
    // A check of many boots stops at the first Ctrl-C, not only the boot it came in.
    if interrupted() {
        anyhow::bail!("interrupted (Ctrl-C): no further boot");
    }
    std::fs::create_dir_all(&b.out).with_context(|| format!("create {}", b.out.display()))?;
    let results = b.share.join("out");
    let _ = std::fs::remove_dir_all(&results);
    std::fs::create_dir_all(&results).with_context(|| format!("create {}", results.display()))?;
    let _ = std::fs::remove_file(b.share.join("stop"));
    std::fs::write(b.share.join("job.sh"), &b.job)?;
    let console = b.out.join("console.log");
    let _ = std::fs::remove_file(&console);
    let (machine, console_dev, arch_cmdline) = guest.arch.machine();
    let append = format!(
        "console={console_dev} panic=-1 oops=panic loglevel=7 printk.devkmsg=on {arch_cmdline} \
         rdinit=/init {}",
        b.cmdline
    );
    let qemu_log = std::fs::File::create(b.out.join("qemu.log"))?;
    let mut c = Command::new(qemu);
    c.args(["-accel", "tcg"])
        .args(machine)
        .args([
            "-smp", "2", "-m", "2048", "-display", "none", "-monitor", "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-no-reboot")
        .arg("-kernel")
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&guest.initrd)
        .arg("-append")
        .arg(append)
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=host,security_model=none,id=host",
            b.share.display()
        ))
        .stdin(Stdio::null())
        .stdout(qemu_log.try_clone()?)
        .stderr(qemu_log)
        .process_group(0);
    let start = Instant::now();
    let seen_before = INTERRUPTS.load(Ordering::SeqCst);
    let mut child = c
        .spawn()
        .with_context(|| format!("cannot start {}", cmd::show(&c)))?;
    let done = Arc::new(AtomicBool::new(false));
    let follower = b.follow.then(|| {
        let done = done.clone();
        let log = results.join("job.log");
        std::thread::spawn(move || follow(&log, &done))
    });
    let (status, timed_out, interrupted) = supervise(&mut child, b, start, seen_before)?;
    done.store(true, Ordering::SeqCst);
    if let Some(f) = follower {
        let _ = f.join();
    }
    let seconds = start.elapsed().as_secs_f64();
    let rc = std::fs::read_to_string(results.join("rc"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let ending = match (timed_out, rc) {
        (true, _) => Ending::TimedOut,
        (false, Some(rc)) => Ending::Exited(rc),
        (false, None) => Ending::GuestDied {
            qemu: status.to_string(),
        },
    };
    let booted = Booted {
        ending,
        console,
        results,
        seconds,
        interrupted,
    };
    match &booted.ending {
        Ending::Exited(rc) => crate::say!(
            "guest job exit {rc} after {seconds:.1}s; console: {}; results: {}",
            booted.console.display(),
            booted.results.display()
        ),
        Ending::TimedOut => crate::say!(
            "guest timed out after {}s ({seconds:.1}s); console: {}",
            b.timeout.as_secs(),
            booted.console.display()
        ),
        Ending::GuestDied { qemu } => {
            crate::say!(
                "guest ended without a result (qemu {qemu}) after {seconds:.1}s; console: {}",
                booted.console.display()
            );
            for l in booted.reports() {
                eprintln!("  {l}");
            }
        }
    }
    Ok(booted)
}

/// Wait for QEMU, ending it at the time limit or on Ctrl-C. Returns its status, whether the
/// time limit ended it, and whether Ctrl-C was pressed.
fn supervise(
    child: &mut Child,
    b: &Boot,
    start: Instant,
    seen_before: usize,
) -> Result<(std::process::ExitStatus, bool, bool)> {
    let mut asked = false;
    let mut timed_out = false;
    let mut killed_at: Option<Instant> = None;
    loop {
        if let Some(st) = child.try_wait()? {
            let pressed = INTERRUPTS.load(Ordering::SeqCst) > seen_before;
            return Ok((st, timed_out, pressed));
        }
        let presses = INTERRUPTS.load(Ordering::SeqCst) - seen_before;
        if presses > 0 && !asked && b.stoppable {
            asked = true;
            std::fs::write(b.share.join("stop"), "")?;
            crate::say!("Ctrl-C: asking the guest's run to stop (Ctrl-C again ends the guest)");
        }
        let end_now = (presses > 0 && (!b.stoppable || presses > 1))
            || (!timed_out && start.elapsed() >= b.timeout);
        if end_now && killed_at.is_none() {
            timed_out = presses == 0;
            signal(child, libc::SIGTERM);
            killed_at = Some(Instant::now());
        }
        if killed_at.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
            signal(child, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Copy what is appended to `log` to stderr until `done`, then the rest.
fn follow(log: &Path, done: &AtomicBool) {
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        let last = done.load(Ordering::SeqCst);
        if let Ok(mut f) = std::fs::File::open(log) {
            if f.seek(SeekFrom::Start(pos)).is_ok() {
                buf.clear();
                if let Ok(n) = f.read_to_end(&mut buf) {
                    pos += n as u64;
                    let _ = std::io::stderr().write_all(&buf);
                }
            }
        }
        if last {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The guest-side lines that make a job stoppable: `stoppable(CMD)` runs CMD in the background,
/// sends it SIGTERM when /host/stop appears (the host's Ctrl-C) and leaves its exit code in `$rc`.
/// SIGTERM, not SIGINT: busybox sh starts `&` jobs with SIGINT ignored.
pub fn stoppable(command: &str) -> String {
    format!(
        "{command} &\npid=$!\n\
         ( while kill -0 $pid 2>/dev/null; do [ -e /host/stop ] && {{ kill -TERM $pid; break; }}; sleep 1; done ) &\n\
         wait $pid; rc=$?\n"
    )
}
