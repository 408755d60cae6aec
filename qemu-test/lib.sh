# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the qemu-test scripts: logging, step runner, paths.
# Sourced, never executed.

QT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_DIR=$(cd "$QT_DIR/.." && pwd)
OUT_DIR=${OUT_DIR:-$QT_DIR/out}
LOG_DIR=$OUT_DIR/logs
# Everything expensive lives outside the clone so that a new clone reuses it.
CACHE_DIR=${VDCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vdcm}
mkdir -p "$LOG_DIR" "$CACHE_DIR"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# run_step NAME CMD...: run CMD with its output in $LOG_DIR/NAME.log.
# Every 30 s it prints the elapsed time and the log's last line, so a long
# step shows progress; on failure it names the step and the log and shows
# the log's tail.
run_step() {
	local name=$1; shift
	local log=$LOG_DIR/$name.log start=$SECONDS rc
	say "$name (log: $log)"
	"$@" >"$log" 2>&1 &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		local i
		for i in $(seq 30); do
			kill -0 "$pid" 2>/dev/null || break 2
			sleep 1
		done
		printf '    ... %s: %ds, %s\n' "$name" $((SECONDS - start)) \
			"$(tail -n 1 "$log" | cut -c1-100)" >&2
	done
	wait "$pid"; rc=$?
	if [ "$rc" -ne 0 ]; then
		tail -n 30 "$log" >&2
		die "step '$name' failed (exit $rc); full log: $log"
	fi
	say "$name done in $((SECONDS - start)) s"
}

# kbuild_args KDIR: the make arguments modules are built with against KDIR,
# the toolchain the kernel was built with: the harness's trees say so in
# .vdcm-make-args; any other clang-built tree gets LLVM=1 unless the caller
# set LLVM. One word per line.
kbuild_args() {
	if [ -f "$1/.vdcm-make-args" ]; then
		tr ' ' '\n' <"$1/.vdcm-make-args"
	elif grep -q '^CONFIG_CC_IS_CLANG=y' "$1/.config" && [ -z "${LLVM:-}" ]; then
		printf '%s\n' ARCH=x86_64 LLVM=1
	else
		echo ARCH=x86_64
	fi
}
