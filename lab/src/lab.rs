//! Where the lab lives: the repository it builds from, its cache (kernels and images by content
//! key, outliving checkouts so CI on one machine reuses them) and the architecture.
use crate::arch::Arch;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The lab of one architecture.
#[derive(Clone, Debug)]
pub struct Lab {
    /// Guest architecture.
    pub arch: Arch,
    /// The m2mfuzz repository.
    pub repo: PathBuf,
    /// `M2MFUZZ_LAB_CACHE`, else `$XDG_CACHE_HOME/m2mfuzz-lab` or `~/.cache/m2mfuzz-lab`.
    pub cache: PathBuf,
}

impl Lab {
    /// The lab for `arch`, its cache created.
    pub fn new(arch: Arch) -> Result<Lab> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("lab/ is inside the repository")
            .to_path_buf();
        let cache = match std::env::var_os("M2MFUZZ_LAB_CACHE") {
            Some(c) => PathBuf::from(c),
            None => match std::env::var_os("XDG_CACHE_HOME") {
                Some(x) => PathBuf::from(x).join("m2mfuzz-lab"),
                None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/m2mfuzz-lab"),
            },
        };
        std::fs::create_dir_all(&cache)
            .with_context(|| format!("create the lab cache {}", cache.display()))?;
        Ok(Lab { arch, repo, cache })
    }

    /// `ci/lab/NAME` in the repository.
    pub fn file(&self, name: &str) -> PathBuf {
        self.repo.join("ci/lab").join(name)
    }

    /// The default output directory of a check: `lab-out/NAME` (and the arch's suffix).
    pub fn out(&self, name: &str) -> PathBuf {
        self.repo
            .join("lab-out")
            .join(format!("{name}{}", self.arch.suffix()))
    }
}

/// A content key: the first 16 hex digits of the SHA-256 of everything fed to it, so a cache
/// entry changes when anything that made it does.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    /// Feed text (a line of it: separated from what follows).
    pub fn text(&mut self, s: &str) -> &mut Key {
        self.0.update(s.as_bytes());
        self.0.update(b"\n");
        self
    }

    /// Feed a file's bytes.
    pub fn file(&mut self, p: &Path) -> Result<&mut Key> {
        let b = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
        self.0.update(&b);
        Ok(self)
    }

    /// The key.
    pub fn hex(&self) -> String {
        let d = self.0.clone().finalize();
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Make `dir` empty: remove what it held, create it. Refuses paths that are not ours to wipe
/// (the root, the home directory, the repository itself).
pub fn fresh_dir(dir: &Path, repo: &Path) -> Result<()> {
    let abs = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if abs.parent().is_none()
        || Some(&abs) == home.as_ref()
        || abs == repo
        || repo.starts_with(&abs)
    {
        anyhow::bail!(
            "refusing to empty {}: give an output directory of its own",
            abs.display()
        );
    }
    if abs.exists() {
        std::fs::remove_dir_all(&abs).with_context(|| format!("remove {}", abs.display()))?;
    }
    std::fs::create_dir_all(&abs).with_context(|| format!("create {}", abs.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_changes_with_what_made_it_and_not_otherwise() {
        let a = Key::default().text("x86_64").text("cfg").hex();
        let b = Key::default().text("x86_64").text("cfg").hex();
        let c = Key::default().text("x86_64").text("cfg2").hex();
        // Line-separated: moving a character across the boundary is a different key.
        let d = Key::default().text("x86_64c").text("fg").hex();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn fresh_dir_refuses_the_repository_and_its_parents() {
        let repo = Lab::new(Arch::X86_64).unwrap().repo;
        assert!(fresh_dir(&repo, &repo).is_err());
        assert!(fresh_dir(repo.parent().unwrap(), &repo).is_err());
        assert!(fresh_dir(Path::new("/"), &repo).is_err());
    }

    #[test]
    fn fresh_dir_empties_a_directory() {
        let repo = Lab::new(Arch::X86_64).unwrap().repo;
        let d = std::env::temp_dir().join(format!("m2mfuzz-lab-fresh-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), "x").unwrap();
        fresh_dir(&d, &repo).unwrap();
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
