// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/*
 * libcowmap-preload.so: the LD_PRELOAD half of "cowmapctl run" (docs/run.md).
 *
 * cowmapctl attaches one session per routed file and leaves the session fds
 * open across exec (not close-on-exec), then names them in the environment:
 *
 *   COWMAP_RUN=1;FD,SESSION_ID,DEV_MAJOR,DEV_MINOR,INO;FD,...
 *
 * This library interposes the calls that take a path (open and its
 * variants, fopen, freopen, truncate, the stat family, rename). A path that
 * resolves (the kernel resolves it: a stat of it, following symlinks unless
 * the call says not to) to the device and inode of a routed file gets a new
 * view of that file's session (COWMAP_IOC_VIEW) instead of the file: its own
 * offset and flags, its reads and writes the session's. Everything fd-based
 * then goes to the view without help from here.
 *
 * Before a session fd is used it is checked (fstat, COWMAP_IOC_STATUS): it
 * must still be that session on that file; a program may have closed it or
 * put something else on its number. If it is not, the open fails (EIO, and
 * a message on stderr): a routed open never reaches the real file.
 *
 * The library does not link libcowmap: it is loaded into any program, and
 * speaks the two ioctls it needs itself.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/cowmap.h>

#define EXPORT __attribute__((visibility("default")))

struct route {
	int fd;			/* the inherited session fd */
	uint64_t sid;		/* its session id */
	uint32_t maj, min;	/* the file's device */
	uint64_t ino;		/* and inode */
};

static struct route *routes;
static size_t nroutes;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "cowmap-preload[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n++] = '\n';
	if (write(2, buf, n) < 0) {
		/* Nothing else to say it with. */
	}
}

/* COWMAP_RUN, parsed once; a malformed one stops the program (fail safe). */
__attribute__((constructor)) static void preload_init(void)
{
	const char *env = getenv("COWMAP_RUN");
	const char *p;
	size_t n = 0;

	if (!env)
		return;
	if (strncmp(env, "1;", 2))
		goto bad;
	for (p = env + 2; *p; p++)
		n += *p == ';';
	routes = calloc(n + 1, sizeof(*routes));
	if (!routes)
		goto bad;
	p = env + 2;
	while (*p) {
		struct route *r = &routes[nroutes];
		unsigned long long v[5];
		char *end;

		for (int i = 0; i < 5; i++) {
			errno = 0;
			v[i] = strtoull(p, &end, 10);
			if (errno || end == p || *end != (i < 4 ? ',' : *end))
				goto bad;
			p = end + (i < 4);
		}
		if (*p && *p != ';')
			goto bad;
		if (*p)
			p++;
		if (v[0] > INT32_MAX || v[2] > UINT32_MAX || v[3] > UINT32_MAX)
			goto bad;
		r->fd = v[0];
		r->sid = v[1];
		r->maj = v[2];
		r->min = v[3];
		r->ino = v[4];
		if (++nroutes > n + 1)
			goto bad;
	}
	return;
bad:
	say("COWMAP_RUN is malformed; stopping rather than letting the routed files be written");
	_exit(126);
}

/* The stat the kernel would do: no interposed function on the way. */
static int raw_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return syscall(SYS_newfstatat, dirfd, path, st, flags);
}

static struct route *find(dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < nroutes; i++)
		if (routes[i].ino == ino && routes[i].maj == major(dev) &&
		    routes[i].min == minor(dev))
			return &routes[i];
	return NULL;
}

/* The routed file @path (at @dirfd) resolves to, or NULL. Keeps errno. */
static struct route *lookup(int dirfd, const char *path, int nofollow)
{
	int e = errno;
	struct stat st;
	struct route *r = NULL;

	if (!nroutes || !path)
		return NULL;
	if (!raw_fstatat(dirfd, path, &st, nofollow ? AT_SYMLINK_NOFOLLOW : 0))
		r = find(st.st_dev, st.st_ino);
	errno = e;
	return r;
}

/* Is @r's fd still its session? Else say so. */
static int session_ok(const struct route *r, const char *path)
{
	struct cowmap_status s;
	struct stat st;

	memset(&s, 0, sizeof(s));
	if (syscall(SYS_fstat, r->fd, &st) || !S_ISCHR(st.st_mode) ||
	    ioctl(r->fd, COWMAP_IOC_STATUS, &s) || s.session_id != r->sid ||
	    s.ino != r->ino || s.dev_major != r->maj || s.dev_minor != r->min) {
		say("%s is routed to cowmap session %llu, but fd %d is no longer that session"
		    " (the program closed or replaced it); refusing to open the real file",
		    path, (unsigned long long)r->sid, r->fd);
		return 0;
	}
	return 1;
}

/* A new view of @r's session for an open() with @flags: the fd or -1. */
static int view_open(const struct route *r, int dirfd, const char *path, int flags)
{
	int acc = flags & O_ACCMODE, fd, e;
	struct cowmap_view v;

	if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
		errno = EEXIST;
		return -1;
	}
	if (flags & O_DIRECTORY) {
		errno = ENOTDIR;
		return -1;
	}
	if (flags & O_DIRECT) {
		/* A view refuses O_DIRECT. */
		errno = EINVAL;
		return -1;
	}
	/* What the real open would have checked: the caller's permissions. */
	if (faccessat(dirfd, path, acc == O_RDONLY ? R_OK : acc == O_WRONLY ? W_OK :
		      R_OK | W_OK, AT_EACCESS))
		return -1;
	if (!session_ok(r, path)) {
		errno = EIO;
		return -1;
	}
	memset(&v, 0, sizeof(v));
	v.flags = (acc == O_RDONLY ? 0 : COWMAP_VIEW_RDWR) |
		  (flags & O_CLOEXEC ? COWMAP_VIEW_CLOEXEC : 0);
	if (ioctl(r->fd, COWMAP_IOC_VIEW, &v))
		return -1;
	fd = v.fd;
	if ((flags & O_TRUNC) && acc != O_RDONLY && ftruncate(fd, 0))
		goto fail;
	if ((flags & (O_APPEND | O_NONBLOCK)) &&
	    fcntl(fd, F_SETFL, flags & (O_APPEND | O_NONBLOCK)))
		goto fail;
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	static int (*fn)(int, const char *, int, ...);

	if (!fn)
		fn = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	return fn(dirfd, path, flags, mode);
}

static int route_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	struct route *r;

	/* O_PATH opens nothing for reading or writing. */
	if (!(flags & O_PATH)) {
		r = lookup(dirfd, path, flags & O_NOFOLLOW);
		if (r)
			return view_open(r, dirfd, path, flags);
	}
	return real_openat(dirfd, path, flags, mode);
}

#define MODE_ARG(flags, mode) do {					\
	va_list ap;							\
	mode = 0;							\
	if ((flags) & O_CREAT || ((flags) & O_TMPFILE) == O_TMPFILE) {	\
		va_start(ap, flags);					\
		mode = va_arg(ap, mode_t);				\
		va_end(ap);						\
	}								\
} while (0)

EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return route_openat(AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return route_openat(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return route_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return route_openat(dirfd, path, flags | O_LARGEFILE, mode);
}

/* The _FORTIFY_SOURCE variants: no mode (O_CREAT is not allowed there). */
EXPORT int __open_2(const char *path, int flags)
{
	return route_openat(AT_FDCWD, path, flags, 0);
}

EXPORT int __open64_2(const char *path, int flags)
{
	return route_openat(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return route_openat(dirfd, path, flags, 0);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	return route_openat(dirfd, path, flags | O_LARGEFILE, 0);
}

EXPORT int creat(const char *path, mode_t mode)
{
	return route_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

EXPORT int creat64(const char *path, mode_t mode)
{
	return route_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_LARGEFILE, mode);
}

/* fopen(3)'s mode as open(2) flags, or -1. */
static int fmode_flags(const char *mode)
{
	int flags;

	switch (*mode) {
	case 'r':
		flags = O_RDONLY;
		break;
	case 'w':
		flags = O_WRONLY | O_CREAT | O_TRUNC;
		break;
	case 'a':
		flags = O_WRONLY | O_CREAT | O_APPEND;
		break;
	default:
		return -1;
	}
	for (const char *m = mode + 1; *m && *m != ','; m++) {
		if (*m == '+')
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		else if (*m == 'x')
			flags |= O_EXCL;
		else if (*m == 'e')
			flags |= O_CLOEXEC;
	}
	return flags;
}

static FILE *route_fopen(const char *path, const char *mode, const char *name)
{
	static FILE *(*fn)(const char *, const char *);
	int flags = mode ? fmode_flags(mode) : -1;
	struct route *r = flags < 0 ? NULL : lookup(AT_FDCWD, path, 0);
	FILE *f;
	int fd, e;

	if (r) {
		fd = view_open(r, AT_FDCWD, path, flags);
		if (fd < 0)
			return NULL;
		f = fdopen(fd, mode);
		if (!f) {
			e = errno;
			close(fd);
			errno = e;
		}
		return f;
	}
	if (!fn)
		fn = (FILE *(*)(const char *, const char *))dlsym(RTLD_NEXT, name);
	if (!fn) {
		errno = ENOSYS;
		return NULL;
	}
	return fn(path, mode);
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
	return route_fopen(path, mode, "fopen");
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
	return route_fopen(path, mode, "fopen64");
}

/*
 * freopen() of a routed file: the stream is reopened on /dev/null in the
 * same mode (so that its flags are right), then the view is put on its fd.
 */
static FILE *route_freopen(const char *path, const char *mode, FILE *stream,
			   const char *name)
{
	FILE *(*fn)(const char *, const char *, FILE *);
	int flags = mode ? fmode_flags(mode) : -1;
	struct route *r = NULL;
	char m[8];
	size_t k = 0;
	FILE *f;
	int fd, e;

	fn = (FILE *(*)(const char *, const char *, FILE *))dlsym(RTLD_NEXT, name);
	if (!fn) {
		errno = ENOSYS;
		return NULL;
	}
	if (path && flags >= 0)
		r = lookup(AT_FDCWD, path, 0);
	if (!r)
		return fn(path, mode, stream);
	fd = view_open(r, AT_FDCWD, path, flags);
	if (fd < 0) {
		e = errno;
		fclose(stream);
		errno = e;
		return NULL;
	}
	for (const char *p = mode; *p && *p != ',' && k < sizeof(m) - 1; p++)
		if (*p != 'x')
			m[k++] = *p;
	m[k] = 0;
	f = fn("/dev/null", m, stream);
	if (!f || dup3(fd, fileno(f), flags & O_CLOEXEC) < 0) {
		e = errno;
		if (f)
			fclose(f);
		close(fd);
		errno = e;
		return NULL;
	}
	close(fd);
	return f;
}

EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
	return route_freopen(path, mode, stream, "freopen");
}

EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
	return route_freopen(path, mode, stream, "freopen64");
}

static int route_truncate(const char *path, off_t len, const char *name)
{
	int (*fn)(const char *, off_t);
	struct route *r = lookup(AT_FDCWD, path, 0);
	int fd, ret, e;

	if (r) {
		fd = view_open(r, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		ret = ftruncate(fd, len);
		e = errno;
		close(fd);
		errno = e;
		return ret;
	}
	fn = (int (*)(const char *, off_t))dlsym(RTLD_NEXT, name);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	return fn(path, len);
}

EXPORT int truncate(const char *path, off_t len)
{
	return route_truncate(path, len, "truncate");
}

EXPORT int truncate64(const char *path, off_t len)
{
	return route_truncate(path, len, "truncate64");
}

/*
 * The stat family: a routed file shows its session, as fstat(2) of a view
 * does: the view's device, inode, size and blocks (programs compare
 * stat(path) with fstat(fd): SQLite does), the file's mode, owner, links
 * and times. @vst receives the view's stat; 0 or -1 (EIO: the session fd
 * is gone).
 */
static int view_stat(const struct route *r, const char *path, struct stat *vst)
{
	struct cowmap_view v;
	int ret;

	if (!session_ok(r, path)) {
		errno = EIO;
		return -1;
	}
	memset(&v, 0, sizeof(v));
	v.flags = COWMAP_VIEW_CLOEXEC;
	if (ioctl(r->fd, COWMAP_IOC_VIEW, &v))
		return -1;
	ret = syscall(SYS_fstat, v.fd, vst);
	close(v.fd);
	return ret;
}

/* After a successful stat of @st: patch it if it is a routed file. */
static int fix_stat(struct stat *st, const char *path)
{
	struct route *r = nroutes ? find(st->st_dev, st->st_ino) : NULL;
	struct stat vst;
	int e = errno;

	if (!r)
		return 0;
	if (view_stat(r, path, &vst))
		return -1;
	st->st_dev = vst.st_dev;
	st->st_ino = vst.st_ino;
	st->st_size = vst.st_size;
	st->st_blocks = vst.st_blocks;
	errno = e;
	return 0;
}

#define STAT_WRAPPER(name, args, call, path)				\
EXPORT int name args							\
{									\
	static int (*fn) args;						\
	int ret;							\
									\
	if (!fn)							\
		fn = (int (*) args)dlsym(RTLD_NEXT, #name);		\
	if (!fn) {							\
		errno = ENOSYS;						\
		return -1;						\
	}								\
	ret = fn call;							\
	if (!ret && fix_stat((struct stat *)st, path))				\
		return -1;						\
	return ret;							\
}

/* struct stat and struct stat64 are the same on the 64-bit ABIs. */
_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "stat64");

STAT_WRAPPER(stat, (const char *p, struct stat *st), (p, st), p)
STAT_WRAPPER(stat64, (const char *p, struct stat64 *st), (p, st), p)
STAT_WRAPPER(lstat, (const char *p, struct stat *st), (p, st), p)
STAT_WRAPPER(lstat64, (const char *p, struct stat64 *st), (p, st), p)
STAT_WRAPPER(fstatat, (int d, const char *p, struct stat *st, int f), (d, p, st, f), p)
STAT_WRAPPER(fstatat64, (int d, const char *p, struct stat64 *st, int f), (d, p, st, f), p)
/* glibc before 2.33 (programs built then call these). */
STAT_WRAPPER(__xstat, (int v, const char *p, struct stat *st), (v, p, st), p)
STAT_WRAPPER(__xstat64, (int v, const char *p, struct stat *st), (v, p, st), p)
STAT_WRAPPER(__lxstat, (int v, const char *p, struct stat *st), (v, p, st), p)
STAT_WRAPPER(__lxstat64, (int v, const char *p, struct stat *st), (v, p, st), p)
STAT_WRAPPER(__fxstatat, (int v, int d, const char *p, struct stat *st, int f),
	     (v, d, p, st, f), p)
STAT_WRAPPER(__fxstatat64, (int v, int d, const char *p, struct stat *st, int f),
	     (v, d, p, st, f), p)

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask,
		 struct statx *stx)
{
	static int (*fn)(int, const char *, int, unsigned int, struct statx *);
	struct route *r;
	struct stat vst;
	int ret;

	if (!fn)
		fn = (int (*)(int, const char *, int, unsigned int, struct statx *))
			dlsym(RTLD_NEXT, "statx");
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	ret = fn(dirfd, path, flags, mask, stx);
	if (ret || !nroutes || !(stx->stx_mask & STATX_INO))
		return ret;
	r = find(makedev(stx->stx_dev_major, stx->stx_dev_minor), stx->stx_ino);
	if (!r)
		return ret;
	if (view_stat(r, path, &vst))
		return -1;
	stx->stx_dev_major = major(vst.st_dev);
	stx->stx_dev_minor = minor(vst.st_dev);
	stx->stx_ino = vst.st_ino;
	stx->stx_size = vst.st_size;
	stx->stx_blocks = vst.st_blocks;
	return 0;
}

/*
 * rename: a routed file can be neither replaced (the new file would escape
 * the session, and the merge would write into it) nor moved away (the merge
 * finds the file by its name).
 */
static int rename_refused(int olddir, const char *old, int newdir, const char *new)
{
	struct route *r = lookup(newdir, new, 1);
	const char *what = new;

	if (!r) {
		r = lookup(olddir, old, 1);
		what = old;
	}
	if (!r)
		return 0;
	say("rename of %s to %s refused: %s is routed to cowmap session %llu"
	    " (a rename would take it out of the session)", old, new, what,
	    (unsigned long long)r->sid);
	errno = EBUSY;
	return 1;
}

EXPORT int rename(const char *old, const char *new)
{
	if (rename_refused(AT_FDCWD, old, AT_FDCWD, new))
		return -1;
	return syscall(SYS_renameat2, AT_FDCWD, old, AT_FDCWD, new, 0);
}

EXPORT int renameat(int olddir, const char *old, int newdir, const char *new)
{
	if (rename_refused(olddir, old, newdir, new))
		return -1;
	return syscall(SYS_renameat2, olddir, old, newdir, new, 0);
}

EXPORT int renameat2(int olddir, const char *old, int newdir, const char *new,
		     unsigned int flags)
{
	if (rename_refused(olddir, old, newdir, new))
		return -1;
	return syscall(SYS_renameat2, olddir, old, newdir, new, flags);
}
