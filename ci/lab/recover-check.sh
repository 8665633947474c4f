#!/usr/bin/env bash
# Lose nothing when the kernel dies: boot the lab running a long stress run and kill the guest
# mid-run (QEMU killed, as a hard hang or power loss would); boot again and run
# `m2mfuzz stress --recover` on the run directory. It must name, per worker, the program running
# when the guest died: the same program as that worker's last marker in the dead boot's console.
#   recover-check.sh [--out DIR] [--kill-after SECONDS]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/recover" kill_after=40
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --kill-after) kill_after=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
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
set +e
"$LAB_DIR/run.sh" --out "$out/dead" --timeout "$kill_after" --share "$out/share" "$out/share/stress.sh"
rc=$?
set -e
[ $rc = 124 ] || die "the stress boot was to be killed at ${kill_after}s, but it ended with $rc"
cp "$out/dead/console.log" "$out/share/dead-console.log"
cat > "$out/share/recover.sh" <<'JOB'
cd /host
./bin/m2mfuzz stress --recover runs/run --console dead-console.log > out/recover.txt
JOB
"$LAB_DIR/run.sh" --out "$out/again" --timeout 120 --share "$out/share" "$out/share/recover.sh"
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
