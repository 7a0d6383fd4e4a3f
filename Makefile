# SPDX-License-Identifier: GPL-2.0
#
# make               module (against KDIR), library, tools, selftests (these
#                    only with linux-source-6.1); never installs anything:
#                    missing packages are listed (tools/build-deps)
# make module        the module only; KDIR= kernel build dir, OBJDIR= output
# make module KERNEL=7.3   the module for the Debian 13 kernel, built inside
#                    its root (tools/trixie-root.sh) with its gcc and headers
# make selftests     static kselftest programs in build/selftests/
# make check         lint + the suite in QEMU on KERNELS (default: 6.1 6.12 7.3 debug)
# make check KERNEL=6.12   one kernel only
# make lint          W=1 builds on the three Debian header sets (6.1, 6.12,
#                    7.3 in its root: tools/lint-trixie), checkpatch, sparse,
#                    library, tools and selftests with -Werror (build/lint-user)
# WERROR=1           any compiler warning in user space fails the build
# make demo          the demo in QEMU

VERSION := $(shell cat VERSION)
BUILD := $(CURDIR)/build

# Default KDIR: the running kernel's build dir, else the newest installed one.
KDIR ?= $(firstword $(wildcard /lib/modules/$(shell uname -r)/build) \
	$(lastword $(sort $(wildcard /lib/modules/*/build))))
OBJDIR ?= $(BUILD)/kmod/$(notdir $(patsubst %/,%,$(dir $(KDIR))))

KSRC_TAR := /usr/src/linux-source-6.1.tar.xz
KSFT := $(BUILD)/ksft
KSFT_HDRS := $(KSFT)/kselftest_harness.h $(KSFT)/kselftest.h
CHECKPATCH := $(KSFT)/checkpatch/scripts/checkpatch.pl
KERNELDOC := $(KSFT)/checkpatch/scripts/kernel-doc

CC ?= gcc
CFLAGS ?= -O2 -g
WERROR ?= 0
WERROR_FLAG := $(if $(filter 1,$(WERROR)),-Werror)
WARN := -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare $(WERROR_FLAG)
TEST_CFLAGS := $(CFLAGS) $(WARN) -D_GNU_SOURCE -I$(BUILD)/include -I$(KSFT) -pthread
TEST_LDFLAGS := -static -pthread

TESTS := $(sort $(basename $(notdir $(wildcard selftests/*.c selftests/*_test.sh))))
TEST_BINS := $(addprefix $(BUILD)/selftests/,$(TESTS))

KMOD_SRCS := Kbuild VERSION $(wildcard kmod/*.c kmod/*.h) uapi/cowmap.h

# The Debian 13 backports kernel's lane name (7.3), from its one pin.
TRIXIE_LANE := $(shell tools/trixie-root.sh --lane)
IN_ROOT := $(if $(filter $(TRIXIE_LANE),$(KERNEL)),1)
ifeq ($(IN_ROOT),1)
OBJDIR := $(if $(filter command line,$(origin OBJDIR)),$(OBJDIR),$(BUILD)/kmod/trixie-$(KERNEL))
endif

KERNELS ?= 6.1 6.12 $(TRIXIE_LANE) debug
ifdef KERNEL
KERNELS := $(KERNEL)
endif

.PHONY: all module selftests tools check lint lint-run demo clean deps no-selftests

# "make" never installs anything. Before building, tools/build-deps checks
# what the goals below need (a kernel build dir, the compiler and libmnl,
# the kselftest header) and stops with the missing packages listed;
# tools/deps.sh installs everything (check, lint, demo and tools/vm run it).
DEPS_PARTS_all := module user
DEPS_PARTS_module := $(if $(IN_ROOT),,module)
DEPS_PARTS_install := module
DEPS_PARTS_lib := user
DEPS_PARTS_tools := user
DEPS_PARTS_host-tests := user
DEPS_PARTS_selftests := selftests
DEPS_PARTS := $(sort $(foreach g,$(or $(MAKECMDGOALS),all),$(DEPS_PARTS_$(g))))
ifneq ($(DEPS_PARTS),)
ifneq ($(shell KDIR='$(KDIR)' CC='$(CC)' KSRC_TAR='$(KSRC_TAR)' KSFT='$(KSFT)' \
	tools/build-deps $(DEPS_PARTS) >&2 || echo missing),)
$(error build dependencies missing (see above))
endif
endif

# Without linux-source-6.1 a plain "make" builds everything but the
# selftests (they run in QEMU, where tools/vm installs it anyway).
HAVE_KSFT := $(or $(wildcard $(KSFT)/kselftest_harness.h),$(wildcard $(KSRC_TAR)))
all: module tools $(if $(HAVE_KSFT),selftests,no-selftests)

no-selftests:
	@echo "note: selftests not built: they need $(KSRC_TAR) (apt-get install linux-source-6.1)" >&2

deps:
	tools/deps.sh

# The sources are copied into the object directory; only the files that
# changed get a new mtime, so an unchanged module is not rebuilt (every
# tools/vm run builds it).
COPY_KMOD_SRCS = mkdir -p $(OBJDIR) && for f in $(KMOD_SRCS); do \
	cmp -s $$f $(OBJDIR)/$$f || cp --parents $$f $(OBJDIR)/ || exit 1; done

# kbuild takes 3-12 s to find that nothing changed, and tools/vm runs
# "make module" before every boot: it is skipped when cowmap.ko is newer
# than every copied source and was built against the same headers (the
# key: the headers' Makefile and Module.symvers, or the root's pin), with
# no W=, C= or CHECK=.
KBUILD_KEY = $(if $(IN_ROOT),root $$(cksum <tools/trixie-root.sh),$(KDIR) \
	$$(stat -c %Y -- $(KDIR)/Makefile $(wildcard $(KDIR)/Module.symvers))) \
	CC=$(CC) LLVM=$(LLVM) KCFLAGS=$(KCFLAGS)
MODULE_FRESH = [ -z "$(W)$(C)$(CHECK)" ] && [ -f $(OBJDIR)/cowmap.ko ] && \
	[ "$$(cat $(OBJDIR)/.kbuild-key 2>/dev/null)" = "$(KBUILD_KEY)" ] && \
	[ -z "$$(find $(addprefix $(OBJDIR)/,$(KMOD_SRCS)) -newer $(OBJDIR)/cowmap.ko)" ]
# kbuild may leave cowmap.ko as it was (a change no object depends on):
# touched, so that it is newer than the sources and the next run skips.
SAVE_KBUILD_KEY = touch $(OBJDIR)/cowmap.ko && echo "$(KBUILD_KEY)" >$(OBJDIR)/.kbuild-key

module: $(KMOD_SRCS)
ifeq ($(IN_ROOT),1)
	@$(COPY_KMOD_SRCS)
	@if $(MODULE_FRESH); then echo "$(OBJDIR)/cowmap.ko is up to date"; else \
		rm -f $(OBJDIR)/.kbuild-key && \
		tools/trixie-root.sh module $(OBJDIR) $(if $(W),W=$(W)) $(if $(C),C=$(C)) \
		$(if $(CHECK),"CHECK=$(CHECK)") && $(SAVE_KBUILD_KEY); fi
else
	@test -n "$(KDIR)" -a -d "$(KDIR)" || { echo "no kernel build dir: set KDIR=" \
		"(or apt-get install linux-headers-$$(uname -r))" >&2; exit 1; }
	@$(COPY_KMOD_SRCS)
	@if $(MODULE_FRESH); then echo "$(OBJDIR)/cowmap.ko is up to date"; else \
		rm -f $(OBJDIR)/.kbuild-key && \
		$(MAKE) -C $(KDIR) M=$(OBJDIR) modules && $(SAVE_KBUILD_KEY); fi
endif

$(BUILD)/include/linux/cowmap.h: uapi/cowmap.h
	@mkdir -p $(dir $@)
	cp $< $@

$(KSFT_HDRS) $(CHECKPATCH) $(KERNELDOC) &:
	@test -f $(KSRC_TAR) || { echo "$(KSRC_TAR) is missing: the selftests" \
		"(kselftest_harness.h) and make lint (checkpatch) need it;" \
		"apt-get install linux-source-6.1" >&2; exit 1; }
	@mkdir -p $(KSFT)/checkpatch
	tar -xJf $(KSRC_TAR) -C $(KSFT) --strip-components=4 \
		linux-source-6.1/tools/testing/selftests/kselftest_harness.h \
		linux-source-6.1/tools/testing/selftests/kselftest.h
	tar -xJf $(KSRC_TAR) -C $(KSFT)/checkpatch --strip-components=1 \
		linux-source-6.1/scripts/checkpatch.pl \
		linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch \
		linux-source-6.1/scripts/kernel-doc
	@touch $(KSFT_HDRS) $(CHECKPATCH) $(KERNELDOC)

$(BUILD)/selftests/%: selftests/%.c $(wildcard selftests/*.h) $(KSFT_HDRS) $(BUILD)/include/linux/cowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(TEST_LDFLAGS)

# Tests written in sh (busybox ash in the guest): the script itself.
$(BUILD)/selftests/%: selftests/%.sh
	@mkdir -p $(dir $@)
	install -m 755 $< $@

# libmnl has no static library in Debian: this one links dynamically
# (tools/vm copies the shared libraries it needs into the guest).
$(BUILD)/selftests/netlink_test: TEST_LDFLAGS = -pthread -lmnl
$(BUILD)/selftests/abuse_test: TEST_LDFLAGS = -pthread -lmnl
$(BUILD)/selftests/fuse_test: TEST_LDFLAGS = -pthread -lmnl

selftests: $(TEST_BINS)
	@printf '%s\n' $(TESTS) > $(BUILD)/selftests/list

TOOL_BINS := $(BUILD)/bin/cowmap-demo

$(BUILD)/bin/%: tools/%.c uapi/cowmap.h $(BUILD)/include/linux/cowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE -I$(BUILD)/include -o $@ $< -static

tools: $(TOOL_BINS)

# Power-off test halves (selftests/crash/run.sh), not part of the test list.
$(BUILD)/crash/crashtest: selftests/crash/crashtest.c $(wildcard selftests/*.h) $(KSFT_HDRS) $(BUILD)/include/linux/cowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(TEST_LDFLAGS)

# The two Debian header sets: 6.1 and 6.12 (generic flavour).
HDR_61 = $(lastword $(sort $(wildcard /usr/src/linux-headers-6.1.*-amd64)))
HDR_612 = $(lastword $(sort $(filter-out %-rt-amd64 %-cloud-amd64,$(wildcard /usr/src/linux-headers-6.12.*-amd64))))

# A test target: it may install what it needs (tools/deps.sh), then runs
# lint-run in a new make, which sees the headers deps.sh installed.
lint: deps
	@$(MAKE) --no-print-directory lint-run

lint-run: $(CHECKPATCH) $(KERNELDOC)
	@for k in $(HDR_61) $(HDR_612); do \
		echo "== W=1 + sparse build against $$k"; \
		rm -rf $(BUILD)/lint; \
		$(MAKE) -s module KERNEL= KDIR=$$k OBJDIR=$(BUILD)/lint W=1 C=2 \
			2>&1 | tee $(BUILD)/lint.log; \
		if grep -E 'warning|error' $(BUILD)/lint.log; then \
			echo "lint: warnings against $$k" >&2; exit 1; fi; \
	done
	@tools/lint-trixie $(BUILD)/lint-$(TRIXIE_LANE)
	@rm -rf $(BUILD)/lint-$(TRIXIE_LANE) $(BUILD)/lint-$(TRIXIE_LANE).log
	$(CHECKPATCH) --strict --no-tree --terse --show-types \
		-f $(filter-out kmod/compat.h,$(wildcard kmod/*.c kmod/*.h)) uapi/cowmap.h
	@# Version checks are what the compat header is for.
	$(CHECKPATCH) --strict --no-tree --terse --show-types \
		--ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON -f kmod/compat.h
	@# kernel-doc: the uapi header and the library header, every comment
	@# well formed and every member described; any warning fails.
	@out=$$($(KERNELDOC) -none uapi/cowmap.h userlib/libcowmap.h 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" >&2; echo "lint: kernel-doc warnings" >&2; exit 1; fi
	@# User space with -Werror, from scratch in a build dir of its own, so
	@# that no object built without -Werror is reused.
	@echo "== library, tools, selftests, host tests, cowbench with -Werror in $(BUILD)/lint-user"
	@rm -rf $(BUILD)/lint-user
	@$(MAKE) --no-print-directory -s BUILD=$(BUILD)/lint-user KSFT=$(KSFT) WERROR=1 \
		lib tools selftests host-tests $(BUILD)/lint-user/bench/cowbench
	@rm -rf $(BUILD)/lint-user

check:
	tools/check $(KERNELS)

demo:
	tools/deps.sh
	tools/demo

clean:
	rm -rf $(BUILD)
include mk/install.mk

# make bench, make bench-quick: docs/performance.md
-include bench/bench.mk
include mk/user.mk
