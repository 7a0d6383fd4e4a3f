// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the offline merge engine (cowmap_merger_*) on a source
 * file, up to four logs and an optional intent file of an interrupted
 * in-place merge, all taken from the input.
 *
 * Input: one options byte, then chunks of (u32 little-endian length,
 * bytes): the source file, then the logs; with OPT_INTENT the last chunk
 * (if there are at least two after the source) is written as the intent
 * file, and with OPT_FIX its device, inode and CRC are made right so that
 * the replay code is reached. selftests/fuzz/mkseed.c packs real files.
 *
 * Checked besides memory safety: events are consistent; a dry run and an
 * all-or-nothing run with conflicts write nothing; -o leaves the source
 * alone; a clean in-place merge run again writes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "libcowmap.h"

#define CHECK(cond) do {							\
		if (!(cond)) {							\
			fprintf(stderr, "fuzz_merge: check failed: %s (line %d)\n",	\
				#cond, __LINE__);				\
			abort();						\
		}								\
	} while (0)

#define OPT_POLICY	0x03	/* 0 all-or-nothing, 1 skip, 2 force, 3 skip */
#define OPT_DRY		0x04
#define OPT_SALVAGE	0x08
#define OPT_OUT		0x10	/* -o OUT instead of in place */
#define OPT_INTENT	0x20
#define OPT_FIX		0x40

#define MAX_CHUNKS	6

static char dir[64], src[96], out[96], intent[96], logs[4][96];

static void setup(void)
{
	const char *base = getenv("FUZZ_TMPDIR");

	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "%s/fuzz-merge.XXXXXX", base ? base : "/dev/shm");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/fuzz-merge.XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(intent, sizeof(intent), "%s/.src.cowmap-intent", dir);
	for (int i = 0; i < 4; i++)
		snprintf(logs[i], sizeof(logs[i]), "%s/log%d", dir, i);
}

static void put(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, p, n) == (ssize_t)n);
	close(fd);
}

/*
 * What a file holds, in bounded memory: its size and a hash of its data
 * extents (offset and bytes), walked with SEEK_DATA/SEEK_HOLE. A merge can
 * put a record gigabytes past the end of a small source, so the harness
 * must never read a whole file into memory (it once asked malloc for the
 * 4 GiB size of such a sparse file). A file that does not exist hashes as
 * { -1, 0 }.
 */
struct digest {
	int64_t size;
	uint64_t hash;
};

static void mix(uint64_t *h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		*h = (*h ^ p[i]) * 0x100000001b3ULL;	/* FNV-1a */
}

static struct digest get(const char *path)
{
	struct digest d = { -1, 0xcbf29ce484222325ULL };
	static uint8_t buf[65536];
	struct stat st;
	off_t at = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return d;
	CHECK(!fstat(fd, &st));
	d.size = st.st_size;
	while (at < st.st_size) {
		off_t data = lseek(fd, at, SEEK_DATA), hole;

		if (data < 0) {
			CHECK(errno == ENXIO);	/* only holes up to EOF */
			break;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		CHECK(hole > data);
		mix(&d.hash, (const uint8_t *)&data, sizeof(data));
		for (at = data; at < hole; ) {
			size_t want = hole - at < (off_t)sizeof(buf) ? hole - at : sizeof(buf);
			ssize_t got = pread(fd, buf, want, at);

			CHECK(got > 0);
			mix(&d.hash, buf, got);
			at += got;
		}
	}
	close(fd);
	return d;
}

static int same(struct digest a, struct digest b)
{
	return a.size == b.size && a.hash == b.hash;
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void le64(uint8_t *p, uint64_t v)
{
	le32(p, v);
	le32(p + 4, v >> 32);
}

struct evstats {
	uint64_t apply, already, conflict, forced, size;
};

static void on_event(void *arg, const struct cowmap_merger_event *ev)
{
	struct evstats *s = arg;

	switch (ev->type) {
	case COWMAP_MEV_APPLY:
	case COWMAP_MEV_ALREADY:
	case COWMAP_MEV_CONFLICT:
	case COWMAP_MEV_FORCED:
		CHECK(ev->rec);
		if (ev->rec->flags & COWMAP_REC_SIZE) {
			/* A size record: no bytes, and none found. */
			CHECK(ev->rec->length == 0 && !ev->found_len);
			CHECK(ev->rec->offset == ev->rec->new_size);
			s->size++;
		} else {
			CHECK(ev->rec->length >= 1 &&
			      ev->rec->length <= COWMAP_LOG_MAX_RUN);
		}
		if (ev->type == COWMAP_MEV_CONFLICT || ev->type == COWMAP_MEV_FORCED)
			CHECK(ev->found_len <= ev->rec->length &&
			      (ev->found || !ev->found_len));
		s->apply += ev->type == COWMAP_MEV_APPLY;
		s->already += ev->type == COWMAP_MEV_ALREADY;
		s->conflict += ev->type == COWMAP_MEV_CONFLICT;
		s->forced += ev->type == COWMAP_MEV_FORCED;
		break;
	default:
		CHECK(ev->message || ev->error || ev->log);
		break;
	}
}

/* One merge of @nlogs logs; the merger's return value. */
static int merge(int nlogs, int policy, unsigned int flags, int to_out,
		 struct cowmap_merger_stats *st, struct evstats *es)
{
	struct cowmap_merger *m;
	int ret;

	memset(es, 0, sizeof(*es));
	CHECK(!cowmap_merger_new(on_event, es, &m));
	for (int i = 0; i < nlogs; i++)
		cowmap_merger_add_log(m, logs[i]);
	ret = cowmap_merger_run(m, src, to_out ? out : NULL, policy, flags, st);
	cowmap_merger_free(m);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *chunk[MAX_CHUNKS];
	size_t len[MAX_CHUNKS], at = 1;
	int n = 0, nlogs, ret, policy, to_out, has_intent;
	struct cowmap_merger_stats st, st2;
	struct evstats es, es2;
	struct digest before, after;
	unsigned int flags;
	uint8_t opt;

	if (size < 1)
		return 0;
	setup();
	opt = data[0];
	while (n < MAX_CHUNKS && at + 4 <= size) {
		size_t l = data[at] | data[at + 1] << 8 | data[at + 2] << 16 |
			   (size_t)data[at + 3] << 24;

		at += 4;
		if (l > size - at)
			l = size - at;
		chunk[n] = data + at;
		len[n++] = l;
		at += l;
	}
	if (n < 1)
		return 0;
	has_intent = (opt & OPT_INTENT) && n >= 3;
	nlogs = n - 1 - has_intent;
	if (nlogs > 4)
		nlogs = 4;
	unlink(out);
	unlink(intent);
	put(src, chunk[0], len[0]);
	for (int i = 0; i < nlogs; i++)
		put(logs[i], chunk[1 + i], len[1 + i]);
	if (has_intent) {
		size_t il = len[n - 1];
		uint8_t *ib = malloc(il + 1);
		struct stat sb;

		memcpy(ib, chunk[n - 1], il);
		if ((opt & OPT_FIX) && il >= 72 && !stat(src, &sb)) {
			memcpy(ib, "COWMAPIN", 8);
			le32(ib + 8, 1);
			le32(ib + 16, major(sb.st_dev));
			le32(ib + 20, minor(sb.st_dev));
			le64(ib + 24, sb.st_ino);
			il &= ~(size_t)7;
			le64(ib + 56, il);
			le32(ib + il - 8, cowmap_crc32(0, ib, il - 8));
			le32(ib + il - 4, 0);
		}
		put(intent, ib, il);
		free(ib);
	}

	policy = opt & OPT_POLICY;
	if (policy == 3)
		policy = COWMAP_POLICY_SKIP;
	to_out = !!(opt & OPT_OUT);
	flags = COWMAP_MERGER_ANY_IDENTITY | COWMAP_MERGER_NO_SYNC |
		(opt & OPT_DRY ? COWMAP_MERGER_DRY_RUN : 0) |
		(opt & OPT_SALVAGE ? COWMAP_MERGER_SALVAGE : 0);

	before = get(src);
	ret = merge(nlogs, policy, flags, to_out, &st, &es);
	after = get(src);
	CHECK(before.size >= 0 && after.size >= 0);
	if (ret >= 0) {
		CHECK(es.apply == st.applied && es.already == st.already);
		CHECK(es.conflict + es.forced == st.conflicts && es.forced == st.forced);
		CHECK(st.applied + st.already + st.conflicts <= st.records);
		if (policy == COWMAP_POLICY_FORCE)
			CHECK(ret == 0);
		else
			CHECK((uint64_t)ret == st.conflicts);
	}
	/* Writing nothing: a dry run; -o; all-or-nothing with conflicts. */
	if (!has_intent && (flags & COWMAP_MERGER_DRY_RUN || to_out ||
			    (ret > 0 && policy == COWMAP_POLICY_ALL_OR_NOTHING)))
		CHECK(same(before, after));
	if (ret > 0 && policy == COWMAP_POLICY_ALL_OR_NOTHING)
		CHECK(access(out, F_OK) != 0);
	if (ret >= 0 && !(flags & COWMAP_MERGER_DRY_RUN))
		CHECK(access(intent, F_OK) != 0);
	/* A clean in-place merge, run again, finds everything done. */
	if (ret == 0 && !to_out && !(flags & COWMAP_MERGER_DRY_RUN) &&
	    policy != COWMAP_POLICY_FORCE && !st.log_errors) {
		ret = merge(nlogs, policy, flags, 0, &st2, &es2);
		CHECK(ret == 0 && st2.applied == 0 && st2.bytes_written == 0);
		CHECK(same(get(src), after));
	}
	return 0;
}
