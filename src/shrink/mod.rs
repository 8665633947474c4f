//! Shrinking: the shortest program that still gives the same finding. Delta debugging removes
//! ops; then ops whose handles are never produced go, and what is left is simplified (optional
//! arguments dropped, counts and sleeps reduced). A candidate is kept only when `reproduces`
//! says it still gives the target signature; each candidate runs from a clean state (the caller's
//! closure opens everything anew, or boots a fresh kernel).
use crate::program::{Op, Program};
use std::collections::BTreeSet;
use std::time::Instant;

/// What a shrink did.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest program found.
    pub program: Program,
    /// Candidates tried.
    pub tries: usize,
    /// Ops before and after.
    pub ops_before: usize,
    /// Ops after.
    pub ops_after: usize,
    /// Wall time.
    pub seconds: f64,
}

fn with_ops(p: &Program, ops: Vec<Op>) -> Program {
    Program {
        header: p.header.clone(),
        ops,
    }
}

/// Delta debugging (ddmin) over the ops.
fn ddmin(p: &Program, test: &mut dyn FnMut(&Program) -> bool) -> Program {
    let mut ops = p.ops.clone();
    let mut n = 2usize;
    while ops.len() >= 2 {
        let chunk = ops.len().div_ceil(n);
        let mut reduced = false;
        // Try removing each chunk (testing complements; single chunks rarely reproduce alone).
        let mut start = 0;
        while start < ops.len() {
            let end = (start + chunk).min(ops.len());
            let cand: Vec<Op> = ops[..start].iter().chain(&ops[end..]).cloned().collect();
            if !cand.is_empty() && test(&with_ops(p, cand.clone())) {
                ops = cand;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
            start = end;
        }
        if !reduced {
            if n >= ops.len() {
                break;
            }
            n = (n * 2).min(ops.len());
        }
    }
    with_ops(p, ops)
}

/// The last op (the one the finding showed at) and what it stands on: ops producing the handles
/// it uses, transitively, and ops that only act on those handles (a format, a queue start on its
/// context). Side chains go in one candidate: dmabufs, mappings and sync files it never touches.
fn slice(p: &Program) -> Program {
    let Some(last) = p.ops.last() else {
        return p.clone();
    };
    let mut needed: BTreeSet<_> = last.inputs().into_iter().collect();
    for op in p.ops.iter().rev() {
        if op.output().is_some_and(|h| needed.contains(&h)) {
            needed.extend(op.inputs());
        }
    }
    let n = p.ops.len();
    let ops = p
        .ops
        .iter()
        .enumerate()
        .filter(|(i, op)| {
            *i + 1 == n
                || match op.output() {
                    Some(h) => needed.contains(&h),
                    None => op.inputs().iter().all(|h| needed.contains(h)),
                }
        })
        .map(|(_, op)| op.clone())
        .collect();
    with_ops(p, ops)
}

/// Drop ops that use a handle no earlier op produces (they would only be skipped).
fn drop_dead(p: &Program) -> Program {
    let mut produced = BTreeSet::new();
    let mut ops = Vec::new();
    for op in &p.ops {
        if op.inputs().iter().all(|h| produced.contains(h)) {
            if let Some(h) = op.output() {
                produced.insert(h);
            }
            ops.push(op.clone());
        }
    }
    with_ops(p, ops)
}

/// Simpler variants of one op, most aggressive first.
fn simpler(op: &Op) -> Vec<Op> {
    let mut v = Vec::new();
    let mut push = |o: Op| {
        if &o != op {
            v.push(o)
        }
    };
    match op {
        Op::Qbuf { .. } => {
            if let Op::Qbuf {
                ctx,
                queue,
                index,
                memory,
                dmabuf,
                request,
                ..
            } = op.clone()
            {
                push(Op::Qbuf {
                    ctx,
                    queue,
                    index,
                    memory,
                    dmabuf,
                    request,
                    bytesused: None,
                    flags: None,
                    field: None,
                });
            }
        }
        Op::Reqbufs {
            ctx,
            queue,
            count,
            memory,
        } if *count > 1 => push(Op::Reqbufs {
            ctx: *ctx,
            queue: *queue,
            count: 1,
            memory: *memory,
        }),
        Op::CreateBufs {
            ctx,
            queue,
            count,
            memory,
            ..
        } => push(Op::CreateBufs {
            ctx: *ctx,
            queue: *queue,
            count: (*count).min(1),
            memory: *memory,
            width: None,
            height: None,
        }),
        Op::Expbuf {
            ctx,
            queue,
            index,
            ret,
            ..
        } => push(Op::Expbuf {
            ctx: *ctx,
            queue: *queue,
            index: *index,
            plane: None,
            flags: None,
            ret: *ret,
        }),
        Op::Mmap {
            ctx,
            queue,
            index,
            ret,
            ..
        } => push(Op::Mmap {
            ctx: *ctx,
            queue: *queue,
            index: *index,
            plane: None,
            ret: *ret,
        }),
        Op::SFmt {
            ctx,
            queue,
            fourcc,
            width,
            height,
            ..
        } => push(Op::SFmt {
            ctx: *ctx,
            queue: *queue,
            fourcc: *fourcc,
            width: *width,
            height: *height,
            planes: None,
        }),
        Op::Dqbuf { ctx, queue, .. } => push(Op::Dqbuf {
            ctx: *ctx,
            queue: *queue,
            memory: None,
            timeout_ms: None,
        }),
        Op::Sleep { ms } if *ms > 1 => push(Op::Sleep { ms: ms / 2 }),
        _ => {}
    }
    v
}

/// Shrink `p` while `reproduces` holds; `reproduces(p)` must be true for the input. `cut_after`
/// is the op after which the finding showed, when known: the program cut after it is tried
/// first. A lockdep finding needs a fresh boot for every candidate that reproduces, so one cut
/// instead of several halvings of the tail saves boots.
pub fn shrink(
    p: &Program,
    cut_after: Option<usize>,
    reproduces: &mut dyn FnMut(&Program) -> bool,
) -> Shrunk {
    let start = Instant::now();
    let mut tries = 0usize;
    let mut test = |c: &Program| {
        tries += 1;
        reproduces(c)
    };
    let mut first = p.clone();
    if let Some(c) = cut_after.filter(|c| *c < p.ops.len()) {
        let cut = with_ops(p, p.ops[..=c].to_vec());
        if c + 1 == p.ops.len() || test(&cut) {
            first = cut;
            let sliced = slice(&first);
            if sliced.ops.len() < first.ops.len() && test(&sliced) {
                first = sliced;
            }
        }
    }
    let mut best = ddmin(&first, &mut test);
    let dead = drop_dead(&best);
    if dead.ops.len() < best.ops.len() && test(&dead) {
        best = dead;
    }
    // Single-op removal to a fixpoint catches what chunked removal skipped.
    let mut i = 0;
    while i < best.ops.len() && best.ops.len() > 1 {
        let mut ops = best.ops.clone();
        ops.remove(i);
        let cand = with_ops(&best, ops);
        if test(&cand) {
            best = cand;
        } else {
            i += 1;
        }
    }
    for i in 0..best.ops.len() {
        for s in simpler(&best.ops[i]) {
            let mut ops = best.ops.clone();
            ops[i] = s;
            let cand = with_ops(&best, ops);
            if test(&cand) {
                best = cand;
                break;
            }
        }
    }
    let mut program = best;
    program.set_header("shrunk-from", &format!("{} ops", p.ops.len()));
    Shrunk {
        ops_before: p.ops.len(),
        ops_after: program.ops.len(),
        program,
        tries,
        seconds: start.elapsed().as_secs_f64(),
    }
}

pub mod run;
pub mod session;

pub use run::{findings_concurrently, findings_here, findings_in_fresh_boot};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::text;

    #[test]
    fn the_slice_keeps_what_the_last_op_stands_on_and_drops_side_chains() {
        // A stress finding cut after the op whose device_run raised the lockdep report.
        let p = text::parse(
            "# m2mfuzz program v1
open node=visl -> c0
s_fmt c0 queue=out fourcc=SFWH width=2164 height=1541
reqbufs c0 queue=out count=1 memory=mmap
expbuf c0 queue=cap index=1 -> d0
mmap c0 queue=cap index=0 -> m0
fill m0 byte=0x5a
open node=visl -> c1
streamon c1 queue=out
streamon c0 queue=out
export_sync_file d0 dir=read -> s0
wait s0 timeout_ms=13
sleep ms=1
qbuf c0 queue=out index=0 bytesused=6669448
",
        )
        .unwrap();
        let names: Vec<String> = slice(&p).ops.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            names,
            [
                "open node=visl -> c0",
                "s_fmt c0 queue=out fourcc=SFWH width=2164 height=1541",
                "reqbufs c0 queue=out count=1 memory=mmap",
                "streamon c0 queue=out",
                "sleep ms=1",
                "qbuf c0 queue=out index=0 bytesused=6669448",
            ]
        );
    }
}
