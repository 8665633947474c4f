//! A shrink from start to end: what is shrunk (a program, or a stress finding's programs: each
//! worker's alone, then serialized into one, else all of them concurrently with the interleaving
//! kept), where candidates run (this boot, or a fresh boot each by a runner the caller gives: the
//! lab's `lab shrink --each-boot`), and the state file that lets
//! a board continue after the reboot a one-shot lockdep report needs.
//!
//! The search is deterministic given each candidate's answer, so the state is just the answers
//! by candidate content: a resumed shrink replays the search, answering from the state, and runs
//! only what was not answered yet.
use super::{run, shrink};
use crate::program::{text, Program};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs one candidate (its switches in its `# switch:` header) in a fresh boot and returns its
/// findings. The caller owns the boots (the lab crate): m2mfuzz does not know where a lab is.
pub type BootRunner<'a> = &'a dyn Fn(&Program) -> Result<run::Found>;

/// Where candidates run.
#[derive(Clone, Copy)]
pub enum Where<'a> {
    /// In this boot.
    Here,
    /// Each in a fresh boot, by the runner given.
    Boot(BootRunner<'a>),
}

/// Saved progress of a shrink.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// What was given (a program file or a finding directory), for messages.
    pub input: String,
    /// Where to write the result.
    pub out: Option<PathBuf>,
    /// Module parameters every candidate runs with.
    pub switches: String,
    /// Starting points, tried in order until one reproduces: program texts (one: a program;
    /// several: run concurrently).
    pub subjects: Vec<Vec<String>>,
    /// The signatures a candidate must give (empty until the first run establishes them).
    pub target: BTreeSet<String>,
    /// With an empty target: keep only the first run's findings starting with these.
    pub wanted: Vec<String>,
    /// Candidate content hash → whether it gave the target.
    pub answers: BTreeMap<String, bool>,
    /// The candidate being run when the state was last saved: if it is still unanswered on
    /// resume, it took the kernel down and counts as not reproducing.
    pub pending: Option<String>,
    /// Candidates actually run, over all boots.
    pub runs: u64,
    /// Boots (invocations) that ran at least one candidate.
    pub boots: u64,
    /// Wall seconds over all invocations.
    pub seconds: f64,
    /// Set when the shrink has finished.
    pub done: bool,
    /// The op after which the first reproducing run showed every target finding (a single
    /// program): the shrink tries the program cut after it first.
    #[serde(default)]
    pub cut_after: Option<usize>,
    /// Runs a candidate with threads (or several programs at once) gets before it counts as
    /// not reproducing.
    #[serde(default = "race_tries")]
    pub tries: u32,
    /// Ops before and after, once done (what the lab reads back).
    #[serde(default)]
    pub ops: Option<(usize, usize)>,
}

/// Runs a racy candidate gets by default: a race shows in some runs only.
pub const RACE_TRIES: u32 = 5;

fn race_tries() -> u32 {
    RACE_TRIES
}

/// How a shrink invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// Finished: the shrunk program (several when the interleaving had to be kept).
    Done {
        /// The result.
        programs: Vec<Program>,
        /// Ops before and after.
        ops_before: usize,
        /// Ops after.
        ops_after: usize,
        /// The state at the end.
        state: State,
    },
    /// The next candidate needs a fresh boot (lockdep already reported in this one).
    NeedsReboot {
        /// The state file to resume from.
        state_file: PathBuf,
        /// The state.
        state: State,
    },
}

/// A candidate's identity: its ops (headers such as `shrunk-from` do not change what runs).
fn key(progs: &[Program]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in progs {
        let text = p.to_string();
        let ops = text.lines().filter(|l| !l.starts_with('#'));
        for b in ops.flat_map(|l| l.bytes().chain([b'\n'])).chain([0u8]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl State {
    /// A new shrink of `input`: a program file, or a stress finding directory.
    pub fn new(input: &Path, wanted: &[String], out: Option<PathBuf>) -> Result<State> {
        let mut st = State {
            input: input.display().to_string(),
            out,
            wanted: wanted.to_vec(),
            tries: RACE_TRIES,
            ..Default::default()
        };
        if input.is_dir() {
            st.add_finding_dir(input)?;
        } else {
            let p = text::parse_file(input)?;
            st.switches = p.header("switch").unwrap_or("").to_string();
            st.subjects.push(vec![p.to_string()]);
        }
        Ok(st)
    }

    fn add_finding_dir(&mut self, dir: &Path) -> Result<()> {
        let meta: crate::stress::store::FindingMeta = serde_json::from_str(
            &std::fs::read_to_string(dir.join("finding.json"))
                .with_context(|| format!("{} is not a finding directory", dir.display()))?,
        )
        .with_context(|| format!("parse {}/finding.json", dir.display()))?;
        self.target.insert(meta.signature.clone());
        self.switches = meta.switches.join(" ");
        let serialized = text::parse_file(&dir.join("program.m2m"))?;
        let mut workers = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("programs")) {
            let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                workers.push(text::parse_file(&p)?);
            }
        }
        // Each worker's program alone (shortest first), then all serialized into one, then all
        // concurrently: the first that still gives the finding is shrunk.
        let mut alone = workers.clone();
        alone.sort_by_key(|p| p.ops.len());
        if workers.len() > 1 {
            for p in &alone {
                self.subjects.push(vec![p.to_string()]);
            }
        }
        self.subjects.push(vec![serialized.to_string()]);
        if workers.len() > 1 {
            self.subjects
                .push(workers.iter().map(|p| p.to_string()).collect());
        }
        Ok(())
    }

    /// Load a saved state.
    pub fn load(path: &Path) -> Result<State> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read shrink state {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// Save atomically and durably (the next candidate may take the kernel down).
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    /// Whether the target is a lockdep report (one per boot).
    pub fn lockdep_target(&self) -> bool {
        self.target
            .iter()
            .any(|s| crate::corpus::is_lockdep_title(s))
    }
}

fn parse_all(texts: &[String]) -> Result<Vec<Program>> {
    texts
        .iter()
        .map(|t| text::parse(t).map_err(|e| anyhow::anyhow!("{e}")))
        .collect()
}

/// Run (or continue) the shrink in `state`, saving it to `state_file` after every candidate
/// when given.
pub fn run(mut state: State, state_file: Option<&Path>, place: &Where<'_>) -> Result<Outcome> {
    let t0 = Instant::now();
    if let Some(k) = state.pending.take() {
        if let std::collections::btree_map::Entry::Vacant(e) = state.answers.entry(k) {
            eprintln!(
                "candidate {} was running when the machine went down: counted as not reproducing",
                e.key()
            );
            e.insert(false);
        }
    }
    let ran_here = std::cell::Cell::new(0u64);
    let stopped = std::cell::Cell::new(false);
    let switches = state.switches.clone();
    let keeper = std::cell::RefCell::new(crate::oracle::TraceKeeper::default());
    let choosing = std::cell::Cell::new(true);
    // One candidate's answer: from the state, else a real run when this boot can still judge it.
    let test = |st: &mut State, progs: &[Program]| -> bool {
        let k = key(progs);
        if let Some(&a) = st.answers.get(&k) {
            return a;
        }
        if stopped.get() {
            return false;
        }
        // Lockdep reports once per boot: once it is off, a lockdep target cannot be judged here.
        if matches!(place, Where::Here)
            && st.lockdep_target()
            && crate::device::debug_state::read().lockdep_enabled == Some(false)
        {
            stopped.set(true);
            return false;
        }
        st.pending = Some(k.clone());
        if let Some(f) = state_file {
            let _ = st.save(f);
        }
        // A race may not show in one run: a candidate with threads gets several.
        let racy = progs.len() > 1 || progs.iter().any(|p| p.is_threaded());
        let tries = if racy { st.tries.max(1) } else { 1 };
        let mut got = run::Found::new();
        for _ in 0..tries {
            let once = run_candidate(progs, &switches, place, &mut keeper.borrow_mut());
            ran_here.set(ran_here.get() + 1);
            st.runs += 1;
            match once {
                Ok(g) => got = g,
                Err(e) => {
                    eprintln!("candidate {k}: {e:#}; counted as not reproducing");
                    got = run::Found::new();
                    break;
                }
            }
            let all = !st.target.is_empty() && st.target.iter().all(|t| got.contains_key(t));
            if st.target.is_empty() || all {
                break;
            }
        }
        st.pending = None;
        if st.target.is_empty() {
            st.target = got
                .keys()
                .filter(|s| st.wanted.is_empty() || st.wanted.iter().any(|w| s.starts_with(w)))
                .cloned()
                .collect();
        }
        let a = !st.target.is_empty() && st.target.iter().all(|t| got.contains_key(t));
        // The starting point's run: with every target finding tied to an op, nothing after the
        // last of them is needed. Saved with the answers, so a resumed search cuts the same.
        if a && choosing.get() && progs.len() == 1 {
            st.cut_after = st
                .target
                .iter()
                .map(|t| got.get(t).copied().flatten())
                .collect::<Option<Vec<usize>>>()
                .and_then(|ops| ops.into_iter().max());
        }
        st.answers.insert(k, a);
        if let Some(f) = state_file {
            let _ = st.save(f);
        }
        a
    };

    // Pick the first starting point that reproduces.
    let subjects: Vec<Vec<Program>> = state
        .subjects
        .iter()
        .map(|s| parse_all(s))
        .collect::<Result<_>>()?;
    let mut chosen = None;
    for s in &subjects {
        if test(&mut state, s) {
            chosen = Some(s.clone());
            break;
        }
        if stopped.get() {
            break;
        }
    }
    choosing.set(false);
    let finish = |mut state: State, t0: Instant, ran: u64| {
        state.seconds += t0.elapsed().as_secs_f64();
        if ran > 0 {
            state.boots += 1;
        }
        state
    };
    let Some(mut cur) = chosen else {
        if stopped.get() {
            return needs_reboot(finish(state, t0, ran_here.get()), state_file);
        }
        if state.target.is_empty() {
            bail!("{} gives no finding: nothing to shrink for", state.input);
        }
        bail!(
            "{} does not give {:?} again (each worker's program alone, serialized, or concurrently): \
             the finding may need more than these programs, or is rare; try again or keep the stress run's evidence",
            state.input,
            state.target
        );
    };
    if matches!(place, Where::Boot(_)) && cur.len() > 1 {
        bail!("the finding needs its programs run concurrently: shrink it on the machine (not a boot per candidate; ci/lab/shrink.sh in the lab)");
    }
    let ops_before: usize = cur.iter().map(|p| p.ops.len()).sum();
    let cut = if cur.len() == 1 {
        state.cut_after
    } else {
        None
    };
    for i in 0..cur.len() {
        let others = cur.clone();
        let r = shrink(&cur[i], cut, &mut |c: &Program| {
            let mut set = others.clone();
            set[i] = c.clone();
            test(&mut state, &set)
        });
        cur[i] = r.program;
    }
    if stopped.get() {
        return needs_reboot(finish(state, t0, ran_here.get()), state_file);
    }
    let mut state = finish(state, t0, ran_here.get());
    state.done = true;
    state.ops = Some((ops_before, cur.iter().map(|p| p.ops.len()).sum()));
    // The result is a regression program: the conditions and the outcome it must give.
    for p in &mut cur {
        if !state.switches.is_empty() {
            p.set_header("switch", &state.switches);
        }
        p.header.retain(|(k, _)| k != "expect");
        let expects: BTreeSet<&str> = state
            .target
            .iter()
            .map(|t| crate::oracle::expectation_of(t))
            .collect();
        for e in expects {
            p.header.push(("expect".into(), e.to_string()));
        }
    }
    if let Some(f) = state_file {
        state.save(f)?;
    }
    Ok(Outcome::Done {
        ops_after: cur.iter().map(|p| p.ops.len()).sum(),
        ops_before,
        programs: cur,
        state,
    })
}

fn needs_reboot(state: State, state_file: Option<&Path>) -> Result<Outcome> {
    let Some(f) = state_file else {
        bail!(
            "lockdep has already reported in this boot, so the next candidate cannot be judged here: \
             give --state FILE to continue after a reboot, or shrink in the lab (ci/lab/shrink.sh)"
        );
    };
    state.save(f)?;
    Ok(Outcome::NeedsReboot {
        state_file: f.to_path_buf(),
        state,
    })
}

fn run_candidate(
    progs: &[Program],
    switches: &str,
    place: &Where<'_>,
    keeper: &mut crate::oracle::TraceKeeper,
) -> Result<run::Found> {
    let with_switches = |p: &Program| {
        let mut p = p.clone();
        if !switches.is_empty() {
            p.set_header("switch", switches);
        }
        p
    };
    match (place, progs) {
        (Where::Here, [one]) => run::findings_here(&with_switches(one), keeper),
        (Where::Boot(boot), [one]) => boot(&with_switches(one)),
        (Where::Here, many) => run::findings_concurrently(many, switches, keeper),
        (Where::Boot(_), _) => bail!("concurrent candidates run on the machine, not a boot each"),
    }
}
