//! The fence ledger: dma_fence and vb2 trace events from a tracefs instance of m2mfuzz's own (so
//! it disturbs no other tracing), paired by context and seqno.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One fence's life as the trace saw it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FenceLife {
    /// `dma_fence_ops.get_driver_name`.
    pub driver: String,
    /// Timeline name.
    pub timeline: String,
    /// Context (u32 in the trace event).
    pub context: u32,
    /// Seqno (u32 in the trace event).
    pub seqno: u32,
    /// dma_fence_init seen.
    pub init: bool,
    /// dma_fence_emit seen (published).
    pub emitted: bool,
    /// dma_fence_signaled seen.
    pub signaled: bool,
    /// dma_fence_destroy seen.
    pub destroyed: bool,
    /// Trace timestamp (s) of dma_fence_emit, for the publish-to-signal latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emit_s: Option<f64>,
    /// Trace timestamp (s) of dma_fence_signaled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signaled_s: Option<f64>,
}

/// Publish-to-signal latency of the release fences of one epoch (or a run), in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Fences whose emit and signal the trace both saw.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Latency {
    /// Summary of latencies in milliseconds (order does not matter).
    pub fn of(mut ms: Vec<f64>) -> Latency {
        if ms.is_empty() {
            return Latency::default();
        }
        ms.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value at or above the quantile, an observed latency.
        let q = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Latency {
            count: ms.len() as u64,
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            max_ms: ms[ms.len() - 1],
        }
    }

    /// Add another epoch's: count, mean and max stay exact; the quantiles of the whole cannot be
    /// had from the parts, so the worst epoch's stand for them.
    pub fn add(&mut self, o: &Latency) {
        let n = self.count + o.count;
        if n == 0 {
            return;
        }
        self.mean_ms = (self.mean_ms * self.count as f64 + o.mean_ms * o.count as f64) / n as f64;
        self.count = n;
        self.p50_ms = self.p50_ms.max(o.p50_ms);
        self.p99_ms = self.p99_ms.max(o.p99_ms);
        self.max_ms = self.max_ms.max(o.max_ms);
    }
}

/// Totals and fence lives of a trace.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ledger {
    /// Fences by (context, seqno).
    pub fences: BTreeMap<(u32, u32), FenceLife>,
    /// Event counts by name (`dma_fence_init`, `vb2_buf_done`, …).
    pub counts: BTreeMap<String, u64>,
    /// Trace lines that said events were lost.
    pub lost: u64,
    /// `vb2_buf_done` events of CAPTURE buffers (queue type 1 or 9): m2m jobs that ended, DONE
    /// and ERROR alike (the event carries no state).
    pub capture_done: u64,
}

/// Whether a fence is a producer fence of the code under test (not an injected sw_sync fence).
pub fn is_producer(f: &FenceLife) -> bool {
    f.driver == "vb2"
}

/// A timeline name without its context number (`vim2m-cap-22` → `vim2m-cap`), stable across runs.
pub fn stable_timeline(t: &str) -> &str {
    match t.rsplit_once('-') {
        Some((head, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => head,
        _ => t,
    }
}

/// The timestamp of a trace line (`comm-pid [cpu] flags   6.244337: event: …`), in seconds of
/// the trace clock.
fn timestamp(line: &str) -> Option<f64> {
    line.split(": ")
        .next()?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(&format!(" {key}="))? + key.len() + 2;
    line[i..].split_whitespace().next()
}

/// The queue type of a vb2 event line (`…, type = 9, …`: V4L2_BUF_TYPE_*).
fn vb2_type(line: &str) -> Option<u32> {
    let i = line.find(" type = ")? + " type = ".len();
    line[i..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

impl Ledger {
    /// Add the events of trace text (`cat trace` format).
    pub fn add_text(&mut self, text: &str) {
        for line in text.lines() {
            if line.starts_with('#') {
                if line.contains("LOST") {
                    self.lost += 1;
                }
                continue;
            }
            let Some(ev) = line
                .split(": ")
                .nth(1)
                .map(|s| s.trim())
                .filter(|s| !s.contains(' '))
            else {
                continue;
            };
            *self.counts.entry(ev.to_string()).or_default() += 1;
            if ev == "vb2_buf_done" && matches!(vb2_type(line), Some(1 | 9)) {
                self.capture_done += 1;
            }
            if !ev.starts_with("dma_fence_") {
                continue;
            }
            let (Some(ctx), Some(seq)) = (field(line, "context"), field(line, "seqno")) else {
                continue;
            };
            let (Ok(context), Ok(seqno)) = (ctx.parse(), seq.parse()) else {
                continue;
            };
            let f = self
                .fences
                .entry((context, seqno))
                .or_insert_with(|| FenceLife {
                    driver: field(line, "driver").unwrap_or_default().to_string(),
                    timeline: field(line, "timeline").unwrap_or_default().to_string(),
                    context,
                    seqno,
                    ..Default::default()
                });
            match ev {
                "dma_fence_init" => f.init = true,
                "dma_fence_emit" => {
                    f.emitted = true;
                    f.emit_s = timestamp(line);
                }
                "dma_fence_signaled" => {
                    f.signaled = true;
                    f.signaled_s = timestamp(line);
                }
                "dma_fence_destroy" => f.destroyed = true,
                _ => {}
            }
        }
    }

    /// Producer fences published and never signalled, destroyed so (abandoned).
    pub fn abandoned(&self) -> impl Iterator<Item = &FenceLife> {
        self.fences
            .values()
            .filter(|f| is_producer(f) && f.emitted && !f.signaled && f.destroyed)
    }

    /// Producer fences published and still unsignalled (leaked, once quiescent).
    pub fn unsignalled(&self) -> impl Iterator<Item = &FenceLife> {
        self.fences
            .values()
            .filter(|f| is_producer(f) && f.emitted && !f.signaled && !f.destroyed)
    }

    /// Producer fences signalled but never destroyed (a reference leak, once every fd is closed).
    pub fn undestroyed(&self) -> impl Iterator<Item = &FenceLife> {
        self.fences
            .values()
            .filter(|f| is_producer(f) && f.emitted && f.signaled && !f.destroyed)
    }

    /// Fences created in this trace and still alive at its end that no producer check covers
    /// (sw_sync, dma_fence_array, vb2 fences never published). Once every fd is closed they
    /// should all be gone: a reference leak outside the release-fence path, or a fence freed
    /// only after the trace was read. The kernel's static stub fence (context 0, initialised on
    /// first use, never freed) is not one. Nor is a sw_sync point created on a value its
    /// timeline already has: `sync_pt_create` initialises it, then frees it with `kfree` (no
    /// destroy event); it shares the existing point's (context, seqno), so it is never listed.
    pub fn other_alive(&self) -> impl Iterator<Item = &FenceLife> {
        self.fences.values().filter(|f| {
            let checked = is_producer(f) && f.emitted;
            let static_stub = f.driver == "stub" && f.context == 0;
            f.init && !f.destroyed && !checked && !static_stub
        })
    }

    /// Producer fences published (emitted).
    pub fn producer_published(&self) -> u64 {
        self.fences
            .values()
            .filter(|f| is_producer(f) && f.emitted)
            .count() as u64
    }

    /// Producer fences published and signalled.
    pub fn producer_signalled(&self) -> u64 {
        self.fences
            .values()
            .filter(|f| is_producer(f) && f.emitted && f.signaled)
            .count() as u64
    }

    /// Publish-to-signal latency of the producer fences whose emit and signal are both in
    /// this trace (a fence emitted in one epoch and signalled in the next is in neither). The
    /// trace clock is the instance's (`local` by default: per-CPU, close enough for
    /// milliseconds); a negative difference (clock skew between CPUs) counts as zero.
    pub fn producer_latency(&self) -> Latency {
        Latency::of(
            self.fences
                .values()
                .filter(|f| is_producer(f))
                .filter_map(|f| Some((f.signaled_s? - f.emit_s?).max(0.0) * 1e3))
                .collect(),
        )
    }

    /// Count of an event.
    pub fn count(&self, ev: &str) -> u64 {
        self.counts.get(ev).copied().unwrap_or(0)
    }
}

/// A tracefs instance with the dma_fence and vb2 events on, read through its `trace_pipe`: a
/// consuming read loses nothing between two reads (reading `trace`, then clearing it, dropped
/// every event that came in between, unmarked).
pub struct TraceInstance {
    dir: PathBuf,
    pipe: std::sync::Mutex<Pipe>,
}

/// The open `trace_pipe` (non-blocking) and a partial last line held for the next read.
struct Pipe {
    file: Option<fs::File>,
    rest: Vec<u8>,
}

fn tracefs() -> Option<&'static Path> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("instances").is_dir())
}

impl TraceInstance {
    /// Create `instances/m2mfuzz-<pid>-<n>` and enable the events. None (with the reason) when tracefs
    /// or the events are missing.
    pub fn create() -> Result<TraceInstance, String> {
        let root = tracefs()
            .ok_or("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)")?;
        // One name per instance: two alive in one process (a stress run's and a replay's, say)
        // must not read, clear or remove each other's.
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root
            .join("instances")
            .join(format!("m2mfuzz-{}-{n}", std::process::id()));
        if !dir.exists() {
            fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        let pipe_path = dir.join("trace_pipe");
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&pipe_path)
            .map_err(|e| format!("open {}: {e}", pipe_path.display()))?;
        let t = TraceInstance {
            dir,
            pipe: std::sync::Mutex::new(Pipe {
                file: Some(file),
                rest: Vec::new(),
            }),
        };
        let _ = fs::write(t.dir.join("buffer_size_kb"), "8192");
        for sys in ["dma_fence", "vb2"] {
            let p = t.dir.join("events").join(sys).join("enable");
            fs::write(&p, "1").map_err(|e| {
                format!(
                    "enable {}: {e} (CONFIG_FTRACE events missing?)",
                    p.display()
                )
            })?;
        }
        Ok(t)
    }

    /// The events since the last call, whole lines only (consumed from the ring buffer).
    pub fn take(&self) -> String {
        use std::io::Read;
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        let Pipe { file, rest } = &mut *pipe;
        let mut buf = std::mem::take(rest);
        if let Some(f) = file {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match f.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EAGAIN: nothing more now. Any other error: what was read is kept.
                    Err(_) => break,
                }
            }
        }
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        *rest = buf.split_off(whole);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The instance's directory (its `trace_marker` writes into the same ring buffer).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TraceInstance {
    fn drop(&mut self) {
        // The pipe first: an instance with a reader open cannot be removed.
        if let Ok(p) = self.pipe.get_mut() {
            p.file = None;
        }
        for sys in ["dma_fence", "vb2"] {
            let _ = fs::write(self.dir.join("events").join(sys).join("enable"), "0");
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ev: &str, driver: &str, timeline: &str, context: u32, seqno: u32) -> String {
        format!(
            "         m2mfuzz-46      [000] .N.1.     6.244337: {ev}: driver={driver} \
             timeline={timeline} context={context} seqno={seqno}\n"
        )
    }

    #[test]
    fn other_alive_names_a_fence_never_freed_but_not_the_static_stub() {
        let mut text = String::new();
        for ev in ["dma_fence_init", "dma_fence_signaled"] {
            text += &line(ev, "stub", "stub", 0, 0);
        }
        for ev in [
            "dma_fence_init",
            "dma_fence_emit",
            "dma_fence_signaled",
            "dma_fence_destroy",
        ] {
            text += &line(ev, "vb2", "vim2m-cap-22", 22, 1);
        }
        text += &line("dma_fence_init", "vb2", "vim2m-cap-22", 22, 2);
        for ev in ["dma_fence_init", "dma_fence_signaled", "dma_fence_destroy"] {
            text += &line(ev, "sw_sync", "m2mfuzz", 40, 1);
        }
        let mut l = Ledger::default();
        l.add_text(&text);
        let alive: Vec<_> = l.other_alive().map(|f| (f.context, f.seqno)).collect();
        assert_eq!(alive, vec![(22, 2)]);
    }

    #[test]
    fn producer_latency_pairs_emit_and_signal_timestamps() {
        let at = |ts: &str, ev: &str, driver: &str, context: u32, seqno: u32| {
            format!(
                "     kworker/0:1-46      [000] .N.1.  {ts}: {ev}: driver={driver} \
                 timeline=t-{context} context={context} seqno={seqno}\n"
            )
        };
        let mut text = String::new();
        // Three vb2 fences signalled 1, 2 and 10 ms after their emit.
        for (seq, emit, sig) in [
            (1, "6.000000", "6.001000"),
            (2, "6.100000", "6.102000"),
            (3, "7.000000", "7.010000"),
        ] {
            text += &at(emit, "dma_fence_emit", "vb2", 22, seq);
            text += &at(sig, "dma_fence_signaled", "vb2", 22, seq);
        }
        // Not counted: one never signalled, one sw_sync fence.
        text += &at("8.000000", "dma_fence_emit", "vb2", 22, 4);
        text += &at("8.000000", "dma_fence_emit", "sw_sync", 40, 1);
        text += &at("9.000000", "dma_fence_signaled", "sw_sync", 40, 1);
        let mut l = Ledger::default();
        l.add_text(&text);
        let lat = l.producer_latency();
        assert_eq!(lat.count, 3);
        assert!((lat.mean_ms - 13.0 / 3.0).abs() < 1e-6, "{lat:?}");
        assert!((lat.p50_ms - 2.0).abs() < 1e-6, "{lat:?}");
        assert!(
            (lat.max_ms - 10.0).abs() < 1e-6 && (lat.p99_ms - 10.0).abs() < 1e-6,
            "{lat:?}"
        );
        let mut sum = lat.clone();
        sum.add(&Latency::of(vec![1.0]));
        assert_eq!(sum.count, 4);
        assert!((sum.mean_ms - 14.0 / 4.0).abs() < 1e-6, "{sum:?}");
        sum.add(&Latency::default());
        assert_eq!(sum.count, 4);
    }
}
