// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench rows 4 and 9: memory per dirty page. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowbench.h"

/* ---- row 4: memory per dirty page ---- */

/*
 * Memory is measured in a child process inside a memory cgroup of its own:
 * memory.current counts exactly what the writes charged (cowmap charges its
 * pages, twins and slab to the opener's cgroup, like anonymous pages and
 * page tables), with a precision of the per-CPU charge batch (64 pages).
 * /proc/meminfo MemFree is reported too, but pages moving through the
 * per-CPU free lists make it noisy.
 */
#define CG_ROOT	"/sys/fs/cgroup"
#define CG_MEM	CG_ROOT "/cowbench-mem"

int cg_ok;	/* 1: the cgroup is set up; -errno: not available */

static int cg_setup(void)
{
	struct stat st;

	if (cg_ok)
		return cg_ok;
	if (stat(CG_ROOT "/cgroup.controllers", &st)) {
		mkdir(CG_ROOT, 0755);
		mount("none", CG_ROOT, "cgroup2", 0, NULL);
	}
	if (write_str(CG_ROOT "/cgroup.subtree_control", "+memory") ||
	    (mkdir(CG_MEM, 0755) && errno != EEXIST) ||
	    stat(CG_MEM "/memory.current", &st))
		return cg_ok = -(errno ? errno : ENOENT);
	return cg_ok = 1;
}

/* memory.current, or a memory.stat field, in bytes; -1 if unknown. */
static long long cg_read(const char *key)
{
	char line[256];
	long long v = -1;
	size_t kl = key ? strlen(key) : 0;
	FILE *f = fopen(key ? CG_MEM "/memory.stat" : CG_MEM "/memory.current", "re");

	while (f && fgets(line, sizeof(line), f)) {
		if (!key) {
			v = strtoll(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			v = strtoll(line + kl + 1, NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return v;
}

/*
 * cowmap keeps the pages sessions free in a pool for the next copies
 * (kmod/pool.c), still charged to the cgroup. Each measurement starts
 * with the pool empty (drop_caches 2 runs every shrinker, the pool's
 * too), so that the writes allocate; the pages a commit frees into it
 * (the twins) are reported apart and not counted in "after": the cgroup's
 * reclaim takes them, and the next copies use them.
 */
#define POOL_PARAM "/sys/module/cowmap/parameters/pool_pages"
/* kmod/pool.c keeps 29 pages per 256-byte batch (slab, charged too). */
#define POOL_BYTES_PER_PAGE (PG + 256.0 / 29)

static long pool_pages(void)
{
	char buf[32] = "";
	int fd = open(POOL_PARAM, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : 0;
}

struct mem_res {
	int err;
	struct meas m;
};

/* What a memory child writes through its mapping. */
enum mem_kind {
	MK_BYTE,	/* row 4 baseline: one byte in every page */
	MK_BYTE_STRIDE,	/* row 9b baseline: one byte in every 4th page */
	MK_COMMIT8,	/* rows 4a, 9a: 8 bytes in every page, then commit */
	MK_COMMITF,	/* row 9b: every byte of every 4th page, then commit */
};

/*
 * Row 9b: pages apart (records of one page each). 4: 4096 pages of the
 * 64 MiB file, as memory.current moves in charge batches of 64 pages
 * (256 KiB), 64 B per written page here (256 B with every 16th page).
 */
#define FULL_STRIDE 4

struct cg_snap {
	long long cur, slab, pt, kernel;
	long free;
};

static void cg_snap(struct cg_snap *c)
{
	c->cur = c->slab = c->pt = c->kernel = 0;
	if (cg_ok > 0) {
		c->cur = cg_read(NULL);
		c->slab = cg_read("slab");
		c->pt = cg_read("pagetables");
		c->kernel = cg_read("kernel");
	}
	c->free = meminfo("MemFree");
}

/*
 * Rows 4a, 9a/9b: 8 bytes at an offset inside every page (one record per
 * page), or every 8-byte word of every FULL_STRIDE-th page (one record of
 * a whole page each), all with the complement of the file's pattern;
 * returns the pages written.
 */
static size_t write_for_commit(uint8_t *p, size_t pages, int full)
{
	size_t n = 0;

	for (size_t pg = 0; pg < pages; pg += full ? FULL_STRIDE : 1, n++) {
		size_t base = pg * PG;

		if (full) {
			for (size_t o = 0; o < PG; o += 8)
				*(volatile uint64_t *)(p + base + o) = ~file_word(base + o);
		} else {
			size_t o = 8 + (pg * 8) % (PG - 24);

			*(volatile uint64_t *)(p + base + o) = ~file_word(base + o);
		}
	}
	return n;
}

/*
 * Row 9b's baseline: one byte in every FULL_STRIDE-th page, the pages 9b
 * writes, so that both sides pay the page tables of the same sparse
 * layout (a page table per 512 pages: 32 B per dirty page here, 8 B when
 * every page is written). Returns the pages written.
 */
static size_t write_stride(volatile uint8_t *p, size_t pages)
{
	size_t n = 0;

	for (size_t pg = 0; pg < pages; pg += FULL_STRIDE, n++)
		p[pg * PG] = (uint8_t)(pg + 1);
	return n;
}

static void mem_child(int session, int res, enum mem_kind kind)
{
	struct run r = { .pages = C.write_size / PG };
	struct mem_res mr = { 0 };
	struct cowmap_commit cc = { 0 };
	struct cowmap_status st, st0;
	struct cg_snap c0, c1, c2;
	size_t dirty = r.pages;
	long pool0 = 0, pool;
	uint64_t t0;

	mr.m = (struct meas){ .value = NAN };
	for (int i = 0; i < NX; i++)
		mr.m.x[i] = NAN;
	const int commits = kind == MK_COMMIT8 || kind == MK_COMMITF;

	/* Joined first: a session charges its pages to its opener's cgroup. */
	if (cg_ok > 0 && write_str(CG_MEM "/cgroup.procs", "0"))
		mr.err = errno;
	if (!mr.err)
		mr.err = map_setup(&r, C.wfd, session,
				   session ? MAP_SHARED : MAP_PRIVATE, C.write_size);
	if (!mr.err) {
		cg_snap(&c0);
		pool0 = pool_pages();
		if (kind == MK_BYTE)
			write_pages(r.p, r.pages);
		else if (kind == MK_BYTE_STRIDE)
			dirty = write_stride(r.p, r.pages);
		else
			dirty = write_for_commit(r.p, r.pages, kind == MK_COMMITF);
		cg_snap(&c1);
		if (commits && r.fd >= 0) {
			cm_status(r.fd, &st0);
			t0 = now_ns();
			if (ioctl(r.fd, COWMAP_IOC_COMMIT, &cc))
				mr.err = errno;
			mr.m.x[X_COMMIT_NS] = (double)(now_ns() - t0) / dirty;
			cg_snap(&c2);
			mr.m.x[X_BEFORE] = (double)(c1.cur - c0.cur) / dirty;
			mr.m.x[X_KERNEL_BEFORE] = (double)(c1.kernel - c0.kernel) / dirty;
			mr.m.x[X_SLAB_BEFORE] = (double)(c1.slab - c0.slab) / dirty;
			mr.m.x[X_STATUS_BEFORE] = (double)(st0.private_pages +
							   st0.twin_pages) * PG / dirty;
		} else {
			c2 = c1;
		}
		pool = (long)((pool_pages() - pool0) * POOL_BYTES_PER_PAGE);
		mr.m.x[X_POOL] = (double)pool / dirty;
		mr.m.x[X_MEMFREE] = (double)(c0.free - c2.free) * 1024 / dirty;
		if (cg_ok > 0) {
			mr.m.value = (double)(c2.cur - c0.cur - pool) / dirty;
			mr.m.x[X_SLAB] = (double)(c2.slab - c0.slab) / dirty;
			mr.m.x[X_PTABLES] = (double)(c2.pt - c0.pt) / dirty;
			if (c0.kernel >= 0)
				mr.m.x[X_KERNEL] = (double)(c2.kernel - c0.kernel - pool) / dirty;
		} else {
			mr.m.value = mr.m.x[X_MEMFREE];
		}
		if (r.fd >= 0 && !cm_status(r.fd, &st)) {
			mr.m.x[X_STATUS_B] = (double)(st.private_pages +
						      st.twin_pages) * PG / dirty;
			if (commits) {
				mr.m.x[X_JOURNAL_B] = (double)st.journal_bytes / dirty;
				mr.m.x[X_RECORDS] = (double)st.journal_records / dirty;
			}
		}
		map_done(&r, C.write_size);
	}
	if (write(res, &mr, sizeof(mr)) != sizeof(mr))
		_exit(1);
	_exit(0);
}

static int mem(struct run *r, int session, enum mem_kind kind)
{
	struct mem_res mr;
	int res[2];
	pid_t pid;

	cg_setup();
	/* The pool empty (see POOL_PARAM); root only, as the whole row. */
	write_str("/proc/sys/vm/drop_caches", "2");
	if (pipe2(res, O_CLOEXEC))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		mem_child(session, res[1], kind);
	close(res[1]);
	if (read(res[0], &mr, sizeof(mr)) != sizeof(mr))
		mr.err = EPIPE;
	close(res[0]);
	waitpid(pid, NULL, 0);
	if (!mr.err)
		r->m = mr.m;
	return mr.err;
}

int m_private(struct run *r, enum phase ph) { return mem(r, 0, MK_BYTE); }
int m_private_stride(struct run *r, enum phase ph) { return mem(r, 0, MK_BYTE_STRIDE); }
int m_commit8(struct run *r, enum phase ph) { return mem(r, 1, MK_COMMIT8); }
int m_commitf(struct run *r, enum phase ph) { return mem(r, 1, MK_COMMITF); }
