//! Argument types of ops and their text form. Every type can also hold values the kernel should
//! reject (`Raw`), so a program can say anything the ABI can.
use crate::uapi::v4l2::{fourcc, fourcc_str};
use std::fmt;

/// The kind of resource a handle names; its letter prefixes the handle in program text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResKind {
    /// An m2m context: an open video node fd (and its media node fd, when opened).
    Ctx,
    /// A dmabuf fd from EXPBUF.
    Dmabuf,
    /// A sync_file fd.
    SyncFile,
    /// A media request fd.
    Request,
    /// A CPU mapping of a buffer or dmabuf.
    Mapping,
    /// A sw_sync timeline fd (lab only).
    Timeline,
}

impl ResKind {
    /// Every kind, in prefix order.
    pub const ALL: [ResKind; 6] = [
        ResKind::Ctx,
        ResKind::Dmabuf,
        ResKind::SyncFile,
        ResKind::Request,
        ResKind::Mapping,
        ResKind::Timeline,
    ];

    /// The handle prefix letter.
    pub fn letter(self) -> char {
        match self {
            ResKind::Ctx => 'c',
            ResKind::Dmabuf => 'd',
            ResKind::SyncFile => 's',
            ResKind::Request => 'r',
            ResKind::Mapping => 'm',
            ResKind::Timeline => 't',
        }
    }

    fn from_letter(c: char) -> Option<Self> {
        ResKind::ALL.into_iter().find(|k| k.letter() == c)
    }
}

/// A named resource (`c0`, `d3`): produced by one op, used by later ones. A program stays
/// meaningful when its producer is removed: the executor skips ops on unbound handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    /// What it names.
    pub kind: ResKind,
    /// Its number, unique per kind within a program.
    pub id: u32,
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.letter(), self.id)
    }
}

impl Handle {
    /// Parse `c0`, `d12`, ….
    pub fn parse(s: &str) -> Result<Handle, String> {
        let mut chars = s.chars();
        let kind = chars
            .next()
            .and_then(ResKind::from_letter)
            .ok_or_else(|| format!("`{s}` is not a handle (c, d, s, r, m or t and a number)"))?;
        let id = chars
            .as_str()
            .parse()
            .map_err(|_| format!("`{s}` is not a handle (c, d, s, r, m or t and a number)"))?;
        Ok(Handle { kind, id })
    }
}

/// How an argument is written and read in program text.
pub trait Arg: Sized {
    /// The text of the value; `None` leaves the key out (an absent optional).
    fn to_text(&self) -> Option<String>;
    /// Read a value.
    fn from_text(s: &str) -> Result<Self, String>;
    /// The value when the key is absent; `None` makes the key required.
    fn absent() -> Option<Self> {
        None
    }
    /// The handle this value refers to (no argument type holds more than one).
    fn handle(&self) -> Option<Handle> {
        None
    }
}

impl Arg for Handle {
    fn to_text(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn from_text(s: &str) -> Result<Self, String> {
        Handle::parse(s)
    }
    fn handle(&self) -> Option<Handle> {
        Some(*self)
    }
}

impl<T: Arg> Arg for Option<T> {
    fn to_text(&self) -> Option<String> {
        self.as_ref().and_then(T::to_text)
    }
    fn from_text(s: &str) -> Result<Self, String> {
        T::from_text(s).map(Some)
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
    fn handle(&self) -> Option<Handle> {
        self.as_ref().and_then(T::handle)
    }
}

/// Decimal or `0x` hexadecimal.
fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("`{s}` is not a number"))
}

impl Arg for u32 {
    fn to_text(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn from_text(s: &str) -> Result<Self, String> {
        u32::try_from(parse_u64(s)?).map_err(|_| format!("`{s}` does not fit 32 bits"))
    }
}

impl Arg for i64 {
    fn to_text(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn from_text(s: &str) -> Result<Self, String> {
        match s.strip_prefix('-') {
            Some(rest) => parse_u64(rest).map(|v| (v as i64).wrapping_neg()),
            None => parse_u64(s).map(|v| v as i64),
        }
    }
}

/// A 32-bit value written in hex: flags, control ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Hex(pub u32);

impl Arg for Hex {
    fn to_text(&self) -> Option<String> {
        Some(format!("{:#x}", self.0))
    }
    fn from_text(s: &str) -> Result<Self, String> {
        u32::from_text(s).map(Hex)
    }
}

/// Defines a keyword enum with a `Raw(u32)` escape for values the kernel should reject.
macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $word:literal => $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A raw value, written as a number.
            Raw(u32),
        }
        impl $name {
            /// Every named value.
            pub const NAMED: &'static [$name] = &[$($name::$var),*];
            /// The value as the kernel ABI encodes it.
            pub fn raw(self) -> u32 {
                match self { $($name::$var => $val,)* $name::Raw(v) => v }
            }
        }
        impl Arg for $name {
            fn to_text(&self) -> Option<String> {
                Some(match self { $($name::$var => $word.to_string(),)* $name::Raw(v) => v.to_string() })
            }
            fn from_text(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$var),)*
                    _ => u32::from_text(s).map(|v| $name::Raw(v)).map_err(|_| format!(
                        "`{s}` is not one of {} or a number", [$($word),*].join(", "))),
                }
            }
        }
    };
}

keyword_enum! {
    /// A context's queue; the executor maps it to the node's single- or multi-planar type.
    Queue {
        /// The OUTPUT queue (what the device reads).
        Out = "out" => 2,
        /// The CAPTURE queue (what the device writes).
        Cap = "cap" => 1,
    }
}

keyword_enum! {
    /// V4L2 memory type.
    Memory {
        /// Driver-allocated, mmap-able, exportable buffers.
        Mmap = "mmap" => crate::uapi::v4l2::V4L2_MEMORY_MMAP,
        /// User pointers.
        Userptr = "userptr" => crate::uapi::v4l2::V4L2_MEMORY_USERPTR,
        /// Imported dmabufs.
        Dmabuf = "dmabuf" => crate::uapi::v4l2::V4L2_MEMORY_DMABUF,
    }
}

keyword_enum! {
    /// Direction flags of dma-buf sync and sync-file export/import.
    SyncDir {
        /// DMA_BUF_SYNC_READ.
        Read = "read" => 1,
        /// DMA_BUF_SYNC_WRITE.
        Write = "write" => 2,
        /// DMA_BUF_SYNC_RW.
        Rw = "rw" => 3,
    }
}

keyword_enum! {
    /// Start or end of a CPU access bracket (DMA_BUF_IOCTL_SYNC).
    SyncPhase {
        /// DMA_BUF_SYNC_START.
        Start = "start" => 0,
        /// DMA_BUF_SYNC_END.
        End = "end" => 4,
    }
}

keyword_enum! {
    /// poll() events to wait for on a dmabuf.
    PollEvents {
        /// POLLIN: writers done.
        In = "in" => libc::POLLIN as u32,
        /// POLLOUT: readers and writers done.
        Out = "out" => libc::POLLOUT as u32,
    }
}

/// A pixel format: four printable characters, or a hex number for anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FourCc(pub u32);

impl FourCc {
    /// From its four characters.
    pub const fn new(c: &[u8; 4]) -> FourCc {
        FourCc(fourcc(c))
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text().unwrap_or_default())
    }
}

impl Arg for FourCc {
    fn to_text(&self) -> Option<String> {
        let b = self.0.to_le_bytes();
        // Four characters that begin `0x` would read back as a number.
        Some(
            if b.iter().all(|c| c.is_ascii_alphanumeric()) && !b.starts_with(b"0x") {
                fourcc_str(self.0)
            } else {
                format!("{:#x}", self.0)
            },
        )
    }
    fn from_text(s: &str) -> Result<Self, String> {
        if s.starts_with("0x") {
            return u32::from_text(s).map(FourCc);
        }
        let b: [u8; 4] = s
            .as_bytes()
            .try_into()
            .map_err(|_| format!("`{s}` is not a fourcc (four characters or 0x…)"))?;
        Ok(FourCc::new(&b))
    }
}

/// Which node an `open` targets: a driver (as QUERYCAP names it, optionally `:video-name` to pick
/// one of several nodes) or a device path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// `vim2m`, `vicodec:stateless-decoder`.
    Driver(String),
    /// `/dev/video3`.
    Path(String),
}

impl Arg for Node {
    fn to_text(&self) -> Option<String> {
        Some(match self {
            Node::Driver(d) | Node::Path(d) => d.clone(),
        })
    }
    fn from_text(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.contains(['=', '#']) {
            return Err(format!("`{s}` is not a node"));
        }
        Ok(if s.starts_with('/') {
            Node::Path(s.to_string())
        } else {
            Node::Driver(s.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fourcc_reads_back_as_it_was_written() {
        // `0x8f` as four characters, a number, a plain fourcc, and bytes that are not characters.
        for v in [
            u32::from_le_bytes(*b"0x8f"),
            0x8f,
            FourCc::new(b"NV12").0,
            0x0000_00ff,
            u32::MAX,
        ] {
            let t = FourCc(v).to_text().unwrap();
            assert_eq!(
                FourCc::from_text(&t),
                Ok(FourCc(v)),
                "{v:#x} written as {t}"
            );
        }
        assert_eq!(FourCc(FourCc::new(b"NV12").0).to_text().unwrap(), "NV12");
    }
}
