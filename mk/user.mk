# SPDX-License-Identifier: GPL-2.0
#
# libcowmap (userlib/) and cowmapctl (tools/cowmapctl.c); included at the end
# of the top-level Makefile (VERSION, BUILD, CC, CFLAGS, KSFT_HDRS,
# TEST_CFLAGS and TEST_LDFLAGS come from there).
#
# make lib     build/lib/libcowmap.so.$(VERSION) (soname libcowmap.so.MAJOR,
#              plus the libcowmap.so.MAJOR and libcowmap.so links),
#              build/lib/libcowmap.a, build/lib/pkgconfig/cowmap.pc
# make tools   also builds build/bin/cowmapctl (static, linked with libcowmap.a)
# make selftests  builds merge_offline_test and lib_test against libcowmap.a
#
# VERSION is the only place the version is written: the soname, the real
# name, the .pc file and cowmap_version() / cowmapctl --version come from it.

VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include

USER_CFLAGS := $(CFLAGS) -Wall -Wextra -D_GNU_SOURCE -pthread \
	-I$(CURDIR)/userlib -I$(BUILD)/include -DCOWMAP_VERSION='"$(VERSION)"'

LIB_DIR := $(BUILD)/lib
LIB_SRCS := $(wildcard userlib/*.c)
LIB_HDRS := userlib/libcowmap.h userlib/internal.h $(BUILD)/include/linux/cowmap.h
LIB_OBJS := $(patsubst userlib/%.c,$(LIB_DIR)/obj/%.o,$(LIB_SRCS))
LIB_SONAME := libcowmap.so.$(VERSION_MAJOR)
LIB_SO := $(LIB_DIR)/libcowmap.so.$(VERSION)
LIB_A := $(LIB_DIR)/libcowmap.a
LIB_PC := $(LIB_DIR)/pkgconfig/cowmap.pc

.PHONY: lib
all: lib
lib: $(LIB_SO) $(LIB_DIR)/$(LIB_SONAME) $(LIB_DIR)/libcowmap.so $(LIB_A) $(LIB_PC) \
	$(BUILD)/include/libcowmap.h

# One set of position-independent objects serves both libraries.
$(LIB_DIR)/obj/%.o: userlib/%.c $(LIB_HDRS) VERSION
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(LIB_SO): $(LIB_OBJS) userlib/libcowmap.map
	$(CC) $(CFLAGS) -shared -pthread -Wl,-soname,$(LIB_SONAME) \
		-Wl,--version-script=userlib/libcowmap.map -Wl,-z,defs \
		-o $@ $(LIB_OBJS)

$(LIB_DIR)/$(LIB_SONAME): $(LIB_SO)
	ln -sf $(notdir $<) $@

$(LIB_DIR)/libcowmap.so: $(LIB_DIR)/$(LIB_SONAME)
	ln -sf $(notdir $<) $@

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/include/libcowmap.h: userlib/libcowmap.h
	@mkdir -p $(dir $@)
	cp $< $@

# Rewritten only when its content changes (VERSION, PREFIX, LIBDIR, ...).
$(LIB_PC): VERSION FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
		'includedir=$(INCLUDEDIR)' '' 'Name: cowmap' \
		'Description: cowmap copy-on-write file sessions: sessions, journals, offline merge' \
		'Version: $(VERSION)' 'Libs: -L$${libdir} -lcowmap' \
		'Libs.private: -pthread' 'Cflags: -I$${includedir}' >$@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; echo "  GEN     $@"; fi

.PHONY: FORCE
FORCE:

# cowmapctl: static, so that it runs in the busybox guest. The top-level
# "tools: $(TOOL_BINS)" was expanded before this file is read, hence the
# extra prerequisite line; TOOL_BINS is kept complete for anyone reading it.
TOOL_BINS += $(BUILD)/bin/cowmapctl
tools: $(BUILD)/bin/cowmapctl

$(BUILD)/bin/cowmapctl: tools/cowmapctl.c $(LIB_A) userlib/libcowmap.h \
		$(BUILD)/include/linux/cowmap.h VERSION
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -o $@ $< $(LIB_A) -static

# The two selftests that link libcowmap: explicit rules override the
# top-level pattern rule.
USER_TESTS := $(BUILD)/selftests/merge_offline_test $(BUILD)/selftests/lib_test
$(USER_TESTS): $(BUILD)/selftests/%: selftests/%.c selftests/cowmap_test.h \
		$(KSFT_HDRS) $(BUILD)/include/linux/cowmap.h $(LIB_A) userlib/libcowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -I$(CURDIR)/userlib -o $@ $< $(LIB_A) $(TEST_LDFLAGS)
