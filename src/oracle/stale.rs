//! Stale reads: once a fence or DQBUF says a CAPTURE buffer is complete, a `check` of its contents
//! must find the job's output, not what was there before (the canary).
use super::{Finding, Kind};
use crate::exec::{BufId, ExecState, OpResult, Outcome};
use crate::program::{Op, Queue};
use std::collections::BTreeMap;

/// Tracks which buffers the kernel has said are complete, and how.
#[derive(Default)]
pub struct StaleOracle {
    complete: BTreeMap<BufId, String>,
    /// Findings so far.
    pub findings: Vec<Finding>,
}

fn ok_value(o: &Outcome) -> Option<i64> {
    match o.result {
        OpResult::Ok { value } => Some(value),
        _ => None,
    }
}

impl StaleOracle {
    /// Judge one op's outcome.
    pub fn after_op(&mut self, index: usize, op: &Op, o: &Outcome, st: &ExecState) {
        let Some(v) = ok_value(o) else { return };
        let detail = o.detail.as_deref().unwrap_or("");
        let buf = |h| {
            st.provenance
                .get(h)
                .copied()
                .filter(|b: &BufId| b.queue == Queue::Cap)
        };
        match op {
            // A fence that signalled without error says the buffer is written.
            Op::Wait { sync, .. } if v == 1 && detail.contains("status=1") => {
                if let Some(b) = buf(sync) {
                    self.complete
                        .insert(b, format!("op {index} `{op}` (fence signalled)"));
                }
            }
            Op::FenceInfo { sync } if v == 1 => {
                if let Some(b) = buf(sync) {
                    self.complete
                        .insert(b, format!("op {index} `{op}` (fence signalled: {detail})"));
                }
            }
            Op::Dqbuf {
                ctx,
                queue: Queue::Cap,
                ..
            } if !detail.contains("ERROR") => {
                let b = BufId {
                    ctx: *ctx,
                    queue: Queue::Cap,
                    index: v as u32,
                };
                self.complete
                    .insert(b, format!("op {index} `{op}` (DQBUF done)"));
            }
            Op::Qbuf {
                ctx,
                queue: Queue::Cap,
                index: i,
                ..
            } => {
                self.complete.remove(&BufId {
                    ctx: *ctx,
                    queue: Queue::Cap,
                    index: *i,
                });
            }
            Op::Check { map, byte } if v > 0 => {
                if let Some(b) = buf(map) {
                    if let Some(how) = self.complete.get(&b) {
                        let driver = st.driver_of(&b.ctx).unwrap_or("unknown").to_string();
                        let via = if how.contains("DQBUF") {
                            "DQBUF"
                        } else {
                            "fence"
                        };
                        self.findings.push(Finding::new(
                            Kind::StaleRead,
                            format!("stale read after {via} on {driver}"),
                            format!(
                                "op {index} `{op}`: {detail}, although {how} said CAPTURE buffer {} of {} was complete",
                                b.index, b.ctx
                            ),
                            Some(index),
                        ));
                        let _ = byte;
                    }
                }
            }
            _ => {}
        }
    }
}
