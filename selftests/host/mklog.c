// SPDX-License-Identifier: GPL-2.0
/*
 * A journal log for tools/host-check's JSON checks, made with the library
 * (no module): mklog LOG SOURCE writes a log of SOURCE (its device and
 * inode) holding two records of session 7 whose times are above 2^53 ns:
 *
 *   seq 1, offset 0: "hello" -> "café" (valid UTF-8, 5 bytes)
 *   seq 2, offset 6: "worl"  -> ff 00 1b 22 (an invalid byte, NUL, ESC, '"')
 *
 * mklog LOG SOURCE --v2 writes a version-2 log with two more (SOURCE must
 * then be 12 bytes):
 *
 *   seq 3: a size record, 12 -> 16
 *   seq 4, offset 12: 00 00 00 00 -> "more"
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "libcowmap.h"

int main(int argc, char **argv)
{
	struct cowmap_log_info info = {
		.session_id = 7,
		.created_ns = 1764937200123456789ULL,
	};
	struct cowmap_rec r = {
		.session_id = 7,
		.time_ns = 1764937201987654321ULL,
		.pid = 42,
		.uid = 1000,
	};
	static const struct {
		uint64_t offset;
		uint32_t length;
		const char *old, *new;
	} recs[] = {
		{ 0, 5, "hello", "caf\xc3\xa9" },
		{ 6, 4, "worl", "\xff\x00\x1b\"" },
	};
	struct cowmap_log_writer *w;
	struct stat st;
	int c, v2 = argc == 4 && !strcmp(argv[3], "--v2");

	if (argc != 3 && !v2) {
		fprintf(stderr, "usage: mklog LOG SOURCE [--v2]\n");
		return 2;
	}
	if (stat(argv[2], &st)) {
		perror(argv[2]);
		return 1;
	}
	info.dev_major = major(st.st_dev);
	info.dev_minor = minor(st.st_dev);
	info.ino = st.st_ino;
	info.size_at_attach = st.st_size;
	if (v2)
		info.version = COWMAP_LOG_VERSION;
	c = cowmap_log_writer_open(argv[1], &info, COWMAP_LOGW_NO_SYNC, &w);
	if (c)
		goto fail;
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		r.seq = i + 1;
		r.offset = recs[i].offset;
		r.length = recs[i].length;
		r.old_bytes = (const uint8_t *)recs[i].old;
		r.new_bytes = (const uint8_t *)recs[i].new;
		c = cowmap_log_append(w, &r);
		if (c)
			goto fail;
	}
	if (v2) {
		struct cowmap_rec z = r;

		z.seq = 3;
		z.flags = COWMAP_REC_SIZE;
		z.length = 0;
		z.old_size = 12;
		z.offset = z.new_size = 16;
		c = cowmap_log_append(w, &z);
		r.seq = 4;
		r.offset = 12;
		r.length = 4;
		r.old_bytes = (const uint8_t *)"\0\0\0\0";
		r.new_bytes = (const uint8_t *)"more";
		if (!c)
			c = cowmap_log_append(w, &r);
		if (c)
			goto fail;
	}
	c = cowmap_log_writer_close(w, 1);
	if (!c)
		return 0;
fail:
	fprintf(stderr, "mklog: %s: %s\n", argv[1], strerror(-c));
	return 1;
}
