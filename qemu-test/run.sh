#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run`: build whatever is needed, boot the VM, load the VDCM and the
# simulated PF and show what they did. The full kernel console is in
# $OUT_DIR/console.log; it is scanned for splats like `make check` does.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KDIR=$("$QT_DIR/build.sh" | tail -n 1)
# Only the guest script's own lines (tagged "[run]") and the harness's.
set +e
"$QT_DIR/vm.sh" "$KDIR" "$QT_DIR/guest/run.sh" | grep --line-buffered -E '^\[run\]'
rc=${PIPESTATUS[0]}
set -e
python3 "$QT_DIR/tap.py" --scan "$OUT_DIR/console.log" || rc=1
exit "$rc"
