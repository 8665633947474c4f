//! One program in a forked child process, watched by its parent (`m2mfuzz run`). The executor's
//! process then has one thread: with a second one (the supervisor) every ioctl took 2.5-3 µs
//! more in the lab (a lockdep kernel under TCG), about 13% of a QUERYBUF; likely the kernel's
//! shared-table fd lookup, which a single-threaded process skips.
//! The parent ticks the child's watchdog through a shared page, reports an op stuck in an
//! uninterruptible wait, and can end while its child stays stuck.
use super::supervise::{Stuck, Watch};
use super::watchdog::{self, Watchdog, TICK};
use super::{ExecOptions, Executor, Observer, Outcome};
use crate::program::Program;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

/// Which side of [`fork`] this process is.
pub enum Side {
    /// The child: runs the program.
    Executor(Child),
    /// The parent: watches it.
    Supervisor(Parent),
}

/// Fork into an executor child and a parent that supervises it, ops stuck for `margin` past
/// their deadline being reported. Call it while the process has one thread: the child has only
/// the calling thread, and a lock another thread held at the fork stays held in the child. The
/// child is killed when the parent dies.
pub fn fork(margin: Duration) -> std::io::Result<Side> {
    let (watchdog, mut ticker) = Watchdog::ticked();
    // The parent reaps its child: an inherited "ignore" would reap it first.
    // SAFETY: restores the default disposition of SIGCHLD, which has no handler here.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child continues on the calling thread alone (see above).
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            watchdog::forget_tid();
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid().as_raw() != parent {
                // The parent died before prctl: nobody would watch.
                // SAFETY: ends this child at once, as the fork's caller never saw it.
                unsafe { libc::_exit(2) }
            }
            Ok(Side::Executor(Child { watchdog }))
        }
        pid => {
            ticker.for_child(pid);
            // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            Ok(Side::Supervisor(Parent {
                pid,
                // SAFETY: the kernel just returned this fd; nothing else owns it. Without
                // pidfds (before Linux 5.3) the parent polls the child every tick.
                pidfd: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) }),
                watch: Watch::new(ticker, margin),
            }))
        }
    }
}

/// The executor's side of [`fork`].
pub struct Child {
    watchdog: Watchdog,
}

impl Child {
    /// Run `prog` under the parent's watch; the outcomes `keep` accepts are returned (after
    /// `obs` saw them all).
    pub fn run<O: Observer>(
        self,
        prog: &Program,
        opts: ExecOptions,
        obs: &mut O,
        mut keep: impl FnMut(&Outcome) -> bool,
    ) -> Vec<Outcome> {
        Executor::with_watchdog(opts, self.watchdog).run_keeping(prog, obs, &mut keep)
    }
}

/// The supervisor's side of [`fork`].
pub struct Parent {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    watch: Watch,
}

impl Parent {
    /// Tick the child's watchdog until the child ends (its exit status) or one of its ops is
    /// stuck (reported at once; the child may stay stuck).
    pub fn watch(&mut self) -> Result<ExitStatus, Stuck> {
        loop {
            if let Some(status) = self.wait_a_tick() {
                return Ok(status);
            }
            if let Some(stuck) = self.watch.look() {
                return Err(stuck);
            }
        }
    }

    /// Keep ticking the child's watchdog until it ends: after a stuck op the rest of its
    /// program stays bounded.
    pub fn wait(mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.wait_a_tick() {
                return status;
            }
            self.watch.ticker.tick();
        }
    }

    /// Wait up to a [`TICK`] for the child to end; its status if it did.
    fn wait_a_tick(&mut self) -> Option<ExitStatus> {
        match &self.pidfd {
            Some(fd) => {
                let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                // An EINTR or a time-out both mean: look again.
                let _ = nix::poll::poll(&mut p, PollTimeout::from(TICK.as_millis() as u16));
            }
            None => std::thread::sleep(TICK),
        }
        // libc's waitpid, not nix's: std's ExitStatus is made from the raw status.
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child, without blocking.
            match unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } {
                0 => return None,
                -1 if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                -1 => panic!(
                    "waitpid on the executor child {}: {}",
                    self.pid,
                    std::io::Error::last_os_error()
                ),
                _ => return Some(ExitStatus::from_raw(status)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::text;

    /// In a test binary the child must not return into the harness: it ends here, `code`
    /// saying what it saw.
    fn end_child(code: i32) -> ! {
        // SAFETY: ends this (child) process without running the harness's exit handlers.
        unsafe { libc::_exit(code) }
    }

    #[test]
    fn the_parent_gets_the_child_s_exit_status_once_its_program_ran() {
        let prog =
            text::parse("# m2mfuzz program v1\nsleep ms=1\nsleep ms=1\nsleep ms=1\n").unwrap();
        match fork(Duration::from_secs(1)).unwrap() {
            Side::Executor(child) => {
                let mut seen = 0;
                let kept = child.run(&prog, ExecOptions::default(), &mut (), |o| {
                    seen += 1;
                    o.index == 1
                });
                let ok = seen == 3 && kept.len() == 1 && kept[0].index == 1;
                end_child(if ok { 7 } else { 3 });
            }
            Side::Supervisor(mut parent) => {
                let status = parent.watch().expect("nothing is stuck");
                assert_eq!(
                    status.code(),
                    Some(7),
                    "the child's program ran: {status:?}"
                );
            }
        }
    }

    #[test]
    fn a_child_killed_by_a_signal_is_reported_as_such() {
        match fork(Duration::from_secs(1)).unwrap() {
            Side::Executor(_) => {
                // SAFETY: kills this (child) process.
                unsafe { libc::raise(libc::SIGKILL) };
                end_child(3);
            }
            Side::Supervisor(parent) => {
                let status = parent.wait();
                assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
            }
        }
    }
}
