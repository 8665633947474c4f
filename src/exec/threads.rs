//! Program threads: a segment (the ops between two barriers) whose ops are on more than one
//! thread runs them concurrently, one OS thread per program thread, all started together.
//!
//! Handles stay shared: a thread runs an op on a *view* of the program's state that holds clones
//! of the op's input resources (the fds and mappings themselves are shared, see
//! [`super::Resource`]), taken and given back under the state's lock, so the ioctl itself runs
//! with no lock held and races whatever the other threads do. A handle closed by one thread
//! while another is inside an ioctl on it is released when that ioctl returns, as the kernel
//! releases a file when its last in-flight user is done; later ops find it unbound.
//!
//! The observer is called on the coordinating thread only, in the order the ops start
//! (`before_op`, which the op waits for) and end (`after_op`, probes); the outcomes are returned
//! in program order.
use super::Watchdog;
use super::{after, panic_message, probes, ExecState, Executor, Observer, Outcome, RunFlags};
use super::{OpResult, Resource};
use crate::program::{Handle, Op, Program};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether every op of the segment is on one thread (it then runs on the caller's).
pub(super) fn is_serial(p: &Program, seg: &Range<usize>) -> bool {
    let t = p.thread(seg.start);
    seg.clone().all(|i| p.thread(i) == t)
}

/// What a program thread tells the coordinator.
enum Msg {
    /// Op `index` (of the thread at `slot`) is about to run: call `before_op`, then let it.
    Before { index: usize, slot: usize },
    /// It ran.
    After(Outcome),
}

/// Counts a thread with ops other than `stream` out of its segment's working ones when dropped.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ExecState {
    /// A state holding clones of `handles`' resources (and their provenance), for one op on
    /// another thread; `fired` is that thread's watchdog flag.
    fn view(
        &self,
        handles: impl IntoIterator<Item = Handle>,
        fired: super::watchdog::FiredFlag,
    ) -> ExecState {
        let mut v = ExecState {
            res: BTreeMap::new(),
            provenance: BTreeMap::new(),
            opts: self.opts.clone(),
            fired: Some(fired),
            others: Vec::new(),
            working: None,
        };
        for h in handles {
            if let Some(r) = self.res.get(&h) {
                v.res.insert(h, r.clone());
            }
            if let Some(b) = self.provenance.get(&h) {
                v.provenance.insert(h, *b);
            }
        }
        for r in self.res.values() {
            match r {
                Resource::Ctx(c) => {
                    v.others.push(Arc::downgrade(&c.video));
                    v.others.extend(c.media.as_ref().map(Arc::downgrade));
                }
                Resource::Fd(f) => v.others.push(Arc::downgrade(f)),
                Resource::Map(..) => {}
            }
        }
        v
    }

    /// Take back what `op` did on `view`: handles it closed go, the one it made comes, a
    /// context's learnt formats are kept. A handle another thread closed meanwhile stays closed.
    fn merge(&mut self, op: &Op, mut view: ExecState) {
        for h in op.inputs() {
            match view.res.remove(&h) {
                None => {
                    self.res.remove(&h);
                }
                // A client learns nothing of its context, and it ends last: what others
                // learnt meanwhile (a REQBUFS's memory, an S_FMT's sizes) stays.
                Some(Resource::Ctx(_)) if matches!(op, Op::Stream { .. }) => {}
                Some(r @ Resource::Ctx(_)) => {
                    if let Some(slot) = self.res.get_mut(&h) {
                        *slot = r;
                    }
                }
                Some(_) => {}
            }
        }
        if let Some(h) = op.output() {
            if let Some(r) = view.res.remove(&h) {
                self.res.insert(h, r);
            }
        }
        for (h, b) in view.provenance {
            self.provenance.insert(h, b);
        }
    }
}

impl Executor {
    /// Run a segment with ops on several threads (see the module doc).
    pub(super) fn segment(
        &mut self,
        prog: &Program,
        seg: Range<usize>,
        obs: &mut dyn Observer,
        keep: &mut dyn FnMut(&Outcome) -> bool,
        out: &mut Vec<Outcome>,
        run: &mut RunFlags,
    ) {
        let mut groups: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
        for i in seg.clone() {
            groups.entry(prog.thread(i)).or_default().push(i);
        }
        // One more for the coordinator's probes.
        while self.dogs.len() < groups.len() + 1 {
            self.dogs.push(Watchdog::new());
        }
        // The coordinator waits under the executor's own watchdog for as long as the slowest
        // thread may take: a thread stuck in the kernel past that is reported at the
        // segment's first op (the supervisor watches this watchdog).
        let longest: Duration = groups
            .values()
            .map(|ops| {
                ops.iter()
                    .map(|&i| self.state.opts.deadline(&prog.ops[i]))
                    .sum()
            })
            .max()
            .unwrap_or_default();
        if run.observer_panic.is_none() {
            obs.concurrent(seg.clone());
        }
        let Executor {
            watchdog,
            state,
            abandon,
            dogs,
        } = self;
        let opts = state.opts.clone();
        let shared = Mutex::new(std::mem::take(state));
        let halt = AtomicBool::new(run.panicked.is_some());
        let flags = Mutex::new(std::mem::take(run));
        let start_together = std::sync::Barrier::new(groups.len());
        // A thread of `stream` ops only is a client of the others: it stops once every thread
        // with other ops has finished (see `ExecState::stream`).
        let clients: Vec<bool> = groups
            .values()
            .map(|ops| {
                ops.iter()
                    .all(|&i| matches!(prog.ops[i], Op::Stream { .. }))
            })
            .collect();
        let others = clients.iter().filter(|c| !**c).count();
        let working = Arc::new(AtomicUsize::new(others));
        let (tx, rx) = mpsc::channel::<Msg>();
        let prober = &dogs[groups.len()];
        let mut acks = Vec::new();
        // Each program thread's id, for the supervisor's report of a stuck op.
        let tids: Vec<std::sync::atomic::AtomicI32> = groups.keys().map(|_| 0.into()).collect();
        let mut kept = Vec::new();
        std::thread::scope(|s| {
            for (slot, (ops, dog)) in groups.values().zip(dogs.iter()).enumerate() {
                let (ack_tx, ack_rx) = mpsc::sync_channel::<()>(1);
                acks.push(ack_tx);
                let tx = tx.clone();
                let (shared, halt, flags, start_together) =
                    (&shared, &halt, &flags, &start_together);
                let abandon = &**abandon;
                let tid = &tids[slot];
                // Clients of nobody (a segment of clients only) keep their timeout rule.
                let client = clients[slot] && others > 0;
                let working = &working;
                std::thread::Builder::new()
                    .name(format!("m2mfuzz-t{}", prog.thread(ops[0])))
                    .spawn_scoped(s, move || {
                        tid.store(super::watchdog::tid(), Ordering::SeqCst);
                        // However this thread ends, its clients learn of it.
                        let _done = (!client).then(|| Finished(working));
                        start_together.wait();
                        for &index in ops {
                            let op = &prog.ops[index];
                            if tx.send(Msg::Before { index, slot }).is_err()
                                || ack_rx.recv().is_err()
                            {
                                return;
                            }
                            let start = Instant::now();
                            // Lock order: flags, then the state (as the coordinator).
                            let f = match halt.load(Ordering::SeqCst) {
                                true => flags.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                                false => RunFlags::default(),
                            };
                            let view = {
                                let st = shared.lock().unwrap_or_else(|e| e.into_inner());
                                match f.skip(&st, op, abandon) {
                                    Some(r) => Err(r),
                                    None => {
                                        let mut v = st.view(op.inputs(), dog.fired_flag());
                                        v.working = client.then(|| working.clone());
                                        Ok(v)
                                    }
                                }
                            };
                            let (result, detail) = match view {
                                Err(r) => (r, None),
                                Ok(mut view) => {
                                    let deadline = view.opts.deadline(op);
                                    let r = dog.guard(index, start, deadline, || {
                                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                                            || view.exec(op),
                                        ))
                                    });
                                    let done = r.0.unwrap_or_else(|p| {
                                        let mut f = flags.lock().unwrap_or_else(|e| e.into_inner());
                                        f.panicked = f.panicked.or(Some(index));
                                        halt.store(true, Ordering::SeqCst);
                                        (
                                            OpResult::Panicked {
                                                message: Box::new(panic_message(&*p)),
                                            },
                                            None,
                                        )
                                    });
                                    shared
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .merge(op, view);
                                    done
                                }
                            };
                            let o = Outcome {
                                index: index as u32,
                                result,
                                duration_us: Outcome::micros(start.elapsed()),
                                detail,
                            };
                            if tx.send(Msg::After(o)).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawn a program thread");
            }
            drop(tx);
            // Ops started and not ended: index → (thread slot, start).
            let mut inflight: BTreeMap<usize, (usize, Instant)> = BTreeMap::new();
            let coordinate = || loop {
                // The watchdog judges the in-flight op due first (the one stuck, if one is).
                let due = inflight
                    .iter()
                    .map(|(i, (slot, t))| (*t + opts.deadline(&prog.ops[*i]), *i, *slot, *t))
                    .min();
                if let Some((_, i, slot, t)) = due {
                    let tid = tids[slot].load(Ordering::SeqCst);
                    watchdog.retarget(i, t, opts.deadline(&prog.ops[i]), tid);
                }
                let msg = match rx.recv_timeout(super::watchdog::TICK) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                {
                    match msg {
                        Msg::Before { index, slot } => {
                            inflight.insert(index, (slot, Instant::now()));
                            let f = flags.lock().unwrap_or_else(|e| e.into_inner());
                            let quiet = f.observer_panic.is_some();
                            drop(f);
                            if !quiet {
                                obs.before_op(index, &prog.ops[index]);
                            }
                            let _ = acks[slot].send(());
                        }
                        Msg::After(o) => {
                            let index = o.index as usize;
                            inflight.remove(&index);
                            let mut f = flags.lock().unwrap_or_else(|e| e.into_inner());
                            let st = shared.lock().unwrap_or_else(|e| e.into_inner());
                            after(&st, index, &prog.ops[index], &o, obs, &mut f);
                            drop(st);
                            // Probes wait on a view, the state unlocked.
                            probes(index, obs, &mut f, &mut |p| {
                                let mut view = shared
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .view([p.of], prober.fired_flag());
                                let deadline = view.opts.op_deadline + p.wait;
                                prober
                                    .guard(index, Instant::now(), deadline, || view.probe(p))
                                    .0
                            });
                            if f.panicked.is_some() {
                                halt.store(true, Ordering::SeqCst);
                            }
                            drop(f);
                            if keep(&o) {
                                kept.push(o);
                            }
                        }
                    }
                }
            };
            watchdog.guard(seg.start, Instant::now(), longest, coordinate);
        });
        kept.sort_by_key(|o| o.index);
        out.extend(kept);
        *state = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        *run = flags.into_inner().unwrap_or_else(|e| e.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ExecOptions, Executor, Observer, OpResult, Outcome, Resource};
    use crate::program::{text, Handle, Op, ResKind};
    use std::sync::Arc;
    use std::time::Instant;

    /// What the observer was told, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Observer for Log {
        fn before_op(&mut self, index: usize, _op: &Op) {
            self.0.push(format!("before {index}"));
        }
        fn concurrent(&mut self, ops: std::ops::Range<usize>) {
            self.0.push(format!("concurrent {ops:?}"));
        }
        fn after_op(&mut self, index: usize, _op: &Op, _o: &Outcome, _st: &super::ExecState) {
            self.0.push(format!("after {index}"));
        }
    }

    #[test]
    fn the_threads_of_a_segment_run_at_once_and_meet_at_its_barrier() {
        let p = text::parse(
            "# m2mfuzz program v2\n@1 sleep ms=300\n@2 sleep ms=300\n@3 sleep ms=300\nbarrier\nsleep ms=0\n",
        )
        .unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        let mut log = Log::default();
        let t = Instant::now();
        let out = ex.run_observed(&p, &mut log);
        let took = t.elapsed();
        assert!(
            took.as_millis() >= 300 && took.as_millis() < 700,
            "three 300 ms sleeps at once took {took:?}"
        );
        let idx: Vec<u32> = out.iter().map(|o| o.index).collect();
        assert_eq!(idx, [0, 1, 2, 3, 4], "outcomes in program order");
        assert!(out.iter().all(|o| o.result == OpResult::Ok { value: 0 }));
        assert_eq!(log.0[0], "concurrent 0..3");
        // Each op's before comes before its after; the barrier and the last op come after all.
        for i in 0..3 {
            let b = log
                .0
                .iter()
                .position(|l| *l == format!("before {i}"))
                .unwrap();
            let a = log
                .0
                .iter()
                .position(|l| *l == format!("after {i}"))
                .unwrap();
            assert!(b < a, "{:?}", log.0);
        }
        assert_eq!(&log.0[7..], ["before 3", "after 3", "before 4", "after 4"]);
    }

    /// A pipe's read end bound as a dmabuf: poll on it waits, like a busy dmabuf's.
    fn pipe_as_dmabuf(ex: &mut Executor) -> std::os::fd::OwnedFd {
        let (r, w) = nix::unistd::pipe().unwrap();
        let h = Handle {
            kind: ResKind::Dmabuf,
            id: 0,
        };
        ex.bind(h, Resource::Fd(Arc::new(r)));
        w
    }

    #[test]
    fn a_handle_closed_by_one_thread_while_another_waits_on_it_closes_when_the_wait_ends() {
        let p = text::parse(
            "# m2mfuzz program v2\n@1 poll_dmabuf d0 events=in timeout_ms=400\n\
             @2 sleep ms=50\n@2 close_dmabuf d0\nbarrier\npoll_dmabuf d0 events=in timeout_ms=1\n",
        )
        .unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        let w = pipe_as_dmabuf(&mut ex);
        let out = ex.run(&p);
        // The wait saw its fd open to the end (a time-out, not POLLNVAL), the close did not wait
        // for it, and the next segment finds the handle closed.
        assert!(
            matches!(out[0].result, OpResult::TimedOut) && out[0].duration_us >= 390_000,
            "{:?}",
            out[0]
        );
        assert!(out[2].duration_us < 100_000, "{:?}", out[2]);
        assert!(
            matches!(&out[4].result, OpResult::Skipped { reason } if reason.contains("d0 is unbound")),
            "{:?}",
            out[4]
        );
        // The read end is closed: writing to the pipe fails.
        assert_eq!(
            nix::unistd::write(&w, b"x"),
            Err(nix::errno::Errno::EPIPE),
            "the read end outlived its last user"
        );
    }

    #[test]
    fn a_handle_made_on_one_thread_is_used_by_another_after_the_barrier() {
        let p = text::parse(
            "# m2mfuzz program v2\n@1 mmap_dmabuf d0 -> m0\n@2 sleep ms=1\nbarrier\n\
             @3 fill m0 byte=0x11\n@2 close_dmabuf d0\nbarrier\n@1 check m0 byte=0x11\n@2 sleep ms=0\nbarrier\n@2 munmap m0\n",
        )
        .unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        // A memfd of one page stands for a dmabuf: it can be mapped.
        let fd = nix::sys::memfd::memfd_create(
            c"m2mfuzz-test",
            nix::sys::memfd::MemFdCreateFlag::empty(),
        )
        .unwrap();
        nix::unistd::ftruncate(&fd, 4096).unwrap();
        ex.bind(
            Handle {
                kind: ResKind::Dmabuf,
                id: 0,
            },
            Resource::Fd(Arc::new(fd)),
        );
        let out = ex.run(&p);
        let ok: Vec<_> = out.iter().map(|o| o.result.clone()).collect();
        assert_eq!(ok[0], OpResult::Ok { value: 4096 }, "{out:?}");
        assert_eq!(ok[3], OpResult::Ok { value: 4096 }, "{out:?}");
        assert_eq!(ok[4], OpResult::Ok { value: 0 }, "{out:?}");
        // The check finds the fill through the mapping made on another thread.
        assert_eq!(ok[6], OpResult::Ok { value: 0 }, "{out:?}");
        assert_eq!(ok[9], OpResult::Ok { value: 0 }, "{out:?}");
    }
}
