#!/usr/bin/env bash
# Build the static binaries the guest runs (m2mfuzz, the lab device test binary and the race
# programs of ci/lab/race/) into DIR/bin, for LAB_ARCH's target (aarch64 for arm64, with
# Debian's Rust: see target_cargo; LAB_CC for the C programs).
#   build-guest-bins.sh DIR
set -euo pipefail
. "$(dirname "$0")/common.sh"
dest=${1:?usage: build-guest-bins.sh DIR}
mkdir -p "$dest/bin"
target=$LAB_RUST_TARGET
cd "$REPO_DIR"
# Static glibc binaries run in the busybox initramfs with no libraries. Not position-independent:
# a static-pie binary relocates itself at every start, which under TCG made each m2mfuzz process
# start about 80 ms slower (bench-overhead.sh's fixed cost; a board's stress workers are threads,
# but the shrinker and replay start one process per candidate).
export RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
log "building static guest binaries (release, $target)"
target_cargo "$target" build --release --locked --bin m2mfuzz >&2
cp "target/$target/release/m2mfuzz" "$dest/bin/"
target_cargo "$target" test --release --locked --test lab_devices --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "lab_devices":
        print(m["executable"])' \
    | while read -r exe; do cp "$exe" "$dest/bin/lab_devices"; done
[ -x "$dest/bin/lab_devices" ] || die "lab_devices test binary not built"
# The race programs (race-check.sh): C, static, with the same warnings as the reproducers.
need_pkgs "${LAB_CC_PKGS[@]}"
for src in "$LAB_DIR"/race/*.c; do
    "$LAB_CC" -Wall -Wextra -Werror -O2 -static -pthread -o "$dest/bin/$(basename "$src" .c)" "$src" \
        || die "$src does not compile"
done
