//! `stress --recover` on real lab output (tests/fixtures/lab/double-put*, captured by
//! ci/lab/stress.sh with `videobuf2_common.rf_fault=128`, a release fence put twice): the
//! console's kernel reports the run did not read live become findings of its store, attributed
//! to the programs each worker's last marker names; reports it read live are not stored twice.
use m2mfuzz::oracle::splat::{self, SplatClass, UnderTest};
use m2mfuzz::stress::recover::{pstore_sources, recover_console};
use m2mfuzz::stress::store::FindingMeta;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lab")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// The fixture's run directory in a fresh place, laid out as in the lab share (`out/run`, the
/// profiles beside `out`), so programs not in the journal can be regenerated.
fn scratch_run(name: &str, tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("m2mfuzz-recover-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    copy_dir(&fixture(name).join("run"), &root.join("out/run"));
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("stress-profiles"),
        &root.join("stress-profiles"),
    );
    // The run's own profile, when the check wrote one (the long-epoch wedge).
    if fixture(name).join("stress-profiles").is_dir() {
        copy_dir(
            &fixture(name).join("stress-profiles"),
            &root.join("stress-profiles"),
        );
    }
    root.join("out/run")
}

fn console(name: &str) -> String {
    std::fs::read_to_string(fixture(name).join("console.log")).unwrap()
}

fn findings(run: &Path) -> Vec<(PathBuf, FindingMeta)> {
    let mut v: Vec<_> = std::fs::read_dir(run.join("findings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let m: FindingMeta =
                serde_json::from_str(&std::fs::read_to_string(p.join("finding.json")).unwrap())
                    .unwrap();
            (p, m)
        })
        .collect();
    v.sort_by(|a, b| a.1.first_seen_s.total_cmp(&b.1.first_seen_s));
    v
}

/// Each worker's last `m2mfuzz: worker W program K` before the first console line containing
/// `needle`, as `(W, K)`: what the attribution must say, read straight off the console.
fn last_markers_before(text: &str, needle: &str) -> Vec<(u32, u64)> {
    let mut last = std::collections::BTreeMap::new();
    for l in text.lines() {
        if l.contains(needle) {
            break;
        }
        if let Some(i) = l.find("m2mfuzz: worker ") {
            let w: Vec<&str> = l[i..].split_whitespace().collect();
            last.insert(w[2].parse::<u32>().unwrap(), w[4].parse::<u64>().unwrap());
        }
    }
    last.into_iter().collect()
}

#[test]
fn a_refcount_underflow_is_titled_by_the_caller_that_dropped_the_reference() {
    for name in ["double-put-short-epochs", "double-put", "double-put-live"] {
        let s = splat::parse(&console(name), &UnderTest::default());
        let rc: Vec<_> = s
            .iter()
            .filter(|s| s.class == SplatClass::Refcount)
            .collect();
        assert_eq!(
            rc.len(),
            1,
            "{name}: one refcount report per boot (WARN_ONCE)"
        );
        let r = rc[0];
        // refcount_warn_saturate (RIP, the WARNING line) and dma_fence_put (a frame in this
        // build) are skipped: the caller that put the fence once too often names it.
        assert_eq!(r.title, "refcount bug in dma_resv_list_free", "{name}");
        assert!(r.under_test, "{name}: {}", r.attribution);
        // The message, the WARNING line and the call trace are one report, not two.
        assert!(r.text.starts_with("------------[ cut here ]"), "{name}");
        assert!(r.text.contains("refcount_t: underflow; use-after-free."));
        assert!(r.text.contains("WARNING: CPU:") && r.text.contains("vb2_vmalloc_put"));
        assert!(
            s.iter()
                .all(|s| !s.title.contains("refcount_warn_saturate")),
            "{name}: {:?}",
            s.iter().map(|s| &s.title).collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_wedged_runs_report_is_recovered_from_the_console_with_its_programs() {
    // One long epoch: the report came before any epoch concluded, the run stored nothing.
    let run = scratch_run("double-put", "long");
    assert!(findings(&run).is_empty(), "the run itself stored nothing");
    let text = console("double-put");
    let r = recover_console(&run, &text, "console.log").unwrap();
    let stored = findings(&run);
    let (dir, m) = stored
        .iter()
        .find(|(_, m)| m.title.starts_with("refcount bug in "))
        .unwrap_or_else(|| panic!("{:#?}", r.reports));
    assert_eq!(m.kind, "splat");
    assert_eq!(m.title, "refcount bug in dma_resv_list_free");
    assert_eq!(m.signature, "splat: refcount bug in dma_resv_list_free");
    assert!(m.under_test);
    assert_eq!(m.hits, 1);
    assert_eq!(m.epoch, 0);
    assert_eq!(m.recovered_from.as_deref(), Some("console.log"));
    assert_eq!(m.switches, ["videobuf2_common.rf_fault=128"]);
    // First seen: the report's console time from the run's start marker.
    assert!(
        m.first_seen_s > 0.0 && m.first_seen_s < 60.0,
        "{}",
        m.first_seen_s
    );
    let want = last_markers_before(&text, "refcount_t: underflow");
    assert!(!want.is_empty());
    let got: Vec<(u32, u64)> = m.epoch_programs.iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(got, want);
    // Programs 0 had finished, so the journal no longer holds them: they are regenerated from
    // the run's profile and seed, and must equal what the live run of a short-epoch boot (same
    // seed and generator, `double-put-live`) stored for them.
    let live = fixture("double-put-live")
        .join("run/findings/splat-refcount-bug-in-dma-resv-list-free-8c9407bd/programs");
    assert_eq!(want, [(0, 0), (1, 0)]);
    for (w, k) in &want {
        let name = format!("w{w}-p{k}.m2m");
        let p = std::fs::read_to_string(dir.join("programs").join(&name)).unwrap();
        assert_eq!(
            p,
            std::fs::read_to_string(live.join(&name)).unwrap(),
            "{name}"
        );
    }
    let program = std::fs::read_to_string(dir.join("program.m2m")).unwrap();
    assert!(program.contains("# expect: splat: refcount bug in dma_resv_list_free"));
    assert!(program.contains("# switch: videobuf2_common.rf_fault=128"));
    let evidence = std::fs::read_to_string(dir.join("evidence.txt")).unwrap();
    assert!(evidence.contains("refcount_t: underflow; use-after-free."));
    assert!(evidence.starts_with("recovered from console.log"));
    // The report reads the recovered run like any other.
    let rep = m2mfuzz::report::load(&run).unwrap();
    assert!(rep
        .findings
        .iter()
        .any(|f| f.title == "refcount bug in dma_resv_list_free"));
    // Once only: a second recovery would count the same reports again.
    let again = recover_console(&run, &text, "console.log").unwrap_err();
    assert!(
        format!("{again:#}").contains("already recovered"),
        "{again:#}"
    );
}

#[test]
fn reports_the_run_read_live_are_not_stored_again() {
    // 2 s epochs: epoch 0 concluded and stored the refcount report; then the kernel wedged.
    let run = scratch_run("double-put-short-epochs", "short");
    let before = findings(&run);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1.title, "refcount bug in dma_resv_list_free");
    let text = console("double-put-short-epochs");
    let r = recover_console(&run, &text, "console.log").unwrap();
    let after = findings(&run);
    let rc = after
        .iter()
        .find(|(_, m)| m.title == "refcount bug in dma_resv_list_free")
        .unwrap();
    assert_eq!(
        rc.1.hits, 1,
        "read live before the epoch 0 marker: not counted again"
    );
    assert!(rc.1.recovered_from.is_none());
    // What came after the live reading: the soft lockup of the wedged executor, stored.
    let lockup = after
        .iter()
        .find(|(_, m)| m.title.starts_with("soft lockup in "))
        .unwrap_or_else(|| panic!("{:#?}", r.reports));
    assert!(lockup.1.under_test && lockup.1.recovered_from.is_some());
    let want = last_markers_before(&text, "BUG: soft lockup");
    let got: Vec<(u32, u64)> = lockup.1.epoch_programs.iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(got, want);
    assert!(want.iter().all(|(_, k)| *k == 1), "{want:?}");
    assert_eq!(lockup.1.epoch, 1);
    // The detector reports the same lockup again later: one finding, two hits.
    assert_eq!(
        r.reports
            .iter()
            .filter(|x| x.finding == format!("splat: {}", lockup.1.title))
            .count() as u64,
        lockup.1.hits
    );
    // Reports elsewhere are counted as a live run counts them, in an epochs.jsonl line.
    let rep = m2mfuzz::report::load(&run).unwrap();
    let elsewhere = r.reports.iter().filter(|x| !x.under_test).count() as u64;
    assert!(elsewhere > 0);
    assert_eq!(rep.splats_elsewhere.values().sum::<u64>(), elsewhere);
}

#[test]
fn a_pstore_dump_in_parts_gives_the_same_findings_as_the_console() {
    // kmsg_dump's layout (Part1 the newest text, `<level>` before each line), built from the
    // real console: the same reports must come out.
    let text = console("double-put");
    let dir = std::env::temp_dir().join(format!("m2mfuzz-pstore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lines: Vec<String> = text.lines().map(|l| format!("<4>{l}\n")).collect();
    let chunks: Vec<String> = lines.chunks(200).map(|c| c.concat()).collect();
    let n = chunks.len();
    assert!(n > 1);
    for (i, c) in chunks.iter().enumerate() {
        let part = n - i; // the oldest chunk is the highest part
        std::fs::write(
            dir.join(format!("dmesg-ramoops-{}", i)),
            format!("Panic#1 Part{part}\n{c}"),
        )
        .unwrap();
    }
    std::fs::write(dir.join("dmesg-ramoops-99.enc.z"), b"\x78\x9c").unwrap();
    let (sources, notes) = pstore_sources(&dir).unwrap().unwrap();
    assert_eq!(sources.len(), 1);
    assert!(notes.iter().any(|n| n.contains("compressed")), "{notes:?}");
    let run_a = scratch_run("double-put", "pstore-a");
    let run_b = scratch_run("double-put", "pstore-b");
    let a = recover_console(&run_a, &text, "console.log").unwrap();
    let b = recover_console(&run_b, &sources[0].1, &sources[0].0).unwrap();
    let strip = |r: &m2mfuzz::stress::recover::Recovery| {
        r.reports
            .iter()
            .map(|x| (x.finding.clone(), x.programs.clone(), x.at_s))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(!a.reports.is_empty());
}

/// `strace`'s log of `m2mfuzz stress --recover` storing the wedge's finding: every directory it
/// created or renamed into must be fsynced, or a crash right after can lose the finding's name
/// although its files were synced. The real binary, traced; strace is installed by ci/setup.sh.
#[test]
fn a_recovered_finding_is_fsynced_with_its_directories() {
    let strace = std::process::Command::new("strace").arg("-V").output();
    assert!(
        strace.is_ok_and(|o| o.status.success()),
        "this test traces the binary with strace: apt-get install strace (ci/setup.sh does)"
    );
    let run = scratch_run("double-put", "fsync");
    let log = run.with_extension("strace");
    let status = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_m2mfuzz"))
        .args(["stress", "--recover"])
        .arg(&run)
        .arg("--console")
        .arg(fixture("double-put").join("console.log"))
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "recover stores the finding and says so"
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    // fd → the path it was last opened on, and the paths whose fds were fsynced.
    let mut open = std::collections::BTreeMap::new();
    let mut synced = std::collections::BTreeSet::new();
    for l in trace.lines() {
        let l = l.split_once(' ').map_or(l, |x| x.1).trim();
        if let (Some(path), Some(fd)) = (
            l.strip_prefix("openat(AT_FDCWD, \"")
                .and_then(|r| r.split_once('"'))
                .map(|x| x.0.to_string()),
            l.rsplit_once("= ")
                .and_then(|x| x.1.trim().parse::<i32>().ok()),
        ) {
            open.insert(fd, path);
        } else if let Some(fd) = l
            .strip_prefix("fsync(")
            .or_else(|| l.strip_prefix("fdatasync("))
            .and_then(|r| r.split_once(')'))
            .and_then(|x| x.0.parse::<i32>().ok())
        {
            if let Some(p) = open.get(&fd) {
                synced.insert(p.clone());
            }
        }
    }
    let stored = findings(&run);
    assert!(!stored.is_empty(), "the finding was stored");
    let dir = stored[0].0.clone();
    let tmp = dir.with_file_name(format!(
        ".tmp-{}",
        dir.file_name().unwrap().to_string_lossy()
    ));
    for must in [
        run.join("findings"),
        tmp.clone(),
        tmp.join("programs"),
        // Files are written as NAME.tmp, fsynced, then renamed.
        tmp.join("finding.tmp"),
    ] {
        let want = must.to_string_lossy().to_string();
        assert!(
            synced.contains(&want),
            "{want} was not fsynced; fsynced: {synced:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(run.parent().unwrap().parent().unwrap());
}
