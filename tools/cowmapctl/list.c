// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl list: the sessions, over netlink.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "cowmapctl.h"

static const char help_list[] =
"Usage: cowmapctl list [--stats] [-o COLUMNS] [--raw] [--noheadings] [--json]\n"
"\n"
"List the sessions the kernel has (netlink): attached and orphaned, yours\n"
"only unless you have CAP_SYS_ADMIN. One line per session, in columns:\n"
"  ID STATE PID UID RECORDS BYTES MERGED PAGES FILE JOURNAL\n"
"PID is the process that attached it, PAGES its private pages, '-' a\n"
"value the kernel did not give.\n"
"\n"
"  -s, --stats       also the session's counters (faults, cow_copies, ...:\n"
"                    the fields of struct cowmap_status), read without\n"
"                    adopting it, on a second line (like ip -s); with -o or\n"
"                    --raw, as columns\n"
"  -o, --output COLUMNS  the columns to print, comma-separated ('+A,B': the\n"
"                    default ones, then A and B); see below\n"
"  -r, --raw         one space between columns, no alignment; spaces,\n"
"                    backslashes and control characters in a value as \\xNN\n"
"  -n, --noheadings  no heading line\n"
"  -j, --json        {\"sessions\":[{...}, ...]}: every member of a session,\n"
"                    or with -o the members of those columns only (with\n"
"                    --stats, the counters too)\n"
"\n"
"Columns:\n";

/* The columns of list (-o): the first LIST_DEFAULT are the default. */
enum {
	C_ID, C_STATE, C_PID, C_UID, C_RECORDS, C_BYTES, C_MERGED, C_PAGES, C_FILE,
	C_JOURNAL, C_TWINS, C_SIZE, C_DEV, C_INO, C_MAPPINGS, C_BASE_PAGES, C_FAULTS,
	C_COW_COPIES, C_REARMS, C_BASE_INVALIDATIONS, C_LIMIT_HITS, C_COMMITS,
	C_NCOLS
};
#define LIST_DEFAULT	(C_JOURNAL + 1)
#define R		TCOL_RIGHT
static const struct tcol list_cols[C_NCOLS] = {
	[C_ID] = { "ID", 0, 6, "session id" },
	[C_STATE] = { "STATE", 0, 9, "attached or orphaned" },
	[C_PID] = { "PID", R, 7, "the process that attached it" },
	[C_UID] = { "UID", R, 5, "the owner" },
	[C_RECORDS] = { "RECORDS", R, 8, "journal records in the kernel" },
	[C_BYTES] = { "BYTES", R, 9, "their size in the journal format" },
	[C_MERGED] = { "MERGED", R, 7, "records a kernel merge applied" },
	[C_PAGES] = { "PAGES", R, 6, "private pages" },
	[C_FILE] = { "FILE", 0, 0, "the backing file" },
	[C_JOURNAL] = { "JOURNAL", 0, 0, "the journal file" },
	[C_TWINS] = { "TWINS", R, 0, "pages written and not yet committed" },
	[C_SIZE] = { "SIZE", R, 0, "the backing file's size" },
	[C_DEV] = { "DEV", 0, 0, "its device, MAJOR:MINOR" },
	[C_INO] = { "INO", R, 0, "its inode number" },
	/* --stats: the counters */
	[C_MAPPINGS] = { "MAPPINGS", R, 0, "counter: mappings" },
	[C_BASE_PAGES] = { "BASE_PAGES", R, 0, "counter: base_pages" },
	[C_FAULTS] = { "FAULTS", R, 0, "counter: faults" },
	[C_COW_COPIES] = { "COW_COPIES", R, 0, "counter: cow_copies" },
	[C_REARMS] = { "REARMS", R, 0, "counter: rearms" },
	[C_BASE_INVALIDATIONS] = { "BASE_INVALIDATIONS", R, 0, "counter: base_invalidations" },
	[C_LIMIT_HITS] = { "LIMIT_HITS", R, 0, "counter: limit_hits" },
	[C_COMMITS] = { "COMMITS", R, 0, "counter: commits" },
};
#undef R

static int stats;
static const struct tcol *cols[TABLE_MAX_COLS];
static size_t ncols;
static int opt_o;		/* -o given: JSON has those columns only */
static int stats_cols;		/* --stats as columns (with -o or --raw) */

/* The counters of a session (--stats): a line, or JSON members. */
static void list_stats(struct json_object *o, struct table *t,
		       const struct cowmap_nl_session *s)
{
#define F(name) { #name, s->name }
	const struct { const char *name; uint64_t v; } f[] = {
		F(faults), F(cow_copies), F(rearms), F(base_invalidations),
		F(limit_hits), F(commits), F(mappings), F(base_pages), F(twin_pages),
	};
#undef F
	char line[512];
	size_t n;

	if (!s->has_counters) {
		if (!o)
			table_note(t, "       (no counters: the loaded module does not send them)");
		return;
	}
	n = snprintf(line, sizeof(line), "      ");
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (o)
			jput_u64(o, f[i].name, f[i].v);
		else if (n < sizeof(line))
			n += snprintf(line + n, sizeof(line) - n, " %s=%" PRIu64, f[i].name, f[i].v);
	}
	/* The session's size: in the JSON object already (session_json()). */
	if (!o && s->has_session_size && n < sizeof(line))
		snprintf(line + n, sizeof(line) - n, " session_size=%" PRIu64,
			 s->session_size);
	if (!o)
		table_note(t, line);
}

/* Column @c of session @s: *@v a number, or the returned text (NULL: none). */
static const char *col_value(int c, const struct cowmap_nl_session *s, uint64_t *v,
			     int *is_num, int *is_id)
{
	const uint64_t counters[] = {
		s->mappings, s->base_pages, s->faults, s->cow_copies, s->rearms,
		s->base_invalidations, s->limit_hits, s->commits,
	};

	*is_num = 1;
	*is_id = 0;
	switch (c) {
	case C_ID: *is_id = 1; *v = s->session_id; return NULL;
	case C_STATE: *is_num = 0; return state_name(s->state);
	case C_PID: *v = s->owner_pid; return NULL;
	case C_UID: *v = s->owner_uid; return NULL;
	case C_RECORDS: *v = s->records; return NULL;
	case C_BYTES: *v = s->journal_bytes; return NULL;
	case C_MERGED: *v = s->merged; return NULL;
	case C_PAGES: *v = s->private_pages; return NULL;
	case C_FILE: *is_num = 0; return s->path;
	case C_JOURNAL: *is_num = 0; return s->journal_path;
	case C_TWINS: *v = s->twin_pages; return NULL;
	case C_SIZE: *is_id = 1; *v = s->size; return NULL;
	case C_DEV: *is_num = 0; return NULL;	/* two numbers: see list_one() */
	case C_INO: *is_id = 1; *v = s->ino; return NULL;
	}
	*is_num = s->has_counters;	/* a counter: none from an old module */
	*v = counters[c - C_MAPPINGS];
	return NULL;
}

/* The JSON keys of the columns (those of session_json() and --stats). */
static const char *const col_key[C_NCOLS] = {
	[C_ID] = "session_id", [C_STATE] = "state", [C_PID] = "owner_pid",
	[C_UID] = "owner_uid", [C_RECORDS] = "journal_records",
	[C_BYTES] = "journal_bytes", [C_MERGED] = "merged_records",
	[C_PAGES] = "private_pages", [C_FILE] = "path", [C_JOURNAL] = "journal_path",
	[C_TWINS] = "twin_pages", [C_SIZE] = "size", [C_DEV] = "dev", [C_INO] = "ino",
	[C_MAPPINGS] = "mappings", [C_BASE_PAGES] = "base_pages", [C_FAULTS] = "faults",
	[C_COW_COPIES] = "cow_copies", [C_REARMS] = "rearms",
	[C_BASE_INVALIDATIONS] = "base_invalidations", [C_LIMIT_HITS] = "limit_hits",
	[C_COMMITS] = "commits",
};

/* The selected columns of @s: JSON members of @o, or cells of @t's new row. */
static void list_cols_of(struct json_object *o, struct table *t,
			 const struct cowmap_nl_session *s)
{
	if (t)
		table_row(t);
	for (size_t i = 0; i < ncols; i++) {
		int c = cols[i] - list_cols, is_num, is_id;
		const char *text;
		char buf[48];
		uint64_t v = 0;

		text = col_value(c, s, &v, &is_num, &is_id);
		if (c == C_DEV) {
			if (o) {
				jput_u64(o, "dev_major", s->dev_major);
				jput_u64(o, "dev_minor", s->dev_minor);
				continue;
			}
			snprintf(buf, sizeof(buf), "%u:%u", s->dev_major, s->dev_minor);
			text = buf;
		} else if (is_num) {
			snprintf(buf, sizeof(buf), "%" PRIu64, v);
			text = buf;
		}
		if (!o) {
			table_set(t, i, text);
		} else if (is_num && is_id) {
			jput_id(o, col_key[c], v);
		} else if (is_num) {
			jput_u64(o, col_key[c], v);
		} else {
			jput_str(o, col_key[c], text);
		}
	}
}

struct list_out {
	struct json_object *a;	/* --json: the array */
	struct table *t;	/* else the table */
};

/* Each session: a row of the table, or (--json) an element of the array. */
static void list_one(void *arg, const struct cowmap_nl_session *s)
{
	struct list_out *out = arg;

	if (json_out) {
		struct json_object *o = opt_o ? jobj() : session_json(s);

		if (opt_o)
			list_cols_of(o, NULL, s);
		else if (stats)
			list_stats(o, NULL, s);
		jappend(out->a, o);
		return;
	}
	list_cols_of(NULL, out->t, s);
	if (stats && !stats_cols)
		list_stats(NULL, out->t, s);
}

/* "Columns:" of --help. */
static void help_cols(void)
{
	fputs(help_list, stdout);
	for (size_t i = 0; i < C_NCOLS; i++)
		printf("  %-19s %s\n", list_cols[i].name, list_cols[i].help);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "stats", no_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "raw", no_argument, NULL, 'r' },
		{ "noheadings", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct list_out out = { };
	struct json_object *o = NULL;
	const char *spec = NULL;
	int raw = 0, noheadings = 0, c;
	struct cowmap_nl *nl;

	if (want_help(argc, argv, "")) {
		help_cols();
		return EX_OK;
	}
	while ((c = getopt_long(argc, argv, ":jso:rn", opts, NULL)) != -1) {
		if (c == 'j')
			json_out = 1;
		else if (c == 's')
			stats = 1;
		else if (c == 'o') {
			if (once(&spec, "-o", optarg))
				return EX_USAGE;
		} else if (c == 'r')
			raw = 1;
		else if (c == 'n')
			noheadings = 1;
		else
			return bad_option(c, argv);
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	if (spec) {
		c = table_parse_cols(spec, list_cols, C_NCOLS, LIST_DEFAULT, cols);
		if (c < 0)
			return EX_USAGE;
		ncols = c;
		opt_o = 1;
	} else {
		for (ncols = 0; ncols < LIST_DEFAULT; ncols++)
			cols[ncols] = &list_cols[ncols];
	}
	/* --stats with -o or --raw: the counters as columns (those not chosen). */
	stats_cols = stats && (spec || raw);
	for (int i = C_MAPPINGS; stats_cols && i < C_NCOLS; i++) {
		size_t k;

		for (k = 0; k < ncols && cols[k] != &list_cols[i]; k++)
			;
		if (k == ncols && ncols < TABLE_MAX_COLS)
			cols[ncols++] = &list_cols[i];
	}
	nl = nl_open_or_fail();
	if (!nl)
		return EX_ERR;
	if (json_out) {
		o = jobj();
		out.a = jarr();
		jput(o, "sessions", out.a);
	} else {
		out.t = table_new(raw, noheadings);
		for (size_t i = 0; i < ncols; i++)
			table_add_col(out.t, cols[i]);
	}
	c = cowmap_nl_sessions(nl, list_one, &out);
	if (out.t)
		table_print(out.t);	/* what was listed before an error too */
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
	table_free(out.t);
	cowmap_nl_close(nl);
	return c;
}
