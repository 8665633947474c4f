//! Driver knowledge (formats, sizes, requests, controls) so generated programs are mostly valid.
pub mod driver;

pub use driver::{by_name, DriverProfile, Requests, ALL};
