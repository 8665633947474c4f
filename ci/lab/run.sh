#!/usr/bin/env bash
# Boot the lab kernel (LAB_ARCH: x86_64, default, or arm64) under QEMU and run a job script in the guest.
#   run.sh [--out DIR] [--timeout SECONDS] [--cmdline "ARGS"] [--share DIR] [--kernel IMAGE] JOB.sh
# The job runs as `sh /host/job.sh` in the guest with /host the share (default: a fresh DIR/share
# holding only the job); what it writes to /host/out comes back in DIR/share/out. Exit code: the
# job's; 124 on a time-out; 125 when the guest died (panic, no result). The console log is DIR/console.log.
set -euo pipefail
. "$(dirname "$0")/common.sh"

out="" timeout=600 cmdline="" share="" kernel=${M2MFUZZ_LAB_KERNEL:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --cmdline) cmdline=$2; shift 2 ;;
        --share) share=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || die "usage: run.sh [--out DIR] [--timeout S] [--cmdline ARGS] [--share DIR] [--kernel IMAGE] JOB.sh"
job=$1
[ -f "$job" ] || die "job script $job not found"
need_pkgs "$LAB_QEMU_PKG"

[ -n "$kernel" ] || kernel=$("$LAB_DIR/build-kernel.sh" | tail -1)
initrd=$("$LAB_DIR/mkinitramfs.sh" | tail -1)
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/m2mfuzz-lab.XXXXXX")
mkdir -p "$out"
[ -n "$share" ] || share="$out/share"
mkdir -p "$share"
rm -rf "$share/out"; mkdir -p "$share/out"
cp "$job" "$share/job.sh"
console="$out/console.log"

case "$LAB_ARCH" in
    # acpi=noirq: PCI interrupts from the BIOS routing table; enabling the 9p device's ACPI
    # interrupt link took about 1.9 s of every boot under TCG (ACPI still enumerates the CPUs).
    x86_64) machine=(-cpu max) console_dev=ttyS0 arch_cmdline="acpi=noirq" ;;
    # The virt machine: device tree, PL011 console, PCI (ECAM) for the 9p device. pauth-impdef:
    # TCG emulates pointer authentication's QARMA cipher slowly; an implementation-defined one
    # keeps the feature (the kernel uses it) at a fraction of the cost.
    arm64) machine=(-M virt -cpu max,pauth-impdef=on) console_dev=ttyAMA0 arch_cmdline="" ;;
esac
start=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout" "$LAB_QEMU" -accel tcg "${machine[@]}" -smp 2 -m 2048 \
    -display none -monitor none -serial "file:$console" -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=$console_dev panic=-1 oops=panic loglevel=7 printk.devkmsg=on $arch_cmdline rdinit=/init $cmdline" \
    -virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" </dev/null
qrc=$?
set -e
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
if [ $qrc = 124 ] || [ $qrc = 137 ]; then
    log "guest timed out after ${timeout}s (${secs}s); console: $console"
    exit 124
fi
if [ ! -f "$share/out/rc" ]; then
    log "guest ended without a result (qemu exit $qrc) after ${secs}s; console: $console"
    grep -E "Kernel panic|BUG:|Oops|WARNING:" "$console" | head -5 >&2 || true
    exit 125
fi
rc=$(cat "$share/out/rc")
log "guest job exit $rc after ${secs}s; console: $console; results: $share/out"
exit "$rc"
