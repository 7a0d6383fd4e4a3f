// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the journal reader (cowmap_log_open_mem(),
 * cowmap_log_next()) on arbitrary bytes.
 *
 * Checked besides memory safety (ASan, UBSan): every record returned lies
 * inside the input, at an 8-byte aligned position after the header, with a
 * legal length and the input's bytes, and encodes back to the same bytes
 * (cowmap_log_encode_record); a size record only in a version-2 log, 96
 * bytes, its offset its new size;
 * errors always move forward; a damaged region is reported once.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcowmap.h"

#define CHECK(cond) do {							\
		if (!(cond)) {							\
			fprintf(stderr, "fuzz_log: check failed: %s (line %d)\n",	\
				#cond, __LINE__);				\
			abort();						\
		}								\
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t enc[64 + 2 * COWMAP_LOG_MAX_RUN + 8];
	const struct cowmap_log_info *info;
	struct cowmap_log_error e;
	struct cowmap_log *log;
	struct cowmap_rec r;
	uint64_t next = 0;	/* no item may start before this */
	int ret;

	ret = cowmap_log_open_mem(data, size, &log, &e);
	if (ret) {
		CHECK(ret < 0 && e.kind != COWMAP_LOGERR_NONE);
		return 0;
	}
	info = cowmap_log_info(log);
	CHECK(info->version == COWMAP_LOG_VERSION_1 ||
	      info->version == COWMAP_LOG_VERSION);
	CHECK(info->header_size >= 64 && info->header_size <= size &&
	      info->header_size % 8 == 0 && info->flags == 0);
	/* The file id: bytes 64..80 of a header that has them, else none. */
	if (info->header_size >= 80)
		CHECK(!memcmp(info->file_id, data + 64, 16));
	else
		for (int i = 0; i < 16; i++)
			CHECK(!info->file_id[i]);
	/* A 64-byte header encodes back to itself. */
	if (info->header_size == 64) {
		cowmap_log_encode_header(info, enc);
		CHECK(!memcmp(enc, data, 64));
	}
	next = info->header_size;
	for (int i = 0; i < 1000000; i++) {
		ret = cowmap_log_next(log, &r, &e);
		if (ret == 0)
			break;
		if (ret == 1 && r.flags & COWMAP_REC_SIZE) {
			CHECK(info->version == COWMAP_LOG_VERSION);
			CHECK(r.flags == COWMAP_REC_SIZE && r.length == 0);
			CHECK(r.pos >= next && r.pos % 8 == 0 && r.pos + 96 <= size);
			CHECK(r.offset == r.new_size);
			CHECK(r.new_size < r.old_size || r.cut_crc == 0);
			CHECK(cowmap_log_encode_record(&r, enc) == 96);
			CHECK(!memcmp(enc, data + r.pos, 56));
			CHECK(!memcmp(enc + 64, data + r.pos + 64, 20));
			next = r.pos + 96;
			continue;
		}
		if (ret == 1) {
			size_t rs = cowmap_log_record_size(r.length);

			CHECK(r.length >= 1 && r.length <= COWMAP_LOG_MAX_RUN);
			CHECK(r.pos >= next && r.pos % 8 == 0 && r.pos + rs <= size);
			CHECK(!memcmp(r.old_bytes, data + r.pos + 64, r.length));
			CHECK(!memcmp(r.new_bytes, data + r.pos + 64 + r.length, r.length));
			CHECK(r.flags == 0);
			/* Decoding then encoding gives the same fields and data. */
			CHECK(cowmap_log_encode_record(&r, enc) == (int)rs);
			CHECK(!memcmp(enc, data + r.pos, 56));
			CHECK(!memcmp(enc + 64, data + r.pos + 64, 2 * r.length));
			next = r.pos + rs;
			continue;
		}
		CHECK(e.kind != COWMAP_LOGERR_NONE && e.err == ret);
		if (ret != -EBADMSG && ret != -ENODATA)
			break;	/* final */
		CHECK(e.offset >= next && e.resume > e.offset && e.resume <= size);
		next = e.resume;
	}
	CHECK(ret == 0 || ret < 0);
	cowmap_log_close(log);
	return 0;
}
