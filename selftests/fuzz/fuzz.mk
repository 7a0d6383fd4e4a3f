# SPDX-License-Identifier: GPL-2.0
#
# libFuzzer targets (clang): the journal reader and the offline merge
# engine of libcowmap, with ASan and UBSan. Included by mk/user.mk.
#
# make fuzz                    (in make check) deterministic: build, replay
#                              selftests/fuzz/crashers/ and the seed corpus,
#                              then a fixed-seed run of bounded length per
#                              target; fails on any crash, leak, sanitizer
#                              report, failed check, timeout or big malloc
# make fuzz-long [FUZZ_SECONDS=600]  open-ended exploration, random seed,
#                              FUZZ_SECONDS per target, both side by side
# make fuzz-corpus             regenerate selftests/fuzz/corpus/ from real
#                              journals made by the module in the VM
#
# Needs clang and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes).

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 600
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -D_GNU_SOURCE -DCOWMAP_VERSION='"$(VERSION)"' \
	-I$(CURDIR)/userlib -I$(BUILD)/include
# The offline side only: no netlink (libmnl), no ioctls needed.
FUZZ_LIB_SRCS := userlib/crc32.c userlib/log.c userlib/merge.c
FUZZ_BINS := $(FUZZ_DIR)/fuzz_log $(FUZZ_DIR)/fuzz_merge

.PHONY: fuzz fuzz-long fuzz-build fuzz-corpus
fuzz-build: $(FUZZ_BINS) $(FUZZ_DIR)/mkseed

$(FUZZ_DIR)/fuzz_%: selftests/fuzz/fuzz_%.c $(FUZZ_LIB_SRCS) userlib/libcowmap.h \
		userlib/internal.h $(BUILD)/include/linux/cowmap.h VERSION
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRCS) -pthread

$(FUZZ_DIR)/mkseed: selftests/fuzz/mkseed.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wall -Wextra -o $@ $<

fuzz: fuzz-build
	selftests/fuzz/run.sh check

fuzz-long: fuzz-build
	selftests/fuzz/run.sh long $(FUZZ_SECONDS)

fuzz-corpus: fuzz-build tools
	selftests/fuzz/make-corpus.sh
