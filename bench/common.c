// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench: the context, helpers, cowmap sessions, measurement helpers, files. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cowbench.h"

struct ctx C;

void die(const char *fmt, ...)
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

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

/* xorshift64*: the round order. */
uint64_t rnd(void)
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
uint64_t file_word(size_t off)
{
	return off * 0x9E3779B97F4A7C15ULL | 1;
}

/* Write the pattern into [0, @size) of @fd and fsync; -1 on error. */
int write_pattern(int fd, size_t size)
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
long meminfo(const char *key)
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

int read_small(const char *path, char *buf, size_t len)
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

void discard_all(void)
{
	if (getpid() != C.pid)
		return;
	while (n_open)
		ioctl(open_sessions[--n_open], COWMAP_IOC_DISCARD, 0);
}

/* A session on @file: open, handshake, attach; -1 with errno. */
int cm_session(int file)
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

int cm_status(int fd, struct cowmap_status *st)
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
void cm_close(int fd)
{
#ifdef COWMAP_IOC_DISCARD
	if (ioctl(fd, COWMAP_IOC_DISCARD, 0))
		fprintf(stderr, "cowbench: COWMAP_IOC_DISCARD: %s (the session may be kept as an orphan)\n",
			strerror(errno));
#endif
	track(fd, 0);
	close(fd);
}

const char *const xname[NX] = {
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
	[X_POOL] = "pool_bytes_per_page",
};

/* Figures of a run that belong to no variant (JSON "facts", notes). */
struct fact facts[32];
int nfacts;

void fact(const char *key, double v)
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

double fact_of(const char *key)
{
	for (int i = 0; i < nfacts; i++)
		if (!strcmp(facts[i].key, key))
			return facts[i].v;
	return NAN;
}

void *map_anon(size_t len)
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
void write_pages(volatile uint8_t *p, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		p[i * PG] = (uint8_t)(i | 1);
}

void cm_counters(int sfd, struct meas *m, size_t pages)
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
int map_setup(struct run *r, int file, int session, int flags, size_t len)
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
void map_done(struct run *r, size_t len)
{
	if (r->fd >= 0)
		cm_counters(r->fd, &r->m, r->pages);
	munmap(r->p, len);
	if (r->fd >= 0)
		cm_close(r->fd);
}

int write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	close(fd);
	return ok ? 0 : -1;
}

/* --------------------------------------------------------------- files --- */

/* A file of @size bytes with a non-zero pattern, on disk, in the cache. */
int make_file(char *path, size_t plen, const char *dir, const char *name,
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
void fs_name(const char *dir, char *buf, size_t len)
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

size_t free_bytes(const char *dir)
{
	struct statvfs sv;

	if (statvfs(dir, &sv))
		return 0;
	return (size_t)sv.f_bavail * sv.f_frsize;
}
