// SPDX-License-Identifier: GPL-2.0
/*
 * Files larger than memory. A session's mapping reads a sparse file four
 * times the size of the machine's RAM, sequentially twice and then at
 * random, and writes 1% of its pages. The pinning limits are raised out of
 * the way first, so only the shrinker can keep the base pages a mapping
 * pins in check: without it they pile up until the OOM killer comes.
 *
 * It runs in a small guest only (make check boots one with 1 GiB for it:
 * a 4 GiB file); in a bigger one it skips, as it would take minutes under
 * TCG. With COWMAP_BASELINE=1 in the environment, the same passes through
 * a MAP_SHARED mapping of the file follow, and the ratios are logged (a
 * benchmark: never asserted).
 *
 * On ext4 only: tmpfs has no swap here, and reading a hole of a tmpfs file
 * allocates a page that nothing can reclaim.
 */
#include <linux/magic.h>
#include <sys/statfs.h>
#include <time.h>

#include "cowmap_test.h"
#include "kselftest_harness.h"

/* A field of /proc/meminfo (kB) or /proc/vmstat; -1 if missing. */
static long proc_field(const char *file, const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long val = -1;
	FILE *f = fopen(file, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, n) && (line[n] == ' ' || line[n] == ':')) {
			val = strtol(line + n + 1 + (line[n] == ':'), NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One byte per page, in order; the sum of what was read. */
static unsigned long read_seq(const volatile uint8_t *m, size_t size)
{
	unsigned long sum = 0;

	for (size_t off = 0; off < size; off += PG)
		sum += m[off];
	return sum;
}

static unsigned long read_random(const volatile uint8_t *m, size_t size,
				 unsigned long nr)
{
	unsigned long sum = 0, pages = size / PG;
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (unsigned long i = 0; i < nr; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		sum += m[(x % pages) * PG];
	}
	return sum;
}

FIXTURE(big)
{
	char path[256];
	int file;
	size_t size;
	long ram_pages;
	long user_base, total_base;
};

FIXTURE_SETUP(big)
{
	struct statfs sf;

	self->file = -1;
	self->user_base = self->total_base = -1;
	if (geteuid())
		SKIP(return, "needs root: it raises the module's pin limits");
	ASSERT_EQ(0, statfs(cm_dir(), &sf));
	if (sf.f_type == TMPFS_MAGIC)
		SKIP(return, "tmpfs: its holes read into memory only swap could take");
	self->ram_pages = proc_field("/proc/meminfo", "MemTotal") / 4;
	ASSERT_LT(0, self->ram_pages);
	if (self->ram_pages > (1536L << 20) / (long)PG)
		SKIP(return, "runs in a guest of at most 1.5 GiB (tools/vm test --mem 1G)");
	/* Four times the RAM, in whole 2 MiB. */
	self->size = ((size_t)self->ram_pages * 4 * PG + (2 << 20) - 1) &
		     ~(size_t)((2 << 20) - 1);
	snprintf(self->path, sizeof(self->path), "%s/big.%d", cm_dir(), getpid());
	self->file = open(self->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, self->file);
	ASSERT_EQ(0, ftruncate(self->file, self->size));

	self->user_base = cm_param_get("max_user_base_pages");
	self->total_base = cm_param_get("max_total_base_pages");
	ASSERT_LT(0, self->user_base);
	ASSERT_LT(0, self->total_base);
	/* Limits far above RAM: only reclaim can bound the pins now. */
	ASSERT_EQ(0, cm_param_set("max_total_base_pages", self->ram_pages * 8));
	ASSERT_EQ(0, cm_param_set("max_user_base_pages", self->ram_pages * 8));
}

FIXTURE_TEARDOWN(big)
{
	if (self->user_base > 0)
		cm_param_set("max_user_base_pages", self->user_base);
	if (self->total_base > 0)
		cm_param_set("max_total_base_pages", self->total_base);
	if (self->file >= 0) {
		close(self->file);
		unlink(self->path);
	}
}

/*
 * Read twice sequentially, then at random, then write 1% of the pages,
 * checking the pins as it goes. Returns the seconds of each phase.
 */
TEST_F_TIMEOUT(big, larger_than_memory, 900)
{
	unsigned long pages = self->size / PG, nrand = pages / 16, written = 0;
	long oom0 = proc_field("/proc/vmstat", "oom_kill");
	double t[4], tb[4], t0;
	struct cowmap_status st;
	unsigned long peak = 0;
	volatile uint8_t *m;
	uint8_t *b;
	int fd;

	/* Skipped in the setup (this harness runs the body all the same). */
	if (self->file < 0)
		return;
	ASSERT_LE(0, oom0);
	fd = cm_session(self->file);
	ASSERT_LE(0, fd);
	m = cm_map(fd, self->size, 0);
	ASSERT_NE(MAP_FAILED, (void *)m);

	for (int pass = 0; pass < 2; pass++) {
		unsigned long sum = 0;

		t0 = now();
		/* In slices, to follow the pins as they go. */
		for (size_t off = 0; off < self->size; off += 64UL << 20) {
			size_t len = self->size - off < (64UL << 20) ?
				     self->size - off : 64UL << 20;

			sum += read_seq(m + off, len);
			ASSERT_EQ(0, cm_status(fd, &st));
			if (st.base_pages > peak)
				peak = st.base_pages;
		}
		t[pass] = now() - t0;
		ASSERT_EQ(0, sum);
	}
	t0 = now();
	ASSERT_EQ(0, read_random(m, self->size, nrand));
	t[2] = now() - t0;
	t0 = now();
	for (size_t off = 0; off < self->size; off += 100 * PG) {
		m[off + 7] = (uint8_t)(off >> 12) | 1;
		written++;
	}
	t[3] = now() - t0;
	ASSERT_EQ(0, cm_status(fd, &st));
	if (st.base_pages > peak)
		peak = st.base_pages;
	/* What was written reads back, from the session's own pages. */
	for (size_t off = 0; off < self->size; off += 100 * PG)
		ASSERT_EQ((uint8_t)(off >> 12) | 1, m[off + 7]);
	ASSERT_EQ(written, st.private_pages);
	ASSERT_EQ((int)written, cm_commit(fd, 0));
	ASSERT_EQ(0, cm_status(fd, &st));
	ASSERT_EQ(written, st.journal_records);

	TH_LOG("%lu pages (RAM %ld pages): peak %lu base pages pinned, %lu at the end, %llu reclaimed",
	       pages, self->ram_pages, peak, (unsigned long)st.base_pages,
	       (unsigned long long)st.base_reclaimed);
	/*
	 * Nobody was killed; the pins went back under pressure (all of them
	 * are still mapped, and no limit was in the way); they never took
	 * the whole RAM.
	 */
	EXPECT_EQ(oom0, proc_field("/proc/vmstat", "oom_kill"));
	EXPECT_LE(pages, st.base_reclaimed);
	EXPECT_LT(st.base_pages, (unsigned long)self->ram_pages / 2);
	EXPECT_LT(peak, (unsigned long)self->ram_pages);
	munmap((void *)m, self->size);
	cm_end(fd);
	TH_LOG("session (s): seq1 %.2f, seq2 %.2f, random %lu %.2f, write 1%% %.2f",
	       t[0], t[1], nrand, t[2], t[3]);
	if (!getenv("COWMAP_BASELINE"))
		return;

	/* The baseline: the same passes through the file's own mapping. */
	b = mmap(NULL, self->size, PROT_READ | PROT_WRITE, MAP_SHARED, self->file, 0);
	ASSERT_NE(MAP_FAILED, b);
	for (int pass = 0; pass < 2; pass++) {
		t0 = now();
		ASSERT_EQ(0, read_seq(b, self->size));
		tb[pass] = now() - t0;
	}
	t0 = now();
	ASSERT_EQ(0, read_random(b, self->size, nrand));
	tb[2] = now() - t0;
	t0 = now();
	for (size_t off = 0; off < self->size; off += 100 * PG)
		b[off + 7] = 1;
	tb[3] = now() - t0;
	munmap(b, self->size);
	EXPECT_EQ(oom0, proc_field("/proc/vmstat", "oom_kill"));
	TH_LOG("session vs MAP_SHARED (s): seq1 %.2f/%.2f (%.2fx), seq2 %.2f/%.2f (%.2fx), random %lu %.2f/%.2f (%.2fx), write 1%% %.2f/%.2f (%.2fx)",
	       t[0], tb[0], t[0] / tb[0], t[1], tb[1], t[1] / tb[1], nrand,
	       t[2], tb[2], t[2] / tb[2], t[3], tb[3], t[3] / tb[3]);
}

TEST_HARNESS_MAIN
