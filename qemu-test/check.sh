#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: build everything (through clippy), check formatting and
# warnings on the host, boot the test VM, run the KUnit suites and the
# user-space tests inside it, and judge the run (qemu-test/tap.py).
# The last line printed is "N passed, M failed".
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start=$SECONDS
rm -rf "$OUT_DIR/kunit" "$OUT_DIR"/{results.tap,console.log,dmesg.log,kmemleak.txt,guest-points.txt,guest-done,host-points.txt}

export CLIPPY=1
KDIR=$("$QT_DIR/build.sh" | tail -n 1)
export KDIR

host_points=$OUT_DIR/host-points.txt
: >"$host_points"
# host_point NAME CMD...: run CMD on the host as test point NAME.
host_point() {
	local name=$1 log start=$SECONDS; shift
	log=$(mktemp)
	if "$@" >"$log" 2>&1; then
		echo "ok - $name" >>"$host_points"
	else
		{ echo "not ok - $name"; head -n 40 "$log" | sed 's/^/# /'; } >>"$host_points"
	fi
	rm -f "$log"
	say "$(grep -E '^(not )?ok - ' "$host_points" | tail -n 1) ($((SECONDS - start)) s)"
}

no_build_warnings() {
	! grep -iE 'warning' "$LOG_DIR/modules.log" "$LOG_DIR/userspace.log"
}
kernel_rustfmt() {
	# rustfmt follows `mod` items from the crate roots into every file.
	rustfmt --check --config-path "$KDIR/.rustfmt.toml" --edition 2021 \
		"$TOP_DIR/drivers/vdcm/vdcm_main.rs" "$TOP_DIR/samples/vdcm_sim/sim_main.rs" \
		"$TOP_DIR/samples/vdcm_guest/guest_main.rs"
}
userspace_rustfmt() {
	cd "$QT_DIR/userspace" && cargo fmt --check
}
# Every C type has one Rust definition: none the project's bindgen emits
# may also be in the kernel crate's bindings. Bindgen's own helper types
# (`__BindgenBitfieldUnit`, ...) and its names for anonymous enums
# (`_bindgen_ty_N`, numbered per run) are not C types and are left out.
bindgen_types() {
	sed -nE 's/^pub (struct|union|type|enum) ([A-Za-z0-9_]+).*/\2/p' "$1" |
		grep -vE '^(__Bindgen|__IncompleteArrayField$|_bindgen_ty_)' | sort -u
}
bindings_no_duplicate_types() {
	local dup
	dup=$(comm -12 <(bindgen_types "$TOP_DIR/rust/vdcm_bindings.rs") \
		<(bindgen_types "$KDIR/rust/bindings/bindings_generated.rs"))
	[ -z "$dup" ] || { echo "types bound twice:"; echo "$dup"; return 1; }
}
unsafe_only_in_rust_dir() {
	! grep -rn --include='*.rs' -E '\bunsafe\b' "$TOP_DIR/drivers" "$TOP_DIR/samples"
}
# A PF driver depends on the VDCM's exported functions only: neither PF
# module may import a VFIO, eventfd, IOMMU or mdev symbol (on a kernel with
# CONFIG_VFIO=m it would otherwise pull in vfio.ko).
pf_modules_import_no_vfio() {
	local ko bad rc=0
	for ko in "$TOP_DIR/samples/vdcm_sim/vdcm_sim.ko" "$TOP_DIR/samples/vdcm_cpf/vdcm_cpf.ko"; do
		[ -f "$ko" ] || { echo "$ko not built"; rc=1; continue; }
		bad=$(nm -u "$ko" | awk '{print $2}' | grep -E '^(vfio_|eventfd_|iommu_|mdev_)')
		[ -z "$bad" ] || { echo "$(basename "$ko") imports: $bad"; rc=1; }
		nm -u "$ko" | grep -q ' vdcm_register_pf$' || { echo "$(basename "$ko") does not import vdcm_register_pf"; rc=1; }
	done
	return $rc
}
host_point harness_judge_selftest python3 "$QT_DIR/tap_test.py"
host_point build_no_warnings no_build_warnings
host_point rustfmt_kernel_code kernel_rustfmt
host_point rustfmt_userspace userspace_rustfmt
host_point bindings_no_duplicate_types bindings_no_duplicate_types
host_point unsafe_only_in_rust_dir unsafe_only_in_rust_dir
host_point pf_modules_import_no_vfio pf_modules_import_no_vfio
# What the nested guests boot (the guest points inside the VM use it): the
# small guest kernel (built once, cached like the test kernel) and an
# initramfs with the guest driver built against it.
if [[ -z "${ONLY:-}" || "$ONLY" == *guest* ]]; then
	GKDIR=$(GUEST=1 "$QT_DIR/kernel.sh" build | tail -n 1)
	host_point nested_guest_image "$QT_DIR/nested/initramfs.sh" "$GKDIR" "$OUT_DIR/nested"
fi
# The tree the VM boots, for the points that build against it.
echo "$KDIR" >"$OUT_DIR/kdir"
# ONLY="regex ...": run only the VM points that match (see guest/check.sh).
if [ -n "${ONLY:-}" ]; then
	say "only the points matching: $ONLY"
	echo "$ONLY" >"$OUT_DIR/only"
else
	rm -f "$OUT_DIR/only"
fi

# The VM's run took 1890 s here on 2026-12-03 (167 points; the nested
# guests ~1330 s of it; 2752 s before they kept real time), and CI
# machines ran earlier suites ~1.3x slower: allow 80 minutes, which with
# the ~2 minutes of building before it stays inside CI's 90.
VM_TIMEOUT=${VM_TIMEOUT:-4800} "$QT_DIR/vm.sh" "$KDIR" "$QT_DIR/guest/check.sh" "$OUT_DIR" >/dev/null || true
say "check took $((SECONDS - start)) s"
exec python3 "$QT_DIR/tap.py" "$OUT_DIR"
