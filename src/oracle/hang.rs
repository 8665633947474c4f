//! Hangs: a published producer fence must signal in bounded time whatever userspace does next
//! (the dma_fence contract), and every ioctl must return. A wait that times out on a vb2 fence
//! gets a second, longer wait with no other op running; if the fence is still pending, that is
//! a hang, named by the fence. That second wait is a [`Probe`] the executor runs under its
//! watchdog: the oracle itself issues no ioctls.
use super::{Finding, Kind};
use crate::exec::outcome::SyncFacts;
use crate::exec::{ExecState, OpResult, Outcome, Probe, ProbeOutcome};
use crate::program::Op;
use std::time::Duration;

/// A timed-out op whose fences the oracle asked the executor to look at.
pub(super) struct Asked {
    index: usize,
    /// The op as the program says it, and its name.
    op: String,
    name: &'static str,
    duration: Duration,
    /// DMA_BUF_IOCTL_SYNC: nothing pending at all means it blocked on nothing.
    blocked_if_none: bool,
    probe: Probe,
    /// Handed to the executor.
    sent: bool,
}

/// Watches waits and blocking ioctls.
#[derive(Default)]
pub struct HangOracle {
    /// How long a published fence may stay pending after a program's own wait gave up.
    pub fence_deadline: Duration,
    /// Extra time a job may legitimately take: the longest transaction time the program set
    /// (vim2m's TRANS_TIME_MSEC, clamped to its range as the kernel clamps it), twice over.
    pub job_slack: Duration,
    pub(super) asked: Option<Asked>,
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

impl HangOracle {
    /// Judge one op's outcome.
    pub fn after_op(&mut self, index: usize, op: &Op, outcome: &Outcome, st: &ExecState) {
        if let (Op::SetCtrl { ctx, id, value, .. }, OpResult::Ok { .. }) = (op, &outcome.result) {
            self.note_ctrl(st.driver_of(ctx).unwrap_or(""), id.0, *value);
        }
        if outcome.result != OpResult::TimedOut {
            return;
        }
        let (of, blocked_if_none) = match op {
            Op::Wait { sync, .. } => (*sync, false),
            // DMA_BUF_IOCTL_SYNC waits for every fence of the dmabuf: look at which ones.
            Op::DmabufSync { dmabuf, .. } => (*dmabuf, true),
            Op::Dqbuf { .. } | Op::PollDmabuf { .. } => return, // userspace's own buffers
            _ => {
                let f = blocked(index, op.name(), &op.to_string(), outcome.duration());
                return self.findings.push(f);
            }
        };
        if st.raw_fd(&of).is_none() {
            return;
        }
        self.asked = Some(Asked {
            index,
            op: op.to_string(),
            name: op.name(),
            duration: outcome.duration(),
            blocked_if_none,
            probe: Probe {
                of,
                wait: self.fence_deadline + self.job_slack,
            },
            sent: false,
        });
    }

    /// The probe a timed-out op needs, once.
    pub fn probe(&mut self, index: usize) -> Option<Probe> {
        let a = self
            .asked
            .as_mut()
            .filter(|a| a.index == index && !a.sent)?;
        a.sent = true;
        Some(a.probe)
    }

    /// Judge what the probe saw: a producer fence still pending after the deadline, with no
    /// fence of the program's own (sw_sync) holding it, is a hang.
    pub fn after_probe(&mut self, index: usize, seen: &ProbeOutcome) {
        let Some(a) = self.asked.take().filter(|a| a.index == index) else {
            return;
        };
        let blocked_on_nothing = |detail: String| {
            Finding::new(
                Kind::Hang,
                format!("{} blocked", a.name),
                format!(
                    "op {index} `{}` did not return before its deadline with no fence pending: {detail}",
                    a.op
                ),
                Some(index),
            )
        };
        let facts = match &seen.before {
            Ok(f) => f,
            // No sync_file to look at: a dmabuf whose fences cannot be exported blocked on
            // nothing the oracle can name.
            Err(_) => {
                if a.blocked_if_none {
                    self.findings
                        .push(blocked(index, a.name, &a.op, a.duration));
                }
                return;
            }
        };
        if facts.fences.iter().any(|f| !f.producer() && f.pending()) {
            return; // the program's own fence (sw_sync) holds it
        }
        let pending: Vec<String> = facts
            .fences
            .iter()
            .filter(|f| f.producer() && f.pending())
            .map(|f| f.timeline.clone())
            .collect();
        if pending.is_empty() {
            if a.blocked_if_none {
                self.findings.push(blocked_on_nothing(facts.to_string()));
            }
            return;
        }
        if seen.signalled {
            return; // slow, but it did signal
        }
        let info = match &seen.after {
            Some(Ok(f)) => f.to_string(),
            Some(Err(e)) => format!("info: {e}"),
            None => String::new(),
        };
        let tl = super::ledger::stable_timeline(&pending[0]).to_string();
        let mut f = Finding::new(
            Kind::Hang,
            format!("release fence hang on {tl}"),
            format!(
                "op {index} `{}` timed out; the fence was still pending {} s later with no \
                 other op running: {info}",
                a.op,
                a.probe.wait.as_secs_f32()
            ),
            Some(index),
        )
        .breaking(super::Clause::Finite);
        f.fence_timelines = pending;
        self.findings.push(f);
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
}

/// Op `index` (`name`, written `op`) did not return before its deadline.
fn blocked(index: usize, name: &str, op: &str, duration: Duration) -> Finding {
    Finding::new(
        Kind::Hang,
        format!("{name} blocked"),
        format!(
            "op {index} `{op}` did not return before its deadline; interrupted after {duration:?}"
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
