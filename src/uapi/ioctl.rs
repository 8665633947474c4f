//! Every ioctl request number m2mfuzz uses, built with nix's macros from the structs' sizes,
//! and typed wrappers for them. Nothing else in the crate builds ioctl numbers.

use super::dmabuf::*;
use super::media::*;
use super::sync_file::*;
use super::v4l2::*;
use nix::errno::Errno;
use nix::{request_code_none, request_code_read, request_code_readwrite, request_code_write};
use std::mem::size_of;
use std::os::fd::RawFd;

/// A request number as the ioctl wrappers take it.
pub type Request = nix::sys::ioctl::ioctl_num_type;

macro_rules! numbers {
    ($($name:ident, $f:ident = $kind:ident($ty:expr, $nr:expr $(, $t:ty)?) $($ptr:ident)?;)*) => {
        $(
            pub const $name: Request = numbers!(@code $kind, $ty, $nr $(, $t)?) as Request;
            numbers!(@fn $name, $f $(, $t)? $(, $ptr)?);
        )*
        /// Every request number with its kernel macro name, for the layout test and C reproducers.
        pub const ALL: &[(&str, Request)] = &[$((stringify!($name), $name)),*];
    };
    (@code none, $ty:expr, $nr:expr) => { request_code_none!($ty, $nr) };
    (@code r, $ty:expr, $nr:expr, $t:ty) => { request_code_read!($ty, $nr, size_of::<$t>()) };
    (@code w, $ty:expr, $nr:expr, $t:ty) => { request_code_write!($ty, $nr, size_of::<$t>()) };
    (@code rw, $ty:expr, $nr:expr, $t:ty) => { request_code_readwrite!($ty, $nr, size_of::<$t>()) };
    (@fn $name:ident, $f:ident, $t:ty) => {
        #[doc = concat!("`ioctl(fd, ", stringify!($name), ", arg)`.")]
        pub fn $f(fd: RawFd, arg: &mut $t) -> Result<i32, Errno> {
            // SAFETY: `arg` is a live, exclusively borrowed value of the type the request
            // number was built from, so the kernel copies exactly its size; the struct holds
            // no pointer the kernel follows.
            unsafe { raw(fd, $name, arg as *mut $t as usize) }
        }
    };
    (@fn $name:ident, $f:ident, $t:ty, follows_pointers) => {
        #[doc = concat!("`ioctl(fd, ", stringify!($name), ", arg)`.")]
        ///
        /// # Safety
        /// The kernel follows the pointers inside `arg` (planes, controls, fence entries):
        /// each must point to live, writable memory of at least as many entries as the
        /// struct's count field says, or be null where that count is 0.
        pub unsafe fn $f(fd: RawFd, arg: &mut $t) -> Result<i32, Errno> {
            // SAFETY: `arg` itself is live and exclusive; its pointers are the caller's contract.
            unsafe { raw(fd, $name, arg as *mut $t as usize) }
        }
    };
    (@fn $name:ident, $f:ident) => {
        #[doc = concat!("`ioctl(fd, ", stringify!($name), ")`.")]
        pub fn $f(fd: RawFd) -> Result<i32, Errno> {
            // SAFETY: an `_IO` request takes no argument.
            unsafe { raw(fd, $name, 0) }
        }
    };
}

numbers! {
    VIDIOC_QUERYCAP, querycap = r(b'V', 0, v4l2_capability);
    VIDIOC_ENUM_FMT, enum_fmt = rw(b'V', 2, v4l2_fmtdesc);
    VIDIOC_G_FMT, g_fmt = rw(b'V', 4, v4l2_format);
    VIDIOC_S_FMT, s_fmt = rw(b'V', 5, v4l2_format);
    VIDIOC_REQBUFS, reqbufs = rw(b'V', 8, v4l2_requestbuffers);
    VIDIOC_QUERYBUF, querybuf = rw(b'V', 9, v4l2_buffer) follows_pointers;
    VIDIOC_QBUF, qbuf = rw(b'V', 15, v4l2_buffer) follows_pointers;
    VIDIOC_EXPBUF, expbuf = rw(b'V', 16, v4l2_exportbuffer);
    VIDIOC_DQBUF, dqbuf = rw(b'V', 17, v4l2_buffer) follows_pointers;
    VIDIOC_STREAMON, streamon = w(b'V', 18, libc::c_int);
    VIDIOC_STREAMOFF, streamoff = w(b'V', 19, libc::c_int);
    VIDIOC_G_CTRL, g_ctrl = rw(b'V', 27, v4l2_control);
    VIDIOC_S_CTRL, s_ctrl = rw(b'V', 28, v4l2_control);
    VIDIOC_TRY_FMT, try_fmt = rw(b'V', 64, v4l2_format);
    VIDIOC_G_EXT_CTRLS, g_ext_ctrls = rw(b'V', 71, v4l2_ext_controls) follows_pointers;
    VIDIOC_S_EXT_CTRLS, s_ext_ctrls = rw(b'V', 72, v4l2_ext_controls) follows_pointers;
    VIDIOC_ENUM_FRAMESIZES, enum_framesizes = rw(b'V', 74, v4l2_frmsizeenum);
    VIDIOC_CREATE_BUFS, create_bufs = rw(b'V', 92, v4l2_create_buffers);
    VIDIOC_PREPARE_BUF, prepare_buf = rw(b'V', 93, v4l2_buffer) follows_pointers;
    VIDIOC_REMOVE_BUFS, remove_bufs = rw(b'V', 104, v4l2_remove_buffers);
    MEDIA_IOC_DEVICE_INFO, media_device_info = rw(b'|', 0x00, media_device_info);
    MEDIA_IOC_REQUEST_ALLOC, request_alloc = r(b'|', 0x05, libc::c_int);
    MEDIA_REQUEST_IOC_QUEUE, request_queue = none(b'|', 0x80);
    MEDIA_REQUEST_IOC_REINIT, request_reinit = none(b'|', 0x81);
    DMA_BUF_IOCTL_SYNC, dma_buf_sync = w(b'b', 0, dma_buf_sync);
    DMA_BUF_IOCTL_EXPORT_SYNC_FILE, export_sync_file = rw(b'b', 2, dma_buf_export_sync_file);
    DMA_BUF_IOCTL_IMPORT_SYNC_FILE, import_sync_file = w(b'b', 3, dma_buf_import_sync_file);
    SYNC_IOC_MERGE, sync_merge = rw(b'>', 3, sync_merge_data);
    SYNC_IOC_FILE_INFO, sync_file_info = rw(b'>', 4, sync_file_info) follows_pointers;
    SW_SYNC_IOC_CREATE_FENCE, sw_sync_create_fence = rw(b'W', 0, sw_sync_create_fence_data);
    SW_SYNC_IOC_INC, sw_sync_inc = w(b'W', 1, u32);
}

/// Issue `ioctl(fd, req, arg)`: the raw result, or the errno. EINTR is returned, not retried:
/// the executor decides whether its deadline still allows a retry.
///
/// # Safety
/// `arg` must be what the kernel expects for `req`: a pointer to a live value of the request's
/// struct, or 0 for `_IO` requests.
pub unsafe fn raw(fd: RawFd, req: Request, arg: usize) -> Result<i32, Errno> {
    // SAFETY: forwarded to the caller's contract.
    let r = unsafe { libc::ioctl(fd, req, arg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}
