#!/usr/bin/env bash
# Build (or reuse) the lab initramfs for LAB_ARCH: busybox, ci/lab/init, and (x86_64 only)
# v4l2-compliance with its libraries. Project binaries are not in it: the runner passes them
# through the 9p share. Prints the image path on stdout.
set -euo pipefail
. "$(dirname "$0")/common.sh"
need_pkgs cpio

libs() { ldd "$1" | awk '/=>/ {print $3} /^[ \t]*\/lib/ {print $1}' | grep '^/'; }
# Host paths to copy, each to the same path in the image (or to DEST given as SRC=DEST).
files=()
if [ "$LAB_ARCH" = x86_64 ]; then
    need_pkgs busybox-static v4l-utils
    files=(/bin/busybox /usr/bin/v4l2-compliance /usr/bin/v4l2-ctl)
    for b in /usr/bin/v4l2-compliance /usr/bin/v4l2-ctl; do while read -r l; do files+=("$l"); done < <(libs "$b"); done
    busybox_list=(/bin/busybox --list)
else
    # busybox-static of another architecture cannot be installed beside the host's (they
    # conflict), so its package is unpacked into the cache. v4l2-compliance is not in the arm64
    # image: it would need v4l-utils and its C++ libraries for arm64 (compliance.sh is x86_64's).
    need_aarch64_rust  # qemu-user, to list the applets
    bb="$LAB_CACHE/busybox-$LAB_DEB_ARCH"
    if [ ! -x "$bb/bin/busybox" ]; then
        log "fetching busybox-static:$LAB_DEB_ARCH"
        rm -rf "$bb.tmp"; mkdir -p "$bb.tmp"
        # (Its stderr only warns that root downloads outside _apt's sandbox; shown on failure.)
        (cd "$bb.tmp" && apt-get download -q "busybox-static:$LAB_DEB_ARCH" >"$LAB_CACHE/busybox-download.log" 2>&1) \
            || { cat "$LAB_CACHE/busybox-download.log" >&2
                 die "apt-get download busybox-static:$LAB_DEB_ARCH failed (dpkg --add-architecture $LAB_DEB_ARCH; apt-get update)"; }
        dpkg-deb -x "$bb.tmp"/busybox-static_*.deb "$bb.tmp/root" && rm -rf "$bb" && mv "$bb.tmp/root" "$bb" && rm -rf "$bb.tmp"
    fi
    files=("$bb/bin/busybox=/bin/busybox")
    busybox_list=(qemu-aarch64-static "$bb/bin/busybox" --list)
fi
key=$( { echo "$LAB_ARCH"; cat "$LAB_DIR/init" "$0"; for f in "${files[@]}"; do echo "$f"; sha256sum < "${f%%=*}"; done; } | sha256sum | cut -c1-16)
# Not compressed: under TCG the kernel took 4-5 s to gunzip it, and init waits for that (about 9 MB
# as a plain cpio unpacks in about 0.3 s). Every lockdep shrink step is a boot.
img="$LAB_CACHE/initramfs$LAB_SUFFIX-$key.cpio"
if [ -f "$img" ]; then echo "$img"; exit 0; fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,etc,proc,sys,dev,tmp,host,lib,lib64}
for f in "${files[@]}"; do
    src=${f%%=*} dst=${f#*=}
    mkdir -p "$root$(dirname "$dst")"
    cp -L "$src" "$root$dst"
done
# Debian's merged /usr: the loader and libraries are looked up under /lib and /lib64.
# The applet links are made here, not by `busybox --install` in the guest (about 400 symlink
# calls at every boot under TCG).
for a in $("${busybox_list[@]}"); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
cp "$LAB_DIR/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$img.tmp"
mv "$img.tmp" "$img"
log "initramfs: $img ($(du -h "$img" | cut -f1))"
echo "$img"
