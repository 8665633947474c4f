//! Stress profiles: every shipped profile loads; a bad one is rejected with file, line and key.
use m2mfuzz::profile::stress::StressProfile;
use m2mfuzz::program::{concat, text};
use m2mfuzz::stress::worker::{program_of, program_seed};
use std::path::Path;

fn err(src: &str) -> String {
    StressProfile::parse(src, Path::new("bad.toml")).unwrap_err()
}

#[test]
fn shipped_profiles_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("stress-profiles");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let prof = StressProfile::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!prof.targets.is_empty());
        names.push(prof.name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "hantro-overnight",
            "lab-bench",
            "lab-duty",
            "lab-overnight",
            "lab-smoke",
            "multi-stream",
            "rga-overnight"
        ]
    );
}

const GOOD: &str = "duration = \"90s\"\nworkers = 2\n\n[[target]]\ndriver = \"vim2m\"\n";

#[test]
fn a_good_profile_has_its_values() {
    let p = StressProfile::parse(GOOD, Path::new("good.toml")).unwrap();
    assert_eq!(p.duration.as_secs(), 90);
    assert_eq!(p.workers, 2);
    assert_eq!(p.targets[0].gen.profile.name, "vim2m");
    assert_eq!(p.name, "good");
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let e = err("duration = 60\nwokers = 2\n[[target]]\ndriver = \"vim2m\"\n");
    assert!(e.starts_with("bad.toml:2:"), "{e}");
    assert!(e.contains("wokers"), "{e}");
}

#[test]
fn an_unknown_driver_is_named_with_its_line_and_the_known_ones() {
    let e = err("duration = 60\n\n[[target]]\ndriver = \"vim3m\"\n");
    assert!(e.starts_with("bad.toml:4: target.driver:"), "{e}");
    assert!(e.contains("vim3m") && e.contains("vim2m"), "{e}");
}

#[test]
fn an_unknown_op_weight_a_bad_format_size_or_percentage_is_rejected() {
    let e = err("duration = 60\n[weights]\nqbuff = 3\n[[target]]\ndriver = \"vim2m\"\n");
    assert!(e.starts_with("bad.toml:3: weights.qbuff:"), "{e}");
    let e = err("duration = 60\n[[target]]\ndriver = \"vim2m\"\nout_formats = [\"NV12\"]\n");
    assert!(e.starts_with("bad.toml:4: target.out_formats:"), "{e}");
    let e = err("duration = 60\n[[target]]\ndriver = \"vim2m\"\nsizes = [[1, 1]]\n");
    assert!(e.starts_with("bad.toml:4: target.sizes:"), "{e}");
    let e = err("duration = 60\ninvalid_percent = 150\n[[target]]\ndriver = \"vim2m\"\n");
    assert!(e.starts_with("bad.toml:2: invalid_percent:"), "{e}");
    let e = err("duration = \"10 years\"\n[[target]]\ndriver = \"vim2m\"\n");
    assert!(e.starts_with("bad.toml:1: duration:"), "{e}");
    let e = err("duration = 60\nswitches = [\"vim2m\"]\n[[target]]\ndriver = \"vim2m\"\n");
    assert!(e.starts_with("bad.toml:2: switches:"), "{e}");
    let e = err("duration = 60\n");
    assert!(e.contains("target"), "{e}");
}

#[test]
fn worker_programs_are_reconstructible_from_the_seed() {
    let p = StressProfile::parse(GOOD, Path::new("good.toml")).unwrap();
    let gen = &p.targets[0].gen;
    let a = program_of(gen, 7, 1, 42);
    let b = program_of(gen, 7, 1, 42);
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!(
        a.header("seed"),
        Some(program_seed(7, 1, 42).to_string().as_str())
    );
    assert_ne!(a.to_string(), program_of(gen, 7, 2, 42).to_string());
    assert_ne!(program_seed(7, 0, 1), program_seed(7, 1, 0));
}

#[test]
fn serialized_programs_keep_their_handles_apart() {
    let p = StressProfile::parse(GOOD, Path::new("good.toml")).unwrap();
    let gen = &p.targets[0].gen;
    let (a, b) = (program_of(gen, 1, 0, 0), program_of(gen, 1, 1, 0));
    let c = concat(&[&a, &b]);
    // A threaded program's last segment ends at a barrier before the next program.
    let between = usize::from(a.is_threaded());
    assert_eq!(c.ops.len(), a.ops.len() + between + b.ops.len());
    assert_eq!(
        c.threads.is_empty(),
        a.threads.is_empty() && b.threads.is_empty()
    );
    // Each op of b uses handles no op of a produced, on the thread it had.
    let produced_by_a: Vec<_> = c.ops[..a.ops.len()]
        .iter()
        .filter_map(|o| o.output())
        .collect();
    let start_b = a.ops.len() + between;
    for (k, op) in c.ops[start_b..].iter().enumerate() {
        assert_eq!(c.thread(start_b + k), b.thread(k));
        for h in op.inputs().into_iter().chain(op.output()) {
            assert!(
                !produced_by_a.contains(&h),
                "{op} reuses a handle of the first program"
            );
        }
    }
    // And the text round-trips.
    assert_eq!(text::parse(&c.to_string()).unwrap(), c);
}

#[test]
fn a_transaction_time_is_one_value_or_a_list_to_draw_from() {
    for (v, want) in [("1", vec![1]), ("[1, 300]", vec![1, 300])] {
        let src = format!("duration = 60\n[[target]]\ndriver = \"vim2m\"\ntrans_time_ms = {v}\n");
        let p = StressProfile::parse(&src, Path::new("t.toml")).unwrap();
        assert_eq!(p.targets[0].gen.trans_time_ms, want);
    }
    let e = err("duration = 60\n[[target]]\ndriver = \"vim2m\"\ntrans_time_ms = \"slow\"\n");
    assert!(e.starts_with("bad.toml:4:"), "{e}");
}
