#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run`: build whatever is needed, boot the VM, load the VDCM and the
# simulated PF and show what they did.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KDIR=$("$QT_DIR/build.sh" | tail -n 1)
exec "$QT_DIR/vm.sh" "$KDIR" "$QT_DIR/guest/run.sh"
