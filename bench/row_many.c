// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench rows 12-14: many sessions on one file, threads writing one
 * session, attach and close on a huge sparse file. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cowbench.h"

/* ----------------------------------------------- module limits, raised --- */

/*
 * Rows 12 and 14 open up to 1,024 sessions of one user and pin the same
 * file pages once per session: the per-user and global limits (sized for
 * a 0666 device, docs/security.md) are raised out of the way while the
 * group runs, and restored afterwards (also on exit).
 */
#define PARAM_DIR "/sys/module/cowmap/parameters/"
static const char *const raised[] = {
	"max_user_sessions", "max_user_pages", "max_total_pages",
	"max_session_pages", "max_user_base_pages", "max_total_base_pages",
};
#define NRAISED (sizeof(raised) / sizeof(raised[0]))
static char saved[NRAISED][32];

void many_restore_params(void)
{
	char path[128];

	if (getpid() != C.pid)
		return;
	for (size_t i = 0; i < NRAISED; i++) {
		if (!saved[i][0])
			continue;
		snprintf(path, sizeof(path), PARAM_DIR "%s", raised[i]);
		write_str(path, saved[i]);
		saved[i][0] = 0;
	}
}

int many_setup(void)
{
	struct rlimit rl = { 8192, 8192 };
	char path[128];

	if (setrlimit(RLIMIT_NOFILE, &rl))
		return errno;
	for (size_t i = 0; i < NRAISED; i++) {
		snprintf(path, sizeof(path), PARAM_DIR "%s", raised[i]);
		if (read_small(path, saved[i], sizeof(saved[i])))
			continue;	/* a module without it */
		if (write_str(path, i ? "16777216" : "4096")) {
			many_restore_params();
			return errno ? errno : EIO;
		}
	}
	return 0;
}

void many_teardown(void)
{
	many_restore_params();
}

/* ------------------------------- row 12: N sessions on one 64 MiB file --- */

/*
 * N sessions of one process on the write file, each mapped whole (or, the
 * baseline, N MAP_PRIVATE mappings of the file: the kernel's own copy on
 * write, whose cost under TCG also grows with the mapped total). Timed:
 * each mapping in turn reads one word of every page and then writes one
 * word of every 100th page (1 %). The value is the time per page read,
 * over all N: flat in N if nothing a fault does grows with the number of
 * sessions on the file. Untimed: attach and map before, unmap and close
 * (discarding) after.
 */
static int many(struct run *r, int n, int session)
{
	size_t len = C.write_size, pages = len / PG;
	uint8_t **map = calloc(n, sizeof(*map));
	int *fd = calloc(n, sizeof(*fd)), err = 0, k;
	volatile uint64_t sink = 0;
	uint64_t t0;

	if (!map || !fd)
		die("calloc");
	for (k = 0; k < n; k++) {
		fd[k] = session ? cm_session(C.wfd) : C.wfd;
		if (fd[k] < 0) {
			err = errno;
			break;
		}
		map[k] = mmap(NULL, len, PROT_READ | PROT_WRITE,
			      session ? MAP_SHARED : MAP_PRIVATE, fd[k], 0);
		if (map[k] == MAP_FAILED) {
			err = errno;
			if (session)
				cm_close(fd[k]);
			break;
		}
		madvise(map[k], len, MADV_NOHUGEPAGE);
	}
	if (!err) {
		t0 = now_ns();
		for (int s = 0; s < n; s++) {
			volatile uint64_t *p = (volatile uint64_t *)map[s];

			for (size_t i = 0; i < pages; i++)
				sink += p[i * PG / 8];
			for (size_t i = s % 100; i < pages; i += 100)
				p[i * PG / 8 + 1] = i;
		}
		r->m.value = (double)(now_ns() - t0) / ((double)n * pages);
		if (session)
			cm_counters(fd[n - 1], &r->m, pages);
	}
	(void)sink;
	while (k-- > 0) {
		munmap(map[k], len);
		if (session)
			cm_close(fd[k]);
	}
	free(map);
	free(fd);
	return err;
}

#define MANY(name, n, session) \
int name(struct run *r, enum phase ph) { return ph == WHOLE ? many(r, n, session) : EINVAL; }
MANY(n1_many, 1, 1)
MANY(n16_many, 16, 1)
MANY(n256_many, 256, 1)
MANY(n1024_many, 1024, 1)
MANY(n1_private, 1, 0)
MANY(n16_private, 16, 0)
MANY(n256_private, 256, 0)
MANY(n1024_private, 1024, 0)

/* ------------------------------------ row 13: threads writing one mapping --- */

/*
 * One mapping of the first C.scale_size bytes of the write file (a
 * session, or MAP_PRIVATE), written by N threads of one process, each the
 * first write to every page of its own contiguous share. They start
 * together at a spinning barrier; the value is the wall time from the
 * start to the last thread's end, per page of the whole mapping.
 */
struct tshare {
	pthread_t th;
	volatile uint8_t *p;
	size_t pages;
	int *arrived, n;
	uint64_t t0, t1;
};

static void *twriter(void *arg)
{
	struct tshare *t = arg;

	__atomic_add_fetch(t->arrived, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(t->arrived, __ATOMIC_SEQ_CST) < t->n)
		;
	t->t0 = now_ns();
	write_pages(t->p, t->pages);
	t->t1 = now_ns();
	return NULL;
}

static int threads(struct run *r, int n, int session)
{
	size_t len = C.scale_size, pages = len / PG;
	struct tshare t[MAX_PROCS];
	uint64_t t0 = UINT64_MAX, t1 = 0;
	int arrived = 0, err;

	r->pages = pages;
	err = map_setup(r, C.wfd, session, session ? MAP_SHARED : MAP_PRIVATE, len);
	if (err)
		return err;
	madvise(r->p, len, MADV_NOHUGEPAGE);
	for (int i = 0; i < n; i++) {
		t[i] = (struct tshare){ .p = r->p + pages * i / n * PG,
					.pages = pages * (i + 1) / n - pages * i / n,
					.arrived = &arrived, .n = n };
		if (pthread_create(&t[i].th, NULL, twriter, &t[i]))
			die("pthread_create");
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i].th, NULL);
		t0 = t[i].t0 < t0 ? t[i].t0 : t0;
		t1 = t[i].t1 > t1 ? t[i].t1 : t1;
	}
	r->m.value = (double)(t1 - t0) / pages;
	map_done(r, len);
	return 0;
}

int t1_cowmap(struct run *r, enum phase ph) { return ph == WHOLE ? threads(r, 1, 1) : EINVAL; }
int t2_cowmap(struct run *r, enum phase ph) { return ph == WHOLE ? threads(r, 2, 1) : EINVAL; }
int t4_cowmap(struct run *r, enum phase ph) { return ph == WHOLE ? threads(r, 4, 1) : EINVAL; }
int t1_private(struct run *r, enum phase ph) { return ph == WHOLE ? threads(r, 1, 0) : EINVAL; }
int t2_private(struct run *r, enum phase ph) { return ph == WHOLE ? threads(r, 2, 0) : EINVAL; }
int t4_private(struct run *r, enum phase ph) { return ph == WHOLE ? threads(r, 4, 0) : EINVAL; }

/* ------------------------- row 14: attach and close on a 16 GiB sparse file --- */

#define HUGE_SIZE	(16ULL << 30)
#define ATTACH_OPS	64
static char huge_path[512], tiny_path[512];

int attach_setup(void)
{
	int fd, e;

	snprintf(huge_path, sizeof(huge_path), "%s/huge-sparse.dat", C.dir);
	snprintf(tiny_path, sizeof(tiny_path), "%s/tiny.dat", C.dir);
	fd = open(huge_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	/* Sparse: one page of data at the start, one at the end. */
	if (ftruncate(fd, HUGE_SIZE) || pwrite(fd, "cowmap", 6, 0) != 6 ||
	    pwrite(fd, "cowmap", 6, HUGE_SIZE - PG) != 6) {
		e = errno;
		close(fd);
		return e;
	}
	close(fd);
	fd = open(tiny_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	e = pwrite(fd, "cowmap", 6, 0) == 6 ? 0 : errno;
	close(fd);
	return e;
}

void attach_teardown(void)
{
	unlink(huge_path);
	unlink(tiny_path);
}

/*
 * ATTACH_OPS times: open the device, attach a session to the file, map
 * all of it, read its first and last byte, write its first byte, unmap,
 * discard and close (row 14a), or only attach and close (14b). The value
 * is the time per whole operation. The kernel's own cost of the same
 * accesses grows with the file too (page tables and the page cache's tree
 * are deeper at 16 GiB): 14c compares the growth of 14a with that of
 * MAP_PRIVATE of the same files, which has no session to attach.
 */
static int attach_close(struct run *r, const char *path, size_t len, int map)
{
	volatile uint8_t *p;
	uint64_t t0;
	int file, fd, err = 0;
	uint8_t sink = 0;

	/*
	 * The baseline (map < 0): the file itself, MAP_PRIVATE (no reserve:
	 * 16 GiB of commit would fail in a small guest), no session.
	 */
	file = open(path, O_RDONLY | O_CLOEXEC);
	if (file < 0)
		return errno;
	t0 = now_ns();
	for (int i = 0; i < ATTACH_OPS && !err; i++) {
		fd = map < 0 ? file : cm_session(file);
		if (fd < 0) {
			err = errno;
			break;
		}
		if (map) {
			p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 map < 0 ? MAP_PRIVATE | MAP_NORESERVE : MAP_SHARED, fd, 0);
			if (p == MAP_FAILED) {
				err = errno;
			} else {
				sink ^= p[0] ^ p[len - 1];
				p[0] = sink | 1;
				munmap((void *)p, len);
			}
		}
		if (map >= 0)
			cm_close(fd);
	}
	r->m.value = (double)(now_ns() - t0) / ATTACH_OPS;
	close(file);
	return err;
}

int at_huge(struct run *r, enum phase ph)
{
	return ph == WHOLE ? attach_close(r, huge_path, HUGE_SIZE, 1) : EINVAL;
}

int at_huge_plain(struct run *r, enum phase ph)
{
	return ph == WHOLE ? attach_close(r, huge_path, HUGE_SIZE, -1) : EINVAL;
}

int at_tiny_plain(struct run *r, enum phase ph)
{
	return ph == WHOLE ? attach_close(r, tiny_path, PG, -1) : EINVAL;
}

int at_huge_nomap(struct run *r, enum phase ph)
{
	return ph == WHOLE ? attach_close(r, huge_path, HUGE_SIZE, 0) : EINVAL;
}

int at_tiny_nomap(struct run *r, enum phase ph)
{
	return ph == WHOLE ? attach_close(r, tiny_path, PG, 0) : EINVAL;
}

int at_tiny(struct run *r, enum phase ph)
{
	return ph == WHOLE ? attach_close(r, tiny_path, PG, 1) : EINVAL;
}
