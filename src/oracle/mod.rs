//! Oracles turn kernel evidence into findings: splats from kmsg, leaked fences from the tracefs
//! ledger, hangs from waits and deadlines, stale reads from buffer contents, memory faults from
//! the accesses that met them. They plug into the executor as an [`Observer`] and conclude in
//! [`OracleSet::finish`] once the program's resources are released.
pub mod fault;
pub mod hang;
pub mod kmsg;
pub mod ledger;
pub mod reply;
pub mod splat;
pub mod stale;

use crate::exec::{ExecState, Observer, Outcome};
use crate::program::Op;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An ioctl or a published fence did not finish in bounded time.
    Hang,
    /// A published fence never signalled, or was never freed.
    LeakedFence,
    /// A kernel report (lockdep, WARN, BUG, …) in the code under test.
    Splat,
    /// A buffer said complete did not hold the output.
    StaleRead,
    /// The kernel said success with an answer no correct kernel gives (no fd where one was
    /// promised, a count beyond the ABI's limit).
    BadReply,
    /// An access inside a mapping the program still held met SIGBUS or SIGSEGV: the mapping
    /// holds the buffer's memory, which must stay there while it is mapped.
    MemoryFault,
}

impl Kind {
    /// Every kind, in the order reports list them.
    pub const ALL: [Kind; 6] = [
        Kind::Hang,
        Kind::LeakedFence,
        Kind::Splat,
        Kind::StaleRead,
        Kind::BadReply,
        Kind::MemoryFault,
    ];

    /// The kind's name in titles, `# expect:` lines and reproducer output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hang => "hang",
            Kind::LeakedFence => "leaked-fence",
            Kind::Splat => "splat",
            Kind::StaleRead => "stale-read",
            Kind::BadReply => "bad-reply",
            Kind::MemoryFault => "memory-fault",
        }
    }

    /// The kind [`Kind::name`] names.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One spelling everywhere: JSON carries [`Kind::name`], as titles, `finding.json` and
/// `# expect:` lines do.
impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Read back as written: [`Kind::name`] only.
impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Kind::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("no finding kind `{name}`")))
    }
}

/// A clause of the release-fence contract (Documentation/driver-api/dma-buf.rst, "DMA Fence
/// Signalling Annotations" and "Indefinite DMA Fences", and the series' design), so that a
/// finding and a report say which promise broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Clause {
    /// 1. Once the job writing a CAPTURE buffer has started, every implicit-sync query of its
    ///    dmabuf (exports, polls, DMA_BUF_IOCTL_SYNC) sees that write.
    SeesWrite,
    /// 2. A fence signals without error only once the data it guards is complete.
    SignalsAfterData,
    /// 3. It signals in finite time, whatever userspace does.
    Finite,
    /// 4. It signals, with an error, on every path that returns the buffer in ERROR or
    ///    abandons it.
    ErrorSignalled,
    /// 5. It is freed once nothing references it, and not before.
    Freed,
    /// 6. Publish and signal paths take no lock and make no allocation that the signalling
    ///    annotations forbid, and do not sleep in atomic context.
    Annotations,
}

impl Clause {
    /// Every clause, in the contract's order.
    pub const ALL: [Clause; 6] = [
        Clause::SeesWrite,
        Clause::SignalsAfterData,
        Clause::Finite,
        Clause::ErrorSignalled,
        Clause::Freed,
        Clause::Annotations,
    ];

    /// The clause's number in the contract (1–6).
    pub fn number(self) -> usize {
        Clause::ALL.iter().position(|c| *c == self).unwrap_or(0) + 1
    }

    /// Its name in JSON and reports.
    pub fn name(self) -> &'static str {
        match self {
            Clause::SeesWrite => "sees-write",
            Clause::SignalsAfterData => "signals-after-data",
            Clause::Finite => "finite",
            Clause::ErrorSignalled => "error-signalled",
            Clause::Freed => "freed",
            Clause::Annotations => "annotations",
        }
    }

    /// The promise, in one line.
    pub fn promise(self) -> &'static str {
        match self {
            Clause::SeesWrite => "once the job has started, implicit sync sees its write",
            Clause::SignalsAfterData => "no signal without error before the data is complete",
            Clause::Finite => "signals in finite time, whatever userspace does",
            Clause::ErrorSignalled => "signals with an error when the buffer is abandoned",
            Clause::Freed => "freed once nothing references it, not before",
            Clause::Annotations => {
                "no forbidden lock, allocation or sleep when publishing or signalling"
            }
        }
    }

    /// The clause [`Clause::name`] names.
    pub fn from_name(name: &str) -> Option<Clause> {
        Clause::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The clause a kernel report in the code under test breaks, when it is one of the fence
    /// contract's: a locking or context report whose lock chain holds the signalling
    /// annotation's `dma_fence_map`, or whose function is a fence's; a refcount bug in fence or
    /// reservation code (a fence put once too often is freed while still referenced).
    pub fn of_splat(s: &splat::Splat) -> Option<Clause> {
        use splat::SplatClass as C;
        let fence_fn = s.function.contains("fence");
        match s.class {
            _ if !s.under_test => None,
            C::CircularLocking
            | C::InconsistentLockState
            | C::RecursiveLocking
            | C::InvalidWaitContext
            | C::SleepInAtomic
            | C::SchedulingWhileAtomic
                if fence_fn || s.text.contains("dma_fence_map") =>
            {
                Some(Clause::Annotations)
            }
            C::Refcount if fence_fn || s.function.starts_with("dma_resv") => Some(Clause::Freed),
            _ => None,
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "clause {} ({})", self.number(), self.name())
    }
}

impl Serialize for Clause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Clause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Clause::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("no contract clause `{name}`")))
    }
}

/// A finding: kind, stable title, signature for dedup and shrinking, evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    /// Kind.
    pub kind: Kind,
    /// Short stable title (syzkaller style).
    pub title: String,
    /// Equal for "the same bug": kind, title and, for lockdep, the lock pair.
    pub signature: String,
    /// The op that showed it, when one did.
    pub op: Option<usize>,
    /// Kernel text, ledger extract or fence state.
    pub evidence: String,
    /// For splats: whether the call chains run through the code under test.
    pub under_test: bool,
    /// Timelines of the fences involved (hangs), to reconcile with the ledger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fence_timelines: Vec<String>,
    /// For leaked fences: the fence's (context, seqno) in the ledger.
    #[serde(skip)]
    pub fence_key: Option<(u32, u32)>,
    /// The clause of the release-fence contract it breaks, when it is one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clause: Option<Clause>,
}

impl Finding {
    /// A finding whose signature is its kind and title.
    pub fn new(kind: Kind, title: String, evidence: String, op: Option<usize>) -> Finding {
        Finding {
            signature: format!("{kind}: {title}"),
            kind,
            title,
            op,
            evidence,
            under_test: true,
            fence_timelines: Vec::new(),
            fence_key: None,
            clause: None,
        }
    }

    /// The same finding, naming the contract clause it breaks.
    pub fn breaking(mut self, clause: Clause) -> Finding {
        self.clause = Some(clause);
        self
    }

    /// An op that never came back from the kernel (see [`crate::exec::supervise`]).
    pub fn stuck(op: &Op, stuck: &crate::exec::supervise::Stuck) -> Finding {
        Finding::new(
            Kind::Hang,
            format!("{} stuck in the kernel", op.name()),
            format!(
                "op {} `{op}` has not returned after {:.0} s; kernel stack:\n{}",
                stuck.index, stuck.seconds, stuck.kernel_stack
            ),
            Some(stuck.index),
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.title)
    }
}

/// One line of `m2mfuzz run --json` and `watch --json`: an op's outcome with the op's text
/// (`run`), an item of the verdict, or the watched command's exit (`watch`). The commands print these and
/// the lab reads them back with this type.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonLine {
    /// An op's outcome.
    Op {
        /// What it did.
        #[serde(flatten)]
        outcome: Outcome,
        /// The op as the program's text writes it.
        op: String,
    },
    /// A finding in the code under test.
    Finding {
        /// It.
        finding: Finding,
    },
    /// A kernel report attributed elsewhere.
    Elsewhere {
        /// It.
        elsewhere: Finding,
    },
    /// A note of the verdict.
    Note {
        /// Its text.
        note: String,
    },
    /// How the command `watch` ran ended.
    Exit {
        /// Its exit code or signal.
        exit: Exited,
    },
}

/// How a watched command ended: one of the two is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// Its exit code.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
}

impl Exited {
    /// From the command's status.
    pub fn of(st: std::process::ExitStatus) -> Exited {
        use std::os::unix::process::ExitStatusExt;
        Exited {
            code: st.code(),
            signal: st.signal(),
        }
    }
}

impl Verdict {
    /// The verdict as [`JsonLine`]s: findings, then reports elsewhere, then notes.
    pub fn json_lines(&self) -> impl Iterator<Item = JsonLine> + '_ {
        let findings = self
            .findings
            .iter()
            .map(|f| JsonLine::Finding { finding: f.clone() });
        let elsewhere = self.elsewhere.iter().map(|f| JsonLine::Elsewhere {
            elsewhere: f.clone(),
        });
        let notes = self
            .notes
            .iter()
            .map(|n| JsonLine::Note { note: n.clone() });
        findings.chain(elsewhere).chain(notes)
    }
}

/// Oracle settings.
#[derive(Clone, Debug)]
pub struct OracleOptions {
    /// Extra time a published fence gets after a program's wait gave up, before it is a hang.
    pub fence_deadline: Duration,
    /// Wait after the program before reading the ledger (late signals, RCU-delayed frees).
    pub grace: Duration,
}

impl Default for OracleOptions {
    fn default() -> Self {
        OracleOptions {
            fence_deadline: Duration::from_secs(5),
            grace: Duration::from_millis(500),
        }
    }
}

/// What the oracles concluded about one program.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// Findings in the code under test.
    pub findings: Vec<Finding>,
    /// Kernel reports attributed elsewhere (shown, not findings).
    pub elsewhere: Vec<Finding>,
    /// What the oracles could not see, and state changes worth telling (lockdep switched off).
    pub notes: Vec<String>,
    /// The fence ledger.
    pub ledger: ledger::Ledger,
}

/// Keeps one tracefs instance for the oracle sets of consecutive runs (shrink candidates,
/// replayed programs): creating, sizing and enabling one, then removing it, took about 0.7 s
/// per run under TCG. The instance goes when the keeper and every set using it are dropped.
#[derive(Default)]
pub struct TraceKeeper(Option<Arc<ledger::TraceInstance>>);

/// All oracles for a run.
pub struct OracleSet {
    opts: OracleOptions,
    kmsg: Option<kmsg::KmsgReader>,
    trace: Option<Arc<ledger::TraceInstance>>,
    hang: hang::HangOracle,
    stale: stale::StaleOracle,
    reply: reply::ReplyOracle,
    fault: fault::FaultOracle,
    under_test: splat::UnderTest,
    notes: Vec<String>,
    absorbed: Vec<Finding>,
    /// Kernel log read so far, and after which op it reached how many lines.
    kmsg_text: String,
    kmsg_marks: Vec<(usize, usize)>,
}

/// The op after which the kernel log had reached line `line`: the first op whose mark passes it.
/// A report is seen after the op that raised it (or later, when the kernel printed it from a
/// worker), never before.
fn op_of_line(marks: &[(usize, usize)], line: usize) -> Option<usize> {
    marks.iter().find(|(_, lines)| *lines > line).map(|m| m.0)
}

impl OracleSet {
    /// Start watching: kmsg from its current end, a tracefs instance for the ledger. Missing
    /// pieces become notes, not errors: the run goes on with the oracles it has.
    pub fn new(opts: OracleOptions) -> OracleSet {
        OracleSet::keeping(opts, &mut TraceKeeper::default())
    }

    /// As [`OracleSet::new`], with the tracefs instance `keeper` holds (created into it on first
    /// use), for consecutive runs in one process.
    pub fn keeping(opts: OracleOptions, keeper: &mut TraceKeeper) -> OracleSet {
        let mut notes = Vec::new();
        let kmsg = kmsg::KmsgReader::open()
            .map_err(|e| {
                notes.push(format!(
                    "no splat oracle: cannot read /dev/kmsg ({e}); run as root"
                ))
            })
            .ok();
        let trace = match &keeper.0 {
            Some(t) => Some(t.clone()),
            None => ledger::TraceInstance::create()
                .map(Arc::new)
                .map_err(|e| notes.push(format!("no fence ledger: {e}")))
                .ok(),
        };
        if let Some(t) = &trace {
            t.take(); // start from an empty buffer
            keeper.0 = Some(t.clone());
        }
        let hang = hang::HangOracle {
            fence_deadline: opts.fence_deadline,
            ..Default::default()
        };
        OracleSet {
            opts,
            kmsg,
            trace,
            hang,
            stale: Default::default(),
            reply: Default::default(),
            fault: Default::default(),
            under_test: Default::default(),
            notes,
            absorbed: Vec::new(),
            kmsg_text: String::new(),
            kmsg_marks: Vec::new(),
        }
    }

    /// Only the kernel log, from where `kmsg` stands: for a parent whose forked executor may
    /// get stuck, so that what the kernel printed meanwhile is still judged ([`OracleSet::so_far`]).
    pub fn kmsg_only(opts: OracleOptions, kmsg: kmsg::KmsgReader) -> OracleSet {
        let mut set = OracleSet::local(opts);
        set.kmsg = Some(kmsg);
        set
    }

    /// Only the per-program oracles (hangs, stale reads, bad replies, memory faults): for one
    /// of several concurrent workers, whose kernel-wide evidence (kmsg, ledger) one shared
    /// [`OracleSet::new`] reads.
    pub fn local(opts: OracleOptions) -> OracleSet {
        OracleSet {
            hang: hang::HangOracle {
                fence_deadline: opts.fence_deadline,
                ..Default::default()
            },
            opts,
            kmsg: None,
            trace: None,
            stale: Default::default(),
            reply: Default::default(),
            fault: Default::default(),
            under_test: Default::default(),
            notes: Vec::new(),
            absorbed: Vec::new(),
            kmsg_text: String::new(),
            kmsg_marks: Vec::new(),
        }
    }

    /// The per-program findings so far (hangs, stale reads, bad replies, memory faults), taken
    /// out.
    pub fn take_local(&mut self) -> Vec<Finding> {
        let mut v = std::mem::take(&mut self.hang.findings);
        v.append(&mut self.stale.findings);
        v.append(&mut self.reply.findings);
        v.append(&mut self.fault.findings);
        v
    }

    /// Findings from local sets, to conclude with this set's kernel-wide evidence in `finish`.
    pub fn absorb(&mut self, findings: Vec<Finding>) {
        self.absorbed.extend(findings);
    }

    /// Conclude a program: call after the executor has released its resources.
    pub fn finish(&mut self) -> Verdict {
        std::thread::sleep(self.opts.grace);
        let mut v = Verdict {
            notes: std::mem::take(&mut self.notes),
            ..Default::default()
        };
        v.findings.append(&mut self.absorbed);
        v.findings.append(&mut self.hang.findings);
        v.findings.append(&mut self.stale.findings);
        v.findings.append(&mut self.reply.findings);
        v.findings.append(&mut self.fault.findings);
        if let Some(t) = &self.trace {
            v.ledger.add_text(&t.take());
            if v.ledger.lost > 0 {
                v.notes
                    .push("the trace ring buffer lost events: ledger counts are low".into());
            }
            self.ledger_findings(&mut v);
        }
        self.kmsg_findings(&mut v);
        if crate::device::debug_state::read().lockdep_enabled == Some(false)
            && !v.notes.iter().any(|n| n.contains("lockdep switched"))
        {
            v.notes.push(
                "lockdep is off (debug_locks 0): further lockdep findings need a reboot".into(),
            );
        }
        dedup(&mut v.findings);
        v
    }

    /// What the oracles have while the program's executor is stuck in the kernel: the
    /// per-program findings and the kernel reports read so far (no grace, no ledger: fences of
    /// a program still running are not leaks yet).
    pub fn so_far(&mut self) -> Verdict {
        let mut v = Verdict {
            notes: std::mem::take(&mut self.notes),
            ..Default::default()
        };
        v.findings.append(&mut self.absorbed);
        v.findings.append(&mut self.take_local());
        self.kmsg_findings(&mut v);
        dedup(&mut v.findings);
        v
    }

    /// Kernel reports in the log since the set began (or its last read), as findings.
    fn kmsg_findings(&mut self, v: &mut Verdict) {
        if let Some(k) = &mut self.kmsg {
            let mut text = std::mem::take(&mut self.kmsg_text);
            text.push_str(&k.read_new());
            for s in splat::parse(&text, &self.under_test) {
                if s.lockdep_off {
                    v.notes.push(
                        "lockdep switched itself off: further lockdep findings need a reboot"
                            .into(),
                    );
                }
                let f = splat_finding(&s, op_of_line(&self.kmsg_marks, s.line));
                if s.under_test {
                    v.findings.push(f);
                } else {
                    v.elsewhere.push(f);
                }
            }
            self.kmsg_marks.clear();
        }
    }

    fn ledger_findings(&self, v: &mut Verdict) {
        // Not findings (no release fence, maybe a late free), but worth a look: say which.
        for f in v.ledger.other_alive().take(4) {
            v.notes.push(format!(
                "fence alive after every fd closed: {}/{} context {} seqno {} (signaled {})",
                f.driver, f.timeline, f.context, f.seqno, f.signaled
            ));
        }
        let mut leaked: Vec<Finding> = Vec::new();
        let classes: [(&str, Clause, Vec<&ledger::FenceLife>); 3] = [
            (
                "destroyed unsignalled",
                Clause::ErrorSignalled,
                v.ledger.abandoned().collect(),
            ),
            (
                "never signalled",
                Clause::Finite,
                v.ledger.unsignalled().collect(),
            ),
            (
                "never freed",
                Clause::Freed,
                v.ledger.undestroyed().collect(),
            ),
        ];
        for (what, clause, fences) in classes {
            for f in fences {
                let tl = ledger::stable_timeline(&f.timeline);
                let mut finding = Finding::new(
                    Kind::LeakedFence,
                    format!("release fence {what} on {tl}"),
                    format!("{}/{} context {} seqno {}: {what} (init {}, emit {}, signaled {}, destroy {})",
                        f.driver, f.timeline, f.context, f.seqno, f.init, f.emitted, f.signaled, f.destroyed),
                    None,
                )
                .breaking(clause);
                finding.fence_timelines = vec![f.timeline.clone()];
                finding.fence_key = Some((f.context, f.seqno));
                leaked.push(finding);
            }
        }
        // A wait that hung on a fence the ledger shows leaked is the leak, seen from userspace.
        let leaked_tl: Vec<&String> = leaked.iter().flat_map(|f| &f.fence_timelines).collect();
        v.findings.retain(|f| {
            f.kind != Kind::Hang || !f.fence_timelines.iter().any(|t| leaked_tl.contains(&t))
        });
        v.findings.extend(leaked);
    }
}

/// The `kind: title` a corpus `# expect:` line names for a finding signature: the signature
/// without the lock pair [`splat_signature`] appends.
pub fn expectation_of(signature: &str) -> &str {
    match signature.rfind(" [") {
        Some(i) if signature.starts_with("splat: ") && signature.ends_with(']') => &signature[..i],
        _ => signature,
    }
}

/// The finding a kernel report gives, `op` the op after which it was read: a splat, or a hang
/// for a task stuck uninterruptibly (the kernel's hung-task report). A report attributed
/// elsewhere says so first in its evidence.
pub fn splat_finding(s: &splat::Splat, op: Option<usize>) -> Finding {
    let kind = if s.class == splat::SplatClass::HungTask {
        Kind::Hang
    } else {
        Kind::Splat
    };
    let mut f = Finding::new(kind, s.title.clone(), s.text.clone(), op);
    if kind == Kind::Splat {
        f.signature = splat_signature(s);
    }
    f.under_test = s.under_test;
    f.clause = Clause::of_splat(s);
    if !s.under_test {
        f.evidence = format!("attributed elsewhere ({})\n{}", s.attribution, s.text);
    }
    f
}

/// A splat finding's signature: `splat: <title>`, with ` [<held> -> <acquired>]` for a lockdep
/// report that names both locks: reports with one title but different lock pairs are different
/// bugs.
pub fn splat_signature(s: &splat::Splat) -> String {
    let lock_after = |marker: &str| {
        let mut lines = s.text.lines().skip_while(|l| !l.contains(marker));
        lines
            .nth(1)
            .and_then(|l| Some(l.split_once('(')?.1.split_once(')')?.0.to_string()))
    };
    match (
        lock_after("is trying to acquire"),
        lock_after("already holding lock"),
    ) {
        (Some(a), Some(h)) => format!("splat: {} [{h} -> {a}]", s.title),
        _ => format!("splat: {}", s.title),
    }
}

fn dedup(v: &mut Vec<Finding>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|f| seen.insert(f.signature.clone()));
}

impl Observer for OracleSet {
    fn concurrent(&mut self, _ops: std::ops::Range<usize>) {
        self.stale.blind = true;
    }
    fn probe(&mut self, index: usize) -> Option<crate::exec::Probe> {
        self.hang.probe(index)
    }
    fn after_probe(
        &mut self,
        index: usize,
        _probe: &crate::exec::Probe,
        seen: &crate::exec::ProbeOutcome,
    ) {
        self.hang.after_probe(index, seen);
    }
    fn after_op(&mut self, index: usize, op: &Op, outcome: &Outcome, state: &ExecState) {
        self.hang.after_op(index, op, outcome, state);
        self.stale.after_op(index, op, outcome, state);
        self.reply.after_op(index, op, outcome, state);
        self.fault.after_op(index, op, outcome, state);
        // Reading the log as the program goes tells which op a report followed (one read, EAGAIN
        // when there is nothing new): the shrinker cuts the program after it first.
        if let Some(k) = &mut self.kmsg {
            let new = k.read_new();
            if !new.is_empty() {
                let lines = self.kmsg_marks.last().map_or(0, |m| m.1) + new.lines().count();
                self.kmsg_text.push_str(&new);
                self.kmsg_marks.push((index, lines));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_belongs_to_the_op_after_which_its_first_line_was_read() {
        use super::op_of_line;
        // After op 3 the log had 4 lines, after op 7 it had 30.
        let marks = [(3, 4), (7, 30)];
        assert_eq!(op_of_line(&marks, 0), Some(3));
        assert_eq!(op_of_line(&marks, 3), Some(3));
        assert_eq!(op_of_line(&marks, 4), Some(7));
        assert_eq!(op_of_line(&marks, 29), Some(7));
        // Read only after the program ended.
        assert_eq!(op_of_line(&marks, 30), None);
        assert_eq!(op_of_line(&[], 0), None);
    }

    #[test]
    fn an_expectation_is_a_signature_without_its_lock_pair() {
        use super::expectation_of;
        let s = "splat: possible circular locking dependency in f [dma_fence_map -> fs_reclaim]";
        assert_eq!(
            expectation_of(s),
            "splat: possible circular locking dependency in f"
        );
        let h = "hang: release fence hang on vim2m-cap";
        assert_eq!(expectation_of(h), h);
    }

    #[test]
    fn run_json_lines_read_back_as_they_were_printed() {
        use super::{JsonLine, Kind};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lab");
        let (mut ops, mut findings) = (0, 0);
        for name in ["stale-read-fences-off", "attach-under-spinlock", "v1-shape"] {
            let text = std::fs::read_to_string(format!("{dir}/{name}/run.jsonl")).unwrap();
            for l in text.lines() {
                let line: JsonLine = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                match &line {
                    JsonLine::Op { .. } => ops += 1,
                    JsonLine::Finding { finding } => {
                        findings += 1;
                        assert!(Kind::ALL.contains(&finding.kind));
                    }
                    _ => {}
                }
                // Printed again, the same JSON: nothing is lost on the way back.
                let again = serde_json::to_value(&line).unwrap();
                assert_eq!(
                    again,
                    serde_json::from_str::<serde_json::Value>(l).unwrap(),
                    "{l}"
                );
            }
        }
        assert!(ops > 30 && findings == 4, "{ops} ops, {findings} findings");
        let v1: JsonLine =
            serde_json::from_str(r#"{"finding":{"kind":"hang","title":"t","signature":"hang: t","op":8,"evidence":"e","under_test":true}}"#)
                .unwrap();
        assert!(
            matches!(v1, JsonLine::Finding { finding } if finding.kind == Kind::Hang && finding.op == Some(8))
        );
        assert!(serde_json::from_str::<JsonLine>(r#"{"finding":{"kind":"leaked_fence","title":"t","signature":"s","op":null,"evidence":"","under_test":true}}"#).is_err(), "one spelling of a kind");
        let exit: JsonLine = serde_json::from_str(r#"{"exit":{"code":1,"signal":null}}"#).unwrap();
        assert!(matches!(exit, JsonLine::Exit { exit } if exit.code == Some(1)));
        let note: JsonLine = serde_json::from_str(r#"{"note":"lockdep is off"}"#).unwrap();
        assert!(matches!(note, JsonLine::Note { note } if note == "lockdep is off"));
    }
}
