#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   run.sh   (runs inside the VM for `make run`)
#
# Shows what the project does: the platform, loading the VDCM and the
# simulated PF, composing ADIs (dedicated and shared), driving traffic
# through them from user space, their counters, and unloading. Every line it prints
# starts with "[run]" so the host can pick them out of the console stream.
set -eu
. "$(dirname "$0")/lib.sh"

mount_debugfs
echo "[run] kernel $(uname -r); IOMMU: $(ls /sys/class/iommu | tr '\n' ' ')"
echo "[run] DMAR ecap $(cat /sys/class/iommu/dmar0/intel-iommu/ecap)"
echo "[run] insmod vdcm.ko, vdcm_sim.ko"
modprobe mdev 2>/dev/null || modprobe vfio_mdev
insmod "$VDCM_KO"
insmod "$SIM_KO"
show_load_lines '[run]'
lsmod | grep -E '^(vdcm|vdcm_sim|mdev) ' | sed 's/^/[run] lsmod: /'
rc=0
"$TOP_DIR/qemu-test/userspace/target/release/vdcm_demo" || rc=1
echo "[run] rmmod vdcm_sim vdcm"
rmmod vdcm_sim
rmmod vdcm
show_load_lines '[run]' | tail -n 2
exit $rc
