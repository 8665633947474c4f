//! The executor's own cost per op, on the host, with no V4L2 device: a context bound on
//! `/dev/null`, where every QUERYBUF fails at once with ENOTTY, so almost all the time is the
//! harness's. Compared with the same ioctl in a bare loop. Prints figures, asserts nothing.
//!   cargo bench --bench exec_overhead [-- N]
use m2mfuzz::exec::{Ctx, ExecOptions, Executor, NodeClaim, QueueState, Resource};
use m2mfuzz::program::{text, Handle, ResKind};
use m2mfuzz::uapi::{ioctl, v4l2::v4l2_buffer};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let src = format!(
        "# m2mfuzz program v1\n{}",
        "querybuf c0 queue=out index=0\n".repeat(n)
    );
    let t = Instant::now();
    let prog = text::parse(&src).expect("benchmark program parses");
    let parse = t.elapsed().as_secs_f64() / n as f64;
    let null = || -> OwnedFd { std::fs::File::open("/dev/null").expect("/dev/null").into() };
    let mut ex = Executor::new(ExecOptions::default());
    let mut best_exec = f64::MAX;
    let mut best_raw = f64::MAX;
    for _ in 0..5 {
        ex.bind(
            Handle {
                kind: ResKind::Ctx,
                id: 0,
            },
            Resource::Ctx(Ctx {
                video: std::sync::Arc::new(null()),
                media: None,
                path: "/dev/null".into(),
                driver: "null".into(),
                mplane: false,
                queues: [QueueState::default(); 2],
                claim: std::sync::Arc::new(NodeClaim::new(u64::MAX)),
            }),
        );
        let t = Instant::now();
        let out = ex.run(&prog);
        best_exec = best_exec.min(t.elapsed().as_secs_f64() / n as f64);
        assert_eq!(out.len(), n);
        let fd = null();
        let t = Instant::now();
        for _ in 0..n {
            let mut b = v4l2_buffer::default();
            // SAFETY: a single-planar buffer with no pointer set: the kernel follows none.
            let _ = std::hint::black_box(unsafe { ioctl::querybuf(fd.as_raw_fd(), &mut b) });
        }
        best_raw = best_raw.min(t.elapsed().as_secs_f64() / n as f64);
    }
    println!(
        "QUERYBUF on /dev/null (ENOTTY), best of 5 x {n}: executor {:.0} ns/op, bare loop {:.0} ns/op, \
         harness cost {:.0} ns/op; parsing the program text {:.0} ns/op",
        best_exec * 1e9,
        best_raw * 1e9,
        (best_exec - best_raw) * 1e9,
        parse * 1e9
    );
}
