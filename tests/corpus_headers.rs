//! Corpus files: expectations and switches are read strictly, with messages that say what to write.
use m2mfuzz::corpus::{self, Expect};
use std::path::PathBuf;

fn write(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m2mfuzz-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("# m2mfuzz program v1\n{body}open node=vim2m -> c0\n"),
    )
    .unwrap();
    p
}

#[test]
fn the_shipped_corpus_loads_and_every_fault_names_a_switch() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpora");
    let entries = corpus::load(&[root]).unwrap();
    assert!(entries.len() >= 10, "{}", entries.len());
    for e in &entries {
        let fault = e.path.components().any(|c| c.as_os_str() == "faults");
        assert_eq!(
            fault,
            !e.switches.is_empty(),
            "{}: faults need a switch, clean programs none",
            e.path.display()
        );
        assert_eq!(fault, e.expect != Expect::Clean, "{}", e.path.display());
    }
    let lockdep = entries.iter().filter(|e| e.needs_lockdep()).count();
    assert_eq!(
        lockdep, 4,
        "three circular dependencies and the spinlock's invalid wait context"
    );
}

#[test]
fn expectations_are_checked_when_loading() {
    let e = corpus::load_file(&write("none.m2m", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no `# expect:` header"), "{e}");
    let e = corpus::load_file(&write("kind.m2m", "# expect: crash: oops\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kind one of hang, leaked-fence, splat, stale-read, bad-reply, memory-fault"),
        "{e}"
    );
    let e = corpus::load_file(&write("both.m2m", "# expect: clean\n# expect: hang: x\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be combined"), "{e}");
    let e = corpus::load_file(&write("sw.m2m", "# expect: clean\n# switch: vim2m\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("module.param=value"), "{e}");
    let ok = corpus::load_file(&write(
        "ok.m2m",
        "# expect: hang: a\n# expect: splat: b\n# switch: vim2m.abort_mode=1\n",
    ))
    .unwrap();
    assert_eq!(
        ok.expect,
        Expect::Findings(["hang: a".to_string(), "splat: b".to_string()].into())
    );
    assert_eq!(ok.switches[0].module, "vim2m");
    assert_eq!(ok.switches[0].param, "abort_mode");
    assert_eq!(ok.switches[0].value, "1");
}

#[test]
fn kernel_command_line_switches_are_the_existing_module_parameters() {
    let root = std::env::temp_dir().join(format!("m2mfuzz-sysmod-{}", std::process::id()));
    for p in [
        "videobuf2_common/parameters/rf_fault",
        "vim2m/parameters/rf_error_every",
    ] {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "0\n").unwrap();
    }
    let cmdline = "console=ttyS0 printk.devkmsg=on videobuf2_common.rf_fault=2 \
                   vim2m.rf_error_every=1 vim2m.nonexistent=3 quiet";
    assert_eq!(
        m2mfuzz::corpus::cmdline_switches(cmdline, &root),
        ["videobuf2_common.rf_fault=2", "vim2m.rf_error_every=1"]
    );
    let _ = std::fs::remove_dir_all(&root);
}
