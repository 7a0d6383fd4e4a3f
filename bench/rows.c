// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench: the rows, the groups, and the rounds that run them. See cowbench.h.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cowbench.h"

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

const struct row rows[] = {
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
	    "MAP_PRIVATE file", m_commit8, m_private), .subj_x = 1 + X_BEFORE },
	{ R("5a", "commit", "commit/dirty page, 8 B each", U_NS, "commit",
	    "first-write fault, same writes", c8_commit, c8_fault),
	  .per = "dirty page", .target = T_LT, .t1 = 1.0 },
	{ R("5b", "commit", "commit/dirty page, all 4 KiB", U_NS, "commit",
	    "first-write fault, 8 B (5a)", cf_commit, c8_fault),
	  .per = "dirty page" },
	{ R("6a", "journal", "dump-log throughput", U_TPUT, "DUMP, 1 MiB",
	    "read(2) of a file, 1 MiB", j_dump, j_file),
	  .per = "4 KiB of stream" },
	{ R("6b", "journal", "dump-log throughput", U_TPUT, "read(2), 1 MiB",
	    "read(2) of a file, 1 MiB", j_read, j_file),
	  .per = "4 KiB of stream" },
	{ R("7", "merge", "kernel merge, per record", U_NS, "IOC_MERGE",
	    "pwrite of the same extents", mg_kernel, mg_pwrite),
	  .per = "record", .target = T_LE, .t1 = 2.0 },
	{ R("8a", "merge", "offline merge, per record", U_NS, "lib, no fsync",
	    "pwrite of the same extents", mg_offline, mg_pwrite),
	  .per = "record" },
	{ R("8b", "merge", "offline merge, per record", U_NS, "lib, durable",
	    "pwrite of the same extents + fsync", mg_durable, mg_pwrite_sync),
	  .per = "record" },
	{ R("9a", "memory", "after commit, 8 B/page", U_BYTES, "session",
	    "MAP_PRIVATE file", m_commit8, m_private),
	  .per = "dirty page", .target = T_MEM },
	{ R("9b", "memory", "after commit, 4 KiB/4 pages", U_BYTES, "session",
	    "MAP_PRIVATE, same pages", m_commitf, m_private_stride),
	  .per = "dirty page", .target = T_MEM },
	{ R("10a", "write", "pwrite 4 KiB record per page", U_NS, "view",
	    "pwrite into the file", vw_view, vw_file),
	  .target = T_LE, .t1 = 2.0 },
	{ R("10b", "read", "seq. read(2), 1 MiB chunks", U_NS, "view",
	    "read(2) of the file", vr_view, vr_file),
	  .target = T_LE, .t1 = 1.2 },
	{ R("10c", "append", "append, 64 KiB writes", U_NS, "view",
	    "O_APPEND file", va_view, va_file) },
	{ R("11", "run", "sqlite3: 10,000 INSERTs, 1 txn", U_NS, "cowmapctl run",
	    "sqlite3 on the file", rs_routed, rs_plain),
	  .per = "transaction", .target = T_LE, .t1 = 1.5 },
	{ D("12a", "many", "per page, 16 sessions / 1", U_X, "sessions",
	    "MAP_PRIVATE mappings", n16_many, n16_private, n1_many, n1_private) },
	{ D("12b", "many", "per page, 256 sessions / 1", U_X, "sessions",
	    "MAP_PRIVATE mappings", n256_many, n256_private, n1_many, n1_private) },
	{ D("12c", "many", "per page, 1024 sessions / 1", U_X, "sessions",
	    "MAP_PRIVATE mappings", n1024_many, n1024_private, n1_many, n1_private),
	  .target = T_LE, .t1 = 1.2 },
	{ R("12d", "many", "read + 1% writes, 1024", U_NS, "1024 sessions",
	    "1 session", n1024_many, n1_many) },
	{ R("13a", "threads", "first write, 1 thread", U_NS, "session",
	    "MAP_PRIVATE file", t1_cowmap, t1_private) },
	{ D("13b", "threads", "wall(2 threads) / wall(1)", U_X, "session",
	    "MAP_PRIVATE file", t2_cowmap, t2_private, t1_cowmap, t1_private),
	  .target = T_LE, .t1 = 1.0 },
	{ D("13c", "threads", "wall(4 threads) / wall(1)", U_X, "session",
	    "MAP_PRIVATE file", t4_cowmap, t4_private, t1_cowmap, t1_private),
	  .target = T_LE, .t1 = 1.0 },
	{ R("14a", "attach", "attach+map+3 faults+close", U_NS, "16 GiB sparse file",
	    "4 KiB file", at_huge, at_tiny),
	  .per = "operation" },
	{ R("14b", "attach", "attach+close", U_NS, "16 GiB sparse file",
	    "4 KiB file", at_huge_nomap, at_tiny_nomap),
	  .per = "operation", .target = T_LE, .t1 = 1.2 },
	{ D("14c", "attach", "16 GiB / 4 KiB file, 14a", U_X, "session",
	    "MAP_PRIVATE, no session", at_huge, at_huge_plain, at_tiny, at_tiny_plain),
	  .target = T_LE, .t1 = 1.2 },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))
const size_t nrows = NROWS;

int cur_round;	/* run_group(): the round being run */

/* The groups, in the order they run; sliced ones interleave their variants. */
/* The read file is not needed after its group: room on the disk. */
void read_teardown(void)
{
	if (C.rfd >= 0) {
		close(C.rfd);
		unlink(C.rpath);
	}
	C.rfd = -1;
}

static const struct group {
	const char *name;
	int sliced;		/* else one WHOLE call per variant and round */
	int pin;		/* run on one CPU */
	size_t *size;		/* bytes of one pass (of one process) */
	int no_warmup;		/* no warm-up round: no time measured (memory), or
				   passes long enough to amortise TCG's translation */
	int pristine;		/* needs the pattern in the write file */
	int (*setup)(void);	/* once before the rounds; an errno: all n/a */
	void (*teardown)(void);	/* once after them (also after a failed setup) */
	size_t (*units)(void);	/* what a value is per; default: pages of a pass */
	int max_rounds;		/* fewer rounds than C.rounds (long rounds) */
} groups[] = {
	/* first: its file is the oldest in the cache */
	{ .name = "read", .sliced = 1, .pin = 1, .size = &C.read_size,
	  .teardown = read_teardown },
	{ .name = "write", .sliced = 1, .pin = 1, .size = &C.write_size },
	{ .name = "scale", .sliced = 1, .size = &C.scale_size },
	{ .name = "memory", .size = &C.write_size, .pristine = 1, .no_warmup = 1 },
	{ .name = "commit", .sliced = 1, .pin = 1, .size = &C.write_size,
	  .pristine = 1, .units = commit_units },
	{ .name = "journal", .sliced = 1, .pin = 1, .size = &C.jstream,
	  .pristine = 1, .no_warmup = 1, .setup = journal_setup,
	  .teardown = journal_teardown },
	{ .name = "merge", .pin = 1, .size = &C.write_size, .pristine = 1,
	  .no_warmup = 1, .setup = merge_setup, .teardown = merge_teardown },
	{ .name = "append", .pin = 1, .size = &C.append_size },
	/* row 11: whole programs, one transaction each */
	{ .name = "run", .size = &C.write_size },
	/* rows 12-14 */
	{ .name = "many", .pin = 1, .size = &C.write_size, .no_warmup = 1,
	  .setup = many_setup, .teardown = many_teardown, .max_rounds = 3 },
	{ .name = "threads", .size = &C.scale_size },
	{ .name = "attach", .pin = 1, .size = &C.write_size, .setup = attach_setup,
	  .teardown = attach_teardown },
};

struct variant vars[4 * NROWS];
int nvars;

const char *fn_name(meas_fn *fn)
{
	for (int i = 0; i < nvars; i++)
		if (vars[i].fn == fn)
			return vars[i].name;
	return "unnamed";
}

struct variant *var_of(meas_fn *fn)
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
static void round_sliced(const struct group *gr, struct variant **g, int ng,
			 size_t pages, int k)
{
	int order[4 * NROWS], slices = C.slices;
	size_t units;

	shuffle(g, ng);
	for (int i = 0; i < ng; i++) {
		reset_run(g[i], pages);
		if (!g[i]->err)
			g[i]->err = g[i]->fn(&g[i]->r, SETUP);
		g[i]->set_up = !g[i]->err;
	}
	for (int s = 0; s < slices; s++) {
		size_t first = pages * s / slices;
		size_t n = pages * (s + 1) / slices - first;

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

		int err;

		if (!v->set_up)
			continue;
		err = v->fn(&v->r, DONE);
		v->set_up = 0;
		if (err && !v->err)
			v->err = err;
		if (v->err)
			continue;
		units = gr->units ? gr->units() : pages;
		v->r.m.value = (double)v->ns / units;
		v->r.m.x[X_FLT] = (double)v->flt / units /
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

int group_selected(const char *name)
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
	uint64_t t0 = now_ns();
	cpu_set_t all, one;
	size_t pages;
	int ng = 0, err = 0, warmup, rounds;

	if (!group_selected(gr->name))
		return;
	for (int i = 0; i < nvars; i++)
		if (!strcmp(vars[i].group, gr->name))
			g[ng++] = &vars[i];
	if (gr->pristine && C.wdirty) {
		/* Rows 5-9 store the complement of the pattern: restore it. */
		if (write_pattern(C.wfd, C.write_size))
			die("rewrite %s", C.wpath);
		C.wdirty = 0;
	}
	if (gr->setup)
		err = gr->setup();
	if (err) {
		fprintf(stderr, "# %-6s setup failed: %s\n", gr->name, strerror(err));
		for (int i = 0; i < ng; i++)
			g[i]->err = err;
	}
	pages = (*gr->size + PG - 1) / PG;
	/* Rows 1, 2 on one CPU: no migrations, uffd's wake-ups stay local. */
	sched_getaffinity(0, sizeof(all), &all);
	if (gr->pin) {
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	warmup = gr->no_warmup ? 0 : C.warmup;
	rounds = gr->max_rounds && gr->max_rounds < C.rounds ? gr->max_rounds : C.rounds;
	for (int r = 0; !err && r < warmup + rounds; r++) {
		cur_round = r;
		if (gr->sliced)
			round_sliced(gr, g, ng, pages, r >= warmup);
		else
			round_whole(g, ng, pages, r >= warmup);
	}
	sched_setaffinity(0, sizeof(all), &all);
	if (gr->teardown)
		gr->teardown();
	fprintf(stderr, "# %-7s %d variants x %d rounds (+%d warm-up)%s: %.1f s\n",
		gr->name, ng, rounds, warmup,
		gr->sliced ? ", interleaved in slices" : "", (now_ns() - t0) / 1e9);
}

/* Every variant of rows[], then every group in order. */
void run_groups(void)
{
	for (size_t i = 0; i < NROWS; i++) {
		add_var(rows[i].subj, rows[i].group, rows[i].key[0]);
		add_var(rows[i].base, rows[i].group, rows[i].key[1]);
		add_var(rows[i].subj_den, rows[i].group, rows[i].key[2]);
		add_var(rows[i].base_den, rows[i].group, rows[i].key[3]);
	}
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		run_group(&groups[i]);
}
