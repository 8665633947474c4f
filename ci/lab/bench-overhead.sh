#!/usr/bin/env bash
# Harness overhead: ops/s of `m2mfuzz run --no-oracles` executing a fixed vim2m program vs the
# same program as a C loop (`m2mfuzz repro --c`, static), alternated in the same lab boot and
# timed by the same clock (ci/lab/bench/timeit.c). Two programs: cheap ioctls (QUERYBUF, where
# the harness's own cost shows most) and m2m jobs (QBUF/DQBUF, 1 ms transaction time). Prints a
# table, writes OUT/overhead.{md,json}. A benchmark: it asserts nothing.
#   bench-overhead.sh [--out DIR] [--reps 5] [--n 1000]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq gcc libc6-dev
out="$REPO_DIR/lab-out/bench-overhead" reps=5 n=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --n) n=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
rm -rf "$out"; mkdir -p "$out/share/progs"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
"$LAB_DIR/build-kernel.sh" >/dev/null
headers="$LAB_CACHE/headers/include"
gcc -O2 -static -o "$out/share/bin/timeit" "$LAB_DIR/bench/timeit.c"
head='# m2mfuzz program v1
# driver: vim2m
open node=vim2m -> c0
set_ctrl c0 id=0x981900 value=1
s_fmt c0 queue=out fourcc=RGBP width=64 height=48
s_fmt c0 queue=cap fourcc=RGBP width=64 height=48
reqbufs c0 queue=out count=4 memory=mmap
reqbufs c0 queue=cap count=4 memory=mmap'
{ echo "$head"; for i in $(seq 0 $((n - 1))); do echo "querybuf c0 queue=out index=$((i % 4))"; done; } \
    > "$out/share/progs/ioctls.m2m"
{ echo "$head"; echo "streamon c0 queue=out"; echo "streamon c0 queue=cap"
  for i in $(seq 0 $((n / 4 - 1))); do
      echo "qbuf c0 queue=out index=0 bytesused=6144"; echo "qbuf c0 queue=cap index=0"
      echo "dqbuf c0 queue=out timeout_ms=2000"; echo "dqbuf c0 queue=cap timeout_ms=2000"
  done; } > "$out/share/progs/jobs.m2m"
for p in ioctls jobs; do
    "$out/share/bin/m2mfuzz" repro --c "$out/share/progs/$p.m2m" -o "$out/share/progs/$p.c"
    gcc -O2 -static -w -I"$headers" -o "$out/share/progs/$p" "$out/share/progs/$p.c"
done
{
    echo "cd /host"
    for p in ioctls jobs; do
        for r in $(seq "$reps"); do
            echo "./bin/timeit 1 /host/bin/m2mfuzz run --no-oracles progs/$p.m2m >> out/$p-m2mfuzz.txt"
            echo "./bin/timeit 1 /host/progs/$p >> out/$p-c.txt"
        done
    done
    echo "exit 0"
} > "$out/job.sh"
"$LAB_DIR/run.sh" --out "$out" --share "$out/share" --timeout 1800 "$out/job.sh" >&2
ops() { grep -cv '^#' "$1"; }
for p in ioctls jobs; do
    jq -n --arg p "$p" --argjson ops "$(ops "$out/share/progs/$p.m2m")" \
        --slurpfile m <(cat "$out/share/out/$p-m2mfuzz.txt") --slurpfile c <(cat "$out/share/out/$p-c.txt") '
        def median: sort | .[(length - 1) / 2 | floor];
        {program: $p, ops: $ops, reps: ($m | length),
         m2mfuzz_s: ($m | median), c_s: ($c | median),
         m2mfuzz_ops_per_s: ($ops / ($m | median)), c_ops_per_s: ($ops / ($c | median)),
         ratio: (($c | median) / ($m | median))}'
done | jq -s '{date: (now | todate), cpus: 2, accel: "tcg", results: .}' > "$out/overhead.json"
jq -r '"| program | ops | m2mfuzz ops/s | C loop ops/s | ratio (target ≥ 0.90) |", "|---|---:|---:|---:|---:|",
    (.results[] | "| \(.program) | \(.ops) | \(.m2mfuzz_ops_per_s | round) | \(.c_ops_per_s | round) | \(.ratio * 100 | round / 100) |")' \
    "$out/overhead.json" | tee "$out/overhead.md"
