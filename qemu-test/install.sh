#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make install`: install the built modules (Kbuild's: vdcm, vdcm_sim,
# vdcm_cpf, vdcm_guest) into the target kernel's module directory,
# INSTALL_MOD_PATH/lib/modules/<KDIR's release>/updates, and run depmod
# there, so that `modprobe vdcm_sim` also loads vdcm and the kernel's mdev.
# The target kernel is KDIR (default: the harness's cached test kernel);
# INSTALL_MOD_PATH (default: empty, the running system's root) stages the
# installation elsewhere. Nothing is built: run `make modules` first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -z "${KDIR:-}" ]; then
	KDIR=$("$QT_DIR/kernel.sh" kdir)
fi
[ -f "$KDIR/include/config/kernel.release" ] || die "KDIR=$KDIR is not a built kernel tree"
# What the build produced (Kbuild's list, as modules_install reads it).
[ -f "$TOP_DIR/modules.order" ] || die "nothing is built: run 'make modules' (with the same KDIR) first"
while read -r obj; do
	[ -f "$TOP_DIR/${obj%.o}.ko" ] || die "${obj%.o}.ko is not built: run 'make modules' (with the same KDIR) first"
done <"$TOP_DIR/modules.order"
release=$(cat "$KDIR/include/config/kernel.release")
mapfile -t make_args < <(kbuild_args "$KDIR")
make -C "$KDIR" M="$TOP_DIR" "${make_args[@]}" ${INSTALL_MOD_PATH:+INSTALL_MOD_PATH="$INSTALL_MOD_PATH"} \
	modules_install >&2 || die "modules_install into ${INSTALL_MOD_PATH:-}/lib/modules/$release failed"
say "installed into ${INSTALL_MOD_PATH:-}/lib/modules/$release/updates and ran depmod: 'modprobe vdcm_sim' loads vdcm and mdev with it"
