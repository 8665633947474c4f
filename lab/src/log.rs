//! The runner's own messages, on stderr, prefixed as the shell lab's were.

/// Print a `[lab]` line on stderr.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => { eprintln!("[lab] {}", format_args!($($t)*)) };
}
