//! The lab initramfs: busybox, ci/lab/init, and (x86_64) v4l2-compliance with its libraries.
//! Project binaries are not in it: each boot passes them through the 9p share. Not compressed:
//! under TCG the kernel took 4-5 s to gunzip it; a plain cpio of about 9 MB unpacks in 0.3 s.
use crate::arch::Arch;
use crate::lab::{Key, Lab};
use crate::{apt, cmd};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Build the image (or find it cached); returns its path.
pub fn build(lab: &Lab) -> Result<PathBuf> {
    apt::need(&["cpio"])?;
    // (host path, path in the image)
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    let applets: Vec<String> = match lab.arch {
        Arch::X86_64 => {
            apt::need(&["busybox-static", "v4l-utils"])?;
            for b in [
                "/bin/busybox",
                "/usr/bin/v4l2-compliance",
                "/usr/bin/v4l2-ctl",
            ] {
                files.push((b.into(), b.into()));
            }
            for b in ["/usr/bin/v4l2-compliance", "/usr/bin/v4l2-ctl"] {
                for l in libraries(Path::new(b))? {
                    files.push((l.clone(), l));
                }
            }
            list(Command::new("/bin/busybox").arg("--list"))?
        }
        Arch::Arm64 => {
            // busybox-static of another architecture cannot be installed beside the host's
            // (they conflict): its package is unpacked into the cache. No v4l2-compliance here
            // (it would need v4l-utils' C++ libraries for arm64): compliance is x86_64's.
            apt::need_aarch64_rust()?;
            let bb = arm64_busybox(lab)?;
            files.push((bb.clone(), "/bin/busybox".into()));
            list(Command::new("qemu-aarch64-static").arg(&bb).arg("--list"))?
        }
    };
    let init = lab.file("init");
    let mut key = Key::default();
    key.text(lab.arch.kernel_arch())
        .file(&init)?
        .text(include_str!("initramfs.rs"));
    for (src, dst) in &files {
        key.text(&format!("{}={}", src.display(), dst.display()))
            .file(src)?;
    }
    let img = lab
        .cache
        .join(format!("initramfs{}-{}.cpio", lab.arch.suffix(), key.hex()));
    if img.exists() {
        return Ok(img);
    }
    let root = lab
        .cache
        .join(format!("initramfs-root.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let made = (|| -> Result<()> {
        for d in [
            "bin", "sbin", "usr/bin", "etc", "proc", "sys", "dev", "tmp", "host", "lib", "lib64",
        ] {
            std::fs::create_dir_all(root.join(d))?;
        }
        for (src, dst) in &files {
            let to = root.join(dst.strip_prefix("/").unwrap_or(dst));
            std::fs::create_dir_all(to.parent().unwrap())?;
            // Follows symlinks (Debian's merged /usr: libraries are looked up under /lib).
            std::fs::copy(src, &to).with_context(|| format!("copy {}", src.display()))?;
        }
        // The applet links are made here, not by `busybox --install` in the guest (about 400
        // symlink calls at every boot under TCG).
        for a in &applets {
            let l = root.join("bin").join(a);
            if !l.exists() {
                std::os::unix::fs::symlink("busybox", l)?;
            }
        }
        std::fs::copy(&init, root.join("init"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755))?;
        let list = cmd::output(Command::new("find").arg(".").current_dir(&root))?;
        let out = std::fs::File::create(img.with_extension("tmp"))?;
        let mut c = Command::new("cpio")
            .args(["-o", "-H", "newc", "--quiet"])
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(out)
            .spawn()?;
        use std::io::Write;
        c.stdin.take().unwrap().write_all(list.as_bytes())?;
        anyhow::ensure!(c.wait()?.success(), "cpio failed");
        std::fs::rename(img.with_extension("tmp"), &img)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&root);
    made.context("building the lab initramfs")?;
    crate::say!("initramfs: {}", img.display());
    Ok(img)
}

/// The libraries `ldd` says a binary loads (the loader too).
fn libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let text = cmd::output(Command::new("ldd").arg(bin))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once("=>") {
                Some((_, r)) => r.split_whitespace().next(),
                None => l.split_whitespace().next(),
            }
        })
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// busybox's applet names.
fn list(c: &mut Command) -> Result<Vec<String>> {
    Ok(cmd::output(c)?
        .lines()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .collect())
}

/// busybox-static:arm64, unpacked into the cache once.
fn arm64_busybox(lab: &Lab) -> Result<PathBuf> {
    let bb = lab.cache.join("busybox-arm64");
    let bin = bb.join("bin/busybox");
    if bin.exists() {
        return Ok(bin);
    }
    crate::say!("fetching busybox-static:arm64");
    let tmp = lab.cache.join("busybox-arm64.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    cmd::logged(
        Command::new("apt-get")
            .args(["download", "-q", "busybox-static:arm64"])
            .current_dir(&tmp),
        &lab.cache.join("busybox-download.log"),
    )
    .context(
        "apt-get download busybox-static:arm64 (dpkg --add-architecture arm64; apt-get update)",
    )?;
    let deb = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("no busybox-static .deb downloaded")?;
    cmd::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(tmp.join("root")),
    )?;
    let _ = std::fs::remove_dir_all(&bb);
    std::fs::rename(tmp.join("root"), &bb)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(bin)
}
