//! The report's plots from a synthetic run directory written with the stress engine's own store
//! and epoch types: `m2mfuzz report` draws jobs/s, release-fence latency and findings as PNGs
//! into the run directory and links them from its Markdown; a run with no epoch yet reports
//! without plots.
use m2mfuzz::oracle::ledger::Ledger;
use m2mfuzz::oracle::{Finding, Kind};
use m2mfuzz::program::Program;
use m2mfuzz::report::plot;
use m2mfuzz::stress::store::{FindingMeta, RunDir};
use m2mfuzz::stress::EpochStats;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("m2mfuzz-plots-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Trace text of `n` release fences signalled `ms` to twice that after their emit, the last
/// one five times `ms` after.
fn trace(context: u32, n: u32, start_s: f64, ms: f64) -> String {
    let line = |ts: f64, ev: &str, seqno: u32| {
        format!(
            "     kworker/u8:2-71      [001] ..s1.  {ts:.6}: {ev}: driver=vb2 \
             timeline=vim2m-cap-{context} context={context} seqno={seqno}\n"
        )
    };
    (1..=n)
        .map(|seq| {
            let t = start_s + f64::from(seq) * 0.01;
            let ms = if seq == n {
                5.0 * ms
            } else {
                ms * (1.0 + f64::from(seq % 10) / 9.0)
            };
            ["dma_fence_init", "dma_fence_emit"]
                .iter()
                .map(|ev| line(t, ev, seq))
                .chain([
                    line(t + ms / 1e3, "dma_fence_signaled", seq),
                    line(t + ms / 1e3, "dma_fence_destroy", seq),
                ])
                .collect::<String>()
        })
        .collect()
}

/// A 10-minute run: 60 epochs of 10 s, a slow patch in the middle, three findings.
fn synthetic_run(dir: &Path) -> (Vec<EpochStats>, Vec<FindingMeta>) {
    let store = RunDir::create(
        dir,
        &serde_json::json!({"profile": "synthetic", "seed": 1, "workers": 2}),
    )
    .unwrap();
    let mut epochs = Vec::new();
    for i in 0..60u64 {
        let start_s = i as f64 * 10.0;
        // Slower jobs and later signals in epochs 25..35, as under memory pressure.
        let slow = (25..35).contains(&i);
        let mut ledger = Ledger::default();
        ledger.add_text(&trace(
            i as u32 + 10,
            if slow { 120 } else { 150 },
            start_s,
            if slow {
                30.0 + i as f64
            } else {
                0.8 + (i % 5) as f64 * 0.1
            },
        ));
        let e = EpochStats {
            epoch: i,
            start_s,
            end_s: start_s + 10.0,
            programs: 8,
            ops: 2000,
            frames: if slow { 400 } else { 900 + i * 3 },
            events: ledger.counts.clone(),
            fences_published: ledger.producer_published(),
            fences_signalled: ledger.producer_signalled(),
            fence_latency: ledger.producer_latency(),
            ..Default::default()
        };
        store.epoch(&serde_json::to_value(&e).unwrap()).unwrap();
        epochs.push(e);
    }
    // The final drain: late events, no span of its own.
    let drain = EpochStats {
        epoch: 60,
        final_drain: true,
        start_s: 600.0,
        end_s: 601.0,
        ..Default::default()
    };
    store.epoch(&serde_json::to_value(&drain).unwrap()).unwrap();
    epochs.push(drain);
    let mut findings = Vec::new();
    for (kind, title, at_s, epoch) in [
        (
            Kind::LeakedFence,
            "release fence never signalled on vim2m-cap",
            42.0,
            4,
        ),
        (Kind::Hang, "release fence hang on vim2m-cap", 271.5, 27),
        (Kind::Splat, "WARNING in vb2_buffer_done", 333.0, 33),
    ] {
        let f = Finding::new(kind, title.into(), "evidence".into(), None);
        let meta = FindingMeta {
            kind: kind.name().into(),
            title: title.into(),
            signature: f.signature.clone(),
            first_seen_s: at_s,
            epoch,
            ..Default::default()
        };
        assert!(store
            .finding(&f, meta.clone(), &Program::default(), &[], &[])
            .unwrap());
        findings.push(meta);
    }
    store
        .summary(&serde_json::json!({"seconds": 601.0}))
        .unwrap();
    (epochs, findings)
}

/// Decode a PNG: its size and RGB pixels.
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    let px = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// A plot of the expected size with `colour`'s series drawn on it.
fn check_png(path: &Path, colour: [u8; 3]) {
    let (w, h, px) = decode(path);
    assert_eq!((w, h), (plot::WIDTH, plot::HEIGHT), "{}", path.display());
    let n = px.iter().filter(|p| **p == colour).count();
    assert!(n > 50, "{}: {n} pixels of {colour:?}", path.display());
}

const BLUE: [u8; 3] = [31, 119, 180];
const RED: [u8; 3] = [214, 39, 40];

fn report(args: &[&Path]) -> String {
    report_with_font(args, None)
}

/// `m2mfuzz report`, with `$M2MFUZZ_FONT` set to `font` if given.
fn report_with_font(args: &[&Path], font: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2mfuzz"));
    if let Some(f) = font {
        cmd.env("M2MFUZZ_FONT", f);
    }
    let out = cmd.arg("report").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn report_draws_and_links_plots_of_jobs_latency_and_findings() {
    let root = scratch("run");
    let run = root.join("lab/share/out/run");
    let (epochs, findings) = synthetic_run(&run);

    // Without text (no font): drawn all the same. No font is registered in this process.
    let bare = plot::render(&root.join("bare"), &epochs, &findings, false).unwrap();
    assert!(bare.font.is_none());
    check_png(&bare.plots[0].path, BLUE);
    check_png(&bare.plots[1].path, RED);
    check_png(&bare.plots[2].path, RED); // the hang's marker

    // The report, written beside the lab directory as ci/lab/stress.sh writes it.
    let md_path = root.join("lab/report.md");
    report(&[&run, Path::new("-o"), &md_path]);
    let md = std::fs::read_to_string(&md_path).unwrap();
    for (alt, file, colour) in [
        ("jobs per second", "jobs.png", BLUE),
        (
            "release fence publish-to-signal latency",
            "latency.png",
            RED,
        ),
        ("findings over time", "findings.png", RED),
    ] {
        let link = format!("![{alt}](share/out/run/plots/{file})");
        assert!(md.contains(&link), "{link} not in\n{md}");
        check_png(&run.join("plots").join(file), colour);
    }
    if plot::FONT_PATHS.iter().any(|p| Path::new(p).exists()) {
        assert!(!md.contains("No font found"), "{md}");
    } else {
        assert!(md.contains("No font found"), "{md}");
    }
    // The run's latency, from the ledgers' timestamps: the slow epochs' worst is 5 × 64 ms.
    let row = md
        .lines()
        .find(|l| l.contains("publish-to-signal ms"))
        .unwrap_or_else(|| panic!("no latency row in\n{md}"));
    assert!(row.ends_with("/ 320.00 |"), "{row}");

    // To stdout, the links are from the current directory.
    let text = report(&[&run]);
    assert!(text.contains("/plots/jobs.png)"), "{text}");
    // Without a font the plots are drawn all the same, and the report says what they show.
    let text = report_with_font(&[&run], Some(""));
    assert!(text.contains("No font found"), "{text}");
    assert!(
        text.contains("jobs per second: blue: CAPTURE buffers dequeued per second"),
        "{text}"
    );
    check_png(&run.join("plots/latency.png"), RED);
    // To look at them: M2MFUZZ_KEEP_PLOTS=1 cargo test --test report_plots -- --nocapture
    if std::env::var_os("M2MFUZZ_KEEP_PLOTS").is_some() {
        println!("plots kept in {}", run.join("plots").display());
    } else {
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn a_run_with_no_epoch_yet_reports_without_plots() {
    let root = scratch("empty");
    RunDir::create(&root, &serde_json::json!({"profile": "synthetic"})).unwrap();
    let md = report(&[&root]);
    assert!(
        md.contains("No epoch recorded yet: nothing to plot."),
        "{md}"
    );
    assert!(!root.join("plots").exists());
    std::fs::remove_dir_all(&root).unwrap();
}
