#!/usr/bin/env bash
# The benchmark: every figure m2mfuzz is judged by, measured in the lab (fresh boots, TCG) and
# printed as one Markdown report plus JSON. A benchmark, not a test: it asserts nothing.
#   overhead  ops/s of m2mfuzz executing a program vs a C loop doing the same ioctls, same boot
#             (target ratio >= 0.90; whole runs too)
#   find      time to first finding per fault switch, median and max over SEEDS (target <= 60 s)
#   shrink    a stress finding per fault switch shrunk (reboots included) vs the hand-written
#             program (target: equal length, <= 3 min)
#   scaling   m2m frames/s with 1, 2, 4, 8 workers, vim2m 1 ms jobs (target: 4 >= 1.6 x 1)
#   coverage  kernel edges in SECONDS of m2m_vim2m with KCOV guiding vs only counted
#   duty      stress duty cycle: CAPTURE vb2_buf_done/s during stress over `m2mfuzz limit`'s
#             jobs/s, same boot (target >= 0.5)
#   bench.sh [--out DIR] [--parts "overhead find shrink scaling coverage duty"] [--seeds "1 2 3 4 5"]
#            [--budget S] [--faults "NAME…"] [--coverage-seconds S]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/bench" parts="overhead find shrink scaling coverage duty" seeds="1 2 3 4 5"
budget=120 faults="" cov_secs=300
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --parts) parts=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --faults) faults=$2; shift 2 ;;
        --coverage-seconds) cov_secs=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
progs=()
if [ -n "$faults" ]; then for f in $faults; do progs+=("$REPO_DIR/corpora/faults/$f.m2m"); done
else progs=("$REPO_DIR"/corpora/faults/*.m2m); fi
mkdir -p "$out"
has() { [[ " $parts " == *" $1 "* ]]; }
if has overhead; then "$LAB_DIR/bench-overhead.sh" --out "$out/overhead" >&2; fi
if has find || has shrink; then
    # A fault missed is a figure of the table; a guest that timed out or died fails the benchmark
    # once the figures are written (stress-faults.sh names the consoles).
    "$LAB_DIR/stress-faults.sh" --out "$out/find" --budget "$budget" --seeds "$seeds" "${progs[@]}" >&2 || :
fi
if has shrink; then
    : > "$out/shrink.jsonl"
    for p in "${progs[@]}"; do
        name=$(basename "$p" .m2m)
        expect=$(sed -n 's/^# expect: //p' "$p" | head -1)
        hand=$(grep -cv '^\(#\|$\)' "$p")
        dir=""
        for seed in $seeds; do
            for f in "$out/find/$name-$seed"/run/findings/*/finding.json; do
                [ -f "$f" ] || continue
                if [ "$(jq -r '.kind + ": " + .title' "$f")" = "$expect" ]; then dir=$(dirname "$f"); break 2; fi
            done
        done
        if [ -z "$dir" ]; then
            jq -cn --arg n "$name" --argjson h "$hand" '{program: $n, hand_written_ops: $h, shrunk: null}' >> "$out/shrink.jsonl"
            continue
        fi
        if "$LAB_DIR/shrink.sh" --out "$out/shrink/$name" "$dir" --finding "$expect" >&2; then
            # Its C reproducer, compiled and run in a fresh boot, must give the same finding.
            repro=no
            if [ -f "$out/shrink/$name/shrunk.m2m" ] && \
                "$LAB_DIR/repro-check.sh" --at-least --out "$out/shrink/$name/repro" "$out/shrink/$name/shrunk.m2m" >&2; then
                repro=yes
            fi
            jq -c --arg n "$name" --argjson h "$hand" --arg r "$repro" \
                '{program: $n, hand_written_ops: $h, shrunk: ., c_reproducer_reproduces: ($r == "yes")}' \
                "$out/shrink/$name/result.json" >> "$out/shrink.jsonl"
        else
            jq -cn --arg n "$name" --argjson h "$hand" '{program: $n, hand_written_ops: $h, shrunk: "failed"}' >> "$out/shrink.jsonl"
        fi
    done
fi
if has scaling; then "$LAB_DIR/bench-scaling.sh" --out "$out/scaling" --workers "1 2 4 8" >&2; fi
if has coverage; then "$LAB_DIR/bench-coverage.sh" --out "$out/coverage" --seconds "$cov_secs" >&2; fi
if has duty; then "$LAB_DIR/bench-duty.sh" --out "$out/duty" >&2; fi

# One JSON document and one report from whatever parts ran.
slurp() { [ -f "$1" ] && jq -s . "$1" || echo null; }
json() { [ -f "$1" ] && cat "$1" || echo null; }
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$(uname -m), $(nproc) cores, QEMU TCG" \
    --argjson overhead "$(json "$out/overhead/overhead.json")" \
    --argjson find "$(slurp "$out/find/results.jsonl")" \
    --argjson shrink "$(slurp "$out/shrink.jsonl")" \
    --argjson scaling "$(json "$out/scaling/scaling.json")" \
    --argjson coverage "$(json "$out/coverage/coverage.json")" \
    --argjson duty "$(json "$out/duty/duty.json")" \
    '{date: $date, machine: $host, overhead: $overhead, find: $find, shrink: $shrink, scaling: $scaling, coverage: $coverage, duty: $duty}' \
    > "$out/bench.json"
{
    echo "# m2mfuzz benchmark, $(jq -r .date "$out/bench.json") ($(jq -r .machine "$out/bench.json"))"
    if [ -f "$out/overhead/overhead.md" ]; then echo; echo "## Harness overhead"; echo; cat "$out/overhead/overhead.md"; fi
    if [ -f "$out/find/results.md" ]; then echo; echo "## Time to first finding (stress, lab-smoke, seeds: $seeds)"; echo; cat "$out/find/results.md"; fi
    if [ -f "$out/shrink.jsonl" ]; then
        echo; echo "## Shrink quality (a stress finding, shrunk in the lab with reboots)"; echo
        echo "| fault | hand-written ops | stress finding ops | shrunk ops | boots | runs | wall s | C repro |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|"
        jq -r 'if (.shrunk | type) == "object" then
                 "| \(.program) | \(.hand_written_ops) | \(.shrunk.ops_before) | \(.shrunk.ops_after) | \(.shrunk.boots) | \(.shrunk.runs) | \(.shrunk.seconds) | \(if .c_reproducer_reproduces then "same finding" else "different" end) |"
               else "| \(.program) | \(.hand_written_ops) | \(if .shrunk == null then "not found" else "shrink failed" end) | - | - | - | - | - |" end' "$out/shrink.jsonl"
    fi
    if [ -f "$out/scaling/scaling.md" ]; then echo; echo "## Scaling (lab-bench, vim2m 1 ms)"; echo; cat "$out/scaling/scaling.md"; fi
    if [ -f "$out/coverage/coverage.md" ]; then echo; echo "## Kernel coverage"; echo; cat "$out/coverage/coverage.md"; fi
    if [ -f "$out/duty/duty.md" ]; then echo; echo "## Stress duty cycle (lab-duty, vim2m 1 ms, 320x240)"; echo; cat "$out/duty/duty.md"; fi
} > "$out/bench.md"
cat "$out/bench.md"
dead=$(jq -rs 'map(select(.found | startswith("guest failed"))) | length' "$out/find/results.jsonl" 2>/dev/null || echo 0)
[ "${dead:-0}" = 0 ] || die "$dead stress boot(s) of the find part timed out or died: their figures are not times (consoles: $out/find/*/console.log)"
