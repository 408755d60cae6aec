#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build everything the VM runs: the toolchain (first time), the test kernel
# (first time per config), the project's modules and the user-space tests.
#
# With KDIR set, that kernel tree is used as it is: nothing is installed and
# no kernel is built. CLIPPY=1 builds the modules through clippy.
# Prints the kernel tree used on its last line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -z "${KDIR:-}" ]; then
	"$QT_DIR/setup.sh"
	KDIR=$("$QT_DIR/kernel.sh" build | tail -n 1)
fi
[ -f "$KDIR/Module.symvers" ] && [ -f "$KDIR/rust/libkernel.rmeta" ] ||
	die "KDIR=$KDIR is not a built kernel tree with Rust support (no Module.symvers or rust/libkernel.rmeta)"
for opt in RUST VFIO VFIO_MDEV IOMMUFD; do
	grep -qE "^CONFIG_$opt=[ym]" "$KDIR/.config" ||
		die "KDIR=$KDIR: CONFIG_$opt is not enabled; the VDCM needs RUST, VFIO, VFIO_MDEV and IOMMUFD"
done
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}

# With the toolchain the kernel was built with (lib.sh: kbuild_args).
mapfile -t make_args < <(kbuild_args "$KDIR")
modules() {
	make -C "$KDIR" M="$TOP_DIR" "${make_args[@]}" ${CLIPPY:+CLIPPY=$CLIPPY} modules
}
run_step modules modules
# Zero warnings is the project's rule (rustc, clippy, gcc, modpost);
# `make check` fails on them (build_no_warnings), here they are shown.
if grep -inE 'warning' "$LOG_DIR/modules.log" >&2; then
	say "WARNING: the module build printed warnings (log: $LOG_DIR/modules.log)"
fi

userspace() {
	cd "$QT_DIR/userspace"
	cargo build --release --locked
	if [ -n "${CLIPPY:-}" ]; then
		cargo clippy --release --locked -- -D warnings
	fi
}
run_step userspace userspace

echo "$KDIR"
