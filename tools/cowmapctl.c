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
#include <signal.h>
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

#define MODULE_HINT	" (is the cowmap module loaded? try 'modprobe cowmap')"

/* Errno of a session operation, with a hint where there is one. */
static int fail(const char *what, int e)
{
	const char *hint = "";

	if (e == -ENODEV && !strcmp(what, "open " COWMAP_DEVICE_PATH))
		hint = MODULE_HINT;
	else if (e == -ENOTTY)
		hint = " (the loaded cowmap module does not support this)";
	else if (e == -ENOENT && strstr(what, "adopt"))
		hint = " (no orphaned session with that id)";
	err("%s: %s%s", what, strerror(-e), hint);
	return EX_ERR;
}

/* --- netlink -------------------------------------------------------------- */

static struct cowmap_nl *nl_open_or_fail(void)
{
	struct cowmap_nl *nl;
	int c = cowmap_nl_open(&nl);

	if (!c)
		return nl;
	if (c == -ENODEV)
		err("no generic netlink family \"" COWMAP_GENL_NAME "\"" MODULE_HINT);
	else
		err("netlink: %s", strerror(-c));
	return NULL;
}

/* A failed request: the kernel's extack message if it sent one. */
static int nl_fail(struct cowmap_nl *nl, const char *what, int e)
{
	const char *x = cowmap_nl_extack(nl);

	/* A log dump's .start cannot always attach its message. */
	if (!x && e == -ENOENT)
		x = "no such session";
	if (x)
		err("%s: %s (%s)", what, x, strerror(-e));
	else
		err("%s: %s", what, strerror(-e));
	return EX_ERR;
}

/* --- session fds --------------------------------------------------------- */

/* A new session fd (cowmap_open()), or -1 after an error message. */
static int dev_open_or_fail(void)
{
	int fd = cowmap_open(NULL);

	if (fd >= 0)
		return fd;
	fail("open " COWMAP_DEVICE_PATH, fd);
	return -1;
}

/*
 * A new fd that adopted orphan @id, or -1 after an error message. The
 * device is opened first, so that its errors are never taken for the
 * session's (cowmap_session_adopt() keeps them apart too, by errno).
 */
static int adopt_or_fail(uint64_t id)
{
	struct cowmap_nl_session s;
	struct cowmap_nl *nl;
	char what[64];
	int fd = dev_open_or_fail(), c;

	if (fd < 0)
		return -1;
	c = cowmap_adopt(fd, id);
	if (!c)
		return fd;
	close(fd);
	snprintf(what, sizeof(what), "adopt session %" PRIu64, id);
	/* Say why when the session exists but is not an orphan. */
	if ((c == -ENOENT || c == -EBUSY) && !cowmap_nl_open(&nl)) {
		if (!cowmap_nl_session_get(nl, id, &s) && s.state == COWMAP_STATE_ATTACHED) {
			err("%s: session %" PRIu64 " is attached (process %u): only an orphan can be adopted",
			    what, id, s.owner_pid);
			cowmap_nl_close(nl);
			return -1;
		}
		cowmap_nl_close(nl);
	}
	fail(what, c);
	return -1;
}

/* --- help ------------------------------------------------------------------- */

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

static const char help_merge[] =
"Usage: cowmapctl merge -s SOURCE -l LOG [-l LOG]... [--all DIR]\n"
"                       (--in-place | -o OUT | --dry-run) [--skip | --force]\n"
"                       [--salvage] [--force-identity] [--json] [-v]\n"
"       cowmapctl merge --session ID --into FILE [--skip | --force] [--dry-run]\n"
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
"Kernel (--session): adopt orphaned session ID and apply its journal to FILE\n"
"with COWMAP_IOC_MERGE (FILE opened read-write; usually the session's own\n"
"file), in sequence order, under FILE's inode lock. The session is closed\n"
"again afterwards: it stays an orphan while it holds records.\n"
"\n"
"      --session ID       the orphaned session\n"
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

static const char help_status[] =
"Usage: cowmapctl status ID [--json] [--ioctl]\n"
"\n"
"Print session ID as the kernel describes it over netlink (no session fd\n"
"needed; attached and orphaned sessions of your uid, or all with\n"
"CAP_SYS_ADMIN): state, owner, backing file, pages, journal.\n"
"\n"
"  -j, --json   one JSON object\n"
"      --ioctl  adopt orphaned session ID and print all of struct\n"
"               cowmap_status (fault and page counters), then close it again\n";

static const char help_discard[] =
"Usage: cowmapctl discard ID\n"
"\n"
"Adopt orphaned session ID, drop its journal and written pages, and close it\n"
"(it is then freed).\n";

static const char help_trim[] =
"Usage: cowmapctl trim ID\n"
"\n"
"Adopt orphaned session ID, drop the records a kernel merge marked merged\n"
"(COWMAP_IOC_TRIM), and close it: it stays an orphan if records or\n"
"uncommitted pages remain, and is freed otherwise.\n";

static const char help_list[] =
"Usage: cowmapctl list [--json]\n"
"\n"
"List the sessions the kernel has (netlink): attached and orphaned, yours\n"
"only unless you have CAP_SYS_ADMIN. One line per session:\n"
"  ID STATE PID UID RECORDS BYTES MERGED PAGES FILE [journal=PATH]\n"
"PID is the process that attached it, PAGES its private pages.\n"
"\n"
"  -j, --json   {\"sessions\":[{...}, ...]}\n";

static const char help_monitor[] =
"Usage: cowmapctl monitor [--json] [--count N] [--session ID] [--timestamp]\n"
"                         [--quiet]\n"
"\n"
"Print cowmap events as they happen, one line each, until SIGINT or SIGTERM\n"
"(netlink multicast group \"events\"):\n"
"  commit   session=3 uid=0 records=1 bytes=72\n"
"Events: attach commit merge conflict orphan adopt discard limit dropped close.\n"
"\n"
"  -j, --json        one JSON object per line\n"
"  -c, --count N     exit after N events\n"
"  -s, --session ID  only the events of session ID\n"
"  -t, --timestamp   prefix each event with the time it was received\n"
"  -q, --quiet       no \"listening\" line on stderr\n";

static const char help_version[] =
"Usage: cowmapctl version [--json]\n"
"\n"
"Print the version of cowmapctl, of the libcowmap it runs with\n"
"(cowmap_version()) and of the loaded module (/sys/module/cowmap/version):\n"
"  cowmapctl: 0.1.0\n"
"  libcowmap: 0.1.0\n"
"  module:    0.1.0\n"
"The module line says \"not loaded\" when it is not; this command does not\n"
"load it. (The global version option prints cowmapctl's version only.)\n"
"\n"
"  -j, --json   {\"cowmapctl\":\"0.1.0\",\"libcowmap\":\"0.1.0\",\"module\":\"0.1.0\"}\n"
"               (\"module\":null when it is not loaded)\n"
"\n"
"Exit status: 0; 1 if the module's version cannot be read.\n";

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

/* --- status, list, discard, trim -------------------------------------------------- */

/* "ID [--json] [--ioctl]": parse; 0, or the exit status (-1: --help shown). */
static int id_arg(int argc, char **argv, const char *help, int *json, int *use_ioctl,
		  uint64_t *id)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "ioctl", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	int c;

	if (want_help(argc, argv, help))
		return -1;
	while ((c = getopt_long(argc, argv, json ? "j" : "", opts, NULL)) != -1) {
		if (c == 'j' && json)
			*json = 1;
		else if (c == 'I' && use_ioctl)
			*use_ioctl = 1;
		else
			return usage_err("bad option");
	}
	if (optind != argc - 1)
		return usage_err(optind < argc ? "one session ID expected, not '%s'" :
				 "session ID missing", argv[argc - 1]);
	if (parse_id(argv[optind], id))
		return EX_USAGE;
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

/* The JSON object of a session (the names of struct cowmap_status where it has them). */
static void put_session_json(const struct cowmap_nl_session *s)
{
	printf("{\"session_id\":%" PRIu64 ",\"state\":\"%s\",\"owner_pid\":%u,"
	       "\"owner_uid\":%u,\"dev_major\":%u,\"dev_minor\":%u,\"ino\":%" PRIu64
	       ",\"size\":%" PRIu64 ",\"private_pages\":%" PRIu64 ",\"twin_pages\":%" PRIu64
	       ",\"journal_records\":%" PRIu64 ",\"journal_bytes\":%" PRIu64
	       ",\"merged_records\":%" PRIu64 ",\"path\":", s->session_id,
	       state_name(s->state), s->owner_pid, s->owner_uid, s->dev_major,
	       s->dev_minor, s->ino, s->size, s->private_pages, s->twin_pages,
	       s->records, s->journal_bytes, s->merged);
	put_json_str(stdout, s->path);
	printf(",\"journal_path\":");
	put_json_str(stdout, s->journal_path);
	printf("}");
}

/* The old status: adopt the orphan and print all of struct cowmap_status. */
static int status_ioctl(uint64_t id, int json)
{
	struct cowmap_status st;
	const char *state;
	int fd = adopt_or_fail(id), c;

	if (fd < 0)
		return EX_ERR;
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
		F(commits), F(journal_file_seq), F(merged_records),
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

static int cmd_status(int argc, char **argv)
{
	struct cowmap_nl_session s;
	struct cowmap_nl *nl;
	int json = 0, use_ioctl = 0, c;
	char what[64];
	uint64_t id;

	c = id_arg(argc, argv, help_status, &json, &use_ioctl, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	if (use_ioctl)
		return status_ioctl(id, json);
	nl = nl_open_or_fail();
	if (!nl)
		return EX_ERR;
	c = cowmap_nl_session_get(nl, id, &s);
	if (c) {
		snprintf(what, sizeof(what), "session %" PRIu64, id);
		c = nl_fail(nl, what, c);
		cowmap_nl_close(nl);
		return c;
	}
	if (json) {
		put_session_json(&s);
		putchar('\n');
	} else {
		printf("%-17s %" PRIu64 "\n", "session:", s.session_id);
		printf("%-17s %s\n", "state:", state_name(s.state));
		printf("%-17s %u\n", "owner_pid:", s.owner_pid);
		printf("%-17s %u\n", "owner_uid:", s.owner_uid);
		printf("%-17s %s\n", "path:", s.path ? s.path : "(unknown)");
		printf("%-17s %u:%u\n", "device:", s.dev_major, s.dev_minor);
		printf("%-17s %" PRIu64 "\n", "inode:", s.ino);
		printf("%-17s %" PRIu64 "\n", "size:", s.size);
		printf("%-17s %" PRIu64 "\n", "private_pages:", s.private_pages);
		printf("%-17s %" PRIu64 "\n", "twin_pages:", s.twin_pages);
		printf("%-17s %" PRIu64 "\n", "journal_records:", s.records);
		printf("%-17s %" PRIu64 "\n", "journal_bytes:", s.journal_bytes);
		printf("%-17s %" PRIu64 "\n", "merged_records:", s.merged);
		printf("%-17s %s\n", "journal_path:", s.journal_path ? s.journal_path : "(none)");
	}
	cowmap_nl_close(nl);
	return EX_OK;
}

struct list_out {
	int json, n;
};

static void list_one(void *arg, const struct cowmap_nl_session *s)
{
	struct list_out *o = arg;

	if (o->json) {
		printf("%s\n", o->n++ ? "," : "");
		put_session_json(s);
		return;
	}
	o->n++;
	printf("%-6" PRIu64 " %-9s %7u %5u %8" PRIu64 " %9" PRIu64 " %7" PRIu64
	       " %6" PRIu64 " %s", s->session_id, state_name(s->state), s->owner_pid,
	       s->owner_uid, s->records, s->journal_bytes, s->merged, s->private_pages,
	       s->path ? s->path : "-");
	if (s->journal_path)
		printf(" journal=%s", s->journal_path);
	putchar('\n');
}

static int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct list_out o = { 0 };
	struct cowmap_nl *nl;
	int c;

	if (want_help(argc, argv, help_list))
		return EX_OK;
	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c == 'j')
			o.json = 1;
		else
			return usage_err("bad option");
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	nl = nl_open_or_fail();
	if (!nl)
		return EX_ERR;
	if (o.json)
		printf("{\"sessions\":[");
	else
		printf("%-6s %-9s %7s %5s %8s %9s %7s %6s %s\n", "ID", "STATE", "PID", "UID",
		       "RECORDS", "BYTES", "MERGED", "PAGES", "FILE");
	fflush(stdout);
	c = cowmap_nl_sessions(nl, list_one, &o);
	if (o.json)
		printf("]}\n");
	if (c < 0) {
		fflush(stdout);
		c = nl_fail(nl, "list", c);
	} else {
		c = EX_OK;
	}
	cowmap_nl_close(nl);
	return c;
}

static int cmd_discard(int argc, char **argv)
{
	int fd, c;
	uint64_t id;

	c = id_arg(argc, argv, help_discard, NULL, NULL, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	fd = adopt_or_fail(id);
	if (fd < 0)
		return EX_ERR;
	c = cowmap_discard(fd);
	close(fd);
	if (c)
		return fail("discard", c);
	printf("session %" PRIu64 " discarded\n", id);
	return EX_OK;
}

static int cmd_trim(int argc, char **argv)
{
	struct cowmap_status before, after;
	int fd, c;
	uint64_t id;

	c = id_arg(argc, argv, help_trim, NULL, NULL, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	fd = adopt_or_fail(id);
	if (fd < 0)
		return EX_ERR;
	c = cowmap_status(fd, &before);
	if (!c)
		c = cowmap_trim(fd);
	if (!c)
		c = cowmap_status(fd, &after);
	close(fd);
	if (c)
		return fail("trim", c);
	printf("session %" PRIu64 ": %llu merged record%s trimmed, %llu left%s\n",
	       id, (unsigned long long)(before.journal_records - after.journal_records),
	       before.journal_records - after.journal_records == 1 ? "" : "s",
	       (unsigned long long)after.journal_records,
	       after.journal_records || after.twin_pages ? "" : "; session freed");
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

/* Kernel merge: adopt the orphan, COWMAP_IOC_MERGE into a file, close. */
struct kmerge {
	uint64_t id;
	const char *into;
	unsigned int flags;
	int json, trim, skip, force;
};

/* Expected vs found of a kernel conflict report, from the first difference. */
static void show_kconflict(const struct cowmap_conflict *k)
{
	uint32_t rest = k->length - k->diff_at;
	const char *more = k->diff_at + k->shown < k->length ? "..." : "";

	/* The kernel shows bytes from the first one that is not the old one. */
	printf("    first difference at +%u\n    expected \"", k->diff_at);
	put_escaped(stdout, k->expected, k->shown);
	printf("%s\" (", more);
	put_hex(stdout, k->expected, k->shown);
	printf("%s)\n", more);
	if (!k->shown) {
		printf("    found    nothing (the file ends before offset %llu)\n",
		       (unsigned long long)(k->offset + k->diff_at));
		return;
	}
	printf("    found    \"");
	put_escaped(stdout, k->found, k->shown);
	printf("%s\" (", more);
	put_hex(stdout, k->found, k->shown);
	printf("%s)%s\n", more, k->shown < rest && k->shown < COWMAP_CONFLICT_SHOW ?
	       " [range runs past the end of the file]" : "");
}

static int kernel_merge(struct kmerge *km)
{
	struct cowmap_conflict *cf = NULL;
	struct cowmap_status st, after;
	struct cowmap_merge m;
	unsigned int max = 0;
	int fd, target, c, ret = EX_ERR, trimmed = 0;
	const char *policy = km->skip ? "skip" : km->force ? "force" : "all-or-nothing";
	int dry = !!(km->flags & COWMAP_MERGE_DRY_RUN);

	target = open(km->into, O_RDWR | O_CLOEXEC);
	if (target < 0) {
		err("%s: %s", km->into, strerror(errno));
		return EX_ERR;
	}
	fd = adopt_or_fail(km->id);
	if (fd < 0) {
		close(target);
		return EX_ERR;
	}
	c = cowmap_status(fd, &st);
	if (c) {
		fail("status", c);
		goto out;
	}
	/* Room for every conflict the journal could have (bounded). */
	max = st.journal_records < 65536 ? st.journal_records : 65536;
	cf = calloc(max ? max : 1, sizeof(*cf));
	if (!cf) {
		err("%s", strerror(ENOMEM));
		goto out;
	}
	c = cowmap_merge(fd, target, km->flags, cf, max, &m);
	if (c < 0) {
		if (c == -EBADF)
			err("merge into %s: %s (the file must be opened read-write)",
			    km->into, strerror(-c));
		else
			fail("merge", c);
		goto out;
	}
	if (km->trim && !dry) {
		c = cowmap_trim(fd);
		if (!c)
			c = cowmap_status(fd, &after);
		if (c) {
			fail("trim", c);
			goto out;
		}
		trimmed = 1;
	}
	ret = m.conflicts && !km->force ? EX_CONFLICT : EX_OK;
	if (km->json) {
		printf("{\"session_id\":%" PRIu64 ",\"into\":", km->id);
		put_json_str(stdout, km->into);
		printf(",\"policy\":\"%s\",\"dry_run\":%s,\"fsync\":%s,\"records\":%llu,"
		       "\"applied\":%llu,\"already\":%llu,\"conflicts\":%llu,"
		       "\"written\":%llu,\"conflict_reports\":[", policy,
		       dry ? "true" : "false", km->flags & COWMAP_MERGE_FSYNC ? "true" : "false",
		       (unsigned long long)m.records, (unsigned long long)m.applied,
		       (unsigned long long)m.already, (unsigned long long)m.conflicts,
		       (unsigned long long)m.written);
		for (uint64_t i = 0; i < m.conflicts && i < max; i++) {
			const struct cowmap_conflict *k = &cf[i];

			printf("%s\n{\"session_id\":%llu,\"seq\":%llu,\"offset\":%llu,"
			       "\"length\":%u,\"diff_at\":%u,\"forced\":%s,\"expected\":",
			       i ? "," : "", (unsigned long long)k->session_id,
			       (unsigned long long)k->seq, (unsigned long long)k->offset,
			       k->length, k->diff_at, km->force ? "true" : "false");
			put_json_bytes(stdout, k->expected, k->shown);
			printf(",\"found\":");
			put_json_bytes(stdout, k->found, k->shown);
			printf(",\"expected_hex\":\"");
			put_hex(stdout, k->expected, k->shown);
			printf("\",\"found_hex\":\"");
			put_hex(stdout, k->found, k->shown);
			printf("\"}");
		}
		printf("],\"trimmed\":%s,\"records_left\":", trimmed ? "true" : "false");
		if (trimmed)
			printf("%llu", (unsigned long long)after.journal_records);
		else
			printf("null");
		printf(",\"exit\":%d}\n", ret);
		goto out;
	}
	for (uint64_t i = 0; i < m.conflicts && i < max; i++) {
		const struct cowmap_conflict *k = &cf[i];

		printf("%-9s session=%llu seq=%llu offset=%llu length=%u\n",
		       km->force ? "forced" : "conflict", (unsigned long long)k->session_id,
		       (unsigned long long)k->seq, (unsigned long long)k->offset, k->length);
		show_kconflict(k);
	}
	if (m.conflicts > max)
		printf("... and %llu more conflicts\n", (unsigned long long)(m.conflicts - max));
	printf("merge: session %" PRIu64 ", %llu record%s: %llu applied, %llu already applied, "
	       "%llu conflict%s", km->id, (unsigned long long)m.records,
	       m.records == 1 ? "" : "s", (unsigned long long)m.applied,
	       (unsigned long long)m.already, (unsigned long long)m.conflicts,
	       m.conflicts == 1 ? "" : "s");
	if (km->force && m.conflicts)
		printf(" (%llu forced)", (unsigned long long)m.conflicts);
	if (dry)
		printf("; dry run, nothing written");
	else if (m.written)
		printf("; %llu bytes written to %s%s", (unsigned long long)m.written, km->into,
		       km->flags & COWMAP_MERGE_FSYNC ? " (synced)" : "");
	else if (m.conflicts && !km->skip && !km->force)
		printf("; nothing written (all-or-nothing)");
	else
		printf("; nothing to write");
	if (trimmed) {
		if (after.journal_records || after.twin_pages)
			printf("; trimmed, %llu record%s left",
			       (unsigned long long)after.journal_records,
			       after.journal_records == 1 ? "" : "s");
		else
			printf("; trimmed, session freed");
	}
	putchar('\n');
out:
	free(cf);
	close(fd);	/* an orphan again if records remain */
	close(target);
	return ret;
}

static int cmd_merge(int argc, char **argv)
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
		case O_SESSION: session = optarg; break;
		case O_INTO: into = optarg; break;
		case OPT_FSYNC: do_fsync = 1; break;
		case OPT_TRIM: trim = 1; break;
		case 'j': o.json = 1; break;
		case 'v': o.verbose = 1; break;
		default: return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	if (skip && force)
		return usage_err("--skip and --force exclude each other");
	if (session || into) {
		struct kmerge km = { .into = into, .json = o.json, .trim = trim,
				     .skip = skip, .force = force };

		if (!session || !into)
			return usage_err(session ? "--session needs --into FILE" :
					 "--into needs --session ID");
		if (source || nlogs || ndirs || in_place || out ||
		    (flags & (COWMAP_MERGER_SALVAGE | COWMAP_MERGER_ANY_IDENTITY)))
			return usage_err("--session/--into (kernel merge) and -s/-l/--all/-i/-o/--salvage/--force-identity (offline merge) exclude each other");
		if (parse_id(session, &km.id))
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

/* --- monitor ---------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static void print_event(const struct cowmap_nl_event *ev, int json, int stamp)
{
	const char *name = cowmap_nl_event_name(ev->event);
	struct timespec now;
	char unknown[32];

	if (!name) {
		snprintf(unknown, sizeof(unknown), "event-%u", ev->event);
		name = unknown;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (json) {
		printf("{\"event\":\"%s\",\"session_id\":%" PRIu64 ",\"owner_uid\":%u",
		       name, ev->session_id, ev->owner_uid);
		if (stamp)
			printf(",\"time_ns\":%llu", (unsigned long long)now.tv_sec *
			       1000000000ULL + now.tv_nsec);
		if (ev->present & COWMAP_NL_EV_HAS_RECORDS)
			printf(",\"records\":%" PRIu64 ",\"journal_bytes\":%" PRIu64,
			       ev->records, ev->journal_bytes);
		if (ev->present & COWMAP_NL_EV_HAS_MERGE)
			printf(",\"applied\":%" PRIu64 ",\"already\":%" PRIu64,
			       ev->applied, ev->already);
		if (ev->present & COWMAP_NL_EV_HAS_CONFLICTS)
			printf(",\"conflicts\":%" PRIu64, ev->conflicts);
		if (ev->present & COWMAP_NL_EV_HAS_LIMIT_HITS)
			printf(",\"limit_hits\":%" PRIu64, ev->limit_hits);
		printf("}\n");
		return;
	}
	if (stamp) {
		put_time(stdout, now.tv_sec * 1000000000ULL + now.tv_nsec);
		putchar(' ');
	}
	printf("%-8s session=%" PRIu64 " uid=%u", name, ev->session_id, ev->owner_uid);
	if (ev->present & COWMAP_NL_EV_HAS_RECORDS)
		printf(" records=%" PRIu64 " bytes=%" PRIu64, ev->records, ev->journal_bytes);
	if (ev->present & COWMAP_NL_EV_HAS_MERGE)
		printf(" applied=%" PRIu64 " already=%" PRIu64, ev->applied, ev->already);
	if (ev->present & COWMAP_NL_EV_HAS_CONFLICTS)
		printf(" conflicts=%" PRIu64, ev->conflicts);
	if (ev->present & COWMAP_NL_EV_HAS_LIMIT_HITS)
		printf(" limit_hits=%" PRIu64, ev->limit_hits);
	putchar('\n');
}

static int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'c' },
		{ "session", required_argument, NULL, 's' },
		{ "timestamp", no_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct sigaction sa = { .sa_handler = on_stop };	/* no SA_RESTART */
	uint64_t count = 0, seen = 0, only = 0;
	int json = 0, stamp = 0, quiet = 0, c, ret = EX_OK;
	struct cowmap_nl_event ev;
	struct cowmap_nl *nl;

	if (want_help(argc, argv, help_monitor))
		return EX_OK;
	while ((c = getopt_long(argc, argv, "jc:s:tq", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'c':
			if (parse_u64(optarg, &count) || !count)
				return usage_err("--count wants a positive number, not '%s'", optarg);
			break;
		case 's':
			if (parse_id(optarg, &only))
				return EX_USAGE;
			break;
		case 't': stamp = 1; break;
		case 'q': quiet = 1; break;
		default: return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	nl = nl_open_or_fail();
	if (!nl)
		return EX_ERR;
	c = cowmap_nl_subscribe(nl);
	if (c) {
		cowmap_nl_close(nl);
		err("cannot join the \"" COWMAP_MCGRP_EVENTS "\" group: %s", strerror(-c));
		return EX_ERR;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);	/* one line per event, at once */
	if (!quiet)
		fprintf(stderr, "cowmapctl: monitor: listening for cowmap events%s\n",
			count ? "" : " (Ctrl-C to stop)");
	while (!stop_signal && (!count || seen < count)) {
		/* A timeout, so that a signal between two polls is seen soon. */
		c = cowmap_nl_event_next(nl, &ev, 250);
		if (c == 0 || c == -EINTR)
			continue;
		if (c == -ENOBUFS) {
			err("events were lost (the receive buffer overflowed)");
			continue;
		}
		if (c < 0) {
			err("netlink: %s", strerror(-c));
			ret = EX_ERR;
			break;
		}
		if (only && ev.session_id != only)
			continue;
		print_event(&ev, json, stamp);
		seen++;
	}
	cowmap_nl_close(nl);
	return ret;
}

/* --- version ----------------------------------------------------------------- */

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

static int cmd_version(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	char mod[128];
	int json = 0, c;

	if (want_help(argc, argv, help_version))
		return EX_OK;
	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else
			return usage_err("bad option");
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	c = module_version(mod, sizeof(mod));
	if (c < 0) {
		err("%s: %s", MODULE_VERSION_PATH, strerror(-c));
		return EX_ERR;
	}
	if (json) {
		printf("{\"cowmapctl\":");
		put_json_str(stdout, COWMAP_VERSION);
		printf(",\"libcowmap\":");
		put_json_str(stdout, cowmap_version());
		printf(",\"module\":");
		put_json_str(stdout, mod[0] ? mod : NULL);
		printf("}\n");
	} else {
		printf("%-10s %s\n", "cowmapctl:", COWMAP_VERSION);
		printf("%-10s %s\n", "libcowmap:", cowmap_version());
		printf("%-10s %s\n", "module:", mod[0] ? mod : "not loaded");
	}
	return EX_OK;
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
