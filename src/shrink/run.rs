//! The shrinker's "does it reproduce?" runs: in this boot, or several programs concurrently (a
//! finding that needs its interleaving). A fresh boot per candidate is the caller's runner
//! ([`super::session::Where::Boot`]: the lab crate boots).
use crate::oracle::TraceKeeper;
use crate::program::Program;
use std::collections::BTreeMap;

/// A run's findings: signature → the op that showed it, when one did (a kernel report: the op
/// after which it was read).
pub type Found = BTreeMap<String, Option<usize>>;

/// Findings of one run of `p` in this boot, with its `# switch:` parameters set, as signatures;
/// the ledger's tracefs instance is `keeper`'s.
pub fn findings_here(p: &Program, keeper: &mut TraceKeeper) -> anyhow::Result<Found> {
    use crate::exec::{ExecOptions, Executor};
    use crate::oracle::{OracleOptions, OracleSet};
    let switches = crate::corpus::parse_switches(p.header("switch").unwrap_or(""))
        .map_err(anyhow::Error::msg)?;
    let _applied = crate::corpus::Applied::apply(&switches).map_err(anyhow::Error::msg)?;
    let mut oracles = OracleSet::keeping(OracleOptions::default(), keeper);
    Executor::new(ExecOptions::default()).run_observed(p, &mut oracles);
    Ok(oracles
        .finish()
        .findings
        .into_iter()
        .map(|f| (f.signature, f.op))
        .collect())
}

/// Findings of `programs` run concurrently in this boot, one thread each (as stress workers
/// ran them), with `switches` set: the per-program oracles in each thread, the kernel-wide ones
/// (kmsg, ledger) over the whole run.
pub fn findings_concurrently(
    programs: &[Program],
    switches: &str,
    keeper: &mut TraceKeeper,
) -> anyhow::Result<Found> {
    use crate::exec::supervise::run_supervised;
    use crate::exec::ExecOptions;
    use crate::oracle::{Finding, OracleOptions, OracleSet};
    let sw = crate::corpus::parse_switches(switches).map_err(anyhow::Error::msg)?;
    let _applied = crate::corpus::Applied::apply(&sw).map_err(anyhow::Error::msg)?;
    let opts = OracleOptions::default();
    let margin = opts.fence_deadline + std::time::Duration::from_secs(10);
    let mut global = OracleSet::keeping(opts.clone(), keeper);
    let locals: Vec<Vec<Finding>> = std::thread::scope(|s| {
        let handles: Vec<_> = programs
            .iter()
            .map(|p| {
                let opts = opts.clone();
                s.spawn(move || {
                    let local = OracleSet::local(opts);
                    match run_supervised(p.clone(), ExecOptions::default(), local, margin) {
                        Ok((_, mut o)) => o.take_local(),
                        Err(run) => {
                            let mut v = run.with_observer(|o| o.take_local());
                            v.push(Finding::stuck(&p.ops[run.stuck.index], &run.stuck));
                            v
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for l in locals {
        global.absorb(l);
    }
    // Op indices are each program's own: no single program to cut.
    Ok(global
        .finish()
        .findings
        .into_iter()
        .map(|f| (f.signature, None))
        .collect())
}
