//! Hangs: a published producer fence must signal in bounded time whatever userspace does next
//! (the dma_fence contract), and every ioctl must return. A wait that times out on a vb2 fence
//! gets a second, longer wait with no other op running; if the fence is still pending, that is
//! a hang, named by the fence.
use super::{Finding, Kind};
use crate::exec::fence_info;
use crate::exec::outcome::SyncFacts;
use crate::exec::{ExecState, OpResult, Outcome};
use crate::program::Op;
use std::time::Duration;

/// Watches waits and blocking ioctls.
#[derive(Default)]
pub struct HangOracle {
    /// How long a published fence may stay pending after a program's own wait gave up.
    pub fence_deadline: Duration,
    /// Extra time a job may legitimately take: the longest transaction time the program set
    /// (vim2m's TRANS_TIME_MSEC, clamped to its range as the kernel clamps it), twice over.
    pub job_slack: Duration,
    /// Findings so far.
    pub findings: Vec<Finding>,
}

/// The producer (vb2) fences of a sync_file: (timeline, status).
pub fn vb2_fences(facts: &SyncFacts) -> Vec<(String, i32)> {
    facts
        .fences
        .iter()
        .filter(|f| f.producer())
        .map(|f| (f.timeline.clone(), f.status))
        .collect()
}

fn poll_in(fd: i32, wait: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let end = std::time::Instant::now() + wait;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r > 0 {
            return true;
        }
        if r == 0 || std::time::Instant::now() >= end {
            return false;
        }
    }
}

impl HangOracle {
    /// Judge one op's outcome.
    pub fn after_op(&mut self, index: usize, op: &Op, outcome: &Outcome, st: &ExecState) {
        if let (Op::SetCtrl { ctx, id, value, .. }, OpResult::Ok { .. }) = (op, &outcome.result) {
            self.note_ctrl(st.driver_of(ctx).unwrap_or(""), id.0, *value);
        }
        if outcome.result != OpResult::TimedOut {
            return;
        }
        match op {
            Op::Wait { sync, .. } => {
                let Some(fd) = st.raw_fd(sync) else { return };
                self.judge_fences(index, op, fd, false);
            }
            // DMA_BUF_IOCTL_SYNC waits for every fence of the dmabuf: look at which ones.
            Op::DmabufSync { dmabuf, .. } => {
                let Some(dfd) = st.raw_fd(dmabuf) else { return };
                let mut e = crate::uapi::dmabuf::dma_buf_export_sync_file {
                    flags: crate::uapi::dmabuf::DMA_BUF_SYNC_RW as u32,
                    fd: -1,
                };
                if crate::uapi::ioctl::export_sync_file(dfd, &mut e).is_err() {
                    return self.findings.push(blocked(index, op, outcome));
                }
                // A bad reply here is the executor's to report when the program exports.
                let Ok(sync) = st.adopt_fd(e.fd, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE") else {
                    return self.findings.push(blocked(index, op, outcome));
                };
                self.judge_fences(index, op, std::os::fd::AsRawFd::as_raw_fd(&sync), true);
            }
            Op::Dqbuf { .. } | Op::PollDmabuf { .. } => {} // waiting for userspace's own buffers
            _ => self.findings.push(blocked(index, op, outcome)),
        }
    }

    /// A transaction time the program set stretches how long its jobs may take.
    fn note_ctrl(&mut self, driver: &str, id: u32, value: i64) {
        let Some(c) = crate::profile::ALL
            .iter()
            .filter(|p| p.driver == driver)
            .flat_map(|p| p.controls.iter())
            .find(|c| c.id == id && c.name == "TRANS_TIME_MSEC")
        else {
            return;
        };
        let ms = value.clamp(c.min, c.max) as u64;
        self.job_slack = self.job_slack.max(Duration::from_millis(2 * ms));
    }

    /// A wait on `fd`'s fences timed out: a producer fence still pending after the deadline is a
    /// hang; a fence of the program's own (sw_sync) is not the code under test's. With
    /// `blocked_if_none`, nothing pending at all means the op blocked on nothing: a kernel bug.
    fn judge_fences(&mut self, index: usize, op: &Op, fd: i32, blocked_if_none: bool) {
        let facts = fence_info(fd);
        let detail = match &facts {
            Ok(f) => f.to_string(),
            Err(e) => format!("info: {e}"),
        };
        let fences = facts.map(|f| f.fences).unwrap_or_default();
        if fences.iter().any(|f| !f.producer() && f.pending()) {
            return; // the program's own fence (sw_sync) holds it
        }
        let pending: Vec<String> = fences
            .into_iter()
            .filter(|f| f.producer() && f.pending())
            .map(|f| f.timeline)
            .collect();
        if pending.is_empty() {
            if blocked_if_none {
                self.findings.push(Finding::new(
                    Kind::Hang,
                    format!("{} blocked", op.name()),
                    format!("op {index} `{op}` did not return before its deadline with no fence pending: {detail}"),
                    Some(index),
                ));
            }
            return;
        }
        let deadline = self.fence_deadline + self.job_slack;
        if poll_in(fd, deadline) {
            return; // slow, but it did signal
        }
        let info = fence_info(fd).map(|f| f.to_string()).unwrap_or_default();
        let tl = super::ledger::stable_timeline(&pending[0]).to_string();
        let mut f = Finding::new(
            Kind::Hang,
            format!("release fence hang on {tl}"),
            format!(
                "op {index} `{op}` timed out; the fence was still pending {} s later with no \
                 other op running: {info}",
                deadline.as_secs_f32()
            ),
            Some(index),
        );
        f.fence_timelines = pending;
        self.findings.push(f);
    }
}

fn blocked(index: usize, op: &Op, outcome: &Outcome) -> Finding {
    Finding::new(
        Kind::Hang,
        format!("{} blocked", op.name()),
        format!(
            "op {index} `{op}` did not return before its deadline; interrupted after {:?}",
            outcome.duration()
        ),
        Some(index),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_transaction_time_stretches_the_fence_deadline_as_the_kernel_clamps_it() {
        let mut h = HangOracle::default();
        h.note_ctrl("vim2m", 0x0098_0914, 1); // HFLIP: no effect
        assert_eq!(h.job_slack, Duration::ZERO);
        h.note_ctrl("vim2m", 0x0098_1900, 300);
        assert_eq!(h.job_slack, Duration::from_millis(600));
        // A corrupted value is clamped to the control's maximum (10001 ms), as S_CTRL does.
        h.note_ctrl("vim2m", 0x0098_1900, 1_539_087_087);
        assert_eq!(h.job_slack, Duration::from_millis(20_002));
        h.note_ctrl("vim2m", 0x0098_1900, 5); // the longest so far stays
        assert_eq!(h.job_slack, Duration::from_millis(20_002));
        h.note_ctrl("visl", 0x0098_1900, 300); // not a visl control
        assert_eq!(h.job_slack, Duration::from_millis(20_002));
    }
}
