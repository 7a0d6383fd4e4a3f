# SPDX-License-Identifier: GPL-2.0
#
# libcowmap (userlib/) and cowmapctl (tools/cowmapctl/); included at the end
# of the top-level Makefile (VERSION, BUILD, CC, CFLAGS, KSFT_HDRS,
# TEST_CFLAGS and TEST_LDFLAGS come from there).
#
# make lib     build/lib/libcowmap.so.$(VERSION) (soname libcowmap.so.MAJOR,
#              plus the libcowmap.so.MAJOR and libcowmap.so links),
#              build/lib/libcowmap.a, build/lib/pkgconfig/cowmap.pc
# make tools   also builds build/bin/cowmapctl and build/bin/cowmap-demo
#              (libcowmap.a linked in; libmnl linked dynamically, since
#              Debian has no static libmnl) and the man pages (make man)
# make selftests  builds the selftests that use libcowmap (against
#              libcowmap.a), and build/bin/cowmap-example from docs/example.c
#              against libcowmap.so, the way an application links it
# make man     build/man/*.[348] from man/ (version filled in), checked
#              with groff -ww
# make fuzz [FUZZ_SECONDS=60]   libFuzzer targets (selftests/fuzz/fuzz.mk)
#
# netlink.c (the cowmap_nl_*() functions) uses libmnl: libcowmap.so is
# linked with -lmnl, and the .pc file says Requires.private: libmnl. A
# static link with libcowmap.a pulls netlink.o (and needs -lmnl) only if the
# program calls a cowmap_nl_*() function.
#
# VERSION is the only place the version is written: the soname, the real
# name, the .pc file and cowmap_version() / cowmapctl --version come from it.

VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include

USER_CFLAGS := $(CFLAGS) -Wall -Wextra $(WERROR_FLAG) -D_GNU_SOURCE -pthread \
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
	$(CC) $(USER_CFLAGS) -fPIC -fvisibility=hidden -DCM_SYMVER -c -o $@ $<

$(LIB_SO): $(LIB_OBJS) userlib/libcowmap.map
	$(CC) $(CFLAGS) -shared -pthread -Wl,-soname,$(LIB_SONAME) \
		-Wl,--version-script=userlib/libcowmap.map -Wl,-z,defs \
		-o $@ $(LIB_OBJS) -lmnl

# libcowmap-preload.so: the LD_PRELOAD library of "cowmapctl run"
# (userlib/preload/, docs/run.md). Not linked with libcowmap: it goes into
# any program. Only its interposed functions are exported.
PRELOAD_SO := $(LIB_DIR)/libcowmap-preload.so
lib: $(PRELOAD_SO)
$(PRELOAD_SO): userlib/preload/preload.c $(BUILD)/include/linux/cowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -fPIC -fvisibility=hidden -shared -Wl,-z,defs \
		-o $@ $< -ldl

$(LIB_DIR)/$(LIB_SONAME): $(LIB_SO)
	ln -sf $(notdir $<) $@

$(LIB_DIR)/libcowmap.so: $(LIB_DIR)/$(LIB_SONAME)
	ln -sf $(notdir $<) $@

# compat.c: the LIBCOWMAP_0 versions of changed functions, for programs
# linked with libcowmap.so.0 by an older build; not in the static library.
LIB_A_OBJS := $(filter-out $(LIB_DIR)/obj/compat.o,$(LIB_OBJS))
$(LIB_A): $(LIB_A_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# The header's LIBCOWMAP_VERSION_* must say what VERSION says.
$(BUILD)/include/libcowmap.h: userlib/libcowmap.h VERSION
	@v=$$(sed -n 's/^#define LIBCOWMAP_VERSION_\(MAJOR\|MINOR\|PATCH\)[[:space:]]*\([0-9]*\)$$/\2/p' $< | \
		paste -sd.); [ "$$v" = "$(VERSION)" ] || { echo "$<: LIBCOWMAP_VERSION_* say" \
		"'$$v', VERSION says '$(VERSION)'" >&2; exit 1; }
	@mkdir -p $(dir $@)
	cp $< $@

# Rewritten only when its content changes (VERSION, PREFIX, LIBDIR, ...).
$(LIB_PC): VERSION FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
		'includedir=$(INCLUDEDIR)' '' 'Name: cowmap' \
		'Description: cowmap copy-on-write file sessions: sessions, journals, offline merge' \
		'Version: $(VERSION)' 'Requires.private: libmnl' \
		'Libs: -L$${libdir} -lcowmap' \
		'Libs.private: -pthread' 'Cflags: -I$${includedir}/cowmap' >$@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; echo "  GEN     $@"; fi

.PHONY: FORCE
FORCE:

# cowmapctl and cowmap-demo: libcowmap.a linked in, libmnl and libc
# dynamically (Debian has no static libmnl; tools/vm copies the shared
# libraries into the guest). The top-level "tools: $(TOOL_BINS)" was
# expanded before this file is read, hence the extra prerequisite line;
# explicit rules override the top-level static pattern rule.
TOOL_BINS += $(BUILD)/bin/cowmapctl
tools: $(BUILD)/bin/cowmapctl $(BUILD)/bin/cowmap-demo man

$(BUILD)/bin/cowmap-demo: $(BUILD)/bin/%: tools/%.c $(LIB_A) \
		userlib/libcowmap.h $(BUILD)/include/linux/cowmap.h VERSION
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -o $@ $< $(LIB_A) -lmnl

# cowmapctl: tools/cowmapctl/, one file per command plus the shared ones
# (cowmapctl.h lists them). debian/rules replaces LIB_A for the link only.
CTL_SRCS := $(wildcard tools/cowmapctl/*.c)
CTL_HDRS := $(wildcard tools/cowmapctl/*.h)
CTL_OBJS := $(patsubst tools/cowmapctl/%.c,$(BUILD)/obj/cowmapctl/%.o,$(CTL_SRCS))
# JSON output: json-c (libjson-c-dev), linked dynamically like libmnl; the
# library itself does not use it.
JSONC_CFLAGS := $(shell pkg-config --cflags json-c 2>/dev/null || echo -I/usr/include/json-c)
JSONC_LIBS := $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)

$(BUILD)/obj/cowmapctl/%.o: tools/cowmapctl/%.c $(CTL_HDRS) userlib/libcowmap.h \
		$(BUILD)/include/linux/cowmap.h VERSION
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(JSONC_CFLAGS) -c -o $@ $<

# cowmapctl run looks for the installed preload library in PRELOADDIR, a
# private directory under LIBDIR (it is no library to link with: no soname,
# Debian keeps such objects out of the library directory itself): a header
# rewritten only when it changes, so that "make install LIBDIR=..." relinks
# a cowmapctl built for another LIBDIR (mk/install.mk).
PRELOADDIR ?= $(LIBDIR)/cowmap
$(BUILD)/include/cowmap-paths.h: FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' '/* Generated by mk/user.mk. */' \
		'#define COWMAP_PRELOADDIR "$(PRELOADDIR)"' >$@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; echo "  GEN     $@"; fi
$(BUILD)/obj/cowmapctl/run.o: $(BUILD)/include/cowmap-paths.h

$(BUILD)/bin/cowmapctl: $(CTL_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -o $@ $(CTL_OBJS) $(LIB_A) -lmnl $(JSONC_LIBS)

# The example program, linked the way an application links libcowmap
# (-lcowmap, the shared library); the rpath lets it run from build/bin,
# and tools/vm copies build/lib/libcowmap.so.0 into the guest with it.
EXAMPLE := $(BUILD)/bin/cowmap-example
selftests: $(EXAMPLE)
$(EXAMPLE): docs/example.c $(LIB_SO) $(LIB_DIR)/$(LIB_SONAME) $(LIB_DIR)/libcowmap.so \
		$(BUILD)/include/libcowmap.h $(BUILD)/include/linux/cowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c11 -Wall -Wextra -Werror -I$(BUILD)/include -o $@ $< \
		-L$(LIB_DIR) -Wl,-rpath,$(LIB_DIR) -lcowmap

# The selftests that link libcowmap: explicit rules override the
# top-level pattern rule. Static: netlink.o is not pulled in.
USER_TESTS := $(BUILD)/selftests/merge_offline_test $(BUILD)/selftests/lib_test \
	$(BUILD)/selftests/cowmapctl_test
$(USER_TESTS): $(BUILD)/selftests/%: selftests/%.c selftests/cowmap_test.h \
		$(KSFT_HDRS) $(BUILD)/include/linux/cowmap.h $(LIB_A) userlib/libcowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -I$(CURDIR)/userlib -o $@ $< $(LIB_A) $(TEST_LDFLAGS)

# Programs of tools/host-check, which runs on the build machine (no module):
# not kselftests, not in the VM's test list.
HOST_TESTS := $(BUILD)/host/lib-errno $(BUILD)/host/mklog
.PHONY: host-tests
host-tests: $(HOST_TESTS)
$(BUILD)/host/lib-errno $(BUILD)/host/mklog: $(BUILD)/host/%: selftests/host/%.c $(LIB_A) userlib/libcowmap.h \
		$(BUILD)/include/linux/cowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -o $@ $< $(LIB_A) -lmnl

# abi0: a program as built against 0.1.0 (its structs, the LIBCOWMAP_0
# symbols), linked with libcowmap.so like an old binary.
HOST_TESTS += $(BUILD)/host/abi0
$(BUILD)/host/abi0: selftests/host/abi0.c $(LIB_SO) $(LIB_DIR)/$(LIB_SONAME) \
		$(LIB_DIR)/libcowmap.so $(BUILD)/include/libcowmap.h $(BUILD)/include/linux/cowmap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wall -Wextra $(WERROR_FLAG) -I$(BUILD)/include -o $@ $< \
		-L$(LIB_DIR) -Wl,-rpath,$(LIB_DIR) -lcowmap

# Man pages: man/NAME.N -> build/man/NAME.N with @VERSION@ filled in; make
# install (mk/install.mk) installs build/man/{cowmap,libcowmap}*.[1-8].
MAN_SRCS := $(wildcard man/*.[1-8])
MAN_OUT := $(patsubst man/%,$(BUILD)/man/%,$(MAN_SRCS))
.PHONY: man
all: man
man: $(MAN_OUT)
$(BUILD)/man/%: man/% VERSION
	@mkdir -p $(dir $@)
	sed -e 's/@VERSION@/$(VERSION)/g' $< >$@.tmp
	@# Any groff warning (bad macro, bad escape, ...) fails the build.
	@if command -v groff >/dev/null; then \
		out=$$(LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 $@.tmp 2>&1); \
		if [ -n "$$out" ]; then echo "$$out" >&2; rm -f $@.tmp; exit 1; fi; fi
	mv $@.tmp $@

# One page per exported function (man cowmap_merge): a ".so" link to
# libcowmap(3), for every function libcowmap.so exports. tools/host-check
# fails if libcowmap(3) does not name one of them.
MAN_LINKS := $(BUILD)/man/.func-links
man: $(MAN_LINKS)
$(MAN_LINKS): $(LIB_SO) $(BUILD)/man/libcowmap.3
	@rm -f $(BUILD)/man/cowmap_*.3
	@set -e; for f in $$(nm -D --defined-only $(LIB_SO) | \
		awk '$$2 == "T" { sub(/@.*/, "", $$3); print $$3 }'); do \
		echo '.so man3/libcowmap.3' >$(BUILD)/man/$$f.3; done
	@touch $@

include selftests/fuzz/fuzz.mk
