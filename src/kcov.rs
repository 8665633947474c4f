//! Kernel coverage from KCOV (`/sys/kernel/debug/kcov`): the PCs the kernel executed for one
//! thread's syscalls (`KCOV_ENABLE`), plus the PCs of deferred m2m work that kworkers ran on that
//! process's behalf (`KCOV_REMOTE_ENABLE` with a common handle; the lab kernel's patch 0004 opens
//! those remote sections in v4l2-mem2mem's job_work and vim2m's device_work).
//!
//! A task can hold one KCOV at a time and a remote-enabled task collects nothing itself, so the
//! shape is: the long-lived dispatching thread enables remote coverage (its handle is inherited
//! by threads it spawns afterwards); each executor thread enables per-thread coverage on a shared
//! area (freed again when that thread exits).
use crate::uapi::ioctl::raw;
use crate::uapi::kcov::*;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the kernel exposes KCOV.
pub const PATH: &str = "/sys/kernel/debug/kcov";

/// One KCOV file and its mapped buffer: word 0 is the count, PCs follow.
pub struct Area {
    file: File,
    map: memmap2::MmapRaw,
    words: usize,
}

// SAFETY: the mapping is only read through atomics/volatile loads and word 0 is reset with an
// atomic store; the kernel is the only other writer.
unsafe impl Sync for Area {}
// SAFETY: as above; the mapping is not tied to a thread.
unsafe impl Send for Area {}

impl Area {
    /// Open KCOV with room for `words` PCs.
    pub fn open(words: usize) -> Result<Area> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(PATH)
            .with_context(|| {
                format!("open {PATH} (needs CONFIG_KCOV and debugfs mounted, as root)")
            })?;
        // SAFETY: KCOV_INIT_TRACE takes the buffer size in words by value.
        unsafe { raw(file.as_raw_fd(), KCOV_INIT_TRACE, words) }.context("KCOV_INIT_TRACE")?;
        let map = memmap2::MmapOptions::new()
            .len(words * 8)
            .map_raw(&file)
            .context("mmap the KCOV buffer")?;
        Ok(Area { file, map, words })
    }

    fn count_word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is at least one aligned u64 long and lives as long as `self`.
        unsafe { &*(self.map.as_mut_ptr() as *const AtomicU64) }
    }

    /// Collect the calling thread's syscall coverage into this area until the thread exits.
    pub fn enable_this_thread(&self) -> Result<()> {
        // SAFETY: KCOV_ENABLE takes the trace mode by value.
        unsafe { raw(self.file.as_raw_fd(), KCOV_ENABLE, KCOV_TRACE_PC as usize) }
            .context("KCOV_ENABLE")?;
        Ok(())
    }

    /// Collect remote coverage for `handle` (and, through inheritance, for the threads this one
    /// spawns afterwards) into this area. The calling thread's own syscalls are then not covered.
    pub fn enable_remote(&self, handle: u64) -> Result<()> {
        let mut arg = kcov_remote_arg {
            trace_mode: KCOV_TRACE_PC,
            area_size: self.words as u32,
            num_handles: 0,
            _pad: 0,
            common_handle: handle,
        };
        // SAFETY: `arg` is a live kcov_remote_arg with no trailing handles (num_handles 0).
        unsafe {
            raw(
                self.file.as_raw_fd(),
                KCOV_REMOTE_ENABLE,
                &mut arg as *mut kcov_remote_arg as usize,
            )
        }
        .context("KCOV_REMOTE_ENABLE")?;
        Ok(())
    }

    /// Forget what was collected so far.
    pub fn reset(&self) {
        self.count_word().store(0, Ordering::SeqCst);
    }

    /// The PCs collected since the last reset.
    pub fn pcs(&self) -> Vec<u64> {
        let n = (self.count_word().load(Ordering::SeqCst) as usize).min(self.words - 1);
        let base = self.map.as_mut_ptr() as *const u64;
        // SAFETY: 1..=n is inside the mapping; volatile because the kernel writes it.
        (1..=n)
            .map(|i| unsafe { std::ptr::read_volatile(base.add(i)) })
            .collect()
    }
}

/// A common remote handle unique to this process (the kernel refuses duplicates).
pub fn common_handle() -> u64 {
    // Subsystem in the top byte (COMMON is 0), a non-zero 32-bit instance in the low word, and
    // nothing in between (kcov_check_handle): the pid is unique and never 0.
    KCOV_SUBSYSTEM_COMMON | u64::from(std::process::id())
}

/// Edges of a PC trace, hashed: each (previous PC, PC) pair.
pub fn edges(pcs: &[u64]) -> impl Iterator<Item = u64> + '_ {
    let mut prev = 0u64;
    pcs.iter().map(move |&pc| {
        let e = (prev.rotate_left(1) ^ pc).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        prev = pc;
        e
    })
}
