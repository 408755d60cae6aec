# SPDX-License-Identifier: GPL-2.0
# Helpers for the scripts that run inside the test VM. Sourced.

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_DIR=$(cd "$GUEST_DIR/../.." && pwd)
VDCM_KO=$TOP_DIR/drivers/vdcm/vdcm.ko
SIM_KO=$TOP_DIR/samples/vdcm_sim/vdcm_sim.ko
DEBUGFS=/sys/kernel/debug

mount_debugfs() {
	[ -d "$DEBUGFS/kunit" ] || mount -t debugfs none "$DEBUGFS"
}

# show_load_lines TAG: the lines the VDCM and the PF printed to the kernel
# log, each prefixed with TAG.
show_load_lines() {
	dmesg | grep -E '(vdcm|vdcm_sim): ' | sed "s/^/$1 dmesg: /"
}

# kmemleak_report FILE: scan twice (the documented way to drop transient
# false positives; objects younger than 5 s are never reported, hence the
# wait) and write what kmemleak still suspects to FILE.
kmemleak_report() {
	local f=$DEBUGFS/kmemleak
	[ -w "$f" ] || { echo "kmemleak is not available at $f" >"$1"; return 1; }
	sleep 6
	echo scan >"$f"
	echo scan >"$f"
	cat "$f" >"$1"
	[ ! -s "$1" ]
}

# --- Nested guests: a VM, inside the test VM, that is given an ADI ---------
#
# The host built $NESTED_DIR (qemu-test/nested/initramfs.sh): the small
# guest kernel's bzImage (qemu-test/config/guest.config) and an initramfs
# with the guest driver built against it (samples/vdcm_guest), lspci and
# qemu-test/nested/init. QEMU runs under TCG inside the TCG test VM, so
# each guest has NESTED_TIMEOUT seconds, a guard against a hang, not a
# performance goal (longer when the test VM runs the KASAN kernel, which
# slows the host side of every access).
# noapic: the guest's device interrupt is MSI-X, which needs no IO-APIC,
# and a guest booting this slowly once took a level interrupt in the
# middle of setup_IO_APIC() and oopsed in mask_ioapic_irq() (early boot,
# before any module).
# loglevel=5: the console shows warnings and worse (every splat the judge
# looks for) but not the boot's informational chatter: under nested TCG
# each byte on the emulated UART costs. acpi=off: interpreting q35's ACPI
# tables took a third of a nested boot (35 of 110 s); the device is found
# by PCI configuration mechanism 1 and interrupts through MSI-X, neither
# of which needs ACPI (the guest then sees no extended configuration
# space, which its driver does not use), and the init ends the VM with a
# reboot that -no-reboot turns into QEMU's exit.
# Two guests at once ran 803 s and 823 s each here (2026-12-03, before
# the guests had a real clock, below): the guard leaves twice that.
NESTED_TIMEOUT=1800
NESTED_KARGS="console=ttyS0 loglevel=5 panic=-1 noapic acpi=off"
# The guest's clock. Under nested TCG the guest kernel calibrates its TSC
# against neither the PIT (too slow to answer) nor the HPET (acpi=off),
# marks the TSC unstable and keeps time by counting timer ticks, of which
# it loses most: its clock ran at a third of real time here (uptime 210 s
# after 606 s), so every duration a test asks of a guest (its traffic)
# took three times as long, and the boot's own waits with it. Both the
# test VM's TSC and the guest's read the host's, so the test VM's refined
# calibration is handed down: tsc_early_khz skips the guest's
# calibration, tsc=reliable keeps the TSC its clocksource without a
# watchdog to compare it against (the same guest then took 412 s instead
# of 606 s, its uptime within QEMU's start of real time).
NESTED_TSC_KHZ=$(dmesg | sed -nE 's/.*tsc: Refined TSC clocksource calibration: ([0-9]+)\.([0-9]{3}) MHz.*/\1\2/p' | head -n 1)
[ -z "$NESTED_TSC_KHZ" ] || NESTED_KARGS+=" tsc_early_khz=$NESTED_TSC_KHZ tsc=reliable"
grep -q kasan_multi_shot /proc/cmdline && NESTED_TIMEOUT=2700
# QEMU writes a serial console one byte per write(): to a file on the
# test VM's share with the host ($NESTED_OUT) that made the console alone
# take minutes per guest. Consoles are written in the test VM's own tmpfs
# and copied to $NESTED_OUT when the guest is gone.
NESTED_TMP=$(mktemp -d /tmp/vdcm-nested.XXXXXX)

# nested_start NAME SYSFSDEV MODE KARGS [EXTRA [DEVOPTS]]: boot a guest with the mdev device
# SYSFSDEV through QEMU's vfio-pci, MODE iommufd (-object iommufd) or group
# (the legacy VFIO group and container), in the background. Its console
# goes to $NESTED_OUT/NAME.console; its exit code, once it powered off, to
# $NESTED_OUT/NAME.rc. EXTRA: more QEMU arguments (a QMP socket, -incoming);
# DEVOPTS: more vfio-pci options, each starting with a comma.
nested_start() {
	local name=$1 dev=$2 mode=$3 kargs=$4 extra=${5:-} devopts=${6:-} backend
	if [ "$mode" = iommufd ]; then
		backend="-object iommufd,id=iommufd0 -device vfio-pci,sysfsdev=$dev,iommufd=iommufd0$devopts"
	else
		backend="-device vfio-pci,sysfsdev=$dev$devopts"
	fi
	rm -f "$NESTED_OUT/$name.rc" "$NESTED_OUT/$name.console" "$NESTED_TMP/$name.console"
	# shellcheck disable=SC2086
	(
		start=$SECONDS
		timeout -k 10 "$NESTED_TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg \
			-cpu max -smp 1 -m 256 -nodefaults -display none -no-reboot \
			-serial "file:$NESTED_TMP/$name.console" \
			-kernel "$NESTED_DIR/bzImage" -initrd "$NESTED_DIR/initramfs.cpio" \
			-append "$NESTED_KARGS $kargs" \
			$backend $extra >"$NESTED_OUT/$name.qemu.log" 2>&1
		rc=$?
		echo "$name: QEMU ran for $((SECONDS - start)) s" >"$NESTED_OUT/$name.time"
		cp "$NESTED_TMP/$name.console" "$NESTED_OUT/$name.console"
		echo $rc >"$NESTED_OUT/$name.rc"
	) &
}

# nested_ready: whether the host built what the nested guests boot.
nested_ready() {
	[ -f "$NESTED_DIR/initramfs.cpio" ] || { echo "no nested guest image in $NESTED_DIR"; return 1; }
}

# nested_wait NAME: wait until guest NAME powered off.
nested_wait() {
	while [ ! -e "$NESTED_OUT/$1.rc" ]; do sleep 1; done
}

# nested_line NAME PATTERN: the first guest console line matching PATTERN.
nested_line() {
	grep -m1 -E "$2" "$NESTED_OUT/$1.console" | tr -d '\r'
}

# nested_verify NAME: what guest NAME must have shown: QEMU
# exited cleanly; lspci -vv shows the device by its IDs with its two 64-bit
# BARs (16 KiB registers, 4 KiB doorbell) and MSI-X enabled, bound to
# vdcm_guest; the driver's self-test passed; the driver unbound; no splat
# in the guest's kernel log. Prints the guest's report.
nested_verify() {
	local name=$1 c=$NESTED_OUT/$1.console rc
	rc=$(cat "$NESTED_OUT/$name.rc")
	cat "$NESTED_OUT/$name.time" 2>/dev/null
	grep -E 'VDCM-GUEST|Kernel panic|BUG:|WARNING:' "$c" | tr -d '\r' | head -n 60
	sed 's/^/qemu: /' "$NESTED_OUT/$name.qemu.log"
	[ "$rc" = 0 ] || { echo "$name: QEMU exited with $rc (124: timed out after ${NESTED_TIMEOUT}s)"; return 1; }
	! grep -qiE 'error|warning' "$NESTED_OUT/$name.qemu.log" || { echo "$name: QEMU printed an error or warning"; return 1; }
	# The judge's list of kernel splats (qemu-test/tap.py).
	python3 "$TOP_DIR/qemu-test/tap.py" --scan "$c" || { echo "$name: the guest kernel reported a problem"; return 1; }
	local want
	for want in 'VDCM-GUEST insmod rc=0' \
		'VDCM-GUEST device [0-9a-f:.]+ driver=vdcm_guest' \
		'lspci: .*\[fffe:51a0\]' \
		'lspci: .*Region 0: Memory at [0-9a-f]+ \(64-bit, non-prefetchable\) \[size=16K\]' \
		'lspci: .*Region 2: Memory at [0-9a-f]+ \(64-bit, non-prefetchable\) \[size=4K\]' \
		'lspci: .*MSI-X: Enable\+ Count=2 ' \
		'lspci: .*Kernel driver in use: vdcm_guest' \
		'interrupts: .*vdcm_guest' \
		'dmesg: .*self-test passed: MEMMOVE 4096 B, FILL 4096 B, CRC32C 0x[0-9a-f]{8}, 3 completion interrupts' \
		'VDCM-GUEST rmmod rc=0' \
		'VDCM-GUEST done'; do
		grep -qE "$want" "$c" || { echo "$name: the guest console lacks /$want/"; return 1; }
	done
}
