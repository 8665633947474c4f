//! Raw kernel ABI: `#[repr(C)]` structs laid out as the kernel headers lay them out, and the
//! ioctl numbers built from them. `tests/uapi_layout.rs` proves sizes and offsets against the C
//! headers (x86_64 run, aarch64 compiled).
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
