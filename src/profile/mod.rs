//! Driver knowledge (formats, sizes, requests, controls) so generated programs are mostly valid,
//! and stress profiles (TOML) that say what an overnight run targets.
pub mod driver;
pub mod stress;

pub use driver::{by_name, DriverProfile, JobReady, Requests, ALL};
