//! Shrinking: the shortest program that still gives the same finding. Delta debugging removes
//! ops (each keeps its thread); then whole threads go or join the main thread, ops whose handles
//! are never produced go, and what is left is simplified (optional arguments dropped, counts and
//! sleeps reduced). A candidate is kept only when `reproduces`
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

/// One op with its thread.
type Step = (u8, Op);

fn with_ops(p: &Program, ops: Vec<Step>) -> Program {
    Program::from_steps(p.header.clone(), ops)
}

/// Delta debugging (ddmin) over the ops.
fn ddmin(p: &Program, test: &mut dyn FnMut(&Program) -> bool) -> Program {
    let mut ops = p.to_steps();
    let mut n = 2usize;
    while ops.len() >= 2 {
        let chunk = ops.len().div_ceil(n);
        let mut reduced = false;
        // Try removing each chunk (testing complements; single chunks rarely reproduce alone).
        let mut start = 0;
        while start < ops.len() {
            let end = (start + chunk).min(ops.len());
            let cand: Vec<Step> = ops[..start].iter().chain(&ops[end..]).cloned().collect();
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
        .steps()
        .enumerate()
        .filter(|(i, (_, op))| {
            *i + 1 == n
                || matches!(op, Op::Barrier {})
                || match op.output() {
                    Some(h) => needed.contains(&h),
                    None => op.inputs().iter().all(|h| needed.contains(h)),
                }
        })
        .map(|(_, (t, op))| (t, op.clone()))
        .collect();
    with_ops(p, ops)
}

/// Drop ops that use a handle no earlier op produces (they would only be skipped).
fn drop_dead(p: &Program) -> Program {
    let mut produced = BTreeSet::new();
    let mut ops = Vec::new();
    for (t, op) in p.steps() {
        if op.inputs().iter().all(|h| produced.contains(h)) {
            if let Some(h) = op.output() {
                produced.insert(h);
            }
            ops.push((t, op.clone()));
        }
    }
    with_ops(p, ops)
}

/// Candidates that take one thread away: its ops removed, or moved to the main thread (the
/// finding may not need the concurrency); then barriers no thread needs any more.
fn fewer_threads(p: &Program) -> Vec<Program> {
    let threads: BTreeSet<u8> = p.threads.iter().copied().filter(|t| *t != 0).collect();
    let mut v = Vec::new();
    for t in threads {
        let steps = p.to_steps();
        v.push(with_ops(
            p,
            steps.iter().filter(|s| s.0 != t).cloned().collect(),
        ));
        v.push(with_ops(
            p,
            steps
                .into_iter()
                .map(|(u, op)| (if u == t { 0 } else { u }, op))
                .collect(),
        ));
    }
    if !p.threads.iter().any(|t| *t != 0) && p.ops.iter().any(|o| matches!(o, Op::Barrier {})) {
        let steps = p.to_steps();
        v.push(with_ops(
            p,
            steps
                .into_iter()
                .filter(|(_, o)| !matches!(o, Op::Barrier {}))
                .collect(),
        ));
    }
    v
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
        // A client that runs fewer jobs.
        Op::Stream {
            ctx,
            jobs,
            timeout_ms,
        } if *jobs > 1 => push(Op::Stream {
            ctx: *ctx,
            jobs: jobs / 2,
            timeout_ms: *timeout_ms,
        }),
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
        let cut = with_ops(p, p.to_steps()[..=c].to_vec());
        if c + 1 == p.ops.len() || test(&cut) {
            first = cut;
            let sliced = slice(&first);
            if sliced.ops.len() < first.ops.len() && test(&sliced) {
                first = sliced;
            }
        }
    }
    let mut best = ddmin(&first, &mut test);
    // Threads go one at a time, to a fixpoint.
    'threads: loop {
        for cand in fewer_threads(&best) {
            if test(&cand) {
                best = cand;
                continue 'threads;
            }
        }
        break;
    }
    let dead = drop_dead(&best);
    if dead.ops.len() < best.ops.len() && test(&dead) {
        best = dead;
    }
    // Single-op removal to a fixpoint catches what chunked removal skipped.
    let mut i = 0;
    while i < best.ops.len() && best.ops.len() > 1 {
        let mut ops = best.to_steps();
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
            let mut ops = best.to_steps();
            ops[i].1 = s;
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

pub use run::{findings_concurrently, findings_here};

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

    #[test]
    fn a_threaded_program_shrinks_to_the_threads_its_finding_needs() {
        let p = text::parse(
            "# m2mfuzz program v2
open node=vim2m -> c0
reqbufs c0 queue=cap count=2 memory=mmap
@1 qbuf c0 queue=cap index=0
@2 sleep ms=5
@1 dqbuf c0 queue=cap timeout_ms=10
@3 streamoff c0 queue=cap
@2 g_fmt c0 queue=out
barrier
close c0
",
        )
        .unwrap();
        // A race: the DQBUF and the STREAMOFF on two different threads, in one segment.
        let race = |c: &Program| {
            let at = |name: &str| c.ops.iter().position(|o| o.name() == name);
            match (at("dqbuf"), at("streamoff")) {
                (Some(a), Some(b)) => {
                    c.thread(a) != c.thread(b)
                        && c.segments()
                            .iter()
                            .any(|s| s.contains(&a) && s.contains(&b))
                }
                _ => false,
            }
        };
        let s = shrink(&p, None, &mut |c| race(c));
        assert_eq!(
            s.program.to_string(),
            "# m2mfuzz program v2\n# shrunk-from: 9 ops\ndqbuf c0 queue=cap\n\
             @3 streamoff c0 queue=cap\n"
        );
        // A finding of one op alone loses its threads: the program is v1 again.
        let s = shrink(&p, None, &mut |c| {
            c.ops.iter().any(|o| o.name() == "streamoff")
        });
        assert!(!s.program.is_threaded(), "{}", s.program);
        assert_eq!(s.program.ops.len(), 1);
    }
}
