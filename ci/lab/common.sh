# Shared settings for the lab scripts; sourced, not run.
# The cache outlives the checkout so CI on the same machine reuses kernels and initramfs images.
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
LAB_CACHE=${M2MFUZZ_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/m2mfuzz-lab}
mkdir -p "$LAB_CACHE"

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

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

# cargo-fuzz for the fuzz targets (installed into ~/.cargo/bin once).
need_cargo_fuzz() {
    command -v cargo-fuzz >/dev/null && return 0
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked >&2 || die "cargo install cargo-fuzz failed"
}

# libFuzzer from libfuzzer-sys's own sources without FuzzerInterceptors.cpp: its memcmp/strcmp
# interceptors find the real functions with dlsym(RTLD_NEXT), which a static binary does not
# have (they jump to address 0). Without a sanitizer they only fed value profiles. Prints the path.
static_libfuzzer() {
    local src lib
    src=$(cd "$REPO_DIR/fuzz" && cargo metadata --locked --format-version 1 \
        | jq -r '.packages[] | select(.name == "libfuzzer-sys") | .manifest_path' | xargs dirname)/libfuzzer
    [ -d "$src" ] || die "libfuzzer-sys sources not found at $src"
    lib="$LAB_CACHE/libfuzzer-static-$(cat "$src"/*.cpp | sha256sum | cut -c1-16)/libfuzzer.a"
    if [ ! -f "$lib" ]; then
        log "building libFuzzer without interceptors (static binaries)"
        local tmp; tmp=$(mktemp -d); mkdir -p "$(dirname "$lib")"
        for f in "$src"/*.cpp; do
            [ "$(basename "$f")" = FuzzerInterceptors.cpp ] && continue
            echo "$f"
        done | xargs -P 2 -I{} sh -c 'g++ -c -O2 -g -std=c++17 -fno-omit-frame-pointer -w "{}" -o "'"$tmp"'/$(basename "{}" .cpp).o"'
        ar rcs "$lib.tmp" "$tmp"/*.o && mv "$lib.tmp" "$lib"; rm -rf "$tmp"
    fi
    echo "$lib"
}

# Build a fuzz target as a static binary the guest can run: DIR/bin/TARGET.
build_fuzz_target() {
    local target=$1 dest=$2 lib
    need_cargo_fuzz
    need_pkgs jq g++
    mkdir -p "$dest/bin"
    lib=$(static_libfuzzer)
    log "building fuzz target $target (static, no sanitizer)"
    (cd "$REPO_DIR" && RUSTFLAGS="-C target-feature=+crt-static" CUSTOM_LIBFUZZER_PATH="$lib" \
        cargo fuzz build -s none --target x86_64-unknown-linux-gnu "$target" >&2)
    cp "$REPO_DIR/fuzz/target/x86_64-unknown-linux-gnu/release/$target" "$dest/bin/"
}
