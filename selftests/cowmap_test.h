/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the cowmap selftests. Tests use kselftest_harness.h from
 * the kernel source package; files go to $COWMAP_TESTDIR (the runner points
 * it at a directory on tmpfs, then on ext4).
 */
#ifndef COWMAP_TEST_H
#define COWMAP_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/cowmap.h>

#define PG 4096UL

static inline const char *cm_dir(void)
{
	const char *d = getenv("COWMAP_TESTDIR");

	return d && *d ? d : "/tmp";
}

/* The byte a test file holds at @off in generation @gen. */
static inline uint8_t cm_pat(off_t off, unsigned int gen)
{
	return (uint8_t)(off * 131 + (off >> 12) * 7 + gen * 29 + 1);
}

static inline void cm_fill(uint8_t *buf, off_t off, size_t len, unsigned int gen)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = cm_pat(off + i, gen);
}

/* Does @buf hold generation @gen's bytes for file offset @off? */
static inline int cm_is_pat(const uint8_t *buf, off_t off, size_t len,
			    unsigned int gen)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != cm_pat(off + i, gen))
			return 0;
	return 1;
}

/*
 * Create a file of @size bytes of generation 0 in the test directory.
 * Returns an fd opened with @flags (plus O_CREAT|O_TRUNC); the path goes to
 * @path. The file is unlinked by cm_unlink() or left for inspection.
 */
static inline int cm_mkfile(char *path, size_t pathlen, const char *name,
			    size_t size, int flags)
{
	uint8_t buf[PG];
	int fd, wfd;

	snprintf(path, pathlen, "%s/%s.%d", cm_dir(), name, getpid());
	wfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (wfd < 0)
		return -1;
	for (size_t off = 0; off < size; off += PG) {
		size_t n = size - off < PG ? size - off : PG;

		cm_fill(buf, off, n, 0);
		if (pwrite(wfd, buf, n, off) != (ssize_t)n) {
			close(wfd);
			return -1;
		}
	}
	if ((flags & O_ACCMODE) == O_RDWR)
		return wfd;
	fd = open(path, flags | O_CLOEXEC);
	close(wfd);
	return fd;
}

static inline int cm_open(void)
{
	return open(COWMAP_DEVICE_PATH, O_RDWR | O_CLOEXEC);
}

static inline int cm_handshake(int fd)
{
	struct cowmap_api a = { .api = COWMAP_API };

	return ioctl(fd, COWMAP_IOC_API, &a);
}

static inline int cm_attach(int fd, int backing)
{
	struct cowmap_attach a = { .fd = backing };

	return ioctl(fd, COWMAP_IOC_ATTACH, &a);
}

/* A new session on @backing: open, handshake, attach. -1 with errno. */
static inline int cm_session(int backing)
{
	int fd = cm_open();
	int saved;

	if (fd < 0)
		return -1;
	if (cm_handshake(fd) || cm_attach(fd, backing)) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* A new session on @backing whose journal file is @jfd. -1 with errno. */
static inline int cm_journal_session(int backing, int jfd)
{
	struct cowmap_attach a = { .fd = backing, .flags = COWMAP_ATTACH_JOURNAL,
				   .journal_fd = jfd };
	int fd = cm_open();
	int saved;

	if (fd < 0)
		return -1;
	if (cm_handshake(fd) || ioctl(fd, COWMAP_IOC_ATTACH, &a)) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * Close a session without keeping it: a session closed with changes would
 * stay as an orphan (and keep the module loaded).
 */
static inline void cm_end(int fd)
{
	ioctl(fd, COWMAP_IOC_DISCARD, 0);
	close(fd);
}

static inline int cm_commit(int fd, unsigned int flags)
{
	struct cowmap_commit c = { .flags = flags };

	return ioctl(fd, COWMAP_IOC_COMMIT, &c) ? -1 : (int)c.records;
}

static inline int cm_adopt(int fd, uint64_t id)
{
	struct cowmap_adopt a = { .session_id = id };

	return ioctl(fd, COWMAP_IOC_ADOPT, &a);
}

/* A new fd that adopted orphan @id; -1 with errno. */
static inline int cm_adopt_new(uint64_t id)
{
	int fd = cm_open();
	int saved;

	if (fd < 0)
		return -1;
	if (cm_handshake(fd) || cm_adopt(fd, id)) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static inline int cm_status(int fd, struct cowmap_status *st)
{
	memset(st, 0, sizeof(*st));
	return ioctl(fd, COWMAP_IOC_STATUS, st);
}

/* COWMAP_IOC_REFRESH; *@invalidated (if not NULL) gets the pages unmapped. */
static inline int cm_refresh(int fd, uint64_t *invalidated)
{
	struct cowmap_refresh r;

	memset(&r, 0, sizeof(r));
	if (ioctl(fd, COWMAP_IOC_REFRESH, &r))
		return -1;
	if (invalidated)
		*invalidated = r.invalidated;
	return 0;
}

static inline void *cm_map(int fd, size_t len, off_t off)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
}

/* Write @len bytes of @buf as the whole of @path. 0, or -1 with errno. */
static inline int cm_put_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* The whole of @path, malloc'ed and NUL-terminated; *@len its size. */
static __attribute__((noinline, unused)) char *cm_get_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	buf = malloc(st.st_size + 1);
	if (buf && pread(fd, buf, st.st_size, 0) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	if (buf) {
		buf[st.st_size] = 0;
		if (len)
			*len = st.st_size;
	}
	return buf;
}

/* Module parameters, read and written through sysfs. */
static inline long cm_param_get(const char *name)
{
	char path[128], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/cowmap/parameters/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

static inline int cm_param_set(const char *name, long val)
{
	char path[128], buf[64];
	int fd, n, ok;

	snprintf(path, sizeof(path), "/sys/module/cowmap/parameters/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", val);
	ok = write(fd, buf, n) == n;
	close(fd);
	return ok ? 0 : -1;
}

/*
 * Probing memory that may raise SIGBUS or SIGSEGV. Per thread, so threads
 * can probe concurrently. Returns 0 or the signal number.
 */
static __thread sigjmp_buf cm_jmp;
static __thread volatile int cm_jmp_armed;

static void cm_sig_handler(int sig)
{
	if (cm_jmp_armed)
		siglongjmp(cm_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline void cm_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = cm_sig_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* Copy @len bytes from @src to @dst; 0, or the signal that stopped it. */
static inline int cm_try_copy(void *dst, const void *src, size_t len)
{
	int sig;

	cm_catch_signals();
	sig = sigsetjmp(cm_jmp, 1);
	if (sig) {
		cm_jmp_armed = 0;
		return sig;
	}
	cm_jmp_armed = 1;
	memcpy(dst, src, len);
	cm_jmp_armed = 0;
	return 0;
}

static inline int cm_try_read(const void *addr)
{
	uint8_t b;

	return cm_try_copy(&b, addr, 1);
}

static inline int cm_try_write(void *addr, uint8_t val)
{
	return cm_try_copy(addr, &val, 1);
}

/* /proc/PID/wchan of task @pid into @buf: where it sleeps, "" if unknown. */
static inline const char *cm_wchan(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = 0;
	if (!strcmp(buf, "0"))
		buf[0] = 0;
	return buf;
}

/*
 * Does task @pid sleep in a kernel function whose name has @what in it
 * ("msleep", "cowmap_status")? True too when the kernel does not tell
 * (no kallsyms, not root): the caller then has only the task's state to
 * go by.
 */
static inline bool cm_wchan_has(pid_t pid, const char *what)
{
	char buf[128];

	return !*cm_wchan(pid, buf, sizeof(buf)) || strstr(buf, what);
}

/*
 * Wait up to @ms for task @pid to sleep in the kernel uninterruptibly or
 * killably (state D in /proc: msleep(), a killable lock wait); false if
 * it never did.
 */
static inline bool cm_wait_sleeping(pid_t pid, int ms)
{
	char path[64], buf[256], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	for (int i = 0; i < ms / 10; i++) {
		FILE *f = fopen(path, "re");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = 0;
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'D')
			return true;
		usleep(10000);
	}
	return false;
}

/* Wait for @pid; its exit status, or 128 + signal. */
static inline int cm_wait(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif /* COWMAP_TEST_H */
