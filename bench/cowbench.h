/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cowbench: cowmap against the kernel's own mechanisms, side by side.
 *
 * Runs inside the test VM (make bench, bench/run.sh; docs/performance.md).
 * Under TCG only ratios measured in the same run mean anything, so every
 * row is a cost per unit (page, dirty page, record, 4 KiB of a stream) of
 * cowmap AND of a named baseline measured in the same rounds. Rows 1-3, 5
 * and 6 interleave their variants: all are set up, then each slice of the
 * pass is run by every variant in a fresh random order; rows 7-8 alternate
 * each merge with its pwrite baseline, in pairs. A row reports the median
 * of each side over the rounds and the median of the per-round ratios. The
 * benchmark never asserts a time.
 *
 * Adding a row: one variant function (meas_fn: SETUP/SLICE/DONE, or WHOLE;
 * return an errno for "n/a") in its group's file, declared below, and one
 * entry in rows[] (rows.c). Variants shared by several rows run once per
 * round.
 *
 * Output: one human table on stdout, then the same results as JSON between
 * the lines JSON_BEGIN and JSON_END (bench/run.sh extracts it).
 *
 * Files: this private header; common.c (the context, helpers, cowmap
 * sessions, files); one file per row group: row_write.c (row 1),
 * row_read.c (2), row_scale.c (3), row_memory.c (4, 9), row_commit.c (5),
 * row_journal.c (6), row_merge.c (7, 8), row_view.c (10), row_run.c (11),
 * row_many.c (12 sessions, 13 threads, 14 attach);
 * rows.c (rows[], the groups, the
 * rounds); report.c (statistics, the table, the JSON); main.c (options).
 */
#ifndef COWBENCH_H
#define COWBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/utsname.h>

#include <linux/cowmap.h>

#define PG		4096UL
#define MIB		(1024UL * 1024UL)
#define MAX_ROUNDS	64
#define MAX_PROCS	8
#define JSON_BEGIN	"==== cowbench json begin ===="
#define JSON_END	"==== cowbench json end ===="
#define MERGE_PAIRS	3	/* rows 7, 8: kernel merges per round */

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

struct ctx {
	int quick;
	int rounds;		/* measured rounds per group */
	int warmup;		/* discarded rounds per group */
	int slices;		/* slices per pass in the sliced groups */
	uint64_t seed;		/* the generator's state */
	uint64_t seed0;		/* ... at the start, printed */
	const char *dir;	/* files of the write/scale/memory rows */
	const char *read_dir;	/* file of the read rows (may be tmpfs) */
	const char *host_info;	/* key=value lines from the host, or NULL */
	const char *groups;	/* comma-separated groups to run, NULL: all */
	size_t write_size;	/* row 1 and 4 */
	size_t read_size;	/* row 2 */
	size_t scale_size;	/* row 3, per process */
	size_t append_size;	/* row 10c */
	char wpath[512], rpath[512];
	char wfs[64], rfs[64];	/* their filesystems */
	int wfd;		/* the write file, O_RDWR */
	int rfd;		/* the read file, O_RDWR */
	int uffd_file_errno;	/* uffd-wp registration of an ext4 file mapping */
	int wdirty;		/* a MAP_SHARED write changed the write file */
	size_t jrecords;	/* row 6: records in the dumped journal */
	size_t jstream;		/* row 6: bytes of the dump: header + records */
	size_t mrecords;	/* rows 7, 8: records merged */
	pid_t pid;		/* the main process (atexit) */
};

/*
 * Extra per-variant figures, reported in the JSON (and some in the notes
 * under the table). NAN when a variant does not have it.
 */
enum {
	X_FLT,		/* minor+major faults per page (getrusage) */
	X_CM_FAULTS,	/* cowmap status: faults per page */
	X_CM_COPIES,	/* cowmap status: cow_copies per page */
	X_CM_OWNED,	/* cowmap status: (private+twin) pages per page */
	X_SETUP,	/* ns per page spent before the timed part */
	X_SLAB,		/* memcg slab delta, bytes per page */
	X_PTABLES,	/* memcg pagetables delta, bytes per page */
	X_STATUS_B,	/* cowmap status (private+twin)*4096 per page */
	X_MEMFREE,	/* /proc/meminfo MemFree decrease, bytes per page */
	X_KERNEL,	/* memcg "kernel" delta, bytes per page */
	X_BEFORE,	/* row 9: memory.current per dirty page before the commit */
	X_KERNEL_BEFORE,	/* ... memcg "kernel" */
	X_SLAB_BEFORE,	/* ... memcg "slab" */
	X_STATUS_BEFORE,	/* ... cowmap status (private+twin)*4096 */
	X_JOURNAL_B,	/* journal bytes per dirty page */
	X_RECORDS,	/* journal records per dirty page */
	X_COMMIT_NS,	/* row 9: commit time per dirty page */
	X_POOL,		/* row 9: pages freed into cowmap's pool, bytes per page */
	NX
};

struct meas {
	double value;	/* ns per page, bytes per page, ... */
	double x[NX];
};

/*
 * A variant is one function called in phases:
 *
 * - sliced groups (write, read): SETUP (untimed: map, attach, protect),
 *   then SLICE once per slice of the pass, pages [first, first + n), timed
 *   by the caller, interleaved with the slices of every other variant of
 *   the group; then DONE (untimed: counters into r->m.x, unmap).
 * - whole groups (scale, memory): WHOLE does everything and sets
 *   r->m.value itself.
 *
 * Return 0, or an errno that makes the variant "n/a" for the whole run.
 */
enum phase { SETUP, SLICE, DONE, WHOLE };

struct run {
	size_t pages;		/* pages of the whole pass */
	size_t first, n;	/* SLICE: this slice */
	struct meas m;
	uint8_t *p;		/* the mapping */
	int fd;			/* session fd, or -1 */
	void *priv;		/* the variant's own state */
	/*
	 * SLICE may time itself (e.g. excluding wake-ups): set slice_ns, and
	 * slice_flt for faults of other processes; else the caller times it.
	 */
	uint64_t slice_ns;
	long slice_flt;
	int procs;		/* processes doing the pass (faults per page of one) */
	uint64_t pos, cursor;	/* row 6: stream position, dump cursor */
	double acc[4];		/* the variant's own sums over the slices */
};

typedef int meas_fn(struct run *r, enum phase ph);

enum unit { U_NS, U_BYTES, U_X, U_TPUT };
enum target { T_NONE, T_LE, T_FASTER, T_LT, T_MEM };

/*
 * One line of the table. The subject is cowmap, the baseline what it is
 * compared with; both run in the same rounds of @group. With @subj_den and
 * @base_den, each side is the per-round quotient subj/subj_den (a scaling
 * factor). @per: what a value is per (default "page"). U_TPUT values are
 * ns per 4 KiB of a stream, shown as MiB/s; their ratio is still the ratio
 * of the times.
 */
struct row {
	const char *id, *group, *what, *per;
	enum unit unit;
	const char *subj_name, *base_name;
	meas_fn *subj, *base, *subj_den, *base_den;
	const char *key[4];	/* their names (JSON keys), set by R() and D() */
	int subj_x;		/* 1 + an X_ field of the subject to use, not its value */
	enum target target;
	/*
	 * T_LE: ratio <= t1; T_LT: ratio < t1; T_FASTER: >= t1 (and t2)
	 * times faster; T_MEM: subject <= baseline + the subject's journal
	 * bytes per page (one page, as MAP_PRIVATE, plus the journal).
	 */
	double t1, t2;
	const char *pending;
};

/* A measured variant: every distinct function of rows[]. */
struct variant {
	meas_fn *fn;
	const char *group;
	const char *name;	/* JSON key */
	int err;		/* first errno that made it n/a */
	int n;
	struct meas s[MAX_ROUNDS];
	struct run r;		/* this round */
	uint64_t ns;		/* this round: time in SLICE */
	long flt;		/* this round: faults in SLICE */
	int set_up;		/* this round: SETUP succeeded */
};

/* Figures of a run that belong to no variant (JSON "facts", notes). */
struct fact {
	const char *key;
	double v;
};

/* common.c */
extern struct ctx C;
extern const char *const xname[NX];
extern struct fact facts[32];
extern int nfacts;
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
uint64_t now_ns(void);
long minflt(void);
uint64_t rnd(void);
uint64_t file_word(size_t off);
int write_pattern(int fd, size_t size);
long meminfo(const char *key);
int read_small(const char *path, char *buf, size_t len);
int write_str(const char *path, const char *v);
void discard_all(void);
int cm_session(int file);
int cm_status(int fd, struct cowmap_status *st);
void cm_close(int fd);
void fact(const char *key, double v);
double fact_of(const char *key);
void *map_anon(size_t len);
void write_pages(volatile uint8_t *p, size_t pages);
void cm_counters(int sfd, struct meas *m, size_t pages);
int map_setup(struct run *r, int file, int session, int flags, size_t len);
void map_done(struct run *r, size_t len);
int make_file(char *path, size_t plen, const char *dir, const char *name, size_t size);
void fs_name(const char *dir, char *buf, size_t len);
size_t free_bytes(const char *dir);

/* The variants, by row group. */
meas_fn w_cowmap, w_private, w_shared, w_sigsegv, w_uffd;	/* row_write.c */
meas_fn r1_cowmap, r1_shared, r1_pread, rf_cowmap, rf_shared, rf_pread; /* row_read.c */
meas_fn s1_cowmap, s2_cowmap, s1_private, s2_private;		/* row_scale.c */
meas_fn m_private, m_private_stride, m_commit8, m_commitf;			/* row_memory.c */
meas_fn c8_fault, c8_commit, cf_commit;				/* row_commit.c */
meas_fn j_dump, j_read, j_file;					/* row_journal.c */
meas_fn mg_kernel, mg_pwrite, mg_offline, mg_durable, mg_pwrite_sync; /* row_merge.c */
meas_fn vw_view, vw_file, vr_view, vr_file, va_view, va_file;	/* row_view.c */
meas_fn rs_routed, rs_plain;					/* row_run.c */
meas_fn n1_many, n16_many, n256_many, n1024_many;		/* row_many.c */
meas_fn n1_private, n16_private, n256_private, n1024_private;
meas_fn t1_cowmap, t2_cowmap, t4_cowmap, t1_private, t2_private, t4_private;
meas_fn at_huge, at_tiny, at_huge_nomap, at_tiny_nomap, at_huge_plain, at_tiny_plain;

/* The groups' own setup, teardown and figures. */
int uffd_probe_file(void);
extern int cg_ok;
size_t commit_pages(void);
size_t commit_units(void);
void journal_restore_param(void);
int journal_setup(void);
void journal_teardown(void);
ssize_t dump_to(int sfd, int fd);	/* row_journal.c, also for row_merge.c */
int merge_setup(void);
void merge_teardown(void);
void many_restore_params(void);
int many_setup(void);
void many_teardown(void);
int attach_setup(void);
void attach_teardown(void);

/* rows.c */
extern const struct row rows[];
extern const size_t nrows;
extern struct variant vars[];
extern int nvars;
extern int cur_round;
const char *fn_name(meas_fn *fn);
struct variant *var_of(meas_fn *fn);
int group_selected(const char *name);
void read_teardown(void);
void run_groups(void);

/* report.c */
void print_table(struct utsname *u);
void print_json(struct utsname *u, const char *cpu, const char *thp, const char *far);

#endif
