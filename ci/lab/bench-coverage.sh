#!/usr/bin/env bash
# Kernel coverage benchmark: the same fuzz target for the same time in fresh boots, once with
# KCOV guiding libFuzzer and once with KCOV only counted (observe), so both figures are distinct
# kernel edges seen by the same measurement. Prints a table, writes OUT/coverage.{md,json}.
# A benchmark: it asserts nothing.
#   bench-coverage.sh [--out DIR] [--target m2m_vim2m] [--seconds 300]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/bench-coverage" target=m2m_vim2m secs=300
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --target) target=$2; shift 2 ;;
        --seconds) secs=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
rm -rf "$out"; mkdir -p "$out"
for mode in on observe; do
    "$LAB_DIR/fuzz.sh" --out "$out/$mode" --target "$target" --seconds "$secs" --kcov "$mode" >&2
    read -r execs edges < "$out/$mode/share/out/edges" || { execs=0; edges=0; }
    corp=$(ls "$out/$mode/share/out/corpus" | wc -l)
    jq -cn --arg m "$mode" --argjson x "$execs" --argjson e "$edges" --argjson c "$corp" \
        '{kcov: $m, execs: $x, kernel_edges: $e, new_corpus_inputs: $c}'
done | jq -s --arg t "$target" --argjson s "$secs" \
    '{date: (now | todate), target: $t, seconds: $s, cpus: 2, accel: "tcg", results: .}' > "$out/coverage.json"
jq -r '"| \(.target), \(.seconds) s | execs | kernel edges | inputs added to the corpus |", "|---|---:|---:|---:|",
    (.results[] | "| KCOV \(if .kcov == "on" then "guiding" else "counted only" end) | \(.execs) | \(.kernel_edges) | \(.new_corpus_inputs) |")' \
    "$out/coverage.json" | tee "$out/coverage.md"
