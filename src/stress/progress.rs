//! Live progress: a redrawn status line on a terminal, plain periodic lines otherwise (logs, CI,
//! a serial console), and a summary at the end.
use super::Totals;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Progress output on stderr.
pub struct Progress {
    tty: bool,
    last_plain: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// Redraw on a terminal unless `plain`.
    pub fn new(plain: bool) -> Progress {
        Progress {
            tty: !plain && std::io::stderr().is_terminal(),
            last_plain: None,
            drawn: false,
        }
    }

    fn line(t: &Totals) -> String {
        let s = t.seconds.max(1e-9);
        let kinds: Vec<String> = t.findings.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let done = t.capture_done as f64 / s;
        let duty = match t.limit_jobs_per_s {
            Some(l) if l > 0.0 => format!(" (duty {:.3} of {l:.0}/s)", done / l),
            _ => String::new(),
        };
        format!(
            "[{:>6.0}s] {:.1} programs/s, {:.0} ops/s, jobs {done:.1}/s{duty}, {} frames, fences {} published / {} signalled, findings: {}",
            t.seconds,
            t.programs as f64 / s,
            t.ops as f64 / s,
            t.frames,
            t.fences_published,
            t.fences_signalled,
            if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
        )
    }

    /// A note or a new finding: always its own line.
    pub fn note(&mut self, msg: &str) {
        let mut e = std::io::stderr().lock();
        if self.drawn {
            let _ = write!(e, "\r\x1b[K");
            self.drawn = false;
        }
        let _ = writeln!(e, "{msg}");
    }

    /// After each epoch.
    pub fn update(&mut self, t: &Totals) {
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[K{}", Self::line(t));
            let _ = e.flush();
            self.drawn = true;
        } else if self
            .last_plain
            .is_none_or(|l| l.elapsed() >= Duration::from_secs(10))
        {
            let _ = writeln!(e, "{}", Self::line(t));
            self.last_plain = Some(Instant::now());
        }
    }

    /// The summary.
    pub fn finish(&mut self, t: &Totals) {
        self.note(&Self::line(t));
        self.note(&format!(
            "done: {} epochs, {} programs, {} ops ({} failed with an errno), {} kernel reports elsewhere{}",
            t.epochs,
            t.programs,
            t.ops,
            t.errors,
            t.splats_elsewhere,
            if t.trace_lost > 0 { "; the trace lost events, ledger counts are low" } else { "" }
        ));
    }
}
