//! The program text format: a version line, `# key: value` header lines, then one op per line,
//! `name handle… key=value… [-> handle]`, with `#` comments anywhere.
use super::ops::FieldError;
use super::{Handle, Op, Program, VERSION_LINE};
use std::fmt;

/// A parse error with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {msg}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pos, kv, ret) = self.fields();
        f.write_str(self.name())?;
        for h in pos {
            write!(f, " {h}")?;
        }
        for (k, v) in kv {
            write!(f, " {k}={v}")?;
        }
        if let Some(r) = ret {
            write!(f, " -> {r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{VERSION_LINE}")?;
        for (k, v) in &self.header {
            writeln!(f, "# {k}: {v}")?;
        }
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

/// A word of a line with its 1-based column.
struct Token<'a> {
    text: &'a str,
    col: usize,
}

fn tokens(line: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(Token {
                    text: &line[s..i],
                    col: line[..s].chars().count() + 1,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Token {
            text: &line[s..],
            col: line[..s].chars().count() + 1,
        });
    }
    out
}

/// Parse program text.
pub fn parse(src: &str) -> Result<Program, ParseError> {
    let err = |line: usize, col: usize, msg: String| ParseError { line, col, msg };
    let mut lines = src.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, l)) if l.trim_end() == VERSION_LINE => {}
        Some((_, l)) => {
            return Err(err(
                1,
                1,
                format!(
                    "expected `{VERSION_LINE}` as the first line, found `{}`",
                    l.trim()
                ),
            ))
        }
        None => {
            return Err(err(
                1,
                1,
                format!("empty program: expected `{VERSION_LINE}`"),
            ))
        }
    }
    let mut prog = Program::default();
    for (ln, raw) in lines {
        let (code, comment) = match raw.find('#') {
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
            None => (raw, None),
        };
        if code.trim().is_empty() {
            // Header lines are comments of the form `# key: value` before the first op.
            if let (Some(c), true) = (comment, prog.ops.is_empty()) {
                if let Some((k, v)) = c.trim().split_once(':') {
                    let k = k.trim();
                    if !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        prog.header.push((k.to_string(), v.trim().to_string()));
                    }
                }
            }
            continue;
        }
        prog.ops
            .push(parse_op(code).map_err(|(col, msg)| err(ln, col, msg))?);
    }
    Ok(prog)
}

/// Parse one op line (without comment); errors carry the column.
pub fn parse_op(code: &str) -> Result<Op, (usize, String)> {
    let toks = tokens(code);
    let name = &toks[0];
    let mut pos: Vec<(Handle, usize)> = Vec::new();
    let mut keyed: Vec<(&str, &str, usize)> = Vec::new();
    let mut ret = None;
    let mut i = 1;
    while i < toks.len() {
        let t = &toks[i];
        if t.text == "->" {
            let h = toks
                .get(i + 1)
                .ok_or((t.col, "`->` must be followed by a handle".to_string()))?;
            ret = Some(Handle::parse(h.text).map_err(|e| (h.col, e))?);
            if let Some(extra) = toks.get(i + 2) {
                return Err((
                    extra.col,
                    format!("unexpected `{}` after the result handle", extra.text),
                ));
            }
            break;
        }
        match t.text.split_once('=') {
            Some((k, v)) => {
                if keyed.iter().any(|(k2, _, _)| *k2 == k) {
                    return Err((t.col, format!("`{k}=` given twice")));
                }
                keyed.push((k, v, t.col));
            }
            None => {
                if !keyed.is_empty() {
                    return Err((
                        t.col,
                        format!(
                            "handle `{}` after keyed arguments: handles come first",
                            t.text
                        ),
                    ));
                }
                pos.push((Handle::parse(t.text).map_err(|e| (t.col, e))?, t.col));
            }
        }
        i += 1;
    }
    let handles: Vec<Handle> = pos.iter().map(|p| p.0).collect();
    let kv: Vec<(&str, &str)> = keyed.iter().map(|(k, v, _)| (*k, *v)).collect();
    Op::from_fields(name.text, &handles, &kv, ret).map_err(|e| match e {
        FieldError::Name(m) | FieldError::Missing(m) => (name.col, m),
        FieldError::Positional(m) => (pos.first().map_or(name.col, |p| p.1), m),
        FieldError::Ret(m) => {
            let end = code.trim_end().chars().count() + 1;
            (
                toks.iter().find(|t| t.text == "->").map_or(end, |t| t.col),
                m,
            )
        }
        FieldError::Key(k, m) => {
            let col = keyed
                .iter()
                .find(|(k2, _, _)| *k2 == k)
                .map_or(name.col, |(_, _, c)| *c);
            (col, format!("`{k}`: {m}"))
        }
    })
}
