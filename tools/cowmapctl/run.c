// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl run: run an unmodified program with some of its files routed
 * into sessions (libcowmap-preload.so, userlib/preload/). See docs/run.md.
 *
 * One session per routed file for the whole run: attached here before the
 * program starts, its fd left open across exec (moved to a high number so
 * that shells' own low fds do not land on it) and named in COWMAP_RUN. The
 * preload library, in the program and in every dynamically linked child
 * that keeps the environment, gives each open of a routed file a new view
 * of that session. When the program is gone: commit, then keep, merge or
 * discard.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowmapctl.h"
#include "cowmap-paths.h"	/* COWMAP_PRELOADDIR (mk/user.mk) */

#define PRELOAD_NAME "libcowmap-preload.so"
/* More routed files than this is a usage error (each holds an fd). */
#define MAX_ROUTED 4096
/* Session fds go from here up, if RLIMIT_NOFILE leaves room. */
#define HIGH_FD 600

static const char help_run[] =
"Usage: cowmapctl run [--file PATH]... [--dir DIR]... [--log DIR]\n"
"                     [--keep | --merge | --discard] -- PROGRAM [ARGS...]\n"
"\n"
"Run PROGRAM (unmodified, dynamically linked) with every open of the routed\n"
"files going to a cowmap session on that file instead of the file: one\n"
"session per file, shared by the program's threads and the children it\n"
"forks or execs. The files themselves are never written, except by --merge\n"
"at the end. When PROGRAM has exited, each session is committed, then:\n"
"\n"
"  -f, --file PATH   route the regular file PATH (repeatable)\n"
"  -d, --dir DIR     route every regular file under DIR, as it is when\n"
"                    PROGRAM starts (repeatable; files created later are not\n"
"                    routed)\n"
"  -l, --log DIR     give every session a journal file in DIR (durable commit)\n"
"  -k, --keep        keep the sessions with changes as orphans and print their\n"
"                    ids, for cowmapctl merge/dump/discard (the default)\n"
"  -m, --merge       merge each session into its file (kernel merge); on a\n"
"                    conflict nothing of that session is written, it is kept,\n"
"                    and the exit status is 3. Only if PROGRAM exited with 0\n"
"  -x, --discard     drop the sessions\n"
"\n"
"Exit status: PROGRAM's; 128+N if a signal N killed it (the sessions are\n"
"kept); 127 if PROGRAM is not found, 126 if it cannot be run; 3 merge\n"
"conflicts; 1 an error of cowmapctl (a statically linked or setuid PROGRAM,\n"
"which a preload library cannot route, is refused before it starts); 2 a\n"
"usage error. The report goes to standard error. The preload library is\n"
"$COWMAP_PRELOAD if set, else ../lib/" PRELOAD_NAME " next to the\n"
"cowmapctl binary (a build tree), else " COWMAP_PRELOADDIR "/" PRELOAD_NAME ".\n"
"See docs/run.md for what is routed and what is not.\n";

struct routed {
	char *path;
	dev_t dev;
	ino_t ino;
	int fd;			/* session fd, -1 before attach */
	uint64_t id;
	char *log;		/* journal file, or NULL */
};

static struct routed *rt;
static size_t nrt;
static int too_many, walk_failed;

static int add_routed(const char *path, const struct stat *st)
{
	struct routed *v;

	for (size_t i = 0; i < nrt; i++)
		if (rt[i].dev == st->st_dev && rt[i].ino == st->st_ino)
			return 0;	/* the same file twice, or a hard link */
	if (nrt >= MAX_ROUTED) {
		too_many = 1;
		return -1;
	}
	v = realloc(rt, (nrt + 1) * sizeof(*rt));
	if (!v)
		return -1;
	rt = v;
	rt[nrt] = (struct routed){ .path = strdup(path), .dev = st->st_dev,
				   .ino = st->st_ino, .fd = -1 };
	if (!rt[nrt].path)
		return -1;
	nrt++;
	return 0;
}

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	if (type == FTW_F && S_ISREG(st->st_mode))
		return add_routed(path, st) ? 1 : 0;
	if (type == FTW_DNR || type == FTW_NS) {
		err("--dir: %s: cannot read it", path);
		walk_failed = 1;
		return 1;
	}
	return 0;
}

/*
 * PROGRAM through PATH, as a shell finds it: a malloc'ed path, or NULL
 * with errno ENOENT (not found) or EACCES (found, not executable).
 */
static char *find_program(const char *prog)
{
	const char *path = getenv("PATH");
	int eacces = 0;
	char *buf;

	if (strchr(prog, '/')) {
		if (access(prog, X_OK))
			return NULL;
		return strdup(prog);
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	buf = malloc(strlen(path) + strlen(prog) + 2);
	if (!buf)
		return NULL;
	for (const char *p = path;; p++) {
		const char *e = strchrnul(p, ':');
		int n = e - p;
		struct stat st;

		sprintf(buf, "%.*s%s%s", n, n ? p : ".", "/", prog);
		if (!stat(buf, &st) && S_ISREG(st.st_mode)) {
			if (!access(buf, X_OK))
				return buf;
			eacces = 1;
		}
		if (!*e)
			break;
		p = e;
	}
	free(buf);
	errno = eacces ? EACCES : ENOENT;
	return NULL;
}

/*
 * Can a preload library route @path? 0 yes; else a message and 1. An ELF
 * file needs a program interpreter (a statically linked one has none); a
 * script's interpreter is checked in turn.
 */
static int routable(const char *path, int depth)
{
	unsigned char buf[256];
	Elf64_Ehdr eh;
	struct stat st;
	ssize_t n;
	int fd, interp = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		err("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (st.st_mode & (S_ISUID | S_ISGID)) {
		close(fd);
		err("%s is set-user-ID or set-group-ID: the dynamic loader ignores"
		    " LD_PRELOAD for it, so its files cannot be routed; not started", path);
		return 1;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n >= 2 && buf[0] == '#' && buf[1] == '!') {
		char *p, *e;

		close(fd);
		buf[n] = 0;
		p = (char *)buf + 2 + strspn((char *)buf + 2, " \t");
		e = p + strcspn(p, " \t\n");
		*e = 0;
		if (!*p || depth > 4) {
			err("%s: cannot tell what interprets this script; not started", path);
			return 1;
		}
		return routable(p, depth + 1);
	}
	if (n < (ssize_t)sizeof(eh) || memcmp(buf, ELFMAG, SELFMAG)) {
		close(fd);
		err("%s: neither an ELF program nor a #! script; not started", path);
		return 1;
	}
	memcpy(&eh, buf, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr)) {
		close(fd);
		err("%s: not a 64-bit ELF program; not started", path);
		return 1;
	}
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (off_t)i * sizeof(ph)) !=
		    sizeof(ph))
			break;
		if (ph.p_type == PT_INTERP)
			interp = 1;
	}
	close(fd);
	if (!interp) {
		err("%s is statically linked: a preload library cannot route its files,"
		    " it would write them directly; not started", path);
		return 1;
	}
	return 0;
}

/* The preload library: $COWMAP_PRELOAD, the build tree's, the installed one. */
static char *find_preload(void)
{
	const char *env = getenv("COWMAP_PRELOAD");
	char exe[PATH_MAX], *p, *s;
	ssize_t n;

	if (env && *env) {
		if (access(env, R_OK)) {
			err("COWMAP_PRELOAD=%s: %s", env, strerror(errno));
			return NULL;
		}
		return realpath(env, NULL);
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		p = strrchr(exe, '/');
		if (p) {
			*p = 0;
			if (asprintf(&s, "%s/../lib/%s", exe, PRELOAD_NAME) > 0) {
				if (!access(s, R_OK)) {
					p = realpath(s, NULL);
					free(s);
					return p;
				}
				free(s);
			}
		}
	}
	if (!access(COWMAP_PRELOADDIR "/" PRELOAD_NAME, R_OK))
		return strdup(COWMAP_PRELOADDIR "/" PRELOAD_NAME);
	err("%s not found (in %s, next to cowmapctl or through $COWMAP_PRELOAD)",
	    PRELOAD_NAME, COWMAP_PRELOADDIR);
	return NULL;
}

/* A session fd that survives exec, at a high number. */
static int keep_fd(int fd, int base)
{
	int nfd = fcntl(fd, F_DUPFD, base);

	close(fd);
	return nfd;
}

static int attach_all(const char *logdir)
{
	struct rlimit rl;
	int base = 3;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < HIGH_FD + nrt + 64) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur >= HIGH_FD + nrt + 64)
			base = HIGH_FD;
	}
	for (size_t i = 0; i < nrt; i++) {
		struct routed *r = &rt[i];
		struct stat st;
		int fd;

		if (logdir) {
			const char *b = strrchr(r->path, '/');

			b = b ? b + 1 : r->path;
			for (int k = 0;; k++) {
				free(r->log);
				if (asprintf(&r->log, k ? "%s/%s.%d.%d.log" : "%s/%s.%d.log",
					     logdir, b, (int)getpid(), k) < 0) {
					r->log = NULL;
					err("%s", strerror(ENOMEM));
					return -1;
				}
				if (lstat(r->log, &st) && errno == ENOENT)
					break;
			}
		}
		fd = cowmap_session_open(r->path, r->log, &r->id);
		if (fd < 0) {
			fail(fd == -ENODEV ? "open " COWMAP_DEVICE_PATH : r->path, fd);
			return -1;
		}
		r->fd = keep_fd(fd, base);
		if (r->fd < 0) {
			err("%s: %s", r->path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static char *run_env(void)
{
	size_t len = 3, n = 0;
	char *s;

	for (size_t i = 0; i < nrt; i++)
		len += 5 * 21;
	s = malloc(len);
	if (!s)
		return NULL;
	n = sprintf(s, "1");
	for (size_t i = 0; i < nrt; i++)
		n += sprintf(s + n, ";%d,%" PRIu64 ",%u,%u,%" PRIu64, rt[i].fd, rt[i].id,
			     major(rt[i].dev), minor(rt[i].dev), (uint64_t)rt[i].ino);
	return s;
}

/* SIGTERM and SIGHUP to cowmapctl go to the program: it ends, we finish. */
static volatile pid_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* The end of one session. @action: 'k', 'm', 'x'. EX_* */
static int finish(struct routed *r, int action, int durable)
{
	struct cowmap_status st;
	struct cowmap_merge m;
	struct stat fst;
	int c, target;

	c = cowmap_commit(r->fd, durable, NULL);
	if (c < 0)
		return fail("commit", c);
	c = cowmap_status(r->fd, &st);
	if (c)
		return fail("status", c);
	if (!st.journal_records && action != 'x') {
		fprintf(stderr, "cowmapctl run: %s: unchanged\n", r->path);
		cowmap_discard(r->fd);
		close(r->fd);
		r->fd = -1;
		return EX_OK;
	}
	if (action == 'x') {
		c = cowmap_discard(r->fd);
		close(r->fd);
		r->fd = -1;
		if (c)
			return fail("discard", c);
		fprintf(stderr, "cowmapctl run: %s: session %" PRIu64 " discarded\n",
			r->path, r->id);
		return EX_OK;
	}
	if (action == 'm') {
		target = open(r->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (target < 0 || fstat(target, &fst) || fst.st_dev != r->dev ||
		    fst.st_ino != r->ino) {
			err("%s: %s; session %" PRIu64 " kept", r->path, target < 0 ?
			    strerror(errno) : "no longer the file the session was attached to",
			    r->id);
			if (target >= 0)
				close(target);
			close(r->fd);
			r->fd = -1;
			return EX_ERR;
		}
		c = cowmap_merge(r->fd, target, 0, NULL, 0, &m);
		close(target);
		if (c < 0) {
			fail("merge", c);
			fprintf(stderr, "cowmapctl run: %s: session %" PRIu64 " kept\n",
				r->path, r->id);
			close(r->fd);
			r->fd = -1;
			return EX_ERR;
		}
		if (c > 0) {
			fprintf(stderr, "cowmapctl run: %s: %d of %llu records conflict with"
				" the file; nothing written; session %" PRIu64 " kept (cowmapctl"
				" merge %" PRIu64 " --into FILE --dry-run shows them)\n",
				r->path, c, (unsigned long long)m.records, r->id, r->id);
			close(r->fd);
			r->fd = -1;
			return EX_CONFLICT;
		}
		cowmap_discard(r->fd);
		close(r->fd);
		r->fd = -1;
		fprintf(stderr, "cowmapctl run: %s: session %" PRIu64 " merged (%llu records,"
			" %llu bytes written)\n", r->path, r->id,
			(unsigned long long)m.applied, (unsigned long long)m.written);
		return EX_OK;
	}
	close(r->fd);
	r->fd = -1;
	fprintf(stderr, "cowmapctl run: %s: session %" PRIu64 " kept (%llu records%s%s)\n",
		r->path, r->id, (unsigned long long)st.journal_records,
		r->log ? ", journal " : "", r->log ? r->log : "");
	return EX_OK;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "dir", required_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'l' },
		{ "keep", no_argument, NULL, 'k' },
		{ "merge", no_argument, NULL, 'm' },
		{ "discard", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *logdir = NULL;
	int action = 0, c, ret = EX_OK, status, sig = 0, code;
	char *prog, *preload, *env, *ldp;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	struct stat st;
	pid_t pid;

	if (want_help(argc, argv, help_run))
		return EX_OK;
	while ((c = getopt_long(argc, argv, "+:f:d:l:kmx", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (stat(optarg, &st)) {
				err("--file %s: %s", optarg, strerror(errno));
				return EX_ERR;
			}
			if (!S_ISREG(st.st_mode)) {
				err("--file %s: not a regular file", optarg);
				return EX_ERR;
			}
			if (add_routed(optarg, &st))
				goto toomany;
			break;
		case 'd':
			if (stat(optarg, &st)) {
				err("--dir %s: %s", optarg, strerror(errno));
				return EX_ERR;
			}
			if (!S_ISDIR(st.st_mode)) {
				err("--dir %s: not a directory", optarg);
				return EX_ERR;
			}
			if (nftw(optarg, walk_one, 32, FTW_PHYS | FTW_MOUNT))
				goto toomany;
			break;
		case 'l':
			if (once(&logdir, "--log", optarg))
				return EX_USAGE;
			break;
		case 'k':
		case 'm':
		case 'x':
			if (action && action != c)
				return usage_err("--keep, --merge and --discard exclude each other");
			action = c;
			break;
		default:
			return bad_option(c, argv);
		}
	}
	if (!action)
		action = 'k';
	if (optind >= argc)
		return usage_err("no PROGRAM given (cowmapctl run --file F -- PROGRAM ARGS)");
	if (!nrt && !too_many)
		return usage_err("nothing to route: give --file or --dir (with a regular file in it)");
	if (logdir && (stat(logdir, &st) || !S_ISDIR(st.st_mode))) {
		err("--log %s: %s", logdir, errno && !stat(logdir, &st) ? "not a directory" :
		    strerror(errno));
		return EX_ERR;
	}
	prog = find_program(argv[optind]);
	if (!prog) {
		code = errno == EACCES ? 126 : 127;
		err("%s: %s", argv[optind], code == 126 ? "permission denied" :
		    "command not found");
		return code;
	}
	if (routable(prog, 0))
		return EX_ERR;
	preload = find_preload();
	if (!preload)
		return EX_ERR;
	if (strpbrk(preload, " :")) {
		err("%s: the loader cannot take a path with a space or a colon", preload);
		return EX_ERR;
	}
	if (attach_all(logdir))
		goto out;
	env = run_env();
	ldp = getenv("LD_PRELOAD");
	if (!env || asprintf(&ldp, "%s%s%s", preload, ldp && *ldp ? ":" : "",
			     ldp ? ldp : "") < 0) {
		err("%s", strerror(ENOMEM));
		goto out;
	}
	for (size_t i = 0; i < nrt; i++)
		fprintf(stderr, "cowmapctl run: %s: session %" PRIu64 "\n", rt[i].path, rt[i].id);
	fflush(NULL);
	/* Like a shell: ^C and ^\ are for the program; we finish after it. */
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	pid = fork();
	if (pid < 0) {
		err("fork: %s", strerror(errno));
		goto out;
	}
	if (!pid) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		if (setenv("COWMAP_RUN", env, 1) || setenv("LD_PRELOAD", ldp, 1))
			_exit(126);
		execv(prog, argv + optind);
		fprintf(stderr, "cowmapctl: run: %s: %s\n", prog, strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	child_pid = pid;
	{
		struct sigaction fw = { .sa_handler = forward };

		sigaction(SIGTERM, &fw, NULL);
		sigaction(SIGHUP, &fw, NULL);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			err("waitpid: %s", strerror(errno));
			goto out;
		}
	}
	if (WIFSIGNALED(status)) {
		sig = WTERMSIG(status);
		code = 128 + sig;
		fprintf(stderr, "cowmapctl run: %s killed by signal %d (%s); sessions kept\n",
			argv[optind], sig, strsignal(sig));
		action = 'k';
	} else {
		code = WEXITSTATUS(status);
		if (code && action == 'm') {
			fprintf(stderr, "cowmapctl run: %s exited with %d: not merged,"
				" sessions kept\n", argv[optind], code);
			action = 'k';
		}
	}
	for (size_t i = 0; i < nrt; i++) {
		c = finish(&rt[i], action, logdir != NULL);
		if (c == EX_CONFLICT && ret == EX_OK)
			ret = EX_CONFLICT;
		else if (c == EX_ERR)
			ret = EX_ERR;
	}
	if (ret == EX_ERR)
		return EX_ERR;
	if (ret == EX_CONFLICT && !code)
		return EX_CONFLICT;
	return code;
toomany:
	if (walk_failed)
		return EX_ERR;
	if (too_many)
		err("more than %d files to route", MAX_ROUTED);
	else
		err("%s", strerror(errno ? errno : ENOMEM));
	return EX_ERR;
out:
	/* Attached sessions without changes are freed by their close. */
	for (size_t i = 0; i < nrt; i++)
		if (rt[i].fd >= 0)
			close(rt[i].fd);
	return EX_ERR;
}
