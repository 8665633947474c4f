//! Stale reads: once a fence or DQBUF says a CAPTURE buffer is complete, a `check` of its contents
//! must find the job's output, not what was there before (the canary).
//!
//! `check m byte=B` means "the buffer should hold B" (the expected output), unless B is the canary
//! last `fill`ed into that mapping: then it means "the canary should be gone", and only a buffer
//! that is still all canary is stale. A fence counts as saying "complete" only when its sync_file
//! was exported after the buffer's latest QBUF and holds a signalled producer (vb2) fence; a
//! signalled stub counts only where the driver's release fences are known off (a stock kernel,
//! the lab's switches), since the design publishes the fence at device_run, not at QBUF.
use super::{Finding, Kind};
use crate::exec::outcome::{Detail, SyncFacts};
use crate::exec::{BufId, ExecState, OpResult, Outcome};
use crate::program::{Handle, Op, Queue};
use std::collections::{BTreeMap, BTreeSet};

/// Tracks which buffers the kernel has said are complete, and how.
#[derive(Default)]
pub struct StaleOracle {
    complete: BTreeMap<BufId, String>,
    /// Content generation per buffer, raised by QBUF and by the program's own writes: a
    /// sync_file exported before the latest of them says nothing of what the buffer holds now.
    qgen: BTreeMap<BufId, u32>,
    queued: BTreeSet<BufId>,
    /// Sync file → (buffer, its QBUF count at export, queued at export).
    exports: BTreeMap<Handle, (BufId, u32, bool)>,
    /// Mapping → the canary byte last filled into it.
    canary: BTreeMap<Handle, u8>,
    /// Buffers the program wrote into while they were queued: their next DQBUF hands back what
    /// the device wrote before or after that write, so it says nothing about their contents.
    filled_while_queued: BTreeSet<BufId>,
    /// Handles of buffers freed by a later REQBUFS: their memory is no queue's any more.
    orphaned: BTreeSet<Handle>,
    /// Findings so far.
    pub findings: Vec<Finding>,
}

fn ok_value(o: &Outcome) -> Option<i64> {
    match o.result {
        OpResult::Ok { value } => Some(value),
        _ => None,
    }
}

/// Whether the driver's release fences are known switched off (its profile's module parameter
/// reads N).
fn fences_known_off(driver: &str) -> bool {
    crate::profile::ALL
        .iter()
        .find(|p| p.driver == driver)
        .and_then(|p| p.release_fences_param)
        .and_then(|param| std::fs::read_to_string(format!("/sys/module/{param}")).ok())
        .is_some_and(|v| v.trim() == "N")
}

impl StaleOracle {
    fn fence_says_complete(
        &self,
        sync: &Handle,
        facts: &SyncFacts,
        st: &ExecState,
    ) -> Option<BufId> {
        let (b, gen, queued) = *self.exports.get(sync)?;
        if self.orphaned.contains(sync) || !queued || self.qgen.get(&b).copied().unwrap_or(0) != gen
        {
            return None;
        }
        let producer = facts.fences.iter().any(|f| f.producer() && f.status == 1);
        let stub = !facts.fences.iter().any(|f| f.producer());
        let driver = st.driver_of(&b.ctx).unwrap_or("");
        (producer || (stub && fences_known_off(driver))).then_some(b)
    }

    /// Judge one op's outcome.
    pub fn after_op(&mut self, index: usize, op: &Op, o: &Outcome, st: &ExecState) {
        let Some(v) = ok_value(o) else { return };
        // Formatted only where it is read (a buffer's facts are kept raw: Detail::Buf).
        let detail = || o.detail_text().unwrap_or_default();
        let fences = o.detail.as_ref().and_then(Detail::fences);
        let cap = |h: &Handle| {
            st.provenance
                .get(h)
                .copied()
                .filter(|b: &BufId| b.queue == Queue::Cap)
        };
        match op {
            Op::ExportSyncFile { ret, .. } => {
                if let Some(b) = cap(ret) {
                    let gen = self.qgen.get(&b).copied().unwrap_or(0);
                    self.exports
                        .insert(*ret, (b, gen, self.queued.contains(&b)));
                }
            }
            // A fence that signalled without error says the buffer is written.
            Op::Wait { sync, .. } if v == 1 => {
                let Some(facts) = fences.filter(|f| f.signalled()) else {
                    return;
                };
                if let Some(b) = self.fence_says_complete(sync, facts, st) {
                    self.complete
                        .insert(b, format!("op {index} `{op}` (fence signalled)"));
                }
            }
            Op::FenceInfo { sync } if v == 1 => {
                let Some(facts) = fences else { return };
                if let Some(b) = self.fence_says_complete(sync, facts, st) {
                    self.complete
                        .insert(b, format!("op {index} `{op}` (fence signalled: {facts})"));
                }
            }
            Op::Dqbuf {
                ctx,
                queue: Queue::Cap,
                ..
            } => {
                let b = BufId {
                    ctx: *ctx,
                    queue: Queue::Cap,
                    index: v as u32,
                };
                self.queued.remove(&b);
                let overwritten = self.filled_while_queued.remove(&b);
                // A DQBUF's detail is always the returned buffer's facts.
                let error = matches!(&o.detail, Some(Detail::Buf(f)) if f.error());
                if !error && !overwritten {
                    self.complete
                        .insert(b, format!("op {index} `{op}` (DQBUF done)"));
                }
            }
            Op::Qbuf {
                ctx,
                queue: Queue::Cap,
                index: i,
                ..
            } => {
                let b = BufId {
                    ctx: *ctx,
                    queue: Queue::Cap,
                    index: *i,
                };
                self.complete.remove(&b);
                *self.qgen.entry(b).or_default() += 1;
                self.queued.insert(b);
                self.filled_while_queued.remove(&b);
            }
            Op::Streamoff {
                ctx,
                queue: Queue::Cap,
            } => self.queued.retain(|b| b.ctx != *ctx),
            Op::Reqbufs {
                ctx,
                queue: Queue::Cap,
                ..
            }
            | Op::RemoveBufs {
                ctx,
                queue: Queue::Cap,
                ..
            } => {
                for (h, b) in &st.provenance {
                    if b.ctx == *ctx && b.queue == Queue::Cap {
                        self.orphaned.insert(*h);
                    }
                }
                self.complete.retain(|b, _| b.ctx != *ctx);
                self.queued.retain(|b| b.ctx != *ctx);
            }
            // The program's own write: what the buffer holds now is not the device's, so an
            // earlier completion says nothing about it any more.
            Op::Fill { map, byte } => {
                self.canary.insert(*map, byte.0 as u8);
                if let Some(b) = cap(map) {
                    self.complete.remove(&b);
                    // Fences exported before this write speak of the device's earlier frame.
                    *self.qgen.entry(b).or_default() += 1;
                    if self.queued.contains(&b) {
                        self.filled_while_queued.insert(b);
                    }
                }
            }
            // A closed context frees its queues: its buffers are no queue's any more.
            Op::Close { h } => {
                for (m, b) in &st.provenance {
                    if b.ctx == *h && b.queue == Queue::Cap {
                        self.orphaned.insert(*m);
                    }
                }
                self.complete.retain(|b, _| b.ctx != *h);
                self.queued.retain(|b| b.ctx != *h);
            }
            Op::Check { map, byte } => {
                if self.orphaned.contains(map) {
                    return;
                }
                let Some(b) = cap(map) else { return };
                let Some(how) = self.complete.get(&b) else {
                    return;
                };
                let canary = self.canary.get(map) == Some(&(byte.0 as u8));
                // Against the canary: stale only if nothing was written; against the expected
                // output: stale if any byte differs.
                let stale = if canary { v == 0 } else { v > 0 };
                if stale {
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
                            "op {index} `{op}`: {}, although {how} said CAPTURE buffer {} of {} was complete",
                            detail(), b.index, b.ctx
                        ),
                        Some(index),
                    ));
                }
            }
            _ => {}
        }
    }
}
