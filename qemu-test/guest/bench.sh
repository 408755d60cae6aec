#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   bench.sh OUT_DIR NUM_QPS NUM_PORTALS [VDCM_BENCH_ARGS...]
#            (runs inside the VM for `make bench`, as root)
#
# Loads mtty, the VDCM and the simulated PF with NUM_QPS queue pairs and
# NUM_PORTALS portals (one per shared ADI, so this bounds max_adis_per_pf), runs
# vdcm_bench, which writes OUT_DIR/bench.json, and unloads everything.
# Lines for the host start with "[bench]".
set -u
out=$1 qps=$2 portals=$3
shift 3
. "$(dirname "$0")/lib.sh"

echo "[bench] kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
modprobe mtty || { echo "[bench] modprobe mtty failed"; exit 1; }
insmod "$VDCM_KO" || exit 1
# The in-kernel client of the engine runs at load: the ADI path's
# throughput baseline, in the same VM.
insmod "$SIM_KO" num_qps="$qps" num_portals="$portals" direct_bench="${DIRECT_DESCS:-200000}" || exit 1
direct=$(dmesg | sed -n 's/.*direct client: \([0-9]*\) descriptors in \([0-9]*\) ns, \([0-9]*\) bytes of MEMMOVE in \([0-9]*\) ns.*/\1 \2 \3 \4/p' | tail -n 1)
echo "[bench] in-kernel client: $direct (descriptors ns bytes ns)"
rm -f "$out/bench.json"
"$TOP_DIR/qemu-test/userspace/target/release/vdcm_bench" --out "$out/bench.json" ${direct:+--direct "$direct"} "$@" 2>&1 |
	sed -u 's/^\([^[]\)/[bench] \1/'
rc=${PIPESTATUS[0]}
echo "[bench] vdcm_bench exited with $rc"
rmmod vdcm_sim && rmmod vdcm && rmmod mtty || rc=1
dmesg >"$out/dmesg.log"
exit "$rc"
