#!/usr/bin/env bash
# Lose nothing when the kernel dies: boot the lab running a long stress run and kill the guest
# mid-run (QEMU killed, as a hard hang or power loss would); boot again and run
# `m2mfuzz stress --recover` on the run directory. It must name, per worker, the program running
# when the guest died: the same program as that worker's last marker in the dead boot's console.
# Then the wedge: `stress.sh` with `videobuf2_common.rf_fault=128` (a release fence put twice) on
# the kernel command line, whose refcount underflow wedges the kernel so the run stores nothing
# itself; the guest must time out or die, and stress.sh must by itself recover a stored splat
# finding "refcount bug in <caller>" from the console, attributed to the programs running then.
#   recover-check.sh [--out DIR] [--kill-after SECONDS] [--wedge-limit SECONDS]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/recover" kill_after=40 wedge_limit=150
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --kill-after) kill_after=$2; shift 2 ;;
        --wedge-limit) wedge_limit=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
# Absolute: stress.sh takes the wedge profile by an absolute path, and runs from elsewhere.
out=$(realpath -m "$out")
rm -rf "$out"; mkdir -p "$out/share/runs"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$REPO_DIR/stress-profiles" "$out/share/"
# lab-smoke with one long epoch, so the kill lands while programs run, not in the quiet point
# between epochs where every worker has finished (which --recover would rightly report as such).
sed 's/^epoch_ms = .*/epoch_ms = 120000/' "$REPO_DIR/stress-profiles/lab-smoke.toml" > "$out/share/recover.toml"
cat > "$out/share/stress.sh" <<'JOB'
cd /host
./bin/m2mfuzz stress --profile recover.toml --duration 10m --seed 5 --plain --out runs/run
JOB
rc=0
"$LAB_DIR/run.sh" --out "$out/dead" --timeout "$kill_after" --share "$out/share" "$out/share/stress.sh" || rc=$?
[ $rc = 124 ] || die "the stress boot was to be killed at ${kill_after}s, but it ended with $rc"
cp "$out/dead/console.log" "$out/share/dead-console.log"
cat > "$out/share/recover.sh" <<'JOB'
cd /host
./bin/m2mfuzz stress --recover runs/run --console dead-console.log > out/recover.txt
JOB
# --recover exits 1 when the dead boot's console held kernel reports it stored as findings.
rc=0
"$LAB_DIR/run.sh" --out "$out/again" --timeout 120 --share "$out/share" "$out/share/recover.sh" || rc=$?
[ $rc = 0 ] || [ $rc = 1 ] || die "the recover boot failed (exit $rc); console: $out/again/console.log"
cat "$out/share/out/recover.txt"
running=$(grep -c "RUNNING" "$out/share/out/recover.txt" || true)
[ "$running" -ge 1 ] || die "--recover named no running program"
# Each running program must be that worker's last program marker in the dead boot's console.
grep -o "worker [0-9]* program [0-9]* seed [0-9]*: RUNNING" "$out/share/out/recover.txt" \
    | while read -r _ w _ k _; do
    last=$(grep -o "m2mfuzz: worker $w program [0-9]*" "$out/dead/console.log" | tail -1 | awk '{ print $5 }')
    # The journal is written before the marker: a kill between the two leaves the marker one behind.
    [ "$last" = "$k" ] || [ "$last" = "$((k - 1))" ] || die "worker $w: --recover says program $k, the console's last marker says ${last:-none}"
    log "worker $w: program $k was running when the guest died (console marker agrees)"
done
log "recover: $running running program(s) named, journal and console agree"

# The wedge, recovered by the lab runner itself. One long epoch again: the report comes before
# any epoch could conclude, so the run's own oracles never read it (with lab-smoke's 2 s epochs
# the first epoch may still conclude and store it live; what wedges after is recovered then).
need_pkgs jq
w="$out/wedge" rc=0
cp "$out/share/recover.toml" "$out/wedge.toml"
"$LAB_DIR/stress.sh" --out "$w" --profile "$out/wedge.toml" --cmdline "videobuf2_common.rf_fault=128" \
    --timeout "$wedge_limit" -- --duration 60s --seed 1 > "$out/wedge.log" 2>&1 || rc=$?
guest_failed $rc || die "the wedge run was to time out or kill the guest (124/125), it ended with $rc; log: $out/wedge.log, console: $w/console.log"
grep -q "refcount_t: underflow" "$w/console.log" || die "no refcount underflow in the wedged boot's console $w/console.log"
grep -q "stress --recover: " "$out/wedge.log" || die "stress.sh did not run stress --recover after the guest failed; log: $out/wedge.log"
run="$w/share/out/run"
found=$(for f in "$run"/findings/*/finding.json; do [ -f "$f" ] && jq -c --arg d "$(dirname "$f")" '. + {dir: $d}' "$f"; done \
    | jq -rs 'map(select(.kind == "splat" and (.title | startswith("refcount bug in ")) and .under_test
        and .recovered_from != null and (.epoch_programs | length) > 0)) | sort_by(.first_seen_s) | .[0] // empty | "\(.dir)\t\(.title)\t\(.epoch_programs | map("w\(.[0])-p\(.[1])") | join(" "))"')
[ -n "$found" ] || die "no recovered splat finding \"refcount bug in …\" with its programs in $run/findings ($w/recover.txt)"
IFS=$'\t' read -r dir title progs <<< "$found"
case "$title" in *refcount_warn_saturate*) die "the finding is titled by refcount_warn_saturate: $title" ;; esac
grep -q "refcount_t: underflow" "$dir/evidence.txt" || die "$dir/evidence.txt lacks the report"
grep -q "^# expect: splat: $title" "$dir/program.m2m" || die "$dir/program.m2m does not expect its finding"
# Each program it names must be that worker's last marker before the report in the console.
for p in $progs; do
    wk=${p#w}; wk=${wk%-p*}; k=${p#*-p}
    ls "$dir/programs/w$wk-p$k.m2m" >/dev/null || die "$dir/programs has no w$wk-p$k.m2m"
    last=$(sed -n '/refcount_t: underflow/q; p' "$w/console.log" | grep -o "m2mfuzz: worker $wk program [0-9]*" | tail -1 | awk '{ print $5 }')
    [ "$last" = "$k" ] || die "worker $wk: the finding names program $k, the console's last marker before the report says ${last:-none}"
done
log "wedge: the guest failed ($rc) and stress.sh stored \"splat: $title\" from the console, attributed to $progs ($dir)"
