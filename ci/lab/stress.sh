#!/usr/bin/env bash
# Run `m2mfuzz stress` in the lab and write its report on the host.
#   stress.sh [--out DIR] [--profile FILE] [--cmdline "ARGS"] [--timeout S] [-- STRESS-ARGS…]
# STRESS-ARGS go to `m2mfuzz stress` (e.g. --duration 60s --switch vim2m.rf_error_every=3
# --stop-on-finding --seed 7). The run directory comes back in DIR/share/out/run, the report in
# DIR/report.md. Exit code: m2mfuzz's (0 clean, 1 findings), or the runner's (124, 125).
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/stress" profile="stress-profiles/lab-smoke.toml" cmdline="" timeout=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --cmdline) cmdline=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown argument $1 (stress arguments go after --)" ;;
    esac
done
[ -f "$REPO_DIR/$profile" ] || die "profile $profile not found (give it relative to the repository)"
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$REPO_DIR/stress-profiles" "$out/share/"
mkdir -p "$out/share/stress-profiles/$(dirname "$profile")"
cp "$REPO_DIR/$profile" "$out/share/$profile"
# The time limit: the profile's duration (or --duration) plus boot and a margin for hangs.
dur=$(printf '%s\n' "$@" | awk 'p { print; exit } /^--duration$/ { p = 1 }')
[ -n "$dur" ] || dur=$(sed -n 's/^duration *= *"\{0,1\}\([0-9a-z]*\)"\{0,1\}.*/\1/p' "$REPO_DIR/$profile" | head -1)
secs=$(awk -v d="$dur" 'BEGIN { n = d + 0; u = substr(d, length(n "") + 1);
    print (u == "m" ? n * 60 : u == "h" ? n * 3600 : n) }')
[ -n "$timeout" ] || timeout=$((secs + 300))
{
    echo "cd /host"
    printf './bin/m2mfuzz stress --profile %q --out out/run --plain' "$profile"
    printf ' %q' "$@"
    echo
} > "$out/job.sh"
log "stress in the lab: $profile $*, time limit ${timeout}s"
set +e
"$LAB_DIR/run.sh" --out "$out" --timeout "$timeout" --share "$out/share" --cmdline "$cmdline" "$out/job.sh"
rc=$?
set -e
cat "$out/share/out/job.log" 2>/dev/null || true
if [ -f "$out/share/out/run/run.json" ]; then
    "$out/share/bin/m2mfuzz" report "$out/share/out/run" -o "$out/report.md"
    log "report: $out/report.md"
fi
exit $rc
