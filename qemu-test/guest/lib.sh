# SPDX-License-Identifier: GPL-2.0
# Helpers for the scripts that run inside the test VM. Sourced.

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_DIR=$(cd "$GUEST_DIR/../.." && pwd)
VDCM_KO=$TOP_DIR/drivers/vdcm/vdcm.ko
SIM_KO=$TOP_DIR/samples/vdcm_sim/vdcm_sim.ko
DEBUGFS=/sys/kernel/debug

mount_debugfs() {
	[ -d "$DEBUGFS/kunit" ] || mount -t debugfs none "$DEBUGFS"
}

# show_load_lines TAG: the lines the VDCM and the PF printed to the kernel
# log, each prefixed with TAG.
show_load_lines() {
	dmesg | grep -E '(vdcm|vdcm_sim): ' | sed "s/^/$1 dmesg: /"
}

# kmemleak_report FILE: scan twice (the documented way to drop transient
# false positives; objects younger than 5 s are never reported, hence the
# wait) and write what kmemleak still suspects to FILE.
kmemleak_report() {
	local f=$DEBUGFS/kmemleak
	[ -w "$f" ] || { echo "kmemleak is not available at $f" >"$1"; return 1; }
	sleep 6
	echo scan >"$f"
	echo scan >"$f"
	cat "$f" >"$1"
	[ ! -s "$1" ]
}
