// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench row 5: commit. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cowbench.h"

/* ---- row 5: commit ---- */

/*
 * Each slice: a fresh session on the write file, 1% of its pages chosen at
 * random (a different set every slice), written with plain stores (8 bytes
 * at an offset inside the page, or every byte of the page), then one
 * COWMAP_IOC_COMMIT. A variant times either the writes (each a first-write
 * fault) or the commit; session setup and discard are not timed. Values
 * are per dirty page.
 */
static uint32_t *pick;		/* page numbers, partly shuffled */
static uint32_t *pick_off;	/* an offset inside each picked page */

size_t commit_pages(void)
{
	size_t n = C.write_size / PG / 100;

	return n ? n : 1;
}

size_t commit_units(void)
{
	return commit_pages() * C.slices;
}

/* @k distinct random pages of the write file at pick[0 .. k). */
static int pick_pages(size_t k)
{
	size_t n = C.write_size / PG;

	if (!pick) {
		pick = malloc(n * sizeof(*pick));
		pick_off = malloc(n * sizeof(*pick_off));
		if (!pick || !pick_off)
			return ENOMEM;
		for (size_t i = 0; i < n; i++)
			pick[i] = i;
	}
	for (size_t i = 0; i < k; i++) {
		size_t j = i + rnd() % (n - i);
		uint32_t t = pick[i];

		pick[i] = pick[j];
		pick[j] = t;
		/* 8-byte aligned, away from the page's ends: one record each. */
		pick_off[i] = 8 + (rnd() % ((PG - 24) / 8)) * 8;
	}
	return 0;
}

enum { CT_FAULT, CT_COMMIT };

static int c_slice(struct run *r, int full, int what)
{
	size_t k = commit_pages();
	struct cowmap_commit cc = { 0 };
	uint64_t t0, t1, t2;
	int err;

	err = pick_pages(k);
	if (!err)
		err = map_setup(r, C.wfd, 1, MAP_SHARED, C.write_size);
	if (err)
		return err;
	t0 = now_ns();
	for (size_t i = 0; i < k; i++) {
		size_t base = (size_t)pick[i] * PG;

		if (full) {
			for (size_t o = 0; o < PG; o += 8)
				*(volatile uint64_t *)(r->p + base + o) = ~file_word(base + o);
		} else {
			size_t o = base + pick_off[i];

			*(volatile uint64_t *)(r->p + o) = ~file_word(o);
		}
	}
	t1 = now_ns();
	if (ioctl(r->fd, COWMAP_IOC_COMMIT, &cc))
		err = errno;
	t2 = now_ns();
	/* Every page seen; 8-byte writes are one record each. */
	if (!err && (cc.pages != k || (!full && cc.records != k)))
		err = EPROTO;
	r->slice_ns = what == CT_COMMIT ? t2 - t1 : t1 - t0;
	r->acc[0] += cc.records;
	r->acc[1] += cc.bytes;
	r->acc[2] += k;
	munmap(r->p, C.write_size);
	cm_close(r->fd);
	r->fd = -1;
	return err;
}

static int c_variant(struct run *r, enum phase ph, int full, int what)
{
	switch (ph) {
	case SETUP:
		return 0;
	case SLICE:
		return c_slice(r, full, what);
	case DONE:
		if (r->acc[2]) {
			r->m.x[X_RECORDS] = r->acc[0] / r->acc[2];
			r->m.x[X_JOURNAL_B] = r->acc[1] / r->acc[2];
		}
		return 0;
	default:
		return EINVAL;
	}
}

int c8_fault(struct run *r, enum phase ph) { return c_variant(r, ph, 0, CT_FAULT); }
int c8_commit(struct run *r, enum phase ph) { return c_variant(r, ph, 0, CT_COMMIT); }
int cf_commit(struct run *r, enum phase ph) { return c_variant(r, ph, 1, CT_COMMIT); }
