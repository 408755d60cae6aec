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

BIN=$TOP_DIR/qemu-test/userspace/target/release
for bin in vfio_stack adi_lifecycle adi_datapath adi_shared adi_bad_input adi_group adi_fuzz adi_races; do
	args=()
	case $bin in
	adi_fuzz) args=(--ops "${VDCM_FUZZ_OPS:-200000}" --secs 150) ;;
	adi_races) args=(--secs 20) ;;
	esac
	echo "[guest] running $bin ${args[*]}"
	start=$(date +%s)
	"$BIN/$bin" "${args[@]}" >"$scratch" 2>&1
	rc=$?
	cat "$scratch" >>"$points"
	grep -E '^(not )?ok ' "$scratch" | sed 's/^/[guest] /'
	if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$scratch"; then
		echo "not ok - ${bin}_exit" >>"$points"
		echo "# $bin exited with $rc without reporting a failed point" >>"$points"
	fi
	echo "[guest] $bin took $(($(date +%s) - start)) s"
done

# mdevctl (Debian's) manages ADIs like any mdev: types, define, start,
# stop, undefine.
mdevctl_lifecycle() {
	local uuid dir
	uuid=$(cat /proc/sys/kernel/random/uuid)
	dir=/sys/bus/mdev/devices/$uuid
	mdevctl types | grep -q vdcm_sim-1q || { echo "mdevctl types lacks vdcm_sim-1q"; mdevctl types; return 1; }
	mdevctl types | grep -q vdcm_sim-shared || { echo "mdevctl types lacks vdcm_sim-shared"; return 1; }
	mdevctl define -u "$uuid" -p vdcm_sim0 -t vdcm_sim-1q || return 1
	mdevctl list -d | grep -q "$uuid" || { echo "defined device not listed"; return 1; }
	[ ! -e "$dir" ] || { echo "define created the device"; return 1; }
	mdevctl start -u "$uuid" || return 1
	[ -e "$dir/vfio-dev" ] || { echo "start did not create $dir"; return 1; }
	mdevctl list | grep -q "$uuid" || { echo "started device not listed as active"; return 1; }
	mdevctl stop -u "$uuid" || return 1
	[ ! -e "$dir" ] || { echo "stop left $dir"; return 1; }
	mdevctl undefine -u "$uuid" || return 1
	! mdevctl list -d | grep -q "$uuid" || { echo "undefined device still listed"; return 1; }
}
point mdevctl_lifecycle mdevctl_lifecycle

# An unmodified VMM takes an ADI: QEMU's vfio-pci realizes it (reads the
# config space, the regions and their sparse-mmap areas, maps BAR2, sets up
# MSI-X, resets it) through iommufd or the legacy group. The guest CPU is
# never started (-S): there is no guest driver to run yet.
vmm_realize() {
	local mode=$1 uuid dir backend out resets
	uuid=$(cat /proc/sys/kernel/random/uuid)
	dir=/sys/bus/mdev/devices/$uuid
	echo "$uuid" >/sys/class/mdev_bus/vdcm_sim0/mdev_supported_types/vdcm_sim-4q/create || return 1
	if [ "$mode" = iommufd ]; then
		backend="-object iommufd,id=iommufd0 -device vfio-pci,sysfsdev=$dir,iommufd=iommufd0,id=adi"
	else
		backend="-device vfio-pci,sysfsdev=$dir,id=adi"
	fi
	# shellcheck disable=SC2086
	out=$(printf 'info pci\nquit\n' | timeout 120 qemu-system-x86_64 -machine q35 -accel tcg \
		-m 128 -nodefaults -display none -S -monitor stdio $backend 2>&1)
	local rc=$?
	resets=$(cat "$dir/stats/resets")
	echo 1 >"$dir/remove"
	echo "$out" | grep -vE '^(QEMU|\(qemu\)|$)' | head -n 30
	[ $rc -eq 0 ] || { echo "qemu exited with $rc"; return 1; }
	! echo "$out" | grep -qi 'error' || { echo "qemu reported an error"; return 1; }
	echo "$out" | grep -q 'PCI device fffe:51a0' || { echo "no fffe:51a0 device in info pci"; return 1; }
	echo "$out" | grep -qE 'BAR0: 64 bit memory' || { echo "BAR0 not a 64-bit memory BAR"; return 1; }
	echo "$out" | grep -qE 'BAR2: 64 bit memory' || { echo "BAR2 not a 64-bit memory BAR"; return 1; }
	[ "$resets" -ge 1 ] || { echo "QEMU did not reset the device (resets=$resets)"; return 1; }
}
point vmm_qemu_vfio_pci_iommufd vmm_realize iommufd
point group_vmm_qemu_vfio_pci vmm_realize group

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

# The engine's in-kernel client (the throughput baseline of `make bench`)
# runs one ring of BATCHes and a ring of MEMMOVEs at load and reports them.
direct_client_runs() {
	rmmod vdcm_sim || return 1
	insmod "$SIM_KO" direct_bench=1 || return 1
	dmesg | tail -n 20 | grep -E "direct client: 2112 descriptors in [0-9]+ ns, 13107200 bytes of MEMMOVE" ||
		{ echo "no direct client report"; dmesg | tail -n 5; return 1; }
}
point direct_client_runs direct_client_runs

PF_DIR=/sys/class/vdcm_sim/vdcm_sim0
TYPE_1Q=/sys/class/mdev_bus/vdcm_sim0/mdev_supported_types/vdcm_sim-1q

# Unloading the PF removes its ADIs; an open one is asked to be released
# and the unload waits until its user closes it. Afterwards the ADI is gone
# and opening it fails; the PF comes back on the next load.
unload_pf_with_open_adi() {
	local uuid held rm_pid hold_pid i
	uuid=$(cat /proc/sys/kernel/random/uuid)
	held=$(mktemp)
	echo "$uuid" >"$TYPE_1Q/create" || return 1
	"$BIN/adi_races" hold "$uuid" 4 >"$held" 2>&1 &
	hold_pid=$!
	for i in $(seq 100); do
		grep -q '^held' "$held" && break
		sleep 0.1
	done
	grep -q '^held' "$held" || { echo "holder did not open the ADI:"; cat "$held"; return 1; }
	rmmod vdcm_sim &
	rm_pid=$!
	sleep 1.5
	if ! kill -0 "$rm_pid" 2>/dev/null; then
		echo "rmmod vdcm_sim returned while the ADI was open"
		wait "$hold_pid"
		return 1
	fi
	wait "$hold_pid" || { echo "holder failed:"; cat "$held"; return 1; }
	wait "$rm_pid" || { echo "rmmod vdcm_sim failed"; return 1; }
	cat "$held"
	[ ! -e "$PF_DIR" ] || { echo "$PF_DIR still there after rmmod"; return 1; }
	[ ! -e "/sys/bus/mdev/devices/$uuid" ] || { echo "ADI $uuid survived its PF"; return 1; }
	if "$BIN/adi_races" hold "$uuid" 0 >"$held" 2>&1; then
		echo "the ADI opened after its PF was unloaded:"; cat "$held"; return 1
	fi
	grep -q '^open failed' "$held" || { cat "$held"; return 1; }
	rm -f "$held"
	insmod "$SIM_KO" || return 1
	[ -e "$PF_DIR" ] || { echo "$PF_DIR missing after insmod"; return 1; }
}

# rmmod + insmod of the PF, 100 times: the PF must come back each time.
module_reload_100() {
	local i n start=$(date +%s)
	for i in $(seq 100); do
		rmmod vdcm_sim || { echo "rmmod #$i failed"; return 1; }
		[ ! -e "$PF_DIR" ] || { echo "#$i: $PF_DIR still there after rmmod"; return 1; }
		insmod "$SIM_KO" || { echo "insmod #$i failed"; return 1; }
		[ -e "$PF_DIR" ] || { echo "#$i: $PF_DIR missing after insmod"; return 1; }
		read -r n <"$TYPE_1Q/available_instances"
		[ "$n" = 64 ] ||
			{ echo "#$i: available_instances $n"; return 1; }
	done
	echo "vdcm-test: 100 PF reloads in $(($(date +%s) - start)) s" >/dev/kmsg
}
point race_unload_pf_with_open_adi unload_pf_with_open_adi
point race_module_reload_100 module_reload_100

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
