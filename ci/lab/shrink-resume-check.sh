#!/usr/bin/env bash
# The board's way to shrink a lockdep finding (one report per boot), checked in the lab: each
# "reboot" is a fresh lab boot running `m2mfuzz shrink --resume STATE` (the first one
# `m2mfuzz shrink PROGRAM --state STATE`), until the shrink ends (exit 0) instead of asking for a
# reboot (exit 3). The program is a fault-corpus program padded with unrelated ops on a second
# context; the result must be no longer than the hand-written program. Prints boots, runs, time.
#   shrink-resume-check.sh [--out DIR] [--max-boots N] [PROGRAM]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/shrink-resume" max=60
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --max-boots) max=$2; shift 2 ;;
        *) break ;;
    esac
done
prog=${1:-$REPO_DIR/corpora/faults/alloc-in-section.m2m}
rm -rf "$out"; mkdir -p "$out/share/state"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
switch=$(sed -n 's/^# switch: //p' "$prog" | head -1)
hand=$(grep -cv '^\(#\|$\)' "$prog")
# Padding: a second context's buffers, exports and a stream start, before and after the body.
{
    grep '^#' "$prog"
    printf '%s\n' "open node=vim2m -> c1" "reqbufs c1 queue=out count=2 memory=mmap" \
        "reqbufs c1 queue=cap count=2 memory=mmap" "expbuf c1 queue=cap index=1 -> d1"
    grep -v '^\(#\|$\)' "$prog" | sed 's/ *#.*//'
    printf '%s\n' "export_sync_file d1 dir=rw -> s1" "streamon c1 queue=out" "fence_info s1" \
        "streamoff c1 queue=out" "reqbufs c1 queue=cap count=0 memory=mmap"
} > "$out/share/padded.m2m"
padded=$(grep -cv '^\(#\|$\)' "$out/share/padded.m2m")
t0=$(date +%s)
boot=0 rc=3
while [ "$rc" = 3 ]; do
    boot=$((boot + 1))
    [ $boot -le "$max" ] || die "shrink still asks for a reboot after $max boots"
    if [ $boot = 1 ]; then
        cmd="./bin/m2mfuzz shrink padded.m2m --state state/shrink.json -o state/shrunk.m2m"
    else
        cmd="./bin/m2mfuzz shrink --resume state/shrink.json"
    fi
    printf 'cd /host\n%s >> state/shrink.log 2>&1\necho $? > out/shrink.rc\n' "$cmd" > "$out/job.sh"
    "$LAB_DIR/run.sh" --out "$out/boot" --share "$out/share" --timeout 600 "$out/job.sh" >/dev/null 2>&1 || true
    rc=$(cat "$out/share/out/shrink.rc" 2>/dev/null || echo "none")
    log "boot $boot: shrink exit $rc"
done
secs=$(( $(date +%s) - t0 ))
[ "$rc" = 0 ] || die "shrink failed (exit $rc); log: $out/share/state/shrink.log"
got=$(grep -cv '^\(#\|$\)' "$out/share/state/shrunk.m2m")
tail -1 "$out/share/state/shrink.log"
echo "shrink --resume ($switch): $padded -> $got ops (hand-written: $hand) in $boot boots, ${secs}s"
[ "$got" -le "$hand" ] || die "the shrunk program ($got ops) is longer than the hand-written one ($hand)"
