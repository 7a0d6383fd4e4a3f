// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench row 11: an unmodified sqlite3 inserting 10,000 rows in one
 * transaction, routed into a session by "cowmapctl run" (docs/run.md)
 * against the same sqlite3 on the file itself. Each variant, each round:
 * a fresh database with the table (untimed), then the timed program (in
 * pairs, below): the
 * routed one includes all that "cowmapctl run --discard" adds (attach, the
 * preload library, commit, discard). Needs the programs tools/vm puts in
 * the guest (selftests/guest-programs); n/a (ENOENT) without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowbench.h"

#define SQLITE		"/cowmap/progs/sqlite3"
#define CTL		"/usr/bin/cowmapctl"
#define PRELOAD		"/usr/lib/libcowmap-preload.so"	/* next to cowmapctl */
#define RUN_ROWS	10000

static char db[600], sql[600];

/* Run @argv with stdin from @in (or /dev/null); 0, or an errno. */
static int spawn(char *const argv[], const char *in)
{
	int st, fd;
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (!pid) {
		fd = open(in ? in : "/dev/null", O_RDONLY);
		if (fd < 0 || dup2(fd, 0) < 0)
			_exit(126);
		fd = open("/dev/null", O_WRONLY);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return ENOENT;
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : EIO;
}

/* The statements, once: BEGIN; 10,000 INSERTs; COMMIT. */
static int make_sql(void)
{
	FILE *f;

	if (sql[0])
		return 0;
	snprintf(db, sizeof(db), "%s/run-bench.db", C.dir);
	snprintf(sql, sizeof(sql), "%s/run-bench.sql", C.dir);
	f = fopen(sql, "w");
	if (!f)
		return errno;
	fputs("BEGIN;\n", f);
	for (int i = 1; i <= RUN_ROWS; i++)
		fprintf(f, "INSERT INTO t VALUES (%d, 'row %d of the cowbench run row');\n",
			i, i);
	fputs("COMMIT;\n", f);
	return fclose(f) ? errno : 0;
}

/* One timed program on a fresh database: ns in *@ns, 0 or an errno. */
static int rs_once(int routed, uint64_t *ns)
{
	char *mk[] = { SQLITE, db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);", NULL };
	char *plain[] = { SQLITE, db, NULL };
	char *run[] = { CTL, "run", "--file", db, "--discard", "--", SQLITE, db, NULL };
	uint64_t t0;
	int err;

	unlink(db);
	err = spawn(mk, NULL);
	if (err)
		return err;
	sync();
	t0 = now_ns();
	err = spawn(routed ? run : plain, sql);
	*ns = now_ns() - t0;
	unlink(db);
	return err;
}

/*
 * A whole program takes about a second under TCG, long enough for the
 * host's load to change under it: the first variant called in a round
 * runs RUN_PAIRS pairs, routed and plain back to back in a random order,
 * and each variant reports its mean over them.
 */
#define RUN_PAIRS	3
static struct {
	int round, err;
	uint64_t ns[2];
} RS = { .round = -1 };

static int rs_variant(struct run *r, enum phase ph, int routed)
{
	if (ph != WHOLE)
		return EINVAL;
	if (access(SQLITE, X_OK) || access(CTL, X_OK) || access(PRELOAD, R_OK))
		return ENOENT;
	if (RS.round != cur_round) {
		RS.round = cur_round;
		RS.ns[0] = RS.ns[1] = 0;
		RS.err = make_sql();
		for (int i = 0; i < RUN_PAIRS && !RS.err; i++) {
			int first = rnd() & 1;

			for (int k = 0; k < 2 && !RS.err; k++) {
				int which = k ? !first : first;
				uint64_t ns = 0;

				RS.err = rs_once(which, &ns);
				RS.ns[which] += ns;
			}
		}
	}
	if (RS.err)
		return RS.err;
	r->m.value = (double)RS.ns[routed] / RUN_PAIRS;
	return 0;
}

int rs_routed(struct run *r, enum phase ph) { return rs_variant(r, ph, 1); }
int rs_plain(struct run *r, enum phase ph) { return rs_variant(r, ph, 0); }
