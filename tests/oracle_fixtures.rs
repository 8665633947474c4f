//! The oracles' parsers against real lab output (tests/fixtures/lab, captured by ci/lab/faults.sh
//! and the lab runner): one report class per fault switch, plus a report from an unrelated
//! subsystem that must be attributed elsewhere, and a clean control boot.
use m2mfuzz::oracle::hang::vb2_fences;
use m2mfuzz::oracle::ledger::{stable_timeline, Ledger};
use m2mfuzz::oracle::splat::{self, SplatClass, UnderTest};
use std::path::Path;

fn fixture(name: &str, file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lab")
        .join(name)
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn splats(name: &str) -> Vec<splat::Splat> {
    splat::parse(&fixture(name, "console.log"), &UnderTest::default())
}

#[test]
fn lockdep_circular_dependencies_are_titled_by_the_publishing_function() {
    for name in [
        "alloc-in-section",
        "mutex-in-section",
        "section-before-resv-lock",
    ] {
        let s = splats(name);
        assert_eq!(
            s.len(),
            1,
            "{name}: {:#?}",
            s.iter().map(|s| &s.title).collect::<Vec<_>>()
        );
        assert_eq!(s[0].class, SplatClass::CircularLocking, "{name}");
        assert_eq!(
            s[0].title, "possible circular locking dependency in vb2_buffer_attach_release_fence",
            "{name}"
        );
        assert!(s[0].under_test, "{name}: {}", s[0].attribution);
        assert!(
            s[0].text.contains("*** DEADLOCK ***"),
            "{name}: the whole report is kept"
        );
    }
}

#[test]
fn lock_pairs_tell_the_three_lockdep_faults_apart() {
    let pair = |name: &str| {
        let t = &splats(name)[0].text;
        let after = |m: &str| {
            let mut l = t.lines().skip_while(|l| !l.contains(m));
            l.nth(1)
                .unwrap()
                .split_once('(')
                .unwrap()
                .1
                .split_once(')')
                .unwrap()
                .0
                .to_string()
        };
        (after("already holding lock"), after("is trying to acquire"))
    };
    assert_eq!(
        pair("alloc-in-section"),
        ("dma_fence_map".into(), "fs_reclaim".into())
    );
    assert_eq!(pair("mutex-in-section").0, "dma_fence_map");
    assert!(
        pair("mutex-in-section").1.contains("rf_fi_mutex"),
        "{:?}",
        pair("mutex-in-section")
    );
    assert_eq!(
        pair("section-before-resv-lock").1,
        "reservation_ww_class_mutex"
    );
}

#[test]
fn attach_under_spinlock_gives_sleep_in_atomic_and_invalid_wait_context() {
    let s = splats("attach-under-spinlock");
    let titles: Vec<&str> = s.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "sleeping function called from invalid context in vb2_buffer_attach_release_fence",
            "invalid wait context in vb2_buffer_attach_release_fence",
        ]
    );
    assert_eq!(s[0].class, SplatClass::SleepInAtomic);
    assert_eq!(s[1].class, SplatClass::InvalidWaitContext);
    assert!(s.iter().all(|s| s.under_test));
}

/// The same fault in the arm64 lab: its call traces begin with `dump_backtrace` and
/// `show_stack`, and end in the `el0t_64_sync` entry, none of which may title the report.
#[test]
fn arm64_call_traces_are_titled_by_the_same_function() {
    let s = splats("arm64-attach-under-spinlock");
    let sleep: Vec<&splat::Splat> = s
        .iter()
        .filter(|s| s.class == SplatClass::SleepInAtomic)
        .collect();
    assert!(
        !sleep.is_empty(),
        "{:#?}",
        s.iter().map(|s| &s.title).collect::<Vec<_>>()
    );
    for s in sleep {
        assert_eq!(
            s.title,
            "sleeping function called from invalid context in vb2_buffer_attach_release_fence"
        );
        assert!(s.under_test, "{}", s.attribution);
        assert!(
            s.text.contains("dump_backtrace"),
            "the arm64 trace is kept whole"
        );
    }
}

#[test]
fn hang_and_leak_programs_and_the_control_boot_have_no_splat() {
    for name in [
        "v1-shape",
        "publish-held",
        "no-signal-on-error",
        "no-signal-on-cancel",
        "control",
    ] {
        let s = splats(name);
        assert!(
            s.is_empty(),
            "{name}: {:?}",
            s.iter().map(|s| &s.title).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_report_from_another_subsystem_is_attributed_elsewhere() {
    let s = splats("elsewhere-lkdtm-warning");
    assert_eq!(
        s.len(),
        1,
        "{:?}",
        s.iter().map(|s| &s.title).collect::<Vec<_>>()
    );
    assert_eq!(s[0].class, SplatClass::Warning);
    assert!(
        s[0].title.starts_with("WARNING in lkdtm_"),
        "{}",
        s[0].title
    );
    assert!(!s[0].under_test, "{}", s[0].attribution);
}

fn ledger(name: &str) -> Ledger {
    let mut l = Ledger::default();
    l.add_text(&fixture(name, "trace.txt"));
    l
}

#[test]
fn the_ledger_finds_fences_published_and_never_signalled() {
    for name in ["no-signal-on-error", "no-signal-on-cancel"] {
        let l = ledger(name);
        let abandoned: Vec<_> = l.abandoned().collect();
        assert_eq!(abandoned.len(), 1, "{name}: {:?}", l.fences);
        assert_eq!(abandoned[0].driver, "vb2");
        assert_eq!(stable_timeline(&abandoned[0].timeline), "vim2m-cap");
        assert_eq!(
            l.unsignalled().count(),
            0,
            "{name}: destroyed once the program closed its fds"
        );
    }
}

#[test]
fn the_ledger_is_clean_when_fences_signal() {
    // v1 shape: the fence hangs while the program runs, but the queue cancel at close signals it.
    for name in [
        "v1-shape",
        "publish-held",
        "alloc-in-section",
        "attach-under-spinlock",
    ] {
        let l = ledger(name);
        assert!(
            l.count("dma_fence_emit") >= 1,
            "{name}: a fence was published"
        );
        assert_eq!(
            l.abandoned().count() + l.unsignalled().count() + l.undestroyed().count(),
            0,
            "{name}: {:?}",
            l.fences
        );
        assert_eq!(
            l.other_alive().count(),
            0,
            "{name}: every other fence is freed once the program closed its fds"
        );
    }
}

#[test]
fn hung_waits_name_the_pending_vb2_fence() {
    for (name, timeline) in [("v1-shape", "vim2m-cap"), ("publish-held", "visl-cap")] {
        let text = fixture(name, "run.jsonl");
        let wait: serde_json::Value = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["op"].as_str().unwrap().starts_with("wait "))
            .unwrap();
        assert_eq!(wait["result"]["result"], "timed_out", "{name}");
        let fences = vb2_fences(wait["detail"].as_str().unwrap());
        assert_eq!(fences.len(), 1, "{name}");
        assert_eq!(stable_timeline(&fences[0].0), timeline);
        assert_eq!(fences[0].1, 0, "pending");
    }
}

#[test]
fn bug_oops_hung_task_soft_lockup_and_rcu_stall_are_classified_and_titled() {
    let titles = |name: &str| -> Vec<(SplatClass, String, bool)> {
        splats(name)
            .into_iter()
            .map(|s| (s.class, s.title, s.under_test))
            .collect()
    };
    assert_eq!(
        titles("elsewhere-lkdtm-bug"),
        [(SplatClass::Bug, "kernel BUG in lkdtm_BUG".into(), false)]
    );
    assert_eq!(
        titles("elsewhere-lkdtm-exception"),
        [(
            SplatClass::Bug,
            "BUG: kernel NULL pointer dereference in lkdtm_EXCEPTION".into(),
            false
        )]
    );
    // The detector reports again after each timeout period.
    assert_eq!(
        titles("elsewhere-lkdtm-hung-task"),
        vec![
            (
                SplatClass::HungTask,
                "hung task in lkdtm_HUNG_TASK".to_string(),
                false
            );
            2
        ]
    );
    assert_eq!(
        titles("elsewhere-lkdtm-softlockup"),
        [
            (
                SplatClass::RcuStall,
                "RCU stall in lkdtm_SOFTLOCKUP".into(),
                false
            ),
            (
                SplatClass::SoftLockup,
                "soft lockup in lkdtm_SOFTLOCKUP".into(),
                false
            ),
        ]
    );
    // The Oops line after a BUG header belongs to the same report.
    assert!(splats("elsewhere-lkdtm-bug")[0]
        .text
        .contains("Oops: invalid opcode"));
}
