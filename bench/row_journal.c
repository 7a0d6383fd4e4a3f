// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench row 6: dump-log throughput. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cowbench.h"

/* ---- row 6: dump-log throughput ---- */

/*
 * One session whose journal holds C.jrecords records (8 of every 16 bytes
 * of the first pages of the write file changed: 256 records of 8 bytes per
 * page), made once for the group; the same bytes in a regular file on the
 * same filesystem, in the page cache. Every round each variant reads the
 * whole stream (header and records) with a 1 MiB buffer, interleaved in
 * slices of the stream. Values are ns per 4 KiB of stream. No warm-up
 * round: a million records amortise the translation of the code by TCG.
 */
#define JPARAM "/sys/module/cowmap/parameters/max_journal_bytes"
#define DUMP_BUF MIB

static struct {
	int sfd, ffd;
	char path[512];
	char oldmax[64];	/* max_journal_bytes before the group, or "" */
} J = { .sfd = -1, .ffd = -1 };

void journal_restore_param(void)
{
	if (J.oldmax[0] && getpid() == C.pid) {
		write_str(JPARAM, J.oldmax);
		J.oldmax[0] = 0;
	}
}

/* The whole journal of @sfd into @fd, by COWMAP_IOC_DUMP; its size or -1. */
ssize_t dump_to(int sfd, int fd)
{
	uint8_t *buf = map_anon(DUMP_BUF);
	struct cowmap_dump d = { 0 };
	uint64_t cursor = 0;
	size_t total = 0;

	if (!buf)
		return -1;
	for (;;) {
		d = (struct cowmap_dump){ .buf = (uintptr_t)buf,
					  .buf_size = DUMP_BUF, .cursor = cursor };
		if (ioctl(sfd, COWMAP_IOC_DUMP, &d))
			break;
		if (!d.bytes) {
			if (d.needed)
				errno = EMSGSIZE;
			break;
		}
		if (write(fd, buf, d.bytes) != d.bytes)
			break;
		total += d.bytes;
		cursor = d.cursor;
	}
	munmap(buf, DUMP_BUF);
	return d.bytes || d.needed ? -1 : (ssize_t)total;
}

int journal_setup(void)
{
	size_t pages = (C.jrecords + 255) / 256, len = pages * PG;
	struct cowmap_commit cc = { 0 };
	struct cowmap_status st;
	char want[32];
	uint8_t *p;
	uint64_t t0;
	ssize_t n;

	if (len > C.write_size)
		return EFBIG;
	/* 80 bytes per 8 changed: past the default limit (64 MiB). */
	if (read_small(JPARAM, J.oldmax, sizeof(J.oldmax)))
		return errno;
	snprintf(want, sizeof(want), "%zu", (size_t)C.jrecords * 96 + 64 * MIB);
	if (write_str(JPARAM, want))
		return errno;
	J.sfd = cm_session(C.wfd);
	if (J.sfd < 0)
		return errno;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, J.sfd, 0);
	if (p == MAP_FAILED)
		return errno;
	for (size_t off = 0; off < len; off += 16)
		*(volatile uint64_t *)(p + off) = ~file_word(off);
	munmap(p, len);
	t0 = now_ns();
	if (ioctl(J.sfd, COWMAP_IOC_COMMIT, &cc))
		return errno;
	fact("journal_commit_ns_per_record", (double)(now_ns() - t0) / cc.records);
	if (cc.records != pages * 256 || cm_status(J.sfd, &st))
		return EPROTO;
	fact("journal_records", st.journal_records);
	fact("journal_bytes", st.journal_bytes);
	fact("journal_pages", pages);

	snprintf(J.path, sizeof(J.path), "%s/journal.log", C.dir);
	J.ffd = open(J.path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (J.ffd < 0)
		return errno;
	n = dump_to(J.sfd, J.ffd);
	if (n < 0)
		return errno;
	if ((size_t)n != sizeof(struct cowmap_log_header) + st.journal_bytes)
		return EPROTO;
	C.jstream = n;
	if (fsync(J.ffd))
		return errno;
	p = map_anon(DUMP_BUF);
	for (size_t off = 0; p && off < C.jstream; off += DUMP_BUF)
		if (pread(J.ffd, p, DUMP_BUF, off) < 0)
			return errno;
	if (p)
		munmap(p, DUMP_BUF);
	return 0;
}

void journal_teardown(void)
{
	if (J.ffd >= 0) {
		close(J.ffd);
		unlink(J.path);
	}
	if (J.sfd >= 0)
		cm_close(J.sfd);
	J.ffd = J.sfd = -1;
	journal_restore_param();
}

enum { JV_DUMP, JV_READ, JV_FILE };

static int j_variant(struct run *r, enum phase ph, int how)
{
	size_t end = (r->first + r->n) * PG;
	struct cowmap_dump d;
	ssize_t n;

	switch (ph) {
	case SETUP:
		r->p = map_anon(DUMP_BUF);
		if (!r->p)
			return errno;
		memset(r->p, 0, DUMP_BUF);
		r->pos = r->cursor = 0;
		if (how != JV_DUMP &&
		    lseek(how == JV_READ ? J.sfd : J.ffd, 0, SEEK_SET) != 0)
			return errno;
		return 0;
	case SLICE:
		while (r->pos < end && r->pos < C.jstream) {
			if (how == JV_DUMP) {
				d = (struct cowmap_dump){ .buf = (uintptr_t)r->p,
							  .buf_size = DUMP_BUF,
							  .cursor = r->cursor };
				if (ioctl(J.sfd, COWMAP_IOC_DUMP, &d))
					return errno;
				n = d.bytes;
				r->cursor = d.cursor;
			} else {
				n = read(how == JV_READ ? J.sfd : J.ffd, r->p, DUMP_BUF);
				if (n < 0)
					return errno;
			}
			if (!n)
				return EPROTO;	/* ended before the stream's size */
			r->pos += n;
		}
		return 0;
	case DONE:
		munmap(r->p, DUMP_BUF);
		return r->pos == C.jstream ? 0 : EPROTO;
	default:
		return EINVAL;
	}
}

int j_dump(struct run *r, enum phase ph) { return j_variant(r, ph, JV_DUMP); }
int j_read(struct run *r, enum phase ph) { return j_variant(r, ph, JV_READ); }
int j_file(struct run *r, enum phase ph) { return j_variant(r, ph, JV_FILE); }
