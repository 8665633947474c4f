//! The lab's checks, each a module: what it boots, what it reads back (m2mfuzz's own types), and
//! what fails it.
pub mod bench;
pub mod bench_coverage;
pub mod bench_duty;
pub mod bench_overhead;
pub mod bench_scaling;
pub mod compliance;
pub mod devices;
pub mod faults;
pub mod fuzz;
pub mod fuzz_check;
pub mod race_check;
pub mod recover;
pub mod replay;
pub mod repro;
pub mod shrink;
pub mod shrink_resume;
pub mod stress;
pub mod stress_faults;
