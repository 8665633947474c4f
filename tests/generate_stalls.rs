//! Generated programs do not stall the node by themselves: a corrupted value of a control that
//! sets how long a job takes stays out of the range's top (the kernel clamps it there: 10 s jobs
//! on vim2m, every context on the node waits), and a CPU-access sync of a dmabuf whose resv holds
//! an injected sw_sync fence mostly comes after that fence's timeline got there (on one thread
//! nothing later would signal it: the sync would block until the op deadline).
use m2mfuzz::profile::by_name;
use m2mfuzz::program::generate::{generate, GenConfig, RngChoices};
use m2mfuzz::program::{Handle, Op, SyncPhase};
use rand::SeedableRng;
use std::collections::BTreeMap;

fn programs(invalid: u32) -> impl Iterator<Item = m2mfuzz::program::Program> {
    let p = by_name("vim2m").unwrap();
    (0..600u64).map(move |seed| {
        let mut cfg = GenConfig::new(p);
        cfg.contexts = 2;
        cfg.body_ops = 40;
        cfg.invalid_percent = invalid;
        cfg.thread_percent = 0;
        generate(
            &mut RngChoices(rand::rngs::SmallRng::seed_from_u64(seed)),
            &cfg,
        )
    })
}

#[test]
fn a_corrupted_job_time_never_asks_for_the_longest_jobs() {
    let p = by_name("vim2m").unwrap();
    let ctrl = p.controls.iter().find(|c| c.job_time).unwrap();
    let (mut set, mut corrupted) = (0, 0);
    for prog in programs(50) {
        for op in &prog.ops {
            if let Op::SetCtrl { id, value, .. } = op {
                if id.0 == ctrl.id {
                    set += 1;
                    assert!(*value <= 51, "TRANS_TIME {value} ms\n{prog}");
                    corrupted += usize::from(*value < ctrl.min);
                }
            }
        }
    }
    assert!(
        set > 100 && corrupted > 10,
        "{set} set, {corrupted} below the range"
    );
}

#[test]
fn a_sync_of_a_dmabuf_with_an_injected_fence_mostly_comes_after_its_signal() {
    let (mut syncs, mut blocked) = (0, 0);
    // With the stress default share of corrupted arguments: a corrupted SW_INC is followed by
    // the valid one.
    for prog in programs(5) {
        let mut fence_of: BTreeMap<Handle, (Handle, u32)> = BTreeMap::new();
        let mut at: BTreeMap<Handle, u32> = BTreeMap::new();
        let mut waits: BTreeMap<Handle, Vec<(Handle, u32)>> = BTreeMap::new();
        for op in &prog.ops {
            match op {
                Op::SwFence {
                    timeline,
                    value,
                    ret,
                } => {
                    fence_of.insert(*ret, (*timeline, *value));
                }
                Op::ImportSyncFile { dmabuf, sync, .. } => {
                    if let Some(f) = fence_of.get(sync) {
                        waits.entry(*dmabuf).or_default().push(*f);
                    }
                }
                Op::SwInc { timeline, by } => *at.entry(*timeline).or_default() += by,
                Op::DmabufSync {
                    dmabuf,
                    phase: SyncPhase::Start,
                    ..
                } if waits.contains_key(dmabuf) => {
                    syncs += 1;
                    let pending = waits[dmabuf]
                        .iter()
                        .any(|(t, v)| at.get(t).copied().unwrap_or(0) < *v);
                    blocked += usize::from(pending);
                }
                _ => {}
            }
        }
    }
    assert!(
        syncs > 30,
        "only {syncs} syncs of dmabufs with an injected fence"
    );
    // 5 % are left to block on purpose (the interrupted wait), and a fence of another
    // timeline imported into the same resv is not signalled first.
    assert!(
        blocked * 100 <= syncs * 15,
        "{blocked} of {syncs} syncs would block until the op deadline"
    );
}
