//! The lab is a stand-in for the board, never an input: no oracle, generator or driver profile
//! may decide from a module parameter (read under /sys/module) or name the lab's fault switches.
//! The corpus headers and the stress engine set switches to set the lab up; that code is not here.
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_oracle_generator_or_profile_reads_module_parameters_or_knows_the_lab_switches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    // The executor and the device layer too: the stale-read verdict rests on what they tell
    // the oracles (node claims, probes, debug state).
    for dir in [
        "src/oracle",
        "src/program",
        "src/profile",
        "src/exec",
        "src/device",
    ] {
        sources(&root.join(dir), &mut files);
    }
    // The directories hold the oracles, the generator and the profiles: an empty walk would pass
    // whatever they read.
    for must in [
        "src/oracle/stale.rs",
        "src/program/generate.rs",
        "src/profile/driver.rs",
        "src/exec/ops.rs",
        "src/device/debug_state.rs",
    ] {
        assert!(files.contains(&root.join(must)), "{must} not searched");
    }
    // The lab's module parameters (ci/lab/README.md "Switches"), and where they are read.
    let forbidden = [
        "/sys/module",
        "parameters/",
        "release_fences",
        "rf_fault",
        "rf_fi_",
        "rf_error_every",
        "abort_mode",
        "rf_evil",
        "evil_num",
    ];
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in forbidden {
                if line.contains(word) {
                    hits.push(format!(
                        "{}:{}: {word}: {}",
                        f.strip_prefix(root).unwrap().display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "lab knowledge where findings are decided:\n{}",
        hits.join("\n")
    );
}
