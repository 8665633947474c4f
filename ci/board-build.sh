#!/usr/bin/env bash
# The boards' binaries (RK3566/RK3588, aarch64), built on an x86_64 Debian 12 machine: a static
# aarch64 m2mfuzz from Debian's Rust (rustc-web, cargo-web, libstd-rust-web-dev:arm64) and the
# cross gcc, all installed here when missing (as root). rustup's toolchain stays the default;
# only this build uses Debian's /usr/bin/cargo and /usr/bin/rustc (ci/lab/common.sh: target_cargo).
#   ci/board-build.sh [--fuzz] [--test]
#     --fuzz  also the cargo fuzz targets (fuzz/, one per driver): static aarch64 ELFs built as
#             the lab builds its own (common.sh: build_fuzz_target), with libFuzzer compiled by
#             the cross g++ (installed when missing)
#     --test  also build tests/uapi_layout.rs for aarch64 and run it under qemu-aarch64-static,
#             against the arm64 lab kernel's uapi headers when built (LAB_ARCH=arm64
#             ci/lab/build-kernel.sh), else the cross toolchain's; with --fuzz, also run m2m_vim2m
#             under qemu-aarch64-static: with no V4L2 node it must refuse to start (exit 2), and
#             on a stand-in node (/dev/null, every ioctl fails) libFuzzer must run its inputs
# Output (paths printed on stdout): target/aarch64-unknown-linux-gnu/release/m2mfuzz, with --fuzz
# fuzz/target/aarch64-unknown-linux-gnu/release/m2m_*. On a board itself, `cargo build
# --release` (and `cargo fuzz build -s none`) as usual.
set -euo pipefail
# The boards' architecture, for the fuzz targets' recipe (build_fuzz_target builds for LAB_ARCH).
LAB_ARCH=arm64
. "$(dirname "$0")/lab/common.sh"
target=$LAB_RUST_TARGET
test=0 fuzz=0
for arg in "$@"; do
    case "$arg" in
        --test) test=1 ;;
        --fuzz) fuzz=1 ;;
        *) die "unknown argument $arg (known: --fuzz, --test)" ;;
    esac
done
[ "$(uname -m)" != aarch64 ] || die "this machine is aarch64: build natively with cargo build --release"
cd "$REPO_DIR"
start=$(date +%s)
log "building m2mfuzz for $target (static, release)"
target_cargo "$target" build --release --locked --bin m2mfuzz >&2
bin="target/$target/release/m2mfuzz"
file -L "$bin" 2>/dev/null | grep -q "ARM aarch64.*statically linked" \
    || die "$bin is not a static aarch64 executable: $(file -L "$bin" 2>&1)"
# The binary must start on an aarch64 CPU, not only link.
qemu-aarch64-static "$bin" --version >/dev/null || die "$bin does not run under qemu-aarch64-static"
log "built $bin in $(( $(date +%s) - start )) s"
if [ $test = 1 ]; then
    log "uapi layout test for $target under qemu-aarch64-static"
    # --release: reuses the release build above; the test only compiles itself.
    target_cargo "$target" test --release --locked --test uapi_layout -- --nocapture >&2
fi
echo "$REPO_DIR/$bin"
[ $fuzz = 1 ] || exit 0

start=$(date +%s)
fuzz_bins=()
for src in fuzz/fuzz_targets/*.rs; do
    name=$(basename "$src" .rs)
    build_fuzz_target "$name"
    fbin="fuzz/target/$target/release/$name"
    file -L "$fbin" | grep -q "ARM aarch64" || die "$fbin is not an aarch64 executable: $(file -L "$fbin")"
    fuzz_bins+=("$fbin")
done
log "built ${#fuzz_bins[@]} fuzz targets in $(( $(date +%s) - start )) s"
if [ $test = 1 ]; then
    fbin="fuzz/target/$target/release/m2m_vim2m" tmp=$(mktemp -d)
    log "m2m_vim2m under qemu-aarch64-static: no node, then /dev/null as the node"
    # No V4L2 node on this host: the target exits before its first input (no crash artifact).
    rc=0; env -u M2MFUZZ_NODE_VIM2M qemu-aarch64-static "$fbin" -runs=10 "$tmp" > "$tmp/none.log" 2>&1 || rc=$?
    [ $rc = 2 ] && grep -q "no vim2m node" "$tmp/none.log" \
        || die "m2m_vim2m without a node: exit $rc, expected 2 and 'no vim2m node': $(tail -3 "$tmp/none.log")"
    # A stand-in node: every ioctl fails (ENOTTY), so each input runs through the generator, the
    # supervised executor and the oracles (which read this host's kernel log: a host kernel
    # splat in these seconds would be a finding). New inputs go to a scratch corpus, not seeds/.
    mkdir -p "$tmp/corpus"
    rc=0; M2MFUZZ_NODE_VIM2M=/dev/null qemu-aarch64-static "$fbin" -runs=40 -artifact_prefix="$tmp/" \
        "$tmp/corpus" fuzz/seeds/m2m_vim2m > "$tmp/null.log" 2>&1 || rc=$?
    [ $rc = 0 ] && grep -q "^Done 40 runs" "$tmp/null.log" \
        || die "m2m_vim2m on /dev/null: exit $rc, expected 0 and 'Done 40 runs': $(tail -5 "$tmp/null.log")"
    log "m2m_vim2m: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$tmp/null.log")"
    rm -rf "$tmp"
fi
for fbin in "${fuzz_bins[@]}"; do echo "$REPO_DIR/$fbin"; done
