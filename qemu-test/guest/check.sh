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
rm -rf "$out/kunit" "$out/points" "$out/guest-done" "$points"
mkdir -p "$out/kunit" "$out/points"
: >"$points"
scratch=$(mktemp)

# `make check ONLY="pattern ..."` (while iterating; CI never sets it):
# only the points and test binaries whose names match one of the extended
# regular expressions run; module load/unload and kmemleak always do.
ONLY=$(cat "$out/only" 2>/dev/null)
# wanted NAME: whether NAME is selected.
wanted() {
	local p
	[ -z "$ONLY" ] && return 0
	case $1 in *module_load|*kunit*|modules_unload|kmemleak_clean) return 0 ;; esac
	for p in $ONLY; do
		echo "$1" | grep -qE "$p" && return 0
	done
	return 1
}

# wanted_any NAME...: whether any of the NAMEs is selected.
wanted_any() {
	local n
	for n in "$@"; do
		wanted "$n" && return 0
	done
	return 1
}

# point NAME CMD...: run CMD as test point NAME.
point() {
	local name=$1 start=$SECONDS; shift
	wanted "$name" || return 0
	if "$@" >"$scratch" 2>&1; then
		echo "ok - $name" >>"$points"
		# What a passing point printed (its figures), for the record.
		cp "$scratch" "$out/points/$name.log"
	else
		echo "not ok - $name" >>"$points"
		sed 's/^/# /' "$scratch" >>"$points"
	fi
	echo "[guest] $(grep -E '^(not )?ok - ' "$points" | tail -n 1) ($((SECONDS - start)) s)"
}

kunit_suites() {
	ls "$DEBUGFS/kunit" 2>/dev/null | sort
}

# insmod MODULE [PARAMS...] and keep the results of the KUnit suites it registered
# (KUnit runs a module's suites at load; their debugfs entries disappear
# again on unload).
insmod_with_kunit() {
	local ko=$1 before after suite n
	shift
	before=$(kunit_suites)
	insmod "$ko" "$@" || return 1
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
# Two PFs: migration_cross_pf moves a guest from one to the other.
point vdcm_sim_module_load insmod_with_kunit "$SIM_KO" num_pfs=2
point cpf_module_load insmod "$TOP_DIR/samples/vdcm_cpf/vdcm_cpf.ko"
show_load_lines '[guest]'

BIN=$TOP_DIR/qemu-test/userspace/target/release
for bin in vfio_stack cpf migration adi_lifecycle adi_datapath adi_shared adi_qos adi_bad_input adi_group adi_fuzz adi_races; do
	wanted "$bin" || continue
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

# QoS settings at create time: mdevctl writes a defined device's
# attributes into its sysfs files when it starts it, so an operator's
# qos/ choices are in place before a tenant opens the ADI; a refused one
# (weight 0) makes the start fail and leaves nothing behind.
mdevctl_qos_attributes() {
	local uuid dir
	uuid=$(cat /proc/sys/kernel/random/uuid)
	dir=/sys/bus/mdev/devices/$uuid
	mdevctl define -u "$uuid" -p vdcm_sim0 -t vdcm_sim-1q || return 1
	mdevctl modify -u "$uuid" --addattr=qos/weight --value=7 || return 1
	mdevctl modify -u "$uuid" --addattr=qos/priority --value=3 || return 1
	mdevctl modify -u "$uuid" --addattr=qos/max_rate --value=5000 || return 1
	mdevctl start -u "$uuid" || { mdevctl undefine -u "$uuid"; return 1; }
	local got
	got="$(cat "$dir/qos/weight") $(cat "$dir/qos/priority") $(cat "$dir/qos/max_rate")"
	mdevctl stop -u "$uuid"
	[ "$got" = "7 3 5000" ] || { echo "after start: weight priority max_rate = $got, want 7 3 5000"; mdevctl undefine -u "$uuid"; return 1; }
	mdevctl modify -u "$uuid" --addattr=qos/weight --value=0 || return 1
	if mdevctl start -u "$uuid" 2>&1; then
		echo "start with qos/weight 0 succeeded"
		mdevctl stop -u "$uuid"
		mdevctl undefine -u "$uuid"
		return 1
	fi
	[ ! -e "$dir" ] || { echo "a refused start left $dir"; echo 1 >"$dir/remove"; mdevctl undefine -u "$uuid"; return 1; }
	mdevctl undefine -u "$uuid" || return 1
	dmesg | grep -q "qos/weight = 0 refused: weight must be 1 to 200" || { echo "no dev_err line for the refused weight"; return 1; }
}
point mdevctl_qos_attributes mdevctl_qos_attributes

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

# Guest VMs use ADIs: QEMU's vfio-pci gives a guest an ADI (a 1q ADI of
# vdcm_sim0), the guest kernel's vdcm_guest driver probes it, enables
# MSI-X, programs queue 0 and runs its DMA self-test; lspci -vv inside the
# guest shows the device (nested_verify). The ADI's counters on this side
# must equal what the guest reports it ran.
NESTED_DIR=$out/nested
NESTED_OUT=$out/nested-run
rm -rf "$NESTED_OUT"
mkdir -p "$NESTED_OUT"

# new_adi [PF]: create a 1q ADI on PF (vdcm_sim0); prints its sysfs
# directory.
new_adi() {
	local uuid pf=${1:-vdcm_sim0}
	uuid=$(cat /proc/sys/kernel/random/uuid)
	echo "$uuid" >"/sys/class/mdev_bus/$pf/mdev_supported_types/vdcm_sim-1q/create" || return 1
	echo "/sys/bus/mdev/devices/$uuid"
}

# guest_matches_adi NAME ADI: the ADI ran exactly the descriptors and
# raised exactly the interrupts the guest counted, on the PASID the guest
# read from its PASID register.
guest_matches_adi() {
	local name=$1 adi=$2 line descs irqs pasid
	line=$(nested_line "$name" 'vdcm_guest .*traffic passed')
	if [ -n "$line" ]; then
		descs=$(sed -E 's/.* ([0-9]+) descriptors.*/\1/' <<<"$line")
		irqs=$(sed -E 's/.* ([0-9]+) interrupts in.*/\1/' <<<"$line")
	else
		descs=3 irqs=3
	fi
	pasid=$(nested_line "$name" 'host PASID [0-9]+' | sed -E 's/.*host PASID ([0-9]+).*/\1/')
	echo "$name: guest ran $descs descriptors, $irqs interrupts, PASID $pasid; ADI: $(cat "$adi/stats/descriptors") descriptors, $(cat "$adi/stats/interrupts") interrupts, PASID $(cat "$adi/stats/pasid")"
	[ "$(cat "$adi/stats/descriptors")" = "$descs" ] || { echo "$name: descriptor counts differ"; return 1; }
	[ "$(cat "$adi/stats/interrupts")" = "$irqs" ] || { echo "$name: interrupt counts differ"; return 1; }
	[ "$(cat "$adi/stats/pasid")" = "$pasid" ] || { echo "$name: PASIDs differ"; return 1; }
}

# Two guests at once, each with its own 1q ADI of the same PF: guest_a
# through iommufd, guest_b through the legacy group and container. Each
# runs its self-test and then TRAFFIC seconds of traffic with its own data.
# One boot of the pair serves three points: each guest's self-test
# (guest_selftest_vfio_pci_iommufd, group_guest_selftest_vfio_pci: QEMU's
# vfio-pci realized the ADI, the guest's driver passed, the ADI ran exactly
# the guest's descriptors and interrupts on the PASID the guest read), and
# the two at once (guests_two_concurrent_traffic): both ADIs busy at the
# same time — the host notes when each ADI's descriptor counter first and
# last changed (sampled about every second) and the two busy spans must
# overlap by at least 5 s — on two PASIDs. Two TCG guests inside the TCG VM
# finish booting at different times (their kernels reached /init 20 s
# apart, their traffic 40 s apart on 2026-12-03), so each runs traffic long
# enough for the spans to overlap anyway. Each point's verdict is kept in
# $NESTED_OUT/NAME.result (passed) or NAME.result.fail, with its report.
GUEST_PAIR_POINTS="guest_selftest_vfio_pci_iommufd group_guest_selftest_vfio_pci guests_two_concurrent_traffic"
# pair_verdict NAME RC REPORT_FILE: file point NAME's verdict.
pair_verdict() {
	rm -f "$NESTED_OUT/$1.result" "$NESTED_OUT/$1.result.fail"
	if [ "$2" -eq 0 ]; then
		cp "$3" "$NESTED_OUT/$1.result"
	else
		cp "$3" "$NESTED_OUT/$1.result.fail"
	fi
}
# guest_of_pair NAME ADI: guest NAME's own verdict (its self-test point).
guest_of_pair() {
	nested_verify "$1" && guest_matches_adi "$1" "$2"
}
guest_pair() {
	local a b rc=0 now da db da0=0 db0=0 a_first=0 a_last=0 b_first=0 b_last=0 overlap r
	local traffic=90 rep=$NESTED_OUT/pair.report
	grep -q kasan_multi_shot /proc/cmdline && traffic=150
	nested_ready || return 1
	a=$(new_adi) || return 1
	b=$(new_adi) || { echo 1 >"$a/remove"; return 1; }
	nested_start guest_a "$a" iommufd "vdcm_guest.seed=11 vdcm_guest.traffic_ms=${traffic}000"
	nested_start guest_b "$b" group "vdcm_guest.seed=12 vdcm_guest.traffic_ms=${traffic}000"
	while [ ! -e "$NESTED_OUT/guest_a.rc" ] || [ ! -e "$NESTED_OUT/guest_b.rc" ]; do
		sleep 1
		now=$(date +%s)
		da=$(cat "$a/stats/descriptors") db=$(cat "$b/stats/descriptors")
		if [ "$da" != "$da0" ]; then
			[ "$a_first" -ne 0 ] || a_first=$now
			a_last=$now da0=$da
		fi
		if [ "$db" != "$db0" ]; then
			[ "$b_first" -ne 0 ] || b_first=$now
			b_last=$now db0=$db
		fi
	done
	guest_of_pair guest_a "$a" >"$rep" 2>&1
	r=$?
	pair_verdict guest_selftest_vfio_pci_iommufd $r "$rep"
	[ $r -eq 0 ] || rc=1
	guest_of_pair guest_b "$b" >"$rep" 2>&1
	r=$?
	pair_verdict group_guest_selftest_vfio_pci $r "$rep"
	[ $r -eq 0 ] || rc=1
	# A span is empty (and so is the overlap) while its ADI never ran.
	overlap=0
	if [ "$a_first" -ne 0 ] && [ "$b_first" -ne 0 ]; then
		overlap=$(( (a_last < b_last ? a_last : b_last) - (a_first > b_first ? a_first : b_first) ))
		[ "$overlap" -ge 0 ] || overlap=0
	fi
	{
		echo "ADI a busy for $((a_first ? a_last - a_first : 0)) s, ADI b for $((b_first ? b_last - b_first : 0)) s, both for $overlap s"
		cat "$NESTED_OUT/guest_a.time" "$NESTED_OUT/guest_b.time" 2>/dev/null
		nested_line guest_a 'traffic passed'
		nested_line guest_b 'traffic passed'
		[ $rc -eq 0 ] || echo "a guest's own self-test failed (its point says why)"
		[ "$(cat "$a/stats/pasid")" != "$(cat "$b/stats/pasid")" ] || { echo "both ADIs have one PASID"; rc=1; }
		[ "$overlap" -ge 5 ] ||
			{ echo "the guests' traffic overlapped for only $overlap s (at least 5 wanted)"; rc=1; }
	} >"$rep" 2>&1
	pair_verdict guests_two_concurrent_traffic $rc "$rep"
	echo 1 >"$a/remove"
	echo 1 >"$b/remove"
}
# filed_verdict NAME: the verdict a guest run filed as $NESTED_OUT/NAME.result
# (passed) or NAME.result.fail, with its report, for a point that shares
# that run.
filed_verdict() {
	cat "$NESTED_OUT/$1".result* 2>/dev/null || echo "no verdict filed as $1.result: the guest run that files it did not run"
	[ -e "$NESTED_OUT/$1.result" ]
}
if wanted_any $GUEST_PAIR_POINTS; then
	guest_pair_start=$SECONDS
	guest_pair
	echo "[guest] the guest pair took $((SECONDS - guest_pair_start)) s"
fi
for name in $GUEST_PAIR_POINTS; do
	point "$name" filed_verdict "$name"
done

# Live migration of a running guest, twice: the guest runs its self-test
# traffic (every result checked, with completion interrupts) on ADI a of
# vdcm_sim0; once a's descriptor counter shows the traffic running, a
# destination QEMU starts on ADI b of the same PF with -incoming and the
# source migrates to it over a unix socket (migration_live_traffic); once
# b's counter rises, b's QEMU migrates the guest on to ADI c of the second
# PF, vdcm_sim1, with another PASID than b's (migration_cross_pf; each PF
# allocates its own PASIDs when there is no system PASID space, so c, the
# first on vdcm_sim1, has a's number and b's differs).
# QEMU's vfio-pci has the iommufd backend and enable-migration=on (the
# guest's memory follows through the ADIs' DMA dirty logging) and the same
# PCI address on every side, under which QEMU files its vmstate. The guest
# goes on and must pass; its console is the three QEMUs' in turn; the
# descriptors a, b and c ran must add up exactly to the guest's count, each
# having run some. One guest boot serves both points.
MIG_DEVOPTS=",addr=04.0,enable-migration=on"
QMP=$TOP_DIR/qemu-test/guest/qmp.py
# mig_wait_traffic NAME ADI FROM: wait until ADI's descriptor counter is
# FROM + 300 (the guest's traffic runs there) while QEMU NAME runs.
mig_wait_traffic() {
	local n=0
	while [ "$(cat "$2/stats/descriptors")" -lt $(($3 + 300)) ]; do
		[ ! -e "$NESTED_OUT/$1.rc" ] || { echo "$1: the guest ended before its traffic ran there"; return 1; }
		n=$((n + 1))
		[ $n -lt 900 ] || { echo "$1: no traffic on its ADI within 900 s"; return 1; }
		sleep 1
	done
}
# mig_hop FROM TO TO_ADI: start QEMU TO on TO_ADI with -incoming, migrate
# the guest from QEMU FROM to it, quit FROM.
mig_hop() {
	local sock=$NESTED_OUT/$2.sock n=0 rc=0
	nested_start "$2" "$3" iommufd "$MIG_KARGS" \
		"-qmp unix:$NESTED_OUT/$2.qmp,server=on,wait=off -incoming unix:$sock" "$MIG_DEVOPTS"
	while [ ! -S "$sock" ] && [ $n -lt 120 ]; do sleep 1; n=$((n + 1)); done
	python3 "$QMP" "$NESTED_OUT/$1.qmp" migrate "unix:$sock" || rc=1
	python3 "$QMP" "$NESTED_OUT/$1.qmp" quit
	nested_wait "$1"
	return $rc
}
# The guest's traffic must outlast both hops (each a destination QEMU's
# start and a 256 MiB migration under nested TCG); the guests keep real
# time (guest/lib.sh), so these are seconds of the test VM's clock.
MIG_KARGS="vdcm_guest.seed=31 vdcm_guest.traffic_ms=180000"
migration_live_traffic() {
	local a b c rc=0 line want da db dc hop1=1 hop2=1 q last=mig_a
	nested_ready || return 1
	rm -f "$NESTED_OUT"/mig_[abc].* "$NESTED_OUT"/live.* "$NESTED_OUT"/cross_pf.result*
	a=$(new_adi) && b=$(new_adi) && c=$(new_adi vdcm_sim1) || return 1
	echo "PASIDs: a $(cat "$a/stats/pasid") and b $(cat "$b/stats/pasid") on vdcm_sim0, c $(cat "$c/stats/pasid") on vdcm_sim1"
	[ "$(cat "$a/stats/pasid")" != "$(cat "$b/stats/pasid")" ] &&
		[ "$(cat "$b/stats/pasid")" != "$(cat "$c/stats/pasid")" ] || { echo "two ADIs of a hop share a PASID"; rc=1; }
	nested_start mig_a "$a" iommufd "$MIG_KARGS" \
		"-qmp unix:$NESTED_OUT/mig_a.qmp,server=on,wait=off" "$MIG_DEVOPTS"
	if [ $rc -eq 0 ] && mig_wait_traffic mig_a "$a" 0 && mig_hop mig_a mig_b "$b"; then
		hop1=0 last=mig_b
		echo "hop 1 done: ADI a ran $(cat "$a/stats/descriptors") descriptors"
		if mig_wait_traffic mig_b "$b" 0 && mig_hop mig_b mig_c "$c"; then
			hop2=0 last=mig_c
			echo "hop 2 done: ADI b ran $(cat "$b/stats/descriptors") descriptors"
		fi
	fi
	[ $hop1 -eq 0 ] || rc=1
	# Whatever still runs and does not carry the guest goes; then every
	# QEMU started is waited for.
	for q in mig_a mig_b mig_c; do
		[ "$q" = "$last" ] && continue
		[ -S "$NESTED_OUT/$q.qmp" ] && [ ! -e "$NESTED_OUT/$q.rc" ] && python3 "$QMP" "$NESTED_OUT/$q.qmp" quit
	done
	[ $rc -eq 0 ] || { [ ! -e "$NESTED_OUT/$last.rc" ] && python3 "$QMP" "$NESTED_OUT/$last.qmp" quit; }
	for q in mig_a mig_b mig_c; do
		if [ -e "$NESTED_OUT/$q.qmp" ] || [ -e "$NESTED_OUT/$q.rc" ]; then nested_wait "$q"; fi
	done
	cat "$NESTED_OUT"/mig_[abc].console >"$NESTED_OUT/live.console" 2>/dev/null
	cat "$NESTED_OUT"/mig_[abc].qemu.log >"$NESTED_OUT/live.qemu.log" 2>/dev/null
	cp "$NESTED_OUT/$last.rc" "$NESTED_OUT/live.rc"
	nested_verify live || rc=1
	if [ $rc -eq 0 ]; then
		line=$(nested_line live 'traffic passed')
		echo "$line"
		want=$(echo "$line" | sed -nE 's/.* ([0-9]+) descriptors.*/\1/p')
		da=$(cat "$a/stats/descriptors") db=$(cat "$b/stats/descriptors") dc=$(cat "$c/stats/descriptors")
		echo "the guest counted ${want:-?} descriptors; ADI a ran $da, b $db, c $dc"
		[ -n "$want" ] && [ "$da" -gt 0 ] && [ "$db" -gt 0 ] && [ $((da + db + dc)) -eq "$want" ] ||
			{ echo "the ADIs' descriptors do not add up to the guest's, or a or b ran none"; rc=1; }
		if [ $hop2 -eq 0 ] && [ "$dc" -gt 0 ]; then
			echo "ok: c on vdcm_sim1 ran $dc descriptors" >"$NESTED_OUT/cross_pf.result"
		fi
	fi
	[ -e "$NESTED_OUT/cross_pf.result" ] || echo "the guest did not run on vdcm_sim1's ADI (rc $rc)" >"$NESTED_OUT/cross_pf.result.fail"
	for d in "$a" "$b" "$c"; do echo 1 >"$d/remove"; done
	return $rc
}
point migration_live_traffic migration_live_traffic
# migration_cross_pf: the second hop of migration_live_traffic's guest.
point migration_cross_pf filed_verdict cross_pf

# Migration to a file: the running guest is saved with "migrate file:"
# while its traffic runs, its QEMU quits (the ADI is closed and reset), and
# a new QEMU restores it from the file into the same ADI (-incoming file:);
# the guest goes on and passes, the ADI ran work after the restore, and it
# ran exactly the guest's descriptors in all.
migration_file_restore() {
	local a rc=0 line want da saved file=$NESTED_OUT/mig.state
	local kargs="vdcm_guest.seed=32 vdcm_guest.traffic_ms=150000"
	nested_ready || return 1
	a=$(new_adi) || return 1
	rm -f "$file" "$NESTED_OUT"/mig_fsrc.* "$NESTED_OUT"/mig_fdst.* "$NESTED_OUT"/file.*
	nested_start mig_fsrc "$a" iommufd "$kargs" \
		"-qmp unix:$NESTED_OUT/mig_fsrc.qmp,server=on,wait=off" "$MIG_DEVOPTS"
	mig_wait_traffic mig_fsrc "$a" 0 || rc=1
	[ $rc -ne 0 ] || python3 "$QMP" "$NESTED_OUT/mig_fsrc.qmp" migrate "file:$file" || rc=1
	python3 "$QMP" "$NESTED_OUT/mig_fsrc.qmp" quit
	nested_wait mig_fsrc
	saved=$(cat "$a/stats/descriptors")
	echo "saved $(stat -c %s "$file" 2>/dev/null) bytes after $saved descriptors"
	if [ $rc -eq 0 ]; then
		nested_start mig_fdst "$a" iommufd "$kargs" \
			"-qmp unix:$NESTED_OUT/mig_fdst.qmp,server=on,wait=off -incoming file:$file" "$MIG_DEVOPTS"
		nested_wait mig_fdst
	else
		cp "$NESTED_OUT/mig_fsrc.rc" "$NESTED_OUT/mig_fdst.rc"
	fi
	cat "$NESTED_OUT/mig_fsrc.console" "$NESTED_OUT/mig_fdst.console" >"$NESTED_OUT/file.console" 2>/dev/null
	cat "$NESTED_OUT/mig_fsrc.qemu.log" "$NESTED_OUT/mig_fdst.qemu.log" >"$NESTED_OUT/file.qemu.log" 2>/dev/null
	cp "$NESTED_OUT/mig_fdst.rc" "$NESTED_OUT/file.rc"
	nested_verify file || rc=1
	if [ $rc -eq 0 ]; then
		line=$(nested_line file 'traffic passed')
		echo "$line"
		want=$(echo "$line" | sed -nE 's/.* ([0-9]+) descriptors.*/\1/p')
		da=$(cat "$a/stats/descriptors")
		echo "the guest counted ${want:-?} descriptors; the ADI ran $da, $((da - saved)) of them after the restore"
		[ -n "$want" ] && [ "$da" -eq "$want" ] || { echo "the ADI's descriptors are not the guest's"; rc=1; }
		[ "$da" -gt "$saved" ] || { echo "the restored guest ran no descriptor on the ADI"; rc=1; }
	fi
	rm -f "$file"
	echo 1 >"$a/remove"
	return $rc
}
point migration_file_restore migration_file_restore

# dmesg_mark: writes a unique marker to the kernel log and prints it;
# dmesg_since MARK: the kernel log from that marker on (what a step logged,
# however much the modules' KUnit suites printed meanwhile, and whether or
# not the log buffer has wrapped).
dmesg_mark() {
	local m="vdcm-test: mark $(cat /proc/sys/kernel/random/uuid)"
	echo "$m" >/dev/kmsg
	echo "$m"
}
dmesg_since() {
	dmesg | sed -n "/$1/,\$p"
}

# refused_without_siov MODULE KO TYPES [LOG_LINE]: a PF whose config space
# lacks the SIOV capability is refused by the VDCM, so loading MODULE with
# siov_cap=0 fails, the VDCM says why (and, if given, the PF logs
# LOG_LINE); loaded again normally, its mdev types (TYPES, a glob) are back.
refused_without_siov() {
	local module=$1 ko=$2 types=$3 line=${4:-} n
	rmmod "$module" || return 1
	n=$(dmesg_mark)
	if insmod "$ko" siov_cap=0; then
		echo "$module with siov_cap=0 loaded"; return 1
	fi
	dmesg_since "$n" | grep -q "no SIOV capability" ||
		{ echo "no dev_err naming the missing capability"; return 1; }
	[ -z "$line" ] || dmesg_since "$n" | grep -q "$line" ||
		{ echo "no dev_err from $module: $line"; return 1; }
	insmod "$ko" || return 1
	# shellcheck disable=SC2086
	ls -d $types >/dev/null || { echo "no mdev types $types after reloading $module"; return 1; }
}
point pf_without_siov_cap_refused refused_without_siov vdcm_sim "$SIM_KO" \
	/sys/class/vdcm_sim/vdcm_sim0/mdev_supported_types
CPF_KO=$TOP_DIR/samples/vdcm_cpf/vdcm_cpf.ko
point cpf_pf_without_siov_cap_refused refused_without_siov vdcm_cpf "$CPF_KO" \
	"/sys/class/mdev_bus/vdcm_cpf0/mdev_supported_types/*mbox" "vdcm_cpf0: the VDCM refused the PF"

# The engine's in-kernel client (the throughput baseline of `make bench`)
# runs one ring of BATCHes and a ring of MEMMOVEs at load and reports them.
direct_client_runs() {
	local n
	rmmod vdcm_sim || return 1
	n=$(dmesg_mark)
	insmod "$SIM_KO" direct_bench=1 || return 1
	dmesg_since "$n" | grep -E "direct client: 2112 descriptors in [0-9]+ ns, 13107200 bytes of MEMMOVE" ||
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
	rmmod vdcm_sim && rmmod vdcm_cpf && rmmod vdcm && rmmod mtty
}
point modules_unload unload

# `make install` as an operator runs it, staged into a scratch root that
# holds this kernel's own modules (mdev among them): afterwards `modprobe
# vdcm_sim` from that root resolves and loads vdcm and mdev (unloaded
# first, so that modprobe must pull it in) and the PF appears.
make_install_modprobe() {
	local root rel kdir rc=0 m
	rel=$(uname -r)
	kdir=$(cat "$out/kdir")
	root=$(mktemp -d)
	mkdir -p "$root/lib/modules/$rel"
	cp -rL "/lib/modules/$rel/kernel" /lib/modules/"$rel"/modules.{order,builtin,builtin.modinfo} \
		"$root/lib/modules/$rel/" || { rm -rf "$root"; return 1; }
	! grep -q '^mdev ' /proc/modules || rmmod mdev || rc=1
	make -C "$TOP_DIR" install KDIR="$kdir" INSTALL_MOD_PATH="$root" || rc=1
	ls "$root/lib/modules/$rel/updates/drivers/vdcm/vdcm.ko" || rc=1
	grep -E '^updates/samples/vdcm_sim/vdcm_sim.ko: .*vdcm.ko.*' "$root/lib/modules/$rel/modules.dep" ||
		{ echo "modules.dep lacks vdcm_sim's dependencies"; rc=1; }
	if [ $rc -eq 0 ]; then
		modprobe -d "$root" vdcm_sim || rc=1
		for m in mdev vdcm vdcm_sim; do
			grep -q "^$m " /proc/modules || { echo "modprobe vdcm_sim did not load $m"; rc=1; }
		done
		[ -e /sys/class/mdev_bus/vdcm_sim0 ] || { echo "no vdcm_sim0 after modprobe"; rc=1; }
		modprobe -r -d "$root" vdcm_sim vdcm || rc=1
		! grep -qE '^(vdcm|vdcm_sim) ' /proc/modules || { echo "modprobe -r left a module"; rc=1; }
	fi
	rm -rf "$root"
	return $rc
}
point make_install_modprobe make_install_modprobe
point kmemleak_clean kmemleak_report "$out/kmemleak.txt"

dmesg >"$out/dmesg.log"
rm -f "$scratch"
touch "$out/guest-done"
