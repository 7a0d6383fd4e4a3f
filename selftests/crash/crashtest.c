// SPDX-License-Identifier: GPL-2.0
/*
 * crashtest: the halves of the power-off tests (selftests/crash/run.sh).
 * Each scenario has a first half that ends with the power cut (reboot(2)
 * with no sync, so only what was made durable can survive) and a second
 * half that runs in a second boot on the same disk and checks.
 *
 *   crashtest journal DIR    durable commits, a non-durable one, power off
 *   crashtest journal-view DIR    the same writes through a view fd
 *       (COWMAP_IOC_VIEW, pwrite), made durable by fsync(2) on the view
 *   crashtest journal-check DIR
 *       every durably committed record is in DIR/j.log, intact; anything
 *       after it is intact records or a tail the reader detects as torn
 *
 *   crashtest kmerge DIR     a session with a journal file commits many
 *       small scattered records (durably), then a kernel merge with fsync
 *       (COWMAP_IOC_MERGE, COWMAP_MERGE_FSYNC) into DIR/data starts and the
 *       power is cut at a random moment while it runs
 *   crashtest omerge DIR     the same records, then an offline in-place merge
 *       (cowmapctl merge -s DIR/data -l DIR/j.log --in-place) starts and the
 *       power is cut at a random moment while it runs
 *   crashtest merge-check DIR    (second boot, for both)
 *       cowmapctl merge -s DIR/data -l DIR/j.log --in-place completes (exit
 *       0, no intent file left) and DIR/data is exactly the original with
 *       every write applied; a second run finds everything already applied
 *
 * Several first halves may share one boot, each in its own directory
 * (crashtest journal DIR1 kmerge DIR2): all but the last return instead of
 * cutting the power, and a merge must come last. The checks take the same
 * form in the second boot (crashtest journal-check DIR1 merge-check DIR2)
 * and print "crashtest: result CMD DIR ok|fail" for each.
 *
 * Every record lies inside one 512-byte sector, and records of different
 * sectors never touch: the disk writes whole sectors, so after the cut
 * each record's bytes on disk are all old or all new. The merge scenarios
 * are therefore about recognising which records were applied (a torn
 * record would be a conflict, as docs/design.md says for the kernel merge;
 * the offline merge's intent file covers it anyway).
 */
#include <poll.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/reboot.h>
#include <time.h>

#include "../cowmap_test.h"
#include "../cowmap_log.h"

#define NP	64
#define DURABLE	3	/* durable commits, each of NP / 4 records */

/* Set while another first half follows this one in the same boot. */
static int more;

static void die(const char *what)
{
	fprintf(stderr, "crashtest: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The byte commit @c writes into page @p, at offset 7 + c: never the old one. */
static uint8_t val(int c, int p)
{
	return cm_pat(p * PG + 7 + c, 0) ^ (0x80 | c);
}

static void power_off(void)
{
	printf("crashtest: power off\n");
	fflush(stdout);
	reboot(RB_POWER_OFF);	/* no sync: the page cache is lost */
	die("reboot");
}

static int journal(const char *dir, int use_view)
{
	char path[256], jpath[256];
	struct cowmap_view v = { .flags = COWMAP_VIEW_RDWR };
	struct cowmap_status st;
	struct cowmap_attach a;
	uint8_t *m;
	int file, j, fd;

	setenv("COWMAP_TESTDIR", dir, 1);
	file = cm_mkfile(path, sizeof(path), "data", NP * PG, O_RDONLY);
	snprintf(jpath, sizeof(jpath), "%s/j.log", dir);
	j = open(jpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	fd = cm_open();
	if (file < 0 || j < 0 || fd < 0 || cm_handshake(fd))
		die("setup");
	/* The file and the empty log must survive too: make them durable. */
	if (fsync(file) || fsync(j))
		die("fsync");
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	if (ioctl(fd, COWMAP_IOC_ATTACH, &a))
		die("attach");
	if (use_view) {
		if (ioctl(fd, COWMAP_IOC_VIEW, &v))
			die("view");
		for (int c = 0; c <= DURABLE; c++) {
			for (int p = c % 4; p < NP; p += 4) {
				uint8_t b = val(c, p);

				if (pwrite(v.fd, &b, 1, p * PG + 7 + c) != 1)
					die("pwrite");
			}
			/* fsync(2) of the view: a durable commit. */
			if (c < DURABLE ? fsync(v.fd) : cm_commit(fd, 0) < 0)
				die("commit");
			if (cm_status(fd, &st) || st.journal_records != (uint64_t)(c + 1) * NP / 4)
				die("records");
		}
		printf("crashtest: %d fsyncs of a view, %d records each, one more commit not durable\n",
		       DURABLE, NP / 4);
		if (more)
			return 0;
		power_off();
		return 1;
	}
	m = cm_map(fd, NP * PG, 0);
	if (m == MAP_FAILED)
		die("mmap");
	for (int c = 0; c <= DURABLE; c++) {
		for (int p = c % 4; p < NP; p += 4)
			m[p * PG + 7 + c] = val(c, p);
		if (cm_commit(fd, c < DURABLE ? COWMAP_COMMIT_DURABLE : 0) != NP / 4)
			die("commit");
	}
	printf("crashtest: %d durable commits of %d records, one more not durable\n",
	       DURABLE, NP / 4);
	if (more)
		return 0;
	power_off();
	return 1;
}

static int journal_check(const char *dir)
{
	char jpath[256];
	struct log l = { 0 };
	struct stat st;
	long bad;
	int j, want = DURABLE * NP / 4;

	snprintf(jpath, sizeof(jpath), "%s/j.log", dir);
	j = open(jpath, O_RDONLY);
	if (j < 0 || fstat(j, &st))
		die(jpath);
	l.len = st.st_size;
	l.buf = malloc(l.len + 1);
	if (read(j, l.buf, l.len) != (ssize_t)l.len)
		die("read");
	bad = parse_log(&l);
	printf("crashtest: %s: %zu bytes, %d intact records%s\n", jpath, l.len, l.n,
	       bad ? ", then a torn tail (detected)" : "");
	if (bad == 1 || l.n < want) {
		printf("crashtest: FAIL: %d durable records expected\n", want);
		return 1;
	}
	for (int i = 0; i < l.n; i++) {
		struct rec *r = &l.recs[i];
		int c = i / (NP / 4), p = c % 4 + 4 * (i % (NP / 4));
		uint8_t v = val(c, p), old = cm_pat(p * PG + 7 + c, 0);

		if (r->seq != (uint64_t)i + 1 || !rec_is(r, p * PG + 7 + c, &old, &v, 1)) {
			printf("crashtest: FAIL: record %d is not what was committed\n", i + 1);
			return 1;
		}
	}
	printf("crashtest: ok: all %d durable records intact\n", want);
	return 0;
}

/* --- merge scenarios ------------------------------------------------------ */

#define MP		4096	/* pages of DIR/data: 16 MiB */
#define MCOMMITS	4
#define MWRITES		3000	/* writes per commit */
#define SECTOR		512

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct mwrite {
	uint64_t off;
	uint32_t len;
	uint8_t b[16];
};

/*
 * The writes, commit by commit, from a fixed seed: both boots compute the
 * same. A write stays inside one sector, 8 bytes away from its edges, so
 * a record never crosses a sector. In later commits one write in four
 * goes over the place of an earlier one (records over records).
 */
static struct mwrite *mwrites(void)
{
	struct mwrite *w = calloc(MCOMMITS * MWRITES, sizeof(*w));

	rng = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < MCOMMITS * MWRITES; i++) {
		uint64_t sector = rnd() % (MP * PG / SECTOR);

		if (i >= MWRITES && rnd() % 4 == 0) {
			w[i].off = w[rnd() % (i - i % MWRITES)].off + rnd() % 5;
			sector = w[i].off / SECTOR;
		} else {
			w[i].off = sector * SECTOR + 8 + rnd() % (SECTOR - 16 - 16);
		}
		w[i].len = 1 + rnd() % 12;
		if (w[i].off + w[i].len > sector * SECTOR + SECTOR - 8)
			w[i].len = sector * SECTOR + SECTOR - 8 - w[i].off;
		for (uint32_t k = 0; k < w[i].len; k++)
			w[i].b[k] = rnd();
	}
	return w;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

/* DIR/data and DIR/j.log, durable; a session committing every write durably. */
static int merge_setup(const char *dir, int *file_out)
{
	char path[256], jpath[256];
	struct mwrite *w = mwrites();
	struct cowmap_attach a;
	int file, j, fd, n = 0;
	uint8_t *m;

	setenv("COWMAP_TESTDIR", dir, 1);
	snprintf(path, sizeof(path), "%s/data", dir);
	snprintf(jpath, sizeof(jpath), "%s/j.log", dir);
	file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (file < 0)
		die(path);
	for (uint64_t off = 0; off < MP * PG; off += PG) {
		uint8_t buf[PG];

		cm_fill(buf, off, PG, 0);
		if (pwrite(file, buf, PG, off) != PG)
			die("write data");
	}
	j = open(jpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	fd = cm_open();
	if (j < 0 || fd < 0 || cm_handshake(fd))
		die("setup");
	if (fsync(file) || fsync(j) || fsync_path(dir))
		die("fsync");
	a = (struct cowmap_attach){ .fd = file, .flags = COWMAP_ATTACH_JOURNAL,
				    .journal_fd = j };
	if (ioctl(fd, COWMAP_IOC_ATTACH, &a))
		die("attach");
	m = cm_map(fd, MP * PG, 0);
	if (m == MAP_FAILED)
		die("mmap");
	for (int c = 0; c < MCOMMITS; c++) {
		int r;

		for (int i = c * MWRITES; i < (c + 1) * MWRITES; i++)
			memcpy(m + w[i].off, w[i].b, w[i].len);
		r = cm_commit(fd, COWMAP_COMMIT_DURABLE);
		if (r < 0)
			die("commit");
		n += r;
	}
	if (fsync_path(dir))
		die("fsync dir");
	printf("crashtest: %d durable records in %d commits, all within one %d-byte sector each\n",
	       n, MCOMMITS, SECTOR);
	free(w);
	*file_out = file;
	return fd;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static uint64_t random_seed(void)
{
	uint64_t v = 0;
	int fd = open("/dev/urandom", O_RDONLY);

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		v = now_ms() ^ getpid();
	if (fd >= 0)
		close(fd);
	return v;
}

/* Copy DIR/data to DIR/cal (durably), for a timed rehearsal. */
static void make_cal(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cp %s/data %s/cal && sync", dir, dir);
	if (system(cmd))
		die("cp");
}

static void *power_off_later(void *arg)
{
	usleep(*(uint64_t *)arg * 1000);
	power_off();
	return NULL;
}

/* A kernel merge of session @fd into a fresh copy of DIR/data: its duration. */
static uint64_t kmerge_rehearsal(const char *dir, int fd, unsigned int flags,
				 struct cowmap_merge *mg)
{
	char cal[256];
	uint64_t t;
	int target;

	snprintf(cal, sizeof(cal), "%s/cal", dir);
	make_cal(dir);
	target = open(cal, O_RDWR);
	t = now_ms();
	*mg = (struct cowmap_merge){ .target_fd = target, .flags = flags };
	if (target < 0 || ioctl(fd, COWMAP_IOC_MERGE, mg) || mg->conflicts)
		die("rehearsal merge");
	t = now_ms() - t + 1;
	close(target);
	unlink(cal);
	sync();
	return t;
}

/*
 * When to cut: three times in four inside [@lo, @hi] (the phase that
 * writes), else anywhere in [0, 1.2 @hi].
 */
static uint64_t pick_delay(uint64_t lo, uint64_t hi)
{
	srandom(random_seed());
	if (lo < hi && random() % 4)
		return lo + random() % (hi - lo + 1);
	return random() % (hi * 6 / 5 + 1);
}

static int kmerge(const char *dir)
{
	char path[256];
	struct cowmap_merge mg;
	uint64_t t, t_write, t_full, delay;
	pthread_t th;
	int file, fd, target;

	fd = merge_setup(dir, &file);
	snprintf(path, sizeof(path), "%s/data", dir);
	/*
	 * Rehearsals into copies: without fsync (checking and writing into
	 * the page cache), then with it (the writeback to the disk).
	 */
	t_write = kmerge_rehearsal(dir, fd, 0, &mg);
	t_full = kmerge_rehearsal(dir, fd, COWMAP_MERGE_FSYNC, &mg);
	delay = pick_delay(t_write * 4 / 5, t_full * 11 / 10);
	printf("crashtest: kmerge: a merge takes %llu ms, %llu ms with fsync (%llu records, %llu bytes); power off in %llu ms\n",
	       (unsigned long long)t_write, (unsigned long long)t_full,
	       (unsigned long long)mg.records, (unsigned long long)mg.written,
	       (unsigned long long)delay);
	fflush(stdout);
	/* The real one (the rehearsals' merged marks do not matter). */
	target = open(path, O_RDWR);
	if (target < 0)
		die(path);
	if (pthread_create(&th, NULL, power_off_later, &delay))
		die("pthread_create");
	t = now_ms();
	mg = (struct cowmap_merge){ .target_fd = target, .flags = COWMAP_MERGE_FSYNC };
	if (ioctl(fd, COWMAP_IOC_MERGE, &mg))
		die("merge");
	printf("crashtest: kmerge: the merge returned after %llu ms, before the power cut\n",
	       (unsigned long long)(now_ms() - t));
	fflush(stdout);
	pause();
	return 1;
}

static int omerge(const char *dir)
{
	char data[256], log[256], cal[256], cmd[800];
	uint64_t t, t_intent = 0, t_full, delay;
	int file, fd, ino, st;
	pid_t pid;

	fd = merge_setup(dir, &file);
	(void)fd;
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(log, sizeof(log), "%s/j.log", dir);
	snprintf(cal, sizeof(cal), "%s/cal", dir);
	/* Rehearsal into a copy: when its intent file appears, when it ends. */
	make_cal(dir);
	ino = inotify_init1(IN_CLOEXEC);
	if (ino < 0 || inotify_add_watch(ino, dir, IN_CREATE) < 0)
		die("inotify");
	t = now_ms();
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execlp("cowmapctl", "cowmapctl", "merge", "-s", cal, "-l", log, "--in-place",
		       "--force-identity", (char *)NULL);
		_exit(127);
	}
	for (;;) {
		char buf[4096] __attribute__((aligned(8)));
		struct pollfd p = { .fd = ino, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 60000) <= 0)
			break;
		n = read(ino, buf, sizeof(buf));
		for (ssize_t at = 0; at < n && !t_intent;) {
			struct inotify_event *ev = (void *)(buf + at);

			if (ev->len && !strcmp(ev->name, ".cal.cowmap-intent"))
				t_intent = now_ms() - t;
			at += sizeof(*ev) + ev->len;
		}
		if (t_intent)
			break;
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		die("rehearsal merge");
	t_full = now_ms() - t + 1;
	close(ino);
	unlink(cal);
	sync();
	delay = pick_delay(t_intent, t_full * 11 / 10);
	printf("crashtest: omerge: cowmapctl merge --in-place takes %llu ms, its intent file appears at %llu ms; power off in %llu ms\n",
	       (unsigned long long)t_full, (unsigned long long)t_intent,
	       (unsigned long long)delay);
	fflush(stdout);
	snprintf(cmd, sizeof(cmd), "%s", data);
	pid = fork();
	if (pid == 0) {
		execlp("cowmapctl", "cowmapctl", "merge", "-s", data, "-l", log, "--in-place",
		       (char *)NULL);
		_exit(127);
	}
	usleep(delay * 1000);
	power_off();
	return 1;
}

/* Run a command; its exit status, its output in @out. */
static int run_cmd(const char *cmd, char *out, size_t size)
{
	FILE *p = popen(cmd, "r");
	size_t n;
	int st;

	if (!p)
		return -1;
	n = fread(out, 1, size - 1, p);
	out[n] = 0;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int merge_check(const char *dir)
{
	char path[256], intent[300], cmd[700], out[8192];
	struct mwrite *w = mwrites();
	uint8_t *want = malloc(MP * PG), *have = malloc(MP * PG);
	size_t bad = 0, first = 0;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/data", dir);
	snprintf(intent, sizeof(intent), "%s/.data.cowmap-intent", dir);
	printf("crashtest: after the power cut: %s\n",
	       access(intent, F_OK) ? "no intent file" : "an intent file");
	snprintf(cmd, sizeof(cmd), "cowmapctl merge -s %s -l %s/j.log --in-place 2>&1", path, dir);
	rc = run_cmd(cmd, out, sizeof(out));
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"))
		printf("crashtest:   %s\n", l);
	if (rc) {
		printf("crashtest: FAIL: cowmapctl merge exited %d\n", rc);
		return 1;
	}
	if (!access(intent, F_OK)) {
		printf("crashtest: FAIL: the intent file is still there\n");
		return 1;
	}
	cm_fill(want, 0, MP * PG, 0);
	for (int i = 0; i < MCOMMITS * MWRITES; i++)
		memcpy(want + w[i].off, w[i].b, w[i].len);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, have, MP * PG, 0) != (ssize_t)(MP * PG))
		die(path);
	close(fd);
	for (size_t i = 0; i < MP * PG; i++)
		if (want[i] != have[i] && !bad++)
			first = i;
	if (bad) {
		printf("crashtest: FAIL: %zu bytes differ from the expected result, the first at offset %zu\n",
		       bad, first);
		return 1;
	}
	rc = run_cmd(cmd, out, sizeof(out));
	if (rc || !strstr(out, " 0 applied,") || !strstr(out, "nothing to write")) {
		printf("crashtest: FAIL: a second run was not a no-op (exit %d): %s\n", rc, out);
		return 1;
	}
	printf("crashtest: ok: the merge completed, %d MiB exactly as expected; a second run writes nothing\n",
	       MP * (int)PG >> 20);
	free(w);
	free(want);
	free(have);
	return 0;
}

/* A directory for one scenario, durable before anything in it is. */
static void scenario_dir(const char *dir)
{
	char parent[256], *slash;
	int fd;

	if (!mkdir(dir, 0755)) {
		snprintf(parent, sizeof(parent), "%s", dir);
		slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = 0;
		fd = open(parent, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || fsync(fd))
			die(parent);
		close(fd);
	} else if (errno != EEXIST) {
		die(dir);
	}
}

static int run_one(const char *cmd, const char *dir)
{
	if (!strcmp(cmd, "kmerge"))
		return kmerge(dir);
	if (!strcmp(cmd, "omerge"))
		return omerge(dir);
	if (!strcmp(cmd, "merge-check"))
		return merge_check(dir);
	if (!strcmp(cmd, "journal"))
		return journal(dir, 0);
	if (!strcmp(cmd, "journal-view"))
		return journal(dir, 1);
	if (!strcmp(cmd, "journal-check"))
		return journal_check(dir);
	return -1;
}

int main(int argc, char **argv)
{
	int failed = 0;

	if (argc < 3 || argc % 2 == 0)
		goto usage;
	for (int i = 1; i < argc; i += 2) {
		const char *cmd = argv[i], *dir = argv[i + 1];
		int rc;

		more = i + 2 < argc;
		/* A merge's power cut comes at a random moment: last only. */
		if (more && (!strcmp(cmd, "kmerge") || !strcmp(cmd, "omerge")))
			goto usage;
		scenario_dir(dir);
		rc = run_one(cmd, dir);
		if (rc < 0)
			goto usage;
		printf("crashtest: result %s %s %s\n", cmd, dir, rc ? "fail" : "ok");
		fflush(stdout);
		failed |= rc;
	}
	return failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: crashtest {journal|journal-view|journal-check|kmerge|omerge|merge-check DIR}...\n");
	return 2;
}
