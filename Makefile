# SPDX-License-Identifier: GPL-2.0
#
#   make run      build what is needed, boot the VM, load the VDCM and the
#                 simulated PF, show what they did
#   make check    all tests; the last line is "N passed, M failed"
#   make check-debug  the same on the KASAN + lockdep + kmemleak kernel
#   make bench    boot the VM with an SR-IOV device, run the benchmarks,
#                 write qemu-test/out/bench.json (Documentation/benchmarks.rst)
#   make modules  build the modules only (KDIR=... for your own kernel tree)
#   make install  install the built modules into KDIR's kernel's module
#                 directory and run depmod (INSTALL_MOD_PATH=... to stage)
#
# Variables: KDIR=<built kernel tree> (default: the harness's cached test
# kernel, built on first use), KVER=7.3 (the cached test and nested-guest
# kernels from linux-source-7.3 instead of 7.2, the default; both are
# cached side by side), KASAN=1 (the KASAN variant of the test
# kernel), CLIPPY=1 (build the modules through clippy), VM_TIMEOUT=<s>,
# ONLY="regex ..." (`make check`: only the matching VM points, while
# iterating), BENCH_QPS=<n>, BENCH_PORTALS=<n>, BENCH_ARGS="..." (`make bench`: queue
# pairs and portals of the simulated PF, arguments of vdcm_bench; see
# qemu-test/bench.sh).
#
# The modules themselves are described in Kbuild; this Makefile only
# drives qemu-test/.

export KDIR KVER KASAN CLIPPY INSTALL_MOD_PATH VM_TIMEOUT BENCH_ARGS BENCH_QPS BENCH_PORTALS ONLY

.PHONY: all modules install run check check-debug bench setup kernel clean

all: modules

modules:
	@qemu-test/build.sh >/dev/null

install:
	@qemu-test/install.sh

run:
	@qemu-test/run.sh

check:
	@qemu-test/check.sh

# The same suite on the KASAN + lockdep + kmemleak kernel (clang-built;
# slower: a longer VM timeout).
check-debug:
	@KASAN=1 VM_TIMEOUT=$${VM_TIMEOUT:-5400} qemu-test/check.sh

bench:
	@qemu-test/bench.sh

# Install the toolchain only / build the test kernel only.
setup:
	@qemu-test/setup.sh

kernel:
	@qemu-test/setup.sh
	@qemu-test/kernel.sh build

clean:
	-@kdir="$${KDIR:-$$(qemu-test/kernel.sh kdir 2>/dev/null)}"; \
		[ -d "$$kdir" ] && $(MAKE) -C "$$kdir" M=$(CURDIR) clean
	rm -f rust/vdcm_bindings.rs
	rm -rf qemu-test/out qemu-test/userspace/target
