// SPDX-License-Identifier: GPL-2.0
/*
 * Sessions and the copy-on-write fault path: attach, mmap, isolation,
 * live base pages, fork and threads, lifetimes (munmap, mremap, mprotect,
 * close, exit), changes to the backing file while mapped (truncate, hole
 * punch, direct I/O), GUP refusal, limits and memory accounting.
 */
#include <pthread.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"

#define NPAGES 64

FIXTURE(sess) {
	char path[256];
	int file;	/* the backing file, read-only */
	int fd;		/* the session */
	uint8_t *map;	/* the whole file, through the session */
};

FIXTURE_SETUP(sess)
{
	self->file = cm_mkfile(self->path, sizeof(self->path), "sess",
			       NPAGES * PG, O_RDONLY);
	ASSERT_LE(0, self->file);
	self->fd = cm_session(self->file);
	ASSERT_LE(0, self->fd);
	self->map = cm_map(self->fd, NPAGES * PG, 0);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(sess)
{
	munmap(self->map, NPAGES * PG);
	cm_end(self->fd);
	close(self->file);
	unlink(self->path);
}

/* Is the backing file at @path still generation 0 of @size bytes? */
static int file_is_pristine(const char *path, size_t size)
{
	uint8_t buf[PG];
	struct stat st;
	int fd = open(path, O_RDONLY);
	int ok = fd >= 0 && !fstat(fd, &st) && (size_t)st.st_size == size;

	for (size_t off = 0; ok && off < size; off += PG) {
		size_t n = size - off < PG ? size - off : PG;

		ok = pread(fd, buf, n, off) == (ssize_t)n && cm_is_pat(buf, off, n, 0);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Write generation @gen into [@off, @off + @len) of the file at @path. */
static int file_write_gen(const char *path, off_t off, size_t len, unsigned int gen)
{
	uint8_t buf[PG];
	int fd = open(path, O_WRONLY);
	int ok = fd >= 0;

	for (size_t done = 0; ok && done < len; done += PG) {
		size_t n = len - done < PG ? len - done : PG;

		cm_fill(buf, off + done, n, gen);
		ok = pwrite(fd, buf, n, off + done) == (ssize_t)n;
	}
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

TEST(attach_errors)
{
	char path[256], dir[256];
	int fd, file, wo, pfd[2], devnull;
	struct cowmap_attach a;

	file = cm_mkfile(path, sizeof(path), "attach", 3 * PG, O_RDONLY);
	ASSERT_LE(0, file);
	fd = cm_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));

	/* Not an fd, an fd of the wrong kind, write-only. */
	EXPECT_EQ(-1, cm_attach(fd, -1));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, cm_attach(fd, 1000000));
	EXPECT_EQ(EBADF, errno);
	snprintf(dir, sizeof(dir), "%s", cm_dir());
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	ASSERT_LE(0, dfd);
	EXPECT_EQ(-1, cm_attach(fd, dfd));
	EXPECT_EQ(EISDIR, errno);
	close(dfd);
	ASSERT_EQ(0, pipe(pfd));
	EXPECT_EQ(-1, cm_attach(fd, pfd[0]));
	EXPECT_EQ(EINVAL, errno);
	close(pfd[0]);
	close(pfd[1]);
	devnull = open("/dev/null", O_RDONLY);
	ASSERT_LE(0, devnull);
	EXPECT_EQ(-1, cm_attach(fd, devnull));
	EXPECT_EQ(EINVAL, errno);
	close(devnull);
	/* Another cowmap fd is not a regular file either. */
	int other = cm_open();

	EXPECT_EQ(-1, cm_attach(fd, other));
	EXPECT_EQ(EINVAL, errno);
	close(other);
	wo = open(path, O_WRONLY);
	ASSERT_LE(0, wo);
	EXPECT_EQ(-1, cm_attach(fd, wo));
	EXPECT_EQ(EACCES, errno);
	close(wo);
	int opath = open(path, O_PATH);

	ASSERT_LE(0, opath);
	EXPECT_EQ(-1, cm_attach(fd, opath));
	EXPECT_EQ(EBADF, errno);
	close(opath);

	/* Flags and reserved fields must be zero; session_id is out only. */
	a = (struct cowmap_attach){ .fd = file, .flags = 1 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);
	a = (struct cowmap_attach){ .fd = file, .session_id = 7 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);
	a = (struct cowmap_attach){ .fd = file };
	a.reserved[2] = 1;
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);
	a = (struct cowmap_attach){ .fd = file, .reserved0 = 1 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);
	/* A journal fd without the flag that says there is one. */
	a = (struct cowmap_attach){ .fd = file, .journal_fd = file };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);

	/* None of that attached anything; a good attach does, once. */
	struct cowmap_status st;

	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(COWMAP_STATE_NEW, st.state);
	EXPECT_EQ(0, st.session_id);
	a = (struct cowmap_attach){ .fd = file };
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_NE(0, a.session_id);
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(COWMAP_STATE_ATTACHED, st.state);
	EXPECT_EQ(a.session_id, st.session_id);
	a = (struct cowmap_attach){ .fd = file };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EBUSY, errno);

	/* O_RDWR backing fds are fine too. */
	int rw = open(path, O_RDWR);
	int fd2 = cm_session(rw);

	EXPECT_LE(0, fd2);
	cm_end(fd2);
	close(rw);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST(status_identity)
{
	struct cowmap_status st;
	struct stat fst;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "ident", 5 * PG + 100, O_RDONLY);
	int fd, wfd;

	ASSERT_LE(0, file);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fstat(file, &fst));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(COWMAP_STATE_ATTACHED, st.state);
	EXPECT_EQ(major(fst.st_dev), st.dev_major);
	EXPECT_EQ(minor(fst.st_dev), st.dev_minor);
	EXPECT_EQ(fst.st_ino, st.ino);
	EXPECT_EQ(5 * PG + 100, st.size_at_attach);
	EXPECT_EQ(5 * PG + 100, st.size);
	EXPECT_EQ(0, st.mappings);

	wfd = open(path, O_WRONLY);
	ASSERT_EQ(0, ftruncate(wfd, 2 * PG));
	close(wfd);
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(5 * PG + 100, st.size_at_attach);
	EXPECT_EQ(2 * PG, st.size);

	void *m1 = cm_map(fd, PG, 0), *m2 = cm_map(fd, 2 * PG, 0);

	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(2, st.mappings);
	munmap(m1, PG);
	munmap(m2, 2 * PG);
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(0, st.mappings);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST(map_private_refused)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "priv", PG, O_RDONLY);
	int fd = cm_session(file);

	ASSERT_LE(0, fd);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PG, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE, fd, 0));
	EXPECT_EQ(EINVAL, errno);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST_F(sess, reads_show_file)
{
	EXPECT_TRUE(cm_is_pat(self->map, 0, NPAGES * PG, 0));
}

TEST_F(sess, read_fault_around)
{
	struct cowmap_status st;
	volatile uint8_t sum = 0;

	/* One read per page: fault-around must map neighbours in one fault. */
	for (size_t i = 0; i < NPAGES; i++)
		sum += self->map[i * PG];
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_GE(NPAGES / 4, st.faults);
	EXPECT_EQ(NPAGES, st.base_pages);
	EXPECT_EQ(0, st.private_pages);
}

/*
 * A write to a page read before goes through ->pfn_mkwrite, which maps the
 * private copy itself: one fault per page, as MAP_PRIVATE takes, and the
 * bytes written land in the copy, not in the file.
 */
TEST_F(sess, write_after_read_one_fault)
{
	struct cowmap_status a, b;
	volatile uint8_t sum = 0;

	for (size_t i = 0; i < NPAGES; i++)
		sum += self->map[i * PG];
	ASSERT_EQ(0, cm_status(self->fd, &a));
	for (size_t i = 0; i < NPAGES; i++)
		self->map[i * PG + 7] = (uint8_t)(i + 1);
	ASSERT_EQ(0, cm_status(self->fd, &b));
	EXPECT_EQ(NPAGES, b.faults - a.faults);
	EXPECT_EQ(NPAGES, b.private_pages);
	for (size_t i = 0; i < NPAGES; i++) {
		ASSERT_EQ((uint8_t)(i + 1), self->map[i * PG + 7]);
		ASSERT_EQ(cm_pat(i * PG + 8, 0), self->map[i * PG + 8]);
	}
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
}

/* The pagemap entries of @n pages from @addr (PFNs need CAP_SYS_ADMIN). */
static int read_pagemap(const void *addr, size_t n, uint64_t *ent)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t off = (uintptr_t)addr / PG * sizeof(uint64_t);
	ssize_t r = -1;

	if (fd >= 0) {
		r = pread(fd, ent, n * sizeof(uint64_t), off);
		close(fd);
	}
	return r == (ssize_t)(n * sizeof(uint64_t)) ? 0 : -1;
}

#define PM_PRESENT	(1ULL << 63)
#define PM_PFN(e)	((e) & ((1ULL << 55) - 1))
#define KPF_HEAD	(1ULL << 15)
#define KPF_TAIL	(1ULL << 16)
#define FOLIO_NPAGES	1024	/* 4 MiB: room for a few large folios */
#define FAULT_WINDOW	32	/* pages a read fault maps (kmod/fault.c) */
#define FOLIO_BLOCK	512	/* and at most, of one large folio */

/*
 * Where the filesystem caches a file in large folios (ext4 on 7.3, XFS), a
 * read fault maps the faulting page's whole folio, as the core does for
 * MAP_SHARED, not only the page's 32-page window: one fault per folio.
 * The folio is found through /proc/kpageflags; without one of two windows
 * or more (tmpfs; ext4 before 6.16 or so), the test skips.
 */
TEST(read_fault_maps_large_folio)
{
	uint64_t *pm = calloc(FOLIO_NPAGES, sizeof(*pm));
	size_t h = 0, n = 0, k, lo, hi, i;
	struct cowmap_status st;
	char path[256];
	uint8_t *buf, *probe, *map;
	int fd, kpf, sfd;

	ASSERT_NE(NULL, pm);
	/* One write of it all: the filesystem may cache it in large folios. */
	fd = cm_mkfile(path, sizeof(path), "folio", 0, O_RDWR);
	ASSERT_LE(0, fd);
	buf = malloc(FOLIO_NPAGES * PG);
	ASSERT_NE(NULL, buf);
	cm_fill(buf, 0, FOLIO_NPAGES * PG, 0);
	ASSERT_EQ((ssize_t)(FOLIO_NPAGES * PG), pwrite(fd, buf, FOLIO_NPAGES * PG, 0));
	free(buf);

	probe = mmap(NULL, FOLIO_NPAGES * PG, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, probe);
	for (i = 0; i < FOLIO_NPAGES; i++)
		(void)*(volatile uint8_t *)(probe + i * PG);
	ASSERT_EQ(0, read_pagemap(probe, FOLIO_NPAGES, pm));
	munmap(probe, FOLIO_NPAGES * PG);
	kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	for (i = 0; kpf >= 0 && i < FOLIO_NPAGES && n < 2 * FAULT_WINDOW; i++) {
		uint64_t f = 0;
		size_t t = 1;

		if (!(pm[i] & PM_PRESENT) || !PM_PFN(pm[i]) ||
		    pread(kpf, &f, sizeof(f), PM_PFN(pm[i]) * 8) != sizeof(f) ||
		    !(f & KPF_HEAD))
			continue;
		while (i + t < FOLIO_NPAGES && PM_PFN(pm[i + t]) == PM_PFN(pm[i]) + t &&
		       pread(kpf, &f, sizeof(f), PM_PFN(pm[i + t]) * 8) == sizeof(f) &&
		       (f & KPF_TAIL))
			t++;
		h = i;
		n = t;
	}
	if (kpf >= 0)
		close(kpf);
	if (n < 2 * FAULT_WINDOW) {
		close(fd);
		unlink(path);
		free(pm);
		SKIP(return, "no folio of %d pages or more here (largest seen: %zu)",
		     2 * FAULT_WINDOW, n);
	}
	TH_LOG("folio of %zu pages at page %zu", n, h);

	sfd = cm_session(fd);
	ASSERT_LE(0, sfd);
	map = cm_map(sfd, FOLIO_NPAGES * PG, 0);
	ASSERT_NE(MAP_FAILED, map);
	/* A page in the folio's second window: the fault maps both ways. */
	k = h + FAULT_WINDOW + 3;
	lo = k / FOLIO_BLOCK * FOLIO_BLOCK;
	hi = lo + FOLIO_BLOCK;
	lo = lo > h ? lo : h;
	hi = hi < h + n ? hi : h + n;
	EXPECT_EQ(cm_pat(k * PG, 0), map[k * PG]);
	ASSERT_EQ(0, cm_status(sfd, &st));
	EXPECT_EQ(1, st.faults);
	EXPECT_EQ(hi - lo, st.base_pages);
	/*
	 * Mapped by that fault (pagemap skips PFN mappings, so the fault
	 * count tells): the folio's pages read without another fault, and
	 * the page after them takes one.
	 */
	EXPECT_TRUE(cm_is_pat(map + lo * PG, lo * PG, (hi - lo) * PG, 0));
	ASSERT_EQ(0, cm_status(sfd, &st));
	EXPECT_EQ(1, st.faults);
	if (hi < FOLIO_NPAGES) {
		EXPECT_EQ(cm_pat(hi * PG, 0), map[hi * PG]);
		ASSERT_EQ(0, cm_status(sfd, &st));
		EXPECT_EQ(2, st.faults);
	}

	munmap(map, FOLIO_NPAGES * PG);
	cm_end(sfd);
	close(fd);
	unlink(path);
	free(pm);
}

TEST_F(sess, mmap_offset)
{
	uint8_t *a = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED,
			  self->fd, 8 * PG);
	uint8_t *b = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED,
			  self->fd, 6 * PG);

	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, b);
	EXPECT_TRUE(cm_is_pat(a, 8 * PG, 4 * PG, 0));
	/* Mappings of one session share one view. */
	a[PG + 5] = 0xAA;
	EXPECT_EQ(0xAA, b[3 * PG + 5]);
	EXPECT_EQ(0xAA, self->map[9 * PG + 5]);
	b[2 * PG] = 0xBB;
	EXPECT_EQ(0xBB, a[0]);
	/* An unaligned offset is refused by the core. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PG, PROT_READ, MAP_SHARED, self->fd, 100));
	munmap(a, 4 * PG);
	munmap(b, 8 * PG);
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
}

TEST_F(sess, reads_see_live_file)
{
	/* Mapped already, and not yet mapped: both show the file as it is. */
	EXPECT_TRUE(cm_is_pat(self->map + 5 * PG, 5 * PG, PG, 0));
	ASSERT_EQ(0, file_write_gen(self->path, 5 * PG, PG, 1));
	ASSERT_EQ(0, file_write_gen(self->path, 40 * PG, 2 * PG, 2));
	EXPECT_TRUE(cm_is_pat(self->map + 5 * PG, 5 * PG, PG, 1));
	EXPECT_TRUE(cm_is_pat(self->map + 40 * PG, 40 * PG, 2 * PG, 2));
	/* A small write in the middle of a page shows up too. */
	ASSERT_EQ(0, file_write_gen(self->path, 5 * PG + 100, 10, 3));
	EXPECT_TRUE(cm_is_pat(self->map + 5 * PG + 100, 5 * PG + 100, 10, 3));
}

TEST_F(sess, writes_stay_private)
{
	struct cowmap_status st;
	struct stat before, after;

	ASSERT_EQ(0, stat(self->path, &before));
	usleep(20000);	/* a file write would move mtime past this */
	self->map[0] = 0x11;
	memset(self->map + 10 * PG, 0x22, PG);
	self->map[10 * PG + 7] = 0x33;
	memcpy(self->map + 20 * PG + PG - 2, "\x44\x55\x66\x77", 4);

	EXPECT_EQ(0x11, self->map[0]);
	EXPECT_TRUE(cm_is_pat(self->map + 1, 1, PG - 1, 0));
	EXPECT_EQ(0x33, self->map[10 * PG + 7]);
	EXPECT_EQ(0x22, self->map[10 * PG + 8]);
	EXPECT_EQ(0, memcmp(self->map + 20 * PG + PG - 2, "\x44\x55\x66\x77", 4));

	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
	ASSERT_EQ(0, stat(self->path, &after));
	EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	EXPECT_EQ(before.st_size, after.st_size);

	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(4, st.cow_copies);	/* pages 0, 10, 20, 21 */
	EXPECT_EQ(4, st.private_pages);
	EXPECT_EQ(4, st.twin_pages);
	/* More writes to the same pages copy nothing more. */
	memset(self->map, 0x99, PG);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(4, st.cow_copies);
}

TEST_F(sess, written_page_ignores_file)
{
	self->map[3 * PG + 9] = 0xEE;
	ASSERT_EQ(0, file_write_gen(self->path, 2 * PG, 3 * PG, 5));
	/* The written page keeps the content it was copied from. */
	EXPECT_TRUE(cm_is_pat(self->map + 3 * PG, 3 * PG, 9, 0));
	EXPECT_EQ(0xEE, self->map[3 * PG + 9]);
	EXPECT_TRUE(cm_is_pat(self->map + 3 * PG + 10, 3 * PG + 10, PG - 10, 0));
	/* Its neighbours are live. */
	EXPECT_TRUE(cm_is_pat(self->map + 2 * PG, 2 * PG, PG, 5));
	EXPECT_TRUE(cm_is_pat(self->map + 4 * PG, 4 * PG, PG, 5));
}

TEST(two_sessions_isolated)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "two", 8 * PG, O_RDONLY);
	int s1 = cm_session(file), s2 = cm_session(file), s3 = cm_session(file);
	uint8_t *m1, *m2, *m3;

	ASSERT_LE(0, s1);
	ASSERT_LE(0, s2);
	ASSERT_LE(0, s3);
	m1 = cm_map(s1, 8 * PG, 0);
	m2 = cm_map(s2, 8 * PG, 0);
	m3 = cm_map(s3, 8 * PG, 0);
	ASSERT_NE(MAP_FAILED, m1);
	ASSERT_NE(MAP_FAILED, m2);
	ASSERT_NE(MAP_FAILED, m3);
	/* Make s3 map the base page before the others write. */
	EXPECT_TRUE(cm_is_pat(m3, 0, 8 * PG, 0));

	memset(m1 + PG, 0x01, 100);
	memset(m2 + PG, 0x02, 100);
	m2[7 * PG] = 0x72;
	EXPECT_EQ(0x01, m1[PG + 50]);
	EXPECT_EQ(0x02, m2[PG + 50]);
	EXPECT_TRUE(cm_is_pat(m3 + PG, PG, PG, 0));
	EXPECT_TRUE(cm_is_pat(m1 + 7 * PG, 7 * PG, PG, 0));
	EXPECT_EQ(0x72, m2[7 * PG]);
	EXPECT_TRUE(file_is_pristine(path, 8 * PG));
	munmap(m1, 8 * PG);
	munmap(m2, 8 * PG);
	munmap(m3, 8 * PG);
	cm_end(s1);
	cm_end(s2);
	cm_end(s3);
	close(file);
	unlink(path);
}

TEST(two_processes_isolated)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "procs", 4 * PG, O_RDONLY);
	int to_child[2], to_parent[2];
	uint8_t *m;
	char c;
	pid_t pid;
	int fd;

	ASSERT_LE(0, file);
	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Its own session: its own view. */
		int cfd = cm_session(file);
		uint8_t *cm = cfd < 0 ? MAP_FAILED : cm_map(cfd, 4 * PG, 0);

		if (cm == MAP_FAILED)
			_exit(10);
		memset(cm, 0xC1, 4 * PG);
		if (write(to_parent[1], "w", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(11);
		/* The parent wrote meanwhile: not visible here. */
		for (size_t i = 0; i < 4 * PG; i++)
			if (cm[i] != 0xC1)
				_exit(12);
		munmap(cm, 4 * PG);
		cm_end(cfd);
		_exit(0);
	}
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	m = cm_map(fd, 4 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	EXPECT_TRUE(cm_is_pat(m, 0, 4 * PG, 0));
	memset(m + PG, 0xB2, PG);
	ASSERT_EQ(1, write(to_child[1], "p", 1));
	EXPECT_EQ(0, cm_wait(pid));
	EXPECT_TRUE(cm_is_pat(m, 0, PG, 0));
	EXPECT_EQ(0xB2, m[PG + 1]);
	EXPECT_TRUE(file_is_pristine(path, 4 * PG));
	munmap(m, 4 * PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST_F(sess, fork_shares_session)
{
	int to_child[2], to_parent[2];
	struct cowmap_status st;
	char c;
	pid_t pid;

	self->map[0] = 0xA0;	/* before fork */
	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (self->map[0] != 0xA0)
			_exit(10);
		self->map[PG] = 0xC0;		/* child writes a new page */
		self->map[0] = 0xC1;		/* and the parent's */
		if (write(to_parent[1], "w", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(11);
		if (self->map[2 * PG] != 0xA2)	/* parent's write after fork */
			_exit(12);
		_exit(0);
	}
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	EXPECT_EQ(0xC0, self->map[PG]);
	EXPECT_EQ(0xC1, self->map[0]);
	self->map[2 * PG] = 0xA2;
	ASSERT_EQ(1, write(to_child[1], "p", 1));
	EXPECT_EQ(0, cm_wait(pid));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(3, st.cow_copies);
	EXPECT_EQ(1, st.mappings);	/* the child's VMA went with it */
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
}

struct thread_arg {
	uint8_t *map;
	int first;
};

static void *thread_writer(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < NPAGES / 4; i++)
		memset(a->map + (size_t)(a->first + i) * PG, a->first + i, PG);
	return NULL;
}

TEST_F(sess, threads_share_session)
{
	struct thread_arg args[4];
	struct cowmap_status st;
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ self->map, i * NPAGES / 4 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, thread_writer, &args[i]));
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int p = 0; p < NPAGES; p++) {
		EXPECT_EQ(p, self->map[(size_t)p * PG]);
		EXPECT_EQ(p, self->map[(size_t)p * PG + PG - 1]);
	}
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(NPAGES, st.cow_copies);
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
}

TEST(sigbus_past_eof)
{
	char path[256];
	size_t size = 2 * PG + 100;
	int file = cm_mkfile(path, sizeof(path), "eof", size, O_RDONLY);
	int fd = cm_session(file);
	uint8_t *m;

	ASSERT_LE(0, fd);
	/* Five pages of session, then a PROT_NONE guard page. */
	m = mmap(NULL, 6 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(m, mmap(m, 5 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			  fd, 0));
	EXPECT_TRUE(cm_is_pat(m, 0, size, 0));
	/* The rest of the last page reads as zeros, and can be written. */
	EXPECT_EQ(0, m[size]);
	EXPECT_EQ(0, m[3 * PG - 1]);
	EXPECT_EQ(0, cm_try_write(m + size + 10, 0x5A));
	EXPECT_EQ(0x5A, m[size + 10]);
	/* Past the last page: SIGBUS for reads and writes. */
	EXPECT_EQ(SIGBUS, cm_try_read(m + 3 * PG));
	EXPECT_EQ(SIGBUS, cm_try_write(m + 4 * PG + 1, 1));
	/* Past the mapping: SIGSEGV, as usual. */
	EXPECT_EQ(SIGSEGV, cm_try_read(m + 5 * PG));
	EXPECT_TRUE(file_is_pristine(path, size));
	munmap(m, 6 * PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

/* Offsets past the largest file offset: EOVERFLOW, as for a regular file. */
TEST_F(sess, mmap_past_max_file_offset)
{
	const off_t offs[] = { (off_t)(~0ULL >> 1) - (off_t)PG + 1,
			       (off_t)(~0ULL >> 1) - (off_t)(16 * PG) + 1 };

	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		void *f, *m;
		int ferr, merr;

		errno = 0;
		f = mmap(NULL, 16 * PG, PROT_READ, MAP_SHARED, self->file, offs[i]);
		ferr = errno;
		errno = 0;
		m = mmap(NULL, 16 * PG, PROT_READ, MAP_SHARED, self->fd, offs[i]);
		merr = errno;
		EXPECT_EQ(MAP_FAILED, f);
		EXPECT_EQ(EOVERFLOW, ferr);
		EXPECT_EQ(MAP_FAILED, m);
		EXPECT_EQ(ferr, merr) TH_LOG("offset %#llx", (unsigned long long)offs[i]);
		if (m != MAP_FAILED)
			munmap(m, 16 * PG);
	}
	/* The last whole page below the limit maps (and is past EOF). */
	{
		off_t last = (off_t)(~0ULL >> 1) - (off_t)(2 * PG) + 1;
		void *f = mmap(NULL, PG, PROT_READ, MAP_SHARED, self->file, last);
		uint8_t *m = mmap(NULL, PG, PROT_READ, MAP_SHARED, self->fd, last);

		EXPECT_NE(MAP_FAILED, f);
		ASSERT_NE(MAP_FAILED, m);
		EXPECT_EQ(SIGBUS, cm_try_read(m));
		munmap(m, PG);
		if (f != MAP_FAILED)
			munmap(f, PG);
	}
}

TEST_F(sess, truncate_while_mapped)
{
	struct cowmap_status st;
	volatile uint8_t sum = 0;
	int wfd;

	for (size_t i = 0; i < NPAGES * PG; i += PG)
		sum += self->map[i];
	self->map[PG + 1] = 0x77;
	self->map[30 * PG + 1] = 0x78;

	wfd = open(self->path, O_RDWR);
	ASSERT_LE(0, wfd);
	ASSERT_EQ(0, ftruncate(wfd, 4 * PG));
	/* Past the new end: SIGBUS, written page or not. */
	EXPECT_EQ(SIGBUS, cm_try_read(self->map + 8 * PG));
	EXPECT_EQ(SIGBUS, cm_try_read(self->map + 30 * PG));
	EXPECT_EQ(SIGBUS, cm_try_write(self->map + 40 * PG, 1));
	/* Inside: the session's page and the file's. */
	EXPECT_EQ(0x77, self->map[PG + 1]);
	EXPECT_TRUE(cm_is_pat(self->map + 2 * PG, 2 * PG, 2 * PG, 0));

	/* The file grows again with new content: the session sees it. */
	ASSERT_EQ(0, ftruncate(wfd, NPAGES * PG));
	close(wfd);
	EXPECT_EQ(0, self->map[20 * PG]);
	ASSERT_EQ(0, file_write_gen(self->path, 0, NPAGES * PG, 3));
	EXPECT_TRUE(cm_is_pat(self->map + 8 * PG, 8 * PG, 8 * PG, 3));
	EXPECT_TRUE(cm_is_pat(self->map + 2 * PG, 2 * PG, 2 * PG, 3));
	EXPECT_EQ(0x77, self->map[PG + 1]);
	/* The session's own page past the old end comes back with the file. */
	EXPECT_EQ(0x78, self->map[30 * PG + 1]);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_LT(0, st.base_invalidations);
}

TEST_F(sess, truncate_to_zero_and_rewrite)
{
	volatile uint8_t sum = 0;
	int wfd;

	for (size_t i = 0; i < NPAGES * PG; i += PG)
		sum += self->map[i];
	wfd = open(self->path, O_RDWR | O_TRUNC);
	ASSERT_LE(0, wfd);
	close(wfd);
	EXPECT_EQ(SIGBUS, cm_try_read(self->map));
	ASSERT_EQ(0, file_write_gen(self->path, 0, NPAGES * PG, 4));
	EXPECT_TRUE(cm_is_pat(self->map, 0, NPAGES * PG, 4));
}

/*
 * The window between a fault's end-of-file check and its read of the
 * backing page, opened on purpose: the module's test_fault_delay_ms makes
 * the fault sleep there, a thread faults, and once it sleeps (state D) the
 * file is truncated under it. The fault must then fail with SIGBUS (the
 * page is past the end now), never show or copy the zero-filled page that
 * reading past the end gives, and leave no private copy behind.
 */
#define EOFWIN_PAGES 8

FIXTURE(eofwin) {
	char path[256];
	int file;	/* the backing file, read-only */
	int wfd;	/* the same file, for truncate */
	int fd;		/* the session */
	uint8_t *map;
};

FIXTURE_SETUP(eofwin)
{
	if (cm_param_get("test_fault_delay_ms") < 0)
		SKIP(return, "no test_fault_delay_ms parameter (not root?)");
	self->file = cm_mkfile(self->path, sizeof(self->path), "eofwin",
			       EOFWIN_PAGES * PG, O_RDONLY);
	ASSERT_LE(0, self->file);
	self->wfd = open(self->path, O_RDWR);
	ASSERT_LE(0, self->wfd);
	self->fd = cm_session(self->file);
	ASSERT_LE(0, self->fd);
	self->map = cm_map(self->fd, EOFWIN_PAGES * PG, 0);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(eofwin)
{
	cm_param_set("test_fault_delay_ms", 0);
	cm_param_set("test_unlocked_delay_ms", 0);
	if (self->map && self->map != MAP_FAILED)
		munmap(self->map, EOFWIN_PAGES * PG);
	if (self->fd > 0)
		cm_end(self->fd);
	if (self->file > 0) {
		close(self->wfd);
		close(self->file);
		unlink(self->path);
	}
}

struct eofwin_access {
	uint8_t *addr;
	int write;
	volatile pid_t tid;
	int sig;	/* out: 0 or the signal */
};

static void *eofwin_thread(void *arg)
{
	struct eofwin_access *a = arg;

	a->tid = syscall(SYS_gettid);
	a->sig = a->write ? cm_try_write(a->addr, 0x55) : cm_try_read(a->addr);
	return NULL;
}

/* Is thread @tid of this process in uninterruptible sleep? */
static int eofwin_thread_in_d(pid_t tid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'D';
}

/*
 * Start a thread that accesses @a->addr, with the module's delay @knob set,
 * and return once its fault sleeps in that delay.
 */
static void eofwin_start(struct __test_metadata *_metadata, const char *knob,
			 struct eofwin_access *a, pthread_t *t)
{
	int i;

	EXPECT_EQ(0, cm_param_set(knob, 1500));
	EXPECT_EQ(0, pthread_create(t, NULL, eofwin_thread, a));
	/* Asleep in the module's delay itself, not in some other wait. */
	for (i = 0; i < 1000 && !(a->tid && eofwin_thread_in_d(a->tid) &&
				  cm_wchan_has(a->tid, "msleep")); i++)
		usleep(1000);
	EXPECT_GT(1000, i) TH_LOG("the faulting thread never slept in the window");
}

/*
 * Access @off in a thread whose fault sleeps in the delay @knob; truncate
 * the file to @new_size pages while it sleeps. Returns the thread's signal.
 */
static int eofwin_race_at(struct __test_metadata *_metadata,
			  FIXTURE_DATA(eofwin) *self, const char *knob,
			  size_t off, int write, size_t new_pages)
{
	struct eofwin_access a = { self->map + off, write, 0, -1 };
	pthread_t t;

	eofwin_start(_metadata, knob, &a, &t);
	/* Returns once the module's invalidation ran, after the fault. */
	EXPECT_EQ(0, ftruncate(self->wfd, new_pages * PG));
	pthread_join(t, NULL);
	EXPECT_EQ(0, cm_param_set(knob, 0));
	return a.sig;
}

static int eofwin_race(struct __test_metadata *_metadata,
		       FIXTURE_DATA(eofwin) *self, size_t off, int write,
		       size_t new_pages)
{
	return eofwin_race_at(_metadata, self, "test_fault_delay_ms", off,
			      write, new_pages);
}

/* A first write whose page is cut off in the window. */
TEST_F(eofwin, first_write_truncated_in_window)
{
	struct cowmap_status st;

	EXPECT_EQ(SIGBUS, eofwin_race(_metadata, self, 5 * PG + 1, 1, 2));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(0, st.private_pages) TH_LOG("a private copy was made past the end");

	/* The file comes back with new content: the session shows it. */
	ASSERT_EQ(0, ftruncate(self->wfd, EOFWIN_PAGES * PG));
	ASSERT_EQ(0, file_write_gen(self->path, 0, EOFWIN_PAGES * PG, 1));
	EXPECT_TRUE(cm_is_pat(self->map + 5 * PG, 5 * PG, PG, 1));
	ASSERT_EQ(0, cm_commit(self->fd, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(0, st.journal_records) TH_LOG("the session committed a change it never made");
}

/*
 * A write to page 5 (offset 3) whose fault sleeps in the delay @knob, the
 * file cut to 2 pages meanwhile: the write gets SIGBUS, the copy made for
 * it goes (it holds the file's old bytes and no write), and when the file
 * grows back with zeros the session shows them. @mkwrite_faults: also
 * check that the page, read before, took ->pfn_mkwrite and the write's
 * fault past the end, and nothing else.
 */
static void eofwin_cut_unwritten(struct __test_metadata *_metadata,
				 FIXTURE_DATA(eofwin) *self, const char *knob,
				 bool mkwrite_faults)
{
	struct cowmap_status before, st;
	size_t i;

	ASSERT_EQ(0, cm_status(self->fd, &before));
	EXPECT_EQ(SIGBUS, eofwin_race_at(_metadata, self, knob, 5 * PG + 3, 1, 2));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	if (mkwrite_faults)
		EXPECT_EQ(2, st.faults - before.faults);
	EXPECT_EQ(0, st.private_pages) TH_LOG("the unwritten copy stayed");
	EXPECT_EQ(0, st.cow_copies);
	ASSERT_EQ(0, ftruncate(self->wfd, EOFWIN_PAGES * PG));
	for (i = 2 * PG; i < EOFWIN_PAGES * PG; i++)
		if (self->map[i])
			break;
	EXPECT_EQ(EOFWIN_PAGES * PG, i) TH_LOG("byte %zu shows the old file", i);
}

/*
 * A first write whose copy is mapped writable, then cut off before the
 * store lands (test_map_delay_ms): the truncation unmaps the copy, the
 * store faults again, past the end now, and gets SIGBUS. The copy holds
 * the file's old bytes and no write: it must go, or the page would show
 * them when the file grows again (the stress test's "not the file's
 * data").
 */
TEST_F(eofwin, first_write_unmapped_before_store)
{
	struct cowmap_status st;

	if (cm_param_get("test_map_delay_ms") < 0)
		SKIP(return, "no test_map_delay_ms parameter");
	eofwin_cut_unwritten(_metadata, self, "test_map_delay_ms", false);
	ASSERT_EQ(0, file_write_gen(self->path, 0, EOFWIN_PAGES * PG, 5));
	EXPECT_TRUE(cm_is_pat(self->map, 0, EOFWIN_PAGES * PG, 5));
	ASSERT_EQ(0, cm_commit(self->fd, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(0, st.journal_records);
}

/*
 * The same one step earlier: the write fault made its copy and dropped the
 * session's lock, and sleeps before it maps the copy
 * (test_unlocked_delay_ms). The truncation finds nothing to unmap there;
 * the fault must see that an unmap came and not set its PTE, else the
 * store lands past the new end with no SIGBUS.
 */
TEST_F(eofwin, first_write_truncated_before_pte)
{
	if (cm_param_get("test_unlocked_delay_ms") < 0)
		SKIP(return, "no test_unlocked_delay_ms parameter");
	eofwin_cut_unwritten(_metadata, self, "test_unlocked_delay_ms", false);
}

/*
 * The same for a write to a page read before: ->pfn_mkwrite unmaps the
 * file's page and sleeps before it maps its copy in its place.
 */
TEST_F(eofwin, mkwrite_truncated_before_pte)
{
	volatile uint8_t v = self->map[5 * PG];

	(void)v;
	if (cm_param_get("test_unlocked_delay_ms") < 0)
		SKIP(return, "no test_unlocked_delay_ms parameter");
	/* ->pfn_mkwrite, then the write's fault past the end: no retry between. */
	eofwin_cut_unwritten(_metadata, self, "test_unlocked_delay_ms", true);
}

/*
 * A commit in the same place: it finds the copy unchanged and drops its
 * twin. Were the PTE set writable afterwards, the store would land in a
 * page nothing tracks, and the next commit would not record it.
 */
static void eofwin_commit_race(struct __test_metadata *_metadata,
			       FIXTURE_DATA(eofwin) *self, bool reread)
{
	struct eofwin_access a = { self->map + 5 * PG + 3, 1, 0, -1 };
	struct cowmap_status st;
	uint64_t records;
	pthread_t t;

	ASSERT_EQ(0, cm_status(self->fd, &st));
	records = st.journal_records;
	eofwin_start(_metadata, "test_unlocked_delay_ms", &a, &t);
	ASSERT_EQ(0, cm_commit(self->fd, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(records, st.journal_records) TH_LOG("committed before the store");
	/* Mapped again, read-only, as the sleeping fault found it. */
	if (reread)
		EXPECT_EQ(0x11, self->map[5 * PG + 3]);
	/* The store's second fault need not sleep. */
	EXPECT_EQ(0, cm_param_set("test_unlocked_delay_ms", 0));
	pthread_join(t, NULL);
	EXPECT_EQ(0, a.sig);
	EXPECT_EQ(0x55, self->map[5 * PG + 3]);
	EXPECT_EQ(1, cm_commit(self->fd, 0)) TH_LOG("the store was not recorded");
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(records + 1, st.journal_records);
}

TEST_F(eofwin, first_write_committed_before_pte)
{
	if (cm_param_get("test_unlocked_delay_ms") < 0)
		SKIP(return, "no test_unlocked_delay_ms parameter");
	eofwin_commit_race(_metadata, self, false);
}

/* The same commit for a write to a page read before (->pfn_mkwrite). */
TEST_F(eofwin, mkwrite_committed_before_pte)
{
	volatile uint8_t v = self->map[5 * PG];

	(void)v;
	if (cm_param_get("test_unlocked_delay_ms") < 0)
		SKIP(return, "no test_unlocked_delay_ms parameter");
	eofwin_commit_race(_metadata, self, false);
}

/*
 * The same for a write to the session's own page, committed and read
 * again: ->pfn_mkwrite rearms its twin and makes the read-only PTE
 * writable after the unlock. The commit meanwhile drops that twin and
 * unmaps the page, and a read maps it again with the same PTE: the PTE
 * must not be made writable then (the core's own check, the PTE being the
 * same, would let it).
 */
TEST_F(eofwin, mkwrite_private_committed_before_pte)
{
	volatile uint8_t v;

	if (cm_param_get("test_unlocked_delay_ms") < 0)
		SKIP(return, "no test_unlocked_delay_ms parameter");
	self->map[5 * PG + 3] = 0x11;
	ASSERT_EQ(1, cm_commit(self->fd, 0));
	v = self->map[5 * PG];
	(void)v;
	eofwin_commit_race(_metadata, self, true);
}

/*
 * The same with a store that did land before the truncation: the page
 * holds the session's byte and stays (kept past the end, shown again when
 * the file grows back).
 */
TEST_F(eofwin, written_page_kept_past_end)
{
	struct cowmap_status st;

	self->map[5 * PG + 3] = 0x5a;
	ASSERT_EQ(0, ftruncate(self->wfd, 2 * PG));
	EXPECT_EQ(SIGBUS, cm_try_write(self->map + 5 * PG + 4, 0x5b));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(1, st.private_pages);
	ASSERT_EQ(0, ftruncate(self->wfd, EOFWIN_PAGES * PG));
	EXPECT_EQ(0x5a, self->map[5 * PG + 3]);
	EXPECT_EQ(cm_pat(5 * PG + 4, 0), self->map[5 * PG + 4]);
}

/* A read of a page never read before, cut off in the window. */
TEST_F(eofwin, read_truncated_in_window)
{
	EXPECT_EQ(SIGBUS, eofwin_race(_metadata, self, 6 * PG, 0, 3));
	ASSERT_EQ(0, ftruncate(self->wfd, EOFWIN_PAGES * PG));
	ASSERT_EQ(0, file_write_gen(self->path, 0, EOFWIN_PAGES * PG, 2));
	EXPECT_TRUE(cm_is_pat(self->map, 0, EOFWIN_PAGES * PG, 2));
}

/* A write to a page mapped read-only (->pfn_mkwrite), cut off in the window. */
TEST_F(eofwin, mkwrite_truncated_in_window)
{
	volatile uint8_t v = self->map[4 * PG];
	struct cowmap_status st;

	(void)v;
	EXPECT_EQ(SIGBUS, eofwin_race(_metadata, self, 4 * PG + 7, 1, 1));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(0, st.private_pages);
	ASSERT_EQ(0, ftruncate(self->wfd, EOFWIN_PAGES * PG));
	ASSERT_EQ(0, file_write_gen(self->path, 0, EOFWIN_PAGES * PG, 3));
	EXPECT_TRUE(cm_is_pat(self->map, 0, EOFWIN_PAGES * PG, 3));
	ASSERT_EQ(0, cm_commit(self->fd, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(0, st.journal_records);
}

TEST_F(sess, hole_punch_while_mapped)
{
	volatile uint8_t sum = 0;
	int wfd;

	for (size_t i = 0; i < NPAGES * PG; i += PG)
		sum += self->map[i];
	self->map[3 * PG] = 0x33;
	wfd = open(self->path, O_RDWR);
	ASSERT_LE(0, wfd);
	if (fallocate(wfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      2 * PG, 4 * PG)) {
		close(wfd);
		SKIP(return, "hole punch: %s", strerror(errno));
	}
	close(wfd);
	/* Mapped pages show it once the session revalidated: refresh waits. */
	ASSERT_EQ(0, cm_refresh(self->fd, NULL));
	for (size_t i = 2 * PG; i < 6 * PG; i++) {
		if (i >= 3 * PG && i < 4 * PG)
			continue;
		ASSERT_EQ(0, self->map[i]);
	}
	EXPECT_EQ(0x33, self->map[3 * PG]);
	EXPECT_TRUE(cm_is_pat(self->map + 3 * PG + 1, 3 * PG + 1, PG - 1, 0));
	EXPECT_TRUE(cm_is_pat(self->map + 6 * PG, 6 * PG, PG, 0));
	EXPECT_TRUE(cm_is_pat(self->map + PG, PG, PG, 0));
}

/*
 * Write cm_fill()'s pattern for @seed over pages [0, @n) of @path with
 * O_DIRECT, past the page cache. 0; -1 if O_DIRECT cannot be opened (the
 * caller skips); -2 if the write fails.
 */
static int dio_write_pattern(const char *path, size_t n, int seed)
{
	int dfd = open(path, O_RDWR | O_DIRECT);
	uint8_t *buf;
	ssize_t w;

	if (dfd < 0)
		return -1;
	if (posix_memalign((void **)&buf, PG, n * PG)) {
		close(dfd);
		return -2;
	}
	cm_fill(buf, 0, n * PG, seed);
	w = pwrite(dfd, buf, n * PG, 0);
	close(dfd);
	free(buf);
	return w == (ssize_t)(n * PG) ? 0 : -2;
}

TEST_F(sess, direct_io_write_while_mapped)
{
	volatile uint8_t sum = 0;
	int dio;

	for (size_t i = 0; i < NPAGES * PG; i += PG)
		sum += self->map[i];
	self->map[3 * PG] = 0x33;
	dio = dio_write_pattern(self->path, 8, 6);
	if (dio == -1)
		SKIP(return, "O_DIRECT: %s", strerror(errno));
	ASSERT_EQ(0, dio);
	ASSERT_EQ(0, cm_refresh(self->fd, NULL));
	EXPECT_TRUE(cm_is_pat(self->map, 0, 3 * PG, 6));
	EXPECT_TRUE(cm_is_pat(self->map + 4 * PG, 4 * PG, 4 * PG, 6));
	EXPECT_EQ(0x33, self->map[3 * PG]);
	EXPECT_TRUE(cm_is_pat(self->map + 8 * PG, 8 * PG, PG, 0));
}

/*
 * Direct I/O removes the file's pages from the page cache. The writer only
 * counts the change (docs/design.md, "When someone else changes the
 * file"): a page the session maps shows the new bytes once the session's
 * revalidation ran, a moment later, without any call; a page it had not
 * mapped shows them at its first fault.
 */
TEST_F(sess, direct_io_reaches_mapping_by_itself)
{
	volatile uint8_t sum = 0;
	struct timespec t0, t1;
	int dio, ms = 0;

	for (size_t i = 0; i < 16 * PG; i += PG)
		sum += self->map[i];
	dio = dio_write_pattern(self->path, NPAGES, 7);
	if (dio == -1)
		SKIP(return, "O_DIRECT: %s", strerror(errno));
	ASSERT_EQ(0, dio);
	/*
	 * Never mapped before (past the read faults' 32-page windows): the
	 * fault reads the page cache as it is.
	 */
	EXPECT_TRUE(cm_is_pat(self->map + 52 * PG, 52 * PG, 12 * PG, 7));
	/* Mapped before: soon after (the walk runs 50 ms after). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!cm_is_pat(self->map, 0, 16 * PG, 7) && ms < 5000) {
		usleep(10000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	}
	TH_LOG("mapped pages showed the direct write after %d ms", ms);
	EXPECT_TRUE(cm_is_pat(self->map, 0, 16 * PG, 7));
	EXPECT_GT(3000, ms);	/* 50 ms by design; slack for TCG and KASAN */
}

/* COWMAP_IOC_REFRESH takes a checked argument, on any session fd. */
TEST_F(sess, refresh_args)
{
	struct cowmap_refresh r;
	int ro, rofd;

	memset(&r, 0, sizeof(r));
	r.flags = 1;
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_REFRESH, &r));
	EXPECT_EQ(EINVAL, errno);
	memset(&r, 0, sizeof(r));
	r.reserved0 = 1;
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_REFRESH, &r));
	EXPECT_EQ(EINVAL, errno);
	memset(&r, 0, sizeof(r));
	r.invalidated = 1;
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_REFRESH, &r));
	EXPECT_EQ(EINVAL, errno);
	memset(&r, 0, sizeof(r));
	r.reserved[1] = 1;
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_REFRESH, &r));
	EXPECT_EQ(EINVAL, errno);
	/* Nothing changed: nothing to unmap. */
	memset(&r, 0, sizeof(r));
	EXPECT_EQ(0, ioctl(self->fd, COWMAP_IOC_REFRESH, &r));
	EXPECT_EQ(0, r.invalidated);
	/* Without a session: EINVAL. */
	rofd = cm_open();
	ASSERT_LE(0, rofd);
	ASSERT_EQ(0, cm_handshake(rofd));
	EXPECT_EQ(-1, cm_refresh(rofd, NULL));
	EXPECT_EQ(EINVAL, errno);
	close(rofd);
	/* A read-only session fd may refresh. */
	ro = open("/dev/cowmap", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	ASSERT_EQ(0, cm_handshake(ro));
	ASSERT_EQ(0, cm_attach(ro, self->file));
	EXPECT_EQ(0, cm_refresh(ro, NULL));
	close(ro);
}

/*
 * A change no event reports (another NFS client's write, which this
 * client's page cache learns of only when it revalidates): stood for here
 * by a direct write while the module ignores events (test_ignore_changes,
 * root only). The session keeps showing the pages it had mapped until
 * COWMAP_IOC_REFRESH, which unmaps them; then it shows the file's bytes.
 * Its own written page stays.
 */
TEST_F(sess, refresh_finds_unreported_change)
{
	volatile uint8_t sum = 0;
	uint64_t inval = 0;
	struct statfs sfs;
	int dio;

	if (geteuid())
		SKIP(return, "needs root (test_ignore_changes)");
	ASSERT_EQ(0, fstatfs(self->file, &sfs));
	if (sfs.f_type == TMPFS_MAGIC)
		SKIP(return, "tmpfs: direct I/O goes through the page cache");
	/*
	 * btrfs writes a direct write whose range it cannot invalidate (the
	 * session holds the pages) through the page cache instead: the
	 * session sees it at once, there is nothing unreported to find.
	 */
	if (sfs.f_type == BTRFS_SUPER_MAGIC)
		SKIP(return, "btrfs: a direct write into held pages goes through the page cache");
	for (size_t i = 0; i < 8 * PG; i += PG)
		sum += self->map[i];
	self->map[3 * PG] = 0x33;
	ASSERT_EQ(0, cm_param_set("test_ignore_changes", 1));
	dio = dio_write_pattern(self->path, 8, 8);
	if (dio == -1) {
		cm_param_set("test_ignore_changes", 0);
		SKIP(return, "O_DIRECT: %s", strerror(errno));
	}
	EXPECT_EQ(0, dio);
	usleep(200000);	/* longer than any revalidation would wait */
	/* Unreported: the mapped pages still show the old bytes. */
	EXPECT_TRUE(cm_is_pat(self->map, 0, 3 * PG, 0));
	EXPECT_EQ(0, cm_refresh(self->fd, &inval));
	ASSERT_EQ(0, cm_param_set("test_ignore_changes", 0));
	/* Pages 0-2 and 4-7 left the page cache; page 3 is the session's. */
	EXPECT_LE(7, inval);
	EXPECT_TRUE(cm_is_pat(self->map, 0, 3 * PG, 8));
	EXPECT_TRUE(cm_is_pat(self->map + 4 * PG, 4 * PG, 4 * PG, 8));
	EXPECT_EQ(0x33, self->map[3 * PG]);
	EXPECT_TRUE(cm_is_pat(self->map + 3 * PG + 1, 3 * PG + 1, PG - 1, 0));
}

/* get_user_pages() cannot work on a VM_PFNMAP mapping: it fails cleanly. */
TEST_F(sess, gup_refused)
{
	struct iovec iov = { .iov_base = self->map, .iov_len = PG };
	int pfd[2];
	char buf[100];

	ASSERT_EQ(0, pipe(pfd));
	EXPECT_EQ(-1, vmsplice(pfd[1], &iov, 1, 0));
	EXPECT_EQ(EFAULT, errno);
	/* Plain copies in and out of the mapping work. */
	EXPECT_EQ(100, write(pfd[1], self->map, 100));
	EXPECT_EQ(100, read(pfd[0], buf, 100));
	EXPECT_TRUE(cm_is_pat((uint8_t *)buf, 0, 100, 0));
	EXPECT_EQ(3, write(pfd[1], "xyz", 3));
	EXPECT_EQ(3, read(pfd[0], self->map + 5 * PG, 3));
	EXPECT_EQ(0, memcmp(self->map + 5 * PG, "xyz", 3));
	close(pfd[0]);
	close(pfd[1]);

	int dfd = open(self->path, O_RDONLY | O_DIRECT);

	if (dfd >= 0) {
		struct statfs sfs;

		ASSERT_EQ(0, fstatfs(dfd, &sfs));
		if (sfs.f_type == TMPFS_MAGIC ||
		    sfs.f_type == BTRFS_SUPER_MAGIC) {
			/*
			 * tmpfs (6.6+) serves O_DIRECT by copying: no GUP.
			 * btrfs falls back to a buffered read when GUP of
			 * the buffer fails.
			 */
			EXPECT_EQ(PG, pread(dfd, self->map + 8 * PG, PG, 0));
			EXPECT_TRUE(cm_is_pat(self->map + 8 * PG, 0, PG, 0));
		} else {
			/* Real direct I/O into the mapping: GUP, refused. */
			EXPECT_EQ(-1, pread(dfd, self->map + 8 * PG, PG, 0));
			EXPECT_EQ(EFAULT, errno);
		}
		close(dfd);
	}
	/* Direct I/O from the mapping (a write of its bytes): GUP too. */
	dfd = open(self->path, O_WRONLY | O_DIRECT);
	if (dfd >= 0) {
		struct statfs sfs;

		ASSERT_EQ(0, fstatfs(dfd, &sfs));
		if (sfs.f_type == BTRFS_SUPER_MAGIC) {
			/* A buffered write, of the bytes the file has. */
			EXPECT_EQ(PG, pwrite(dfd, self->map + 8 * PG, PG, 0));
		} else if (sfs.f_type != TMPFS_MAGIC) {
			EXPECT_EQ(-1, pwrite(dfd, self->map + 8 * PG, PG, 0));
			EXPECT_EQ(EFAULT, errno);
		}
		close(dfd);
	}
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
}

/*
 * MADV_REMOVE punches a hole through the mapping's file, here the device:
 * vfs_fallocate() refuses a character device with ENODEV. write(2) on a
 * session fd is not supported.
 */
TEST_F(sess, madv_remove_and_write_refused)
{
	self->map[PG] = 0x11;
	EXPECT_EQ(-1, madvise(self->map, 2 * PG, MADV_REMOVE));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(0x11, self->map[PG]);
	EXPECT_EQ(-1, write(self->fd, "x", 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
}

TEST_F(sess, munmap_partial)
{
	struct cowmap_status st;
	uint8_t *m;

	self->map[3 * PG] = 0x33;
	ASSERT_EQ(0, munmap(self->map + 2 * PG, 3 * PG));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(2, st.mappings);
	EXPECT_EQ(SIGSEGV, cm_try_read(self->map + 3 * PG));
	EXPECT_TRUE(cm_is_pat(self->map + PG, PG, PG, 0));
	self->map[6 * PG] = 0x66;
	/* The session keeps its page: a new mapping shows it. */
	m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 3 * PG);
	ASSERT_NE(MAP_FAILED, m);
	EXPECT_EQ(0x33, m[0]);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(3, st.mappings);
	EXPECT_EQ(2, st.private_pages);
	munmap(m, PG);
	/* Restore the fixture's mapping so teardown unmaps all of it. */
	ASSERT_NE(MAP_FAILED, mmap(self->map + 2 * PG, 3 * PG, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_FIXED, self->fd, 2 * PG));
	EXPECT_EQ(0x33, self->map[3 * PG]);
}

TEST_F(sess, mremap)
{
	struct cowmap_status st;
	uint8_t *m, *dst;

	self->map[PG] = 0x11;
	/* Growing is refused (VM_DONTEXPAND). */
	EXPECT_EQ(MAP_FAILED, mremap(self->map, NPAGES * PG, 2 * NPAGES * PG, 0));
	/* Moving works and keeps the view and the write tracking. */
	dst = mmap(NULL, NPAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, dst);
	m = mremap(self->map, NPAGES * PG, NPAGES * PG,
		   MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(dst, m);
	self->map = m;
	EXPECT_EQ(0x11, m[PG]);
	EXPECT_TRUE(cm_is_pat(m + 2 * PG, 2 * PG, PG, 0));
	m[2 * PG] = 0x22;
	EXPECT_EQ(0x22, m[2 * PG]);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(2, st.cow_copies);
	EXPECT_EQ(1, st.mappings);
	/* Shrinking works. */
	ASSERT_EQ(m, mremap(m, NPAGES * PG, 4 * PG, 0));
	EXPECT_EQ(SIGSEGV, cm_try_read(m + 5 * PG));
	munmap(m + 4 * PG, (NPAGES - 4) * PG);
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));
}

TEST_F(sess, mprotect_keeps_tracking)
{
	struct cowmap_status st;
	volatile uint8_t v;

	v = self->map[0];	/* base page mapped read-only */
	(void)v;
	self->map[PG] = 0x11;	/* page 1 private, writable */
	ASSERT_EQ(0, mprotect(self->map, NPAGES * PG, PROT_READ));
	EXPECT_EQ(SIGSEGV, cm_try_write(self->map, 1));
	EXPECT_EQ(SIGSEGV, cm_try_write(self->map + PG, 1));
	ASSERT_EQ(0, mprotect(self->map, NPAGES * PG, PROT_READ | PROT_WRITE));
	/* Read-only -> read-write must not let a write reach the base page. */
	self->map[0] = 0xF0;
	self->map[PG + 1] = 0xF1;
	EXPECT_EQ(0xF0, self->map[0]);
	EXPECT_EQ(0x11, self->map[PG]);
	EXPECT_EQ(0xF1, self->map[PG + 1]);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(2, st.cow_copies);
	EXPECT_TRUE(file_is_pristine(self->path, NPAGES * PG));

	/* A split by mprotect is one more VMA. */
	ASSERT_EQ(0, mprotect(self->map + 4 * PG, PG, PROT_READ));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(3, st.mappings);
}

TEST(session_fd_readonly)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "rofd", 2 * PG, O_RDONLY);
	int fd = open(COWMAP_DEVICE_PATH, O_RDONLY);
	uint8_t *m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	ASSERT_EQ(0, cm_attach(fd, file));
	/* Shared writable mapping of an fd opened read-only: refused. */
	EXPECT_EQ(MAP_FAILED, cm_map(fd, 2 * PG, 0));
	EXPECT_EQ(EACCES, errno);
	m = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, m);
	EXPECT_TRUE(cm_is_pat(m, 0, 2 * PG, 0));
	EXPECT_EQ(-1, mprotect(m, 2 * PG, PROT_READ | PROT_WRITE));
	munmap(m, 2 * PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

/* Adopt orphan @id, check it kept @pages written pages, and discard it. */
static int adopt_and_discard(uint64_t id, unsigned long pages)
{
	struct cowmap_status st;
	int fd = cm_adopt_new(id);

	if (fd < 0 || cm_status(fd, &st))
		return -1;
	if (st.state != COWMAP_STATE_ATTACHED || st.private_pages != pages ||
	    !st.journal_records || st.twin_pages)
		return -1;
	cm_end(fd);
	return 0;
}

TEST(close_before_munmap)
{
	long base = cm_param_get("pages_in_use");
	struct cowmap_status st;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "close", 16 * PG, O_RDONLY);
	int fd = cm_session(file);
	uint8_t *m;

	ASSERT_LE(0, base);
	ASSERT_LE(0, fd);
	m = cm_map(fd, 16 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, cm_status(fd, &st));
	close(fd);
	close(file);
	/* The mapping keeps the session alive. */
	for (int i = 0; i < 10; i++)
		m[i * PG] = i + 1;
	EXPECT_TRUE(cm_is_pat(m + 12 * PG, 12 * PG, 4 * PG, 0));
	EXPECT_EQ(base + 20, cm_param_get("pages_in_use"));
	for (int i = 0; i < 10; i++)
		EXPECT_EQ(i + 1, m[i * PG]);
	/* Gone with its changes: committed and kept as an orphan. */
	ASSERT_EQ(0, munmap(m, 16 * PG));
	EXPECT_EQ(base + 10, cm_param_get("pages_in_use"));
	EXPECT_EQ(0, adopt_and_discard(st.session_id, 10));
	EXPECT_EQ(base, cm_param_get("pages_in_use"));
	EXPECT_TRUE(file_is_pristine(path, 16 * PG));
	unlink(path);
}

TEST(unchanged_session_freed_at_last_unmap)
{
	long base = cm_param_get("pages_in_use");
	struct cowmap_status st;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "nochg", 4 * PG, O_RDONLY);
	int fd = cm_session(file), probe;
	uint8_t *m, old;

	ASSERT_LE(0, fd);
	m = cm_map(fd, 4 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, cm_status(fd, &st));
	close(fd);
	/* Written, and written back: nothing changed, nothing to keep. */
	old = m[PG];
	((volatile uint8_t *)m)[PG] = old + 1;
	((volatile uint8_t *)m)[PG] = old;
	EXPECT_EQ(base + 2, cm_param_get("pages_in_use"));
	ASSERT_EQ(0, munmap(m, 4 * PG));
	EXPECT_EQ(base, cm_param_get("pages_in_use"));
	probe = cm_open();
	ASSERT_EQ(0, cm_handshake(probe));
	EXPECT_EQ(-1, cm_adopt(probe, st.session_id));
	EXPECT_EQ(ENOENT, errno);
	close(probe);
	close(file);
	unlink(path);
}

TEST(exit_leaves_orphan)
{
	long base = cm_param_get("pages_in_use");
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "exit", 16 * PG, O_RDONLY);
	uint64_t id;
	int pfd[2];
	pid_t pid;

	ASSERT_LE(0, base);
	ASSERT_LE(0, file);
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = cm_session(file);
		uint8_t *m = fd < 0 ? MAP_FAILED : cm_map(fd, 16 * PG, 0);
		struct cowmap_status st;

		if (m == MAP_FAILED || cm_status(fd, &st))
			_exit(10);
		memset(m, 0xEE, 16 * PG);
		if (write(pfd[1], &st.session_id, 8) != 8)
			_exit(11);
		_exit(cm_param_get("pages_in_use") == base + 32 ? 0 : 12);
	}
	EXPECT_EQ(0, cm_wait(pid));
	ASSERT_EQ(8, read(pfd[0], &id, 8));
	/* Its copies stay (the twins went with the commit at close). */
	EXPECT_EQ(base + 16, cm_param_get("pages_in_use"));
	EXPECT_EQ(0, adopt_and_discard(id, 16));
	EXPECT_EQ(base, cm_param_get("pages_in_use"));

	/* Killed by a signal in the middle of writing: kept as well. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = cm_session(file);
		uint8_t *m = fd < 0 ? MAP_FAILED : cm_map(fd, 16 * PG, 0);
		struct cowmap_status st;

		if (m == MAP_FAILED || cm_status(fd, &st))
			_exit(10);
		memset(m, 0x11, 16 * PG);
		if (write(pfd[1], &st.session_id, 8) != 8)
			_exit(11);
		for (;;)
			for (size_t i = 0; i < 16 * PG; i += 64)
				m[i]++;
	}
	ASSERT_EQ(8, read(pfd[0], &id, 8));
	usleep(100000);
	kill(pid, SIGKILL);
	EXPECT_EQ(128 + SIGKILL, cm_wait(pid));
	EXPECT_EQ(0, adopt_and_discard(id, 16));
	EXPECT_EQ(base, cm_param_get("pages_in_use"));
	EXPECT_TRUE(file_is_pristine(path, 16 * PG));
	close(file);
	unlink(path);
}

TEST(limit_per_session)
{
	long old = cm_param_get("max_session_pages");
	struct cowmap_status st;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "limit", 8 * PG, O_RDONLY);
	int fd = cm_session(file);
	uint8_t *m;

	ASSERT_LT(0, old);
	ASSERT_LE(0, fd);
	m = cm_map(fd, 8 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, cm_param_set("max_session_pages", 6));
	/* A first write costs two pages (copy + twin): three fit. */
	EXPECT_EQ(0, cm_try_write(m, 1));
	EXPECT_EQ(0, cm_try_write(m + PG, 1));
	EXPECT_EQ(0, cm_try_write(m + 2 * PG, 1));
	EXPECT_EQ(SIGBUS, cm_try_write(m + 3 * PG, 1));
	/* Reads and writes to pages it has still work. */
	EXPECT_TRUE(cm_is_pat(m + 3 * PG, 3 * PG, PG, 0));
	EXPECT_EQ(0, cm_try_write(m + 2 * PG + 1, 2));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(3, st.private_pages);
	EXPECT_LE(1, st.limit_hits);
	/* Another session is not affected by this one's pages. */
	int fd2 = cm_session(file);
	uint8_t *m2 = cm_map(fd2, 8 * PG, 0);

	ASSERT_NE(MAP_FAILED, m2);
	EXPECT_EQ(0, cm_try_write(m2 + 3 * PG, 1));
	ASSERT_EQ(0, cm_param_set("max_session_pages", old));
	EXPECT_EQ(0, cm_try_write(m + 3 * PG, 1));
	EXPECT_TRUE(file_is_pristine(path, 8 * PG));
	munmap(m2, 8 * PG);
	cm_end(fd2);
	munmap(m, 8 * PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST(limit_global)
{
	long old = cm_param_get("max_total_pages");
	long used = cm_param_get("pages_in_use");
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "glimit", 8 * PG, O_RDONLY);
	int fd = cm_session(file), fd2 = cm_session(file);
	uint8_t *m, *m2;

	ASSERT_LT(0, old);
	ASSERT_LE(0, fd);
	m = cm_map(fd, 8 * PG, 0);
	m2 = cm_map(fd2, 8 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_NE(MAP_FAILED, m2);
	ASSERT_EQ(0, cm_param_set("max_total_pages", used + 4));
	EXPECT_EQ(0, cm_try_write(m, 1));
	EXPECT_EQ(0, cm_try_write(m2, 1));
	EXPECT_EQ(SIGBUS, cm_try_write(m + PG, 1));
	EXPECT_EQ(SIGBUS, cm_try_write(m2 + PG, 1));
	ASSERT_EQ(0, cm_param_set("max_total_pages", old));
	EXPECT_EQ(0, cm_try_write(m + PG, 1));
	munmap(m, 8 * PG);
	munmap(m2, 8 * PG);
	cm_end(fd);
	cm_end(fd2);
	EXPECT_EQ(used, cm_param_get("pages_in_use"));
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
