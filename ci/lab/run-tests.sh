#!/usr/bin/env bash
# Run the device tests in the lab (LAB_ARCH=arm64 for the arm64 one): build the static binaries,
# boot the lab kernel, run `m2mfuzz probe` and the lab_devices test binary in the guest. Exit
# code: the tests'.
#   run-tests.sh [--out DIR] [--cmdline "ARGS"]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/tests$LAB_SUFFIX" cmdline=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --cmdline) cmdline=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$REPO_DIR/corpora" "$out/share/"
cat > "$out/job.sh" <<'JOB'
cd /host
./bin/m2mfuzz probe > out/probe.txt 2>&1
./bin/m2mfuzz probe --json > out/probe.json 2>&1
start=$(cut -d' ' -f1 /proc/uptime)
./bin/lab_devices --include-ignored --test-threads=1 > out/lab_devices.log 2>&1
rc=$?
echo "guest test seconds: $(awk -v s="$start" -v e="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print e - s }')" >> out/lab_devices.log
exit $rc
JOB
set +e
"$LAB_DIR/run.sh" --out "$out" --timeout 900 --share "$out/share" --cmdline "$cmdline" "$out/job.sh"
rc=$?
set -e
cat "$out/share/out/lab_devices.log" 2>/dev/null || true
if grep -qE "WARNING:|BUG:|possible circular locking|Invalid wait context|INFO: task .* blocked" "$out/console.log"; then
    log "kernel reports in the console log during the device tests: $out/console.log"
    grep -nE "WARNING:|BUG:|possible circular locking|Invalid wait context|INFO: task .* blocked" "$out/console.log" | head >&2
    [ "$rc" != 0 ] || rc=1
fi
exit "$rc"
