// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl list: the sessions, over netlink.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "cowmapctl.h"

static const char help_list[] =
"Usage: cowmapctl list [--stats] [--json]\n"
"\n"
"List the sessions the kernel has (netlink): attached and orphaned, yours\n"
"only unless you have CAP_SYS_ADMIN. One line per session:\n"
"  ID STATE PID UID RECORDS BYTES MERGED PAGES FILE [journal=PATH]\n"
"PID is the process that attached it, PAGES its private pages.\n"
"\n"
"  -s, --stats  also the session's counters (faults, cow_copies, ...: the\n"
"               fields of struct cowmap_status), read without adopting it,\n"
"               on a second line (like ip -s)\n"
"  -j, --json   {\"sessions\":[{...}, ...]} (with --stats, the counters too)\n";

static int stats;

/* The counters of a session (--stats): a line, or JSON members. */
static void list_stats(struct json_object *o, const struct cowmap_nl_session *s)
{
#define F(name) { #name, s->name }
	const struct { const char *name; uint64_t v; } f[] = {
		F(faults), F(cow_copies), F(rearms), F(base_invalidations),
		F(limit_hits), F(commits), F(mappings), F(base_pages), F(twin_pages),
	};
#undef F

	if (!s->has_counters) {
		if (!o)
			printf("       (no counters: the loaded module does not send them)\n");
		return;
	}
	if (!o)
		printf("      ");
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (o)
			jput_u64(o, f[i].name, f[i].v);
		else
			printf(" %s=%" PRIu64, f[i].name, f[i].v);
	}
	/* The session's size: in the JSON object already (session_json()). */
	if (!o && s->has_session_size)
		printf(" session_size=%" PRIu64, s->session_size);
	if (!o)
		putchar('\n');
}

/* Each session: a line, or (--json) an element of @arg's array. */
static void list_one(void *arg, const struct cowmap_nl_session *s)
{
	if (json_out) {
		struct json_object *o = session_json(s);

		if (stats)
			list_stats(o, s);
		jappend(arg, o);
		return;
	}
	printf("%-6" PRIu64 " %-9s %7u %5u %8" PRIu64 " %9" PRIu64 " %7" PRIu64
	       " %6" PRIu64 " %s", s->session_id, state_name(s->state), s->owner_pid,
	       s->owner_uid, s->records, s->journal_bytes, s->merged, s->private_pages,
	       s->path ? s->path : "-");
	if (s->journal_path)
		printf(" journal=%s", s->journal_path);
	putchar('\n');
	if (stats)
		list_stats(NULL, s);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "stats", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct json_object *o = NULL, *a = NULL;
	struct cowmap_nl *nl;
	int c;

	if (want_help(argc, argv, help_list))
		return EX_OK;
	while ((c = getopt_long(argc, argv, ":js", opts, NULL)) != -1) {
		if (c == 'j')
			json_out = 1;
		else if (c == 's')
			stats = 1;
		else
			return bad_option(c, argv);
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	nl = nl_open_or_fail();
	if (!nl)
		return EX_ERR;
	if (json_out) {
		o = jobj();
		a = jarr();
		jput(o, "sessions", a);
	} else {
		printf("%-6s %-9s %7s %5s %8s %9s %7s %6s %s\n", "ID", "STATE", "PID", "UID",
		       "RECORDS", "BYTES", "MERGED", "PAGES", "FILE");
		fflush(stdout);
	}
	c = cowmap_nl_sessions(nl, list_one, a);
	if (c < 0) {
		fflush(stdout);
		c = nl_fail(nl, "list", c);
	} else {
		c = EX_OK;
	}
	if (o) {
		/* What was listed before an error, and the error. */
		if (c)
			jput_error(o, c);
		jprint(o);
	}
	cowmap_nl_close(nl);
	return c;
}
