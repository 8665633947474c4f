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

#[test]
fn shrinks_generated_programs_to_the_minimal_dependency_chain() {
    let mut shrunk_any = 0;
    for seed in 0..200 {
        let mut cfg = GenConfig::new(&profile::driver::VIM2M);
        cfg.body_ops = 60;
        cfg.invalid_percent = 0;
        let p = generate(&mut RngChoices(SmallRng::seed_from_u64(seed)), &cfg);
        if !needs_export_and_wait(&p) {
            continue;
        }
        let r = shrink(&p, &mut |c| needs_export_and_wait(c));
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
