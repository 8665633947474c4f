//! C reproducers compile cleanly (gcc -Wall -Wextra -Werror) for every corpus program and for
//! generated programs of every driver, invalid arguments included; the lab checks they reproduce
//! (ci/lab/repro-check.sh).
use m2mfuzz::program::generate::{generate, GenConfig, RngChoices};
use m2mfuzz::{corpus, profile, repro};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::path::PathBuf;
use std::process::Command;

fn headers() -> Vec<String> {
    let cache = std::env::var_os("M2MFUZZ_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/m2mfuzz-lab")))
        .unwrap();
    let inc = cache.join("headers/include");
    if inc.join("linux/videodev2.h").exists() {
        vec![format!("-I{}", inc.display())]
    } else {
        vec![]
    }
}

fn compiles(name: &str, code: &str) {
    let dir = std::env::temp_dir().join(format!("m2mfuzz-repro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, code).unwrap();
    let out = Command::new("gcc")
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-pthread", "-o"])
        .arg(dir.join(name))
        .args(headers())
        .arg(&src)
        .output()
        .expect("gcc");
    assert!(
        out.status.success(),
        "{name}: gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn corpus_reproducers_compile_and_carry_their_program() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpora");
    for e in corpus::load(&[root]).unwrap() {
        let code = repro::to_c(&e.program);
        // The program is in the file, for the report's reader.
        for op in &e.program.ops {
            assert!(
                code.contains(&format!("{op} */")),
                "{}: `{op}` missing",
                e.path.display()
            );
        }
        compiles(e.path.file_stem().unwrap().to_str().unwrap(), &code);
    }
}

#[test]
fn generated_reproducers_compile_for_every_driver() {
    for (i, p) in profile::ALL.iter().enumerate() {
        for seed in 0..4 {
            let mut cfg = GenConfig::new(p);
            cfg.contexts = 2;
            cfg.body_ops = 80;
            cfg.invalid_percent = 30;
            cfg.sw_sync = true;
            // Odd seeds run their body on several threads.
            cfg.thread_percent = if seed % 2 == 1 { 100 } else { 0 };
            let prog = generate(&mut RngChoices(SmallRng::seed_from_u64(seed)), &cfg);
            let code = repro::to_c(&prog);
            assert_eq!(
                code.contains("pthread_create("),
                prog.segments()
                    .iter()
                    .any(|s| s.clone().any(|i| prog.thread(i) != prog.thread(s.start))),
                "{}",
                prog
            );
            compiles(&format!("gen-{i}-{seed}"), &code);
        }
    }
}
