//! The kernel's debug state, as the oracles depend on it.
use crate::oracle::Clause;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// What the kernel offers the oracles.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DebugState {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Lockdep is built in (/proc/lockdep_stats exists).
    pub lockdep: bool,
    /// `debug_locks` from /proc/lockdep_stats: false after lockdep has reported once (or turned
    /// itself off); further lockdep findings then need a reboot.
    pub lockdep_enabled: Option<bool>,
    /// /sys/kernel/debug/kcov exists.
    pub kcov: bool,
    /// tracefs mount point, if found.
    pub tracefs: Option<String>,
    /// dma_fence trace events present.
    pub dma_fence_events: bool,
    /// vb2 trace events present.
    pub vb2_events: bool,
    /// /proc/sys/kernel/hung_task_timeout_secs (None: no hung-task detector).
    pub hung_task_timeout_secs: Option<u64>,
    /// sw_sync debugfs file present (fence injection).
    pub sw_sync: bool,
}

fn tracefs_root() -> Option<&'static str> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|p| Path::new(p).join("events").is_dir())
}

/// Read the current debug state.
pub fn read() -> DebugState {
    let lockdep = fs::read_to_string("/proc/lockdep_stats").ok();
    let tracefs = tracefs_root();
    let events =
        |sys: &str| tracefs.is_some_and(|t| Path::new(t).join("events").join(sys).is_dir());
    DebugState {
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        lockdep: lockdep.is_some(),
        lockdep_enabled: lockdep.as_deref().and_then(debug_locks),
        kcov: Path::new("/sys/kernel/debug/kcov").exists(),
        tracefs: tracefs.map(str::to_string),
        dma_fence_events: events("dma_fence"),
        vb2_events: events("vb2"),
        hung_task_timeout_secs: fs::read_to_string("/proc/sys/kernel/hung_task_timeout_secs")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        sw_sync: Path::new("/sys/kernel/debug/sync/sw_sync").exists(),
    }
}

/// The `debug_locks:` value of /proc/lockdep_stats.
pub fn debug_locks(stats: &str) -> Option<bool> {
    stats.lines().find_map(|l| {
        let v = l.trim().strip_prefix("debug_locks:")?;
        Some(v.trim() == "1")
    })
}

impl DebugState {
    /// Why a clause of the release-fence contract cannot be judged on this kernel, or None
    /// when it can. Clauses 1 to 3 need only what every kernel has (mappings, exports, waits,
    /// SYNC_IOC_FILE_INFO); an abandoned fence (4) and a fence never freed (5) show only in the
    /// `dma_fence` trace events; 6 needs lockdep, still on.
    pub fn unjudged(&self, c: Clause) -> Option<&'static str> {
        match c {
            // A hang is judged from the program's waits on any kernel (a fence left pending
            // with no wait on it shows only in the trace events: see `warnings`).
            Clause::SeesWrite | Clause::SignalsAfterData | Clause::Finite => None,
            Clause::ErrorSignalled | Clause::Freed if !self.dma_fence_events => {
                Some("no dma_fence trace events (tracefs, CONFIG_FTRACE)")
            }
            Clause::Annotations if !self.lockdep => {
                Some("lockdep not built in (CONFIG_PROVE_LOCKING)")
            }
            Clause::Annotations if self.lockdep_enabled == Some(false) => {
                Some("lockdep switched itself off (debug_locks 0): reboot")
            }
            _ => None,
        }
    }

    /// Human-readable warnings about what the oracles will miss.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.lockdep {
            w.push(
                "lockdep is not built in (CONFIG_PROVE_LOCKING): locking bugs will not be reported"
                    .into(),
            );
        } else if self.lockdep_enabled == Some(false) {
            w.push("lockdep has switched itself off (debug_locks 0): reboot before trusting a clean run".into());
        }
        if !self.kcov {
            w.push("no /sys/kernel/debug/kcov: fuzzing runs without kernel coverage".into());
        }
        if !self.dma_fence_events {
            w.push("no dma_fence trace events (tracefs mounted? CONFIG_FTRACE): the fence ledger is blind".into());
        }
        if self.hung_task_timeout_secs.is_none_or(|t| t == 0) {
            w.push("hung-task detection is off (CONFIG_DETECT_HUNG_TASK)".into());
        }
        w
    }
}
