//! The node's limit: how many m2m jobs a second it completes for a plain client that keeps both
//! queues fed (MMAP, two buffers a queue in flight, each dequeued buffer queued again at once),
//! run through the executor with no oracles. A stress run's duty cycle is its CAPTURE frames a
//! second over this, measured on the same node and kernel (on a board, by m2mfuzz itself).
use crate::exec::outcome::Detail;
use crate::exec::{ExecOptions, Executor, OpResult};
use crate::profile::stress::StressProfile;
use crate::profile::{DriverProfile, Requests};
use crate::program::generate::mmap_qbuf;
use crate::program::{Handle, Hex, Memory, Node, Op, Program, Queue, ResKind};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Buffers a queue keeps in flight.
const IN_FLIGHT: u32 = 2;

/// Jobs per loop program: each program opens and closes its context once.
const ROUNDS: u32 = 100;

/// What the loop is run with.
#[derive(Clone, Debug)]
pub struct LimitOptions {
    /// Frame size on both queues (the profile's default when None).
    pub size: Option<(u32, u32)>,
    /// vim2m-style transaction time, where the driver has that control.
    pub trans_time_ms: Option<u32>,
    /// How long to loop.
    pub duration: Duration,
}

/// The measured limit (`limit --json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limit {
    /// Driver profile.
    pub driver: String,
    /// CAPTURE buffers dequeued without an error flag or errno, per second.
    pub jobs_per_s: f64,
    /// Those buffers.
    pub jobs: u64,
    /// Seconds looped.
    pub seconds: f64,
    /// Loop programs run.
    pub programs: u64,
    /// Ops that failed (an errno or a timeout): a loop that cannot run says so.
    pub failed_ops: u64,
    /// The setup, in words.
    pub setup: String,
}

/// The loop program: open, formats, buffers, stream on, `IN_FLIGHT` pairs queued, then
/// `rounds` times: DQBUF CAPTURE and OUTPUT, queue both again; then close.
pub fn loop_program(p: &'static DriverProfile, opts: &LimitOptions, rounds: u32) -> Program {
    let c = Handle {
        kind: ResKind::Ctx,
        id: 0,
    };
    let (w, h) = opts.size.unwrap_or(p.default_size);
    let mut prog = Program::default();
    prog.set_header("driver", p.name);
    let mut push = |op: Op| prog.push(0, op);
    push(Op::Open {
        node: Node::Driver(p.node_selector()),
        ret: c,
    });
    for (queue, fourcc) in [
        (Queue::Out, p.out_formats[0]),
        (Queue::Cap, p.cap_formats[0]),
    ] {
        push(Op::SFmt {
            ctx: c,
            queue,
            fourcc,
            width: w,
            height: h,
            planes: None,
        });
    }
    if let (Some(ms), Some(ctrl)) = (
        opts.trans_time_ms,
        p.controls.iter().find(|c| c.name == "TRANS_TIME_MSEC"),
    ) {
        push(Op::SetCtrl {
            ctx: c,
            id: Hex(ctrl.id),
            value: i64::from(ms),
            request: None,
        });
    }
    for queue in [Queue::Out, Queue::Cap] {
        push(Op::Reqbufs {
            ctx: c,
            queue,
            count: IN_FLIGHT,
            memory: Memory::Mmap,
        });
    }
    for queue in [Queue::Out, Queue::Cap] {
        push(Op::Streamon { ctx: c, queue });
    }
    let qbuf = |queue, index| mmap_qbuf(c, queue, index);
    for index in 0..IN_FLIGHT {
        push(qbuf(Queue::Out, index));
        push(qbuf(Queue::Cap, index));
    }
    // The driver completes jobs in order: the buffer dequeued is the oldest, index i.
    for r in 0..rounds {
        let index = r % IN_FLIGHT;
        for queue in [Queue::Cap, Queue::Out] {
            push(Op::Dqbuf {
                ctx: c,
                queue,
                memory: None,
                timeout_ms: Some(2000),
            });
        }
        push(qbuf(Queue::Out, index));
        push(qbuf(Queue::Cap, index));
    }
    push(Op::Close { h: c });
    prog
}

/// Loop on `p`'s node for `opts.duration` and count the jobs.
pub fn measure(p: &'static DriverProfile, opts: &LimitOptions) -> Result<Limit> {
    if p.requests == Requests::Required {
        bail!(
            "{}: a stateless decoder runs a job per request with its controls; the built-in job \
             loop does not build requests yet: measure the limit on a converter node (rga, vim2m)",
            p.name
        );
    }
    let prog = loop_program(p, opts, ROUNDS);
    let start = Instant::now();
    let (mut jobs, mut programs, mut failed) = (0u64, 0u64, 0u64);
    while start.elapsed() < opts.duration {
        let outcomes = Executor::new(ExecOptions::default()).run(&prog);
        programs += 1;
        for (op, o) in prog.ops.iter().zip(&outcomes) {
            match (&o.result, op) {
                (
                    OpResult::Ok { .. },
                    Op::Dqbuf {
                        queue: Queue::Cap, ..
                    },
                ) if !matches!(&o.detail, Some(Detail::Buf(b)) if b.error()) => jobs += 1,
                (OpResult::Err { .. } | OpResult::TimedOut, _) => failed += 1,
                _ => {}
            }
        }
        if jobs == 0 && failed > 0 {
            let first = prog
                .ops
                .iter()
                .zip(&outcomes)
                .find(|(_, o)| matches!(o.result, OpResult::Err { .. } | OpResult::TimedOut))
                .map(|(op, o)| format!("`{op}`: {}", o.result))
                .unwrap_or_default();
            bail!(
                "{}: the job loop completes no job (first failure {first}); is the node busy or \
                 another driver's?",
                p.name
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (w, h) = opts.size.unwrap_or(p.default_size);
    Ok(Limit {
        driver: p.name.to_string(),
        jobs_per_s: jobs as f64 / seconds,
        jobs,
        seconds,
        programs,
        failed_ops: failed,
        setup: format!(
            "MMAP, {IN_FLIGHT} buffers a queue in flight, {w}x{h} {}→{}{}",
            p.out_formats[0],
            p.cap_formats[0],
            opts.trans_time_ms
                .map_or_else(String::new, |ms| format!(", TRANS_TIME {ms} ms"))
        ),
    })
}

/// The sum of the target nodes' limits, each measured by [`measure`] with the target's
/// first size and transaction time and printed as it is measured. A node whose loop cannot run
/// (a stateless decoder without requests, say) is left out, and said so; None when none could.
pub fn of_targets(profile: &StressProfile, d: Duration) -> Option<f64> {
    let mut sum = None;
    let mut seen = std::collections::BTreeSet::new();
    for t in &profile.targets {
        let p = t.gen.profile;
        if !seen.insert(p.name) {
            continue; // one node per driver
        }
        let opts = LimitOptions {
            size: t.gen.sizes.first().copied(),
            trans_time_ms: t.gen.trans_time_ms.first().copied(),
            duration: d,
        };
        match measure(p, &opts) {
            Ok(l) => {
                eprintln!(
                    "m2mfuzz stress: limit of {}: {:.1} jobs/s ({})",
                    l.driver, l.jobs_per_s, l.setup
                );
                *sum.get_or_insert(0.0) += l.jobs_per_s;
            }
            Err(e) => eprintln!(
                "m2mfuzz stress: no limit for {} ({e:#}): its jobs are left out of the duty cycle's limit",
                p.name
            ),
        }
    }
    sum
}
