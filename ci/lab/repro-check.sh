#!/usr/bin/env bash
# C reproducers reproduce: for each corpus program, `m2mfuzz repro --c`, compile it statically on
# the host, run it in a fresh lab boot (its # switch: on the kernel command line) under
# `m2mfuzz watch` (a threaded program that expects a finding repeats for up to 60 s, until a
# finding or a kernel report), and require the findings its # expect: lines name: exactly those, or with
# --at-least those and maybe more (a shrunk stress finding names the one finding it was shrunk
# for; lockdep may report the same bad lock use as another class too).
#   repro-check.sh [--out DIR] [--at-least] [PROGRAM…]   (default: corpora/*/*.m2m)
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs jq gcc libc6-dev
out="$REPO_DIR/lab-out/repro"
at_least=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --at-least) at_least=1; shift ;;
        *) break ;;
    esac
done
progs=("$@"); [ ${#progs[@]} -gt 0 ] || progs=("$REPO_DIR"/corpora/*/*.m2m)
rm -rf "$out"; mkdir -p "$out/share/repros"
"$LAB_DIR/build-guest-bins.sh" "$out/share"
"$LAB_DIR/build-kernel.sh" >/dev/null
headers="$LAB_CACHE/headers/include"
fail=0
for p in "${progs[@]}"; do
    name=$(basename "$p" .m2m)
    host_run "$out/share/bin/m2mfuzz" repro --c "$p" -o "$out/share/repros/$name.c"
    gcc -Wall -Wextra -Werror -O2 -static -pthread -I"$headers" -o "$out/share/repros/$name" "$out/share/repros/$name.c" \
        || die "$name: the reproducer does not compile"
    sw=$(sed -n 's/^# switch: //p' "$p" | head -1)
    # A race (a threaded program that expects a finding) may need many rounds: up to 60 s.
    secs=""
    if head -1 "$p" | grep -q 'program v2' && grep '^# expect: ' "$p" | grep -qvx '# expect: clean'; then secs=60; fi
    printf '/host/bin/m2mfuzz watch --json -- /host/repros/%s %s > /host/out/%s.jsonl\n' "$name" "$secs" "$name" > "$out/job-$name.sh"
    if ! lab_boot_status "$out/$name" --share "$out/share" --timeout 300 --cmdline "$sw" "$out/job-$name.sh" \
        && guest_failed "$LAB_RC"; then
        printf '%-28s %s\n' "$name" "GUEST FAILED (exit $LAB_RC; console: $out/$name/console.log)"; fail=1; continue
    fi
    got=$(jq -r 'select(.finding) | "\(.finding.kind | gsub("_"; "-")): \(.finding.title)"' "$out/share/out/$name.jsonl" 2>/dev/null | sort -u)
    want=$(sed -n 's/^# expect: //p' "$p" | grep -vx clean | sort -u || true)
    missing=$(comm -23 <(printf '%s\n' "$want") <(printf '%s\n' "$got") | grep -v '^$' || true)
    if [ "$got" = "$want" ]; then res=reproduced
    elif [ $at_least = 1 ] && [ -n "$want" ] && [ -z "$missing" ]; then res="reproduced, and more:"
    else res="DIFFERENT (expected: ${want//$'\n'/; })"; fail=1; fi
    printf '%-28s %-12s %s\n' "$name" "$res" "${got:-none}" | tr '\n' ' ' ; echo
done
[ $fail = 0 ] || die "some C reproducers did not reproduce; see $out"
