#!/usr/bin/env bash
# Ground truth for the oracles: run each corpora/faults/*.m2m in a fresh lab boot with the kernel
# command line from its `# switch:` header, and check the symptom its `# symptom:` header names:
#   hang        a `wait` on a published vb2 fence timed out and the fence is still unsignalled
#   leak        the tracefs ledger has a vb2 fence emitted (published) but never signalled
#   splat TEXT  the console log contains TEXT
#   stale       a fence said signalled (the stub) and a later `check` found the canary
#   early       a vb2 fence said signalled and a later `check` found the canary
#   unfreed     the tracefs ledger has a vb2 fence emitted (published) but never destroyed
# These checks are independent of m2mfuzz's oracles; the oracles' findings (JSON lines of
# `m2mfuzz run --json`) must in turn equal the program's `# expect:` lines exactly.
# Then run every program in one boot with no switch (the control), where no symptom and no
# finding may appear. Lockdep reports once per boot, hence a boot per program.
#   faults.sh [--out DIR] [--update-docs] [PROGRAM…]
# --update-docs writes the switch → finding table of this run into README.md and ci/lab/README.md.
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq
out="$REPO_DIR/lab-out/faults" update_docs=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --update-docs) update_docs=1; shift ;;
        *) break ;;
    esac
done
progs=("$@")
[ ${#progs[@]} -gt 0 ] || progs=("$REPO_DIR"/corpora/faults/*.m2m)
rm -rf "$out"; mkdir -p "$out/share/progs"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
for p in "${progs[@]}"; do cp "$p" "$out/share/progs/"; done

cat > "$out/share/run-one.sh" <<'JOB'
# run-one.sh NAME: run progs/NAME.m2m with the dma_fence ledger on; results in out/NAME.*
name=$1; T=/sys/kernel/tracing
echo 1 > $T/events/dma_fence/enable
./bin/m2mfuzz run --json "progs/$name.m2m" > "out/$name.jsonl" 2> "out/$name.err"
echo "$?" > "out/$name.rc"
sleep 1
echo 0 > $T/events/dma_fence/enable
cat $T/trace > "out/$name.trace"
echo > $T/trace
JOB

header() { sed -n "s/^# $2: //p" "$1" | head -1; }

# Fences published (emit, driver=vb2) and never signalled, as "context:seqno" lines.
unsignalled() {
    awk '/dma_fence_(emit|signaled): driver=vb2 / {
            match($0, /context=[0-9]+ seqno=[0-9]+/); k = substr($0, RSTART, RLENGTH)
            if ($0 ~ /dma_fence_emit/) e[k] = 1; else s[k] = 1 }
         END { for (k in e) if (!(k in s)) print k }' "$1"
}

# Fences published (emit, driver=vb2) and never destroyed, as "context:seqno" lines.
undestroyed() {
    awk '/dma_fence_(emit|destroy): driver=vb2 / {
            match($0, /context=[0-9]+ seqno=[0-9]+/); k = substr($0, RSTART, RLENGTH)
            if ($0 ~ /dma_fence_emit/) e[k] = 1; else d[k] = 1 }
         END { for (k in e) if (!(k in d)) print k }' "$1"
}

# `wait` ops that timed out on a vb2 fence still unsignalled (status 0 in fence_info).
hung_waits() {
    jq -r 'select((.op // "" | startswith("wait ")) and .result.result == "timed_out"
                  and ((.detail // "") | test("vb2/[^ ]*:0"))) | .op' "$1"
}

check() {  # check NAME SYMPTOM RESULTS CONSOLE → 0 when the symptom shows
    local name=$1 symptom=$2 r=$3 console=$4
    [ -f "$r/$name.jsonl" ] && [ -f "$r/$name.trace" ] || die "$name: no results in $r (see $console)"
    case "$symptom" in
        hang) [ -n "$(hung_waits "$r/$name.jsonl")" ] ;;
        leak) [ -n "$(unsignalled "$r/$name.trace")" ] ;;
        splat\ *) grep -qF -- "${symptom#splat }" "$console" ;;
        stale) jq -e -s 'any(.[]; (.op // "" | startswith("fence_info")) and .result.value == 1
                                  and ((.detail // "") | contains("stub")))
                         and any(.[]; (.op // "" | startswith("check")) and .result.value > 0)' \
                   "$r/$name.jsonl" >/dev/null ;;
        early) jq -e -s 'any(.[]; (.op // "" | startswith("fence_info")) and .result.value == 1
                                  and ((.detail // "") | test("vb2/[^ ]*:1")))
                         and any(.[]; (.op // "" | startswith("check")) and .result.value > 0)' \
                   "$r/$name.jsonl" >/dev/null ;;
        unfreed) [ -n "$(undestroyed "$r/$name.trace")" ] ;;
        *) die "$name: unknown symptom '$symptom'" ;;
    esac
}

# The oracles' findings of a run, as sorted "kind: title" lines.
findings() { jq -r 'select(.finding) | "\(.finding.kind | gsub("_"; "-")): \(.finding.title)"' "$1" | sort -u; }

fail=0
printf '%-28s %-60s %-10s %s\n' program switch symptom "findings (oracles)" > "$out/table.txt"
{ echo "| program | switch | symptom (independent check) | finding (m2mfuzz oracles) |"
  echo "|---|---|---|---|"; } > "$out/table.md"
for p in "${progs[@]}"; do
    name=$(basename "$p" .m2m)
    sw=$(header "$p" switch); symptom=$(header "$p" symptom)
    [ -n "$sw" ] && [ -n "$symptom" ] || die "$p needs '# switch:' and '# symptom:' headers"
    d="$out/$name"; mkdir -p "$d"
    printf 'cd /host\nsh run-one.sh %s\n' "$name" > "$d/job.sh"
    "$LAB_DIR/run.sh" --out "$d" --share "$out/share" --timeout 300 --cmdline "$sw" "$d/job.sh" \
        || die "$name: lab run failed; console: $d/console.log"
    cp "$out/share/out/$name".* "$d/"
    if check "$name" "$symptom" "$d" "$d/console.log"; then res="${symptom%% *} shown"; else res="${symptom%% *} MISSING"; fail=1; fi
    got=$(findings "$d/$name.jsonl"); want=$(sed -n 's/^# expect: //p' "$p" | sort -u)
    if [ "$got" != "$want" ]; then
        log "$name: oracles found [${got//$'\n'/; }], expected [${want//$'\n'/; }]"; fail=1; got="$got (UNEXPECTED)"
    fi
    printf '%-28s %-60s %-10s %s\n' "$name" "$sw" "$res" "${got//$'\n'/; }" | tee -a "$out/table.txt"
    echo "| \`$name\` | \`$sw\` | $res | ${got//$'\n'/<br>} |" >> "$out/table.md"
done

# Control: every program, one boot, no switch: no hang, no leak, no splat.
d="$out/control"; mkdir -p "$d"
{ echo 'cd /host'; for p in "${progs[@]}"; do echo "sh run-one.sh $(basename "$p" .m2m)"; done; } > "$d/job.sh"
"$LAB_DIR/run.sh" --out "$d" --share "$out/share" --timeout 600 "$d/job.sh" || die "control run failed; console: $d/console.log"
for p in "${progs[@]}"; do
    name=$(basename "$p" .m2m)
    for s in hang leak stale early unfreed "splat possible circular locking dependency" "splat BUG:" "splat WARNING:"; do
        if check "$name" "$s" "$out/share/out" "$d/console.log"; then
            log "control: $name shows '$s' with no switch set"; fail=1
        fi
    done
    got=$(findings "$out/share/out/$name.jsonl")
    [ -z "$got" ] || { log "control: $name gave findings with no switch set: $got"; fail=1; }
done
grep -q "debug_locks: *1" "$out/share/out/lockdep_stats" || { log "control: lockdep switched off"; fail=1; }
verdict=$([ $fail = 0 ] && echo clean || echo "see above")
printf '%-28s %-60s %-10s %s\n' "(all, control)" "(none)" "none" "$verdict" | tee -a "$out/table.txt"
echo "| all (control boot) | none | none | $verdict |" >> "$out/table.md"
[ $fail = 0 ] || die "fault ground truth failed; results in $out"
if [ $update_docs = 1 ]; then
    stamp="Produced by \`ci/lab/faults.sh --update-docs\` on $(date -u +%F), kernel $(basename "$(dirname "$("$LAB_DIR/build-kernel.sh")")")."
    for doc in "$REPO_DIR/README.md" "$LAB_DIR/README.md"; do
        python3 - "$doc" "$out/table.md" "$stamp" <<'PY'
import sys
doc, table, stamp = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
s = open(doc).read()
a, b = "<!-- fault-table:start -->", "<!-- fault-table:end -->"
if a in s and b in s:
    s = s[: s.index(a) + len(a)] + "\n" + stamp + "\n\n" + table + s[s.index(b):]
    open(doc, "w").write(s)
PY
    done
    log "fault table written into README.md and ci/lab/README.md"
fi
