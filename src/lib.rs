//! m2mfuzz: an ioctl-level fuzzer and stress tester for V4L2 mem2mem drivers and the dma-buf
//! fences they publish. See README.md for the architecture.
#![warn(missing_docs)]

pub mod corpus;
pub mod device;
pub mod exec;
pub mod fuzz;
pub mod kcov;
pub mod oracle;
pub mod profile;
pub mod program;
pub mod report;
pub mod repro;
pub mod shrink;
pub mod stress;
pub mod uapi;
