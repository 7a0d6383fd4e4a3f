// SPDX-License-Identifier: GPL-2.0
/*
 * crashtest: the halves of the power-off tests (selftests/crash/run.sh).
 * Each scenario has a first half that ends with the power cut (reboot(2)
 * with no sync, so only what was made durable can survive) and a second
 * half that runs in a second boot on the same disk and checks.
 *
 *   crashtest journal DIR    durable commits, a non-durable one, power off
 *   crashtest journal-check DIR
 *       every durably committed record is in DIR/j.log, intact; anything
 *       after it is intact records or a tail the reader detects as torn
 */
#include <sys/reboot.h>

#include "../cowmap_test.h"
#include "../cowmap_log.h"

#define NP	64
#define DURABLE	3	/* durable commits, each of NP / 4 records */

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
	fflush(stdout);
	reboot(RB_POWER_OFF);	/* no sync: the page cache is lost */
	die("reboot");
}

static int journal(const char *dir)
{
	char path[256], jpath[256];
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
	m = cm_map(fd, NP * PG, 0);
	if (m == MAP_FAILED)
		die("mmap");
	for (int c = 0; c <= DURABLE; c++) {
		for (int p = c % 4; p < NP; p += 4)
			m[p * PG + 7 + c] = val(c, p);
		if (cm_commit(fd, c < DURABLE ? COWMAP_COMMIT_DURABLE : 0) != NP / 4)
			die("commit");
	}
	printf("crashtest: %d durable commits of %d records, one more not durable; power off\n",
	       DURABLE, NP / 4);
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

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "journal"))
		return journal(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "journal-check"))
		return journal_check(argv[2]);
	fprintf(stderr, "usage: crashtest journal|journal-check DIR\n");
	return 2;
}
