// SPDX-License-Identifier: GPL-2.0
/*
 * Views (COWMAP_IOC_VIEW): a session as a regular file. read/write and
 * their vector and positional forms, O_APPEND, lseek with SEEK_DATA and
 * SEEK_HOLE, fallocate, mmap, fsync, splice/sendfile/copy_file_range, and
 * their effect on the journal: every sequence of operations on a view,
 * committed and merged, leaves the file byte for byte equal to a plain
 * copy that received the same operations. Lifetimes (dup, fork, close of
 * the session fd) and bad input.
 */
#include <linux/falloc.h>
#include <pthread.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#include <sys/resource.h>

#include "cowmap_log.h"
#include "cowmap_harness.h"

#define NPAGES 16
#define SIZE (NPAGES * PG)

static int view(int fd, unsigned int flags)
{
	struct cowmap_view v = { .flags = flags | COWMAP_VIEW_CLOEXEC };

	if (ioctl(fd, COWMAP_IOC_VIEW, &v))
		return -1;
	return v.fd;
}

static int merge(int fd, int target, unsigned int flags,
		 struct cowmap_merge *m)
{
	*m = (struct cowmap_merge){ .target_fd = target, .flags = flags };
	return ioctl(fd, COWMAP_IOC_MERGE, m);
}

/* Are the first @len bytes of @a and @b equal? Reports the first difference. */
static int same_files(int a, int b, size_t len)
{
	static uint8_t x[SIZE * 80], y[SIZE * 80];
	struct stat sa, sb;

	if (fstat(a, &sa) || fstat(b, &sb) || sa.st_size != sb.st_size ||
	    (size_t)sa.st_size != len) {
		fprintf(stderr, "# sizes differ: %lld %lld %zu\n",
			(long long)sa.st_size, (long long)sb.st_size, len);
		return 0;
	}
	if (pread(a, x, len, 0) != (ssize_t)len ||
	    pread(b, y, len, 0) != (ssize_t)len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (x[i] != y[i]) {
			fprintf(stderr, "# differ at %zu: %#x %#x\n", i, x[i], y[i]);
			return 0;
		}
	}
	return 1;
}

FIXTURE(v) {
	char path[256];
	char mpath[256];
	int file;	/* the backing file, O_RDWR (the merge target) */
	int model;	/* a plain copy receiving the same operations */
	int fd;		/* the session */
	int view;	/* a read-write view */
};

FIXTURE_SETUP(v)
{
	self->file = cm_mkfile(self->path, sizeof(self->path), "view", SIZE,
			       O_RDWR);
	ASSERT_LE(0, self->file);
	self->model = cm_mkfile(self->mpath, sizeof(self->mpath), "model",
				SIZE, O_RDWR);
	ASSERT_LE(0, self->model);
	self->fd = cm_session(self->file);
	ASSERT_LE(0, self->fd);
	self->view = view(self->fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, self->view);
}

FIXTURE_TEARDOWN(v)
{
	close(self->view);
	cm_end(self->fd);
	close(self->file);
	close(self->model);
	unlink(self->path);
	unlink(self->mpath);
}

TEST_F(v, is_a_regular_file)
{
	uint8_t buf[SIZE];
	struct stat st;
	int fl;

	ASSERT_EQ(0, fstat(self->view, &st));
	EXPECT_TRUE(S_ISREG(st.st_mode));
	EXPECT_EQ(SIZE, st.st_size);
	fl = fcntl(self->view, F_GETFL);
	EXPECT_EQ(O_RDWR, fl & O_ACCMODE);
	EXPECT_EQ(FD_CLOEXEC, fcntl(self->view, F_GETFD));
	ASSERT_EQ(SIZE, pread(self->view, buf, SIZE, 0));
	EXPECT_TRUE(cm_is_pat(buf, 0, SIZE, 0));
	/* read(2) moves the position; lseek(2) works as on a file. */
	EXPECT_EQ(100, read(self->view, buf, 100));
	EXPECT_EQ(100, lseek(self->view, 0, SEEK_CUR));
	EXPECT_EQ(SIZE - 10, lseek(self->view, -10, SEEK_END));
	EXPECT_EQ(10, read(self->view, buf, 100));
	EXPECT_EQ(0, read(self->view, buf, 100));
	EXPECT_TRUE(cm_is_pat(buf, SIZE - 10, 10, 0));
	/* Session ioctls are for the session fd. */
	EXPECT_EQ(-1, ioctl(self->view, COWMAP_IOC_STATUS, buf));
	EXPECT_EQ(ENOTTY, errno);
}

/* Writes through the view and the session's mapping are one session. */
/*
 * A write whose source is the session's own mapping of the page it writes:
 * making that page private unmaps the source under the copy, which then
 * faults it in again (not EFAULT).
 */
TEST_F(v, write_from_own_mapping)
{
	uint8_t orig[100], got[100];
	volatile uint8_t *m = cm_map(self->fd, 2 * PG, 0);

	ASSERT_NE(MAP_FAILED, (void *)m);
	ASSERT_EQ(100, pread(self->file, orig, 100, PG));
	(void)m[PG];		/* the base page, mapped */
	ASSERT_EQ(100, pwrite(self->view, (const void *)(m + PG), 100, PG + 200));
	ASSERT_EQ(100, pread(self->view, got, 100, PG + 200));
	EXPECT_EQ(0, memcmp(orig, got, 100));
	EXPECT_EQ(0, memcmp(orig, (const void *)(m + PG + 200), 100));
	munmap((void *)m, 2 * PG);
}

TEST_F(v, view_and_mapping_share_pages)
{
	uint8_t *map = cm_map(self->fd, SIZE, 0), *vmap;
	uint8_t buf[PG];
	struct cowmap_status st;

	ASSERT_NE(MAP_FAILED, map);
	vmap = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, self->view, 0);
	ASSERT_NE(MAP_FAILED, vmap);
	/* A page read through the mapping first, then written by the view. */
	EXPECT_EQ(cm_pat(5, 0), map[5]);
	ASSERT_EQ(3, pwrite(self->view, "abc", 3, 4));
	EXPECT_EQ(0, memcmp(map + 4, "abc", 3));
	EXPECT_EQ(0, memcmp(vmap + 4, "abc", 3));
	/* A store through the mapping, read by the view. */
	memcpy(map + 3 * PG + 7, "xyz", 3);
	ASSERT_EQ(3, pread(self->view, buf, 3, 3 * PG + 7));
	EXPECT_EQ(0, memcmp(buf, "xyz", 3));
	memcpy(vmap + 5 * PG, "q", 1);
	EXPECT_EQ('q', map[5 * PG]);
	/* The file never changed. */
	ASSERT_EQ(PG, pread(self->file, buf, PG, 0));
	EXPECT_TRUE(cm_is_pat(buf, 0, PG, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(3, st.cow_copies);
	EXPECT_EQ(2, st.mappings);
	/* Three records, one per written run. */
	EXPECT_EQ(3, cm_commit(self->fd, 0));
	munmap(vmap, SIZE);
	munmap(map, SIZE);
}

/* The same random operations on a view and on a plain copy: merged equal. */
TEST_F(v, model)
{
	static uint8_t buf[3 * PG], got[3 * PG], want[3 * PG];
	struct cowmap_merge m;
	unsigned int seed = 12345;
	uint8_t *map;

	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, self->view, 0);
	ASSERT_NE(MAP_FAILED, map);
	for (int i = 0; i < 400; i++) {
		unsigned int op = rand_r(&seed) % 7;
		off_t off = rand_r(&seed) % SIZE;
		size_t len = 1 + rand_r(&seed) % (2 * PG);
		struct iovec iov[2];

		if (off + len > SIZE)
			len = SIZE - off;
		for (size_t k = 0; k < len; k++)
			buf[k] = rand_r(&seed);
		switch (op) {
		case 0:	/* pwrite */
			ASSERT_EQ((ssize_t)len, pwrite(self->view, buf, len, off));
			ASSERT_EQ((ssize_t)len, pwrite(self->model, buf, len, off));
			break;
		case 1:	/* lseek + writev */
			iov[0] = (struct iovec){ buf, len / 2 };
			iov[1] = (struct iovec){ buf + len / 2, len - len / 2 };
			ASSERT_EQ(off, lseek(self->view, off, SEEK_SET));
			ASSERT_EQ((ssize_t)len, writev(self->view, iov, 2));
			ASSERT_EQ(off + (off_t)len, lseek(self->view, 0, SEEK_CUR));
			ASSERT_EQ((ssize_t)len, pwrite(self->model, buf, len, off));
			break;
		case 2:	/* a store through the view's mapping */
			memcpy(map + off, buf, len);
			ASSERT_EQ((ssize_t)len, pwrite(self->model, buf, len, off));
			break;
		case 3:	/* punch a hole: zeros, size kept */
			ASSERT_EQ(0, fallocate(self->view, FALLOC_FL_PUNCH_HOLE |
					       FALLOC_FL_KEEP_SIZE, off, len));
			memset(want, 0, len);
			ASSERT_EQ((ssize_t)len, pwrite(self->model, want, len, off));
			break;
		case 4:	/* zero a range */
			ASSERT_EQ(0, fallocate(self->view, FALLOC_FL_ZERO_RANGE,
					       off, len));
			memset(want, 0, len);
			ASSERT_EQ((ssize_t)len, pwrite(self->model, want, len, off));
			break;
		case 5:	/* a commit now and then */
			ASSERT_LE(0, cm_commit(self->fd, 0));
			break;
		default:	/* preadv of the view equals the model */
			iov[0] = (struct iovec){ got, len / 3 };
			iov[1] = (struct iovec){ got + len / 3, len - len / 3 };
			ASSERT_EQ((ssize_t)len, preadv(self->view, iov, 2, off));
			ASSERT_EQ((ssize_t)len, pread(self->model, want, len, off));
			ASSERT_EQ(0, memcmp(got, want, len));
			break;
		}
	}
	munmap(map, SIZE);
	/* The file itself never changed. */
	for (off_t off = 0; off < SIZE; off += PG) {
		ASSERT_EQ(PG, pread(self->file, got, PG, off));
		ASSERT_TRUE(cm_is_pat(got, off, PG, 0));
	}
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_TRUE(same_files(self->file, self->model, SIZE));
}

/* A read-only view: reads, no writes; a read-only session fd: no RW view. */
TEST_F(v, read_only_view)
{
	struct cowmap_status st;
	uint8_t buf[16];
	int ro, rofd, fd;
	void *p;

	ro = view(self->fd, 0);
	ASSERT_LE(0, ro);
	EXPECT_EQ(O_RDONLY, fcntl(ro, F_GETFL) & O_ACCMODE);
	EXPECT_EQ(-1, pwrite(ro, "x", 1, 0));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, write(ro, "x", 1));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ftruncate(ro, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, fallocate(ro, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				0, 1));
	EXPECT_EQ(EBADF, errno);
	p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EACCES, errno);
	p = mmap(NULL, PG, PROT_READ, MAP_SHARED, ro, 0);
	ASSERT_NE(MAP_FAILED, p);
	/* A write through the RW view shows in the RO view and its mapping. */
	ASSERT_EQ(2, pwrite(self->view, "hi", 2, 10));
	ASSERT_EQ(2, pread(ro, buf, 2, 10));
	EXPECT_EQ(0, memcmp(buf, "hi", 2));
	EXPECT_EQ(0, memcmp((char *)p + 10, "hi", 2));
	munmap(p, PG);
	close(ro);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(1, st.cow_copies);

	/* A session fd opened O_RDONLY gives read-only views only. */
	rofd = open(COWMAP_DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, rofd);
	ASSERT_EQ(0, cm_handshake(rofd));
	ASSERT_EQ(0, cm_attach(rofd, self->file));
	EXPECT_EQ(-1, view(rofd, COWMAP_VIEW_RDWR));
	EXPECT_EQ(EBADF, errno);
	fd = view(rofd, 0);
	EXPECT_LE(0, fd);
	close(fd);
	close(rofd);
}

TEST_F(v, bad_input)
{
	struct cowmap_api api = { .api = COWMAP_API };
	struct cowmap_view vw = { 0 };
	uint8_t buf[PG];
	void *bad;
	struct cowmap_status st;
	int fd, fl;

	vw.flags = 1U << 5;
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_VIEW, &vw));
	EXPECT_EQ(EINVAL, errno);
	vw = (struct cowmap_view){ .fd = 3 };
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_VIEW, &vw));
	EXPECT_EQ(EINVAL, errno);
	vw = (struct cowmap_view){ .reserved[2] = 1 };
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_VIEW, &vw));
	EXPECT_EQ(EINVAL, errno);
	/* A wrong size is a wrong struct. */
	EXPECT_EQ(-1, ioctl(self->fd, _IOWR(COWMAP_IOC_MAGIC, 0x09, uint64_t), &vw));
	EXPECT_EQ(EINVAL, errno);
	/* The answer cannot be written back: no fd is left behind. */
	fd = dup(0);
	ASSERT_LE(0, fd);
	close(fd);
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_VIEW, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	bad = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, bad);
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_VIEW, bad));
	EXPECT_EQ(EFAULT, errno);
	munmap(bad, PG);
	fl = dup(0);
	EXPECT_EQ(fd, fl);
	close(fl);
	/* Not attached: nothing to view. */
	fd = cm_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	EXPECT_EQ(-1, view(fd, 0));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
	/* Listed by the handshake. */
	fd = cm_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_API, &api));
	EXPECT_TRUE(api.ioctls & COWMAP_IOCTL_BIT(COWMAP_IOC_VIEW));
	close(fd);

	/* O_DIRECT is refused. */
	fl = fcntl(self->view, F_GETFL);
	EXPECT_EQ(-1, fcntl(self->view, F_SETFL, fl | O_DIRECT));
	EXPECT_EQ(EINVAL, errno);
	/* Sizes: negative, past the largest file: nothing changes. */
	EXPECT_EQ(-1, ftruncate(self->view, -1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, ftruncate(self->view, SIZE));
	EXPECT_EQ(-1, pwrite(self->view, "x", 1, -1));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(SIZE, st.session_size);
	EXPECT_EQ(0, st.journal_records);
	memset(buf, 'z', sizeof(buf));
	EXPECT_EQ(0, fallocate(self->view, FALLOC_FL_KEEP_SIZE, SIZE - 1, 2));
	EXPECT_EQ(0, fallocate(self->view, 0, 0, SIZE));
	EXPECT_EQ(-1, fallocate(self->view, FALLOC_FL_COLLAPSE_RANGE, 0, PG));
	EXPECT_EQ(EOPNOTSUPP, errno);
	EXPECT_EQ(-1, fallocate(self->view, FALLOC_FL_INSERT_RANGE, 0, PG));
	EXPECT_EQ(EOPNOTSUPP, errno);
	/* A bad buffer: EFAULT, nothing written. */
	bad = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, bad);
	munmap(bad, PG);
	EXPECT_EQ(-1, pwrite(self->view, bad, 10, 0));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, pread(self->view, bad, 10, 0));
	EXPECT_EQ(EFAULT, errno);

	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(SIZE, st.size);
	EXPECT_EQ(SIZE, st.session_size);
	EXPECT_EQ(0, st.private_pages);
	EXPECT_EQ(0, cm_commit(self->fd, 0));
	ASSERT_EQ(PG, pread(self->file, buf, PG, SIZE - PG));
	EXPECT_TRUE(cm_is_pat(buf, SIZE - PG, PG, 0));
}

/* O_APPEND writes at the session's end and grow it. */
TEST_F(v, append)
{
	int fl = fcntl(self->view, F_GETFL);
	struct cowmap_merge m;
	struct stat st;
	uint8_t buf[8];

	ASSERT_EQ(0, fcntl(self->view, F_SETFL, fl | O_APPEND));
	EXPECT_EQ(2, pwrite(self->view, "ab", 2, 0));
	EXPECT_EQ(3, write(self->view, "cde", 3));
	ASSERT_EQ(0, fstat(self->view, &st));
	EXPECT_EQ(SIZE + 5, st.st_size);
	ASSERT_EQ(5, pread(self->view, buf, 5, SIZE));
	EXPECT_EQ(0, memcmp(buf, "abcde", 5));
	ASSERT_EQ(5, pwrite(self->model, "abcde", 5, SIZE));
	/* The file did not grow; the merge grows it. */
	ASSERT_EQ(0, fstat(self->file, &st));
	EXPECT_EQ(SIZE, st.st_size);
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(2, m.applied);	/* the size, then the bytes */
	EXPECT_TRUE(same_files(self->file, self->model, SIZE + 5));
	/* Run again: already applied. */
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(2, m.already);
	EXPECT_EQ(0, m.conflicts);
}

/* fcntl locks are on the view's inode: one per session, across views. */
TEST_F(v, locks_and_private_maps)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = 0, .l_len = 10 };
	int other;
	pid_t pid;

	ASSERT_EQ(0, fcntl(self->view, F_SETLK, &fl));
	other = view(self->fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, other);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct flock f2 = fl;

		/* Held by the parent: refused through another view too. */
		if (fcntl(other, F_SETLK, &f2) != -1 || errno != EAGAIN)
			_exit(1);
		f2.l_start = 10;
		_exit(fcntl(other, F_SETLK, &f2) != 0);
	}
	EXPECT_EQ(0, cm_wait(pid));
	close(other);
	/* Private mappings are refused, as on the session fd. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PG, PROT_READ, MAP_PRIVATE, self->view, 0));
	EXPECT_EQ(EINVAL, errno);
}

/* The base's data and holes, and the session's written pages as data. */
TEST(seek_data_hole)
{
	char path[256];
	int file, fd, vw;
	off_t hole;

	snprintf(path, sizeof(path), "%s/sparse.%d", cm_dir(), getpid());
	file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, file);
	/* Data in pages 0 and 8, holes in 1-7 and 9-15. */
	ASSERT_EQ(0, ftruncate(file, 16 * PG));
	ASSERT_EQ(1, pwrite(file, "a", 1, 0));
	ASSERT_EQ(1, pwrite(file, "b", 1, 8 * PG));
	ASSERT_EQ(0, fsync(file));
	hole = lseek(file, 0, SEEK_HOLE);
	if (hole != PG) {
		close(file);
		unlink(path);
		SKIP(return, "the filesystem reports holes at %lld", (long long)hole);
	}
	ASSERT_EQ(7, lseek(file, 7, SEEK_SET));
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	vw = view(fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, vw);
	EXPECT_EQ(0, lseek(vw, 0, SEEK_DATA));
	EXPECT_EQ(PG, lseek(vw, 0, SEEK_HOLE));
	EXPECT_EQ(8 * PG, lseek(vw, PG, SEEK_DATA));
	EXPECT_EQ(9 * PG, lseek(vw, 8 * PG, SEEK_HOLE));
	EXPECT_EQ(-1, lseek(vw, 9 * PG, SEEK_DATA));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(-1, lseek(vw, 16 * PG, SEEK_HOLE));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(-1, lseek(vw, -1, SEEK_DATA));
	EXPECT_EQ(ENXIO, errno);
	/* The session writes pages 3, 4 and 12: data now, in the view only. */
	ASSERT_EQ(1, pwrite(vw, "c", 1, 3 * PG + 5));
	ASSERT_EQ(1, pwrite(vw, "d", 1, 4 * PG));
	ASSERT_EQ(1, pwrite(vw, "e", 1, 12 * PG));
	EXPECT_EQ(3 * PG, lseek(vw, PG, SEEK_DATA));
	EXPECT_EQ(3 * PG + 7, lseek(vw, 3 * PG + 7, SEEK_DATA));
	EXPECT_EQ(5 * PG, lseek(vw, 3 * PG, SEEK_HOLE));
	EXPECT_EQ(5 * PG, lseek(vw, 0, SEEK_CUR));
	EXPECT_EQ(12 * PG, lseek(vw, 9 * PG, SEEK_DATA));
	EXPECT_EQ(13 * PG, lseek(vw, 12 * PG, SEEK_HOLE));
	/* The caller's fd of the file kept its position. */
	EXPECT_EQ(7, lseek(file, 0, SEEK_CUR));
	close(vw);
	cm_end(fd);
	close(file);
	unlink(path);
}

/* Unwritten ranges of a view follow the file; written ones do not. */
TEST_F(v, read_follows_base)
{
	uint8_t buf[2 * PG];
	pid_t pid;

	ASSERT_EQ(1, pwrite(self->view, "S", 1, PG + 100));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int w = open(self->path, O_WRONLY | O_CLOEXEC);

		cm_fill(buf, 0, 2 * PG, 1);
		_exit(w < 0 || pwrite(w, buf, 2 * PG, 0) != 2 * PG);
	}
	ASSERT_EQ(0, cm_wait(pid));
	ASSERT_EQ(2 * PG, pread(self->view, buf, 2 * PG, 0));
	EXPECT_TRUE(cm_is_pat(buf, 0, PG, 1));
	/* Page 1 is the session's: generation 0 and its byte. */
	EXPECT_TRUE(cm_is_pat(buf + PG, PG, 100, 0));
	EXPECT_EQ('S', buf[PG + 100]);
	EXPECT_TRUE(cm_is_pat(buf + PG + 101, PG + 101, PG - 101, 0));
}

/* dup, fork: one session; closing the session fd keeps it for the view. */
TEST_F(v, dup_fork_close)
{
	struct cowmap_status st;
	uint8_t buf[8];
	uint64_t id;
	int d, fd;
	pid_t pid;

	ASSERT_EQ(0, cm_status(self->fd, &st));
	id = st.session_id;
	d = dup(self->view);
	ASSERT_LE(0, d);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(pwrite(d, "child", 5, 0) != 5);
	ASSERT_EQ(0, cm_wait(pid));
	close(d);
	ASSERT_EQ(5, pread(self->view, buf, 5, 0));
	EXPECT_EQ(0, memcmp(buf, "child", 5));

	/* The session outlives its fd while a view is open. */
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(3, pwrite(self->view, "new", 3, PG));
	ASSERT_EQ(3, pread(self->view, buf, 3, PG));
	EXPECT_EQ(0, memcmp(buf, "new", 3));
	/* The last view's close commits: an orphan with one record. */
	close(self->view);
	self->view = -1;
	fd = cm_adopt_new(id);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(2, st.journal_records);
	self->fd = fd;
}

/* fsync on a view is a durable commit into the journal file. */
TEST(fsync_journal_file)
{
	char path[256], jpath[256];
	struct cowmap_attach a;
	struct cowmap_status st;
	struct stat js;
	int file, j, fd, vw;

	file = cm_mkfile(path, sizeof(path), "vj", 4 * PG, O_RDONLY);
	ASSERT_LE(0, file);
	snprintf(jpath, sizeof(jpath), "%s/vj.journal.%d", cm_dir(), getpid());
	j = open(jpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, j);
	fd = cm_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	vw = view(fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, vw);
	ASSERT_EQ(4, pwrite(vw, "data", 4, 100));
	ASSERT_EQ(0, fstat(j, &js));
	EXPECT_EQ(sizeof(struct cowmap_log_header), (size_t)js.st_size);
	ASSERT_EQ(0, fdatasync(vw));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(1, st.journal_records);
	EXPECT_EQ(1, st.journal_file_seq);
	ASSERT_EQ(0, fstat(j, &js));
	EXPECT_EQ(sizeof(struct cowmap_log_header) + st.journal_bytes,
		  (size_t)js.st_size);
	/* RWF_DSYNC writes commit too. */
	ASSERT_EQ(4, pwritev2(vw, &(struct iovec){ "more", 4 }, 1, 3 * PG,
			      RWF_DSYNC));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(2, st.journal_records);
	EXPECT_EQ(2, st.journal_file_seq);
	close(vw);
	cm_end(fd);
	close(j);
	close(file);
	unlink(jpath);
	unlink(path);
}

/* splice, sendfile and copy_file_range read the session's bytes. */
TEST_F(v, splice_sendfile_copy)
{
	uint8_t buf[2 * PG], got[2 * PG];
	char opath[256];
	int out, p[2], file2, fd2, vw2;
	loff_t in_off, out_off;
	ssize_t n;

	memset(buf, 'V', PG);
	ASSERT_EQ(PG, pwrite(self->view, buf, PG, PG));
	cm_fill(buf, 0, PG, 0);
	memset(buf + PG, 'V', PG);

	snprintf(opath, sizeof(opath), "%s/vout.%d", cm_dir(), getpid());
	out = open(opath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, out);
	in_off = 0;
	ASSERT_EQ(2 * PG, sendfile(out, self->view, &in_off, 2 * PG));
	ASSERT_EQ(2 * PG, pread(out, got, 2 * PG, 0));
	EXPECT_EQ(0, memcmp(got, buf, 2 * PG));

	ASSERT_EQ(0, pipe(p));
	in_off = PG - 10;
	ASSERT_EQ(20, splice(self->view, &in_off, p[1], NULL, 20, 0));
	ASSERT_EQ(20, read(p[0], got, 20));
	EXPECT_EQ(0, memcmp(got, buf + PG - 10, 20));
	close(p[0]);
	close(p[1]);

	/* Into a file elsewhere: the kernel copies, or says EXDEV. */
	ASSERT_EQ(0, ftruncate(out, 0));
	in_off = 0;
	out_off = 0;
	n = copy_file_range(self->view, &in_off, out, &out_off, 2 * PG, 0);
	if (n >= 0) {
		EXPECT_EQ(2 * PG, n);
		ASSERT_EQ(2 * PG, pread(out, got, 2 * PG, 0));
		EXPECT_EQ(0, memcmp(got, buf, 2 * PG));
	} else {
		EXPECT_EQ(EXDEV, errno);
	}
	/* Into a view of another session (same filesystem): a copy. */
	file2 = cm_mkfile(opath, sizeof(opath), "vout2", 4 * PG, O_RDONLY);
	ASSERT_LE(0, file2);
	fd2 = cm_session(file2);
	ASSERT_LE(0, fd2);
	vw2 = view(fd2, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, vw2);
	in_off = 0;
	out_off = PG;
	ASSERT_EQ(2 * PG, copy_file_range(self->view, &in_off, vw2, &out_off,
					  2 * PG, 0));
	ASSERT_EQ(2 * PG, pread(vw2, got, 2 * PG, PG));
	EXPECT_EQ(0, memcmp(got, buf, 2 * PG));
	ASSERT_EQ(PG, pread(file2, got, PG, PG));
	EXPECT_TRUE(cm_is_pat(got, PG, PG, 0));
	close(vw2);
	cm_end(fd2);
	close(file2);
	unlink(opath);
	close(out);
	snprintf(opath, sizeof(opath), "%s/vout.%d", cm_dir(), getpid());
	unlink(opath);
	/* The backing file never changed. */
	ASSERT_EQ(2 * PG, pread(self->file, got, 2 * PG, 0));
	EXPECT_TRUE(cm_is_pat(got, 0, 2 * PG, 0));
}

/* A write past the page limits: ENOSPC after what fit, nothing lost. */
TEST_F(v, page_limit)
{
	static uint8_t buf[SIZE];
	long old = cm_param_get("max_session_pages");
	struct cowmap_status st;
	ssize_t n;

	if (geteuid())
		SKIP(return, "needs root for the module parameter");
	ASSERT_LT(0, old);
	/* Two pages per written page: three pages fit. */
	ASSERT_EQ(0, cm_param_set("max_session_pages", 6));
	memset(buf, 'L', sizeof(buf));
	n = pwrite(self->view, buf, SIZE, 0);
	EXPECT_EQ(3 * PG, n);
	n = pwrite(self->view, buf, PG, 3 * PG);
	EXPECT_EQ(-1, n);
	EXPECT_EQ(ENOSPC, errno);
	ASSERT_EQ(0, cm_param_set("max_session_pages", old));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_LE(1, st.limit_hits);
	EXPECT_EQ(3, st.private_pages);
	ASSERT_EQ(4 * PG, pread(self->view, buf, 4 * PG, 0));
	for (size_t i = 0; i < 3 * PG; i++)
		ASSERT_EQ('L', buf[i]);
	EXPECT_TRUE(cm_is_pat(buf + 3 * PG, 3 * PG, PG, 0));
	EXPECT_LE(1, cm_commit(self->fd, 0));
}

/*
 * Concurrently: a thread writing through the view, one storing through a
 * mapping of the session fd, one committing, one reading the view; each
 * writer owns half of the file and keeps its own model. Merged at the end,
 * the file equals the models.
 */
struct conc {
	int view;
	uint8_t *map;
	uint8_t *model;		/* SIZE bytes, each writer updates its half */
	volatile int stop;
	int fd;
	int errors;
};

static void *conc_view_writer(void *arg)
{
	struct conc *c = arg;
	unsigned int seed = 1;
	uint8_t buf[PG];

	for (int i = 0; i < 3000; i++) {
		off_t off = rand_r(&seed) % (SIZE / 2);
		size_t len = 1 + rand_r(&seed) % PG;

		if (off + len > SIZE / 2)
			len = SIZE / 2 - off;
		memset(buf, rand_r(&seed), len);
		if (pwrite(c->view, buf, len, off) != (ssize_t)len)
			c->errors++;
		memcpy(c->model + off, buf, len);
	}
	return NULL;
}

static void *conc_map_writer(void *arg)
{
	struct conc *c = arg;
	unsigned int seed = 2;

	for (int i = 0; i < 3000; i++) {
		off_t off = SIZE / 2 + rand_r(&seed) % (SIZE / 2);
		size_t len = 1 + rand_r(&seed) % PG;
		int v = rand_r(&seed);

		if (off + len > SIZE)
			len = SIZE - off;
		memset(c->map + off, v, len);
		memset(c->model + off, v, len);
	}
	return NULL;
}

static void *conc_committer(void *arg)
{
	struct conc *c = arg;

	while (!c->stop)
		if (cm_commit(c->fd, 0) < 0)
			c->errors++;
	return NULL;
}

static void *conc_reader(void *arg)
{
	struct conc *c = arg;
	static uint8_t buf[SIZE];

	/* The view reads what the mapping shows, as of some moment. */
	while (!c->stop)
		if (pread(c->view, buf, SIZE, 0) != SIZE)
			c->errors++;
	return NULL;
}

TEST_F(v, concurrent_view_map_commit)
{
	static uint8_t model[SIZE];
	struct cowmap_merge m;
	pthread_t t[4];
	struct conc c = { .view = self->view, .fd = self->fd, .model = model };

	c.map = cm_map(self->fd, SIZE, 0);
	ASSERT_NE(MAP_FAILED, c.map);
	cm_fill(model, 0, SIZE, 0);
	ASSERT_EQ(0, pthread_create(&t[2], NULL, conc_committer, &c));
	ASSERT_EQ(0, pthread_create(&t[3], NULL, conc_reader, &c));
	ASSERT_EQ(0, pthread_create(&t[0], NULL, conc_view_writer, &c));
	ASSERT_EQ(0, pthread_create(&t[1], NULL, conc_map_writer, &c));
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	c.stop = 1;
	pthread_join(t[2], NULL);
	pthread_join(t[3], NULL);
	EXPECT_EQ(0, c.errors);
	munmap(c.map, SIZE);
	ASSERT_EQ(SIZE, pwrite(self->model, model, SIZE, 0));
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_TRUE(same_files(self->file, self->model, SIZE));
}

/*
 * A view read while the file is truncated and rewritten: every byte read
 * is one the file held (this generation or the last), never a page of
 * zeros the file never had; past the end, a short read.
 */
TEST(read_during_truncate)
{
	char path[256];
	static uint8_t buf[SIZE];
	int file, fd, vw, bad = 0;
	pid_t pid;

	file = cm_mkfile(path, sizeof(path), "vtrunc", SIZE, O_RDONLY);
	ASSERT_LE(0, file);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	vw = view(fd, 0);
	ASSERT_LE(0, vw);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int w = open(path, O_RDWR | O_CLOEXEC);

		for (unsigned int gen = 1; gen <= 200; gen++) {
			if (ftruncate(w, gen % 2 ? 0 : SIZE / 2))
				_exit(1);
			cm_fill(buf, 0, SIZE, gen % 2);
			if (pwrite(w, buf, SIZE, 0) != SIZE)
				_exit(1);
		}
		_exit(0);
	}
	for (int i = 0; i < 2000; i++) {
		ssize_t n = pread(vw, buf, SIZE, 0);

		if (n < 0) {
			bad++;
			continue;
		}
		/* Page by page: a whole page of one generation or the other. */
		for (ssize_t off = 0; off + (ssize_t)PG <= n; off += PG) {
			if (!cm_is_pat(buf + off, off, PG, 0) &&
			    !cm_is_pat(buf + off, off, PG, 1)) {
				int zeros = 1;

				for (size_t k = 0; k < PG; k++)
					zeros &= !buf[off + k];
				bad += zeros;
			}
		}
	}
	EXPECT_EQ(0, cm_wait(pid));
	EXPECT_EQ(0, bad);
	close(vw);
	cm_end(fd);
	close(file);
	unlink(path);
}

static int set_size(int fd, long long size, long long *old)
{
	struct cowmap_size z = { .size = size };

	if (ioctl(fd, COWMAP_IOC_SET_SIZE, &z))
		return -1;
	if (old)
		*old = z.old_size;
	return 0;
}

static off_t fsize(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? -1 : st.st_size;
}

/* Sizes the backing file's filesystem refuses, the view refuses too. */
TEST_F(v, sizes_like_the_file)
{
	long long sizes[] = { 1LL << 40, 1LL << 50, 1LL << 62, (1ULL << 63) - 1 };

	for (unsigned int i = 0; i < 4; i++) {
		int rm = ftruncate(self->model, sizes[i]), em = errno;
		int rv = ftruncate(self->view, sizes[i]), ev = errno;

		EXPECT_EQ(rm, rv);
		if (rm)
			EXPECT_EQ(em, ev);
		EXPECT_EQ(fsize(self->model), fsize(self->view));
		ASSERT_EQ(0, ftruncate(self->model, SIZE));
		ASSERT_EQ(0, ftruncate(self->view, SIZE));
	}
	EXPECT_EQ(-1, set_size(self->fd, -5, NULL));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(SIZE, fsize(self->view));
	/* The file itself never changed size. */
	EXPECT_EQ(SIZE, fsize(self->file));
}

TEST_F(v, set_size_ioctl)
{
	struct cowmap_size z = { .size = 1 };
	struct cowmap_status st;
	long long old = 0;
	int rofd;

	z.flags = 1;
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_SET_SIZE, &z));
	EXPECT_EQ(EINVAL, errno);
	z = (struct cowmap_size){ .size = 1, .old_size = 1 };
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_SET_SIZE, &z));
	EXPECT_EQ(EINVAL, errno);
	z = (struct cowmap_size){ .size = 1, .reserved[1] = 1 };
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_SET_SIZE, &z));
	EXPECT_EQ(EINVAL, errno);
	rofd = open(COWMAP_DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, rofd);
	ASSERT_EQ(0, cm_handshake(rofd));
	ASSERT_EQ(0, cm_attach(rofd, self->file));
	EXPECT_EQ(-1, set_size(rofd, 1, NULL));
	EXPECT_EQ(EBADF, errno);
	close(rofd);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(SIZE, st.session_size);
	EXPECT_EQ(0, st.journal_records);

	ASSERT_EQ(0, set_size(self->fd, SIZE + 1, &old));
	EXPECT_EQ(SIZE, old);
	EXPECT_EQ(SIZE + 1, fsize(self->view));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(SIZE + 1, st.session_size);
	EXPECT_EQ(SIZE, st.size);
	/* The growth is recorded at the commit. */
	EXPECT_EQ(1, cm_commit(self->fd, 0));
}

/* RLIMIT_FSIZE holds for growing the session as for a file. */
TEST_F(v, rlimit_fsize)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit rl = { SIZE + PG, SIZE + PG };
		int ok = 1;

		signal(SIGXFSZ, SIG_IGN);
		ok &= !setrlimit(RLIMIT_FSIZE, &rl);
		ok &= pwrite(self->view, "x", 1, SIZE + PG) == -1 && errno == EFBIG;
		ok &= ftruncate(self->view, SIZE + 2 * PG) == -1 && errno == EFBIG;
		ok &= set_size(self->fd, SIZE + 2 * PG, NULL) == -1 && errno == EFBIG;
		/* Below the limit: fine. */
		ok &= pwrite(self->view, "y", 1, SIZE + 10) == 1;
		_exit(!ok);
	}
	EXPECT_EQ(0, cm_wait(pid));
	EXPECT_EQ(SIZE + 11, fsize(self->view));
}

/* A merge that would grow the file past RLIMIT_FSIZE: EFBIG, nothing written. */
TEST_F(v, merge_rlimit)
{
	struct cowmap_merge m;
	pid_t pid;

	ASSERT_EQ(3, pwrite(self->view, "abc", 3, 10));
	ASSERT_EQ(3, pwrite(self->view, "xyz", 3, SIZE + 10));
	ASSERT_EQ(0, fsync(self->view));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit rl = { SIZE, SIZE };

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(2);
		_exit(!(merge(self->fd, self->file, 0, &m) == -1 && errno == EFBIG));
	}
	EXPECT_EQ(0, cm_wait(pid));
	EXPECT_TRUE(same_files(self->file, self->model, SIZE));
	/* Without the limit it merges. */
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(SIZE + 13, fsize(self->file));
}

/*
 * The size and bytes of a view, changed by random writes past the end,
 * truncates down and up, the size ioctl and stores through a mapping,
 * against a plain file that gets the same; committed now and then, merged
 * at the end: the file equals the model.
 */
TEST_F(v, sizes_model)
{
	static uint8_t buf[2 * PG], got[4 * SIZE], want[4 * SIZE];
	struct cowmap_merge m;
	unsigned int seed = 777;
	uint8_t *map;
	off_t size = SIZE;

	map = mmap(NULL, 4 * SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		   self->view, 0);
	ASSERT_NE(MAP_FAILED, map);
	for (int i = 0; i < 300; i++) {
		unsigned int op = rand_r(&seed) % 8;
		off_t off = rand_r(&seed) % (3 * SIZE);
		size_t len = 1 + rand_r(&seed) % (2 * PG);

		for (size_t k = 0; k < len; k++)
			buf[k] = rand_r(&seed);
		switch (op) {
		case 0:	/* pwrite anywhere, past the end too */
		case 1:
			ASSERT_EQ((ssize_t)len, pwrite(self->view, buf, len, off));
			ASSERT_EQ((ssize_t)len, pwrite(self->model, buf, len, off));
			break;
		case 2:	/* ftruncate down or up */
			ASSERT_EQ(0, ftruncate(self->view, off));
			ASSERT_EQ(0, ftruncate(self->model, off));
			break;
		case 3:	/* the size ioctl on the session fd */
			ASSERT_EQ(0, set_size(self->fd, off, NULL));
			ASSERT_EQ(0, ftruncate(self->model, off));
			break;
		case 4:	/* a store through the mapping, inside the size */
			if (off >= size)
				break;
			if (off + (off_t)len > size)
				len = size - off;
			memcpy(map + off, buf, len);
			ASSERT_EQ((ssize_t)len, pwrite(self->model, buf, len, off));
			break;
		case 5:
			ASSERT_LE(0, cm_commit(self->fd, 0));
			break;
		case 6:	/* a small append */
			ASSERT_EQ(3, pwrite(self->view, buf, 3, size));
			ASSERT_EQ(3, pwrite(self->model, buf, 3, size));
			break;
		default:	/* everything reads as the model */
			ASSERT_EQ(size, pread(self->view, got, sizeof(got), 0));
			ASSERT_EQ(size, pread(self->model, want, sizeof(want), 0));
			ASSERT_EQ(0, memcmp(got, want, size));
			/* The mapping too, to the end of its last page. */
			ASSERT_EQ(0, memcmp(map, want, size));
			for (off_t k = size; k % PG; k++)
				ASSERT_EQ(0, map[k]);
			break;
		}
		size = fsize(self->model);
		ASSERT_EQ(size, fsize(self->view));
	}
	munmap(map, 4 * SIZE);
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(m.records, m.applied);
	EXPECT_TRUE(same_files(self->file, self->model, size));
	/* Merged records go with a trim; nothing is left to merge. */
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_TRIM, 0));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.records);
}

/* Past the session's size: SIGBUS; a shrink drops, a regrow reads zeros. */
TEST_F(v, shrink_regrow)
{
	static struct log l;
	uint8_t *map = cm_map(self->fd, SIZE, 0);
	uint8_t buf[PG], cut[SIZE];
	off_t half = SIZE / 2 + 100;
	struct cowmap_merge m;

	ASSERT_NE(MAP_FAILED, map);
	map[SIZE / 2 + 200] = 'w';	/* a page cut in two */
	map[SIZE - 1] = 'e';		/* a page dropped */
	ASSERT_EQ(SIZE - half, pread(self->view, cut, SIZE - half, half));
	ASSERT_EQ(0, ftruncate(self->view, half));
	EXPECT_EQ(SIGBUS, cm_try_read(map + SIZE - 1));
	EXPECT_EQ(SIGBUS, cm_try_write(map + half + PG, 1));
	EXPECT_EQ(0, cm_try_read(map + half));	/* the last page's tail */
	EXPECT_EQ(0, map[half]);
	EXPECT_EQ(0, map[SIZE / 2 + 200]);
	/* Grow back: zeros where the file still has its bytes. */
	ASSERT_EQ(0, ftruncate(self->view, SIZE));
	ASSERT_EQ(PG, pread(self->view, buf, PG, SIZE - PG));
	for (size_t k = 0; k < PG; k++)
		ASSERT_EQ(0, buf[k]);
	EXPECT_EQ(0, map[SIZE - 1]);
	EXPECT_EQ(0, map[half + 1]);
	ASSERT_EQ(PG, pread(self->file, buf, PG, SIZE - PG));
	EXPECT_TRUE(cm_is_pat(buf, SIZE - PG, PG, 0));
	/* The journal: version 2, the writes, the shrink, the growth. */
	ASSERT_EQ(0, cm_commit(self->fd, 0) < 0);
	ASSERT_EQ(0, dump_all(self->fd, &l, 1 << 16));
	EXPECT_EQ(COWMAP_LOG_VERSION, l.hdr.version);
	ASSERT_EQ(4, l.n);
	EXPECT_FALSE(l.recs[0].is_size);
	EXPECT_FALSE(l.recs[1].is_size);
	EXPECT_TRUE(l.recs[2].is_size);
	EXPECT_EQ(SIZE, l.recs[2].old_size);
	EXPECT_EQ(half, l.recs[2].offset);
	EXPECT_EQ(crc32(cut, SIZE - half), l.recs[2].cut_crc);
	EXPECT_TRUE(l.recs[3].is_size);
	EXPECT_EQ(half, l.recs[3].old_size);
	EXPECT_EQ(SIZE, l.recs[3].offset);
	EXPECT_EQ(0, l.recs[3].cut_crc);
	free(l.buf);
	munmap(map, SIZE);
	/* Merged: the file's second half is zeros but for nothing. */
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(SIZE, fsize(self->file));
	ASSERT_EQ(PG, pread(self->file, buf, PG, SIZE - PG));
	for (size_t k = 0; k < PG; k++)
		ASSERT_EQ(0, buf[k]);
}

/* Grow by one byte, by many pages, to 0 and back; merged each time. */
TEST_F(v, grow_and_to_zero)
{
	static uint8_t big[64 * PG];
	struct cowmap_merge m;

	ASSERT_EQ(1, pwrite(self->view, "1", 1, SIZE));
	ASSERT_EQ(1, pwrite(self->model, "1", 1, SIZE));
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_TRUE(same_files(self->file, self->model, SIZE + 1));
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_TRIM, 0));

	memset(big, 'B', sizeof(big));
	ASSERT_EQ(PG, pwrite(self->view, big, PG, SIZE + 1000 * PG));
	ASSERT_EQ(PG, pwrite(self->model, big, PG, SIZE + 1000 * PG));
	ASSERT_EQ(0, fsync(self->view));
	EXPECT_TRUE(same_files(self->view, self->model, SIZE + 1001 * PG));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	/* Trimmed: the next merge starts from the records after these. */
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_TRIM, 0));
	EXPECT_TRUE(same_files(self->file, self->model, SIZE + 1001 * PG));

	ASSERT_EQ(0, ftruncate(self->view, 0));
	ASSERT_EQ(0, ftruncate(self->model, 0));
	ASSERT_EQ(sizeof(big), pwrite(self->view, big, sizeof(big), 0));
	ASSERT_EQ(sizeof(big), pwrite(self->model, big, sizeof(big), 0));
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_TRUE(same_files(self->file, self->model, sizeof(big)));
}

/* Two sessions append to one file: the second merge conflicts on the size. */
TEST_F(v, two_sessions_append)
{
	struct cowmap_conflict c[4];
	struct cowmap_merge m;
	int fd2, v2;

	fd2 = cm_session(self->file);
	ASSERT_LE(0, fd2);
	v2 = view(fd2, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, v2);
	ASSERT_EQ(0, fcntl(self->view, F_SETFL, O_APPEND));
	ASSERT_EQ(0, fcntl(v2, F_SETFL, O_APPEND));
	ASSERT_EQ(5, write(self->view, "first", 5));
	ASSERT_EQ(6, write(v2, "second", 6));
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, fsync(v2));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	ASSERT_EQ(5, pwrite(self->model, "first", 5, SIZE));
	EXPECT_TRUE(same_files(self->file, self->model, SIZE + 5));
	/* The second: its size record expects the old size; all or nothing. */
	m = (struct cowmap_merge){ .target_fd = self->file,
				   .conflicts_buf = (uintptr_t)c,
				   .conflicts_max = 4 };
	ASSERT_EQ(0, ioctl(fd2, COWMAP_IOC_MERGE, &m));
	EXPECT_LE(1, m.conflicts);
	EXPECT_EQ(SIZE + 6, c[0].offset);	/* the size it wanted */
	EXPECT_EQ(0, c[0].length);
	EXPECT_TRUE(same_files(self->file, self->model, SIZE + 5));
	close(v2);
	cm_end(fd2);
}

/* A journal file: version 1 until the first size record, then 2. */
TEST(journal_file_version)
{
	char path[256], jpath[256];
	struct cowmap_log_header h;
	struct cowmap_status cs;
	int file, j, fd, vw;
	off_t len;

	file = cm_mkfile(path, sizeof(path), "vjv", 2 * PG, O_RDONLY);
	ASSERT_LE(0, file);
	snprintf(jpath, sizeof(jpath), "%s/vjv.journal.%d", cm_dir(), getpid());
	j = open(jpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, j);
	fd = cm_journal_session(file, j);
	ASSERT_LE(0, fd);
	vw = view(fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, vw);
	ASSERT_EQ(1, pwrite(vw, "a", 1, 0));
	ASSERT_EQ(0, fsync(vw));
	ASSERT_EQ(sizeof(h), pread(j, &h, sizeof(h), 0));
	EXPECT_EQ(COWMAP_LOG_VERSION_1, h.version);
	ASSERT_EQ(1, pwrite(vw, "b", 1, 2 * PG));
	ASSERT_EQ(0, fsync(vw));
	ASSERT_EQ(sizeof(h), pread(j, &h, sizeof(h), 0));
	EXPECT_EQ(COWMAP_LOG_VERSION, h.version);
	close(vw);
	cm_end(fd);

	/* Reused, a version 2 file keeps every record, size records too. */
	len = fsize(j);
	fd = cm_journal_session(file, j);
	ASSERT_LE(0, fd);
	EXPECT_EQ(len, fsize(j));
	vw = view(fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, vw);
	ASSERT_EQ(1, pwrite(vw, "c", 1, 1));
	ASSERT_EQ(0, fsync(vw));
	EXPECT_LT(len, fsize(j));
	ASSERT_EQ(0, cm_status(fd, &cs));
	EXPECT_EQ(1, cs.journal_records);
	close(vw);
	cm_end(fd);
	close(j);

	/*
	 * An O_APPEND file's header cannot be rewritten to version 2: the
	 * session keeps its size (EINVAL) and the file stays whole.
	 */
	j = open(jpath, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	ASSERT_LE(0, j);
	fd = cm_journal_session(file, j);
	ASSERT_LE(0, fd);
	vw = view(fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, vw);
	EXPECT_EQ(-1, pwrite(vw, "d", 1, 2 * PG + 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ftruncate(vw, PG));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(1, pwrite(vw, "d", 1, 1));
	ASSERT_EQ(0, fsync(vw));
	ASSERT_EQ(sizeof(h), pread(j, &h, sizeof(h), 0));
	EXPECT_EQ(COWMAP_LOG_VERSION_1, h.version);
	close(vw);
	cm_end(fd);
	len = fsize(j);
	EXPECT_LT((off_t)sizeof(h), len);
	fd = cm_journal_session(file, j);	/* nothing torn: nothing cut */
	ASSERT_LE(0, fd);
	EXPECT_EQ(len, fsize(j));
	cm_end(fd);
	close(j);
	close(file);
	unlink(jpath);
	unlink(path);
}

/*
 * A journal that shrank over its own writes, merged a second time into
 * the merged file: every record already applied, nothing written (rule 4
 * with size records, as the offline merge has it). A byte the records
 * leave as zero that the file no longer has as zero is still a conflict.
 */
TEST_F(v, merge_again_after_shrink)
{
	struct cowmap_merge m;
	uint8_t one = 1;

	/* Bytes before the new end, bytes it cuts, a regrowth written. */
	ASSERT_EQ(1, pwrite(self->view, "x", 1, 100));
	ASSERT_EQ(1, pwrite(self->model, "x", 1, 100));
	ASSERT_EQ(3, pwrite(self->view, "abc", 3, 2 * PG + 10));
	ASSERT_EQ(0, cm_commit(self->fd, 0) < 0);
	ASSERT_EQ(0, ftruncate(self->view, PG + 50));
	ASSERT_EQ(0, ftruncate(self->model, PG + 50));
	ASSERT_EQ(2, pwrite(self->view, "QQ", 2, 3 * PG));
	ASSERT_EQ(2, pwrite(self->model, "QQ", 2, 3 * PG));
	ASSERT_EQ(0, fsync(self->view));

	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(m.records, m.applied);
	EXPECT_TRUE(same_files(self->file, self->model, 3 * PG + 2));
	/* Again, and again dry: all already applied, nothing written. */
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(0, m.applied);
	EXPECT_EQ(m.records, m.already);
	EXPECT_EQ(0, m.written);
	ASSERT_EQ(0, merge(self->fd, self->file, COWMAP_MERGE_DRY_RUN, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(m.records, m.already);
	EXPECT_TRUE(same_files(self->file, self->model, 3 * PG + 2));

	/* Someone wrote where the records leave zeros: not applied. */
	ASSERT_EQ(1, pwrite(self->file, &one, 1, 2 * PG));
	ASSERT_EQ(1, pwrite(self->model, &one, 1, 2 * PG));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_LE(1, m.conflicts);
	EXPECT_EQ(0, m.written);
	EXPECT_TRUE(same_files(self->file, self->model, 3 * PG + 2));
}

/*
 * A shrink to the middle of a page the session never wrote makes it
 * private without a twin: its bytes before the end are the file's, after
 * it zeros. The next commit records exactly the bytes written since, and
 * a growth over the zeros records only what was written there.
 */
TEST_F(v, cut_page_next_commit)
{
	static struct log l;
	struct cowmap_status st;
	uint8_t was[2];

	ASSERT_EQ(2, pread(self->file, was, 2, PG + 10));
	ASSERT_EQ(0, ftruncate(self->view, PG + 100));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(1, st.private_pages);
	EXPECT_EQ(0, st.twin_pages);
	ASSERT_EQ(1, pwrite(self->view, "Z", 1, PG + 10));
	ASSERT_EQ(1, pwrite(self->view, "Y", 1, PG + 300));	/* grows to PG + 301 */
	ASSERT_EQ(3, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &l, 1 << 16));
	ASSERT_EQ(4, l.n);
	EXPECT_TRUE(l.recs[0].is_size);
	EXPECT_EQ(SIZE, l.recs[0].old_size);
	EXPECT_EQ(PG + 100, l.recs[0].offset);
	EXPECT_TRUE(l.recs[1].is_size);
	EXPECT_EQ(PG + 100, l.recs[1].old_size);
	EXPECT_EQ(PG + 301, l.recs[1].offset);
	EXPECT_FALSE(l.recs[2].is_size);
	EXPECT_EQ(PG + 10, l.recs[2].offset);
	ASSERT_EQ(1, l.recs[2].length);
	EXPECT_EQ(was[0], l.recs[2].old[0]);
	EXPECT_EQ('Z', l.recs[2].new[0]);
	EXPECT_FALSE(l.recs[3].is_size);
	EXPECT_EQ(PG + 300, l.recs[3].offset);
	ASSERT_EQ(1, l.recs[3].length);
	EXPECT_EQ(0, l.recs[3].old[0]);
	EXPECT_EQ('Y', l.recs[3].new[0]);
	free(l.buf);
	/* Nothing written since: the next commit records nothing. */
	EXPECT_EQ(0, cm_commit(self->fd, 0));
}

/*
 * A shrink whose cut page cannot be made (the page limit) fails as a
 * whole: no size record, the size as it was, the bytes as they were; and
 * then succeeds once the limit allows it.
 */
TEST_F(v, shrink_cut_page_fails)
{
	static struct log l;
	long old = cm_param_get("max_session_pages");
	struct cowmap_status st;
	uint8_t buf[PG], want[PG];
	struct cowmap_merge m;

	if (geteuid())
		SKIP(return, "needs root for the module parameter");
	ASSERT_LT(0, old);
	ASSERT_EQ(1, pwrite(self->view, "w", 1, 0));
	ASSERT_EQ(1, pwrite(self->model, "w", 1, 0));
	/* Two pages are taken (page 0 and its twin): no room for another. */
	ASSERT_EQ(0, cm_param_set("max_session_pages", 2));
	EXPECT_EQ(-1, ftruncate(self->view, 2 * PG + 100));
	EXPECT_EQ(ENOMEM, errno);
	ASSERT_EQ(0, cm_param_set("max_session_pages", old));
	EXPECT_EQ(SIZE, fsize(self->view));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(SIZE, st.session_size);
	/* The write before it is journalled; no size record. */
	EXPECT_EQ(1, st.journal_records);
	ASSERT_EQ(0, dump_all(self->fd, &l, 1 << 16));
	ASSERT_EQ(1, l.n);
	EXPECT_FALSE(l.recs[0].is_size);
	EXPECT_EQ(COWMAP_LOG_VERSION_1, l.hdr.version);
	free(l.buf);
	ASSERT_EQ(PG, pread(self->view, buf, PG, 2 * PG));
	ASSERT_EQ(PG, pread(self->file, want, PG, 2 * PG));
	EXPECT_EQ(0, memcmp(buf, want, PG));

	ASSERT_EQ(0, ftruncate(self->view, 2 * PG + 100));
	ASSERT_EQ(0, ftruncate(self->model, 2 * PG + 100));
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(2, m.applied);
	EXPECT_TRUE(same_files(self->file, self->model, 2 * PG + 100));
}

/*
 * Shrinks racing with stores through the mapping into the bytes they cut:
 * a store is either journalled before the shrink or cut with it, never in
 * the cut bytes' CRC without a record, so the session's own journal
 * always merges into the file it started from, without a conflict, and
 * gives exactly the session's bytes.
 */
struct shrink_race {
	uint8_t *map;
	volatile int stop;
};

static void *shrink_race_writer(void *arg)
{
	struct shrink_race *r = arg;
	unsigned int seed = 5;

	while (!r->stop) {
		size_t off = PG + rand_r(&seed) % (NPAGES * PG - PG);

		/* SIGBUS past the end while the session is short: ignored. */
		cm_try_write(r->map + off, 1);
	}
	return NULL;
}

TEST_F(v, shrink_races_stores)
{
	static uint8_t got[SIZE];
	struct shrink_race r = { 0 };
	struct cowmap_merge m;
	pthread_t t;
	off_t size;

	r.map = cm_map(self->fd, SIZE, 0);
	ASSERT_NE(MAP_FAILED, r.map);
	ASSERT_EQ(0, pthread_create(&t, NULL, shrink_race_writer, &r));
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(0, ftruncate(self->view, PG + 1 + (i * 997) % (SIZE - 2 * PG)));
		ASSERT_EQ(0, ftruncate(self->view, SIZE));
	}
	r.stop = 1;
	pthread_join(t, NULL);
	size = fsize(self->view);
	ASSERT_EQ(size, pread(self->view, got, size, 0));
	ASSERT_EQ(size, pwrite(self->model, got, size, 0));
	ASSERT_EQ(0, ftruncate(self->model, size));
	munmap(r.map, SIZE);
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(m.records, m.applied);
	EXPECT_TRUE(same_files(self->file, self->model, size));
}

/*
 * Another writer of the file and a shrink: the cut bytes' CRC is of what
 * the session saw when it shrank. A write into the cut bytes before the
 * shrink is cut by the merge; one after it is found by the merge (a
 * conflict on the size, nothing written) instead of being thrown away.
 */
TEST_F(v, shrink_and_other_writer)
{
	struct cowmap_conflict c[4];
	struct cowmap_merge m;
	int fd2, v2;

	/* Before: the session saw it, its cut covers it. */
	ASSERT_EQ(3, pwrite(self->file, "pre", 3, 3 * PG));
	ASSERT_EQ(0, ftruncate(self->view, 2 * PG + 7));
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(2 * PG + 7, fsize(self->file));

	/* After: the file changed in the bytes the session cut. */
	fd2 = cm_session(self->file);
	ASSERT_LE(0, fd2);
	v2 = view(fd2, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, v2);
	ASSERT_EQ(0, ftruncate(v2, PG + 1));
	ASSERT_EQ(4, pwrite(self->file, "post", 4, PG + 5));
	ASSERT_EQ(0, fsync(v2));
	m = (struct cowmap_merge){ .target_fd = self->file,
				   .conflicts_buf = (uintptr_t)c,
				   .conflicts_max = 4 };
	ASSERT_EQ(0, ioctl(fd2, COWMAP_IOC_MERGE, &m));
	EXPECT_EQ(1, m.conflicts);
	EXPECT_EQ(PG + 1, c[0].offset);
	EXPECT_EQ(0, c[0].length);
	EXPECT_EQ(0, m.written);
	EXPECT_EQ(2 * PG + 7, fsize(self->file));
	close(v2);
	cm_end(fd2);
}

/*
 * A file truncated and written again whole, 36 MiB, merged: the merge's
 * check for "already applied" keeps a bit per byte of the extent (4.5 MiB
 * here, more than kmalloc can give at once on 6.1: it failed with ENOMEM
 * and a warning). Root: the per-session journal limit is raised for it.
 */
TEST(merge_large_rewrite)
{
	const size_t big = 36UL << 20, chunk = 1UL << 20;
	long old = cm_param_get("max_journal_bytes");
	struct cowmap_merge m;
	char path[256];
	uint8_t *buf;
	int file, fd, vw;

	if (geteuid())
		SKIP(return, "needs root: raises max_journal_bytes");
	ASSERT_LT(0, old);
	ASSERT_EQ(0, cm_param_set("max_journal_bytes", 160L << 20));
	buf = malloc(chunk);
	ASSERT_NE(NULL, buf);
	file = cm_mkfile(path, sizeof(path), "vbig", big, O_RDWR);
	ASSERT_LE(0, file);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	vw = view(fd, COWMAP_VIEW_RDWR);
	ASSERT_LE(0, vw);
	ASSERT_EQ(0, ftruncate(vw, 0));
	for (size_t off = 0; off < big; off += chunk) {
		cm_fill(buf, off, chunk, 1);
		ASSERT_EQ((ssize_t)chunk, pwrite(vw, buf, chunk, off));
	}
	ASSERT_EQ(0, fsync(vw));
	EXPECT_EQ(0, merge(fd, file, 0, &m)) TH_LOG("merge: %s", strerror(errno));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ((off_t)big, fsize(file));
	for (size_t off = 0; off < big; off += chunk) {
		ASSERT_EQ((ssize_t)chunk, pread(file, buf, chunk, off));
		ASSERT_TRUE(cm_is_pat(buf, off, chunk, 1)) TH_LOG("at %zu", off);
	}
	close(vw);
	cm_end(fd);
	close(file);
	unlink(path);
	free(buf);
	cm_param_set("max_journal_bytes", old);
}

/*
 * A view cannot be opened again through /proc/self/fd (its inode has no
 * open of its own): ENXIO, and the view and session work on.
 */
TEST_F(v, reopen_through_proc)
{
	struct cowmap_status st;
	struct cowmap_merge m;
	char path[64];
	uint8_t b;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", self->view);
	EXPECT_EQ(-1, open(path, O_RDONLY | O_CLOEXEC));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(-1, open(path, O_RDWR | O_CLOEXEC));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(-1, open(path, O_WRONLY | O_TRUNC | O_CLOEXEC));
	EXPECT_EQ(ENXIO, errno);
	/* O_TRUNC did not reach the session. */
	EXPECT_EQ(SIZE, fsize(self->view));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(SIZE, st.session_size);
	EXPECT_EQ(0, st.journal_records);
	ASSERT_EQ(1, pwrite(self->view, "r", 1, 7));
	ASSERT_EQ(1, pwrite(self->model, "r", 1, 7));
	ASSERT_EQ(1, pread(self->view, &b, 1, 7));
	EXPECT_EQ('r', b);
	ASSERT_EQ(0, fsync(self->view));
	ASSERT_EQ(0, merge(self->fd, self->file, 0, &m));
	EXPECT_EQ(1, m.applied);
	EXPECT_TRUE(same_files(self->file, self->model, SIZE));
}

/*
 * A page written and committed keeps only its private page, with no twin
 * and no state of its own (fault.c, cowmap_bare_page()): it must still
 * read, be cut and grown over, and take new writes as any written page,
 * through a mapping and through the view, and its next commit must record
 * its committed bytes as the old ones.
 */
TEST_F(v, committed_pages_read_cut_and_written_again)
{
	uint8_t buf[PG], want[PG], b = 0x99;
	struct cowmap_status st;
	struct cowmap_merge mg;
	uint8_t *m;

	m = cm_map(self->fd, SIZE, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (int pg = 1; pg <= 4; pg++) {
		memset(m + pg * PG, 0x40 + pg, PG);
		memset(want, 0x40 + pg, PG);
		ASSERT_EQ(PG, pwrite(self->model, want, PG, pg * PG));
	}
	ASSERT_LE(1, cm_commit(self->fd, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(4, st.private_pages);
	EXPECT_EQ(0, st.twin_pages);

	/* A new mapping and the view show the committed bytes. */
	ASSERT_EQ(0, munmap(m, SIZE));
	m = cm_map(self->fd, SIZE, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (int pg = 1; pg <= 4; pg++) {
		memset(want, 0x40 + pg, PG);
		EXPECT_EQ(0, memcmp(m + pg * PG, want, PG));
		ASSERT_EQ(PG, pread(self->view, buf, PG, pg * PG));
		EXPECT_EQ(0, memcmp(buf, want, PG));
	}

	/* Cut inside committed page 2, then grow back: zeros past the cut. */
	ASSERT_EQ(0, ftruncate(self->view, 2 * PG + 100));
	ASSERT_EQ(0, ftruncate(self->model, 2 * PG + 100));
	ASSERT_EQ(0, ftruncate(self->view, SIZE));
	ASSERT_EQ(0, ftruncate(self->model, SIZE));
	memset(want, 0x42, 100);
	memset(want + 100, 0, PG - 100);
	ASSERT_EQ(PG, pread(self->view, buf, PG, 2 * PG));
	EXPECT_EQ(0, memcmp(buf, want, PG));
	EXPECT_EQ(0, memcmp(m + 2 * PG, want, PG));

	/* New writes to committed pages: by a store and by pwrite. */
	m[PG + 7] = b;
	ASSERT_EQ(1, pwrite(self->model, &b, 1, PG + 7));
	ASSERT_EQ(1, pwrite(self->view, "x", 1, 2 * PG + 5));
	ASSERT_EQ(1, pwrite(self->model, "x", 1, 2 * PG + 5));
	EXPECT_EQ('x', m[2 * PG + 5]);
	ASSERT_LE(1, cm_commit(self->fd, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(2, st.rearms);
	EXPECT_EQ(0, st.twin_pages);

	ASSERT_EQ(0, merge(self->fd, self->file, 0, &mg));
	EXPECT_TRUE(same_files(self->file, self->model, SIZE));
	/* The session still shows its bytes after the merge. */
	EXPECT_EQ(b, m[PG + 7]);
	munmap(m, SIZE);
}

/*
 * The pages sessions free go to a pool and are taken again, not zeroed,
 * by the next copies of any session of the cgroup (kmod/pool.c): nothing
 * an earlier session wrote may show through a later one's mapping, view,
 * twins or journal, for copies of the file's pages, for zero pages past
 * its end, and for the twins of pages written again after a commit.
 */
#define POOL_NP 64

/* What the file (zeros past its end at @half) has at @off, and a change. */
static uint8_t pool_old(size_t off, size_t half)
{
	return off < half ? cm_pat(off, 0) : 0;
}

static uint8_t pool_new(size_t off, size_t half)
{
	return ~pool_old(off, half);
}

TEST(pooled_pages_show_nothing_of_before)
{
	const size_t half = POOL_NP * PG, size = 2 * half;
	size_t bad_map = 0, bad_view = 0;
	long pool0, pool1, pool2;
	uint8_t *m, *buf;
	char path[256];
	struct log *l;
	int file, fd, vw, dc, recs = 0, bad_rec = 0;

	if (cm_param_get("max_pool_pages") < 4 * POOL_NP)
		SKIP(return, "the pool is off or too small (max_pool_pages)");
	/* Room in it: earlier tests may have filled it (drop_slab() drains). */
	dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
	ASSERT_LE(0, dc);
	ASSERT_EQ(1, write(dc, "2", 1));
	close(dc);
	file = cm_mkfile(path, sizeof(path), "pool", half, O_RDONLY);
	ASSERT_LE(0, file);
	l = calloc(1, sizeof(*l));
	buf = malloc(size);
	ASSERT_TRUE(l && buf);

	/* A session fills its copies, past the file's end too, and goes. */
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_size(fd, size, NULL));
	m = cm_map(fd, size, 0);
	ASSERT_NE(MAP_FAILED, m);
	memset(m, 0xa5, size);
	ASSERT_EQ(0, munmap(m, size));
	pool0 = cm_param_get("pool_pages");
	cm_end(fd);
	pool1 = cm_param_get("pool_pages");
	TH_LOG("pool: %ld pages before the close, %ld after", pool0, pool1);
	ASSERT_LE(pool0 + 4 * POOL_NP, pool1);

	/* The next session's first writes take those pages. */
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_size(fd, size, NULL));
	m = cm_map(fd, size, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (size_t i = 0; i < 2 * POOL_NP; i++)
		m[i * PG + 7] = pool_new(i * PG + 7, half);
	pool2 = cm_param_get("pool_pages");
	EXPECT_GE(pool1 - 4 * POOL_NP, pool2);
	vw = view(fd, 0);
	ASSERT_LE(0, vw);
	ASSERT_EQ((ssize_t)size, pread(vw, buf, size, 0));
	for (size_t off = 0; off < size; off++) {
		uint8_t want = off % PG == 7 ? pool_new(off, half) :
					       pool_old(off, half);

		bad_map += m[off] != want;
		bad_view += buf[off] != want;
	}
	EXPECT_EQ(0, bad_map);
	EXPECT_EQ(0, bad_view);

	/* The twins were copies: one byte changed per page, nothing more. */
	ASSERT_LE(1, cm_commit(fd, 0));
	ASSERT_EQ(0, dump_all(fd, l, 1 << 20));
	for (int i = 0; i < l->n; i++) {
		const struct rec *r = &l->recs[i];

		if (r->is_size)
			continue;
		recs++;
		bad_rec += r->offset % PG != 7 || r->length != 1 ||
			   r->old[0] != pool_old(r->offset, half) ||
			   r->new[0] != pool_new(r->offset, half);
	}
	EXPECT_EQ(2 * POOL_NP, recs);
	EXPECT_EQ(0, bad_rec);

	/* Written again: the new twins (from the pool) hold the commit's. */
	for (size_t i = 0; i < 2 * POOL_NP; i++)
		m[i * PG + 9] = pool_new(i * PG + 9, half);
	ASSERT_LE(1, cm_commit(fd, 0));
	free(l->buf);
	ASSERT_EQ(0, dump_all(fd, l, 1 << 20));
	recs = bad_rec = 0;
	for (int i = 0; i < l->n; i++) {
		const struct rec *r = &l->recs[i];

		if (r->is_size || (r->offset % PG == 7 && r->length == 1))
			continue;
		recs++;
		bad_rec += r->offset % PG != 9 || r->length != 1 ||
			   r->old[0] != pool_old(r->offset, half) ||
			   r->new[0] != pool_new(r->offset, half);
	}
	EXPECT_EQ(2 * POOL_NP, recs);
	EXPECT_EQ(0, bad_rec);

	munmap(m, size);
	close(vw);
	cm_end(fd);
	free(l->buf);
	free(l);
	free(buf);
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
