// SPDX-License-Identifier: GPL-2.0
/*
 * What libcowmap's module-facing entry points return, for tools/host-check
 * (run on the build machine, where the module is not loaded). Prints the
 * return value on stdout: "-ENAME" for an error, "fd" or "0" for success.
 *
 *   lib-errno open                 cowmap_open(NULL)
 *   lib-errno session-open PATH    cowmap_session_open(PATH, NULL, NULL)
 *   lib-errno session-adopt ID     cowmap_session_adopt(ID)
 *   lib-errno nl-open              cowmap_nl_open()
 *   lib-errno raw-open PATH        open(PATH, O_RDWR) itself, no library
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libcowmap.h"

static int usage(void)
{
	fprintf(stderr, "usage: lib-errno open | session-open PATH | session-adopt ID |\n"
		"                 nl-open | raw-open PATH\n");
	return 2;
}

static void put(int ret, int is_fd)
{
	const char *name;

	if (ret >= 0) {
		if (is_fd)
			close(ret);
		printf("%s\n", is_fd ? "fd" : "0");
		return;
	}
	name = strerrorname_np(-ret);
	if (name)
		printf("-%s\n", name);
	else
		printf("%d\n", ret);
}

int main(int argc, char **argv)
{
	struct cowmap_nl *nl;
	int ret;

	if (argc == 2 && !strcmp(argv[1], "open")) {
		put(cowmap_open(NULL), 1);
	} else if (argc == 3 && !strcmp(argv[1], "session-open")) {
		put(cowmap_session_open(argv[2], NULL, NULL), 1);
	} else if (argc == 3 && !strcmp(argv[1], "session-adopt")) {
		put(cowmap_session_adopt(strtoull(argv[2], NULL, 0)), 1);
	} else if (argc == 2 && !strcmp(argv[1], "nl-open")) {
		ret = cowmap_nl_open(&nl);
		if (!ret)
			cowmap_nl_close(nl);
		put(ret, 0);
	} else if (argc == 3 && !strcmp(argv[1], "raw-open")) {
		ret = open(argv[2], O_RDWR | O_CLOEXEC);
		put(ret < 0 ? -errno : ret, 1);
	} else {
		return usage();
	}
	return 0;
}
