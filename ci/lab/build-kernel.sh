#!/usr/bin/env bash
# Build (or reuse) the lab kernel: Debian's linux-source-6.12 + tinyconfig + kernel.config +
# kernel.$LAB_ARCH.config + patches/, for LAB_ARCH (x86_64, default, or arm64, cross-built).
# Prints the kernel image's path on stdout. Cached by a hash of architecture, source version,
# fragments, patches and this script.
#   --fences=n   build with CONFIG_VIDEOBUF2_RELEASE_FENCES=n (the patches must still build)
set -euo pipefail
. "$(dirname "$0")/common.sh"

extra_cfg=""
for arg in "$@"; do
    case "$arg" in
        --fences=n) extra_cfg="CONFIG_VIDEOBUF2_RELEASE_FENCES=n" ;;
        *) die "unknown argument $arg (known: --fences=n)" ;;
    esac
done

need_pkgs linux-source-6.12 bc flex bison libelf-dev libssl-dev cpio make gcc xz-utils rsync
kmake=(make -s ARCH="$LAB_ARCH")
if [ "$LAB_ARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
    need_pkgs gcc-aarch64-linux-gnu
    kmake+=(CROSS_COMPILE=aarch64-linux-gnu-)
fi
arch_cfg="$LAB_DIR/kernel.$LAB_ARCH.config"
[ -f "$arch_cfg" ] || die "$arch_cfg missing"
image=$(basename "$LAB_KIMAGE")
src_tar=/usr/src/linux-source-6.12.tar.xz
[ -f "$src_tar" ] || die "$src_tar missing after installing linux-source-6.12"
src_ver=$(dpkg-query -W -f='${Version}' linux-source-6.12)

patches=()
while IFS= read -r p; do patches+=("$p"); done < <(find "$LAB_DIR/patches" -name '*.patch' | sort)
key=$( { echo "$LAB_ARCH"; echo "$src_ver"; echo "$extra_cfg"; cat "$LAB_DIR/kernel.config" "$arch_cfg" "$0";
         for p in "${patches[@]}"; do basename "$p"; cat "$p"; done; } | sha256sum | cut -c1-16)
out="$LAB_CACHE/kernel$LAB_SUFFIX-$key"
headers_link="$LAB_CACHE/headers$LAB_SUFFIX"
if [ -f "$out/$image" ]; then
    log "kernel cached: $out"
    ln -sfn "$out/headers" "$headers_link"
    echo "$out/$image"; exit 0
fi

# One working tree per architecture, re-unpacked only when the source or the patch set changes;
# config-only changes rebuild incrementally.
tree="$LAB_CACHE/tree$LAB_SUFFIX"
tree_key=$( { echo "$src_ver"; for p in "${patches[@]}"; do cat "$p"; done; } | sha256sum | cut -c1-16)
if [ "$(cat "$tree/.m2mfuzz-tree" 2>/dev/null)" != "$tree_key" ]; then
    log "unpacking $src_tar ($src_ver)"
    unpack="$LAB_CACHE/unpack$LAB_SUFFIX"
    rm -rf "$tree" "$unpack"; mkdir -p "$unpack"
    tar -C "$unpack" -xf "$src_tar"
    mv "$unpack/linux-source-6.12" "$tree"; rmdir "$unpack"
    for p in "${patches[@]}"; do
        log "applying $(basename "$p")"
        patch -d "$tree" -p1 --forward --batch < "$p" >/dev/null || die "patch $(basename "$p") does not apply to $src_ver"
    done
    echo "$tree_key" > "$tree/.m2mfuzz-tree"
fi

cd "$tree"
start=$(date +%s)
"${kmake[@]}" tinyconfig >/dev/null
cp .config .config.tiny
# An override replaces the fragment's own line for that option.
{ if [ -n "$extra_cfg" ]; then grep -hv "^${extra_cfg%%=*}=" "$LAB_DIR/kernel.config" "$arch_cfg"; else cat "$LAB_DIR/kernel.config" "$arch_cfg"; fi
  echo "$extra_cfg"; } > .config.fragment
ARCH=$LAB_ARCH ./scripts/kconfig/merge_config.sh -m .config.tiny .config.fragment >/dev/null
"${kmake[@]}" olddefconfig >/dev/null
# A fragment line that kconfig dropped (a dependency missing) would silently weaken the lab.
bad=0
while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    opt=${line%%=*}; val=${line#*=}
    if [ "$val" = n ]; then
        grep -q "^# $opt is not set" .config || grep -q "^$opt=n" .config || { log "fragment: $line did not stick"; bad=1; }
    else
        grep -qx "$line" .config || { log "fragment: $line did not stick (got: $(grep "^$opt=\|^# $opt " .config || echo absent))"; bad=1; }
    fi
done < .config.fragment
[ $bad = 0 ] || die "kernel config fragment not satisfied; fix ci/lab/kernel.config"

build_log="$LAB_CACHE/build$LAB_SUFFIX.log"
log "building $LAB_ARCH $image ($(nproc) jobs)"
"${kmake[@]}" -j"$(nproc)" "$image" > "$build_log" 2>&1 || { tail -30 "$build_log" >&2; die "kernel build failed; log: $build_log"; }
mkdir -p "$out.tmp"
cp "$LAB_KIMAGE" .config System.map "$out.tmp/"
# The 6.12 uapi headers (this architecture's asm/), for the layout test (tests/uapi_layout.rs)
# and C reproducers.
"${kmake[@]}" headers_install INSTALL_HDR_PATH="$out.tmp/headers" >/dev/null
echo "$(( $(date +%s) - start ))" > "$out.tmp/build-seconds"
rm -rf "$out"; mv "$out.tmp" "$out"
ln -sfn "$out/headers" "$headers_link"
log "kernel built in $(cat "$out/build-seconds") s: $out"
echo "$out/$image"
