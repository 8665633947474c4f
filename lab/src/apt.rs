//! Debian packages the lab needs, installed when missing (the lab runs on a fresh Debian 12
//! machine as root, as CI does).
use crate::cmd;
use anyhow::{bail, Result};
use std::process::Command;

/// Is the package installed?
pub fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Install the packages that are missing; nothing when all are there.
pub fn need(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::say!("installing {}", missing.join(" "));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "need root to apt-get install {} (or install them yourself)",
            missing.join(" ")
        );
    }
    // Wait for another apt/dpkg (a second lab run, unattended upgrades) instead of failing.
    let lock = ["-o", "DPkg::Lock::Timeout=600"];
    cmd::output(Command::new("apt-get").args(lock).args(["update", "-qq"]))?;
    cmd::output(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(lock)
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )?;
    Ok(())
}

/// Debian's Rust with an aarch64 std, the cross gcc and qemu-user (the arm64 lab's binaries:
/// rustup has no aarch64 std here and cannot download one).
pub fn need_aarch64_rust() -> Result<()> {
    let foreign = cmd::output(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    if !foreign.lines().any(|l| l == "arm64") {
        crate::say!("adding the arm64 dpkg architecture (for libstd-rust-web-dev:arm64)");
        cmd::run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
        cmd::output(Command::new("apt-get").args(["update", "-qq"]))?;
    }
    need(&[
        "rustc-web",
        "cargo-web",
        "libstd-rust-web-dev:arm64",
        "gcc-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
        "qemu-user-static",
    ])?;
    if !std::path::Path::new("/usr/bin/cargo").exists()
        || !std::path::Path::new("/usr/bin/rustc").exists()
    {
        bail!("/usr/bin/cargo or /usr/bin/rustc missing after installing cargo-web rustc-web");
    }
    Ok(())
}
