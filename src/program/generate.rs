//! Driver-aware program generation. One generator serves both the stress engine (`rand`) and the
//! fuzz targets (`arbitrary` bytes) through [`Choices`]; it models each context's queues so most
//! ops are valid, and corrupts a tunable share of arguments so error paths are reached too.
use super::*;
use crate::profile::{DriverProfile, Requests};
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};

/// A source of decisions.
pub trait Choices {
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u32) -> u32;
    /// True with `percent`% probability.
    fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent
    }
    /// Any 32-bit value.
    fn any(&mut self) -> u32;
    /// True when no more decisions can be drawn (fuzz input consumed).
    fn exhausted(&self) -> bool {
        false
    }
}

/// Decisions from a seeded PRNG.
pub struct RngChoices<R: Rng>(pub R);

impl<R: Rng> Choices for RngChoices<R> {
    fn below(&mut self, n: u32) -> u32 {
        self.0.gen_range(0..n.max(1))
    }
    fn any(&mut self) -> u32 {
        self.0.gen()
    }
}

impl Choices for arbitrary::Unstructured<'_> {
    fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        self.int_in_range(0..=n - 1).unwrap_or(0)
    }
    fn any(&mut self) -> u32 {
        self.arbitrary().unwrap_or(0)
    }
    fn exhausted(&self) -> bool {
        self.is_empty()
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// The driver the program targets.
    pub profile: &'static DriverProfile,
    /// Contexts opened in the prologue.
    pub contexts: u32,
    /// Ops after the prologue.
    pub body_ops: usize,
    /// Percentage of generated ops with one argument corrupted.
    pub invalid_percent: u32,
    /// Relative weights of body actions by name (see [`ACTIONS`]); absent names weigh 0.
    pub weights: BTreeMap<String, u32>,
    /// Longest wait an op may ask for.
    pub max_wait_ms: u32,
    /// Allow sw_sync ops (needs a lab kernel with CONFIG_SW_SYNC and debugfs).
    pub sw_sync: bool,
    /// OUTPUT formats to choose from (empty: the driver profile's).
    pub out_formats: Vec<FourCc>,
    /// CAPTURE formats to choose from (empty: the driver profile's).
    pub cap_formats: Vec<FourCc>,
    /// Frame sizes to choose from (empty: the profile's default, sometimes a random valid one).
    pub sizes: Vec<(u32, u32)>,
    /// vim2m-style transaction times (ms) to choose from per context (empty: a random 1..20).
    /// Long ones leave time for a reader to race the job (stale reads); short ones give rate.
    pub trans_time_ms: Vec<u32>,
    /// Percentage of contexts after the first whose OUTPUT queue imports (DMABUF memory) the
    /// CAPTURE buffers another context exported: a decoder feeding a converter.
    pub import_percent: u32,
    /// Percentage of programs whose body runs on several program threads sharing its handles
    /// (2 to 4 threads, barriers now and then): the races one sequence cannot reach.
    pub thread_percent: u32,
    /// Percentage of programs in which every context the prologue left streaming gets a pump
    /// thread: a client keeping all its buffers in flight while the body acts on the same
    /// handles, so the chaos lands on live jobs and the node stays busy.
    pub pump_percent: u32,
}

/// Body actions and their default weights.
pub const ACTIONS: &[(&str, u32)] = &[
    ("qbuf", 30),
    ("dqbuf", 20),
    ("export_sync_file", 10),
    ("wait", 8),
    ("fence_info", 4),
    ("poll_dmabuf", 4),
    ("dmabuf_sync", 3),
    ("check", 4),
    ("reader", 4),
    ("expbuf", 3),
    ("streamoff", 3),
    ("streamon", 4),
    ("reqbufs", 2),
    ("create_bufs", 1),
    ("set_ctrl", 2),
    ("import_sync_file", 2),
    ("close", 1),
    ("sleep", 2),
    // Every other op of the table, rarely: a generator that never emits an op never reaches
    // the kernel paths behind it.
    ("g_fmt", 1),
    ("querybuf", 1),
    ("remove_bufs", 1),
    ("mmap_dmabuf", 1),
    ("munmap", 1),
    ("close_dmabuf", 1),
    ("close_sync", 1),
    ("merge", 1),
];

impl GenConfig {
    /// Defaults for a driver: one context, 30 body ops, 5% invalid arguments.
    pub fn new(profile: &'static DriverProfile) -> GenConfig {
        GenConfig {
            profile,
            contexts: 1,
            body_ops: 30,
            invalid_percent: 5,
            weights: ACTIONS.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
            max_wait_ms: 500,
            sw_sync: profile.lab,
            out_formats: Vec::new(),
            cap_formats: Vec::new(),
            sizes: Vec::new(),
            trans_time_ms: Vec::new(),
            import_percent: 30,
            thread_percent: 0,
            pump_percent: 0,
        }
    }
}

/// Model of one context's queue.
#[derive(Default, Clone)]
struct QueueModel {
    count: u32,
    memory: Option<Memory>,
    streaming: bool,
    /// Queued indices, oldest first (m2m completes in order).
    queued: VecDeque<u32>,
    /// Buffer size for fills and bytesused.
    sizeimage: u32,
}

#[derive(Clone)]
struct CtxModel {
    h: Handle,
    q: [QueueModel; 2],
    /// CAPTURE buffers exported: (index, dmabuf).
    exports: Vec<(u32, Handle)>,
    /// CAPTURE mappings: (index, mapping).
    maps: Vec<(u32, Handle)>,
    open: bool,
    /// The context whose CAPTURE exports this one's OUTPUT queue imports (DMABUF memory).
    import_from: Option<usize>,
}

struct Gen<'a, C: Choices> {
    c: &'a mut C,
    cfg: &'a GenConfig,
    ops: Vec<Op>,
    next: BTreeMap<ResKind, u32>,
    ctxs: Vec<CtxModel>,
    syncs: Vec<Handle>,
    timelines: Vec<Handle>,
    /// Each timeline's value as the program's SW_INCs have advanced it.
    timeline_at: BTreeMap<Handle, u32>,
    /// Dmabuf → the injected sw_sync fence (timeline, value) its resv may still wait for: a
    /// DMA_BUF_IOCTL_SYNC on it blocks until that timeline gets there.
    injected: BTreeMap<Handle, (Handle, u32)>,
    /// Mapping → the canary byte last filled into it, which a check of it looks for.
    canaries: BTreeMap<Handle, u8>,
    /// The byte the next fill uses.
    next_canary: u8,
    /// Where each body action's ops start: the ops of one action stay on one thread.
    actions: Vec<usize>,
    /// The contexts as the prologue left them (streaming, buffers allocated): what a pump
    /// thread starting right after it can use.
    after_prologue: Vec<CtxModel>,
}

fn qi(q: Queue) -> usize {
    usize::from(q == Queue::Cap)
}

impl<C: Choices> Gen<'_, C> {
    fn fresh(&mut self, kind: ResKind) -> Handle {
        let n = self.next.entry(kind).or_insert(0);
        let h = Handle { kind, id: *n };
        *n += 1;
        h
    }

    /// An index into a list of `len` items, if any.
    fn pick_index(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.c.below(len as u32) as usize)
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.c.below(v.len() as u32) as usize])
    }

    fn push(&mut self, mut op: Op) {
        if self.c.chance(self.cfg.invalid_percent) {
            self.corrupt(&mut op);
        }
        self.ops.push(op);
    }

    /// An op the model relies on (the prologue's set-up, a timeline's advance): corrupted like
    /// any other, but then followed by its valid form, as a client retries a refused setting.
    /// The error path is reached and the state the model expects is reached anyway, so the
    /// body's chaos and the pumps have live queues to work on.
    fn setup(&mut self, op: Op) {
        let mut bad = op.clone();
        if self.c.chance(self.cfg.invalid_percent) {
            self.corrupt(&mut bad);
            if bad != op {
                self.ops.push(bad);
            }
        }
        self.ops.push(op);
    }

    /// Replace one argument with a value the model would not choose.
    fn corrupt(&mut self, op: &mut Op) {
        let wild = self.c.any();
        let small = self.c.below(64);
        match op {
            Op::Qbuf { index, flags, .. } => match self.c.below(3) {
                0 => *index = small,
                1 => *flags = Some(Hex(wild)),
                _ => *index = wild,
            },
            Op::Dqbuf { queue, .. } | Op::Streamon { queue, .. } | Op::Streamoff { queue, .. } => {
                *queue = Queue::Raw(small)
            }
            Op::SFmt {
                fourcc,
                width,
                height,
                ..
            } => match self.c.below(3) {
                0 => *fourcc = FourCc(wild),
                1 => *width = wild,
                _ => *height = small,
            },
            Op::Reqbufs { count, memory, .. } | Op::CreateBufs { count, memory, .. } => {
                if self.c.chance(50) {
                    *count = wild
                } else {
                    *memory = Memory::Raw(small)
                }
            }
            Op::Expbuf { index, plane, .. } => {
                if self.c.chance(50) {
                    *index = small
                } else {
                    *plane = Some(small)
                }
            }
            Op::ExportSyncFile { dir, .. } | Op::DmabufSync { dir, .. } => {
                *dir = SyncDir::Raw(wild)
            }
            Op::SetCtrl { id, value, .. } => {
                let ctrl = self.cfg.profile.controls.iter().find(|c| c.id == id.0);
                match ctrl.filter(|c| c.job_time) {
                    Some(c) if self.c.chance(50) => *value = c.min - 1 - i64::from(small),
                    Some(_) => *id = Hex(wild),
                    None => *value = i64::from(wild as i32),
                }
            }
            _ => {
                if let Some(h) = op.inputs_mut().into_iter().next() {
                    // A handle that may be unbound or closed: the executor must cope.
                    h.id = small % 4;
                }
            }
        }
    }

    fn size(&mut self) -> (u32, u32) {
        let p = self.cfg.profile;
        if !self.cfg.sizes.is_empty() {
            return self.pick(&self.cfg.sizes.clone()).unwrap();
        }
        if self.c.chance(70) {
            return p.default_size;
        }
        let w = p.width.0 + self.c.below(p.width.1 - p.width.0 + 1);
        let h = p.height.0 + self.c.below(p.height.1 - p.height.0 + 1);
        (w & !1, h)
    }

    fn prologue(&mut self) {
        let p = self.cfg.profile;
        for _ in 0..self.cfg.contexts.max(1) {
            let h = self.fresh(ResKind::Ctx);
            self.ops.push(Op::Open {
                node: Node::Driver(p.node_selector()),
                ret: h,
            });
            let mut m = CtxModel {
                h,
                q: Default::default(),
                exports: vec![],
                maps: vec![],
                open: true,
                import_from: None,
            };
            if !self.ctxs.is_empty() && self.c.chance(self.cfg.import_percent) {
                m.import_from = Some(self.c.below(self.ctxs.len() as u32) as usize);
            }
            let (w, ht) = self.size();
            let pick_from = |own: &[FourCc], profile: &'static [FourCc]| -> Vec<FourCc> {
                if own.is_empty() {
                    profile.to_vec()
                } else {
                    own.to_vec()
                }
            };
            for (queue, fmts) in [
                (Queue::Out, pick_from(&self.cfg.out_formats, p.out_formats)),
                (Queue::Cap, pick_from(&self.cfg.cap_formats, p.cap_formats)),
            ] {
                let fourcc = if self.c.chance(60) {
                    fmts[0]
                } else {
                    self.pick(&fmts).unwrap()
                };
                self.setup(Op::SFmt {
                    ctx: h,
                    queue,
                    fourcc,
                    width: w,
                    height: ht,
                    planes: None,
                });
                m.q[qi(queue)].sizeimage = w * ht * 2;
            }
            if let Some(ctrl) = p.controls.first().filter(|c| c.name == "TRANS_TIME_MSEC") {
                let times = &self.cfg.trans_time_ms;
                let value = match times.len() {
                    0 => 1 + i64::from(self.c.below(20)),
                    1 => i64::from(times[0]),
                    n => i64::from(times[self.c.below(n as u32) as usize]),
                };
                self.setup(Op::SetCtrl {
                    ctx: h,
                    id: Hex(ctrl.id),
                    value,
                    request: None,
                });
            }
            for queue in [Queue::Out, Queue::Cap] {
                let count = 1 + self.c.below(4);
                let memory = if queue == Queue::Out && m.import_from.is_some() {
                    Memory::Dmabuf
                } else {
                    Memory::Mmap
                };
                self.setup(Op::Reqbufs {
                    ctx: h,
                    queue,
                    count,
                    memory,
                });
                let q = &mut m.q[qi(queue)];
                q.count = count;
                q.memory = Some(memory);
            }
            for index in 0..m.q[1].count {
                if self.c.chance(70) {
                    let d = self.fresh(ResKind::Dmabuf);
                    self.push(Op::Expbuf {
                        ctx: h,
                        queue: Queue::Cap,
                        index,
                        plane: None,
                        flags: None,
                        ret: d,
                    });
                    m.exports.push((index, d));
                }
            }
            if self.c.chance(50) {
                let map = self.fresh(ResKind::Mapping);
                self.push(Op::Mmap {
                    ctx: h,
                    queue: Queue::Cap,
                    index: 0,
                    plane: None,
                    ret: map,
                });
                self.canary(map);
                m.maps.push((0, map));
            }
            for queue in [Queue::Out, Queue::Cap] {
                self.setup(Op::Streamon { ctx: h, queue });
                m.q[qi(queue)].streaming = true;
            }
            self.ctxs.push(m);
        }
    }

    fn weight(&self, name: &str) -> u32 {
        self.cfg.weights.get(name).copied().unwrap_or(0)
    }

    fn body_step(&mut self) {
        self.actions.push(self.ops.len());
        let total: u32 = ACTIONS.iter().map(|(n, _)| self.weight(n)).sum();
        if total == 0 || self.ctxs.is_empty() {
            return;
        }
        let mut r = self.c.below(total);
        let mut action = ACTIONS[0].0;
        for (n, _) in ACTIONS {
            let w = self.weight(n);
            if r < w {
                action = n;
                break;
            }
            r -= w;
        }
        let ci = self.c.below(self.ctxs.len() as u32) as usize;
        let ctx = self.ctxs[ci].h;
        let queue = if self.c.chance(50) {
            Queue::Out
        } else {
            Queue::Cap
        };
        let wait_ms = self.c.below(self.cfg.max_wait_ms.max(1)) + 1;
        match action {
            "qbuf" => self.qbuf(ci, queue),
            "dqbuf" => {
                let q = &self.ctxs[ci].q[qi(queue)];
                let timeout_ms = if q.queued.is_empty() {
                    1
                } else {
                    self.cfg.max_wait_ms
                };
                self.push(Op::Dqbuf {
                    ctx,
                    queue,
                    memory: None,
                    timeout_ms: Some(timeout_ms),
                });
                self.ctxs[ci].q[qi(queue)].queued.pop_front();
            }
            "export_sync_file" => {
                if let Some((_, d)) = self.pick(&self.ctxs[ci].exports.clone()) {
                    let s = self.fresh(ResKind::SyncFile);
                    let dir = self.pick(SyncDir::NAMED).unwrap();
                    self.push(Op::ExportSyncFile {
                        dmabuf: d,
                        dir,
                        ret: s,
                    });
                    self.syncs.push(s);
                }
            }
            "wait" => {
                if let Some(sync) = self.pick(&self.syncs.clone()) {
                    self.push(Op::Wait {
                        sync,
                        timeout_ms: wait_ms,
                    });
                }
            }
            "fence_info" => {
                if let Some(sync) = self.pick(&self.syncs.clone()) {
                    self.push(Op::FenceInfo { sync });
                }
            }
            "poll_dmabuf" => {
                if let Some((_, dmabuf)) = self.pick(&self.ctxs[ci].exports.clone()) {
                    let events = self.pick(PollEvents::NAMED).unwrap();
                    self.push(Op::PollDmabuf {
                        dmabuf,
                        events,
                        timeout_ms: wait_ms,
                    });
                }
            }
            "dmabuf_sync" => {
                if let Some((_, dmabuf)) = self.pick(&self.ctxs[ci].exports.clone()) {
                    // A CPU access waits for every fence in the resv, an injected one too: on
                    // one thread, nothing after it would signal it, and the sync would block
                    // until the op deadline. Mostly another party signals it first; now and
                    // then the sync waits and the watchdog's signal interrupts it.
                    if let Some(&(timeline, value)) = self.injected.get(&dmabuf) {
                        let at = self.timeline_at.get(&timeline).copied().unwrap_or(0);
                        if value > at && self.c.chance(95) {
                            self.sw_inc(timeline, value - at);
                        }
                    }
                    let dir = self.pick(SyncDir::NAMED).unwrap();
                    self.push(Op::DmabufSync {
                        dmabuf,
                        phase: SyncPhase::Start,
                        dir,
                    });
                    self.push(Op::DmabufSync {
                        dmabuf,
                        phase: SyncPhase::End,
                        dir,
                    });
                }
            }
            "check" => {
                if let Some((_, map)) = self.pick(&self.ctxs[ci].maps.clone()) {
                    self.check(map);
                }
            }
            "reader" => self.reader(ci, wait_ms),
            "expbuf" => {
                let count = self.ctxs[ci].q[1].count.max(1);
                let index = self.c.below(count);
                self.expbuf(ci, index);
            }
            "streamoff" => {
                self.push(Op::Streamoff { ctx, queue });
                let q = &mut self.ctxs[ci].q[qi(queue)];
                q.streaming = false;
                q.queued.clear();
            }
            "streamon" => {
                self.push(Op::Streamon { ctx, queue });
                self.ctxs[ci].q[qi(queue)].streaming = true;
            }
            "reqbufs" => {
                let count = if self.c.chance(50) {
                    0
                } else {
                    1 + self.c.below(4)
                };
                let memory = self.ctxs[ci].q[qi(queue)].memory.unwrap_or(Memory::Mmap);
                self.push(Op::Reqbufs {
                    ctx,
                    queue,
                    count,
                    memory,
                });
                let q = &mut self.ctxs[ci].q[qi(queue)];
                if !q.streaming {
                    q.count = count;
                    q.queued.clear();
                }
            }
            "create_bufs" => {
                let count = 1 + self.c.below(2);
                let memory = self.ctxs[ci].q[qi(queue)].memory.unwrap_or(Memory::Mmap);
                self.push(Op::CreateBufs {
                    ctx,
                    queue,
                    count,
                    memory,
                    width: None,
                    height: None,
                });
                let q = &mut self.ctxs[ci].q[qi(queue)];
                q.count += count;
            }
            "set_ctrl" => {
                if let Some(ctrl) = self.pick(self.cfg.profile.controls) {
                    let span = (ctrl.max - ctrl.min + 1).clamp(1, 1 << 20) as u32;
                    let value = ctrl.min + i64::from(self.c.below(span).min(50));
                    self.push(Op::SetCtrl {
                        ctx,
                        id: Hex(ctrl.id),
                        value,
                        request: None,
                    });
                }
            }
            "import_sync_file" => self.import_sync_file(ci),
            "close" if self.ctxs.iter().filter(|c| c.open).count() > 1 || self.c.chance(20) => {
                self.push(Op::Close { h: ctx });
                self.ctxs[ci].open = false;
            }
            "sleep" => {
                let ms = self.c.below(20) + 1;
                self.push(Op::Sleep { ms })
            }
            "g_fmt" => self.push(Op::GFmt { ctx, queue }),
            "querybuf" => {
                let index = self.c.below(self.ctxs[ci].q[qi(queue)].count.max(1));
                self.push(Op::Querybuf { ctx, queue, index });
            }
            "remove_bufs" => {
                // The kernel refuses queued buffers; the model keeps the count (a later QBUF
                // of a removed index is one more error path).
                let index = self.c.below(self.ctxs[ci].q[qi(queue)].count.max(1));
                let count = 1 + self.c.below(2);
                self.push(Op::RemoveBufs {
                    ctx,
                    queue,
                    index,
                    count,
                });
            }
            "mmap_dmabuf" => {
                // A consumer mapping the dmabuf it was handed: checked like a mapping of the
                // buffer, so it starts with the canary.
                if let Some((index, dmabuf)) = self.pick(&self.ctxs[ci].exports.clone()) {
                    let map = self.fresh(ResKind::Mapping);
                    self.push(Op::MmapDmabuf { dmabuf, ret: map });
                    self.canary(map);
                    self.ctxs[ci].maps.push((index, map));
                }
            }
            "munmap" => {
                if let Some(i) = self.pick_index(self.ctxs[ci].maps.len()) {
                    let (_, map) = self.ctxs[ci].maps.remove(i);
                    self.canaries.remove(&map);
                    self.push(Op::Munmap { h: map });
                }
            }
            "close_dmabuf" => {
                // Closing the fd while sync_files exported from it live on.
                if let Some(i) = self.pick_index(self.ctxs[ci].exports.len()) {
                    let (_, d) = self.ctxs[ci].exports.remove(i);
                    self.push(Op::CloseDmabuf { h: d });
                }
            }
            "close_sync" => {
                if let Some(i) = self.pick_index(self.syncs.len()) {
                    let h = self.syncs.remove(i);
                    self.push(Op::CloseSync { h });
                }
            }
            "merge" => {
                // Fences of different buffers, contexts or timelines in one sync_file.
                if let (Some(a), Some(b)) = (
                    self.pick(&self.syncs.clone()),
                    self.pick(&self.syncs.clone()),
                ) {
                    let ret = self.fresh(ResKind::SyncFile);
                    self.push(Op::Merge { a, b, ret });
                    self.syncs.push(ret);
                }
            }
            _ => {}
        }
    }

    fn qbuf(&mut self, ci: usize, queue: Queue) {
        let ctx = self.ctxs[ci].h;
        let q = &self.ctxs[ci].q[qi(queue)];
        let free: Vec<u32> = (0..q.count).filter(|i| !q.queued.contains(i)).collect();
        let bytesused = (queue == Queue::Out).then_some(q.sizeimage);
        let Some(index) = self.pick(&free) else {
            return;
        };
        // An importing OUTPUT queue takes another context's exported CAPTURE buffer.
        let imported = match (queue, self.ctxs[ci].import_from) {
            (Queue::Out, Some(src)) => match self.pick(&self.ctxs[src].exports.clone()) {
                Some((_, d)) => Some(d),
                None => return,
            },
            _ => None,
        };
        let p = self.cfg.profile;
        let use_req = queue == Queue::Out
            && (p.requests == Requests::Required
                || (p.requests == Requests::Optional && self.c.chance(15)));
        let request = use_req.then(|| self.fresh(ResKind::Request));
        if let Some(r) = request {
            self.ops.push(Op::RequestAlloc { ctx, ret: r });
        }
        let flags = (queue == Queue::Out && p.hold_capture && self.c.chance(10))
            .then_some(Hex(crate::uapi::v4l2::V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF));
        self.push(Op::Qbuf {
            ctx,
            queue,
            index,
            memory: imported.map(|_| Memory::Dmabuf),
            dmabuf: imported,
            request,
            bytesused,
            flags,
            field: None,
        });
        if let Some(req) = request {
            self.push(Op::RequestQueue { req });
            // Reinit of a request still queued or running is refused; of a completed one, allowed.
            if self.c.chance(10) {
                self.push(Op::RequestReinit { req });
            }
            self.ops.push(Op::CloseRequest { h: req });
        }
        self.ctxs[ci].q[qi(queue)].queued.push_back(index);
    }

    /// Export CAPTURE buffer `index` of context `ci` as a new dmabuf.
    fn expbuf(&mut self, ci: usize, index: u32) -> Handle {
        let d = self.fresh(ResKind::Dmabuf);
        self.push(Op::Expbuf {
            ctx: self.ctxs[ci].h,
            queue: Queue::Cap,
            index,
            plane: None,
            flags: None,
            ret: d,
        });
        self.ctxs[ci].exports.push((index, d));
        d
    }

    /// A consumer of the frames (a compositor, the next pipeline stage): canary the CAPTURE
    /// buffer, queue it with an OUTPUT buffer, export its fence, wait for it and read the frame.
    /// A fence that says done while the frame is not there is a stale read.
    ///
    /// Sometimes the consumer is alone on the device with a fresh stream (a pipeline starting
    /// up): the program's other contexts stop streaming and this one restarts, queues, then
    /// streams on, and dequeues the frame after reading it. Its job is then the device's only
    /// one, started before the STREAMON returned, so a fence that says nothing pending is
    /// judged on any kernel, not only where a producer fence exists.
    fn reader(&mut self, ci: usize, wait_ms: u32) {
        let ctx = self.ctxs[ci].h;
        let count = self.ctxs[ci].q[1].count;
        if count == 0 {
            return;
        }
        let solo = self.c.chance(35);
        if solo {
            for c in 0..self.ctxs.len() {
                if !self.ctxs[c].open {
                    continue;
                }
                for queue in [Queue::Out, Queue::Cap] {
                    let h = self.ctxs[c].h;
                    self.push(Op::Streamoff { ctx: h, queue });
                    let q = &mut self.ctxs[c].q[qi(queue)];
                    q.streaming = false;
                    q.queued.clear();
                }
            }
        }
        // A mapped CAPTURE buffer (mapping one if none is), and a dmabuf of it.
        let m = match self.pick(&self.ctxs[ci].maps.clone()) {
            Some(im) => im,
            None => {
                let index = self.c.below(count);
                let map = self.fresh(ResKind::Mapping);
                self.push(Op::Mmap {
                    ctx,
                    queue: Queue::Cap,
                    index,
                    plane: None,
                    ret: map,
                });
                // Every mapping starts with the canary (never corrupted), so a check of it
                // reads "the canary should be gone", never an expected output the generator
                // cannot know.
                self.canary(map);
                self.ctxs[ci].maps.push((index, map));
                (index, map)
            }
        };
        let (index, m) = m;
        let d = match self.ctxs[ci].exports.iter().find(|(x, _)| *x == index) {
            Some(&(_, d)) => d,
            None => self.expbuf(ci, index),
        };
        if !self.ctxs[ci].q[1].queued.contains(&index) {
            self.canary(m);
            self.push(mmap_qbuf(ctx, Queue::Cap, index));
            self.ctxs[ci].q[1].queued.push_back(index);
            self.qbuf(ci, Queue::Out);
        }
        if solo {
            for queue in [Queue::Out, Queue::Cap] {
                self.push(Op::Streamon { ctx, queue });
                self.ctxs[ci].q[qi(queue)].streaming = true;
            }
        }
        let s = self.fresh(ResKind::SyncFile);
        self.push(Op::ExportSyncFile {
            dmabuf: d,
            dir: SyncDir::Read,
            ret: s,
        });
        self.syncs.push(s);
        self.push(Op::Wait {
            sync: s,
            timeout_ms: wait_ms.max(self.cfg.max_wait_ms / 2),
        });
        self.check(m);
        if solo {
            self.push(Op::Dqbuf {
                ctx,
                queue: Queue::Cap,
                memory: None,
                timeout_ms: Some(self.cfg.max_wait_ms),
            });
            self.ctxs[ci].q[1].queued.pop_front();
        }
    }

    /// Fill a mapping with a canary byte no fill before it used (one per fill, never 0x00, the
    /// contents of a fresh buffer). A frame is often a copy of another buffer (a dmabuf imported
    /// as OUTPUT) holding an older canary: with one byte for every fill such a frame looked like
    /// the canary still there, a stale read that was not.
    fn canary(&mut self, map: Handle) {
        let byte = self.next_canary;
        self.next_canary = self.next_canary.checked_add(1).unwrap_or(1);
        // Not corrupted: a check must know what it looks for.
        self.ops.push(Op::Fill {
            map,
            byte: Hex(byte.into()),
        });
        self.canaries.insert(map, byte);
    }

    /// Check that the device overwrote the canary last filled into `map` (every mapping gets
    /// one when it is made).
    fn check(&mut self, map: Handle) {
        let byte = self.canaries[&map];
        // Not corrupted either: a check is a read in userspace, so a corrupted one reaches no
        // kernel code, and one naming another mapping would ask for that mapping's contents to
        // equal this canary, the expected-output form: a stale read that is not.
        self.ops.push(Op::Check {
            map,
            byte: Hex(byte.into()),
        });
    }

    /// Inject a sw_sync fence into a CAPTURE dmabuf, and usually signal it later.
    fn import_sync_file(&mut self, ci: usize) {
        if !self.cfg.sw_sync {
            return;
        }
        let Some((_, dmabuf)) = self.pick(&self.ctxs[ci].exports.clone()) else {
            return;
        };
        let timeline = match self.pick(&self.timelines.clone()) {
            Some(t) => t,
            None => {
                let t = self.fresh(ResKind::Timeline);
                self.ops.push(Op::SwTimeline { ret: t });
                self.timelines.push(t);
                t
            }
        };
        let s = self.fresh(ResKind::SyncFile);
        let value = 1 + self.c.below(3);
        self.push(Op::SwFence {
            timeline,
            value,
            ret: s,
        });
        let dir = self.pick(SyncDir::NAMED).unwrap();
        self.push(Op::ImportSyncFile {
            dmabuf,
            sync: s,
            dir,
        });
        let e = self.injected.entry(dmabuf).or_insert((timeline, value));
        if e.0 != timeline || e.1 < value {
            *e = (timeline, value.max(e.1));
        }
        // The buffer's resv now holds the release fence and this one (read or write usage).
        // Without the sync_file, the resv holds the fence's last reference when it signals.
        if self.c.chance(30) {
            self.push(Op::CloseSync { h: s });
        } else {
            self.syncs.push(s);
        }
        // Another buffer's fences (an export of a resv with several, or a merge) imported here:
        // fences of one context's buffer in another's resv.
        if self.c.chance(30) {
            if let Some(other) = self.pick(&self.syncs.clone()) {
                let dir = self.pick(SyncDir::NAMED).unwrap();
                self.push(Op::ImportSyncFile {
                    dmabuf,
                    sync: other,
                    dir,
                });
            }
        }
        if self.c.chance(80) {
            let by = 1 + self.c.below(3);
            self.sw_inc(timeline, by);
        }
    }

    /// SW_INC a timeline, and note how far it got.
    fn sw_inc(&mut self, timeline: Handle, by: u32) {
        *self.timeline_at.entry(timeline).or_default() += by;
        // The model counts on the timeline getting there (a DMA_BUF_IOCTL_SYNC after it would
        // block on the fence until the op's deadline): a corrupted one is followed by the
        // valid one.
        self.setup(Op::SwInc { timeline, by });
    }
}

/// A QBUF of MMAP buffer `index` with nothing else set (the kernel fills in the rest).
pub(crate) fn mmap_qbuf(ctx: Handle, queue: Queue, index: u32) -> Op {
    Op::Qbuf {
        ctx,
        queue,
        index,
        memory: None,
        dmabuf: None,
        request: None,
        bytesused: None,
        flags: None,
        field: None,
    }
}

/// The contexts a pump can stream: the prologue left both queues streaming with MMAP buffers,
/// and the driver runs a job without a request (a stateless decoder's client needs a request
/// with its controls per frame, which `stream` does not make).
fn pumpable<'m>(ctxs: &'m [CtxModel], profile: &DriverProfile) -> Vec<&'m CtxModel> {
    if profile.requests == Requests::Required {
        return Vec::new();
    }
    ctxs.iter()
        .filter(|m| {
            m.q.iter()
                .all(|q| q.streaming && q.count > 0 && q.memory == Some(Memory::Mmap))
        })
        .collect()
}

/// A pump's ops on context `m`: a client (`stream`) that keeps every buffer pair queued and
/// re-queues each as it comes back, as a player does. Mostly it runs as long as the program's
/// other threads do (its thread holds only clients, so it stops when they are done and waits
/// out a stream they stopped: the chaos always has live jobs to land on); now and then it
/// stops after 8 to 64 jobs, and the rest of the body meets a stream that has ended.
fn pump_ops(c: &mut impl Choices, m: &CtxModel, max_wait_ms: u32) -> Vec<Op> {
    let jobs = if c.chance(90) {
        CLIENT_JOBS
    } else {
        8 + c.below(57)
    };
    vec![Op::Stream {
        ctx: m.h,
        jobs,
        timeout_ms: max_wait_ms,
    }]
}

/// Jobs of a client that runs as long as the others: more than any body lasts (the executor
/// also caps its time at the longest wait).
const CLIENT_JOBS: u32 = 100_000;

/// A restarting thread's ops on `ctx`: `rounds` times a pause, STREAMOFF and STREAMON of a
/// queue, now and then a QUERYBUF or G_FMT between. Half the pauses are short (0-3 ms: a
/// restart right after the last); the others are up to 120 ms, so that the restarts land all
/// over the pump's life rather than in its first jobs.
fn restart_ops(c: &mut impl Choices, ctx: Handle, rounds: usize) -> Vec<Op> {
    let mut v = Vec::new();
    for _ in 0..rounds {
        let ms = if c.chance(50) {
            c.below(4)
        } else {
            4 + c.below(117)
        };
        v.push(Op::Sleep { ms });
        let queue = if c.chance(50) { Queue::Out } else { Queue::Cap };
        v.push(Op::Streamoff { ctx, queue });
        if c.chance(20) {
            v.push(Op::Querybuf {
                ctx,
                queue,
                index: c.below(4),
            });
        }
        v.push(Op::Streamon { ctx, queue });
        if c.chance(10) {
            v.push(Op::GFmt { ctx, queue });
        }
    }
    v
}

/// Generate a program for `cfg.profile` from `choices`.
pub fn generate(choices: &mut impl Choices, cfg: &GenConfig) -> Program {
    let mut g = Gen {
        c: choices,
        cfg,
        ops: Vec::new(),
        next: BTreeMap::new(),
        ctxs: Vec::new(),
        syncs: Vec::new(),
        timelines: Vec::new(),
        timeline_at: BTreeMap::new(),
        injected: BTreeMap::new(),
        canaries: BTreeMap::new(),
        next_canary: 0x5a,
        actions: Vec::new(),
        after_prologue: Vec::new(),
    };
    g.prologue();
    g.after_prologue = g.ctxs.clone();
    let body = g.ops.len();
    for _ in 0..cfg.body_ops {
        if g.c.exhausted() {
            break;
        }
        g.body_step();
    }
    let tail = g.ops.len();
    // Timelines left open would hold their fences unsignalled: close them (signals them).
    for t in g.timelines.clone() {
        g.ops.push(Op::CloseTimeline { h: t });
    }
    // Threads are chosen last, from choices after all the ops': a program's ops are the same
    // whatever the thread share.
    let mut p = g.threads(body, tail);
    p.ops.shrink_to_fit();
    p
}

impl<C: Choices> Gen<'_, C> {
    /// The program, its body spread over threads when the share says so: after the prologue
    /// and a barrier, each action's ops on one thread, a barrier before an action now and then,
    /// and the tail (closing timelines) on the main thread after a last barrier. In a pumped
    /// program (the pump share) every streaming context gets a pump thread besides the body's;
    /// in a threaded one without, half the time one context does. A threaded program with a
    /// pump also gets a restarter of a pumped stream.
    fn threads(self, body: usize, tail: usize) -> Program {
        let header = vec![("driver".to_string(), self.cfg.profile.name.to_string())];
        let c = self.c;
        let threaded = tail > body && c.chance(self.cfg.thread_percent);
        // The pump share is drawn only when there is one, so programs of a generator without
        // pumps (the fuzz targets') keep their choices.
        let pumped = tail > body
            && self.cfg.pump_percent > 0
            && !pumpable(&self.after_prologue, self.cfg.profile).is_empty()
            && c.chance(self.cfg.pump_percent);
        if !threaded && !pumped {
            return Program {
                header,
                ops: self.ops,
                threads: Vec::new(),
            };
        }
        let n = if threaded { 2 + c.below(3) } else { 1 };
        let usable = pumpable(&self.after_prologue, self.cfg.profile);
        let mut extra: Vec<Vec<Op>> = Vec::new();
        if pumped {
            // A client per streaming context, each on a thread of its own.
            for m in &usable {
                extra.push(pump_ops(c, m, self.cfg.max_wait_ms));
            }
        } else if c.chance(50) && !usable.is_empty() {
            // Half the threaded programs: one context streamed as fast as it can while the
            // body's threads act on the same handles.
            let m = usable[c.below(usable.len() as u32) as usize];
            extra.push(pump_ops(c, m, self.cfg.max_wait_ms));
        }
        // In a threaded program, beside a pump, a thread that restarts its stream again and
        // again (a client's seek or flush: STREAMOFF, STREAMON of one queue), with other looks
        // at the same context between: what a cancel does to jobs in flight at every point of
        // their life.
        if threaded && !extra.is_empty() {
            let i = c.below(extra.len() as u32) as usize;
            if let Some(Op::Stream { ctx, .. }) = extra[i].first() {
                let (ctx, rounds) = (*ctx, 4 + c.below(13) as usize);
                extra.push(restart_ops(c, ctx, rounds));
            }
        }
        let mut steps =
            Vec::with_capacity(self.ops.len() + extra.iter().map(Vec::len).sum::<usize>() + 8);
        let mut starts = self.actions.iter().copied().peekable();
        let mut thread = 0u8;
        for (i, op) in self.ops.into_iter().enumerate() {
            let mut starts_here = false;
            // Actions that made no op start where the next one does.
            while starts.peek().is_some_and(|&s| s <= i) {
                starts.next();
                starts_here = true;
            }
            if threaded && i >= body && i < tail && starts_here {
                if i > body && c.chance(8) {
                    steps.push((0, Op::Barrier {}));
                }
                thread = c.below(n) as u8;
            }
            // The prologue's contexts and buffers exist before any thread starts.
            if i == body {
                steps.push((0, Op::Barrier {}));
                for (t, ops) in extra.iter().enumerate() {
                    steps.extend(ops.iter().map(|op| ((n as usize + t) as u8, op.clone())));
                }
            }
            if i == tail {
                steps.push((0, Op::Barrier {}));
                thread = 0;
            }
            steps.push((if i >= body { thread } else { 0 }, op));
        }
        Program::from_steps(header, steps)
    }
}

/// A program from fuzz bytes for a driver (the fuzz targets' entry).
pub fn from_bytes(bytes: &[u8], profile: &'static DriverProfile) -> Program {
    let mut u = arbitrary::Unstructured::new(bytes);
    let mut cfg = GenConfig::new(profile);
    cfg.contexts = 1 + u.below(2);
    cfg.body_ops = 64;
    cfg.invalid_percent = 10;
    // Executions per second matter more to a fuzzer than long waits: a starved queue's DQBUF
    // costs 150 ms, not 500.
    cfg.max_wait_ms = 150;
    cfg.thread_percent = 25;
    generate(&mut u, &cfg)
}

impl<'a> arbitrary::Arbitrary<'a> for Program {
    /// A vim2m program from the fuzzer's bytes; [`from_bytes`] picks another driver.
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut cfg = GenConfig::new(&crate::profile::driver::VIM2M);
        cfg.contexts = 1 + u.below(2);
        cfg.invalid_percent = 10;
        Ok(generate(u, &cfg))
    }
}
