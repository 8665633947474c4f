#!/usr/bin/env bash
# vim2m.race_mode (patches/0008) is found by two threads and only by two threads. Each run is
# a fresh lab boot; the programs (ci/lab/race/) run under `m2mfuzz watch --json`, so the
# oracles judge the kernel log independently of the programs' own kmsg check:
#   single  race_mode=1: race-single ITERATIONS (one thread, every cancel right after the QBUF
#           that started the job): no symptom, no finding
#   threads race_mode=1, BOOTS boots: race-threads SECONDS (a streamer and a STREAMOFF/ON
#           thread on one context): the symptom (a WARNING in vb2_buffer_done in the console)
#           and the finding "splat: WARNING in vb2_buffer_done" in at least NEED of them
#   control race_mode=0: race-threads SECONDS, then race-single ITERATIONS: nothing, and
#           lockdep still on
# Prints a table (also OUT/results.md); exit 1 when an expectation fails.
#   race-check.sh [--out DIR] [--boots 5] [--need 4] [--seconds 60] [--iterations 200]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/race" boots=5 need=4 seconds=60 iterations=200
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --boots) boots=$2; shift 2 ;;
        --need) need=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --iterations) iterations=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
kernel=$("$LAB_DIR/build-kernel.sh" | tail -1)
symptom='WARNING: CPU: .* vb2_buffer_done'
want='splat: WARNING in vb2_buffer_done'

# boot NAME SWITCH PROGRAM ARG [PROGRAM ARG]…: one fresh boot running the programs in turn.
boot() {
    local name=$1 sw=$2 d="$out/$1"; shift 2
    mkdir -p "$d"
    { echo 'cd /host'
      while [ $# -gt 0 ]; do
          echo "./bin/m2mfuzz watch --json -- ./bin/$1 $2 > out/$1.jsonl 2> out/$1.err; echo \$? > out/$1.rc"
          shift 2
      done
      echo 'cat /proc/lockdep_stats > out/lockdep_stats'; } > "$d/job.sh"
    lab_boot "$d" --share "$out/share" --timeout $((seconds * 2 + 300)) ${sw:+--cmdline "$sw"} "$d/job.sh" || :
    cp "$out/share/out/"* "$d/" 2>/dev/null || :
}
findings() { jq -r 'select(.finding) | "\(.finding.kind | gsub("_"; "-")): \(.finding.title)"' "$1" 2>/dev/null | sort -u | paste -sd';' -; }
# The program's own summary line (counts, time to the symptom).
summary() { grep -h "^race-" "$1" | sed 's/^[^:]*: [^:]*: //' | cut -c1-160; }

fail=0 hits=0
{ echo "| run | switch | program | console symptom | findings (oracles) | program's summary |"
  echo "|---|---|---|---|---|---|"; } > "$out/results.md"
row() { echo "| $1 | \`${2:-none}\` | $3 | $4 | ${5:-none} | $6 |" | tee -a "$out/results.md"; }

boot single vim2m.race_mode=1 race-single "$iterations"
d="$out/single"; f=$(findings "$d/race-single.jsonl")
if grep -q "$symptom" "$d/console.log"; then s=shown; fail=1; else s=none; fi
[ -z "$f" ] || fail=1
grep -q '^race-single:.*symptom: none' "$d/race-single.err" || fail=1
row single vim2m.race_mode=1 "race-single $iterations" "$s" "$f" "$(summary "$d/race-single.err")"

for i in $(seq 1 "$boots"); do
    boot "threads-$i" vim2m.race_mode=1 race-threads "$seconds"
    d="$out/threads-$i"; f=$(findings "$d/race-threads.jsonl")
    if grep -q "$symptom" "$d/console.log" && [ "$f" = "$want" ]; then s=shown; hits=$((hits + 1)); else s=none; fi
    row "threads-$i" vim2m.race_mode=1 "race-threads $seconds" "$s" "$f" "$(summary "$d/race-threads.err")"
done
[ "$hits" -ge "$need" ] || { log "race_mode=1: two threads showed the symptom in $hits of $boots boots (need $need)"; fail=1; }

boot control "" race-threads "$seconds" race-single "$iterations"
d="$out/control"; f=$(cat "$d/race-threads.jsonl" "$d/race-single.jsonl" | findings /dev/stdin)
if grep -q "WARNING:\|BUG:" "$d/console.log"; then s=shown; fail=1; else s=none; fi
[ -z "$f" ] || fail=1
grep -q "debug_locks: *1" "$d/lockdep_stats" || { log "control: lockdep switched off"; fail=1; }
row control "" "race-threads $seconds, race-single $iterations" "$s" "$f" \
    "$(summary "$d/race-threads.err"); $(summary "$d/race-single.err")"

log "kernel $(basename "$(dirname "$kernel")"), $(date -u +%F): two threads showed it in $hits of $boots boots"
[ $fail = 0 ] || die "race check failed; results in $out"
