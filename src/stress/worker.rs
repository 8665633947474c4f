//! A stress worker: one thread that generates programs from its own seed stream and runs them on
//! its own contexts, journalling each before it runs and checking it with the per-program oracles.
use super::store::{ProgramRef, RunDir};
use crate::exec::outcome::Detail;
use crate::exec::{supervise, ExecOptions, OpResult};
use crate::oracle::{Finding, OracleOptions, OracleSet};
use crate::program::generate::{generate, GenConfig, RngChoices};
use crate::program::{Op, Program, Queue};
use rand::SeedableRng;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The seed of worker `w`'s program `k` in a run seeded `base` (SplitMix64 of the three).
pub fn program_seed(base: u64, w: u32, k: u64) -> u64 {
    let mut z = base ^ (u64::from(w) << 48) ^ k.wrapping_mul(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// Worker `w`'s program `k`: the same text every time for the same base seed and generator.
pub fn program_of(gen: &GenConfig, base: u64, w: u32, k: u64) -> Program {
    let seed = program_seed(base, w, k);
    let mut c = RngChoices(rand::rngs::SmallRng::seed_from_u64(seed));
    let mut p = generate(&mut c, gen);
    p.set_header("seed", &seed.to_string());
    p.set_header("worker", &w.to_string());
    p.set_header("program", &k.to_string());
    p
}

/// What one program did.
pub struct ProgramRun {
    /// Which program.
    pub r: ProgramRef,
    /// Its text.
    pub program: Program,
    /// Ops that ran (not skipped).
    pub ops: u64,
    /// Of those, failed with an errno.
    pub errors: u64,
    /// Of those, timed out.
    pub timeouts: u64,
    /// CAPTURE buffers dequeued done (not ERROR): m2m jobs seen complete.
    pub frames: u64,
    /// Per-program findings (hangs, stale reads, a stuck op).
    pub findings: Vec<Finding>,
    /// True when an op never came back: the worker's thread is lost in the kernel.
    pub stuck: bool,
}

impl ProgramRun {
    /// A program's record before (or instead of) its run.
    fn empty(r: ProgramRef, program: Program) -> ProgramRun {
        ProgramRun {
            r,
            program,
            ops: 0,
            errors: 0,
            timeouts: 0,
            frames: 0,
            findings: Vec::new(),
            stuck: false,
        }
    }
}

/// A worker's settings and position in its seed stream.
pub struct Worker {
    /// Its number.
    pub id: u32,
    /// Generator settings of its target.
    pub gen: GenConfig,
    /// Base seed of the run.
    pub base_seed: u64,
    /// Next program number.
    pub next_k: u64,
    /// Executor settings.
    pub exec: ExecOptions,
    /// Oracle settings.
    pub oracle: OracleOptions,
    /// Extra time a stuck op gets before the worker gives up on it.
    pub margin: Duration,
    kmsg: Option<std::fs::File>,
}

impl Worker {
    /// A worker; it writes a marker per program into /dev/kmsg when it may.
    pub fn new(
        id: u32,
        gen: GenConfig,
        base_seed: u64,
        exec: ExecOptions,
        oracle: OracleOptions,
    ) -> Worker {
        let margin = oracle.fence_deadline + Duration::from_secs(10);
        Worker {
            id,
            gen,
            base_seed,
            next_k: 0,
            exec,
            oracle,
            margin,
            kmsg: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .ok(),
        }
    }

    /// Run programs until `until` or `stop`; each is journalled before it runs.
    pub fn run_epoch(
        &mut self,
        until: Instant,
        stop: &AtomicBool,
        store: &RunDir,
        done: &crossbeam::channel::Sender<ProgramRun>,
    ) {
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let k = self.next_k;
            self.next_k += 1;
            let program = program_of(&self.gen, self.base_seed, self.id, k);
            let r = ProgramRef {
                worker: self.id,
                k,
                seed: program_seed(self.base_seed, self.id, k),
            };
            store.keep("the journal", store.journal_start(&r, &program));
            if let Some(f) = &mut self.kmsg {
                // A marker in the kernel log ties a panic on the console to the program.
                let _ = f.write_all(super::store::marker(self.id, k, r.seed).as_bytes());
            }
            // The executor catches panics per op; one anywhere else in a program's run (the
            // supervisor, an oracle's conclusion) costs that program, not the stress run.
            let (r2, p2) = (r.clone(), program.clone());
            let started = Instant::now();
            let caught =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_one(r2, p2)));
            let (run, panicked) = match caught {
                Ok(run) => (run, false),
                Err(_) => (ProgramRun::empty(r, program), true),
            };
            let result = match (panicked, run.stuck, run.findings.is_empty()) {
                (true, _, _) => "panicked",
                (false, true, _) => "stuck",
                (false, false, true) => "ok",
                (false, false, false) => "finding",
            };
            store.keep(
                "the journal",
                store.journal_end(&run.r, result, started.elapsed()),
            );
            // A stuck program's thread stays lost in the kernel; the next one gets a fresh thread.
            let _ = done.send(run);
        }
    }

    fn run_one(&self, r: ProgramRef, program: Program) -> ProgramRun {
        let oracles = OracleSet::local(self.oracle.clone());
        let mut run = ProgramRun::empty(r, program.clone());
        match supervise::run_supervised(program, self.exec.clone(), oracles, self.margin) {
            Ok((outcomes, mut oracles)) => {
                for (op, o) in run.program.ops.iter().zip(&outcomes) {
                    match &o.result {
                        OpResult::Skipped { .. } => continue,
                        OpResult::Err { .. }
                        | OpResult::BadReply { .. }
                        | OpResult::Fault { .. }
                        | OpResult::Panicked { .. } => run.errors += 1,
                        OpResult::TimedOut => run.timeouts += 1,
                        // Frames: CAPTURE buffers dequeued done, not ERROR.
                        OpResult::Ok { .. } => match (op, &o.detail) {
                            (
                                Op::Dqbuf {
                                    queue: Queue::Cap, ..
                                },
                                Some(Detail::Buf(b)),
                            ) => run.frames += u64::from(!b.error()),
                            (Op::Stream { .. }, Some(Detail::Stream(f))) => {
                                run.frames += u64::from(f.capture - f.capture_errors)
                            }
                            _ => {}
                        },
                    }
                    run.ops += 1;
                }
                run.findings = oracles.take_local();
            }
            Err(stuck_run) => {
                let stuck = &stuck_run.stuck;
                run.stuck = true;
                run.ops = stuck.index as u64 + 1;
                // The hangs and stale reads seen before the op stuck are this program's too.
                run.findings = stuck_run.with_observer(|o| o.take_local());
                run.findings
                    .push(Finding::stuck(&run.program.ops[stuck.index], stuck));
            }
        }
        run
    }
}
