# SPDX-License-Identifier: GPL-2.0
#
# Install, DKMS and Debian packaging rules; included at the end of the
# top-level Makefile (VERSION, BUILD, KDIR, OBJDIR and KMOD_SRCS come from
# there).  See docs/install.md.
#
# make install [DESTDIR=] [PREFIX=/usr/local] [KDIR=] [MODULES_LOAD=1]
#                       module (modules_install) + depmod, udev rule,
#                       <linux/cowmap.h> (in $(INCLUDEDIR)/cowmap/), and libcowmap / cowmapctl (with
#                       its bash completion) / man pages if they have been
#                       built
# make uninstall        remove exactly those files again
# make install-check    both into a scratch DESTDIR, for PREFIX=/usr/local
#                       and /usr (tools/install-check)
# make dkms-src [DESTDIR=]   the DKMS source tree /usr/src/cowmap-$(VERSION)
# make dkms-install     dkms-src + dkms add + dkms install for every kernel
#                       with headers (DKMS_KERNELS=); 6.1-6.12 and 7.3 only
# make dkms-uninstall   dkms remove --all + remove the source tree
# make dkms-check       DKMS on the host for 6.1 and 6.12 (7.3 in its root),
#                       modprobe in QEMU,
#                       then remove everything (root; tools/dkms-check)
# make deb-check        make deb, apt-get install the four packages, check
#                       them (DKMS for 6.1 and 6.12, dkms-check --installed,
#                       library, CLI), then purge (root; tools/deb-check)
# make deb              build/deb/: cowmap-dkms, libcowmap0, libcowmap-dev,
#                       cowmap-tools (+ their -dbgsym) + lintian
# make version-check    debian/changelog's version must equal VERSION

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
# bash-completion looks here for /usr and, through XDG_DATA_DIRS, /usr/local.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# udev and systemd-modules-load do not read /usr/local: a local install
# (any PREFIX but /usr) goes to the administrator's directories in /etc.
ifeq ($(PREFIX),/usr)
UDEVRULESDIR ?= /usr/lib/udev/rules.d
MODULESLOADDIR ?= /usr/lib/modules-load.d
else
UDEVRULESDIR ?= /etc/udev/rules.d
MODULESLOADDIR ?= /etc/modules-load.d
endif
# extra/, not updates/: DKMS installs into updates/dkms/, and depmod
# prefers updates/, so a DKMS copy always wins over a "make install" one.
INSTALL_MOD_DIR ?= extra
# modules_install signs with the kernel's own key when CONFIG_MODULE_SIG_ALL
# is set; distribution headers do not have that key.  MODULE_SIGN=1 tries.
MODULE_SIGN ?= 0
MODULES_LOAD ?= 0

# From utsrelease.h: Debian 6.1 headers have "6.1.N" in kernel.release.
KVER = $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"/\1/p' \
	$(KDIR)/include/generated/utsrelease.h 2>/dev/null)
INSTALL_DATA := install -D -m 644

.PHONY: install uninstall install-check install-module install-udev install-modules-load \
	install-headers install-userspace dkms-src dkms-install dkms-uninstall \
	dkms-check deb-check deb version-check

install: install-module install-udev install-headers install-userspace
ifeq ($(MODULES_LOAD),1)
install: install-modules-load
endif

install-module: module
	@test -n "$(KVER)" || { echo "install: no kernel release in $(KDIR)" >&2; exit 1; }
	@if [ -z "$(DESTDIR)" ] && command -v dkms >/dev/null && \
		dkms status cowmap 2>/dev/null | grep -q "$(KVER).*installed"; then \
		echo "install: note: DKMS has cowmap installed for $(KVER);" \
			"its copy (updates/dkms) is the one modprobe loads" >&2; fi
	$(MAKE) -C $(KDIR) M=$(OBJDIR) modules_install \
		INSTALL_MOD_PATH=$(DESTDIR) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) \
		$(if $(filter 1,$(MODULE_SIGN)),,CONFIG_MODULE_SIG_ALL=)
	@# The kernel's depmod step needs System.map, which headers lack.
	$(if $(DESTDIR),@echo "  (DESTDIR set: depmod skipped)",depmod -a $(KVER))

install-udev:
	$(INSTALL_DATA) packaging/60-cowmap.rules $(DESTDIR)$(UDEVRULESDIR)/60-cowmap.rules

install-modules-load:
	$(INSTALL_DATA) packaging/cowmap.conf $(DESTDIR)$(MODULESLOADDIR)/cowmap.conf

# The headers go to $(INCLUDEDIR)/cowmap/, not linux-libc-dev's
# $(INCLUDEDIR)/linux/: <linux/cowmap.h> and <libcowmap.h> are found through
# cowmap.pc's Cflags, -I$(INCLUDEDIR)/cowmap.
install-headers:
	$(INSTALL_DATA) uapi/cowmap.h $(DESTDIR)$(INCLUDEDIR)/cowmap/linux/cowmap.h

# libcowmap and cowmapctl (mk/user.mk) are installed only if they have been
# built ("make", or "make lib tools"); install builds only the module.
# Library: build/lib/libcowmap.so* (links kept), libcowmap.a, the header
# build/include/libcowmap.h and pkgconfig/cowmap.pc (prefix, libdir and
# includedir rewritten for this install).  CLI: build/bin/cowmapctl and
# its bash completion (completions/cowmapctl.bash).  Man pages:
# build/man/{cowmap,libcowmap}*.[1-8].
# A cowmapctl built for another LIBDIR is relinked (cowmapctl run finds the
# preload library in PRELOADDIR, $(LIBDIR)/cowmap: mk/user.mk).
install-userspace: $(if $(wildcard $(BUILD)/bin/cowmapctl),$(BUILD)/bin/cowmapctl)
	@set -e; lib=0; \
	for f in $(BUILD)/lib/libcowmap.so* $(BUILD)/lib/libcowmap.a; do \
		[ -e "$$f" ] || [ -L "$$f" ] || continue; \
		mkdir -p $(DESTDIR)$(LIBDIR); \
		if [ -L "$$f" ]; then cp -P "$$f" $(DESTDIR)$(LIBDIR)/; \
		else install -m 644 "$$f" $(DESTDIR)$(LIBDIR)/; fi; \
		echo "  INSTALL $(DESTDIR)$(LIBDIR)/$${f##*/}"; lib=1; \
	done; \
	if [ -e $(BUILD)/lib/libcowmap-preload.so ]; then \
		install -D -m 644 $(BUILD)/lib/libcowmap-preload.so \
			$(DESTDIR)$(PRELOADDIR)/libcowmap-preload.so; \
		echo "  INSTALL $(DESTDIR)$(PRELOADDIR)/libcowmap-preload.so"; fi; \
	if [ $$lib = 1 ]; then \
		$(INSTALL_DATA) $(BUILD)/include/libcowmap.h $(DESTDIR)$(INCLUDEDIR)/cowmap/libcowmap.h; \
		echo "  INSTALL $(DESTDIR)$(INCLUDEDIR)/cowmap/libcowmap.h"; \
		mkdir -p $(DESTDIR)$(LIBDIR)/pkgconfig; \
		sed -e 's|^prefix=.*|prefix=$(PREFIX)|' -e 's|^libdir=.*|libdir=$(LIBDIR)|' \
			-e 's|^includedir=.*|includedir=$(INCLUDEDIR)|' \
			$(BUILD)/lib/pkgconfig/cowmap.pc >$(DESTDIR)$(LIBDIR)/pkgconfig/cowmap.pc; \
		chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/cowmap.pc; \
		echo "  INSTALL $(DESTDIR)$(LIBDIR)/pkgconfig/cowmap.pc"; \
	elif [ -n "$(LIB_SO)" ]; then \
		echo "  (libcowmap not built: run make lib first to install it)"; fi; \
	if [ -e $(BUILD)/bin/cowmapctl ]; then \
		install -D -m 755 $(BUILD)/bin/cowmapctl $(DESTDIR)$(BINDIR)/cowmapctl; \
		echo "  INSTALL $(DESTDIR)$(BINDIR)/cowmapctl"; \
		$(INSTALL_DATA) completions/cowmapctl.bash $(DESTDIR)$(BASHCOMPDIR)/cowmapctl; \
		echo "  INSTALL $(DESTDIR)$(BASHCOMPDIR)/cowmapctl"; \
	elif [ -e tools/cowmapctl/main.c ]; then \
		echo "  (cowmapctl not built: run make tools first to install it)"; fi; \
	for f in $(BUILD)/man/cowmap*.[1-8] $(BUILD)/man/libcowmap*.[1-8]; do \
		[ -e "$$f" ] || continue; \
		$(INSTALL_DATA) "$$f" $(DESTDIR)$(MANDIR)/man$${f##*.}/$${f##*/}; \
		echo "  INSTALL $(DESTDIR)$(MANDIR)/man$${f##*.}/$${f##*/}"; \
	done; \
	if [ $$lib = 1 ] && [ -z "$(DESTDIR)" ]; then ldconfig; fi

# The module is removed from every kernel it was installed for (one
# "make install KDIR=..." per kernel), then depmod for those kernels.
# make install + make uninstall into scratch DESTDIRs, checked file by file.
install-check:
	tools/install-check $(KDIR)

uninstall:
	@set -e; for m in $(DESTDIR)/lib/modules/*/$(INSTALL_MOD_DIR)/cowmap.ko*; do \
		[ -e "$$m" ] || continue; \
		echo "  RM      $$m"; rm -f "$$m"; \
		d=$${m%/*}; rmdir --ignore-fail-on-non-empty "$$d"; \
		k=$${d%/$(INSTALL_MOD_DIR)}; k=$${k##*/}; \
		if [ -z "$(DESTDIR)" ] && [ -e /lib/modules/$$k/modules.order ]; then \
			echo "  DEPMOD  $$k"; depmod -a $$k; fi; \
	done
	rm -f $(DESTDIR)$(UDEVRULESDIR)/60-cowmap.rules \
		$(DESTDIR)$(MODULESLOADDIR)/cowmap.conf \
		$(DESTDIR)$(INCLUDEDIR)/cowmap/linux/cowmap.h \
		$(DESTDIR)$(BINDIR)/cowmapctl \
		$(DESTDIR)$(BASHCOMPDIR)/cowmapctl \
		$(DESTDIR)$(INCLUDEDIR)/cowmap/libcowmap.h \
		$(DESTDIR)$(LIBDIR)/libcowmap.so* $(DESTDIR)$(LIBDIR)/libcowmap.a \
		$(DESTDIR)$(PRELOADDIR)/libcowmap-preload.so \
		$(DESTDIR)$(LIBDIR)/pkgconfig/cowmap.pc \
		$(DESTDIR)$(MANDIR)/man[1-8]/cowmap*.[1-8] \
		$(DESTDIR)$(MANDIR)/man[1-8]/libcowmap*.[1-8]
	-@rmdir $(DESTDIR)$(INCLUDEDIR)/cowmap/linux $(DESTDIR)$(INCLUDEDIR)/cowmap 2>/dev/null || true
	-@rmdir $(DESTDIR)$(PRELOADDIR) 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

# ------------------------------------------------------------------ DKMS ---

DKMS_SRCDIR := /usr/src/cowmap-$(VERSION)
DKMS_CONF := $(BUILD)/dkms/dkms.conf

# dkms.conf is a template; VERSION is the only place the version is written.
$(DKMS_CONF): dkms.conf VERSION
	@mkdir -p $(dir $@)
	sed 's/#MODULE_VERSION#/$(VERSION)/g' dkms.conf >$@.tmp
	@! grep -n '#MODULE_VERSION#' $@.tmp
	mv $@.tmp $@

dkms-src: $(DKMS_CONF)
	@test -n "$(VERSION)" || { echo "dkms-src: empty VERSION" >&2; exit 1; }
	@test -n "$(DESTDIR)" || ! dpkg-query -S $(DKMS_SRCDIR) >/dev/null 2>&1 || { \
		echo "$@: $(DKMS_SRCDIR) belongs to a Debian package; use apt" >&2; exit 1; }
	rm -rf $(DESTDIR)$(DKMS_SRCDIR)
	@set -e; for f in $(KMOD_SRCS); do \
		$(INSTALL_DATA) $$f $(DESTDIR)$(DKMS_SRCDIR)/$$f; done
	$(INSTALL_DATA) $(DKMS_CONF) $(DESTDIR)$(DKMS_SRCDIR)/dkms.conf

# Kernels with headers; dkms skips those outside 6.1-6.12 and 7.3 (exit 77).
DKMS_KERNELS ?= $(notdir $(patsubst %/build,%,$(wildcard /lib/modules/*/build)))

define dkms_live_guard
	@test -z "$(DESTDIR)" || { echo "$@: DESTDIR makes no sense here" >&2; exit 1; }
	@test "$$(id -u)" = 0 || { echo "$@: must run as root" >&2; exit 1; }
	@! dpkg-query -S $(DKMS_SRCDIR) >/dev/null 2>&1 || { \
		echo "$@: $(DKMS_SRCDIR) belongs to a Debian package" \
			"($$(dpkg-query -S $(DKMS_SRCDIR) | cut -d: -f1)); use apt" >&2; exit 1; }
endef

dkms-install:
	$(dkms_live_guard)
	@if [ -d /var/lib/dkms/cowmap/$(VERSION) ]; then \
		echo "dkms remove cowmap/$(VERSION) --all"; \
		dkms remove cowmap/$(VERSION) --all; fi
	$(MAKE) --no-print-directory dkms-src
	dkms add cowmap/$(VERSION)
	@set -e; for k in $(DKMS_KERNELS); do \
		[ -e /lib/modules/$$k/build/include ] || continue; \
		echo "dkms install cowmap/$(VERSION) -k $$k"; \
		rc=0; dkms install cowmap/$(VERSION) -k $$k || rc=$$?; \
		case $$rc in 0) ;; 77) echo "  skipped: $$k is not 6.1-6.12" ;; \
			*) exit $$rc ;; esac; \
	done
	dkms status cowmap

dkms-uninstall:
	$(dkms_live_guard)
	@if [ -d /var/lib/dkms/cowmap/$(VERSION) ]; then \
		echo "dkms remove cowmap/$(VERSION) --all"; \
		dkms remove cowmap/$(VERSION) --all; fi
	rm -rf $(DKMS_SRCDIR)

dkms-check: version-check
	tools/dkms-check

# tools/deb-check runs make deb itself (which runs version-check).
deb-check:
	tools/deb-check

# ---------------------------------------------------------------- Debian ---

version-check:
	@cl=$$(dpkg-parsechangelog -l debian/changelog -S Version) && \
	if [ "$$cl" != "$(VERSION)" ]; then \
		echo "version-check: debian/changelog has $$cl, VERSION has $(VERSION);" \
			"add a changelog entry (dch -v $(VERSION))" >&2; exit 1; \
	else echo "version-check: $(VERSION) (VERSION = debian/changelog)"; fi

# Built in a copy of the tree (build/ and .git left out), so that the
# package's clean step never touches this tree and nothing is written to
# the parent directory.
DEB_OUT := $(BUILD)/deb
DEB_SRC := $(DEB_OUT)/src/cowmap-$(VERSION)

deb: version-check
	rm -rf $(DEB_OUT)
	@mkdir -p $(DEB_SRC)
	rsync -a --exclude=/build/ --exclude=/.git/ --filter=':- .gitignore' ./ $(DEB_SRC)/
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	mv $(DEB_OUT)/src/*.deb $(DEB_OUT)/src/*.buildinfo $(DEB_OUT)/src/*.changes $(DEB_OUT)/
	rm -rf $(DEB_OUT)/src
	lintian --fail-on error --display-info $(DEB_OUT)/cowmap_$(VERSION)_*.changes
	@ls -l $(DEB_OUT)
