//! The boards' binaries (RK3566/RK3588, aarch64), built on an x86_64 Debian 12 machine: a static
//! aarch64 m2mfuzz from Debian's Rust and the cross gcc (the same build the arm64 lab's guest
//! runs), with `fuzz` the cargo fuzz targets too, and with `test` the uapi layout test and a
//! fuzz target run under qemu-aarch64-static.
use crate::arch::Arch;
use crate::lab::Lab;
use crate::{cmd, fuzz_build, guest_bins};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Build them; returns the binaries' paths (m2mfuzz first).
pub fn build(fuzz: bool, test: bool) -> Result<Vec<PathBuf>> {
    if std::env::consts::ARCH == "aarch64" {
        bail!("this machine is aarch64: build natively with cargo build --release");
    }
    let lab = Lab::new(Arch::Arm64)?;
    let triple = lab.arch.rust_target();
    let start = std::time::Instant::now();
    crate::say!("building m2mfuzz for {triple} (static, release)");
    cmd::run(
        guest_bins::cargo(&lab, "build")?
            .args([
                "--release",
                "--locked",
                "--package",
                "m2mfuzz",
                "--bin",
                "m2mfuzz",
            ])
            .stdout(Stdio::null()),
    )?;
    let bin = lab.repo.join("target").join(triple).join("release/m2mfuzz");
    fuzz_build::static_for(&bin, lab.arch)?;
    // The binary must start on an aarch64 CPU, not only link.
    cmd::output(
        Command::new("qemu-aarch64-static")
            .arg(&bin)
            .arg("--version"),
    )
    .with_context(|| format!("{} does not run under qemu-aarch64-static", bin.display()))?;
    crate::say!("built {} in {} s", bin.display(), start.elapsed().as_secs());
    if test {
        crate::say!("uapi layout test for {triple} under qemu-aarch64-static");
        // --release: reuses the build above; the test only compiles itself.
        cmd::run(guest_bins::cargo(&lab, "test")?.args([
            "--release",
            "--locked",
            "--package",
            "m2mfuzz",
            "--test",
            "uapi_layout",
            "--",
            "--nocapture",
        ]))?;
    }
    let mut out = vec![bin];
    if !fuzz {
        return Ok(out);
    }
    let start = std::time::Instant::now();
    let mut names: Vec<String> = std::fs::read_dir(lab.repo.join("fuzz/fuzz_targets"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for n in &names {
        out.push(fuzz_build::build_target(&lab, n, None)?);
    }
    crate::say!(
        "built {} fuzz targets in {} s",
        names.len(),
        start.elapsed().as_secs()
    );
    if test {
        run_vim2m_target(&lab)?;
    }
    Ok(out)
}

/// m2m_vim2m under qemu-aarch64-static: with no V4L2 node it refuses to start (exit 2); on a
/// stand-in node (/dev/null: every ioctl fails) libFuzzer runs its inputs through the
/// generator, the supervised executor and the oracles (which read this host's kernel log).
fn run_vim2m_target(lab: &Lab) -> Result<()> {
    let fbin = lab
        .repo
        .join("fuzz/target")
        .join(lab.arch.rust_target())
        .join("release/m2m_vim2m");
    let tmp = std::env::temp_dir().join(format!("m2mfuzz-board-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("corpus"))?;
    crate::say!("m2m_vim2m under qemu-aarch64-static: no node, then /dev/null as the node");
    let none = Command::new("qemu-aarch64-static")
        .arg(&fbin)
        .args(["-runs=10"])
        .arg(&tmp)
        .env_remove("M2MFUZZ_NODE_VIM2M")
        .output()?;
    let text =
        String::from_utf8_lossy(&none.stderr).into_owned() + &String::from_utf8_lossy(&none.stdout);
    if none.status.code() != Some(2) || !text.contains("no vim2m node") {
        bail!(
            "m2m_vim2m without a node: {}, expected exit 2 and 'no vim2m node':\n{}",
            none.status,
            cmd::tail(&text, 3)
        );
    }
    // New inputs go to a scratch corpus, not the committed seeds.
    let null = Command::new("qemu-aarch64-static")
        .arg(&fbin)
        .arg("-runs=40")
        .arg(format!("-artifact_prefix={}/", tmp.display()))
        .arg(tmp.join("corpus"))
        .arg(lab.repo.join("fuzz/seeds/m2m_vim2m"))
        .env("M2MFUZZ_NODE_VIM2M", "/dev/null")
        .output()?;
    let text =
        String::from_utf8_lossy(&null.stderr).into_owned() + &String::from_utf8_lossy(&null.stdout);
    let _ = std::fs::remove_dir_all(&tmp);
    if !null.status.success() || !text.lines().any(|l| l.starts_with("Done 40 runs")) {
        bail!(
            "m2m_vim2m on /dev/null: {}, expected exit 0 and 'Done 40 runs':\n{}",
            null.status,
            cmd::tail(&text, 5)
        );
    }
    if let Some(l) = text
        .lines()
        .find(|l| l.starts_with('#') && l.contains("DONE"))
    {
        crate::say!("m2m_vim2m: {l}");
    }
    Ok(())
}
