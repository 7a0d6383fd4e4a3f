// SPDX-License-Identifier: GPL-2.0
/*
 * The journal: exact records for each kind of write, the dump and read(2)
 * streams in the documented format with every checksum verified, the
 * journal file, durable commits through fsync and msync, the journal
 * limit, orphans and adoption.
 */
#include <pthread.h>
#include <sys/syscall.h>

#include "cowmap_test.h"
#include "cowmap_log.h"
#include "cowmap_harness.h"

#define NPAGES 16

FIXTURE(jr) {
	char path[256];
	int file, fd;
	uint8_t *map;
	struct log log;
	uint8_t orig[NPAGES * PG];
};

FIXTURE_SETUP(jr)
{
	self->file = cm_mkfile(self->path, sizeof(self->path), "jr",
			       NPAGES * PG, O_RDONLY);
	ASSERT_LE(0, self->file);
	self->fd = cm_session(self->file);
	ASSERT_LE(0, self->fd);
	self->map = cm_map(self->fd, NPAGES * PG, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	cm_fill(self->orig, 0, NPAGES * PG, 0);
}

FIXTURE_TEARDOWN(jr)
{
	munmap(self->map, NPAGES * PG);
	cm_end(self->fd);
	close(self->file);
	unlink(self->path);
	free(self->log.buf);
}

TEST_F(jr, one_byte)
{
	struct cowmap_commit c = { 0 };
	uint8_t v = self->orig[15] ^ 0xff;

	self->map[15] = v;
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_COMMIT, &c));
	EXPECT_EQ(1, c.records);
	EXPECT_EQ(1, c.first_seq);
	EXPECT_EQ(1, c.pages);
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(1, self->log.n);
	struct rec *r = &self->log.recs[0];

	EXPECT_TRUE(rec_is(r, 15, &self->orig[15], &v, 1));
	EXPECT_EQ(1, r->seq);
	EXPECT_EQ(getpid(), r->pid);
	EXPECT_EQ(getuid(), r->uid);
	EXPECT_NE(0, r->time_ns);
	EXPECT_EQ(c.bytes, self->log.len - sizeof(struct cowmap_log_header));
	/* The header names the session and the file. */
	struct cowmap_status st;
	struct stat fst;

	ASSERT_EQ(0, cm_status(self->fd, &st));
	ASSERT_EQ(0, fstat(self->file, &fst));
	EXPECT_EQ(st.session_id, self->log.hdr.session_id);
	EXPECT_EQ(st.session_id, r->session);
	EXPECT_EQ(fst.st_ino, self->log.hdr.ino);
	EXPECT_EQ(NPAGES * PG, self->log.hdr.size_at_attach);
	EXPECT_EQ(1, st.journal_records);
	EXPECT_EQ(2, st.next_seq);
	EXPECT_EQ(0, st.twin_pages);	/* committed: the twin is gone */
	EXPECT_EQ(1, st.private_pages);
}

TEST_F(jr, run_across_page_boundary)
{
	uint8_t new[20];

	/* Every byte differs from the old one: one run. */
	for (int i = 0; i < 20; i++)
		new[i] = self->orig[3 * PG - 10 + i] ^ 0xA5;
	memcpy(self->map + 3 * PG - 10, new, 20);
	ASSERT_EQ(1, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(1, self->log.n);
	EXPECT_TRUE(rec_is(&self->log.recs[0], 3 * PG - 10, self->orig + 3 * PG - 10,
			   new, 20));
}

TEST_F(jr, scattered_runs_in_one_page)
{
	/* Runs of 1..8 bytes, separated by unchanged bytes. */
	int n = 0;

	for (size_t off = 100; off + 8 < PG; off += 97, n++)
		for (size_t i = 0; i <= (size_t)n % 8; i++)
			self->map[5 * PG + off + i] ^= 0x5A;
	ASSERT_EQ(n, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(n, self->log.n);
	for (int k = 0; k < n; k++) {
		struct rec *r = &self->log.recs[k];

		ASSERT_EQ(5 * PG + 100 + 97 * k, r->offset);
		ASSERT_EQ(1 + k % 8, r->length);
		for (uint32_t i = 0; i < r->length; i++) {
			ASSERT_EQ(self->orig[r->offset + i], r->old[i]);
			ASSERT_EQ(self->orig[r->offset + i] ^ 0x5A, r->new[i]);
		}
		ASSERT_EQ(k + 1, r->seq);
	}
}

TEST_F(jr, whole_page)
{
	uint8_t new[PG];

	/* Every byte differs from the pattern. */
	for (size_t i = 0; i < PG; i++)
		new[i] = self->orig[7 * PG + i] ^ 0x80;
	memcpy(self->map + 7 * PG, new, PG);
	ASSERT_EQ(1, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 3 * PG));
	ASSERT_EQ(1, self->log.n);
	EXPECT_TRUE(rec_is(&self->log.recs[0], 7 * PG, self->orig + 7 * PG, new, PG));
}

TEST_F(jr, long_run_split)
{
	/* 18 pages of changes, one run: split at COWMAP_LOG_MAX_RUN. */
	const size_t len = 18 * PG, n = (len + COWMAP_LOG_MAX_RUN - 1) / COWMAP_LOG_MAX_RUN;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "long", len, O_RDONLY);
	int fd = cm_session(file);
	uint8_t *m = cm_map(fd, len, 0);
	struct log l = { 0 };

	ASSERT_NE(MAP_FAILED, m);
	ASSERT_LT(1, n);
	for (size_t i = 0; i < len; i++)
		m[i] = ~cm_pat(i, 0);
	ASSERT_EQ(n, cm_commit(fd, 0));
	ASSERT_EQ(0, dump_all(fd, &l, 3 * COWMAP_LOG_MAX_RUN));
	ASSERT_EQ(n, l.n);
	for (size_t k = 0; k < n; k++) {
		size_t off = k * COWMAP_LOG_MAX_RUN;
		size_t want = len - off < COWMAP_LOG_MAX_RUN ? len - off : COWMAP_LOG_MAX_RUN;

		EXPECT_EQ(off, l.recs[k].offset);
		EXPECT_EQ(want, l.recs[k].length);
		EXPECT_EQ(0, memcmp(l.recs[k].new, m + off, want));
	}
	free(l.buf);
	munmap(m, len);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST_F(jr, restore_to_old_records_nothing)
{
	struct cowmap_status st;
	uint8_t v = self->map[2 * PG + 9];

	((volatile uint8_t *)self->map)[2 * PG + 9] = v + 1;
	((volatile uint8_t *)self->map)[2 * PG + 9] = v;
	ASSERT_EQ(0, cm_commit(self->fd, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(0, st.journal_records);
	EXPECT_EQ(1, st.next_seq);
	EXPECT_EQ(1, st.commits);
}

TEST_F(jr, two_commits_one_page)
{
	struct cowmap_status st;
	uint8_t a = 0x11, b = 0x22;

	self->map[PG + 40] = a;
	ASSERT_EQ(1, cm_commit(self->fd, 0));
	/* Nothing new: nothing recorded. */
	ASSERT_EQ(0, cm_commit(self->fd, 0));
	self->map[PG + 40] = b;
	self->map[PG + 41] = self->orig[PG + 41];	/* unchanged write */
	ASSERT_EQ(1, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(2, self->log.n);
	EXPECT_TRUE(rec_is(&self->log.recs[0], PG + 40, &self->orig[PG + 40], &a, 1));
	/* The second record's old bytes are the first one's new bytes. */
	EXPECT_TRUE(rec_is(&self->log.recs[1], PG + 40, &a, &b, 1));
	EXPECT_EQ(2, self->log.recs[1].seq);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(1, st.cow_copies);
	EXPECT_EQ(1, st.rearms);	/* the second write took a new twin */
	/* Back to the original bytes: recorded as such. */
	self->map[PG + 40] = self->orig[PG + 40];
	ASSERT_EQ(1, cm_commit(self->fd, 0));
	free(self->log.buf);
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(3, self->log.n);
	EXPECT_TRUE(rec_is(&self->log.recs[2], PG + 40, &b, &self->orig[PG + 40], 1));
}

struct twarg {
	uint8_t *map;
	int id;
};

static void *thread_writes(void *p)
{
	struct twarg *a = p;

	/* Each thread changes 16 bytes of every page, at its own offset. */
	for (int pg = 0; pg < NPAGES; pg++)
		for (int i = 0; i < 16; i++)
			a->map[pg * PG + 64 * a->id + i] ^= 0xF0 + a->id;
	return NULL;
}

TEST_F(jr, two_threads)
{
	struct twarg args[2] = { { self->map, 0 }, { self->map, 1 } };
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, thread_writes, &args[i]));
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ASSERT_EQ(2 * NPAGES, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(2 * NPAGES, self->log.n);
	for (int k = 0; k < 2 * NPAGES; k++) {
		struct rec *r = &self->log.recs[k];
		int id = k % 2;
		uint8_t exp[16];

		for (int i = 0; i < 16; i++)
			exp[i] = self->orig[(k / 2) * PG + 64 * id + i] ^ (0xF0 + id);
		ASSERT_EQ((k / 2) * PG + 64 * id, r->offset);
		ASSERT_TRUE(rec_is(r, r->offset, self->orig + r->offset, exp, 16));
	}
}

TEST_F(jr, before_and_after_fork)
{
	pid_t pid;

	self->map[10] = 0x10;		/* parent, before fork */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		self->map[PG + 10] = 0x20;	/* child: same session */
		_exit(0);
	}
	ASSERT_EQ(0, cm_wait(pid));
	self->map[2 * PG + 10] = 0x30;	/* parent, after fork */
	ASSERT_EQ(3, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(3, self->log.n);
	EXPECT_TRUE(rec_is(&self->log.recs[0], 10, self->orig + 10, "\x10", 1));
	EXPECT_TRUE(rec_is(&self->log.recs[1], PG + 10, self->orig + PG + 10, "\x20", 1));
	EXPECT_TRUE(rec_is(&self->log.recs[2], 2 * PG + 10, self->orig + 2 * PG + 10,
			   "\x30", 1));
	/* The child committed nothing itself: the parent's pid is on all. */
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(getpid(), self->log.recs[i].pid);
}

TEST_F(jr, dump_cursor_and_small_buffers)
{
	struct cowmap_dump d;
	struct log big = { 0 };
	uint8_t buf[256];

	for (int i = 0; i < 50; i++)
		self->map[i * 200] ^= 0xFF;
	ASSERT_EQ(50, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &big, 1 << 20));
	/* One record (72 bytes) per call at most: the same bytes. */
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 100));
	EXPECT_EQ(big.len, self->log.len);
	EXPECT_EQ(0, memcmp(big.buf, self->log.buf, big.len));
	/* Too small for the header: told how much is needed. */
	d = (struct cowmap_dump){ .buf = (uintptr_t)buf, .buf_size = 10 };
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_DUMP, &d));
	EXPECT_EQ(0, d.bytes);
	EXPECT_EQ(sizeof(struct cowmap_log_header), d.needed);
	/* Bad input. */
	d = (struct cowmap_dump){ .buf = (uintptr_t)buf, .buf_size = 256, .flags = 1 };
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_DUMP, &d));
	EXPECT_EQ(EINVAL, errno);
	d = (struct cowmap_dump){ .buf = 16, .buf_size = 256 };
	EXPECT_EQ(-1, ioctl(self->fd, COWMAP_IOC_DUMP, &d));
	EXPECT_EQ(EFAULT, errno);
	/* A cursor past the end: nothing more. */
	d = (struct cowmap_dump){ .buf = (uintptr_t)buf, .buf_size = 256, .cursor = 1000 };
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_DUMP, &d));
	EXPECT_EQ(0, d.bytes);
	EXPECT_EQ(0, d.needed);
	free(big.buf);
}

TEST_F(jr, read_stream_equals_dump)
{
	uint8_t *buf = malloc(1 << 20);
	size_t len = 0;
	ssize_t n;

	for (int i = 0; i < 30; i++)
		self->map[i * 500 + 3] ^= 0x0F;
	ASSERT_EQ(30, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	/* Odd-sized reads, splitting header and records anywhere. */
	while ((n = read(self->fd, buf + len, 37)) > 0)
		len += n;
	ASSERT_EQ(0, n);
	ASSERT_EQ(self->log.len, len);
	EXPECT_EQ(0, memcmp(buf, self->log.buf, len));
	/* pread at any offset gives the same bytes. */
	uint8_t part[100];

	ASSERT_EQ(100, pread(self->fd, part, 100, 500));
	EXPECT_EQ(0, memcmp(part, self->log.buf + 500, 100));
	ASSERT_EQ(10, pread(self->fd, part, 100, len - 10));
	EXPECT_EQ(0, memcmp(part, self->log.buf + len - 10, 10));
	/* New records show up at the end of the stream. */
	self->map[9 * PG] ^= 1;
	ASSERT_EQ(1, cm_commit(self->fd, 0));
	n = read(self->fd, buf, 1 << 20);
	EXPECT_EQ(72, n);
	free(buf);
}

/*
 * read(2) into a buffer that ends in a PROT_NONE page: the bytes before the
 * fault are returned, and the next read goes on from there.
 */
TEST_F(jr, read_into_a_short_buffer)
{
	uint8_t *b = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *all = malloc(1 << 20);
	size_t len, first;
	ssize_t n;

	ASSERT_NE(MAP_FAILED, b);
	ASSERT_EQ(0, mprotect(b + PG, PG, PROT_NONE));
	for (int i = 0; i < 30; i++)
		self->map[i * 500 + 3] ^= 0x0F;
	ASSERT_EQ(30, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	/* Header and the start of the records fit; the rest faults. */
	n = read(self->fd, b + PG - 300, 1000);
	ASSERT_LE(64, n);
	ASSERT_GE(300, n);
	EXPECT_EQ(0, memcmp(b + PG - 300, self->log.buf, n));
	first = n;
	/* Nothing fits: EFAULT, and the position stays. */
	EXPECT_EQ(-1, read(self->fd, b + PG, 100));
	EXPECT_EQ(EFAULT, errno);
	len = first;
	while ((n = read(self->fd, all + len, 333)) > 0)
		len += n;
	ASSERT_EQ(0, n);
	ASSERT_EQ(self->log.len, len);
	EXPECT_EQ(0, memcmp(all + first, self->log.buf + first, len - first));
	munmap(b, 2 * PG);
	free(all);
}

TEST_F(jr, flipped_bit_and_truncation_detected)
{
	for (int i = 0; i < 5; i++)
		self->map[i * PG + 1] ^= 0x33;
	ASSERT_EQ(5, cm_commit(self->fd, 0));
	ASSERT_EQ(0, dump_all(self->fd, &self->log, 4096));
	ASSERT_EQ(0, parse_log(&self->log));
	size_t rec2 = sizeof(struct cowmap_log_header) + 2 * 72;

	/* A bit flipped in the new bytes of record 3: reported there. */
	self->log.buf[rec2 + 64 + 1] ^= 0x04;
	EXPECT_EQ(rec2 + 1, parse_log(&self->log));
	self->log.buf[rec2 + 64 + 1] ^= 0x04;
	ASSERT_EQ(0, parse_log(&self->log));
	/* A truncated tail: the last record is reported. */
	self->log.len -= 5;
	EXPECT_EQ(sizeof(struct cowmap_log_header) + 4 * 72 + 1, parse_log(&self->log));
}

TEST_F(jr, changes_past_eof_wait_for_the_file)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "eofj", 100, O_RDONLY);
	int fd = cm_session(file), wfd;
	uint8_t *m = cm_map(fd, PG, 0);
	struct log l = { 0 };
	struct cowmap_status st;

	ASSERT_NE(MAP_FAILED, m);
	m[50] = 'A';
	m[200] = 'B';	/* past the end of the 100-byte file */
	ASSERT_EQ(1, cm_commit(fd, 0));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(1, st.twin_pages);	/* the byte past EOF is still pending */
	wfd = open(path, O_WRONLY);
	ASSERT_EQ(0, ftruncate(wfd, PG));
	close(wfd);
	ASSERT_EQ(1, cm_commit(fd, 0));
	ASSERT_EQ(0, dump_all(fd, &l, 4096));
	ASSERT_EQ(2, l.n);
	EXPECT_EQ(50, l.recs[0].offset);
	EXPECT_TRUE(rec_is(&l.recs[1], 200, "\0", "B", 1));
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(0, st.twin_pages);
	free(l.buf);
	munmap(m, PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST_F(jr, journal_limit)
{
	long old = cm_param_get("max_journal_bytes");
	struct cowmap_status st;

	ASSERT_LT(0, old);
	for (int i = 0; i < 10; i++)
		self->map[i * PG] ^= 1;
	/* Room for 5 records of 72 bytes. */
	ASSERT_EQ(0, cm_param_set("max_journal_bytes", 5 * 72));
	EXPECT_EQ(-1, cm_commit(self->fd, 0));
	EXPECT_EQ(ENOSPC, errno);
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_EQ(0, st.journal_records);
	EXPECT_EQ(10, st.twin_pages);	/* nothing lost: still to commit */
	/* Writes go on meanwhile, and are part of the next commit. */
	self->map[11 * PG] ^= 1;
	ASSERT_EQ(0, cm_param_set("max_journal_bytes", old));
	EXPECT_EQ(11, cm_commit(self->fd, 0));
}

TEST(commit_bad_input)
{
	struct cowmap_commit c = { .flags = 2 };
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "cbad", PG, O_RDONLY);
	int fd = cm_open();

	ASSERT_EQ(0, cm_handshake(fd));
	c.flags = 0;
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_COMMIT, &c));	/* unattached */
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, cm_attach(fd, file));
	c = (struct cowmap_commit){ .flags = 2 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_COMMIT, &c));
	EXPECT_EQ(EINVAL, errno);
	c = (struct cowmap_commit){ .reserved[1] = 1 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_COMMIT, &c));
	EXPECT_EQ(EINVAL, errno);
	c = (struct cowmap_commit){ .records = 1 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_COMMIT, &c));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_DISCARD, 1));
	EXPECT_EQ(EINVAL, errno);
	cm_end(fd);
	close(file);
	unlink(path);
}

/* Journal files: attach variants. */
TEST(journal_file_attach)
{
	char path[256], jpath[300];
	int file = cm_mkfile(path, sizeof(path), "jfa", 4 * PG, O_RDONLY);
	struct cowmap_attach a;
	int fd, j;

	snprintf(jpath, sizeof(jpath), "%s.log", path);
	/* Read-only journal fd: refused. */
	j = open(jpath, O_RDONLY | O_CREAT | O_TRUNC, 0644);
	fd = cm_open();
	ASSERT_EQ(0, cm_handshake(fd));
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EACCES, errno);
	close(j);
	/* The backing file as its own journal: refused. */
	int bw = open(path, O_RDWR);

	a = (struct cowmap_attach){ .fd = bw, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = bw };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);
	close(bw);
	/* Not a log: refused; the file is left alone. */
	j = open(jpath, O_RDWR | O_TRUNC);
	ASSERT_EQ(5, write(j, "hello", 5));
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);
	close(j);
	/* An empty file gets the header. */
	j = open(jpath, O_RDWR | O_TRUNC);
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	struct stat st;

	ASSERT_EQ(0, fstat(j, &st));
	EXPECT_EQ(sizeof(struct cowmap_log_header), st.st_size);
	/* While it is a journal, it cannot be attached as a backing file. */
	int other = cm_open(), jr = open(jpath, O_RDONLY);

	ASSERT_EQ(0, cm_handshake(other));
	EXPECT_EQ(-1, cm_attach(other, jr));
	EXPECT_EQ(EINVAL, errno);
	close(jr);
	close(other);
	/* A second session may append to a log of the same file. */
	int fd2 = cm_open(), j2 = open(jpath, O_RDWR);

	ASSERT_EQ(0, cm_handshake(fd2));
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j2 };
	EXPECT_EQ(0, ioctl(fd2, COWMAP_IOC_ATTACH, &a));
	cm_end(fd2);
	close(j2);
	cm_end(fd);
	close(j);
	close(file);
	unlink(jpath);
	unlink(path);
}

TEST(journal_file_gets_every_commit)
{
	char path[256], jpath[300];
	int file = cm_mkfile(path, sizeof(path), "jfc", 8 * PG, O_RDONLY);
	struct log dumped = { 0 }, filed = { 0 };
	struct cowmap_attach a;
	struct cowmap_status cs;
	struct stat st;
	uint8_t *m;
	int fd, j;

	snprintf(jpath, sizeof(jpath), "%s.log", path);
	j = open(jpath, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0644);
	ASSERT_LE(0, j);
	fd = cm_open();
	ASSERT_EQ(0, cm_handshake(fd));
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	close(j);	/* the session keeps its own reference */
	m = cm_map(fd, 8 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);

	m[1] = 'a';
	ASSERT_EQ(1, cm_commit(fd, 0));
	m[PG + 2] = 'b';
	ASSERT_EQ(1, cm_commit(fd, COWMAP_COMMIT_DURABLE));
	m[2 * PG + 3] = 'c';
	ASSERT_EQ(0, fsync(fd));			/* a durable commit */
	m[3 * PG + 4] = 'd';
	ASSERT_EQ(0, msync(m, 8 * PG, MS_SYNC));	/* so is this */
	m[4 * PG + 5] = 'e';
	ASSERT_EQ(0, msync(m, 8 * PG, MS_ASYNC));	/* this is not a commit */

	ASSERT_EQ(0, cm_status(fd, &cs));
	EXPECT_EQ(4, cs.journal_records);
	EXPECT_EQ(4, cs.journal_file_seq);
	ASSERT_EQ(0, dump_all(fd, &dumped, 4096));
	j = open(jpath, O_RDONLY);
	ASSERT_EQ(0, fstat(j, &st));
	filed.len = st.st_size;
	filed.buf = malloc(filed.len);
	ASSERT_EQ(filed.len, read(j, filed.buf, filed.len));
	close(j);
	/* Byte for byte what the dump says. */
	ASSERT_EQ(dumped.len, filed.len);
	EXPECT_EQ(0, memcmp(dumped.buf, filed.buf, filed.len));
	ASSERT_EQ(0, parse_log(&filed));
	EXPECT_EQ(4, filed.n);
	EXPECT_TRUE(rec_is(&filed.recs[3], 3 * PG + 4, &(uint8_t){ cm_pat(3 * PG + 4, 0) },
			   "d", 1));
	free(dumped.buf);
	free(filed.buf);
	munmap(m, 8 * PG);
	cm_end(fd);
	close(file);
	unlink(jpath);
	unlink(path);
}

/* Orphans: kept on close, adopted by their owner only, limits. */
static uint64_t orphan_of(int file, off_t where)
{
	struct cowmap_status st;
	int fd = cm_session(file);
	uint8_t *m = cm_map(fd, PG, 0);

	if (m == MAP_FAILED || cm_status(fd, &st))
		return 0;
	m[where] ^= 0xFF;
	munmap(m, PG);
	close(fd);	/* commits and orphans it */
	return st.session_id;
}

TEST(orphan_adopt)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "orph", 2 * PG, O_RDONLY);
	struct cowmap_status st;
	struct log l = { 0 };
	uint64_t id = orphan_of(file, 7);
	int fd, probe;
	pid_t pid;

	ASSERT_NE(0, id);
	/* Another user may not adopt it. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int nfd = cm_open();

		if (nfd < 0 || cm_handshake(nfd) || setuid(65534))
			_exit(10);
		_exit(cm_adopt(nfd, id) == -1 && errno == EPERM ? 0 : 11);
	}
	EXPECT_EQ(0, cm_wait(pid));
	/* No such orphan; an attached fd cannot adopt. */
	probe = cm_open();
	ASSERT_EQ(0, cm_handshake(probe));
	EXPECT_EQ(-1, cm_adopt(probe, 999999));
	EXPECT_EQ(ENOENT, errno);
	ASSERT_EQ(0, cm_attach(probe, file));
	EXPECT_EQ(-1, cm_adopt(probe, id));
	EXPECT_EQ(EBUSY, errno);
	cm_end(probe);

	/* The owner adopts it: the journal and the written page are there. */
	fd = cm_adopt_new(id);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_status(fd, &st));
	EXPECT_EQ(id, st.session_id);
	EXPECT_EQ(COWMAP_STATE_ATTACHED, st.state);
	EXPECT_EQ(1, st.journal_records);
	ASSERT_EQ(0, dump_all(fd, &l, 4096));
	ASSERT_EQ(1, l.n);
	EXPECT_EQ(7, l.recs[0].offset);
	uint8_t *m = cm_map(fd, PG, 0);

	ASSERT_NE(MAP_FAILED, m);
	EXPECT_EQ((uint8_t)(cm_pat(7, 0) ^ 0xFF), m[7]);
	/* Adopted once: nobody else can adopt it now. */
	probe = cm_adopt_new(id);
	EXPECT_EQ(-1, probe);
	EXPECT_EQ(ENOENT, errno);
	munmap(m, PG);
	/* Closed again with its changes: an orphan again; then discarded. */
	close(fd);
	fd = cm_adopt_new(id);
	ASSERT_LE(0, fd);
	cm_end(fd);
	EXPECT_EQ(-1, cm_adopt_new(id));
	EXPECT_EQ(ENOENT, errno);
	free(l.buf);
	close(file);
	unlink(path);
}

TEST(orphan_limits)
{
	long old = cm_param_get("max_user_orphans");
	long old_global = cm_param_get("max_orphans");
	long dropped = cm_param_get("orphans_dropped");
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "olim", 2 * PG, O_RDONLY);
	uint64_t a, b;
	int fd;

	ASSERT_LE(0, dropped);
	ASSERT_LT(0, old);
	ASSERT_EQ(0, cm_param_set("max_user_orphans", 1));
	a = orphan_of(file, 1);
	b = orphan_of(file, 2);	/* over the user's limit: dropped, and counted */
	ASSERT_EQ(0, cm_param_set("max_user_orphans", old));
	EXPECT_EQ(dropped + 1, cm_param_get("orphans_dropped"));
	/* At the global limit, no new session: nothing is dropped for it. */
	ASSERT_EQ(0, cm_param_set("max_orphans", 1));
	EXPECT_EQ(-1, cm_session(file));
	EXPECT_EQ(ENOSPC, errno);
	ASSERT_EQ(0, cm_param_set("max_orphans", old_global));
	fd = cm_adopt_new(a);
	EXPECT_LE(0, fd);
	cm_end(fd);
	EXPECT_EQ(-1, cm_adopt_new(b));
	EXPECT_EQ(ENOENT, errno);
	close(file);
	unlink(path);
}

/* While orphans exist, the module cannot be unloaded (it would lose them). */
TEST(orphan_pins_module)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "opin", PG, O_RDONLY);
	uint64_t id = orphan_of(file, 3);
	int fd;

	ASSERT_NE(0, id);
	EXPECT_EQ(-1, syscall(SYS_delete_module, "cowmap", O_NONBLOCK));
	EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY);
	fd = cm_adopt_new(id);
	ASSERT_LE(0, fd);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
