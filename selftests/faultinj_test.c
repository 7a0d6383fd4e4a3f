// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection (debug kernel: failslab and fail_page_alloc): for each
 * operation, fail its 1st, 2nd, ... kernel allocation in turn
 * (/proc/thread-self/fail-nth) until it runs with no failure left to
 * inject. Every injected failure must give a clean error (an errno, or
 * SIGBUS for a write fault), leave the session usable, and leak nothing
 * (the runner scans kmemleak at the end). Skipped where the kernel has no
 * fault injection.
 */
#include <sys/mount.h>

#include "cowmap_test.h"
#include "cowmap_log.h"
#include "cowmap_harness.h"

#define MAX_NTH 400

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

/* Make every slab and page allocation of a task with fail-nth eligible. */
static int setup_injection(void)
{
	static const char *const knobs[][2] = {
		{ "failslab/ignore-gfp-wait", "N" },
		{ "failslab/verbose", "0" },
		{ "fail_page_alloc/ignore-gfp-wait", "N" },
		{ "fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "fail_page_alloc/min-order", "0" },
		{ "fail_page_alloc/verbose", "0" },
	};
	char path[128];

	mount("none", "/sys/kernel/debug", "debugfs", 0, NULL);
	if (access("/sys/kernel/debug/failslab", F_OK) ||
	    access("/proc/thread-self/fail-nth", F_OK))
		return -1;
	for (unsigned int i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s", knobs[i][0]);
		if (write_str(path, knobs[i][1]))
			return -1;
	}
	return 0;
}

static void fail_nth(int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", n);
	write_str("/proc/thread-self/fail-nth", buf);
}

/* Was the armed failure used? (fail-nth reads 0 once it fired.) */
static int fail_fired(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/thread-self/fail-nth", O_RDONLY);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0)
		return 0;
	close(fd);
	fail_nth(0);	/* disarm */
	return atoi(buf) == 0;
}

/*
 * Run @op with its @n-th allocation failing, for n = 1, 2, ... until it
 * ran without reaching the n-th allocation. @op returns 0, a negative
 * errno, or a positive signal number. Counts outcomes.
 */
struct sweep {
	int runs, errors, signals, ok_despite;
	int bad;	/* a result that is not a clean error */
};

#define SWEEP(sw, op_call)						\
	do {								\
		for (int n_ = 1; n_ <= MAX_NTH; n_++) {			\
			int r_;						\
			fail_nth(n_);					\
			r_ = (op_call);					\
			if (!fail_fired()) {				\
				if (r_)					\
					(sw)->bad++;			\
				break;					\
			}						\
			(sw)->runs++;					\
			if (r_ < 0)					\
				(sw)->errors++;				\
			else if (r_ > 0)				\
				(sw)->signals++;			\
			else						\
				(sw)->ok_despite++;			\
		}							\
	} while (0)

FIXTURE(fi) {
	char path[256], jpath[300];
	int file;
	bool on;	/* fault injection available */
	struct sweep sw;
};

/* A SKIP in FIXTURE_SETUP does not stop the test body: each checks this. */
#define NEED_INJECTION()						\
	do {								\
		if (!self->on)						\
			SKIP(return, "no fault injection in this kernel"); \
	} while (0)

FIXTURE_SETUP(fi)
{
	self->file = -1;
	self->on = !setup_injection();
	if (!self->on)
		return;
	self->file = cm_mkfile(self->path, sizeof(self->path), "fi", 64 * PG, O_RDWR);
	ASSERT_LE(0, self->file);
	snprintf(self->jpath, sizeof(self->jpath), "%s.log", self->path);
	memset(&self->sw, 0, sizeof(self->sw));
}

FIXTURE_TEARDOWN(fi)
{
	if (!self->on)
		return;
	fail_nth(0);
	close(self->file);
	unlink(self->path);
	unlink(self->jpath);
}

/* open + handshake + attach with a journal file + close. */
static int op_attach(const char *path, const char *jpath)
{
	int file = open(path, O_RDONLY), j, fd, ret = 0;
	struct cowmap_attach a;

	j = open(jpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (file < 0 || j < 0)
		ret = -errno;
	fd = ret ? -1 : cm_open();
	if (!ret && fd < 0)
		ret = -errno;
	if (!ret && cm_handshake(fd))
		ret = -errno;
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	if (!ret && ioctl(fd, COWMAP_IOC_ATTACH, &a))
		ret = -errno;
	if (fd >= 0)
		cm_end(fd);
	if (j >= 0)
		close(j);
	if (file >= 0)
		close(file);
	return ret;
}

TEST_F(fi, attach)
{
	NEED_INJECTION();
	SWEEP(&self->sw, op_attach(self->path, self->jpath));
	TH_LOG("%d injected failures: %d errors", self->sw.runs, self->sw.errors);
	EXPECT_EQ(0, self->sw.bad);
	EXPECT_LT(0, self->sw.runs);
	/* Afterwards everything works. */
	EXPECT_EQ(0, op_attach(self->path, self->jpath));
}

/* A first write to a page: the copy, the twin, the xarray slots. */
TEST_F(fi, write_fault)
{
	int page = 0, fd;
	uint8_t *m;

	NEED_INJECTION();
	fd = cm_session(self->file);
	m = cm_map(fd, 64 * PG, 0);

	ASSERT_NE(MAP_FAILED, m);
	/* A fresh page for each try (a first write allocates far fewer). */
	SWEEP(&self->sw, cm_try_write(m + (page < 63 ? page++ : page) * PG, 0x5A));
	TH_LOG("%d injected failures: %d SIGBUS", self->sw.runs, self->sw.signals);
	EXPECT_EQ(0, self->sw.bad);
	/* Each refused page can be written now; the others hold their byte. */
	for (int p = 0; p < page; p++)
		EXPECT_EQ(0, cm_try_write(m + p * PG, 0x5A));
	munmap(m, 64 * PG);
	cm_end(fd);
}

/*
 * A commit that fails records nothing and loses nothing; retried, it
 * records everything. Each try starts from the same written pages, so the
 * sweep reaches every allocation of a whole commit.
 */
TEST_F(fi, commit)
{
	struct cowmap_status st;
	int n, ret, fired;

	NEED_INJECTION();
	for (n = 1; n <= MAX_NTH; n++) {
		int fd = cm_session(self->file);
		uint8_t *m = cm_map(fd, 16 * PG, 0);

		ASSERT_NE(MAP_FAILED, m);
		for (int i = 0; i < 40; i++)
			m[i * 1531] ^= 0x42;
		fail_nth(n);
		ret = cm_commit(fd, 0);
		fired = fail_fired();
		ASSERT_EQ(0, cm_status(fd, &st));
		if (ret < 0) {
			self->sw.errors++;
			EXPECT_EQ(0, st.journal_records);
			EXPECT_LT(0, st.twin_pages);	/* still to commit */
			EXPECT_EQ(40, cm_commit(fd, 0));
		} else {
			EXPECT_EQ(40, ret);
			EXPECT_EQ(0, st.twin_pages);
		}
		munmap(m, 16 * PG);
		cm_end(fd);
		if (!fired)
			break;
		self->sw.runs++;
	}
	TH_LOG("%d injected failures: %d errors", self->sw.runs, self->sw.errors);
	EXPECT_GE(MAX_NTH, n);
	EXPECT_LT(0, self->sw.errors);
}

/*
 * The same for a commit that appends to the journal's last chunk and needs
 * a new one from vmalloc (a whole-page record): a failure anywhere leaves
 * the journal as it was, and the retry numbers the records on from there.
 */
TEST_F(fi, commit_into_chunks)
{
	struct cowmap_status st;
	int n, ret, fired;

	NEED_INJECTION();
	for (n = 1; n <= MAX_NTH; n++) {
		int fd = cm_session(self->file);
		uint8_t *m = cm_map(fd, 16 * PG, 0);
		struct log l = { 0 };

		ASSERT_NE(MAP_FAILED, m);
		m[10 * PG] ^= 0x42;
		ASSERT_EQ(1, cm_commit(fd, 0));
		for (int i = 0; i < 40; i++)
			m[i * 97] ^= 0x42;
		for (int i = 0; i < (int)PG; i++)
			m[5 * PG + i] ^= 0x42;
		fail_nth(n);
		ret = cm_commit(fd, 0);
		fired = fail_fired();
		ASSERT_EQ(0, cm_status(fd, &st));
		if (ret < 0) {
			self->sw.errors++;
			EXPECT_EQ(1, st.journal_records);
			EXPECT_LT(0, st.twin_pages);	/* still to commit */
			EXPECT_EQ(41, cm_commit(fd, 0));
		} else {
			EXPECT_EQ(41, ret);
			EXPECT_EQ(0, st.twin_pages);
		}
		ASSERT_EQ(0, dump_all(fd, &l, 1 << 16));
		ASSERT_EQ(42, l.n);
		for (int i = 0; i < l.n; i++)
			EXPECT_EQ(i + 1, l.recs[i].seq);
		free(l.buf);
		munmap(m, 16 * PG);
		cm_end(fd);
		if (!fired)
			break;
		self->sw.runs++;
	}
	TH_LOG("%d injected failures: %d errors", self->sw.runs, self->sw.errors);
	EXPECT_GE(MAX_NTH, n);
	EXPECT_LT(0, self->sw.errors);
}

static int op_dump(int fd)
{
	struct log l = { 0 };
	int ret = dump_all(fd, &l, 1024);

	free(l.buf);
	return ret == -1 ? -errno : ret;
}

static int op_merge(int fd, int target)
{
	struct cowmap_merge mg = { .target_fd = target,
				   .flags = COWMAP_MERGE_DRY_RUN };

	return ioctl(fd, COWMAP_IOC_MERGE, &mg) ? -errno : 0;
}

TEST_F(fi, dump_and_merge)
{
	struct cowmap_merge mg = { .target_fd = self->file };
	uint8_t buf[64 * PG], want[64 * PG];
	uint8_t *m;
	int fd;

	NEED_INJECTION();
	fd = cm_session(self->file);
	m = cm_map(fd, 64 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (int i = 0; i < 100; i++)
		m[i * 509] ^= 0x24;
	memcpy(want, m, sizeof(want));
	ASSERT_EQ(100, cm_commit(fd, 0));
	SWEEP(&self->sw, op_dump(fd));
	EXPECT_EQ(0, self->sw.bad);
	memset(&self->sw, 0, sizeof(self->sw));
	SWEEP(&self->sw, op_merge(fd, self->file));
	TH_LOG("merge: %d injected failures: %d errors", self->sw.runs,
	       self->sw.errors);
	EXPECT_EQ(0, self->sw.bad);
	/* A real merge afterwards gives the session's bytes. */
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_MERGE, &mg));
	EXPECT_EQ(100, mg.applied);
	ASSERT_EQ(sizeof(buf), pread(self->file, buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, want, sizeof(buf)));
	munmap(m, 64 * PG);
	cm_end(fd);
}

/*
 * Closing a session with changes, under injection: the commit at close and
 * the orphan. Whatever fails, the changes are kept (committed, or still
 * written pages in the orphan); unless the module cannot keep the session
 * at all, in which case the close is logged and counted (orphans_dropped).
 */
TEST_F(fi, close_to_orphan)
{
	long dropped = cm_param_get("orphans_dropped");
	struct cowmap_status st;
	int n, fired, kept = 0;

	NEED_INJECTION();
	for (n = 1; n <= MAX_NTH; n++) {
		int fd = cm_session(self->file), probe;
		uint8_t *m = cm_map(fd, PG, 0);

		ASSERT_NE(MAP_FAILED, m);
		m[3] ^= 1;
		ASSERT_EQ(0, cm_status(fd, &st));
		munmap(m, PG);
		fail_nth(n);
		close(fd);	/* commit + orphan, under injection */
		fired = fail_fired();
		probe = cm_adopt_new(st.session_id);
		if (probe >= 0) {
			ASSERT_EQ(0, cm_status(probe, &st));
			/* Committed, or still written: nothing lost. */
			EXPECT_EQ(1, st.journal_records + st.twin_pages);
			kept++;
			cm_end(probe);
		}
		if (!fired)
			break;
	}
	TH_LOG("%d closes under injection, %d kept as orphans, %ld dropped",
	       n, kept, cm_param_get("orphans_dropped") - dropped);
	EXPECT_GE(MAX_NTH, n);
	/* Every close either kept the session or counted the drop. */
	EXPECT_EQ(n, kept + cm_param_get("orphans_dropped") - dropped);
}

TEST_HARNESS_MAIN
