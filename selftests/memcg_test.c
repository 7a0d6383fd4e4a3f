// SPDX-License-Identifier: GPL-2.0
/*
 * Memory accounting: a session's pages are charged to the memory cgroup of
 * the process that opened the session, whoever faults them in, and a cgroup
 * limit makes the faulting write fail with SIGBUS instead of an OOM kill.
 */
#include <limits.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/vfs.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"

#define CG "/sys/fs/cgroup"
#define NW 64	/* pages written */

static int cg_write(const char *cg, const char *file, const char *val)
{
	char path[256];
	int fd, ok;

	snprintf(path, sizeof(path), CG "/%s/%s", cg, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

static long cg_read(const char *cg, const char *file)
{
	char path[256], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), CG "/%s/%s", cg, file);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/*
 * A line of memory.stat. "kernel" counts kernel pages actually charged;
 * memory.current also counts each CPU's stock of pre-charged pages.
 */
static long cg_stat(const char *cg, const char *key)
{
	char path[256], line[128], name[64];
	long val, n = -1;
	FILE *f;

	snprintf(path, sizeof(path), CG "/%s/memory.stat", cg);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", name, &val) == 2 && !strcmp(name, key)) {
			n = val;
			break;
		}
	fclose(f);
	return n;
}

/*
 * 6.12 flushes memcg statistics lazily (every 2 s at the latest): read a
 * stat until it is at least @lo and below @hi, for up to 5 s.
 */
static long cg_stat_settled(const char *cg, const char *key, long lo, long hi)
{
	long v = cg_stat(cg, key);

	for (int i = 0; i < 50 && (v < lo || v >= hi); i++) {
		usleep(100000);
		v = cg_stat(cg, key);
	}
	return v;
}

static int cg_enter(const char *cg)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	return cg_write(cg, "cgroup.procs", pid);
}

/*
 * Reclaim what a cgroup's reclaim can take (memory.reclaim, 5.19+): the
 * pool's pages among it. It answers EAGAIN when it reclaimed less than
 * asked, which is expected.
 */
static void cg_reclaim(const char *cg)
{
	for (int i = 0; i < 4; i++)
		cg_write(cg, "memory.reclaim", "256M");
}

/* Every shrinker, for every cgroup, until they free little: the pool too. */
static void drop_slabs(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "2", 1) != 1)
			perror("drop_caches");
		close(fd);
	}
}

/* In cgroup @cg, a session of @file writes its NW pages and goes. */
static int write_and_end(const char *cg, int file)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		uint8_t *m;
		int fd;

		if (cg_enter(cg))
			_exit(10);
		fd = cm_session(file);
		m = fd < 0 ? MAP_FAILED : cm_map(fd, NW * PG, 0);
		if (m == MAP_FAILED)
			_exit(11);
		for (int i = 0; i < NW; i++)
			m[(size_t)i * PG] = 1;
		munmap(m, NW * PG);
		cm_end(fd);
		_exit(0);
	}
	return cm_wait(pid);
}

FIXTURE(memcg) {
	char path[256];
	int file;
};

FIXTURE_SETUP(memcg)
{
	struct stat st;

	if (stat(CG "/cgroup.controllers", &st))
		mount("none", CG, "cgroup2", 0, NULL);
	if (cg_write(".", "cgroup.subtree_control", "+memory"))
		SKIP(return, "no cgroup2 memory controller");
	rmdir(CG "/cowmap-a");
	rmdir(CG "/cowmap-b");
	ASSERT_EQ(0, mkdir(CG "/cowmap-a", 0755));
	ASSERT_EQ(0, mkdir(CG "/cowmap-b", 0755));
	self->file = cm_mkfile(self->path, sizeof(self->path), "memcg",
			       NW * PG, O_RDONLY);
	ASSERT_LE(0, self->file);
}

FIXTURE_TEARDOWN(memcg)
{
	cg_enter(".");
	rmdir(CG "/cowmap-a");
	rmdir(CG "/cowmap-b");
	close(self->file);
	unlink(self->path);
}

TEST_F(memcg, charged_to_owner)
{
	long a0, b0, a1, b1;
	uint8_t *m;
	pid_t pid;
	int fd;

	/* The owner opens the session in A; a child in B does the writing. */
	ASSERT_EQ(0, cg_enter("cowmap-a"));
	fd = cm_session(self->file);
	ASSERT_LE(0, fd);
	m = cm_map(fd, NW * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	a0 = cg_stat("cowmap-a", "kernel");
	b0 = cg_stat("cowmap-b", "kernel");
	ASSERT_LE(0, a0);
	ASSERT_LE(0, b0);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (cg_enter("cowmap-b"))
			_exit(10);
		for (int i = 0; i < NW; i++)
			m[(size_t)i * PG] = 1;
		_exit(0);
	}
	ASSERT_EQ(0, cm_wait(pid));
	a1 = cg_stat_settled("cowmap-a", "kernel", a0 + 2 * NW * PG, LONG_MAX);
	b1 = cg_stat("cowmap-b", "kernel");
	TH_LOG("kernel memory of A: %ld -> %ld, of B: %ld -> %ld (2 x %d pages = %lu bytes)",
	       a0, a1, b0, b1, NW, 2 * NW * PG);
	/* A copy and a twin per page, charged to A; B gets next to nothing. */
	EXPECT_LE((long)(2 * NW * PG), a1 - a0);
	EXPECT_GT((long)(NW * PG / 4), b1 - b0);

	/*
	 * When the session goes, its pages go to A's pool (kmod/pool.c),
	 * still charged to A, and A's reclaim frees them: uncharged then.
	 */
	munmap(m, NW * PG);
	cm_end(fd);
	cg_reclaim("cowmap-a");
	EXPECT_GT((long)(NW * PG / 4),
		  cg_stat_settled("cowmap-a", "kernel", 0, a0 + NW * PG / 4) - a0);
}

/*
 * The pool (kmod/pool.c): the pages a session frees stay charged to its
 * cgroup, only sessions of that cgroup take them again, and the cgroup's
 * reclaim drains them.
 */
TEST_F(memcg, pool_stays_in_cgroup)
{
	long p0, p1, p2, a0, a1, b0, b1;

	if (cm_param_get("max_pool_pages") < 8 * NW)
		SKIP(return, "the pool is off or too small (max_pool_pages)");
	/* Empty it first: earlier tests may have filled it up to its limit. */
	drop_slabs();
	p0 = cm_param_get("pool_pages");
	TH_LOG("pool: %ld pages at the start, %ld at most", p0,
	       cm_param_get("max_pool_pages"));
	/* A session of A writes NW pages and goes: 2 x NW pages kept. */
	ASSERT_EQ(0, write_and_end("cowmap-a", self->file));
	p1 = cm_param_get("pool_pages");
	EXPECT_LE(p0 + 2 * NW, p1);
	a0 = cg_stat_settled("cowmap-a", "kernel", 2 * NW * PG, LONG_MAX);
	EXPECT_LE((long)(2 * NW * PG), a0);

	/* B takes none of them: it pays for its own pages. */
	b0 = cg_stat("cowmap-b", "kernel");
	ASSERT_EQ(0, write_and_end("cowmap-b", self->file));
	b1 = cg_stat_settled("cowmap-b", "kernel", b0 + 2 * NW * PG, LONG_MAX);
	p2 = cm_param_get("pool_pages");
	TH_LOG("pool %ld -> %ld (A) -> %ld (B); kernel memory of B %ld -> %ld",
	       p0, p1, p2, b0, b1);
	EXPECT_LE(p1 + 2 * NW, p2);
	EXPECT_LE(b0 + (long)(2 * NW * PG), b1);

	/* A's next session takes A's pages: A is charged no more. */
	ASSERT_EQ(0, write_and_end("cowmap-a", self->file));
	a1 = cg_stat("cowmap-a", "kernel");
	TH_LOG("kernel memory of A: %ld with its pool, %ld after a new session",
	       a0, a1);
	EXPECT_GT(a0 + (long)(NW * PG), a1);
	EXPECT_EQ(p2, cm_param_get("pool_pages"));

	/* Each cgroup's reclaim drains its own pool. */
	cg_reclaim("cowmap-a");
	cg_reclaim("cowmap-b");
	EXPECT_GE(p0, cm_param_get("pool_pages"));
	EXPECT_GT(a0 - (long)(NW * PG),
		  cg_stat_settled("cowmap-a", "kernel", 0, a0 - NW * PG));
	EXPECT_GT(b1 - (long)(NW * PG),
		  cg_stat_settled("cowmap-b", "kernel", 0, b1 - NW * PG));
}

/* The oom_kill count of a cgroup's memory.events. */
static long cg_oom_kills(const char *cg)
{
	char path[256], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), CG "/%s/memory.events", cg);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "oom_kill %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

TEST_F(memcg, limit_gives_sigbus)
{
	int go[2], ready[2], sigbus, status;
	pid_t owner, writer;
	char max[32], c;
	long cur;

	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(ready));
	owner = fork();
	ASSERT_LE(0, owner);
	if (owner == 0) {
		uint8_t *m;
		int fd;

		if (cg_enter("cowmap-a"))
			_exit(10);
		fd = cm_session(self->file);
		m = fd < 0 ? MAP_FAILED : cm_map(fd, NW * PG, 0);
		if (m == MAP_FAILED)
			_exit(11);
		writer = fork();
		if (writer == 0) {
			int refused = 0;

			if (cg_enter("cowmap-b"))
				_exit(200);
			if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(201);
			for (int i = 0; i < NW; i++)
				if (cm_try_write(m + (size_t)i * PG, 1) == SIGBUS)
					refused++;
			if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(202);
			/* The limit lifted, the refused pages can be written. */
			for (int i = 0; i < NW; i++)
				if (cm_try_write(m + (size_t)i * PG, 2))
					_exit(203);
			munmap(m, NW * PG);
			cm_end(fd);
			_exit(refused);
		}
		_exit(writer > 0 ? 0 : 12);
	}
	ASSERT_EQ(0, cm_wait(owner));
	ASSERT_EQ(1, read(ready[0], &c, 1));

	/*
	 * memory.current counts each CPU's stock of pre-charged pages, up to
	 * 64 per CPU: since 6.16 a CPU keeps stocks of several memcgs, so A's
	 * stay while B charges, and would make the room too wide for any
	 * write to fail. A memory.high below the usage drains them (with no
	 * OOM kill, unlike memory.max); the limit is then set from what is
	 * really charged.
	 */
	ASSERT_EQ(0, cg_write("cowmap-a", "memory.high", "0"));
	ASSERT_EQ(0, cg_write("cowmap-a", "memory.high", "max"));
	cur = cg_read("cowmap-a", "memory.current");
	snprintf(max, sizeof(max), "%ld", cur + NW * PG / 2);
	ASSERT_EQ(0, cg_write("cowmap-a", "memory.max", max));
	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(0, cg_write("cowmap-a", "memory.max", "max"));
	ASSERT_EQ(1, write(go[1], "g", 1));

	writer = wait(&status);
	ASSERT_LT(0, writer);
	ASSERT_TRUE(WIFEXITED(status));
	sigbus = WEXITSTATUS(status);
	/*
	 * Charges are batched per CPU (a stock of up to 64 pages), so the room
	 * is not exact: some first writes fit, the rest get SIGBUS.
	 */
	TH_LOG("%d of %d first writes refused", sigbus, NW);
	EXPECT_LT(0, sigbus);
	EXPECT_GT(NW, sigbus);
	EXPECT_EQ(0, cg_oom_kills("cowmap-a"));
	EXPECT_EQ(0, cg_oom_kills("cowmap-b"));
}

/*
 * Pins under a cgroup's limit (issue 17): a process in a cgroup with
 * memory.max 32 MiB reads a 96 MiB file through a session, a byte per
 * page. The page cache it reads is charged to its cgroup, and the pages
 * the mapping pins cannot be reclaimed while pinned: the cgroup's reclaim
 * must make the session unpin them (a memcg-aware shrinker), or the reader
 * is OOM-killed. Not on tmpfs: shmem pages are not reclaimable without
 * swap, pinned or not.
 */
#define PIN_PAGES	(96 * 256)

TEST_F(memcg, pins_reclaimed_under_limit)
{
	char path[256];
	struct statfs sf;
	int file, status;
	pid_t pid;

	ASSERT_EQ(0, statfs(cm_dir(), &sf));
	if (sf.f_type == 0x01021994)	/* TMPFS_MAGIC */
		SKIP(return, "tmpfs: its pages are not reclaimable without swap");
	file = cm_mkfile(path, sizeof(path), "memcgpin", (size_t)PIN_PAGES * PG,
			 O_RDONLY);
	ASSERT_LE(0, file);
	/* Out of the page cache: the reader's reads are charged to it. */
	ASSERT_EQ(0, fsync(file));
	ASSERT_EQ(0, posix_fadvise(file, 0, 0, POSIX_FADV_DONTNEED));
	ASSERT_EQ(0, cg_write("cowmap-a", "memory.max", "32M"));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		unsigned long bad = 0;
		uint8_t *m;
		int fd;

		if (cg_enter("cowmap-a"))
			_exit(10);
		/* Sessions that pin nothing, ahead of the reader's in the list. */
		for (int k = 0; k < 40; k++)
			if (cm_session(file) < 0)
				_exit(14);
		fd = cm_session(file);
		m = fd < 0 ? MAP_FAILED : cm_map(fd, (size_t)PIN_PAGES * PG, 0);
		if (m == MAP_FAILED)
			_exit(11);
		{
			/* Reclaim while the session pins nothing yet. */
			int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);

			if (dc < 0 || write(dc, "2", 1) != 1)
				_exit(13);
			close(dc);
		}
		for (size_t i = 0; i < PIN_PAGES; i++)
			if (m[i * PG + 1] != cm_pat(i * PG + 1, 0))
				bad++;
		munmap(m, (size_t)PIN_PAGES * PG);
		cm_end(fd);
		_exit(bad ? 12 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("reader: %s %d", WIFEXITED(status) ? "exit" : "signal",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	EXPECT_EQ(0, cg_oom_kills("cowmap-a"));
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
