//! Programs: a header and a list of ops over named resource handles, each op on a program
//! thread. Pure data: no ioctls here.
pub mod args;
pub mod generate;
pub mod ops;
pub mod text;

pub use args::*;
pub use ops::{Op, OP_SIGNATURES};
pub use text::ParseError;

/// The first line of a program file whose ops all run on the main thread.
pub const VERSION_LINE: &str = "# m2mfuzz program v1";

/// The first line of a program file with threads (`@N` ops, `barrier`).
pub const VERSION_LINE_V2: &str = "# m2mfuzz program v2";

/// Program threads are numbered 0 (the main thread) to this, inclusive.
pub const MAX_THREAD: u8 = 7;

/// A program: header keys (`driver`, `expect`, …, in file order), ops and the thread of each.
///
/// Threads: the ops between two `barrier`s (a segment) run concurrently, one OS thread per
/// program thread that has ops there, each thread its own ops in program order; all threads
/// start a segment together and meet at its end. Handles are shared by every thread.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Program {
    /// `# key: value` lines before the first op.
    pub header: Vec<(String, String)>,
    /// The ops, in program order.
    pub ops: Vec<Op>,
    /// The thread of each op (`threads[i]` runs `ops[i]`); empty when every op is on thread 0,
    /// and an op past its end is on thread 0.
    pub threads: Vec<u8>,
}

impl Program {
    /// A header value.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The thread of op `i`.
    pub fn thread(&self, i: usize) -> u8 {
        self.threads.get(i).copied().unwrap_or(0)
    }

    /// Whether any op runs on a thread other than the main one (the text is then v2).
    pub fn is_threaded(&self) -> bool {
        self.threads.iter().any(|&t| t != 0) || self.ops.iter().any(|o| matches!(o, Op::Barrier {}))
    }

    /// The segments: ranges of op indices between barriers, a barrier in a range of its own.
    /// The ops of one segment run concurrently, thread by thread.
    pub fn segments(&self) -> Vec<std::ops::Range<usize>> {
        let mut v = Vec::new();
        let mut start = 0;
        for (i, op) in self.ops.iter().enumerate() {
            if matches!(op, Op::Barrier {}) {
                if start < i {
                    v.push(start..i);
                }
                v.push(i..i + 1);
                start = i + 1;
            }
        }
        if start < self.ops.len() {
            v.push(start..self.ops.len());
        }
        v
    }

    /// Each op with its thread.
    pub fn steps(&self) -> impl Iterator<Item = (u8, &Op)> + '_ {
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| (self.thread(i), op))
    }

    /// A program with this header and these (thread, op) steps; `threads` stays empty when
    /// every step is on thread 0.
    pub fn from_steps(header: Vec<(String, String)>, steps: Vec<(u8, Op)>) -> Program {
        let threads: Vec<u8> = if steps.iter().any(|(t, _)| *t != 0) {
            steps.iter().map(|(t, _)| *t).collect()
        } else {
            Vec::new()
        };
        Program {
            header,
            ops: steps.into_iter().map(|(_, op)| op).collect(),
            threads,
        }
    }

    /// The (thread, op) steps, owned.
    pub fn to_steps(&self) -> Vec<(u8, Op)> {
        self.steps().map(|(t, op)| (t, op.clone())).collect()
    }

    /// Add an op on thread `thread`.
    pub fn push(&mut self, thread: u8, op: Op) {
        if thread != 0 && self.threads.len() < self.ops.len() {
            self.threads.resize(self.ops.len(), 0);
        }
        if thread != 0 || !self.threads.is_empty() {
            self.threads.push(thread);
        }
        self.ops.push(op);
    }

    /// Add a header line, beside any of the same key (`# expect:` may repeat).
    pub fn add_header(&mut self, key: &str, value: &str) {
        self.header.push((key.to_string(), value.to_string()));
    }

    /// Set (or replace) a header value.
    pub fn set_header(&mut self, key: &str, value: &str) {
        match self.header.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => self.header.push((key.to_string(), value.to_string())),
        }
    }
}

/// Several programs as one, run one after the other: handles of each later program are renumbered
/// past the earlier ones', so the result is a valid program (how findings from concurrent workers
/// are first serialized for shrinking).
pub fn concat(programs: &[&Program]) -> Program {
    let mut out = Program::default();
    if let Some(first) = programs.first() {
        out.header = first.header.clone();
    }
    let mut base: std::collections::BTreeMap<ResKind, u32> = Default::default();
    for (k, p) in programs.iter().enumerate() {
        // A threaded program's last segment ends before the next program starts.
        if k > 0 && programs[k - 1].is_threaded() {
            out.push(0, Op::Barrier {});
        }
        let mut top = base.clone();
        for (thread, op) in p.steps() {
            let mut op = op.clone();
            let shift = |h: &mut Handle, top: &mut std::collections::BTreeMap<ResKind, u32>| {
                h.id += base.get(&h.kind).copied().unwrap_or(0);
                let t = top.entry(h.kind).or_insert(0);
                *t = (*t).max(h.id + 1);
            };
            for h in op.inputs_mut() {
                shift(h, &mut top);
            }
            if let Some(h) = op.output_mut() {
                shift(h, &mut top);
            }
            out.push(thread, op);
        }
        base = top;
    }
    out
}
