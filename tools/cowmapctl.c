// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl: the command-line side of cowmap. See docs/cowmapctl.md.
 *
 * Exit codes: 0 success, 1 error, 2 usage, 3 conflicts (merge).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libcowmap.h"

#define EX_OK		0
#define EX_ERR		1
#define EX_USAGE	2
#define EX_CONFLICT	3

static const char *cmd = "cowmapctl";

static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cowmapctl: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cowmapctl: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'cowmapctl %s --help'.\n", cmd);
	return EX_USAGE;
}

/* --- formatting ----------------------------------------------------------- */

/* Print @len bytes as a C-like string body: \", \\, \xNN for the rest. */
static void put_escaped(FILE *f, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
}

static void put_hex(FILE *f, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", p[i]);
}

/* A JSON string of raw bytes: bytes outside printable ASCII as \u00XX. */
static void put_json_bytes(FILE *f, const uint8_t *p, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], f);
		else
			fprintf(f, "\\u%04x", p[i]);
	}
	fputc('"', f);
}

static void put_json_str(FILE *f, const char *s)
{
	if (!s)
		fputs("null", f);
	else
		put_json_bytes(f, (const uint8_t *)s, strlen(s));
}

static void put_time(FILE *f, uint64_t ns)
{
	time_t t = ns / 1000000000ULL;
	struct tm tm;
	char buf[64];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "%s.%09" PRIu64 "Z", buf, (uint64_t)(ns % 1000000000ULL));
}

/* Unescape --write TEXT: \\ \" \n \t \r \0 \xNN. Returns length or -1. */
static ssize_t unescape(const char *s, uint8_t *out)
{
	size_t n = 0;

	while (*s) {
		if (*s != '\\') {
			out[n++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case '\\': out[n++] = '\\'; break;
		case '"': out[n++] = '"'; break;
		case 'n': out[n++] = '\n'; break;
		case 't': out[n++] = '\t'; break;
		case 'r': out[n++] = '\r'; break;
		case '0': out[n++] = 0; break;
		case 'x': {
			char hex[3] = { 0 };
			char *end;

			if (!s[1] || !s[2])
				return -1;
			hex[0] = s[1];
			hex[1] = s[2];
			out[n++] = strtoul(hex, &end, 16);
			if (*end)
				return -1;
			s += 2;
			break;
		}
		default:
			return -1;
		}
		s++;
	}
	return n;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || *end ? -1 : 0;
}

static int parse_id(const char *s, uint64_t *id)
{
	if (parse_u64(s, id) || !*id)
		return usage_err("bad session id '%s'", s);
	return 0;
}

/* Errno of a session operation, with a hint where there is one. */
static int fail(const char *what, int e)
{
	const char *hint = "";

	if (e == -ENOENT && !strcmp(what, "open " COWMAP_DEVICE_PATH))
		hint = " (is the cowmap module loaded?)";
	else if (e == -ENOTTY)
		hint = " (the loaded cowmap module does not support this)";
	else if (e == -ENOENT && strstr(what, "adopt"))
		hint = " (no orphaned session with that id)";
	err("%s: %s%s", what, strerror(-e), hint);
	return EX_ERR;
}

/* --- help ------------------------------------------------------------------- */

static const char help_main[] =
"Usage: cowmapctl [--version] [--help] COMMAND [ARGS]\n"
"\n"
"Commands:\n"
"  map FILE [--write OFFSET:TEXT]... [--log LOGFILE] [--keep]\n"
"                      attach a session, write through the mapping, commit\n"
"  dump ID | -l LOGFILE [--json | --raw -o FILE]\n"
"                      print a session's or a log file's journal\n"
"  merge -s SOURCE -l LOG... [--all DIR] [--in-place | -o OUT] [--skip | --force]\n"
"        [--dry-run]   apply journals to a file (offline, no module needed)\n"
"  status ID           status of an orphaned session\n"
"  discard ID          drop an orphaned session and its journal\n"
"  list, monitor       not yet available (need the netlink interface)\n"
"\n"
"'cowmapctl COMMAND --help' describes a command. Exit status: 0 success,\n"
"1 error, 2 usage error, 3 merge conflicts. See docs/cowmapctl.md.\n";

static const char help_map[] =
"Usage: cowmapctl map FILE [--write OFFSET:TEXT]... [--log LOGFILE] [--keep] [--json]\n"
"\n"
"Attach a new cowmap session to FILE, map it, write each TEXT at OFFSET\n"
"through the mapping (FILE itself is never written), and commit. TEXT may\n"
"use \\\\ \\\" \\n \\t \\r \\0 and \\xNN escapes; OFFSET is decimal or 0x hex and\n"
"the write must end inside the file.\n"
"\n"
"  -w, --write OFFSET:TEXT  write TEXT at OFFSET (repeatable, in order)\n"
"  -L, --log LOGFILE        append the journal to LOGFILE (created if missing,\n"
"                           mode 0600); the commit is durable (fsync)\n"
"  -k, --keep               keep the session as an orphan and print its id\n"
"                           (only the id, for scripts); without it the session\n"
"                           is discarded before exit\n"
"  -j, --json               print the result as JSON\n"
"\n"
"Exit status: 0, or 1 on an error (module missing, write past the end, ...).\n";

static const char help_dump[] =
"Usage: cowmapctl dump ID [--json | --raw -o FILE] [--full] [-v]\n"
"       cowmapctl dump -l LOGFILE [--json | --raw -o FILE] [--full] [-v]\n"
"\n"
"Print the journal of orphaned session ID (adopted for the dump, then\n"
"orphaned again) or of a log file: a header line, then one line per record\n"
"   seq=1 offset=15 length=3 old=\"llo\" new=\"xxx\"\n"
"with non-printable bytes as \\xNN. Every record's CRC is checked; damaged\n"
"records are reported on stderr with their byte offset and skipped.\n"
"\n"
"  -l, --log LOGFILE   read LOGFILE instead of a session\n"
"  -j, --json          one JSON object: header, records (text and hex), errors\n"
"      --raw           write the journal in the binary format (needs -o)\n"
"  -o, --output FILE   where --raw writes (atomically: temp file + rename)\n"
"      --full          do not shorten data longer than 64 bytes\n"
"  -v, --verbose       also print each record's session, time, pid and uid\n"
"\n"
"Exit status: 0; 1 on an error, including a damaged record (a truncated last\n"
"record is only a warning).\n";

static const char help_merge[] =
"Usage: cowmapctl merge -s SOURCE -l LOG [-l LOG]... [--all DIR]\n"
"                       (--in-place | -o OUT | --dry-run) [--skip | --force]\n"
"                       [--salvage] [--force-identity] [--json] [-v]\n"
"       cowmapctl merge --session ID --into FILE   (not yet available)\n"
"\n"
"Apply journal records to SOURCE, offline. Records of all logs apply in order\n"
"of commit time, then session id, then sequence number. A record applies if\n"
"its range holds its old bytes, is already applied if it holds its new bytes,\n"
"and conflicts otherwise (also when it runs past the end of the file).\n"
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
"Exit status: 0 everything applied or already applied; 3 conflicts (nothing\n"
"written with all-or-nothing, the rest written with --skip); 1 error (I/O,\n"
"damaged or foreign log); 2 usage error.\n";

static const char help_status[] =
"Usage: cowmapctl status ID [--json]\n"
"\n"
"Adopt orphaned session ID, print its status, and close it (it stays an\n"
"orphan while it has records or written pages). The state shown is\n"
"\"orphaned\": the one it has before and after this command.\n"
"\n"
"  -j, --json   one JSON object\n";

static const char help_discard[] =
"Usage: cowmapctl discard ID\n"
"\n"
"Adopt orphaned session ID, drop its journal and written pages, and close it\n"
"(it is then freed).\n";

static const char help_list[] =
"Usage: cowmapctl list [--json]\n"
"\n"
"Not yet available: listing sessions needs the cowmap generic netlink\n"
"family (issue 6). Exits with status 1.\n";

static const char help_monitor[] =
"Usage: cowmapctl monitor [--json]\n"
"\n"
"Not yet available: events need the cowmap generic netlink family\n"
"(issue 6). Exits with status 1.\n";

static int want_help(int argc, char **argv, const char *help)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return 1;
		}
	}
	return 0;
}

/* --- map ---------------------------------------------------------------------- */

struct wr {
	uint64_t off;
	uint8_t *data;
	size_t len;
};

static int cmd_map(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "write", required_argument, NULL, 'w' },
		{ "log", required_argument, NULL, 'L' },
		{ "keep", no_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct wr *w = NULL;
	size_t nw = 0;
	const char *file, *logpath = NULL;
	int keep = 0, json = 0, c, fd = -1, jfd = -1, ffd, ret = EX_ERR;
	struct cowmap_commit cm;
	uint64_t id = 0;
	struct stat st;
	void *map = NULL;

	if (want_help(argc, argv, help_map))
		return EX_OK;
	while ((c = getopt_long(argc, argv, "w:L:kj", opts, NULL)) != -1) {
		switch (c) {
		case 'w': {
			char *colon = strchr(optarg, ':');
			struct wr *v;
			ssize_t n;

			if (!colon)
				return usage_err("--write wants OFFSET:TEXT, not '%s'", optarg);
			*colon = 0;
			v = realloc(w, (nw + 1) * sizeof(*w));
			if (!v)
				return EX_ERR;
			w = v;
			if (parse_u64(optarg, &w[nw].off))
				return usage_err("bad offset '%s'", optarg);
			w[nw].data = malloc(strlen(colon + 1) + 1);
			n = w[nw].data ? unescape(colon + 1, w[nw].data) : -1;
			if (n < 0)
				return usage_err("bad escape in '%s'", colon + 1);
			if (n == 0)
				return usage_err("empty TEXT at offset %s", optarg);
			w[nw++].len = n;
			break;
		}
		case 'L': logpath = optarg; break;
		case 'k': keep = 1; break;
		case 'j': json = 1; break;
		default: return usage_err("bad option");
		}
	}
	if (optind != argc - 1)
		return usage_err(optind < argc ? "one FILE only" : "FILE missing");
	file = argv[optind];

	ffd = open(file, O_RDONLY | O_CLOEXEC);
	if (ffd < 0 || fstat(ffd, &st)) {
		err("%s: %s", file, strerror(errno));
		return EX_ERR;
	}
	for (size_t i = 0; i < nw; i++) {
		if (w[i].off > (uint64_t)st.st_size || w[i].len > st.st_size - w[i].off) {
			err("--write at %" PRIu64 " (%zu bytes) ends past the end of %s (%lld bytes)",
			    w[i].off, w[i].len, file, (long long)st.st_size);
			return EX_ERR;
		}
	}
	if (logpath) {
		jfd = open(logpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (jfd < 0) {
			err("%s: %s", logpath, strerror(errno));
			return EX_ERR;
		}
	}
	fd = cowmap_open(NULL);
	if (fd < 0)
		return fail("open " COWMAP_DEVICE_PATH, fd);
	c = cowmap_attach(fd, ffd, jfd, &id);
	close(ffd);
	if (jfd >= 0)
		close(jfd);
	if (c) {
		if (c == -EINVAL && logpath)
			err("attach: %s (is %s a log of another file?)", strerror(-c), logpath);
		else
			fail("attach", c);
		goto out;
	}
	if (nw && st.st_size) {
		c = cowmap_map(fd, st.st_size, 0, PROT_READ | PROT_WRITE, &map);
		if (c) {
			fail("mmap", c);
			goto discard;
		}
		for (size_t i = 0; i < nw; i++)
			memcpy((uint8_t *)map + w[i].off, w[i].data, w[i].len);
		cowmap_unmap(map, st.st_size);
	}
	c = cowmap_commit(fd, logpath != NULL, &cm);
	if (c < 0) {
		fail("commit", c);
		goto discard;
	}
	if (keep && !cm.records) {
		err("nothing was committed (no byte changed): no session to keep");
		goto discard;
	}
	if (!keep) {
		c = cowmap_discard(fd);
		if (c) {
			fail("discard", c);
			goto out;
		}
	}
	close(fd);
	fd = -1;
	if (keep) {
		/* Check that the orphan limits let it stay. */
		int afd = cowmap_session_adopt(id);

		if (afd < 0) {
			err("session %" PRIu64 " was not kept (%s): orphan limits reached?",
			    id, strerror(-afd));
			goto out;
		}
		close(afd);
	}
	if (json) {
		printf("{\"session_id\":%" PRIu64 ",\"records\":%u,\"bytes\":%llu,"
		       "\"first_seq\":%llu,\"kept\":%s,\"log\":", id, cm.records,
		       (unsigned long long)cm.bytes, (unsigned long long)cm.first_seq,
		       keep ? "true" : "false");
		put_json_str(stdout, logpath);
		printf("}\n");
	} else if (keep) {
		printf("%" PRIu64 "\n", id);
	} else {
		printf("session %" PRIu64 ": %u record%s (%llu bytes) committed%s%s; session discarded\n",
		       id, cm.records, cm.records == 1 ? "" : "s",
		       (unsigned long long)cm.bytes, logpath ? " to " : "",
		       logpath ? logpath : "");
	}
	ret = EX_OK;
	goto out;
discard:
	cowmap_discard(fd);
out:
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < nw; i++)
		free(w[i].data);
	free(w);
	return ret;
}

/* --- dump ----------------------------------------------------------------------- */

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

static int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "raw", no_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' },
		{ "full", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *logpath = NULL, *out = NULL;
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
		default: return usage_err("bad option");
		}
	}
	if (logpath ? optind != argc : optind != argc - 1)
		return usage_err(logpath ? "ID and -l exclude each other" :
				 "one session ID (or -l LOGFILE) expected");
	if (!logpath && parse_id(argv[optind], &id))
		return EX_USAGE;
	if (raw && o.json)
		return usage_err("--raw and --json exclude each other");
	if (raw != !!out)
		return usage_err(raw ? "--raw needs -o FILE" : "-o goes with --raw");

	if (logpath) {
		c = cowmap_log_open(logpath, &log, &le);
		if (c) {
			if (le.kind == COWMAP_LOGERR_IO)
				err("%s: %s", logpath, strerror(-c));
			else
				err("%s: offset %" PRIu64 ": %s", logpath, le.offset,
				    cowmap_log_strerror(le.kind));
			return EX_ERR;
		}
		info = cowmap_log_info(log);
	} else {
		char what[64];

		fd = cowmap_session_adopt(id);
		if (fd < 0) {
			snprintf(what, sizeof(what), "adopt session %" PRIu64, id);
			return fail(what, fd);
		}
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
	cowmap_dump_end(it);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* --- status, discard -------------------------------------------------------------- */

static int adopt_arg(int argc, char **argv, const char *help, int *json, int *fd,
		     uint64_t *id)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	char what[64];
	int c;

	if (want_help(argc, argv, help))
		return -1;
	while ((c = getopt_long(argc, argv, json ? "j" : "", opts, NULL)) != -1) {
		if (c == 'j' && json)
			*json = 1;
		else
			return usage_err("bad option");
	}
	if (optind != argc - 1)
		return usage_err("one session ID expected");
	if (parse_id(argv[optind], id))
		return EX_USAGE;
	*fd = cowmap_session_adopt(*id);
	if (*fd < 0) {
		snprintf(what, sizeof(what), "adopt session %" PRIu64, *id);
		return fail(what, *fd);
	}
	return 0;
}

static const char *state_name(uint32_t s)
{
	switch (s) {
	case COWMAP_STATE_NEW: return "new";
	case COWMAP_STATE_ATTACHED: return "attached";
	case COWMAP_STATE_ORPHANED: return "orphaned";
	}
	return "unknown";
}

static int cmd_status(int argc, char **argv)
{
	struct cowmap_status st;
	const char *state;
	int json = 0, fd, c;
	uint64_t id;

	c = adopt_arg(argc, argv, help_status, &json, &fd, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	c = cowmap_status(fd, &st);
	close(fd);
	if (c)
		return fail("status", c);
#define F(name) { #name, st.name }
	const struct { const char *name; uint64_t v; } f[] = {
		F(session_id), F(dev_major), F(dev_minor), F(ino), F(size_at_attach),
		F(size), F(mappings), F(private_pages), F(twin_pages), F(base_pages),
		F(faults), F(cow_copies), F(rearms), F(base_invalidations),
		F(limit_hits), F(journal_records), F(journal_bytes), F(next_seq),
		F(commits), F(journal_file_seq),
	};
#undef F
	/*
	 * Only an orphan can be adopted, and closing it makes it one again:
	 * report that, not the "attached" it is while we hold it.
	 */
	state = st.state == COWMAP_STATE_ATTACHED ? "orphaned" : state_name(st.state);
	if (json) {
		printf("{\"state\":\"%s\"", state);
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			printf(",\"%s\":%" PRIu64, f[i].name, f[i].v);
		printf("}\n");
	} else {
		printf("%-20s %s\n", "state:", state);
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
			char k[40];

			snprintf(k, sizeof(k), "%s:", f[i].name);
			printf("%-20s %" PRIu64 "\n", k, f[i].v);
		}
	}
	return EX_OK;
}

static int cmd_discard(int argc, char **argv)
{
	int fd, c;
	uint64_t id;

	c = adopt_arg(argc, argv, help_discard, NULL, &fd, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	c = cowmap_discard(fd);
	close(fd);
	if (c)
		return fail("discard", c);
	printf("session %" PRIu64 " discarded\n", id);
	return EX_OK;
}

/* --- merge ------------------------------------------------------------------------ */

struct merge_out {
	int json, verbose, nev;
};

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

	if (o->json) {
		printf("%s\n{\"type\":\"%s\",\"log\":", o->nev++ ? "," : "",
		       ev_name(ev->type));
		put_json_str(stdout, ev->log);
		if (r) {
			printf(",\"session_id\":%" PRIu64 ",\"seq\":%" PRIu64
			       ",\"offset\":%" PRIu64 ",\"length\":%u,\"time_ns\":%" PRIu64,
			       r->session_id, r->seq, r->offset, r->length, r->time_ns);
		}
		if (ev->type == COWMAP_MEV_CONFLICT || ev->type == COWMAP_MEV_FORCED) {
			printf(",\"expected\":");
			put_json_bytes(stdout, r->old_bytes, r->length);
			printf(",\"found\":");
			put_json_bytes(stdout, ev->found, ev->found_len);
			printf(",\"expected_hex\":\"");
			put_hex(stdout, r->old_bytes, r->length);
			printf("\",\"found_hex\":\"");
			put_hex(stdout, ev->found, ev->found_len);
			printf("\"");
		}
		if (ev->error)
			printf(",\"log_offset\":%" PRIu64 ",\"resume\":%" PRIu64,
			       ev->error->offset, ev->error->resume);
		printf(",\"message\":");
		put_json_str(stdout, ev->message);
		printf("}");
		return;
	}
	switch (ev->type) {
	case COWMAP_MEV_APPLY:
	case COWMAP_MEV_ALREADY:
		if (!o->verbose)
			return;
		/* fall through */
	case COWMAP_MEV_CONFLICT:
	case COWMAP_MEV_FORCED:
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

static int cmd_merge(int argc, char **argv)
{
	enum { O_SKIP = 256, O_FORCE, O_SALVAGE, O_IDENT, O_SESSION, O_INTO };
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
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *source = NULL, *out = NULL, **logs = NULL, **dirs = NULL;
	size_t nlogs = 0, ndirs = 0;
	int in_place = 0, kernel = 0, c, ret;
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
	while ((c = getopt_long(argc, argv, "s:l:a:io:njv", opts, NULL)) != -1) {
		switch (c) {
		case 's': source = optarg; break;
		case 'l': logs[nlogs++] = optarg; break;
		case 'a': dirs[ndirs++] = optarg; break;
		case 'i': in_place = 1; break;
		case 'o': out = optarg; break;
		case 'n': flags |= COWMAP_MERGER_DRY_RUN; break;
		case O_SKIP: skip = 1; break;
		case O_FORCE: force = 1; break;
		case O_SALVAGE: flags |= COWMAP_MERGER_SALVAGE; break;
		case O_IDENT: flags |= COWMAP_MERGER_ANY_IDENTITY; break;
		case O_SESSION: case O_INTO: kernel = 1; break;
		case 'j': o.json = 1; break;
		case 'v': o.verbose = 1; break;
		default: return usage_err("bad option");
		}
	}
	if (kernel) {
		err("kernel merge (--session ID --into FILE) is not yet available");
		return EX_ERR;
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	if (!source)
		return usage_err("-s SOURCE missing");
	if (!nlogs && !ndirs)
		return usage_err("no log: give -l LOG or --all DIR");
	if (in_place && out)
		return usage_err("--in-place and -o exclude each other");
	if (!in_place && !out && !(flags & COWMAP_MERGER_DRY_RUN))
		return usage_err("say where to write: --in-place, -o OUT, or --dry-run");
	if (skip && force)
		return usage_err("--skip and --force exclude each other");
	policy = skip ? COWMAP_POLICY_SKIP : force ? COWMAP_POLICY_FORCE :
		 COWMAP_POLICY_ALL_OR_NOTHING;
	pname = skip ? "skip" : force ? "force" : "all-or-nothing";

	if (cowmap_merger_new(merge_event, &o, &m))
		return EX_ERR;
	if (o.json)
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
			if (!o.json)
				err("%s: %s", dirs[i], strerror(-c));
			ret = EX_ERR;
		}
	}
	memset(&st, 0, sizeof(st));
	if (ret == EX_OK) {
		c = cowmap_merger_run(m, source, out, policy, flags, &st);
		if (c < 0) {
			const char *hint = "";

			if (c == -EBADMSG)
				hint = ": damaged log (--salvage uses its intact records)";
			else if (c == -EXDEV)
				hint = ": a log of another file (--force-identity to merge anyway)";
			else if (c == -EPROTONOSUPPORT)
				hint = ": a log version this cowmapctl does not know";
			if (!o.json)
				err("%s%s; nothing written", c == -EBADMSG || c == -EXDEV ?
				    "refused" : strerror(-c), hint);
			ret = EX_ERR;
		} else if (c > 0) {
			ret = EX_CONFLICT;
		}
	}
	if (o.json) {
		printf("],\n\"summary\":{\"source\":");
		put_json_str(stdout, source);
		printf(",\"output\":");
		put_json_str(stdout, out ? out : in_place ? source : NULL);
		printf(",\"policy\":\"%s\",\"dry_run\":%s,\"logs\":%" PRIu64
		       ",\"records\":%" PRIu64 ",\"applied\":%" PRIu64
		       ",\"already\":%" PRIu64 ",\"conflicts\":%" PRIu64
		       ",\"forced\":%" PRIu64 ",\"log_errors\":%" PRIu64
		       ",\"written\":%s,\"bytes_written\":%" PRIu64
		       ",\"recovered\":%s,\"exit\":%d}}\n", pname,
		       flags & COWMAP_MERGER_DRY_RUN ? "true" : "false", st.logs,
		       st.records, st.applied, st.already, st.conflicts, st.forced,
		       st.log_errors, st.written ? "true" : "false", st.bytes_written,
		       st.recovered ? "true" : "false", ret);
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

/* --- later ------------------------------------------------------------------------ */

static int cmd_later(int argc, char **argv)
{
	if (want_help(argc, argv, !strcmp(cmd, "list") ? help_list : help_monitor))
		return EX_OK;
	err("not yet available (needs the cowmap generic netlink family)");
	return EX_ERR;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} cmds[] = {
	{ "map", cmd_map },
	{ "dump", cmd_dump },
	{ "merge", cmd_merge },
	{ "status", cmd_status },
	{ "discard", cmd_discard },
	{ "list", cmd_later },
	{ "monitor", cmd_later },
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
