// SPDX-License-Identifier: GPL-2.0
/*
 * Offline merge and the log format, no module needed: logs are written with
 * libcowmap's log writer. Runs in the VM suite like the others, and on the
 * host: COWMAP_TESTDIR=/tmp/x build/selftests/merge_offline_test
 *
 * The seed demo, clean merge, conflicts under each policy, already-applied,
 * ordering of several logs, dry run, atomic -o, interrupted in-place merges,
 * damaged logs (bit flip, truncated and zero-filled tails, bad headers),
 * identity checks and --all, and property tests against a reference model.
 */
#include <dirent.h>
#include <poll.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"
#include "libcowmap.h"

/* --- helpers ---------------------------------------------------------------- */

struct trec {
	uint64_t session, seq, offset, time;
	const char *old, *new_;	/* strlen(old) bytes each */
};

/* A fresh directory for one test, removed by rmtree(). */
static char *mktestdir(void)
{
	static char dir[512];

	snprintf(dir, sizeof(dir), "%s/merge.XXXXXX", cm_dir());
	return mkdtemp(dir);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static int file_is(const char *path, const char *want)
{
	size_t len;
	char *got = cm_get_file(path, &len);
	int ok = got && len == strlen(want) && !memcmp(got, want, len);

	free(got);
	return ok;
}

static void info_of(const char *file, struct cowmap_log_info *info)
{
	struct stat st;

	memset(info, 0, sizeof(*info));
	if (stat(file, &st))
		return;
	info->session_id = 1;
	info->dev_major = major(st.st_dev);
	info->dev_minor = minor(st.st_dev);
	info->ino = st.st_ino;
	info->size_at_attach = st.st_size;
	info->created_ns = 1000;
}

/* Write a log of @file with @n records. 0 or -errno. */
static int write_log(const char *log, const char *file, const struct trec *r, size_t n)
{
	struct cowmap_log_info info;
	struct cowmap_log_writer *w;
	int ret;

	info_of(file, &info);
	if (n)
		info.session_id = r[0].session;
	ret = cowmap_log_writer_open(log, &info, COWMAP_LOGW_NO_SYNC, &w);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		struct cowmap_rec rec = {
			.seq = r[i].seq, .session_id = r[i].session,
			.offset = r[i].offset, .time_ns = r[i].time,
			.length = strlen(r[i].old),
			.old_bytes = (const uint8_t *)r[i].old,
			.new_bytes = (const uint8_t *)r[i].new_,
			.pid = 42, .uid = 0,
		};
		ret = cowmap_log_append(w, &rec);
	}
	return cowmap_log_writer_close(w, !ret) ?: ret;
}

/* Events a merge reported. */
struct evs {
	int n[COWMAP_MEV_NOTE + 1];
	struct { uint64_t session, seq, offset; uint32_t length; size_t found_len;
		 uint8_t found[64]; } conflict[16];
	int nconflict;
	uint64_t err_offset[16];
	enum cowmap_log_err_kind err_kind[16];
	int nerr;
};

static void on_event(void *arg, const struct cowmap_merger_event *ev)
{
	struct evs *e = arg;

	e->n[ev->type]++;
	if ((ev->type == COWMAP_MEV_CONFLICT || ev->type == COWMAP_MEV_FORCED) &&
	    e->nconflict < 16) {
		typeof(e->conflict[0]) *c = &e->conflict[e->nconflict++];

		c->session = ev->rec->session_id;
		c->seq = ev->rec->seq;
		c->offset = ev->rec->offset;
		c->length = ev->rec->length;
		c->found_len = ev->found_len;
		if (ev->found_len)
			memcpy(c->found, ev->found, ev->found_len < 64 ? ev->found_len : 64);
	}
	if (ev->error && e->nerr < 16) {
		e->err_offset[e->nerr] = ev->error->offset;
		e->err_kind[e->nerr++] = ev->error->kind;
	}
}

/* Merge @logs (NULL-terminated) into @source (or @out). */
static int merge(const char *source, const char *out, enum cowmap_merger_policy pol,
		 unsigned int flags, struct cowmap_merger_stats *st, struct evs *ev,
		 const char *const *logs)
{
	struct cowmap_merger *m;
	struct evs dummy;
	int ret;

	if (!ev)
		ev = &dummy;
	memset(ev, 0, sizeof(*ev));
	ret = cowmap_merger_new(on_event, ev, &m);
	if (ret)
		return ret;
	for (; *logs; logs++)
		cowmap_merger_add_log(m, *logs);
	ret = cowmap_merger_run(m, source, out, pol, flags | COWMAP_MERGER_NO_SYNC, st);
	cowmap_merger_free(m);
	return ret;
}

static int poke(const char *path, off_t off, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && pwrite(fd, s, strlen(s), off) == (ssize_t)strlen(s);

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

static int append(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	int ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* Entries of @dir whose name contains @part. */
static int count_entries(const char *dir, const char *part)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strstr(de->d_name, part))
			n++;
	closedir(d);
	return n;
}

/* A merge of one log with every fsync, as cowmapctl does it. */
static int merge_synced(const char *src, const char *out, const char *log,
			struct cowmap_merger_stats *st)
{
	struct cowmap_merger *m;
	int ret = cowmap_merger_new(NULL, NULL, &m);

	if (ret)
		return ret;
	ret = cowmap_merger_add_log(m, log);
	if (ret >= 0)
		ret = cowmap_merger_run(m, src, out, COWMAP_POLICY_SKIP, 0, st);
	cowmap_merger_free(m);
	return ret;
}

#define SEED	"------------ Hello World! ------------"
#define SEEDX	"------------ Hexxx World! ------------"

/* --- CRC and format ---------------------------------------------------------- */

TEST(crc32_check_value)
{
	ASSERT_EQ(0xCBF43926u, cowmap_crc32(0, "123456789", 9));
	/* chaining, as zlib */
	ASSERT_EQ(0xCBF43926u, cowmap_crc32(cowmap_crc32(0, "1234", 4), "56789", 5));
	ASSERT_EQ(0u, cowmap_crc32(0, "", 0));
}

TEST(record_roundtrip)
{
	uint8_t buf[4096], hdr[64];
	struct cowmap_log_info info = { .session_id = 7, .dev_major = 8,
		.dev_minor = 1, .ino = 99, .size_at_attach = 38, .created_ns = 5 };
	struct cowmap_rec in = { .seq = 3, .session_id = 7, .offset = 15,
		.length = 3, .time_ns = 123, .pid = 4, .uid = 5,
		.old_bytes = (const uint8_t *)"llo", .new_bytes = (const uint8_t *)"xxx" };
	struct cowmap_log_error err;
	struct cowmap_log *log;
	struct cowmap_rec out;
	int n;

	ASSERT_EQ(72u, cowmap_log_record_size(3));
	ASSERT_EQ(72u, cowmap_log_record_size(4));
	ASSERT_EQ(80u, cowmap_log_record_size(5));
	cowmap_log_encode_header(&info, hdr);
	ASSERT_EQ(0, memcmp(hdr, "COWMAPLG", 8));
	memcpy(buf, hdr, 64);
	n = cowmap_log_encode_record(&in, buf + 64);
	ASSERT_EQ(72, n);
	/* little-endian fields at their uapi offsets */
	ASSERT_EQ(COWMAP_REC_MAGIC, buf[64] | buf[65] << 8 | buf[66] << 16 | (uint32_t)buf[67] << 24);
	ASSERT_EQ(15, buf[64 + 24]);
	ASSERT_EQ(0, memcmp(buf + 64 + 64, "lloxxx\0\0", 8));
	ASSERT_EQ(0, cowmap_log_open_mem(buf, 64 + n, &log, &err));
	ASSERT_EQ(7u, cowmap_log_info(log)->session_id);
	ASSERT_EQ(99u, cowmap_log_info(log)->ino);
	ASSERT_EQ(1, cowmap_log_next(log, &out, &err));
	ASSERT_EQ(3u, out.seq);
	ASSERT_EQ(15u, out.offset);
	ASSERT_EQ(123u, out.time_ns);
	ASSERT_EQ(64u, out.pos);
	ASSERT_EQ(0, memcmp(out.old_bytes, "llo", 3));
	ASSERT_EQ(0, memcmp(out.new_bytes, "xxx", 3));
	ASSERT_EQ(0, cowmap_log_next(log, &out, &err));
	cowmap_log_close(log);
	in.length = 0;
	ASSERT_EQ(-EINVAL, cowmap_log_encode_record(&in, buf));
	in.length = COWMAP_LOG_MAX_RUN + 1;
	ASSERT_EQ(-EINVAL, cowmap_log_encode_record(&in, buf));
}

TEST(writer_append_and_atomic)
{
	char *dir = mktestdir(), *src, *log, *other;
	struct cowmap_log_writer *w;
	struct cowmap_log_info info;
	struct cowmap_log *l;
	struct cowmap_rec rec = { .seq = 1, .session_id = 2, .offset = 0,
		.length = 1, .time_ns = 9, .old_bytes = (const uint8_t *)"-",
		.new_bytes = (const uint8_t *)"+" };
	int n = 0;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "src");
	log = path_in(dir, "log");
	other = path_in(dir, "other");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, cm_put_file(other, "x", 1));
	info_of(src, &info);
	/* atomic: nothing at the path until close */
	ASSERT_EQ(0, cowmap_log_writer_open(log, &info, COWMAP_LOGW_ATOMIC, &w));
	ASSERT_EQ(0, cowmap_log_append(w, &rec));
	ASSERT_NE(0, access(log, F_OK));
	ASSERT_EQ(0, cowmap_log_writer_close(w, 1));
	ASSERT_EQ(0, access(log, F_OK));
	ASSERT_EQ(0, count_entries(dir, ".log."));
	/* abandoned atomic writer: no file, no temp */
	ASSERT_EQ(0, cowmap_log_writer_open(other, &info, COWMAP_LOGW_ATOMIC, &w));
	ASSERT_EQ(0, cowmap_log_writer_close(w, 0));
	ASSERT_TRUE(file_is(other, "x"));
	ASSERT_EQ(0, count_entries(dir, ".other."));
	/* append: same file only */
	rec.seq = 2;
	ASSERT_EQ(0, cowmap_log_writer_open(log, &info, COWMAP_LOGW_APPEND, &w));
	ASSERT_EQ(0, cowmap_log_append(w, &rec));
	ASSERT_EQ(0, cowmap_log_writer_close(w, 1));
	info.ino++;
	ASSERT_EQ(-EXDEV, cowmap_log_writer_open(log, &info, COWMAP_LOGW_APPEND, &w));
	ASSERT_EQ(-EINVAL, cowmap_log_writer_open(log, &info,
						  COWMAP_LOGW_APPEND | COWMAP_LOGW_ATOMIC, &w));
	ASSERT_EQ(0, cowmap_log_open(log, &l, NULL));
	while (cowmap_log_next(l, &rec, NULL) == 1)
		ASSERT_EQ((uint64_t)++n, rec.seq);
	ASSERT_EQ(2, n);
	cowmap_log_close(l);
	rmtree(dir);
}

/* --- the seed demo and the basic rules ---------------------------------------- */

TEST(seed_demo_in_place)
{
	char *dir = mktestdir(), *src, *log;
	const struct trec r[] = { { 1, 1, 15, 100, "llo", "xxx" } };
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "file0");
	log = path_in(dir, "file0.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(log, src, r, 1));
	ASSERT_TRUE(file_is(src, SEED));	/* untouched until the merge */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(src, SEEDX));
	ASSERT_EQ(1u, st.applied);
	ASSERT_EQ(1, st.written);
	ASSERT_EQ(3u, st.bytes_written);
	/* again: already applied, nothing written */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1u, st.already);
	ASSERT_EQ(0u, st.applied);
	ASSERT_EQ(0, st.written);
	ASSERT_TRUE(file_is(src, SEEDX));
	ASSERT_EQ(0, count_entries(dir, "cowmap-"));	/* no intent, no temp */
	rmtree(dir);
}

/*
 * An in-place merge takes the kernel merge's lock, a whole-file OFD write
 * lock: while another open file description holds it, the merge waits and
 * writes nothing.
 */
TEST(waits_for_ofd_lock)
{
	char *dir = mktestdir(), *src, *log;
	const struct trec r[] = { { 1, 1, 15, 100, "llo", "xxx" } };
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct pollfd pl;
	int lfd, pfd[2];
	char c = 0;
	pid_t pid;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "file0");
	log = path_in(dir, "file0.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(log, src, r, 1));
	lfd = open(src, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, lfd);
	ASSERT_EQ(0, fcntl(lfd, F_OFD_SETLKW, &fl));
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		c = merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, NULL, NULL,
			  (const char *[]){ log, NULL }) ? 'n' : 'y';
		_exit(write(pfd[1], &c, 1) != 1);
	}
	pl = (struct pollfd){ .fd = pfd[0], .events = POLLIN };
	EXPECT_EQ(0, poll(&pl, 1, 500));
	EXPECT_TRUE(file_is(src, SEED));
	fl.l_type = F_UNLCK;
	ASSERT_EQ(0, fcntl(lfd, F_OFD_SETLK, &fl));
	ASSERT_EQ(1, read(pfd[0], &c, 1));
	EXPECT_EQ('y', c);
	EXPECT_EQ(0, cm_wait(pid));
	EXPECT_TRUE(file_is(src, SEEDX));
	close(lfd);
	close(pfd[0]);
	close(pfd[1]);
	rmtree(dir);
}

TEST(seed_demo_out)
{
	char *dir = mktestdir(), *src, *log, *out;
	const struct trec r[] = { { 1, 1, 15, 100, "llo", "xxx" } };
	struct cowmap_merger_stats st;
	struct stat s1;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "file0");
	log = path_in(dir, "file0.log");
	out = path_in(dir, "merged");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, chmod(src, 0640));
	ASSERT_EQ(0, write_log(log, src, r, 1));
	ASSERT_EQ(0, merge(src, out, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(src, SEED));
	ASSERT_TRUE(file_is(out, SEEDX));
	ASSERT_EQ(0, stat(out, &s1));
	ASSERT_EQ(0640, s1.st_mode & 07777);	/* the source's mode */
	ASSERT_EQ(0, count_entries(dir, "cowmap-"));
	/* the real call: with fsyncs */
	ASSERT_EQ(0, merge_synced(src, out, log, &st));
	ASSERT_TRUE(file_is(out, SEEDX));
	ASSERT_EQ(0, count_entries(dir, "cowmap-"));
	rmtree(dir);
}

/* Two records, the second conflicting (the file holds "Jello" there). */
#define CFILE	"------------ Hello World! ------------ Jello ------------"
static const struct trec conflict_recs[] = {
	{ 1, 1, 15, 100, "llo", "xxx" },
	{ 1, 2, 39, 100, "Hello", "HELLO" },
};

TEST(conflict_all_or_nothing)
{
	char *dir = mktestdir(), *src, *log;
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, CFILE, strlen(CFILE)));
	ASSERT_EQ(0, write_log(log, src, conflict_recs, 2));
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(src, CFILE));	/* nothing written */
	ASSERT_EQ(0, st.written);
	ASSERT_EQ(1u, st.applied);	/* would have applied */
	ASSERT_EQ(1u, st.conflicts);
	ASSERT_EQ(1, ev.nconflict);
	ASSERT_EQ(1u, ev.conflict[0].session);
	ASSERT_EQ(2u, ev.conflict[0].seq);
	ASSERT_EQ(39u, ev.conflict[0].offset);
	ASSERT_EQ(5u, ev.conflict[0].length);
	ASSERT_EQ(5u, ev.conflict[0].found_len);
	ASSERT_EQ(0, memcmp(ev.conflict[0].found, "Jello", 5));
	/* -o: no OUT at all */
	ASSERT_EQ(1, merge(src, "/nonexistent-dir/out", COWMAP_POLICY_ALL_OR_NOTHING,
			   0, &st, NULL, (const char *[]){ log, NULL }));
	rmtree(dir);
}

TEST(conflict_skip)
{
	char *dir = mktestdir(), *src, *log;
	struct cowmap_merger_stats st;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, CFILE, strlen(CFILE)));
	ASSERT_EQ(0, write_log(log, src, conflict_recs, 2));
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(src, "------------ Hexxx World! ------------ Jello ------------"));
	/* re-run: one already applied, the same conflict */
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1u, st.already);
	ASSERT_EQ(0, st.written);
	rmtree(dir);
}

TEST(conflict_force)
{
	char *dir = mktestdir(), *src, *log;
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, CFILE, strlen(CFILE)));
	ASSERT_EQ(0, write_log(log, src, conflict_recs, 2));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_FORCE, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1u, st.forced);
	ASSERT_EQ(1, ev.n[COWMAP_MEV_FORCED]);
	ASSERT_TRUE(file_is(src, "------------ Hexxx World! ------------ HELLO ------------"));
	/* now everything is already applied */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(2u, st.already);
	rmtree(dir);
}

TEST(dry_run_writes_nothing)
{
	char *dir = mktestdir(), *src, *log, *out;
	struct cowmap_merger_stats st;
	struct stat a, b;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	out = path_in(dir, "out");
	ASSERT_EQ(0, cm_put_file(src, CFILE, strlen(CFILE)));
	ASSERT_EQ(0, write_log(log, src, conflict_recs, 2));
	ASSERT_EQ(0, stat(src, &a));
	for (int pol = 0; pol <= COWMAP_POLICY_FORCE; pol++) {
		int want = pol == COWMAP_POLICY_FORCE ? 0 : 1;

		ASSERT_EQ(want, merge(src, NULL, pol, COWMAP_MERGER_DRY_RUN, &st, NULL,
				      (const char *[]){ log, NULL }));
		ASSERT_EQ(1u, st.applied);
		ASSERT_EQ(want, merge(src, out, pol, COWMAP_MERGER_DRY_RUN, &st, NULL,
				      (const char *[]){ log, NULL }));
		ASSERT_EQ(0, st.written);
	}
	ASSERT_TRUE(file_is(src, CFILE));
	ASSERT_EQ(0, stat(src, &b));
	ASSERT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	ASSERT_NE(0, access(out, F_OK));
	ASSERT_EQ(0, count_entries(dir, "cowmap-"));
	rmtree(dir);
}

TEST(already_applied_and_chain)
{
	/* one session rewrites the same bytes in three commits */
	const struct trec r[] = {
		{ 1, 1, 13, 100, "Hello", "Jello" },
		{ 1, 2, 14, 200, "ello W", "ELLO_W" },	/* overlaps 1 */
		{ 1, 3, 13, 300, "JELLO_", "-ELLO-" },	/* overlaps both */
	};
	const char *want = "------------ -ELLO-World! ------------";
	char *dir = mktestdir(), *src, *log;
	struct cowmap_merger_stats st;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(log, src, r, 3));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(3u, st.applied);
	ASSERT_TRUE(file_is(src, want));
	/* re-run: all three are already applied, though 1 and 2 were overwritten */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(3u, st.already);
	ASSERT_TRUE(file_is(src, want));
	/* a file that has only the first commit merged completes */
	ASSERT_EQ(0, cm_put_file(src, "------------ Jello World! ------------", strlen(SEED)));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1u, st.already);
	ASSERT_EQ(2u, st.applied);
	ASSERT_TRUE(file_is(src, want));
	rmtree(dir);
}

TEST(reverted_bytes_rerun_is_idempotent)
{
	/* r1 changes "H" and r2 changes it back, with more bytes around */
	const struct trec a[] = {
		{ 1, 1, 13, 100, "H", "J" },
		{ 1, 2, 13, 200, "Jello", "Hallo" },
	};
	/* another session, touching the same extent later */
	const struct trec b[] = { { 2, 1, 18, 300, " ", "_" } };
	const char *want_a = "------------ Hallo World! ------------";
	const char *want_ab = "------------ Hallo_World! ------------";
	char *dir = mktestdir(), *src, *la, *lb;
	struct cowmap_merger_stats st;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	la = path_in(dir, "a.log");
	lb = path_in(dir, "b.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(la, src, a, 2));
	ASSERT_EQ(0, write_log(lb, src, b, 1));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ la, NULL }));
	ASSERT_TRUE(file_is(src, want_a));
	/* r1's old byte "H" is back, but re-applying it would break r2 */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ la, NULL }));
	ASSERT_EQ(2u, st.already);
	ASSERT_EQ(0, st.written);
	/* the same with a log that still has work in that extent */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ la, lb, NULL }));
	ASSERT_EQ(2u, st.already);
	ASSERT_EQ(1u, st.applied);
	ASSERT_TRUE(file_is(src, want_ab));
	/* and from scratch, everything applies */
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ lb, la, NULL }));
	ASSERT_EQ(3u, st.applied);
	ASSERT_TRUE(file_is(src, want_ab));
	rmtree(dir);
}

TEST(clock_stepped_back_keeps_session_order)
{
	/* seq 2 carries an earlier time than seq 1: seq still decides */
	const struct trec a[] = {
		{ 1, 1, 13, 200, "Hello", "Jello" },
		{ 1, 2, 13, 100, "Jello", "Jolly" },
	};
	/* another session between the two times goes after both */
	const struct trec b[] = { { 2, 1, 19, 150, "World", "WORLD" } };
	char *dir = mktestdir(), *src, *la, *lb;
	struct cowmap_merger_stats st;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	la = path_in(dir, "a.log");
	lb = path_in(dir, "b.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(la, src, a, 2));
	ASSERT_EQ(0, write_log(lb, src, b, 1));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ la, lb, NULL }));
	ASSERT_EQ(3u, st.applied);
	ASSERT_TRUE(file_is(src, "------------ Jolly WORLD! ------------"));
	rmtree(dir);
}

/* --- several logs ------------------------------------------------------------- */

TEST(two_logs_disjoint_ranges_one_page)
{
	const struct trec a[] = { { 1, 1, 1, 100, "-----", "AAAAA" } };
	const struct trec b[] = { { 2, 1, 30, 100, "-----", "BBBBB" },
				  { 2, 2, 15, 150, "llo", "LLO" } };
	char *dir = mktestdir(), *src, *la, *lb;
	struct cowmap_merger_stats st;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	la = path_in(dir, "a.log");
	lb = path_in(dir, "b.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(la, src, a, 1));
	ASSERT_EQ(0, write_log(lb, src, b, 2));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ lb, la, NULL }));
	ASSERT_EQ(3u, st.applied);
	ASSERT_TRUE(file_is(src, "-AAAAA------ HeLLO World! ----BBBBB---"));
	rmtree(dir);
}

TEST(two_logs_same_bytes_conflict)
{
	/* both sessions saw "llo"; the later commit finds the earlier one's bytes */
	const struct trec a[] = { { 1, 1, 15, 100, "llo", "xxx" } };
	const struct trec b[] = { { 2, 1, 15, 200, "llo", "yyy" } };
	char *dir = mktestdir(), *src, *la, *lb;
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	la = path_in(dir, "a.log");
	lb = path_in(dir, "b.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(la, src, a, 1));
	ASSERT_EQ(0, write_log(lb, src, b, 1));
	/* given in either order, the earlier commit wins, the later conflicts */
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ lb, la, NULL }));
	ASSERT_TRUE(file_is(src, SEED));
	ASSERT_EQ(2u, ev.conflict[0].session);
	ASSERT_EQ(0, memcmp(ev.conflict[0].found, "xxx", 3));
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, &ev,
			   (const char *[]){ la, lb, NULL }));
	ASSERT_TRUE(file_is(src, SEEDX));
	ASSERT_EQ(1, ev.nconflict);
	ASSERT_EQ(2u, ev.conflict[0].session);
	/* a partial overlap conflicts too */
	const struct trec c[] = { { 3, 1, 16, 300, "lo W", "LO_W" } };
	char *lc = path_in(dir, "c.log");

	ASSERT_EQ(0, write_log(lc, src, c, 1));
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, &ev,
			   (const char *[]){ lc, NULL }));
	ASSERT_EQ(0, memcmp(ev.conflict[0].found, "xx W", 4));
	rmtree(dir);
}

TEST(order_is_time_session_seq)
{
	/* session 2 committed on top of session 1's merged result */
	const struct trec a[] = { { 1, 1, 15, 100, "llo", "xxx" } };
	const struct trec b[] = { { 2, 1, 14, 200, "exxx", "EXXX" } };
	/* same time: the lower session id goes first */
	const struct trec c[] = { { 4, 1, 0, 300, "-", "4" } };
	const struct trec d[] = { { 3, 1, 0, 300, "-", "3" } };
	char *dir = mktestdir(), *src, *la, *lb, *lc, *ld;
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	la = path_in(dir, "a.log");
	lb = path_in(dir, "b.log");
	lc = path_in(dir, "c.log");
	ld = path_in(dir, "d.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(la, src, a, 1));
	ASSERT_EQ(0, write_log(lb, src, b, 1));
	ASSERT_EQ(0, write_log(lc, src, c, 1));
	ASSERT_EQ(0, write_log(ld, src, d, 1));
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, &ev,
			   (const char *[]){ lc, lb, ld, la, NULL }));
	ASSERT_TRUE(file_is(src, "3----------- HEXXX World! ------------"));
	ASSERT_EQ(4u, ev.conflict[0].session);
	rmtree(dir);
}

TEST(range_past_end_of_file)
{
	const struct trec r[] = { { 1, 1, 36, 100, "---x", "-end" } };
	char *dir = mktestdir(), *src, *log;
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(log, src, r, 1));
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(2u, ev.conflict[0].found_len);	/* 2 of 4 bytes exist */
	ASSERT_TRUE(file_is(src, SEED));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_FORCE, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(src, "------------ Hello World! -----------end"));
	rmtree(dir);
}

/* --- atomicity and interruption ------------------------------------------------ */

struct killer {
	enum cowmap_merger_stage at;
	uint64_t n;
};

static void kill_at(void *arg, enum cowmap_merger_stage s, uint64_t n)
{
	struct killer *k = arg;

	if (s == k->at && n == k->n)
		kill(getpid(), SIGKILL);
}

/* Run a merge in a child that kills itself at @at/@n; its wait status. */
static int merge_killed(const char *src, const char *out, const char *log,
			enum cowmap_merger_stage at, uint64_t n)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct killer k = { at, n };
		struct cowmap_merger *m;

		if (cowmap_merger_new(NULL, NULL, &m) || cowmap_merger_add_log(m, log) < 0)
			_exit(10);
		cowmap_merger_set_stage_cb(m, kill_at, &k);
		cowmap_merger_run(m, src, out, COWMAP_POLICY_ALL_OR_NOTHING, 0, NULL);
		_exit(11);	/* not killed */
	}
	return cm_wait(pid);
}

TEST(out_is_atomic)
{
	const struct trec r[] = { { 1, 1, 15, 100, "llo", "xxx" } };
	char *dir = mktestdir(), *src, *log, *out;
	struct cowmap_merger_stats st;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	out = path_in(dir, "out");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(log, src, r, 1));
	/* killed after the temp file is complete, before the rename */
	ASSERT_EQ(128 + SIGKILL, merge_killed(src, out, log, COWMAP_MSTAGE_TEMP_SYNCED, 0));
	ASSERT_NE(0, access(out, F_OK));		/* no OUT at all */
	ASSERT_EQ(1, count_entries(dir, ".out.cowmap-"));	/* the killed run's temp */
	/* an existing OUT keeps its old content */
	ASSERT_EQ(0, cm_put_file(out, "old", 3));
	ASSERT_EQ(128 + SIGKILL, merge_killed(src, out, log, COWMAP_MSTAGE_TEMP_SYNCED, 0));
	ASSERT_TRUE(file_is(out, "old"));
	ASSERT_EQ(2, count_entries(dir, ".out.cowmap-"));
	/* a run to the end replaces OUT and leaves no temp of its own */
	ASSERT_EQ(0, merge(src, out, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(out, SEEDX));
	ASSERT_EQ(2, count_entries(dir, ".out.cowmap-"));
	ASSERT_TRUE(file_is(src, SEED));
	rmtree(dir);
}

/* Records far apart, so that the merge writes several runs. */
static const struct trec spread[] = {
	{ 1, 1, 100, 100, "aaaa", "AAAA" },
	{ 1, 2, 5000, 100, "bbbb", "BBBB" },
	{ 1, 3, 9000, 100, "cccc", "CCCC" },
};

static void spread_file(char *buf)
{
	memset(buf, '.', 10000);
	memcpy(buf + 100, "aaaa", 4);
	memcpy(buf + 5000, "bbbb", 4);
	memcpy(buf + 9000, "cccc", 4);
}

static int spread_merged(const char *path)
{
	char want[10000];
	size_t len;
	char *got = cm_get_file(path, &len);
	int ok;

	spread_file(want);
	memcpy(want + 100, "AAAA", 4);
	memcpy(want + 5000, "BBBB", 4);
	memcpy(want + 9000, "CCCC", 4);
	ok = got && len == sizeof(want) && !memcmp(got, want, len);
	free(got);
	return ok;
}

TEST(in_place_interrupted_completes)
{
	char *dir = mktestdir(), *src, *log, *intent, buf[10000];
	struct cowmap_merger_stats st;
	struct evs ev;
	size_t len;
	char *got;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	intent = path_in(dir, ".f.cowmap-intent");
	spread_file(buf);
	ASSERT_EQ(0, cm_put_file(src, buf, sizeof(buf)));
	ASSERT_EQ(0, write_log(log, src, spread, 3));

	/* killed after the first of three runs */
	ASSERT_EQ(128 + SIGKILL, merge_killed(src, NULL, log, COWMAP_MSTAGE_RUN_WRITTEN, 0));
	ASSERT_EQ(0, access(intent, F_OK));
	got = cm_get_file(src, &len);
	ASSERT_NE(NULL, got);
	ASSERT_EQ(0, memcmp(got + 100, "AAAA", 4));
	ASSERT_EQ(0, memcmp(got + 5000, "bbbb", 4));
	free(got);
	/* a dry run and -o do not touch it; -o refuses */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, COWMAP_MERGER_DRY_RUN,
			   &st, &ev, (const char *[]){ log, NULL }));
	ASSERT_EQ(-EUCLEAN, merge(src, "/tmp/never", COWMAP_POLICY_ALL_OR_NOTHING, 0,
				  &st, NULL, (const char *[]){ log, NULL }));
	ASSERT_EQ(0, access(intent, F_OK));
	/* the re-run completes: exact result, intent gone */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1, st.recovered);
	ASSERT_EQ(1, ev.n[COWMAP_MEV_RECOVERED]);
	ASSERT_EQ(3u, st.already);
	ASSERT_TRUE(spread_merged(src));
	ASSERT_NE(0, access(intent, F_OK));

	/* killed with the intent durable but nothing written yet */
	ASSERT_EQ(0, cm_put_file(src, buf, sizeof(buf)));
	ASSERT_EQ(128 + SIGKILL, merge_killed(src, NULL, log, COWMAP_MSTAGE_INTENT_SYNCED, 0));
	ASSERT_EQ(0, access(intent, F_OK));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(spread_merged(src));

	/* a torn write inside a run (power loss): bytes are old or new */
	ASSERT_EQ(0, cm_put_file(src, buf, sizeof(buf)));
	ASSERT_EQ(128 + SIGKILL, merge_killed(src, NULL, log, COWMAP_MSTAGE_RUN_WRITTEN, 0));
	ASSERT_EQ(0, poke(src, 5000, "BB"));	/* half of run 2 */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(spread_merged(src));
	rmtree(dir);
}

TEST(intent_file_torn_or_stale)
{
	char *dir = mktestdir(), *src, *log, *intent, buf[10000];
	struct cowmap_merger_stats st;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	intent = path_in(dir, ".f.cowmap-intent");
	spread_file(buf);
	ASSERT_EQ(0, cm_put_file(src, buf, sizeof(buf)));
	ASSERT_EQ(0, write_log(log, src, spread, 3));
	/* an incomplete intent file: the source was never written; removed */
	ASSERT_EQ(0, cm_put_file(intent, "COWMAPIN\1\0\0\0", 12));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(0, st.recovered);
	ASSERT_TRUE(spread_merged(src));
	ASSERT_NE(0, access(intent, F_OK));
	/* an intent whose pre-image no longer matches: refused, kept */
	ASSERT_EQ(0, cm_put_file(src, buf, sizeof(buf)));
	ASSERT_EQ(128 + SIGKILL, merge_killed(src, NULL, log, COWMAP_MSTAGE_INTENT_SYNCED, 0));
	ASSERT_EQ(0, poke(src, 9000, "zzzz"));
	ASSERT_EQ(-ESTALE, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
				 (const char *[]){ log, NULL }));
	ASSERT_EQ(0, access(intent, F_OK));
	rmtree(dir);
}

/* --- damaged logs ----------------------------------------------------------------- */

/* A log of three records at 64, 136, 208; 280 bytes. */
static const struct trec three[] = {
	{ 1, 1, 0, 100, "---", "AAA" },
	{ 1, 2, 15, 100, "llo", "xxx" },
	{ 1, 3, 30, 100, "---", "CCC" },
};

static int flip(const char *path, off_t off, uint8_t mask)
{
	uint8_t b;
	int fd = open(path, O_RDWR);
	int ok = fd >= 0 && pread(fd, &b, 1, off) == 1 &&
		 (b ^= mask, pwrite(fd, &b, 1, off) == 1);

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

TEST(bit_flip_reported_with_offset)
{
	char *dir = mktestdir(), *src, *log;
	struct cowmap_log_error err;
	struct cowmap_merger_stats st;
	struct cowmap_log *l;
	struct cowmap_rec rec;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(log, src, three, 3));
	ASSERT_EQ(0, flip(log, 136 + 64 + 1, 0x10));	/* an old byte of record 2 */

	ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(1u, rec.seq);
	ASSERT_EQ(-EBADMSG, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(COWMAP_LOGERR_REC_CRC, err.kind);
	ASSERT_EQ(136u, err.offset);
	ASSERT_EQ(208u, err.resume);
	ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(3u, rec.seq);
	ASSERT_EQ(0, cowmap_log_next(l, &rec, &err));
	cowmap_log_close(l);

	/* the merge refuses the damaged log, nothing written */
	ASSERT_EQ(-EBADMSG, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, &ev,
				  (const char *[]){ log, NULL }));
	ASSERT_EQ(1, ev.n[COWMAP_MEV_LOG_ERROR]);
	ASSERT_EQ(136u, ev.err_offset[0]);
	ASSERT_TRUE(file_is(src, SEED));
	/* --salvage: the intact records apply, the damaged one never */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, COWMAP_MERGER_SALVAGE,
			   &st, NULL, (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(src, "AAA--------- Hello World! ----CCC-----"));

	/* a flipped size field: the record is lost, the next one found again */
	ASSERT_EQ(0, write_log(log, src, three, 3));
	ASSERT_EQ(0, flip(log, 136 + 4, 0x40));
	ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(-EBADMSG, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(COWMAP_LOGERR_REC_SIZE, err.kind);
	ASSERT_EQ(136u, err.offset);
	ASSERT_EQ(208u, err.resume);
	ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(3u, rec.seq);
	cowmap_log_close(l);
	/* a flipped magic */
	ASSERT_EQ(0, write_log(log, src, three, 3));
	ASSERT_EQ(0, flip(log, 136, 0x01));
	ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(-EBADMSG, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(COWMAP_LOGERR_REC_MAGIC, err.kind);
	ASSERT_EQ(136u, err.offset);
	cowmap_log_close(l);
	rmtree(dir);
}

TEST(truncated_and_zero_filled_tail)
{
	char *dir = mktestdir(), *src, *log;
	struct cowmap_log_error err;
	struct cowmap_merger_stats st;
	struct cowmap_log *l;
	struct cowmap_rec rec;
	struct evs ev;
	static const uint8_t zeros[200];

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));

	for (int cut = 1; cut < 72; cut += 7) {
		ASSERT_EQ(0, write_log(log, src, three, 3));
		ASSERT_EQ(0, truncate(log, 280 - cut));
		ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
		ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
		ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
		ASSERT_EQ(-ENODATA, cowmap_log_next(l, &rec, &err));
		ASSERT_EQ(COWMAP_LOGERR_TRUNCATED, err.kind);
		ASSERT_EQ(208u, err.offset);
		ASSERT_EQ(0, cowmap_log_next(l, &rec, &err));
		cowmap_log_close(l);
	}
	/* the merge warns and uses the complete records */
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1, ev.n[COWMAP_MEV_LOG_WARNING]);
	ASSERT_EQ(208u, ev.err_offset[0]);
	ASSERT_TRUE(file_is(src, "AAA--------- Hexxx World! ------------"));

	/* zeros after the last record (a size update without its data) */
	ASSERT_EQ(0, write_log(log, src, three, 3));
	ASSERT_EQ(0, append(log, zeros, 200));
	ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(-ENODATA, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(COWMAP_LOGERR_TRUNCATED, err.kind);
	ASSERT_EQ(280u, err.offset);
	ASSERT_EQ(480u, err.resume);
	cowmap_log_close(l);
	/* garbage (not zeros) after the last record is damage, not a tail */
	ASSERT_EQ(0, write_log(log, src, three, 3));
	ASSERT_EQ(0, append(log, SEED SEED SEED, 100));
	ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(1, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(-EBADMSG, cowmap_log_next(l, &rec, &err));
	ASSERT_EQ(COWMAP_LOGERR_REC_MAGIC, err.kind);
	cowmap_log_close(l);
	rmtree(dir);
}

TEST(bad_headers)
{
	char *dir = mktestdir(), *src, *log;
	struct cowmap_log_error err;
	struct cowmap_merger_stats st;
	struct cowmap_log *l;
	uint8_t h[64];
	struct cowmap_log_info info = { .session_id = 1 };
	uint32_t crc;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	/* not a log */
	ASSERT_EQ(0, cm_put_file(log, SEED, strlen(SEED)));
	ASSERT_EQ(-EBADMSG, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(COWMAP_LOGERR_BAD_MAGIC, err.kind);
	/* empty, short */
	ASSERT_EQ(0, cm_put_file(log, "", 0));
	ASSERT_EQ(-EBADMSG, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(COWMAP_LOGERR_SHORT_HEADER, err.kind);
	cowmap_log_encode_header(&info, h);
	ASSERT_EQ(0, cm_put_file(log, h, 40));
	ASSERT_EQ(-EBADMSG, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(COWMAP_LOGERR_SHORT_HEADER, err.kind);
	/* header CRC */
	ASSERT_EQ(0, write_log(log, src, three, 3));
	ASSERT_EQ(0, flip(log, 33, 0x04));
	ASSERT_EQ(-EBADMSG, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(COWMAP_LOGERR_HEADER_CRC, err.kind);
	ASSERT_EQ(0u, err.offset);
	/* a future version (with a valid CRC) */
	cowmap_log_encode_header(&info, h);
	h[8] = 3;
	h[60] = h[61] = h[62] = h[63] = 0;
	crc = cowmap_crc32(0, h, 64);
	h[60] = crc;
	h[61] = crc >> 8;
	h[62] = crc >> 16;
	h[63] = crc >> 24;
	ASSERT_EQ(0, cm_put_file(log, h, 64));
	ASSERT_EQ(-EPROTONOSUPPORT, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(COWMAP_LOGERR_BAD_VERSION, err.kind);
	/* the merge refuses */
	ASSERT_EQ(-EBADMSG, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, NULL,
				  (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is(src, SEED));
	rmtree(dir);
}

/* --- version 2: size records ------------------------------------------------------- */

/* A version-2 log item: bytes (@old not NULL) or a size change. */
struct titem {
	uint64_t offset;
	const char *old, *new_;	/* @len bytes each (strlen(old) if 0) */
	size_t len;
	uint64_t old_size, new_size;
	const char *cut;	/* a shrink: the bytes it cuts (@cut_len) */
	size_t cut_len;
};

/* Write a version-2 log of @file: session 1, seq and time 1, 2, ... */
static int write_log2(const char *log, const char *file, const struct titem *t, size_t n)
{
	struct cowmap_log_info info;
	struct cowmap_log_writer *w;
	int ret;

	info_of(file, &info);
	info.version = COWMAP_LOG_VERSION;
	ret = cowmap_log_writer_open(log, &info, COWMAP_LOGW_NO_SYNC, &w);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		struct cowmap_rec rec = {
			.seq = i + 1, .session_id = 1, .time_ns = 1000 + i,
			.pid = 42,
		};

		if (t[i].old) {
			rec.offset = t[i].offset;
			rec.length = t[i].len ? t[i].len : strlen(t[i].old);
			rec.old_bytes = (const uint8_t *)t[i].old;
			rec.new_bytes = (const uint8_t *)t[i].new_;
		} else {
			rec.flags = COWMAP_REC_SIZE;
			rec.offset = rec.new_size = t[i].new_size;
			rec.old_size = t[i].old_size;
			if (t[i].cut)
				rec.cut_crc = cowmap_crc32(0, t[i].cut, t[i].cut_len);
		}
		ret = cowmap_log_append(w, &rec);
	}
	return cowmap_log_writer_close(w, !ret) ?: ret;
}

static int file_is_n(const char *path, const void *want, size_t n)
{
	size_t len;
	char *got = cm_get_file(path, &len);
	int ok = got && len == n && !memcmp(got, want, n);

	free(got);
	return ok;
}

TEST(v2_read_size_records)
{
	char *dir = mktestdir(), *src, *log;
	const struct titem t[] = {
		{ .offset = 1, .old = "bc", .new_ = "XY" },
		{ .old_size = 4, .new_size = 2, .cut = "Yd", .cut_len = 2 },
		{ .old_size = 2, .new_size = 9 },
	};
	struct cowmap_log_error err;
	struct cowmap_log_writer *w;
	struct cowmap_log_info info;
	struct cowmap_log *l;
	struct cowmap_rec r;
	uint8_t buf[256];

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, "abcd", 4));
	ASSERT_EQ(0, write_log2(log, src, t, 3));
	ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(2u, cowmap_log_info(l)->version);
	ASSERT_EQ(1, cowmap_log_next(l, &r, &err));
	ASSERT_EQ(0u, r.flags);
	ASSERT_EQ(2u, r.length);
	ASSERT_EQ(0u, r.new_size);
	ASSERT_EQ(1, cowmap_log_next(l, &r, &err));
	ASSERT_EQ(COWMAP_REC_SIZE, r.flags);
	ASSERT_EQ(0u, r.length);
	ASSERT_EQ(2u, r.offset);
	ASSERT_EQ(4u, r.old_size);
	ASSERT_EQ(2u, r.new_size);
	ASSERT_EQ(cowmap_crc32(0, "Yd", 2), r.cut_crc);
	ASSERT_EQ(96u, r.pos - 64 - cowmap_log_record_size(2) + 96);
	/* it encodes back to the same 96 bytes */
	ASSERT_EQ(96, cowmap_log_encode_record(&r, buf));
	ASSERT_EQ(1, cowmap_log_next(l, &r, &err));
	ASSERT_EQ(9u, r.new_size);
	ASSERT_EQ(0u, r.cut_crc);
	ASSERT_EQ(0, cowmap_log_next(l, &r, &err));
	cowmap_log_close(l);

	/* inconsistent size records are not encoded */
	r.offset = 8;
	ASSERT_EQ(-EINVAL, cowmap_log_encode_record(&r, buf));
	r.offset = 9;
	r.cut_crc = 1;	/* a growth cuts nothing */
	ASSERT_EQ(-EINVAL, cowmap_log_encode_record(&r, buf));
	r.cut_crc = 0;
	r.length = 1;
	ASSERT_EQ(-EINVAL, cowmap_log_encode_record(&r, buf));
	r.length = 0;

	/* a version-1 writer refuses a size record */
	info_of(src, &info);
	ASSERT_EQ(0, cowmap_log_writer_open(log, &info, COWMAP_LOGW_NO_SYNC, &w));
	ASSERT_EQ(-EINVAL, cowmap_log_append(w, &r));
	ASSERT_EQ(0, cowmap_log_writer_close(w, 1));

	/* a size record in a version-1 log is damage (REC_SIZE), never returned */
	cowmap_log_encode_header(&info, buf);
	ASSERT_EQ(96, cowmap_log_encode_record(&r, buf + 64));
	ASSERT_EQ(0, cm_put_file(log, buf, 160));
	ASSERT_EQ(0, cowmap_log_open(log, &l, &err));
	ASSERT_EQ(1u, cowmap_log_info(l)->version);
	ASSERT_EQ(-EBADMSG, cowmap_log_next(l, &r, &err));
	ASSERT_EQ(COWMAP_LOGERR_REC_SIZE, err.kind);
	ASSERT_EQ(0, cowmap_log_next(l, &r, &err));
	cowmap_log_close(l);
	rmtree(dir);
}

TEST(v2_grow_apply_already_conflict)
{
	char *dir = mktestdir(), *src, *log;
	const struct titem t[] = {
		{ .old_size = 3, .new_size = 8 },
		{ .offset = 3, .old = "\0\0\0\0", .new_ = "defg", .len = 4 },
	};
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, "abc", 3));
	ASSERT_EQ(0, write_log2(log, src, t, 2));
	/* a dry run writes nothing */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, COWMAP_MERGER_DRY_RUN,
			   &st, &ev, (const char *[]){ log, NULL }));
	ASSERT_EQ(2u, st.applied);
	ASSERT_TRUE(file_is_n(src, "abc", 3));
	/* applies: grown with zeros, then the bytes */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(2u, st.applied);
	ASSERT_TRUE(file_is_n(src, "abcdefg\0", 8));
	/* again: already applied, nothing written */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(0u, st.applied);
	ASSERT_EQ(2u, st.already);
	ASSERT_EQ(0u, st.bytes_written);
	ASSERT_TRUE(file_is_n(src, "abcdefg\0", 8));
	/* a size that is neither old nor new: a conflict with offset the size wanted */
	ASSERT_EQ(0, cm_put_file(src, "abcz", 4));
	ASSERT_EQ(2, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(2, ev.nconflict);
	ASSERT_EQ(8u, ev.conflict[0].offset);
	ASSERT_EQ(0u, ev.conflict[0].length);
	ASSERT_TRUE(file_is_n(src, "abcz", 4));
	/* skip: both left out (the bytes past the end conflict too) */
	ASSERT_EQ(2, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is_n(src, "abcz", 4));
	/* force: resized and written */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_FORCE, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(2u, st.forced);
	ASSERT_TRUE(file_is_n(src, "abcdefg\0", 8));
	rmtree(dir);
}

TEST(v2_shrink_cut_crc)
{
	char *dir = mktestdir(), *src, *log, *out;
	const struct titem t[] = {
		{ .offset = 13, .old = "Hello", .new_ = "Hexxx" },
		{ .old_size = 38, .new_size = 20, .cut = SEED + 20, .cut_len = 18 },
	};
	struct cowmap_merger_stats st;
	struct evs ev;
	char want[39];

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	out = path_in(dir, "out");
	ASSERT_EQ(0, cm_put_file(src, SEED, 38));
	ASSERT_EQ(0, write_log2(log, src, t, 2));
	/* -o: a copy of what is kept, resized, then the runs */
	ASSERT_EQ(0, merge(src, out, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is_n(out, SEEDX, 20));
	ASSERT_TRUE(file_is(src, SEED));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(2u, st.applied);
	ASSERT_TRUE(file_is_n(src, SEEDX, 20));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(2u, st.already);
	ASSERT_TRUE(file_is_n(src, SEEDX, 20));

	/* the bytes to cut changed: the CRC differs, a conflict */
	ASSERT_EQ(0, cm_put_file(src, SEED, 38));
	ASSERT_EQ(0, poke(src, 30, "?"));
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1, ev.nconflict);
	ASSERT_EQ(2u, ev.conflict[0].seq);
	ASSERT_EQ(20u, ev.conflict[0].offset);
	ASSERT_EQ(0u, ev.conflict[0].length);
	ASSERT_EQ(0u, st.bytes_written);
	/* skip: the bytes apply, the size stays */
	ASSERT_EQ(1, merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1u, st.applied);
	memcpy(want, SEEDX, 39);
	want[30] = '?';
	ASSERT_TRUE(file_is(src, want));
	/* force: cut anyway */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_FORCE, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1u, st.forced);
	ASSERT_EQ(1u, st.already);
	ASSERT_TRUE(file_is_n(src, SEEDX, 20));
	rmtree(dir);
}

TEST(v2_shrink_regrow_reads_zeros)
{
	char *dir = mktestdir(), *src, *log, *out;
	/* 1 MiB of zeros cut: the CRC past the file's end is computed, not read */
	const struct titem t[] = {
		{ .offset = 2, .old = "cd", .new_ = "CD" },
		{ .old_size = 8, .new_size = 3, .cut = "Defgh", .cut_len = 5 },
		{ .old_size = 3, .new_size = 7 },
		{ .offset = 5, .old = "\0\0", .new_ = "XY", .len = 2 },
		{ .old_size = 7, .new_size = 1 << 20 },
	};
	struct cowmap_merger_stats st;
	struct titem t2[2] = {
		{ .old_size = 1 << 20, .new_size = 7 },
	};
	char *zeros = calloc(1, 1 << 20);
	struct evs ev;

	ASSERT_NE(NULL, dir);
	ASSERT_NE(NULL, zeros);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	out = path_in(dir, "out");
	ASSERT_EQ(0, cm_put_file(src, "abcdefgh", 8));
	ASSERT_EQ(0, write_log2(log, src, t, 5));
	ASSERT_EQ(0, merge(src, out, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(5u, st.applied);
	memcpy(zeros, "abC\0\0XY", 7);
	ASSERT_TRUE(file_is_n(out, zeros, 1 << 20));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_TRUE(file_is_n(src, zeros, 1 << 20));
	/* again: the file is the records' final state, all already applied */
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(5u, st.already);
	ASSERT_EQ(0u, st.bytes_written);
	/* not with a byte that is not zero where the cut left zeros */
	ASSERT_EQ(0, poke(src, 1000, "!"));
	ASSERT_LT(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(0, cm_put_file(src, zeros, 1 << 20));
	/* shrinking back: the cut is "XY" and zeros up to 1 MiB */
	t2[0].cut = zeros + 7;
	t2[0].cut_len = (1 << 20) - 7;
	ASSERT_EQ(0, write_log2(log, src, t2, 1));
	ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
			   (const char *[]){ log, NULL }));
	ASSERT_EQ(1u, st.applied);
	ASSERT_TRUE(file_is_n(src, "abC\0\0XY", 7));
	free(zeros);
	rmtree(dir);
}

TEST(v2_interrupted_resize_completes)
{
	char *dir = mktestdir(), *src, *log, *intent;
	const struct titem t[] = {
		{ .offset = 13, .old = "Hello", .new_ = "Hexxx" },
		{ .offset = 30, .old = "--", .new_ = "zz" },
		{ .old_size = 38, .new_size = 20, .cut = "orld! ----zz------", .cut_len = 18 },
		{ .old_size = 20, .new_size = 24 },
		{ .offset = 21, .old = "\0\0", .new_ = "QQ", .len = 2 },
	};
	static const char want[24] = "------------ Hexxx W\0QQ\0";
	const enum cowmap_merger_stage at[] = {
		COWMAP_MSTAGE_INTENT_SYNCED, COWMAP_MSTAGE_RUN_WRITTEN,
	};
	struct cowmap_merger_stats st;
	struct evs ev;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	intent = path_in(dir, ".f.cowmap-intent");
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, cm_put_file(src, SEED, 38));
		ASSERT_EQ(0, write_log2(log, src, t, 5));
		ASSERT_EQ(128 + SIGKILL, merge_killed(src, NULL, log, at[i], 0));
		ASSERT_EQ(0, access(intent, F_OK));
		/* the re-run completes it, then finds everything applied */
		ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
				   (const char *[]){ log, NULL }));
		ASSERT_EQ(1, st.recovered);
		ASSERT_EQ(5u, st.already);
		ASSERT_TRUE(file_is_n(src, want, 24));
		ASSERT_NE(0, access(intent, F_OK));
	}
	rmtree(dir);
}

TEST(v2_rlimit_fsize_refused_cleanly)
{
	char *dir = mktestdir(), *src, *log;
	const struct titem t[] = {
		{ .old_size = 3, .new_size = 100000 },
	};
	pid_t pid;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	log = path_in(dir, "f.log");
	ASSERT_EQ(0, cm_put_file(src, "abc", 3));
	ASSERT_EQ(0, write_log2(log, src, t, 1));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct rlimit rl = { 4096, 4096 };
		struct cowmap_merger_stats st;

		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(10);
		_exit(merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			    (const char *[]){ log, NULL }) == -EFBIG ? 0 : 11);
	}
	ASSERT_EQ(0, cm_wait(pid));
	ASSERT_TRUE(file_is_n(src, "abc", 3));
	ASSERT_EQ(0, count_entries(dir, "cowmap-"));
	rmtree(dir);
}

/* --- identity and --all -------------------------------------------------------------- */

TEST(identity_and_all_dir)
{
	char *dir = mktestdir(), *src, *copy, *logs, *la, *lb, *lother, *junk;
	struct cowmap_merger_stats st;
	struct cowmap_merger *m;
	struct evs ev;
	const struct trec a[] = { { 1, 1, 0, 100, "---", "AAA" } };
	const struct trec b[] = { { 2, 1, 15, 200, "llo", "xxx" } };
	const struct trec o[] = { { 3, 1, 30, 300, "---", "OOO" } };

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	copy = path_in(dir, "copy");
	logs = path_in(dir, "logs");
	ASSERT_EQ(0, mkdir(logs, 0755));
	la = path_in(logs, "a.log");
	lb = path_in(logs, "b.log");
	lother = path_in(logs, "other.log");
	junk = path_in(logs, "README");
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, cm_put_file(copy, SEED, strlen(SEED)));
	ASSERT_EQ(0, write_log(la, src, a, 1));
	ASSERT_EQ(0, write_log(lb, src, b, 1));
	ASSERT_EQ(0, write_log(lother, copy, o, 1));
	ASSERT_EQ(0, cm_put_file(junk, "hello", 5));

	/* an explicit log of another file is refused */
	ASSERT_EQ(-EXDEV, merge(copy, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, &ev,
				(const char *[]){ la, NULL }));
	ASSERT_TRUE(file_is(copy, SEED));
	/* ... unless the identity check is off */
	ASSERT_EQ(0, merge(copy, NULL, COWMAP_POLICY_ALL_OR_NOTHING,
			   COWMAP_MERGER_ANY_IDENTITY, &st, NULL,
			   (const char *[]){ la, NULL }));
	ASSERT_TRUE(file_is(copy, "AAA--------- Hello World! ------------"));

	/* --all: the two logs of src, not the other file's nor README */
	memset(&ev, 0, sizeof(ev));
	ASSERT_EQ(0, cowmap_merger_new(on_event, &ev, &m));
	ASSERT_EQ(2, cowmap_merger_add_dir(m, logs, src, 0));
	ASSERT_EQ(2, ev.n[COWMAP_MEV_LOG_SKIPPED]);
	ASSERT_EQ(0, cowmap_merger_run(m, src, NULL, COWMAP_POLICY_ALL_OR_NOTHING,
				      COWMAP_MERGER_NO_SYNC, &st));
	cowmap_merger_free(m);
	ASSERT_TRUE(file_is(src, "AAA--------- Hexxx World! ------------"));
	/* --all --force-identity: all three logs */
	ASSERT_EQ(0, cm_put_file(src, SEED, strlen(SEED)));
	ASSERT_EQ(0, cowmap_merger_new(NULL, NULL, &m));
	ASSERT_EQ(3, cowmap_merger_add_dir(m, logs, src, 1));
	ASSERT_EQ(0, cowmap_merger_run(m, src, NULL, COWMAP_POLICY_ALL_OR_NOTHING,
				      COWMAP_MERGER_NO_SYNC | COWMAP_MERGER_ANY_IDENTITY, &st));
	cowmap_merger_free(m);
	ASSERT_TRUE(file_is(src, "AAA--------- Hexxx World! ----OOO-----"));
	rmtree(dir);
}

/* --- property tests ------------------------------------------------------------------- */

struct prec {
	uint64_t session, seq, time, offset;
	uint32_t len;
	uint8_t *old, *new_;
};

struct world {
	size_t size;
	uint8_t *base;
	struct prec *recs;
	size_t n, cap;
	int nsess;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* Records of a commit: runs of bytes where @view differs from @twin. */
static void commit(struct world *w, int s, uint64_t *seq, uint64_t time,
		   uint8_t *view, uint8_t *twin)
{
	size_t i = 0;

	while (i < w->size) {
		size_t start;

		while (i < w->size && view[i] == twin[i])
			i++;
		if (i >= w->size)
			break;
		start = i;
		while (i < w->size && view[i] != twin[i] &&
		       i - start < COWMAP_LOG_MAX_RUN)
			i++;
		if (w->n == w->cap) {
			w->cap = w->cap ? 2 * w->cap : 64;
			w->recs = realloc(w->recs, w->cap * sizeof(*w->recs));
		}
		w->recs[w->n++] = (struct prec){
			.session = s + 1, .seq = ++*seq, .time = time,
			.offset = start, .len = i - start,
			.old = memcpy(malloc(i - start), twin + start, i - start),
			.new_ = memcpy(malloc(i - start), view + start, i - start),
		};
	}
	memcpy(twin, view, w->size);
}

/*
 * Sessions on copies of a base file write random bytes (from a small
 * alphabet, so coincidences happen) and commit at random times. With
 * @disjoint, session s only writes in its own slice of the file.
 */
static void make_world(struct world *w, int disjoint)
{
	int alpha = 2 + below(20);
	uint64_t time = 1000;
	uint8_t *view[5], *twin[5];
	uint64_t seq[5] = { 0 };

	memset(w, 0, sizeof(*w));
	w->size = 1 + below(3 * 4096);
	w->nsess = 1 + below(5);
	if (disjoint && w->size < (size_t)w->nsess)
		w->nsess = 1;
	w->base = malloc(w->size);
	for (size_t i = 0; i < w->size; i++)
		w->base[i] = 'a' + below(alpha);
	for (int s = 0; s < w->nsess; s++) {
		view[s] = memcpy(malloc(w->size), w->base, w->size);
		twin[s] = memcpy(malloc(w->size), w->base, w->size);
	}
	for (int step = below(40); step >= 0; step--) {
		int s = below(w->nsess);
		size_t lo = 0, hi = w->size;

		if (disjoint) {
			lo = w->size * s / w->nsess;
			hi = w->size * (s + 1) / w->nsess;
		}
		for (int k = below(4); k >= 0 && hi > lo; k--) {
			size_t off = lo + below(hi - lo);
			size_t len = 1 + below(below(4) ? 16 : 600);

			if (len > hi - off)
				len = hi - off;
			for (size_t i = 0; i < len; i++)
				view[s][off + i] = 'a' + below(alpha);
		}
		if (below(3) == 0)
			commit(w, s, &seq[s], time += below(3), view[s], twin[s]);
	}
	for (int s = 0; s < w->nsess; s++)
		commit(w, s, &seq[s], time += below(3), view[s], twin[s]);
	for (int s = 0; s < w->nsess; s++) {
		free(view[s]);
		free(twin[s]);
	}
}

static void free_world(struct world *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->recs[i].old);
		free(w->recs[i].new_);
	}
	free(w->recs);
	free(w->base);
}

static int cmp_prec(const void *a, const void *b)
{
	const struct prec *x = *(struct prec *const *)a, *y = *(struct prec *const *)b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->session != y->session)
		return x->session < y->session ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * The reference model, written from the documented rules with the whole
 * file in memory and no cleverness (docs/cowmapctl.md, "Merge rules"):
 * records in (time, session, seq) order; an extent (a maximal run of bytes
 * covered by records) that already holds the last record's new bytes over
 * each byte is done; otherwise a record applies if its range holds its old
 * bytes, is already applied if it holds what it and a prefix of the later
 * records over its bytes leave there; if both, the reading that leaves
 * fewer conflicts among the extent's later records wins ("applies" on a
 * tie); anything else conflicts (skipped). Returns the conflicts.
 */
struct mctx {
	const struct world *w;
	struct prec **o;
	int *ext;		/* extent id of each byte, -1 if not covered */
	uint8_t *img;
};

static int m_chain(struct mctx *x, size_t i, const uint8_t *f)
{
	struct prec *r = x->o[i];

	memcpy(x->img, r->new_, r->len);
	if (!memcmp(f, x->img, r->len))
		return 1;
	for (size_t k = i + 1; k < x->w->n; k++) {
		struct prec *q = x->o[k];
		uint64_t a = q->offset > r->offset ? q->offset : r->offset;
		uint64_t b = q->offset + q->len < r->offset + r->len ?
			     q->offset + q->len : r->offset + r->len;

		if (a >= b)
			continue;
		memcpy(x->img + (a - r->offset), q->new_ + (a - q->offset), b - a);
		if (!memcmp(f, x->img, r->len))
			return 1;
	}
	return 0;
}

/* Greedy evaluation of the records after @i in extent @e; conflicts. */
static int m_rest(struct mctx *x, size_t i, uint8_t *file, int e)
{
	int conflicts = 0;

	for (size_t k = i + 1; k < x->w->n; k++) {
		struct prec *q = x->o[k];
		uint8_t *f = file + q->offset;

		if (x->ext[q->offset] != e)
			continue;
		if (!memcmp(f, q->old, q->len))
			memcpy(f, q->new_, q->len);
		else if (!m_chain(x, k, f))
			conflicts++;
	}
	return conflicts;
}

static int model(const struct world *w, uint8_t *file, int all_or_nothing)
{
	struct mctx x = { .w = w };
	uint8_t *orig = memcpy(malloc(w->size), file, w->size);
	uint8_t *fin = memcpy(malloc(w->size), file, w->size);
	uint8_t *alt = malloc(w->size);
	int *done = calloc(w->size + 1, sizeof(int));
	int conflicts = 0, next = 0;

	x.o = malloc(w->n * sizeof(*x.o) + 1);
	x.ext = malloc(w->size * sizeof(int));
	x.img = malloc(COWMAP_LOG_MAX_RUN);
	for (size_t i = 0; i < w->n; i++)
		x.o[i] = &w->recs[i];
	qsort(x.o, w->n, sizeof(*x.o), cmp_prec);
	for (size_t b = 0; b < w->size; b++)
		x.ext[b] = -1;
	for (size_t i = 0; i < w->n; i++) {
		memset(x.ext + x.o[i]->offset, 0, x.o[i]->len * sizeof(int));
		memcpy(fin + x.o[i]->offset, x.o[i]->new_, x.o[i]->len);
	}
	for (size_t b = 0; b < w->size; b++) {
		if (x.ext[b] < 0)
			continue;
		if (b == 0 || x.ext[b - 1] < 0) {
			next++;
			done[next] = 1;
		}
		x.ext[b] = next;
		if (file[b] != fin[b])
			done[next] = 0;
	}
	for (size_t i = 0; i < w->n; i++) {
		struct prec *r = x.o[i];
		uint8_t *f = file + r->offset;
		int e = x.ext[r->offset], is_old, is_new;

		if (done[e])
			continue;
		is_old = !memcmp(f, r->old, r->len);
		is_new = m_chain(&x, i, f);
		if (is_old && is_new && memcmp(r->old, r->new_, r->len)) {
			int as_applied, as_already;

			memcpy(alt, file, w->size);
			memcpy(alt + r->offset, r->new_, r->len);
			as_applied = m_rest(&x, i, alt, e);
			memcpy(alt, file, w->size);
			as_already = m_rest(&x, i, alt, e);
			is_new = as_applied > as_already;
		}
		if (is_new)
			continue;
		if (is_old)
			memcpy(f, r->new_, r->len);
		else
			conflicts++;
	}
	if (all_or_nothing && conflicts)
		memcpy(file, orig, w->size);
	free(x.o);
	free(x.ext);
	free(x.img);
	free(orig);
	free(fin);
	free(alt);
	free(done);
	return conflicts;
}

/* Write @w's records into 1..3 logs per session, listed in @logs shuffled. */
static int write_world_logs(const struct world *w, const char *dir, const char *src,
			    char **logs, int *nlogs)
{
	struct cowmap_log_info info;
	int n = 0;

	info_of(src, &info);
	for (int s = 1; s <= w->nsess; s++) {
		int parts = 1 + below(3), part = 0;
		struct cowmap_log_writer *wr = NULL;

		for (size_t i = 0; i < w->n; i++) {
			struct prec *p = &w->recs[i];
			struct cowmap_rec rec = {
				.seq = p->seq, .session_id = p->session,
				.offset = p->offset, .length = p->len,
				.time_ns = p->time, .old_bytes = p->old,
				.new_bytes = p->new_,
			};

			if (p->session != (uint64_t)s)
				continue;
			if (!wr || (part < parts - 1 && below(3) == 0)) {
				if (wr && cowmap_log_writer_close(wr, 1))
					return -1;
				if (asprintf(&logs[n], "%s/s%d.%d.log", dir, s, part++) < 0)
					return -1;
				info.session_id = s;
				if (cowmap_log_writer_open(logs[n++], &info,
							   COWMAP_LOGW_NO_SYNC, &wr))
					return -1;
			}
			if (cowmap_log_append(wr, &rec))
				return -1;
		}
		if (wr && cowmap_log_writer_close(wr, 1))
			return -1;
	}
	for (int i = n - 1; i > 0; i--) {
		int j = below(i + 1);
		char *t = logs[i];

		logs[i] = logs[j];
		logs[j] = t;
	}
	logs[n] = NULL;
	*nlogs = n;
	return 0;
}

static uint64_t seed_from_env(void)
{
	const char *s = getenv("COWMAP_SEED");

	return s && *s ? strtoull(s, NULL, 0) : 0x5eed1234abcdULL;
}

/* The property tests run long on slow (TCG, debug) kernels. */
FIXTURE(prop) {
	int unused;
};

FIXTURE_SETUP(prop)
{
}

FIXTURE_TEARDOWN(prop)
{
}

TEST_F_TIMEOUT(prop, property_skip_random_order_matches_model, 600)
{
	char *dir = mktestdir(), *src, *logs[64];
	uint64_t seed = seed_from_env();
	int iters = 150;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	rng_state = seed;
	TH_LOG("seed 0x%llx (COWMAP_SEED to repeat)", (unsigned long long)seed);
	for (int it = 0; it < iters; it++) {
		struct cowmap_merger_stats st;
		struct world w;
		uint8_t *want;
		size_t len;
		char *got;
		int nlogs, conflicts, ret;

		make_world(&w, 0);
		ASSERT_EQ(0, cm_put_file(src, w.base, w.size));
		ASSERT_EQ(0, write_world_logs(&w, dir, src, logs, &nlogs));

		/* skip */
		want = memcpy(malloc(w.size), w.base, w.size);
		conflicts = model(&w, want, 0);
		ret = merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, NULL,
			    (const char *const *)logs);
		ASSERT_EQ(conflicts, ret) TH_LOG("iteration %d", it);
		got = cm_get_file(src, &len);
		ASSERT_EQ(w.size, len);
		ASSERT_EQ(0, memcmp(got, want, w.size)) TH_LOG("iteration %d", it);
		free(got);
		/*
		 * A second run: without conflicts it changes nothing; with
		 * skipped conflicts, a record may have become applicable, as
		 * the model agrees.
		 */
		ret = model(&w, want, 0);
		merge(src, NULL, COWMAP_POLICY_SKIP, 0, &st, NULL, (const char *const *)logs);
		if (!conflicts) {
			ASSERT_EQ(0, st.written) TH_LOG("iteration %d", it);
			ASSERT_EQ(0u, st.applied) TH_LOG("iteration %d", it);
		}
		got = cm_get_file(src, &len);
		ASSERT_EQ(0, memcmp(got, want, w.size)) TH_LOG("iteration %d", it);
		free(got);

		/* all-or-nothing, into a new file */
		memcpy(want, w.base, w.size);
		conflicts = model(&w, want, 1);
		ASSERT_EQ(0, cm_put_file(src, w.base, w.size));
		ret = merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
			    (const char *const *)logs);
		ASSERT_EQ(conflicts, ret);
		got = cm_get_file(src, &len);
		ASSERT_EQ(0, memcmp(got, want, w.size)) TH_LOG("iteration %d", it);
		free(got);

		for (int i = 0; i < nlogs; i++) {
			unlink(logs[i]);
			free(logs[i]);
		}
		free(want);
		free_world(&w);
	}
	rmtree(dir);
}

TEST_F_TIMEOUT(prop, property_disjoint_sessions_all_merge, 600)
{
	char *dir = mktestdir(), *src, *logs[64];
	uint64_t seed = seed_from_env() ^ 0x9e3779b97f4a7c15ULL;

	ASSERT_NE(NULL, dir);
	src = path_in(dir, "f");
	rng_state = seed;
	for (int it = 0; it < 100; it++) {
		struct cowmap_merger_stats st;
		struct world w;
		uint8_t *want;
		size_t len;
		char *got;
		int nlogs;

		make_world(&w, 1);
		/* expected: every record's final bytes, sessions never overlap */
		want = memcpy(malloc(w.size), w.base, w.size);
		for (size_t i = 0; i < w.n; i++)
			memcpy(want + w.recs[i].offset, w.recs[i].new_, w.recs[i].len);
		ASSERT_EQ(0, cm_put_file(src, w.base, w.size));
		ASSERT_EQ(0, write_world_logs(&w, dir, src, logs, &nlogs));
		ASSERT_EQ(0, merge(src, NULL, COWMAP_POLICY_ALL_OR_NOTHING, 0, &st, NULL,
				   (const char *const *)logs)) TH_LOG("iteration %d", it);
		/* reverted bytes may make a record count as already applied */
		ASSERT_EQ(w.n, st.applied + st.already);
		got = cm_get_file(src, &len);
		ASSERT_EQ(0, memcmp(got, want, w.size)) TH_LOG("iteration %d", it);
		free(got);
		for (int i = 0; i < nlogs; i++) {
			unlink(logs[i]);
			free(logs[i]);
		}
		free(want);
		free_world(&w);
	}
	rmtree(dir);
}

TEST_HARNESS_MAIN
