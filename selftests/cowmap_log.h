/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small, independent reader of the journal format for the selftests:
 * it checks everything docs/journal-format.md promises (magic, version,
 * sizes, padding, CRC-32 of header and records) on what the kernel dumps.
 */
#ifndef COWMAP_LOG_H
#define COWMAP_LOG_H

#include "cowmap_test.h"

/* CRC-32 (IEEE), as zlib's crc32(): the journal's checksum. */
static inline uint32_t crc32(const void *p, size_t n)
{
	static uint32_t table[256];
	const uint8_t *b = p;
	uint32_t c = ~0U;

	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;

			for (int k = 0; k < 8; k++)
				v = v & 1 ? 0xEDB88320U ^ (v >> 1) : v >> 1;
			table[i] = v;
		}
	while (n--)
		c = table[(c ^ *b++) & 0xff] ^ (c >> 8);
	return ~c;
}

/* A record as parsed from a log. */
struct rec {
	uint64_t seq, offset, time_ns, session;
	uint32_t length, pid, uid;
	const uint8_t *old, *new;
	/* A size record (version 2): old_size -> offset (the new size). */
	int is_size;
	uint64_t old_size;
	uint32_t cut_crc;
};

struct log {
	uint8_t *buf;
	size_t len;
	struct cowmap_log_header hdr;
	struct rec recs[4096];
	int n;
};

/*
 * Parse a log (header + records), verifying everything the format promises.
 * Returns 0, or the byte offset (+1) of the first bad item.
 */
static inline long parse_log(struct log *l)
{
	struct cowmap_log_header h;
	size_t pos = sizeof(h);

	l->n = 0;
	if (l->len < sizeof(h))
		return 1;
	memcpy(&h, l->buf, sizeof(h));
	l->hdr = h;
	h.crc = 0;
	if (memcmp(h.magic, COWMAP_LOG_MAGIC, 8) ||
	    (h.version != COWMAP_LOG_VERSION_1 && h.version != COWMAP_LOG_VERSION) ||
	    h.header_size != sizeof(h) || crc32(&h, sizeof(h)) != l->hdr.crc)
		return 1;
	while (pos < l->len) {
		struct cowmap_log_record r;
		struct cowmap_log_size z;
		uint32_t crc;

		if (l->len - pos < sizeof(r))
			return pos + 1;
		memcpy(&r, l->buf + pos, sizeof(r));
		/* Version 2: a size record, header + struct cowmap_log_size. */
		if (r.flags == COWMAP_REC_SIZE) {
			if (l->hdr.version != COWMAP_LOG_VERSION || r.magic != COWMAP_REC_MAGIC ||
			    r.size != sizeof(r) + sizeof(z) || r.size > l->len - pos ||
			    r.length || r.reserved)
				return pos + 1;
			memcpy(&z, l->buf + pos + sizeof(r), sizeof(z));
			crc = r.crc;
			((struct cowmap_log_record *)(l->buf + pos))->crc = 0;
			r.crc = crc32(l->buf + pos, r.size);
			((struct cowmap_log_record *)(l->buf + pos))->crc = crc;
			if (r.crc != crc || z.new_size != r.offset || z.reserved0 ||
			    z.reserved || (z.new_size >= z.old_size && z.cut_crc))
				return pos + 1;
			l->recs[l->n++] = (struct rec){
				.seq = r.seq, .offset = r.offset, .time_ns = r.time_ns,
				.session = r.session_id, .pid = r.pid, .uid = r.uid,
				.is_size = 1, .old_size = z.old_size, .cut_crc = z.cut_crc,
			};
			pos += r.size;
			continue;
		}
		if (r.magic != COWMAP_REC_MAGIC || r.size % 8 || r.size > l->len - pos ||
		    r.length == 0 || r.length > COWMAP_LOG_MAX_RUN ||
		    r.size != ((sizeof(r) + 2 * r.length + 7) & ~7UL) || r.flags || r.reserved)
			return pos + 1;
		crc = r.crc;
		((struct cowmap_log_record *)(l->buf + pos))->crc = 0;
		r.crc = crc32(l->buf + pos, r.size);
		((struct cowmap_log_record *)(l->buf + pos))->crc = crc;
		if (r.crc != crc)
			return pos + 1;
		/* Padding is zero. */
		for (size_t i = sizeof(r) + 2 * r.length; i < r.size; i++)
			if (l->buf[pos + i])
				return pos + 1;
		l->recs[l->n++] = (struct rec){
			.seq = r.seq, .offset = r.offset, .time_ns = r.time_ns,
			.session = r.session_id, .length = r.length, .pid = r.pid,
			.uid = r.uid, .old = l->buf + pos + sizeof(r),
			.new = l->buf + pos + sizeof(r) + r.length,
		};
		pos += r.size;
	}
	return 0;
}

/* Dump the whole journal of @fd with a buffer of @bufsize bytes. */
static inline int dump_all(int fd, struct log *l, size_t bufsize)
{
	struct cowmap_dump d = { 0 };
	uint64_t cursor = 0;
	uint8_t *buf = malloc(bufsize);

	l->buf = NULL;
	l->len = 0;
	for (;;) {
		d = (struct cowmap_dump){ .buf = (uintptr_t)buf, .buf_size = bufsize,
					  .cursor = cursor };
		if (ioctl(fd, COWMAP_IOC_DUMP, &d))
			return -1;
		if (!d.bytes) {
			if (d.needed)
				return -2;	/* the buffer is too small */
			break;
		}
		l->buf = realloc(l->buf, l->len + d.bytes);
		memcpy(l->buf + l->len, buf, d.bytes);
		l->len += d.bytes;
		cursor = d.cursor;
	}
	free(buf);
	return parse_log(l) ? -3 : 0;
}

static inline int rec_is(const struct rec *r, uint64_t off, const void *old,
		  const void *new, uint32_t len)
{
	return r->offset == off && r->length == len && !memcmp(r->old, old, len) &&
	       !memcmp(r->new, new, len);
}

#endif /* COWMAP_LOG_H */
