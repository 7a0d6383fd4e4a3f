// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl map: attach a session, write through the mapping, commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowmapctl.h"

static const char help_map[] =
"Usage: cowmapctl map FILE [--write OFFSET:TEXT]... [--truncate SIZE]...\n"
"                          [--log LOGFILE] [--keep] [--json]\n"
"\n"
"Attach a new cowmap session to FILE, map it, write each TEXT at OFFSET\n"
"through the mapping (FILE itself is never written), and commit. TEXT may\n"
"use \\\\ \\\" \\n \\t \\r \\0 and \\xNN escapes; OFFSET is decimal or 0x hex.\n"
"A write past the end of the session, or a --truncate, goes through a view\n"
"of the session instead (all writes then do) and changes the session's size\n"
"(a size record, journal format 2).\n"
"\n"
"  -w, --write OFFSET:TEXT  write TEXT at OFFSET (repeatable, in order)\n"
"  -t, --truncate SIZE      set the session's size to SIZE (in order with\n"
"                           the writes; bytes past the old end read as zeros)\n"
"  -l, --log LOGFILE        append the journal to LOGFILE (created if missing,\n"
"                           mode 0600); the commit is durable (fsync)\n"
"  -k, --keep               keep the session as an orphan and print its id\n"
"                           (only the id, for scripts); without it the session\n"
"                           is discarded before exit\n"
"  -j, --json               print the result as JSON\n"
"\n"
"Exit status: 0, or 1 on an error (module missing, a size the file's\n"
"filesystem or RLIMIT_FSIZE refuses, ...).\n";

/* A write (@data) or, with @data NULL, a truncate to @off. */
struct wr {
	uint64_t off;
	uint8_t *data;
	size_t len;
};

/* The writes and truncates in order, through a view: 0 or -errno. */
static int map_view(int fd, const struct wr *w, size_t nw)
{
	int vfd = cowmap_view(fd, COWMAP_VIEW_RDWR | COWMAP_VIEW_CLOEXEC), c = 0;

	if (vfd < 0)
		return vfd;
	for (size_t i = 0; !c && i < nw; i++) {
		if (!w[i].data) {
			c = cowmap_set_size(fd, w[i].off, NULL);
			continue;
		}
		for (size_t done = 0; !c && done < w[i].len;) {
			ssize_t n = pwrite(vfd, w[i].data + done, w[i].len - done,
					   w[i].off + done);

			if (n < 0 && errno != EINTR)
				c = -errno;
			else if (n > 0)
				done += n;
		}
	}
	close(vfd);
	return c;
}

int cmd_map(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "write", required_argument, NULL, 'w' },
		{ "truncate", required_argument, NULL, 't' },
		{ "log", required_argument, NULL, 'l' },
		{ "keep", no_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct wr *w = NULL;
	size_t nw = 0;
	const char *file, *logpath = NULL;
	int keep = 0, c, fd = -1, jfd = -1, ffd, ret = EX_ERR;
	struct cowmap_commit cm;
	uint64_t id = 0;
	struct stat st;
	void *map = NULL;
	int use_view = 0;

	if (want_help(argc, argv, help_map))
		return EX_OK;
	/* -L: the old spelling of -l. */
	while ((c = getopt_long(argc, argv, ":w:t:l:L:kj", opts, NULL)) != -1) {
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
			if (w[nw].off > INT64_MAX || (uint64_t)n > INT64_MAX - w[nw].off)
				return usage_err("offset %s is past any file size", optarg);
			w[nw++].len = n;
			break;
		}
		case 't': {
			struct wr *v = realloc(w, (nw + 1) * sizeof(*w));

			if (!v)
				return EX_ERR;
			w = v;
			if (parse_u64(optarg, &w[nw].off) || w[nw].off > INT64_MAX)
				return usage_err("bad size '%s'", optarg);
			w[nw].data = NULL;
			w[nw++].len = 0;
			use_view = 1;
			break;
		}
		case 'l':
		case 'L':
			if (once(&logpath, "--log", optarg))
				return EX_USAGE;
			break;
		case 'k': keep = 1; break;
		case 'j': json_out = 1; break;
		default: return bad_option(c, argv);
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
	/* Past the end: the session grows, which takes a view. */
	for (size_t i = 0; i < nw; i++)
		if (w[i].data && w[i].off + w[i].len > (uint64_t)st.st_size)
			use_view = 1;
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
	if (use_view) {
		c = map_view(fd, w, nw);
		if (c) {
			fail(c == -ENOTTY ? "view" : "write", c);
			goto discard;
		}
	} else if (nw && st.st_size) {
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
	if (use_view) {
		/* A shrink journalled itself and what came before: count it all. */
		struct cowmap_status ss;

		c = cowmap_status(fd, &ss);
		if (c) {
			fail("status", c);
			goto discard;
		}
		cm.records = ss.journal_records;
		cm.bytes = ss.journal_bytes;
		cm.first_seq = ss.journal_records ? 1 : 0;
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
	if (json_out) {
		/* The names of monitor's commit event. */
		struct json_object *o = jobj();

		jput_id(o, "session_id", id);
		jput_u64(o, "records", cm.records);
		jput_u64(o, "journal_bytes", cm.bytes);
		jput_id(o, "first_seq", cm.first_seq);
		jput_bool(o, "kept", keep);
		jput_str(o, "journal_path", logpath);
		jprint(o);
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
