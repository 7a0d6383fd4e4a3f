// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench: cowmap against the kernel's own mechanisms, side by side.
 *
 * Runs inside the test VM (make bench, bench/run.sh; docs/performance.md).
 * Under TCG only ratios measured in the same run mean anything, so every
 * row is a cost per page of cowmap AND of a named baseline measured in the
 * same rounds. Rows 1-3 interleave their variants: all are set up, then
 * each slice of the pass is run by every variant in a fresh random order.
 * A row reports the median of each side over the rounds and the median of
 * the per-round ratios. The benchmark never asserts a time.
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
 * discard its changes first where the API has COWMAP_IOC_DISCARD.
 */
static void cm_close(int fd)
{
#ifdef COWMAP_IOC_DISCARD
	ioctl(fd, COWMAP_IOC_DISCARD, 0);	/* no argument means 0 */
#endif
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
};

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
			close(r->fd);
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
		if (flags == MAP_SHARED && !session)
			fsync(C.wfd);
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

static void mem_child(int session, int res)
{
	struct run r = { .pages = C.write_size / PG };
	long long cur0 = 0, slab0 = 0, pt0 = 0;
	struct mem_res mr = { 0 };
	struct cowmap_status st;
	long free0;

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
		if (cg_ok > 0) {
			cur0 = cg_read(NULL);
			slab0 = cg_read("slab");
			pt0 = cg_read("pagetables");
		}
		free0 = meminfo("MemFree");
		write_pages(r.p, r.pages);
		mr.m.x[X_MEMFREE] = (double)(free0 - meminfo("MemFree")) * 1024 /
				    r.pages;
		if (cg_ok > 0) {
			mr.m.value = (double)(cg_read(NULL) - cur0) / r.pages;
			mr.m.x[X_SLAB] = (double)(cg_read("slab") - slab0) / r.pages;
			mr.m.x[X_PTABLES] = (double)(cg_read("pagetables") - pt0) /
					    r.pages;
		} else {
			mr.m.value = mr.m.x[X_MEMFREE];
		}
		if (r.fd >= 0 && !cm_status(r.fd, &st))
			mr.m.x[X_STATUS_B] = (double)(st.private_pages +
						      st.twin_pages) * PG / r.pages;
		map_done(&r, C.write_size);
	}
	if (write(res, &mr, sizeof(mr)) != sizeof(mr))
		_exit(1);
	_exit(0);
}

static int mem(struct run *r, int session)
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
		mem_child(session, res[1]);
	close(res[1]);
	if (read(res[0], &mr, sizeof(mr)) != sizeof(mr))
		mr.err = EPIPE;
	close(res[0]);
	waitpid(pid, NULL, 0);
	if (!mr.err)
		r->m = mr.m;
	return mr.err;
}

static int m_cowmap(struct run *r, enum phase ph) { return mem(r, 1); }
static int m_private(struct run *r, enum phase ph) { return mem(r, 0); }

/* --------------------------------------------------------------- rows --- */

enum unit { U_NS, U_BYTES, U_X };
enum target { T_NONE, T_LE, T_FASTER };

/*
 * One line of the table. The subject is cowmap, the baseline what it is
 * compared with; both run in the same rounds of @group. With @subj_den and
 * @base_den, each side is the per-round quotient subj/subj_den (a scaling
 * factor). @pending: a row that needs features not built yet.
 */
struct row {
	const char *id, *group, *what;
	enum unit unit;
	const char *subj_name, *base_name;
	meas_fn *subj, *base, *subj_den, *base_den;
	const char *key[4];	/* their names (JSON keys), set by R() and D() */
	enum target target;
	double t1, t2;		/* T_LE: ratio <= t1; T_FASTER: >= t1 (and t2) */
	const char *pending;
};

#define PENDING "pending (needs the journal/merge issue)"

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
#define P(i, w) .id = i, .what = w, .pending = PENDING

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
	    "MAP_PRIVATE file", m_cowmap, m_private) },
	{ P("5", "commit cost per dirty page") },
	{ P("6", "dump-log throughput") },
	{ P("7", "kernel merge vs pwrite") },
	{ P("8", "offline merge") },
	{ P("9", "memory after commit") },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* The groups, in the order they run; sliced ones interleave their variants. */
static const struct group {
	const char *name;
	int sliced;		/* else one WHOLE call per variant and round */
	int pin;		/* run on one CPU */
	size_t *size;		/* bytes of one pass (of one process) */
} groups[] = {
	{ "read", 1, 1, &C.read_size },	/* first: its file is the oldest in the cache */
	{ "write", 1, 1, &C.write_size },
	{ "scale", 1, 0, &C.scale_size },
	{ "memory", 0, 0, &C.write_size },
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
static void round_sliced(struct variant **g, int ng, size_t pages, int k)
{
	int order[4 * NROWS];

	shuffle(g, ng);
	for (int i = 0; i < ng; i++) {
		reset_run(g[i], pages);
		if (!g[i]->err)
			g[i]->err = g[i]->fn(&g[i]->r, SETUP);
		g[i]->set_up = !g[i]->err;
	}
	for (int s = 0; s < C.slices; s++) {
		size_t first = pages * s / C.slices;
		size_t n = pages * (s + 1) / C.slices - first;

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

		if (!v->set_up)
			continue;
		v->fn(&v->r, DONE);
		v->set_up = 0;
		if (v->err)
			continue;
		v->r.m.value = (double)v->ns / pages;
		v->r.m.x[X_FLT] = (double)v->flt / pages /
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
	size_t pages = *gr->size / PG;
	uint64_t t0 = now_ns();
	cpu_set_t all, one;
	int ng = 0;

	if (!group_selected(gr->name))
		return;
	for (int i = 0; i < nvars; i++)
		if (!strcmp(vars[i].group, gr->name))
			g[ng++] = &vars[i];
	/* Rows 1, 2 on one CPU: no migrations, uffd's wake-ups stay local. */
	sched_getaffinity(0, sizeof(all), &all);
	if (gr->pin) {
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	for (int r = 0; r < C.warmup + C.rounds; r++) {
		if (gr->sliced)
			round_sliced(g, ng, pages, r >= C.warmup);
		else
			round_whole(g, ng, pages, r >= C.warmup);
	}
	sched_setaffinity(0, sizeof(all), &all);
	fprintf(stderr, "# %-6s %d variants x %d rounds (+%d warm-up)%s: %.1f s\n",
		gr->name, ng, C.rounds, C.warmup,
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
		t[i] = v->s[i].x[x];
	return median(t, v->n);
}

/* One side of a row: @fn's values, or per-round quotients fn/den. */
static void get_side(struct side *sd, meas_fn *fn, meas_fn *den)
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
		sd->v[r] = d ? v->s[r].value / d->s[r].value : v->s[r].value;
	sd->med = median(sd->v, sd->n);
	if (!d)
		sd->flt = xmed(v, X_FLT);
}

static void row_result(const struct row *w, struct rowres *rr)
{
	memset(rr, 0, sizeof(*rr));
	rr->met = rr->met2 = -1;
	rr->ratio_med = NAN;
	get_side(&rr->subj, w->subj, w->subj_den);
	get_side(&rr->base, w->base, w->base_den);
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
	printf("sizes: rows 1, 4: %s file on %s; row 2: %s file on %s; row 3: %s per process; "
	       "page cache warm for every variant\n",
	       mib(a, sizeof(a), C.write_size), C.wfs,
	       mib(b, sizeof(b), C.read_size), C.rfs, mib(c, sizeof(c), C.scale_size));
	printf("ratio = cowmap / baseline, median of the per-round ratios (< 1: cowmap is cheaper); "
	       "flt = faults per page (getrusage)\n\n");
	printf("%-3s %-28s %-13s %10s %4s  %-33s %10s %4s %7s  %-20s %s\n",
	       "row", "measurement, per page", "cowmap", "", "flt",
	       "baseline", "", "flt", "ratio", "target", "verdict");
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *w = &rows[i];
		struct rowres rr;

		if (w->pending) {
			printf("%-3s %-28s %s\n", w->id, w->what, w->pending);
			continue;
		}
		row_result(w, &rr);
		printf("%-3s %-28s %-13s %10s %4s  %-33s %10s %4s ",
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
	printf("  4a: %s; cowmap status (private + twin): %s per page; per page, cowmap: slab %+.0f B, page tables %+.0f B, "
	       "MemFree %+.0f B; MAP_PRIVATE: slab %+.0f B, page tables %+.0f B, MemFree %+.0f B\n",
	       cg_ok > 0 ? "memory.current of a cgroup of the writer" :
	       "no memory cgroup: MemFree decrease (noisy)",
	       fmt_val(c, sizeof(c), xmed(var_of(m_cowmap), X_STATUS_B), U_BYTES),
	       xmed(var_of(m_cowmap), X_SLAB), xmed(var_of(m_cowmap), X_PTABLES),
	       xmed(var_of(m_cowmap), X_MEMFREE),
	       xmed(var_of(m_private), X_SLAB), xmed(var_of(m_private), X_PTABLES),
	       xmed(var_of(m_private), X_MEMFREE));
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

static const char *unit_name(enum unit u)
{
	return u == U_NS ? "ns/page" : u == U_BYTES ? "bytes/page" : "ratio";
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
		       unit_name(w->unit), isnan(rr.ratio_med) ? "n/a" : "ok");
		json_side("subject", w->subj_name, w->subj, w->subj_den, &rr.subj);
		printf(",\n");
		json_side("baseline", w->base_name, w->base, w->base_den, &rr.base);
		printf(",\n     \"ratio\": ");
		json_num(rr.ratio_med);
		printf(", \"ratio_samples\": ");
		json_arr(rr.ratio, rr.n);
		if (w->target != T_NONE) {
			printf(", \"target\": {\"kind\": \"%s\", \"value\": ",
			       w->target == T_LE ? "ratio_at_most" : "speedup_at_least");
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
	printf("  ],\n  \"variants\": {\n");
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
	for (size_t off = 0; off < size; off += MIB) {
		size_t len = size - off < MIB ? size - off : MIB;

		for (size_t i = 0; i < len; i += 8)
			*(uint64_t *)(buf + i) = (off + i) * 0x9E3779B97F4A7C15ULL | 1;
		if (pwrite(fd, buf, len, off) != (ssize_t)len)
			die("write %s", path);
	}
	if (fsync(fd))
		die("fsync %s", path);
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
		"                [--read-mib N] [--scale-mib N] [--host-info FILE]\n"
		"                [--groups read,write,scale,memory]\n"
		"Runs in the cowmap test VM; prints a table, then JSON between\n"
		"\"" JSON_BEGIN "\" and \"" JSON_END "\".\n"
		"--quick: tiny sizes, one round; checks that every row still runs.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char cpu[256] = "?", thp[128] = "?", far[32] = "?", line[512];
	size_t wmib = 64, rmib = 256, smib = 32;
	struct utsname u;
	FILE *f;

	C.rounds = 5;
	C.warmup = 1;
	C.slices = 16;
	C.dir = "/mnt/ext4/cowbench";
	C.seed = now_ns() | 1;
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
	if (C.quick) {
		C.write_size = C.scale_size = MIB;
		C.read_size = 2 * MIB;
		C.rounds = 1;
		C.warmup = 0;
		C.slices = 4;
	}
	if (C.rounds < 1 || C.rounds > MAX_ROUNDS || C.warmup < 0 || C.slices < 1 ||
	    !C.write_size || !C.read_size || !C.scale_size)
		usage();
	if (C.scale_size > C.write_size) {
		fprintf(stderr, "cowbench: --scale-mib: row 3 maps the first part of the %zu MiB write file\n",
			C.write_size / MIB);
		exit(2);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	C.seed0 = C.seed;

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
	C.rfd = make_file(C.rpath, sizeof(C.rpath), C.read_dir, "read.dat", C.read_size);
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
	close(C.rfd);
	unlink(C.wpath);
	unlink(C.rpath);
	return 0;
}
