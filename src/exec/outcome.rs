//! What an op did.
use nix::errno::Errno;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The result of one op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OpResult {
    /// Succeeded with a value (an fd, index, count, status…).
    Ok {
        /// The op's value.
        value: i64,
    },
    /// The kernel returned an error.
    Err {
        /// errno.
        errno: i32,
    },
    /// Its wait or blocking ioctl did not finish before its deadline.
    TimedOut,
    /// Not run: a handle it needs is unbound (its producer failed, was removed, or it was closed).
    Skipped {
        /// Why.
        reason: String,
    },
}

impl OpResult {
    /// From an errno.
    pub fn errno(e: Errno) -> OpResult {
        OpResult::Err { errno: e as i32 }
    }
}

/// One op's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// Index of the op in the program.
    pub index: usize,
    /// What happened.
    pub result: OpResult,
    /// How long it took.
    #[serde(serialize_with = "micros")]
    pub duration: Duration,
    /// Extra facts (buffer flags, fence names and states, sizes).
    pub detail: Option<String>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Ok { value } => write!(f, "ok {value}"),
            OpResult::Err { errno } => write!(f, "{}", Errno::from_raw(*errno)),
            OpResult::TimedOut => f.write_str("TIMED OUT"),
            OpResult::Skipped { reason } => write!(f, "skipped ({reason})"),
        }
    }
}
