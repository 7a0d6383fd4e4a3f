// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl merge: the offline merge (-s), and the options of both.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cowmapctl.h"

static const char help_merge[] =
"Usage: cowmapctl merge -s SOURCE -l LOG [-l LOG]... [--all DIR]\n"
"                       (--in-place | -o OUT | --dry-run) [--skip | --force]\n"
"                       [--salvage] [--force-identity] [--json] [-v]\n"
"       cowmapctl merge ID --into FILE [--skip | --force] [--dry-run]\n"
"                       [--fsync] [--trim] [--json]\n"
"\n"
"Offline (-s): apply journal records to SOURCE, no module needed. Records of\n"
"all logs apply in order of commit time, then session id, then sequence\n"
"number. A record applies if its range holds its old bytes, is already\n"
"applied if it holds its new bytes, and conflicts otherwise (also when it\n"
"runs past the end of the file).\n"
"\n"
"  -s, --source FILE      the file to merge into (or to copy, with -o)\n"
"  -l, --log LOG          a journal file or raw dump (repeatable)\n"
"  -a, --all DIR          every log in DIR whose header names SOURCE's device\n"
"                         and inode (other files are ignored)\n"
"  -i, --in-place         write into SOURCE (an intent file next to it makes an\n"
"                         interrupted merge complete when re-run)\n"
"  -o, --output OUT       write a merged copy of SOURCE to OUT atomically\n"
"  -n, --dry-run          report only, write nothing\n"
"      --skip             leave conflicting records out, apply the rest\n"
"      --force            write conflicting records' new bytes anyway\n"
"                         (default: all-or-nothing, any conflict = no write)\n"
"      --salvage          use the intact records of damaged logs\n"
"      --force-identity   accept logs of another device/inode (SOURCE was\n"
"                         copied or restored); the old-bytes check still holds\n"
"  -j, --json             print events and summary as JSON\n"
"  -v, --verbose          print every record, not just conflicts\n"
"\n"
"Kernel (ID): adopt orphaned session ID and apply its journal to FILE\n"
"with COWMAP_IOC_MERGE (FILE opened read-write; usually the session's own\n"
"file), in sequence order, under FILE's inode lock. The session is closed\n"
"again afterwards: it stays an orphan while it holds records.\n"
"\n"
"  ID, --session ID       the orphaned session\n"
"      --into FILE        the file to write\n"
"      --skip, --force, --dry-run, --json   as above\n"
"      --fsync            fsync FILE after writing (offline merges always do)\n"
"      --trim             then drop the merged records; a session left with\n"
"                         none is freed\n"
"\n"
"Exit status: 0 everything applied or already applied (or --force); 3\n"
"conflicts (nothing written with all-or-nothing, the rest written with\n"
"--skip); 1 error (I/O, no such session, damaged or foreign log); 2 usage\n"
"error.\n";

struct merge_out {
	int verbose, nev;
	int progress;		/* stderr is a terminal: show progress */
	int shown;		/* a progress line is on the terminal */
	uint64_t records;	/* record events so far */
	uint64_t last_ns;	/* when the progress line was last written */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Progress on stderr, at most 5 times a second (@force: now). */
static void progress(struct merge_out *o, int force, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void progress(struct merge_out *o, int force, const char *fmt, ...)
{
	uint64_t now;
	va_list ap;

	if (!o->progress)
		return;
	now = mono_ns();
	if (!force && now - o->last_ns < 200000000ULL)
		return;
	o->last_ns = now;
	fputs("\rcowmapctl: merge: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr);	/* the rest of the line */
	o->shown = 1;
}

/* Remove the progress line before other output. */
static void progress_clear(struct merge_out *o)
{
	if (o->shown)
		fputs("\r\033[K", stderr);
	o->shown = 0;
}

/* The write phase (cowmap_merger_set_stage_cb()). */
static void merge_stage(void *arg, enum cowmap_merger_stage stage, uint64_t n)
{
	struct merge_out *o = arg;

	switch (stage) {
	case COWMAP_MSTAGE_INTENT_SYNCED:
		progress(o, 1, "%" PRIu64 " records checked; writing", o->records);
		break;
	case COWMAP_MSTAGE_RUN_WRITTEN:
		progress(o, 0, "writing: %" PRIu64 " runs written", n + 1);
		break;
	case COWMAP_MSTAGE_TEMP_SYNCED:
		progress(o, 1, "copy written and synced; renaming");
		break;
	case COWMAP_MSTAGE_DONE:
		progress_clear(o);
		break;
	}
}

#define WIN 32

/* Expected vs found, a window of WIN bytes around the first difference. */
static void show_diff(const uint8_t *exp, size_t elen, const uint8_t *found, size_t flen)
{
	size_t first = 0, start, n;

	while (first < elen && first < flen && exp[first] == found[first])
		first++;
	start = first > 8 ? first - 8 : 0;
	n = elen - start < WIN ? elen - start : WIN;
	printf("    first difference at +%zu\n    expected \"%s", first,
	       start ? "..." : "");
	put_escaped(stdout, exp + start, n);
	printf("%s\" (", start + n < elen ? "..." : "");
	put_hex(stdout, exp + start, n);
	printf("%s)\n", start + n < elen ? "..." : "");
	if (start >= flen) {
		printf("    found    nothing (%zu of %zu bytes exist)\n", flen, elen);
		return;
	}
	n = flen - start < WIN ? flen - start : WIN;
	printf("    found    \"%s", start ? "..." : "");
	put_escaped(stdout, found + start, n);
	printf("%s\" (", start + n < flen ? "..." : "");
	put_hex(stdout, found + start, n);
	printf("%s)%s\n", start + n < flen ? "..." : "",
	       flen < elen ? " [range runs past the end of the file]" : "");
}

static const char *ev_name(enum cowmap_merger_event_type t)
{
	switch (t) {
	case COWMAP_MEV_APPLY: return "applied";
	case COWMAP_MEV_ALREADY: return "already";
	case COWMAP_MEV_CONFLICT: return "conflict";
	case COWMAP_MEV_FORCED: return "forced";
	case COWMAP_MEV_LOG_ERROR: return "log-error";
	case COWMAP_MEV_LOG_WARNING: return "log-warning";
	case COWMAP_MEV_LOG_SKIPPED: return "log-skipped";
	case COWMAP_MEV_RECOVERED: return "recovered";
	case COWMAP_MEV_NOTE: return "note";
	}
	return "?";
}

static void merge_event(void *arg, const struct cowmap_merger_event *ev)
{
	struct merge_out *o = arg;
	const struct cowmap_rec *r = ev->rec;

	if (r && !(++o->records & 1023))
		progress(o, 0, "%" PRIu64 " records checked", o->records);
	if (json_out) {
		/* Streamed: {"events":[\n{...},\n...],\n"summary":{...}} */
		struct json_object *j = jobj();

		jput_str(j, "event", ev_name(ev->type));
		jput_str(j, "log", ev->log);
		if (r)
			rec_json(j, r);
		if ((ev->type == COWMAP_MEV_CONFLICT || ev->type == COWMAP_MEV_FORCED) &&
		    !(r->flags & COWMAP_REC_SIZE)) {
			jput_bytes(j, "expected", r->old_bytes, r->length);
			jput_bytes(j, "found", ev->found, ev->found_len);
		}
		if (ev->error) {
			jput_id(j, "log_offset", ev->error->offset);
			jput_id(j, "resume", ev->error->resume);
		}
		jput_str(j, "message", ev->message);
		if (ev->type == COWMAP_MEV_LOG_ERROR)
			jerror("%s: %s", ev->log ? ev->log : "", ev->message ? ev->message : "");
		printf("%s\n%s", o->nev++ ? "," : "", jtext(j));
		jfree(j);
		return;
	}
	if ((ev->type != COWMAP_MEV_APPLY && ev->type != COWMAP_MEV_ALREADY &&
	     ev->type != COWMAP_MEV_LOG_SKIPPED) || o->verbose)
		progress_clear(o);
	switch (ev->type) {
	case COWMAP_MEV_APPLY:
	case COWMAP_MEV_ALREADY:
		if (!o->verbose)
			return;
		/* fall through */
	case COWMAP_MEV_CONFLICT:
	case COWMAP_MEV_FORCED:
		if (r->flags & COWMAP_REC_SIZE) {
			printf("%-9s session=%" PRIu64 " seq=%" PRIu64 " resize old_size=%"
			       PRIu64 " new_size=%" PRIu64 " log=%s\n", ev_name(ev->type),
			       r->session_id, r->seq, r->old_size, r->new_size, ev->log);
			if (ev->message)
				printf("    %s\n", ev->message);
			return;
		}
		printf("%-9s session=%" PRIu64 " seq=%" PRIu64 " offset=%" PRIu64
		       " length=%u log=%s\n", ev_name(ev->type), r->session_id,
		       r->seq, r->offset, r->length, ev->log);
		if (ev->type == COWMAP_MEV_CONFLICT || ev->type == COWMAP_MEV_FORCED)
			show_diff(r->old_bytes, r->length, ev->found, ev->found_len);
		return;
	case COWMAP_MEV_LOG_SKIPPED:
		if (o->verbose)
			printf("skipped   %s: %s\n", ev->log, ev->message);
		return;
	case COWMAP_MEV_LOG_ERROR:
	case COWMAP_MEV_LOG_WARNING:
		fprintf(stderr, "cowmapctl: merge: %s%s: %s\n",
			ev->type == COWMAP_MEV_LOG_WARNING ? "warning: " : "",
			ev->log ? ev->log : "", ev->message ? ev->message : "");
		return;
	case COWMAP_MEV_RECOVERED:
	case COWMAP_MEV_NOTE:
		fprintf(stderr, "cowmapctl: merge: %s\n", ev->message);
		return;
	}
}

int cmd_merge(int argc, char **argv)
{
	enum { O_SKIP = 256, O_FORCE, O_SALVAGE, O_IDENT, O_SESSION, O_INTO, OPT_FSYNC,
	       OPT_TRIM };
	static const struct option opts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "log", required_argument, NULL, 'l' },
		{ "all", required_argument, NULL, 'a' },
		{ "in-place", no_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "skip", no_argument, NULL, O_SKIP },
		{ "force", no_argument, NULL, O_FORCE },
		{ "salvage", no_argument, NULL, O_SALVAGE },
		{ "force-identity", no_argument, NULL, O_IDENT },
		{ "session", required_argument, NULL, O_SESSION },
		{ "into", required_argument, NULL, O_INTO },
		{ "fsync", no_argument, NULL, OPT_FSYNC },
		{ "trim", no_argument, NULL, OPT_TRIM },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *source = NULL, *out = NULL, **logs = NULL, **dirs = NULL;
	const char *session = NULL, *into = NULL;
	size_t nlogs = 0, ndirs = 0;
	int in_place = 0, c, ret, do_fsync = 0, trim = 0;
	unsigned int flags = 0;
	enum cowmap_merger_policy policy = COWMAP_POLICY_ALL_OR_NOTHING;
	int skip = 0, force = 0;
	struct merge_out o = { 0 };
	struct cowmap_merger_stats st;
	struct cowmap_merger *m;
	const char *pname;

	if (want_help(argc, argv, help_merge))
		return EX_OK;
	logs = calloc(argc, sizeof(*logs));
	dirs = calloc(argc, sizeof(*dirs));
	if (!logs || !dirs)
		return EX_ERR;
	while ((c = getopt_long(argc, argv, ":s:l:a:io:njv", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (once(&source, "-s", optarg))
				return EX_USAGE;
			break;
		case 'l': logs[nlogs++] = optarg; break;
		case 'a': dirs[ndirs++] = optarg; break;
		case 'i': in_place = 1; break;
		case 'o':
			if (once(&out, "-o", optarg))
				return EX_USAGE;
			break;
		case 'n': flags |= COWMAP_MERGER_DRY_RUN; break;
		case O_SKIP: skip = 1; break;
		case O_FORCE: force = 1; break;
		case O_SALVAGE: flags |= COWMAP_MERGER_SALVAGE; break;
		case O_IDENT: flags |= COWMAP_MERGER_ANY_IDENTITY; break;
		case O_SESSION:
			if (once(&session, "--session", optarg))
				return EX_USAGE;
			break;
		case O_INTO:
			if (once(&into, "--into", optarg))
				return EX_USAGE;
			break;
		case OPT_FSYNC: do_fsync = 1; break;
		case OPT_TRIM: trim = 1; break;
		case 'j': json_out = 1; break;
		case 'v': o.verbose = 1; break;
		default: return bad_option(c, argv);
		}
	}
	/* A kernel merge's session: "merge ID --into FILE" or --session ID. */
	if (optind != argc && (source || nlogs || ndirs || in_place || out))
		return usage_err("unexpected argument '%s'", argv[optind]);
	if (skip && force)
		return usage_err("--skip and --force exclude each other");
	if (session || into || optind != argc) {
		struct kmerge km = { .into = into, .trim = trim,
				     .skip = skip, .force = force };

		if (!into)
			return usage_err(session ? "--session needs --into FILE" :
					 "ID needs --into FILE");
		if (!session && optind == argc)
			return usage_err("--into needs --session ID");
		if (source || nlogs || ndirs || in_place || out ||
		    (flags & (COWMAP_MERGER_SALVAGE | COWMAP_MERGER_ANY_IDENTITY)))
			return usage_err("--session/--into (kernel merge) and -s/-l/--all/-i/-o/--salvage/--force-identity (offline merge) exclude each other");
		if (session_arg(session, argc, argv, 0, &km.id))
			return EX_USAGE;
		km.flags = (skip ? COWMAP_MERGE_SKIP : 0) | (force ? COWMAP_MERGE_FORCE : 0) |
			   (flags & COWMAP_MERGER_DRY_RUN ? COWMAP_MERGE_DRY_RUN : 0) |
			   (do_fsync ? COWMAP_MERGE_FSYNC : 0);
		if (trim && (flags & COWMAP_MERGER_DRY_RUN))
			return usage_err("--trim makes no sense with --dry-run");
		free(logs);
		free(dirs);
		return kernel_merge(&km);
	}
	if (trim)
		return usage_err("--trim is for a kernel merge (--session ID --into FILE)");
	if (!source)
		return usage_err("-s SOURCE missing");
	if (!nlogs && !ndirs)
		return usage_err("no log: give -l LOG or --all DIR");
	if (in_place && out)
		return usage_err("--in-place and -o exclude each other");
	if (!in_place && !out && !(flags & COWMAP_MERGER_DRY_RUN))
		return usage_err("say where to write: --in-place, -o OUT, or --dry-run");
	policy = skip ? COWMAP_POLICY_SKIP : force ? COWMAP_POLICY_FORCE :
		 COWMAP_POLICY_ALL_OR_NOTHING;
	pname = skip ? "skip" : force ? "force" : "all-or-nothing";

	/* A long merge shows where it is when someone watches stderr. */
	o.progress = isatty(STDERR_FILENO);
	if (cowmap_merger_new(merge_event, &o, &m))
		return EX_ERR;
	cowmap_merger_set_stage_cb(m, merge_stage, &o);
	if (json_out)
		printf("{\"events\":[");
	ret = EX_OK;
	for (size_t i = 0; i < nlogs; i++) {
		c = cowmap_merger_add_log(m, logs[i]);
		/* Unreadable logs stop here; damaged ones are judged by the run. */
		if (c < 0 && c != -EBADMSG && c != -EPROTONOSUPPORT) {
			ret = EX_ERR;
			break;
		}
	}
	for (size_t i = 0; ret == EX_OK && i < ndirs; i++) {
		c = cowmap_merger_add_dir(m, dirs[i], source,
					 !!(flags & COWMAP_MERGER_ANY_IDENTITY));
		if (c < 0) {
			err("%s: %s", dirs[i], strerror(-c));
			ret = EX_ERR;
		}
	}
	memset(&st, 0, sizeof(st));
	if (ret == EX_OK && access(source, F_OK)) {
		err("%s: %s", source, strerror(errno));
		ret = EX_ERR;
	}
	if (ret == EX_OK) {
		progress(&o, 1, "%s: checking", source);
		c = cowmap_merger_run(m, source, out, policy, flags, &st);
		progress_clear(&o);
		if (c < 0) {
			const char *hint = "";

			if (c == -EBADMSG)
				hint = ": damaged log (--salvage uses its intact records)";
			else if (c == -EXDEV)
				hint = ": a log of another file (--force-identity to merge anyway)";
			else if (c == -EPROTONOSUPPORT)
				hint = ": a log version this cowmapctl does not know";
			if (c == -EBADMSG || c == -EXDEV || c == -EPROTONOSUPPORT)
				err("refused%s; nothing written", hint);
			else
				err("merge of %s%s%s: %s; nothing written", source,
				    out ? " into " : "", out ? out : "", strerror(-c));
			ret = EX_ERR;
		} else if (c > 0) {
			ret = EX_CONFLICT;
		}
	}
	if (json_out) {
		struct json_object *s = jobj();

		jput_str(s, "source", source);
		jput_str(s, "output", out ? out : in_place ? source : NULL);
		jput_str(s, "policy", pname);
		jput_bool(s, "dry_run", flags & COWMAP_MERGER_DRY_RUN);
		jput_u64(s, "logs", st.logs);
		jput_u64(s, "records", st.records);
		jput_u64(s, "applied", st.applied);
		jput_u64(s, "already", st.already);
		jput_u64(s, "conflicts", st.conflicts);
		jput_u64(s, "forced", st.forced);
		jput_u64(s, "log_errors", st.log_errors);
		jput_bool(s, "written", st.written);
		jput_u64(s, "bytes_written", st.bytes_written);
		jput_bool(s, "recovered", st.recovered);
		jput_int(s, "exit", ret);
		if (ret == EX_ERR)
			jput_error(s, ret);
		printf("],\n\"summary\":%s}\n", jtext(s));
		jfree(s);
		jdone();
	} else if (ret != EX_ERR) {
		printf("merge: %" PRIu64 " log%s, %" PRIu64 " record%s: %" PRIu64
		       " applied, %" PRIu64 " already applied, %" PRIu64 " conflict%s",
		       st.logs, st.logs == 1 ? "" : "s", st.records,
		       st.records == 1 ? "" : "s", st.applied, st.already,
		       st.conflicts, st.conflicts == 1 ? "" : "s");
		if (st.forced)
			printf(" (%" PRIu64 " forced)", st.forced);
		if (flags & COWMAP_MERGER_DRY_RUN)
			printf("; dry run, nothing written\n");
		else if (st.written && out)
			printf("; %s written\n", out);
		else if (st.written)
			printf("; %" PRIu64 " bytes written to %s\n", st.bytes_written, source);
		else if (st.conflicts && policy == COWMAP_POLICY_ALL_OR_NOTHING)
			printf("; nothing written (all-or-nothing)\n");
		else
			printf("; nothing to write\n");
	}
	cowmap_merger_free(m);
	free(logs);
	free(dirs);
	return ret;
}
