//! The lab's checks, each a module: what it boots, what it reads back (m2mfuzz's own types), and
//! what fails it.
pub mod bench_coverage;
pub mod devices;
pub mod fuzz;
pub mod fuzz_check;
pub mod replay;
pub mod stress;
pub mod stress_faults;
