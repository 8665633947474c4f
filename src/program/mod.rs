//! Programs: a header and a list of ops over named resource handles. Pure data: no ioctls here.
pub mod args;
pub mod generate;
pub mod ops;
pub mod text;

pub use args::*;
pub use ops::{Op, OP_SIGNATURES};
pub use text::ParseError;

/// The first line of every program file.
pub const VERSION_LINE: &str = "# m2mfuzz program v1";

/// A program: header keys (`driver`, `expect`, …, in file order) and ops.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Program {
    /// `# key: value` lines before the first op.
    pub header: Vec<(String, String)>,
    /// The ops, run in order.
    pub ops: Vec<Op>,
}

impl Program {
    /// A header value.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
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
    for p in programs {
        let mut top = base.clone();
        for op in &p.ops {
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
            out.ops.push(op);
        }
        base = top;
    }
    out
}
