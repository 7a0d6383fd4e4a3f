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
"       cowmapctl dump -l LOGFILE [--json | --raw -o FILE] [--full] [-v]\n"
"\n"
"Print the journal of session ID (any session you can see, attached or\n"
"orphaned, fetched over netlink) or of a log file: a header line, then one\n"
"line per record\n"
"   seq=1 offset=15 length=3 old=\"llo\" new=\"xxx\"\n"
"with non-printable bytes as \\xNN. Every record's CRC is checked; damaged\n"
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
	int json, full, verbose;
	uint64_t hdr_session;
	int nrec;
	struct cowmap_log_writer *raw;
};

static void print_info(const struct cowmap_log_info *h, int json)
{
	if (json) {
		printf("{\"header\":{\"version\":%u,\"session_id\":%" PRIu64
		       ",\"dev_major\":%u,\"dev_minor\":%u,\"ino\":%" PRIu64
		       ",\"size_at_attach\":%" PRIu64 ",\"created_ns\":%" PRIu64 "},\n"
		       "\"records\":[", h->version, h->session_id, h->dev_major,
		       h->dev_minor, h->ino, h->size_at_attach, h->created_ns);
		return;
	}
	printf("# log version=%u session=%" PRIu64 " device=%u:%u inode=%" PRIu64
	       " size_at_attach=%" PRIu64 " created=", h->version, h->session_id,
	       h->dev_major, h->dev_minor, h->ino, h->size_at_attach);
	put_time(stdout, h->created_ns);
	putchar('\n');
}

#define SHOW_MAX 64

static void print_rec(struct dump_out *o, const struct cowmap_rec *r)
{
	size_t show = r->length;

	if (o->json) {
		printf("%s\n{\"seq\":%" PRIu64 ",\"session_id\":%" PRIu64
		       ",\"offset\":%" PRIu64 ",\"length\":%u,\"time_ns\":%" PRIu64
		       ",\"pid\":%u,\"uid\":%u,\"log_offset\":%" PRIu64 ",\"old\":",
		       o->nrec ? "," : "", r->seq, r->session_id, r->offset,
		       r->length, r->time_ns, r->pid, r->uid, r->pos);
		put_json_bytes(stdout, r->old_bytes, r->length);
		printf(",\"new\":");
		put_json_bytes(stdout, r->new_bytes, r->length);
		printf(",\"old_hex\":\"");
		put_hex(stdout, r->old_bytes, r->length);
		printf("\",\"new_hex\":\"");
		put_hex(stdout, r->new_bytes, r->length);
		printf("\"}");
		o->nrec++;
		return;
	}
	if (!o->full && show > SHOW_MAX)
		show = SHOW_MAX;
	printf("seq=%" PRIu64 " offset=%" PRIu64 " length=%u old=\"", r->seq,
	       r->offset, r->length);
	put_escaped(stdout, r->old_bytes, show);
	printf(show < r->length ? "\"... new=\"" : "\" new=\"");
	put_escaped(stdout, r->new_bytes, show);
	printf(show < r->length ? "\"..." : "\"");
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
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *logpath = NULL, *out = NULL;
	char label[64] = "";
	struct cowmap_nl *nl = NULL;
	void *nlbuf = NULL;
	size_t nllen = 0;
	int use_ioctl = 0;
	struct cowmap_dump_iter *it = NULL;
	struct cowmap_log *log = NULL;
	struct dump_out o = { 0 };
	const struct cowmap_log_info *info;
	struct cowmap_log_error le;
	struct cowmap_rec rec;
	int raw = 0, c, fd = -1, ret = EX_OK, errors = 0, nerr = 0;
	uint64_t id = 0;
	char errs[8192] = "";
	size_t errlen = 0;

	if (want_help(argc, argv, help_dump))
		return EX_OK;
	while ((c = getopt_long(argc, argv, "l:jro:fv", opts, NULL)) != -1) {
		switch (c) {
		case 'l': logpath = optarg; break;
		case 'j': o.json = 1; break;
		case 'r': raw = 1; break;
		case 'o': out = optarg; break;
		case 'f': o.full = 1; break;
		case 'v': o.verbose = 1; break;
		case 'I': use_ioctl = 1; break;
		default: return usage_err("bad option");
		}
	}
	if (logpath && use_ioctl)
		return usage_err("--ioctl is for a session ID, not -l");
	if (logpath ? optind != argc : optind != argc - 1)
		return usage_err(logpath ? "ID and -l exclude each other" :
				 "one session ID (or -l LOGFILE) expected");
	if (!logpath && parse_id(argv[optind], &id))
		return EX_USAGE;
	if (raw && o.json)
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
		print_info(info, o.json);
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
		if (errlen < sizeof(errs) - 200)
			errlen += snprintf(errs + errlen, sizeof(errs) - errlen,
					   "%s{\"offset\":%" PRIu64 ",\"resume\":%" PRIu64
					   ",\"error\":\"%s\",\"fatal\":%s}", nerr++ ? "," : "",
					   le.offset, le.resume, cowmap_log_strerror(le.kind),
					   le.kind == COWMAP_LOGERR_TRUNCATED ? "false" : "true");
		if (!log && le.resume == le.offset)
			break;	/* a dump that lost its record boundaries */
	}
	if (errors)
		ret = EX_ERR;
	if (o.json)
		printf("],\n\"errors\":[%s]}\n", errs);
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
