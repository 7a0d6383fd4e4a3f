// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench row 2: sequential read of an untouched file. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cowbench.h"

/* ---- row 2: sequential read of an untouched file ---- */

static volatile uint64_t sink;

static uint64_t sum_word_per_page(const uint8_t *p, size_t pages)
{
	uint64_t s = 0;

	for (size_t i = 0; i < pages; i++)
		s += *(const volatile uint64_t *)(p + i * PG);
	return s;
}

static uint64_t sum_all(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t s = 0;

	for (size_t i = 0; i < len / 8; i++)
		s += w[i];
	return s;
}

static int r_map(struct run *r, enum phase ph, int session, int full)
{
	const uint8_t *p;

	switch (ph) {
	case SETUP:
		return map_setup(r, C.rfd, session, MAP_SHARED, C.read_size);
	case SLICE:
		p = r->p + r->first * PG;
		sink += full ? sum_all(p, r->n * PG) : sum_word_per_page(p, r->n);
		return 0;
	case DONE:
		map_done(r, C.read_size);
		return 0;
	default:
		return EINVAL;
	}
}

#define PREAD_CHUNK	MIB
static uint8_t *pread_buf;

static int r_pread(struct run *r, enum phase ph, int full)
{
	size_t end = (r->first + r->n) * PG, len;
	uint64_t s = 0;

	switch (ph) {
	case SETUP:
		if (!pread_buf) {
			pread_buf = map_anon(PREAD_CHUNK);
			if (!pread_buf)
				return errno;
			memset(pread_buf, 0, PREAD_CHUNK);
		}
		return 0;
	case SLICE:
		for (size_t off = r->first * PG; off < end; off += len) {
			len = end - off < PREAD_CHUNK ? end - off : PREAD_CHUNK;
			if (pread(C.rfd, pread_buf, len, off) != (ssize_t)len)
				return errno ? errno : EIO;
			s += full ? sum_all(pread_buf, len) :
				    sum_word_per_page(pread_buf, len / PG);
		}
		sink += s;
		return 0;
	case DONE:
		return 0;
	default:
		return EINVAL;
	}
}

int r1_cowmap(struct run *r, enum phase ph) { return r_map(r, ph, 1, 0); }
int r1_shared(struct run *r, enum phase ph) { return r_map(r, ph, 0, 0); }
int r1_pread(struct run *r, enum phase ph) { return r_pread(r, ph, 0); }
int rf_cowmap(struct run *r, enum phase ph) { return r_map(r, ph, 1, 1); }
int rf_shared(struct run *r, enum phase ph) { return r_map(r, ph, 0, 1); }
int rf_pread(struct run *r, enum phase ph) { return r_pread(r, ph, 1); }
