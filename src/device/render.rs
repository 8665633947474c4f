//! The `probe` report for people.
use super::{DebugState, FrameSizes, MediaNode, VideoNode};
use std::fmt::Write;

fn sizes(s: &FrameSizes) -> String {
    match s {
        FrameSizes::Discrete { sizes } => sizes
            .iter()
            .map(|(w, h)| format!("{w}x{h}"))
            .collect::<Vec<_>>()
            .join(","),
        FrameSizes::Stepwise { width, height } => {
            format!("{}..{}x{}..{}", width.0, width.1, height.0, height.1)
        }
        FrameSizes::Unknown => "-".into(),
    }
}

/// Render nodes, media nodes and debug state as text.
pub fn render(
    nodes: &[VideoNode],
    media: &[MediaNode],
    errors: &[String],
    dbg: &DebugState,
) -> String {
    let mut s = String::new();
    let m2m: Vec<&VideoNode> = nodes.iter().filter(|n| n.m2m).collect();
    if m2m.is_empty() {
        let _ = writeln!(
            s,
            "No V4L2 mem2mem node found. Looked at {} /dev/video* node(s) (an m2m node reports \
             V4L2_CAP_VIDEO_M2M or V4L2_CAP_VIDEO_M2M_MPLANE in VIDIOC_QUERYCAP).\n\
             On a board: load the driver (rockchip-rga, hantro-vpu). Without hardware: run the lab, \
             `ci/lab/run-tests.sh`.",
            nodes.len()
        );
    }
    for n in &m2m {
        let _ = writeln!(
            s,
            "{}  driver={} name={} card={} {} media={}",
            n.path.display(),
            n.driver,
            n.name,
            n.card,
            if n.mplane { "mplane" } else { "single-planar" },
            n.media
                .as_ref()
                .map_or("-".into(), |m| m.display().to_string())
        );
        for (q, label) in n.queues.iter().zip(["OUTPUT ", "CAPTURE"]) {
            let _ = writeln!(
                s,
                "  {label} memory={} requests={} hold_capture={} remove_bufs={}",
                q.memory.join(","),
                q.requests,
                q.hold_capture,
                q.remove_bufs
            );
            for f in &q.formats {
                let _ = writeln!(
                    s,
                    "    {:<4} {:<32} {}",
                    f.fourcc,
                    f.description,
                    sizes(&f.sizes)
                );
            }
        }
    }
    let other: Vec<&VideoNode> = nodes.iter().filter(|n| !n.m2m).collect();
    for n in other {
        let _ = writeln!(
            s,
            "{}  driver={} (not m2m: caps {:#x})",
            n.path.display(),
            n.driver,
            n.device_caps
        );
    }
    for m in media {
        let _ = writeln!(
            s,
            "{}  driver={} model={} bus={}",
            m.path.display(),
            m.driver,
            m.model,
            m.bus_info
        );
    }
    for e in errors {
        let _ = writeln!(s, "unusable: {e}");
    }
    let _ = writeln!(s, "\nkernel {}", dbg.kernel);
    let yn = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(
        s,
        "  lockdep: {}{}",
        yn(dbg.lockdep),
        match dbg.lockdep_enabled {
            Some(true) => " (debug_locks 1: enabled)",
            Some(false) => " (debug_locks 0: OFF, reboot to trust lockdep again)",
            None => "",
        }
    );
    let _ = writeln!(s, "  kcov: {}", yn(dbg.kcov));
    let _ = writeln!(
        s,
        "  tracefs: {}  dma_fence events: {}  vb2 events: {}",
        dbg.tracefs.as_deref().unwrap_or("not mounted"),
        yn(dbg.dma_fence_events),
        yn(dbg.vb2_events)
    );
    let _ = writeln!(
        s,
        "  hung-task timeout: {}",
        dbg.hung_task_timeout_secs
            .map_or("no detector".into(), |t| format!("{t} s"))
    );
    let _ = writeln!(s, "  sw_sync: {}", yn(dbg.sw_sync));
    for w in dbg.warnings() {
        let _ = writeln!(s, "  warning: {w}");
    }
    let _ = writeln!(s, "Release-fence contract, as judged on this kernel:");
    for c in crate::oracle::Clause::ALL {
        let _ = writeln!(
            s,
            "  {c}: {}: {}",
            c.promise(),
            dbg.unjudged(c).unwrap_or("judged")
        );
    }
    s
}
