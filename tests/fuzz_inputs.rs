//! Fuzz inputs: `m2mfuzz decode` prints exactly the program a fuzz target ran for the bytes, and
//! the committed libFuzzer seeds, decoded as their target decodes them, together use every op the
//! generator makes for that driver.
use m2mfuzz::profile::{by_name, DriverProfile, Requests};
use m2mfuzz::program::generate::{from_bytes, GenConfig, ACTIONS};
use m2mfuzz::program::{Op, Program, OP_SIGNATURES};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn decode(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_m2mfuzz"))
        .arg("decode")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn decode_prints_the_program_the_target_ran() {
    let dir = std::env::temp_dir().join(format!("m2mfuzz-decode-{}", std::process::id()));
    let art = dir.join("artifacts/m2m_visl");
    std::fs::create_dir_all(&art).unwrap();
    let bytes: Vec<u8> = (0..700u32).map(|i| (i * 7919 % 251) as u8).collect();
    let file = art.join("crash-1");
    std::fs::write(&file, &bytes).unwrap();
    let out = decode(&[file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut want = from_bytes(&bytes, by_name("visl").unwrap());
    want.set_header("decoded-from", "m2m_visl input crash-1");
    assert_eq!(text, want.to_string());
    // Elsewhere the target must be named.
    let other = dir.join("crash-2");
    std::fs::write(&other, &bytes).unwrap();
    let out = decode(&[other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--driver"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decode_prints_a_mutated_text_input_as_it_is_and_finds_a_stored_findings_driver() {
    let dir = std::env::temp_dir().join(format!("m2mfuzz-decode-text-{}", std::process::id()));
    // A stored fuzz finding: the input (program text, as the mutator writes it) and its program.
    let finding = dir.join("findings/hang-x");
    std::fs::create_dir_all(&finding).unwrap();
    let bytes: Vec<u8> = (0..500u32).map(|i| (i * 31 % 253) as u8).collect();
    let mut p = from_bytes(&bytes, by_name("visl").unwrap());
    p.ops.truncate(12);
    let input = finding.join("input.bin");
    std::fs::write(&input, p.to_string()).unwrap();
    std::fs::write(finding.join("program.m2m"), p.to_string()).unwrap();
    let out = decode(&[input.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = p.clone();
    want.set_header("decoded-from", "m2m_visl input input.bin");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decode_into_a_reader_that_stops_early_exits_cleanly() {
    let dir = std::env::temp_dir().join(format!("m2mfuzz-decode-pipe-{}", std::process::id()));
    let art = dir.join("artifacts/m2m_vim2m");
    std::fs::create_dir_all(&art).unwrap();
    let file = art.join("crash-1");
    std::fs::write(&file, vec![7u8; 2000]).unwrap();
    // `| head -1`: a pipe whose reader is gone before the program is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_m2mfuzz"))
        .arg("decode")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ops after a decoded program's prologue, which opens every context (`open` is a prologue
/// op only) and ends each with its two STREAMONs: the ops the input chose, not the fixed setup.
fn after_prologue(p: &Program) -> &[Op] {
    let contexts = p
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Open { .. }))
        .count();
    let end = p
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Op::Streamon { .. }))
        .nth(2 * contexts - 1)
        .map_or_else(|| panic!("no prologue in\n{p}"), |(i, _)| i + 1);
    &p.ops[end..]
}

/// The ops the generator's body actions make for a driver: every action that is an op of its
/// own, the reader's map and canary fill, requests where the driver takes them, controls where
/// it has some, and the injected sw_sync fences (with the timeline ops around them) where the
/// generator uses sw_sync (lab drivers).
fn body_ops(profile: &'static DriverProfile) -> BTreeSet<&'static str> {
    let mut want: BTreeSet<&str> = ACTIONS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| OP_SIGNATURES.iter().any(|(op, ..)| op == name))
        .collect();
    want.extend(["mmap", "fill"]);
    if profile.requests != Requests::No {
        want.extend(["request_alloc", "request_queue", "close_request"]);
    }
    if profile.controls.is_empty() {
        want.remove("set_ctrl");
    }
    if GenConfig::new(profile).sw_sync {
        want.extend(["sw_timeline", "sw_fence", "sw_inc", "close_timeline"]);
    } else {
        want.remove("import_sync_file");
    }
    want
}

#[test]
fn committed_seeds_together_use_every_op_the_generator_makes_for_their_target() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for driver in ["rga", "hantro", "vim2m", "visl", "vicodec"] {
        let dir = seeds.join(format!("m2m_{driver}"));
        let profile = by_name(driver).unwrap();
        let mut used = BTreeSet::new();
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let prog = from_bytes(&std::fs::read(e.unwrap().path()).unwrap(), profile);
            used.extend(after_prologue(&prog).iter().map(Op::name));
            n += 1;
        }
        assert!(n >= 4, "{driver}: only {n} seeds in {}", dir.display());
        let missing: Vec<_> = body_ops(profile).difference(&used).copied().collect();
        assert!(
            missing.is_empty(),
            "{driver}: no seed in {} uses {missing:?} after its prologue (used: {used:?}); \
             regenerate with `m2mfuzz fuzz-seeds --driver {driver} -o {}`",
            dir.display(),
            dir.display()
        );
    }
}
