//! The `stream` op: a client that keeps a context's MMAP buffers in flight, as a player or a
//! converter pipeline does, so that the other threads' chaos lands on live jobs and the node
//! stays busy. One op rather than a list of QBUF/DQBUF ops: it re-queues what comes back, not
//! what a generator guessed would, and it stops when the stream stalls instead of waiting out
//! every round.
use super::ops::{Buf, Done};
use super::outcome::{Detail, StreamFacts, StreamStop};
use super::{ExecState, OpResult};
use crate::program::{Handle, Queue};
use crate::uapi::ioctl;
use crate::uapi::v4l2::*;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Buffers per queue a client follows (higher indices are left alone).
const MAX_BUFFERS: usize = 32;

/// The pause after a round that got nothing back, so a stream that cannot move (queues off,
/// buffers held elsewhere) does not spin until its timeout.
const IDLE: Duration = Duration::from_millis(2);

/// The longest a client runs (its jobs times its timeout, at most this): its waits are each
/// capped at the longest wait, its whole life is not.
pub(super) const LONGEST: Duration = Duration::from_secs(60);

/// How often a client of other threads looks whether they are done while it waits.
const OTHERS_LOOK: Duration = Duration::from_millis(10);

impl ExecState {
    /// On a thread of clients only in a concurrent segment: every thread of the segment with
    /// other ops has finished.
    fn others_done(&self) -> bool {
        self.working
            .as_ref()
            .is_some_and(|w| w.load(std::sync::atomic::Ordering::SeqCst) == 0)
    }

    /// Run a client on `h` until it saw `jobs` CAPTURE buffers, or none came back for
    /// `timeout_ms`, or its budget (jobs x timeout, at most [`LONGEST`]) ran out. On a thread
    /// of `stream` ops only in a concurrent segment, instead of the `timeout_ms` rule: until
    /// every thread of the segment with other ops has finished (a client as long as the chaos
    /// it serves, which may stop its stream and start it again).
    pub(super) fn stream(
        &mut self,
        h: &Handle,
        jobs: u32,
        timeout_ms: u32,
    ) -> Result<Done, OpResult> {
        let c = self.ctx(h).clone();
        if c.queues
            .iter()
            .any(|q| q.memory != V4L2_MEMORY_MMAP || q.count == 0)
        {
            // A client of this shape needs MMAP buffers on both queues.
            return Err(OpResult::errno(Errno::EINVAL));
        }
        let fd = c.video.as_raw_fd();
        let counts = c.queues.map(|q| (q.count as usize).min(MAX_BUFFERS));
        let mut mine = [[false; MAX_BUFFERS]; 2];
        let stall = self.wait_ms(Some(timeout_ms));
        let t0 = Instant::now();
        let end = t0 + budget(stall, jobs);
        let mut last = t0;
        let mut f = StreamFacts {
            capture: 0,
            capture_errors: 0,
            output: 0,
            queued: 0,
            refused: 0,
            stop: StreamStop::Jobs,
        };
        loop {
            if f.capture >= jobs {
                f.stop = StreamStop::Jobs;
                break;
            }
            if self.deadline_fired() {
                f.stop = StreamStop::Deadline;
                break;
            }
            if self.others_done() {
                f.stop = StreamStop::Others;
                break;
            }
            for (qi, queue) in [(0, Queue::Out), (1, Queue::Cap)] {
                for (i, held) in mine[qi].iter_mut().enumerate().take(counts[qi]) {
                    if *held {
                        continue;
                    }
                    let mut b = Buf::to_queue(&c, queue, i as u32, V4L2_MEMORY_MMAP, None);
                    match b.call(fd, ioctl::qbuf) {
                        Ok(_) => {
                            *held = true;
                            f.queued += 1;
                        }
                        Err(_) => f.refused += 1,
                    }
                }
            }
            let now = Instant::now();
            // A client of other threads waits out a stopped stream (the others may start it
            // again) until they are done; alone, it gives up after its timeout.
            let give_up = match self.working {
                Some(_) => end,
                None => (last + stall).min(end),
            };
            let left = give_up.saturating_duration_since(now);
            if left.is_zero() {
                f.stop = if now >= end {
                    StreamStop::Budget
                } else {
                    StreamStop::Stalled
                };
                break;
            }
            // A client of other threads looks now and then whether they are done.
            let slice = match self.working {
                Some(_) => left.min(OTHERS_LOOK),
                None => left,
            };
            let revents = match poll(fd, slice) {
                Ok(r) => r,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(OpResult::errno(e)),
            };
            let got = dequeue(&c, fd, &mut mine, &mut f);
            if got {
                last = Instant::now();
            } else {
                // No progress: a STREAMOFF may have handed buffers back, or another thread
                // dequeued some. Ask the kernel which are still queued; those are not.
                resync(&c, fd, &counts, &mut mine);
                if !revents.is_empty() {
                    std::thread::sleep(IDLE.min(left));
                }
            }
        }
        Ok((
            OpResult::Ok {
                value: f.capture.into(),
            },
            Some(Detail::Stream(f)),
        ))
    }
}

/// A client's whole time: `jobs` times its stall timeout, at most [`LONGEST`].
pub(super) fn budget(stall: Duration, jobs: u32) -> Duration {
    stall.saturating_mul(jobs.max(1)).min(LONGEST)
}

/// poll() the node for either queue for up to `left`; empty on a time-out.
fn poll(fd: RawFd, left: Duration) -> nix::Result<PollFlags> {
    // SAFETY: the context (and so the fd) is held by the caller for the duration of the call.
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut pfd = [PollFd::new(bfd, PollFlags::POLLIN | PollFlags::POLLOUT)];
    // Rounded up: a poll of 0 ms in the last millisecond would spin.
    let ms = PollTimeout::try_from(left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut pfd, ms)? {
        0 => Ok(PollFlags::empty()),
        _ => Ok(pfd[0].revents().unwrap_or(PollFlags::empty())),
    }
}

/// Clear the held mark of every buffer QUERYBUF says is neither queued nor done (dequeued by
/// someone else, or handed back by a STREAMOFF), so the next round queues it again.
fn resync(c: &super::Ctx, fd: RawFd, counts: &[usize; 2], mine: &mut [[bool; MAX_BUFFERS]; 2]) {
    for (qi, queue) in [(0, Queue::Out), (1, Queue::Cap)] {
        for (i, held) in mine[qi].iter_mut().enumerate().take(counts[qi]) {
            if !*held {
                continue;
            }
            let mut b = Buf::new(c, queue, i as u32, V4L2_MEMORY_MMAP);
            if b.call(fd, ioctl::querybuf).is_ok()
                && b.b.flags & (V4L2_BUF_FLAG_QUEUED | V4L2_BUF_FLAG_DONE) == 0
            {
                *held = false;
            }
        }
    }
}

/// Dequeue everything both queues have done (the fd is non-blocking); true when anything came.
fn dequeue(
    c: &super::Ctx,
    fd: RawFd,
    mine: &mut [[bool; MAX_BUFFERS]; 2],
    f: &mut StreamFacts,
) -> bool {
    let mut got = false;
    for (qi, queue) in [(1, Queue::Cap), (0, Queue::Out)] {
        loop {
            let mut b = Buf::new(c, queue, 0, V4L2_MEMORY_MMAP);
            match b.call(fd, ioctl::dqbuf) {
                Ok(_) => {
                    got = true;
                    if let Some(held) = mine[qi].get_mut(b.b.index as usize) {
                        *held = false;
                    }
                    if qi == 1 {
                        f.capture += 1;
                        f.capture_errors += u32::from(b.b.flags & V4L2_BUF_FLAG_ERROR != 0);
                    } else {
                        f.output += 1;
                    }
                }
                // Nothing done (EAGAIN), the queue off (EINVAL) or broken: which buffers are
                // still queued is read back after a round without progress (`resync`).
                Err(_) => break,
            }
        }
    }
    got
}
