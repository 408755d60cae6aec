#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building the test kernel, the modules and booting the VM
# needs, on a bare Debian bookworm machine. Idempotent: when everything is
# already present it only checks and returns within a second or two.
#
# Safety rules (see README): newer Debian suites are added with pin
# priority 50, so nothing is ever installed or upgraded from them by
# accident; only the kernel source package is *downloaded* from them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BINDGEN_VERSION=0.72.1     # kernel 7.2 accepts >= 0.71.1
VIRTME_NG_VERSION=1.42
APT_PKGS="flex bison bc libelf-dev libssl-dev cpio busybox-static libclang-19-dev
	dwarves zstd kmod udev xz-utils python3-venv mdevctl pciutils"
# Rust with KASAN needs a clang-built kernel (init/Kconfig: RUST depends on
# !KASAN || CC_IS_CLANG), so the KASAN variant brings the LLVM toolchain.
[ "${KASAN:-0}" = 1 ] && APT_PKGS="$APT_PKGS clang-19 lld-19 llvm-19"
EXTRA_SOURCES=/etc/apt/sources.list.d/vdcm-extra.sources
EXTRA_PREFS=/etc/apt/preferences.d/vdcm-extra
VENV=$CACHE_DIR/venv

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

missing_pkgs() {
	local p
	for p in $APT_PKGS; do
		[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
			printf '%s ' "$p"
	done
}

# Each check captures its command's output before matching it: under
# pipefail, `cmd | grep -q` fails whenever grep exits first and cmd gets
# SIGPIPE, which would make the checks flaky.
qemu_ok() {
	command -v qemu-system-x86_64 >/dev/null &&
		[[ $(qemu-system-x86_64 --version) =~ version\ (1[0-9]|[2-9][0-9])\. ]]
}

bindgen_ok() {
	command -v bindgen >/dev/null && [ "$(bindgen --version 2>/dev/null)" = "bindgen $BINDGEN_VERSION" ]
}

rust_src_ok() {
	[[ $'\n'$(rustup component list --installed 2>/dev/null) =~ $'\n'rust-src ]]
}

vng_ok() {
	[ -x "$VENV/bin/vng" ] &&
		[[ $'\n'$("$VENV/bin/pip" show virtme-ng 2>/dev/null)$'\n' =~ $'\n'"Version: $VIRTME_NG_VERSION"$'\n' ]]
}

apt_sources_ok() {
	[ -f "$EXTRA_SOURCES" ] && [ -f "$EXTRA_PREFS" ] &&
		[[ $(apt-cache madison linux-source-7.2 linux-source-7.3 2>/dev/null) == *linux-source* ]]
}

# The archive URI is taken from the machine's own bookworm source, never
# written here, so a mirror configured by the operator is respected.
add_apt_sources() {
	local uri
	uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
		/etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
		/etc/apt/sources.list 2>/dev/null || true)
	[ -n "$uri" ] || die "cannot find the bookworm archive URI in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
	$SUDO tee "$EXTRA_SOURCES" >/dev/null <<EOT
Types: deb
URIs: $uri
Suites: bookworm-backports trixie trixie-backports sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
	# bookworm-backports keeps its default priority (100, never chosen
	# without -t); the newer suites sit at 50, below everything installed.
	$SUDO tee "$EXTRA_PREFS" >/dev/null <<EOT
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: *
Pin: release n=trixie-backports
Pin-Priority: 50

Package: *
Pin: release n=sid
Pin-Priority: 50
EOT
}

py_before=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
libc_before=$(dpkg-query -W -f='${Version}' libc6)

if ! apt_sources_ok; then
	add_apt_sources
	run_step apt-update $SUDO apt-get update
fi

pkgs=$(missing_pkgs)
if [ -n "$pkgs" ]; then
	run_step apt-install $SUDO env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends $pkgs
fi
if ! qemu_ok; then
	run_step apt-install-qemu $SUDO env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends -t bookworm-backports \
		qemu-system-x86 qemu-utils
	qemu_ok || die "QEMU >= 10 is still not installed after apt-get (log: $LOG_DIR/apt-install-qemu.log)"
fi

# Guard: nothing above may have pulled libc or python from a newer suite.
py_after=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
libc_after=$(dpkg-query -W -f='${Version}' libc6)
[ "$py_before" = "$py_after" ] && [ "$libc_before" = "$libc_after" ] ||
	die "python3 ($py_before -> $py_after) or libc6 ($libc_before -> $libc_after) changed: an install came from a newer suite; check $EXTRA_PREFS"

if ! rust_src_ok; then
	run_step rust-src rustup component add rust-src
fi
if ! bindgen_ok; then
	run_step bindgen-cli cargo install bindgen-cli --version "$BINDGEN_VERSION" --locked
	bindgen_ok || die "bindgen $BINDGEN_VERSION not on PATH after cargo install (is ~/.cargo/bin on PATH?)"
fi
if ! vng_ok; then
	run_step virtme-ng sh -c "python3 -m venv '$VENV' && '$VENV/bin/pip' install -q 'virtme-ng==$VIRTME_NG_VERSION'"
fi

say "toolchain ready: $(qemu-system-x86_64 --version | head -n1), $(bindgen --version), $(rustc --version), virtme-ng $VIRTME_NG_VERSION"
