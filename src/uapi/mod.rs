//! Raw kernel ABI: `#[repr(C)]` structs laid out as the kernel headers lay them out, and the
//! ioctl numbers built from them. `tests/uapi_layout.rs` proves sizes, offsets and request
//! numbers against each architecture's own C headers: built and run natively on x86_64, and built
//! for aarch64 and run under qemu-aarch64-static (`ci/board-build.sh --test`).

// The structs are written for LP64. On 32-bit ABIs (armhf) `v4l2_buffer` holds a 32-bit
// `timeval` (or a 64-bit one with other request numbers under `_TIME_BITS=64`), and the longs,
// pointers and `size_t`s elsewhere shrink: refuse to build rather than issue wrong ioctls.
#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "m2mfuzz supports 64-bit Linux only (aarch64, x86_64): on 32-bit targets such as armhf \
     (armv7-unknown-linux-gnueabihf) struct v4l2_buffer's timeval and other longs and pointers \
     lay out differently from the LP64 structs in src/uapi; build for aarch64 (an RK3566/RK3588 \
     runs aarch64 userspace)"
);
#[allow(missing_docs)] // kernel names; the kernel headers document them.
pub mod dmabuf;
#[allow(missing_docs)] // kernel names; the kernel headers document them.
pub mod ioctl;
#[allow(missing_docs)] // kernel names; the kernel headers document them.
pub mod kcov;
#[allow(missing_docs)] // kernel names; the kernel headers document them.
pub mod media;
#[allow(missing_docs)] // kernel names; the kernel headers document them.
pub mod sync_file;
#[allow(missing_docs)] // kernel names; the kernel headers document them.
pub mod v4l2;
