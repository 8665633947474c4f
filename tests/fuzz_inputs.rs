//! Fuzz inputs: `m2mfuzz decode` prints exactly the program a fuzz target ran for the bytes, and
//! the committed libFuzzer seeds decode to programs that stream on their target's node.
use m2mfuzz::profile::driver::by_name;
use m2mfuzz::program::generate::from_bytes;
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
fn committed_seeds_stream_on_their_targets_node() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for driver in ["rga", "hantro", "vim2m", "visl", "vicodec"] {
        let dir = seeds.join(format!("m2m_{driver}"));
        let profile = by_name(driver).unwrap();
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let text = from_bytes(&bytes, profile).to_string();
            assert!(
                text.contains(&format!("open node={}", profile.node_selector())),
                "{driver}: {text}"
            );
            assert!(text.contains("streamon"), "{driver}: {text}");
            n += 1;
        }
        assert!(n >= 4, "{driver}: only {n} seeds in {}", dir.display());
    }
}
