//! Mutations of programs, not bytes: the fuzz targets' libFuzzer custom mutator and crossover.
//! An input is program text (what these write) or, for the committed seeds and any other bytes,
//! the program the generator decodes from them ([`decode`]). One mutation changes one thing: an
//! op removed, duplicated, or inserted from the generator's own output, one argument or one
//! handle changed, an op moved to another thread or a barrier added; a crossover splices a run
//! of another input's ops in. So KCOV feedback can tell what a change did, where a flipped byte
//! of the generator's input reshuffles every later choice.
use crate::profile::DriverProfile;
use crate::program::generate::{from_bytes, generate, GenConfig, RngChoices};
use crate::program::{text, Handle, Op, Program, ResKind, MAX_THREAD};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The program an input stands for: program text as it is (what the mutator writes), any other
/// bytes as the generator decodes them ([`from_bytes`]).
pub fn decode(data: &[u8], profile: &'static DriverProfile) -> Program {
    if data.starts_with(b"# m2mfuzz program") {
        if let Some(p) = std::str::from_utf8(data)
            .ok()
            .and_then(|s| text::parse(s).ok())
        {
            return p;
        }
    }
    from_bytes(data, profile)
}

/// What one mutation changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mutation {
    /// An op removed.
    Remove,
    /// An op copied to a later place (a produced handle gets a new number).
    Duplicate,
    /// An op of a freshly generated program inserted, its handles mapped onto this program's.
    Insert,
    /// One keyed argument changed (a number to a boundary or neighbour, a word to another
    /// value the same key takes).
    Argument,
    /// One handle an op uses changed to another of the same kind produced before it.
    Handle,
    /// An op moved to another program thread, or a barrier inserted.
    Thread,
}

/// Mutate `p` once: a different program and what changed, or None when no mutation applies
/// (a program with no ops gets ops inserted, so that is rare).
pub fn mutate(
    p: &Program,
    profile: &'static DriverProfile,
    rng: &mut SmallRng,
) -> Option<(Program, Mutation)> {
    for _ in 0..16 {
        let m = *[
            Mutation::Remove,
            Mutation::Duplicate,
            Mutation::Insert,
            Mutation::Insert,
            Mutation::Argument,
            Mutation::Argument,
            Mutation::Handle,
            Mutation::Thread,
        ]
        .choose(rng)
        .unwrap();
        let out = match m {
            Mutation::Remove => remove(p, rng),
            Mutation::Duplicate => duplicate(p, rng),
            Mutation::Insert => insert(p, profile, rng),
            Mutation::Argument => argument(p, profile, rng),
            Mutation::Handle => handle(p, rng),
            Mutation::Thread => thread(p, rng),
        };
        if let Some(q) = out.filter(|q| q != p) {
            return Some((q, m));
        }
    }
    None
}

/// A run of `b`'s ops spliced into `a` at a random place, their handles mapped onto `a`'s (a
/// handle `b` produces in the run gets a new number in `a`); None when no run fits.
pub fn crossover(a: &Program, b: &Program, rng: &mut SmallRng) -> Option<Program> {
    if b.ops.is_empty() {
        return None;
    }
    for _ in 0..8 {
        let len = rng.gen_range(1..=b.ops.len().min(8));
        let start = rng.gen_range(0..=b.ops.len() - len);
        let at = rng.gen_range(0..=a.ops.len());
        let run: Vec<(u8, Op)> = b.to_steps()[start..start + len].to_vec();
        if let Some(q) = splice(a, at, run, rng) {
            return Some(q);
        }
    }
    None
}

/// The text of `p`, made to fit `max` bytes by removing random ops; None when even one op does
/// not fit.
pub fn to_text_within(mut p: Program, max: usize, rng: &mut SmallRng) -> Option<String> {
    loop {
        let s = p.to_string();
        if s.len() <= max {
            return Some(s);
        }
        if p.ops.len() <= 1 {
            return None;
        }
        let i = rng.gen_range(0..p.ops.len());
        let mut steps = p.to_steps();
        steps.remove(i);
        p = Program::from_steps(p.header.clone(), steps);
    }
}

/// libFuzzer's mutator on an input: decoded, mutated once, written back as program text of at
/// most `max` bytes. None when nothing applied or fits (the caller falls back to byte
/// mutation).
pub fn mutate_input(
    data: &[u8],
    max: usize,
    seed: u32,
    profile: &'static DriverProfile,
) -> Option<String> {
    let mut rng = SmallRng::seed_from_u64(u64::from(seed));
    let p = decode(data, profile);
    let (q, _) = mutate(&p, profile, &mut rng)?;
    to_text_within(q, max, &mut rng)
}

/// libFuzzer's crossover on two inputs, written as program text of at most `max` bytes.
pub fn crossover_inputs(
    a: &[u8],
    b: &[u8],
    max: usize,
    seed: u32,
    profile: &'static DriverProfile,
) -> Option<String> {
    let mut rng = SmallRng::seed_from_u64(u64::from(seed));
    let q = crossover(&decode(a, profile), &decode(b, profile), &mut rng)?;
    to_text_within(q, max, &mut rng)
}

fn remove(p: &Program, rng: &mut SmallRng) -> Option<Program> {
    if p.ops.len() < 2 {
        return None;
    }
    let mut steps = p.to_steps();
    steps.remove(rng.gen_range(0..steps.len()));
    Some(Program::from_steps(p.header.clone(), steps))
}

fn duplicate(p: &Program, rng: &mut SmallRng) -> Option<Program> {
    let steps = p.to_steps();
    let i = rng.gen_range(0..steps.len().max(1));
    let (t, op) = steps.get(i)?.clone();
    let at = rng.gen_range(i + 1..=steps.len());
    splice(p, at, vec![(t, op)], rng)
}

fn insert(p: &Program, profile: &'static DriverProfile, rng: &mut SmallRng) -> Option<Program> {
    let donor = reference(p, profile, rng);
    let (_, op) = donor
        .steps()
        .filter(|(_, op)| !matches!(op, Op::Barrier {}))
        .collect::<Vec<_>>()
        .choose(rng)
        .map(|(t, op)| (*t, (*op).clone()))?;
    let at = rng.gen_range(0..=p.ops.len());
    // On the thread of the op before it: inserted into that thread's sequence.
    let t = if at > 0 { p.thread(at - 1) } else { 0 };
    splice(p, at, vec![(t, op)], rng)
}

fn argument(p: &Program, profile: &'static DriverProfile, rng: &mut SmallRng) -> Option<Program> {
    let with_args: Vec<usize> = (0..p.ops.len())
        .filter(|&i| !p.ops[i].fields().1.is_empty())
        .collect();
    let &i = with_args.choose(rng)?;
    let (_, kv, _) = p.ops[i].fields();
    let (key, value) = kv.choose(rng)?.clone();
    let new = new_value(&value, &vocabulary(p, profile, rng, key), rng)?;
    // Through the text: the ops table's printer and parser know every argument's type.
    let line = p.ops[i].to_string();
    let old = format!("{key}={value}");
    let changed: Vec<String> = line
        .split_whitespace()
        .map(|tok| {
            if tok == old {
                format!("{key}={new}")
            } else {
                tok.to_string()
            }
        })
        .collect();
    let op = text::parse_op(&changed.join(" ")).ok()?;
    let mut q = p.clone();
    q.ops[i] = op;
    Some(q)
}

fn handle(p: &Program, rng: &mut SmallRng) -> Option<Program> {
    let with_inputs: Vec<usize> = (0..p.ops.len())
        .filter(|&i| !p.ops[i].inputs().is_empty())
        .collect();
    let &i = with_inputs.choose(rng)?;
    let mut q = p.clone();
    let produced = produced_before(p, i);
    let mut ins = q.ops[i].inputs_mut();
    let h = ins.choose_mut(rng)?;
    let others: Vec<Handle> = produced
        .get(&h.kind)?
        .iter()
        .copied()
        .filter(|o| o != &**h)
        .collect();
    **h = *others.choose(rng)?;
    Some(q)
}

fn thread(p: &Program, rng: &mut SmallRng) -> Option<Program> {
    let mut steps = p.to_steps();
    if steps.is_empty() {
        return None;
    }
    if rng.gen_ratio(1, 4) {
        let at = rng.gen_range(0..=steps.len());
        steps.insert(at, (0, Op::Barrier {}));
    } else {
        let i = rng.gen_range(0..steps.len());
        if matches!(steps[i].1, Op::Barrier {}) {
            return None;
        }
        let highest = steps.iter().map(|s| s.0).max().unwrap_or(0);
        steps[i].0 = rng.gen_range(0..=(highest + 1).min(MAX_THREAD));
    }
    Some(Program::from_steps(p.header.clone(), steps))
}

/// `run` inserted into `p` before op `at`: each handle a run's op uses is mapped onto one of
/// the same kind `p` produced before `at` (or that the run produced, renumbered); each handle
/// it produces gets the next free number of its kind. None when a handle has nothing to map to.
fn splice(p: &Program, at: usize, run: Vec<(u8, Op)>, rng: &mut SmallRng) -> Option<Program> {
    let mut produced = produced_before(p, at);
    let mut next: BTreeMap<ResKind, u32> = BTreeMap::new();
    for op in &p.ops {
        if let Some(h) = op.output() {
            let n = next.entry(h.kind).or_default();
            *n = (*n).max(h.id + 1);
        }
    }
    let mut renamed: BTreeMap<Handle, Handle> = BTreeMap::new();
    let mut out = Vec::with_capacity(run.len());
    for (t, mut op) in run {
        for h in op.inputs_mut() {
            *h = match renamed.get(h) {
                Some(r) => *r,
                None => *produced.get(&h.kind)?.choose(rng)?,
            };
        }
        if let Some(h) = op.output_mut() {
            let n = next.entry(h.kind).or_default();
            let fresh = Handle {
                kind: h.kind,
                id: *n,
            };
            *n += 1;
            renamed.insert(*h, fresh);
            *h = fresh;
            produced.entry(fresh.kind).or_default().push(fresh);
        }
        out.push((t, op));
    }
    let mut steps = p.to_steps();
    steps.splice(at..at, out);
    Some(Program::from_steps(p.header.clone(), steps))
}

/// Handles produced by ops before `at`, by kind.
fn produced_before(p: &Program, at: usize) -> BTreeMap<ResKind, Vec<Handle>> {
    let mut m: BTreeMap<ResKind, Vec<Handle>> = BTreeMap::new();
    for op in &p.ops[..at.min(p.ops.len())] {
        if let Some(h) = op.output() {
            m.entry(h.kind).or_default().push(h);
        }
    }
    m
}

/// A program the generator makes for this driver, from the mutation's randomness: the source of
/// inserted ops and of the values a key takes.
fn reference(p: &Program, profile: &'static DriverProfile, rng: &mut SmallRng) -> Program {
    let mut cfg = GenConfig::new(profile);
    let contexts = p
        .ops
        .iter()
        .filter(|op| op.output().is_some_and(|h| h.kind == ResKind::Ctx))
        .count();
    cfg.contexts = contexts.clamp(1, 2) as u32;
    cfg.body_ops = 64;
    cfg.invalid_percent = 10;
    cfg.max_wait_ms = 150;
    cfg.thread_percent = 0;
    generate(&mut RngChoices(SmallRng::seed_from_u64(rng.gen())), &cfg)
}

/// The values `key` has in `p` and in a generated program.
fn vocabulary(
    p: &Program,
    profile: &'static DriverProfile,
    rng: &mut SmallRng,
    key: &str,
) -> Vec<String> {
    let r = reference(p, profile, rng);
    let mut v: Vec<String> = p
        .ops
        .iter()
        .chain(&r.ops)
        .flat_map(|op| op.fields().1)
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A new value for an argument: a number becomes a boundary, a neighbour or a random value (in
/// the same notation); a word another value of the key.
fn new_value(old: &str, vocabulary: &[String], rng: &mut SmallRng) -> Option<String> {
    let (hex, digits) = match old.strip_prefix("0x") {
        Some(h) => (true, h),
        None => (false, old),
    };
    let n = if hex {
        u64::from_str_radix(digits, 16).ok()
    } else {
        digits.parse::<u64>().ok()
    };
    if let Some(n) = n {
        let m: u64 = match rng.gen_range(0..9) {
            0 => 0,
            1 => 1,
            2 => n.wrapping_add(1),
            3 => n.saturating_sub(1),
            4 => n.saturating_mul(2),
            5 => n / 2,
            6 => u64::from(u32::MAX),
            7 => u64::from(i32::MAX as u32),
            _ => u64::from(rng.gen::<u32>()),
        };
        return Some(if hex {
            format!("{m:#x}")
        } else {
            m.to_string()
        });
    }
    let others: Vec<&String> = vocabulary.iter().filter(|v| *v != old).collect();
    others.choose(rng).map(|s| s.to_string())
}
