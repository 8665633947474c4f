//! Fuzz targets built as static binaries a guest (or a board) runs: libFuzzer compiled from
//! libfuzzer-sys's own sources without its interceptors (cached by content key), and the target
//! built with `cargo fuzz`'s flags but no sanitizer, for the lab's architecture.
use crate::lab::{Key, Lab};
use crate::{apt, cmd, guest_bins};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `cargo fuzz build -s none` gives rustc (cargo-fuzz 0.13.2, release, a Linux target):
/// SanitizerCoverage for libFuzzer (inline 8-bit counters, PC table, comparisons, stack depth),
/// no sanitizer, `--cfg fuzzing`, debug assertions (so overflow checks), one codegen unit; with
/// `--release --config profile.release.debug="line-tables-only"` as below, the same rustc
/// command lines (a `cargo fuzz build` of the same target finds every unit fresh). Passed to
/// cargo directly so the build works for either architecture: cargo fuzz runs whatever `cargo`
/// is first on PATH, rustup's, which has no aarch64 std here.
pub const FUZZ_RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Ccodegen-units=1";

/// libFuzzer as a static library for the lab's architecture, without FuzzerInterceptors.cpp:
/// its memcmp/strcmp interceptors find the real functions with dlsym(RTLD_NEXT), which a static
/// binary does not have (they jump to address 0); without a sanitizer they only fed value
/// profiles. Cached under the SHA-256 of the sources (the shell lab's key: board-build.sh
/// shares the entry). Returns the library's path.
pub fn static_libfuzzer(lab: &Lab) -> Result<PathBuf> {
    let src = libfuzzer_sources(lab)?;
    let mut cpps: Vec<PathBuf> = std::fs::read_dir(&src)
        .with_context(|| format!("read {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cpp"))
        .collect();
    // The shell's `cat *.cpp` order: sorted by name.
    cpps.sort();
    let mut key = Key::default();
    for c in &cpps {
        key.file(c)?;
    }
    let dir = lab.cache.join(format!(
        "libfuzzer-static{}-{}",
        lab.arch.suffix(),
        key.hex()
    ));
    let lib = dir.join("libfuzzer.a");
    if lib.exists() {
        return Ok(lib);
    }
    let (cxx, ar, pkgs) = lab.arch.cxx();
    apt::need(pkgs)?;
    crate::say!("building libFuzzer without interceptors (static binaries, {cxx})");
    let tmp = lab
        .cache
        .join(format!("libfuzzer-build.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let units: Vec<&PathBuf> = cpps
        .iter()
        .filter(|c| c.file_name().is_some_and(|n| n != "FuzzerInterceptors.cpp"))
        .collect();
    let mut objs = Vec::new();
    // Two compilers at a time: the machine has two cores.
    for pair in units.chunks(2) {
        let mut running = Vec::new();
        for c in pair {
            let obj = tmp.join(c.file_stem().unwrap()).with_extension("o");
            let mut command = Command::new(cxx);
            command
                .args([
                    "-c",
                    "-O2",
                    "-g",
                    "-std=c++17",
                    "-fno-omit-frame-pointer",
                    "-w",
                ])
                .arg(c)
                .arg("-o")
                .arg(&obj);
            let child = command
                .spawn()
                .with_context(|| format!("cannot start {}", cmd::show(&command)))?;
            running.push((command, child));
            objs.push(obj);
        }
        for (command, mut child) in running {
            let st = child.wait()?;
            if !st.success() {
                bail!("compiling libFuzzer failed: {} ({st})", cmd::show(&command));
            }
        }
    }
    std::fs::create_dir_all(&dir)?;
    let part = dir.join("libfuzzer.a.tmp");
    let _ = std::fs::remove_file(&part);
    cmd::run(Command::new(ar).arg("rcs").arg(&part).args(&objs))?;
    std::fs::rename(&part, &lib)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(lib)
}

/// libfuzzer-sys's `libfuzzer/` directory, from the fuzz crate's locked dependencies.
fn libfuzzer_sources(lab: &Lab) -> Result<PathBuf> {
    let json = cmd::output(
        Command::new("cargo")
            .current_dir(lab.repo.join("fuzz"))
            .args(["metadata", "--locked", "--format-version", "1"]),
    )?;
    let manifest = manifest_of(&json, "libfuzzer-sys")
        .context("libfuzzer-sys is not a dependency of fuzz/ (cargo metadata)")?;
    let src = manifest
        .parent()
        .context("libfuzzer-sys manifest path")?
        .join("libfuzzer");
    if !src.is_dir() {
        bail!("libfuzzer-sys sources not found at {}", src.display());
    }
    Ok(src)
}

/// The manifest path of package `name` in `cargo metadata`'s JSON.
fn manifest_of(json: &str, name: &str) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["manifest_path"].as_str())
        .map(PathBuf::from)
}

/// Build fuzz target `target` for the lab's architecture as a static binary (aarch64: Debian's
/// Rust, see [`guest_bins::cargo`]): fuzz/target/TRIPLE/release/TARGET, copied to `dest`/bin
/// when given. Returns the built binary's path.
pub fn build_target(lab: &Lab, target: &str, dest: Option<&Path>) -> Result<PathBuf> {
    let lib = static_libfuzzer(lab)?;
    let triple = lab.arch.rust_target();
    crate::say!("building fuzz target {target} for {triple} (static, no sanitizer)");
    // RUSTFLAGS replaces the per-target flags of guest_bins::cargo and, as --target is given,
    // applies to the target only, not to build scripts. Static: static-pie on x86_64, non-PIE
    // on aarch64.
    cmd::run(
        guest_bins::cargo(lab, "build")?
            .env(
                "RUSTFLAGS",
                format!("{FUZZ_RUSTFLAGS} -C target-feature=+crt-static"),
            )
            .env("CUSTOM_LIBFUZZER_PATH", &lib)
            .args([
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--release",
                "--locked",
            ])
            .args(["--config", "profile.release.debug=\"line-tables-only\""])
            .args(["--bin", target])
            .stdout(Stdio::null()),
    )
    .with_context(|| format!("building fuzz target {target} for {triple} failed"))?;
    let bin = lab
        .repo
        .join("fuzz/target")
        .join(triple)
        .join("release")
        .join(target);
    static_for(&bin, lab.arch)?;
    if let Some(d) = dest {
        std::fs::create_dir_all(d.join("bin"))?;
        std::fs::copy(&bin, d.join("bin").join(target))
            .with_context(|| format!("copy {}", bin.display()))?;
    }
    Ok(bin)
}

/// Fail unless `bin` is a static executable for `arch` (the guest's and the board's binaries
/// run where there is no dynamic loader).
pub fn static_for(bin: &Path, arch: crate::arch::Arch) -> Result<()> {
    let elf = std::fs::read(bin).with_context(|| format!("read {}", bin.display()))?;
    // e_machine: EM_X86_64 62, EM_AARCH64 183.
    let want: u16 = match arch {
        crate::arch::Arch::X86_64 => 62,
        crate::arch::Arch::Arm64 => 183,
    };
    let machine = elf
        .get(0x12..0x14)
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    match (is_static(&elf), machine) {
        (Some(true), Some(m)) if m == want => Ok(()),
        (Some(true), m) => bail!(
            "{} is not an {arch:?} executable (e_machine {m:?})",
            bin.display()
        ),
        (Some(false), _) => bail!(
            "{} is not static: it names a program interpreter",
            bin.display()
        ),
        (None, _) => bail!("{} is not a 64-bit little-endian ELF file", bin.display()),
    }
}

/// Whether a 64-bit little-endian ELF file (x86_64 and aarch64 both) is statically linked: it
/// has no PT_INTERP program header (a static-pie binary has PT_DYNAMIC but no interpreter, and
/// runs in the busybox initramfs, which has no dynamic loader). None when not such an ELF file.
fn is_static(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().ok()?) as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian header with program headers of these types.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn an_interpreter_makes_a_binary_dynamic() {
        // PT_LOAD, PT_DYNAMIC: static-pie; with PT_INTERP: dynamic.
        assert_eq!(is_static(&elf(&[1, 2])), Some(true));
        assert_eq!(is_static(&elf(&[6, 3, 1])), Some(false));
        assert_eq!(is_static(b"#!/bin/sh\n"), None);
        // This test binary is linked dynamically.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(is_static(&me), Some(false));
    }

    #[test]
    fn the_libfuzzer_manifest_is_found_in_cargo_metadata() {
        let json = r#"{"packages":[{"name":"libc","manifest_path":"/r/libc-0.2/Cargo.toml"},
            {"name":"libfuzzer-sys","manifest_path":"/r/libfuzzer-sys-0.4.13/Cargo.toml"}]}"#;
        assert_eq!(
            manifest_of(json, "libfuzzer-sys"),
            Some(PathBuf::from("/r/libfuzzer-sys-0.4.13/Cargo.toml"))
        );
        assert_eq!(manifest_of(json, "arbitrary"), None);
    }
}
