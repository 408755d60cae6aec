#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   vm.sh KDIR SCRIPT [ARGS...]
#
# Boot KDIR's kernel under QEMU (TCG) with an emulated Intel IOMMU in
# scalable mode, through virtme-ng: the guest's root is the host's root file
# system, read-only, so the project's modules, test binaries and QEMU are
# reachable inside at the same paths. $OUT_DIR is shared read-write. SCRIPT
# runs as root inside the guest; its exit code is the VM's.
#
# The kernel console and SCRIPT's output go to stdout and to
# $OUT_DIR/console.log. A VM that does not power off within VM_TIMEOUT
# seconds (default 900) is killed and counts as a failure (exit 124).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

kdir=$1; shift
VM_TIMEOUT=${VM_TIMEOUT:-900}
IOMMU="-device intel-iommu,intremap=on,x-scalable-mode=on,x-pasid-mode=on"
QEMU_OPTS="-machine q35,kernel-irqchip=split -accel tcg -cpu max $IOMMU ${VM_QEMU_EXTRA:-}"
# VM_SRIOV=1 (`make bench`): an emulated igb (82576, SR-IOV with up to 7
# VFs) behind a PCIe root port, the SR-IOV baseline of the benchmarks.
if [ -n "${VM_SRIOV:-}" ]; then
	QEMU_OPTS+=" -device pcie-root-port,id=vdcm_rp1,chassis=1,slot=1 -device igb,bus=vdcm_rp1,netdev=vdcm_nd1 -netdev user,id=vdcm_nd1"
fi
[ -x "$CACHE_DIR/venv/bin/vng" ] || die "virtme-ng is not installed; run qemu-test/setup.sh"

say "booting $(basename "$kdir") in QEMU/TCG with intel-iommu (scalable mode); timeout ${VM_TIMEOUT}s; console: $OUT_DIR/console.log"
start=$SECONDS
# --disable-microvm: the IOMMU needs q35. No --rw: the guest must never
# write the host's files; only $OUT_DIR is writable.
# no_timer_check: under TCG on a loaded host the IO-APIC timer check can
# miss its window and panic the boot ("timer doesn't work through
# Interrupt-remapped IO-APIC"); the check proves nothing about this project.
# On a KASAN kernel: no5lvl, because with QEMU's -cpu max (LA57) an
# interrupt taken early in boot produced a KASAN "wild-memory-access"
# report in handle_edge_irq before any of this project's code ran, and
# KASAN prints only its first report by default; kasan_multi_shot so that
# one report can never hide another.
KARGS="intel_iommu=on,sm_on panic=-1 no_timer_check"
if grep -q '^CONFIG_KASAN=y' "$kdir/.config" 2>/dev/null; then
	KARGS+=" no5lvl kasan_multi_shot"
fi
(cd "$TOP_DIR" && PATH="$CACHE_DIR/venv/bin:$PATH" timeout -k 10 "$VM_TIMEOUT" \
	vng --run "$kdir" --disable-kvm --disable-microvm --cpus 2 --memory 2G \
	--verbose --qemu-opts="$QEMU_OPTS" --append "$KARGS" \
	--rwdir "$OUT_DIR" --exec "$(printf '%q ' "$@")") 2>&1 | tee "$OUT_DIR/console.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	say "VM killed after ${VM_TIMEOUT}s: it hung (console: $OUT_DIR/console.log)"
	exit 124
fi
say "VM exited with $rc after $((SECONDS - start)) s"
exit "$rc"
