#!/usr/bin/env bash
# Shrink a program or a stress finding directory in the lab the way a board does: `m2mfuzz shrink
# --state` in one boot, then `m2mfuzz shrink --resume` in a fresh boot each time it exits 3 (a
# lockdep report switched lockdep off, so the next candidate needs a new boot), until it ends.
# The program's `# switch:` (or the finding's switches) are set at run time in each boot.
# Writes OUT/shrunk.m2m (OUT/shrunk.m2m.N.m2m when the interleaving is kept) and OUT/result.json
# (ops before/after, boots, candidates, runs, wall seconds incl. boots); prints the result line.
#   shrink.sh [--out DIR] [--max-boots N] INPUT [m2mfuzz shrink options, e.g. --finding "kind: title"]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/shrink" max=80
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --max-boots) max=$2; shift 2 ;;
        *) break ;;
    esac
done
input=${1:?usage: shrink.sh [--out DIR] [--max-boots N] PROGRAM|FINDING_DIR [shrink options]}; shift
rm -rf "$out"; mkdir -p "$out/share/state"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$input" "$out/share/input"
t0=$(date +%s) boot=0 rc=3
state_sum() { { cat "$out/share/state/shrink.json" 2>/dev/null || :; } | sha256sum; }
while [ "$rc" = 3 ]; do
    boot=$((boot + 1))
    [ $boot -le "$max" ] || die "the shrink still asks for a reboot after $max boots (state: $out/share/state)"
    if [ $boot = 1 ]; then
        cmd="./bin/m2mfuzz shrink input --state state/shrink.json -o state/shrunk.m2m"
        [ $# -eq 0 ] || cmd+=$(printf ' %q' "$@")
    else
        cmd="./bin/m2mfuzz shrink --resume state/shrink.json"
    fi
    printf 'cd /host\n%s >> state/shrink.log 2>&1\necho $? > state/rc\n' "$cmd" > "$out/job.sh"
    rm -f "$out/share/state/rc"
    before=$(state_sum)
    if ! lab_boot_status "$out/boot-$boot" --share "$out/share" --timeout 1200 "$out/job.sh" \
        && guest_failed "$LAB_RC"; then
        # The candidate running took the guest down: the state names it and --resume counts it
        # as not reproducing; a boot that moved the state on not at all is a failure.
        [ "$(state_sum)" != "$before" ] \
            || die "boot $boot: the guest failed (exit $LAB_RC) and the shrink made no progress; console: $out/boot-$boot/console.log"
        log "boot $boot: the guest failed (exit $LAB_RC; console: $out/boot-$boot/console.log); the running candidate counts as not reproducing"
    fi
    rc=$(cat "$out/share/state/rc" 2>/dev/null || echo 3)
    log "boot $boot: shrink exit $rc"
done
secs=$(( $(date +%s) - t0 ))
[ "$rc" = 0 ] || die "the shrink failed (exit $rc); log: $out/share/state/shrink.log"
cp "$out/share/state"/shrunk.m2m* "$out/"
line=$(grep '^shrunk ' "$out/share/state/shrink.log" | tail -1)
before=$(sed -n 's/^shrunk \([0-9]*\) -> .*/\1/p' <<< "$line")
after=$(sed -n 's/^shrunk [0-9]* -> \([0-9]*\) ops.*/\1/p' <<< "$line")
jq -n --arg i "$input" --argjson b "$before" --argjson a "$after" --argjson boots "$boot" --argjson s "$secs" \
    --slurpfile st "$out/share/state/shrink.json" \
    '{input: $i, ops_before: $b, ops_after: $a, boots: $boots, seconds: $s,
      candidates: ($st[0].answers | length), runs: $st[0].runs}' > "$out/result.json"
echo "shrunk $input: $before -> $after ops in $boot boots, ${secs}s wall ($(jq .runs "$out/result.json") runs)"
