//! The op table: one line per op gives its name, its handle inputs (written positionally), its
//! keyed arguments and the kind of handle it produces. The enum, printing, parsing and handle
//! bookkeeping are all generated from it, so they cannot disagree.
use super::args::*;

macro_rules! ops {
    ($(
        $(#[doc = $doc:literal])*
        $var:ident $name:literal ($($pos:ident: $pkind:ident),*) { $($key:ident: $kty:ty),* $(,)? } $(-> $rkind:ident)?;
    )*) => {
        /// One step of a program.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Op {
            $(
                $(#[doc = $doc])*
                $var {
                    $(
                        #[allow(missing_docs)]
                        $pos: Handle,
                    )*
                    $(
                        #[allow(missing_docs)]
                        $key: $kty,
                    )*
                    $(
                        /// The handle this op produces.
                        ret: ops!(@ret $rkind),
                    )?
                },
            )*
        }

        /// Every op name with the handle kinds it takes and produces, for generators and docs.
        pub const OP_SIGNATURES: &[(&str, &[ResKind], Option<ResKind>)] = &[
            $(($name, &[$(ResKind::$pkind),*], ops!(@rkind $($rkind)?)),)*
        ];

        impl Op {
            /// The op's name in program text.
            pub fn name(&self) -> &'static str {
                match self { $(Op::$var { .. } => $name,)* }
            }

            /// Every handle the op uses (positional and keyed).
            pub fn inputs(&self) -> Vec<Handle> {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$var { $($pos,)* $($key,)* .. } => {
                            #[allow(unused_mut)]
                            let mut v: Vec<Handle> = vec![$(*$pos),*];
                            $(v.extend(Arg::handle($key));)*
                            v
                        }
                    )*
                }
            }

            /// The first handle the op uses that `pred` accepts, without collecting them (the
            /// executor asks this of every op).
            pub fn find_input(&self, mut pred: impl FnMut(&Handle) -> bool) -> Option<Handle> {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$var { $($pos,)* $($key,)* .. } => {
                            $(if pred($pos) { return Some(*$pos); })*
                            $(if let Some(h) = Arg::handle($key).filter(|h| pred(h)) {
                                return Some(h);
                            })*
                            None
                        }
                    )*
                }
            }

            /// Mutable references to every handle the op uses, for renumbering.
            pub fn inputs_mut(&mut self) -> Vec<&mut Handle> {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$var { $($pos,)* $($key,)* .. } => {
                            #[allow(unused_mut)]
                            let mut v: Vec<&mut Handle> = vec![$($pos),*];
                            $(v.extend(handle_refs($key));)*
                            v
                        }
                    )*
                }
            }

            /// The handle the op produces, if any.
            pub fn output(&self) -> Option<Handle> {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$var { $($pos,)* $($key,)* $(ret: ops!(@bind ret $rkind),)? .. } => {
                            ops!(@out ret $($rkind)?)
                        }
                    )*
                }
            }

            /// Mutable reference to the produced handle.
            pub fn output_mut(&mut self) -> Option<&mut Handle> {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$var { $($pos,)* $($key,)* $(ret: ops!(@bind ret $rkind),)? .. } => {
                            ops!(@outmut ret $($rkind)?)
                        }
                    )*
                }
            }

            /// Positional handles, keyed arguments (absent optionals left out) and output.
            pub fn fields(&self) -> (Vec<Handle>, Vec<(&'static str, String)>, Option<Handle>) {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$var { $($pos,)* $($key,)* .. } => {
                            #[allow(unused_mut)]
                            let mut kv: Vec<(&'static str, String)> = Vec::new();
                            $(if let Some(t) = Arg::to_text($key) { kv.push((stringify!($key), t)); })*
                            (vec![$(*$pos),*], kv, self.output())
                        }
                    )*
                }
            }

            /// Build an op from parsed text. Errors name the offending argument.
            pub fn from_fields(
                name: &str,
                pos: &[Handle],
                keyed: &[(&str, &str)],
                ret: Option<Handle>,
            ) -> Result<Op, FieldError> {
                match name {
                    $(
                        $name => {
                            const POS_KINDS: &[ResKind] = &[$(ResKind::$pkind),*];
                            if pos.len() != POS_KINDS.len() {
                                return Err(FieldError::Positional(format!(
                                    "`{}` takes {} handle(s) ({}), got {}", $name, POS_KINDS.len(),
                                    POS_KINDS.iter().map(|k| k.letter().to_string()).collect::<Vec<_>>().join(", "),
                                    pos.len())));
                            }
                            #[allow(unused_mut, unused_variables)]
                            let mut pi = pos.iter();
                            $(
                                let $pos = *pi.next().unwrap();
                                if $pos.kind != ResKind::$pkind {
                                    return Err(FieldError::Positional(format!(
                                        "`{}` needs a {} handle for `{}`, got {}", $name,
                                        ResKind::$pkind.letter(), stringify!($pos), $pos)));
                                }
                            )*
                            const KEYS: &[&str] = &[$(stringify!($key)),*];
                            for (k, _) in keyed {
                                if !KEYS.contains(k) {
                                    return Err(FieldError::Key(k.to_string(), format!(
                                        "`{}` has no argument `{}` (it takes: {})", $name, k,
                                        if KEYS.is_empty() { "nothing".to_string() } else { KEYS.join(", ") })));
                                }
                            }
                            $(
                                let $key: $kty = match keyed.iter().find(|(k, _)| *k == stringify!($key)) {
                                    Some((_, v)) => <$kty as Arg>::from_text(v)
                                        .map_err(|e| FieldError::Key(stringify!($key).into(), e))?,
                                    None => <$kty as Arg>::absent().ok_or_else(|| FieldError::Missing(format!(
                                        "`{}` needs `{}=`", $name, stringify!($key))))?,
                                };
                            )*
                            ops!(@ret_check $name, ret $(, $rkind)?);
                            Ok(Op::$var { $($pos,)* $($key,)* $(ret: ops!(@unwrap_ret ret, $rkind),)? })
                        }
                    )*
                    _ => Err(FieldError::Name(format!("unknown op `{name}`"))),
                }
            }
        }
    };
    (@ret $rkind:ident) => { Handle };
    (@rkind $rkind:ident) => { Some(ResKind::$rkind) };
    (@rkind) => { None };
    (@bind $r:ident $rkind:ident) => { $r };
    (@out $r:ident $rkind:ident) => { Some(*$r) };
    (@out $r:ident) => { None };
    (@outmut $r:ident $rkind:ident) => { Some($r) };
    (@outmut $r:ident) => { None };
    (@ret_check $name:literal, $ret:ident, $rkind:ident) => {
        match $ret {
            Some(h) if h.kind == ResKind::$rkind => {}
            Some(h) => return Err(FieldError::Ret(format!(
                "`{}` produces a {} handle, not {}", $name, ResKind::$rkind.letter(), h))),
            None => return Err(FieldError::Ret(format!(
                "`{}` produces a handle: end the line with `-> {}N`", $name, ResKind::$rkind.letter()))),
        }
    };
    (@ret_check $name:literal, $ret:ident) => {
        if let Some(h) = $ret {
            return Err(FieldError::Ret(format!("`{}` produces no handle, but `-> {}` was given", $name, h)));
        }
    };
    (@unwrap_ret $ret:ident, $rkind:ident) => { $ret.unwrap() };
}

/// Why an op's fields were rejected; the parser turns it into a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// Unknown op name.
    Name(String),
    /// Wrong number or kind of positional handles.
    Positional(String),
    /// A keyed argument is unknown or malformed: the key, and why.
    Key(String, String),
    /// A required key is absent.
    Missing(String),
    /// The `-> handle` part is wrong.
    Ret(String),
}

/// Mutable handle references inside a keyed argument.
fn handle_refs<T: HandleRefs>(v: &mut T) -> Vec<&mut Handle> {
    v.handle_refs()
}

/// Types that may hold handles, for renumbering.
pub trait HandleRefs {
    /// The handles inside.
    fn handle_refs(&mut self) -> Vec<&mut Handle> {
        Vec::new()
    }
}

impl HandleRefs for Handle {
    fn handle_refs(&mut self) -> Vec<&mut Handle> {
        vec![self]
    }
}
impl<T: HandleRefs> HandleRefs for Option<T> {
    fn handle_refs(&mut self) -> Vec<&mut Handle> {
        self.as_mut().map(T::handle_refs).unwrap_or_default()
    }
}
impl HandleRefs for u32 {}
impl HandleRefs for i64 {}
impl HandleRefs for Hex {}
impl HandleRefs for Queue {}
impl HandleRefs for Memory {}
impl HandleRefs for SyncDir {}
impl HandleRefs for SyncPhase {}
impl HandleRefs for PollEvents {}
impl HandleRefs for FourCc {}
impl HandleRefs for Node {}

ops! {
    /// Open an m2m context on a node (O_RDWR | O_NONBLOCK).
    Open "open" () { node: Node } -> Ctx;
    /// Close any handle: fds are closed, mappings unmapped.
    Close "close" (h: Ctx) {};
    /// Close a dmabuf fd.
    CloseDmabuf "close_dmabuf" (h: Dmabuf) {};
    /// Close a sync_file fd.
    CloseSync "close_sync" (h: SyncFile) {};
    /// Close a request fd.
    CloseRequest "close_request" (h: Request) {};
    /// Unmap a mapping.
    Munmap "munmap" (h: Mapping) {};
    /// VIDIOC_G_FMT.
    GFmt "g_fmt" (ctx: Ctx) { queue: Queue };
    /// VIDIOC_S_FMT; `planes` sets num_planes on multi-planar nodes.
    SFmt "s_fmt" (ctx: Ctx) { queue: Queue, fourcc: FourCc, width: u32, height: u32, planes: Option<u32> };
    /// VIDIOC_REQBUFS (count 0 frees).
    Reqbufs "reqbufs" (ctx: Ctx) { queue: Queue, count: u32, memory: Memory };
    /// VIDIOC_CREATE_BUFS with the queue's current format, optionally resized.
    CreateBufs "create_bufs" (ctx: Ctx) { queue: Queue, count: u32, memory: Memory, width: Option<u32>, height: Option<u32> };
    /// VIDIOC_REMOVE_BUFS.
    RemoveBufs "remove_bufs" (ctx: Ctx) { queue: Queue, index: u32, count: u32 };
    /// VIDIOC_QUERYBUF.
    Querybuf "querybuf" (ctx: Ctx) { queue: Queue, index: u32 };
    /// mmap a buffer plane of the context.
    Mmap "mmap" (ctx: Ctx) { queue: Queue, index: u32, plane: Option<u32> } -> Mapping;
    /// mmap a dmabuf.
    MmapDmabuf "mmap_dmabuf" (dmabuf: Dmabuf) {} -> Mapping;
    /// Write `byte` over the whole mapping (a canary or a source pattern).
    Fill "fill" (map: Mapping) { byte: Hex };
    /// Count the bytes of the mapping that differ from `byte`; the count is the op's value.
    Check "check" (map: Mapping) { byte: Hex };
    /// VIDIOC_QBUF; DMABUF memory takes `dmabuf=`, a request `request=`.
    Qbuf "qbuf" (ctx: Ctx) {
        queue: Queue, index: u32, memory: Option<Memory>, dmabuf: Option<Handle>,
        request: Option<Handle>, bytesused: Option<u32>, flags: Option<Hex>, field: Option<u32>,
    };
    /// Wait (poll) up to `timeout_ms` for the queue, then VIDIOC_DQBUF; the value is the index.
    Dqbuf "dqbuf" (ctx: Ctx) { queue: Queue, memory: Option<Memory>, timeout_ms: Option<u32> };
    /// A streaming client on the context (MMAP on both queues): queue every buffer, re-queue
    /// each as it comes back, until `jobs` CAPTURE buffers came back or none did for
    /// `timeout_ms` (on a thread of `stream` ops only in a concurrent segment: until every
    /// thread there with other ops is done); the value is the CAPTURE buffers dequeued.
    Stream "stream" (ctx: Ctx) { jobs: u32, timeout_ms: u32 };
    /// VIDIOC_STREAMON.
    Streamon "streamon" (ctx: Ctx) { queue: Queue };
    /// VIDIOC_STREAMOFF.
    Streamoff "streamoff" (ctx: Ctx) { queue: Queue };
    /// VIDIOC_EXPBUF.
    Expbuf "expbuf" (ctx: Ctx) { queue: Queue, index: u32, plane: Option<u32>, flags: Option<Hex> } -> Dmabuf;
    /// DMA_BUF_IOCTL_EXPORT_SYNC_FILE: snapshot the dmabuf's fences.
    ExportSyncFile "export_sync_file" (dmabuf: Dmabuf) { dir: SyncDir } -> SyncFile;
    /// DMA_BUF_IOCTL_IMPORT_SYNC_FILE: add a sync_file's fence to the dmabuf.
    ImportSyncFile "import_sync_file" (dmabuf: Dmabuf, sync: SyncFile) { dir: SyncDir };
    /// DMA_BUF_IOCTL_SYNC (CPU access bracket; START waits for the fences).
    DmabufSync "dmabuf_sync" (dmabuf: Dmabuf) { phase: SyncPhase, dir: SyncDir };
    /// poll() a sync_file for up to `timeout_ms`; the value is 1 when signalled, 0 on time-out.
    Wait "wait" (sync: SyncFile) { timeout_ms: u32 };
    /// poll() a dmabuf for `events` up to `timeout_ms`; the value is the revents.
    PollDmabuf "poll_dmabuf" (dmabuf: Dmabuf) { events: PollEvents, timeout_ms: u32 };
    /// SYNC_IOC_FILE_INFO; the value is the status (1 signalled, 0 active, <0 error).
    FenceInfo "fence_info" (sync: SyncFile) {};
    /// SYNC_IOC_MERGE.
    Merge "merge" (a: SyncFile, b: SyncFile) {} -> SyncFile;
    /// MEDIA_IOC_REQUEST_ALLOC on the context's media node.
    RequestAlloc "request_alloc" (ctx: Ctx) {} -> Request;
    /// MEDIA_REQUEST_IOC_QUEUE.
    RequestQueue "request_queue" (req: Request) {};
    /// MEDIA_REQUEST_IOC_REINIT.
    RequestReinit "request_reinit" (req: Request) {};
    /// VIDIOC_S_EXT_CTRLS with one integer control, current value or into a request.
    SetCtrl "set_ctrl" (ctx: Ctx) { id: Hex, value: i64, request: Option<Handle> };
    /// Open a sw_sync timeline (debugfs; lab kernels only).
    SwTimeline "sw_timeline" () {} -> Timeline;
    /// SW_SYNC_IOC_CREATE_FENCE: a fence that signals when the timeline reaches `value`.
    SwFence "sw_fence" (timeline: Timeline) { value: u32 } -> SyncFile;
    /// SW_SYNC_IOC_INC.
    SwInc "sw_inc" (timeline: Timeline) { by: u32 };
    /// Close a sw_sync timeline (signals its fences).
    CloseTimeline "close_timeline" (h: Timeline) {};
    /// Sleep.
    Sleep "sleep" () { ms: u32 };
    /// Every program thread meets here: the ops after it start when all before it are done.
    Barrier "barrier" () {};
}
