//! The static binaries a guest runs, built for the lab's architecture into SHARE/bin: m2mfuzz,
//! the lab_devices test binary, and the race programs of ci/lab/race/ (C).
use crate::arch::Arch;
use crate::lab::Lab;
use crate::{apt, cmd};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// Static, not position-independent: static glibc binaries run in the busybox initramfs with no
/// libraries, and a static-pie binary relocates itself at every start, which under TCG made each
/// m2mfuzz process start about 80 ms slower (the shrinker and replay start one per candidate).
pub const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static -C relocation-model=static";

/// `cargo SUB --target TRIPLE` for the lab's architecture: rustup's cargo for x86_64; for
/// aarch64 Debian's rustc-web/cargo-web (rustup has no aarch64 std here), with the cross linker
/// and qemu-user as the runner set for that target only. PATH is left alone.
pub fn cargo(lab: &Lab, sub: &str) -> Result<Command> {
    let t = lab.arch.rust_target();
    let mut c = match lab.arch {
        Arch::X86_64 => Command::new("cargo"),
        Arch::Arm64 => {
            apt::need_aarch64_rust()?;
            let mut c = Command::new("/usr/bin/cargo");
            c.env("RUSTC", "/usr/bin/rustc")
                .env("RUSTDOC", "/usr/bin/rustdoc")
                .env(
                    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
                    "aarch64-linux-gnu-gcc",
                )
                .env(
                    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
                    STATIC_RUSTFLAGS,
                )
                .env(
                    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
                    "qemu-aarch64-static",
                );
            c
        }
    };
    c.current_dir(&lab.repo).arg(sub).args(["--target", t]);
    Ok(c)
}

/// Build the guest binaries into `share/bin`.
pub fn build(lab: &Lab, share: &Path) -> Result<()> {
    let bin = share.join("bin");
    std::fs::create_dir_all(&bin)?;
    let t = lab.arch.rust_target();
    crate::say!("building static guest binaries (release, {t})");
    // Release, static, m2mfuzz's package: the binary and the device tests.
    let release = |sub: &str| -> Result<Command> {
        let mut c = cargo(lab, sub)?;
        c.env("RUSTFLAGS", STATIC_RUSTFLAGS).args([
            "--release",
            "--locked",
            "--package",
            "m2mfuzz",
        ]);
        Ok(c)
    };
    cmd::run(
        release("build")?
            .args(["--bin", "m2mfuzz"])
            .stdout(Stdio::null()),
    )?;
    let m2mfuzz = lab.repo.join("target").join(t).join("release/m2mfuzz");
    std::fs::copy(&m2mfuzz, bin.join("m2mfuzz"))
        .with_context(|| format!("copy {}", m2mfuzz.display()))?;
    let json = cmd::output(
        release("test")?
            .args(["--test", "lab_devices", "--no-run", "--message-format=json"])
            .stderr(Stdio::null()),
    )?;
    let exe = test_executable(&json, "lab_devices").context("lab_devices test binary not built")?;
    std::fs::copy(&exe, bin.join("lab_devices"))?;
    // The race programs (race-check): C, static, with the reproducers' warnings.
    let (cc, pkgs) = lab.arch.cc();
    apt::need(pkgs)?;
    for e in std::fs::read_dir(lab.file("race"))? {
        let src = e?.path();
        if src.extension().is_some_and(|x| x == "c") {
            let name = src.file_stem().unwrap();
            cmd::run(
                Command::new(cc)
                    .args([
                        "-Wall", "-Wextra", "-Werror", "-O2", "-static", "-pthread", "-o",
                    ])
                    .arg(bin.join(name))
                    .arg(&src),
            )
            .with_context(|| format!("{} does not compile", src.display()))?;
        }
    }
    Ok(())
}

/// Empty `out` and make its share: OUT/share with the guest binaries and a copy of each of the
/// repository's directories `dirs` (e.g. `stress-profiles`, `corpora`). Returns the share.
pub fn fresh_share(lab: &Lab, out: &Path, dirs: &[&str]) -> Result<std::path::PathBuf> {
    crate::lab::fresh_dir(out, &lab.repo)?;
    let share = out.join("share");
    build(lab, &share)?;
    for d in dirs {
        crate::checks::stress::copy_dir(&lab.repo.join(d), &share.join(d))?;
    }
    Ok(share)
}

/// The executable of test target `name` in cargo's JSON messages.
fn test_executable(json: &str, name: &str) -> Option<String> {
    json.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_executable_is_read_from_cargos_messages() {
        let json = r#"{"reason":"compiler-artifact","target":{"name":"m2mfuzz"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"lab_devices"},"executable":"/t/lab_devices-abc"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            super::test_executable(json, "lab_devices").as_deref(),
            Some("/t/lab_devices-abc")
        );
        assert_eq!(super::test_executable(json, "other"), None);
    }
}
