// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrency against a model: several processes, each with its own session
 * and several threads, write and read random pages while another process
 * truncates, extends and rewrites the backing file. Every byte a thread
 * reads is checked:
 *
 * - a page the session wrote holds exactly what it held after the copy plus
 *   the thread's own writes (it must never change under the session);
 * - a page it did not write holds zeros or file data of a generation no
 *   older than the last complete rewrite before the read began (a stale base
 *   page would show an older one);
 * - SIGBUS only while a truncation was in progress.
 *
 * Meanwhile (as root) another process makes the kernel run its shrinkers
 * (drop_caches 2), so the session's base pages are unpinned under the
 * faults, the truncations and the commits.
 *
 * At the end the file must hold exactly what the rewriter wrote: no session
 * byte ever reached it, and no page is still counted as held or pinned.
 * COWMAP_STRESS_SECONDS sets the duration (default 4).
 *
 * threads_first_write_same_pages: threads of one session race their first
 * writes to the same pages (copies made before the session's lock).
 * readers_against_discard: threads fault a session's pages in while it is
 * discarded again and again.
 */
#include <pthread.h>
#include <time.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"

#define NP		48
#define WRITERS		3
#define THREADS		3

struct shared {
	unsigned int stop;
	unsigned int gen;	/* newest generation written, or being written */
	unsigned int stable;	/* newest generation the whole file holds */
	unsigned int trunc_seq;	/* odd while a truncation is in progress */
	unsigned int failures;
	char msg[256];
};

static struct shared *sh;

static unsigned int ld(unsigned int *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void st(unsigned int *p, unsigned int v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static void fail(const char *fmt, unsigned long a, unsigned long b)
{
	if (__atomic_fetch_add(&sh->failures, 1, __ATOMIC_SEQ_CST) == 0)
		snprintf(sh->msg, sizeof(sh->msg), fmt, a, b);
}

static unsigned int seconds(void)
{
	const char *s = getenv("COWMAP_STRESS_SECONDS");

	return s ? (unsigned int)atoi(s) : 4;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The rewriter: the only writer of the file. Exit 0 if the file ends exact. */
static int rewriter(const char *path)
{
	static uint8_t model[NP * PG], buf[NP * PG];
	double end = now() + seconds();
	unsigned int seed = getpid();
	int fd = open(path, O_RDWR);

	if (fd < 0)
		return 10;
	cm_fill(model, 0, sizeof(model), 0);
	while (now() < end) {
		unsigned int g = ld(&sh->gen) + 1;

		if (rand_r(&seed) % 3 == 0) {
			/* Truncate, extend with zeros, rewrite all of it. */
			st(&sh->trunc_seq, ld(&sh->trunc_seq) + 1);
			if (ftruncate(fd, (rand_r(&seed) % NP) * PG))
				return 11;
			usleep(rand_r(&seed) % 2000);
			if (ftruncate(fd, NP * PG))
				return 12;
			st(&sh->gen, g);
			for (size_t p = 0; p < NP; p++) {
				cm_fill(model + p * PG, p * PG, PG, g);
				if (pwrite(fd, model + p * PG, PG, p * PG) != PG)
					return 13;
			}
			st(&sh->trunc_seq, ld(&sh->trunc_seq) + 1);
			st(&sh->stable, g);
		} else {
			/* Rewrite a few pages. */
			size_t p = rand_r(&seed) % NP, n = 1 + rand_r(&seed) % 4;

			if (p + n > NP)
				n = NP - p;
			st(&sh->gen, g);
			cm_fill(model + p * PG, p * PG, n * PG, g);
			if (pwrite(fd, model + p * PG, n * PG, p * PG) != (ssize_t)(n * PG))
				return 14;
		}
		usleep(rand_r(&seed) % 3000);
	}
	st(&sh->stop, 1);
	if (pread(fd, buf, sizeof(buf), 0) != sizeof(buf))
		return 15;
	close(fd);
	return memcmp(buf, model, sizeof(buf)) ? 16 : 0;
}

enum { UNWRITTEN, WRITTEN_UNSEEN, WRITTEN_KNOWN };

struct page_model {
	int state;
	uint8_t expect[PG];
	uint8_t known[PG];	/* for WRITTEN_UNSEEN: bytes this thread wrote */
};

struct writer {
	uint8_t *map;
	int tid;
	unsigned int seed;
	unsigned long cows;
	struct page_model pages[NP];
};

/* Could @buf be the file's page @p as of generations [@lo, @hi], or zeros? */
static int valid_base(const uint8_t *buf, size_t p, const uint8_t *known,
		      const uint8_t *expect, unsigned int lo, unsigned int hi)
{
	for (size_t i = 0; i < PG; i++) {
		unsigned int g;

		if (known && known[i]) {
			if (buf[i] != expect[i])
				return 0;
			continue;
		}
		if (!buf[i])
			continue;
		for (g = lo; g <= hi; g++)
			if (buf[i] == cm_pat(p * PG + i, g))
				break;
		if (g > hi)
			return 0;
	}
	return 1;
}

/* Did a truncation overlap the interval [@ts, @ts2] of trunc_seq values? */
static int truncating(unsigned int ts, unsigned int ts2)
{
	return (ts & 1) || ts != ts2;
}

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	static __thread uint8_t buf[PG];

	while (!ld(&sh->stop)) {
		size_t p = w->tid + THREADS * (rand_r(&w->seed) % (NP / THREADS));
		struct page_model *pm = &w->pages[p];
		unsigned int ts = ld(&sh->trunc_seq), ts2, lo, hi;
		int sig;

		/* Half of the pages are only ever read: they stay base pages. */
		if ((p / THREADS) % 2 == 0 && rand_r(&w->seed) % 3 == 0) {
			size_t off = (rand_r(&w->seed) % (PG / 8)) * 8;
			uint64_t val = ((uint64_t)rand_r(&w->seed) << 32) |
				       rand_r(&w->seed) | 1;

			sig = cm_try_copy(w->map + p * PG + off, &val, 8);
			ts2 = ld(&sh->trunc_seq);
			if (sig) {
				if (!truncating(ts, ts2))
					fail("write signal %lu on page %lu", sig, p);
				continue;
			}
			if (pm->state == UNWRITTEN) {
				pm->state = WRITTEN_UNSEEN;
				w->cows++;
			}
			memcpy(pm->expect + off, &val, 8);
			memset(pm->known + off, 1, 8);
			continue;
		}

		lo = ld(&sh->stable);
		sig = cm_try_copy(buf, w->map + p * PG, PG);
		hi = ld(&sh->gen);
		ts2 = ld(&sh->trunc_seq);
		if (sig) {
			if (!truncating(ts, ts2))
				fail("read signal %lu on page %lu", sig, p);
			continue;
		}
		switch (pm->state) {
		case UNWRITTEN:
			if (!valid_base(buf, p, NULL, NULL, lo, hi))
				fail("page %lu: not the file's data (stable gen %lu)",
				     p, lo);
			break;
		case WRITTEN_UNSEEN:
			/* Copied at some unknown generation. */
			if (!valid_base(buf, p, pm->known, pm->expect, 0, hi))
				fail("written page %lu: bad content, gen <= %lu", p, hi);
			memcpy(pm->expect, buf, PG);
			pm->state = WRITTEN_KNOWN;
			break;
		case WRITTEN_KNOWN:
			if (memcmp(buf, pm->expect, PG))
				fail("written page %lu changed under the session (%lu)",
				     p, 0);
			break;
		}
	}
	return NULL;
}

/* One process, one session, THREADS threads. */
static int writer_process(int file)
{
	static struct writer w[THREADS];
	struct cowmap_status cs;
	unsigned long cows = 0;
	pthread_t t[THREADS];
	uint8_t *map;
	int fd;

	fd = cm_session(file);
	if (fd < 0)
		return 20;
	map = cm_map(fd, NP * PG, 0);
	if (map == MAP_FAILED)
		return 21;
	for (int i = 0; i < THREADS; i++) {
		w[i].map = map;
		w[i].tid = i;
		w[i].seed = getpid() * 31 + i;
		if (pthread_create(&t[i], NULL, writer_thread, &w[i]))
			return 22;
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cows += w[i].cows;
	}
	if (cm_status(fd, &cs))
		return 23;
	/* Each first write made exactly one copy, each copy had a first write. */
	if (cs.cow_copies != cows || cs.private_pages != cows) {
		fail("session made %lu copies for %lu first writes",
		     cs.cow_copies, cows);
		return 24;
	}
	munmap(map, NP * PG);
	cm_end(fd);
	return 0;
}

/* Shrinkers, cowmap's among them, every 250 ms until the end. */
static int reclaimer(void)
{
	unsigned int n = 0;

	while (!ld(&sh->stop)) {
		int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "2\n", 2) != 2)
			return fd < 0 && errno == EACCES ? 0 : 1;
		close(fd);
		n++;
		usleep(250000);
	}
	return n ? 0 : 1;
}

TEST(writers_against_rewriter)
{
	long base = cm_param_get("pages_in_use");
	long pinned = cm_param_get("base_pages_in_use");
	pid_t pids[WRITERS + 2];
	char path[256];
	int file;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, sh);
	file = cm_mkfile(path, sizeof(path), "stress", NP * PG, O_RDONLY);
	ASSERT_LE(0, file);

	for (int i = 0; i <= WRITERS + 1; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0)
			_exit(i == WRITERS + 1 ? reclaimer() :
			      i == WRITERS ? rewriter(path) : writer_process(file));
	}
	for (int i = 0; i <= WRITERS + 1; i++) {
		EXPECT_EQ(0, cm_wait(pids[i])) TH_LOG("process %d", i);
	}
	EXPECT_EQ(0, sh->failures) TH_LOG("%u failures, first: %s",
					  sh->failures, sh->msg);
	TH_LOG("generations written: %u", sh->gen);
	EXPECT_LT(2, sh->gen);
	EXPECT_EQ(base, cm_param_get("pages_in_use"));
	EXPECT_EQ(pinned, cm_param_get("base_pages_in_use"));
	close(file);
	unlink(path);
}

/*
 * Threads of one session make the first write to the same pages at once:
 * each fault copies the page before it takes the session's lock, and all
 * but one copy of a page must go. Half of the pages are read first, so
 * their writes come through ->pfn_mkwrite. Every thread's bytes must be in
 * the page the session keeps, the rest of it must be the file's, and the
 * session must own exactly one copy and one twin per page.
 */
#define RACE_NP		64
#define RACE_THREADS	4
#define RACE_ROUNDS	16

struct racer {
	uint8_t *map;
	int tid;
	unsigned int *go;
};

static void *racer_thread(void *arg)
{
	struct racer *r = arg;

	__atomic_sub_fetch(r->go, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(r->go, __ATOMIC_SEQ_CST))
		;
	for (size_t i = 0; i < RACE_NP; i++) {
		/* Each thread starts elsewhere and goes the other way round. */
		size_t p = r->tid % 2 ? RACE_NP - 1 - i : i;
		uint64_t v = (uint64_t)(r->tid + 1) << 32 | (p + 1);

		memcpy(r->map + p * PG + 512 + r->tid * 8, &v, 8);
	}
	return NULL;
}

TEST(threads_first_write_same_pages)
{
	long base = cm_param_get("pages_in_use");
	struct racer r[RACE_THREADS];
	pthread_t t[RACE_THREADS];
	static uint8_t want[PG];
	struct cowmap_status cs;
	volatile uint8_t sink = 0;
	unsigned int go;
	char path[256];
	uint8_t *map;
	int file, fd;

	file = cm_mkfile(path, sizeof(path), "race", RACE_NP * PG, O_RDONLY);
	ASSERT_LE(0, file);
	for (int round = 0; round < RACE_ROUNDS; round++) {
		fd = cm_session(file);
		ASSERT_LE(0, fd);
		map = cm_map(fd, RACE_NP * PG, 0);
		ASSERT_NE(MAP_FAILED, map);
		for (size_t p = round % 2; p < RACE_NP; p += 2)
			sink += map[p * PG];
		go = RACE_THREADS;
		for (int i = 0; i < RACE_THREADS; i++) {
			r[i] = (struct racer){ .map = map, .tid = i, .go = &go };
			ASSERT_EQ(0, pthread_create(&t[i], NULL, racer_thread, &r[i]));
		}
		for (int i = 0; i < RACE_THREADS; i++)
			pthread_join(t[i], NULL);
		for (size_t p = 0; p < RACE_NP; p++) {
			cm_fill(want, p * PG, PG, 0);
			for (int i = 0; i < RACE_THREADS; i++) {
				uint64_t v = (uint64_t)(i + 1) << 32 | (p + 1);

				memcpy(want + 512 + i * 8, &v, 8);
			}
			ASSERT_EQ(0, memcmp(want, map + p * PG, PG))
				TH_LOG("round %d: page %zu lost a write", round, p);
		}
		ASSERT_EQ(0, cm_status(fd, &cs));
		EXPECT_EQ(RACE_NP, cs.cow_copies) TH_LOG("round %d", round);
		EXPECT_EQ(RACE_NP, cs.private_pages) TH_LOG("round %d", round);
		EXPECT_EQ(RACE_NP, cs.twin_pages) TH_LOG("round %d", round);
		munmap(map, RACE_NP * PG);
		cm_end(fd);
	}
	/* Sessions go when their last reference does: allow a moment. */
	for (int i = 0; i < 50 && cm_param_get("pages_in_use") != base; i++)
		usleep(100000);
	EXPECT_EQ(base, cm_param_get("pages_in_use"));
	close(file);
	unlink(path);
	(void)sink;
}

struct reader {
	const uint8_t *map;
	unsigned int *stop;
	unsigned long bad, reads;
};

/* Read the first byte of every page (never written) until told to stop. */
static void *reader_thread(void *arg)
{
	struct reader *r = arg;

	while (!__atomic_load_n(r->stop, __ATOMIC_SEQ_CST)) {
		for (size_t p = 0; p < RACE_NP; p++) {
			if (r->map[p * PG] != cm_pat(p * PG, 0))
				r->bad++;
			r->reads++;
		}
	}
	return NULL;
}

/*
 * A discard frees the session's pages and its pinned base pages while its
 * mappings live: threads keep faulting them back in meanwhile (their
 * lookups of the pins before the session's lock run during the discard).
 * Every read shows the file, and at the end nothing is held or pinned.
 */
TEST(readers_against_discard)
{
	long pages0 = cm_param_get("pages_in_use");
	long base0 = cm_param_get("base_pages_in_use");
	struct reader r[RACE_THREADS];
	pthread_t t[RACE_THREADS];
	unsigned int stop = 0, n = 0;
	char path[256];
	uint8_t *map;
	int file, fd;
	double end;

	file = cm_mkfile(path, sizeof(path), "discard", RACE_NP * PG, O_RDONLY);
	ASSERT_LE(0, file);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	map = cm_map(fd, RACE_NP * PG, 0);
	ASSERT_NE(MAP_FAILED, map);
	for (int i = 0; i < RACE_THREADS; i++) {
		r[i] = (struct reader){ .map = map, .stop = &stop };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, reader_thread, &r[i]));
	}
	end = now() + 2;
	while (now() < end) {
		/* Something to drop: a few written pages. */
		for (size_t p = n % 4; p < RACE_NP; p += 8)
			map[p * PG + 100] = (uint8_t)n;
		ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_DISCARD, 0));
		n++;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < RACE_THREADS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, r[i].bad) TH_LOG("thread %d: %lu of %lu reads not the file's",
					     i, r[i].bad, r[i].reads);
	}
	TH_LOG("%u discards, %lu reads by thread 0", n, r[0].reads);
	EXPECT_LT(0, n);
	/* After the last discard the written byte is the file's again. */
	EXPECT_EQ(cm_pat(100, 0), map[100]);
	munmap(map, RACE_NP * PG);
	cm_end(fd);
	for (int i = 0; i < 50 && (cm_param_get("pages_in_use") != pages0 ||
				   cm_param_get("base_pages_in_use") != base0); i++)
		usleep(100000);
	EXPECT_EQ(pages0, cm_param_get("pages_in_use"));
	EXPECT_EQ(base0, cm_param_get("base_pages_in_use"));
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
