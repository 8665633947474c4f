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

/// A word of a line with its byte offset (columns are counted only for errors).
#[derive(Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    at: usize,
}

/// 1-based column (in characters) of byte offset `at` of `line`.
fn col(line: &str, at: usize) -> usize {
    line[..at].chars().count() + 1
}

/// Buffers reused from line to line, so a program of thousands of ops is parsed with few
/// allocations besides the ops themselves (parsing counts in the harness overhead benchmark).
#[derive(Default)]
struct Scratch<'a> {
    toks: Vec<Token<'a>>,
    pos: Vec<Handle>,
    pos_at: Vec<usize>,
    keyed: Vec<(&'a str, &'a str)>,
    keyed_at: Vec<usize>,
}

/// Whitespace as `char::is_whitespace` says of ASCII (tab to carriage return, and space).
fn ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

fn tokens<'a>(line: &'a str, out: &mut Vec<Token<'a>>) {
    out.clear();
    if !line.is_ascii() {
        return tokens_unicode(line, out);
    }
    // Program text is ASCII but for comments: bytes, without decoding (the parse of a long
    // program counts in the harness overhead benchmark).
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && ascii_space(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return;
        }
        let at = i;
        while i < b.len() && !ascii_space(b[i]) {
            i += 1;
        }
        out.push(Token {
            text: &line[at..i],
            at,
        });
    }
}

/// `tokens` of a line with non-ASCII characters: any of them may be a space.
fn tokens_unicode<'a>(line: &'a str, out: &mut Vec<Token<'a>>) {
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(Token {
                    text: &line[s..i],
                    at: s,
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
            at: s,
        });
    }
}

/// `s` split around the first `sep` byte (ASCII). A plain loop: `str::split_once` with a char
/// pattern goes through a searcher, and `memchr` sets up vectors, that cost more than these short
/// words.
fn split_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.as_bytes().iter().position(|&b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// The lines of `src` as `str::lines` gives them (`\n` or `\r\n` ends).
fn lines(src: &str) -> impl Iterator<Item = &str> {
    let mut rest = src;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', rest.as_bytes()).map(|i| (&rest[..i], &rest[i + 1..])) {
            Some((line, next)) => {
                rest = next;
                Some(line.strip_suffix('\r').unwrap_or(line))
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

/// Parse program text.
pub fn parse(src: &str) -> Result<Program, ParseError> {
    let err = |line: usize, col: usize, msg: String| ParseError { line, col, msg };
    let mut lines = lines(src).enumerate().map(|(i, l)| (i + 1, l));
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
    // At most one op per line: sized once, the ops are never moved (a long program's copies
    // were a fifth of its page faults).
    prog.ops
        .reserve(memchr::memchr_iter(b'\n', src.as_bytes()).count() + 1);
    let mut scratch = Scratch::default();
    for (ln, raw) in lines {
        let (code, comment) = match split_byte(raw, b'#') {
            Some((code, comment)) => (code, Some(comment)),
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
            .push(parse_op_with(code, &mut scratch).map_err(|(col, msg)| err(ln, col, msg))?);
    }
    Ok(prog)
}

/// Parse one op line (without comment); errors carry the column.
pub fn parse_op(code: &str) -> Result<Op, (usize, String)> {
    parse_op_with(code, &mut Scratch::default())
}

fn parse_op_with<'a>(code: &'a str, s: &mut Scratch<'a>) -> Result<Op, (usize, String)> {
    tokens(code, &mut s.toks);
    s.pos.clear();
    s.pos_at.clear();
    s.keyed.clear();
    s.keyed_at.clear();
    let toks = &s.toks;
    let name = toks[0];
    let at = |t: &Token| col(code, t.at);
    let mut ret = None;
    let mut i = 1;
    while i < toks.len() {
        let t = &toks[i];
        if t.text == "->" {
            let h = toks
                .get(i + 1)
                .ok_or((at(t), "`->` must be followed by a handle".to_string()))?;
            ret = Some(Handle::parse(h.text).map_err(|e| (at(h), e))?);
            if let Some(extra) = toks.get(i + 2) {
                return Err((
                    at(extra),
                    format!("unexpected `{}` after the result handle", extra.text),
                ));
            }
            break;
        }
        match split_byte(t.text, b'=') {
            Some((k, v)) => {
                if s.keyed.iter().any(|(k2, _)| *k2 == k) {
                    return Err((at(t), format!("`{k}=` given twice")));
                }
                s.keyed.push((k, v));
                s.keyed_at.push(t.at);
            }
            None => {
                if !s.keyed.is_empty() {
                    return Err((
                        at(t),
                        format!(
                            "handle `{}` after keyed arguments: handles come first",
                            t.text
                        ),
                    ));
                }
                s.pos.push(Handle::parse(t.text).map_err(|e| (at(t), e))?);
                s.pos_at.push(t.at);
            }
        }
        i += 1;
    }
    Op::from_fields(name.text, &s.pos, &s.keyed, ret).map_err(|e| match e {
        FieldError::Name(m) | FieldError::Missing(m) => (at(&name), m),
        FieldError::Positional(m) => (col(code, s.pos_at.first().copied().unwrap_or(name.at)), m),
        FieldError::Ret(m) => {
            let end = code.trim_end().chars().count() + 1;
            (toks.iter().find(|t| t.text == "->").map_or(end, at), m)
        }
        FieldError::Key(k, m) => {
            let c = s
                .keyed
                .iter()
                .zip(&s.keyed_at)
                .find(|((k2, _), _)| *k2 == k)
                .map_or(at(&name), |(_, a)| col(code, *a));
            (c, format!("`{k}`: {m}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lines_splits_as_str_lines_does(s in "[a#=\r\n \t\u{a0}\u{2003}é]{0,40}") {
            prop_assert_eq!(lines(&s).collect::<Vec<_>>(), s.lines().collect::<Vec<_>>());
        }

        #[test]
        fn tokens_are_the_whitespace_separated_words(s in "[a#=\r \t\u{b}\u{a0}\u{2003}é]{0,40}") {
            let mut out = Vec::new();
            tokens(&s, &mut out);
            let words: Vec<&str> = out.iter().map(|t| t.text).collect();
            prop_assert_eq!(words, s.split_whitespace().collect::<Vec<_>>());
            for t in &out {
                prop_assert_eq!(&s[t.at..t.at + t.text.len()], t.text);
            }
        }
    }
}
