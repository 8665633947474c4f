#!/usr/bin/env bash
# Run a cargo fuzz target in the lab: built statically without a sanitizer, run in a fresh boot
# for SECONDS against the lab's drivers, with kernel coverage guiding it (KCOV=on), only counted
# (observe) or not collected (off). Results in OUT/share/out: fuzz.log (libFuzzer's output),
# edges ("EXECS EDGES": distinct kernel edges seen), corpus/, findings/ (one directory per finding
# signature: finding.json, input.bin, program.m2m, evidence.txt; fuzzing goes on after each),
# artifacts/ (libFuzzer's own: a crash of m2mfuzz itself). Prints one summary line.
# Inputs are mutated as programs (the targets' custom mutator) unless --mutator bytes.
# libFuzzer gets -max_len=16384 -len_control=0: a program's text is 2-6 KB, and a smaller limit
# costs a mutated program its ops (the mutator removes ops until it fits).
#   fuzz.sh [--out DIR] [--target m2m_vim2m] [--seconds 300] [--kcov on|observe|off]
#           [--mutator programs|bytes] [--cmdline "SWITCHES"] [--seeds DIR] [-- LIBFUZZER-ARGS…]
set -euo pipefail
. "$(dirname "$0")/common.sh"
out="$REPO_DIR/lab-out/fuzz" target=m2m_vim2m secs=300 kcov=on mutator=programs cmdline="" seeds=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --target) target=$2; shift 2 ;;
        --seconds) secs=$2; shift 2 ;;
        --kcov) kcov=$2; shift 2 ;;
        --mutator) mutator=$2; shift 2 ;;
        --cmdline) cmdline=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown argument $1 (libFuzzer arguments go after --)" ;;
    esac
done
case "$kcov" in on|observe|off) ;; *) die "--kcov on|observe|off, not $kcov" ;; esac
case "$mutator" in programs|bytes) ;; *) die "--mutator programs|bytes, not $mutator" ;; esac
# build_fuzz_target builds for either architecture (ci/board-build.sh --fuzz: the boards'), but
# no aarch64 target has run in the arm64 lab yet.
[ "$LAB_ARCH" = x86_64 ] || die "fuzz.sh runs in the x86_64 lab only (LAB_ARCH=$LAB_ARCH); for the boards: ci/board-build.sh --fuzz"
[ -n "$seeds" ] || seeds="$REPO_DIR/fuzz/seeds/$target"
rm -rf "$out"; mkdir -p "$out/share/seeds"
[ -d "$seeds" ] && cp -r "$seeds"/. "$out/share/seeds/"
build_fuzz_target "$target" "$out/share"
{
    echo "cd /host && mkdir -p out/corpus out/artifacts"
    printf 'M2MFUZZ_KCOV=%s M2MFUZZ_MUTATOR=%s M2MFUZZ_EDGES_FILE=/host/out/edges M2MFUZZ_FINDINGS=/host/out ./bin/%s -max_total_time=%s -max_len=16384 -len_control=0 -rss_limit_mb=0 -timeout=120 -artifact_prefix=/host/out/artifacts/' "$kcov" "$mutator" "$target" "$secs"
    [ $# -eq 0 ] || printf ' %q' "$@"
    echo ' /host/out/corpus /host/seeds > /host/out/fuzz.log 2>&1'
    echo 'echo "libfuzzer exit $?" >> /host/out/fuzz.log'
    # The harness removes its tracefs instance at exit.
    echo 'echo "tracefs instances left: $(ls /sys/kernel/tracing/instances | tr "\n" " ")" >> /host/out/fuzz.log'
    echo "exit 0"
} > "$out/job.sh"
log "fuzzing $target for ${secs}s in the lab (KCOV $kcov, mutator $mutator) ${cmdline:+with $cmdline}"
# The job exits 0 whatever libFuzzer found; a time-out or a dead guest fails the script.
lab_boot "$out" --timeout $((secs + 300)) --share "$out/share" --cmdline "$cmdline" "$out/job.sh"
log_file="$out/share/out/fuzz.log"
[ -f "$log_file" ] || die "no fuzz.log: see $out/console.log"
read -r execs edges < "$out/share/out/edges" 2>/dev/null || { execs=0; edges=0; }
cov=$(grep -o 'cov: [0-9]*' "$log_file" | tail -1 | cut -d' ' -f2 || true)
arts=$(ls "$out/share/out/artifacts" | tr '\n' ' ')
nfind=0 hits=0
for j in "$out"/share/out/findings/*/finding.json; do
    [ -f "$j" ] || continue
    nfind=$((nfind + 1)) hits=$((hits + $(sed -n 's/^ *"hits": \([0-9]*\).*/\1/p' "$j")))
done
new=$(grep -c '#[0-9]*.*NEW ' "$log_file" || true)
echo "$target kcov=$kcov mutator=$mutator ${secs}s: execs $execs, kernel edges $edges, libFuzzer cov ${cov:-0}, NEW ${new:-0}, findings $nfind (hits $hits), artifacts: ${arts:-none}"
