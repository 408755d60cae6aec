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

for bin in vfio_stack adi_lifecycle adi_datapath adi_shared; do
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

# A PF whose config space lacks the SIOV capability is refused by the
# VDCM: the simulated PF's registration (and so its load) fails.
pf_without_siov_cap_refused() {
	rmmod vdcm_sim || return 1
	if insmod "$SIM_KO" siov_cap=0; then
		echo "vdcm_sim with siov_cap=0 loaded"; return 1
	fi
	dmesg | tail -n 20 | grep -q "no SIOV capability" ||
		{ echo "no dev_err naming the missing capability"; return 1; }
	insmod "$SIM_KO" && [ -d /sys/class/vdcm_sim/vdcm_sim0/mdev_supported_types ]
}
point pf_without_siov_cap_refused pf_without_siov_cap_refused

unload() {
	rmmod vdcm_sim && rmmod vdcm && rmmod mtty
}
point modules_unload unload
point kmemleak_clean kmemleak_report "$out/kmemleak.txt"

dmesg >"$out/dmesg.log"
rm -f "$scratch"
touch "$out/guest-done"
