#!/usr/bin/env bash
# The main job without hardware: boot the lab kernel and run m2mfuzz in it (probe, the sample
# program, and a generated program), printing what m2mfuzz prints.
#   main.sh [--out DIR] [--cmdline "ARGS"]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/main" cmdline=""
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
set -x
./bin/m2mfuzz probe
./bin/m2mfuzz run corpora/lab/vim2m-job.m2m
./bin/m2mfuzz generate --driver vim2m --seed 1 --ops 20 > /tmp/gen.m2m
cat /tmp/gen.m2m
./bin/m2mfuzz run /tmp/gen.m2m
JOB
set +e
"$LAB_DIR/run.sh" --out "$out" --timeout 600 --share "$out/share" --cmdline "$cmdline" "$out/job.sh"
rc=$?
set -e
cat "$out/share/out/job.log" 2>/dev/null || true
exit $rc
