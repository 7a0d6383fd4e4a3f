// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel merge: the seed's demo, the apply / already-applied / conflict
 * rule under each policy, several sessions on one file, visibility to other
 * sessions, trim (also of records packed in several chunks), an
 * interrupted merge, bad input, and a property test against a model of
 * the rule computed in user space.
 */
#include <linux/fs.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "cowmap_test.h"
#include "cowmap_log.h"
#include "cowmap_harness.h"

static const char hello[] = "------------ Hello World! ------------";

/* A file holding @text, its path in @path; returns an O_RDWR fd. */
static int text_file(char *path, size_t n, const char *name, const char *text)
{
	int fd;

	snprintf(path, n, "%s/%s.%d", cm_dir(), name, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -1;
	return fd;
}

/* Write @text at @off through a new mapping of session @fd, and commit. */
static int session_write(int fd, off_t off, const char *text)
{
	uint8_t *m = cm_map(fd, PG, 0);
	int n;

	if (m == MAP_FAILED)
		return -1;
	memcpy(m + off, text, strlen(text));
	munmap(m, PG);
	n = cm_commit(fd, 0);
	return n;
}

static int merge(int fd, int target, unsigned int flags, struct cowmap_merge *m,
		 struct cowmap_conflict *c, unsigned int cmax)
{
	*m = (struct cowmap_merge){ .target_fd = target, .flags = flags,
				    .conflicts_buf = (uintptr_t)c,
				    .conflicts_max = cmax };
	return ioctl(fd, COWMAP_IOC_MERGE, m);
}

static int file_is(int fd, const char *text)
{
	char buf[256] = { 0 };
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	return n == (ssize_t)strlen(text) && !memcmp(buf, text, n);
}

TEST(seed_demo)
{
	char path[256];
	int file = text_file(path, sizeof(path), "file0", hello);
	int fd = cm_session(file);
	struct cowmap_merge m;
	struct cowmap_status st;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));
	/* The original is unchanged until the merge. */
	EXPECT_TRUE(file_is(file, hello));
	ASSERT_EQ(0, merge(fd, file, COWMAP_MERGE_FSYNC, &m, NULL, 0));
	EXPECT_EQ(1, m.records);
	EXPECT_EQ(1, m.applied);
	EXPECT_EQ(0, m.conflicts);
	EXPECT_TRUE(file_is(file, "------------ Hexxx World! ------------"));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(1, st.merged_records);
	/* Run again: already applied, nothing written. */
	ASSERT_EQ(0, merge(fd, file, 0, &m, NULL, 0));
	EXPECT_EQ(0, m.applied);
	EXPECT_EQ(1, m.already);
	EXPECT_EQ(0, m.written);
	EXPECT_TRUE(file_is(file, "------------ Hexxx World! ------------"));
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST(bad_input)
{
	char path[256];
	int file = text_file(path, sizeof(path), "mbad", hello);
	int fd = cm_session(file), ro, wo, ap, unattached;
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 1, "a"));
	ro = open(path, O_RDONLY);
	wo = open(path, O_WRONLY);
	ap = open(path, O_RDWR | O_APPEND);
	EXPECT_EQ(-1, merge(fd, ro, 0, &m, NULL, 0));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, merge(fd, wo, 0, &m, NULL, 0));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, merge(fd, -1, 0, &m, NULL, 0));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, merge(fd, ap, 0, &m, NULL, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, merge(fd, file, COWMAP_MERGE_SKIP | COWMAP_MERGE_FORCE, &m, NULL, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, merge(fd, file, 1U << 7, &m, NULL, 0));
	EXPECT_EQ(EINVAL, errno);
	m = (struct cowmap_merge){ .target_fd = file, .applied = 1 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_MERGE, &m));
	EXPECT_EQ(EINVAL, errno);
	unattached = cm_open();
	ASSERT_EQ(0, cm_handshake(unattached));
	EXPECT_EQ(-1, merge(unattached, file, 0, &m, NULL, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_TRUE(file_is(file, hello));
	close(unattached);
	close(ro);
	close(wo);
	close(ap);
	cm_end(fd);
	close(file);
	unlink(path);
}

/*
 * A record whose range holds a mix of its old and new bytes is a conflict;
 * the report starts at the first byte that is not the old one.
 */
TEST(conflict_partly_applied)
{
	char path[256];
	int file = text_file(path, sizeof(path), "mpart", hello);
	int fd = cm_session(file);
	struct cowmap_conflict c[2];
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));	/* old "llo" */
	ASSERT_EQ(1, pwrite(file, "x", 1, 16));		/* "lxo": half new */
	ASSERT_EQ(0, merge(fd, file, 0, &m, c, 2));
	EXPECT_EQ(1, m.conflicts);
	EXPECT_EQ(0, m.applied);
	EXPECT_EQ(0, m.already);
	EXPECT_EQ(0, m.written);
	EXPECT_EQ(15, c[0].offset);
	EXPECT_EQ(3, c[0].length);
	EXPECT_EQ(1, c[0].diff_at);
	EXPECT_EQ(2, c[0].shown);
	EXPECT_EQ(0, memcmp(c[0].expected, "lo", 2));
	EXPECT_EQ(0, memcmp(c[0].found, "xo", 2));
	EXPECT_TRUE(file_is(file, "------------ Helxo World! ------------"));
	cm_end(fd);
	close(file);
	unlink(path);
}

/* A conflict under each policy: someone changed the bytes meanwhile. */
TEST(conflict_policies)
{
	char path[256];
	int file = text_file(path, sizeof(path), "mconf", hello);
	int fd = cm_session(file);
	struct cowmap_conflict c[4];
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));	/* old "llo" */
	ASSERT_EQ(1, session_write(fd, 2, "AB"));	/* old "--" */
	ASSERT_EQ(3, pwrite(file, "LLL", 3, 15));	/* someone else */

	/* Default, all or nothing: nothing written, every conflict told. */
	ASSERT_EQ(0, merge(fd, file, 0, &m, c, 4));
	EXPECT_EQ(2, m.records);
	EXPECT_EQ(1, m.applied);
	EXPECT_EQ(1, m.conflicts);
	EXPECT_EQ(0, m.written);
	EXPECT_TRUE(file_is(file, "------------ HeLLL World! ------------"));
	EXPECT_EQ(1, c[0].seq);
	EXPECT_EQ(15, c[0].offset);
	EXPECT_EQ(3, c[0].length);
	EXPECT_EQ(0, c[0].diff_at);
	EXPECT_EQ(3, c[0].shown);
	EXPECT_EQ(0, memcmp(c[0].expected, "llo", 3));
	EXPECT_EQ(0, memcmp(c[0].found, "LLL", 3));

	/* Dry run with skip: told what would happen, nothing written. */
	ASSERT_EQ(0, merge(fd, file, COWMAP_MERGE_SKIP | COWMAP_MERGE_DRY_RUN, &m, c, 4));
	EXPECT_EQ(1, m.applied);
	EXPECT_EQ(1, m.conflicts);
	EXPECT_EQ(0, m.written);
	EXPECT_TRUE(file_is(file, "------------ HeLLL World! ------------"));

	/* Skip: the rest is written. */
	ASSERT_EQ(0, merge(fd, file, COWMAP_MERGE_SKIP, &m, c, 4));
	EXPECT_EQ(1, m.applied);
	EXPECT_EQ(1, m.conflicts);
	EXPECT_TRUE(file_is(file, "--AB-------- HeLLL World! ------------"));

	/* Force: the conflicting record's new bytes win. */
	ASSERT_EQ(0, merge(fd, file, COWMAP_MERGE_FORCE, &m, c, 4));
	EXPECT_EQ(0, m.applied);
	EXPECT_EQ(1, m.already);
	EXPECT_EQ(1, m.conflicts);
	EXPECT_TRUE(file_is(file, "--AB-------- Hexxx World! ------------"));
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST(sessions_on_one_file)
{
	char path[256];
	int file = text_file(path, sizeof(path), "msess", hello);
	int a = cm_session(file), b = cm_session(file), c = cm_session(file);
	int v = cm_session(file);
	struct cowmap_conflict conf;
	struct cowmap_merge m;
	uint8_t *view;

	ASSERT_LE(0, a);
	ASSERT_LE(0, v);
	view = cm_map(v, PG, 0);	/* a session that only reads */
	ASSERT_NE(MAP_FAILED, view);
	EXPECT_EQ(0, memcmp(view, hello, sizeof(hello) - 1));
	/* Disjoint ranges of one page: both merge. */
	ASSERT_EQ(1, session_write(a, 0, "AAA"));
	ASSERT_EQ(1, session_write(b, 30, "BBB"));
	/* The same bytes as a, differently. */
	ASSERT_EQ(1, session_write(c, 1, "CC"));
	ASSERT_EQ(0, merge(a, file, 0, &m, NULL, 0));
	EXPECT_EQ(1, m.applied);
	/* The reading session sees the merged bytes at once. */
	EXPECT_EQ(0, memcmp(view, "AAA", 3));
	ASSERT_EQ(0, merge(b, file, 0, &m, NULL, 0));
	EXPECT_EQ(1, m.applied);
	EXPECT_TRUE(file_is(file, "AAA--------- Hello World! ----BBB-----"));
	ASSERT_EQ(0, merge(c, file, 0, &m, &conf, 1));
	EXPECT_EQ(1, m.conflicts);
	EXPECT_EQ(0, memcmp(conf.expected, "--", 2));
	EXPECT_EQ(0, memcmp(conf.found, "AA", 2));
	EXPECT_TRUE(file_is(file, "AAA--------- Hello World! ----BBB-----"));
	munmap(view, PG);
	cm_end(a);
	cm_end(b);
	cm_end(c);
	cm_end(v);
	close(file);
	unlink(path);
}

TEST(records_in_sequence_and_trim)
{
	char path[256];
	int file = text_file(path, sizeof(path), "mseq", hello);
	int fd = cm_session(file);
	struct cowmap_status st;
	struct cowmap_merge m;
	struct log l = { 0 };

	ASSERT_LE(0, fd);
	/* Three commits over the same bytes: each builds on the previous. */
	ASSERT_EQ(1, session_write(fd, 13, "h"));
	ASSERT_EQ(1, session_write(fd, 13, "J"));
	ASSERT_EQ(1, session_write(fd, 13, "H"));	/* back to the original */
	ASSERT_EQ(0, merge(fd, file, 0, &m, NULL, 0));
	EXPECT_EQ(3, m.applied);
	EXPECT_EQ(0, m.conflicts);
	EXPECT_TRUE(file_is(file, hello));
	/* Merged records can be trimmed; new ones keep their numbers. */
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_TRIM, 0));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(0, st.journal_records);
	EXPECT_EQ(0, st.merged_records);
	EXPECT_EQ(0, st.journal_bytes);
	ASSERT_EQ(1, session_write(fd, 0, "Z"));
	ASSERT_EQ(0, dump_all(fd, &l, 4096));
	ASSERT_EQ(1, l.n);
	EXPECT_EQ(4, l.recs[0].seq);
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_TRIM, 1));
	EXPECT_EQ(EINVAL, errno);
	free(l.buf);
	cm_end(fd);
	close(file);
	unlink(path);
}

/*
 * The kernel keeps records packed in chunks of up to 256 KiB: many small
 * commits sharing chunks, one commit spreading over several, a trim that
 * drops most records of a chunk but not all. Dump, read(2) and later
 * commits must not notice.
 */
#define CH_PAGES	64
#define CH_SMALL	40	/* commits of one record each */
#define CH_BIG		3900	/* records of one commit: over 256 KiB */
#define CH_TOTAL	(CH_SMALL + CH_BIG)

static off_t ch_off(int i)	/* the byte record seq i + 1 changes */
{
	return i < CH_SMALL ? 32 * PG + i * 16 : (off_t)(i - CH_SMALL) * 16;
}

static int ch_stream_is_dump(int fd, const struct log *l)
{
	uint8_t *buf = malloc(l->len + 1);
	size_t len = 0;
	ssize_t n;

	while ((n = pread(fd, buf + len, 4000, len)) > 0)
		len += n;
	n = len == l->len && !memcmp(buf, l->buf, len);
	free(buf);
	return n;
}

TEST(chunked_journal_trim)
{
	static struct log l1, l2;
	/*
	 * Chunks start at records 7, 21, 49 and 3689 (docs/design.md, the
	 * journal storage): the second goes whole, the others keep a few.
	 */
	static const int conflict[] = { 0, 6, 21, 39, 40, 48, 49, 1000, 3600,
					3688, 3689, CH_TOTAL - 1 };
	const int nc = sizeof(conflict) / sizeof(conflict[0]);
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "mchunk", CH_PAGES * PG, O_RDWR);
	int fd = cm_session(file);
	struct cowmap_status st;
	struct cowmap_merge m;
	uint8_t *map;

	ASSERT_LE(0, fd);
	map = cm_map(fd, CH_PAGES * PG, 0);
	ASSERT_NE(MAP_FAILED, map);
	for (int i = 0; i < CH_SMALL; i++) {
		map[ch_off(i)] ^= 0xFF;
		ASSERT_EQ(1, cm_commit(fd, 0));
	}
	for (int i = CH_SMALL; i < CH_TOTAL; i++)
		map[ch_off(i)] ^= 0xFF;
	ASSERT_EQ(CH_BIG, cm_commit(fd, 0));

	/* Every record, in order, whatever the buffer. */
	ASSERT_EQ(0, dump_all(fd, &l1, 1 << 20));
	ASSERT_EQ(CH_TOTAL, l1.n);
	for (int i = 0; i < CH_TOTAL; i++) {
		uint8_t old = cm_pat(ch_off(i), 0), new = old ^ 0xFF;

		ASSERT_EQ(i + 1, l1.recs[i].seq);
		ASSERT_TRUE(rec_is(&l1.recs[i], ch_off(i), &old, &new, 1));
	}
	ASSERT_EQ(0, dump_all(fd, &l2, 1000));
	ASSERT_EQ(l1.len, l2.len);
	EXPECT_EQ(0, memcmp(l1.buf, l2.buf, l1.len));
	free(l2.buf);
	EXPECT_TRUE(ch_stream_is_dump(fd, &l1));

	/* Some records conflict; a skipping merge applies the rest. */
	for (int i = 0; i < nc; i++) {
		uint8_t b = cm_pat(ch_off(conflict[i]), 0) ^ 0x0F;

		ASSERT_EQ(1, pwrite(file, &b, 1, ch_off(conflict[i])));
	}
	ASSERT_EQ(0, merge(fd, file, COWMAP_MERGE_SKIP, &m, NULL, 0));
	EXPECT_EQ(CH_TOTAL, m.records);
	EXPECT_EQ(CH_TOTAL - nc, m.applied);
	EXPECT_EQ(nc, m.conflicts);
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_TRIM, 0));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(nc, st.journal_records);
	EXPECT_EQ(0, st.merged_records);
	EXPECT_EQ(nc * 72, st.journal_bytes);
	free(l1.buf);
	ASSERT_EQ(0, dump_all(fd, &l1, 4096));
	ASSERT_EQ(nc, l1.n);
	for (int i = 0; i < nc; i++)
		EXPECT_EQ(conflict[i] + 1, l1.recs[i].seq);
	EXPECT_TRUE(ch_stream_is_dump(fd, &l1));

	/* New records keep their numbers after the gaps. */
	map[20 * PG + 8] ^= 0xFF;
	ASSERT_EQ(1, cm_commit(fd, 0));
	free(l1.buf);
	ASSERT_EQ(0, dump_all(fd, &l1, 4096));
	ASSERT_EQ(nc + 1, l1.n);
	EXPECT_EQ(CH_TOTAL + 1, l1.recs[nc].seq);
	EXPECT_TRUE(ch_stream_is_dump(fd, &l1));
	free(l1.buf);

	/* Nothing merged: a trim keeps everything. Forced: all goes. */
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_TRIM, 0));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(nc + 1, st.journal_records);
	ASSERT_EQ(0, merge(fd, file, COWMAP_MERGE_FORCE, &m, NULL, 0));
	EXPECT_EQ(nc + 1, m.records);
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_TRIM, 0));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(0, st.journal_records);
	EXPECT_EQ(0, st.journal_bytes);
	map[21 * PG] ^= 0xFF;
	ASSERT_EQ(1, cm_commit(fd, 0));
	ASSERT_EQ(0, dump_all(fd, &l1, 4096));
	ASSERT_EQ(1, l1.n);
	EXPECT_EQ(CH_TOTAL + 2, l1.recs[0].seq);
	free(l1.buf);

	munmap(map, CH_PAGES * PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST(merge_into_a_copy)
{
	char path[256], copy[256];
	int file = text_file(path, sizeof(path), "morig", hello);
	int dup = text_file(copy, sizeof(copy), "mcopy", hello);
	int fd = cm_session(file);
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));
	ASSERT_EQ(0, merge(fd, dup, 0, &m, NULL, 0));
	EXPECT_TRUE(file_is(dup, "------------ Hexxx World! ------------"));
	EXPECT_TRUE(file_is(file, hello));
	cm_end(fd);
	close(dup);
	close(file);
	unlink(copy);
	unlink(path);
}

/* A target shorter than the records: past its end, nothing matches. */
TEST(target_too_short)
{
	char path[256], shortp[256];
	int file = text_file(path, sizeof(path), "mlong", hello);
	int sh = text_file(shortp, sizeof(shortp), "mshort", "-----");
	int fd = cm_session(file);
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 20, "QQ"));
	ASSERT_EQ(0, merge(fd, sh, 0, &m, NULL, 0));
	EXPECT_EQ(1, m.conflicts);
	EXPECT_TRUE(file_is(sh, "-----"));
	ASSERT_EQ(0, merge(fd, sh, COWMAP_MERGE_FORCE, &m, NULL, 0));
	char buf[32] = { 0 };

	ASSERT_EQ(22, pread(sh, buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, "-----\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0QQ", 22));
	cm_end(fd);
	close(sh);
	close(file);
	unlink(shortp);
	unlink(path);
}

/*
 * Killed while merging: the session is kept as an orphan, and a merge run
 * again (by whoever adopts it) gives exactly the expected file.
 */
TEST(interrupted_merge_completes)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "mkill", 256 * PG, O_RDWR);
	uint8_t expect[256 * PG];
	struct cowmap_merge m;
	uint64_t id;
	int pfd[2], fd;
	pid_t pid;

	ASSERT_LE(0, file);
	ASSERT_EQ(0, pipe(pfd));
	cm_fill(expect, 0, sizeof(expect), 0);
	for (size_t i = 0; i < sizeof(expect); i += 61)
		expect[i] ^= 0x3C;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct cowmap_status st;
		int s = cm_session(file);
		uint8_t *mm = s < 0 ? MAP_FAILED : cm_map(s, 256 * PG, 0);

		if (mm == MAP_FAILED || cm_status(s, &st))
			_exit(10);
		for (size_t i = 0; i < 256 * PG; i += 61)
			mm[i] ^= 0x3C;
		if (cm_commit(s, 0) <= 0 || write(pfd[1], &st.session_id, 8) != 8)
			_exit(11);
		for (;;)	/* merge over and over until killed */
			merge(s, file, 0, &m, NULL, 0);
	}
	ASSERT_EQ(8, read(pfd[0], &id, 8));
	usleep(50000 + rand() % 200000);
	kill(pid, SIGKILL);
	EXPECT_EQ(128 + SIGKILL, cm_wait(pid));
	fd = cm_adopt_new(id);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, merge(fd, file, 0, &m, NULL, 0));
	EXPECT_EQ(0, m.conflicts);
	EXPECT_EQ(m.records, m.applied + m.already);
	uint8_t *now = malloc(sizeof(expect));

	ASSERT_EQ(sizeof(expect), pread(file, now, sizeof(expect), 0));
	EXPECT_EQ(0, memcmp(now, expect, sizeof(expect)));
	free(now);
	cm_end(fd);
	close(file);
	unlink(path);
}

/* Set or clear an inode flag (chattr); -errno. */
static int inode_flag(int fd, int flag, int on)
{
	int f;

	if (ioctl(fd, FS_IOC_GETFLAGS, &f))
		return -errno;
	f = on ? f | flag : f & ~flag;
	return ioctl(fd, FS_IOC_SETFLAGS, &f) ? -errno : 0;
}

/*
 * The merge writes through the filesystem's write path: into a file made
 * immutable after it was opened, it fails as write(2) on the same fd does,
 * and writes nothing.
 */
TEST(immutable_target)
{
	char path[256];
	int file = text_file(path, sizeof(path), "mimm", hello);
	int fd = cm_session(file), werr, ret;
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));
	ret = inode_flag(file, FS_IMMUTABLE_FL, 1);
	if (ret) {
		cm_end(fd);
		close(file);
		unlink(path);
		SKIP(return, "no chattr +i here (%s)", strerror(-ret));
	}
	/* write(2) of the byte already there: the filesystem's answer. */
	werr = pwrite(file, "-", 1, 0) < 0 ? errno : 0;
	ret = merge(fd, file, 0, &m, NULL, 0) ? errno : 0;
	ASSERT_EQ(0, inode_flag(file, FS_IMMUTABLE_FL, 0));
	if (!werr)
		TH_LOG("write(2) into an immutable file succeeds here");
	EXPECT_EQ(werr, ret);
	if (werr)
		EXPECT_TRUE(file_is(file, hello));
	/* Writable again: it merges. */
	ASSERT_EQ(0, merge(fd, file, 0, &m, NULL, 0));
	EXPECT_TRUE(file_is(file, "------------ Hexxx World! ------------"));
	cm_end(fd);
	close(file);
	unlink(path);
}

/*
 * An append-only file (chattr +a after the open): bytes merge as pwrite(2)
 * on the fd does; a merge that changes the size fails EPERM as
 * ftruncate(2) does, before anything is written.
 */
TEST(append_only_target)
{
	char path[256];
	int file = text_file(path, sizeof(path), "mapp", hello);
	int fd = cm_session(file), werr, ret, terr;
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));
	ret = inode_flag(file, FS_APPEND_FL, 1);
	if (ret) {
		cm_end(fd);
		close(file);
		unlink(path);
		SKIP(return, "no chattr +a here (%s)", strerror(-ret));
	}
	werr = pwrite(file, "-", 1, 0) < 0 ? errno : 0;
	ret = merge(fd, file, 0, &m, NULL, 0) ? errno : 0;
	EXPECT_EQ(werr, ret);
	EXPECT_TRUE(file_is(file, ret ? hello :
			    "------------ Hexxx World! ------------"));
	/* Forced past the end of a shorter copy: a growth, EPERM as ftruncate(2). */
	char spath[256];
	int sh = text_file(spath, sizeof(spath), "mappshort", "-----");

	ASSERT_LE(0, sh);
	ASSERT_EQ(0, inode_flag(sh, FS_APPEND_FL, 1));
	terr = ftruncate(sh, 30) ? errno : 0;
	EXPECT_EQ(EPERM, terr);
	ret = merge(fd, sh, COWMAP_MERGE_FORCE, &m, NULL, 0) ? errno : 0;
	EXPECT_EQ(terr, ret);
	EXPECT_TRUE(file_is(sh, "-----"));
	ASSERT_EQ(0, inode_flag(sh, FS_APPEND_FL, 0));
	close(sh);
	unlink(spath);
	ASSERT_EQ(0, inode_flag(file, FS_APPEND_FL, 0));
	cm_end(fd);
	close(file);
	unlink(path);
}

/*
 * RLIMIT_FSIZE below the last extent (inside the file): the first extent
 * was written, the second fails EFBIG, and the merge writes the first one
 * back: nothing changed. SIGXFSZ is ignored, as a writer would.
 */
TEST(rlimit_partway_undone)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "mfsz", 16 * PG, O_RDWR);
	uint8_t buf[16 * PG];
	struct cowmap_merge m;
	uint8_t *mm;
	int fd;
	pid_t pid;

	ASSERT_LE(0, file);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	mm = cm_map(fd, 16 * PG, 0);
	ASSERT_NE(MAP_FAILED, mm);
	memcpy(mm + 10, "first", 5);
	memcpy(mm + 12 * PG + 10, "second", 6);
	munmap(mm, 16 * PG);
	ASSERT_LT(0, cm_commit(fd, 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit rl = { 8 * PG, 8 * PG };
		int bad;

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(2);
		/* pwrite(2) past the limit is EFBIG too */
		bad = pwrite(file, buf, 1, 12 * PG) != -1 || errno != EFBIG;
		if (bad)
			_exit(3);
		_exit(!(merge(fd, file, 0, &m, NULL, 0) == -1 && errno == EFBIG));
	}
	EXPECT_EQ(0, cm_wait(pid));
	ASSERT_EQ(sizeof(buf), pread(file, buf, sizeof(buf), 0));
	EXPECT_TRUE(cm_is_pat(buf, 0, sizeof(buf), 0));
	/* Without the limit it merges. */
	ASSERT_EQ(0, merge(fd, file, 0, &m, NULL, 0));
	EXPECT_EQ(2, m.applied);
	ASSERT_EQ(5, pread(file, buf, 5, 10));
	EXPECT_EQ(0, memcmp(buf, "first", 5));
	cm_end(fd);
	close(file);
	unlink(path);
}

/*
 * A full filesystem (a small tmpfs mounted here): the first extent takes
 * the last free page, the second gets ENOSPC; the first is written back.
 */
TEST(enospc_partway_undone)
{
	char dir[256], path[256], tpath[300], fpath[300];
	static uint8_t buf[PG];
	struct cowmap_merge m;
	int file, target, filler, fd, ret;
	uint8_t *mm;
	off_t size = 0;

	snprintf(dir, sizeof(dir), "%s/small.%d", cm_dir(), getpid());
	ASSERT_EQ(0, mkdir(dir, 0755));
	if (mount("none", dir, "tmpfs", 0, "size=256k")) {
		ret = errno;
		rmdir(dir);
		SKIP(return, "cannot mount a tmpfs (%s)", strerror(ret));
	}
	snprintf(tpath, sizeof(tpath), "%s/target", dir);
	snprintf(fpath, sizeof(fpath), "%s/filler", dir);
	/* The session's file: 1 MiB of zeros, elsewhere. */
	snprintf(path, sizeof(path), "%s/mnospc.%d", cm_dir(), getpid());
	file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, file);
	ASSERT_EQ(0, ftruncate(file, 256 * PG));
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	mm = cm_map(fd, 256 * PG, 0);
	ASSERT_NE(MAP_FAILED, mm);
	mm[0] = 'A';
	mm[128 * PG] = 'B';
	munmap(mm, 256 * PG);
	ASSERT_EQ(2, cm_commit(fd, 0));
	/* The target: sparse zeros, then the filesystem filled but a page. */
	target = open(tpath, O_RDWR | O_CREAT, 0644);
	ASSERT_LE(0, target);
	ASSERT_EQ(0, ftruncate(target, 256 * PG));
	filler = open(fpath, O_RDWR | O_CREAT, 0644);
	ASSERT_LE(0, filler);
	memset(buf, 0x55, sizeof(buf));
	while (pwrite(filler, buf, PG, size) == PG)
		size += PG;
	ASSERT_EQ(ENOSPC, errno);
	ASSERT_EQ(0, ftruncate(filler, size - PG));
	EXPECT_EQ(-1, merge(fd, target, 0, &m, NULL, 0));
	EXPECT_EQ(ENOSPC, errno);
	EXPECT_EQ(0, m.written);
	ASSERT_EQ(1, pread(target, buf, 1, 0));
	EXPECT_EQ(0, buf[0]);
	ASSERT_EQ(1, pread(target, buf, 1, 128 * PG));
	EXPECT_EQ(0, buf[0]);
	/* With room it merges. */
	ASSERT_EQ(0, ftruncate(filler, 0));
	ASSERT_EQ(0, merge(fd, target, 0, &m, NULL, 0));
	EXPECT_EQ(2, m.applied);
	ASSERT_EQ(1, pread(target, buf, 1, 128 * PG));
	EXPECT_EQ('B', buf[0]);
	cm_end(fd);
	close(filler);
	close(target);
	close(file);
	unlink(path);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* A watcher of the target sees the merge's writes (IN_MODIFY). */
TEST(inotify_sees_merge)
{
	char path[256], ev[sizeof(struct inotify_event) + 256];
	int file = text_file(path, sizeof(path), "mnotify", hello);
	int fd = cm_session(file), in, wd;
	struct inotify_event *ie = (void *)ev;
	struct cowmap_merge m;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));
	in = inotify_init1(IN_NONBLOCK);
	ASSERT_LE(0, in);
	wd = inotify_add_watch(in, path, IN_MODIFY);
	ASSERT_LE(0, wd);
	ASSERT_EQ(0, merge(fd, file, 0, &m, NULL, 0));
	ASSERT_LT(0, read(in, ev, sizeof(ev)));
	EXPECT_EQ(wd, ie->wd);
	EXPECT_TRUE(ie->mask & IN_MODIFY);
	close(in);
	cm_end(fd);
	close(file);
	unlink(path);
}

/*
 * A kernel merge takes the whole-file OFD write lock of F_OFD_SETLKW (the
 * offline merge's lock): while another open file description holds it,
 * the merge waits and writes nothing; released, the merge completes.
 */
TEST(waits_for_ofd_lock)
{
	char path[256];
	int file = text_file(path, sizeof(path), "mofd", hello);
	int fd = cm_session(file), lfd, pfd[2];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct pollfd pl;
	struct cowmap_merge m;
	char r = 0;
	pid_t pid;

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, session_write(fd, 15, "xxx"));
	lfd = open(path, O_RDWR);
	ASSERT_LE(0, lfd);
	ASSERT_EQ(0, fcntl(lfd, F_OFD_SETLKW, &fl));
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int t = open(path, O_RDWR);

		r = t >= 0 && !merge(fd, t, 0, &m, NULL, 0) ? 'y' : 'n';
		_exit(write(pfd[1], &r, 1) != 1);
	}
	pl = (struct pollfd){ .fd = pfd[0], .events = POLLIN };
	EXPECT_EQ(0, poll(&pl, 1, 500));
	EXPECT_TRUE(file_is(file, hello));
	/* F_OFD_GETLK from a third description sees the holder's lock. */
	fl.l_type = F_UNLCK;
	ASSERT_EQ(0, fcntl(lfd, F_OFD_SETLK, &fl));
	ASSERT_EQ(1, read(pfd[0], &r, 1));
	EXPECT_EQ('y', r);
	EXPECT_EQ(0, cm_wait(pid));
	EXPECT_TRUE(file_is(file, "------------ Hexxx World! ------------"));
	/* Killed while waiting: the merge stops, nothing written, no lock kept. */
	ASSERT_EQ(1, session_write(fd, 0, "K"));
	fl.l_type = F_WRLCK;
	ASSERT_EQ(0, fcntl(lfd, F_OFD_SETLKW, &fl));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int t = open(path, O_RDWR);

		_exit(t < 0 || merge(fd, t, 0, &m, NULL, 0));
	}
	usleep(200000);
	kill(pid, SIGKILL);
	EXPECT_EQ(128 + SIGKILL, cm_wait(pid));
	EXPECT_TRUE(file_is(file, "------------ Hexxx World! ------------"));
	fl.l_type = F_UNLCK;
	ASSERT_EQ(0, fcntl(lfd, F_OFD_SETLK, &fl));
	ASSERT_EQ(0, merge(fd, file, 0, &m, NULL, 0));
	EXPECT_TRUE(file_is(file, "K----------- Hexxx World! ------------"));
	close(lfd);
	close(pfd[0]);
	close(pfd[1]);
	cm_end(fd);
	close(file);
	unlink(path);
}

/*
 * Two processes merge disjoint changes of two sessions into one file at
 * the same moment, each through its own open: both land, every time.
 */
TEST(concurrent_disjoint_merges)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "mconc", 4 * PG, O_RDWR);
	uint8_t buf[4 * PG], want[4 * PG];

	ASSERT_LE(0, file);
	for (int round = 0; round < 40; round++) {
		int s[2] = { cm_session(file), cm_session(file) };
		pid_t pid[2];

		ASSERT_LE(0, s[0]);
		ASSERT_LE(0, s[1]);
		ASSERT_EQ(4 * PG, pread(file, want, sizeof(want), 0));
		for (int k = 0; k < 2; k++) {
			uint8_t *mm = cm_map(s[k], 4 * PG, 0);

			ASSERT_NE(MAP_FAILED, mm);
			/* Session k: bytes in pages 2k and 2k+1 only. */
			for (size_t i = 2 * k * PG + round; i < (2 * k + 2) * PG; i += 97) {
				mm[i] ^= 0x5A;
				want[i] ^= 0x5A;
			}
			munmap(mm, 4 * PG);
			ASSERT_LT(0, cm_commit(s[k], 0));
		}
		for (int k = 0; k < 2; k++) {
			pid[k] = fork();
			ASSERT_LE(0, pid[k]);
			if (pid[k] == 0) {
				struct cowmap_merge m;
				int t = open(path, O_RDWR);

				_exit(t < 0 || merge(s[k], t, 0, &m, NULL, 0) ||
				      m.conflicts || !m.applied);
			}
		}
		EXPECT_EQ(0, cm_wait(pid[0]));
		EXPECT_EQ(0, cm_wait(pid[1]));
		ASSERT_EQ(4 * PG, pread(file, buf, sizeof(buf), 0));
		ASSERT_EQ(0, memcmp(buf, want, sizeof(buf)));
		cm_end(s[0]);
		cm_end(s[1]);
	}
	close(file);
	unlink(path);
}

/*
 * Property: random writes from several sessions, random commits, merges in
 * random order with SKIP; the file equals a model that replays the dumped
 * records with the merge rule in user space.
 */
#define PNP 6
#define NSESS 4

TEST(property_random_sessions)
{
	static uint8_t model[PNP * PG], now[PNP * PG];
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "mprop", PNP * PG, O_RDWR);
	int fds[NSESS], order[NSESS];
	unsigned int seed = getpid();
	uint8_t *maps[NSESS];

	ASSERT_LE(0, file);
	cm_fill(model, 0, sizeof(model), 0);
	for (int k = 0; k < NSESS; k++) {
		fds[k] = cm_session(file);
		ASSERT_LE(0, fds[k]);
		maps[k] = cm_map(fds[k], PNP * PG, 0);
		ASSERT_NE(MAP_FAILED, maps[k]);
		order[k] = k;
	}
	for (int round = 0; round < 300; round++) {
		int k = rand_r(&seed) % NSESS;
		size_t off = rand_r(&seed) % (PNP * PG - 16);
		int len = 1 + rand_r(&seed) % 16;

		for (int i = 0; i < len; i++)
			maps[k][off + i] = rand_r(&seed) % 4;	/* collisions likely */
		if (rand_r(&seed) % 10 == 0)
			ASSERT_LE(0, cm_commit(fds[k], 0));
	}
	for (int k = NSESS - 1; k > 0; k--) {
		int j = rand_r(&seed) % (k + 1), t = order[k];

		order[k] = order[j];
		order[j] = t;
	}
	for (int n = 0; n < NSESS; n++) {
		int k = order[n];
		struct cowmap_merge m;
		struct log l = { 0 };
		int applied = 0, already = 0, conflicts = 0;

		ASSERT_LE(0, cm_commit(fds[k], 0));
		ASSERT_EQ(0, dump_all(fds[k], &l, 1 << 16));
		/* The model: the rule, record by record, in sequence order. */
		for (int r = 0; r < l.n; r++) {
			struct rec *rc = &l.recs[r];
			uint8_t *cur = model + rc->offset;

			if (!memcmp(cur, rc->old, rc->length)) {
				memcpy(cur, rc->new, rc->length);
				applied++;
			} else if (!memcmp(cur, rc->new, rc->length)) {
				already++;
			} else {
				conflicts++;
			}
		}
		ASSERT_EQ(0, merge(fds[k], file, COWMAP_MERGE_SKIP, &m, NULL, 0));
		EXPECT_EQ(l.n, m.records);
		EXPECT_EQ(applied, m.applied);
		EXPECT_EQ(already, m.already);
		EXPECT_EQ(conflicts, m.conflicts);
		ASSERT_EQ(sizeof(now), pread(file, now, sizeof(now), 0));
		ASSERT_EQ(0, memcmp(now, model, sizeof(now)));
		free(l.buf);
	}
	for (int k = 0; k < NSESS; k++) {
		munmap(maps[k], PNP * PG);
		cm_end(fds[k]);
	}
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
