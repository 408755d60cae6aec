#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   initramfs.sh GUEST_KDIR OUT
#
# Builds what a nested guest boots: OUT/bzImage (the small guest kernel,
# `GUEST=1 qemu-test/kernel.sh build`, config/guest.config) and
# OUT/initramfs.cpio with busybox (static), lspci with the libraries it
# links, the guest driver (samples/vdcm_guest, built here against
# GUEST_KDIR in OUT/module, a copy of its sources, apart from the objects
# built for the test kernel) and the init script (qemu-test/nested/init).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

kdir=$1 out=$2
busybox=$(command -v busybox) || die "busybox is not installed; run qemu-test/setup.sh"
lspci=$(command -v lspci) || die "lspci is not installed; run qemu-test/setup.sh"
[ -f "$kdir/arch/x86/boot/bzImage" ] || die "$kdir has no bzImage: build the guest kernel first (GUEST=1 qemu-test/kernel.sh build)"

export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
# Built in a copy of its sources: Kbuild refuses MO= once the source tree
# holds the test kernel's build of the same modules.
src=$out/module
rm -rf "$src"
mkdir -p "$src"
(cd "$TOP_DIR" && cp --parents Kbuild samples/vdcm_guest/*.rs samples/vdcm_sim/abi.rs \
	samples/vdcm_sim/desc.rs rust/compat.rs "$src/")
mapfile -t make_args < <(kbuild_args "$kdir")
make -C "$kdir" M="$src" "${make_args[@]}" VDCM_GUEST_ONLY=1 modules
ko=$src/samples/vdcm_guest/vdcm_guest.ko
[ -f "$ko" ] || die "the guest driver did not build: $ko is missing"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,lib64,usr/lib}
cp "$busybox" "$root/bin/busybox"
cp "$lspci" "$root/bin/lspci"
# The applets' links are made here: `busybox --install` at boot costs the
# nested guest some 15 s of system calls.
for applet in $("$busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
# lspci's shared libraries and loader, at the paths it looks them up.
for lib in $(ldd "$lspci" | grep -oE '/[^ ]+'); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
cp "$ko" "$root/vdcm_guest.ko"
cp "$QT_DIR/nested/init" "$root/init"
chmod +x "$root/init"

cp "$kdir/arch/x86/boot/bzImage" "$out/bzImage"
# Not compressed: a nested guest decompresses slowly, and QEMU loads the
# file into its memory in one go.
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out/initramfs.cpio"
