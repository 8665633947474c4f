#!/usr/bin/env bash
# The board's way to shrink a lockdep finding (one report per boot), checked in the lab through
# shrink.sh (`shrink --state`, then `--resume` in a fresh boot whenever it exits 3): a fault-corpus
# program padded with unrelated ops on a second context must come back no longer than the
# hand-written program, must have needed more than one boot, and must replay as written.
#   shrink-resume-check.sh [--out DIR] [PROGRAM]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/shrink-resume"
if [ "${1:-}" = --out ]; then out=$2; shift 2; fi
prog=${1:-$REPO_DIR/corpora/faults/alloc-in-section.m2m}
mkdir -p "$out"
hand=$(grep -cv '^\(#\|$\)' "$prog")
# Padding: a second context's buffers, exports and a stream start, before and after the body.
{
    grep '^#' "$prog"
    printf '%s\n' "open node=vim2m -> c1" "reqbufs c1 queue=out count=2 memory=mmap" \
        "reqbufs c1 queue=cap count=2 memory=mmap" "expbuf c1 queue=cap index=1 -> d1"
    grep -v '^\(#\|$\)' "$prog" | sed 's/ *#.*//'
    printf '%s\n' "export_sync_file d1 dir=rw -> s1" "streamon c1 queue=out" "fence_info s1" \
        "streamoff c1 queue=out" "reqbufs c1 queue=cap count=0 memory=mmap"
} > "$out/padded.m2m"
"$LAB_DIR/shrink.sh" --out "$out/shrink" "$out/padded.m2m"
res="$out/shrink/result.json"
got=$(jq .ops_after "$res") boots=$(jq .boots "$res")
echo "shrink --resume: $(jq .ops_before "$res") -> $got ops (hand-written: $hand) in $boots boots, $(jq .seconds "$res")s"
[ "$got" -le "$hand" ] || die "the shrunk program ($got ops) is longer than the hand-written one ($hand)"
[ "$boots" -gt 1 ] || die "a lockdep shrink finished in one boot: the one-shot report was not exercised"
# The result is a regression program as it stands: its # switch: and # expect: replay.
"$LAB_DIR/replay.sh" --out "$out/replay" "$out/shrink/shrunk.m2m"
