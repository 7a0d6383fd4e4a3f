// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench: cowmap against the kernel's own mechanisms, side by side.
 *
 * Runs inside the test VM (make bench, bench/run.sh; docs/performance.md).
 * Under TCG only ratios measured in the same run mean anything, so every
 * row is a cost per unit (page, dirty page, record, 4 KiB of a stream) of
 * cowmap AND of a named baseline measured in the same rounds. Rows 1-3, 5
 * and 6 interleave their variants: all are set up, then each slice of the
 * pass is run by every variant in a fresh random order; rows 7-8 alternate
 * each merge with its pwrite baseline, in pairs. A row reports the median
 * of each side over the rounds and the median of the per-round ratios. The
 * benchmark never asserts a time.
 *
 * Adding a row: one variant function (meas_fn: SETUP/SLICE/DONE, or WHOLE;
 * return an errno for "n/a") and one entry in rows[]. Variants shared by
 * several rows run once per round.
 *
 * Output: one human table on stdout, then the same results as JSON between
 * the lines JSON_BEGIN and JSON_END (bench/run.sh extracts it).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cowmap.h>
#include <linux/userfaultfd.h>

#include <libcowmap.h>		/* the offline merge (row 8) */

#define PG		4096UL
#define MIB		(1024UL * 1024UL)
#define MAX_ROUNDS	64
#define MAX_PROCS	8
#define JSON_BEGIN	"==== cowbench json begin ===="
#define JSON_END	"==== cowbench json end ===="

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

/* ------------------------------------------------------------ context --- */

struct ctx {
	int quick;
	int rounds;		/* measured rounds per group */
	int warmup;		/* discarded rounds per group */
	int slices;		/* slices per pass in the sliced groups */
	uint64_t seed;		/* the generator's state */
	uint64_t seed0;		/* ... at the start, printed */
	const char *dir;	/* files of the write/scale/memory rows */
	const char *read_dir;	/* file of the read rows (may be tmpfs) */
	const char *host_info;	/* key=value lines from the host, or NULL */
	const char *groups;	/* comma-separated groups to run, NULL: all */
	size_t write_size;	/* row 1 and 4 */
	size_t read_size;	/* row 2 */
	size_t scale_size;	/* row 3, per process */
	char wpath[512], rpath[512];
	char wfs[64], rfs[64];	/* their filesystems */
	int wfd;		/* the write file, O_RDWR */
	int rfd;		/* the read file, O_RDWR */
	int uffd_file_errno;	/* uffd-wp registration of an ext4 file mapping */
	int wdirty;		/* a MAP_SHARED write changed the write file */
	size_t jrecords;	/* row 6: records in the dumped journal */
	size_t mrecords;	/* rows 7, 8: records merged */
	pid_t pid;		/* the main process (atexit) */
};

static struct ctx C;
static volatile uint64_t sink;

static void die(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fprintf(stderr, "cowbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(e));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

/* xorshift64*: the round order. */
static uint64_t rnd(void)
{
	C.seed ^= C.seed >> 12;
	C.seed ^= C.seed << 25;
	C.seed ^= C.seed >> 27;
	return C.seed * 2685821657736338717ULL;
}

/*
 * The content of every file cowbench makes: the 8-byte word at offset @off.
 * Rows 5-9 write its complement, which differs in every byte, with plain
 * stores: a first write that does not read the page first.
 */
static uint64_t file_word(size_t off)
{
	return off * 0x9E3779B97F4A7C15ULL | 1;
}

/* Write the pattern into [0, @size) of @fd and fsync; -1 on error. */
static int write_pattern(int fd, size_t size)
{
	uint64_t *buf = mmap(NULL, MIB, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret = 0;

	if (buf == MAP_FAILED)
		return -1;
	for (size_t off = 0; off < size && !ret; off += MIB) {
		size_t len = size - off < MIB ? size - off : MIB;

		for (size_t i = 0; i < len; i += 8)
			buf[i / 8] = file_word(off + i);
		if (pwrite(fd, buf, len, off) != (ssize_t)len)
			ret = -1;
	}
	if (!ret && fsync(fd))
		ret = -1;
	munmap(buf, MIB);
	return ret;
}

/* /proc/meminfo field in kB, or -1. */
static long meminfo(const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf[0] = 0;
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

/* ------------------------------------------------------------- cowmap --- */

/*
 * Sessions of the main process that are open, so that an exit through
 * die() discards them too: a session closed with records becomes an orphan,
 * and an orphan keeps the module from unloading at the end of the run.
 */
#define MAX_OPEN 64
static int open_sessions[MAX_OPEN];
static int n_open;

static void track(int fd, int add)
{
	if (getpid() != C.pid)
		return;
	for (int i = 0; i < n_open; i++) {
		if (open_sessions[i] == fd) {
			if (!add)
				open_sessions[i] = open_sessions[--n_open];
			return;
		}
	}
	if (add && n_open < MAX_OPEN)
		open_sessions[n_open++] = fd;
}

static void discard_all(void)
{
	if (getpid() != C.pid)
		return;
	while (n_open)
		ioctl(open_sessions[--n_open], COWMAP_IOC_DISCARD, 0);
}

/* A session on @file: open, handshake, attach; -1 with errno. */
static int cm_session(int file)
{
	struct cowmap_api api = { .api = COWMAP_API };
	struct cowmap_attach at = { .fd = file };
	int fd = open(COWMAP_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	int e;

	if (fd < 0)
		return -1;
	if (ioctl(fd, COWMAP_IOC_API, &api) || ioctl(fd, COWMAP_IOC_ATTACH, &at)) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	track(fd, 1);
	return fd;
}

static int cm_status(int fd, struct cowmap_status *st)
{
	memset(st, 0, sizeof(*st));
	return ioctl(fd, COWMAP_IOC_STATUS, st);
}

/*
 * Close a session for good. Modules with a journal keep a closed session
 * that has unmerged changes as an orphan (and cannot be unloaded then):
 * discard its changes first where the API has COWMAP_IOC_DISCARD. The
 * argument must be 0 (an ioctl without one refuses anything else).
 */
static void cm_close(int fd)
{
#ifdef COWMAP_IOC_DISCARD
	if (ioctl(fd, COWMAP_IOC_DISCARD, 0))
		fprintf(stderr, "cowbench: COWMAP_IOC_DISCARD: %s (the session may be kept as an orphan)\n",
			strerror(errno));
#endif
	track(fd, 0);
	close(fd);
}

/* ------------------------------------------------------- measurements --- */

/*
 * Extra per-variant figures, reported in the JSON (and some in the notes
 * under the table). NAN when a variant does not have it.
 */
enum {
	X_FLT,		/* minor+major faults per page (getrusage) */
	X_CM_FAULTS,	/* cowmap status: faults per page */
	X_CM_COPIES,	/* cowmap status: cow_copies per page */
	X_CM_OWNED,	/* cowmap status: (private+twin) pages per page */
	X_SETUP,	/* ns per page spent before the timed part */
	X_SLAB,		/* memcg slab delta, bytes per page */
	X_PTABLES,	/* memcg pagetables delta, bytes per page */
	X_STATUS_B,	/* cowmap status (private+twin)*4096 per page */
	X_MEMFREE,	/* /proc/meminfo MemFree decrease, bytes per page */
	X_KERNEL,	/* memcg "kernel" delta, bytes per page */
	X_BEFORE,	/* row 9: memory.current per dirty page before the commit */
	X_KERNEL_BEFORE,	/* ... memcg "kernel" */
	X_SLAB_BEFORE,	/* ... memcg "slab" */
	X_STATUS_BEFORE,	/* ... cowmap status (private+twin)*4096 */
	X_JOURNAL_B,	/* journal bytes per dirty page */
	X_RECORDS,	/* journal records per dirty page */
	X_COMMIT_NS,	/* row 9: commit time per dirty page */
	NX
};

static const char *const xname[NX] = {
	[X_FLT] = "faults_per_page",
	[X_CM_FAULTS] = "cowmap_faults_per_page",
	[X_CM_COPIES] = "cowmap_cow_copies_per_page",
	[X_CM_OWNED] = "cowmap_owned_pages_per_page",
	[X_SETUP] = "setup_ns_per_page",
	[X_SLAB] = "slab_bytes_per_page",
	[X_PTABLES] = "pagetable_bytes_per_page",
	[X_STATUS_B] = "status_bytes_per_page",
	[X_MEMFREE] = "memfree_bytes_per_page",
	[X_KERNEL] = "memcg_kernel_bytes_per_page",
	[X_BEFORE] = "before_commit_bytes_per_page",
	[X_KERNEL_BEFORE] = "before_commit_memcg_kernel_bytes_per_page",
	[X_SLAB_BEFORE] = "before_commit_slab_bytes_per_page",
	[X_STATUS_BEFORE] = "before_commit_status_bytes_per_page",
	[X_JOURNAL_B] = "journal_bytes_per_page",
	[X_RECORDS] = "records_per_page",
	[X_COMMIT_NS] = "commit_ns_per_page",
};

/* Figures of a run that belong to no variant (JSON "facts", notes). */
static struct fact {
	const char *key;
	double v;
} facts[32];
static int nfacts;

static void fact(const char *key, double v)
{
	for (int i = 0; i < nfacts; i++) {
		if (!strcmp(facts[i].key, key)) {
			facts[i].v = v;
			return;
		}
	}
	if (nfacts < (int)(sizeof(facts) / sizeof(facts[0])))
		facts[nfacts++] = (struct fact){ key, v };
}

static double fact_of(const char *key)
{
	for (int i = 0; i < nfacts; i++)
		if (!strcmp(facts[i].key, key))
			return facts[i].v;
	return NAN;
}

struct meas {
	double value;	/* ns per page, bytes per page, ... */
	double x[NX];
};

/*
 * A variant is one function called in phases:
 *
 * - sliced groups (write, read): SETUP (untimed: map, attach, protect),
 *   then SLICE once per slice of the pass, pages [first, first + n), timed
 *   by the caller, interleaved with the slices of every other variant of
 *   the group; then DONE (untimed: counters into r->m.x, unmap).
 * - whole groups (scale, memory): WHOLE does everything and sets
 *   r->m.value itself.
 *
 * Return 0, or an errno that makes the variant "n/a" for the whole run.
 */
enum phase { SETUP, SLICE, DONE, WHOLE };

struct run {
	size_t pages;		/* pages of the whole pass */
	size_t first, n;	/* SLICE: this slice */
	struct meas m;
	uint8_t *p;		/* the mapping */
	int fd;			/* session fd, or -1 */
	void *priv;		/* the variant's own state */
	/*
	 * SLICE may time itself (e.g. excluding wake-ups): set slice_ns, and
	 * slice_flt for faults of other processes; else the caller times it.
	 */
	uint64_t slice_ns;
	long slice_flt;
	int procs;		/* processes doing the pass (faults per page of one) */
	uint64_t pos, cursor;	/* row 6: stream position, dump cursor */
	double acc[4];		/* the variant's own sums over the slices */
};

typedef int meas_fn(struct run *r, enum phase ph);

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* 4 KiB pages for every variant: per-page tracking splits THPs. */
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* Touch one byte in each of @pages pages. */
static void write_pages(volatile uint8_t *p, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		p[i * PG] = (uint8_t)(i | 1);
}

static void cm_counters(int sfd, struct meas *m, size_t pages)
{
	struct cowmap_status st;

	if (cm_status(sfd, &st))
		return;
	m->x[X_CM_FAULTS] = (double)st.faults / pages;
	m->x[X_CM_COPIES] = (double)st.cow_copies / pages;
	m->x[X_CM_OWNED] = (double)(st.private_pages + st.twin_pages) / pages;
}

/*
 * SETUP of a mapping of @len bytes: of a new session on @file if @session,
 * else of @file itself with @flags.
 */
static int map_setup(struct run *r, int file, int session, int flags, size_t len)
{
	int e;

	r->fd = -1;
	if (session) {
		r->fd = cm_session(file);
		if (r->fd < 0)
			return errno;
	}
	r->p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags,
		    session ? r->fd : file, 0);
	if (r->p == MAP_FAILED) {
		e = errno;
		if (r->fd >= 0)
			cm_close(r->fd);
		return e;
	}
	return 0;
}

/* DONE of map_setup(): session counters, unmap, close. */
static void map_done(struct run *r, size_t len)
{
	if (r->fd >= 0)
		cm_counters(r->fd, &r->m, r->pages);
	munmap(r->p, len);
	if (r->fd >= 0)
		cm_close(r->fd);
}

/* ---- row 1: first write to a clean page ---- */

static int w_map(struct run *r, enum phase ph, int session, int flags)
{
	switch (ph) {
	case SETUP:
		return map_setup(r, C.wfd, session, flags, C.write_size);
	case SLICE:
		write_pages(r->p + r->first * PG, r->n);
		return 0;
	case DONE:
		map_done(r, C.write_size);
		/* MAP_SHARED dirtied the cache: clean it, for the next round. */
		if (flags == MAP_SHARED && !session) {
			fsync(C.wfd);
			C.wdirty = 1;
		}
		return 0;
	default:
		return EINVAL;
	}
}

static int w_cowmap(struct run *r, enum phase ph)
{
	return w_map(r, ph, 1, MAP_SHARED);
}

static int w_private(struct run *r, enum phase ph)
{
	return w_map(r, ph, 0, MAP_PRIVATE);
}

static int w_shared(struct run *r, enum phase ph)
{
	return w_map(r, ph, 0, MAP_SHARED);
}

/* An anonymous copy of the write file: the setup of rows 1c and 1d. */
static uint8_t *anon_copy(void)
{
	uint8_t *p = map_anon(C.write_size);

	if (!p)
		return NULL;
	for (size_t off = 0; off < C.write_size; ) {
		ssize_t n = pread(C.wfd, p + off, C.write_size - off, off);

		if (n <= 0) {
			munmap(p, C.write_size);
			errno = n < 0 ? errno : EIO;
			return NULL;
		}
		off += n;
	}
	return p;
}

/*
 * The seed project's tracking without a page-table editor: a private
 * anonymous copy of the file, PROT_READ; the SIGSEGV handler saves the page
 * (the twin) to a save area and makes it writable.
 */
static struct {
	uint8_t *base, *save;
	struct sigaction old;
} segv;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
	uint8_t *a = (uint8_t *)((uintptr_t)si->si_addr & ~(PG - 1));

	if (a < segv.base || a >= segv.base + C.write_size) {
		signal(sig, SIG_DFL);
		return;		/* refaults with the default action */
	}
	memcpy(segv.save + (a - segv.base), a, PG);
	mprotect(a, PG, PROT_READ | PROT_WRITE);
}

static int w_sigsegv(struct run *r, enum phase ph)
{
	struct sigaction sa = { .sa_sigaction = segv_handler,
				.sa_flags = SA_SIGINFO };
	uint64_t t0;

	switch (ph) {
	case SETUP:
		t0 = now_ns();
		segv.base = anon_copy();
		if (!segv.base)
			return errno;
		segv.save = map_anon(C.write_size);
		if (!segv.save || mprotect(segv.base, C.write_size, PROT_READ)) {
			munmap(segv.base, C.write_size);
			return errno;
		}
		r->m.x[X_SETUP] = (double)(now_ns() - t0) / r->pages;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGSEGV, &sa, &segv.old);
		return 0;
	case SLICE:
		write_pages(segv.base + r->first * PG, r->n);
		return 0;
	case DONE:
		sigaction(SIGSEGV, &segv.old, NULL);
		munmap(segv.base, C.write_size);
		munmap(segv.save, C.write_size);
		return 0;
	default:
		return EINVAL;
	}
}

/*
 * userfaultfd write-protect on an anonymous copy: a handler thread saves
 * the page (the twin) and removes the protection, which wakes the writer.
 * The sliced groups run on one CPU, so writer and handler share it: under
 * TCG a wake-up across vCPUs costs milliseconds (about 4.6 ms per page
 * against 0.16 ms on one vCPU, measured once), which says nothing about uffd.
 */
static struct {
	int uffd, stop[2];
	uint8_t *base, *save;
	pthread_t th;
} uf = { .uffd = -1, .stop = { -1, -1 } };

static void *uffd_thread(void *arg)
{
	struct uffd_msg msg[16];

	for (;;) {
		struct pollfd pf[2] = { { uf.uffd, POLLIN, 0 },
					{ uf.stop[0], POLLIN, 0 } };
		ssize_t n;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		n = read(uf.uffd, msg, sizeof(msg));
		if (n < 0)
			continue;	/* EAGAIN */
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			uint64_t a = msg[i].arg.pagefault.address & ~(PG - 1);
			struct uffdio_writeprotect wp = {
				.range = { a, PG }, .mode = 0 };

			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			memcpy(uf.save + (a - (uintptr_t)uf.base),
			       (void *)(uintptr_t)a, PG);
			if (ioctl(uf.uffd, UFFDIO_WRITEPROTECT, &wp))
				perror("cowbench: UFFDIO_WRITEPROTECT");
		}
	}
	return NULL;
}

static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		close(fd);
		errno = EOPNOTSUPP;
		return -1;
	}
	return fd;
}

static int uffd_register_wp(int uffd, void *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { (uintptr_t)p, len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -1;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return 0;
}

static void uffd_teardown(void)
{
	if (uf.stop[0] >= 0) {
		close(uf.stop[0]);
		close(uf.stop[1]);
	}
	if (uf.uffd >= 0)
		close(uf.uffd);
	if (uf.save)
		munmap(uf.save, C.write_size);
	if (uf.base)
		munmap(uf.base, C.write_size);
	uf.uffd = uf.stop[0] = uf.stop[1] = -1;
	uf.base = uf.save = NULL;
}

static int w_uffd(struct run *r, enum phase ph)
{
	struct uffdio_writeprotect wp;
	uint64_t t0;
	int err;

	switch (ph) {
	case SETUP:
		t0 = now_ns();
		uf.base = anon_copy();
		if (!uf.base)
			return errno;
		uf.save = map_anon(C.write_size);
		uf.uffd = uffd_open();
		wp = (struct uffdio_writeprotect){
			.range = { (uintptr_t)uf.base, C.write_size },
			.mode = UFFDIO_WRITEPROTECT_MODE_WP };
		if (!uf.save || uf.uffd < 0 || pipe2(uf.stop, O_CLOEXEC) ||
		    uffd_register_wp(uf.uffd, uf.base, C.write_size) ||
		    ioctl(uf.uffd, UFFDIO_WRITEPROTECT, &wp)) {
			err = errno;
			uffd_teardown();
			return err;
		}
		err = pthread_create(&uf.th, NULL, uffd_thread, NULL);
		if (err) {
			uffd_teardown();
			return err;
		}
		r->m.x[X_SETUP] = (double)(now_ns() - t0) / r->pages;
		return 0;
	case SLICE:
		write_pages(uf.base + r->first * PG, r->n);
		return 0;
	case DONE:
		if (write(uf.stop[1], "x", 1) != 1)
			die("pipe");
		pthread_join(uf.th, NULL);
		uffd_teardown();
		return 0;
	default:
		return EINVAL;
	}
}

/* Can an ext4 file mapping be registered for uffd-wp at all? (errno or 0) */
static int uffd_probe_file(void)
{
	void *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, C.wfd, 0);
	int fd, err = 0;

	if (p == MAP_FAILED)
		return errno;
	fd = uffd_open();
	if (fd < 0 || uffd_register_wp(fd, p, PG))
		err = errno;
	if (fd >= 0)
		close(fd);
	munmap(p, PG);
	return err;
}

/* ---- row 2: sequential read of an untouched file ---- */

static uint64_t sum_word_per_page(const uint8_t *p, size_t pages)
{
	uint64_t s = 0;

	for (size_t i = 0; i < pages; i++)
		s += *(const volatile uint64_t *)(p + i * PG);
	return s;
}

static uint64_t sum_all(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t s = 0;

	for (size_t i = 0; i < len / 8; i++)
		s += w[i];
	return s;
}

static int r_map(struct run *r, enum phase ph, int session, int full)
{
	const uint8_t *p;

	switch (ph) {
	case SETUP:
		return map_setup(r, C.rfd, session, MAP_SHARED, C.read_size);
	case SLICE:
		p = r->p + r->first * PG;
		sink += full ? sum_all(p, r->n * PG) : sum_word_per_page(p, r->n);
		return 0;
	case DONE:
		map_done(r, C.read_size);
		return 0;
	default:
		return EINVAL;
	}
}

#define PREAD_CHUNK	MIB
static uint8_t *pread_buf;

static int r_pread(struct run *r, enum phase ph, int full)
{
	size_t end = (r->first + r->n) * PG, len;
	uint64_t s = 0;

	switch (ph) {
	case SETUP:
		if (!pread_buf) {
			pread_buf = map_anon(PREAD_CHUNK);
			if (!pread_buf)
				return errno;
			memset(pread_buf, 0, PREAD_CHUNK);
		}
		return 0;
	case SLICE:
		for (size_t off = r->first * PG; off < end; off += len) {
			len = end - off < PREAD_CHUNK ? end - off : PREAD_CHUNK;
			if (pread(C.rfd, pread_buf, len, off) != (ssize_t)len)
				return errno ? errno : EIO;
			s += full ? sum_all(pread_buf, len) :
				    sum_word_per_page(pread_buf, len / PG);
		}
		sink += s;
		return 0;
	case DONE:
		return 0;
	default:
		return EINVAL;
	}
}

static int r1_cowmap(struct run *r, enum phase ph) { return r_map(r, ph, 1, 0); }
static int r1_shared(struct run *r, enum phase ph) { return r_map(r, ph, 0, 0); }
static int r1_pread(struct run *r, enum phase ph) { return r_pread(r, ph, 0); }
static int rf_cowmap(struct run *r, enum phase ph) { return r_map(r, ph, 1, 1); }
static int rf_shared(struct run *r, enum phase ph) { return r_map(r, ph, 0, 1); }
static int rf_pread(struct run *r, enum phase ph) { return r_pread(r, ph, 1); }

/* ---- row 3: N processes, each its own session (or private mapping) ---- */

/*
 * SETUP forks the processes; each maps the first C.scale_size bytes of the
 * write file (its own session, or MAP_PRIVATE) and waits for commands. A
 * SLICE sends each its slice; they meet at a spinning barrier, so they
 * start together however late a wake-up comes, and report when they
 * started and ended. The slice's time is from the first start to the last
 * end: wake-ups are not counted.
 */
struct procset {
	int n;
	pid_t pid[MAX_PROCS];
	int cmd[MAX_PROCS];	/* write ends, one per process */
	int reply;		/* read end, shared */
	struct procshm {
		int arrived;
		int err[MAX_PROCS];
		uint64_t t0[MAX_PROCS], t1[MAX_PROCS];
		long flt[MAX_PROCS];
	} *sh;
};

struct proc_cmd {
	size_t first, n;	/* n == 0: exit */
};

static void proc_child(struct procset *ps, int k, int session, int cmd, int reply)
{
	struct run r = { .pages = C.scale_size / PG };
	struct proc_cmd c;
	long f0;

	ps->sh->err[k] = map_setup(&r, C.wfd, session,
				   session ? MAP_SHARED : MAP_PRIVATE, C.scale_size);
	if (write(reply, "r", 1) != 1)
		_exit(1);
	while (read(cmd, &c, sizeof(c)) == sizeof(c) && c.n) {
		__atomic_add_fetch(&ps->sh->arrived, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&ps->sh->arrived, __ATOMIC_SEQ_CST) < ps->n)
			;
		f0 = minflt();
		ps->sh->t0[k] = now_ns();
		if (!ps->sh->err[k])
			write_pages(r.p + c.first * PG, c.n);
		ps->sh->t1[k] = now_ns();
		ps->sh->flt[k] = minflt() - f0;
		if (write(reply, "d", 1) != 1)
			_exit(1);
	}
	if (!ps->sh->err[k])
		map_done(&r, C.scale_size);
	_exit(0);
}

static void procs_stop(struct procset *ps)
{
	struct proc_cmd quit = { 0, 0 };

	for (int i = 0; i < ps->n; i++) {
		if (write(ps->cmd[i], &quit, sizeof(quit)) != sizeof(quit))
			kill(ps->pid[i], SIGKILL);
		close(ps->cmd[i]);
	}
	for (int i = 0; i < ps->n; i++)
		waitpid(ps->pid[i], NULL, 0);
	close(ps->reply);
	munmap(ps->sh, sizeof(*ps->sh));
	free(ps);
}

static int procs(struct run *r, enum phase ph, int n, int session)
{
	struct procset *ps = r->priv;
	struct proc_cmd c = { r->first, r->n };
	uint64_t t0 = UINT64_MAX, t1 = 0;
	int reply[2], err = 0;
	char ch;

	switch (ph) {
	case SETUP:
		ps = calloc(1, sizeof(*ps));
		ps->sh = mmap(NULL, sizeof(*ps->sh), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (ps->sh == MAP_FAILED || pipe2(reply, O_CLOEXEC))
			die("scale setup");
		ps->reply = reply[0];
		for (int i = 0; i < n; i++) {
			int cmd[2];

			if (pipe2(cmd, O_CLOEXEC))
				die("pipe");
			ps->pid[i] = fork();
			if (ps->pid[i] < 0)
				die("fork");
			if (ps->pid[i] == 0) {
				close(reply[0]);
				close(cmd[1]);
				proc_child(ps, i, session, cmd[0], reply[1]);
			}
			close(cmd[0]);
			ps->cmd[i] = cmd[1];
			ps->n = i + 1;
		}
		close(reply[1]);
		r->priv = ps;
		r->procs = n;
		for (int i = 0; i < n; i++)
			if (read(ps->reply, &ch, 1) != 1)
				die("scale: a process died");
		for (int i = 0; i < n; i++)
			if (ps->sh->err[i])
				err = ps->sh->err[i];
		if (err) {
			procs_stop(ps);
			r->priv = NULL;
		}
		return err;
	case SLICE:
		ps->sh->arrived = 0;
		for (int i = 0; i < n; i++)
			if (write(ps->cmd[i], &c, sizeof(c)) != sizeof(c))
				die("scale: command");
		for (int i = 0; i < n; i++)
			if (read(ps->reply, &ch, 1) != 1)
				die("scale: a process died");
		for (int i = 0; i < n; i++) {
			t0 = ps->sh->t0[i] < t0 ? ps->sh->t0[i] : t0;
			t1 = ps->sh->t1[i] > t1 ? ps->sh->t1[i] : t1;
			r->slice_flt += ps->sh->flt[i];
		}
		r->slice_ns = t1 - t0;
		return 0;
	case DONE:
		if (ps)
			procs_stop(ps);
		r->priv = NULL;
		return 0;
	default:
		return EINVAL;
	}
}

static int s1_cowmap(struct run *r, enum phase ph) { return procs(r, ph, 1, 1); }
static int s2_cowmap(struct run *r, enum phase ph) { return procs(r, ph, 2, 1); }
static int s1_private(struct run *r, enum phase ph) { return procs(r, ph, 1, 0); }
static int s2_private(struct run *r, enum phase ph) { return procs(r, ph, 2, 0); }

/* ---- row 4: memory per dirty page ---- */

/*
 * Memory is measured in a child process inside a memory cgroup of its own:
 * memory.current counts exactly what the writes charged (cowmap charges its
 * pages, twins and slab to the opener's cgroup, like anonymous pages and
 * page tables), with a precision of the per-CPU charge batch (64 pages).
 * /proc/meminfo MemFree is reported too, but pages moving through the
 * per-CPU free lists make it noisy.
 */
#define CG_ROOT	"/sys/fs/cgroup"
#define CG_MEM	CG_ROOT "/cowbench-mem"

static int cg_ok;	/* 1: the cgroup is set up; -errno: not available */

static int write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	close(fd);
	return ok ? 0 : -1;
}

static int cg_setup(void)
{
	struct stat st;

	if (cg_ok)
		return cg_ok;
	if (stat(CG_ROOT "/cgroup.controllers", &st)) {
		mkdir(CG_ROOT, 0755);
		mount("none", CG_ROOT, "cgroup2", 0, NULL);
	}
	if (write_str(CG_ROOT "/cgroup.subtree_control", "+memory") ||
	    (mkdir(CG_MEM, 0755) && errno != EEXIST) ||
	    stat(CG_MEM "/memory.current", &st))
		return cg_ok = -(errno ? errno : ENOENT);
	return cg_ok = 1;
}

/* memory.current, or a memory.stat field, in bytes; -1 if unknown. */
static long long cg_read(const char *key)
{
	char line[256];
	long long v = -1;
	size_t kl = key ? strlen(key) : 0;
	FILE *f = fopen(key ? CG_MEM "/memory.stat" : CG_MEM "/memory.current", "re");

	while (f && fgets(line, sizeof(line), f)) {
		if (!key) {
			v = strtoll(line, NULL, 10);
			break;
		}
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			v = strtoll(line + kl + 1, NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return v;
}

struct mem_res {
	int err;
	struct meas m;
};

/* What a memory child writes through its mapping. */
enum mem_kind {
	MK_BYTE,	/* row 4 baseline: one byte in every page */
	MK_COMMIT8,	/* rows 4a, 9a: 8 bytes in every page, then commit */
	MK_COMMITF,	/* row 9b: every byte of every 16th page, then commit */
};

#define FULL_STRIDE 16	/* row 9b: pages apart (records of one page each) */

struct cg_snap {
	long long cur, slab, pt, kernel;
	long free;
};

static void cg_snap(struct cg_snap *c)
{
	c->cur = c->slab = c->pt = c->kernel = 0;
	if (cg_ok > 0) {
		c->cur = cg_read(NULL);
		c->slab = cg_read("slab");
		c->pt = cg_read("pagetables");
		c->kernel = cg_read("kernel");
	}
	c->free = meminfo("MemFree");
}

/*
 * Rows 4a, 9a/9b: 8 bytes at an offset inside every page (one record per
 * page), or every 8-byte word of every 16th page (one record of a whole
 * page each), all with the complement of the file's pattern; returns the
 * pages written.
 */
static size_t write_for_commit(uint8_t *p, size_t pages, int full)
{
	size_t n = 0;

	for (size_t pg = 0; pg < pages; pg += full ? FULL_STRIDE : 1, n++) {
		size_t base = pg * PG;

		if (full) {
			for (size_t o = 0; o < PG; o += 8)
				*(volatile uint64_t *)(p + base + o) = ~file_word(base + o);
		} else {
			size_t o = 8 + (pg * 8) % (PG - 24);

			*(volatile uint64_t *)(p + base + o) = ~file_word(base + o);
		}
	}
	return n;
}

static void mem_child(int session, int res, enum mem_kind kind)
{
	struct run r = { .pages = C.write_size / PG };
	struct mem_res mr = { 0 };
	struct cowmap_commit cc = { 0 };
	struct cowmap_status st, st0;
	struct cg_snap c0, c1, c2;
	size_t dirty = r.pages;
	uint64_t t0;

	mr.m = (struct meas){ .value = NAN };
	for (int i = 0; i < NX; i++)
		mr.m.x[i] = NAN;
	/* Joined first: a session charges its pages to its opener's cgroup. */
	if (cg_ok > 0 && write_str(CG_MEM "/cgroup.procs", "0"))
		mr.err = errno;
	if (!mr.err)
		mr.err = map_setup(&r, C.wfd, session,
				   session ? MAP_SHARED : MAP_PRIVATE, C.write_size);
	if (!mr.err) {
		cg_snap(&c0);
		if (kind == MK_BYTE)
			write_pages(r.p, r.pages);
		else
			dirty = write_for_commit(r.p, r.pages, kind == MK_COMMITF);
		cg_snap(&c1);
		if (kind != MK_BYTE && r.fd >= 0) {
			cm_status(r.fd, &st0);
			t0 = now_ns();
			if (ioctl(r.fd, COWMAP_IOC_COMMIT, &cc))
				mr.err = errno;
			mr.m.x[X_COMMIT_NS] = (double)(now_ns() - t0) / dirty;
			cg_snap(&c2);
			mr.m.x[X_BEFORE] = (double)(c1.cur - c0.cur) / dirty;
			mr.m.x[X_KERNEL_BEFORE] = (double)(c1.kernel - c0.kernel) / dirty;
			mr.m.x[X_SLAB_BEFORE] = (double)(c1.slab - c0.slab) / dirty;
			mr.m.x[X_STATUS_BEFORE] = (double)(st0.private_pages +
							   st0.twin_pages) * PG / dirty;
		} else {
			c2 = c1;
		}
		mr.m.x[X_MEMFREE] = (double)(c0.free - c2.free) * 1024 / dirty;
		if (cg_ok > 0) {
			mr.m.value = (double)(c2.cur - c0.cur) / dirty;
			mr.m.x[X_SLAB] = (double)(c2.slab - c0.slab) / dirty;
			mr.m.x[X_PTABLES] = (double)(c2.pt - c0.pt) / dirty;
			if (c0.kernel >= 0)
				mr.m.x[X_KERNEL] = (double)(c2.kernel - c0.kernel) / dirty;
		} else {
			mr.m.value = mr.m.x[X_MEMFREE];
		}
		if (r.fd >= 0 && !cm_status(r.fd, &st)) {
			mr.m.x[X_STATUS_B] = (double)(st.private_pages +
						      st.twin_pages) * PG / dirty;
			if (kind != MK_BYTE) {
				mr.m.x[X_JOURNAL_B] = (double)st.journal_bytes / dirty;
				mr.m.x[X_RECORDS] = (double)st.journal_records / dirty;
			}
		}
		map_done(&r, C.write_size);
	}
	if (write(res, &mr, sizeof(mr)) != sizeof(mr))
		_exit(1);
	_exit(0);
}

static int mem(struct run *r, int session, enum mem_kind kind)
{
	struct mem_res mr;
	int res[2];
	pid_t pid;

	cg_setup();
	if (pipe2(res, O_CLOEXEC))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		mem_child(session, res[1], kind);
	close(res[1]);
	if (read(res[0], &mr, sizeof(mr)) != sizeof(mr))
		mr.err = EPIPE;
	close(res[0]);
	waitpid(pid, NULL, 0);
	if (!mr.err)
		r->m = mr.m;
	return mr.err;
}

static int m_private(struct run *r, enum phase ph) { return mem(r, 0, MK_BYTE); }
static int m_commit8(struct run *r, enum phase ph) { return mem(r, 1, MK_COMMIT8); }
static int m_commitf(struct run *r, enum phase ph) { return mem(r, 1, MK_COMMITF); }

/* ---- row 5: commit ---- */

/*
 * Each slice: a fresh session on the write file, 1% of its pages chosen at
 * random (a different set every slice), written with plain stores (8 bytes
 * at an offset inside the page, or every byte of the page), then one
 * COWMAP_IOC_COMMIT. A variant times either the writes (each a first-write
 * fault) or the commit; session setup and discard are not timed. Values
 * are per dirty page.
 */
static uint32_t *pick;		/* page numbers, partly shuffled */
static uint32_t *pick_off;	/* an offset inside each picked page */

static size_t commit_pages(void)
{
	size_t n = C.write_size / PG / 100;

	return n ? n : 1;
}

static size_t commit_units(void)
{
	return commit_pages() * C.slices;
}

/* @k distinct random pages of the write file at pick[0 .. k). */
static int pick_pages(size_t k)
{
	size_t n = C.write_size / PG;

	if (!pick) {
		pick = malloc(n * sizeof(*pick));
		pick_off = malloc(n * sizeof(*pick_off));
		if (!pick || !pick_off)
			return ENOMEM;
		for (size_t i = 0; i < n; i++)
			pick[i] = i;
	}
	for (size_t i = 0; i < k; i++) {
		size_t j = i + rnd() % (n - i);
		uint32_t t = pick[i];

		pick[i] = pick[j];
		pick[j] = t;
		/* 8-byte aligned, away from the page's ends: one record each. */
		pick_off[i] = 8 + (rnd() % ((PG - 24) / 8)) * 8;
	}
	return 0;
}

enum { CT_FAULT, CT_COMMIT };

static int c_slice(struct run *r, int full, int what)
{
	size_t k = commit_pages();
	struct cowmap_commit cc = { 0 };
	uint64_t t0, t1, t2;
	int err;

	err = pick_pages(k);
	if (!err)
		err = map_setup(r, C.wfd, 1, MAP_SHARED, C.write_size);
	if (err)
		return err;
	t0 = now_ns();
	for (size_t i = 0; i < k; i++) {
		size_t base = (size_t)pick[i] * PG;

		if (full) {
			for (size_t o = 0; o < PG; o += 8)
				*(volatile uint64_t *)(r->p + base + o) = ~file_word(base + o);
		} else {
			size_t o = base + pick_off[i];

			*(volatile uint64_t *)(r->p + o) = ~file_word(o);
		}
	}
	t1 = now_ns();
	if (ioctl(r->fd, COWMAP_IOC_COMMIT, &cc))
		err = errno;
	t2 = now_ns();
	/* Every page seen; 8-byte writes are one record each. */
	if (!err && (cc.pages != k || (!full && cc.records != k)))
		err = EPROTO;
	r->slice_ns = what == CT_COMMIT ? t2 - t1 : t1 - t0;
	r->acc[0] += cc.records;
	r->acc[1] += cc.bytes;
	r->acc[2] += k;
	munmap(r->p, C.write_size);
	cm_close(r->fd);
	r->fd = -1;
	return err;
}

static int c_variant(struct run *r, enum phase ph, int full, int what)
{
	switch (ph) {
	case SETUP:
		return 0;
	case SLICE:
		return c_slice(r, full, what);
	case DONE:
		if (r->acc[2]) {
			r->m.x[X_RECORDS] = r->acc[0] / r->acc[2];
			r->m.x[X_JOURNAL_B] = r->acc[1] / r->acc[2];
		}
		return 0;
	default:
		return EINVAL;
	}
}

static int c8_fault(struct run *r, enum phase ph) { return c_variant(r, ph, 0, CT_FAULT); }
static int c8_commit(struct run *r, enum phase ph) { return c_variant(r, ph, 0, CT_COMMIT); }
static int cf_commit(struct run *r, enum phase ph) { return c_variant(r, ph, 1, CT_COMMIT); }

/* ---- row 6: dump-log throughput ---- */

/*
 * One session whose journal holds C.jrecords records (8 of every 16 bytes
 * of the first pages of the write file changed: 256 records of 8 bytes per
 * page), made once for the group; the same bytes in a regular file on the
 * same filesystem, in the page cache. Every round each variant reads the
 * whole stream (header and records) with a 1 MiB buffer, interleaved in
 * slices of the stream. Values are ns per 4 KiB of stream. No warm-up
 * round: a million records amortise the translation of the code by TCG.
 */
#define JPARAM "/sys/module/cowmap/parameters/max_journal_bytes"
#define DUMP_BUF MIB

static struct {
	int sfd, ffd;
	size_t stream;		/* bytes: header + records */
	char path[512];
	char oldmax[64];	/* max_journal_bytes before the group, or "" */
} J = { .sfd = -1, .ffd = -1 };

static void journal_restore_param(void)
{
	if (J.oldmax[0] && getpid() == C.pid) {
		write_str(JPARAM, J.oldmax);
		J.oldmax[0] = 0;
	}
}

/* The whole journal of @sfd into @fd, by COWMAP_IOC_DUMP; its size or -1. */
static ssize_t dump_to(int sfd, int fd)
{
	uint8_t *buf = map_anon(DUMP_BUF);
	struct cowmap_dump d = { 0 };
	uint64_t cursor = 0;
	size_t total = 0;

	if (!buf)
		return -1;
	for (;;) {
		d = (struct cowmap_dump){ .buf = (uintptr_t)buf,
					  .buf_size = DUMP_BUF, .cursor = cursor };
		if (ioctl(sfd, COWMAP_IOC_DUMP, &d))
			break;
		if (!d.bytes) {
			if (d.needed)
				errno = EMSGSIZE;
			break;
		}
		if (write(fd, buf, d.bytes) != d.bytes)
			break;
		total += d.bytes;
		cursor = d.cursor;
	}
	munmap(buf, DUMP_BUF);
	return d.bytes || d.needed ? -1 : (ssize_t)total;
}

static int journal_setup(void)
{
	size_t pages = (C.jrecords + 255) / 256, len = pages * PG;
	struct cowmap_commit cc = { 0 };
	struct cowmap_status st;
	char want[32];
	uint8_t *p;
	uint64_t t0;
	ssize_t n;

	if (len > C.write_size)
		return EFBIG;
	/* 80 bytes per 8 changed: past the default limit (64 MiB). */
	if (read_small(JPARAM, J.oldmax, sizeof(J.oldmax)))
		return errno;
	snprintf(want, sizeof(want), "%zu", (size_t)C.jrecords * 96 + 64 * MIB);
	if (write_str(JPARAM, want))
		return errno;
	J.sfd = cm_session(C.wfd);
	if (J.sfd < 0)
		return errno;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, J.sfd, 0);
	if (p == MAP_FAILED)
		return errno;
	for (size_t off = 0; off < len; off += 16)
		*(volatile uint64_t *)(p + off) = ~file_word(off);
	munmap(p, len);
	t0 = now_ns();
	if (ioctl(J.sfd, COWMAP_IOC_COMMIT, &cc))
		return errno;
	fact("journal_commit_ns_per_record", (double)(now_ns() - t0) / cc.records);
	if (cc.records != pages * 256 || cm_status(J.sfd, &st))
		return EPROTO;
	fact("journal_records", st.journal_records);
	fact("journal_bytes", st.journal_bytes);
	fact("journal_pages", pages);

	snprintf(J.path, sizeof(J.path), "%s/journal.log", C.dir);
	J.ffd = open(J.path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (J.ffd < 0)
		return errno;
	n = dump_to(J.sfd, J.ffd);
	if (n < 0)
		return errno;
	if ((size_t)n != sizeof(struct cowmap_log_header) + st.journal_bytes)
		return EPROTO;
	J.stream = n;
	if (fsync(J.ffd))
		return errno;
	p = map_anon(DUMP_BUF);
	for (size_t off = 0; p && off < J.stream; off += DUMP_BUF)
		if (pread(J.ffd, p, DUMP_BUF, off) < 0)
			return errno;
	if (p)
		munmap(p, DUMP_BUF);
	return 0;
}

static void journal_teardown(void)
{
	if (J.ffd >= 0) {
		close(J.ffd);
		unlink(J.path);
	}
	if (J.sfd >= 0)
		cm_close(J.sfd);
	J.ffd = J.sfd = -1;
	journal_restore_param();
}

enum { JV_DUMP, JV_READ, JV_FILE };

static int j_variant(struct run *r, enum phase ph, int how)
{
	size_t end = (r->first + r->n) * PG;
	struct cowmap_dump d;
	ssize_t n;

	switch (ph) {
	case SETUP:
		r->p = map_anon(DUMP_BUF);
		if (!r->p)
			return errno;
		memset(r->p, 0, DUMP_BUF);
		r->pos = r->cursor = 0;
		if (how != JV_DUMP &&
		    lseek(how == JV_READ ? J.sfd : J.ffd, 0, SEEK_SET) != 0)
			return errno;
		return 0;
	case SLICE:
		while (r->pos < end && r->pos < J.stream) {
			if (how == JV_DUMP) {
				d = (struct cowmap_dump){ .buf = (uintptr_t)r->p,
							  .buf_size = DUMP_BUF,
							  .cursor = r->cursor };
				if (ioctl(J.sfd, COWMAP_IOC_DUMP, &d))
					return errno;
				n = d.bytes;
				r->cursor = d.cursor;
			} else {
				n = read(how == JV_READ ? J.sfd : J.ffd, r->p, DUMP_BUF);
				if (n < 0)
					return errno;
			}
			if (!n)
				return EPROTO;	/* ended before the stream's size */
			r->pos += n;
		}
		return 0;
	case DONE:
		munmap(r->p, DUMP_BUF);
		return r->pos == J.stream ? 0 : EPROTO;
	default:
		return EINVAL;
	}
}

static int j_dump(struct run *r, enum phase ph) { return j_variant(r, ph, JV_DUMP); }
static int j_read(struct run *r, enum phase ph) { return j_variant(r, ph, JV_READ); }
static int j_file(struct run *r, enum phase ph) { return j_variant(r, ph, JV_FILE); }

/* ---- rows 7, 8: merge ---- */

/*
 * C.mrecords records of 8 bytes at random 16-byte slots of the write file
 * (never adjacent: one record each), committed once in one session, the
 * journal also dumped to a log file. The target is a copy of the write
 * file. A round is a few pairs, in random order: a merge of all the
 * records into the target (old bytes to new), then at once the pwrite
 * baseline, which writes the old bytes back into the same extents (the
 * same bytes, the same, dirty, cached pages, right after). Pairs: MERGE
 * kernel merges (row 7), one offline merge without fsync (8a), one durable
 * offline merge whose baseline is the pwrites and an fsync (8b); the fsync
 * also writes back what the pairs before left dirty, as the merge's does.
 * Values are ns per record. No warm-up round: a pass of thousands of
 * records amortises the translation of the code by TCG.
 */
enum { MT_KERNEL, MT_PWRITE, MT_OFFLINE, MT_DURABLE, MT_PWRITE_SYNC, MT_N };

#define MERGE_PAIRS 3	/* kernel merges per round */

static struct {
	int sfd;
	size_t k;
	uint64_t *off;			/* sorted */
	char log[512];
	char path[512];
	int fd;
	int round;			/* the round of ns[], n[] */
	int err;
	uint64_t ns[MT_N];
	size_t n[MT_N];			/* records */
} MG = { .sfd = -1, .fd = -1, .round = -1 };

static int make_file(char *path, size_t plen, const char *dir, const char *name,
		     size_t size);
static int merge_pwrite(int fd, int new);

static int merge_setup(void)
{
	size_t slots = C.write_size / 16, k = C.mrecords, n = 0;
	struct cowmap_commit cc = { 0 };
	uint8_t *bits, *p;
	uint64_t t0;
	int lfd;

	if (k < 1 || k > slots / 4)
		return EINVAL;
	bits = calloc(slots / 8 + 1, 1);
	MG.off = malloc(k * sizeof(*MG.off));
	if (!bits || !MG.off)
		return ENOMEM;
	for (size_t i = 0; i < k; ) {
		size_t sl = rnd() % slots;

		if (!(bits[sl / 8] & (1 << (sl % 8)))) {
			bits[sl / 8] |= 1 << (sl % 8);
			i++;
		}
	}
	for (size_t sl = 0; sl < slots; sl++)
		if (bits[sl / 8] & (1 << (sl % 8)))
			MG.off[n++] = sl * 16;
	free(bits);
	MG.k = k;

	MG.sfd = cm_session(C.wfd);
	if (MG.sfd < 0)
		return errno;
	p = mmap(NULL, C.write_size, PROT_READ | PROT_WRITE, MAP_SHARED, MG.sfd, 0);
	if (p == MAP_FAILED)
		return errno;
	for (size_t i = 0; i < k; i++)
		*(volatile uint64_t *)(p + MG.off[i]) = ~file_word(MG.off[i]);
	munmap(p, C.write_size);
	t0 = now_ns();
	if (ioctl(MG.sfd, COWMAP_IOC_COMMIT, &cc))
		return errno;
	fact("merge_commit_ns_per_record", (double)(now_ns() - t0) / k);
	if (cc.records != k)
		return EPROTO;
	fact("merge_records", k);

	snprintf(MG.log, sizeof(MG.log), "%s/merge.log", C.dir);
	lfd = open(MG.log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (lfd < 0)
		return errno;
	if (dump_to(MG.sfd, lfd) < 0 || fsync(lfd)) {
		close(lfd);
		return errno;
	}
	close(lfd);
	MG.fd = make_file(MG.path, sizeof(MG.path), C.dir, "merge.dat", C.write_size);
	/* The state every merge starts from: the old bytes, in dirty pages. */
	return merge_pwrite(MG.fd, 0);
}

static void merge_teardown(void)
{
	if (MG.fd >= 0) {
		close(MG.fd);
		unlink(MG.path);
	}
	MG.fd = -1;
	if (MG.log[0])
		unlink(MG.log);
	if (MG.sfd >= 0)
		cm_close(MG.sfd);
	MG.sfd = -1;
	free(MG.off);
	MG.off = NULL;
}

/* pwrite every record's new (or old) 8 bytes into @fd. */
static int merge_pwrite(int fd, int new)
{
	for (size_t i = 0; i < MG.k; i++) {
		uint64_t w = file_word(MG.off[i]);

		if (new)
			w = ~w;
		if (pwrite(fd, &w, 8, MG.off[i]) != 8)
			return errno ? errno : EIO;
	}
	return 0;
}

static int merge_offline(const char *target, unsigned int flags)
{
	struct cowmap_merger_stats st = { 0 };
	struct cowmap_merger *m;
	int ret;

	ret = cowmap_merger_new(NULL, NULL, &m);
	if (ret)
		return -ret;
	ret = cowmap_merger_add_log(m, MG.log);
	if (ret >= 0)
		ret = cowmap_merger_run(m, target, NULL, COWMAP_POLICY_ALL_OR_NOTHING,
					COWMAP_MERGER_ANY_IDENTITY | flags, &st);
	cowmap_merger_free(m);
	if (ret < 0)
		return -ret;
	return ret || st.applied != MG.k ? EPROTO : 0;
}

/* One pair: merge of kind @t (old to new), then the pwrite back (timed). */
static int merge_pair(int t)
{
	struct cowmap_merge m = { .target_fd = MG.fd };
	int base = t == MT_DURABLE ? MT_PWRITE_SYNC : MT_PWRITE;
	uint64_t t0 = now_ns();
	int err = 0;

	if (t == MT_KERNEL) {
		if (ioctl(MG.sfd, COWMAP_IOC_MERGE, &m))
			err = errno;
		else if (m.applied != MG.k || m.conflicts)
			err = EPROTO;
	} else {
		err = merge_offline(MG.path, t == MT_OFFLINE ? COWMAP_MERGER_NO_SYNC : 0);
	}
	MG.ns[t] += now_ns() - t0;
	MG.n[t] += MG.k;
	if (err)
		return err;
	t0 = now_ns();
	err = merge_pwrite(MG.fd, 0);
	if (!err && base == MT_PWRITE_SYNC && fsync(MG.fd))
		err = errno;
	MG.ns[base] += now_ns() - t0;
	MG.n[base] += MG.k;
	return err;
}

static void merge_round(void)
{
	int pairs[MERGE_PAIRS + 2], np = 0;

	memset(MG.ns, 0, sizeof(MG.ns));
	memset(MG.n, 0, sizeof(MG.n));
	for (int i = 0; i < MERGE_PAIRS; i++)
		pairs[np++] = MT_KERNEL;
	pairs[np++] = MT_OFFLINE;
	pairs[np++] = MT_DURABLE;
	for (int i = np - 1; i > 0; i--) {
		int j = rnd() % (i + 1), t = pairs[i];

		pairs[i] = pairs[j];
		pairs[j] = t;
	}
	for (int i = 0; i < np && !MG.err; i++)
		MG.err = merge_pair(pairs[i]);
}

static int cur_round;	/* run_group(): the round being run */

static int mg_variant(struct run *r, enum phase ph, int t)
{
	if (ph != WHOLE)
		return EINVAL;
	/* The first variant called in a round runs the round's pairs. */
	if (MG.round != cur_round) {
		MG.round = cur_round;
		merge_round();
	}
	if (MG.err)
		return MG.err;
	r->m.value = (double)MG.ns[t] / MG.n[t];
	return 0;
}

static int mg_kernel(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_KERNEL); }
static int mg_pwrite(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_PWRITE); }
static int mg_offline(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_OFFLINE); }
static int mg_durable(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_DURABLE); }
static int mg_pwrite_sync(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_PWRITE_SYNC); }

/* --------------------------------------------------------------- rows --- */

enum unit { U_NS, U_BYTES, U_X, U_TPUT };
enum target { T_NONE, T_LE, T_FASTER, T_LT, T_MEM };

/*
 * One line of the table. The subject is cowmap, the baseline what it is
 * compared with; both run in the same rounds of @group. With @subj_den and
 * @base_den, each side is the per-round quotient subj/subj_den (a scaling
 * factor). @per: what a value is per (default "page"). U_TPUT values are
 * ns per 4 KiB of a stream, shown as MiB/s; their ratio is still the ratio
 * of the times.
 */
struct row {
	const char *id, *group, *what, *per;
	enum unit unit;
	const char *subj_name, *base_name;
	meas_fn *subj, *base, *subj_den, *base_den;
	const char *key[4];	/* their names (JSON keys), set by R() and D() */
	int subj_x;		/* 1 + an X_ field of the subject to use, not its value */
	enum target target;
	/*
	 * T_LE: ratio <= t1; T_LT: ratio < t1; T_FASTER: >= t1 (and t2)
	 * times faster; T_MEM: subject <= baseline + the subject's journal
	 * bytes per page (one page, as MAP_PRIVATE, plus the journal).
	 */
	double t1, t2;
	const char *pending;
};

/* Shorthands for rows[]: R(id, group, what, unit, cowmap side, baseline). */
#define R(i, g, w, u, sn, bn, sf, bf) \
	.id = i, .group = g, .what = w, .unit = u, \
	.subj_name = sn, .base_name = bn, .subj = sf, .base = bf, \
	.key = { #sf, #bf }
/* ... with each side divided, per round, by another variant. */
#define D(i, g, w, u, sn, bn, sf, bf, sd, bd) \
	.id = i, .group = g, .what = w, .unit = u, \
	.subj_name = sn, .base_name = bn, .subj = sf, .base = bf, \
	.subj_den = sd, .base_den = bd, .key = { #sf, #bf, #sd, #bd }

static const struct row rows[] = {
	{ R("1a", "write", "first write to a clean page", U_NS, "session",
	    "MAP_PRIVATE file (kernel COW)", w_cowmap, w_private),
	  .target = T_LE, .t1 = 1.5 },
	{ R("1b", "write", "first write to a clean page", U_NS, "session",
	    "MAP_SHARED file (page_mkwrite)", w_cowmap, w_shared) },
	{ R("1c", "write", "first write to a clean page", U_NS, "session",
	    "SIGSEGV+mprotect+twin (anon copy)", w_cowmap, w_sigsegv),
	  .target = T_FASTER, .t1 = 1.8, .t2 = 3.0 },
	{ R("1d", "write", "first write to a clean page", U_NS, "session",
	    "uffd-wp+twin (anon copy)", w_cowmap, w_uffd) },
	{ R("2a", "read", "seq. read, 1 word/page", U_NS, "session",
	    "MAP_SHARED file", r1_cowmap, r1_shared),
	  .target = T_LE, .t1 = 1.2 },
	{ R("2b", "read", "seq. read, 1 word/page", U_NS, "session",
	    "pread, 1 MiB chunks", r1_cowmap, r1_pread) },
	{ R("2c", "read", "seq. read, every byte", U_NS, "session",
	    "MAP_SHARED file", rf_cowmap, rf_shared),
	  .target = T_LE, .t1 = 1.2 },
	{ R("2d", "read", "seq. read, every byte", U_NS, "session",
	    "pread, 1 MiB chunks", rf_cowmap, rf_pread) },
	{ R("3a", "scale", "first write, 1 process", U_NS, "session",
	    "MAP_PRIVATE file", s1_cowmap, s1_private) },
	{ R("3b", "scale", "first write, 2 processes", U_NS, "session each",
	    "MAP_PRIVATE file, 2 processes", s2_cowmap, s2_private) },
	{ D("3c", "scale", "wall(2 procs) / wall(1 proc)", U_X, "sessions",
	    "MAP_PRIVATE file", s2_cowmap, s2_private, s1_cowmap, s1_private) },
	{ R("4a", "memory", "memory per dirty page", U_BYTES, "session",
	    "MAP_PRIVATE file", m_commit8, m_private), .subj_x = 1 + X_BEFORE },
	{ R("5a", "commit", "commit/dirty page, 8 B each", U_NS, "commit",
	    "first-write fault, same writes", c8_commit, c8_fault),
	  .per = "dirty page", .target = T_LT, .t1 = 1.0 },
	{ R("5b", "commit", "commit/dirty page, all 4 KiB", U_NS, "commit",
	    "first-write fault, 8 B (5a)", cf_commit, c8_fault),
	  .per = "dirty page" },
	{ R("6a", "journal", "dump-log throughput", U_TPUT, "DUMP, 1 MiB",
	    "read(2) of a file, 1 MiB", j_dump, j_file),
	  .per = "4 KiB of stream" },
	{ R("6b", "journal", "dump-log throughput", U_TPUT, "read(2), 1 MiB",
	    "read(2) of a file, 1 MiB", j_read, j_file),
	  .per = "4 KiB of stream" },
	{ R("7", "merge", "kernel merge, per record", U_NS, "IOC_MERGE",
	    "pwrite of the same extents", mg_kernel, mg_pwrite),
	  .per = "record", .target = T_LE, .t1 = 2.0 },
	{ R("8a", "merge", "offline merge, per record", U_NS, "lib, no fsync",
	    "pwrite of the same extents", mg_offline, mg_pwrite),
	  .per = "record" },
	{ R("8b", "merge", "offline merge, per record", U_NS, "lib, durable",
	    "pwrite of the same extents + fsync", mg_durable, mg_pwrite_sync),
	  .per = "record" },
	{ R("9a", "memory", "after commit, 8 B/page", U_BYTES, "session",
	    "MAP_PRIVATE file", m_commit8, m_private),
	  .per = "dirty page", .target = T_MEM },
	{ R("9b", "memory", "after commit, 4 KiB/16 pages", U_BYTES, "session",
	    "MAP_PRIVATE file", m_commitf, m_private),
	  .per = "dirty page", .target = T_MEM },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* The groups, in the order they run; sliced ones interleave their variants. */
/* The read file is not needed after its group: room on the disk. */
static void read_teardown(void)
{
	if (C.rfd >= 0) {
		close(C.rfd);
		unlink(C.rpath);
	}
	C.rfd = -1;
}

static const struct group {
	const char *name;
	int sliced;		/* else one WHOLE call per variant and round */
	int pin;		/* run on one CPU */
	size_t *size;		/* bytes of one pass (of one process) */
	int no_warmup;		/* no warm-up round: no time measured (memory), or
				   passes long enough to amortise TCG's translation */
	int pristine;		/* needs the pattern in the write file */
	int (*setup)(void);	/* once before the rounds; an errno: all n/a */
	void (*teardown)(void);	/* once after them (also after a failed setup) */
	size_t (*units)(void);	/* what a value is per; default: pages of a pass */
} groups[] = {
	/* first: its file is the oldest in the cache */
	{ .name = "read", .sliced = 1, .pin = 1, .size = &C.read_size,
	  .teardown = read_teardown },
	{ .name = "write", .sliced = 1, .pin = 1, .size = &C.write_size },
	{ .name = "scale", .sliced = 1, .size = &C.scale_size },
	{ .name = "memory", .size = &C.write_size, .pristine = 1, .no_warmup = 1 },
	{ .name = "commit", .sliced = 1, .pin = 1, .size = &C.write_size,
	  .pristine = 1, .units = commit_units },
	{ .name = "journal", .sliced = 1, .pin = 1, .size = &J.stream,
	  .pristine = 1, .no_warmup = 1, .setup = journal_setup,
	  .teardown = journal_teardown },
	{ .name = "merge", .pin = 1, .size = &C.write_size, .pristine = 1,
	  .no_warmup = 1, .setup = merge_setup, .teardown = merge_teardown },
};

/* A measured variant: every distinct function of rows[]. */
struct variant {
	meas_fn *fn;
	const char *group;
	const char *name;	/* JSON key */
	int err;		/* first errno that made it n/a */
	int n;
	struct meas s[MAX_ROUNDS];
	struct run r;		/* this round */
	uint64_t ns;		/* this round: time in SLICE */
	long flt;		/* this round: faults in SLICE */
	int set_up;		/* this round: SETUP succeeded */
};

static struct variant vars[4 * NROWS];
static int nvars;

static const char *fn_name(meas_fn *fn)
{
	for (int i = 0; i < nvars; i++)
		if (vars[i].fn == fn)
			return vars[i].name;
	return "unnamed";
}

static struct variant *var_of(meas_fn *fn)
{
	for (int i = 0; i < nvars; i++)
		if (vars[i].fn == fn)
			return &vars[i];
	return NULL;
}

static void add_var(meas_fn *fn, const char *group, const char *name)
{
	if (!fn || var_of(fn))
		return;
	vars[nvars++] = (struct variant){ .fn = fn, .group = group,
					  .name = name };
}

static void shuffle(struct variant **v, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int k = rnd() % (i + 1);
		struct variant *t = v[i];

		v[i] = v[k];
		v[k] = t;
	}
}

static void reset_run(struct variant *v, size_t pages)
{
	memset(&v->r, 0, sizeof(v->r));
	v->r.pages = pages;
	v->r.fd = -1;
	v->r.m.value = NAN;
	for (int i = 0; i < NX; i++)
		v->r.m.x[i] = NAN;
	v->ns = 0;
	v->flt = 0;
}

static void keep(struct variant *v, int keep)
{
	if (keep && v->n < MAX_ROUNDS)
		v->s[v->n++] = v->r.m;
}

/*
 * One round of a sliced group: every variant set up, then the pass cut in
 * C.slices slices, each slice run by every variant in a new random order,
 * then every variant done. Variants alternate every few hundred
 * milliseconds, so a drift of the host's speed hits them alike.
 */
static void round_sliced(const struct group *gr, struct variant **g, int ng,
			 size_t pages, int k)
{
	int order[4 * NROWS], slices = C.slices;
	size_t units;

	shuffle(g, ng);
	for (int i = 0; i < ng; i++) {
		reset_run(g[i], pages);
		if (!g[i]->err)
			g[i]->err = g[i]->fn(&g[i]->r, SETUP);
		g[i]->set_up = !g[i]->err;
	}
	for (int s = 0; s < slices; s++) {
		size_t first = pages * s / slices;
		size_t n = pages * (s + 1) / slices - first;

		for (int i = 0; i < ng; i++)
			order[i] = i;
		for (int i = ng - 1; i > 0; i--) {
			int j = rnd() % (i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (int o = 0; o < ng; o++) {
			struct variant *v = g[order[o]];
			uint64_t t0;
			long f0;
			int err;

			if (!v->set_up || v->err)
				continue;
			v->r.first = first;
			v->r.n = n;
			v->r.slice_ns = 0;
			v->r.slice_flt = 0;
			f0 = minflt();
			t0 = now_ns();
			err = v->fn(&v->r, SLICE);
			t0 = now_ns() - t0;
			f0 = minflt() - f0;
			v->ns += v->r.slice_ns ? v->r.slice_ns : t0;
			v->flt += f0 + v->r.slice_flt;
			if (err)
				v->err = err;
		}
	}
	shuffle(g, ng);
	for (int i = 0; i < ng; i++) {
		struct variant *v = g[i];

		int err;

		if (!v->set_up)
			continue;
		err = v->fn(&v->r, DONE);
		v->set_up = 0;
		if (err && !v->err)
			v->err = err;
		if (v->err)
			continue;
		units = gr->units ? gr->units() : pages;
		v->r.m.value = (double)v->ns / units;
		v->r.m.x[X_FLT] = (double)v->flt / units /
				  (v->r.procs ? v->r.procs : 1);
		keep(v, k);
	}
}

/* One round of a whole group: every variant once, in random order. */
static void round_whole(struct variant **g, int ng, size_t pages, int k)
{
	shuffle(g, ng);
	for (int i = 0; i < ng; i++) {
		if (g[i]->err)
			continue;
		reset_run(g[i], pages);
		g[i]->err = g[i]->fn(&g[i]->r, WHOLE);
		if (!g[i]->err)
			keep(g[i], k);
	}
}

static int group_selected(const char *name)
{
	size_t l = strlen(name);

	if (!C.groups)
		return 1;
	for (const char *p = C.groups; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (!strncmp(p, name, l) && (p[l] == ',' || !p[l]))
			return 1;
	}
	return 0;
}

static void run_group(const struct group *gr)
{
	struct variant *g[4 * NROWS];
	uint64_t t0 = now_ns();
	cpu_set_t all, one;
	size_t pages;
	int ng = 0, err = 0, warmup;

	if (!group_selected(gr->name))
		return;
	for (int i = 0; i < nvars; i++)
		if (!strcmp(vars[i].group, gr->name))
			g[ng++] = &vars[i];
	if (gr->pristine && C.wdirty) {
		/* Rows 5-9 store the complement of the pattern: restore it. */
		if (write_pattern(C.wfd, C.write_size))
			die("rewrite %s", C.wpath);
		C.wdirty = 0;
	}
	if (gr->setup)
		err = gr->setup();
	if (err) {
		fprintf(stderr, "# %-6s setup failed: %s\n", gr->name, strerror(err));
		for (int i = 0; i < ng; i++)
			g[i]->err = err;
	}
	pages = (*gr->size + PG - 1) / PG;
	/* Rows 1, 2 on one CPU: no migrations, uffd's wake-ups stay local. */
	sched_getaffinity(0, sizeof(all), &all);
	if (gr->pin) {
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	warmup = gr->no_warmup ? 0 : C.warmup;
	for (int r = 0; !err && r < warmup + C.rounds; r++) {
		cur_round = r;
		if (gr->sliced)
			round_sliced(gr, g, ng, pages, r >= warmup);
		else
			round_whole(g, ng, pages, r >= warmup);
	}
	sched_setaffinity(0, sizeof(all), &all);
	if (gr->teardown)
		gr->teardown();
	fprintf(stderr, "# %-7s %d variants x %d rounds (+%d warm-up)%s: %.1f s\n",
		gr->name, ng, C.rounds, warmup,
		gr->sliced ? ", interleaved in slices" : "", (now_ns() - t0) / 1e9);
}

/* ---------------------------------------------------------- statistics --- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double t[MAX_ROUNDS];
	int k = 0;

	for (int i = 0; i < n; i++)
		if (!isnan(v[i]))
			t[k++] = v[i];
	if (!k)
		return NAN;
	qsort(t, k, sizeof(t[0]), cmp_dbl);
	return k % 2 ? t[k / 2] : (t[k / 2 - 1] + t[k / 2]) / 2;
}

/* Results of one row, computed from its variants' samples. */
struct side {
	int n, err;		/* rounds; errno that made it n/a */
	double v[MAX_ROUNDS], med, flt;
};

struct rowres {
	struct side subj, base;
	int n;			/* rounds with both sides */
	double ratio[MAX_ROUNDS], ratio_med;
	int met, met2;		/* -1: no target or no ratio */
};

static double xmed(struct variant *v, int x)
{
	double t[MAX_ROUNDS];

	if (!v)
		return NAN;
	for (int i = 0; i < v->n; i++)
		t[i] = x < 0 ? v->s[i].value : v->s[i].x[x];	/* -1: the value */
	return median(t, v->n);
}

/* One side of a row: @fn's values (or x[@x - 1]), or per-round quotients fn/den. */
static void get_side(struct side *sd, meas_fn *fn, meas_fn *den, int x)
{
	struct variant *v = var_of(fn), *d = var_of(den);

	memset(sd, 0, sizeof(*sd));
	sd->med = sd->flt = NAN;
	if (!v)
		return;
	sd->err = v->err ? v->err : d && d->err ? d->err : 0;
	if (sd->err)
		return;
	sd->n = v->n;
	if (d && d->n < sd->n)
		sd->n = d->n;
	for (int r = 0; r < sd->n; r++)
		sd->v[r] = d ? v->s[r].value / d->s[r].value :
			   x ? v->s[r].x[x - 1] : v->s[r].value;
	sd->med = median(sd->v, sd->n);
	if (!d)
		sd->flt = xmed(v, X_FLT);
}

static void row_result(const struct row *w, struct rowres *rr)
{
	memset(rr, 0, sizeof(*rr));
	rr->met = rr->met2 = -1;
	rr->ratio_med = NAN;
	get_side(&rr->subj, w->subj, w->subj_den, w->subj_x);
	get_side(&rr->base, w->base, w->base_den, 0);
	if (w->pending || rr->subj.err || rr->base.err)
		return;
	rr->n = rr->subj.n < rr->base.n ? rr->subj.n : rr->base.n;
	/* Rounds pair up: round r ran every variant of the group once. */
	for (int r = 0; r < rr->n; r++)
		rr->ratio[r] = rr->subj.v[r] / rr->base.v[r];
	if (!rr->n)
		return;
	rr->ratio_med = median(rr->ratio, rr->n);
	if (w->target == T_LE)
		rr->met = rr->ratio_med <= w->t1;
	if (w->target == T_LT)
		rr->met = rr->ratio_med < w->t1;
	if (w->target == T_MEM)
		rr->met = rr->subj.med <= rr->base.med + xmed(var_of(w->subj), X_JOURNAL_B);
	if (w->target == T_FASTER) {
		rr->met = 1 / rr->ratio_med >= w->t1;
		rr->met2 = 1 / rr->ratio_med >= w->t2;
	}
}

/* -------------------------------------------------------------- output --- */

static const char *fmt_val(char *buf, size_t len, double v, enum unit u)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (u == U_X)
		snprintf(buf, len, "%.2fx", v);
	else if (u == U_BYTES)
		snprintf(buf, len, "%.0f B", v);
	else if (u == U_TPUT)
		snprintf(buf, len, "%.0f MiB/s", PG / v * 1e9 / MIB);
	else if (v >= 1000)
		snprintf(buf, len, "%.2f us", v / 1000);
	else
		snprintf(buf, len, "%.0f ns", v);
	return buf;
}

static const char *fmt_flt(char *buf, size_t len, double f)
{
	if (isnan(f))
		buf[0] = 0;
	else
		snprintf(buf, len, "%.2f", f);
	return buf;
}

static const char *fmt_target(char *buf, size_t len, const struct row *w)
{
	if (w->target == T_LE)
		snprintf(buf, len, "<= %.1fx", w->t1);
	else if (w->target == T_LT)
		snprintf(buf, len, "< %.1fx", w->t1);
	else if (w->target == T_MEM)
		snprintf(buf, len, "<= base + journal");
	else if (w->target == T_FASTER)
		snprintf(buf, len, ">= %.1fx faster (%.0fx)", w->t1, w->t2);
	else
		snprintf(buf, len, "-");
	return buf;
}

static const char *fmt_verdict(char *buf, size_t len, const struct row *w,
			       const struct rowres *rr)
{
	if (rr->met < 0)
		snprintf(buf, len, "-");
	else if (w->target == T_FASTER)
		snprintf(buf, len, "%s; %.0fx %s", rr->met ? "met" : "MISSED",
			 w->t2, rr->met2 ? "met" : "missed");
	else
		snprintf(buf, len, "%s", rr->met ? "met" : "MISSED");
	return buf;
}

static const char *mib(char *buf, size_t len, size_t bytes)
{
	if (bytes >= MIB)
		snprintf(buf, len, "%zu MiB", bytes / MIB);
	else
		snprintf(buf, len, "%zu KiB", bytes / 1024);
	return buf;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "?";
}

/* A value cell: the median, or "n/a ERRNO". */
static const char *fmt_side(char *buf, size_t len, const struct side *sd,
			    enum unit u)
{
	if (sd->err)
		snprintf(buf, len, "n/a %s", errname(sd->err));
	else
		fmt_val(buf, len, sd->med, u);
	return buf;
}

static void print_table(struct utsname *u)
{
	char a[64], b[64], c[64], d[64], e[64], f[64];

	printf("\ncowbench on Linux %s (QEMU TCG guest): median of %d rounds (+%d warm-up); "
	       "rows 1-3 interleave their variants in %d slices per pass; seed %" PRIu64 "\n",
	       u->release, C.rounds, C.warmup, C.slices, C.seed0);
	if (C.quick)
		printf("QUICK RUN: tiny sizes, one round; the figures mean nothing\n");
	printf("sizes: rows 1, 4, 5, 9: %s file on %s; row 2: %s file on %s; row 3: %s per process; "
	       "row 6: %zu records; rows 7, 8: %zu records; page cache warm for every variant\n",
	       mib(a, sizeof(a), C.write_size), C.wfs,
	       mib(b, sizeof(b), C.read_size), C.rfs, mib(c, sizeof(c), C.scale_size),
	       C.jrecords, C.mrecords);
	printf("ratio = cowmap / baseline, median of the per-round ratios (< 1: cowmap is cheaper; "
	       "row 6: ratio of the times); flt = faults per unit (getrusage)\n\n");
	printf("%-3s %-29s %-14s %10s %4s  %-34s %10s %4s %7s  %-20s %s\n",
	       "row", "measurement (per page)", "cowmap", "", "flt",
	       "baseline", "", "flt", "ratio", "target", "verdict");
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *w = &rows[i];
		struct rowres rr;

		if (w->pending) {
			printf("%-3s %-29s %s\n", w->id, w->what, w->pending);
			continue;
		}
		row_result(w, &rr);
		printf("%-3s %-29s %-14s %10s %4s  %-34s %10s %4s ",
		       w->id, w->what, w->subj_name,
		       fmt_side(a, sizeof(a), &rr.subj, w->unit),
		       fmt_flt(b, sizeof(b), rr.subj.flt), w->base_name,
		       fmt_side(c, sizeof(c), &rr.base, w->unit),
		       fmt_flt(d, sizeof(d), rr.base.flt));
		if (isnan(rr.ratio_med))
			printf("%7s  %-20s %s\n", "-", fmt_target(e, sizeof(e), w),
			       w->target ? "n/a" : "-");
		else
			printf("%6.2fx  %-20s %s\n", rr.ratio_med,
			       fmt_target(e, sizeof(e), w),
			       fmt_verdict(f, sizeof(f), w, &rr));
	}

	printf("\nnotes:\n");
	printf("  cowmap status per written page (1a): %.2f faults, %.2f cow_copies, %.2f pages owned (private + twin)\n",
	       xmed(var_of(w_cowmap), X_CM_FAULTS), xmed(var_of(w_cowmap), X_CM_COPIES),
	       xmed(var_of(w_cowmap), X_CM_OWNED));
	printf("  cowmap status per page read (2a): %.4f faults (fault-around maps 16 pages per fault)\n",
	       xmed(var_of(r1_cowmap), X_CM_FAULTS));
	printf("  1c/1d setup, not timed in the row (anonymous copy by pread, then protect): %s (1c), %s (1d) per page\n",
	       fmt_val(a, sizeof(a), xmed(var_of(w_sigsegv), X_SETUP), U_NS),
	       fmt_val(b, sizeof(b), xmed(var_of(w_uffd), X_SETUP), U_NS));
	printf("  4a: %s; cowmap (8 B per page, before the commit of 9a): status (private + twin) %s, memcg kernel %+.0f B, "
	       "slab %+.0f B, page tables %+.0f B per page; MAP_PRIVATE (1 B per page): slab %+.0f B, page tables %+.0f B, "
	       "MemFree %+.0f B per page\n",
	       cg_ok > 0 ? "memory.current of a cgroup of the writer" :
	       "no memory cgroup: MemFree decrease (noisy)",
	       fmt_val(c, sizeof(c), xmed(var_of(m_commit8), X_STATUS_BEFORE), U_BYTES),
	       xmed(var_of(m_commit8), X_KERNEL_BEFORE), xmed(var_of(m_commit8), X_SLAB_BEFORE),
	       xmed(var_of(m_commit8), X_PTABLES),
	       xmed(var_of(m_private), X_SLAB), xmed(var_of(m_private), X_PTABLES),
	       xmed(var_of(m_private), X_MEMFREE));
	printf("  5: %zu dirty pages per commit, a fresh session each; records per dirty page %.2f (8 B), %.2f (4 KiB); "
	       "journal bytes per dirty page %.0f (8 B), %.0f (4 KiB)\n",
	       commit_pages(), xmed(var_of(c8_commit), X_RECORDS), xmed(var_of(cf_commit), X_RECORDS),
	       xmed(var_of(c8_commit), X_JOURNAL_B), xmed(var_of(cf_commit), X_JOURNAL_B));
	printf("  6: %.0f records, %.1f MiB of journal (%.0f B per record for 8 changed bytes); their commit took %s per record\n",
	       fact_of("journal_records"), fact_of("journal_bytes") / MIB,
	       fact_of("journal_bytes") / fact_of("journal_records"),
	       fmt_val(a, sizeof(a), fact_of("journal_commit_ns_per_record"), U_NS));
	printf("  7, 8: %.0f records of 8 B at random 16-byte slots of the %s file, merged into a copy of it, each merge followed at once "
	       "by its baseline, the pwrites of the old bytes into the same extents; per round %d kernel merges, one offline merge "
	       "without fsync (8a), one durable (8b: libcowmap in place, intent file and fsyncs; baseline pwrites + fsync)\n",
	       fact_of("merge_records"), mib(b, sizeof(b), C.write_size), MERGE_PAIRS);
	for (int k = 0; k < 2; k++) {
		struct variant *v = var_of(k ? m_commitf : m_commit8);

		printf("  9%c (%s): per dirty page before commit %s (memcg kernel %+.0f B, slab %+.0f B; status %s), "
		       "after %s (kernel %+.0f B, slab %+.0f B, page tables %+.0f B; status %s); "
		       "journal %.0f B in %.2f records; commit %s per dirty page\n",
		       k ? 'b' : 'a', k ? "every byte of every 16th page" : "8 B in every page",
		       fmt_val(a, sizeof(a), xmed(v, X_BEFORE), U_BYTES),
		       xmed(v, X_KERNEL_BEFORE), xmed(v, X_SLAB_BEFORE),
		       fmt_val(b, sizeof(b), xmed(v, X_STATUS_BEFORE), U_BYTES),
		       fmt_val(c, sizeof(c), v ? xmed(v, -1) : NAN, U_BYTES),
		       xmed(v, X_KERNEL), xmed(v, X_SLAB), xmed(v, X_PTABLES),
		       fmt_val(d, sizeof(d), xmed(v, X_STATUS_B), U_BYTES),
		       xmed(v, X_JOURNAL_B), xmed(v, X_RECORDS),
		       fmt_val(e, sizeof(e), xmed(v, X_COMMIT_NS), U_NS));
	}
	printf("  uffd-wp registration of an ext4 file mapping: %s (uffd-wp covers anonymous, shmem and hugetlbfs memory only), "
	       "so 1d protects an anonymous copy\n",
	       C.uffd_file_errno ? errname(C.uffd_file_errno) : "accepted");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_num(double v)
{
	if (isnan(v) || isinf(v))
		printf("null");
	else if (v == floor(v) && fabs(v) < 1e15)
		printf("%.0f", v);	/* counts: exact */
	else
		printf("%.6g", v);
}

static void json_arr(const double *v, int n)
{
	putchar('[');
	for (int i = 0; i < n; i++) {
		if (i)
			putchar(',');
		json_num(v[i]);
	}
	putchar(']');
}

static const char *unit_name(char *buf, size_t len, const struct row *w)
{
	const char *per = w->per ? w->per : "page";

	if (w->unit == U_X)
		return "ratio";
	snprintf(buf, len, "%s per %s", w->unit == U_BYTES ? "bytes" : "ns", per);
	return buf;
}

static void json_host_info(void)
{
	char line[512];
	FILE *f = C.host_info ? fopen(C.host_info, "re") : NULL;
	int first = 1;

	printf("  \"host\": {");
	while (f && fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');

		line[strcspn(line, "\n")] = 0;
		if (!eq)
			continue;
		*eq = 0;
		printf("%s", first ? "" : ", ");
		json_str(line);
		printf(": ");
		json_str(eq + 1);
		first = 0;
	}
	if (f)
		fclose(f);
	printf("},\n");
}

static void json_side(const char *key, const char *name, meas_fn *fn,
		      meas_fn *den, const struct side *sd)
{
	printf("     \"%s\": {\"name\": ", key);
	json_str(name);
	printf(", \"variant\": \"%s%s%s\"", fn_name(fn), den ? "/" : "",
	       den ? fn_name(den) : "");
	if (sd->err) {
		printf(", \"error\": ");
		json_str(errname(sd->err));
	}
	printf(", \"median\": ");
	json_num(sd->med);
	printf(", \"faults_per_page\": ");
	json_num(sd->flt);
	printf(", \"samples\": ");
	json_arr(sd->v, sd->n);
	printf("}");
}

static void print_json(struct utsname *u, const char *cpu,
		       const char *thp, const char *far)
{

	printf("%s\n{\n", JSON_BEGIN);
	printf("  \"schema\": 1,\n  \"tool\": \"cowbench\",\n");
	printf("  \"quick\": %s,\n", C.quick ? "true" : "false");
	json_host_info();
	printf("  \"guest\": {\"kernel\": ");
	json_str(u->release);
	printf(", \"version\": ");
	json_str(u->version);
	printf(", \"cpu\": ");
	json_str(cpu);
	printf(", \"ncpu\": %ld, \"mem_total_kb\": %ld, \"thp\": ",
	       sysconf(_SC_NPROCESSORS_ONLN), meminfo("MemTotal"));
	json_str(thp);
	printf(", \"fault_around_bytes\": ");
	json_str(far);
	printf(", \"accel\": \"tcg\"},\n");
	printf("  \"config\": {\"rounds\": %d, \"warmup\": %d, \"slices\": %d, \"seed\": %" PRIu64
	       ", \"write_bytes\": %zu, \"read_bytes\": %zu, \"scale_bytes_per_process\": %zu, ",
	       C.rounds, C.warmup, C.slices, C.seed0, C.write_size, C.read_size, C.scale_size);
	printf("\"journal_records\": %zu, \"merge_records\": %zu, \"commit_pages\": %zu, ",
	       C.jrecords, C.mrecords, commit_pages());
	printf("\"dir\": ");
	json_str(C.dir);
	printf(", \"read_dir\": ");
	json_str(C.read_dir);
	printf(", \"fs\": ");
	json_str(C.wfs);
	printf(", \"read_fs\": ");
	json_str(C.rfs);
	printf(", \"page_cache\": \"warm\", \"uffd_wp_ext4_file\": ");
	json_str(C.uffd_file_errno ? errname(C.uffd_file_errno) : "ok");
	printf("},\n  \"rows\": [\n");
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *w = &rows[i];
		struct rowres rr;
		char unit[64];

		printf("    {\"id\": ");
		json_str(w->id);
		printf(", \"what\": ");
		json_str(w->what);
		if (w->pending) {
			printf(", \"status\": \"pending\", \"note\": ");
			json_str(w->pending);
			printf("}%s\n", i + 1 < NROWS ? "," : "");
			continue;
		}
		row_result(w, &rr);
		printf(", \"unit\": \"%s\", \"status\": \"%s\",\n",
		       unit_name(unit, sizeof(unit), w), isnan(rr.ratio_med) ? "n/a" : "ok");
		json_side("subject", w->subj_name, w->subj, w->subj_den, &rr.subj);
		printf(",\n");
		json_side("baseline", w->base_name, w->base, w->base_den, &rr.base);
		printf(",\n     \"ratio\": ");
		json_num(rr.ratio_med);
		printf(", \"ratio_samples\": ");
		json_arr(rr.ratio, rr.n);
		if (w->unit == U_TPUT) {
			printf(", \"bytes_per_second\": {\"subject\": ");
			json_num(PG / rr.subj.med * 1e9);
			printf(", \"baseline\": ");
			json_num(PG / rr.base.med * 1e9);
			printf("}");
		}
		if (w->target == T_MEM) {
			printf(", \"target\": {\"kind\": \"at_most_baseline_plus_journal_bytes\", \"value\": ");
			json_num(rr.base.med + xmed(var_of(w->subj), X_JOURNAL_B));
			printf(", \"met\": %s", rr.met > 0 ? "true" :
			       rr.met == 0 ? "false" : "null");
			printf("}");
		} else if (w->target != T_NONE) {
			printf(", \"target\": {\"kind\": \"%s\", \"value\": ",
			       w->target == T_LE ? "ratio_at_most" :
			       w->target == T_LT ? "ratio_below" : "speedup_at_least");
			json_num(w->t1);
			printf(", \"met\": %s", rr.met > 0 ? "true" :
			       rr.met == 0 ? "false" : "null");
			if (w->target == T_FASTER) {
				printf(", \"brief_value\": ");
				json_num(w->t2);
				printf(", \"brief_met\": %s", rr.met2 > 0 ? "true" :
				       rr.met2 == 0 ? "false" : "null");
			}
			printf("}");
		}
		printf("}%s\n", i + 1 < NROWS ? "," : "");
	}
	printf("  ],\n  \"facts\": {");
	for (int i = 0; i < nfacts; i++) {
		printf("%s\"%s\": ", i ? ", " : "", facts[i].key);
		json_num(facts[i].v);
	}
	printf("},\n  \"variants\": {\n");
	for (int i = 0; i < nvars; i++) {
		struct variant *v = &vars[i];

		printf("    \"%s\": {\"group\": \"%s\", \"rounds\": %d", v->name,
		       v->group, v->n);
		if (v->err) {
			printf(", \"error\": ");
			json_str(errname(v->err));
		}
		for (int x = 0; x < NX; x++) {
			double m = xmed(v, x);

			if (!isnan(m)) {
				printf(", \"%s\": ", xname[x]);
				json_num(m);
			}
		}
		printf("}%s\n", i + 1 < nvars ? "," : "");
	}
	printf("  }\n}\n%s\n", JSON_END);
}

/* --------------------------------------------------------------- files --- */

/* A file of @size bytes with a non-zero pattern, on disk, in the cache. */
static int make_file(char *path, size_t plen, const char *dir, const char *name,
		     size_t size)
{
	uint8_t *buf = map_anon(MIB);
	int fd;

	if (!buf)
		die("mmap");
	snprintf(path, plen, "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("%s", path);
	if (write_pattern(fd, size))
		die("write %s", path);
	/* Warm: every variant starts from cached, clean pages. */
	for (size_t off = 0; off < size; off += MIB)
		if (pread(fd, buf, MIB, off) < 0)
			die("read %s", path);
	munmap(buf, MIB);
	return fd;
}

/* The type of the filesystem mounted at the longest prefix of @dir. */
static void fs_name(const char *dir, char *buf, size_t len)
{
	char line[512], mnt[256], type[64];
	FILE *f = fopen("/proc/mounts", "re");
	size_t bestlen = 0, l;

	snprintf(buf, len, "?");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %255s %63s", mnt, type) != 2)
			continue;
		l = strlen(mnt);
		if (!strncmp(dir, mnt, l) && (dir[l] == '/' || !dir[l] || l == 1) &&
		    l >= bestlen) {
			bestlen = l;
			snprintf(buf, len, "%s", type);
		}
	}
	if (f)
		fclose(f);
}

static size_t free_bytes(const char *dir)
{
	struct statvfs sv;

	if (statvfs(dir, &sv))
		return 0;
	return (size_t)sv.f_bavail * sv.f_frsize;
}

/* ---------------------------------------------------------------- main --- */

static void usage(void)
{
	fprintf(stderr,
		"usage: cowbench [--quick] [--rounds N] [--warmup N] [--slices N] [--seed N]\n"
		"                [--dir DIR] [--read-dir DIR] [--write-mib N]\n"
		"                [--read-mib N] [--scale-mib N] [--journal-records N]\n"
		"                [--merge-records N] [--host-info FILE]\n"
		"                [--groups read,write,scale,memory,commit,journal,merge]\n"
		"Runs in the cowmap test VM; prints a table, then JSON between\n"
		"\"" JSON_BEGIN "\" and \"" JSON_END "\".\n"
		"--quick: tiny sizes, one round; checks that every row still runs.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char cpu[256] = "?", thp[128] = "?", far[32] = "?", line[512];
	size_t wmib = 64, rmib = 256, smib = 32;
	size_t jrec = 1048576, mrec = 16384;
	struct utsname u;
	FILE *f;

	C.rounds = 5;
	C.warmup = 1;
	C.slices = 16;
	C.dir = "/mnt/ext4/cowbench";
	C.seed = now_ns() | 1;
	C.pid = getpid();
	C.rfd = C.wfd = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--quick")) {
			C.quick = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--rounds"))
			C.rounds = atoi(v);
		else if (!strcmp(a, "--slices"))
			C.slices = atoi(v);
		else if (!strcmp(a, "--warmup"))
			C.warmup = atoi(v);
		else if (!strcmp(a, "--seed"))
			C.seed = strtoull(v, NULL, 0) | 1;
		else if (!strcmp(a, "--dir"))
			C.dir = v;
		else if (!strcmp(a, "--read-dir"))
			C.read_dir = v;
		else if (!strcmp(a, "--write-mib"))
			wmib = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--read-mib"))
			rmib = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--scale-mib"))
			smib = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--journal-records"))
			jrec = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--merge-records"))
			mrec = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--host-info"))
			C.host_info = v;
		else if (!strcmp(a, "--groups"))
			C.groups = v;
		else
			usage();
	}
	C.write_size = wmib * MIB;
	C.read_size = rmib * MIB;
	C.scale_size = smib * MIB;
	C.jrecords = jrec;
	C.mrecords = mrec;
	if (C.quick) {
		C.write_size = C.scale_size = MIB;
		C.read_size = 2 * MIB;
		C.rounds = 1;
		C.warmup = 0;
		C.slices = 4;
		C.jrecords = 4096;
		C.mrecords = 256;
	}
	if (C.rounds < 1 || C.rounds > MAX_ROUNDS || C.warmup < 0 || C.slices < 1 ||
	    !C.write_size || !C.read_size || !C.scale_size || !C.jrecords || !C.mrecords)
		usage();
	if (C.scale_size > C.write_size) {
		fprintf(stderr, "cowbench: --scale-mib: row 3 maps the first part of the %zu MiB write file\n",
			C.write_size / MIB);
		exit(2);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	C.seed0 = C.seed;
	/* An exit through die(): no orphan, the journal limit restored. */
	atexit(journal_restore_param);
	atexit(discard_all);

	uname(&u);
	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(cpu, sizeof(cpu), "%s", strchr(line, ':') + 2);
			cpu[strcspn(cpu, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	read_small("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
	read_small("/sys/kernel/debug/fault_around_bytes", far, sizeof(far));

	mkdir(C.dir, 0755);
	if (!C.read_dir) {
		/* The read file goes to tmpfs only if the disk is too small. */
		C.read_dir = C.dir;
		if (free_bytes(C.dir) < C.write_size + C.read_size + 16 * MIB) {
			C.read_dir = "/mnt/tmpfs/cowbench";
			fprintf(stderr, "# %s too small for the read file: using %s\n",
				C.dir, C.read_dir);
		}
	}
	mkdir(C.read_dir, 0755);
	fs_name(C.dir, C.wfs, sizeof(C.wfs));
	fs_name(C.read_dir, C.rfs, sizeof(C.rfs));

	fprintf(stderr, "# cowbench: kernel %s, creating files\n", u.release);
	C.wfd = make_file(C.wpath, sizeof(C.wpath), C.dir, "write.dat", C.write_size);
	/* Only for its group, which runs first and removes it (room for 6-8). */
	if (group_selected("read"))
		C.rfd = make_file(C.rpath, sizeof(C.rpath), C.read_dir, "read.dat",
				  C.read_size);
	C.uffd_file_errno = uffd_probe_file();

	for (size_t i = 0; i < NROWS; i++) {
		add_var(rows[i].subj, rows[i].group, rows[i].key[0]);
		add_var(rows[i].base, rows[i].group, rows[i].key[1]);
		add_var(rows[i].subj_den, rows[i].group, rows[i].key[2]);
		add_var(rows[i].base_den, rows[i].group, rows[i].key[3]);
	}
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		run_group(&groups[i]);

	print_table(&u);
	printf("\n");
	print_json(&u, cpu, thp, far);

	close(C.wfd);
	unlink(C.wpath);
	read_teardown();
	return 0;
}
