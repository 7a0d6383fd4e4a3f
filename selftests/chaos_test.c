// SPDX-License-Identifier: GPL-2.0
/*
 * Random sequences of everything a user can do to cowmap at once: several
 * processes (and children they fork and sometimes SIGKILL) open, attach
 * (with and without a journal file), map, write, read, mprotect, madvise,
 * msync, munmap, commit, dump, read(2), merge with every policy, trim,
 * discard, run the kernel's shrinkers (drop_caches), close into orphans, adopt each other's orphans, look at
 * sessions and journals over netlink (cowmapctl), send malformed ioctls;
 * meanwhile the backing files are truncated, extended, hole-punched and
 * written with pwrite and O_DIRECT.
 *
 * What is checked: no kernel report (the runner's verdict), every call
 * returns success or an error the interface documents for it (an EFAULT,
 * EIO, ENOTTY or EBADF on a well-formed call is a failure), and at the end,
 * with every session discarded, the module holds no private page
 * (pages_in_use is 0). COWMAP_CHAOS_SECONDS sets the duration (default 30);
 * the seed is printed and COWMAP_CHAOS_SEED replays it.
 */
#include <glob.h>
#include <time.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"

#define WORKERS		3
#define FILES		2
#define FILE_MAX	(64 * PG)
#define SLOTS		4
#define MAPS		3
#define MAX_IDS		32768
#define MAX_BAD		8

struct shared {
	uint32_t nids;
	uint32_t bad;
	uint64_t ops;
	uint64_t ids[MAX_IDS];
	char why[MAX_BAD][160];
};

struct map {
	uint8_t *p;
	size_t len;
};

struct slot {
	int fd;
	uint64_t id;
	struct map m[MAPS];
};

static struct shared *sh;
static char paths[FILES][256];
static int files[FILES];
static struct slot S[SLOTS];
static uint64_t rs;
static const char *me = "worker";
static int have_ctl;

static uint64_t rnd(uint64_t n)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return n ? rs % n : 0;
}

/* Errors any of these calls may return by design: limits, races, states. */
static int expected_errno(int e)
{
	switch (e) {
	case ENOMEM: case ENOSPC: case EBUSY: case ENOENT: case EINVAL:
	case EAGAIN: case EINTR: case EFBIG: case E2BIG: case EOVERFLOW:
	case EDQUOT: case EMSGSIZE: case ENODATA: case ESTALE: case EPERM:
		return 1;
	}
	return 0;
}

static void bad(const char *what, int e)
{
	uint32_t i = __atomic_fetch_add(&sh->bad, 1, __ATOMIC_RELAXED);

	if (i < MAX_BAD)
		snprintf(sh->why[i], sizeof(sh->why[i]), "%s %d: %s: %s",
			 me, getpid(), what, strerror(e));
}

/* A well-formed call returned @ret: success, or an error it may return. */
static void check(const char *what, long ret)
{
	if (ret < 0 && !expected_errno(errno))
		bad(what, errno);
}

static void remember(uint64_t id)
{
	uint32_t i = __atomic_fetch_add(&sh->nids, 1, __ATOMIC_RELAXED);

	if (i < MAX_IDS)
		__atomic_store_n(&sh->ids[i], id, __ATOMIC_RELEASE);
}

static uint64_t some_id(void)
{
	uint32_t n = __atomic_load_n(&sh->nids, __ATOMIC_ACQUIRE);

	if (n > MAX_IDS)
		n = MAX_IDS;
	return n ? __atomic_load_n(&sh->ids[rnd(n)], __ATOMIC_ACQUIRE) : 0;
}

static struct slot *busy_slot(void)
{
	struct slot *s = &S[rnd(SLOTS)];

	return s->fd >= 0 ? s : NULL;
}

static void unmap_all(struct slot *s)
{
	for (int i = 0; i < MAPS; i++) {
		if (s->m[i].p)
			munmap(s->m[i].p, s->m[i].len);
		s->m[i].p = NULL;
	}
}

/* Close: with discard, or leaving an orphan when it holds records. */
static void drop(struct slot *s, int discard)
{
	unmap_all(s);
	if (discard)
		check("discard", ioctl(s->fd, COWMAP_IOC_DISCARD, 0));
	close(s->fd);
	s->fd = -1;
}

static void take(int fd)
{
	struct cowmap_status st;
	struct slot *s = &S[rnd(SLOTS)];

	if (s->fd >= 0)
		drop(s, rnd(2));
	s->fd = fd;
	if (!cm_status(fd, &st))
		s->id = st.session_id;
	else
		bad("status of a new session", errno);
	remember(s->id);
}

static void op_new(void)
{
	struct cowmap_attach a = { .fd = files[rnd(FILES)] };
	char jpath[300];
	int fd = cm_open(), jfd = -1;

	if (fd < 0) {
		bad("open /dev/cowmap", errno);
		return;
	}
	if (cm_handshake(fd)) {
		bad("handshake", errno);
		close(fd);
		return;
	}
	if (rnd(3) == 0) {
		snprintf(jpath, sizeof(jpath), "%s/chaos-j.%d.%llu", cm_dir(), getpid(),
			 (unsigned long long)rnd(4));
		jfd = open(jpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (jfd >= 0) {
			a.flags = COWMAP_ATTACH_JOURNAL;
			a.journal_fd = jfd;
		}
	}
	if (ioctl(fd, COWMAP_IOC_ATTACH, &a)) {
		check("attach", -1);
		close(fd);
	} else {
		take(fd);
	}
	if (jfd >= 0)
		close(jfd);
}

static void op_map(struct slot *s)
{
	struct map *m = &s->m[rnd(MAPS)];
	size_t len = (1 + rnd(16)) * PG;
	off_t off = rnd(FILE_MAX / PG + 4) * PG;
	int prot = rnd(4) ? PROT_READ | PROT_WRITE : PROT_READ;
	void *p;

	if (m->p)
		munmap(m->p, m->len);
	m->p = NULL;
	p = mmap(NULL, len, prot, MAP_SHARED, s->fd, off);
	if (p == MAP_FAILED) {
		check("mmap", -1);
		return;
	}
	m->p = p;
	m->len = len;
}

static struct map *some_map(struct slot *s)
{
	struct map *m = &s->m[rnd(MAPS)];

	return m->p ? m : NULL;
}

/* Writes and reads may meet SIGBUS (past EOF, limits) or SIGSEGV (RO). */
static void op_touch(struct slot *s, int write)
{
	struct map *m = some_map(s);
	size_t n = 1 + rnd(64);

	if (!m)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t *a = m->p + rnd(m->len);

		if (write)
			cm_try_write(a, (uint8_t)rs);
		else
			cm_try_read(a);
	}
}

static void op_vm(struct slot *s)
{
	struct map *m = some_map(s);
	size_t off, len;

	if (!m)
		return;
	off = rnd(m->len / PG) * PG;
	len = (1 + rnd((m->len - off) / PG)) * PG;
	switch (rnd(4)) {
	case 0:
		check("mprotect", mprotect(m->p + off, len,
					   rnd(2) ? PROT_READ : PROT_READ | PROT_WRITE));
		break;
	case 1:
		check("madvise", madvise(m->p + off, len, MADV_DONTNEED));
		break;
	case 2:
		check("msync", msync(m->p + off, len, rnd(2) ? MS_SYNC : MS_ASYNC));
		break;
	default:
		check("munmap part", munmap(m->p + off, len));
		if (off == 0 && len == m->len)
			m->p = NULL;
		break;
	}
}

static void op_journal(struct slot *s)
{
	static uint8_t buf[64 * 1024];
	struct cowmap_commit c = { .flags = rnd(4) ? 0 : COWMAP_COMMIT_DURABLE };
	struct cowmap_dump d = { .buf = (uintptr_t)buf };
	struct cowmap_status st;

	switch (rnd(5)) {
	case 0:
	case 1:
		check("commit", ioctl(s->fd, COWMAP_IOC_COMMIT, &c));
		break;
	case 2:
		d.buf_size = rnd(2) ? sizeof(buf) : rnd(256);
		for (int i = 0; i < 8; i++) {
			if (ioctl(s->fd, COWMAP_IOC_DUMP, &d)) {
				check("dump", -1);
				break;
			}
			if (!d.bytes)
				break;
		}
		break;
	case 3:
		check("read", read(s->fd, buf, 1 + rnd(sizeof(buf))));
		break;
	default:
		check("status", cm_status(s->fd, &st));
		break;
	}
}

static void op_merge(struct slot *s)
{
	static const unsigned int pol[] = {
		0, COWMAP_MERGE_SKIP, COWMAP_MERGE_FORCE, COWMAP_MERGE_DRY_RUN,
		COWMAP_MERGE_SKIP | COWMAP_MERGE_DRY_RUN, COWMAP_MERGE_FSYNC,
	};
	struct cowmap_conflict c[4];
	struct cowmap_merge m = {
		.target_fd = files[rnd(FILES)],
		.flags = pol[rnd(6)],
		.conflicts_buf = (uintptr_t)c,
		.conflicts_max = rnd(5),
	};

	if (rnd(3))
		check("merge", ioctl(s->fd, COWMAP_IOC_MERGE, &m));
	else
		check("trim", ioctl(s->fd, COWMAP_IOC_TRIM, 0));
}

static void op_file(void)
{
	static uint8_t buf[4 * PG] __attribute__((aligned(4096)));
	int i = rnd(FILES), fd;
	off_t off = rnd(FILE_MAX);

	memset(buf, (int)rnd(256), sizeof(buf));
	switch (rnd(5)) {
	case 0:
		check("ftruncate", ftruncate(files[i], rnd(FILE_MAX + 1)));
		break;
	case 1:
		check("punch", fallocate(files[i], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 off, 1 + rnd(4 * PG)));
		break;
	case 2:
		/* O_DIRECT where the filesystem has it (ext4, not tmpfs). */
		fd = open(paths[i], O_RDWR | O_DIRECT);
		if (fd >= 0) {
			check("O_DIRECT pwrite", pwrite(fd, buf, PG, rnd(FILE_MAX / PG) * PG));
			close(fd);
		}
		break;
	default:
		check("pwrite", pwrite(files[i], buf, 1 + rnd(sizeof(buf)), off));
		break;
	}
}

static void op_adopt(void)
{
	uint64_t id = some_id();
	int fd;

	if (!id)
		return;
	fd = cm_adopt_new(id);
	if (fd >= 0)
		take(fd);
	else
		check("adopt", -1);
}

static void op_netlink(void)
{
	char cmd[128];

	if (!have_ctl)
		return;
	if (rnd(2))
		snprintf(cmd, sizeof(cmd), "cowmapctl list --json >/dev/null 2>&1");
	else
		snprintf(cmd, sizeof(cmd), "cowmapctl dump %llu >/dev/null 2>&1",
			 (unsigned long long)some_id());
	if (system(cmd) == -1)
		bad("system(cowmapctl)", errno);
}

/* Malformed calls: must fail (or be harmless) without any kernel report. */
static void op_garbage(struct slot *s)
{
	uint8_t buf[512];
	unsigned long cmd;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd(256);
	cmd = _IOC(rnd(4), COWMAP_IOC_MAGIC, rnd(12), rnd(300));
	/* Never a well-formed DISCARD, ATTACH or MERGE by chance. */
	ioctl(s ? s->fd : files[0], cmd, buf);
	ioctl(s ? s->fd : files[0], cmd, (void *)(uintptr_t)rnd(4096));
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void op_fork(void)
{
	pid_t pid = fork();
	long ms;

	if (pid < 0) {
		check("fork", -1);
		return;
	}
	if (pid == 0) {
		uint64_t end;

		me = "child";
		rs ^= (uint64_t)getpid() << 32;
		end = now_ms() + rnd(300);
		while (now_ms() < end) {
			struct slot *s = busy_slot();

			if (s) {
				op_touch(s, rnd(2));
				if (!rnd(8))
					op_journal(s);
			} else {
				op_new();
			}
		}
		_exit(0);
	}
	ms = rnd(200);
	usleep(ms * 1000);
	if (rnd(2))
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The kernel's shrinkers, cowmap's among them (root only). */
static void op_reclaim(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	check("drop_caches", write(fd, "2\n", 2) == 2 ? 0 : -1);
	close(fd);
}

static void worker(int n, time_t end)
{
	rs = rs * 2654435761u + n + 1;
	me = "worker";
	for (int i = 0; i < SLOTS; i++)
		S[i].fd = -1;
	while (time(NULL) < end) {
		struct slot *s = busy_slot();
		unsigned int op = rnd(100);

		__atomic_fetch_add(&sh->ops, 1, __ATOMIC_RELAXED);
		if (!s || op < 6)
			op_new();
		else if (op < 16)
			op_map(s);
		else if (op < 40)
			op_touch(s, 1);
		else if (op < 50)
			op_touch(s, 0);
		else if (op < 56)
			op_vm(s);
		else if (op < 68)
			op_journal(s);
		else if (op < 73)
			op_merge(s);
		else if (op < 80)
			op_file();
		else if (op < 83)
			op_adopt();
		else if (op < 86)
			drop(s, rnd(2));
		else if (op < 88)
			op_fork();
		else if (op < 90)
			op_netlink();
		else if (op < 93)
			op_garbage(s);
		else if (op < 95)
			op_reclaim();
		else
			op_touch(s, 1);
	}
	for (int i = 0; i < SLOTS; i++)
		if (S[i].fd >= 0)
			drop(&S[i], rnd(2));
	_exit(0);
}

TEST(random_sequences)
{
	const char *env = getenv("COWMAP_CHAOS_SECONDS");
	const char *seed_env = getenv("COWMAP_CHAOS_SEED");
	int secs = env ? atoi(env) : 30;
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) :
			(uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	pid_t pids[WORKERS];
	uint32_t n, gone = 0;
	time_t end;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, sh);
	have_ctl = system("cowmapctl --version >/dev/null 2>&1") == 0;
	for (int i = 0; i < FILES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "chaos%d", i);
		files[i] = cm_mkfile(paths[i], sizeof(paths[i]), name, FILE_MAX / 2, O_RDWR);
		ASSERT_LE(0, files[i]);
	}
	TH_LOG("seed %llu, %d s, %d workers%s", (unsigned long long)seed, secs, WORKERS,
	       have_ctl ? "" : ", no cowmapctl: netlink left out");
	rs = seed | 1;
	end = time(NULL) + secs;
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0)
			worker(i, end);
	}
	for (int i = 0; i < WORKERS; i++) {
		int st;

		ASSERT_EQ(pids[i], waitpid(pids[i], &st, 0));
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) TH_LOG("worker %d: status %#x", i, st);
	}

	/* Every orphan left behind is adopted and discarded. */
	n = sh->nids < MAX_IDS ? sh->nids : MAX_IDS;
	for (uint32_t i = 0; i < n; i++) {
		int fd = cm_adopt_new(sh->ids[i]);

		if (fd >= 0) {
			cm_end(fd);
			gone++;
		} else {
			EXPECT_TRUE(errno == ENOENT) TH_LOG("adopt %llu: %s",
				    (unsigned long long)sh->ids[i], strerror(errno));
		}
	}
	TH_LOG("%llu operations, %u sessions, %u orphans discarded at the end",
	       (unsigned long long)sh->ops, n, gone);
	EXPECT_LT(n, MAX_IDS);
	/* Sessions go when their last reference does: allow a moment. */
	for (int i = 0; i < 50 && cm_param_get("pages_in_use"); i++)
		usleep(100000);
	EXPECT_EQ(0, cm_param_get("pages_in_use"));
	EXPECT_EQ(0, cm_param_get("base_pages_in_use"));
	EXPECT_EQ(0, sh->bad);
	for (uint32_t i = 0; i < sh->bad && i < MAX_BAD; i++)
		TH_LOG("%s", sh->why[i]);
	for (int i = 0; i < FILES; i++) {
		close(files[i]);
		unlink(paths[i]);
	}
	{
		char pat[300];
		glob_t g;

		snprintf(pat, sizeof(pat), "%s/chaos-j.*", cm_dir());
		if (!glob(pat, 0, NULL, &g)) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		}
	}
	munmap(sh, sizeof(*sh));
}

TEST_HARNESS_MAIN
