// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench row 10: a session as a regular file (COWMAP_IOC_VIEW) against
 * the file itself: pwrite of 4 KiB records, sequential read, append. See
 * cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cowbench.h"

#define VIEW_CHUNK	MIB	/* row 10b: bytes per read(2) */
#define APPEND_CHUNK	(64 * 1024)	/* row 10c: bytes per write(2) */

static uint8_t *vbuf;	/* VIEW_CHUNK bytes: the source or the target */

static int vbuf_get(void)
{
	if (!vbuf) {
		vbuf = map_anon(VIEW_CHUNK);
		if (!vbuf)
			return errno;
		/* Not the file's pattern: every byte written changes. */
		memset(vbuf, 0x5a, VIEW_CHUNK);
	}
	return 0;
}

/* A read-write view of the session @fd, or -1 with errno. */
static int view_of(int fd)
{
	struct cowmap_view v = { .flags = COWMAP_VIEW_RDWR | COWMAP_VIEW_CLOEXEC };

	if (ioctl(fd, COWMAP_IOC_VIEW, &v))
		return -1;
	return v.fd;
}

/* r->fd: the session; r->acc[0]: the view's fd (or the file's, no session). */
static int v_setup(struct run *r, int file, int session)
{
	int e = vbuf_get();

	r->fd = -1;
	r->acc[0] = file;
	if (e || !session)
		return e;
	r->fd = cm_session(file);
	if (r->fd < 0)
		return errno;
	r->acc[0] = view_of(r->fd);
	if (r->acc[0] < 0) {
		e = errno;
		cm_close(r->fd);
		r->fd = -1;
		return e;
	}
	return 0;
}

static void v_done(struct run *r)
{
	if (r->fd < 0)
		return;
	cm_counters(r->fd, &r->m, r->pages);
	close((int)r->acc[0]);
	cm_close(r->fd);
	r->fd = -1;
}

/* ---- row 10a: pwrite of 4 KiB records, one per page, page aligned ---- */

/*
 * The view's side discards its pages after each slice, untimed: the write
 * group's session (row 1) holds two pages per page of the file too, and
 * both together would reach the owner's max_user_pages (an eighth of RAM).
 */
static int v_pwrite(struct run *r, enum phase ph, int session)
{
	int fd = (int)r->acc[0];
	struct cowmap_status st;
	uint64_t t0;

	switch (ph) {
	case SETUP:
		r->acc[1] = r->acc[2] = 0;
		return v_setup(r, C.wfd, session);
	case SLICE:
		t0 = now_ns();
		for (size_t i = r->first; i < r->first + r->n; i++)
			if (pwrite(fd, vbuf, PG, i * PG) != (ssize_t)PG)
				return errno ? errno : EIO;
		r->slice_ns = now_ns() - t0;
		if (!session)
			return 0;
		if (cm_status(r->fd, &st) || ioctl(r->fd, COWMAP_IOC_DISCARD, 0))
			return errno;
		r->acc[1] += st.private_pages + st.twin_pages;
		r->acc[2] = st.cow_copies;
		return 0;
	case DONE:
		v_done(r);
		if (session) {
			r->m.x[X_CM_OWNED] = r->acc[1] / r->pages;
			r->m.x[X_CM_COPIES] = r->acc[2] / r->pages;
		}
		/* The file's own pwrite dirtied the cache: clean it, untimed. */
		if (!session) {
			fsync(C.wfd);
			C.wdirty = 1;
		}
		return 0;
	default:
		return EINVAL;
	}
}

int vw_view(struct run *r, enum phase ph) { return v_pwrite(r, ph, 1); }
int vw_file(struct run *r, enum phase ph) { return v_pwrite(r, ph, 0); }

/* ---- row 10b: sequential read(2) of an untouched file ---- */

static int v_read(struct run *r, enum phase ph, int session)
{
	int fd = (int)r->acc[0];
	size_t end = (r->first + r->n) * PG, len;
	ssize_t got;

	switch (ph) {
	case SETUP:
		return v_setup(r, C.rfd, session);
	case SLICE:
		/* Each variant has its own fd (the view's) but shares C.rfd. */
		if (lseek(fd, r->first * PG, SEEK_SET) < 0)
			return errno;
		for (size_t off = r->first * PG; off < end; off += len) {
			len = end - off < VIEW_CHUNK ? end - off : VIEW_CHUNK;
			got = read(fd, vbuf, len);
			if (got != (ssize_t)len)
				return got < 0 ? errno : EIO;
		}
		return 0;
	case DONE:
		v_done(r);
		return 0;
	default:
		return EINVAL;
	}
}

int vr_view(struct run *r, enum phase ph) { return v_read(r, ph, 1); }
int vr_file(struct run *r, enum phase ph) { return v_read(r, ph, 0); }

/* ---- row 10c: append C.append_size bytes to an empty file ---- */

/*
 * A new empty file; with @session a read-write view of a session on it.
 * O_APPEND, APPEND_CHUNK bytes per write(2), timed from the first write to
 * the last (files, sessions and the final discard are not). Then the size
 * is checked, and everything goes.
 */
static int v_append(struct run *r, int session)
{
	char path[512];
	size_t n = C.append_size / APPEND_CHUNK;
	int file, fd, e = vbuf_get();
	uint64_t t0;

	if (e)
		return e;
	file = make_file(path, sizeof(path), C.dir, session ? "append-view.dat" :
			 "append-file.dat", 0);
	if (file < 0)
		return errno;
	unlink(path);
	e = v_setup(r, file, session);
	if (e) {
		close(file);
		return e;
	}
	fd = (int)r->acc[0];
	if (fcntl(fd, F_SETFL, O_APPEND)) {
		e = errno;
		goto out;
	}
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		if (write(fd, vbuf, APPEND_CHUNK) != APPEND_CHUNK) {
			e = errno ? errno : EIO;
			goto out;
		}
	}
	r->m.value = (double)(now_ns() - t0) / (C.append_size / PG);
	if (lseek(fd, 0, SEEK_END) != (off_t)(n * APPEND_CHUNK))
		e = EIO;
out:
	v_done(r);
	close(file);
	return e;
}

int va_view(struct run *r, enum phase ph)
{
	return ph == WHOLE ? v_append(r, 1) : EINVAL;
}

int va_file(struct run *r, enum phase ph)
{
	return ph == WHOLE ? v_append(r, 0) : EINVAL;
}
