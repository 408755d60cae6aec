#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   run.sh   (runs inside the VM for `make run`)
#
# Shows what the project does today: the platform, loading the VDCM and the
# simulated PF, their load lines, and unloading them. Every line it prints
# starts with "[run]" so the host can pick them out of the console stream.
set -eu
. "$(dirname "$0")/lib.sh"

mount_debugfs
echo "[run] kernel $(uname -r); IOMMU: $(ls /sys/class/iommu | tr '\n' ' ')"
echo "[run] DMAR ecap $(cat /sys/class/iommu/dmar0/intel-iommu/ecap)"
echo "[run] insmod vdcm.ko, vdcm_sim.ko"
modprobe vfio_mdev 2>/dev/null || true
insmod "$VDCM_KO"
insmod "$SIM_KO"
show_load_lines '[run]'
lsmod | grep -E '^(vdcm|vdcm_sim|mdev) ' | sed 's/^/[run] lsmod: /'
echo "[run] rmmod vdcm_sim vdcm"
rmmod vdcm_sim
rmmod vdcm
show_load_lines '[run]' | tail -n 2
