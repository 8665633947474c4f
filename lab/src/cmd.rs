//! Host programs run by the lab (make, cargo, apt-get, cpio, …), with errors that name the
//! command and say what to look at.
use anyhow::{bail, Context, Result};
use std::process::Command;

/// Run `c` to completion, its output passed through to ours; fail if it fails.
pub fn run(c: &mut Command) -> Result<()> {
    let st = c
        .status()
        .with_context(|| format!("cannot start {}", show(c)))?;
    if !st.success() {
        bail!("{} failed ({st})", show(c));
    }
    Ok(())
}

/// Run `c` and return its stdout; stderr is kept for the error when it fails (unless the caller
/// sent it elsewhere).
pub fn output(c: &mut Command) -> Result<String> {
    let o = c
        .output()
        .with_context(|| format!("cannot start {}", show(c)))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        bail!("{} failed ({}):\n{}", show(c), o.status, tail(&err, 30));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Run `c` with its output (both streams) written to `log`; on failure the error carries the
/// log's last lines.
pub fn logged(c: &mut Command, log: &std::path::Path) -> Result<()> {
    let f = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let st = c
        .stdout(f.try_clone()?)
        .stderr(f)
        .status()
        .with_context(|| format!("cannot start {}", show(c)))?;
    if !st.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{} failed ({st}); log {}:\n{}",
            show(c),
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}

/// The command as a user would type it (for messages).
pub fn show(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(super::tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(super::tail("a", 5), "a");
    }
}
