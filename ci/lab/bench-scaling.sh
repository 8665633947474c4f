#!/usr/bin/env bash
# Stress throughput with 1, 2 and 4 workers (vim2m, 1 ms transaction time), side by side in one
# lab boot: programs/s, ops/s and CAPTURE frames/s from each run's summary. A benchmark: it
# prints figures and writes OUT/scaling.{md,json}; it asserts nothing about speed.
#   bench-scaling.sh [--out DIR] [--seconds S] [--workers "1 2 4"]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/bench-scaling" secs=30 workers="1 2 4"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --seconds) secs=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$REPO_DIR/stress-profiles" "$out/share/"
{
    echo "cd /host"
    for w in $workers; do
        echo "./bin/m2mfuzz stress --profile stress-profiles/lab-bench.toml --workers $w --duration ${secs}s --seed 3 --plain --out out/w$w"
    done
    echo "exit 0"
} > "$out/job.sh"
"$LAB_DIR/run.sh" --out "$out" --timeout $(( ($(wc -w <<< "$workers") * (secs + 60)) + 120 )) \
    --share "$out/share" "$out/job.sh" >&2
for w in $workers; do
    jq -c --arg w "$w" '{workers: ($w|tonumber), seconds, programs, ops, frames,
        programs_per_s: (.programs / .seconds), ops_per_s: (.ops / .seconds), frames_per_s: (.frames / .seconds)}' \
        "$out/share/out/w$w/summary.json"
done | jq -s '{date: (now | todate), cpus: 2, accel: "tcg", results: .}' > "$out/scaling.json"
jq -r '"| workers | programs/s | ops/s | frames/s | vs 1 worker (frames) |", "|---:|---:|---:|---:|---:|",
    (.results[0].frames_per_s as $one | .results[] |
     "| \(.workers) | \(.programs_per_s * 10 | round / 10) | \(.ops_per_s | round) | \(.frames_per_s * 10 | round / 10) | \(if $one > 0 then (.frames_per_s / $one * 100 | round / 100) else "-" end) |")' \
    "$out/scaling.json" | tee "$out/scaling.md"
