// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl: the command-line side of cowmap; the dispatcher. See
 * docs/cowmapctl.md and cowmapctl.h for the layout.
 *
 * Exit codes: 0 success, 1 error, 2 usage, 3 conflicts (merge).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cowmapctl.h"

const char *cmd = "cowmapctl";

static const char help_main[] =
"Usage: cowmapctl [-j | --json] [--version] [--help] COMMAND [ARGS]\n"
"\n"
"Commands:\n"
"  map FILE [--write OFFSET:TEXT]... [--log LOGFILE] [--keep]\n"
"                      attach a session, write through the mapping, commit\n"
"  list [-s] [--json]  list the sessions (netlink; -s: their counters)\n"
"  status ID [--json]  one session (netlink)\n"
"  dump ID | -l LOGFILE [--json | --raw -o FILE]\n"
"                      print a session's or a log file's journal\n"
"  merge -s SOURCE -l LOG... [--all DIR] [--in-place | -o OUT] [--skip | --force]\n"
"        [--dry-run]   apply journals to a file (offline, no module needed)\n"
"  merge ID --into FILE [--skip | --force] [--dry-run] [--fsync]\n"
"                      apply an orphaned session's journal in the kernel\n"
"  trim ID             drop the merged records of an orphaned session\n"
"  discard ID          drop an orphaned session and its journal\n"
"  monitor [ID] [--json] [--count N]\n"
"                      print cowmap events as they happen (netlink)\n"
"  run [--file PATH]... [--dir DIR]... [--keep | --merge | --discard] -- PROGRAM\n"
"                      run an unmodified program with those files in sessions\n"
"  version [--json]   versions of cowmapctl, libcowmap and the loaded module\n"
"\n"
"-j, --json before COMMAND is --json for every command (like ip -j). A\n"
"session ID is an argument, or --session ID, in every command.\n"
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
	{ "run", cmd_run },
};

static int find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(name, cmds[i].name))
			return i;
	return -1;
}

/*
 * Standard output, flushed and closed: a write error (a full disk, a
 * closed pipe's EPIPE is a signal) must not exit 0. @ret: the command's.
 */
static int close_stdout(int ret)
{
	int e = 0;

	if (fflush(stdout))
		e = errno;
	if (ferror(stdout) || fclose(stdout)) {
		if (!e)
			e = errno;
		fprintf(stderr, "cowmapctl: %s: write error on standard output: %s\n", cmd,
			e ? strerror(e) : "unknown error");
		return ret == EX_OK || ret == EX_CONFLICT ? EX_ERR : ret;
	}
	return ret;
}

int main(int argc, char **argv)
{
	int i = 1, k, ret;

	/* A size past RLIMIT_FSIZE (map, merge) is an EFBIG error, not a kill. */
	signal(SIGXFSZ, SIG_IGN);
	/* getopt's own messages are replaced by one of ours (bad_option()). */
	opterr = 0;
	/* Global options, before the command. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
			json_out = 1;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help_main, stdout);
			return close_stdout(EX_OK);
		} else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			printf("cowmapctl %s\n", cowmap_version());
			return close_stdout(EX_OK);
		} else {
			fprintf(stderr, "cowmapctl: unknown option '%s'\n"
				"Try 'cowmapctl --help'.\n", argv[i]);
			return EX_USAGE;
		}
	}
	if (i == argc) {
		fputs(help_main, stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		char *v[] = { NULL, "--help", NULL };

		if (i + 1 == argc) {
			fputs(help_main, stdout);
			return close_stdout(EX_OK);
		}
		k = find_cmd(argv[i + 1]);
		if (k < 0 || i + 2 != argc) {
			fprintf(stderr, "cowmapctl: help: %s '%s'\nTry 'cowmapctl --help'.\n",
				k < 0 ? "unknown command" : "unexpected argument",
				argv[k < 0 ? i + 1 : i + 2]);
			return EX_USAGE;
		}
		cmd = cmds[k].name;
		v[0] = argv[i + 1];
		return close_stdout(cmds[k].fn(2, v));
	}
	k = find_cmd(argv[i]);
	if (k < 0) {
		fprintf(stderr, "cowmapctl: unknown command '%s'\n\n%s", argv[i], help_main);
		return EX_USAGE;
	}
	cmd = cmds[k].name;
	ret = cmds[k].fn(argc - i, argv + i);
	/* With --json, a failure is reported in JSON too. */
	jerror_flush(ret);
	return close_stdout(ret);
}
