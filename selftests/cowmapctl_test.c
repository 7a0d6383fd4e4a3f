// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl end to end, in the VM: every subcommand and its bad arguments,
 * list/status of kept and attached sessions over netlink, dump over
 * netlink byte-identical to the kernel's read(2) stream, kernel merge and
 * offline merge giving the same file for the same journals, monitor
 * printing the events of a map/merge sequence in order, the seed demo both
 * ways, kill -9 of an offline in-place merge at random moments, and the
 * example program (docs/example.c, linked against libcowmap.so).
 *
 * cowmapctl is run through sh -c (fork/exec) with stdout and stderr
 * captured; it is found in PATH (/usr/bin in the guest).
 */
#include <dirent.h>
#include <ftw.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/sysmacros.h>
#include <stdarg.h>
#include <time.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"
#include "libcowmap.h"

#define SEED	"------------ Hello World! ------------"
#define SEEDX	"------------ Hexxx World! ------------"

/* --- running commands -------------------------------------------------------- */

struct res {
	int status;		/* exit status, or 128 + signal */
	char *out, *err;	/* NUL-terminated */
	size_t outlen, errlen;
};

static void res_free(struct res *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static void drain(int fd, char **buf, size_t *len, size_t *cap, int *open_)
{
	char tmp[8192];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n <= 0) {
		*open_ = 0;
		return;
	}
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
	}
	memcpy(*buf + *len, tmp, n);
	*len += n;
	(*buf)[*len] = 0;
}

/* Run a shell command line (printf-style); stdout and stderr captured. */
static int sh(struct res *r, const char *fmt, ...)
{
	size_t ocap = 1, ecap = 1;
	int po[2], pe[2], oo = 1, eo = 1, st;
	char *cmd;
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	memset(r, 0, sizeof(*r));
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	if (pipe(po) || pipe(pe))
		abort();
	pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	while (oo || eo) {
		struct pollfd p[2] = { { .fd = oo ? po[0] : -1, .events = POLLIN },
				       { .fd = eo ? pe[0] : -1, .events = POLLIN } };

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents)
			drain(po[0], &r->out, &r->outlen, &ocap, &oo);
		if (p[1].revents)
			drain(pe[0], &r->err, &r->errlen, &ecap, &eo);
	}
	close(po[0]);
	close(pe[0]);
	waitpid(pid, &st, 0);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	free(cmd);
	return r->status;
}

/* Start "cowmapctl ARGS" in the background, output into files. */
static pid_t spawn(const char *out, const char *err, const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	/*
	 * Emptied here, before the fork: a caller that waits for a word in
	 * @err must not find it in an earlier command's output.
	 */
	close(open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	close(open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	pid = fork();
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_APPEND);
		int e = open(err, O_WRONLY | O_APPEND);

		dup2(o, 1);
		dup2(e, 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	return pid;
}

/* Overwrite @path's bytes in place (same inode), then fsync. */
static int rewrite_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && pwrite(fd, buf, len, 0) == (ssize_t)len && !fsync(fd);

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

static int file_is(const char *path, const void *want, size_t len)
{
	size_t n;
	char *buf = cm_get_file(path, &n);
	int ok = buf && n == len && !memcmp(buf, want, len);

	free(buf);
	return ok;
}

static int files_equal(const char *a, const char *b)
{
	size_t na = 0, nb = 0;
	char *x = cm_get_file(a, &na), *y = cm_get_file(b, &nb);
	int ok = x && y && na == nb && !memcmp(x, y, na);

	free(x);
	free(y);
	return ok;
}

static int wait_for_text(const char *path, const char *needle, int ms)
{
	for (int t = 0; t < ms; t += 20) {
		char *s = cm_get_file(path, NULL);
		int found = s && strstr(s, needle);

		free(s);
		if (found)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* Wait for @pid, at most @ms; then kill it. Exit status or 128 + signal. */
static int wait_pid(pid_t pid, int ms)
{
	int st;

	for (int t = 0; t < ms; t += 20) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

/* --- fixture ------------------------------------------------------------------ */

FIXTURE(ctl) {
	char dir[256];
	uint64_t kept[32];	/* sessions to discard in the teardown */
	int nkept;
};

FIXTURE_SETUP(ctl)
{
	struct res r;

	if (access(COWMAP_DEVICE_PATH, F_OK))
		SKIP(return, "no %s: module not loaded", COWMAP_DEVICE_PATH);
	if (sh(&r, "command -v cowmapctl") != 0)
		SKIP(return, "cowmapctl not in PATH");
	res_free(&r);
	snprintf(self->dir, sizeof(self->dir), "%s/ctl.XXXXXX", cm_dir());
	ASSERT_NE(NULL, mkdtemp(self->dir));
	self->nkept = 0;
}

FIXTURE_TEARDOWN(ctl)
{
	struct res r;

	/* Never leave an orphan: the module must unload after the suite. */
	for (int i = 0; i < self->nkept; i++) {
		sh(&r, "cowmapctl discard %llu", (unsigned long long)self->kept[i]);
		res_free(&r);
	}
	if (self->dir[0])
		nftw(self->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* "cowmapctl map ... --keep": the new orphan's id (0 on failure). */
static uint64_t keep(struct _test_data_ctl *self, const char *fmt, ...)
{
	struct res r;
	char *args;
	uint64_t id = 0;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&args, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (sh(&r, "cowmapctl map %s --keep", args) == 0)
		id = strtoull(r.out, NULL, 10);
	else
		fprintf(stderr, "# map %s: %s", args, r.err);
	if (id && self->nkept < 32)
		self->kept[self->nkept++] = id;
	res_free(&r);
	free(args);
	return id;
}

static char *in(struct _test_data_ctl *self, const char *name)
{
	static char p[8][512];
	static int k;

	k = (k + 1) % 8;
	snprintf(p[k], sizeof(p[k]), "%s/%s", self->dir, name);
	return p[k];
}

/* --- usage -------------------------------------------------------------------- */

TEST_F(ctl, help_version_and_usage_errors)
{
	static const char *const cmds[] = { "map", "list", "status", "dump", "merge",
					    "trim", "discard", "monitor", "version" };
	/* Each is a usage error: exit 2, a message and a hint on stderr. */
	static const char *const bad[] = {
		"", "bogus", "list extra", "list --bogus", "status", "status abc",
		"status 0", "status 1 2", "dump", "dump 1 -l x", "dump 1 --raw",
		"dump -l x --ioctl", "merge", "merge -s x", "merge --session 1",
		"merge --into x", "merge --session abc --into x",
		"merge --session 1 --into x --skip --force",
		"merge --session 1 --into x -l y", "merge --session 1 --into x -s y",
		"merge --session 1 --into x --dry-run --trim",
		"merge -s x -l y --in-place --trim", "trim", "trim x", "discard",
		"discard 1 2", "monitor --count 0", "monitor --count x",
		"monitor --session 0", "monitor extra", "map", "map x --write 1",
		"version extra", "version --bogus",
		/* option conventions: once-only options, one ID, no -s in monitor */
		"dump -l x -l y", "dump -l", "status --session 1 2", "monitor -s 1",
		"merge 1", "map x -l a -L b", "help nosuch", "-x list", "list -s x",
	};
	struct res r;

	ASSERT_EQ(0, sh(&r, "cowmapctl --version"));
	EXPECT_EQ(0, strncmp(r.out, "cowmapctl ", 10));
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl --help"));
	EXPECT_NE(NULL, strstr(r.out, "monitor"));
	res_free(&r);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char want[64];

		snprintf(want, sizeof(want), "Usage: cowmapctl %s", cmds[i]);
		EXPECT_EQ(0, sh(&r, "cowmapctl %s --help", cmds[i]));
		EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s --help: %s", cmds[i], r.out);
		res_free(&r);
		EXPECT_EQ(0, sh(&r, "cowmapctl help %s", cmds[i]));
		EXPECT_NE(NULL, strstr(r.out, want));
		res_free(&r);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(2, sh(&r, "cowmapctl %s", bad[i])) TH_LOG("'%s': %s", bad[i], r.err);
		EXPECT_NE(NULL, strstr(r.err, "cowmapctl")) TH_LOG("'%s': no message", bad[i]);
		res_free(&r);
	}
	/* A usage error names the command and says where help is. */
	sh(&r, "cowmapctl merge --session 1");
	EXPECT_NE(NULL, strstr(r.err, "cowmapctl: merge: --session needs --into FILE"));
	EXPECT_NE(NULL, strstr(r.err, "Try 'cowmapctl merge --help'"));
	res_free(&r);
	/* getopt's own message is not printed: one message, one hint. */
	EXPECT_EQ(2, sh(&r, "cowmapctl status --bogus 1"));
	EXPECT_STREQ("cowmapctl: status: unknown option '--bogus'\n"
		     "Try 'cowmapctl status --help'.\n", r.err);
	res_free(&r);
	/* With --json, a usage error is in the JSON too. */
	EXPECT_EQ(2, sh(&r, "cowmapctl -j status"));
	EXPECT_STREQ("{\"error\":{\"message\":\"session ID missing\",\"exit\":2}}\n", r.out);
	res_free(&r);
}

/*
 * cowmapctl version: its own version, the library's and the loaded module's,
 * which must be /sys/module/cowmap/version (the module of this tree).
 */
TEST_F(ctl, version_shows_the_loaded_module)
{
	char mod[128] = "", want[512];
	struct res r;
	ssize_t n;
	int fd;

	fd = open("/sys/module/cowmap/version", O_RDONLY);
	ASSERT_LE(0, fd) TH_LOG("the module is not loaded");
	n = read(fd, mod, sizeof(mod) - 1);
	close(fd);
	ASSERT_LT(0, n);
	mod[strcspn(mod, "\n")] = 0;
	/* tools/vm builds the module from the same VERSION as the library. */
	EXPECT_STREQ(cowmap_version(), mod);

	ASSERT_EQ(0, sh(&r, "cowmapctl version")) TH_LOG("%s", r.err);
	snprintf(want, sizeof(want), "cowmapctl: %s\nlibcowmap: %s\nmodule:    %s\n",
		 cowmap_version(), cowmap_version(), mod);
	EXPECT_STREQ(want, r.out);
	EXPECT_STREQ("", r.err);
	res_free(&r);

	ASSERT_EQ(0, sh(&r, "cowmapctl version --json")) TH_LOG("%s", r.err);
	snprintf(want, sizeof(want),
		 "{\"cowmapctl\":\"%s\",\"libcowmap\":\"%s\",\"module\":\"%s\"}\n",
		 cowmap_version(), cowmap_version(), mod);
	EXPECT_STREQ(want, r.out);
	res_free(&r);

	/* --version stays one line, the tool's name and version. */
	ASSERT_EQ(0, sh(&r, "cowmapctl --version"));
	snprintf(want, sizeof(want), "cowmapctl %s\n", cowmap_version());
	EXPECT_STREQ(want, r.out);
	res_free(&r);
}

TEST_F(ctl, unknown_sessions_are_errors)
{
	char *f = in(self, "f");
	struct res r;

	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	/* Netlink lookups: the kernel's extack message is shown. */
	EXPECT_EQ(1, sh(&r, "cowmapctl status 987654321"));
	EXPECT_NE(NULL, strstr(r.err, "session 987654321: no such session")) TH_LOG("%s", r.err);
	res_free(&r);
	EXPECT_EQ(1, sh(&r, "cowmapctl dump 987654321"));
	EXPECT_NE(NULL, strstr(r.err, "no such session")) TH_LOG("%s", r.err);
	res_free(&r);
	/* Adoptions. */
	EXPECT_EQ(1, sh(&r, "cowmapctl discard 987654321"));
	EXPECT_NE(NULL, strstr(r.err, "no orphaned session")) TH_LOG("%s", r.err);
	/* The module is loaded: the error does not blame the device. */
	EXPECT_EQ(NULL, strstr(r.err, "modprobe")) TH_LOG("%s", r.err);
	res_free(&r);
	EXPECT_EQ(1, sh(&r, "cowmapctl trim 987654321"));
	EXPECT_NE(NULL, strstr(r.err, "no orphaned session")) TH_LOG("%s", r.err);
	res_free(&r);
	EXPECT_EQ(1, sh(&r, "cowmapctl merge --session 987654321 --into %s", f));
	EXPECT_NE(NULL, strstr(r.err, "no orphaned session")) TH_LOG("%s", r.err);
	res_free(&r);
	EXPECT_EQ(1, sh(&r, "cowmapctl status 987654321 --ioctl"));
	EXPECT_NE(NULL, strstr(r.err, "no orphaned session")) TH_LOG("%s", r.err);
	res_free(&r);
	EXPECT_EQ(1, sh(&r, "cowmapctl dump 987654321 --ioctl"));
	EXPECT_NE(NULL, strstr(r.err, "dump: adopt session 987654321: No such file or directory"
			       " (no orphaned session with that id)")) TH_LOG("%s", r.err);
	res_free(&r);
	/* A merge into a file that is not there. */
	EXPECT_EQ(1, sh(&r, "cowmapctl merge --session 1 --into %s/nonexistent", self->dir));
	EXPECT_NE(NULL, strstr(r.err, "No such file")) TH_LOG("%s", r.err);
	res_free(&r);
	EXPECT_TRUE(file_is(f, SEED, strlen(SEED)));
}

/* --- list, status ----------------------------------------------------------- */

TEST_F(ctl, list_and_status_show_kept_and_attached_sessions)
{
	char *f = in(self, "f"), *log = in(self, "f.log"), want[512];
	unsigned long long faults = 0, commits = 0;
	int file, fd;
	uint64_t id, att;
	struct cowmap_status st;
	struct res r;

	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	id = keep(self, "%s --write 15:xxx --log %s", f, log);
	ASSERT_NE(0, id);
	/* An attached session of this process, next to it. */
	file = open(f, O_RDONLY);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_status(fd, &st));
	att = st.session_id;

	ASSERT_EQ(0, sh(&r, "cowmapctl list"));
	EXPECT_EQ(0, strncmp(r.out, "ID ", 3)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "\n%-6llu orphaned", (unsigned long long)id);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	/* FILE, then (after the padding) JOURNAL, the last column. */
	snprintf(want, sizeof(want), "\n%-6llu orphaned", (unsigned long long)id);
	{
		const char *line = strstr(r.out, want), *end = line ? strchr(line + 1, '\n') : NULL;
		char *row = line ? strndup(line + 1, end ? end - line - 1 : strlen(line + 1)) : NULL;
		size_t n = row ? strlen(row) : 0, ln = strlen(log);

		ASSERT_NE(NULL, row) TH_LOG("%s", r.out);
		EXPECT_NE(NULL, strstr(row, f)) TH_LOG("%s", row);
		EXPECT_TRUE(n > ln + 1 && !strcmp(row + n - ln, log) && row[n - ln - 1] == ' ')
			TH_LOG("%s", row);
		free(row);
	}
	snprintf(want, sizeof(want), "\n%-6llu attached  %7d", (unsigned long long)att, getpid());
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	res_free(&r);

	ASSERT_EQ(0, sh(&r, "cowmapctl list --json"));
	EXPECT_EQ(0, strncmp(r.out, "{\"sessions\":[", 13));
	snprintf(want, sizeof(want), "{\"session_id\":%llu,\"session_id_str\":\"%llu\","
		 "\"state\":\"orphaned\"", (unsigned long long)id, (unsigned long long)id);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "\"journal_records\":1,\"journal_bytes\":72,"
		 "\"merged_records\":0,\"path\":\"%s\",\"journal_path\":\"%s\"}", f, log);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "{\"session_id\":%llu,\"session_id_str\":\"%llu\","
		 "\"state\":\"attached\",\"owner_pid\":%d",
		 (unsigned long long)att, (unsigned long long)att, getpid());
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	res_free(&r);

	/*
	 * list -s: the counters over netlink, the orphan not adopted (it is
	 * still an orphan below); they are those of status --ioctl.
	 */
	ASSERT_EQ(0, sh(&r, "cowmapctl list -s"));
	snprintf(want, sizeof(want), "\n%-6llu orphaned", (unsigned long long)id);
	{
		const char *line = strstr(r.out, want), *next = line ? strchr(line + 1, '\n') : NULL;

		ASSERT_NE(NULL, next) TH_LOG("%s", r.out);
		ASSERT_EQ(2, sscanf(next, "\n       faults=%llu cow_copies=%*u rearms=%*u "
				    "base_invalidations=%*u limit_hits=%*u commits=%llu",
				    &faults, &commits)) TH_LOG("%s", r.out);
		EXPECT_LE(1, faults);
		EXPECT_LE(1, commits);
	}
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl -j list -s"));
	snprintf(want, sizeof(want), "\"journal_path\":\"%s\",\"faults\":%llu,", log, faults);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), ",\"commits\":%llu,", commits);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	res_free(&r);

	/* status over netlink: no adoption, so an attached session works too. */
	ASSERT_EQ(0, sh(&r, "cowmapctl status %llu", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "state:            orphaned\n")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "journal_records:  1\n")) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "path:             %s\n", f);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl status %llu --json", (unsigned long long)att));
	EXPECT_NE(NULL, strstr(r.out, "\"state\":\"attached\"")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "\"journal_path\":null")) TH_LOG("%s", r.out);
	res_free(&r);
	/* --ioctl adopts: all of struct cowmap_status, list -s's counters too. */
	ASSERT_EQ(0, sh(&r, "cowmapctl status %llu --ioctl", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "journal_file_seq:    1\n")) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "\n%-20s %llu\n", "faults:", faults);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "\n%-20s %llu\n", "commits:", commits);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	res_free(&r);
	/* An attached session cannot be adopted: said clearly. */
	EXPECT_EQ(1, sh(&r, "cowmapctl merge --session %llu --into %s",
			(unsigned long long)att, f));
	snprintf(want, sizeof(want), "is attached (process %d)", getpid());
	EXPECT_NE(NULL, strstr(r.err, want)) TH_LOG("%s", r.err);
	res_free(&r);
	EXPECT_EQ(1, sh(&r, "cowmapctl dump %llu --ioctl", (unsigned long long)att));
	EXPECT_NE(NULL, strstr(r.err, want)) TH_LOG("%s", r.err);
	res_free(&r);
	cm_end(fd);
	close(file);

	/* Discarded: gone from the list and from status. */
	ASSERT_EQ(0, sh(&r, "cowmapctl discard %llu", (unsigned long long)id));
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl list"));
	snprintf(want, sizeof(want), "\n%-6llu ", (unsigned long long)id);
	EXPECT_EQ(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_EQ(1, sh(&r, "cowmapctl status %llu", (unsigned long long)id));
	res_free(&r);
	EXPECT_TRUE(file_is(f, SEED, strlen(SEED)));
}

/* --- dump --------------------------------------------------------------------- */

/* The kernel's read(2) stream of session @fd. */
static char *read_stream(int fd, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	ssize_t got;

	if (lseek(fd, 0, SEEK_SET))
		return NULL;
	while ((got = read(fd, buf + n, cap - n)) > 0) {
		n += got;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	*len = n;
	return got < 0 ? NULL : buf;
}

/* The line of @out that starts with @prefix (malloc'ed, without '\n'), or NULL. */
static char *line_starting(const char *out, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, prefix, n))
			return strndup(l, strcspn(l, "\n"));
	return NULL;
}

/* list -o COLUMNS, --raw, --noheadings, and --json with -o (issue 18). */
TEST_F(ctl, list_columns_raw_noheadings)
{
	char *f = in(self, "a b"), want[1200], *line;
	unsigned long long id;
	struct stat st;
	struct res r;

	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	ASSERT_EQ(0, stat(f, &st));
	id = keep(self, "'%s' -w 0:X", f);
	ASSERT_NE(0, id);

	/* --raw --noheadings: one space between cells, the space in the name escaped. */
	ASSERT_EQ(0, sh(&r, "cowmapctl list -o ID,STATE,RECORDS,FILE,JOURNAL --raw --noheadings"));
	EXPECT_NE(0, strncmp(r.out, "ID", 2)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "%llu ", id);
	line = line_starting(r.out, want);
	snprintf(want, sizeof(want), "%llu orphaned 1 %s/a\\x20b -", id, self->dir);
	EXPECT_STREQ(want, line ? line : "(none)") TH_LOG("%s", r.out);
	free(line);
	res_free(&r);

	/* -o: those columns only, case-insensitive, with a heading; numbers right-aligned. */
	ASSERT_EQ(0, sh(&r, "cowmapctl list -o id,records"));
	EXPECT_EQ(0, strncmp(r.out, "ID      RECORDS\n", 16)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "%-6llu ", id);
	line = line_starting(r.out, want);
	snprintf(want, sizeof(want), "%-6llu %8d", id, 1);
	EXPECT_STREQ(want, line ? line : "(none)") TH_LOG("%s", r.out);
	free(line);
	res_free(&r);

	/* +COLUMNS: the default ones, then these. */
	ASSERT_EQ(0, sh(&r, "cowmapctl list -o +DEV,INO --noheadings"));
	snprintf(want, sizeof(want), "%-6llu orphaned", id);
	line = line_starting(r.out, want);
	snprintf(want, sizeof(want), " %u:%u %llu", major(st.st_dev), minor(st.st_dev),
		 (unsigned long long)st.st_ino);
	EXPECT_TRUE(line && strstr(line, want) && !strcmp(line + strlen(line) - strlen(want), want))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(line ? line : "", "a b")) TH_LOG("%s", r.out);
	free(line);
	res_free(&r);

	/* --json with -o: the members of those columns only. */
	ASSERT_EQ(0, sh(&r, "cowmapctl list -o ID,FILE,RECORDS --json"));
	snprintf(want, sizeof(want), "{\"session_id\":%llu,\"session_id_str\":\"%llu\","
		 "\"path\":\"%s\",\"journal_records\":1}", id, id, f);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	EXPECT_EQ(NULL, strstr(r.out, "\"state\"")) TH_LOG("%s", r.out);
	res_free(&r);

	/* --raw --stats: the counters as columns, not a second line. */
	ASSERT_EQ(0, sh(&r, "cowmapctl list --raw -s"));
	EXPECT_EQ(0, strncmp(r.out, "ID STATE PID UID RECORDS BYTES MERGED PAGES FILE JOURNAL "
			     "MAPPINGS BASE_PAGES FAULTS ", 74)) TH_LOG("%s", r.out);
	EXPECT_EQ(NULL, strstr(r.out, "faults=")) TH_LOG("%s", r.out);
	res_free(&r);

	/* Bad columns: a usage error, nothing listed. */
	EXPECT_EQ(2, sh(&r, "cowmapctl list -o ID,nosuch"));
	EXPECT_NE(NULL, strstr(r.err, "unknown column 'nosuch'")) TH_LOG("%s", r.err);
	EXPECT_STREQ("", r.out);
	res_free(&r);
}

/* JSON: file names as they are (UTF-8), invalid bytes as U+FFFD + KEY_hex. */
TEST_F(ctl, json_file_names_and_64bit_ids)
{
	char *good = in(self, "caf\xc3\xa9"), *bad = in(self, "b\xff" "d");
	char want[1200];
	struct res r;
	uint64_t a, b;

	ASSERT_EQ(0, cm_put_file(good, "hello\n", 6));
	ASSERT_EQ(0, cm_put_file(bad, "hello\n", 6));
	a = keep(self, "'%s' -w 0:H", good);
	b = keep(self, "'%s' -w 0:H", bad);
	ASSERT_NE(0, a);
	ASSERT_NE(0, b);
	ASSERT_EQ(0, sh(&r, "cowmapctl status %llu --json", (unsigned long long)a));
	snprintf(want, sizeof(want), "\"path\":\"%s\",\"journal_path\":null}\n", good);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	snprintf(want, sizeof(want), "\"session_id_str\":\"%llu\",", (unsigned long long)a);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl list --json"));
	snprintf(want, sizeof(want), "\"path\":\"%s/b\xef\xbf\xbd" "d\",\"path_hex\":\"", self->dir);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "2f62ff64\",\"journal_path\":null}")) TH_LOG("%s", r.out);
	res_free(&r);
	/* map --json: the names of monitor's commit event. */
	ASSERT_EQ(0, sh(&r, "cowmapctl map '%s' -w 1:E --json", good));
	EXPECT_NE(NULL, strstr(r.out, "\"records\":1,\"journal_bytes\":")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "\"kept\":false,\"journal_path\":null}\n")) TH_LOG("%s", r.out);
	res_free(&r);
}

TEST_F(ctl, dump_over_netlink_equals_the_kernel_stream)
{
	char *f = in(self, "f"), *raw = in(self, "a.raw"), *raw2 = in(self, "b.raw");
	size_t klen, flen;
	char *kbytes, *fbytes;
	struct res r, r2;
	uint64_t id;
	int fd;

	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	id = keep(self, "%s --write 0:ABC --write '15:\\x01\\\\\\\"'", f);
	ASSERT_NE(0, id);
	/* Text: the dump of the session equals the dump of its raw copy. */
	ASSERT_EQ(0, sh(&r, "cowmapctl dump %llu", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "seq=1 offset=0 length=3 old=\"---\" new=\"ABC\"\n"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "seq=2 offset=15 length=3 old=\"llo\" new=\"\\x01\\\\\\\"\"\n"))
		TH_LOG("%s", r.out);
	ASSERT_EQ(0, sh(&r2, "cowmapctl dump %llu --raw -o %s", (unsigned long long)id, raw));
	res_free(&r2);
	ASSERT_EQ(0, sh(&r2, "cowmapctl dump -l %s", raw));
	EXPECT_STREQ(r.out, r2.out);
	res_free(&r);
	res_free(&r2);
	ASSERT_EQ(0, sh(&r, "cowmapctl dump %llu --json", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "\"old\":\"llo\",\"old_hex\":\"6c6c6f\","
			       "\"new\":\"\\u0001\\\\\\\"\",\"new_hex\":\"015c22\""))
		TH_LOG("%s", r.out);
	res_free(&r);
	/* Raw: byte-identical to the ioctl dump and to read(2) of the session. */
	ASSERT_EQ(0, sh(&r, "cowmapctl dump %llu --ioctl --raw -o %s",
			(unsigned long long)id, raw2));
	res_free(&r);
	EXPECT_TRUE(files_equal(raw, raw2));
	fd = cm_adopt_new(id);
	ASSERT_LE(0, fd);
	kbytes = read_stream(fd, &klen);
	close(fd);	/* an orphan again */
	fbytes = cm_get_file(raw, &flen);
	ASSERT_NE(NULL, kbytes);
	ASSERT_NE(NULL, fbytes);
	ASSERT_EQ(klen, flen);
	EXPECT_EQ(0, memcmp(kbytes, fbytes, klen));
	free(kbytes);
	free(fbytes);
}

/* A journal of many messages: small records and the largest ones. */
TEST_F_TIMEOUT(ctl, dump_of_a_large_attached_journal, 120)
{
	char path[256], *raw = in(self, "big.raw");
	size_t klen, flen, lines = 0;
	char *kbytes, *fbytes, *p;
	struct cowmap_status st;
	struct res r;
	uint8_t *m;
	int file, fd, n;

	file = cm_mkfile(path, sizeof(path), "big", 64 * PG, O_RDONLY);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	m = cm_map(fd, 64 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (int i = 0; i < 700; i++)
		m[i * 53] ^= 0x5a;
	for (size_t i = 40 * PG; i < 64 * PG; i++)
		m[i] = ~cm_pat(i, 0);
	n = cm_commit(fd, 0);
	ASSERT_LT(700, n);
	ASSERT_EQ(0, cm_status(fd, &st));

	ASSERT_EQ(0, sh(&r, "cowmapctl dump %llu --raw -o %s",
			(unsigned long long)st.session_id, raw));
	res_free(&r);
	kbytes = read_stream(fd, &klen);
	fbytes = cm_get_file(raw, &flen);
	ASSERT_NE(NULL, kbytes);
	ASSERT_NE(NULL, fbytes);
	ASSERT_EQ(klen, flen);
	EXPECT_EQ(0, memcmp(kbytes, fbytes, klen));
	ASSERT_EQ(0, sh(&r, "cowmapctl dump %llu", (unsigned long long)st.session_id));
	for (p = r.out; (p = strstr(p, "\nseq=")); p++)
		lines++;
	EXPECT_EQ((size_t)n, lines);
	res_free(&r);
	free(kbytes);
	free(fbytes);
	munmap(m, 64 * PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

/* --- merge ------------------------------------------------------------------------ */

/* A text file: lowercase letters and newlines, so every write differs. */
static char *letters(size_t n)
{
	char *b = malloc(n);

	for (size_t i = 0; i < n; i++)
		b[i] = i % 64 == 63 ? '\n' : 'a' + (i * 7 + i / 64) % 26;
	return b;
}

static void apply(char *model, size_t off, const char *text)
{
	memcpy(model + off, text, strlen(text));
}

TEST_F_TIMEOUT(ctl, kernel_and_offline_merge_agree, 120)
{
	const size_t size = 3 * PG;
	char *f = in(self, "f"), *g = in(self, "g"), *h = in(self, "h"), *out = in(self, "out");
	char *orig = letters(size), *model = malloc(size), logs[8][300];
	uint64_t a, b, c, d, e, s2;
	struct res r;
	char want[256];

	ASSERT_EQ(0, cm_put_file(f, orig, size));
	memcpy(model, orig, size);
	for (int i = 0; i < 8; i++)
		snprintf(logs[i], sizeof(logs[i]), "%s/%c.log", self->dir, 'a' + i);
	/* A: three runs, one across a page boundary. */
	a = keep(self, "%s -l %s -w 100:AAAA -w 4090:AAAAAAAAAAAA -w 9000:A", f, logs[0]);
	/* B: disjoint from A, on the same pages. */
	b = keep(self, "%s -l %s -w 200:BBBB -w 8190:BB", f, logs[1]);
	/* C: overlaps A differently: a conflict. */
	c = keep(self, "%s -l %s -w 102:CCCC", f, logs[2]);
	/* D: the same bytes as A: already applied once A is. */
	d = keep(self, "%s -l %s -w 100:AAAA", f, logs[3]);
	/* E: disjoint, with bytes that need escaping. */
	e = keep(self, "%s -L %s -w '6000:\\x00\\x01\\xff\\n' -w 7000:EEEEEEEEEEEEEEEEEEEE",
		 f, logs[4]);
	ASSERT_TRUE(a && b && c && d && e);
	ASSERT_TRUE(file_is(f, orig, size));	/* nothing reached the file */
	ASSERT_EQ(0, sh(&r, "cp %s %s && cp %s %s", f, g, f, h));
	res_free(&r);

	/* Kernel: A first; then a session that starts from A's bytes. */
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s --skip",
			(unsigned long long)a, f));
	EXPECT_NE(NULL, strstr(r.out, "3 applied, 0 already applied, 0 conflicts; 17 bytes written"))
		TH_LOG("%s", r.out);
	res_free(&r);
	apply(model, 100, "AAAA");
	apply(model, 4090, "AAAAAAAAAAAA");
	apply(model, 9000, "A");
	s2 = keep(self, "%s -L %s -w 101:zz", f, logs[5]);	/* old bytes "AA" */
	ASSERT_NE(0, s2);
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s --skip",
			(unsigned long long)b, f));
	res_free(&r);
	apply(model, 200, "BBBB");
	apply(model, 8190, "BB");
	EXPECT_EQ(3, sh(&r, "cowmapctl merge --session %llu --into %s --skip",
			(unsigned long long)c, f));
	snprintf(want, sizeof(want), "conflict  session=%llu seq=1 offset=102 length=4\n"
		 "    first difference at +0\n    expected \"%.4s\" (", (unsigned long long)c,
		 orig + 102);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "    found    \"AA")) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s --skip",
			(unsigned long long)d, f));
	EXPECT_NE(NULL, strstr(r.out, "0 applied, 1 already applied")) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s --skip --fsync",
			(unsigned long long)e, f));
	res_free(&r);
	memcpy(model + 6000, "\x00\x01\xff\n", 4);
	apply(model, 7000, "EEEEEEEEEEEEEEEEEEEE");
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s --skip",
			(unsigned long long)s2, f));
	EXPECT_NE(NULL, strstr(r.out, "1 applied")) TH_LOG("%s", r.out);
	res_free(&r);
	apply(model, 101, "zz");
	EXPECT_TRUE(file_is(f, model, size));

	/* Offline, from the journal files, into pristine copies: same bytes. */
	EXPECT_EQ(3, sh(&r, "cowmapctl merge -s %s -l %s -l %s -l %s -l %s -l %s -l %s "
			"--in-place --skip --force-identity", g, logs[0], logs[1], logs[2],
			logs[3], logs[4], logs[5]));
	snprintf(want, sizeof(want), "conflict  session=%llu seq=1 offset=102 length=4",
		 (unsigned long long)c);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "6 logs, 10 records: 8 applied, 1 already applied, 1 conflict"))
		TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(files_equal(f, g));
	EXPECT_EQ(3, sh(&r, "cowmapctl merge -s %s --all %s -o %s --skip --force-identity",
			h, self->dir, out));
	res_free(&r);
	EXPECT_TRUE(files_equal(f, out));
	EXPECT_TRUE(file_is(h, orig, size));	/* -o leaves the source alone */
	free(orig);
	free(model);
}

TEST_F(ctl, kernel_merge_policies_json_trim)
{
	char *f = in(self, "f");
	struct res r;
	uint64_t id;
	char want[256];

	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	/* Two records: "Hello" -> "HELLO" at 13, "---" -> "+++" at 0. */
	id = keep(self, "%s -w 0:+++ -w 14:ELLO", f);
	ASSERT_NE(0, id);
	ASSERT_EQ(0, sh(&r, "printf 'hX' | dd of=%s bs=1 seek=13 conv=notrunc 2>/dev/null", f));
	res_free(&r);	/* someone else: "hXllo" */

	/* All or nothing: exit 3, the conflict reported, nothing written. */
	EXPECT_EQ(3, sh(&r, "cowmapctl merge --session %llu --into %s",
			(unsigned long long)id, f));
	snprintf(want, sizeof(want), "conflict  session=%llu seq=2 offset=14 length=4\n"
		 "    first difference at +0\n    expected \"ello\" (656c6c6f)\n"
		 "    found    \"Xllo\" (586c6c6f)\n", (unsigned long long)id);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "1 applied, 0 already applied, 1 conflict; nothing written (all-or-nothing)"))
		TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f, "------------ hXllo World! ------------", 38));
	/* Dry run: the same report, nothing written. */
	EXPECT_EQ(3, sh(&r, "cowmapctl merge --session %llu --into %s --dry-run --json",
			(unsigned long long)id, f));
	EXPECT_NE(NULL, strstr(r.out, "\"dry_run\":true")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "\"expected\":\"ello\",\"expected_hex\":\"656c6c6f\",\"found\":\"Xllo\",\"found_hex\":\"586c6c6f\"}"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "\"exit\":3}")) TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f, "------------ hXllo World! ------------", 38));
	/* Skip: the other record is written (the session as an argument). */
	EXPECT_EQ(3, sh(&r, "cowmapctl merge %llu --into %s --skip",
			(unsigned long long)id, f));
	EXPECT_NE(NULL, strstr(r.out, "; 3 bytes written to ")) TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f, "+++--------- hXllo World! ------------", 38));
	/* Force, fsync, trim: exit 0, everything written, the session freed. */
	EXPECT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s --force --fsync --trim",
			(unsigned long long)id, f));
	snprintf(want, sizeof(want), "forced    session=%llu seq=2 offset=14 length=4\n",
		 (unsigned long long)id);
	EXPECT_NE(NULL, strstr(r.out, want)) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "0 applied, 1 already applied, 1 conflict (1 forced); 4 bytes written to"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "(synced); trimmed, session freed")) TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f, "+++--------- hELLO World! ------------", 38));
	EXPECT_EQ(1, sh(&r, "cowmapctl status %llu", (unsigned long long)id));
	res_free(&r);

	/* A record whose every byte is old or new: partly applied, shown from +0. */
	id = keep(self, "%s -w 20:ORLD", f);	/* "orld" -> "ORLD" */
	ASSERT_NE(0, id);
	ASSERT_EQ(0, sh(&r, "printf 'OR' | dd of=%s bs=1 seek=20 conv=notrunc 2>/dev/null", f));
	res_free(&r);	/* "ORld": neither, but each byte is one of the two */
	EXPECT_EQ(3, sh(&r, "cowmapctl merge --session %llu --into %s",
			(unsigned long long)id, f));
	EXPECT_NE(NULL, strstr(r.out, "offset=20 length=4\n    first difference at +0\n"
			       "    expected \"orld\" (6f726c64)\n    found    \"ORld\" (4f526c64)\n"))
		TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl discard %llu", (unsigned long long)id));
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "printf 'or' | dd of=%s bs=1 seek=20 conv=notrunc 2>/dev/null", f));
	res_free(&r);

	/* trim ID on its own: merged records go, the rest stays. */
	id = keep(self, "%s -w 30:!", f);
	ASSERT_NE(0, id);
	ASSERT_EQ(0, sh(&r, "cowmapctl trim %llu", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, ": 0 merged records trimmed, 1 left\n")) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s", (unsigned long long)id, f));
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl trim %llu", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, ": 1 merged record trimmed, 0 left; session freed\n"))
		TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f, "+++--------- hELLO World! ----!-------", 38));
}

/* --- monitor ------------------------------------------------------------------ */

TEST_F_TIMEOUT(ctl, monitor_prints_events_in_order, 120)
{
	static const char *const want[] = {
		"attach", "commit", "orphan",	/* map --keep */
		"adopt", "orphan",		/* map --keep checks the orphan stays */
		"adopt", "merge", "orphan",	/* merge --session */
		"adopt", "discard", "close",	/* discard */
	};
	char *f = in(self, "f"), *out = in(self, "mon.out"), *err = in(self, "mon.err");
	char line[256], *text, *p;
	struct res r;
	uint64_t id;
	pid_t mon;
	int n = 0;

	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	mon = spawn(out, err, "exec cowmapctl monitor --count 11");
	ASSERT_TRUE(wait_for_text(err, "listening", 10000));
	id = keep(self, "%s --write 15:xxx", f);
	ASSERT_NE(0, id);
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s",
			(unsigned long long)id, f));
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl discard %llu", (unsigned long long)id));
	res_free(&r);
	ASSERT_EQ(0, wait_pid(mon, 10000));
	text = cm_get_file(out, NULL);
	ASSERT_NE(NULL, text);
	for (p = strtok(text, "\n"); p; p = strtok(NULL, "\n"), n++) {
		ASSERT_GT(11, n) TH_LOG("extra line: %s", p);
		snprintf(line, sizeof(line), "%-8s session=%llu uid=%u", want[n],
			 (unsigned long long)id, getuid());
		EXPECT_EQ(0, strncmp(p, line, strlen(line))) TH_LOG("line %d: '%s', want '%s'",
								      n, p, line);
	}
	EXPECT_EQ(11, n);
	free(text);
	text = cm_get_file(out, NULL);
	EXPECT_NE(NULL, strstr(text, "commit   session=")) TH_LOG("%s", text);
	EXPECT_NE(NULL, strstr(text, " records=1 bytes=72\n")) TH_LOG("%s", text);
	EXPECT_NE(NULL, strstr(text, " applied=1 already=0 conflicts=0\n")) TH_LOG("%s", text);
	free(text);

	/* JSON, one session only, until SIGTERM. */
	id = keep(self, "%s --write 0:J", f);
	ASSERT_NE(0, id);
	mon = spawn(out, err, "exec cowmapctl monitor --json --session %llu --timestamp",
		    (unsigned long long)id);
	ASSERT_TRUE(wait_for_text(err, "listening", 10000));
	ASSERT_EQ(0, sh(&r, "cowmapctl map %s --write 1:x >/dev/null && cowmapctl discard %llu",
			f, (unsigned long long)id));	/* another session's events are left out */
	res_free(&r);
	snprintf(line, sizeof(line), "{\"event\":\"close\",\"session_id\":%llu,",
		 (unsigned long long)id);
	EXPECT_TRUE(wait_for_text(out, line, 10000));
	kill(mon, SIGTERM);
	EXPECT_EQ(0, wait_pid(mon, 10000));
	text = cm_get_file(out, NULL);
	snprintf(line, sizeof(line), "{\"event\":\"adopt\",\"session_id\":%llu,"
		 "\"session_id_str\":\"%llu\",\"owner_uid\":%u,\"time_ns\":",
		 (unsigned long long)id, (unsigned long long)id, getuid());
	EXPECT_EQ(0, strncmp(text, line, strlen(line))) TH_LOG("%s", text);
	snprintf(line, sizeof(line), "\n{\"event\":\"discard\",\"session_id\":%llu,",
		 (unsigned long long)id);
	EXPECT_NE(NULL, strstr(text, line)) TH_LOG("%s", text);
	n = 0;
	for (p = text; (p = strchr(p, '\n')); p++)
		n++;
	EXPECT_EQ(3, n) TH_LOG("%s", text);
	free(text);
}

/* --- the seed demo -------------------------------------------------------------- */

TEST_F(ctl, seed_demo_kernel_and_offline)
{
	char *f0 = in(self, "file0"), *f1 = in(self, "file1"), *log = in(self, "file1.log");
	struct res r;
	uint64_t id;

	ASSERT_EQ(0, cm_put_file(f0, SEED, strlen(SEED)));
	ASSERT_EQ(0, cm_put_file(f1, SEED, strlen(SEED)));

	/* Kernel merge of a kept session. */
	id = keep(self, "%s --write 15:xxx", f0);
	ASSERT_NE(0, id);
	EXPECT_TRUE(file_is(f0, SEED, strlen(SEED)));	/* unchanged until the merge */
	ASSERT_EQ(0, sh(&r, "cowmapctl dump %llu", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "\nseq=1 offset=15 length=3 old=\"llo\" new=\"xxx\"\n"));
	res_free(&r);
	EXPECT_TRUE(file_is(f0, SEED, strlen(SEED)));
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s", (unsigned long long)id, f0));
	res_free(&r);
	EXPECT_TRUE(file_is(f0, SEEDX, strlen(SEEDX)));
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s", (unsigned long long)id, f0));
	EXPECT_NE(NULL, strstr(r.out, "0 applied, 1 already applied, 0 conflicts; nothing to write"))
		TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f0, SEEDX, strlen(SEEDX)));

	/* Offline merge of a journal file. */
	ASSERT_EQ(0, sh(&r, "cowmapctl map %s --write 15:xxx --log %s", f1, log));
	res_free(&r);
	EXPECT_TRUE(file_is(f1, SEED, strlen(SEED)));
	ASSERT_EQ(0, sh(&r, "cowmapctl merge -s %s -l %s --in-place", f1, log));
	EXPECT_NE(NULL, strstr(r.out, "1 applied")) TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f1, SEEDX, strlen(SEEDX)));
	EXPECT_TRUE(files_equal(f0, f1));
}

/* --- session sizes (journal format 2) ------------------------------------------- */

TEST_F(ctl, sizes_map_truncate_dump_and_both_merges)
{
	char *f = in(self, "f"), *g = in(self, "g"), *h = in(self, "h"), *out = in(self, "out");
	char *log = in(self, "f.log"), *log2 = in(self, "h.log");
	/* xxx at 15; "abc" at 40 grows to 43; cut to 20; "QQ" at 22 grows to 24 */
	static const char want[24] = "------------ Hexxx W\0\0QQ";
	struct res r, r2;
	uint64_t id;

	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	ASSERT_EQ(0, sh(&r, "cp %s %s && cp %s %s", f, g, f, h));
	res_free(&r);
	id = keep(self, "%s -l %s -w 15:xxx -w 40:abc --truncate 20 -w 22:QQ", f, log);
	ASSERT_NE(0, id);
	EXPECT_TRUE(file_is(f, SEED, strlen(SEED)));	/* nothing reached the file */

	/* status --ioctl: the session's own size */
	ASSERT_EQ(0, sh(&r, "cowmapctl status %llu --ioctl", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "\nsession_size:        24\n")) TH_LOG("%s", r.out);
	res_free(&r);
	/* ... and over netlink: status, status --json, list -s, list -s --json */
	ASSERT_EQ(0, sh(&r, "cowmapctl status %llu", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "\nsize:             38\nsession_size:     24\n"))
		TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl status %llu --json", (unsigned long long)id));
	EXPECT_NE(NULL, strstr(r.out, "\"size\":38,\"size_str\":\"38\",\"session_size\":24,"
			       "\"session_size_str\":\"24\",")) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl list -s"));
	EXPECT_NE(NULL, strstr(r.out, " session_size=24\n")) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl list -s --json"));
	EXPECT_NE(NULL, strstr(r.out, "\"session_size\":24,")) TH_LOG("%s", r.out);
	res_free(&r);

	/* dump over netlink and of the journal file: version 2, the same lines */
	ASSERT_EQ(0, sh(&r, "cowmapctl dump %llu", (unsigned long long)id));
	ASSERT_EQ(0, sh(&r2, "cowmapctl dump -l %s", log));
	EXPECT_STREQ(r.out, r2.out);
	EXPECT_EQ(0, strncmp(r.out, "# log version=2 ", 16)) TH_LOG("%s", r.out);
	/* a growth is journalled by the next commit, before its byte records */
	EXPECT_NE(NULL, strstr(r.out, "\nseq=1 resize old_size=38 new_size=43\n"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, " offset=15 length=3 old=\"llo\" new=\"xxx\"\n"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, " resize old_size=43 new_size=20 cut_crc=0x"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, " resize old_size=20 new_size=24\n")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, " offset=22 length=2 old=\"\\x00\\x00\" new=\"QQ\"\n"))
		TH_LOG("%s", r.out);
	res_free(&r);
	res_free(&r2);
	ASSERT_EQ(0, sh(&r, "cowmapctl dump -l %s --json", log));
	EXPECT_NE(NULL, strstr(r.out, "\"old_size\":43,\"old_size_str\":\"43\",\"new_size\":20,"))
		TH_LOG("%s", r.out);
	res_free(&r);

	/* offline, from the journal file, in place and -o: the kernel merge's bytes */
	ASSERT_EQ(0, sh(&r, "cowmapctl merge -s %s -l %s -o %s --force-identity", h, log, out));
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl merge -s %s -l %s --in-place --force-identity", g, log));
	EXPECT_NE(NULL, strstr(r.out, "0 already applied, 0 conflicts")) TH_LOG("%s", r.out);
	res_free(&r);
	ASSERT_EQ(0, sh(&r, "cowmapctl merge --session %llu --into %s", (unsigned long long)id, f));
	EXPECT_NE(NULL, strstr(r.out, "0 already applied, 0 conflicts")) TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f, want, sizeof(want)));
	EXPECT_TRUE(files_equal(f, g));
	EXPECT_TRUE(files_equal(f, out));
	EXPECT_TRUE(file_is(h, SEED, strlen(SEED)));
	/* an offline re-run finds it all applied (the kernel's merged and trimmed) */
	ASSERT_EQ(0, sh(&r, "cowmapctl merge -s %s -l %s --in-place --force-identity", g, log));
	EXPECT_NE(NULL, strstr(r.out, " 0 applied, ")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, " already applied, 0 conflicts")) TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(files_equal(f, g));

	/* a cut whose bytes changed since: a conflict in both merges */
	ASSERT_EQ(0, cm_put_file(g, SEED, strlen(SEED)));
	ASSERT_EQ(0, sh(&r, "printf Z | dd of=%s bs=1 seek=30 conv=notrunc status=none", g));
	res_free(&r);
	EXPECT_EQ(3, sh(&r, "cowmapctl merge -s %s -l %s --dry-run --force-identity", g, log));
	EXPECT_NE(NULL, strstr(r.out, "the bytes it cuts differ")) TH_LOG("%s", r.out);
	res_free(&r);

	/* only a truncate; and a size past RLIMIT_FSIZE is an error, not SIGXFSZ */
	ASSERT_EQ(0, sh(&r, "cowmapctl map %s -t 10 -l %s", h, log2));
	EXPECT_NE(NULL, strstr(r.out, ": 1 record (96 bytes) committed to ")) TH_LOG("%s", r.out);
	res_free(&r);
	/* a shrink alone is journalled by itself: there is a session to keep */
	EXPECT_NE(0, keep(self, "%s -t 5", h));
	ASSERT_EQ(0, sh(&r, "cowmapctl merge -s %s -l %s --in-place", h, log2));
	res_free(&r);
	EXPECT_TRUE(file_is(h, SEED, 10));
	EXPECT_EQ(1, sh(&r, "ulimit -f 64; cowmapctl map %s -w 1000000:x", h));
	EXPECT_NE(NULL, strstr(r.err, "File too large")) TH_LOG("%s", r.err);
	res_free(&r);
}

/* --- kill -9 of an offline in-place merge ---------------------------------------- */

/* "cowmapctl merge -s @f -l @log --in-place", output to /dev/null. */
static pid_t start_merge(char *f, char *log)
{
	char *argv[] = { "cowmapctl", "merge", "-s", f, "-l", log, "--in-place", NULL };
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execvp("cowmapctl", argv);
		_exit(127);
	}
	return pid;
}

/*
 * Wait (at most @ms) until inotify @ino reports the creation of @name; 1 if
 * it did. @name NULL: only drop the pending events.
 */
static int wait_created(int ino, const char *name, int ms)
{
	char buf[4096] __attribute__((aligned(8)));

	for (;;) {
		struct pollfd p = { .fd = ino, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, name ? ms : 0) <= 0)
			return 0;
		n = read(ino, buf, sizeof(buf));
		for (ssize_t at = 0; at < n;) {
			struct inotify_event *ev = (void *)(buf + at);

			if (name && ev->len && !strcmp(ev->name, name))
				return 1;
			at += sizeof(*ev) + ev->len;
		}
	}
}

TEST_F_TIMEOUT(ctl, kill9_during_offline_in_place_merge, 600)
{
	const size_t size = 1024 * PG;
	char *f = in(self, "data"), *log = in(self, "data.log"), intent[600];
	char *orig = letters(size), *model = malloc(size);
	int file, jfd, fd, killed = 0, recovered = 0, untouched = 0, finished = 0;
	int completed = 0, ino, st0;
	uint64_t t0;
	pid_t pid0;
	struct cowmap_attach at;
	uint64_t full_us, intent_us, seed = time(NULL) ^ getpid();
	uint8_t *m;
	struct res r;

	srandom(seed);
	TH_LOG("seed %llu", (unsigned long long)seed);
	ASSERT_EQ(0, cm_put_file(f, orig, size));
	memcpy(model, orig, size);
	snprintf(intent, sizeof(intent), "%s/.data.cowmap-intent", self->dir);
	/* A session with a journal file: 3 commits of small scattered changes. */
	file = open(f, O_RDONLY);
	jfd = open(log, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fd = cm_open();
	ASSERT_EQ(0, cm_handshake(fd));
	at = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				     .journal_fd = jfd };
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_ATTACH, &at));
	m = cm_map(fd, size, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (int c = 0, prev = 0; c < 3; c++) {
		for (int i = 0; i < 4000; i++) {
			size_t off = random() % (size - 16), len = 1 + random() % 8;

			if (c && i % 3 == 0)	/* overwrite an earlier change */
				off = (size_t)prev * 131 % (size - 16);
			prev = off;
			for (size_t k = 0; k < len; k++)
				model[off + k] = m[off + k] = 'A' + random() % 26;
		}
		ASSERT_LT(0, cm_commit(fd, COWMAP_COMMIT_DURABLE));
	}
	munmap(m, size);
	cm_end(fd);	/* the journal file keeps the records */
	close(jfd);
	close(file);

	/*
	 * A whole run, timed, with the moment its intent file appears (seen
	 * through inotify, so that watching does not slow the merge down).
	 * Two kills in three land in the write phase (intent file created to
	 * the end), the third anywhere.
	 */
	ino = inotify_init1(IN_CLOEXEC);
	ASSERT_LE(0, ino);
	ASSERT_LE(0, inotify_add_watch(ino, self->dir, IN_CREATE));
	t0 = now_us();
	pid0 = start_merge(f, log);
	intent_us = wait_created(ino, ".data.cowmap-intent", 60000) ? now_us() - t0 : 0;
	waitpid(pid0, &st0, 0);
	full_us = now_us() - t0;
	ASSERT_TRUE(WIFEXITED(st0) && WEXITSTATUS(st0) == 0);
	ASSERT_TRUE(file_is(f, model, size));
	ASSERT_NE(0, intent_us);
	TH_LOG("an uninterrupted merge takes %llu ms, its intent file appears at %llu ms",
	       (unsigned long long)full_us / 1000, (unsigned long long)intent_us / 1000);

	for (int it = 0; it < 12; it++) {
		uint64_t delay;
		int st, anywhere = it % 3 == 2;
		pid_t pid;

		ASSERT_EQ(0, rewrite_file(f, orig, size));
		pid = start_merge(f, log);
		if (anywhere) {
			delay = random() % (full_us * 6 / 5 + 1);
		} else {
			/* From the intent file's creation, into the write phase. */
			wait_created(ino, ".data.cowmap-intent", 60000);
			delay = random() % ((full_us - intent_us) * 6 / 5 + 1);
		}
		usleep(delay);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		wait_created(ino, NULL, 0);	/* forget this run's events */
		if (WIFSIGNALED(st)) {
			killed++;
			if (!access(intent, F_OK))
				recovered++;
			else if (file_is(f, orig, size))
				untouched++;
		} else {
			finished++;
		}
		/* Run again: it completes, with the exact result. */
		ASSERT_EQ(0, sh(&r, "cowmapctl merge -s %s -l %s --in-place", f, log))
			TH_LOG("after a kill at %llu us: %s%s", (unsigned long long)delay,
			       r.out, r.err);
		if (WIFSIGNALED(st) && strstr(r.err, "completed an interrupted"))
			completed++;
		res_free(&r);
		ASSERT_TRUE(file_is(f, model, size)) TH_LOG("after a kill at %llu us",
							     (unsigned long long)delay);
		ASSERT_NE(0, access(intent, F_OK));
	}
	close(ino);
	TH_LOG("12 runs: %d killed (%d left an intent file, %d of them completed by the re-run; %d before writing), %d finished first",
	       killed, recovered, completed, untouched, finished);
	free(orig);
	free(model);
}

/* --- the example program ------------------------------------------------------- */

TEST_F(ctl, example_program)
{
	char *f = in(self, "ex");
	struct res r;

	if (sh(&r, "command -v cowmap-example") != 0) {
		res_free(&r);
		SKIP(return, "cowmap-example not in PATH");
	}
	res_free(&r);
	ASSERT_EQ(0, cm_put_file(f, SEED, strlen(SEED)));
	ASSERT_EQ(0, sh(&r, "cowmap-example %s", f)) TH_LOG("%s", r.err);
	EXPECT_NE(NULL, strstr(r.out, "sees \"------------ HELLO WORLD! ------------\"\n"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "committed 2 records\n")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "is attached, 2 records, file ")) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "record seq=2 offset=20 length=4 old=\"orld\" new=\"ORLD\"\n"))
		TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(r.out, "merge: 2 applied, 0 already applied, 0 conflicts, 8 bytes written\n"))
		TH_LOG("%s", r.out);
	res_free(&r);
	EXPECT_TRUE(file_is(f, "------------ HELLO WORLD! ------------", 38));
}

TEST_HARNESS_MAIN
