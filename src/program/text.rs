//! The program text format: a version line, `# key: value` header lines, then one op per line,
//! `[@thread] name handle… key=value… [-> handle]`, with `#` comments anywhere. Version 1 has
//! no threads; version 2 adds `@N` (the op runs on program thread N, 1 to 7; none: thread 0)
//! and the `barrier` op. A program without threads is printed as version 1.
use super::ops::FieldError;
use super::{Handle, Op, Program, MAX_THREAD, VERSION_LINE, VERSION_LINE_V2};
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
        let v2 = self.is_threaded();
        writeln!(f, "{}", if v2 { VERSION_LINE_V2 } else { VERSION_LINE })?;
        for (k, v) in &self.header {
            writeln!(f, "# {k}: {v}")?;
        }
        for (t, op) in self.steps() {
            if t != 0 {
                write!(f, "@{t} ")?;
            }
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
    let mut p = Parser::default();
    // At most one op per line: sized once, the ops are never moved (a long program's copies
    // were a fifth of its page faults).
    p.prog
        .ops
        .reserve(memchr::memchr_iter(b'\n', src.as_bytes()).count() + 1);
    p.lines(src)?;
    p.finish()
}

/// Why a program file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is not a valid program.
    #[error("{0}")]
    Parse(#[from] ParseError),
}

/// Read and parse a program a chunk of lines at a time (`size`, the file's length if known,
/// sizes the ops vector): a long program's text is never held whole. Under the lab's TCG a page
/// fault costs about 100 µs, and the text of a 10 000-op program is 75 pages.
pub fn parse_reader(r: impl std::io::Read, size: Option<u64>) -> Result<Program, ReadError> {
    parse_chunked(r, size, 32 << 10)
}

/// Read and parse a program file, as `parse_reader`; errors name the file.
pub fn parse_file(path: &std::path::Path) -> anyhow::Result<Program> {
    use anyhow::Context;
    let f = std::fs::File::open(path).with_context(|| format!("read {}", path.display()))?;
    let size = f.metadata().ok().map(|m| m.len());
    parse_reader(f, size).map_err(|e| match e {
        ReadError::Io(e) => anyhow::Error::new(e).context(format!("read {}", path.display())),
        ReadError::Parse(e) => anyhow::anyhow!("{}: {e}", path.display()),
    })
}

fn parse_chunked(
    mut r: impl std::io::Read,
    size: Option<u64>,
    chunk: usize,
) -> Result<Program, ReadError> {
    let mut p = Parser::default();
    let mut buf = vec![0u8; chunk];
    // Complete lines are parsed after every read, so `buf` holds at most one partial line.
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // One line longer than the buffer.
            buf.resize(buf.len() * 2, 0);
        }
        let n = match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        filled += n;
        let Some(end) = memchr::memrchr(b'\n', &buf[..filled]).map(|i| i + 1) else {
            continue;
        };
        if p.line == 0 {
            // Lines of the first chunk times chunks in the file; growth covers the rest.
            let lines = memchr::memchr_iter(b'\n', &buf[..end]).count() as u64;
            let est = size.map_or(lines, |s| lines * s / end as u64 + 1);
            p.prog.ops.reserve(est.min(1 << 20) as usize);
        }
        p.lines(p.text(&buf[..end])?)?;
        buf.copy_within(end..filled, 0);
        filled -= end;
    }
    let rest = p.text(&buf[..filled])?;
    p.lines(rest)?;
    Ok(p.finish()?)
}

/// The parse of a program fed whole lines, in order.
#[derive(Default)]
struct Parser {
    prog: Program,
    /// Lines seen so far.
    line: usize,
    /// The version line said v2 (threads allowed).
    v2: bool,
}

impl Parser {
    /// `bytes` (whole lines) as text; the error names the line of the first invalid byte.
    fn text<'a>(&self, bytes: &'a [u8]) -> Result<&'a str, ParseError> {
        std::str::from_utf8(bytes).map_err(|e| {
            let before = &bytes[..e.valid_up_to()];
            let ln = self.line + memchr::memchr_iter(b'\n', before).count() + 1;
            let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
            let col =
                std::str::from_utf8(&before[line_start..]).map_or(1, |t| t.chars().count() + 1);
            ParseError {
                line: ln,
                col,
                msg: "not UTF-8 text".into(),
            }
        })
    }

    fn lines(&mut self, text: &str) -> Result<(), ParseError> {
        let err = |line: usize, col: usize, msg: String| ParseError { line, col, msg };
        let mut scratch = Scratch::default();
        for raw in lines(text) {
            self.line += 1;
            let ln = self.line;
            if ln == 1 {
                match raw.trim_end() {
                    VERSION_LINE => {}
                    VERSION_LINE_V2 => self.v2 = true,
                    other => {
                        return Err(err(
                            1,
                            1,
                            format!(
                                "expected `{VERSION_LINE}` or `{VERSION_LINE_V2}` as the first \
                                 line, found `{}`",
                                other.trim()
                            ),
                        ))
                    }
                }
                continue;
            }
            let prog = &mut self.prog;
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
            let (thread, code, shift) = thread_prefix(code).map_err(|(c, m)| err(ln, c, m))?;
            let op = parse_op_with(code, &mut scratch)
                .map_err(|(col, msg)| err(ln, col + shift, msg))?;
            if !self.v2 && (thread != 0 || matches!(op, Op::Barrier {})) {
                let what = if thread != 0 {
                    "`@N` threads"
                } else {
                    "`barrier`"
                };
                return Err(err(
                    ln,
                    col(raw, raw.len() - raw.trim_start().len()),
                    format!("{what} need `{VERSION_LINE_V2}` as the first line"),
                ));
            }
            prog.push(thread, op);
        }
        Ok(())
    }

    fn finish(self) -> Result<Program, ParseError> {
        if self.line == 0 {
            return Err(ParseError {
                line: 1,
                col: 1,
                msg: format!("empty program: expected `{VERSION_LINE}`"),
            });
        }
        Ok(self.prog)
    }
}

/// The `@N ` thread prefix of an op line: (thread, the rest, columns before the rest).
fn thread_prefix(code: &str) -> Result<(u8, &str, usize), (usize, String)> {
    let lead = code.len() - code.trim_start().len();
    let Some(rest) = code[lead..].strip_prefix('@') else {
        return Ok((0, code, 0));
    };
    let digits = rest.bytes().take_while(|b| !ascii_space(*b)).count();
    let at = col(code, lead);
    let t: u8 = rest[..digits]
        .parse()
        .ok()
        .filter(|t| *t <= MAX_THREAD)
        .ok_or((
            at,
            format!(
                "`@{}`: a thread is a number from 0 to {MAX_THREAD}",
                &rest[..digits]
            ),
        ))?;
    let body = &rest[digits..];
    if body.trim().is_empty() {
        return Err((at, format!("`@{t}` must be followed by an op")));
    }
    let shift = code[..code.len() - body.len()].chars().count();
    Ok((t, body, shift))
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

    const TEXT: &str = "# m2mfuzz program v1\r\n# driver: vim2m\n\n  # é comment\nopen node=vim2m -> c0 # ünïcode\r\nreqbufs c0 queue=out count=4 memory=mmap\n\
                        querybuf c0 queue=out index=3\nclose c0";

    #[test]
    fn a_program_read_in_chunks_parses_as_the_whole_text_does() {
        let whole = parse(TEXT).unwrap();
        assert_eq!(whole.ops.len(), 4);
        for chunk in 1..=TEXT.len() + 1 {
            for size in [None, Some(TEXT.len() as u64), Some(1)] {
                let p = parse_chunked(TEXT.as_bytes(), size, chunk).unwrap();
                assert_eq!(p, whole, "chunk {chunk}, size {size:?}");
            }
        }
    }

    #[test]
    fn a_chunked_read_reports_the_same_errors_with_their_lines() {
        let bad = TEXT.replace("index=3", "index=x");
        let want = parse(&bad).unwrap_err();
        assert_eq!(want.line, 7);
        for src in ["", "open node=vim2m -> c0\n", bad.as_str()] {
            for chunk in [1, 5, 64] {
                let got = parse_chunked(src.as_bytes(), None, chunk).unwrap_err();
                let ReadError::Parse(got) = got else {
                    panic!("{got}")
                };
                assert_eq!(got, parse(src).unwrap_err(), "{src:?} chunk {chunk}");
            }
        }
        let mut bytes = TEXT.as_bytes().to_vec();
        let at = TEXT.find("queue=out index").unwrap() + 6;
        bytes[at] = 0xff;
        for chunk in [1, 7, 4096] {
            match parse_chunked(&bytes[..], None, chunk) {
                Err(ReadError::Parse(e)) => {
                    assert_eq!((e.line, e.col, e.msg.as_str()), (7, 19, "not UTF-8 text"))
                }
                other => panic!("{other:?}"),
            }
        }
    }

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
