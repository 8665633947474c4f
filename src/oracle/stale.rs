//! Stale reads: once a fence or DQBUF says a CAPTURE buffer is complete, a `check` of its contents
//! must find the job's output, not what was there before (the canary).
//!
//! `check m byte=B` means "the buffer should hold B" (the expected output), unless B is the canary
//! last `fill`ed into that mapping: then it means "the canary should be gone", and only a buffer
//! that is still all canary is stale.
//!
//! What says "complete" is judged from the fence contract and from what any kernel shows, never
//! from knowledge of the lab (no module parameter is read):
//! - DQBUF returned the buffer without ERROR.
//! - A sync_file exported after the buffer's latest QBUF and `fill` holds a producer (vb2) fence
//!   that signalled without error: the fence must not signal before the data is written.
//! - A sync_file that says nothing is pending (an already-signalled stub, or only signalled
//!   fences) was exported **after the job writing the buffer had started**: from then on every
//!   consumer's implicit sync must see that write. The design legitimately returns a stub between
//!   QBUF and `device_run`, so "started" must be certain, and it is derived from the program's
//!   own ops: an op (QBUF or STREAMON) returned that made the context ready to run a job (both
//!   queues streaming, as many buffers queued on each as the driver's `job_ready` asks, per its
//!   profile's [`JobReady`]) while no other job of the node could have been queued or running.
//!   The m2m core then calls `device_run` before that ioctl returns (`v4l2_m2m_try_schedule` →
//!   `v4l2_m2m_try_run`), on the oldest CAPTURE buffer queued, which is the one judged. "No other
//!   job" holds when it is the context's first job since both its queues last stopped (STREAMOFF
//!   waits for a running job), every other context of this program on the node is stopped or has
//!   never been ready, no other program of this process had a context open on the node from
//!   before that op to after it (the executor's per-node count), and the model of the context's
//!   queues is exact: any op it does not follow (an error on a queue op, a request, QBUF flags, a
//!   raw queue number) leaves that queue unjudged until it is stopped again. A check that then
//!   finds no frame is a stale read once the program sees that the job had not already ended
//!   in ERROR before the export (a job that failed early leaves the canary, and then the stub is
//!   right): a DQBUF returns the buffer without ERROR, or a later check finds the frame written.
//!   The finding names the op that showed it, so a shrunk program keeps it. A later job's start
//!   is not judged: the buffer before it may have completed while its job has not yet finished
//!   (`buf_done` comes before `job_finish`), so the next `device_run` may still be to come. The
//!   oracle assumes no other process uses the node, as the kernel-wide oracles do.
use super::{Clause, Finding, Kind};
use crate::exec::outcome::{Detail, SyncFacts};
use crate::exec::{BufId, ExecState, OpResult, Outcome};
use crate::profile::JobReady;
use crate::program::{Arg, Handle, Op, Queue, SyncPhase};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A sync_file exported from a CAPTURE buffer.
#[derive(Clone, Copy)]
struct Export {
    buf: BufId,
    /// The buffer's content generation at export.
    gen: u32,
    /// Queued at export.
    queued: bool,
    /// The op that had started the job writing the buffer, when one had before the export.
    started: Option<usize>,
}

/// One context's queues as far as the program's own ops tell them.
#[derive(Clone, Debug, Default)]
struct Jobs {
    /// [OUTPUT, CAPTURE] streaming.
    streaming: [bool; 2],
    /// OUTPUT buffers queued since that queue last emptied (exact while no job may have run).
    out_queued: u32,
    /// CAPTURE buffers queued since that queue last emptied, oldest first (the order jobs take
    /// them in).
    cap_line: VecDeque<u32>,
    /// A job may be queued or running, or may have taken buffers, since both queues last stopped.
    may_run: bool,
    /// [OUTPUT, CAPTURE]: an op the model does not follow touched the queue since it last emptied.
    lost: [bool; 2],
    /// Buffers a job needs on each queue (vim2m's TRANS_NUM_BUFS), 0 when not modelled.
    per_job: u32,
}

impl Jobs {
    fn ready(&self) -> bool {
        let n = self.per_job.max(1);
        self.streaming == [true; 2] && self.out_queued >= n && self.cap_line.len() >= n as usize
    }

    /// Whether this context could have a job queued or running.
    fn may_be_busy(&self) -> bool {
        self.streaming == [true; 2] && (self.may_run || self.lost != [false; 2])
    }

    /// Queue `q` emptied (STREAMOFF, REQBUFS): it is known again.
    fn emptied(&mut self, q: usize) {
        self.streaming[q] = false;
        self.lost[q] = false;
        if q == 0 {
            self.out_queued = 0;
        } else {
            self.cap_line.clear();
        }
        if self.streaming == [false; 2] {
            // STREAMOFF waited for any running job: none can run until both stream again.
            self.may_run = false;
        } else if self.may_run {
            // A job may have taken buffers of the other queue.
            self.lost[1 - q] = true;
        }
    }

    /// A raw queue number the kernel took: assume the worst until both queues stop.
    fn untracked(&mut self) {
        self.streaming = [true; 2];
        self.lost = [true; 2];
        self.may_run = true;
    }
}

fn qi(q: Queue) -> Option<usize> {
    match q {
        Queue::Out => Some(0),
        Queue::Cap => Some(1),
        Queue::Raw(_) => None,
    }
}

/// What said a buffer was complete, in words for the evidence.
struct Said {
    how: String,
    via: &'static str,
    /// The fence clause a stale read after this breaks (none for DQBUF: V4L2's own promise).
    clause: Option<Clause>,
    /// Said by a sync_file holding no producer fence, exported after the job started: true only
    /// once the job is seen not to have ended in ERROR before the export.
    by_stub: bool,
}

/// Tracks which buffers the kernel has said are complete, and how.
#[derive(Default)]
pub struct StaleOracle {
    complete: BTreeMap<BufId, Said>,
    /// Content generation per buffer, raised by QBUF and by the program's own writes: a
    /// sync_file exported before the latest of them says nothing of what the buffer holds now.
    qgen: BTreeMap<BufId, u32>,
    queued: BTreeSet<BufId>,
    exports: BTreeMap<Handle, Export>,
    /// Mapping → the canary byte last filled into it.
    canary: BTreeMap<Handle, u8>,
    /// Buffer → the canary byte last filled into it, through any of its mappings.
    buf_canary: BTreeMap<BufId, u8>,
    /// Buffers the program wrote into while they were queued: their next DQBUF hands back what
    /// the device wrote before or after that write, so it says nothing about their contents.
    filled_while_queued: BTreeSet<BufId>,
    /// Handles of buffers freed by a later REQBUFS: their memory is no queue's any more.
    orphaned: BTreeSet<Handle>,
    /// Contexts the program opened, and their queues.
    jobs: BTreeMap<Handle, Jobs>,
    /// V4L2 mappings (of a context's buffer, not of a dmabuf) → their context. A mapping keeps
    /// the context's file: after `close` the context, and any job of it, live on.
    v4l2_maps: BTreeMap<Handle, Handle>,
    /// Contexts closed while a V4L2 mapping of them lived: their jobs may still run, unseen.
    zombies: BTreeSet<Handle>,
    /// Buffer → (its content generation, the op) where the job writing it certainly started.
    started: BTreeMap<BufId, (u32, usize)>,
    /// Context → its node's (other programs' contexts, contexts ever opened) after the last op.
    node_seen: BTreeMap<Handle, (u32, u64)>,
    /// Stale reads after a stub, awaiting proof that the job had not already ended in ERROR
    /// before the export (then the stub is right and the canary stays): buffer → (its
    /// generation, the evidence so far).
    unconfirmed: BTreeMap<BufId, (u32, String, &'static str)>,
    /// Set once ops of the program ran concurrently: what the oracle knows of the queues (which
    /// job certainly started, which buffer was written when) assumes one order of effects, and
    /// threads make the order of outcomes a different one. It judges no later op.
    pub blind: bool,
    /// Findings so far.
    pub findings: Vec<Finding>,
}

fn ok_value(o: &Outcome) -> Option<i64> {
    match o.result {
        OpResult::Ok { value } => Some(value),
        _ => None,
    }
}

/// A CAPTURE buffer `h` (a dmabuf, mapping or sync_file) stands for.
fn capture_of(st: &ExecState, h: &Handle) -> Option<BufId> {
    st.provenance
        .get(h)
        .copied()
        .filter(|b| b.queue == Queue::Cap)
}

/// The evidence's words for op `at`, which started the job: why "started" is certain.
fn only_job(at: usize) -> String {
    format!("op {at} had started the job writing it, the only job its node could run")
}

/// "a signalled stub" or "only signalled fences": what a sync_file saying nothing pending held.
fn nothing_pending(facts: &SyncFacts) -> &'static str {
    if facts.fences.iter().all(|f| f.driver == "stub") {
        "a signalled stub"
    } else {
        "only signalled fences"
    }
}

impl StaleOracle {
    fn fence_says_complete(&self, sync: &Handle, facts: &SyncFacts) -> Option<BufId> {
        let e = *self.exports.get(sync)?;
        if self.orphaned.contains(sync)
            || !e.queued
            || self.qgen.get(&e.buf).copied().unwrap_or(0) != e.gen
        {
            return None;
        }
        let producer = facts.fences.iter().any(|f| f.producer() && f.status == 1);
        (facts.signalled() && (producer || e.started.is_some())).then_some(e.buf)
    }

    /// Judge one op's outcome.
    pub fn after_op(&mut self, index: usize, op: &Op, o: &Outcome, st: &ExecState) {
        if self.blind {
            return;
        }
        // A client queued and dequeued buffers in an order the model does not see (which job
        // wrote which buffer when): like threads, it ends the judging.
        if matches!(op, Op::Stream { .. }) && !matches!(o.result, OpResult::Skipped { .. }) {
            self.blind = true;
            return;
        }
        let before = std::mem::take(&mut self.node_seen);
        // Contents first: a QBUF raises its buffer's generation before a start it makes is noted.
        if let Some(v) = ok_value(o) {
            self.contents(index, op, o, v, st);
        }
        self.queues(index, op, o, st, &before);
        self.node_seen = self
            .jobs
            .keys()
            .filter_map(|c| Some((*c, st.foreign_users(c)?)))
            .collect();
    }

    /// Follow the queues of the program's contexts, and note where a job certainly started.
    fn queues(
        &mut self,
        index: usize,
        op: &Op,
        o: &Outcome,
        st: &ExecState,
        before: &BTreeMap<Handle, (u32, u64)>,
    ) {
        let ok = matches!(o.result, OpResult::Ok { .. });
        let ran = !matches!(o.result, OpResult::Skipped { .. });
        match op {
            Op::Open { ret, .. } if ok => {
                let per_job = st
                    .driver_of(ret)
                    .and_then(|d| crate::profile::ALL.iter().find(|p| p.driver == d))
                    .map_or(0, |p| match p.job_ready {
                        JobReady::Buffers | JobReady::BuffersPerCtrl(_) => 1,
                        JobReady::Unknown => 0,
                    });
                self.jobs.insert(
                    *ret,
                    Jobs {
                        per_job,
                        ..Jobs::default()
                    },
                );
            }
            Op::Close { h } if ran => {
                // Closing waits for the context's running job and its state goes with it,
                // unless a mapping keeps its file open: then the context lives on.
                self.jobs.remove(h);
                if self.v4l2_maps.values().any(|c| c == h) {
                    self.zombies.insert(*h);
                }
            }
            Op::Mmap { ctx, ret, .. } if ok => {
                self.v4l2_maps.insert(*ret, *ctx);
            }
            Op::Munmap { h } if ran => {
                if let Some(ctx) = self.v4l2_maps.remove(h) {
                    if !self.v4l2_maps.values().any(|c| *c == ctx) {
                        self.zombies.remove(&ctx);
                    }
                }
            }
            // A control set in a request applies only when the request runs.
            Op::SetCtrl {
                ctx,
                id,
                value,
                request: None,
            } if ok => {
                let Some(j) = self.jobs.get_mut(ctx) else {
                    return;
                };
                let ctrl = st
                    .driver_of(ctx)
                    .and_then(|d| crate::profile::ALL.iter().find(|p| p.driver == d))
                    .and_then(|p| match p.job_ready {
                        JobReady::BuffersPerCtrl(c) if c == id.0 => {
                            p.controls.iter().find(|x| x.id == c)
                        }
                        _ => None,
                    });
                if let (Some(c), true) = (ctrl, j.per_job > 0) {
                    j.per_job = (*value).clamp(c.min, c.max) as u32;
                }
            }
            Op::Qbuf {
                ctx,
                queue,
                index: i,
                request,
                flags,
                ..
            } if ran => {
                let Some(j) = self.jobs.get_mut(ctx) else {
                    return;
                };
                let Some(q) = qi(*queue) else {
                    if ok {
                        j.untracked();
                    }
                    return;
                };
                // Not queued now (a request), or queued in a way the model does not follow.
                if !ok || request.is_some() || flags.is_some() {
                    j.lost[q] = true;
                    return;
                }
                if q == 0 {
                    j.out_queued += 1;
                } else {
                    j.cap_line.push_back(*i);
                }
                self.maybe_start(index, ctx, st, before);
            }
            Op::Streamon { ctx, queue } if ran => {
                let Some(j) = self.jobs.get_mut(ctx) else {
                    return;
                };
                match (qi(*queue), ok) {
                    (Some(q), true) => {
                        j.streaming[q] = true;
                        self.maybe_start(index, ctx, st, before);
                    }
                    (Some(q), false) => j.lost[q] = true,
                    (None, true) => j.untracked(),
                    (None, false) => {} // the type was refused before anything happened
                }
            }
            Op::Streamoff { ctx, queue } if ran => {
                let Some(j) = self.jobs.get_mut(ctx) else {
                    return;
                };
                match (qi(*queue), ok) {
                    (Some(q), true) => j.emptied(q),
                    (Some(q), false) => j.lost[q] = true,
                    (None, true) => j.untracked(),
                    (None, false) => {}
                }
            }
            Op::Dqbuf { ctx, queue, .. } if ok => {
                let Some(j) = self.jobs.get_mut(ctx) else {
                    return;
                };
                let v = ok_value(o).unwrap_or(-1);
                match qi(*queue) {
                    // Only a job returns a buffer while streaming; none had run: not followed.
                    Some(q) if !j.may_run => j.lost[q] = true,
                    Some(0) => j.out_queued = j.out_queued.saturating_sub(1),
                    Some(_) => j.cap_line.retain(|&x| i64::from(x) != v),
                    None => j.untracked(),
                }
            }
            Op::Reqbufs { ctx, queue, .. } if ran => {
                let Some(j) = self.jobs.get_mut(ctx) else {
                    return;
                };
                match (qi(*queue), ok) {
                    // REQBUFS refuses a streaming queue (EBUSY): it freed every buffer.
                    (Some(q), true) if !j.streaming[q] => j.emptied(q),
                    // A failed REQBUFS may have freed the old buffers before failing.
                    (Some(q), _) => j.lost[q] = true,
                    (None, true) => j.untracked(),
                    (None, false) => {}
                }
            }
            Op::CreateBufs { ctx, queue, .. } | Op::RemoveBufs { ctx, queue, .. } if ok => {
                if let (Some(j), None) = (self.jobs.get_mut(ctx), qi(*queue)) {
                    j.untracked();
                }
            }
            _ => {}
        }
    }

    /// `ctx` may just have become ready: if this is certainly the start of its job, note which
    /// buffer that job writes.
    fn maybe_start(
        &mut self,
        index: usize,
        ctx: &Handle,
        st: &ExecState,
        before: &BTreeMap<Handle, (u32, u64)>,
    ) {
        let Some(j) = self.jobs.get(ctx) else { return };
        if !j.ready() {
            return;
        }
        let first = !j.may_run && j.lost == [false; 2] && j.per_job > 0;
        let front = j.cap_line.front().copied();
        if let Some(j) = self.jobs.get_mut(ctx) {
            j.may_run = true;
        }
        if !first {
            return;
        }
        // A context closed under a live mapping may still run jobs on any node: not idle.
        let others_idle = self.zombies.is_empty()
            && st.res.keys().filter(|h| *h != ctx).all(|h| {
                !st.same_node(ctx, h) || self.jobs.get(h).is_some_and(|o| !o.may_be_busy())
            });
        let alone = matches!(
            (before.get(ctx), st.foreign_users(ctx)),
            (Some((0, a)), Some((0, b))) if *a == b
        );
        if let (true, true, Some(i)) = (others_idle, alone, front) {
            let b = BufId {
                ctx: *ctx,
                queue: Queue::Cap,
                index: i,
            };
            // QBUF of this buffer raises its generation before this runs.
            let gen = self.qgen.get(&b).copied().unwrap_or(0);
            self.started.insert(b, (gen, index));
        }
    }

    /// Judge what the kernel said of the buffers' contents, and the checks.
    fn contents(&mut self, index: usize, op: &Op, o: &Outcome, v: i64, st: &ExecState) {
        // Formatted only where it is read (a buffer's facts are kept raw: Detail::Buf).
        let detail = || o.detail_text().unwrap_or_default();
        let fences = o.detail.as_ref().and_then(Detail::fences);
        let cap = |h: &Handle| capture_of(st, h);
        match op {
            Op::ExportSyncFile { ret, dir, dmabuf } => {
                // A dmabuf of a buffer a later REQBUFS freed keeps the old memory: no job of
                // the queue writes it, whatever index it had.
                if self.orphaned.contains(dmabuf) {
                    self.orphaned.insert(*ret);
                    return;
                }
                let Some(b) = cap(ret) else { return };
                let gen = self.qgen.get(&b).copied().unwrap_or(0);
                let queued = self.queued.contains(&b);
                let started = self.started_now(&b);
                self.exports.insert(
                    *ret,
                    Export {
                        buf: b,
                        gen,
                        queued,
                        started,
                    },
                );
                // Exported after the job writing the buffer started, and nothing pending: every
                // consumer trusting it reads what is there before the frame.
                let (Some(facts), Some(at)) = (fences, started) else {
                    return;
                };
                let producer_pending = facts.fences.iter().any(|f| f.producer());
                if facts.signalled() && !producer_pending {
                    let dir = dir.to_text().unwrap_or_default();
                    self.complete.entry(b).or_insert(Said {
                        how: format!(
                            "op {index} `{op}` (stale read: export_sync_file({dir}) returned {} \
                             while the frame was being written: {facts}; {})",
                            nothing_pending(facts),
                            only_job(at)
                        ),
                        via: "fence",
                        clause: Some(Clause::SeesWrite),
                        by_stub: true,
                    });
                }
            }
            // The other ways a consumer asks the dmabuf for implicit sync: poll() said ready,
            // or DMA_BUF_IOCTL_SYNC's START returned, after the job writing the buffer had
            // started. Either may have waited for a fence, or seen nothing to wait for; only a
            // check that then finds no frame tells, once the job is seen not to have ended in
            // ERROR (as for a stub).
            Op::PollDmabuf { dmabuf, events, .. }
                if (v as u32 & events.raw()) != 0 && !self.orphaned.contains(dmabuf) =>
            {
                let (pin, pout) = (libc::POLLIN as u32, libc::POLLOUT as u32);
                let name = match (events.raw() & pin != 0, events.raw() & pout != 0) {
                    (true, true) => "POLLIN|POLLOUT",
                    (true, false) => "POLLIN",
                    _ => "POLLOUT",
                };
                self.ready_while_written(
                    index,
                    op,
                    dmabuf,
                    &format!("poll({name}) said ready"),
                    "poll",
                    st,
                );
            }
            Op::DmabufSync {
                dmabuf,
                phase: SyncPhase::Start,
                ..
            } if !self.orphaned.contains(dmabuf) => {
                self.ready_while_written(
                    index,
                    op,
                    dmabuf,
                    "DMA_BUF_IOCTL_SYNC(START) returned",
                    "DMA_BUF_IOCTL_SYNC",
                    st,
                );
            }
            // A fence that signalled without error says the buffer is written.
            Op::Wait { sync, .. } | Op::FenceInfo { sync } if v == 1 => {
                let Some(facts) = fences else { return };
                let Some(b) = self.fence_says_complete(sync, facts) else {
                    return;
                };
                let producer = facts.fences.iter().any(|f| f.producer());
                let how = if producer {
                    format!("op {index} `{op}` (fence signalled: {facts})")
                } else {
                    let at = self.exports[sync].started.unwrap_or(0);
                    format!(
                        "op {index} `{op}` (stale read: a sync_file exported while the frame was \
                         being written holds {}: {facts}; {})",
                        nothing_pending(facts),
                        only_job(at)
                    )
                };
                let said = Said {
                    how,
                    via: "fence",
                    clause: Some(if producer {
                        Clause::SignalsAfterData
                    } else {
                        Clause::SeesWrite
                    }),
                    by_stub: !producer,
                };
                if producer {
                    self.complete.insert(b, said);
                } else {
                    self.complete.entry(b).or_insert(said);
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
                let gen = self.qgen.get(&b).copied().unwrap_or(0);
                if let Some((g, evidence, via)) = self.unconfirmed.remove(&b) {
                    // Done without ERROR: the job wrote the frame after the check found none,
                    // so it was still running at the export.
                    if g == gen && !error {
                        self.stale_after_stub(b, st, evidence, via, index, op);
                    }
                }
                if !error && !overwritten {
                    self.complete.insert(
                        b,
                        Said {
                            how: format!("op {index} `{op}` (DQBUF done)"),
                            via: "DQBUF",
                            clause: None,
                            by_stub: false,
                        },
                    );
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
            } => self.freed(ctx, .., st),
            // REMOVE_BUFS frees only the buffers of its range, and only dequeued ones (the
            // kernel refuses the whole call otherwise): the queue's other buffers live on.
            Op::RemoveBufs {
                ctx,
                queue: Queue::Cap,
                index: i,
                count,
            } => self.freed(ctx, *i..i.saturating_add(*count), st),
            // The program's own write: what the buffer holds now is not the device's, so an
            // earlier completion says nothing about it any more.
            Op::Fill { map, byte } => {
                self.canary.insert(*map, byte.0 as u8);
                if let Some(b) = cap(map) {
                    self.buf_canary.insert(b, byte.0 as u8);
                    self.complete.remove(&b);
                    // Fences exported before this write speak of the device's earlier frame.
                    *self.qgen.entry(b).or_default() += 1;
                    if self.queued.contains(&b) {
                        self.filled_while_queued.insert(b);
                    }
                }
            }
            // A closed context frees its queues: its buffers are no queue's any more.
            Op::Close { h } => self.freed(h, .., st),
            Op::Check { map, byte } => {
                if self.orphaned.contains(map) {
                    return;
                }
                let Some(b) = cap(map) else { return };
                let canary = self.canary.get(map) == Some(&(byte.0 as u8));
                // Against the canary: stale only if nothing was written; against the expected
                // output: stale if any byte differs.
                let stale = if canary { v == 0 } else { v > 0 };
                let gen = self.qgen.get(&b).copied().unwrap_or(0);
                // The canary last written into the buffer, through any mapping of it, gone:
                // something wrote the buffer since (a check against an older canary of another
                // mapping differs from the newer one without any write).
                // Or the expected output found whole.
                let written = if self.buf_canary.get(&b) == Some(&(byte.0 as u8)) {
                    v > 0
                } else {
                    !canary && v == 0
                };
                if written {
                    if let Some((g, evidence, via)) = self.unconfirmed.remove(&b) {
                        // Written since the check that found nothing: the job was still
                        // running then, and so at the export.
                        if g == gen {
                            self.stale_after_stub(b, st, evidence, via, index, op);
                        }
                    }
                }
                let Some(said) = self.complete.get(&b) else {
                    return;
                };
                if stale && said.by_stub {
                    let evidence = format!(
                        "op {index} `{op}`: {}, although {} said CAPTURE buffer {} of {} was complete",
                        detail(),
                        said.how,
                        b.index,
                        b.ctx
                    );
                    self.unconfirmed
                        .entry(b)
                        .or_insert((gen, evidence, said.via));
                } else if stale {
                    let driver = st.driver_of(&b.ctx).unwrap_or("unknown").to_string();
                    // A producer fence that signalled without error before the frame was
                    // there is a bug of its own (clause 2), not the missing fence of clause 1.
                    let title = match said.clause {
                        Some(Clause::SignalsAfterData) => {
                            format!(
                                "release fence signalled before the frame was written on {driver}"
                            )
                        }
                        _ => format!("stale read after {} on {driver}", said.via),
                    };
                    let mut f = Finding::new(
                        Kind::StaleRead,
                        title,
                        format!(
                            "op {index} `{op}`: {}, although {} said CAPTURE buffer {} of {} was complete",
                            detail(), said.how, b.index, b.ctx
                        ),
                        Some(index),
                    );
                    f.clause = said.clause;
                    self.findings.push(f);
                }
            }
            _ => {}
        }
    }

    /// CAPTURE buffers `range` of `ctx` were freed (REQBUFS, REMOVE_BUFS, close): their
    /// handles' memory is no queue's any more.
    fn freed(&mut self, ctx: &Handle, range: impl std::ops::RangeBounds<u32>, st: &ExecState) {
        let gone = |b: &BufId| b.ctx == *ctx && b.queue == Queue::Cap && range.contains(&b.index);
        for (h, b) in &st.provenance {
            if gone(b) {
                self.orphaned.insert(*h);
            }
        }
        self.complete.retain(|b, _| !gone(b));
        self.queued.retain(|b| !gone(b));
    }

    /// The op that started the job writing `b` as it is now (its current generation, still
    /// queued), when one certainly did.
    fn started_now(&self, b: &BufId) -> Option<usize> {
        let gen = self.qgen.get(b).copied().unwrap_or(0);
        self.started
            .get(b)
            .filter(|(g, _)| *g == gen && self.queued.contains(b))
            .map(|(_, i)| *i)
    }

    /// Op `index` on `dmabuf` told its consumer the buffer was ready (`what`): if the job
    /// writing the buffer had certainly started, that is a "complete" to judge by a later check.
    fn ready_while_written(
        &mut self,
        index: usize,
        op: &Op,
        dmabuf: &Handle,
        what: &str,
        via: &'static str,
        st: &ExecState,
    ) {
        let Some(b) = capture_of(st, dmabuf) else {
            return;
        };
        let Some(at) = self.started_now(&b) else {
            return;
        };
        self.complete.entry(b).or_insert(Said {
            how: format!(
                "op {index} `{op}` (stale read: {what} while the frame was being written; {})",
                only_job(at)
            ),
            via,
            clause: Some(Clause::SeesWrite),
            by_stub: true,
        });
    }

    /// A stale read after a stub, confirmed by op `index`: the frame came after the check.
    fn stale_after_stub(
        &mut self,
        b: BufId,
        st: &ExecState,
        evidence: String,
        via: &str,
        index: usize,
        op: &Op,
    ) {
        let driver = st.driver_of(&b.ctx).unwrap_or("unknown").to_string();
        self.findings.push(
            Finding::new(
                Kind::StaleRead,
                format!("stale read after {via} on {driver}"),
                format!(
                    "{evidence}; op {index} `{op}` showed the frame written after that check, so \
                     the job had not ended before the export"
                ),
                Some(index),
            )
            .breaking(Clause::SeesWrite),
        );
    }
}
