#!/usr/bin/env bash
# Peer suite: v4l2-compliance (Debian v4l-utils) with streaming tests on each lab node, in the lab.
# Prints per-node totals, stores them in OUT/summary.txt, and fails if any node has more failures
# than ci/lab/compliance-baseline.txt (the stock lab kernel's figures).
#   compliance.sh [--out DIR] [--cmdline "ARGS"] [--write-baseline]
set -euo pipefail
. "$(dirname "$0")/common.sh"
[ "$LAB_ARCH" = x86_64 ] || die "compliance.sh runs in the x86_64 lab only: the $LAB_ARCH initramfs has no v4l2-compliance"
out="$REPO_DIR/lab-out/compliance" cmdline="" write=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --cmdline) cmdline=$2; shift 2 ;;
        --write-baseline) write=1; shift ;;
        *) die "unknown argument $1" ;;
    esac
done
baseline="$LAB_DIR/compliance-baseline.txt"
rm -rf "$out"; mkdir -p "$out/share"
cat > "$out/job.sh" <<'JOB'
# -s streams N buffers; the stateful vicodec decoder waits forever for input with -s, so vicodec
# nodes run without it.
for d in /sys/class/video4linux/video*; do
    name=$(cat "$d/name"); dev=/dev/$(basename "$d")
    case "$name" in
        vim2m|visl) args="-s10" ;;
        *) args="" ;;
    esac
    mkdir -p /host/out/v4l2
    timeout 300 v4l2-compliance -d "$dev" $args > "/host/out/v4l2/$name.log" 2>&1
    echo "$name: exit $?" >> /host/out/exits
done
grep debug_locks /proc/lockdep_stats > /host/out/debug_locks
JOB
set +e
"$LAB_DIR/run.sh" --out "$out" --timeout 900 --share "$out/share" --cmdline "$cmdline" "$out/job.sh"
rc=$?
set -e
[ $rc = 0 ] || die "lab run failed (exit $rc); console: $out/console.log"
: > "$out/summary.txt"
for log in "$out"/share/out/v4l2/*.log; do
    name=$(basename "$log" .log)
    line=$(grep -E "^Total for .*: [0-9]+, Succeeded: [0-9]+, Failed: [0-9]+" "$log" | tail -1) \
        || die "no v4l2-compliance total for $name; see $log"
    total=$(sed -E 's/.*: ([0-9]+), Succeeded: ([0-9]+), Failed: ([0-9]+), Warnings: ([0-9]+).*/\1 \2 \3 \4/' <<<"$line")
    echo "$name $total" >> "$out/summary.txt"
done
sort -o "$out/summary.txt" "$out/summary.txt"
printf '%-20s %6s %10s %7s %9s\n' node total succeeded failed warnings
while read -r n t s f w; do printf '%-20s %6s %10s %7s %9s\n' "$n" "$t" "$s" "$f" "$w"; done < "$out/summary.txt"
cat "$out/share/out/debug_locks"
grep -q "debug_locks: *1" "$out/share/out/debug_locks" || die "lockdep switched off during v4l2-compliance; console: $out/console.log"
if [ $write = 1 ]; then
    { echo "# node total succeeded failed warnings: v4l2-compliance $(dpkg-query -W -f='${Version}' v4l-utils), stock lab kernel"
      cat "$out/summary.txt"; } > "$baseline"
    log "baseline written: $baseline"
    exit 0
fi
[ -f "$baseline" ] || die "no baseline $baseline; run with --write-baseline on the stock lab kernel"
worse=0
while read -r n t s f w; do
    bf=$(awk -v n="$n" '$1 == n { print $4 }' "$baseline")
    [ -n "$bf" ] || { log "node $n is not in the baseline"; worse=1; continue; }
    if [ "$f" -gt "$bf" ]; then log "$n: $f failures, baseline $bf"; worse=1; fi
done < "$out/summary.txt"
[ $worse = 0 ] || die "v4l2-compliance is worse than the baseline; logs: $out/share/out"
log "v4l2-compliance: no node worse than the baseline"
