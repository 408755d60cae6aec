#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A minimal QMP client for the migration points of guest/check.sh.

    qmp.py SOCKET migrate URI   start a migration, wait until it completes
                                (exit 0) or fails (exit 1); prints QEMU's
                                figures (total time, downtime, bytes)
    qmp.py SOCKET quit          ask QEMU to quit
    qmp.py SOCKET status        print the VM's run state
"""

import json
import socket
import sys
import time


class Qmp:
    def __init__(self, path, timeout=600):
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.recv()  # greeting
        self.cmd("qmp_capabilities")

    def recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self.recv()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"{name}: {reply['error']}")
            # An asynchronous event: skip it.


def main():
    path, what = sys.argv[1], sys.argv[2]
    q = Qmp(path)
    if what == "migrate":
        q.cmd("migrate", uri=sys.argv[3])
        while True:
            info = q.cmd("query-migrate")
            status = info.get("status")
            if status == "completed":
                ram = info.get("ram", {})
                print(f"migration completed: total {info.get('total-time')} ms, "
                      f"downtime {info.get('downtime')} ms, "
                      f"{ram.get('transferred', 0)} bytes of RAM, "
                      f"{ram.get('dirty-sync-count', 0)} dirty syncs")
                return 0
            if status in ("failed", "cancelled"):
                print(f"migration {status}: {info.get('error-desc', info)}")
                return 1
            time.sleep(0.5)
    if what == "quit":
        q.cmd("quit")
        return 0
    if what == "status":
        print(q.cmd("query-status").get("status"))
        return 0
    print(f"unknown command {what}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
