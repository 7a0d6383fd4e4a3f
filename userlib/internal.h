/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/* libcowmap internals: byte order, record parsing shared by the readers. */
#ifndef LIBCOWMAP_INTERNAL_H
#define LIBCOWMAP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "libcowmap.h"

struct stat;

#define API __attribute__((visibility("default")))

/*
 * The default version of a function that also has a LIBCOWMAP_0 one
 * (compat.c), in the file that defines it: NAME@@LIBCOWMAP_1 (userlib's
 * objects are built with -DCM_SYMVER; the fuzzers compile the sources
 * without it). See libcowmap.map.
 */
#ifdef CM_SYMVER
#define CM_VERSION_1(name) __asm__(".symver " #name ", " #name "@@@LIBCOWMAP_1")
#else
#define CM_VERSION_1(name) _Static_assert(1, #name)
#endif
/* For callbacks whose signature is fixed by someone else (libmnl). */
#define __maybe_unused __attribute__((unused))

#define HDR_SIZE	64u
#define REC_HDR		64u
#define HDR_ID_SIZE	80u	/* a header with the file's id */
#define HDR_MAX		4096u	/* the largest header_size a reader accepts */
#define REC_MAX		(REC_HDR + 2u * COWMAP_LOG_MAX_RUN)
#define SIZE_REC	96u	/* a size record (version 2): header + struct cowmap_log_size */

_Static_assert(sizeof(struct cowmap_log_header) == HDR_SIZE, "header size");
_Static_assert(sizeof(struct cowmap_log_header_id) == HDR_ID_SIZE, "id header");
_Static_assert(sizeof(struct cowmap_log_record) == REC_HDR, "record size");
_Static_assert(__builtin_offsetof(struct cowmap_log_header, crc) == 60, "hdr crc");
_Static_assert(__builtin_offsetof(struct cowmap_log_record, crc) == 56, "rec crc");
_Static_assert(__builtin_offsetof(struct cowmap_log_record, time_ns) == 40, "rec time");

static inline uint32_t get_le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, v);
	put_le32(p + 4, v >> 32);
}

/* cowmap_crc32() of @crc extended by @n zero bytes, in O(log n) steps. */
uint32_t cm_crc32_zeros(uint32_t crc, uint64_t n);

/* CRC of @len bytes at @p, the 4 bytes at @crc_off counted as zero. */
uint32_t cm_crc_skip(const uint8_t *p, size_t len, size_t crc_off);

/*
 * Check a header in @p (@avail bytes available). Fills @info; returns
 * COWMAP_LOGERR_NONE or the problem.
 */
enum cowmap_log_err_kind cm_parse_header(const uint8_t *p, size_t avail,
					 struct cowmap_log_info *info);

/*
 * Check the fixed part of a record of a log of format @version: magic and
 * size/length (a size record's, in version 2).
 */
enum cowmap_log_err_kind cm_check_rec_head(const uint8_t *p, uint32_t version,
					   uint32_t *size);

/*
 * Check a whole record of @size bytes (already through cm_check_rec_head)
 * and decode it into @rec, pointing into @p. Returns the problem or NONE.
 */
enum cowmap_log_err_kind cm_parse_record(const uint8_t *p, uint32_t size,
					 uint64_t pos, struct cowmap_rec *rec);

int cm_errno_of(enum cowmap_log_err_kind kind);

/* Whether the @n bytes at @p are all zero (reserved fields). */
static inline int cm_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

#define CM_RESERVED_ZERO(s) \
	(!(s)->reserved0 && cm_all_zero((s)->reserved, sizeof((s)->reserved)))


/* @info's file id, or NULL when the log has none (all zeros). */
static inline const uint8_t *cm_log_file_id(const struct cowmap_log_info *info)
{
	return cm_all_zero(info->file_id, sizeof(info->file_id)) ? NULL :
	       info->file_id;
}

/*
 * Encode @info's header into @out (HDR_ID_SIZE bytes): 80 bytes with its
 * file id, else 64. Returns the size.
 */
size_t cm_encode_header(const struct cowmap_log_info *info, uint8_t *out);

/*
 * Is @info a log of the file at @fd (or @path when @fd < 0), of stat @st?
 * Yes when device and inode match, or when the log has a file id, the file
 * has the same COWMAP_FILE_ID_XATTR and the inode matches.
 */
int cm_log_of_file(const struct cowmap_log_info *info, int fd,
		   const char *path, const struct stat *st);

/* fsync the directory holding @path. */
int cm_fsync_dir_of(const char *path);

/* "<dir of path>/.<base of path><suffix>", malloc'ed, or NULL. */
char *cm_sibling(const char *path, const char *prefix, const char *suffix);

/* Full-length pread/pwrite: bytes done (short only at EOF), or -errno. */
ssize_t cm_pread_full(int fd, void *buf, size_t len, uint64_t off);
int cm_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int cm_write_full(int fd, const void *buf, size_t len);

#endif
