#!/usr/bin/env bash
# The fuzz path end to end in the lab: `m2m_vim2m` with a fault switch on must save an artifact
# within BUDGET seconds; `m2mfuzz decode` turns it into a program, which `replay` (a fresh boot,
# the same switch) must reproduce with the finding the fuzzer aborted on.
#   fuzz-check.sh [--out DIR] [--budget SECONDS] [--switch "module.param=value …"]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/fuzz-check" budget=180
switch="videobuf2_common.rf_fault=2 vim2m.rf_error_every=1"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --switch) switch=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
"$LAB_DIR/fuzz.sh" --out "$out/fuzz" --target m2m_vim2m --seconds "$budget" --cmdline "$switch"
arts=("$out"/fuzz/share/out/artifacts/crash-*)
[ -f "${arts[0]}" ] || die "m2m_vim2m with $switch saved no artifact in ${budget}s (see $out/fuzz/share/out/fuzz.log)"
log_file="$out/fuzz/share/out/fuzz.log"
# The findings the fuzzer aborted on, one `FINDING: kind: title` line each: replay expects them all.
mapfile -t found < <(sed -n 's/^FINDING: //p' "$log_file" | sort -u)
[ ${#found[@]} -gt 0 ] || die "the fuzz log names no finding (see $log_file)"
log "artifact $(basename "${arts[0]}"): ${found[*]}"
mkdir -p "$out/replay"
prog="$out/replay/fuzz-artifact.m2m"
cargo build --quiet --release --locked --bin m2mfuzz
"$REPO_DIR/target/release/m2mfuzz" decode --driver vim2m "${arts[0]}" > "$prog.body"
{
    head -1 "$prog.body"
    echo "# switch: $switch"
    printf '# expect: %s\n' "${found[@]}"
    tail -n +2 "$prog.body"
} > "$prog"
rm "$prog.body"
"$LAB_DIR/replay.sh" "$prog"
