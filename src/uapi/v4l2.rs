//! videodev2.h: the structs, constants and ioctls m2mfuzz uses, as the kernel lays them out.
#![allow(non_camel_case_types)]

use std::mem::size_of;

/// Planes per buffer the ABI allows (`VIDEO_MAX_PLANES`).
pub const VIDEO_MAX_PLANES: usize = 8;

// Capabilities (v4l2_capability.capabilities / device_caps).
pub const V4L2_CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const V4L2_CAP_VIDEO_OUTPUT: u32 = 0x0000_0002;
pub const V4L2_CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub const V4L2_CAP_VIDEO_OUTPUT_MPLANE: u32 = 0x0000_2000;
pub const V4L2_CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
pub const V4L2_CAP_VIDEO_M2M: u32 = 0x0000_8000;
pub const V4L2_CAP_STREAMING: u32 = 0x0400_0000;
pub const V4L2_CAP_IO_MC: u32 = 0x2000_0000;
pub const V4L2_CAP_DEVICE_CAPS: u32 = 0x8000_0000;

// Buffer types.
pub const V4L2_BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const V4L2_BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub const V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub const V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;

// Memory types.
pub const V4L2_MEMORY_MMAP: u32 = 1;
pub const V4L2_MEMORY_USERPTR: u32 = 2;
pub const V4L2_MEMORY_DMABUF: u32 = 4;

// Fields.
pub const V4L2_FIELD_ANY: u32 = 0;
pub const V4L2_FIELD_NONE: u32 = 1;

// Buffer flags.
pub const V4L2_BUF_FLAG_MAPPED: u32 = 0x0000_0001;
pub const V4L2_BUF_FLAG_QUEUED: u32 = 0x0000_0002;
pub const V4L2_BUF_FLAG_DONE: u32 = 0x0000_0004;
pub const V4L2_BUF_FLAG_ERROR: u32 = 0x0000_0040;
pub const V4L2_BUF_FLAG_IN_REQUEST: u32 = 0x0000_0080;
pub const V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF: u32 = 0x0000_0200;
pub const V4L2_BUF_FLAG_TIMESTAMP_COPY: u32 = 0x0000_4000;
pub const V4L2_BUF_FLAG_LAST: u32 = 0x0010_0000;
pub const V4L2_BUF_FLAG_REQUEST_FD: u32 = 0x0080_0000;

// Buffer capabilities reported by REQBUFS / CREATE_BUFS.
pub const V4L2_BUF_CAP_SUPPORTS_MMAP: u32 = 1 << 0;
pub const V4L2_BUF_CAP_SUPPORTS_USERPTR: u32 = 1 << 1;
pub const V4L2_BUF_CAP_SUPPORTS_DMABUF: u32 = 1 << 2;
pub const V4L2_BUF_CAP_SUPPORTS_REQUESTS: u32 = 1 << 3;
pub const V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS: u32 = 1 << 4;
pub const V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF: u32 = 1 << 5;
pub const V4L2_BUF_CAP_SUPPORTS_MMAP_CACHE_HINTS: u32 = 1 << 6;
pub const V4L2_BUF_CAP_SUPPORTS_MAX_NUM_BUFFERS: u32 = 1 << 7;
pub const V4L2_BUF_CAP_SUPPORTS_REMOVE_BUFS: u32 = 1 << 8;

// Control classes / which values.
pub const V4L2_CTRL_WHICH_CUR_VAL: u32 = 0;
pub const V4L2_CTRL_WHICH_REQUEST_VAL: u32 = 0x0f01_0000;

// Frame size types.
pub const V4L2_FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const V4L2_FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const V4L2_FRMSIZE_TYPE_STEPWISE: u32 = 3;

/// `struct v4l2_capability`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_pix_format` (single-planar).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_pix_format {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_plane_pix_format` (packed in the kernel).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_plane_pix_format {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

/// `struct v4l2_pix_format_mplane` (packed in the kernel).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_pix_format_mplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [v4l2_plane_pix_format; VIDEO_MAX_PLANES],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

/// The `fmt` union of `struct v4l2_format`. `raw` has the alignment of the kernel's union,
/// whose `v4l2_window` member holds pointers.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_format_fmt {
    pub pix: v4l2_pix_format,
    pub pix_mp: v4l2_pix_format_mplane,
    pub raw: [usize; 200 / size_of::<usize>()],
}

/// `struct v4l2_format`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_format {
    pub type_: u32,
    pub fmt: v4l2_format_fmt,
}

impl Default for v4l2_format {
    fn default() -> Self {
        // SAFETY: all-zero is a valid value of this plain-data struct.
        unsafe { std::mem::zeroed() }
    }
}

/// `struct v4l2_requestbuffers`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_requestbuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

/// `struct v4l2_create_buffers`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct v4l2_create_buffers {
    pub index: u32,
    pub count: u32,
    pub memory: u32,
    pub format: v4l2_format,
    pub capabilities: u32,
    pub flags: u32,
    /// `max_num_buffers` since 6.10; part of `reserved` before.
    pub max_num_buffers: u32,
    pub reserved: [u32; 5],
}

/// `struct v4l2_remove_buffers` (6.10+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_remove_buffers {
    pub index: u32,
    pub count: u32,
    pub type_: u32,
    pub reserved: [u32; 13],
}

/// `struct v4l2_timecode`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// The `m` union of `struct v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_plane_m {
    pub mem_offset: u32,
    pub userptr: libc::c_ulong,
    pub fd: i32,
}

/// `struct v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: v4l2_plane_m,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

impl Default for v4l2_plane {
    fn default() -> Self {
        // SAFETY: all-zero is a valid value of this plain-data struct.
        unsafe { std::mem::zeroed() }
    }
}

/// The `m` union of `struct v4l2_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_buffer_m {
    pub offset: u32,
    pub userptr: libc::c_ulong,
    pub planes: *mut v4l2_plane,
    pub fd: i32,
}

/// `struct v4l2_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: libc::timeval,
    pub timecode: v4l2_timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: v4l2_buffer_m,
    pub length: u32,
    pub reserved2: u32,
    /// `request_fd` (a union with `reserved` in the kernel).
    pub request_fd: i32,
}

impl Default for v4l2_buffer {
    fn default() -> Self {
        // SAFETY: all-zero is a valid value of this plain-data struct (null planes pointer).
        unsafe { std::mem::zeroed() }
    }
}

/// `struct v4l2_exportbuffer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_exportbuffer {
    pub type_: u32,
    pub index: u32,
    pub plane: u32,
    pub flags: u32,
    pub fd: i32,
    pub reserved: [u32; 11],
}

/// `struct v4l2_fmtdesc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_frmsize_stepwise`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_frmsize_stepwise {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

/// `struct v4l2_frmsizeenum`; for DISCRETE sizes the first two words of `stepwise` are
/// `discrete.width` and `discrete.height`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub stepwise: v4l2_frmsize_stepwise,
    pub reserved: [u32; 2],
}

/// `struct v4l2_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_control {
    pub id: u32,
    pub value: i32,
}

/// `struct v4l2_ext_control` (packed in the kernel); `value64` overlays `value` and the pointers.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_ext_control {
    pub id: u32,
    pub size: u32,
    pub reserved2: [u32; 1],
    pub value64: i64,
}

/// `struct v4l2_ext_controls`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct v4l2_ext_controls {
    pub which: u32,
    pub count: u32,
    pub error_idx: u32,
    pub request_fd: i32,
    pub reserved: [u32; 1],
    pub controls: *mut v4l2_ext_control,
}

impl Default for v4l2_ext_controls {
    fn default() -> Self {
        // SAFETY: all-zero is a valid value of this plain-data struct (null pointer).
        unsafe { std::mem::zeroed() }
    }
}

/// A fourcc code from its four ASCII characters.
pub const fn fourcc(c: &[u8; 4]) -> u32 {
    (c[0] as u32) | (c[1] as u32) << 8 | (c[2] as u32) << 16 | (c[3] as u32) << 24
}

/// The four characters of a fourcc, with non-printable bytes as `.`.
pub fn fourcc_str(v: u32) -> String {
    v.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// A NUL-terminated byte array as a string.
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}
