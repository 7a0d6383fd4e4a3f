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

	/* Uncharged when the session goes. */
	munmap(m, NW * PG);
	cm_end(fd);
	EXPECT_GT((long)(NW * PG / 4),
		  cg_stat_settled("cowmap-a", "kernel", 0, a0 + NW * PG / 4) - a0);
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
