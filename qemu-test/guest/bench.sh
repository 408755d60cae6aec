#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   bench.sh OUT_DIR NUM_QPS [VDCM_BENCH_ARGS...]
#            (runs inside the VM for `make bench`, as root)
#
# Loads mtty, the VDCM and the simulated PF with NUM_QPS queue pairs (at
# most 4096; one per 1q ADI, so this bounds max_adis_per_pf), runs
# vdcm_bench, which writes OUT_DIR/bench.json, and unloads everything.
# Lines for the host start with "[bench]".
set -u
out=$1 qps=$2
shift 2
. "$(dirname "$0")/lib.sh"

echo "[bench] kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
modprobe mtty || { echo "[bench] modprobe mtty failed"; exit 1; }
insmod "$VDCM_KO" || exit 1
insmod "$SIM_KO" num_qps="$qps" || exit 1
rm -f "$out/bench.json"
"$TOP_DIR/qemu-test/userspace/target/release/vdcm_bench" --out "$out/bench.json" "$@" 2>&1 |
	sed -u 's/^\([^[]\)/[bench] \1/'
rc=${PIPESTATUS[0]}
echo "[bench] vdcm_bench exited with $rc"
rmmod vdcm_sim && rmmod vdcm && rmmod mtty || rc=1
dmesg >"$out/dmesg.log"
exit "$rc"
