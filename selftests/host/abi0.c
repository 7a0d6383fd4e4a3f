// SPDX-License-Identifier: GPL-2.0
/*
 * A program as built against libcowmap 0.1.0, for tools/host-check: it
 * declares 0.1.0's structs itself and calls the LIBCOWMAP_0 versions of the
 * functions that take them (linked with libcowmap.so, the way an old
 * binary is). Every struct is followed by guard bytes that the library
 * must not touch, and input structs by non-zero bytes it must not read.
 *
 *   abi0 LOG SOURCE   LOG: a version-2 log from "mklog LOG SOURCE --v2"
 *                     (records 1, 2, 4; seq 3 a size record)
 *
 * Prints one line per check, "ok" or "FAIL ...", and exits 1 if any failed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "libcowmap.h"

struct rec0 {
	uint64_t seq, session_id, offset;
	uint32_t length, flags;
	uint64_t time_ns;
	uint32_t pid, uid;
	const uint8_t *old_bytes, *new_bytes;
	uint64_t pos;
};

struct info0 {
	uint32_t version, header_size;
	uint64_t session_id;
	uint32_t dev_major, dev_minor;
	uint64_t ino, size_at_attach, created_ns;
	uint32_t flags;
};

struct err0 {
	int kind, err;
	uint64_t offset, resume;
};

struct stats0 {
	uint64_t logs, records, applied, already, conflicts, forced, log_errors;
	int written;
	uint64_t bytes_written;
	int recovered;
};

#define OLD(name) __asm__(".symver " #name "0, " #name "@LIBCOWMAP_0")
int cowmap_log_open0(const char *path, struct cowmap_log **log, struct err0 *err);
int cowmap_log_next0(struct cowmap_log *log, struct rec0 *rec, struct err0 *err);
int cowmap_log_writer_open0(const char *path, const struct info0 *info,
			    unsigned int flags, struct cowmap_log_writer **w);
int cowmap_log_append0(struct cowmap_log_writer *w, const struct rec0 *rec);
int cowmap_merger_run0(struct cowmap_merger *m, const char *source, const char *out,
		       enum cowmap_merger_policy policy, unsigned int flags,
		       struct stats0 *stats);
OLD(cowmap_log_open);
OLD(cowmap_log_next);
OLD(cowmap_log_writer_open);
OLD(cowmap_log_append);
OLD(cowmap_merger_run);

#define GUARD 64

/* A struct of type @t, then GUARD bytes of 0xa5. */
#define GUARDED(t, name) \
	union { struct { t v; uint8_t g[GUARD]; } s; uint8_t raw[sizeof(t) + GUARD]; } name; \
	memset(&name, 0xa5, sizeof(name))

static int failed;

static void check(int cond, const char *what)
{
	printf("%s %s\n", cond ? "ok" : "FAIL", what);
	if (!cond)
		failed = 1;
}

static int guard_intact(const uint8_t *g)
{
	for (int i = 0; i < GUARD; i++)
		if (g[i] != 0xa5)
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	struct cowmap_log_writer *w;
	struct cowmap_merger *m;
	struct cowmap_log *log;
	char out[4096];
	int ret, recs = 0, size_errs = 0, guards = 1;
	uint64_t seqs = 0;
	struct stat st;

	if (argc != 3) {
		fprintf(stderr, "usage: abi0 LOG SOURCE\n");
		return 2;
	}
	{
		GUARDED(struct err0, e);
		GUARDED(struct rec0, r);

		ret = cowmap_log_open0(argv[1], &log, &e.s.v);
		check(ret == 0 && guard_intact(e.s.g), "log_open@LIBCOWMAP_0: opened, err0's guard intact");
		if (ret)
			return 1;
		for (int i = 0; i < 10; i++) {
			memset(&r, 0xa5, sizeof(r));
			ret = cowmap_log_next0(log, &r.s.v, &e.s.v);
			guards &= guard_intact(r.s.g) && guard_intact(e.s.g);
			if (ret == 0)
				break;
			if (ret == 1) {
				recs++;
				seqs = seqs * 10 + r.s.v.seq;
			} else if (ret == -EBADMSG && e.s.v.kind == COWMAP_LOGERR_REC_FLAGS) {
				size_errs++;
				seqs = seqs * 10;
			}
		}
		cowmap_log_close(log);
		check(guards, "log_next@LIBCOWMAP_0: rec0's and err0's guards intact");
		check(recs == 3 && size_errs == 1 && seqs == 1204,
		      "log_next@LIBCOWMAP_0: records 1, 2, 4; the size record an unknown-flags error");
	}
	{
		GUARDED(struct info0, info);
		GUARDED(struct rec0, r);

		memset(&info.s.v, 0, sizeof(info.s.v));
		memset(&r.s.v, 0, sizeof(r.s.v));
		if (stat(argv[2], &st))
			return 1;
		info.s.v.session_id = 9;
		info.s.v.dev_major = major(st.st_dev);
		info.s.v.dev_minor = minor(st.st_dev);
		info.s.v.ino = st.st_ino;
		r.s.v.seq = 1;
		r.s.v.session_id = 9;
		r.s.v.length = 1;
		r.s.v.time_ns = 1;
		r.s.v.old_bytes = (const uint8_t *)"h";
		r.s.v.new_bytes = (const uint8_t *)"H";
		snprintf(out, sizeof(out), "%s.abi0", argv[1]);
		/* The guards are non-zero: a current reader of them would refuse. */
		ret = cowmap_log_writer_open0(out, &info.s.v, COWMAP_LOGW_NO_SYNC, &w);
		check(!ret, "log_writer_open@LIBCOWMAP_0: the bytes after info0 are not read");
		if (ret)
			return 1;
		ret = cowmap_log_append0(w, &r.s.v);
		check(!ret, "log_append@LIBCOWMAP_0: the bytes after rec0 are not read");
		check(!cowmap_log_writer_close(w, 1), "log_writer_close");
		/* The current version refuses the same bytes as reserved fields. */
		ret = cowmap_log_writer_open(out, (const struct cowmap_log_info *)&info,
					     COWMAP_LOGW_NO_SYNC, &w);
		check(ret == -EINVAL, "log_writer_open@@LIBCOWMAP_1: non-zero reserved is -EINVAL");
		{
			struct cowmap_rec cur = { .seq = 1, .length = 1, .old_bytes = r.s.v.old_bytes,
						  .new_bytes = r.s.v.new_bytes };
			uint8_t enc[128];

			check(cowmap_log_encode_record(&cur, enc) == 72,
			      "log_encode_record@@LIBCOWMAP_1: a zeroed record encodes");
			cur.reserved[3] = 1;
			check(cowmap_log_encode_record(&cur, enc) == -EINVAL,
			      "log_encode_record@@LIBCOWMAP_1: non-zero reserved is -EINVAL");
		}
	}
	{
		GUARDED(struct stats0, s);

		if (cowmap_merger_new(NULL, NULL, &m) || cowmap_merger_add_log(m, out) != 1)
			return 1;
		ret = cowmap_merger_run0(m, argv[2], NULL, COWMAP_POLICY_ALL_OR_NOTHING,
					 COWMAP_MERGER_DRY_RUN | COWMAP_MERGER_NO_SYNC, &s.s.v);
		check(ret == 0 && s.s.v.records == 1 && s.s.v.applied == 1 && guard_intact(s.s.g),
		      "merger_run@LIBCOWMAP_0: stats0 filled, its guard intact");
		cowmap_merger_free(m);
	}
	remove(out);
	return failed;
}
