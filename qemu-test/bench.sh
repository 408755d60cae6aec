#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: boot the test VM with an SR-IOV device (VM_SRIOV=1), run
# qemu-test/userspace's vdcm_bench inside it and report: a table on
# stdout, $OUT_DIR/bench.json, and the create-latency plot
# $OUT_DIR/bench-create-latency.svg (+ .txt, an ASCII version).
# BENCH_QPS: queue pairs of the simulated PF (default 1024, at most 4096).
# BENCH_PORTALS: its portals (default 4096, at most 16384): one per shared
# ADI, the bound of max_adis_per_pf.
# BENCH_ARGS: arguments of vdcm_bench, e.g. "--quick" for a smoke run, or
# "--only-qos overhead" to run one step of the QoS phase (then bench.json
# holds only its keys and no report is made).
# The VM gets 40 minutes (VM_TIMEOUT) unless told otherwise: the density
# run alone opens up to 4096 ADIs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KDIR=$("$QT_DIR/build.sh" | tail -n 1)
export VM_SRIOV=1
export VM_TIMEOUT=${VM_TIMEOUT:-2400}
read -r -a args <<<"${BENCH_ARGS:-}"
set +e
"$QT_DIR/vm.sh" "$KDIR" "$QT_DIR/guest/bench.sh" "$OUT_DIR" "${BENCH_QPS:-1024}" "${BENCH_PORTALS:-4096}" "${args[@]}" | grep --line-buffered -E '^\[bench\]'
rc=${PIPESTATUS[0]}
set -e
python3 "$QT_DIR/tap.py" --scan "$OUT_DIR/console.log" || rc=1
[ "$rc" -eq 0 ] || die "the benchmark run failed (console: $OUT_DIR/console.log)"
case " ${args[*]} " in
*" --only-qos "*)
	echo "bench: QoS steps only: $OUT_DIR/bench.json (no report)"
	exit 0
	;;
esac
python3 "$QT_DIR/bench_report.py" check "$OUT_DIR/bench.json"
python3 "$QT_DIR/bench_report.py" plot "$OUT_DIR/bench.json" "$OUT_DIR/bench-create-latency"
python3 "$QT_DIR/bench_report.py" plot-qos "$OUT_DIR/bench.json" "$OUT_DIR/bench-qos-timeline"
python3 "$QT_DIR/bench_report.py" table "$OUT_DIR/bench.json"
