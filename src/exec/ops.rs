//! How each op is carried out.
use super::outcome::{BufFacts, Detail, FenceFact, SyncFacts};
use super::{BufId, Ctx, ExecState, OpResult, QueueState, Resource};
use crate::device;
use crate::program::{Handle, Memory, Op, Queue, ResKind};
use crate::uapi::dmabuf::*;
use crate::uapi::ioctl;
use crate::uapi::sync_file::*;
use crate::uapi::v4l2::*;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// An op's result and optional detail.
pub(super) type Done = (OpResult, Option<Detail>);

fn ok(v: i64) -> Done {
    (OpResult::Ok { value: v }, None)
}

fn ok_with(v: i64, detail: String) -> Done {
    ok_detail(v, Detail::Text(detail.into()))
}

fn ok_detail(v: i64, detail: Detail) -> Done {
    (OpResult::Ok { value: v }, Some(detail))
}

/// The most fences a sync_file's SYNC_IOC_FILE_INFO may report before the executor calls the
/// count a lie: a program's sync_files hold at most one fence per release fence, sw_sync fence
/// and merge it made, and programs are far shorter than this.
pub const MAX_FENCES: u32 = 4096;

fn open_path(path: &str, nonblock: bool) -> std::io::Result<OwnedFd> {
    let flags = libc::O_CLOEXEC | if nonblock { libc::O_NONBLOCK } else { 0 };
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
        .map(OwnedFd::from)
}

fn qidx(q: Queue) -> usize {
    usize::from(q == Queue::Cap)
}

/// The V4L2 buffer type of a program queue on this context.
fn buf_type(ctx: &Ctx, q: Queue) -> u32 {
    let (o, c) = device::buf_types(ctx.mplane);
    match q {
        Queue::Out => o,
        Queue::Cap => c,
        Queue::Raw(v) => v,
    }
}

fn errno_of(e: &std::io::Error) -> OpResult {
    OpResult::Err {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// A v4l2_buffer with room for planes. It lives on the stack (a heap box per op showed in the
/// harness overhead benchmark), so the planes pointer is set by [`Buf::raw`] right before use.
pub(super) struct Buf {
    pub(super) b: v4l2_buffer,
    pub(super) planes: [v4l2_plane; VIDEO_MAX_PLANES],
    mplane: bool,
}

impl Buf {
    pub(super) fn new(ctx: &Ctx, queue: Queue, index: u32, memory: u32) -> Buf {
        let mut buf = Buf {
            b: v4l2_buffer::default(),
            planes: [v4l2_plane::default(); VIDEO_MAX_PLANES],
            mplane: ctx.mplane,
        };
        buf.b.index = index;
        buf.b.type_ = buf_type(ctx, queue);
        buf.b.memory = memory;
        if ctx.mplane {
            buf.b.length = VIDEO_MAX_PLANES as u32;
        }
        buf
    }

    /// A buffer to QBUF as the kernel expects one by default: OUTPUT with the format's size
    /// used (unless `bytesused` says) and FIELD_NONE, CAPTURE with nothing used and FIELD_ANY;
    /// the context's plane count.
    pub(super) fn to_queue(
        ctx: &Ctx,
        queue: Queue,
        index: u32,
        memory: u32,
        bytesused: Option<u32>,
    ) -> Buf {
        let mut b = Buf::new(ctx, queue, index, memory);
        let qs = ctx.queues[qidx_any(queue)];
        let out = queue == Queue::Out;
        let used = bytesused.unwrap_or(if out { qs.sizeimage } else { 0 });
        b.b.field = if out { V4L2_FIELD_NONE } else { V4L2_FIELD_ANY };
        if ctx.mplane {
            b.b.length = qs.num_planes.max(1);
            b.planes[0].bytesused = used;
        } else {
            b.b.bytesused = used;
        }
        b
    }

    /// `f(fd, buffer)` for a v4l2_buffer ioctl, the planes pointer aimed at this `Buf`'s own
    /// planes and `length` clamped to them.
    pub(super) fn call(
        &mut self,
        fd: RawFd,
        f: unsafe fn(RawFd, &mut v4l2_buffer) -> nix::Result<i32>,
    ) -> nix::Result<i32> {
        if self.mplane {
            self.b.m.planes = self.planes.as_mut_ptr();
            self.b.length = self.b.length.min(VIDEO_MAX_PLANES as u32);
        }
        // SAFETY: with the multi-planar API the kernel follows `m.planes` for `length` entries,
        // both set just above to this Buf's own array. A single-planar buffer carries an fd,
        // an offset, or for USERPTR memory an address the executor never sets (0), which the
        // kernel checks as it checks any user address.
        unsafe { f(fd, &mut self.b) }
    }

    /// What the outcome shows of the returned buffer.
    fn facts(&self, revents: Option<PollFlags>) -> Detail {
        Detail::Buf(BufFacts {
            index: self.b.index,
            flags: self.b.flags,
            bytesused: self.b.bytesused,
            sequence: self.b.sequence,
            revents,
        })
    }
}

impl ExecState {
    /// Take ownership of an fd the kernel returned from `what` (an ioctl's name). It must be a
    /// new, open fd: a driver that says success without writing the fd (it stays -1, as the
    /// executor sets it) or hands back one the process already has would otherwise make the
    /// executor close someone else's fd (stdin, another handle's) when the handle goes.
    pub fn adopt_fd(&self, fd: i32, what: &str) -> Result<OwnedFd, OpResult> {
        if fd < 0 {
            return Err(OpResult::bad_reply(format!(
                "{what} returned success without an fd (fd field {fd})"
            )));
        }
        // Fds 0-2 are always open (super::std_fds_open), so the kernel cannot allocate them.
        if fd <= 2 || self.owns_fd(fd) {
            return Err(OpResult::bad_reply(format!(
                "{what} returned an fd the process already had open (fd {fd})"
            )));
        }
        // SAFETY: F_GETFD on any number is harmless; it fails for a closed fd.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(OpResult::bad_reply(format!(
                "{what} returned an fd that is not open (fd {fd})"
            )));
        }
        // SAFETY: the kernel just installed this fd for us; it is open and no resource owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Whether a live resource of the program holds `fd`.
    fn owns_fd(&self, fd: RawFd) -> bool {
        // An fd of another thread's handle counts while that handle's fd is still open.
        self.others
            .iter()
            .any(|w| w.upgrade().is_some_and(|f| f.as_raw_fd() == fd))
            || self.res.values().any(|r| match r {
                Resource::Ctx(c) => {
                    c.video.as_raw_fd() == fd
                        || c.media.as_ref().is_some_and(|m| m.as_raw_fd() == fd)
                }
                Resource::Fd(f) => f.as_raw_fd() == fd,
                Resource::Map(..) => false,
            })
    }

    pub(super) fn ctx(&self, h: &Handle) -> &Ctx {
        match self.res.get(h) {
            Some(Resource::Ctx(c)) => c,
            _ => unreachable!("handle kinds are checked by the parser and `unbound`"),
        }
    }

    fn ctx_mut(&mut self, h: &Handle) -> &mut Ctx {
        match self.res.get_mut(h) {
            Some(Resource::Ctx(c)) => c,
            _ => unreachable!("handle kinds are checked by the parser and `unbound`"),
        }
    }

    fn fd(&self, h: &Handle) -> RawFd {
        match self.res.get(h) {
            Some(Resource::Fd(f)) => f.as_raw_fd(),
            Some(Resource::Ctx(c)) => c.video.as_raw_fd(),
            _ => unreachable!("handle kinds are checked by the parser and `unbound`"),
        }
    }

    fn map(&self, h: &Handle) -> &memmap2::MmapRaw {
        match self.res.get(h) {
            Some(Resource::Map(m, _)) => m,
            _ => unreachable!("handle kinds are checked by the parser and `unbound`"),
        }
    }

    pub(super) fn bind(&mut self, h: Handle, r: Resource) {
        // A program may reuse a handle name: the old resource is released.
        self.res.insert(h, r);
    }

    pub(super) fn wait_ms(&self, ms: Option<u32>) -> Duration {
        ms.map_or(self.opts.default_wait, |m| Duration::from_millis(m.into()))
            .min(self.opts.max_wait)
    }

    /// poll() one fd until `events` or the timeout; EINTR resumes with the time left.
    fn poll(&self, fd: RawFd, events: PollFlags, wait: Duration) -> Result<PollFlags, OpResult> {
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            // SAFETY: fd is live for the duration of this call (owned by self.res).
            let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let mut pfd = [PollFd::new(bfd, events)];
            let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
            match nix::poll::poll(&mut pfd, ms) {
                Ok(0) => return Err(OpResult::TimedOut),
                Ok(_) => return Ok(pfd[0].revents().unwrap_or(PollFlags::empty())),
                Err(Errno::EINTR) if !self.deadline_fired() && Instant::now() < end => continue,
                Err(Errno::EINTR) => return Err(OpResult::TimedOut),
                Err(e) => return Err(OpResult::errno(e)),
            }
        }
    }

    /// Run an observer's [`Probe`](super::Probe): look at a sync_file's fences (exporting one
    /// from a dmabuf, every fence it holds), and wait for them while a producer fence is
    /// pending and nothing else is.
    pub(super) fn probe(&mut self, p: &super::Probe) -> super::ProbeOutcome {
        let none = |r| super::ProbeOutcome {
            before: Err(r),
            signalled: false,
            after: None,
        };
        let Some(fd) = self.raw_fd(&p.of) else {
            return none(OpResult::Skipped {
                reason: format!("{} is unbound", p.of).into(),
            });
        };
        // Kept until the probe ends, then closed.
        let mut exported = None;
        if p.of.kind == ResKind::Dmabuf {
            let mut e = dma_buf_export_sync_file {
                flags: DMA_BUF_SYNC_RW as u32,
                fd: -1,
            };
            if let Err(r) = self.retry(|| ioctl::export_sync_file(fd, &mut e)) {
                return none(r);
            }
            match self.adopt_fd(e.fd, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE") {
                Ok(f) => exported = Some(f),
                Err(r) => return none(r),
            }
        }
        let sync = exported.as_ref().map_or(fd, |f| f.as_raw_fd());
        let before = fence_info(sync);
        let held = before.as_ref().is_ok_and(|f| {
            f.fences.iter().any(|x| x.producer() && x.pending())
                && !f.fences.iter().any(|x| !x.producer() && x.pending())
        });
        if !held {
            return super::ProbeOutcome {
                before,
                signalled: false,
                after: None,
            };
        }
        let signalled = self.poll(sync, PollFlags::POLLIN, p.wait).is_ok();
        let after = (!signalled).then(|| fence_info(sync));
        super::ProbeOutcome {
            before,
            signalled,
            after,
        }
    }

    /// Execute one op whose handles are all bound.
    pub(super) fn exec(&mut self, op: &Op) -> Done {
        match self.exec_inner(op) {
            Ok(d) => d,
            Err(r) => (r, None),
        }
    }

    fn exec_inner(&mut self, op: &Op) -> Result<Done, OpResult> {
        Ok(match op {
            Op::Open { node, ret } => {
                let path = device::resolve(node).map_err(|e| OpResult::Skipped {
                    reason: format!("{e:#}").into(),
                })?;
                let video = match device::take_spare(node) {
                    Some(f) => OwnedFd::from(f),
                    None => open_path(&path.to_string_lossy(), true).map_err(|e| errno_of(&e))?,
                };
                let cap = device::querycap(video.as_raw_fd()).map_err(OpResult::errno)?;
                let mplane = device::node_caps(&cap) & V4L2_CAP_VIDEO_M2M_MPLANE != 0;
                let fd = video.as_raw_fd();
                let claim = std::sync::Arc::new(super::NodeClaim::of_fd(&video));
                let q = QueueState {
                    memory: V4L2_MEMORY_MMAP,
                    sizeimage: 0,
                    num_planes: 1,
                    count: 0,
                };
                self.bind(
                    *ret,
                    Resource::Ctx(Ctx {
                        video: video.into(),
                        media: None,
                        path: path.clone(),
                        driver: cstr(&cap.driver),
                        mplane,
                        queues: [q; 2],
                        claim,
                    }),
                );
                ok_with(
                    fd.into(),
                    format!(
                        "{} {}",
                        path.display(),
                        if mplane { "mplane" } else { "single-planar" }
                    ),
                )
            }
            Op::Close { h }
            | Op::CloseDmabuf { h }
            | Op::CloseSync { h }
            | Op::CloseRequest { h }
            | Op::CloseTimeline { h }
            | Op::Munmap { h } => {
                // close() of a video fd can block in the kernel (m2m cancel waits for the job):
                // the watchdog bounds it like any other op.
                self.res.remove(h);
                ok(0)
            }
            Op::GFmt { ctx, queue } => {
                let c = self.ctx(ctx);
                let mut f = v4l2_format {
                    type_: buf_type(c, *queue),
                    ..Default::default()
                };
                self.retry(|| ioctl::g_fmt(c.video.as_raw_fd(), &mut f))?;
                self.format_result(ctx, *queue, &f, "VIDIOC_G_FMT")?
            }
            Op::SFmt {
                ctx,
                queue,
                fourcc,
                width,
                height,
                planes,
            } => {
                let c = self.ctx(ctx);
                let mut f = v4l2_format {
                    type_: buf_type(c, *queue),
                    ..Default::default()
                };
                if c.mplane {
                    let mut mp = v4l2_pix_format_mplane {
                        width: *width,
                        height: *height,
                        pixelformat: fourcc.0,
                        field: V4L2_FIELD_NONE,
                        ..Default::default()
                    };
                    mp.num_planes = planes.unwrap_or(1) as u8;
                    f.fmt.pix_mp = mp;
                } else {
                    f.fmt.pix = v4l2_pix_format {
                        width: *width,
                        height: *height,
                        pixelformat: fourcc.0,
                        field: V4L2_FIELD_NONE,
                        ..Default::default()
                    };
                }
                self.retry(|| ioctl::s_fmt(c.video.as_raw_fd(), &mut f))?;
                self.format_result(ctx, *queue, &f, "VIDIOC_S_FMT")?
            }
            Op::Reqbufs {
                ctx,
                queue,
                count,
                memory,
            } => {
                let c = self.ctx(ctx);
                let mut rb = v4l2_requestbuffers {
                    count: *count,
                    type_: buf_type(c, *queue),
                    memory: memory.raw(),
                    ..Default::default()
                };
                self.retry(|| ioctl::reqbufs(c.video.as_raw_fd(), &mut rb))?;
                if let Queue::Out | Queue::Cap = queue {
                    let qs = &mut self.ctx_mut(ctx).queues[qidx(*queue)];
                    qs.memory = memory.raw();
                    qs.count = rb.count;
                }
                ok_with(
                    rb.count.into(),
                    format!("count={} caps={:#x}", rb.count, rb.capabilities),
                )
            }
            Op::CreateBufs {
                ctx,
                queue,
                count,
                memory,
                width,
                height,
            } => {
                let c = self.ctx(ctx);
                let mut cb = v4l2_create_buffers {
                    count: *count,
                    memory: memory.raw(),
                    ..Default::default()
                };
                cb.format.type_ = buf_type(c, *queue);
                self.retry(|| ioctl::g_fmt(c.video.as_raw_fd(), &mut cb.format))?;
                // SAFETY: the union member matching the node's API was just filled by G_FMT.
                unsafe {
                    if c.mplane {
                        let mut mp = cb.format.fmt.pix_mp;
                        mp.width = width.unwrap_or(mp.width);
                        mp.height = height.unwrap_or(mp.height);
                        cb.format.fmt.pix_mp = mp;
                    } else {
                        cb.format.fmt.pix.width = width.unwrap_or(cb.format.fmt.pix.width);
                        cb.format.fmt.pix.height = height.unwrap_or(cb.format.fmt.pix.height);
                    }
                }
                self.retry(|| ioctl::create_bufs(c.video.as_raw_fd(), &mut cb))?;
                if let Queue::Out | Queue::Cap = queue {
                    let qs = &mut self.ctx_mut(ctx).queues[qidx(*queue)];
                    qs.memory = memory.raw();
                    qs.count = qs.count.max(cb.index.saturating_add(cb.count));
                }
                ok_with(
                    cb.index.into(),
                    format!("index={} count={}", cb.index, cb.count),
                )
            }
            Op::RemoveBufs {
                ctx,
                queue,
                index,
                count,
            } => {
                let c = self.ctx(ctx);
                let mut rb = v4l2_remove_buffers {
                    index: *index,
                    count: *count,
                    type_: buf_type(c, *queue),
                    ..Default::default()
                };
                self.retry(|| ioctl::remove_bufs(c.video.as_raw_fd(), &mut rb))?;
                ok(0)
            }
            Op::Querybuf { ctx, queue, index } => {
                let c = self.ctx(ctx);
                let mut b = Buf::new(c, *queue, *index, c.queues[qidx_any(*queue)].memory);
                self.retry(|| b.call(c.video.as_raw_fd(), ioctl::querybuf))?;
                ok_detail(b.b.flags.into(), b.facts(None))
            }
            Op::Mmap {
                ctx,
                queue,
                index,
                plane,
                ret,
            } => {
                let c = self.ctx(ctx);
                let mut b = Buf::new(c, *queue, *index, V4L2_MEMORY_MMAP);
                self.retry(|| b.call(c.video.as_raw_fd(), ioctl::querybuf))?;
                let p = plane.unwrap_or(0) as usize;
                // SAFETY: QUERYBUF filled the union member of this API (offset / planes).
                let (offset, len) = unsafe {
                    if c.mplane {
                        let pl = b.planes.get(p).ok_or(OpResult::Err {
                            errno: libc::EINVAL,
                        })?;
                        (pl.m.mem_offset, pl.length)
                    } else {
                        (b.b.m.offset, b.b.length)
                    }
                };
                let m = memmap2::MmapOptions::new()
                    .offset(offset.into())
                    .len(len as usize)
                    .map_raw(c.video.as_raw_fd())
                    .map_err(|e| errno_of(&e))?;
                let claim = c.claim.share();
                self.bind(*ret, Resource::Map(m.into(), Some(claim.into())));
                self.provenance.insert(
                    *ret,
                    BufId {
                        ctx: *ctx,
                        queue: *queue,
                        index: *index,
                    },
                );
                ok_with(len.into(), format!("offset={offset:#x} length={len}"))
            }
            Op::MmapDmabuf { dmabuf, ret } => {
                let fd = self.fd(dmabuf);
                // SAFETY: lseek on a live fd.
                let len = unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
                if len < 0 {
                    return Err(OpResult::errno(Errno::last()));
                }
                let m = memmap2::MmapOptions::new()
                    .len(len as usize)
                    .map_raw(fd)
                    .map_err(|e| errno_of(&e))?;
                self.bind(*ret, Resource::Map(m.into(), None));
                // A mapping of the dmabuf is a mapping of its buffer: its fills and checks are
                // the buffer's, for the oracles too.
                if let Some(b) = self.provenance.get(dmabuf).copied() {
                    self.provenance.insert(*ret, b);
                }
                ok(len as i64)
            }
            Op::Fill { map, byte } => {
                let m = self.map(map);
                // SAFETY: the mapping is live, `len` bytes long, owned by this state and reached
                // only through raw pointers; another thread or the device may write it
                // concurrently, which is the race under test, not UB of ours: bytes are plain
                // data. A fault in it is caught and its pages replaced (`memfault`).
                match unsafe { super::memfault::fill(m.as_mut_ptr(), m.len(), byte.0 as u8) } {
                    Ok(()) => ok(m.len() as i64),
                    Err(f) => super::memfault::done(&f, m.len(), "writing"),
                }
            }
            Op::Check { map, byte } => {
                let m = self.map(map);
                // SAFETY: as for Fill.
                match unsafe { super::memfault::differing(m.as_ptr(), m.len(), byte.0 as u8) } {
                    Ok(differ) => ok_with(
                        differ as i64,
                        format!(
                            "{differ} of {} bytes differ from {:#04x}",
                            m.len(),
                            byte.0 as u8
                        ),
                    ),
                    Err(f) => super::memfault::done(&f, m.len(), "reading"),
                }
            }
            Op::Qbuf {
                ctx,
                queue,
                index,
                memory,
                dmabuf,
                request,
                bytesused,
                flags,
                field,
            } => {
                let c = self.ctx(ctx);
                let qs = c.queues[qidx_any(*queue)];
                let mem = memory.map_or(qs.memory, Memory::raw);
                let mut b = Buf::to_queue(c, *queue, *index, mem, *bytesused);
                b.b.flags = flags.map_or(0, |f| f.0);
                if let Some(f) = field {
                    b.b.field = *f;
                }
                let dfd = dmabuf.map(|d| self.fd(&d));
                let dlen = match dfd {
                    // SAFETY: lseek on a live fd.
                    Some(fd) => unsafe { libc::lseek(fd, 0, libc::SEEK_END).max(0) as u32 },
                    None => 0,
                };
                match (c.mplane, dfd) {
                    (true, Some(fd)) => {
                        b.planes[0].m.fd = fd;
                        b.planes[0].length = dlen;
                    }
                    (false, Some(fd)) => {
                        b.b.m.fd = fd;
                        b.b.length = dlen;
                    }
                    (_, None) => {}
                }
                if let Some(r) = request {
                    b.b.flags |= V4L2_BUF_FLAG_REQUEST_FD;
                    b.b.request_fd = self.fd(r);
                }
                self.retry(|| b.call(c.video.as_raw_fd(), ioctl::qbuf))?;
                ok_detail(b.b.index.into(), b.facts(None))
            }
            Op::Dqbuf {
                ctx,
                queue,
                memory,
                timeout_ms,
            } => {
                let c = self.ctx(ctx);
                let fd = c.video.as_raw_fd();
                let mem = memory.map_or(c.queues[qidx_any(*queue)].memory, Memory::raw);
                let events = if *queue == Queue::Out {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                let revents =
                    self.poll(fd, events | PollFlags::POLLPRI, self.wait_ms(*timeout_ms))?;
                let mut b = Buf::new(c, *queue, 0, mem);
                self.retry(|| b.call(fd, ioctl::dqbuf))?;
                ok_detail(b.b.index.into(), b.facts(Some(revents)))
            }
            Op::Stream {
                ctx,
                jobs,
                timeout_ms,
            } => self.stream(ctx, *jobs, *timeout_ms)?,
            Op::Streamon { ctx, queue } | Op::Streamoff { ctx, queue } => {
                let c = self.ctx(ctx);
                let mut t = buf_type(c, *queue) as libc::c_int;
                let fd = c.video.as_raw_fd();
                if matches!(op, Op::Streamon { .. }) {
                    self.retry(|| ioctl::streamon(fd, &mut t))?;
                } else {
                    self.retry(|| ioctl::streamoff(fd, &mut t))?;
                }
                ok(0)
            }
            Op::Expbuf {
                ctx,
                queue,
                index,
                plane,
                flags,
                ret,
            } => {
                let c = self.ctx(ctx);
                let mut e = v4l2_exportbuffer {
                    type_: buf_type(c, *queue),
                    index: *index,
                    plane: plane.unwrap_or(0),
                    flags: flags.map_or((libc::O_CLOEXEC | libc::O_RDWR) as u32, |f| f.0),
                    fd: -1,
                    ..Default::default()
                };
                self.retry(|| ioctl::expbuf(c.video.as_raw_fd(), &mut e))?;
                let fd = e.fd;
                let owned = self.adopt_fd(fd, "VIDIOC_EXPBUF")?;
                self.bind(*ret, Resource::Fd(owned.into()));
                self.provenance.insert(
                    *ret,
                    BufId {
                        ctx: *ctx,
                        queue: *queue,
                        index: *index,
                    },
                );
                ok_with(fd.into(), format!("ino={}", ino(fd)))
            }
            Op::ExportSyncFile { dmabuf, dir, ret } => {
                let mut e = dma_buf_export_sync_file {
                    flags: dir.raw(),
                    fd: -1,
                };
                let fd = self.fd(dmabuf);
                self.retry(|| ioctl::export_sync_file(fd, &mut e))?;
                let owned = self.adopt_fd(e.fd, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE")?;
                self.bind(*ret, Resource::Fd(owned.into()));
                if let Some(b) = self.provenance.get(dmabuf).copied() {
                    self.provenance.insert(*ret, b);
                }
                ok_detail(e.fd.into(), info_detail(e.fd, None)?)
            }
            Op::ImportSyncFile { dmabuf, sync, dir } => {
                let mut i = dma_buf_import_sync_file {
                    flags: dir.raw(),
                    fd: self.fd(sync),
                };
                let fd = self.fd(dmabuf);
                self.retry(|| ioctl::import_sync_file(fd, &mut i))?;
                ok(0)
            }
            Op::DmabufSync { dmabuf, phase, dir } => {
                let mut s = dma_buf_sync {
                    flags: u64::from(phase.raw() | dir.raw()),
                };
                let fd = self.fd(dmabuf);
                self.retry(|| ioctl::dma_buf_sync(fd, &mut s))?;
                ok(0)
            }
            Op::Wait { sync, timeout_ms } => {
                let fd = self.fd(sync);
                let wait = self.wait_ms(Some(*timeout_ms));
                let r = self.poll(fd, PollFlags::POLLIN, wait);
                match r {
                    Ok(rev) => ok_detail(1, info_detail(fd, Some(rev))?),
                    Err(e) => (e, Some(info_detail(fd, None)?)),
                }
            }
            Op::PollDmabuf {
                dmabuf,
                events,
                timeout_ms,
            } => {
                let fd = self.fd(dmabuf);
                let ev = PollFlags::from_bits_truncate(events.raw() as i16);
                let rev = self.poll(fd, ev, self.wait_ms(Some(*timeout_ms)))?;
                ok(rev.bits().into())
            }
            Op::FenceInfo { sync } => {
                let facts = fence_info(self.fd(sync))?;
                ok_detail(facts.status.into(), Detail::Fences(Box::new(facts)))
            }
            Op::Merge { a, b, ret } => {
                let mut m = sync_merge_data {
                    fd2: self.fd(b),
                    fence: -1,
                    ..Default::default()
                };
                m.name[..7].copy_from_slice(b"m2mfuzz");
                let fd = self.fd(a);
                self.retry(|| ioctl::sync_merge(fd, &mut m))?;
                let owned = self.adopt_fd(m.fence, "SYNC_IOC_MERGE")?;
                self.bind(*ret, Resource::Fd(owned.into()));
                ok(m.fence.into())
            }
            Op::RequestAlloc { ctx, ret } => {
                let media_fd = self.media_fd(ctx)?;
                let mut fd: libc::c_int = -1;
                self.retry(|| ioctl::request_alloc(media_fd, &mut fd))?;
                let owned = self.adopt_fd(fd, "MEDIA_IOC_REQUEST_ALLOC")?;
                self.bind(*ret, Resource::Fd(owned.into()));
                ok(fd.into())
            }
            Op::RequestQueue { req } => {
                let fd = self.fd(req);
                self.retry(|| ioctl::request_queue(fd))?;
                ok(0)
            }
            Op::RequestReinit { req } => {
                let fd = self.fd(req);
                self.retry(|| ioctl::request_reinit(fd))?;
                ok(0)
            }
            Op::SetCtrl {
                ctx,
                id,
                value,
                request,
            } => {
                let mut ctrl = v4l2_ext_control {
                    id: id.0,
                    size: 0,
                    reserved2: [0],
                    value64: *value,
                };
                let mut cs = v4l2_ext_controls {
                    which: if request.is_some() {
                        V4L2_CTRL_WHICH_REQUEST_VAL
                    } else {
                        V4L2_CTRL_WHICH_CUR_VAL
                    },
                    count: 1,
                    request_fd: request.map_or(0, |r| self.fd(&r)),
                    controls: &mut ctrl,
                    ..Default::default()
                };
                let fd = self.fd(ctx);
                // SAFETY: `controls` points to the one control `count` says, alive until the
                // call returns.
                self.retry(|| unsafe { ioctl::s_ext_ctrls(fd, &mut cs) })?;
                ok(0)
            }
            Op::SwTimeline { ret } => {
                let fd = open_path("/sys/kernel/debug/sync/sw_sync", false).map_err(|e| {
                    OpResult::Skipped {
                        reason: format!(
                            "sw_sync unavailable ({e}): needs CONFIG_SW_SYNC and debugfs"
                        )
                        .into(),
                    }
                })?;
                let raw = fd.as_raw_fd();
                self.bind(*ret, Resource::Fd(fd.into()));
                ok(raw.into())
            }
            Op::SwFence {
                timeline,
                value,
                ret,
            } => {
                let mut d = sw_sync_create_fence_data {
                    value: *value,
                    fence: -1,
                    ..Default::default()
                };
                d.name[..7].copy_from_slice(b"m2mfuzz");
                let fd = self.fd(timeline);
                self.retry(|| ioctl::sw_sync_create_fence(fd, &mut d))?;
                let owned = self.adopt_fd(d.fence, "SW_SYNC_IOC_CREATE_FENCE")?;
                self.bind(*ret, Resource::Fd(owned.into()));
                ok(d.fence.into())
            }
            Op::SwInc { timeline, by } => {
                let mut v = *by;
                let fd = self.fd(timeline);
                self.retry(|| ioctl::sw_sync_inc(fd, &mut v))?;
                ok(0)
            }
            // The executor splits a program at its barriers; on one thread it is nothing.
            Op::Barrier {} => ok(0),
            Op::Sleep { ms } => {
                std::thread::sleep(self.wait_ms(Some(*ms)));
                ok(0)
            }
        })
    }

    /// Record S_FMT/G_FMT (`what`) results and describe them. A plane count beyond
    /// VIDEO_MAX_PLANES is a bad reply; the count kept for later QBUFs is clamped.
    fn format_result(
        &mut self,
        ctx: &Handle,
        queue: Queue,
        f: &v4l2_format,
        what: &str,
    ) -> Result<Done, OpResult> {
        let mplane = self.ctx(ctx).mplane;
        // SAFETY: the kernel filled the union member of the node's API.
        let (w, h, pf, size, planes) = unsafe {
            if mplane {
                let mp = f.fmt.pix_mp;
                let pl = mp.plane_fmt;
                (
                    mp.width,
                    mp.height,
                    mp.pixelformat,
                    pl[0].sizeimage,
                    u32::from(mp.num_planes),
                )
            } else {
                let p = f.fmt.pix;
                (p.width, p.height, p.pixelformat, p.sizeimage, 1)
            }
        };
        if let Queue::Out | Queue::Cap = queue {
            let q = &mut self.ctx_mut(ctx).queues[qidx(queue)];
            q.sizeimage = size;
            q.num_planes = planes.clamp(1, VIDEO_MAX_PLANES as u32);
        }
        if planes > VIDEO_MAX_PLANES as u32 {
            return Err(OpResult::bad_reply(format!(
                "{what} returned more planes than VIDEO_MAX_PLANES ({planes} planes, limit {VIDEO_MAX_PLANES})"
            )));
        }
        Ok(ok_with(
            size.into(),
            format!(
                "{w}x{h} {} sizeimage={size} planes={planes}",
                fourcc_str(pf)
            ),
        ))
    }

    /// The context's media node fd, opened on first use.
    fn media_fd(&mut self, ctx: &Handle) -> Result<RawFd, OpResult> {
        let c = self.ctx_mut(ctx);
        if c.media.is_none() {
            let path = device::media_of(&c.path).ok_or_else(|| OpResult::Skipped {
                reason: format!("{} has no media node (no request API)", c.path.display()).into(),
            })?;
            c.media = Some(
                open_path(&path.to_string_lossy(), true)
                    .map_err(|e| errno_of(&e))?
                    .into(),
            );
        }
        Ok(c.media
            .as_ref()
            .map(|m| m.as_fd().as_raw_fd())
            .unwrap_or(-1))
    }
}

/// Raw queues map to the OUTPUT slot for bookkeeping.
fn qidx_any(q: Queue) -> usize {
    match q {
        Queue::Raw(_) => 0,
        q => qidx(q),
    }
}

/// Inode of an fd (matches debugfs dma_buf/bufinfo's `ino`).
fn ino(fd: RawFd) -> u64 {
    nix::sys::stat::fstat(fd).map(|s| s.st_ino).unwrap_or(0)
}

/// [`fence_info`]'s facts as an op's detail, with the poll's `revents` of a wait; an error
/// becomes the detail's text, a bad reply the op's result.
fn info_detail(fd: RawFd, revents: Option<PollFlags>) -> Result<Detail, OpResult> {
    match fence_info(fd) {
        Ok(facts) => Ok(Detail::Fences(Box::new(SyncFacts { revents, ..facts }))),
        Err(r @ OpResult::BadReply { .. }) => Err(r),
        Err(e) => Ok(Detail::Text(
            match revents {
                Some(rev) => format!("revents={rev:?} info: {e}"),
                None => format!("info: {e}"),
            }
            .into(),
        )),
    }
}

/// SYNC_IOC_FILE_INFO: the sync_file's status and each fence's driver, timeline, status and
/// timestamp. A fence count beyond [`MAX_FENCES`] is a bad reply, not an allocation.
pub fn fence_info(fd: RawFd) -> Result<SyncFacts, OpResult> {
    let mut info = sync_file_info::default();
    // SAFETY: with num_fences 0 and a null entry pointer the kernel only counts.
    unsafe { ioctl::sync_file_info(fd, &mut info) }.map_err(OpResult::errno)?;
    if info.num_fences > MAX_FENCES {
        return Err(OpResult::bad_reply(format!(
            "SYNC_IOC_FILE_INFO reported more fences than a program can build ({} fences, limit {MAX_FENCES})",
            info.num_fences
        )));
    }
    let mut fences = vec![sync_fence_info::default(); info.num_fences as usize];
    if !fences.is_empty() {
        info.sync_fence_info = fences.as_mut_ptr() as u64;
        // SAFETY: the entry pointer is to `num_fences` live entries.
        unsafe { ioctl::sync_file_info(fd, &mut info) }.map_err(OpResult::errno)?;
    }
    Ok(SyncFacts {
        revents: None,
        status: info.status,
        fences: fences
            .iter()
            .map(|f| FenceFact {
                driver: cstr(&f.driver_name),
                timeline: cstr(&f.obj_name),
                status: f.status,
                timestamp_ns: f.timestamp_ns,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{Handle, ResKind};

    fn lie(r: Result<OwnedFd, OpResult>) -> String {
        match r {
            Err(OpResult::BadReply { lie }) => *lie,
            other => panic!("expected a bad reply, got {other:?}"),
        }
    }

    #[test]
    fn only_a_new_open_fd_from_the_kernel_is_adopted() {
        super::super::std_fds_open();
        let mut st = ExecState::default();
        assert_eq!(
            lie(st.adopt_fd(-1, "VIDIOC_EXPBUF")),
            "VIDIOC_EXPBUF returned success without an fd (fd field -1)"
        );
        // Stdin: a driver that leaves EXPBUF's fd field at 0 must not make us own it.
        assert_eq!(
            lie(st.adopt_fd(0, "VIDIOC_EXPBUF")),
            "VIDIOC_EXPBUF returned an fd the process already had open (fd 0)"
        );
        let held = open_path("/dev/null", false).unwrap();
        let n = held.as_raw_fd();
        st.bind(
            Handle {
                kind: ResKind::Dmabuf,
                id: 0,
            },
            Resource::Fd(held.into()),
        );
        assert_eq!(
            lie(st.adopt_fd(n, "SYNC_IOC_MERGE")),
            format!("SYNC_IOC_MERGE returned an fd the process already had open (fd {n})")
        );
        // A number no fd has.
        let closed = 1 << 20;
        assert_eq!(
            lie(st.adopt_fd(closed, "MEDIA_IOC_REQUEST_ALLOC")),
            format!("MEDIA_IOC_REQUEST_ALLOC returned an fd that is not open (fd {closed})")
        );
        let fresh = open_path("/dev/null", false).unwrap();
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fresh);
        let adopted = st
            .adopt_fd(raw, "VIDIOC_EXPBUF")
            .expect("a new open fd is adopted");
        assert_eq!(adopted.as_raw_fd(), raw);
    }
}
