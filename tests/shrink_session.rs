//! Shrink sessions on the host: what a stress finding directory becomes (the order the
//! starting points are tried in) and a state that survives a save and load.
use m2mfuzz::shrink::session::State;
use std::path::Path;

const A: &str = "# m2mfuzz program v1\n# driver: vim2m\n# worker: 0\nopen node=vim2m -> c0\nreqbufs c0 queue=out count=1 memory=mmap\nstreamon c0 queue=out\n";
const B: &str = "# m2mfuzz program v1\n# driver: vim2m\n# worker: 1\nopen node=vim2m -> c0\nstreamon c0 queue=cap\n";

fn finding_dir(name: &str, workers: &[&str]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("m2mfuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("programs")).unwrap();
    let meta = serde_json::json!({
        "kind": "splat", "title": "possible circular locking dependency in f",
        "signature": "splat: possible circular locking dependency in f",
        "under_test": true, "first_seen_s": 1.0, "epoch": 0, "hits": 1,
        "worker": null, "program": null, "op": null,
        "switches": ["videobuf2_common.rf_fault=8"], "epoch_programs": []
    });
    std::fs::write(dir.join("finding.json"), meta.to_string()).unwrap();
    let serial = format!(
        "# m2mfuzz program v1\n# driver: vim2m\n# switch: videobuf2_common.rf_fault=8\n{}{}",
        "open node=vim2m -> c0\nreqbufs c0 queue=out count=1 memory=mmap\nstreamon c0 queue=out\n",
        "open node=vim2m -> c1\nstreamon c1 queue=cap\n"
    );
    std::fs::write(dir.join("program.m2m"), serial).unwrap();
    for (i, w) in workers.iter().enumerate() {
        std::fs::write(dir.join(format!("programs/w{i}-p1.m2m")), w).unwrap();
    }
    dir
}

fn ops(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

#[test]
fn a_finding_is_tried_alone_shortest_first_then_serialized_then_concurrently() {
    let dir = finding_dir("session", &[A, B]);
    let st = State::new(&dir, &[], None).unwrap();
    assert_eq!(st.switches, "videobuf2_common.rf_fault=8");
    assert!(st.lockdep_target());
    assert_eq!(st.target.len(), 1);
    let shape: Vec<(usize, usize)> = st
        .subjects
        .iter()
        .map(|s| (s.len(), s.iter().map(|t| ops(t)).sum()))
        .collect();
    // B alone (2 ops), A alone (3), serialized (5), both concurrently (5).
    assert_eq!(shape, [(1, 2), (1, 3), (1, 5), (2, 5)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_single_worker_finding_is_its_program_and_a_state_round_trips() {
    let dir = finding_dir("session1", &[A]);
    let mut st = State::new(&dir, &[], Some(Path::new("out.m2m").into())).unwrap();
    assert_eq!(
        st.subjects.len(),
        1,
        "one worker: the serialized program only"
    );
    st.answers.insert("00ff".into(), true);
    st.runs = 4;
    let f = dir.join("state.json");
    st.save(&f).unwrap();
    let back = State::load(&f).unwrap();
    assert_eq!(back.answers.get("00ff"), Some(&true));
    assert_eq!(back.runs, 4);
    assert_eq!(back.subjects, st.subjects);
    assert!(State::new(&dir.join("nothing"), &[], None).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
