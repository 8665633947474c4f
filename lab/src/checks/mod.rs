//! The lab's checks, each a module: what it boots, what it reads back (m2mfuzz's own types), and
//! what fails it.
pub mod bench;
pub mod bench_duty;
pub mod bench_overhead;
pub mod bench_scaling;
pub mod devices;
pub mod replay;
pub mod stress;
