//! Ground truth for the oracles: each `corpora/faults/*.m2m` in a fresh boot with the kernel
//! command line of its `# switch:` header, its `# symptom:` checked independently of m2mfuzz's
//! oracles (the console, the tracefs `dma_fence` text, the ops' outcomes), and the oracles'
//! findings (`m2mfuzz run --json`) equal to its `# expect:` lines. Then a control boot runs every
//! program with no switch, where no symptom and no finding may appear and lockdep must stay on.
//! A boot per program because lockdep reports once per boot.
use crate::boot::{self, Boot, Guest};
use crate::checks::stress::quote;
use crate::guest_bins;
use crate::lab::{fresh_dir, Lab};
use anyhow::{bail, Context, Result};
use m2mfuzz::corpus::{self, Expect};
use m2mfuzz::exec::outcome::{OpResult, SyncFacts};
use m2mfuzz::oracle::JsonLine;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The guest side of one program: its run with the `dma_fence` events on, results in
/// out/NAME.{jsonl,err,rc,trace}. The second of sleep lets late signals and frees reach the
/// trace.
const RUN_ONE: &str = r#"# run-one.sh NAME: run progs/NAME.m2m with the dma_fence ledger on; results in out/NAME.*
name=$1; T=/sys/kernel/tracing
echo 1 > $T/events/dma_fence/enable
./bin/m2mfuzz run --json "progs/$name.m2m" > "out/$name.jsonl" 2> "out/$name.err"
echo "$?" > "out/$name.rc"
sleep 1
echo 0 > $T/events/dma_fence/enable
cat $T/trace > "out/$name.trace"
echo > $T/trace
"#;

/// What a program's switch must show, checked without m2mfuzz's oracles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Symptom {
    /// A `wait` on a published vb2 fence timed out and the fence is still unsignalled.
    Hang,
    /// The trace has a vb2 fence emitted (published) and never signalled.
    Leak,
    /// The console has this text.
    Splat(String),
    /// A stub fence said signalled and a later `check` found the canary.
    Stale,
    /// A vb2 fence said signalled and a later `check` found the canary.
    Early,
    /// The trace has a vb2 fence emitted and never destroyed.
    Unfreed,
}

impl Symptom {
    /// From a `# symptom:` header.
    pub fn parse(s: &str) -> Result<Symptom> {
        Ok(match s.trim() {
            "hang" => Symptom::Hang,
            "leak" => Symptom::Leak,
            "stale" => Symptom::Stale,
            "early" => Symptom::Early,
            "unfreed" => Symptom::Unfreed,
            s => match s.strip_prefix("splat ") {
                Some(text) if !text.trim().is_empty() => Symptom::Splat(text.trim().to_string()),
                _ => bail!("unknown symptom `{s}`"),
            },
        })
    }

    /// Its first word, as the table shows it.
    pub fn word(&self) -> &'static str {
        match self {
            Symptom::Hang => "hang",
            Symptom::Leak => "leak",
            Symptom::Splat(_) => "splat",
            Symptom::Stale => "stale",
            Symptom::Early => "early",
            Symptom::Unfreed => "unfreed",
        }
    }

    /// Whether one program's evidence shows it.
    pub fn shown(&self, e: &Evidence) -> bool {
        match self {
            Symptom::Hang => hung_wait(&e.outcomes),
            Symptom::Leak => !unsignalled(&e.trace).is_empty(),
            Symptom::Splat(text) => e.console.contains(text.as_str()),
            Symptom::Stale => read_canary_after(&e.outcomes, "stub", 1),
            Symptom::Early => read_canary_after(&e.outcomes, "vb2", 1),
            Symptom::Unfreed => !undestroyed(&e.trace).is_empty(),
        }
    }
}

/// The symptoms the control boot must not show, with no switch set.
fn control_symptoms() -> Vec<Symptom> {
    let mut s = vec![
        Symptom::Hang,
        Symptom::Leak,
        Symptom::Stale,
        Symptom::Early,
        Symptom::Unfreed,
    ];
    for t in ["possible circular locking dependency", "BUG:", "WARNING:"] {
        s.push(Symptom::Splat(t.into()));
    }
    s
}

/// An op's text and its outcome, as `run --json` printed them.
pub type Op = (String, m2mfuzz::exec::Outcome);

/// What one program left: its ops' outcomes and findings (`run --json`), the tracefs text, the
/// boot's console.
pub struct Evidence {
    /// The ops' outcomes, with the op's text.
    pub outcomes: Vec<Op>,
    /// The oracles' findings as `kind: title`.
    pub findings: BTreeSet<String>,
    /// The `dma_fence` trace during the program.
    pub trace: String,
    /// The console of its boot.
    pub console: String,
}

impl Evidence {
    /// Read program `name`'s results from `dir` (its `.jsonl` and `.trace`).
    fn read(dir: &Path, name: &str, console: &str) -> Result<Evidence> {
        let jsonl = std::fs::read_to_string(dir.join(format!("{name}.jsonl")));
        let trace = std::fs::read_to_string(dir.join(format!("{name}.trace")));
        let (Ok(jsonl), Ok(trace)) = (jsonl, trace) else {
            bail!("{name}: no results in {}", dir.display());
        };
        let (outcomes, findings) = parse_run(&jsonl).with_context(|| format!("{name}.jsonl"))?;
        Ok(Evidence {
            outcomes,
            findings,
            trace,
            console: console.to_string(),
        })
    }
}

/// `m2mfuzz run --json` lines: the ops' outcomes and the findings as `kind: title`.
pub fn parse_run(text: &str) -> Result<(Vec<Op>, BTreeSet<String>)> {
    let mut ops = Vec::new();
    let mut findings = BTreeSet::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<JsonLine>(l).with_context(|| format!("run line: {l}"))? {
            JsonLine::Op { outcome, op } => ops.push((op, outcome)),
            JsonLine::Finding { finding } => {
                findings.insert(finding.to_string());
            }
            JsonLine::Elsewhere { .. } | JsonLine::Note { .. } | JsonLine::Exit { .. } => {}
        }
    }
    Ok((ops, findings))
}

/// The sync_file facts an op's detail holds.
fn facts(o: &m2mfuzz::exec::Outcome) -> Option<SyncFacts> {
    SyncFacts::parse(&o.detail_text()?)
}

/// A `wait` timed out with a vb2 fence of its sync_file still pending.
fn hung_wait(ops: &[Op]) -> bool {
    ops.iter().any(|(op, o)| {
        op.starts_with("wait ")
            && o.result == OpResult::TimedOut
            && facts(o).is_some_and(|f| f.fences.iter().any(|x| x.producer() && x.pending()))
    })
}

/// A `fence_info` said signalled (value 1) with a fence of `driver` at `status`, and a `check`
/// after it found bytes other than the frame's (value > 0).
fn read_canary_after(ops: &[Op], driver: &str, status: i32) -> bool {
    let said = ops.iter().position(|(op, o)| {
        op.starts_with("fence_info ")
            && o.result == OpResult::Ok { value: 1 }
            && facts(o).is_some_and(|f| {
                f.fences
                    .iter()
                    .any(|x| x.driver == driver && x.status == status)
            })
    });
    said.is_some_and(|i| {
        ops[i + 1..].iter().any(|(op, o)| {
            op.starts_with("check ") && matches!(o.result, OpResult::Ok { value } if value > 0)
        })
    })
}

/// A `dma_fence` trace event, as tracefs prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceEvent {
    /// `init`, `emit`, `signaled`, `destroy`, …
    pub event: String,
    /// `driver=`.
    pub driver: String,
    /// `context=`.
    pub context: u64,
    /// `seqno=`.
    pub seqno: u64,
}

/// One trace line, if it is a `dma_fence` event:
/// `m2mfuzz-46 [000] .N.1. 6.476092: dma_fence_emit: driver=vb2 timeline=vim2m-cap-22 context=22 seqno=1`.
pub fn parse_event(line: &str) -> Option<FenceEvent> {
    if line.starts_with('#') {
        return None;
    }
    let (_, rest) = line.split_once(": dma_fence_")?;
    let (event, fields) = rest.split_once(": ")?;
    let field = |k: &str| {
        fields
            .split_whitespace()
            .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
    };
    Some(FenceEvent {
        event: event.to_string(),
        driver: field("driver")?.to_string(),
        context: field("context")?.parse().ok()?,
        seqno: field("seqno")?.parse().ok()?,
    })
}

/// vb2 fences emitted (published) and never seen at event `end`, as (context, seqno).
fn emitted_without(trace: &str, end: &str) -> BTreeSet<(u64, u64)> {
    let (mut emitted, mut ended) = (BTreeSet::new(), BTreeSet::new());
    for e in trace.lines().filter_map(parse_event) {
        if e.driver != "vb2" {
            continue;
        }
        if e.event == "emit" {
            emitted.insert((e.context, e.seqno));
        } else if e.event == end {
            ended.insert((e.context, e.seqno));
        }
    }
    emitted.difference(&ended).copied().collect()
}

/// vb2 fences published and never signalled.
pub fn unsignalled(trace: &str) -> BTreeSet<(u64, u64)> {
    emitted_without(trace, "signaled")
}

/// vb2 fences published and never destroyed.
pub fn undestroyed(trace: &str) -> BTreeSet<(u64, u64)> {
    emitted_without(trace, "destroy")
}

/// A program of the ground truth.
struct Program {
    name: String,
    switch: String,
    symptom: Symptom,
    expect: BTreeSet<String>,
}

impl Program {
    fn load(path: &Path) -> Result<Program> {
        let e = corpus::load_file(path)?;
        let name = path
            .file_stem()
            .context("a program file")?
            .to_string_lossy()
            .into_owned();
        let (Some(switch), Some(symptom)) =
            (e.program.header("switch"), e.program.header("symptom"))
        else {
            bail!(
                "{} needs '# switch:' and '# symptom:' headers",
                path.display()
            );
        };
        let symptom = Symptom::parse(symptom).with_context(|| name.clone())?;
        let expect = match e.expect {
            Expect::Clean => BTreeSet::new(),
            Expect::Findings(f) => f,
        };
        Ok(Program {
            name,
            switch: switch.to_string(),
            symptom,
            expect,
        })
    }
}

/// The table of a run: its text form (printed) and its Markdown form (the docs).
#[derive(Default)]
struct Table {
    text: String,
    md: String,
}

impl Table {
    fn new() -> Table {
        Table {
            text: format!(
                "{:<28} {:<60} {:<10} {}\n",
                "program", "switch", "symptom", "findings (oracles)"
            ),
            md: "| program | switch | symptom (independent check) | finding (m2mfuzz oracles) |\n\
                 |---|---|---|---|\n"
                .to_string(),
        }
    }

    /// Add a row and print its text form.
    fn row(&mut self, name: &str, md_name: &str, sw: &str, md_sw: &str, res: &str, got: &[String]) {
        let line = format!("{name:<28} {sw:<60} {res:<10} {}\n", got.join("; "));
        print!("{line}");
        self.text += &line;
        self.md += &format!("| {md_name} | {md_sw} | {res} | {} |\n", got.join("<br>"));
    }
}

/// Run the ground truth for `programs` (default: corpora/faults/*.m2m); with `update_docs`, the
/// table goes into README.md and ci/lab/README.md. False when a symptom or a finding was not as
/// expected (the table says which); an error when a boot gave no answer.
pub fn run(lab: &Lab, out: &Path, update_docs: bool, programs: &[PathBuf]) -> Result<bool> {
    let programs = if programs.is_empty() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(lab.repo.join("corpora/faults"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        v.retain(|p| p.extension().is_some_and(|x| x == "m2m"));
        v.sort();
        v
    } else {
        programs.to_vec()
    };
    let progs: Vec<Program> = programs
        .iter()
        .map(|p| Program::load(p))
        .collect::<Result<_>>()?;
    fresh_dir(out, &lab.repo)?;
    let share = out.join("share");
    std::fs::create_dir_all(share.join("progs"))?;
    guest_bins::build(lab, &share)?;
    for (p, prog) in programs.iter().zip(&progs) {
        std::fs::copy(p, share.join("progs").join(format!("{}.m2m", prog.name)))
            .with_context(|| format!("copy {}", p.display()))?;
    }
    std::fs::write(share.join("run-one.sh"), RUN_ONE)?;
    let guest = Guest::of(lab)?;
    let mut fail = false;
    let mut table = Table::new();
    for prog in &progs {
        let d = out.join(&prog.name);
        let job = format!("cd /host\nsh run-one.sh {}\n", quote(&prog.name));
        let booted = boot::run(
            &guest,
            &Boot::new(&d, &share, job)
                .timeout(300)
                .cmdline(&prog.switch),
        )?;
        let rc = booted.rc()?;
        if rc != 0 {
            bail!(
                "{}: the guest job failed (exit {rc}); console: {}",
                prog.name,
                booted.console.display()
            );
        }
        for ext in ["jsonl", "err", "rc", "trace"] {
            let f = format!("{}.{ext}", prog.name);
            let _ = std::fs::copy(booted.result(&f), d.join(&f));
        }
        let console = console_text(&booted.console)?;
        let e = Evidence::read(&d, &prog.name, &console)
            .with_context(|| format!("see {}", booted.console.display()))?;
        let res = if prog.symptom.shown(&e) {
            format!("{} shown", prog.symptom.word())
        } else {
            fail = true;
            format!("{} MISSING", prog.symptom.word())
        };
        let mut got: Vec<String> = e.findings.iter().cloned().collect();
        if e.findings != prog.expect {
            crate::say!(
                "{}: oracles found [{}], expected [{}]",
                prog.name,
                got.join("; "),
                prog.expect.iter().cloned().collect::<Vec<_>>().join("; ")
            );
            fail = true;
            got.push("(UNEXPECTED)".into());
        }
        table.row(
            &prog.name,
            &format!("`{}`", prog.name),
            &prog.switch,
            &format!("`{}`", prog.switch),
            &res,
            &got,
        );
    }

    // Control: every program in one boot, no switch: no symptom, no finding, lockdep on.
    let d = out.join("control");
    let mut job = String::from("cd /host\n");
    for prog in &progs {
        job += &format!("sh run-one.sh {}\n", quote(&prog.name));
    }
    let booted = boot::run(&guest, &Boot::new(&d, &share, job).timeout(600))?;
    booted.rc()?;
    let console = console_text(&booted.console)?;
    for prog in &progs {
        let e = Evidence::read(&booted.results, &prog.name, &console)
            .with_context(|| format!("control; see {}", booted.console.display()))?;
        // A run that failed before its ops shows no symptom and no finding: not clean.
        let rc = std::fs::read_to_string(booted.result(&format!("{}.rc", prog.name)))
            .unwrap_or_default();
        if rc.trim() != "0" {
            crate::say!(
                "control: m2mfuzz run of {} exited '{}' with no switch set ({})",
                prog.name,
                rc.trim(),
                booted.result(&format!("{}.err", prog.name)).display()
            );
            fail = true;
        }
        for s in control_symptoms() {
            if s.shown(&e) {
                crate::say!("control: {} shows '{s:?}' with no switch set", prog.name);
                fail = true;
            }
        }
        if !e.findings.is_empty() {
            crate::say!(
                "control: {} gave findings with no switch set: {}",
                prog.name,
                e.findings.iter().cloned().collect::<Vec<_>>().join("; ")
            );
            fail = true;
        }
    }
    let stats = std::fs::read_to_string(booted.result("lockdep_stats")).unwrap_or_default();
    if !lockdep_on(&stats) {
        crate::say!("control: lockdep switched off");
        fail = true;
    }
    let verdict = if fail { "see above" } else { "clean" };
    table.row(
        "(all, control)",
        "all (control boot)",
        "(none)",
        "none",
        "none",
        &[verdict.to_string()],
    );
    std::fs::write(out.join("table.txt"), &table.text)?;
    std::fs::write(out.join("table.md"), &table.md)?;
    if fail {
        crate::say!("fault ground truth failed; results in {}", out.display());
        return Ok(false);
    }
    if update_docs {
        let kernel = guest.kernel.parent().and_then(Path::file_name).map_or_else(
            || guest.kernel.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let stamp = format!(
            "Produced by `ci/lab/faults.sh --update-docs` on {}, kernel {kernel}.",
            crate::clock::utc_date()
        );
        for doc in [lab.repo.join("README.md"), lab.file("README.md")] {
            let text = std::fs::read_to_string(&doc)?;
            if let Some(new) = with_table(&text, &stamp, &table.md) {
                std::fs::write(&doc, new)?;
            }
        }
        crate::say!("fault table written into README.md and ci/lab/README.md");
    }
    Ok(true)
}

fn console_text(p: &Path) -> Result<String> {
    Ok(
        String::from_utf8_lossy(&std::fs::read(p).with_context(|| format!("{}", p.display()))?)
            .into_owned(),
    )
}

/// `/proc/lockdep_stats` says lockdep is still on.
pub fn lockdep_on(stats: &str) -> bool {
    stats.lines().any(|l| {
        l.trim()
            .strip_prefix("debug_locks:")
            .is_some_and(|v| v.trim() == "1")
    })
}

/// `doc` with the text between the fault-table markers replaced by the stamp and the table;
/// None when it has no markers.
fn with_table(doc: &str, stamp: &str, table: &str) -> Option<String> {
    const START: &str = "<!-- fault-table:start -->";
    const END: &str = "<!-- fault-table:end -->";
    let a = doc.find(START)? + START.len();
    let b = a + doc[a..].find(END)?;
    Some(format!("{}\n{stamp}\n\n{table}{}", &doc[..a], &doc[b..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real lab output (tests/fixtures/lab, captured by this check's shell version).
    fn fixture(name: &str, file: &str) -> String {
        let p = format!(
            "{}/../tests/fixtures/lab/{name}/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn evidence(name: &str) -> Evidence {
        let (outcomes, findings) = parse_run(&fixture(name, "run.jsonl")).unwrap();
        Evidence {
            outcomes,
            findings,
            trace: fixture(name, "trace.txt"),
            console: fixture(name, "console.log"),
        }
    }

    #[test]
    fn trace_lines_parse_by_context_and_seqno_and_headers_do_not() {
        let l = "         m2mfuzz-46      [000] .N.1.     6.476092: dma_fence_emit: driver=vb2 timeline=vim2m-cap-22 context=22 seqno=1";
        assert_eq!(
            parse_event(l),
            Some(FenceEvent {
                event: "emit".into(),
                driver: "vb2".into(),
                context: 22,
                seqno: 1
            })
        );
        assert_eq!(
            parse_event("#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION"),
            None
        );
        assert_eq!(
            parse_event("  m2mfuzz-46 [000] ...1. 6.4: vb2_qbuf: owner=0x0 queued_count=1"),
            None
        );
    }

    #[test]
    fn a_fence_destroyed_unsignalled_is_a_leak_and_not_unfreed() {
        let trace = fixture("no-signal-on-cancel", "trace.txt");
        assert_eq!(unsignalled(&trace), BTreeSet::from([(22, 1)]));
        assert!(undestroyed(&trace).is_empty());
        // A stub fence (not vb2) emitted and never signalled is none of vb2's business.
        let stub = "  m2mfuzz-46 [000] ...2. 7.1: dma_fence_emit: driver=stub timeline=stub context=0 seqno=0\n";
        assert!(unsignalled(stub).is_empty());
        // Signalled but never destroyed: unfreed, not a leak.
        let kept = "  a-1 [000] ...1. 1.0: dma_fence_emit: driver=vb2 timeline=t context=7 seqno=3\n\
                    \x20 a-1 [000] ...1. 1.1: dma_fence_signaled: driver=vb2 timeline=t context=7 seqno=3\n";
        assert!(unsignalled(kept).is_empty());
        assert_eq!(undestroyed(kept), BTreeSet::from([(7, 3)]));
    }

    #[test]
    fn each_fixture_shows_its_programs_symptom_and_findings() {
        let cases = [
            ("v1-shape", "hang"),
            ("publish-held", "hang"),
            ("no-signal-on-cancel", "leak"),
            ("no-signal-on-error", "leak"),
            ("stale-read-fences-off", "stale"),
            (
                "attach-under-spinlock",
                "splat BUG: sleeping function called from invalid context",
            ),
            (
                "alloc-in-section",
                "splat possible circular locking dependency detected",
            ),
        ];
        for (name, symptom) in cases {
            let e = evidence(name);
            let s = Symptom::parse(symptom).unwrap();
            assert!(s.shown(&e), "{name}: {symptom} not shown");
            let prog = Program::load(Path::new(&format!(
                "{}/../corpora/faults/{name}.m2m",
                env!("CARGO_MANIFEST_DIR")
            )))
            .unwrap();
            assert_eq!(prog.symptom, s, "{name}");
            assert_eq!(e.findings, prog.expect, "{name}");
        }
        // And not the others': no canary read after a vb2 fence, no hang in a splat's run.
        assert!(!Symptom::Early.shown(&evidence("stale-read-fences-off")));
        assert!(!Symptom::Hang.shown(&evidence("alloc-in-section")));
        assert!(!Symptom::Stale.shown(&evidence("v1-shape")));
        assert!(!Symptom::Leak.shown(&evidence("stale-read-fences-off")));
    }

    #[test]
    fn a_canary_read_counts_only_after_the_fence_said_signalled() {
        let e = evidence("stale-read-fences-off");
        let mut ops = e.outcomes.clone();
        assert!(read_canary_after(&ops, "stub", 1));
        // The check before the fence_info: nothing was promised yet.
        let i = ops
            .iter()
            .position(|(op, _)| op.starts_with("check "))
            .unwrap();
        let check = ops.remove(i);
        ops.insert(0, check);
        assert!(!read_canary_after(&ops, "stub", 1));
    }

    #[test]
    fn the_control_boot_sees_splats_in_its_console() {
        let e = Evidence {
            outcomes: vec![],
            findings: BTreeSet::new(),
            trace: String::new(),
            console: fixture("control", "console.log"),
        };
        assert!(control_symptoms().iter().all(|s| !s.shown(&e)));
        let splat = Evidence {
            console: fixture("attach-under-spinlock", "console.log"),
            ..e
        };
        assert!(control_symptoms().iter().any(|s| s.shown(&splat)));
    }

    #[test]
    fn symptoms_parse_and_unknown_ones_do_not() {
        assert_eq!(Symptom::parse("unfreed").unwrap(), Symptom::Unfreed);
        assert_eq!(
            Symptom::parse("splat BUG: x").unwrap(),
            Symptom::Splat("BUG: x".into())
        );
        assert!(Symptom::parse("splat").is_err());
        assert!(Symptom::parse("wedge").is_err());
    }

    #[test]
    fn the_table_replaces_only_what_lies_between_the_markers() {
        let doc = "intro\n<!-- fault-table:start -->\nold stamp\n\n| old |\n<!-- fault-table:end -->\nafter\n";
        let new = with_table(doc, "Produced today.", "| a | b |\n").unwrap();
        assert_eq!(
            new,
            "intro\n<!-- fault-table:start -->\nProduced today.\n\n| a | b |\n<!-- fault-table:end -->\nafter\n"
        );
        assert_eq!(with_table("no markers", "s", "t"), None);
    }

    #[test]
    fn lockdep_state_reads_right() {
        assert!(lockdep_on(
            " lock-classes:  1000 [max: 8192]\n debug_locks:                             1\n"
        ));
        assert!(!lockdep_on(" debug_locks:                             0\n"));
        assert!(!lockdep_on(""));
    }
}
