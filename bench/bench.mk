# SPDX-License-Identifier: GPL-2.0
#
# Included by the top-level Makefile.
#
# make bench               cowbench in the test VM on KERNEL (default 6.1):
#                          one table on stdout, the same results as JSON in
#                          build/bench/results-<kernel>.json (docs/performance.md)
# make bench KERNEL=6.12   ... on 6.12
# make bench-quick         tiny sizes, one round (seconds of guest time): only
#                          checks that every row still runs; JSON in
#                          build/bench/results-<kernel>-quick.json
# BENCH_ARGS=...           more cowbench options (cowbench --help)

BENCH_KERNEL = $(or $(KERNEL),6.1)
BENCH_BIN := $(BUILD)/bench/cowbench

# bench/: cowbench.h (the layout), common.c, one row_*.c per row group,
# rows.c, report.c, main.c. Rows 8a/8b run the offline merge of libcowmap
# (mk/user.mk builds it).
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_OBJS := $(patsubst bench/%.c,$(BUILD)/obj/bench/%.o,$(BENCH_SRCS))

$(BUILD)/obj/bench/%.o: bench/%.c bench/cowbench.h uapi/cowmap.h \
		$(BUILD)/include/linux/cowmap.h userlib/libcowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE -pthread -I$(BUILD)/include -Iuserlib -c -o $@ $<

$(BENCH_BIN): $(BENCH_OBJS) $(BUILD)/lib/libcowmap.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(BENCH_OBJS) $(BUILD)/lib/libcowmap.a -static -pthread -lm

.PHONY: bench bench-quick
bench: $(BENCH_BIN)
	bench/run.sh $(BENCH_KERNEL) $(BENCH_ARGS)

bench-quick: $(BENCH_BIN)
	bench/run.sh $(BENCH_KERNEL) --quick $(BENCH_ARGS)
