#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   check.sh OUT_DIR   (runs inside the test VM, as root)
#
# Loads the modules, collects the KUnit suites they brought, runs the
# user-space tests, unloads everything and asks kmemleak. Writes:
#   OUT_DIR/guest-points.txt   one "ok - NAME" / "not ok - NAME" line per
#                              point, "# " diagnostics under failures
#   OUT_DIR/kunit/NN-SUITE.ktap  each KUnit suite's results, in load order
#   OUT_DIR/dmesg.log, OUT_DIR/kmemleak.txt, OUT_DIR/guest-done
# qemu-test/tap.py turns these into results.tap on the host.
set -u
out=$1
. "$(dirname "$0")/lib.sh"

points=$out/guest-points.txt
rm -rf "$out/kunit" "$out/guest-done" "$points"
mkdir -p "$out/kunit"
: >"$points"
scratch=$(mktemp)

# point NAME CMD...: run CMD as test point NAME.
point() {
	local name=$1; shift
	if "$@" >"$scratch" 2>&1; then
		echo "ok - $name" >>"$points"
	else
		echo "not ok - $name" >>"$points"
		sed 's/^/# /' "$scratch" >>"$points"
	fi
	echo "[guest] $(tail -n 1 "$points")"
}

kunit_suites() {
	ls "$DEBUGFS/kunit" 2>/dev/null | sort
}

# insmod MODULE and keep the results of the KUnit suites it registered
# (KUnit runs a module's suites at load; their debugfs entries disappear
# again on unload).
insmod_with_kunit() {
	local ko=$1 before after suite n
	before=$(kunit_suites)
	insmod "$ko" || return 1
	after=$(kunit_suites)
	n=$(ls "$out/kunit" | wc -l)
	for suite in $(comm -13 <(echo "$before") <(echo "$after")); do
		n=$((n + 1))
		cp "$DEBUGFS/kunit/$suite/results" "$out/kunit/$(printf '%02d' $n)-$suite.ktap"
		echo "[guest] KUnit suite $suite: $(grep -cE '^\s+ok ' "$out/kunit/"*"-$suite.ktap") cases ok"
	done
}

vdcm_has_kunit() {
	ls "$out/kunit" | grep -q . || { echo "vdcm.ko registered no KUnit suite"; return 1; }
}

mount_debugfs
point mtty_module_load modprobe mtty
point vdcm_module_load insmod_with_kunit "$VDCM_KO"
point vdcm_kunit_suites_registered vdcm_has_kunit
point vdcm_sim_module_load insmod_with_kunit "$SIM_KO"
show_load_lines '[guest]'

for bin in vfio_stack adi_lifecycle adi_datapath; do
	echo "[guest] running $bin"
	"$TOP_DIR/qemu-test/userspace/target/release/$bin" >"$scratch" 2>&1
	rc=$?
	cat "$scratch" >>"$points"
	grep -E '^(not )?ok ' "$scratch" | sed 's/^/[guest] /'
	if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$scratch"; then
		echo "not ok - ${bin}_exit" >>"$points"
		echo "# $bin exited with $rc without reporting a failed point" >>"$points"
	fi
done

# The benchmark in miniature (`make bench` runs it in full), so its code
# keeps working: every key of the JSON present and sane.
bench_quick() {
	"$TOP_DIR/qemu-test/userspace/target/release/vdcm_bench" --quick --out "$out/bench-quick.json" &&
		python3 "$TOP_DIR/qemu-test/bench_report.py" check "$out/bench-quick.json"
}
point bench_quick bench_quick

unload() {
	rmmod vdcm_sim && rmmod vdcm && rmmod mtty
}
point modules_unload unload
point kmemleak_clean kmemleak_report "$out/kmemleak.txt"

dmesg >"$out/dmesg.log"
rm -f "$scratch"
touch "$out/guest-done"
