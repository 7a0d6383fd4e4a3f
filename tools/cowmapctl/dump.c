// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl dump: a session's or a log file's journal.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowmapctl.h"

static const char help_dump[] =
"Usage: cowmapctl dump ID [--ioctl] [--json | --raw -o FILE] [--full] [-v]\n"
"       (ID or --session ID)\n"
"       cowmapctl dump -l LOGFILE [--json | --raw -o FILE] [--full] [-v]\n"
"\n"
"Print the journal of session ID (any session you can see, attached or\n"
"orphaned, fetched over netlink) or of a log file: a header line, then one\n"
"line per record\n"
"   seq=1 offset=15 length=3 old=\"llo\" new=\"xxx\"\n"
"with non-printable bytes as \\xNN, and a size record (version-2 logs) as\n"
"   seq=4 resize old_size=41 new_size=20 cut_crc=0x9ce3bf8c\n"
"Every record's CRC is checked; damaged\n"
"records are reported on stderr with their byte offset and skipped.\n"
"\n"
"  -l, --log LOGFILE   read LOGFILE instead of a session\n"
"      --ioctl         read the session with COWMAP_IOC_DUMP instead: adopts\n"
"                      the orphan ID for the dump, then orphans it again\n"
"  -j, --json          one JSON object: header, records (text and hex), errors\n"
"      --raw           write the journal in the binary format (needs -o)\n"
"  -o, --output FILE   where --raw writes (atomically: temp file + rename)\n"
"      --full          do not shorten data longer than 64 bytes\n"
"  -v, --verbose       also print each record's session, time, pid and uid\n"
"\n"
"Exit status: 0; 1 on an error, including a damaged record (a truncated last\n"
"record is only a warning).\n";

struct dump_out {
	int full, verbose;
	uint64_t hdr_session;
	int nrec;
	struct cowmap_log_writer *raw;
};

/*
 * The JSON document is streamed, a record at a time (a journal may hold
 * millions): {"header":{...},\n"records":[\n{...},\n...],\n"errors":[...]}
 */
static void print_info(const struct cowmap_log_info *h)
{
	char fid[2 * sizeof(h->file_id) + 1] = "";
	size_t i;

	/* An 80-byte header: the file's id (docs/journal-format.md). */
	for (i = 0; i < sizeof(h->file_id) && !h->file_id[i]; i++)
		;
	if (i < sizeof(h->file_id))
		for (i = 0; i < sizeof(h->file_id); i++)
			sprintf(fid + 2 * i, "%02x", h->file_id[i]);
	if (json_out) {
		struct json_object *o = jobj();

		jput_u64(o, "version", h->version);
		jput_id(o, "session_id", h->session_id);
		jput_u64(o, "dev_major", h->dev_major);
		jput_u64(o, "dev_minor", h->dev_minor);
		jput_id(o, "ino", h->ino);
		jput_id(o, "size_at_attach", h->size_at_attach);
		jput_id(o, "created_ns", h->created_ns);
		if (*fid)
			jput_str(o, "file_id", fid);
		printf("{\"header\":%s,\n\"records\":[", jtext(o));
		jfree(o);
		return;
	}
	printf("# log version=%u session=%" PRIu64 " device=%u:%u inode=%" PRIu64
	       " size_at_attach=%" PRIu64 " created=", h->version, h->session_id,
	       h->dev_major, h->dev_minor, h->ino, h->size_at_attach);
	put_time(stdout, h->created_ns);
	if (*fid)
		printf(" file_id=%s", fid);
	putchar('\n');
}

#define SHOW_MAX 64

static void print_rec(struct dump_out *o, const struct cowmap_rec *r)
{
	size_t show = r->length;

	if (json_out) {
		struct json_object *j = jobj();

		rec_json(j, r);
		jput_u64(j, "pid", r->pid);
		jput_u64(j, "uid", r->uid);
		jput_id(j, "log_offset", r->pos);
		if (!(r->flags & COWMAP_REC_SIZE)) {
			jput_bytes(j, "old", r->old_bytes, r->length);
			jput_bytes(j, "new", r->new_bytes, r->length);
		}
		printf("%s\n%s", o->nrec ? "," : "", jtext(j));
		jfree(j);
		o->nrec++;
		return;
	}
	if (!o->full && show > SHOW_MAX)
		show = SHOW_MAX;
	if (r->flags & COWMAP_REC_SIZE) {
		printf("seq=%" PRIu64 " resize old_size=%" PRIu64 " new_size=%" PRIu64,
		       r->seq, r->old_size, r->new_size);
		if (r->new_size < r->old_size)
			printf(" cut_crc=0x%08x", r->cut_crc);
	} else {
		printf("seq=%" PRIu64 " offset=%" PRIu64 " length=%u old=\"", r->seq,
		       r->offset, r->length);
		put_escaped(stdout, r->old_bytes, show);
		printf(show < r->length ? "\"... new=\"" : "\" new=\"");
		put_escaped(stdout, r->new_bytes, show);
		printf(show < r->length ? "\"..." : "\"");
	}
	if (o->verbose || r->session_id != o->hdr_session)
		printf(" session=%" PRIu64, r->session_id);
	if (o->verbose) {
		printf(" time=");
		put_time(stdout, r->time_ns);
		printf(" pid=%u uid=%u", r->pid, r->uid);
	}
	putchar('\n');
	o->nrec++;
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "raw", no_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' },
		{ "full", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "ioctl", no_argument, NULL, 'I' },
		{ "session", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *logpath = NULL, *out = NULL, *session = NULL;
	char label[64] = "";
	struct cowmap_nl *nl = NULL;
	void *nlbuf = NULL;
	size_t nllen = 0;
	int use_ioctl = 0;
	struct cowmap_dump_iter *it = NULL;
	struct cowmap_log *log = NULL;
	struct dump_out o = { 0 };
	struct json_object *jerrs = NULL, *jend;
	const struct cowmap_log_info *info;
	struct cowmap_log_error le;
	struct cowmap_rec rec;
	int raw = 0, c, fd = -1, ret = EX_OK, errors = 0;
	uint64_t id = 0;

	if (want_help(argc, argv, help_dump))
		return EX_OK;
	while ((c = getopt_long(argc, argv, ":l:jro:fv", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (once(&logpath, "-l", optarg))
				return EX_USAGE;
			break;
		case 'j': json_out = 1; break;
		case 'r': raw = 1; break;
		case 'o':
			if (once(&out, "-o", optarg))
				return EX_USAGE;
			break;
		case 'f': o.full = 1; break;
		case 'v': o.verbose = 1; break;
		case 'I': use_ioctl = 1; break;
		case 'S':
			if (once(&session, "--session", optarg))
				return EX_USAGE;
			break;
		default: return bad_option(c, argv);
		}
	}
	if (logpath && use_ioctl)
		return usage_err("--ioctl is for a session ID, not -l");
	if (logpath && (session || optind != argc))
		return usage_err("ID and -l exclude each other");
	if (!logpath && !session && optind == argc)
		return usage_err("one session ID (or -l LOGFILE) expected");
	if (!logpath && session_arg(session, argc, argv, 0, &id))
		return EX_USAGE;
	if (raw && json_out)
		return usage_err("--raw and --json exclude each other");
	if (raw != !!out)
		return usage_err(raw ? "--raw needs -o FILE" : "-o goes with --raw");

	if (!logpath && !use_ioctl) {
		/* Over netlink: no adoption, any visible session. */
		snprintf(label, sizeof(label), "session %" PRIu64, id);
		nl = nl_open_or_fail();
		if (!nl)
			return EX_ERR;
		c = cowmap_nl_log_get(nl, id, &nlbuf, &nllen);
		if (c) {
			ret = nl_fail(nl, label, c);
			cowmap_nl_close(nl);
			return ret;
		}
		cowmap_nl_close(nl);
	}
	if (logpath || nlbuf) {
		c = logpath ? cowmap_log_open(logpath, &log, &le) :
		    cowmap_log_open_mem(nlbuf, nllen, &log, &le);
		if (c) {
			if (le.kind == COWMAP_LOGERR_IO)
				err("%s: %s", logpath ? logpath : label, strerror(-c));
			else
				err("%s: offset %" PRIu64 ": %s", logpath ? logpath : label,
				    le.offset, cowmap_log_strerror(le.kind));
			free(nlbuf);
			return EX_ERR;
		}
		if (!logpath)
			logpath = label;
		info = cowmap_log_info(log);
	} else {
		fd = adopt_or_fail(id);
		if (fd < 0)
			return EX_ERR;
		c = cowmap_dump_begin(fd, 0, &it);
		if (c) {
			close(fd);
			return fail("dump", c);
		}
		info = cowmap_dump_info(it);
	}
	o.hdr_session = info->session_id;
	if (raw) {
		c = cowmap_log_writer_open(out, info, COWMAP_LOGW_ATOMIC, &o.raw);
		if (c) {
			err("%s: %s", out, strerror(-c));
			ret = EX_ERR;
			goto done;
		}
	} else {
		print_info(info);
		jerrs = json_out ? jarr() : NULL;
	}
	for (;;) {
		c = log ? cowmap_log_next(log, &rec, &le) : cowmap_dump_next(it, &rec, &le);
		if (c == 0)
			break;
		if (c == 1) {
			if (raw) {
				c = cowmap_log_append(o.raw, &rec);
				if (c) {
					err("%s: %s", out, strerror(-c));
					ret = EX_ERR;
					break;
				}
			} else {
				print_rec(&o, &rec);
			}
			continue;
		}
		if (le.kind == COWMAP_LOGERR_NONE || le.kind == COWMAP_LOGERR_IO) {
			err("%s: %s", logpath ? logpath : "dump", strerror(-c));
			ret = EX_ERR;
			break;
		}
		if (le.kind != COWMAP_LOGERR_TRUNCATED)
			errors++;
		fprintf(stderr, "cowmapctl: dump: %s: %s at offset %" PRIu64
			" (%" PRIu64 " bytes %s)\n",
			logpath ? logpath : "session", cowmap_log_strerror(le.kind),
			le.offset, le.resume - le.offset,
			le.kind == COWMAP_LOGERR_TRUNCATED ? "ignored" : "skipped");
		if (jerrs) {
			struct json_object *e = jobj();

			jput_id(e, "log_offset", le.offset);
			jput_id(e, "resume", le.resume);
			jput_str(e, "message", cowmap_log_strerror(le.kind));
			jput_bool(e, "fatal", le.kind != COWMAP_LOGERR_TRUNCATED);
			jappend(jerrs, e);
		}
		if (!log && le.resume == le.offset)
			break;	/* a dump that lost its record boundaries */
	}
	if (errors) {
		ret = EX_ERR;
		jerror("%s: %d damaged record%s skipped", logpath ? logpath : "session",
		       errors, errors == 1 ? "" : "s");
	}
	if (jerrs) {
		/* The end of the streamed document: errors, and the error if any. */
		jend = jobj();
		jput(jend, "errors", jerrs);
		if (ret)
			jput_error(jend, ret);
		printf("],\n%s\n", jtext(jend) + 1);	/* without its '{' */
		jfree(jend);
		jdone();
	}
done:
	if (o.raw) {
		c = cowmap_log_writer_close(o.raw, ret == EX_OK || errors);
		if (c) {
			err("%s: %s", out, strerror(-c));
			ret = EX_ERR;
		}
	}
	cowmap_log_close(log);
	free(nlbuf);
	cowmap_dump_end(it);
	if (fd >= 0)
		close(fd);
	return ret;
}
