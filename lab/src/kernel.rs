//! The lab kernel: Debian's linux-source-6.12 + tinyconfig + ci/lab/kernel.config +
//! kernel.ARCH.config + ci/lab/patches, built (cross for arm64) and cached by a content key of
//! all of that and of this recipe. Also installs the 6.12 uapi headers the layout test and the C
//! reproducers compile against (`CACHE/headers[-arm64]`).
use crate::lab::{Key, Lab};
use crate::{apt, cmd};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE_TAR: &str = "/usr/src/linux-source-6.12.tar.xz";

/// A configuration of the lab kernel beside the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    /// The lab kernel: the release fences on.
    #[default]
    Default,
    /// CONFIG_VIDEOBUF2_RELEASE_FENCES=n: the patches must still build without them.
    FencesOff,
}

impl Variant {
    /// Config lines that override the fragments' own for the same option.
    fn overrides(self) -> &'static [&'static str] {
        match self {
            Variant::Default => &[],
            Variant::FencesOff => &["CONFIG_VIDEOBUF2_RELEASE_FENCES=n"],
        }
    }
}

/// Build the kernel (or find it cached); returns the image's path.
pub fn build(lab: &Lab, variant: Variant) -> Result<PathBuf> {
    apt::need(&[
        "linux-source-6.12",
        "bc",
        "flex",
        "bison",
        "libelf-dev",
        "libssl-dev",
        "cpio",
        "make",
        "gcc",
        "xz-utils",
        "rsync",
    ])?;
    if lab.arch.cross_compile().is_some() {
        apt::need(&["gcc-aarch64-linux-gnu"])?;
    }
    let arch = lab.arch.kernel_arch();
    let common = lab.file("kernel.config");
    let arch_cfg = lab.file(&format!("kernel.{arch}.config"));
    if !Path::new(SOURCE_TAR).exists() {
        bail!("{SOURCE_TAR} missing after installing linux-source-6.12");
    }
    let src_ver =
        cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "linux-source-6.12"]))?;
    let patches = patches(lab)?;
    let mut key = Key::default();
    key.text(arch).text(&src_ver);
    for o in variant.overrides() {
        key.text(o);
    }
    key.file(&common)?
        .file(&arch_cfg)?
        .text(include_str!("kernel.rs"));
    for p in &patches {
        key.text(&p.file_name().unwrap_or_default().to_string_lossy())
            .file(p)?;
    }
    let image_name = Path::new(lab.arch.kernel_image())
        .file_name()
        .expect("an image path has a file name");
    let out = lab
        .cache
        .join(format!("kernel{}-{}", lab.arch.suffix(), key.hex()));
    let headers_link = lab.cache.join(format!("headers{}", lab.arch.suffix()));
    let image = out.join(image_name);
    if image.exists() {
        crate::say!("kernel cached: {}", out.display());
        link(&out.join("headers"), &headers_link)?;
        return Ok(image);
    }

    // One working tree per architecture, unpacked again only when the source or the patches
    // change; a config change rebuilds incrementally.
    let tree = lab.cache.join(format!("tree{}", lab.arch.suffix()));
    let mut tk = Key::default();
    tk.text(&src_ver);
    for p in &patches {
        tk.file(p)?;
    }
    let tree_key = tk.hex();
    let stamp = tree.join(".m2mfuzz-tree");
    if std::fs::read_to_string(&stamp).unwrap_or_default().trim() != tree_key {
        crate::say!("unpacking {SOURCE_TAR} ({src_ver})");
        let unpack = lab.cache.join(format!("unpack{}", lab.arch.suffix()));
        let _ = std::fs::remove_dir_all(&tree);
        let _ = std::fs::remove_dir_all(&unpack);
        std::fs::create_dir_all(&unpack)?;
        cmd::run(
            Command::new("tar")
                .arg("-C")
                .arg(&unpack)
                .args(["-xf", SOURCE_TAR]),
        )?;
        std::fs::rename(unpack.join("linux-source-6.12"), &tree)?;
        std::fs::remove_dir(&unpack)?;
        for p in &patches {
            crate::say!(
                "applying {}",
                p.file_name().unwrap_or_default().to_string_lossy()
            );
            let f = std::fs::File::open(p)?;
            let o = Command::new("patch")
                .arg("-d")
                .arg(&tree)
                .args(["-p1", "--forward", "--batch"])
                .stdin(f)
                .output()?;
            if !o.status.success() {
                bail!(
                    "patch {} does not apply to {src_ver}:\n{}",
                    p.display(),
                    String::from_utf8_lossy(&o.stdout)
                );
            }
        }
        std::fs::write(&stamp, &tree_key)?;
    }

    let start = std::time::Instant::now();
    let kmake = |args: &[&str]| {
        let mut c = Command::new("make");
        c.current_dir(&tree).arg("-s").arg(format!("ARCH={arch}"));
        if let Some(x) = lab.arch.cross_compile() {
            c.arg(format!("CROSS_COMPILE={x}"));
        }
        c.args(args);
        c
    };
    cmd::output(&mut kmake(&["tinyconfig"]))?;
    std::fs::copy(tree.join(".config"), tree.join(".config.tiny"))?;
    let fragment = fragment(
        &std::fs::read_to_string(&common)?,
        &std::fs::read_to_string(&arch_cfg)?,
        variant.overrides(),
    );
    std::fs::write(tree.join(".config.fragment"), &fragment)?;
    cmd::output(
        Command::new("./scripts/kconfig/merge_config.sh")
            .current_dir(&tree)
            .env("ARCH", arch)
            .args(["-m", ".config.tiny", ".config.fragment"]),
    )?;
    cmd::output(&mut kmake(&["olddefconfig"]))?;
    // A fragment line that kconfig dropped (a dependency missing) would silently weaken the lab.
    let dropped = dropped_lines(&fragment, &std::fs::read_to_string(tree.join(".config"))?);
    if !dropped.is_empty() {
        bail!(
            "kernel config fragment not satisfied (fix ci/lab/kernel.config): {}",
            dropped.join("; ")
        );
    }
    let log = lab.cache.join(format!("build{}.log", lab.arch.suffix()));
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    crate::say!(
        "building {arch} {} ({jobs} jobs; log {})",
        image_name.to_string_lossy(),
        log.display()
    );
    cmd::logged(
        &mut kmake(&[&format!("-j{jobs}"), &image_name.to_string_lossy()]),
        &log,
    )
    .context("kernel build failed")?;
    let tmp = out.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for f in [lab.arch.kernel_image(), ".config", "System.map"] {
        let from = tree.join(f);
        std::fs::copy(&from, tmp.join(Path::new(f).file_name().unwrap()))
            .with_context(|| format!("copy {}", from.display()))?;
    }
    let hdr = format!("INSTALL_HDR_PATH={}", tmp.join("headers").display());
    cmd::output(&mut kmake(&["headers_install", &hdr]))?;
    let secs = start.elapsed().as_secs();
    std::fs::write(tmp.join("build-seconds"), format!("{secs}\n"))?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out)?;
    link(&out.join("headers"), &headers_link)?;
    crate::say!("kernel built in {secs} s: {}", out.display());
    Ok(image)
}

/// The patches, in order.
fn patches(lab: &Lab) -> Result<Vec<PathBuf>> {
    let dir = lab.file("patches");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    v.sort();
    Ok(v)
}

/// The config fragment: the common and the arch's lines, an override replacing the lines of its
/// option.
fn fragment(common: &str, arch: &str, overrides: &[&str]) -> String {
    let opt = |l: &str| l.split('=').next().unwrap_or("").to_string();
    let over: Vec<String> = overrides.iter().map(|o| opt(o)).collect();
    let mut s = String::new();
    for l in common.lines().chain(arch.lines()) {
        if !over.contains(&opt(l)) || l.starts_with('#') {
            s.push_str(l);
            s.push('\n');
        }
    }
    for o in overrides {
        s.push_str(o);
        s.push('\n');
    }
    s
}

/// The fragment's settings that the final .config does not have.
fn dropped_lines(fragment: &str, config: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for line in fragment.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (opt, val) = line.split_once('=').unwrap_or((line, ""));
        let ok = if val == "n" {
            config
                .lines()
                .any(|l| l == format!("# {opt} is not set") || l == line)
        } else {
            config.lines().any(|l| l == line)
        };
        if !ok {
            let got = config
                .lines()
                .find(|l| l.starts_with(&format!("{opt}=")) || l.starts_with(&format!("# {opt} ")))
                .unwrap_or("absent");
            bad.push(format!("{line} did not stick (got: {got})"));
        }
    }
    bad
}

/// Point `link` at `target` (replacing what it pointed at).
fn link(target: &Path, link: &Path) -> Result<()> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("link {} to {}", link.display(), target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_replaces_its_options_lines_and_keeps_the_rest() {
        let f = fragment(
            "CONFIG_A=y\nCONFIG_VIDEOBUF2_RELEASE_FENCES=y\n",
            "CONFIG_B=y\n",
            Variant::FencesOff.overrides(),
        );
        assert_eq!(
            f,
            "CONFIG_A=y\nCONFIG_B=y\nCONFIG_VIDEOBUF2_RELEASE_FENCES=n\n"
        );
    }

    #[test]
    fn a_setting_kconfig_dropped_is_named_and_one_it_kept_is_not() {
        let frag = "CONFIG_A=y\nCONFIG_B=n\nCONFIG_C=y\n# comment\nCONFIG_D=n\n";
        let cfg = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D=y\n";
        let bad = dropped_lines(frag, cfg);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("CONFIG_C=y did not stick (got: CONFIG_C=m)"));
        assert!(bad[1].starts_with("CONFIG_D=n did not stick (got: CONFIG_D=y)"));
    }
}
