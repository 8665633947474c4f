//! `<linux/kcov.h>`: kernel coverage collection. The request numbers are built here rather than
//! in `ioctl`'s table because KCOV passes its arguments by value, not through a pointer.
use nix::{request_code_none, request_code_read, request_code_write};
use std::mem::size_of;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct kcov_remote_arg {
    pub trace_mode: u32,
    pub area_size: u32,
    pub num_handles: u32,
    pub _pad: u32,
    pub common_handle: u64,
    // handles[] follows; m2mfuzz passes none.
}

pub const KCOV_INIT_TRACE: super::ioctl::Request =
    request_code_read!(b'c', 1, size_of::<libc::c_ulong>()) as _;
pub const KCOV_ENABLE: super::ioctl::Request = request_code_none!(b'c', 100) as _;
pub const KCOV_DISABLE: super::ioctl::Request = request_code_none!(b'c', 101) as _;
pub const KCOV_REMOTE_ENABLE: super::ioctl::Request =
    request_code_write!(b'c', 102, size_of::<kcov_remote_arg>()) as _;
pub const KCOV_TRACE_PC: u32 = 0;
pub const KCOV_SUBSYSTEM_COMMON: u64 = 0 << 56;

/// Every KCOV request number with its kernel macro name, for the layout test.
pub const ALL: &[(&str, super::ioctl::Request)] = &[
    ("KCOV_INIT_TRACE", KCOV_INIT_TRACE),
    ("KCOV_ENABLE", KCOV_ENABLE),
    ("KCOV_DISABLE", KCOV_DISABLE),
    ("KCOV_REMOTE_ENABLE", KCOV_REMOTE_ENABLE),
];
