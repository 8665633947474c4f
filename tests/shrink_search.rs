//! The shrinker's search, over generated programs, with a "reproduces?" rule that depends only on
//! the program (the device-side check is in the lab tests): it must find the minimal program.
use m2mfuzz::profile;
use m2mfuzz::program::generate::{generate, GenConfig, RngChoices};
use m2mfuzz::program::{text, Op, Program};
use m2mfuzz::shrink::shrink;
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// "Reproduces" when an export of a CAPTURE buffer is followed by a wait on it, the way a
/// release-fence hang needs both.
fn needs_export_and_wait(p: &Program) -> bool {
    let mut exported = std::collections::BTreeSet::new();
    let mut produced = std::collections::BTreeSet::new();
    for op in &p.ops {
        if !op.inputs().iter().all(|h| produced.contains(h)) {
            continue; // skipped at run time: its handle is unbound
        }
        if let Some(h) = op.output() {
            produced.insert(h);
        }
        match op {
            Op::ExportSyncFile { ret, .. } => {
                exported.insert(*ret);
            }
            Op::Wait { sync, .. } if exported.contains(sync) => return true,
            _ => {}
        }
    }
    false
}

/// A generated vim2m program of 60 body ops, no invalid arguments.
fn vim2m_program(seed: u64) -> Program {
    let mut cfg = GenConfig::new(&profile::driver::VIM2M);
    cfg.body_ops = 60;
    cfg.invalid_percent = 0;
    generate(&mut RngChoices(SmallRng::seed_from_u64(seed)), &cfg)
}

#[test]
fn shrinks_generated_programs_to_the_minimal_dependency_chain() {
    let mut shrunk_any = 0;
    for seed in 0..200 {
        let p = vim2m_program(seed);
        if !needs_export_and_wait(&p) {
            continue;
        }
        let r = shrink(&p, None, &mut |c| needs_export_and_wait(c));
        let names: Vec<&str> = r.program.ops.iter().map(|o| o.name()).collect();
        // open → expbuf → export_sync_file → wait: nothing less reproduces, nothing more is needed.
        assert_eq!(
            names,
            ["open", "expbuf", "export_sync_file", "wait"],
            "seed {seed}:\n{}",
            r.program
        );
        assert!(needs_export_and_wait(&r.program));
        assert_eq!(r.ops_before, p.ops.len());
        // The shrunk program is a valid program text.
        assert_eq!(text::parse(&r.program.to_string()).unwrap(), r.program);
        shrunk_any += 1;
    }
    assert!(
        shrunk_any >= 20,
        "only {shrunk_any} generated programs had an export and a wait"
    );
}

/// With the op the finding showed at (here: the first wait that reproduces), the shrink reaches
/// the same minimal program with fewer reproducing candidates: each of those costs a boot for
/// a lockdep finding.
#[test]
fn cutting_after_the_finding_op_first_needs_fewer_reproducing_candidates() {
    let (mut with_cut, mut without) = (0usize, 0usize);
    let mut cases = 0;
    for seed in 0..200 {
        let p = vim2m_program(seed);
        let Some(at) = (0..p.ops.len()).find(|&k| {
            needs_export_and_wait(&Program::from_steps(
                p.header.clone(),
                p.to_steps()[..=k].to_vec(),
            ))
        }) else {
            continue;
        };
        let count = |cut: Option<usize>, n: &mut usize| {
            shrink(&p, cut, &mut |c| {
                let yes = needs_export_and_wait(c);
                *n += usize::from(yes);
                yes
            })
            .program
        };
        let a = count(Some(at), &mut with_cut);
        let b = count(None, &mut without);
        assert_eq!(a.ops.len(), b.ops.len(), "seed {seed}: {a}\nvs\n{b}");
        cases += 1;
    }
    assert!(cases >= 20, "only {cases} programs reproduce");
    eprintln!(
        "{cases} programs: {with_cut} reproducing candidates with the cut, {without} without"
    );
    assert!(
        with_cut < without,
        "{with_cut} reproducing candidates with the cut, {without} without"
    );
}
