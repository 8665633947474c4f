//! The fuzz targets' program mutator: every mutation of a committed seed (and of chains of
//! mutations) is program text that decodes to itself, changes one thing of the kind it says,
//! keeps every handle an inserted op uses produced before it, and fits the size libFuzzer gives.
use m2mfuzz::fuzz::mutate::{
    crossover, crossover_inputs, decode, mutate, mutate_input, to_text_within, Mutation,
};
use m2mfuzz::profile::{by_name, DriverProfile};
use m2mfuzz::program::generate::from_bytes;
use m2mfuzz::program::{text, Op, Program};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn seeds(driver: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/seeds/m2m_{driver}"));
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no seeds in {}", dir.display());
    v
}

/// Ops of `b` not matched in order by `a`'s (a longest-common-subsequence difference).
fn changed_ops(a: &Program, b: &Program) -> usize {
    let (n, m) = (a.ops.len(), b.ops.len());
    let mut l = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a.ops[i] == b.ops[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    n.max(m) - l[0][0]
}

/// Every handle an op uses is produced by an earlier op, unless `p0` already used it unproduced
/// (the generator's invalid-argument share makes such ops on purpose).
fn new_dangling(p0: &Program, p: &Program) -> Vec<String> {
    let dangling = |p: &Program| {
        let mut produced = BTreeSet::new();
        let mut bad = BTreeSet::new();
        for op in &p.ops {
            for h in op.inputs() {
                if !produced.contains(&h) {
                    bad.insert(h.to_string());
                }
            }
            if let Some(h) = op.output() {
                produced.insert(h);
            }
        }
        bad
    };
    let before = dangling(p0);
    dangling(p)
        .into_iter()
        .filter(|h| !before.contains(h))
        .collect()
}

fn check_driver(driver: &str, profile: &'static DriverProfile) -> BTreeMap<Mutation, usize> {
    let mut kinds = BTreeMap::new();
    for (si, seed) in seeds(driver).iter().enumerate() {
        let p0 = from_bytes(seed, profile);
        assert_eq!(
            decode(seed, profile),
            p0,
            "bytes decode through the generator"
        );
        for s in 0..60u64 {
            let mut rng = SmallRng::seed_from_u64(si as u64 * 1000 + s);
            let Some((p, m)) = mutate(&p0, profile, &mut rng) else {
                panic!("{driver} seed {si}: no mutation applied");
            };
            *kinds.entry(m).or_default() += 1;
            assert_ne!(p, p0);
            let t = p.to_string();
            assert_eq!(
                text::parse(&t).unwrap(),
                p,
                "{driver}: {m:?} prints as it parses"
            );
            assert_eq!(decode(t.as_bytes(), profile), p, "text decodes as itself");
            let (n0, n) = (p0.ops.len(), p.ops.len());
            let changed = changed_ops(&p0, &p);
            match m {
                Mutation::Remove => assert_eq!(n + 1, n0),
                Mutation::Duplicate | Mutation::Insert => {
                    assert_eq!(n, n0 + 1);
                    assert!(
                        new_dangling(&p0, &p).is_empty(),
                        "{driver} {m:?}: an inserted op uses a handle nothing produced before it: {:?}\n{p}",
                        new_dangling(&p0, &p)
                    );
                }
                Mutation::Argument | Mutation::Handle => {
                    assert_eq!(n, n0);
                    assert_eq!(changed, 1, "{m:?} changes one op");
                    assert_eq!(p.threads, p0.threads);
                }
                Mutation::Thread => {
                    if n == n0 {
                        assert_eq!(p.ops, p0.ops, "a thread move keeps the ops");
                    } else {
                        assert_eq!(n, n0 + 1);
                        assert_eq!(changed, 1);
                        assert!(p.ops.iter().any(|o| matches!(o, Op::Barrier {})));
                    }
                }
            }
            if m == Mutation::Handle {
                assert!(new_dangling(&p0, &p).is_empty());
            }
        }
    }
    kinds
}

#[test]
fn each_mutation_changes_one_thing_and_stays_a_program() {
    for driver in ["vim2m", "visl", "vicodec", "rga", "hantro"] {
        let kinds = check_driver(driver, by_name(driver).unwrap());
        for m in [
            Mutation::Remove,
            Mutation::Duplicate,
            Mutation::Insert,
            Mutation::Argument,
            Mutation::Handle,
            Mutation::Thread,
        ] {
            assert!(
                kinds.get(&m).copied().unwrap_or(0) > 0,
                "{driver}: {m:?} never happened: {kinds:?}"
            );
        }
    }
}

#[test]
fn chains_of_mutations_stay_decodable_and_within_the_size_given() {
    let profile = by_name("vim2m").unwrap();
    for (si, seed) in seeds("vim2m").iter().enumerate() {
        let mut input = seed.clone();
        let mut max = 4096;
        for s in 0..150u32 {
            let Some(out) = mutate_input(&input, max, si as u32 * 7919 + s, profile) else {
                continue;
            };
            assert!(out.len() <= max, "{} > {max}", out.len());
            assert_eq!(
                decode(out.as_bytes(), profile),
                text::parse(&out).unwrap(),
                "mutated input decodes as its text"
            );
            input = out.into_bytes();
            // libFuzzer's length control raises the limit over time.
            max = if s % 50 == 49 { max * 2 } else { max };
        }
        let other = &seeds("vim2m")[(si + 1) % seeds("vim2m").len()];
        if let Some(out) = crossover_inputs(&input, other, 8192, si as u32, profile) {
            assert!(out.len() <= 8192);
            text::parse(&out).unwrap();
        }
    }
}

#[test]
fn crossover_splices_a_run_of_the_other_programs_ops_with_handles_mapped() {
    let profile = by_name("visl").unwrap();
    let s = seeds("visl");
    let (a, b) = (from_bytes(&s[0], profile), from_bytes(&s[1], profile));
    let mut spliced = 0;
    for seed in 0..50 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let Some(q) = crossover(&a, &b, &mut rng) else {
            continue;
        };
        spliced += 1;
        assert!(q.ops.len() > a.ops.len() && q.ops.len() <= a.ops.len() + 8);
        assert_eq!(
            changed_ops(&a, &q),
            q.ops.len() - a.ops.len(),
            "a's ops stay, in order"
        );
        assert!(new_dangling(&a, &q).is_empty(), "{q}");
        assert_eq!(text::parse(&q.to_string()).unwrap(), q);
    }
    assert!(spliced > 25, "only {spliced} of 50 crossovers applied");
}

#[test]
fn a_program_too_long_for_the_limit_loses_ops_until_it_fits() {
    let profile = by_name("vim2m").unwrap();
    let p = from_bytes(&seeds("vim2m")[0], profile);
    let full = p.to_string().len();
    let mut rng = SmallRng::seed_from_u64(1);
    let t = to_text_within(p.clone(), full / 2, &mut rng).unwrap();
    assert!(t.len() <= full / 2);
    let q = text::parse(&t).unwrap();
    assert!(q.ops.len() < p.ops.len() && !q.ops.is_empty());
    assert_eq!(
        to_text_within(p, 10, &mut rng),
        None,
        "no op fits in 10 bytes"
    );
}
