#!/usr/bin/env bash
# The stress duty cycle (a benchmark: it prints figures and writes OUT/duty.{md,json}, it asserts
# nothing about speed). In one lab boot: the node's limit, `m2mfuzz limit` (a built-in client
# loop, MMAP, two buffers a queue in flight: vim2m, 320x240, 1 ms), then `m2mfuzz stress` with
# stress-profiles/lab-duty.toml (same size and time, 2 workers, 2 contexts, chaos weights, 5 %
# invalid arguments) while an independent tracefs instance counts vb2_buf_done by queue type.
# Duty cycle = CAPTURE vb2_buf_done per second during stress / the limit's jobs per second. The
# event has no buffer state (nor a field that tells a cancelled buffer: bytesused stays), so
# buffers a STREAMOFF or close handed back with ERROR count too; the CAPTURE buffers stress
# dequeued DONE (its `frames`) per second over the limit is printed beside it: a lower bound
# of the DONE share (a DONE buffer nobody dequeued before its queue went is not in it).
#   bench-duty.sh [--out DIR] [--seconds 60] [--limit-seconds 15]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/bench-duty" secs=60 lsecs=15
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --seconds) secs=$2; shift 2 ;;
        --limit-seconds) lsecs=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$REPO_DIR/stress-profiles" "$out/share/"
inst=/sys/kernel/tracing/instances/m2mfuzz-duty
{
    echo "cd /host"
    echo "./bin/m2mfuzz limit --driver vim2m --size 320x240 --trans-time-ms 1 --seconds $lsecs --json > out/limit.json"
    echo "mkdir $inst && echo 65536 > $inst/buffer_size_kb && echo 1 > $inst/events/vb2/vb2_buf_done/enable"
    # The limit goes to stress too, so its progress shows the duty cycle as it goes.
    echo "lim=\$(sed -n 's/.*\"jobs_per_s\":\([0-9.]*\).*/\1/p' out/limit.json)"
    echo "./bin/m2mfuzz stress --profile stress-profiles/lab-duty.toml --duration ${secs}s --seed 1 --plain --limit \$lim --out out/run > out/stress.log 2>&1; rc=\$?"
    echo "echo 0 > $inst/events/vb2/vb2_buf_done/enable"
    echo "grep -h overrun $inst/per_cpu/cpu*/stats > out/trace-overrun.txt"
    # vim2m is single-planar: type 1 is CAPTURE, 2 OUTPUT.
    echo "sed -n 's/.* vb2_buf_done: .* type = \([0-9]*\),.*/\1/p' $inst/trace | sort | uniq -c > out/done-by-type.txt"
    echo 'exit $rc'
} > "$out/job.sh"
"$LAB_DIR/run.sh" --out "$out" --timeout $((secs + lsecs + 300)) --share "$out/share" "$out/job.sh" >&2
r="$out/share/out"
[ -s "$r/limit.json" ] || die "no limit measured (see $out/console.log)"
[ -f "$r/run/summary.json" ] || die "the stress run wrote no summary (see $r/stress.log)"
lost=$(awk '{ s += $2 } END { print s + 0 }' "$r/trace-overrun.txt")
cap=$(awk '$2 == 1 { print $1 }' "$r/done-by-type.txt"); cap=${cap:-0}
outp=$(awk '$2 == 2 { print $1 }' "$r/done-by-type.txt"); outp=${outp:-0}
jq -n --slurpfile l "$r/limit.json" --slurpfile s "$r/run/summary.json" \
    --argjson cap "$cap" --argjson outp "$outp" --argjson lost "$lost" '
    ($s[0].totals.seconds // $s[0].seconds) as $t |
    {date: (now | todate), cpus: 2, accel: "tcg",
     limit_jobs_per_s: $l[0].jobs_per_s, limit_setup: $l[0].setup,
     stress_seconds: $t, capture_buf_done: $cap, output_buf_done: $outp, trace_lost: $lost,
     frames_dequeued: ($s[0].totals.frames // $s[0].frames),
     stress_capture_done: $s[0].capture_done,
     capture_done_per_s: ($cap / $t),
     frames_done_per_s: (($s[0].totals.frames // $s[0].frames) / $t),
     duty_cycle: (($cap / $t) / $l[0].jobs_per_s),
     duty_cycle_dequeued_done: ((($s[0].totals.frames // $s[0].frames) / $t) / $l[0].jobs_per_s)}' > "$out/duty.json"
jq -r '"| limit (jobs/s) | stress CAPTURE buf_done/s | duty cycle | dequeued DONE/s over the limit (lower bound) | CAPTURE buf_done: tracefs / stress'"'"'s own | CAPTURE frames dequeued DONE | seconds | trace lost |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    "| \(.limit_jobs_per_s * 10 | round / 10) | \(.capture_done_per_s * 100 | round / 100) | \(.duty_cycle * 1000 | round / 1000) | \(.duty_cycle_dequeued_done * 1000 | round / 1000) | \(.capture_buf_done) / \(.stress_capture_done) | \(.frames_dequeued) | \(.stress_seconds | round) | \(.trace_lost) |"' \
    "$out/duty.json" | tee "$out/duty.md"
