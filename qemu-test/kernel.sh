#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch Debian's linux-source-$KVER, configure it from qemu-test/config/*.config
# and build it once. The built tree is cached in
# $CACHE_DIR/kernel/linux-<source version>-<config hash>[-kasan|-guest], so
# later runs, from any clone, only rebuild the project's modules; trees of
# both series sit side by side.
#
#   kernel.sh build   build (or reuse) the kernel; print its tree's path
#   kernel.sh kdir    print the path the cache key selects, building nothing
#
# KASAN=1 selects the KASAN variant (config/kasan.config on top); GUEST=1
# the nested guests' small kernel (config/guest.config alone, cached as
# ...-<hash>-guest), which nothing but the nested guests boot. KVER selects
# the series, 7.2 (the default) or 7.3; unset, 7.3 is used only if the
# archive no longer has 7.2.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
KASAN=${KASAN:-0}
GUEST=${GUEST:-0}
case "${KVER:-}" in
'') series=(7.2 7.3) ;;
7.2 | 7.3) series=("$KVER") ;;
*) die "KVER=$KVER: the kernel series is 7.2 or 7.3" ;;
esac
# Each variant in one place: its config fragments, the options that must
# be set as asked after olddefconfig (a fragment line that Kconfig silently
# dropped for an unmet dependency would otherwise go unnoticed), its cache
# suffix and its name in the log.
# The default kernel is built with GCC. Rust with KASAN needs a clang-built
# kernel, so the KASAN variant is built with LLVM 19; the tree records its
# make arguments in .vdcm-make-args so modules are built the same way.
make_args=(ARCH=x86_64)
if [ "$GUEST" = 1 ]; then
	fragments=("$QT_DIR/config/guest.config")
	required=(RUST=y PCI_MSI=y SERIAL_8250_CONSOLE=y BLK_DEV_INITRD=y RD_GZIP=y
		ACPI=y MODULE_UNLOAD=y KERNEL_ZSTD=y)
	suffix=-guest label="guest kernel"
else
	fragments=("$QT_DIR/config/vdcm.config")
	required=(RUST=y IOMMUFD=y VFIO=y VFIO_MDEV=m VFIO_DEVICE_CDEV=y VFIO_GROUP=y
		VFIO_CONTAINER=y SAMPLE_VFIO_MDEV_MTTY=m INTEL_IOMMU=y
		INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON=y IRQ_REMAP=y PCI_PASID=y PCI_ATS=y
		PCI_PRI=y EVENTFD=y KUNIT=y KUNIT_DEBUGFS=y PROVE_LOCKING=y DEBUG_KMEMLEAK=y
		DEBUG_ATOMIC_SLEEP=y INTEL_IOMMU_DEBUGFS=y
		VIRTIO_FS=y NET_9P_VIRTIO=y OVERLAY_FS=y)
	suffix= label=kernel
	if [ "$KASAN" = 1 ]; then
		fragments+=("$QT_DIR/config/kasan.config")
		required+=(KASAN=y KASAN_GENERIC=y)
		make_args+=(LLVM=-19)
		suffix=-kasan
	fi
fi

# The newest linux-source-<series> the archive offers, of the first series
# in $series that it has.
pick_source() {
	local s ver
	for s in "${series[@]}"; do
		ver=$(apt-cache madison "linux-source-$s" 2>/dev/null |
			awk '{print $3}' | sort -V | tail -n 1)
		if [ -n "$ver" ]; then
			echo "linux-source-$s $ver"
			return
		fi
		say "linux-source-$s is not in the archive"
	done
	die "linux-source-${series[*]} not available; run qemu-test/setup.sh (it adds the suites that carry them)"
}

read -r SRC_PKG SRC_VER < <(pick_source)
cfg_hash=$(cat "${fragments[@]}" | sha256sum | cut -c1-12)
KDIR=$CACHE_DIR/kernel/linux-$SRC_VER-$cfg_hash$suffix

case "${1:-build}" in
kdir)
	echo "$KDIR"
	exit 0
	;;
build) ;;
*) die "usage: kernel.sh build|kdir" ;;
esac

if [ -f "$KDIR/.vdcm-built" ]; then
	say "$label: cached $SRC_PKG $SRC_VER (config $cfg_hash$suffix) in $KDIR"
	echo "$KDIR"
	exit 0
fi

say "$label: $SRC_PKG $SRC_VER, config $cfg_hash$suffix, not cached yet: building in $KDIR"
[ -n "${KVER:-}" ] || [ "$SRC_PKG" = linux-source-7.2 ] ||
	say "NOTE: linux-source-7.2 is gone from the archive; using $SRC_PKG"

if [ ! -f "$KDIR/.vdcm-extracted" ]; then
	srcdir=$CACHE_DIR/src
	deb=$srcdir/${SRC_PKG}_${SRC_VER}_all.deb
	mkdir -p "$srcdir"
	if [ ! -f "$deb" ]; then
		# Download only: the package is never installed.
		run_step kernel-download sh -c "cd '$srcdir' && apt-get download '$SRC_PKG=$SRC_VER'"
	fi
	rm -rf "$KDIR"
	mkdir -p "$KDIR"
	run_step kernel-extract sh -c "dpkg-deb --fsys-tarfile '$deb' | tar -xO --wildcards './usr/src/$SRC_PKG.tar.*' | tar -xJ -C '$KDIR' --strip-components=1"
	touch "$KDIR/.vdcm-extracted"
fi

cd "$KDIR"
configure() {
	make "${make_args[@]}" allnoconfig
	scripts/kconfig/merge_config.sh -m .config "${fragments[@]}"
	make "${make_args[@]}" olddefconfig
	make "${make_args[@]}" rustavailable
}
run_step "kernel-config$suffix" configure
for opt in "${required[@]}"; do
	want=${opt#*=}
	got=$(scripts/config -s "${opt%%=*}")
	[ "$got" = "$want" ] || die "kernel config: CONFIG_${opt%%=*} is '$got', want '$want' (fragment ${fragments[*]}; log $LOG_DIR/kernel-config$suffix.log)"
done

jobs=$(($(nproc) + 1))
start=$SECONDS
run_step "kernel-build$suffix" make "${make_args[@]}" -j"$jobs" bzImage modules
echo "${make_args[*]}" >"$KDIR/.vdcm-make-args"
echo "$SRC_PKG $SRC_VER config=$cfg_hash$suffix built in $((SECONDS - start)) s on $(nproc) cores" >"$KDIR/.vdcm-built"
say "$label: built in $((SECONDS - start)) s"

# Each tree is ~2.5 GB: keep this one and the previous one of the same
# variant and series (switching between two configs stays cheap), drop
# older ones.
src_series=${SRC_PKG#linux-source-}
for old in $(ls -dt "$CACHE_DIR"/kernel/linux-"$src_series".* | grep -E -- "-[0-9a-f]{12}$suffix\$" | tail -n +3); do
	say "kernel: removing old cached tree $old"
	rm -rf "$old"
done
echo "$KDIR"
