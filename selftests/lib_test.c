// SPDX-License-Identifier: GPL-2.0
/*
 * libcowmap against the real module (runs in the VM): open and handshake,
 * attach, map, commit, dump iteration with small buffers, journal files,
 * adopt and discard of orphans, the seed demo from a kernel journal through
 * the offline merge, and cowmapctl end to end. Cases whose ioctl the loaded
 * module does not have (ENOTTY) SKIP with the ioctl's name.
 */
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"
#include "libcowmap.h"

#define SEED	"------------ Hello World! ------------"
#define SEEDX	"------------ Hexxx World! ------------"

/* Skip the case when the module lacks the ioctl behind @ret. */
#define SKIP_IF_ENOTTY(ret, what)						\
	do {									\
		if ((ret) == -ENOTTY)						\
			SKIP(return, "%s: not in this module (ENOTTY)", what); \
	} while (0)

/* The 6.1 harness runs the body after a SKIP in the setup: check here. */
#define NEED_MODULE()								\
	do {									\
		if (access(COWMAP_DEVICE_PATH, F_OK))				\
			SKIP(return, "no %s: module not loaded",		\
			     COWMAP_DEVICE_PATH);				\
	} while (0)

FIXTURE(lib) {
	char path[256];		/* SEED, or a bigger file */
	char log[300];		/* a journal path next to it */
};

FIXTURE_SETUP(lib)
{
	int fd;

	snprintf(self->path, sizeof(self->path), "%s/lib.%d", cm_dir(), getpid());
	snprintf(self->log, sizeof(self->log), "%s.log", self->path);
	fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)strlen(SEED), write(fd, SEED, strlen(SEED)));
	close(fd);
	unlink(self->log);
}

FIXTURE_TEARDOWN(lib)
{
	unlink(self->path);
	unlink(self->log);
}

/* Close a session without leaving an orphan (the module must unload). */
static void drop(int fd)
{
	cowmap_discard(fd);
	close(fd);
}

static int file_is(const char *path, const char *want)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(want) && !memcmp(buf, want, n);
}

/* A session on @path with "xxx" written at 15 through the mapping. */
static int session_with_write(const char *path, const char *journal, uint64_t *id)
{
	void *map;
	int fd = cowmap_session_open(path, journal, id), ret;

	if (fd < 0)
		return fd;
	ret = cowmap_map(fd, strlen(SEED), 0, PROT_READ | PROT_WRITE, &map);
	if (ret) {
		close(fd);
		return ret;
	}
	memcpy((char *)map + 15, "xxx", 3);
	cowmap_unmap(map, strlen(SEED));
	return fd;
}

TEST_F(lib, open_handshake_status)
{
	struct cowmap_status st;
	struct cowmap_api api;
	int fd = cowmap_open(&api);

	NEED_MODULE();
	ASSERT_LE(0, fd);
	ASSERT_EQ(COWMAP_API, api.api);
	ASSERT_TRUE(api.ioctls & COWMAP_IOCTL_BIT(COWMAP_IOC_ATTACH));
	ASSERT_TRUE(api.ioctls & COWMAP_IOCTL_BIT(COWMAP_IOC_STATUS));
	ASSERT_EQ(0, cowmap_status(fd, &st));
	ASSERT_EQ(COWMAP_STATE_NEW, st.state);
	/* errors are negative errnos */
	ASSERT_EQ(-EBADF, cowmap_attach(fd, -1, -1, NULL));
	ASSERT_EQ(-EBADF, cowmap_status(-1, &st));
	close(fd);
	ASSERT_EQ(-ENOENT, cowmap_session_open("/nonexistent", NULL, NULL));
}

/* A view through the library: write, fsync (a commit), merge, as a file. */
TEST_F(lib, view)
{
	struct cowmap_dump_iter *it;
	struct cowmap_status st;
	struct cowmap_rec r;
	struct stat sb;
	char buf[64] = { 0 };
	int64_t old = 0;
	int fd, vw, file, n, sizes = 0;

	NEED_MODULE();
	fd = cowmap_session_open(self->path, NULL, NULL);
	ASSERT_LE(0, fd);
	vw = cowmap_view(fd, COWMAP_VIEW_RDWR | COWMAP_VIEW_CLOEXEC);
	SKIP_IF_ENOTTY(vw, "COWMAP_IOC_VIEW");
	ASSERT_LE(0, vw);
	ASSERT_EQ(0, fstat(vw, &sb));
	ASSERT_TRUE(S_ISREG(sb.st_mode));
	ASSERT_EQ((off_t)strlen(SEED), sb.st_size);
	ASSERT_EQ(3, pwrite(vw, "xxx", 3, 15));
	ASSERT_EQ((ssize_t)strlen(SEED), pread(vw, buf, sizeof(buf), 0));
	ASSERT_STREQ(SEEDX, buf);
	ASSERT_TRUE(file_is(self->path, SEED));
	ASSERT_EQ(0, fsync(vw));
	ASSERT_EQ(0, cowmap_status(fd, &st));
	ASSERT_EQ(1, st.journal_records);
	file = open(self->path, O_RDWR);
	ASSERT_LE(0, file);
	ASSERT_EQ(0, cowmap_merge(fd, file, 0, NULL, 0, NULL));
	ASSERT_TRUE(file_is(self->path, SEEDX));
	close(file);
	ASSERT_EQ(-EINVAL, cowmap_view(fd, 1U << 7));
	/* A size of its own: one byte more. */
	ASSERT_EQ(0, cowmap_set_size(fd, strlen(SEED) + 1, &old));
	ASSERT_EQ((int64_t)strlen(SEED), old);
	ASSERT_EQ(-EINVAL, cowmap_set_size(fd, -1, NULL));
	ASSERT_EQ(0, fstat(vw, &sb));
	ASSERT_EQ((off_t)strlen(SEED) + 1, sb.st_size);
	/* The library reads the journal, now version 2, and its size record. */
	ASSERT_LE(0, cowmap_commit(fd, 0, NULL));
	ASSERT_EQ(0, cowmap_dump_begin(fd, 0, &it));
	ASSERT_EQ(2u, cowmap_dump_info(it)->version);
	while ((n = cowmap_dump_next(it, &r, NULL)) == 1) {
		if (!(r.flags & COWMAP_REC_SIZE))
			continue;
		sizes++;
		EXPECT_EQ(0u, r.length);
		EXPECT_EQ(strlen(SEED), r.old_size);
		EXPECT_EQ(strlen(SEED) + 1, r.new_size);
		EXPECT_EQ(r.new_size, r.offset);
		EXPECT_EQ(0u, r.cut_crc);
	}
	EXPECT_EQ(0, n);
	EXPECT_EQ(1, sizes);
	cowmap_dump_end(it);
	close(vw);
	drop(fd);
}

TEST_F(lib, attach_map_isolated)
{
	struct cowmap_status st;
	struct stat sb;
	uint64_t id = 0;
	int fd = session_with_write(self->path, NULL, &id);

	NEED_MODULE();
	ASSERT_LE(0, fd);
	ASSERT_NE(0u, id);
	ASSERT_TRUE(file_is(self->path, SEED));	/* writes never reach the file */
	ASSERT_EQ(0, cowmap_status(fd, &st));
	ASSERT_EQ(id, st.session_id);
	ASSERT_EQ(COWMAP_STATE_ATTACHED, st.state);
	ASSERT_EQ(0, stat(self->path, &sb));
	ASSERT_EQ(sb.st_ino, st.ino);
	ASSERT_EQ(major(sb.st_dev), st.dev_major);
	ASSERT_LE(1u, st.private_pages);
	drop(fd);
}

TEST_F(lib, commit_and_dump)
{
	struct cowmap_dump_iter *it;
	struct cowmap_commit c;
	struct cowmap_log_error err;
	struct cowmap_rec rec;
	struct stat sb;
	uint64_t id;
	int fd = session_with_write(self->path, NULL, &id), ret;

	NEED_MODULE();
	ASSERT_LE(0, fd);
	ret = cowmap_commit(fd, 0, &c);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_COMMIT");
	ASSERT_EQ(1, ret);
	ASSERT_EQ(1u, c.first_seq);
	ret = cowmap_dump_begin(fd, 0, &it);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_DUMP");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, stat(self->path, &sb));
	ASSERT_EQ(id, cowmap_dump_info(it)->session_id);
	ASSERT_EQ(sb.st_ino, cowmap_dump_info(it)->ino);
	ASSERT_EQ(major(sb.st_dev), cowmap_dump_info(it)->dev_major);
	ASSERT_EQ(minor(sb.st_dev), cowmap_dump_info(it)->dev_minor);
	ASSERT_EQ(strlen(SEED), cowmap_dump_info(it)->size_at_attach);
	ASSERT_EQ(1, cowmap_dump_next(it, &rec, &err));
	ASSERT_EQ(1u, rec.seq);
	ASSERT_EQ(id, rec.session_id);
	ASSERT_EQ(15u, rec.offset);
	ASSERT_EQ(3u, rec.length);
	ASSERT_EQ(0, memcmp(rec.old_bytes, "llo", 3));
	ASSERT_EQ(0, memcmp(rec.new_bytes, "xxx", 3));
	ASSERT_EQ((uint32_t)getpid(), rec.pid);
	ASSERT_EQ(getuid(), rec.uid);
	ASSERT_EQ(0, cowmap_dump_next(it, &rec, &err));
	cowmap_dump_end(it);
	/* nothing new: a commit adds nothing */
	ASSERT_EQ(0, cowmap_commit(fd, 0, NULL));
	drop(fd);
}

/* Write one byte in each of @n pages of a fresh file of @n pages; commit. */
static int many_records(const char *path, int n, uint64_t *id)
{
	uint8_t *map;
	int fd, ret;

	fd = open(path, O_RDWR | O_TRUNC);
	if (fd < 0 || ftruncate(fd, n * PG))
		return -errno;
	close(fd);
	fd = cowmap_session_open(path, NULL, id);
	if (fd < 0)
		return fd;
	ret = cowmap_map(fd, n * PG, 0, PROT_READ | PROT_WRITE, (void **)&map);
	if (!ret) {
		for (int i = 0; i < n; i++)
			memset(map + i * PG + i % 100, 'a' + i % 26, 1 + i % 7);
		cowmap_unmap(map, n * PG);
		ret = cowmap_commit(fd, 0, NULL);
	}
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

TEST_F(lib, dump_small_buffer_and_read_stream)
{
	const int n = 300;
	struct cowmap_dump_iter *it;
	struct cowmap_log_writer *w;
	struct cowmap_rec rec;
	uint8_t *stream = malloc(1 << 20), *written;
	char raw[320];
	ssize_t got, total = 0;
	size_t wlen;
	uint64_t id;
	int fd, ret, i = 0, wfd;

	NEED_MODULE();
	ASSERT_NE(NULL, stream);
	fd = many_records(self->path, n, &id);
	SKIP_IF_ENOTTY(fd, "COWMAP_IOC_COMMIT");
	ASSERT_LE(0, fd);
	/* a 100-byte buffer: the header alone does not fit at first */
	ret = cowmap_dump_begin(fd, 100, &it);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_DUMP");
	ASSERT_EQ(0, ret);
	snprintf(raw, sizeof(raw), "%s.raw", self->path);
	ASSERT_EQ(0, cowmap_log_writer_open(raw, cowmap_dump_info(it), COWMAP_LOGW_ATOMIC, &w));
	while ((ret = cowmap_dump_next(it, &rec, NULL)) == 1) {
		ASSERT_EQ((uint64_t)i + 1, rec.seq);
		ASSERT_EQ((uint64_t)i * PG + i % 100, rec.offset);
		ASSERT_EQ((uint32_t)(1 + i % 7), rec.length);
		ASSERT_EQ('a' + i % 26, rec.new_bytes[0]);
		ASSERT_EQ(0, rec.old_bytes[0]);
		ASSERT_EQ(0, cowmap_log_append(w, &rec));
		i++;
	}
	ASSERT_EQ(0, ret);
	ASSERT_EQ(n, i);
	cowmap_dump_end(it);
	ASSERT_EQ(0, cowmap_log_writer_close(w, 1));

	/* read(2) gives the same stream; our re-encoding is byte-identical */
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	while ((got = read(fd, stream + total, 777)) > 0)
		total += got;
	ASSERT_EQ(0, got);
	wfd = open(raw, O_RDONLY);
	ASSERT_LE(0, wfd);
	written = malloc(total + 1);
	wlen = read(wfd, written, total + 1);
	close(wfd);
	ASSERT_EQ((size_t)total, wlen);
	ASSERT_EQ(0, memcmp(stream, written, total));
	unlink(raw);
	free(written);
	free(stream);
	drop(fd);
}

TEST_F(lib, journal_file_equals_dump)
{
	struct cowmap_dump_iter *it;
	struct cowmap_log *log;
	struct cowmap_rec a, b;
	struct cowmap_status st;
	void *map;
	uint64_t id;
	int fd = session_with_write(self->path, self->log, &id), ret, n = 0;

	NEED_MODULE();
	ASSERT_LE(0, fd);
	ret = cowmap_commit(fd, 1, NULL);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_COMMIT");
	ASSERT_EQ(1, ret);
	ASSERT_EQ(0, cowmap_map(fd, strlen(SEED), 0, PROT_READ | PROT_WRITE, &map));
	memcpy((char *)map + 15, "yyy!", 4);
	cowmap_unmap(map, strlen(SEED));
	ASSERT_EQ(1, cowmap_commit(fd, 1, NULL));
	ASSERT_EQ(0, cowmap_status(fd, &st));
	ASSERT_EQ(2u, st.journal_file_seq);

	ret = cowmap_dump_begin(fd, 0, &it);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_DUMP");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, cowmap_log_open(self->log, &log, NULL));
	ASSERT_EQ(id, cowmap_log_info(log)->session_id);
	while ((ret = cowmap_log_next(log, &a, NULL)) == 1) {
		ASSERT_EQ(1, cowmap_dump_next(it, &b, NULL));
		ASSERT_EQ(a.seq, b.seq);
		ASSERT_EQ(a.offset, b.offset);
		ASSERT_EQ(a.length, b.length);
		ASSERT_EQ(a.time_ns, b.time_ns);
		ASSERT_EQ(a.pos, b.pos);
		ASSERT_EQ(0, memcmp(a.old_bytes, b.old_bytes, a.length));
		ASSERT_EQ(0, memcmp(a.new_bytes, b.new_bytes, a.length));
		n++;
	}
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, cowmap_dump_next(it, &b, NULL));
	ASSERT_EQ(2, n);
	cowmap_log_close(log);
	cowmap_dump_end(it);
	drop(fd);
}

TEST_F(lib, orphan_adopt_discard)
{
	struct cowmap_dump_iter *it;
	struct cowmap_status st;
	struct cowmap_rec rec;
	int pipefd[2], fd, ret;
	uint64_t id = 0;
	pid_t pid;

	NEED_MODULE();
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* a process that commits and exits, leaving an orphan */
		int s = session_with_write(self->path, NULL, &id);

		ret = s < 0 ? s : cowmap_commit(s, 0, NULL);
		if (write(pipefd[1], &id, sizeof(id)) != sizeof(id) ||
		    write(pipefd[1], &ret, sizeof(ret)) != sizeof(ret))
			_exit(2);
		_exit(0);
	}
	ASSERT_EQ(0, cm_wait(pid));
	ASSERT_EQ(sizeof(id), read(pipefd[0], &id, sizeof(id)));
	ASSERT_EQ(sizeof(ret), read(pipefd[0], &ret, sizeof(ret)));
	close(pipefd[0]);
	close(pipefd[1]);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_COMMIT");
	ASSERT_EQ(1, ret);

	fd = cowmap_session_adopt(id);
	SKIP_IF_ENOTTY(fd, "COWMAP_IOC_ADOPT");
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cowmap_status(fd, &st));
	ASSERT_EQ(id, st.session_id);
	ASSERT_EQ(1u, st.journal_records);
	ASSERT_EQ(0, cowmap_dump_begin(fd, 0, &it));
	ASSERT_EQ(1, cowmap_dump_next(it, &rec, NULL));
	ASSERT_EQ(0, memcmp(rec.new_bytes, "xxx", 3));
	cowmap_dump_end(it);
	/* adopting an adopted (not orphaned) session fails */
	ASSERT_GT(0, cowmap_session_adopt(id));
	close(fd);			/* orphaned again: it has records */
	fd = cowmap_session_adopt(id);
	ASSERT_LE(0, fd);
	ret = cowmap_discard(fd);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_DISCARD");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, cowmap_status(fd, &st));
	ASSERT_EQ(0u, st.journal_records);
	close(fd);			/* nothing left: freed */
	ASSERT_EQ(-ENOENT, cowmap_session_adopt(id));
	ASSERT_EQ(-ENOENT, cowmap_session_adopt(~0ULL));
}

TEST_F(lib, seed_demo_kernel_journal_offline_merge)
{
	struct cowmap_merger_stats st;
	struct cowmap_merger *m;
	uint64_t id;
	int fd = session_with_write(self->path, self->log, &id), ret;

	NEED_MODULE();
	ASSERT_LE(0, fd);
	ret = cowmap_commit(fd, 1, NULL);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_COMMIT");
	ASSERT_EQ(1, ret);
	close(fd);
	ASSERT_TRUE(file_is(self->path, SEED));	/* unchanged until the merge */
	ASSERT_EQ(0, cowmap_merger_new(NULL, NULL, &m));
	ASSERT_EQ(1, cowmap_merger_add_log(m, self->log));
	ASSERT_EQ(0, cowmap_merger_run(m, self->path, NULL, COWMAP_POLICY_ALL_OR_NOTHING,
				       0, &st));
	cowmap_merger_free(m);
	ASSERT_EQ(1u, st.applied);
	ASSERT_TRUE(file_is(self->path, SEEDX));
	/* the closed session was orphaned: drop it */
	fd = cowmap_session_adopt(id);
	if (fd >= 0) {
		cowmap_discard(fd);
		close(fd);
	}
}

/* --- journal identity across machines (docs/nfs.md) ----------------------------- */

/* Offline merge of @log into @path: the merger's return value. */
static int merge_rc(const char *path, const char *log, unsigned int flags,
		    uint64_t *applied)
{
	struct cowmap_merger_stats st;
	struct cowmap_merger *m;
	int ret = cowmap_merger_new(NULL, NULL, &m);

	if (ret)
		return ret;
	ret = cowmap_merger_add_log(m, log);
	if (ret == 1)
		ret = cowmap_merger_run(m, path, NULL, COWMAP_POLICY_ALL_OR_NOTHING,
					flags, &st);
	else if (ret >= 0)
		ret = -ENOENT;
	cowmap_merger_free(m);
	if (!ret && applied)
		*applied = st.applied;
	return ret;
}

/*
 * Rewrite @buf's header (of @len bytes) as another machine's: another
 * device; @hsize 64 drops the file id (the bytes after the header move).
 * Writes the result to @path. Returns its length, or 0.
 */
static size_t other_machine(const char *path, const uint8_t *buf, size_t len,
			    uint32_t hsize, uint64_t ino)
{
	struct cowmap_log_header h;
	uint32_t old = ((const struct cowmap_log_header *)buf)->header_size;
	uint8_t *out = malloc(len);
	size_t n;

	if (!out)
		return 0;
	memcpy(&h, buf, sizeof(h));
	h.dev_major ^= 0x55;	/* NFS: another anonymous device per client */
	h.dev_minor += 7;
	h.ino = ino;
	h.header_size = hsize;
	h.crc = 0;
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), buf + sizeof(h), hsize - sizeof(h));
	memcpy(out + hsize, buf + old, len - old);
	n = len - old + hsize;
	((struct cowmap_log_header *)out)->crc = cowmap_crc32(0, out, hsize);
	if (cm_put_file(path, out, n))
		n = 0;
	free(out);
	return n;
}

/*
 * A journal made through libcowmap names its file by the file's id too, so
 * that the journal made on one NFS client merges on another client and on
 * the server (other devices): offline and as the journal file of a new
 * session. A log of another file (another id, another inode) and a log
 * without id from another device are still refused.
 */
TEST_F(lib, journal_identity_file_id)
{
	struct cowmap_log_header_id *hi;
	uint8_t xid[COWMAP_FILE_ID_SIZE], other[COWMAP_FILE_ID_SIZE];
	char moved[320], noid[320], copy[320];
	struct stat st;
	uint64_t applied = 0;
	size_t len;
	uint8_t *buf;
	ssize_t n;
	int fd = session_with_write(self->path, self->log, NULL), ret;

	NEED_MODULE();
	ASSERT_LE(0, fd);
	ret = cowmap_commit(fd, 1, NULL);
	SKIP_IF_ENOTTY(ret, "COWMAP_IOC_COMMIT");
	ASSERT_EQ(1, ret);
	drop(fd);
	ASSERT_EQ(0, stat(self->path, &st));
	buf = (uint8_t *)cm_get_file(self->log, &len);
	ASSERT_NE(NULL, buf);
	hi = (struct cowmap_log_header_id *)buf;
	n = getxattr(self->path, COWMAP_FILE_ID_XATTR, xid, sizeof(xid));
	if (n < 0 && (errno == EOPNOTSUPP || errno == ENOTSUP)) {
		/* No user xattrs here (tmpfs before 6.6): today's header. */
		ASSERT_EQ(sizeof(struct cowmap_log_header), hi->h.header_size);
		free(buf);
		SKIP(return, "no user xattrs on %s: the 64-byte header, checked",
		     cm_dir());
	}
	/* cowmap_session_open() gave the file an id before the attach. */
	ASSERT_EQ(COWMAP_FILE_ID_SIZE, n);
	ASSERT_EQ(sizeof(*hi), hi->h.header_size);
	ASSERT_EQ(0, memcmp(hi->file_id, xid, sizeof(xid)));
	ASSERT_EQ(major(st.st_dev), hi->h.dev_major);
	ASSERT_EQ((uint64_t)st.st_ino, hi->h.ino);

	snprintf(moved, sizeof(moved), "%s.moved", self->path);
	snprintf(noid, sizeof(noid), "%s.noid", self->path);
	snprintf(copy, sizeof(copy), "%s.copy", self->path);

	/* The journal as made on another machine: its device, the same id. */
	ASSERT_NE(0, other_machine(moved, buf, len, sizeof(*hi), st.st_ino));
	/* The same without the id (a file that had none): refused as today. */
	ASSERT_NE(0, other_machine(noid, buf, len, sizeof(hi->h), st.st_ino));
	ASSERT_EQ(-EXDEV, merge_rc(self->path, noid, COWMAP_MERGER_DRY_RUN, NULL));
	ASSERT_EQ(0, merge_rc(self->path, noid,
			      COWMAP_MERGER_DRY_RUN | COWMAP_MERGER_ANY_IDENTITY, NULL));

	/* The same inode with another id: another file. */
	memcpy(other, xid, sizeof(other));
	other[0] ^= 1;
	ASSERT_EQ(0, setxattr(self->path, COWMAP_FILE_ID_XATTR, other, sizeof(other), 0));
	EXPECT_EQ(-EXDEV, merge_rc(self->path, moved, COWMAP_MERGER_DRY_RUN, NULL));
	/* ... and the kernel refuses it as the journal file of a session. */
	fd = cowmap_session_open(self->path, moved, NULL);
	EXPECT_EQ(-EINVAL, fd);
	if (fd >= 0)
		drop(fd);
	/* An id of another size is no id. */
	ASSERT_EQ(0, setxattr(self->path, COWMAP_FILE_ID_XATTR, xid, 8, 0));
	EXPECT_EQ(-EXDEV, merge_rc(self->path, moved, COWMAP_MERGER_DRY_RUN, NULL));
	ASSERT_EQ(0, setxattr(self->path, COWMAP_FILE_ID_XATTR, xid, sizeof(xid), 0));

	/* The same id on another inode (a copy that kept its xattrs). */
	ASSERT_EQ(0, cm_put_file(copy, SEED, strlen(SEED)));
	ASSERT_EQ(0, setxattr(copy, COWMAP_FILE_ID_XATTR, xid, sizeof(xid), 0));
	EXPECT_EQ(-EXDEV, merge_rc(copy, moved, COWMAP_MERGER_DRY_RUN, NULL));
	EXPECT_TRUE(file_is(copy, SEED));

	/* The kernel takes it as the journal file: records follow it. */
	fd = cowmap_session_open(self->path, moved, NULL);
	ASSERT_LE(0, fd);
	drop(fd);
	/* The offline merge applies it. */
	ASSERT_EQ(0, merge_rc(self->path, moved, 0, &applied));
	EXPECT_EQ(1u, applied);
	EXPECT_TRUE(file_is(self->path, SEEDX));

	unlink(moved);
	unlink(noid);
	unlink(copy);
	free(buf);
}

/* --- cowmapctl end to end -------------------------------------------------------- */

static const char *ctl(void)
{
	static char path[512];
	static const char *const cands[] = { "/usr/bin/cowmapctl", "build/bin/cowmapctl",
					     "../bin/cowmapctl" };
	ssize_t n;

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (!access(cands[i], X_OK))
			return cands[i];
	/* next to build/selftests/ */
	n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	if (n > 0) {
		path[n] = 0;
		strcpy(strrchr(path, '/'), "/../bin/cowmapctl");
		if (!access(path, X_OK))
			return path;
	}
	return NULL;
}

/* Run a shell command; its exit status; stdout (truncated) into @out. */
static int run(char *out, size_t size, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	size_t n = 0;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (out) {
		n = fread(out, 1, size - 1, p);
		out[n] = 0;
	} else {
		char sink[4096];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

TEST_F(lib, cowmapctl_end_to_end)
{
	const char *c = ctl();
	char out[8192];
	uint64_t id;
	int ret;

	NEED_MODULE();
	if (!c)
		SKIP(return, "cowmapctl not found");
	ASSERT_EQ(0, run(out, sizeof(out), "%s --version", c));
	ASSERT_EQ(0, strncmp(out, "cowmapctl ", 10));
	ret = run(out, sizeof(out), "%s map %s --write 15:xxx --log %s 2>&1",
		  c, self->path, self->log);
	if (ret && strstr(out, "ENOTTY"))
		SKIP(return, "commit not in this module: %.200s", out);
	if (ret && strstr(out, "does not support"))
		SKIP(return, "commit not in this module: %.200s", out);
	ASSERT_EQ(0, ret) TH_LOG("%s", out);
	ASSERT_TRUE(file_is(self->path, SEED));
	ASSERT_EQ(0, run(out, sizeof(out), "%s dump -l %s", c, self->log));
	ASSERT_NE(NULL, strstr(out, "seq=1 offset=15 length=3 old=\"llo\" new=\"xxx\"\n"))
		TH_LOG("%s", out);
	ASSERT_EQ(0, run(out, sizeof(out), "%s dump -l %s --json", c, self->log));
	ASSERT_NE(NULL, strstr(out, "\"old_hex\":\"6c6c6f\""));
	ASSERT_EQ(0, run(out, sizeof(out), "%s merge -s %s -l %s --dry-run", c,
			 self->path, self->log));
	ASSERT_TRUE(file_is(self->path, SEED));
	ASSERT_EQ(0, run(out, sizeof(out), "%s merge -s %s -l %s --in-place", c,
			 self->path, self->log));
	ASSERT_TRUE(file_is(self->path, SEEDX));
	ASSERT_EQ(0, run(out, sizeof(out), "%s merge -s %s -l %s --in-place", c,
			 self->path, self->log));
	ASSERT_NE(NULL, strstr(out, "1 already applied"));

	/* --keep: an orphan we can dump, status, discard */
	ret = run(out, sizeof(out), "%s map %s --write 0:ABC --keep", c, self->path);
	ASSERT_EQ(0, ret);
	id = strtoull(out, NULL, 10);
	ASSERT_NE(0u, id);
	ASSERT_EQ(0, run(out, sizeof(out), "%s dump %llu", c, (unsigned long long)id));
	ASSERT_NE(NULL, strstr(out, "seq=1 offset=0 length=3 old=\"---\" new=\"ABC\""))
		TH_LOG("%s", out);
	ASSERT_EQ(0, run(out, sizeof(out), "%s status %llu --json", c, (unsigned long long)id));
	ASSERT_NE(NULL, strstr(out, "\"state\":\"orphaned\"")) TH_LOG("%s", out);
	ASSERT_NE(NULL, strstr(out, "\"journal_records\":1")) TH_LOG("%s", out);
	ASSERT_EQ(0, run(out, sizeof(out), "%s dump %llu --raw -o %s.raw", c,
			 (unsigned long long)id, self->path));
	ASSERT_EQ(0, run(out, sizeof(out), "%s merge -s %s -l %s.raw -o %s.out", c,
			 self->path, self->path, self->path));
	ASSERT_EQ(0, run(NULL, 0, "%s discard %llu", c, (unsigned long long)id));
	ASSERT_EQ(1, run(NULL, 0, "%s dump %llu 2>/dev/null", c, (unsigned long long)id));
	ASSERT_EQ(0, run(out, sizeof(out), "cat %s.out", self->path));
	ASSERT_EQ(0, strcmp(out, "ABC--------- Hexxx World! ------------"));
	run(NULL, 0, "rm -f %s.raw %s.out", self->path, self->path);

	/* usage errors (cowmapctl_test covers list and monitor) */
	ASSERT_EQ(0, run(NULL, 0, "%s list 2>/dev/null", c));
	ASSERT_EQ(2, run(NULL, 0, "%s monitor --count 0 2>/dev/null", c));
	ASSERT_EQ(2, run(NULL, 0, "%s merge -s %s 2>/dev/null", c, self->path));
	ASSERT_EQ(2, run(NULL, 0, "%s bogus 2>/dev/null", c));
	ASSERT_EQ(2, run(NULL, 0, "%s dump 0 2>/dev/null", c));
	/* past the end: the session grows (a view, a size record), the file does not */
	ASSERT_EQ(0, run(NULL, 0, "%s map %s --write 100:x >/dev/null", c, self->path));
	ASSERT_EQ(2, run(NULL, 0, "%s map %s --truncate -1 2>/dev/null", c, self->path));
	ASSERT_TRUE(file_is(self->path, SEEDX));
}

TEST_HARNESS_MAIN
