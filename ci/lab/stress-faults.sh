#!/usr/bin/env bash
# Does the stress engine find each fault? For every corpora/faults/*.m2m, boot the lab with its
# `# switch:` on the kernel command line, run `m2mfuzz stress` (lab-smoke, --until the program's
# `# expect:` finding) for up to BUDGET seconds per seed, and check that the finding was stored;
# findings on the way (the same fault seen on the other driver, say) are kept and passed.
# Prints a table with the time to that finding (median and max over the seeds) and writes it to
# OUT/results.md and OUT/results.jsonl. Exit 1 when a fault is never found.
#   stress-faults.sh [--out DIR] [--budget SECONDS] [--seeds "1 2 3"] [PROGRAM…]
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/stress-faults" budget=120 seeds="1"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        *) break ;;
    esac
done
progs=("$@")
[ ${#progs[@]} -gt 0 ] || progs=("$REPO_DIR"/corpora/faults/*.m2m)
rm -rf "$out"; mkdir -p "$out/share"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
cp -r "$REPO_DIR/stress-profiles" "$out/share/"
header() { sed -n "s/^# $2: //p" "$1" | head -1; }
: > "$out/results.jsonl"
missed=0 dead=0
for p in "${progs[@]}"; do
    name=$(basename "$p" .m2m)
    switch=$(header "$p" switch)
    expect=$(header "$p" expect)
    times=()
    for seed in $seeds; do
        job="$out/job-$name-$seed.sh"
        cat > "$job" <<JOB
cd /host
./bin/m2mfuzz stress --profile stress-profiles/lab-smoke.toml --duration ${budget}s --seed $seed \
    --until "$expect" --plain --out out/run
JOB
        died=""
        lab_boot_status "$out/$name-$seed" --timeout $((budget + 240)) --share "$out/share" \
            --cmdline "$switch" "$job" || :
        if guest_failed "$LAB_RC"; then
            died="guest failed (exit $LAB_RC; console: $out/$name-$seed/console.log)"; dead=$((dead + 1))
            # Nothing lost: what the console holds becomes findings of the run, shown below.
            [ ! -f "$out/share/out/run/run.json" ] || host_run "$out/share/bin/m2mfuzz" stress --recover \
                "$out/share/out/run" --console "$out/$name-$seed/console.log" > "$out/$name-$seed/recover.txt" 2>&1 || :
        fi
        t=$(cat "$out"/share/out/run/findings/*/finding.json 2>/dev/null \
            | jq -rs --arg e "$expect" 'map(select((.kind + ": " + .title) == $e)) | .[0].first_seen_s // empty' || true)
        found=$(cat "$out"/share/out/run/findings/*/finding.json 2>/dev/null | jq -rs 'map(.kind + ": " + .title) | join("; ")' || true)
        rm -rf "$out/$name-$seed/run"; cp -r "$out/share/out/run" "$out/$name-$seed/run" 2>/dev/null || true
        if [ -n "$died" ]; then t=""; found="$died; recovered: ${found:-nothing}"; log "$name seed $seed: $found"
        elif [ -n "$t" ]; then times+=("$t"); log "$name seed $seed: found in ${t}s"; else
            log "$name seed $seed: NOT found in ${budget}s (found: ${found:-nothing})"; fi
        jq -cn --arg n "$name" --arg s "$switch" --arg e "$expect" --arg seed "$seed" --arg t "$t" --arg f "$found" \
            '{program: $n, switch: $s, expect: $e, seed: ($seed|tonumber), seconds: (if $t == "" then null else ($t|tonumber) end), found: $f}' \
            >> "$out/results.jsonl"
    done
    [ ${#times[@]} -gt 0 ] || missed=$((missed + 1))
done
{
    echo "| fault (switch) | expected finding | found | median s | max s |"
    echo "|---|---|---:|---:|---:|"
    jq -rs 'group_by(.program)[] | . as $g
        | ($g | map(select(.seconds != null) | .seconds) | sort) as $t
        | "| \($g[0].program) (`\($g[0].switch)`) | \($g[0].expect) | \($t | length)/\($g | length) | "
          + (if ($t|length) > 0 then ($t[(($t|length) - 1) / 2 | floor] * 10 | round / 10 | tostring) else "-" end) + " | "
          + (if ($t|length) > 0 then ($t[-1] * 10 | round / 10 | tostring) else "-" end) + " |"' "$out/results.jsonl"
} > "$out/results.md"
cat "$out/results.md"
[ $dead = 0 ] || log "$dead boot(s) timed out or died (the console paths are above)"
[ $missed = 0 ] || log "$missed fault(s) not found by stress within ${budget}s"
[ $missed = 0 ] && [ $dead = 0 ] || exit 1
