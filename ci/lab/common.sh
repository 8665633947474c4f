# Shared settings for the lab scripts; sourced, not run.
# The cache outlives the checkout so CI on the same machine reuses kernels and initramfs images.
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
LAB_CACHE=${M2MFUZZ_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/m2mfuzz-lab}
mkdir -p "$LAB_CACHE"

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

# The lab's architecture: x86_64 (default), or arm64, the boards' (RK3566/RK3588), under TCG.
# Every lab script takes it from LAB_ARCH, so one set of scripts serves both. LAB_CC compiles
# static guest programs (C), LAB_CXX and LAB_AR libFuzzer (C++) for the fuzz targets, LAB_SUFFIX
# tells cache entries and lab-out directories apart.
LAB_ARCH=${LAB_ARCH:-x86_64}
case "$LAB_ARCH" in
    x86_64|amd64) LAB_ARCH=x86_64; LAB_RUST_TARGET=x86_64-unknown-linux-gnu
        LAB_KIMAGE=arch/x86/boot/bzImage LAB_QEMU=qemu-system-x86_64 LAB_QEMU_PKG=qemu-system-x86
        LAB_DEB_ARCH=amd64 LAB_SUFFIX="" LAB_CC=gcc LAB_CC_PKGS=(gcc libc6-dev)
        LAB_CXX=g++ LAB_AR=ar LAB_CXX_PKGS=(g++) ;;
    arm64|aarch64) LAB_ARCH=arm64; LAB_RUST_TARGET=aarch64-unknown-linux-gnu
        LAB_KIMAGE=arch/arm64/boot/Image LAB_QEMU=qemu-system-aarch64 LAB_QEMU_PKG=qemu-system-arm
        LAB_DEB_ARCH=arm64 LAB_SUFFIX=-arm64 LAB_CC=aarch64-linux-gnu-gcc
        LAB_CC_PKGS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
        LAB_CXX=aarch64-linux-gnu-g++ LAB_AR=aarch64-linux-gnu-ar LAB_CXX_PKGS=(g++-aarch64-linux-gnu) ;;
    *) die "LAB_ARCH=$LAB_ARCH: the lab knows x86_64 and arm64" ;;
esac
export LAB_ARCH

# Cargo for a target: rustup's for x86_64; for aarch64, Debian's rustc-web/cargo-web (rustup has
# no aarch64 std here and cannot download one), with the cross linker set for that target only,
# static so the binary runs on any board and in the initramfs, and qemu-user as the test runner.
# Not position-independent, the same flags as the lab's guest binaries (build-guest-bins.sh), so
# one release build serves the board and the lab. PATH is left alone: rustup's toolchain stays
# the default for everything else.
#   target_cargo TARGET SUBCOMMAND ARGS…
target_cargo() {
    local target=$1 sub=$2; shift 2
    case "$target" in
        x86_64-unknown-linux-gnu) cargo "$sub" --target "$target" "$@" ;;
        aarch64-unknown-linux-gnu)
            need_aarch64_rust
            RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static \
                /usr/bin/cargo "$sub" --target "$target" "$@" ;;
        *) die "target_cargo: no recipe for $target" ;;
    esac
}

# Run a guest binary (DIR/bin/…, built for the lab's architecture) on this x86_64 host: arm64's
# under qemu-user.
#   host_run BINARY ARGS…
host_run() {
    if [ "$LAB_ARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then qemu-aarch64-static "$@"; else "$@"; fi
}

# Debian's Rust with an aarch64 std, the cross gcc, and qemu-user to run what they build.
need_aarch64_rust() {
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        [ "$(id -u)" = 0 ] || die "need root for dpkg --add-architecture arm64"
        log "adding the arm64 dpkg architecture (for libstd-rust-web-dev:arm64)"
        dpkg --add-architecture arm64
        apt-get update -qq >/dev/null || die "apt-get update failed"
    fi
    need_pkgs rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
        libc6-dev-arm64-cross qemu-user-static
    [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] || die "/usr/bin/cargo or /usr/bin/rustc missing after installing cargo-web rustc-web"
}

# Boot the lab for one job: `run.sh --out OUT ARGS…`, its messages in OUT/run.log. Returns the
# job's exit code in LAB_RC (and as the status). A time-out (124) or a guest that died without a
# result (125) is no answer of the job: lab_boot_status says so on stderr with the console's path
# (and the console's first report lines) and returns it as LAB_RC; lab_boot fails the script.
lab_boot_status() {
    local out=$1; shift
    mkdir -p "$out"
    LAB_RC=0
    "$LAB_DIR/run.sh" --out "$out" "$@" > "$out/run.log" 2>&1 || LAB_RC=$?
    case $LAB_RC in
        124) log "the guest timed out; console: $out/console.log" ;;
        125) log "the guest died without a result; console: $out/console.log"
             grep -E "Kernel panic|BUG:|Oops|WARNING:|refcount_t:" "$out/console.log" | head -5 >&2 || true ;;
    esac
    return $LAB_RC
}
lab_boot() {
    lab_boot_status "$@" && return 0
    case $LAB_RC in
        124|125) die "lab boot failed (exit $LAB_RC, see above): the job gave no answer; console: $1/console.log" ;;
    esac
    return $LAB_RC
}
guest_failed() { [ "$1" = 124 ] || [ "$1" = 125 ]; }

# Install Debian packages that are missing; a no-op when all are present.
need_pkgs() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then die "need root to apt-get install ${missing[*]}"; fi
    # Wait for another apt/dpkg (a second lab script, unattended upgrades) instead of failing.
    local lock=(-o DPkg::Lock::Timeout=600)
    apt-get "${lock[@]}" update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# libFuzzer from libfuzzer-sys's own sources without FuzzerInterceptors.cpp, compiled for LAB_ARCH
# (LAB_CXX): its memcmp/strcmp interceptors find the real functions with dlsym(RTLD_NEXT), which a
# static binary does not have (they jump to address 0). Without a sanitizer they only fed value
# profiles. Prints the path.
static_libfuzzer() {
    local src lib
    src=$(cd "$REPO_DIR/fuzz" && cargo metadata --locked --format-version 1 \
        | jq -r '.packages[] | select(.name == "libfuzzer-sys") | .manifest_path' | xargs dirname)/libfuzzer
    [ -d "$src" ] || die "libfuzzer-sys sources not found at $src"
    lib="$LAB_CACHE/libfuzzer-static$LAB_SUFFIX-$(cat "$src"/*.cpp | sha256sum | cut -c1-16)/libfuzzer.a"
    if [ ! -f "$lib" ]; then
        log "building libFuzzer without interceptors (static binaries, $LAB_CXX)"
        local tmp; tmp=$(mktemp -d); mkdir -p "$(dirname "$lib")"
        for f in "$src"/*.cpp; do
            [ "$(basename "$f")" = FuzzerInterceptors.cpp ] && continue
            echo "$f"
        done | xargs -P 2 -I{} sh -c "$LAB_CXX"' -c -O2 -g -std=c++17 -fno-omit-frame-pointer -w "{}" -o "'"$tmp"'/$(basename "{}" .cpp).o"' \
            || die "compiling libFuzzer with $LAB_CXX failed"
        "$LAB_AR" rcs "$lib.tmp" "$tmp"/*.o && mv "$lib.tmp" "$lib"; rm -rf "$tmp"
    fi
    echo "$lib"
}

# What `cargo fuzz build -s none` gives rustc (cargo-fuzz 0.13.2, release, a Linux target):
# SanitizerCoverage for libFuzzer (inline 8-bit counters, PC table, comparisons, stack depth), no
# sanitizer, `--cfg fuzzing`, debug assertions (so overflow checks), one codegen unit; with
# `--release --config profile.release.debug="line-tables-only"` as below, the same rustc command
# lines (a `cargo fuzz build` of the same target finds every unit fresh). Passed to cargo directly
# so that target_cargo builds for either architecture: cargo fuzz runs whatever `cargo` is first
# on PATH, rustup's, which has no aarch64 std here.
FUZZ_RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Ccodegen-units=1"

# Build a fuzz target for LAB_ARCH (LAB_ARCH=arm64: aarch64, Debian's Rust, see target_cargo) as a
# static binary the guest or a board can run: fuzz/target/TRIPLE/release/TARGET, copied to
# DIR/bin/TARGET when DIR is given.
#   build_fuzz_target TARGET [DIR]
build_fuzz_target() {
    local target=$1 dest=${2:-} lib bin
    need_pkgs jq file "${LAB_CXX_PKGS[@]}"
    lib=$(static_libfuzzer)
    log "building fuzz target $target for $LAB_RUST_TARGET (static, no sanitizer)"
    # RUSTFLAGS replaces target_cargo's per-target flags and, as --target is given, applies to the
    # target only, not to build scripts. Static: static-pie on x86_64, non-PIE on aarch64.
    (cd "$REPO_DIR" && RUSTFLAGS="$FUZZ_RUSTFLAGS -C target-feature=+crt-static" CUSTOM_LIBFUZZER_PATH="$lib" \
        target_cargo "$LAB_RUST_TARGET" build --manifest-path fuzz/Cargo.toml --release --locked \
        --config 'profile.release.debug="line-tables-only"' --bin "$target" >&2) \
        || die "building fuzz target $target for $LAB_RUST_TARGET failed"
    bin="$REPO_DIR/fuzz/target/$LAB_RUST_TARGET/release/$target"
    file -L "$bin" | grep -Eq "statically linked|static-pie linked" || die "$bin is not static: $(file -L "$bin")"
    [ -z "$dest" ] || { mkdir -p "$dest/bin"; cp "$bin" "$dest/bin/"; }
}
