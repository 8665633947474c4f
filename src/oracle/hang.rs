//! Hangs: a published producer fence must signal in bounded time whatever userspace does next
//! (the dma_fence contract), and every ioctl must return. A wait that times out on a vb2 fence
//! gets a second, longer wait with no other op running; if the fence is still pending, that is
//! a hang, named by the fence.
use super::{Finding, Kind};
use crate::exec::fence_info;
use crate::exec::{ExecState, OpResult, Outcome};
use crate::program::Op;
use std::time::Duration;

/// Watches waits and blocking ioctls.
#[derive(Default)]
pub struct HangOracle {
    /// How long a published fence may stay pending after a program's own wait gave up.
    pub fence_deadline: Duration,
    /// Findings so far.
    pub findings: Vec<Finding>,
}

/// `vb2/vim2m-cap-22:0` entries of a fence_info detail: (timeline, status).
pub fn vb2_fences(detail: &str) -> Vec<(String, i32)> {
    let Some(list) = detail.split("fences=[").nth(1) else {
        return Vec::new();
    };
    list.trim_end_matches(']')
        .split_whitespace()
        .filter_map(|f| {
            let rest = f.strip_prefix("vb2/")?;
            let (tl, st) = rest.rsplit_once(':')?;
            Some((tl.to_string(), st.parse().ok()?))
        })
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
        if outcome.result != OpResult::TimedOut {
            return;
        }
        match op {
            Op::Wait { sync, .. } => {
                let Some(fd) = st.raw_fd(sync) else { return };
                let pending: Vec<String> = fence_info(fd)
                    .map(|(_, d)| {
                        vb2_fences(&d)
                            .into_iter()
                            .filter(|f| f.1 == 0)
                            .map(|f| f.0)
                            .collect()
                    })
                    .unwrap_or_default();
                if pending.is_empty() {
                    return; // not a producer fence of the code under test (e.g. sw_sync)
                }
                if poll_in(fd, self.fence_deadline) {
                    return; // slow, but it did signal
                }
                let info = fence_info(fd).map(|(_, d)| d).unwrap_or_default();
                let tl = super::ledger::stable_timeline(&pending[0]).to_string();
                let mut f = Finding::new(
                    Kind::Hang,
                    format!("release fence hang on {tl}"),
                    format!(
                        "op {index} `{op}` timed out; the fence was still pending {} s later with no \
                         other op running: {info}",
                        self.fence_deadline.as_secs_f32()
                    ),
                    Some(index),
                );
                f.fence_timelines = pending;
                self.findings.push(f);
            }
            Op::Dqbuf { .. } | Op::PollDmabuf { .. } => {} // waiting for userspace's own buffers
            _ => self.findings.push(Finding::new(
                Kind::Hang,
                format!("{} blocked", op.name()),
                format!(
                    "op {index} `{op}` did not return before its deadline; interrupted after {:?}",
                    outcome.duration
                ),
                Some(index),
            )),
        }
    }
}
