#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   initramfs.sh KDIR OUT
#
# Builds what a nested guest boots: OUT/bzImage (KDIR's kernel: the test
# kernel serves as the guest kernel too) and OUT/initramfs.cpio.gz with
# busybox (static), lspci with the libraries it links, the guest driver
# (samples/vdcm_guest/vdcm_guest.ko, built against KDIR) and the init
# script (qemu-test/nested/init).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

kdir=$1 out=$2
ko=$TOP_DIR/samples/vdcm_guest/vdcm_guest.ko
[ -f "$ko" ] || die "$ko is missing: build the modules first (make modules)"
busybox=$(command -v busybox) || die "busybox is not installed; run qemu-test/setup.sh"
lspci=$(command -v lspci) || die "lspci is not installed; run qemu-test/setup.sh"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,lib64,usr/lib}
cp "$busybox" "$root/bin/busybox"
cp "$lspci" "$root/bin/lspci"
# lspci's shared libraries and loader, at the paths it looks them up.
for lib in $(ldd "$lspci" | grep -oE '/[^ ]+'); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
cp "$ko" "$root/vdcm_guest.ko"
cp "$QT_DIR/nested/init" "$root/init"
chmod +x "$root/init"

mkdir -p "$out"
cp "$kdir/arch/x86/boot/bzImage" "$out/bzImage"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 >"$out/initramfs.cpio.gz"
