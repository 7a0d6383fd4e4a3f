// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench: statistics, the table and the JSON. See cowbench.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cowbench.h"

/* ---------------------------------------------------------- statistics --- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double t[MAX_ROUNDS];
	int k = 0;

	for (int i = 0; i < n; i++)
		if (!isnan(v[i]))
			t[k++] = v[i];
	if (!k)
		return NAN;
	qsort(t, k, sizeof(t[0]), cmp_dbl);
	return k % 2 ? t[k / 2] : (t[k / 2 - 1] + t[k / 2]) / 2;
}

/* Results of one row, computed from its variants' samples. */
struct side {
	int n, err;		/* rounds; errno that made it n/a */
	double v[MAX_ROUNDS], med, flt;
};

struct rowres {
	struct side subj, base;
	int n;			/* rounds with both sides */
	double ratio[MAX_ROUNDS], ratio_med;
	int met, met2;		/* -1: no target or no ratio */
};

static double xmed(struct variant *v, int x)
{
	double t[MAX_ROUNDS];

	if (!v)
		return NAN;
	for (int i = 0; i < v->n; i++)
		t[i] = x < 0 ? v->s[i].value : v->s[i].x[x];	/* -1: the value */
	return median(t, v->n);
}

/* One side of a row: @fn's values (or x[@x - 1]), or per-round quotients fn/den. */
static void get_side(struct side *sd, meas_fn *fn, meas_fn *den, int x)
{
	struct variant *v = var_of(fn), *d = var_of(den);

	memset(sd, 0, sizeof(*sd));
	sd->med = sd->flt = NAN;
	if (!v)
		return;
	sd->err = v->err ? v->err : d && d->err ? d->err : 0;
	if (sd->err)
		return;
	sd->n = v->n;
	if (d && d->n < sd->n)
		sd->n = d->n;
	for (int r = 0; r < sd->n; r++)
		sd->v[r] = d ? v->s[r].value / d->s[r].value :
			   x ? v->s[r].x[x - 1] : v->s[r].value;
	sd->med = median(sd->v, sd->n);
	if (!d)
		sd->flt = xmed(v, X_FLT);
}

static void row_result(const struct row *w, struct rowres *rr)
{
	memset(rr, 0, sizeof(*rr));
	rr->met = rr->met2 = -1;
	rr->ratio_med = NAN;
	get_side(&rr->subj, w->subj, w->subj_den, w->subj_x);
	get_side(&rr->base, w->base, w->base_den, 0);
	if (w->pending || rr->subj.err || rr->base.err)
		return;
	rr->n = rr->subj.n < rr->base.n ? rr->subj.n : rr->base.n;
	/* Rounds pair up: round r ran every variant of the group once. */
	for (int r = 0; r < rr->n; r++)
		rr->ratio[r] = rr->subj.v[r] / rr->base.v[r];
	if (!rr->n)
		return;
	rr->ratio_med = median(rr->ratio, rr->n);
	if (w->target == T_LE)
		rr->met = rr->ratio_med <= w->t1;
	if (w->target == T_LT)
		rr->met = rr->ratio_med < w->t1;
	if (w->target == T_MEM)
		rr->met = rr->subj.med <= rr->base.med + xmed(var_of(w->subj), X_JOURNAL_B);
	if (w->target == T_FASTER) {
		rr->met = 1 / rr->ratio_med >= w->t1;
		rr->met2 = 1 / rr->ratio_med >= w->t2;
	}
}

/* -------------------------------------------------------------- output --- */

static const char *fmt_val(char *buf, size_t len, double v, enum unit u)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (u == U_X)
		snprintf(buf, len, "%.2fx", v);
	else if (u == U_BYTES)
		snprintf(buf, len, "%.0f B", v);
	else if (u == U_TPUT)
		snprintf(buf, len, "%.0f MiB/s", PG / v * 1e9 / MIB);
	else if (v >= 1000)
		snprintf(buf, len, "%.2f us", v / 1000);
	else
		snprintf(buf, len, "%.0f ns", v);
	return buf;
}

static const char *fmt_flt(char *buf, size_t len, double f)
{
	if (isnan(f))
		buf[0] = 0;
	else
		snprintf(buf, len, "%.2f", f);
	return buf;
}

static const char *fmt_target(char *buf, size_t len, const struct row *w)
{
	if (w->target == T_LE)
		snprintf(buf, len, "<= %.1fx", w->t1);
	else if (w->target == T_LT)
		snprintf(buf, len, "< %.1fx", w->t1);
	else if (w->target == T_MEM)
		snprintf(buf, len, "<= base + journal");
	else if (w->target == T_FASTER)
		snprintf(buf, len, ">= %.1fx faster (%.0fx)", w->t1, w->t2);
	else
		snprintf(buf, len, "-");
	return buf;
}

static const char *fmt_verdict(char *buf, size_t len, const struct row *w,
			       const struct rowres *rr)
{
	if (rr->met < 0)
		snprintf(buf, len, "-");
	else if (w->target == T_FASTER)
		snprintf(buf, len, "%s; %.0fx %s", rr->met ? "met" : "MISSED",
			 w->t2, rr->met2 ? "met" : "missed");
	else
		snprintf(buf, len, "%s", rr->met ? "met" : "MISSED");
	return buf;
}

static const char *mib(char *buf, size_t len, size_t bytes)
{
	if (bytes >= MIB)
		snprintf(buf, len, "%zu MiB", bytes / MIB);
	else
		snprintf(buf, len, "%zu KiB", bytes / 1024);
	return buf;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "?";
}

/* A value cell: the median, or "n/a ERRNO". */
static const char *fmt_side(char *buf, size_t len, const struct side *sd,
			    enum unit u)
{
	if (sd->err)
		snprintf(buf, len, "n/a %s", errname(sd->err));
	else
		fmt_val(buf, len, sd->med, u);
	return buf;
}

void print_table(struct utsname *u)
{
	char a[64], b[64], c[64], d[64], e[64], f[64];

	printf("\ncowbench on Linux %s (QEMU TCG guest): median of %d rounds (+%d warm-up); "
	       "rows 1-3 interleave their variants in %d slices per pass; seed %" PRIu64 "\n",
	       u->release, C.rounds, C.warmup, C.slices, C.seed0);
	if (C.quick)
		printf("QUICK RUN: tiny sizes, one round; the figures mean nothing\n");
	printf("sizes: rows 1, 4, 5, 9: %s file on %s; row 2: %s file on %s; row 3: %s per process; "
	       "row 6: %zu records; rows 7, 8: %zu records; page cache warm for every variant\n",
	       mib(a, sizeof(a), C.write_size), C.wfs,
	       mib(b, sizeof(b), C.read_size), C.rfs, mib(c, sizeof(c), C.scale_size),
	       C.jrecords, C.mrecords);
	printf("ratio = cowmap / baseline, median of the per-round ratios (< 1: cowmap is cheaper; "
	       "row 6: ratio of the times); flt = faults per unit (getrusage)\n\n");
	printf("%-3s %-29s %-14s %10s %4s  %-34s %10s %4s %7s  %-20s %s\n",
	       "row", "measurement (per page)", "cowmap", "", "flt",
	       "baseline", "", "flt", "ratio", "target", "verdict");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *w = &rows[i];
		struct rowres rr;

		if (w->pending) {
			printf("%-3s %-29s %s\n", w->id, w->what, w->pending);
			continue;
		}
		row_result(w, &rr);
		printf("%-3s %-29s %-14s %10s %4s  %-34s %10s %4s ",
		       w->id, w->what, w->subj_name,
		       fmt_side(a, sizeof(a), &rr.subj, w->unit),
		       fmt_flt(b, sizeof(b), rr.subj.flt), w->base_name,
		       fmt_side(c, sizeof(c), &rr.base, w->unit),
		       fmt_flt(d, sizeof(d), rr.base.flt));
		if (isnan(rr.ratio_med))
			printf("%7s  %-20s %s\n", "-", fmt_target(e, sizeof(e), w),
			       w->target ? "n/a" : "-");
		else
			printf("%6.2fx  %-20s %s\n", rr.ratio_med,
			       fmt_target(e, sizeof(e), w),
			       fmt_verdict(f, sizeof(f), w, &rr));
	}

	printf("\nnotes:\n");
	printf("  cowmap status per written page (1a): %.2f faults, %.2f cow_copies, %.2f pages owned (private + twin)\n",
	       xmed(var_of(w_cowmap), X_CM_FAULTS), xmed(var_of(w_cowmap), X_CM_COPIES),
	       xmed(var_of(w_cowmap), X_CM_OWNED));
	printf("  cowmap status per page read (2a): %.4f faults (fault-around maps 32 pages per fault)\n",
	       xmed(var_of(r1_cowmap), X_CM_FAULTS));
	printf("  1c/1d setup, not timed in the row (anonymous copy by pread, then protect): %s (1c), %s (1d) per page\n",
	       fmt_val(a, sizeof(a), xmed(var_of(w_sigsegv), X_SETUP), U_NS),
	       fmt_val(b, sizeof(b), xmed(var_of(w_uffd), X_SETUP), U_NS));
	printf("  4a: %s; cowmap (8 B per page, before the commit of 9a): status (private + twin) %s, memcg kernel %+.0f B, "
	       "slab %+.0f B, page tables %+.0f B per page; MAP_PRIVATE (1 B per page): slab %+.0f B, page tables %+.0f B, "
	       "MemFree %+.0f B per page\n",
	       cg_ok > 0 ? "memory.current of a cgroup of the writer" :
	       "no memory cgroup: MemFree decrease (noisy)",
	       fmt_val(c, sizeof(c), xmed(var_of(m_commit8), X_STATUS_BEFORE), U_BYTES),
	       xmed(var_of(m_commit8), X_KERNEL_BEFORE), xmed(var_of(m_commit8), X_SLAB_BEFORE),
	       xmed(var_of(m_commit8), X_PTABLES),
	       xmed(var_of(m_private), X_SLAB), xmed(var_of(m_private), X_PTABLES),
	       xmed(var_of(m_private), X_MEMFREE));
	printf("  5: %zu dirty pages per commit, a fresh session each; records per dirty page %.2f (8 B), %.2f (4 KiB); "
	       "journal bytes per dirty page %.0f (8 B), %.0f (4 KiB)\n",
	       commit_pages(), xmed(var_of(c8_commit), X_RECORDS), xmed(var_of(cf_commit), X_RECORDS),
	       xmed(var_of(c8_commit), X_JOURNAL_B), xmed(var_of(cf_commit), X_JOURNAL_B));
	printf("  6: %.0f records, %.1f MiB of journal (%.0f B per record for 8 changed bytes); their commit took %s per record\n",
	       fact_of("journal_records"), fact_of("journal_bytes") / MIB,
	       fact_of("journal_bytes") / fact_of("journal_records"),
	       fmt_val(a, sizeof(a), fact_of("journal_commit_ns_per_record"), U_NS));
	printf("  10: a view (COWMAP_IOC_VIEW) of a session on the file; 10a on the row-1 file (%s), one page-aligned pwrite of "
	       "4 KiB per page, %.2f cow_copies and %.2f pages owned per page; 10b on the row-2 file, read(2) of 1 MiB; "
	       "10c: %s appended to an empty file with O_APPEND in 64 KiB writes\n",
	       mib(a, sizeof(a), C.write_size), xmed(var_of(vw_view), X_CM_COPIES),
	       xmed(var_of(vw_view), X_CM_OWNED), mib(b, sizeof(b), C.append_size));
	printf("  7, 8: %.0f records of 8 B at random 16-byte slots of the %s file, merged into a copy of it, each merge followed at once "
	       "by its baseline, the pwrites of the old bytes into the same extents; per round %d kernel merges, one offline merge "
	       "without fsync (8a), one durable (8b: libcowmap in place, intent file and fsyncs; baseline pwrites + fsync)\n",
	       fact_of("merge_records"), mib(b, sizeof(b), C.write_size), MERGE_PAIRS);
	for (int k = 0; k < 2; k++) {
		struct variant *v = var_of(k ? m_commitf : m_commit8);

		printf("  9%c (%s): per dirty page before commit %s (memcg kernel %+.0f B, slab %+.0f B; status %s), "
		       "after %s (kernel %+.0f B, slab %+.0f B, page tables %+.0f B; status %s; "
		       "not counted: %+.0f B freed into the pool, with its batches); "
		       "journal %.0f B in %.2f records; commit %s per dirty page\n",
		       k ? 'b' : 'a', k ? "every byte of every 4th page" : "8 B in every page",
		       fmt_val(a, sizeof(a), xmed(v, X_BEFORE), U_BYTES),
		       xmed(v, X_KERNEL_BEFORE), xmed(v, X_SLAB_BEFORE),
		       fmt_val(b, sizeof(b), xmed(v, X_STATUS_BEFORE), U_BYTES),
		       fmt_val(c, sizeof(c), v ? xmed(v, -1) : NAN, U_BYTES),
		       xmed(v, X_KERNEL), xmed(v, X_SLAB), xmed(v, X_PTABLES),
		       fmt_val(d, sizeof(d), xmed(v, X_STATUS_B), U_BYTES),
		       xmed(v, X_POOL), xmed(v, X_JOURNAL_B), xmed(v, X_RECORDS),
		       fmt_val(e, sizeof(e), xmed(v, X_COMMIT_NS), U_NS));
	}
	printf("  uffd-wp registration of an ext4 file mapping: %s (uffd-wp covers anonymous, shmem and hugetlbfs memory only), "
	       "so 1d protects an anonymous copy\n",
	       C.uffd_file_errno ? errname(C.uffd_file_errno) : "accepted");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_num(double v)
{
	if (isnan(v) || isinf(v))
		printf("null");
	else if (v == floor(v) && fabs(v) < 1e15)
		printf("%.0f", v);	/* counts: exact */
	else
		printf("%.6g", v);
}

static void json_arr(const double *v, int n)
{
	putchar('[');
	for (int i = 0; i < n; i++) {
		if (i)
			putchar(',');
		json_num(v[i]);
	}
	putchar(']');
}

static const char *unit_name(char *buf, size_t len, const struct row *w)
{
	const char *per = w->per ? w->per : "page";

	if (w->unit == U_X)
		return "ratio";
	snprintf(buf, len, "%s per %s", w->unit == U_BYTES ? "bytes" : "ns", per);
	return buf;
}

static void json_host_info(void)
{
	char line[512];
	FILE *f = C.host_info ? fopen(C.host_info, "re") : NULL;
	int first = 1;

	printf("  \"host\": {");
	while (f && fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');

		line[strcspn(line, "\n")] = 0;
		if (!eq)
			continue;
		*eq = 0;
		printf("%s", first ? "" : ", ");
		json_str(line);
		printf(": ");
		json_str(eq + 1);
		first = 0;
	}
	if (f)
		fclose(f);
	printf("},\n");
}

static void json_side(const char *key, const char *name, meas_fn *fn,
		      meas_fn *den, const struct side *sd)
{
	printf("     \"%s\": {\"name\": ", key);
	json_str(name);
	printf(", \"variant\": \"%s%s%s\"", fn_name(fn), den ? "/" : "",
	       den ? fn_name(den) : "");
	if (sd->err) {
		printf(", \"error\": ");
		json_str(errname(sd->err));
	}
	printf(", \"median\": ");
	json_num(sd->med);
	printf(", \"faults_per_page\": ");
	json_num(sd->flt);
	printf(", \"samples\": ");
	json_arr(sd->v, sd->n);
	printf("}");
}

void print_json(struct utsname *u, const char *cpu,
		       const char *thp, const char *far)
{

	printf("%s\n{\n", JSON_BEGIN);
	printf("  \"schema\": 1,\n  \"tool\": \"cowbench\",\n");
	printf("  \"quick\": %s,\n", C.quick ? "true" : "false");
	json_host_info();
	printf("  \"guest\": {\"kernel\": ");
	json_str(u->release);
	printf(", \"version\": ");
	json_str(u->version);
	printf(", \"cpu\": ");
	json_str(cpu);
	printf(", \"ncpu\": %ld, \"mem_total_kb\": %ld, \"thp\": ",
	       sysconf(_SC_NPROCESSORS_ONLN), meminfo("MemTotal"));
	json_str(thp);
	printf(", \"fault_around_bytes\": ");
	json_str(far);
	printf(", \"accel\": \"tcg\"},\n");
	printf("  \"config\": {\"rounds\": %d, \"warmup\": %d, \"slices\": %d, \"seed\": %" PRIu64
	       ", \"write_bytes\": %zu, \"read_bytes\": %zu, \"scale_bytes_per_process\": %zu, "
	       "\"append_bytes\": %zu, ",
	       C.rounds, C.warmup, C.slices, C.seed0, C.write_size, C.read_size, C.scale_size,
	       C.append_size);
	printf("\"journal_records\": %zu, \"merge_records\": %zu, \"commit_pages\": %zu, ",
	       C.jrecords, C.mrecords, commit_pages());
	printf("\"dir\": ");
	json_str(C.dir);
	printf(", \"read_dir\": ");
	json_str(C.read_dir);
	printf(", \"fs\": ");
	json_str(C.wfs);
	printf(", \"read_fs\": ");
	json_str(C.rfs);
	printf(", \"page_cache\": \"warm\", \"uffd_wp_ext4_file\": ");
	json_str(C.uffd_file_errno ? errname(C.uffd_file_errno) : "ok");
	printf("},\n  \"rows\": [\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *w = &rows[i];
		struct rowres rr;
		char unit[64];

		printf("    {\"id\": ");
		json_str(w->id);
		printf(", \"what\": ");
		json_str(w->what);
		if (w->pending) {
			printf(", \"status\": \"pending\", \"note\": ");
			json_str(w->pending);
			printf("}%s\n", i + 1 < nrows ? "," : "");
			continue;
		}
		row_result(w, &rr);
		printf(", \"unit\": \"%s\", \"status\": \"%s\",\n",
		       unit_name(unit, sizeof(unit), w), isnan(rr.ratio_med) ? "n/a" : "ok");
		json_side("subject", w->subj_name, w->subj, w->subj_den, &rr.subj);
		printf(",\n");
		json_side("baseline", w->base_name, w->base, w->base_den, &rr.base);
		printf(",\n     \"ratio\": ");
		json_num(rr.ratio_med);
		printf(", \"ratio_samples\": ");
		json_arr(rr.ratio, rr.n);
		if (w->unit == U_TPUT) {
			printf(", \"bytes_per_second\": {\"subject\": ");
			json_num(PG / rr.subj.med * 1e9);
			printf(", \"baseline\": ");
			json_num(PG / rr.base.med * 1e9);
			printf("}");
		}
		if (w->target == T_MEM) {
			printf(", \"target\": {\"kind\": \"at_most_baseline_plus_journal_bytes\", \"value\": ");
			json_num(rr.base.med + xmed(var_of(w->subj), X_JOURNAL_B));
			printf(", \"met\": %s", rr.met > 0 ? "true" :
			       rr.met == 0 ? "false" : "null");
			printf("}");
		} else if (w->target != T_NONE) {
			printf(", \"target\": {\"kind\": \"%s\", \"value\": ",
			       w->target == T_LE ? "ratio_at_most" :
			       w->target == T_LT ? "ratio_below" : "speedup_at_least");
			json_num(w->t1);
			printf(", \"met\": %s", rr.met > 0 ? "true" :
			       rr.met == 0 ? "false" : "null");
			if (w->target == T_FASTER) {
				printf(", \"brief_value\": ");
				json_num(w->t2);
				printf(", \"brief_met\": %s", rr.met2 > 0 ? "true" :
				       rr.met2 == 0 ? "false" : "null");
			}
			printf("}");
		}
		printf("}%s\n", i + 1 < nrows ? "," : "");
	}
	printf("  ],\n  \"facts\": {");
	for (int i = 0; i < nfacts; i++) {
		printf("%s\"%s\": ", i ? ", " : "", facts[i].key);
		json_num(facts[i].v);
	}
	printf("},\n  \"variants\": {\n");
	for (int i = 0; i < nvars; i++) {
		struct variant *v = &vars[i];

		printf("    \"%s\": {\"group\": \"%s\", \"rounds\": %d", v->name,
		       v->group, v->n);
		if (v->err) {
			printf(", \"error\": ");
			json_str(errname(v->err));
		}
		for (int x = 0; x < NX; x++) {
			double m = xmed(v, x);

			if (!isnan(m)) {
				printf(", \"%s\": ", xname[x]);
				json_num(m);
			}
		}
		printf("}%s\n", i + 1 < nvars ? "," : "");
	}
	printf("  }\n}\n%s\n", JSON_END);
}
