#!/usr/bin/env bash
# The fuzz path end to end in the lab: `m2m_vim2m` with a fault switch on must store a finding
# within BUDGET seconds and go on fuzzing after it (libFuzzer runs to its time limit and exits 0;
# later inputs ran, the finding's hit count says how many of them showed it again); `m2mfuzz
# decode` turns the stored input into a program, which `replay` (a fresh boot, the same switch)
# must reproduce with every finding that input showed.
#   fuzz-check.sh [--out DIR] [--budget SECONDS] [--switch "module.param=value …"]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/fuzz-check" budget=90
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
res="$out/fuzz/share/out"
log_file="$res/fuzz.log"
grep -qx 'libfuzzer exit 0' "$log_file" \
    || die "libFuzzer did not run to its time limit: $(grep '^libfuzzer exit' "$log_file" || echo 'no exit line') (see $log_file)"
arts=("$res"/artifacts/crash-*)
[ ! -e "${arts[0]}" ] || die "libFuzzer saved a crash artifact: m2mfuzz itself crashed (see $log_file)"
# The finding stored first (the lowest input number).
first="" first_n=""
for j in "$res"/findings/*/finding.json; do
    [ -f "$j" ] || continue
    n=$(sed -n 's/^ *"epoch": \([0-9]*\).*/\1/p' "$j")
    if [ -z "$first" ] || [ "$n" -lt "$first_n" ]; then first=$(dirname "$j") first_n=$n; fi
done
[ -n "$first" ] || die "m2m_vim2m with $switch stored no finding in ${budget}s (see $log_file)"
hits=$(sed -n 's/^ *"hits": \([0-9]*\).*/\1/p' "$first/finding.json")
read -r execs _ < "$res/edges"
[ "$execs" -gt "$first_n" ] \
    || die "no input ran after the first finding (input $first_n of $execs): fuzzing stopped at it"
log "first finding on input $first_n of $execs, seen on $hits inputs: $(basename "$first")"
[ -f "$first/input.bin" ] || die "$first has no input.bin"
# Every finding that input showed, as the stored program's `# expect:` lines: replay expects them all.
mapfile -t found < <(sed -n 's/^# expect: //p' "$first/program.m2m")
[ ${#found[@]} -gt 0 ] || die "$first/program.m2m names no finding"
mkdir -p "$out/replay"
prog="$out/replay/fuzz-finding.m2m"
cargo build --quiet --release --locked --bin m2mfuzz
"$REPO_DIR/target/release/m2mfuzz" decode --driver vim2m "$first/input.bin" > "$prog.body"
{
    head -1 "$prog.body"
    echo "# switch: $switch"
    printf '# expect: %s\n' "${found[@]}"
    tail -n +2 "$prog.body"
} > "$prog"
rm "$prog.body"
"$LAB_DIR/replay.sh" "$prog"
