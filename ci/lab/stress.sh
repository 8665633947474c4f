#!/usr/bin/env bash
# Run `m2mfuzz stress` in the lab (LAB_ARCH=arm64: the arm64 one) and write its report on the host.
#   stress.sh [--out DIR] [--profile FILE] [--cmdline "ARGS"] [--timeout S] [--check-trace]
#             [-- STRESS-ARGS…]
# --check-trace: an independent tracefs instance counts dma_fence and vb2 events over the whole
# run; the report's counts must equal them (exit 1 otherwise), and both go to DIR/trace-check.md.
# STRESS-ARGS go to `m2mfuzz stress` (e.g. --duration 60s --switch vim2m.rf_error_every=3
# --stop-on-finding --seed 7). The run directory comes back in DIR/share/out/run, the report in
# DIR/report.md (its plots in DIR/share/out/run/plots). When the guest times out or dies (a wedged or crashed kernel), the host runs
# `m2mfuzz stress --recover` on the run directory with the console log (DIR/recover.txt; the
# directory as the guest left it is kept in DIR/guest-run), so the kernel reports the run could
# not store itself become findings; the exit code stays non-zero.
# Exit code: m2mfuzz's (0 clean, 1 findings), or the runner's (124 time-out, 125 guest died).
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/stress$LAB_SUFFIX" profile="stress-profiles/lab-smoke.toml" cmdline="" timeout="" check=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --cmdline) cmdline=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --check-trace) check=1; shift ;;
        --) shift; break ;;
        *) die "unknown argument $1 (stress arguments go after --)" ;;
    esac
done
# A profile relative to the repository, or an absolute path (a check's own), copied into the share.
case "$profile" in
    /*) src=$profile; profile="stress-profiles/$(basename "$profile")" ;;
    *) src="$REPO_DIR/$profile" ;;
esac
[ -f "$src" ] || die "profile $src not found (give it relative to the repository, or absolute)"
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$REPO_DIR/stress-profiles" "$out/share/"
mkdir -p "$out/share/stress-profiles/$(dirname "$profile")"
cp "$src" "$out/share/$profile"
# The time limit: the profile's duration (or --duration) plus boot and a margin for hangs.
dur=$(printf '%s\n' "$@" | awk 'p { print; exit } /^--duration$/ { p = 1 }')
[ -n "$dur" ] || dur=$(sed -n 's/^duration *= *"\{0,1\}\([0-9a-z]*\)"\{0,1\}.*/\1/p' "$src" | head -1)
secs=$(awk -v d="$dur" 'BEGIN { n = d + 0; u = substr(d, length(n "") + 1);
    print (u == "m" ? n * 60 : u == "h" ? n * 3600 : n) }')
[ -n "$timeout" ] || timeout=$((secs + 300))
inst=/sys/kernel/tracing/instances/m2mfuzz-check
{
    echo "cd /host"
    if [ $check = 1 ]; then
        echo "mkdir $inst && echo 131072 > $inst/buffer_size_kb"
        echo "echo 1 > $inst/events/dma_fence/enable; echo 1 > $inst/events/vb2/enable"
    fi
    printf './bin/m2mfuzz stress --profile %q --out out/run --plain' "$profile"
    [ $# -eq 0 ] || printf ' %q' "$@"
    echo '; rc=$?'
    if [ $check = 1 ]; then
        echo "echo 0 > $inst/events/dma_fence/enable; echo 0 > $inst/events/vb2/enable"
        echo "grep -h overrun $inst/per_cpu/cpu*/stats > out/trace-overrun.txt"
        echo "sed -n -E 's/.* [0-9]+\.[0-9]+: ([a-z0-9_]+):.*/\1/p' $inst/trace | sort | uniq -c > out/trace-counts.txt"
    fi
    echo 'exit $rc'
} > "$out/job.sh"
log "stress in the lab: $profile $*, time limit ${timeout}s"
rc=0
lab_boot_status "$out" --timeout "$timeout" --share "$out/share" --cmdline "$cmdline" "$out/job.sh" || rc=$LAB_RC
cat "$out/run.log" >&2
cat "$out/share/out/job.log" 2>/dev/null || true
run="$out/share/out/run"
if guest_failed $rc && [ -f "$run/run.json" ]; then
    log "the guest $([ $rc = 124 ] && echo "timed out" || echo "died"): recovering the run's findings from its console on the host"
    # The run directory as the guest left it, before the recovery adds to it.
    rm -rf "$out/guest-run"; cp -a "$run" "$out/guest-run"
    rrc=0
    host_run "$out/share/bin/m2mfuzz" stress --recover "$run" --console "$out/console.log" > "$out/recover.txt" 2>&1 || rrc=$?
    cat "$out/recover.txt" >&2
    case $rrc in
        0|1) log "stress --recover: $(grep -c '^  FINDING' "$out/recover.txt" || true) kernel report(s) of the console stored as findings in $run/findings ($out/recover.txt)" ;;
        *) log "stress --recover failed (exit $rrc): $out/recover.txt" ;;
    esac
elif guest_failed $rc; then
    log "the guest failed before the run directory was written: nothing to recover"
fi
if [ -f "$out/share/out/run/run.json" ]; then
    # The plots' text; without the font they are drawn without it, so no reason to fail.
    (need_pkgs fonts-dejavu-core) || log "fonts-dejavu-core not installed: the plots have no text"
    host_run "$out/share/bin/m2mfuzz" report "$out/share/out/run" -o "$out/report.md"
    log "report: $out/report.md (plots in $out/share/out/run/plots)"
fi
if [ $check = 1 ] && ! guest_failed $rc; then
    need_pkgs jq
    [ -f "$out/share/out/trace-counts.txt" ] || die "no reference trace counts (the guest did not finish)"
    lost=$(awk '{ s += $2 } END { print s + 0 }' "$out/share/out/trace-overrun.txt")
    host_run "$out/share/bin/m2mfuzz" report --json "$out/share/out/run" | jq -c 'select(.summary) | .summary.totals.events' > "$out/report-events.json"
    bad=0
    {
        echo "| event | report | tracefs (independent instance) |"; echo "|---|---:|---:|"
        for ev in dma_fence_init dma_fence_emit dma_fence_signaled dma_fence_destroy vb2_qbuf vb2_buf_queue vb2_buf_done vb2_dqbuf; do
            r=$(jq -r --arg e "$ev" '.[$e] // 0' "$out/report-events.json")
            t=$(awk -v e="$ev" '$2 == e { print $1 }' "$out/share/out/trace-counts.txt"); t=${t:-0}
            [ "$r" = "$t" ] || bad=1
            echo "| $ev | $r | $t |"
        done
        echo; echo "tracefs overruns (lost events) in the reference instance: $lost"
    } > "$out/trace-check.md"
    cat "$out/trace-check.md"
    [ "$lost" = 0 ] || { log "the reference trace lost events: counts not comparable"; exit 1; }
    [ $bad = 0 ] || { log "the report's counts differ from tracefs ($out/trace-check.md)"; exit 1; }
    log "report counts equal the independent tracefs counts"
fi
exit $rc
