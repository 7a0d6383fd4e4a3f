// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl: the command-line side of cowmap; the dispatcher. See
 * docs/cowmapctl.md and cowmapctl.h for the layout.
 *
 * Exit codes: 0 success, 1 error, 2 usage, 3 conflicts (merge).
 */
#include <stdio.h>
#include <string.h>

#include "cowmapctl.h"

const char *cmd = "cowmapctl";

static const char help_main[] =
"Usage: cowmapctl [--version] [--help] COMMAND [ARGS]\n"
"\n"
"Commands:\n"
"  map FILE [--write OFFSET:TEXT]... [--log LOGFILE] [--keep]\n"
"                      attach a session, write through the mapping, commit\n"
"  list [--json]       list the sessions (netlink)\n"
"  status ID [--json]  one session (netlink)\n"
"  dump ID | -l LOGFILE [--json | --raw -o FILE]\n"
"                      print a session's or a log file's journal\n"
"  merge -s SOURCE -l LOG... [--all DIR] [--in-place | -o OUT] [--skip | --force]\n"
"        [--dry-run]   apply journals to a file (offline, no module needed)\n"
"  merge --session ID --into FILE [--skip | --force] [--dry-run] [--fsync]\n"
"                      apply an orphaned session's journal in the kernel\n"
"  trim ID             drop the merged records of an orphaned session\n"
"  discard ID          drop an orphaned session and its journal\n"
"  monitor [--json] [--count N]\n"
"                      print cowmap events as they happen (netlink)\n"
"  version [--json]   versions of cowmapctl, libcowmap and the loaded module\n"
"\n"
"'cowmapctl COMMAND --help' describes a command. Exit status: 0 success,\n"
"1 error, 2 usage error, 3 merge conflicts. See cowmapctl(8).\n";

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} cmds[] = {
	{ "map", cmd_map },
	{ "dump", cmd_dump },
	{ "merge", cmd_merge },
	{ "status", cmd_status },
	{ "discard", cmd_discard },
	{ "list", cmd_list },
	{ "monitor", cmd_monitor },
	{ "trim", cmd_trim },
	{ "version", cmd_version },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(help_main, stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		if (argc > 2 && strcmp(argv[1], "help") == 0) {
			char *v[] = { argv[2], "--help", NULL };

			for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
				if (!strcmp(argv[2], cmds[i].name)) {
					cmd = cmds[i].name;
					return cmds[i].fn(2, v);
				}
		}
		fputs(help_main, stdout);
		return EX_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("cowmapctl %s\n", cowmap_version());
		return EX_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			cmd = cmds[i].name;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "cowmapctl: unknown command '%s'\n\n%s", argv[1], help_main);
	return EX_USAGE;
}
