//! Kernel reports in kmsg or console text: find each report, classify it, give it a stable
//! syzkaller-style title, and attribute it to the code under test or elsewhere by its call chains.
use serde::Serialize;

/// What kind of report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SplatClass {
    /// lockdep: possible circular locking dependency.
    CircularLocking,
    /// lockdep: inconsistent lock state.
    InconsistentLockState,
    /// lockdep: possible recursive locking.
    RecursiveLocking,
    /// lockdep: invalid wait context.
    InvalidWaitContext,
    /// lockdep: suspicious RCU usage.
    SuspiciousRcu,
    /// BUG: sleeping function called from invalid context.
    SleepInAtomic,
    /// BUG: scheduling while atomic.
    SchedulingWhileAtomic,
    /// WARNING at file:line.
    Warning,
    /// `refcount_t: underflow; use-after-free.` and the other refcount_t saturations: a
    /// reference dropped once too often (or taken on a freed object).
    Refcount,
    /// BUG / kernel BUG / Oops.
    Bug,
    /// KASAN report.
    Kasan,
    /// UBSAN report.
    Ubsan,
    /// Hung task.
    HungTask,
    /// Soft lockup.
    SoftLockup,
    /// RCU stall.
    RcuStall,
    /// kmemleak.
    MemoryLeak,
}

/// A parsed report.
#[derive(Clone, Debug, Serialize)]
pub struct Splat {
    /// Class.
    pub class: SplatClass,
    /// Stable title, e.g. `possible circular locking dependency in vb2_buffer_attach_release_fence`.
    pub title: String,
    /// The function the title names.
    pub function: String,
    /// Whether the call chains run through the code under test.
    pub under_test: bool,
    /// Why it was attributed so (the first matching frame or lock), for the reader.
    pub attribution: String,
    /// Lockdep switched itself off with this report (further lockdep findings need a reboot).
    pub lockdep_off: bool,
    /// The whole report text.
    pub text: String,
    /// Index of the report's first line in the parsed text.
    pub line: usize,
}

/// Strip a console/dmesg timestamp (`[    6.271335] `).
fn strip_ts(line: &str) -> &str {
    let t = line.trim_end_matches('\r');
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(i) = rest.find("] ") {
            if rest[..i]
                .trim()
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
            {
                return &rest[i + 2..];
            }
        }
    }
    t
}

/// How a report starts: a line pattern and its class.
fn start_class(l: &str) -> Option<SplatClass> {
    let l = l.trim_start();
    Some(
        if l.starts_with("WARNING: possible circular locking dependency detected") {
            SplatClass::CircularLocking
        } else if l.starts_with("WARNING: inconsistent lock state") {
            SplatClass::InconsistentLockState
        } else if l.starts_with("WARNING: possible recursive locking detected") {
            SplatClass::RecursiveLocking
        } else if l.starts_with("[ BUG: Invalid wait context ]") {
            SplatClass::InvalidWaitContext
        } else if l.starts_with("WARNING: suspicious RCU usage") {
            SplatClass::SuspiciousRcu
        } else if l.starts_with("BUG: sleeping function called from invalid context") {
            SplatClass::SleepInAtomic
        } else if l.starts_with("BUG: scheduling while atomic") {
            SplatClass::SchedulingWhileAtomic
        } else if l.starts_with("BUG: KASAN:") {
            SplatClass::Kasan
        } else if l.starts_with("UBSAN:") {
            SplatClass::Ubsan
        } else if l.starts_with("INFO: task ") && l.contains(" blocked for more than ") {
            SplatClass::HungTask
        } else if l.contains("BUG: soft lockup") {
            SplatClass::SoftLockup
        } else if l.contains("rcu: INFO:") && l.contains("stall")
            || l.contains("rcu_preempt self-detected stall")
        {
            SplatClass::RcuStall
        } else if l.starts_with("refcount_t: ") {
            SplatClass::Refcount
        } else if l.starts_with("unreferenced object 0x") {
            SplatClass::MemoryLeak
        } else if l.starts_with("WARNING: CPU: ") || l.starts_with("------------[ cut here ]") {
            SplatClass::Warning
        } else if l.starts_with("BUG: ")
            || l.starts_with("kernel BUG at ")
            || l.starts_with("Oops: ")
        {
            SplatClass::Bug
        } else {
            return None;
        },
    )
}

/// Frames that say nothing about who is at fault: lockdep, allocation hooks, the stack dumper,
/// locking primitives, coverage instrumentation; and, on arm64, the stack dumper's and the
/// exception and syscall entry's own frames.
fn generic(func: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "dump_backtrace",
        "__dump_backtrace",
        "el0t_",
        "el1h_",
        "el0_",
        "el1_",
        "do_el0_",
        "invoke_syscall",
        "__arm64_sys",
        "call_on_irq_stack",
        "do_interrupt_handler",
        "gic_handle_irq",
        "lock_",
        "__lock_",
        "check_",
        "print_",
        "validate_",
        "mark_",
        "__might_",
        "might_",
        "__fs_reclaim",
        "fs_reclaim",
        "dump_stack",
        "show_stack",
        "__warn",
        "warn_",
        "report_bug",
        "handle_bug",
        "exc_",
        "asm_exc",
        "mutex_",
        "__mutex",
        "_raw_spin",
        "_raw_read",
        "_raw_write",
        "down_",
        "up_",
        "ww_mutex",
        "__ww_mutex",
        "slab_",
        "__kmalloc",
        "kmalloc",
        "kmem_cache",
        "__sanitizer",
        "trace_",
        "__schedule",
        "schedule",
        "rcu_",
        "__rcu",
        "__dma_fence_might_wait",
        "find_held_lock",
        "debug_",
        "__debug",
        "__cond_resched",
        "kasan_",
        "__kasan",
        "ubsan_",
        "__ubsan",
        "dma_fence_begin",
        "dma_fence_end",
        "entry_",
        "do_syscall",
        "__x64_sys",
        "__do_sys",
        "ret_from_fork",
        "kthread",
        "worker_thread",
        "process_one_work",
        "process_scheduled_works",
        "do_one_initcall",
        "kernel_init",
        "panic",
        "hung_task",
        "watchdog",
        "vfs_ioctl",
        "__se_sys",
        "console_",
        "vprintk",
        "_printk",
        "sysvec_",
        "irq_",
        "__irq",
        "do_idle",
        "cpu_startup",
        "default_idle",
    ];
    PREFIXES.iter().any(|p| func.starts_with(p))
}

/// The refcount machinery every refcount report shares: the saturation warning and the
/// refcount/kref/dma_fence_put helpers (inline in most builds, frames in some). The title names
/// the caller that dropped (or took) the reference, as syzkaller's "refcount bug in" does.
fn refcount_helper(func: &str) -> bool {
    ["refcount_", "__refcount_", "kref_", "dma_fence_put"]
        .iter()
        .any(|p| func.starts_with(p))
}

/// `name+0x3b6/0x5ce [module]` → `name`. `?` frames (the unwinder's guesses) give None.
fn frame_func(line: &str) -> Option<&str> {
    let t = line.trim();
    if t.starts_with('?') {
        return None;
    }
    frame_func_any(t)
}

/// Like `frame_func`, `?` frames included.
fn frame_func_any(line: &str) -> Option<&str> {
    let t = line.trim().trim_start_matches("? ");
    if !t.contains("+0x") {
        return None;
    }
    let t = t.strip_prefix("RIP: 0010:").unwrap_or(t);
    let t = t.strip_prefix("pc : ").unwrap_or(t);
    let name = t.split("+0x").next()?.trim();
    let name = name.rsplit(' ').next()?;
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    .then_some(name)
}

/// Function names of the call-chain frames of a report, in order: the reliable ones, or, when
/// the unwinder marked every frame as a guess (no frame pointers, no ORC), the guesses.
pub fn frames(text: &str) -> Vec<&str> {
    let in_trace = |l: &&str| !l.contains(", at: ") && !l.contains("] ") && !l.contains("RIP:");
    let reliable: Vec<&str> = text
        .lines()
        .filter(in_trace)
        .filter_map(frame_func)
        .collect();
    if !reliable.is_empty() {
        return reliable;
    }
    text.lines()
        .filter(in_trace)
        .filter_map(frame_func_any)
        .collect()
}

/// What counts as the code under test: vb2, v4l2 mem2mem, dma-fence, dma-resv, dma-buf and the
/// target drivers' functions (built-in drivers show no module name, hence their function names).
#[derive(Clone, Debug)]
pub struct UnderTest {
    prefixes: Vec<String>,
    locks: Vec<&'static str>,
}

impl Default for UnderTest {
    fn default() -> Self {
        let prefixes = [
            "vb2_",
            "__vb2",
            "videobuf2",
            "v4l2_m2m",
            "__v4l2_m2m",
            "dma_fence",
            "dma_resv",
            "dma_buf",
            "__dma_buf",
            "sync_file",
            "vim2m_",
            "visl_",
            "vicodec_",
            "rga_",
            "rockchip_rga",
            "hantro_",
            "device_run",
            "device_work",
            "job_abort",
            "job_ready",
        ];
        UnderTest {
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            locks: vec![
                "dma_fence_map",
                "reservation_ww_class",
                "vb_mutex",
                "mmap_lock",
                "job_spinlock",
                "hw_lock",
                "done_lock",
            ],
        }
    }
}

impl UnderTest {
    fn frame_matches(&self, f: &str) -> bool {
        self.prefixes.iter().any(|p| f.starts_with(p.as_str()))
    }
}

/// Is lockdep's own switch-off announced in this text?
fn lockdep_off_in(text: &str) -> bool {
    text.contains("turning off the locking correctness validator")
        || text.contains("debug_locks_off")
        || text.contains("lockdep: ") && text.contains("disabl")
}

/// The function a title names: for lockdep, the first non-generic `at:` of the locks involved;
/// otherwise the first non-generic frame of the call trace (or of RIP / the header line).
fn title_function(class: SplatClass, text: &str) -> String {
    let at_funcs = text.lines().filter_map(|l| {
        let (_, after) = l.split_once(", at: ")?;
        frame_func(after)
    });
    let lockdep = matches!(
        class,
        SplatClass::CircularLocking
            | SplatClass::InconsistentLockState
            | SplatClass::RecursiveLocking
            | SplatClass::InvalidWaitContext
    );
    if lockdep {
        if let Some(f) = at_funcs.clone().find(|f| !generic(f)) {
            return f.to_string();
        }
    }
    if class == SplatClass::Refcount {
        // RIP and the WARNING line name refcount_warn_saturate: skip to its caller.
        if let Some(f) = frames(text)
            .into_iter()
            .find(|f| !generic(f) && !refcount_helper(f))
        {
            return f.to_string();
        }
    }
    if class == SplatClass::Warning {
        // "WARNING: CPU: 0 PID: 1 at drivers/x.c:12 func+0x1/0x2"
        if let Some(l) = text.lines().find(|l| l.contains("WARNING: CPU:")) {
            if let Some(f) = l.rsplit(' ').next().and_then(frame_func) {
                return f.to_string();
            }
        }
    }
    // x86's faulting instruction, or arm64's (`pc : func+0x1/0x2`).
    let rip = text.lines().find_map(|l| {
        let l = l.trim_start();
        l.strip_prefix("RIP: 0010:")
            .or_else(|| l.strip_prefix("pc : "))
            .and_then(frame_func)
    });
    if matches!(
        class,
        SplatClass::Bug | SplatClass::SoftLockup | SplatClass::RcuStall
    ) {
        if let Some(f) = rip.filter(|f| !generic(f)) {
            return f.to_string();
        }
    }
    if let Some(f) = frames(text).into_iter().find(|f| !generic(f)) {
        return f.to_string();
    }
    at_funcs
        .into_iter()
        .next()
        .or(rip)
        .unwrap_or("unknown")
        .to_string()
}

fn title(class: SplatClass, func: &str, first: &str) -> String {
    let what = match class {
        SplatClass::CircularLocking => "possible circular locking dependency".to_string(),
        SplatClass::InconsistentLockState => "inconsistent lock state".to_string(),
        SplatClass::RecursiveLocking => "possible recursive locking".to_string(),
        SplatClass::InvalidWaitContext => "invalid wait context".to_string(),
        SplatClass::SuspiciousRcu => "suspicious RCU usage".to_string(),
        SplatClass::SleepInAtomic => "sleeping function called from invalid context".to_string(),
        SplatClass::SchedulingWhileAtomic => "scheduling while atomic".to_string(),
        SplatClass::Warning => "WARNING".to_string(),
        SplatClass::Refcount => "refcount bug".to_string(),
        SplatClass::Bug => {
            let t = first.trim();
            if t.starts_with("kernel BUG") {
                "kernel BUG".to_string()
            } else if let Some(b) = t.strip_prefix("BUG: ") {
                // "BUG: kernel NULL pointer dereference, address: …" → "BUG: kernel NULL pointer dereference"
                format!("BUG: {}", b.split([',', ':']).next().unwrap_or(b).trim())
            } else {
                "Oops".to_string()
            }
        }
        SplatClass::Kasan => {
            let t = first.trim().trim_start_matches("BUG: KASAN: ");
            format!("KASAN: {}", t.split(" in ").next().unwrap_or(t).trim())
        }
        SplatClass::Ubsan => {
            let t = first.trim().trim_start_matches("UBSAN: ");
            format!("UBSAN: {}", t.split(" in ").next().unwrap_or(t).trim())
        }
        SplatClass::HungTask => "hung task".to_string(),
        SplatClass::SoftLockup => "soft lockup".to_string(),
        SplatClass::RcuStall => "RCU stall".to_string(),
        SplatClass::MemoryLeak => "memory leak".to_string(),
    };
    format!("{what} in {func}")
}

fn attribute(class: SplatClass, text: &str, ut: &UnderTest) -> (bool, String) {
    // The report's own backtrace first; lockdep's dependency chains (recorded earlier) after.
    let own = text.find("Call Trace:").map_or("", |i| &text[i..]);
    if let Some(f) = frames(own)
        .into_iter()
        .chain(frames(text))
        .find(|f| ut.frame_matches(f))
    {
        return (true, format!("frame {f}"));
    }
    let lockdep = matches!(
        class,
        SplatClass::CircularLocking
            | SplatClass::InconsistentLockState
            | SplatClass::RecursiveLocking
            | SplatClass::InvalidWaitContext
    );
    if lockdep {
        for l in text.lines().filter(|l| l.contains("){")) {
            if let Some(lock) = ut.locks.iter().find(|k| l.contains(*k)) {
                return (true, format!("lock {lock}"));
            }
        }
    }
    (false, "no frame or lock of the code under test".to_string())
}

/// Whether a line ends the current report.
fn ends_report(l: &str) -> bool {
    let t = l.trim();
    t == "</TASK>" || t.starts_with("---[ end trace") || t.starts_with("---[ end Kernel panic")
}

/// Find every report in kmsg/console text (timestamps allowed).
pub fn parse(text: &str, ut: &UnderTest) -> Vec<Splat> {
    let lines: Vec<&str> = text.lines().map(strip_ts).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(mut class) = start_class(lines[i]) else {
            i += 1;
            continue;
        };
        let start = i;
        // The last line of the report's header: "cut here" precedes the real header line of
        // WARN/BUG, and a WARN with a message (refcount_t's, say) prints the message, then
        // "WARNING: CPU: … at file:line func".
        let mut header_end = start;
        let mut first = lines[i];
        let warning_line = |k: usize| {
            lines
                .get(k)
                .is_some_and(|l| l.trim_start().starts_with("WARNING: CPU: "))
        };
        if lines[i]
            .trim_start()
            .starts_with("------------[ cut here ]")
        {
            if let Some(next) = lines.get(i + 1) {
                first = next;
                header_end = i + 1;
                class = start_class(next)
                    .filter(|c| *c != SplatClass::Warning)
                    .unwrap_or(if next.contains("WARNING:") || warning_line(i + 2) {
                        SplatClass::Warning
                    } else {
                        SplatClass::Bug
                    });
                if !next.contains("WARNING:") && warning_line(i + 2) {
                    header_end = i + 2;
                }
            }
        } else if class == SplatClass::Refcount && warning_line(i + 1) {
            header_end = i + 1;
        }
        let mut j = i + 1;
        let mut saw_trace = false;
        while j < lines.len() && j - start < 400 {
            let l = lines[j];
            // A BUG/KASAN header is followed by its own "Oops:" line; "cut here" by its header.
            let continuation = j <= header_end
                || (!saw_trace
                    && matches!(class, SplatClass::Bug | SplatClass::Kasan)
                    && l.trim_start().starts_with("Oops: "));
            if start_class(l).is_some() && !continuation {
                break;
            }
            if l.contains("Call Trace:") || l.contains("stack backtrace:") {
                saw_trace = true;
            }
            j += 1;
            // An RCU stall report dumps the GP kthread's stack before the stalled CPU's.
            if saw_trace && ends_report(l) && class != SplatClass::RcuStall {
                break;
            }
        }
        let body = lines[start..j].join("\n");
        let func = title_function(class, &body);
        let (under_test, attribution) = attribute(class, &body, ut);
        out.push(Splat {
            class,
            title: title(class, &func, first),
            function: func,
            under_test,
            attribution,
            lockdep_off: lockdep_off_in(&body),
            text: body,
            line: start,
        });
        i = j.max(i + 1);
    }
    out
}
