#!/usr/bin/env bash
# Regression gate: replay corpus programs in the lab and fail on any unexpected outcome.
# One boot replays them all (lockdep programs last); a program left unjudged because an earlier
# report had switched lockdep off is replayed again in a fresh boot of its own.
#   replay.sh [--out DIR] PATH…   (default: corpora; LAB_ARCH=arm64: in the arm64 lab)
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/replay$LAB_SUFFIX"
if [ "${1:-}" = --out ]; then out=$2; shift 2; fi
[ $# -gt 0 ] || set -- "$REPO_DIR/corpora"
rm -rf "$out"; mkdir -p "$out/share/corpus"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
# Keep the paths the user gave, relative to the repository, inside the share.
for p in "$@"; do
    rel=$(realpath --relative-to="$REPO_DIR" "$p")
    mkdir -p "$out/share/corpus/$(dirname "$rel")"
    cp -r "$p" "$out/share/corpus/$rel"
done
boot() {  # boot N PATH… → out/replay-N.jsonl
    local n=$1; shift
    { echo 'cd /host/corpus'; printf '/host/bin/m2mfuzz replay --json'; printf ' %q' "$@"; echo " > /host/out/replay.jsonl"; } > "$out/job-$n.sh"
    # A time-out or a dead guest fails the script; replay's own verdict is in its results.
    lab_boot "$out/boot-$n" --share "$out/share" --timeout 900 "$out/job-$n.sh" || :
    [ -s "$out/share/out/replay.jsonl" ] || die "boot $n gave no replay results; console: $out/boot-$n/console.log"
    cp "$out/share/out/replay.jsonl" "$out/replay-$n.jsonl"
}
rels=(); for p in "$@"; do rels+=("$(realpath --relative-to="$REPO_DIR" "$p")"); done
boot 1 "${rels[@]}"
n=1
for again in $(jq -r 'select(.status.status == "not_run" and (.status.reason | contains("lockdep is off"))) | .path' "$out/replay-1.jsonl"); do
    n=$((n + 1)); boot "$n" "$again"
done
# The last result for each program counts.
jq -s -c 'reverse | unique_by(.path) | sort_by(.path) | .[]' "$out"/replay-*.jsonl > "$out/results.jsonl"
printf '%-48s %-8s %7s  %s\n' program result seconds "findings / reason"
jq -r '[.path, (.status.status | if . == "pass" then "pass" elif . == "fail" then "FAIL" else "NOT RUN" end),
        (.seconds * 10 | round / 10 | tostring),
        (if .status.status == "pass" then (if (.got | length) == 0 then "none" else (.got | join("; ")) end)
         else .status.reason end)] | @tsv' "$out/results.jsonl" \
    | while IFS=$'\t' read -r p r s why; do printf '%-48s %-8s %7s  %s\n' "$p" "$r" "$s" "$why"; done
pass=$(jq -s '[.[] | select(.status.status == "pass")] | length' "$out/results.jsonl")
total=$(jq -s 'length' "$out/results.jsonl")
echo "replay: $pass passed, $((total - pass)) failed ($n boots)"
[ "$pass" = "$total" ] || die "replay: unexpected outcomes; results in $out/results.jsonl"
