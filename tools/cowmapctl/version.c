// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl version: the versions of cowmapctl, libcowmap and the module.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cowmapctl.h"

static const char help_version[] =
"Usage: cowmapctl version [--json]\n"
"\n"
"Print the version of cowmapctl, of the libcowmap it runs with\n"
"(cowmap_version()) and of the loaded module (/sys/module/cowmap/version):\n"
"  cowmapctl: 0.2.0\n"
"  libcowmap: 0.2.0\n"
"  module:    0.2.0\n"
"The module line says \"not loaded\" when it is not; this command does not\n"
"load it. (The global version option prints cowmapctl's version only.)\n"
"\n"
"  -j, --json   {\"cowmapctl\":\"0.2.0\",\"libcowmap\":\"0.2.0\",\"module\":\"0.2.0\"}\n"
"               (\"module\":null when it is not loaded)\n"
"\n"
"Exit status: 0; 1 if the module's version cannot be read.\n";

#define MODULE_VERSION_PATH "/sys/module/cowmap/version"

/*
 * The loaded module's version into @buf; 0 if it is not loaded (@buf
 * empty), -errno if it is but the version cannot be read.
 */
static int module_version(char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	buf[0] = '\0';
	fd = open(MODULE_VERSION_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* No /sys/module/cowmap: not loaded. */
		if (errno == ENOENT && access("/sys/module/cowmap", F_OK) && errno == ENOENT)
			return 0;
		return -errno;
	}
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			close(fd);
			return n;
		}
		if (!n)
			break;
		len += n;
	}
	close(fd);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		len--;
	buf[len] = '\0';
	return len ? 0 : -ENODATA;
}

int cmd_version(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	char mod[128];
	int c;

	if (want_help(argc, argv, help_version))
		return EX_OK;
	while ((c = getopt_long(argc, argv, ":j", opts, NULL)) != -1) {
		if (c == 'j')
			json_out = 1;
		else
			return bad_option(c, argv);
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	c = module_version(mod, sizeof(mod));
	if (c < 0) {
		err("%s: %s", MODULE_VERSION_PATH, strerror(-c));
		return EX_ERR;
	}
	if (json_out) {
		struct json_object *o = jobj();

		jput_str(o, "cowmapctl", COWMAP_VERSION);
		jput_str(o, "libcowmap", cowmap_version());
		jput_str(o, "module", mod[0] ? mod : NULL);
		jprint(o);
	} else {
		printf("%-10s %s\n", "cowmapctl:", COWMAP_VERSION);
		printf("%-10s %s\n", "libcowmap:", cowmap_version());
		printf("%-10s %s\n", "module:", mod[0] ? mod : "not loaded");
	}
	return EX_OK;
}
