#!/usr/bin/env bash
# Harness overhead: ops/s of `m2mfuzz run --no-oracles --quiet` executing a fixed vim2m program vs
# the same ioctls as a plain C loop (ci/lab/bench/loop.c, static: the C reproducer's helpers,
# nothing printed per op), alternated in the same lab boot. Two programs: cheap ioctls (10 000
# QUERYBUFs, where the harness's own cost shows most) and m2m jobs (QBUF/DQBUF, 1 ms transaction
# time), plus the bare prologue, whose time is each process's fixed cost.
# Figures, each from the same timed runs:
# - execution (the target): each side's own clock from the first op after the node search to
#   the last (`run --timings`; loop.c prints the same), as ops/s: the rate at which programs
#   are executed, which is what fuzzing and stress do all day (their programs are made in memory);
# - whole runs (ci/lab/bench/timeit.c, one clock for both): also reading and parsing the
#   program text, process start and exit, which the C loop has compiled in;
# - marginal: whole-run ops/s past each process's fixed cost (the prologue program's run).
# Ratios are of medians, and "paired": the median over reps of the C run's time over the
# m2mfuzz run's just before it, steadier when the boot drifts. The first run of each side is
# untimed and checked: a failing op would make either side faster (it also pays TCG's
# translation of the code and the page cache). Single runs vary by +-15% under TCG, hence
# medians of 11. Prints a table, writes OUT/overhead.{md,json}; asserts nothing. LAB_ARCH=arm64
# runs it in the arm64 lab (both sides built for aarch64).
#   bench-overhead.sh [--out DIR] [--reps 11] [--n 1000] [--n-ioctls 10000]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq "${LAB_CC_PKGS[@]}"
out="$REPO_DIR/lab-out/bench-overhead$LAB_SUFFIX" reps=11 n=1000 n_ioctls=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --n) n=$2; shift 2 ;;
        --n-ioctls) n_ioctls=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
rm -rf "$out"; mkdir -p "$out/share/progs"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
"$LAB_DIR/build-kernel.sh" >/dev/null
headers="$LAB_CACHE/headers$LAB_SUFFIX/include"
"$LAB_CC" -O2 -static -o "$out/share/bin/timeit" "$LAB_DIR/bench/timeit.c"
"$LAB_CC" -O2 -static -Wall -I"$headers" -I"$REPO_DIR/src/repro" -o "$out/share/bin/loop" "$LAB_DIR/bench/loop.c"
head='# m2mfuzz program v1
# driver: vim2m
open node=vim2m -> c0
set_ctrl c0 id=0x981900 value=1
s_fmt c0 queue=out fourcc=RGBP width=64 height=48
s_fmt c0 queue=cap fourcc=RGBP width=64 height=48
reqbufs c0 queue=out count=4 memory=mmap
reqbufs c0 queue=cap count=4 memory=mmap'
echo "$head" > "$out/share/progs/prologue.m2m"
{ echo "$head"; for i in $(seq 0 $((n_ioctls - 1))); do echo "querybuf c0 queue=out index=$((i % 4))"; done; } \
    > "$out/share/progs/ioctls.m2m"
{ echo "$head"; echo "streamon c0 queue=out"; echo "streamon c0 queue=cap"
  for i in $(seq 0 $((n / 4 - 1))); do
      echo "qbuf c0 queue=out index=0 bytesused=6144"; echo "qbuf c0 queue=cap index=0"
      echo "dqbuf c0 queue=out timeout_ms=2000"; echo "dqbuf c0 queue=cap timeout_ms=2000"
  done; } > "$out/share/progs/jobs.m2m"
# What the C loop is told to do: the same ops as each program.
declare -A loop_n=([prologue]=0 [ioctls]=$n_ioctls [jobs]=$n)
{
    # Both sides run from the guest's tmpfs, as from a board's local disk: over 9p a page fault
    # in the (much larger) m2mfuzz binary costs a round trip to the host.
    echo "mkdir -p /tmp/b && cp /host/bin/m2mfuzz /host/bin/timeit /host/bin/loop /host/progs/* /tmp/b/ && cd /tmp/b"
    for p in prologue ioctls jobs; do
        # Untimed, and checked: a failing op would make either side faster.
        echo "./loop $p ${loop_n[$p]} || { echo 'C loop $p: ops failed'; exit 1; }"
        echo "./m2mfuzz run --no-oracles --quiet $p.m2m > $p.out"
        echo "if grep -E '^ *[0-9]+ ' $p.out; then echo 'm2mfuzz $p: ops failed'; exit 1; fi"
        for r in $(seq "$reps"); do
            echo "./timeit -e /tmp/b/$p-m2mfuzz-phases.txt 1 /tmp/b/m2mfuzz run --no-oracles --quiet --timings $p.m2m >> /host/out/$p-m2mfuzz.txt"
            echo "./timeit -e /tmp/b/$p-c-phases.txt 1 /tmp/b/loop $p ${loop_n[$p]} >> /host/out/$p-c.txt"
            # The default per-op table, for what printing it costs.
            echo "./timeit 1 /tmp/b/m2mfuzz run --no-oracles $p.m2m >> /host/out/$p-table.txt"
        done
        echo "cp /tmp/b/$p-*-phases.txt /host/out/"
    done
    echo "exit 0"
} > "$out/job.sh"
"$LAB_DIR/run.sh" --out "$out" --share "$out/share" --timeout 1800 "$out/job.sh" >&2
ops() { grep -cv '^#' "$1"; }
med() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# A number picked out of each line of a phases file by a sed expression, as a JSON array (in
# run order, so rep r of each side pairs up).
picks() { sed -n "$2" "$1" | jq -s .; }
per_op='s/.*, \([0-9.]*\) µs\/op.*/\1/p'
pm=$(med "$out/share/out/prologue-m2mfuzz.txt") pc=$(med "$out/share/out/prologue-c.txt")
pops=$(ops "$out/share/progs/prologue.m2m")
for p in ioctls jobs; do
    ph="$out/share/out/$p-m2mfuzz-phases.txt"
    jq -n --arg p "$p" --argjson ops "$(ops "$out/share/progs/$p.m2m")" --argjson pops "$pops" \
        --argjson m "$(med "$out/share/out/$p-m2mfuzz.txt")" --argjson c "$(med "$out/share/out/$p-c.txt")" \
        --argjson t "$(med "$out/share/out/$p-table.txt")" \
        --argjson ms "$(jq -s . "$out/share/out/$p-m2mfuzz.txt")" --argjson cs "$(jq -s . "$out/share/out/$p-c.txt")" \
        --argjson pm "$pm" --argjson pc "$pc" --argjson reps "$reps" \
        --argjson rm "$(picks "$ph" "$per_op")" \
        --argjson rc "$(picks "$out/share/out/$p-c-phases.txt" "$per_op")" \
        --argjson fork "$(picks "$ph" 's/.*fork \([0-9.]*\) ms.*/\1/p')" \
        --argjson parse "$(picks "$ph" 's/.*read+parse \([0-9.]*\) ms.*/\1/p')" \
        --argjson search "$(picks "$ph" 's/.*node search \([0-9.]*\) ms.*/\1/p')" '
        def median: sort | .[(length - 1) / 2 | floor];
        def paired($c; $m): [range($m | length)] | map($c[.] / $m[.]) | median;
        if ($rm | length) != $reps or ($rc | length) != $reps then
            error("\($p): \($rm | length) m2mfuzz and \($rc | length) C in-process figures for \($reps) reps")
        else . end |
        {program: $p, ops: $ops, reps: $reps,
         m2mfuzz_exec_us_per_op: ($rm | median), c_exec_us_per_op: ($rc | median),
         m2mfuzz_exec_ops_per_s: (1e6 / ($rm | median)), c_exec_ops_per_s: (1e6 / ($rc | median)),
         exec_ratio: (($rc | median) / ($rm | median)), exec_paired_ratio: paired($rc; $rm),
         m2mfuzz_s: $m, c_s: $c, m2mfuzz_with_table_s: $t,
         paired_ratio: paired($cs; $ms),
         m2mfuzz_fixed_s: $pm, c_fixed_s: $pc,
         m2mfuzz_ops_per_s: ($ops / $m), c_ops_per_s: ($ops / $c), ratio: ($c / $m),
         m2mfuzz_marginal_ops_per_s: (($ops - $pops) / ($m - $pm)),
         c_marginal_ops_per_s: (($ops - $pops) / ($c - $pc)),
         marginal_ratio: (($c - $pc) / ($m - $pm)),
         m2mfuzz_fork_ms: ($fork | median), m2mfuzz_read_parse_ms: ($parse | median),
         m2mfuzz_node_search_ms: ($search | median)}'
done | jq -s '{date: (now | todate), cpus: 2, accel: "tcg", results: .}' > "$out/overhead.json"
jq -r '"Execution (target ≥ 0.90): each side'"'"'s own clock from the first op after the node search to the last; medians of \(.results[0].reps) alternated runs.",
    "",
    "| program | ops | m2mfuzz ops/s | C loop ops/s | ratio | paired ratio |",
    "|---|---:|---:|---:|---:|---:|",
    (.results[] | "| \(.program) | \(.ops) | \(.m2mfuzz_exec_ops_per_s | round) | \(.c_exec_ops_per_s | round) | \(.exec_ratio * 100 | round / 100) | \(.exec_paired_ratio * 100 | round / 100) |"),
    "",
    "Whole runs, the same runs timed from outside: also reading and parsing the program text, the fork of the executor, process start and exit.",
    "",
    "| program | m2mfuzz ops/s | C loop ops/s | ratio | paired ratio | with per-op table | marginal: m2mfuzz | C | ratio | fixed s: m2mfuzz | C | m2mfuzz read+parse ms | fork ms | node search ms |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    (.results[] | "| \(.program) | \(.m2mfuzz_ops_per_s | round) | \(.c_ops_per_s | round) | \(.ratio * 100 | round / 100) | \(.paired_ratio * 100 | round / 100) | \(.ops / .m2mfuzz_with_table_s | round) | \(.m2mfuzz_marginal_ops_per_s | round) | \(.c_marginal_ops_per_s | round) | \(.marginal_ratio * 100 | round / 100) | \(.m2mfuzz_fixed_s * 100 | round / 100) | \(.c_fixed_s * 1000 | round / 1000) | \(.m2mfuzz_read_parse_ms) | \(.m2mfuzz_fork_ms) | \(.m2mfuzz_node_search_ms) |")' \
    "$out/overhead.json" | tee "$out/overhead.md"
