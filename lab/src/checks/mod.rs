//! The lab's checks, each a module: what it boots, what it reads back (m2mfuzz's own types), and
//! what fails it.
pub mod devices;
pub mod recover;
pub mod replay;
pub mod repro;
pub mod shrink;
pub mod shrink_resume;
pub mod stress;
