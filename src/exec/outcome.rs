//! What an op did.
use crate::uapi::v4l2::*;
use nix::errno::Errno;
use nix::poll::PollFlags;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The result of one op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OpResult {
    /// Succeeded with a value (an fd, index, count, status…).
    Ok {
        /// The op's value.
        value: i64,
    },
    /// The kernel returned an error.
    Err {
        /// errno.
        errno: i32,
    },
    /// Its wait or blocking ioctl did not finish before its deadline.
    TimedOut,
    /// Not run: a handle it needs is unbound (its producer failed, was removed, or it was closed).
    Skipped {
        /// Why (boxed: a rare case that would otherwise make every outcome 8 bytes bigger).
        reason: Box<String>,
    },
    /// The kernel said success but its answer is impossible (no fd where one was promised, an
    /// fd the process already had, a count beyond the ABI's limit): a driver bug. The executor
    /// did not use the answer.
    BadReply {
        /// What the kernel claimed, in words (boxed, as `reason`).
        lie: Box<String>,
    },
    /// A `fill` or `check` met a memory fault in its mapping (SIGBUS or SIGSEGV, caught and
    /// resumed: see `exec::memfault`).
    Fault {
        /// The signal (SIGBUS, SIGSEGV), as a number.
        signal: u8,
        /// The kernel's `si_code` (`BUS_ADRERR` 2, `SEGV_MAPERR` 1, …).
        code: i32,
        /// Where, in bytes from the start of the mapping.
        offset: u64,
        /// The fault an earlier access met: the mapping was replaced from there on then, and
        /// from there on this op did not reach the buffer's memory.
        again: bool,
    },
    /// m2mfuzz itself panicked running the op (caught: the rest of the program is skipped and
    /// its resources are released, the run goes on).
    Panicked {
        /// The panic message.
        message: Box<String>,
    },
}

impl OpResult {
    /// From an errno.
    pub fn errno(e: Errno) -> OpResult {
        OpResult::Err { errno: e as i32 }
    }

    /// A [`OpResult::Fault`].
    pub fn fault(f: &super::memfault::MemFault) -> OpResult {
        OpResult::Fault {
            signal: u8::try_from(f.signal).unwrap_or(u8::MAX),
            code: f.code,
            offset: f.offset,
            again: f.again,
        }
    }

    /// A [`OpResult::BadReply`].
    pub fn bad_reply(lie: String) -> OpResult {
        OpResult::BadReply { lie: Box::new(lie) }
    }
}

/// One op's outcome. A run keeps one per op, so it is kept to 48 bytes: under the lab's TCG
/// every fresh page of them is a page fault of 75-125 µs (80 bytes each made the outcomes of
/// 10 000 QUERYBUFs 195 faults, the largest share of the harness's per-op cost).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// Index of the op in the program.
    pub index: u32,
    /// What happened.
    pub result: OpResult,
    /// How long it took, in microseconds (saturating at about 71 minutes).
    #[serde(rename = "duration")]
    pub duration_us: u32,
    /// Extra facts (buffer flags, fence names and states, sizes).
    pub detail: Option<Detail>,
}

impl Outcome {
    /// How long the op took.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.duration_us.into())
    }

    /// `d` as [`Outcome::duration_us`].
    pub fn micros(d: Duration) -> u32 {
        d.as_micros().try_into().unwrap_or(u32::MAX)
    }

    /// The extra facts as text (formatted now for a buffer's fields).
    pub fn detail_text(&self) -> Option<Cow<'_, str>> {
        self.detail.as_ref().map(Detail::text)
    }
}

/// Extra facts of an op. A buffer's fields are kept raw and formatted only when someone reads
/// them: QUERYBUF and DQBUF are the cheap ops, and formatting every one showed in the harness
/// overhead benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Already text (a boxed str: an outcome is kept small).
    Text(Box<str>),
    /// A v4l2_buffer the kernel returned.
    Buf(BufFacts),
    /// What SYNC_IOC_FILE_INFO said of a sync_file (boxed: an outcome is kept small).
    Fences(Box<SyncFacts>),
    /// What a `stream` client did.
    Stream(StreamFacts),
}

impl Detail {
    /// The facts as text.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Detail::Text(t) => Cow::Borrowed(t),
            Detail::Buf(b) => Cow::Owned(b.to_string()),
            Detail::Fences(f) => Cow::Owned(f.to_string()),
            Detail::Stream(st) => Cow::Owned(st.to_string()),
        }
    }

    /// The sync_file facts, where the detail holds them.
    pub fn fences(&self) -> Option<&SyncFacts> {
        match self {
            Detail::Fences(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Text(t) => f.write_str(t),
            Detail::Buf(b) => b.fmt(f),
            Detail::Fences(s) => s.fmt(f),
            Detail::Stream(st) => st.fmt(f),
        }
    }
}

impl Serialize for Detail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A detail read back from `run --json` is its text: the structured facts are not in the JSON
/// (see [`SyncFacts::parse`] for a sync_file's).
impl<'de> Deserialize<'de> for Detail {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Detail::Text(String::deserialize(d)?.into_boxed_str()))
    }
}

/// Why a `stream` client stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStop {
    /// It saw the jobs it was asked for.
    Jobs,
    /// No buffer came back for its `timeout_ms` (or nothing was queued on either queue).
    Stalled,
    /// Its whole time (jobs x timeout, capped at the longest wait) ran out.
    Budget,
    /// The watchdog's deadline fired.
    Deadline,
    /// Every thread of its segment with other ops than `stream` had finished.
    Others,
}

/// What a `stream` client did: the buffers it queued and got back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFacts {
    /// CAPTURE buffers dequeued (the op's value).
    pub capture: u32,
    /// Of those, returned with V4L2_BUF_FLAG_ERROR.
    pub capture_errors: u32,
    /// OUTPUT buffers dequeued.
    pub output: u32,
    /// QBUFs that succeeded.
    pub queued: u32,
    /// QBUFs the kernel refused (a buffer someone else holds queued, a queue torn down).
    pub refused: u32,
    /// Why it stopped.
    pub stop: StreamStop,
}

impl fmt::Display for StreamFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stop = match self.stop {
            StreamStop::Jobs => "jobs",
            StreamStop::Stalled => "stalled",
            StreamStop::Budget => "budget",
            StreamStop::Deadline => "deadline",
            StreamStop::Others => "others-done",
        };
        write!(
            f,
            "capture={} errors={} output={} queued={} refused={} stopped={stop}",
            self.capture, self.capture_errors, self.output, self.queued, self.refused
        )
    }
}

/// The fields of a returned v4l2_buffer that outcomes show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufFacts {
    /// Buffer index.
    pub index: u32,
    /// V4L2_BUF_FLAG_*.
    pub flags: u32,
    /// Plane 0's bytesused (single-planar: the buffer's).
    pub bytesused: u32,
    /// Sequence number.
    pub sequence: u32,
    /// What the poll before a DQBUF returned.
    pub revents: Option<PollFlags>,
}

impl BufFacts {
    /// Whether the driver marked the buffer ERROR.
    pub fn error(&self) -> bool {
        self.flags & V4L2_BUF_FLAG_ERROR != 0
    }
}

impl fmt::Display for BufFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u32, &str); 5] = [
            (V4L2_BUF_FLAG_QUEUED, "QUEUED"),
            (V4L2_BUF_FLAG_DONE, "DONE"),
            (V4L2_BUF_FLAG_ERROR, "ERROR"),
            (V4L2_BUF_FLAG_LAST, "LAST"),
            (V4L2_BUF_FLAG_IN_REQUEST, "IN_REQUEST"),
        ];
        write!(f, "index={} flags={:#x}[", self.index, self.flags)?;
        let set = NAMES.iter().filter(|(b, _)| self.flags & b != 0);
        for (i, (_, n)) in set.enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            f.write_str(n)?;
        }
        write!(f, "] bytesused={} seq={}", self.bytesused, self.sequence)?;
        if let Some(r) = self.revents {
            write!(f, " revents={r:?}")?;
        }
        Ok(())
    }
}

/// One fence of a sync_file, as SYNC_IOC_FILE_INFO reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceFact {
    /// The fence's driver (`vb2`, `stub`, `sw_sync`, …).
    pub driver: String,
    /// Its timeline (`vim2m-cap-22`, …).
    pub timeline: String,
    /// 1 signalled, 0 pending, negative: signalled with that error.
    pub status: i32,
    /// When it signalled (CLOCK_MONOTONIC ns; 0 while pending, and in facts read back from text).
    pub timestamp_ns: u64,
}

impl FenceFact {
    /// Still pending.
    pub fn pending(&self) -> bool {
        self.status == 0
    }

    /// A release fence of the code under test (vb2's producer fence).
    pub fn producer(&self) -> bool {
        self.driver == "vb2"
    }
}

/// What SYNC_IOC_FILE_INFO said of a sync_file, and for a wait what its poll returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncFacts {
    /// What the poll of a `wait` returned (printed first).
    pub revents: Option<PollFlags>,
    /// The sync_file's status: 1 signalled, 0 pending, negative an error.
    pub status: i32,
    /// Its fences.
    pub fences: Vec<FenceFact>,
}

impl SyncFacts {
    /// Whether the sync_file says nothing is pending (signalled without error).
    pub fn signalled(&self) -> bool {
        self.status == 1
    }

    /// The facts back from their text (`[revents=… ]status=N fences=[drv/timeline:status …]`),
    /// for runs recorded by `run --json`; timestamps are not in the text and read back as 0.
    pub fn parse(text: &str) -> Option<SyncFacts> {
        let rest = text.trim_start();
        let (revents, rest) = match rest.strip_prefix("revents=") {
            Some(r) => {
                let (flags, rest) = r.split_once(' ')?;
                (Some(parse_poll_flags(flags)?), rest)
            }
            None => (None, rest),
        };
        let rest = rest.strip_prefix("status=")?;
        let (status, rest) = rest.split_once(' ')?;
        let list = rest.strip_prefix("fences=[")?.strip_suffix(']')?;
        let fences = list
            .split_whitespace()
            .map(|f| {
                let (driver, rest) = f.split_once('/')?;
                let (timeline, status) = rest.rsplit_once(':')?;
                Some(FenceFact {
                    driver: driver.into(),
                    timeline: timeline.into(),
                    status: status.parse().ok()?,
                    timestamp_ns: 0,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SyncFacts {
            revents,
            status: status.parse().ok()?,
            fences,
        })
    }
}

/// `PollFlags(POLLIN | POLLOUT)` as `{:?}` prints it.
fn parse_poll_flags(s: &str) -> Option<PollFlags> {
    let inner = s.strip_prefix("PollFlags(")?.strip_suffix(')')?;
    let mut f = PollFlags::empty();
    for name in inner.split('|').map(str::trim).filter(|n| !n.is_empty()) {
        f |= PollFlags::from_name(name).or_else(|| {
            name.strip_prefix("0x")
                .and_then(|h| i16::from_str_radix(h, 16).ok())
                .map(PollFlags::from_bits_retain)
        })?;
    }
    Some(f)
}

impl fmt::Display for SyncFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.revents {
            write!(f, "revents={r:?} ")?;
        }
        write!(f, "status={} fences=[", self.status)?;
        for (i, x) in self.fences.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}/{}:{}", x.driver, x.timeline, x.status)?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Ok { value } => write!(f, "ok {value}"),
            OpResult::Err { errno } => write!(f, "{}", Errno::from_raw(*errno)),
            OpResult::TimedOut => f.write_str("TIMED OUT"),
            OpResult::Skipped { reason } => write!(f, "skipped ({reason})"),
            OpResult::BadReply { lie } => write!(f, "BAD REPLY ({lie})"),
            OpResult::Fault {
                signal,
                code,
                offset,
                again,
            } => {
                let sig = i32::from(*signal);
                write!(
                    f,
                    "FAULT{} ({} {} at offset {offset:#x})",
                    if *again { " again" } else { "" },
                    super::memfault::signal_name(sig),
                    super::memfault::code_name(sig, *code)
                )
            }
            OpResult::Panicked { message } => write!(f, "PANICKED ({message})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_facts_read_as_text_and_serialize_as_a_string() {
        let b = BufFacts {
            index: 2,
            flags: V4L2_BUF_FLAG_DONE | V4L2_BUF_FLAG_ERROR | 0x4000,
            bytesused: 6144,
            sequence: 7,
            revents: Some(PollFlags::POLLIN),
        };
        let text =
            "index=2 flags=0x4044[DONE|ERROR] bytesused=6144 seq=7 revents=PollFlags(POLLIN)";
        assert_eq!(Detail::Buf(b).text(), text);
        assert!(b.error());
        let o = Outcome {
            index: 0,
            result: OpResult::Ok { value: 2 },
            duration_us: 5,
            detail: Some(Detail::Buf(BufFacts { revents: None, ..b })),
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(
            v["detail"],
            "index=2 flags=0x4044[DONE|ERROR] bytesused=6144 seq=7"
        );
        assert_eq!(o.detail_text().as_deref(), v["detail"].as_str());
        assert_eq!(v["duration"], 5);
        assert_eq!(o.duration(), Duration::from_micros(5));
        assert_eq!(std::mem::size_of::<Outcome>(), 48);
    }

    #[test]
    fn sync_facts_print_the_text_recorded_runs_hold_and_read_back() {
        let f = SyncFacts {
            revents: Some(PollFlags::POLLIN),
            status: 0,
            fences: vec![
                FenceFact {
                    driver: "vb2".into(),
                    timeline: "vim2m-cap-22".into(),
                    status: 0,
                    timestamp_ns: 0,
                },
                FenceFact {
                    driver: "sw_sync".into(),
                    timeline: "m2mfuzz".into(),
                    status: -125,
                    timestamp_ns: 0,
                },
            ],
        };
        let text =
            "revents=PollFlags(POLLIN) status=0 fences=[vb2/vim2m-cap-22:0 sw_sync/m2mfuzz:-125]";
        let d = Detail::Fences(Box::new(f.clone()));
        assert_eq!(d.text(), text);
        assert_eq!(SyncFacts::parse(text), Some(f));
        let stub = "status=1 fences=[stub/stub:1]";
        let s = SyncFacts::parse(stub).unwrap();
        assert!(s.signalled() && !s.fences[0].producer());
        assert_eq!(s.to_string(), stub);
        assert_eq!(SyncFacts::parse("status=1 fences=[]").unwrap().fences, []);
        assert_eq!(SyncFacts::parse("info: ENOENT"), None);
        assert_eq!(std::mem::size_of::<Outcome>(), 48);
    }
}
