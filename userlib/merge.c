// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/*
 * Offline merge: apply journal records to a file, with conflict detection.
 *
 * The records of every log are loaded, sorted into merge order (time_ns,
 * session_id, seq) and evaluated one after the other against an in-memory
 * image of the bytes they touch ("extents": the union of their ranges),
 * read from the target first. A record applies when its range holds its old
 * bytes, is already applied when it holds its new bytes (or what it and
 * later records over the same bytes leave there), and conflicts otherwise.
 * Only then is anything written, and only the bytes that changed:
 *
 * - in place: an intent file next to the source records every run to write
 *   (its bytes before and after) and is fsynced first; then the runs are
 *   written, the source fsynced and the intent removed. A merge that finds
 *   an intent file completes it first, so an interruption at any point
 *   (kill -9, power loss) ends in the exact merged result when re-run;
 * - into OUT: a copy of the source in a temp file next to OUT gets the
 *   runs, is fsynced and renamed over OUT, and the directory is fsynced.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "internal.h"

#define INTENT_MAGIC	"COWMAPIN"
#define INTENT_VERSION	2	/* 2 adds the least size at 64 */
#define INTENT_HDR	72u
#define INTENT_HDR_V1	64u
#define RUN_GAP		64u	/* unchanged bytes that do not split a run */
#define MAX_END		(1ULL << 62)	/* no file reaches this far */

struct mlog {
	char *path;
	struct cowmap_log_info info;
	int from_dir;		/* identity checked when added */
};

struct mrec {
	struct cowmap_rec r;
	uint32_t log;
	uint64_t time;		/* time_ns, made monotonic within the session */
	uint32_t ext;		/* extent index */
	size_t ext_pos;		/* index in the extent's merge-order list */
	uint8_t *data;		/* old bytes, then new bytes */
};

struct extent {
	uint64_t off, len;
	uint8_t *cur;		/* the image the merge works on */
	uint8_t *orig;		/* the target as read */
	struct mrec **recs;	/* records inside, in merge order */
	size_t nrecs;
	int done;		/* holds the final bytes already: all applied */
};

struct run {
	uint64_t off, len;
	const uint8_t *pre, *post;
	uint64_t pre_len;	/* bytes that existed before (below the old size) */
};

struct cowmap_merger {
	cowmap_merger_cb cb;
	void *arg;
	cowmap_merger_stage_cb stage_cb;
	void *stage_arg;
	struct mlog *logs;
	size_t nlogs, caplogs;
	struct mrec *recs;
	size_t nrecs, caprecs;
	uint64_t log_errors;	/* damaged regions and unusable logs */
};

static void emit(struct cowmap_merger *m, enum cowmap_merger_event_type type,
		 const char *log, const struct cowmap_rec *rec,
		 const uint8_t *found, size_t found_len,
		 const struct cowmap_log_error *error, const char *fmt, ...)
{
	struct cowmap_merger_event ev = {
		.type = type, .log = log, .rec = rec, .found = found,
		.found_len = found_len, .error = error,
	};
	char msg[512];

	if (!m->cb)
		return;
	if (fmt) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		ev.message = msg;
	}
	m->cb(m->arg, &ev);
}

static void stage(struct cowmap_merger *m, enum cowmap_merger_stage s, uint64_t n)
{
	if (m->stage_cb)
		m->stage_cb(m->stage_arg, s, n);
}

API int cowmap_merger_new(cowmap_merger_cb cb, void *arg, struct cowmap_merger **mp)
{
	struct cowmap_merger *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->cb = cb;
	m->arg = arg;
	*mp = m;
	return 0;
}

API void cowmap_merger_set_stage_cb(struct cowmap_merger *m, cowmap_merger_stage_cb cb,
				   void *arg)
{
	m->stage_cb = cb;
	m->stage_arg = arg;
}

API void cowmap_merger_free(struct cowmap_merger *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nrecs; i++)
		free(m->recs[i].data);
	for (size_t i = 0; i < m->nlogs; i++)
		free(m->logs[i].path);
	free(m->recs);
	free(m->logs);
	free(m);
}

static int push_rec(struct cowmap_merger *m, const struct cowmap_rec *r, uint32_t log)
{
	struct mrec *x;

	if (m->nrecs == m->caprecs) {
		size_t cap = m->caprecs ? 2 * m->caprecs : 256;
		struct mrec *v = realloc(m->recs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->recs = v;
		m->caprecs = cap;
	}
	x = &m->recs[m->nrecs];
	memset(x, 0, sizeof(*x));
	x->r = *r;
	x->log = log;
	x->data = malloc(2 * (size_t)r->length);
	if (!x->data)
		return -ENOMEM;
	memcpy(x->data, r->old_bytes, r->length);
	memcpy(x->data + r->length, r->new_bytes, r->length);
	x->r.old_bytes = x->data;
	x->r.new_bytes = x->data + r->length;
	m->nrecs++;
	return 0;
}

static int add_log(struct cowmap_merger *m, const char *path, int from_dir)
{
	struct cowmap_log_error err;
	struct cowmap_log *log;
	struct cowmap_rec rec;
	size_t first = m->nrecs;
	uint32_t idx;
	int ret, n = 0;

	ret = cowmap_log_open(path, &log, &err);
	if (ret) {
		m->log_errors++;
		if (err.kind == COWMAP_LOGERR_IO)
			emit(m, COWMAP_MEV_LOG_ERROR, path, NULL, NULL, 0, &err,
			     "%s", strerror(-ret));
		else
			emit(m, COWMAP_MEV_LOG_ERROR, path, NULL, NULL, 0, &err,
			     "%s at offset %llu", cowmap_log_strerror(err.kind),
			     (unsigned long long)err.offset);
		return ret;
	}
	if (m->nlogs == m->caplogs) {
		size_t cap = m->caplogs ? 2 * m->caplogs : 8;
		struct mlog *v = realloc(m->logs, cap * sizeof(*v));

		if (!v) {
			cowmap_log_close(log);
			return -ENOMEM;
		}
		m->logs = v;
		m->caplogs = cap;
	}
	idx = m->nlogs;
	m->logs[idx].path = strdup(path);
	m->logs[idx].info = *cowmap_log_info(log);
	m->logs[idx].from_dir = from_dir;
	if (!m->logs[idx].path) {
		cowmap_log_close(log);
		return -ENOMEM;
	}
	m->nlogs++;

	while ((ret = cowmap_log_next(log, &rec, &err)) != 0) {
		if (ret == 1) {
			ret = push_rec(m, &rec, idx);
			if (ret)
				goto undo;
			n++;
			continue;
		}
		if (err.kind == COWMAP_LOGERR_IO) {
			m->log_errors++;
			emit(m, COWMAP_MEV_LOG_ERROR, path, NULL, NULL, 0, &err,
			     "read error at offset %llu: %s",
			     (unsigned long long)err.offset, strerror(-ret));
			goto undo;
		}
		if (err.kind == COWMAP_LOGERR_TRUNCATED) {
			emit(m, COWMAP_MEV_LOG_WARNING, path, NULL, NULL, 0, &err,
			     "%s at offset %llu (%llu bytes ignored)",
			     cowmap_log_strerror(err.kind),
			     (unsigned long long)err.offset,
			     (unsigned long long)(err.resume - err.offset));
			continue;
		}
		m->log_errors++;
		emit(m, COWMAP_MEV_LOG_ERROR, path, NULL, NULL, 0, &err,
		     "%s at offset %llu (%llu bytes skipped)",
		     cowmap_log_strerror(err.kind), (unsigned long long)err.offset,
		     (unsigned long long)(err.resume - err.offset));
	}
	cowmap_log_close(log);
	return n;
undo:
	cowmap_log_close(log);
	while (m->nrecs > first)
		free(m->recs[--m->nrecs].data);
	free(m->logs[--m->nlogs].path);
	return ret;
}

API int cowmap_merger_add_log(struct cowmap_merger *m, const char *path)
{
	return add_log(m, path, 0);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

API int cowmap_merger_add_dir(struct cowmap_merger *m, const char *dir,
			     const char *source, int any_identity)
{
	struct stat src, st;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int ret = 0, added = 0;
	DIR *d;

	if (stat(source, &src))
		return -errno;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **v;

			cap = cap ? 2 * cap : 32;
			v = realloc(names, cap * sizeof(*v));
			if (!v) {
				ret = -ENOMEM;
				goto out;
			}
			names = v;
		}
		names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
		if (!names[n]) {
			ret = -ENOMEM;
			goto out;
		}
		sprintf(names[n], "%s/%s", dir, de->d_name);
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n; i++) {
		char magic[8];
		struct cowmap_log_info info;
		uint8_t h[HDR_MAX];
		int checked = 0;
		ssize_t got;
		int fd;

		fd = open(names[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		got = cm_pread_full(fd, h, sizeof(h), 0);
		close(fd);
		memcpy(magic, h, sizeof(magic));
		if (got < 8 || memcmp(magic, COWMAP_LOG_MAGIC, 8)) {
			emit(m, COWMAP_MEV_LOG_SKIPPED, names[i], NULL, NULL, 0,
			     NULL, "not a cowmap log");
			continue;
		}
		if (got >= HDR_SIZE && !any_identity &&
		    cm_parse_header(h, got, &info) == COWMAP_LOGERR_NONE) {
			if (!cm_log_of_file(&info, -1, source, &src)) {
				emit(m, COWMAP_MEV_LOG_SKIPPED, names[i], NULL,
				     NULL, 0, NULL,
				     "a log of device %u:%u inode %llu, not of %s",
				     info.dev_major, info.dev_minor,
				     (unsigned long long)info.ino, source);
				continue;
			}
			checked = 1;
		}
		/*
		 * Bad headers are reported (and counted) by add_log; a log
		 * whose identity was not checked here is checked at the run.
		 */
		ret = add_log(m, names[i], checked);
		if (ret >= 0)
			added++;
		else if (ret == -ENOMEM)
			goto out;
		ret = 0;
	}
out:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret ? ret : added;
}

/* --- the merge ------------------------------------------------------------- */

static int cmp_merge_order(const void *a, const void *b)
{
	const struct mrec *x = *(struct mrec *const *)a, *y = *(struct mrec *const *)b;

#define CMP(f) do { if (x->f != y->f) return x->f < y->f ? -1 : 1; } while (0)
	CMP(time);
	CMP(r.session_id);
	CMP(r.seq);
	CMP(log);
	CMP(r.pos);
	return 0;
}

static int cmp_session_seq(const void *a, const void *b)
{
	const struct mrec *x = *(struct mrec *const *)a, *y = *(struct mrec *const *)b;

	CMP(r.session_id);
	CMP(r.seq);
	CMP(log);
	CMP(r.pos);
	return 0;
}
#undef CMP

static int cmp_offset(const void *a, const void *b)
{
	const struct mrec *x = *(struct mrec *const *)a, *y = *(struct mrec *const *)b;

	if (x->r.offset != y->r.offset)
		return x->r.offset < y->r.offset ? -1 : 1;
	return 0;
}

#define LOOKAHEAD_BUDGET (256ULL << 20)	/* record bytes re-simulated, per run */

struct ctx {
	struct cowmap_merger *m;
	uint8_t *alt;		/* look-ahead image of one extent */
	uint64_t budget;
	int budget_noted;
	struct mrec **ord;	/* merge order */
	struct extent *ext;
	size_t next;
	uint64_t orig_size, size;
	/* Size records: the least size they went down to, and what is kept. */
	uint64_t min_size, keep;
	int has_size;		/* some record is a size record */
	int all_done;		/* the target is the records' final state */
	int fd;
	struct run *runs;
	size_t nruns;
	uint8_t *scratch;
};

static void ctx_free(struct ctx *c)
{
	for (size_t i = 0; i < c->next; i++) {
		free(c->ext[i].cur);
		free(c->ext[i].orig);
		free(c->ext[i].recs);
	}
	free(c->ext);
	free(c->alt);
	free(c->ord);
	free(c->runs);
	free(c->scratch);
}

/* Extents: the union of the records' ranges, read from @fd. */
static int build_extents(struct ctx *c, int fd)
{
	struct cowmap_merger *m = c->m;
	struct mrec **byoff;
	size_t n = 0, maxlen = 0;
	int ret = 0;

	byoff = malloc(m->nrecs * sizeof(*byoff) + 1);
	c->ext = calloc(m->nrecs + 1, sizeof(*c->ext));
	if (!byoff || !c->ext) {
		free(byoff);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->nrecs; i++) {
		struct mrec *r = &m->recs[i];

		if (r->r.length > maxlen)
			maxlen = r->r.length;
		r->ext = UINT32_MAX;
		if (r->r.flags & COWMAP_REC_SIZE) {
			c->has_size = 1;
			continue;	/* no bytes: simulate() handles it */
		}
		if (r->r.offset >= MAX_END || r->r.offset + r->r.length > MAX_END)
			continue;	/* no file reaches there: a conflict */
		byoff[n++] = r;
	}
	c->scratch = malloc(maxlen + 1);
	if (!c->scratch) {
		free(byoff);
		return -ENOMEM;
	}
	qsort(byoff, n, sizeof(*byoff), cmp_offset);
	for (size_t i = 0; i < n; i++) {
		struct mrec *r = byoff[i];
		uint64_t end = r->r.offset + r->r.length;
		struct extent *e = c->next ? &c->ext[c->next - 1] : NULL;

		if (e && r->r.offset <= e->off + e->len) {
			if (end > e->off + e->len)
				e->len = end - e->off;
		} else {
			e = &c->ext[c->next++];
			e->off = r->r.offset;
			e->len = r->r.length;
		}
		r->ext = c->next - 1;
		e->nrecs++;
	}
	free(byoff);

	for (size_t i = 0; i < c->next; i++) {
		struct extent *e = &c->ext[i];
		ssize_t got;

		if (e->len > SIZE_MAX / 2)
			return -EFBIG;
		e->cur = calloc(1, e->len);
		e->orig = malloc(e->len);
		e->recs = malloc(e->nrecs * sizeof(*e->recs));
		if (!e->cur || !e->orig || !e->recs)
			return -ENOMEM;
		e->nrecs = 0;
		if (e->off < c->orig_size) {
			uint64_t want = c->orig_size - e->off;

			if (want > e->len)
				want = e->len;
			got = cm_pread_full(fd, e->cur, want, e->off);
			if (got < 0)
				return got;
			/* A file that shrank under us: the rest reads as absent. */
			if ((uint64_t)got < want && e->off + got < c->size)
				c->size = e->off + got;
		}
		memcpy(e->orig, e->cur, e->len);
	}
	for (size_t i = 0; i < m->nrecs; i++) {
		struct mrec *r = c->ord[i];

		if (r->ext == UINT32_MAX)
			continue;
		r->ext_pos = c->ext[r->ext].nrecs;
		c->ext[r->ext].recs[c->ext[r->ext].nrecs++] = r;
	}
	return ret;
}

/*
 * Does @found equal what @r and some prefix of the later records over its
 * bytes (in merge order) leave in @r's range? (@found != r's new bytes.)
 */
static int chain_applied(struct ctx *c, struct mrec *r, const uint8_t *found)
{
	struct extent *e = &c->ext[r->ext];
	uint64_t lo = r->r.offset, hi = lo + r->r.length;
	uint8_t *img = c->scratch;
	int changed = 0;

	memcpy(img, r->r.new_bytes, r->r.length);
	for (size_t k = r->ext_pos + 1; k < e->nrecs; k++) {
		struct mrec *q = e->recs[k];
		uint64_t qlo = q->r.offset, qhi = qlo + q->r.length;
		uint64_t a = qlo > lo ? qlo : lo, b = qhi < hi ? qhi : hi;

		if (a >= b)
			continue;
		memcpy(img + (a - lo), q->r.new_bytes + (a - qlo), b - a);
		changed = 1;
		if (!memcmp(img, found, r->r.length))
			return 1;
	}
	return changed && !memcmp(img, found, r->r.length);
}

/*
 * Does the extent hold, everywhere, the new bytes of the last record (in
 * merge order) over each byte? Then the merge is complete there: every
 * record in it is already applied, whatever coincidences its history has.
 */
static int extent_done(struct ctx *c, struct extent *e)
{
	uint8_t *fin = malloc(e->len);
	int done;

	if (!fin)
		return 0;
	for (size_t k = 0; k < e->nrecs; k++) {
		struct mrec *q = e->recs[k];

		memcpy(fin + (q->r.offset - e->off), q->r.new_bytes, q->r.length);
	}
	done = e->off + e->len <= c->size && !memcmp(fin, e->cur, e->len);
	free(fin);
	return done;
}

/*
 * Evaluate the extent's records from index @from on, in @img (the
 * extent's bytes) and with file size @size, preferring "applies" where a
 * record could also be already applied. Returns the conflicts.
 */
static uint64_t sim_rest(struct ctx *c, struct extent *e, size_t from,
			 uint8_t *img, uint64_t size,
			 enum cowmap_merger_policy policy)
{
	uint64_t conflicts = 0;

	for (size_t k = from; k < e->nrecs; k++) {
		struct mrec *q = e->recs[k];
		uint64_t off = q->r.offset, len = q->r.length;
		uint8_t *f = img + (off - e->off);
		int whole = off < size && size - off >= len;

		c->budget += len;
		if (whole && !memcmp(f, q->r.old_bytes, len)) {
			memcpy(f, q->r.new_bytes, len);
			continue;
		}
		if (whole && (!memcmp(f, q->r.new_bytes, len) || chain_applied(c, q, f)))
			continue;
		conflicts++;
		if (policy == COWMAP_POLICY_FORCE) {
			memcpy(f, q->r.new_bytes, len);
			if (off + len > size)
				size = off + len;
		}
	}
	return conflicts;
}

/*
 * @r's range holds its old bytes and also what it and later records leave
 * there (bytes that were changed and changed back). Should it apply (1) or
 * count as already applied (0)? Whichever leaves fewer conflicts among the
 * extent's later records; "applies" on a tie.
 */
static int ambiguous_applies(struct ctx *c, struct mrec *r,
			     enum cowmap_merger_policy policy)
{
	struct extent *e = &c->ext[r->ext];
	uint64_t as_applied, as_already;

	if (r->ext_pos + 1 == e->nrecs)
		return 1;
	if (c->budget > LOOKAHEAD_BUDGET) {
		if (!c->budget_noted++)
			emit(c->m, COWMAP_MEV_NOTE, NULL, NULL, NULL, 0, NULL,
			     "look-ahead budget used up: ambiguous records now simply apply");
		return 1;
	}
	memcpy(c->alt, e->cur, e->len);
	memcpy(c->alt + (r->r.offset - e->off), r->r.new_bytes, r->r.length);
	as_applied = sim_rest(c, e, r->ext_pos + 1, c->alt, c->size, policy);
	memcpy(c->alt, e->cur, e->len);
	as_already = sim_rest(c, e, r->ext_pos + 1, c->alt, c->size, policy);
	return as_applied <= as_already;
}

/*
 * CRC-32 of the bytes [@from, @to) as the records so far leave them: the
 * image where an extent holds them, the file below what was kept, zeros
 * elsewhere (cut, or past the file's end: only a growth put bytes there).
 * As the kernel merge computes it (kmod/merge.c, cowmap_shadow_crc()).
 */
static int cut_crc(struct ctx *c, uint64_t from, uint64_t to, uint32_t *out)
{
	uint64_t keep = c->min_size < c->orig_size ? c->min_size : c->orig_size;
	const size_t bufsz = 1 << 16;
	uint8_t *buf = NULL;
	uint32_t crc = 0;
	size_t i = 0;

	while (from < to) {
		uint64_t stop = to, n;
		struct extent *e = NULL;

		while (i < c->next && c->ext[i].off + c->ext[i].len <= from)
			i++;
		if (i < c->next && c->ext[i].off <= from)
			e = &c->ext[i];
		else if (i < c->next && c->ext[i].off < stop)
			stop = c->ext[i].off;
		if (e) {
			n = (e->off + e->len < to ? e->off + e->len : to) - from;
			crc = cowmap_crc32(crc, e->cur + (from - e->off), n);
		} else if (from >= keep) {
			n = stop - from;
			crc = cm_crc32_zeros(crc, n);
		} else {
			ssize_t got;

			n = (stop < keep ? stop : keep) - from;
			if (n > bufsz)
				n = bufsz;
			if (!buf)
				buf = malloc(bufsz);
			if (!buf)
				return -ENOMEM;
			got = cm_pread_full(c->fd, buf, n, from);
			if (got < 0) {
				free(buf);
				return got;
			}
			memset(buf + got, 0, n - got);
			crc = cowmap_crc32(crc, buf, n);
		}
		from += n;
	}
	free(buf);
	*out = crc;
	return 0;
}

/* The file's size becomes @size: what a shrink cuts reads as zeros after. */
static void resize(struct ctx *c, uint64_t size)
{
	for (size_t i = 0; size < c->size && i < c->next; i++) {
		struct extent *e = &c->ext[i];

		if (e->off + e->len > size) {
			uint64_t at = size > e->off ? size - e->off : 0;

			memset(e->cur + at, 0, e->len - at);
		}
	}
	c->size = size;
	if (size < c->min_size)
		c->min_size = size;
}

/*
 * A size record, as the kernel merge decides it: it applies when the size
 * is its old size (and, shrinking, the bytes it cuts have its cut_crc), is
 * already applied when the size is its new size, else conflicts.
 */
static int size_record(struct ctx *c, struct mrec *r,
		       enum cowmap_merger_policy policy,
		       struct cowmap_merger_stats *st)
{
	const char *log = c->m->logs[r->log].path;
	uint64_t old = r->r.old_size, new = r->r.new_size, was = c->size;
	int apply = 0, crc_bad = 0, ret;
	uint32_t crc = 0;

	if (c->size == old) {
		apply = 1;
		if (new < old) {
			ret = cut_crc(c, new, old, &crc);
			if (ret)
				return ret;
			apply = crc == r->r.cut_crc;
			crc_bad = !apply;
		}
	}
	if (apply) {
		resize(c, new);
		st->applied++;
		emit(c->m, COWMAP_MEV_APPLY, log, &r->r, NULL, 0, NULL, NULL);
		return 0;
	}
	if (c->size == new) {
		st->already++;
		emit(c->m, COWMAP_MEV_ALREADY, log, &r->r, NULL, 0, NULL, NULL);
		return 0;
	}
	st->conflicts++;
	if (policy == COWMAP_POLICY_FORCE) {
		st->forced++;
		resize(c, new);
	}
	if (crc_bad)
		emit(c->m, policy == COWMAP_POLICY_FORCE ? COWMAP_MEV_FORCED :
		     COWMAP_MEV_CONFLICT, log, &r->r, NULL, 0, NULL,
		     "the bytes it cuts differ (CRC-32 %08x, the record's %08x)",
		     crc, r->r.cut_crc);
	else
		emit(c->m, policy == COWMAP_POLICY_FORCE ? COWMAP_MEV_FORCED :
		     COWMAP_MEV_CONFLICT, log, &r->r, NULL, 0, NULL,
		     "the file's size is %llu, not %llu",
		     (unsigned long long)was, (unsigned long long)old);
	return 0;
}

/*
 * Rule 4 with size records: does the target hold the state the records
 * leave when each applies in turn, from a file of the first size record's
 * old size: the last size record's new size, at every byte a record
 * determines the last byte written there (zeros where a cut went and no
 * record wrote since), and zeros outside the records' ranges from the
 * least size on? Then every record is already applied. (The kernel merge
 * has the same check, cowmap_final_state() in kmod/merge.c.)
 */
static int sizes_done(struct ctx *c)
{
	struct cowmap_merger *m = c->m;
	uint64_t first = UINT64_MAX, least = UINT64_MAX, last = 0, cur, pos;
	const size_t bufsz = 1 << 16;
	uint8_t **img = calloc(c->next + 1, sizeof(*img)), *buf = NULL;
	size_t i, x;
	int done = 0;

	if (!img)
		return 0;
	for (i = 0; i < m->nrecs; i++) {
		struct mrec *r = c->ord[i];

		if (!(r->r.flags & COWMAP_REC_SIZE))
			continue;
		if (first == UINT64_MAX)
			first = r->r.old_size;
		if (r->r.new_size < least)
			least = r->r.new_size;
		last = r->r.new_size;
	}
	if (first == UINT64_MAX || c->size != last)
		goto out;
	if (first < least)
		least = first;
	/* Per extent: the final bytes, then whether a record determines them. */
	for (x = 0; x < c->next; x++) {
		struct extent *e = &c->ext[x];

		img[x] = calloc(2, e->len);
		if (!img[x])
			goto out;
		for (uint64_t k = 0; k < e->len; k++)
			img[x][e->len + k] = e->off + k >= first;	/* grown: zeros */
	}
	cur = first;
	for (i = 0; i < m->nrecs; i++) {
		struct mrec *r = c->ord[i];

		if (r->r.flags & COWMAP_REC_SIZE) {
			for (x = 0; x < c->next; x++) {
				struct extent *e = &c->ext[x];
				uint64_t k = r->r.new_size > e->off ? r->r.new_size - e->off : 0;

				for (; k < e->len; k++) {
					img[x][k] = 0;
					img[x][e->len + k] = 1;
				}
			}
			cur = r->r.new_size;
			continue;
		}
		if (r->ext == UINT32_MAX || r->r.offset + r->r.length > cur)
			goto out;	/* past the size: this is no such history */
		x = r->ext;
		memcpy(img[x] + (r->r.offset - c->ext[x].off), r->r.new_bytes, r->r.length);
		memset(img[x] + c->ext[x].len + (r->r.offset - c->ext[x].off), 1, r->r.length);
	}
	for (x = 0; x < c->next; x++) {
		struct extent *e = &c->ext[x];

		for (uint64_t k = 0; k < e->len && e->off + k < last; k++)
			if (img[x][e->len + k] && e->cur[k] != img[x][k])
				goto out;
	}
	/* Outside the extents, from the least size on: zeros. */
	buf = malloc(bufsz);
	if (!buf)
		goto out;
	for (pos = least, x = 0; pos < last;) {
		uint64_t stop = last, n;
		ssize_t got;

		while (x < c->next && c->ext[x].off + c->ext[x].len <= pos)
			x++;
		if (x < c->next && c->ext[x].off <= pos) {
			pos = c->ext[x].off + c->ext[x].len;
			continue;
		}
		if (x < c->next && c->ext[x].off < stop)
			stop = c->ext[x].off;
		n = stop - pos < bufsz ? stop - pos : bufsz;
		got = cm_pread_full(c->fd, buf, n, pos);
		if (got < 0)
			goto out;
		for (ssize_t k = 0; k < got; k++)
			if (buf[k])
				goto out;
		if ((uint64_t)got < n)
			break;	/* the file ends: nothing more to compare */
		pos += n;
	}
	done = 1;
out:
	for (x = 0; x < c->next; x++)
		free(img[x]);
	free(img);
	free(buf);
	return done;
}

static int simulate(struct ctx *c, enum cowmap_merger_policy policy,
		    struct cowmap_merger_stats *st)
{
	struct cowmap_merger *m = c->m;
	uint64_t maxext = 0;

	for (size_t i = 0; i < c->next; i++) {
		/* With size records, the last bytes written need not be the final ones. */
		c->ext[i].done = !c->has_size && extent_done(c, &c->ext[i]);
		if (c->ext[i].len > maxext)
			maxext = c->ext[i].len;
	}
	c->alt = malloc(maxext + 1);
	c->all_done = c->has_size && sizes_done(c);

	for (size_t i = 0; i < m->nrecs; i++) {
		struct mrec *r = c->ord[i];
		const char *log = m->logs[r->log].path;
		uint64_t off = r->r.offset, len = r->r.length, avail = 0;
		struct extent *e;
		int is_old, is_new;
		uint8_t *f;

		if (c->all_done) {
			st->already++;
			emit(m, COWMAP_MEV_ALREADY, log, &r->r, NULL, 0, NULL, NULL);
			continue;
		}
		if (r->r.flags & COWMAP_REC_SIZE) {
			int ret = size_record(c, r, policy, st);

			if (ret)
				return ret;
			continue;
		}
		if (r->ext == UINT32_MAX) {
			st->conflicts++;
			emit(m, COWMAP_MEV_CONFLICT, log, &r->r, NULL, 0, NULL,
			     "range beyond any possible file size");
			continue;
		}
		e = &c->ext[r->ext];
		f = e->cur + (off - e->off);
		if (off < c->size)
			avail = c->size - off < len ? c->size - off : len;
		is_old = avail == len && !memcmp(f, r->r.old_bytes, len);
		is_new = avail == len && (e->done || !memcmp(f, r->r.new_bytes, len) ||
					  chain_applied(c, r, f));
		if (is_old && is_new && !e->done && c->alt &&
		    memcmp(r->r.old_bytes, r->r.new_bytes, len))
			is_new = !ambiguous_applies(c, r, policy);
		if (is_new) {
			st->already++;
			emit(m, COWMAP_MEV_ALREADY, log, &r->r, NULL, 0, NULL, NULL);
			continue;
		}
		if (is_old) {
			memcpy(f, r->r.new_bytes, len);
			st->applied++;
			emit(m, COWMAP_MEV_APPLY, log, &r->r, NULL, 0, NULL, NULL);
			continue;
		}
		st->conflicts++;
		if (policy != COWMAP_POLICY_FORCE) {
			emit(m, COWMAP_MEV_CONFLICT, log, &r->r, f, avail, NULL,
			     avail < len ? "range runs past the end of the file" : NULL);
			continue;
		}
		emit(m, COWMAP_MEV_FORCED, log, &r->r, f, avail, NULL,
		     avail < len ? "range runs past the end of the file" : NULL);
		memcpy(f, r->r.new_bytes, len);
		if (off + len > c->size)
			c->size = off + len;
		st->forced++;
	}
	return 0;
}

/* The runs of bytes that differ from what was read. */
static int build_runs(struct ctx *c)
{
	size_t cap = 0;

	/* Below @keep the file keeps its bytes; above, a cut made them zeros. */
	c->keep = c->min_size < c->orig_size ? c->min_size : c->orig_size;
	for (size_t i = 0; i < c->next; i++) {
		struct extent *e = &c->ext[i];
		uint64_t j = 0;

		while (j < e->len) {
			uint64_t start, last, abs;

#define CHANGED(k) (e->off + (k) < c->size && \
		    (e->off + (k) >= c->keep || e->cur[k] != e->orig[k]))
			while (j < e->len && !CHANGED(j))
				j++;
			if (j >= e->len)
				break;
			start = last = j;
			for (j++; j < e->len && j - last <= RUN_GAP; j++)
				if (CHANGED(j))
					last = j;
#undef CHANGED
			j = last + 1;
			if (c->nruns == cap) {
				struct run *v;

				cap = cap ? 2 * cap : 64;
				v = realloc(c->runs, cap * sizeof(*v));
				if (!v)
					return -ENOMEM;
				c->runs = v;
			}
			abs = e->off + start;
			c->runs[c->nruns++] = (struct run){
				.off = abs, .len = j - start,
				.pre = e->orig + start, .post = e->cur + start,
				.pre_len = abs >= c->keep ? 0 :
					   (c->keep - abs < j - start ?
					    c->keep - abs : j - start),
			};
		}
	}
	return 0;
}

/* --- intent file (in place) --------------------------------------------------- */

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static int intent_write(struct ctx *c, const char *path, const struct stat *st,
			unsigned int flags)
{
	size_t size = INTENT_HDR + 8, at = INTENT_HDR;
	uint8_t *buf;
	int fd, ret;

	for (size_t i = 0; i < c->nruns; i++)
		size += 24 + pad8(c->runs[i].pre_len + c->runs[i].len);
	buf = calloc(1, size);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, INTENT_MAGIC, 8);
	put_le32(buf + 8, INTENT_VERSION);
	put_le32(buf + 16, major(st->st_dev));
	put_le32(buf + 20, minor(st->st_dev));
	put_le64(buf + 24, st->st_ino);
	put_le64(buf + 32, c->orig_size);
	put_le64(buf + 40, c->size);
	put_le64(buf + 48, c->nruns);
	put_le64(buf + 56, size);
	put_le64(buf + 64, c->keep);
	for (size_t i = 0; i < c->nruns; i++) {
		struct run *r = &c->runs[i];

		put_le64(buf + at, r->off);
		put_le64(buf + at + 8, r->len);
		put_le64(buf + at + 16, r->pre_len);
		memcpy(buf + at + 24, r->pre, r->pre_len);
		memcpy(buf + at + 24 + r->pre_len, r->post, r->len);
		at += 24 + pad8(r->pre_len + r->len);
	}
	put_le32(buf + at, cowmap_crc32(0, buf, at));

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	ret = cm_write_full(fd, buf, size);
	free(buf);
	if (!ret && !(flags & COWMAP_MERGER_NO_SYNC) && fsync(fd))
		ret = -errno;
	close(fd);
	if (!ret && !(flags & COWMAP_MERGER_NO_SYNC))
		ret = cm_fsync_dir_of(path);
	if (ret)
		unlink(path);
	return ret;
}

static int set_sizes(int fd, uint64_t cur, uint64_t keep, uint64_t size);

/*
 * Complete the merge an intent file describes. 1 done, 0 the intent was
 * incomplete (the source was never touched; removed), -errno.
 */
static int intent_replay(struct cowmap_merger *m, const char *path, int fd,
			 const struct stat *st, unsigned int flags)
{
	uint8_t *buf = NULL, *cur = NULL;
	uint64_t size, nruns, new_size, keep = UINT64_MAX, at, hdr = INTENT_HDR_V1;
	struct stat ist;
	int ifd, ret = 0;

	ifd = open(path, O_RDONLY | O_CLOEXEC);
	if (ifd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(ifd, &ist)) {
		ret = -errno;
		close(ifd);
		return ret;
	}
	size = ist.st_size;
	buf = malloc(size ? size : 1);
	if (!buf) {
		close(ifd);
		return -ENOMEM;
	}
	ret = cm_pread_full(ifd, buf, size, 0);
	close(ifd);
	if (ret < 0)
		goto out;
	ret = 0;
	if (size >= INTENT_HDR_V1 && get_le32(buf + 8) == INTENT_VERSION)
		hdr = INTENT_HDR;
	if (size < hdr + 8 || memcmp(buf, INTENT_MAGIC, 8) ||
	    (get_le32(buf + 8) != INTENT_VERSION && get_le32(buf + 8) != 1) ||
	    get_le64(buf + 56) != size ||
	    get_le32(buf + size - 8) != cowmap_crc32(0, buf, size - 8)) {
		/* Torn while being written: the source was not touched yet. */
		emit(m, COWMAP_MEV_NOTE, NULL, NULL, NULL, 0, NULL,
		     "removed incomplete intent file %s (the source was not written)",
		     path);
		goto remove;
	}
	if (get_le32(buf + 16) != major(st->st_dev) ||
	    get_le32(buf + 20) != minor(st->st_dev) || get_le64(buf + 24) != st->st_ino) {
		emit(m, COWMAP_MEV_NOTE, NULL, NULL, NULL, 0, NULL,
		     "intent file %s is for another file (device %u:%u inode %llu); remove it",
		     path, get_le32(buf + 16), get_le32(buf + 20),
		     (unsigned long long)get_le64(buf + 24));
		ret = -ESTALE;
		goto out;
	}
	new_size = get_le64(buf + 40);
	nruns = get_le64(buf + 48);
	if (hdr == INTENT_HDR)
		keep = get_le64(buf + 64);
	if (new_size > MAX_END) {
		ret = -EBADMSG;
		goto out;
	}
	/* Pass 1 checks everything, pass 2 writes. */
	for (int pass = 0; pass < 2 && !ret; pass++) {
		at = hdr;
		if (pass && keep != UINT64_MAX) {
			/* Version 2: the sizes first, as write_in_place() does. */
			struct stat now;

			ret = fstat(fd, &now) ? -errno :
			      set_sizes(fd, now.st_size, keep, new_size);
			if (ret)
				break;
		}
		for (uint64_t i = 0; i < nruns; i++) {
			uint64_t off, len, pre_len;
			const uint8_t *pre, *post;
			ssize_t got;

			if (at + 24 > size - 8) {
				ret = -EBADMSG;
				break;
			}
			off = get_le64(buf + at);
			len = get_le64(buf + at + 8);
			pre_len = get_le64(buf + at + 16);
			if (pre_len > len || len > size || at + 24 + pad8(pre_len + len) > size - 8) {
				ret = -EBADMSG;
				break;
			}
			pre = buf + at + 24;
			post = pre + pre_len;
			at += 24 + pad8(pre_len + len);
			if (pass) {
				ret = cm_pwrite_full(fd, post, len, off);
				if (ret)
					break;
				continue;
			}
			free(cur);
			cur = malloc(len);
			if (!cur) {
				ret = -ENOMEM;
				break;
			}
			got = cm_pread_full(fd, cur, pre_len, off);
			if (got < 0) {
				ret = got;
				break;
			}
			for (uint64_t k = 0; k < pre_len; k++) {
				if ((uint64_t)got > k && (cur[k] == pre[k] || cur[k] == post[k]))
					continue;
				emit(m, COWMAP_MEV_NOTE, NULL, NULL, NULL, 0, NULL,
				     "cannot complete the interrupted merge of %s: offset %llu changed since; intent file %s kept",
				     path, (unsigned long long)(off + k), path);
				ret = -ESTALE;
				break;
			}
			if (ret)
				break;
		}
	}
	if (ret)
		goto out;
	/* Version 1: the last run ends at new_size: the writes restored it. */
	if (!(flags & COWMAP_MERGER_NO_SYNC) && fsync(fd)) {
		ret = -errno;
		goto out;
	}
	emit(m, COWMAP_MEV_RECOVERED, NULL, NULL, NULL, 0, NULL,
	     "completed an interrupted in-place merge (%llu runs) from %s",
	     (unsigned long long)nruns, path);
	ret = 1;
remove:
	if (unlink(path) && errno != ENOENT && ret >= 0)
		ret = -errno;
	else if (!(flags & COWMAP_MERGER_NO_SYNC))
		cm_fsync_dir_of(path);
out:
	free(cur);
	free(buf);
	return ret;
}

/* --- writing ------------------------------------------------------------------ */

/*
 * Give @fd (now @cur bytes) the size the records leave, @size, with what
 * lies at and past @keep cut (zeros until the runs write it): a growth
 * first, so that a refused one (EFBIG) changes nothing, then the cut.
 */
static int set_sizes(int fd, uint64_t cur, uint64_t keep, uint64_t size)
{
	if (size > cur && ftruncate(fd, size))
		return -errno;
	if (keep < cur && keep < size) {
		if (ftruncate(fd, keep) || ftruncate(fd, size))
			return -errno;
	} else if (size < cur && ftruncate(fd, size)) {
		return -errno;
	}
	return 0;
}

/*
 * A size the file cannot take is refused before anything is written, as
 * the kernel merge refuses it (a growth past RLIMIT_FSIZE would otherwise
 * raise SIGXFSZ).
 */
static int size_ok(const struct ctx *c)
{
	struct rlimit rl;

	if (c->size <= c->orig_size)
		return 0;
	if (c->size > MAX_END)
		return -EFBIG;
	if (!getrlimit(RLIMIT_FSIZE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    c->size > rl.rlim_cur)
		return -EFBIG;
	return 0;
}

static int write_in_place(struct ctx *c, int fd, const char *intent,
			  const struct stat *st, unsigned int flags,
			  struct cowmap_merger_stats *s)
{
	int ret = intent_write(c, intent, st, flags);

	if (ret)
		return ret;
	stage(c->m, COWMAP_MSTAGE_INTENT_SYNCED, 0);
	if (c->size > c->orig_size && ftruncate(fd, c->size)) {
		/* Refused (the filesystem's limit): nothing was changed. */
		ret = -errno;
		unlink(intent);
		return ret;
	}
	ret = set_sizes(fd, c->size > c->orig_size ? c->size : c->orig_size,
			c->keep, c->size);
	if (ret)
		return ret;	/* the intent stays: a re-run completes */
	for (size_t i = 0; i < c->nruns; i++) {
		ret = cm_pwrite_full(fd, c->runs[i].post, c->runs[i].len, c->runs[i].off);
		if (ret)
			return ret;	/* the intent stays: a re-run completes */
		s->bytes_written += c->runs[i].len;
		stage(c->m, COWMAP_MSTAGE_RUN_WRITTEN, i);
	}
	if (!(flags & COWMAP_MERGER_NO_SYNC) && fsync(fd))
		return -errno;
	s->written = 1;
	if (unlink(intent))
		return -errno;
	if (!(flags & COWMAP_MERGER_NO_SYNC))
		ret = cm_fsync_dir_of(intent);
	return ret;
}

static int copy_file(int in, int out, uint64_t size)
{
	uint64_t done = 0;
	uint8_t *buf = NULL;
	const size_t bufsz = 1 << 16;
	int ret = 0;

	while (done < size) {
		loff_t a = done, b = done;
		ssize_t n = copy_file_range(in, &a, out, &b, size - done, 0);

		if (n > 0) {
			done += n;
			continue;
		}
		if (n == 0)
			return -EIO;	/* the source shrank */
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP && errno != EBADF)
			return -errno;
		/* No copy_file_range here: copy by hand. */
		buf = malloc(bufsz);
		if (!buf)
			return -ENOMEM;
		while (!ret && done < size) {
			size_t want = size - done < bufsz ? size - done : bufsz;
			ssize_t got = cm_pread_full(in, buf, want, done);

			if (got <= 0)
				ret = got < 0 ? (int)got : -EIO;
			else
				ret = cm_pwrite_full(out, buf, got, done);
			done += got > 0 ? got : 0;
		}
		free(buf);
		return ret;
	}
	return 0;
}

static int write_out(struct ctx *c, int fd, const char *out, const struct stat *st,
		     unsigned int flags, struct cowmap_merger_stats *s)
{
	char *tmp = cm_sibling(out, ".", ".cowmap-XXXXXX");
	int tfd, ret;

	if (!tmp)
		return -ENOMEM;
	tfd = mkostemp(tmp, O_CLOEXEC);
	if (tfd < 0) {
		ret = -errno;
		free(tmp);
		return ret;
	}
	ret = fchmod(tfd, st->st_mode & 07777) ? -errno : 0;
	if (!ret)
		ret = copy_file(fd, tfd, c->keep);
	if (!ret && c->size != c->keep && ftruncate(tfd, c->size))
		ret = -errno;
	for (size_t i = 0; !ret && i < c->nruns; i++) {
		ret = cm_pwrite_full(tfd, c->runs[i].post, c->runs[i].len, c->runs[i].off);
		s->bytes_written += c->runs[i].len;
	}
	if (!ret && !(flags & COWMAP_MERGER_NO_SYNC) && fsync(tfd))
		ret = -errno;
	if (close(tfd) && !ret)
		ret = -errno;
	if (!ret)
		stage(c->m, COWMAP_MSTAGE_TEMP_SYNCED, 0);
	if (!ret && rename(tmp, out))
		ret = -errno;
	if (ret) {
		unlink(tmp);
		s->bytes_written = 0;
	} else {
		s->written = 1;
		if (!(flags & COWMAP_MERGER_NO_SYNC))
			ret = cm_fsync_dir_of(out);
	}
	free(tmp);
	return ret;
}

/*
 * Filesystems whose locks another machine grants. There a blocked lock's
 * wait is the filesystem's: the NFSv4.1+ client resends a denied LOCK when
 * the server's CB_NOTIFY_LOCK comes or after 30 s, and nfsd of 6.12 sends
 * none for an ext4 or XFS export (docs/nfs.md, "Lock waits"). So there the
 * locks are tried without blocking and tried again after a backoff, like
 * the kernel merge does wherever the filesystem has its own ->lock.
 */
static int remote_locks(int fd)
{
	static const unsigned long magic[] = {
		NFS_SUPER_MAGIC, SMB_SUPER_MAGIC, CIFS_SUPER_MAGIC, SMB2_SUPER_MAGIC,
		CEPH_SUPER_MAGIC, OCFS2_SUPER_MAGIC, 0x01161970 /* GFS2 */,
		V9FS_MAGIC, AFS_FS_MAGIC, FUSE_SUPER_MAGIC,
	};
	struct statfs sf;
	size_t i;

	if (fstatfs(fd, &sf))
		return 0;
	for (i = 0; i < sizeof(magic) / sizeof(magic[0]); i++)
		if ((unsigned long)sf.f_type == magic[i])
			return 1;
	return 0;
}

/* The kernel merge's backoff (kmod/merge.c): 4 ms, doubling to 200 ms. */
#define LOCK_POLL_MIN_MS	4
#define LOCK_POLL_MAX_MS	200

static void lock_backoff(unsigned int *ms)
{
	struct timespec ts = { .tv_sec = *ms / 1000,
			       .tv_nsec = (long)(*ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);	/* a signal only shortens it */
	*ms = *ms * 2 > LOCK_POLL_MAX_MS ? LOCK_POLL_MAX_MS : *ms * 2;
}

static int lock_fd(int fd, int op)
{
	/* The kernel merge's lock, which NFS forwards to the server. */
	struct flock ofd = { .l_type = op == LOCK_EX ? F_WRLCK : F_RDLCK,
			     .l_whence = SEEK_SET };
	int poll = remote_locks(fd);
	unsigned int ms = LOCK_POLL_MIN_MS;

	while (flock(fd, op | (poll ? LOCK_NB : 0))) {
		if (poll && (errno == EWOULDBLOCK || errno == EAGAIN ||
			     errno == EACCES)) {
			lock_backoff(&ms);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL)
			break;	/* no locks here: go on without */
		return -errno;
	}
	ms = LOCK_POLL_MIN_MS;
	while (fcntl(fd, poll ? F_OFD_SETLK : F_OFD_SETLKW, &ofd)) {
		if (poll && (errno == EAGAIN || errno == EACCES)) {
			lock_backoff(&ms);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL)
			return 0;
		return -errno;
	}
	return 0;
}

API int cowmap_merger_run(struct cowmap_merger *m, const char *source, const char *out,
			 enum cowmap_merger_policy policy, unsigned int flags,
			 struct cowmap_merger_stats *stats)
{
	struct cowmap_merger_stats dummy, *s = stats ? stats : &dummy;
	int dry = flags & COWMAP_MERGER_DRY_RUN, writing = !out && !dry;
	struct ctx c = { .m = m };
	char *real = NULL, *intent = NULL;
	struct stat st;
	int fd, ret;

	memset(s, 0, sizeof(*s));
	s->logs = m->nlogs;
	s->records = m->nrecs;
	s->log_errors = m->log_errors;
	if (policy > COWMAP_POLICY_FORCE ||
	    flags & ~(COWMAP_MERGER_DRY_RUN | COWMAP_MERGER_SALVAGE |
		      COWMAP_MERGER_ANY_IDENTITY | COWMAP_MERGER_NO_SYNC))
		return -EINVAL;

	fd = open(source, (writing ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	ret = lock_fd(fd, writing ? LOCK_EX : LOCK_SH);
	if (ret)
		goto out;

	real = realpath(source, NULL);
	intent = real ? cm_sibling(real, ".", ".cowmap-intent") : NULL;
	if (!intent) {
		ret = real ? -ENOMEM : -errno;
		goto out;
	}
	if (!access(intent, F_OK)) {
		if (writing) {
			ret = intent_replay(m, intent, fd, &st, flags);
			if (ret < 0)
				goto out;
			s->recovered = ret;
			if (fstat(fd, &st)) {
				ret = -errno;
				goto out;
			}
		} else if (out) {
			emit(m, COWMAP_MEV_NOTE, NULL, NULL, NULL, 0, NULL,
			     "%s has an unfinished in-place merge (%s): complete it with an in-place merge first",
			     source, intent);
			ret = -EUCLEAN;
			goto out;
		} else {
			emit(m, COWMAP_MEV_NOTE, NULL, NULL, NULL, 0, NULL,
			     "%s has an unfinished in-place merge (%s); a real run completes it first",
			     source, intent);
		}
	}

	ret = 0;
	if (!(flags & COWMAP_MERGER_ANY_IDENTITY)) {
		for (size_t i = 0; i < m->nlogs; i++) {
			struct mlog *l = &m->logs[i];

			if (l->from_dir || cm_log_of_file(&l->info, fd, source, &st))
				continue;
			emit(m, COWMAP_MEV_LOG_ERROR, l->path, NULL, NULL, 0, NULL,
			     "a log of device %u:%u inode %llu%s, but %s is device %u:%u inode %llu%s",
			     l->info.dev_major, l->info.dev_minor,
			     (unsigned long long)l->info.ino,
			     cm_log_file_id(&l->info) ? " with a file id" : "",
			     source, major(st.st_dev), minor(st.st_dev),
			     (unsigned long long)st.st_ino,
			     cm_log_file_id(&l->info) ? " without that id" : "");
			ret = -EXDEV;
		}
		if (ret)
			goto out;
	}
	if (m->log_errors && !(flags & COWMAP_MERGER_SALVAGE)) {
		ret = -EBADMSG;
		goto out;
	}

	c.orig_size = c.size = c.min_size = st.st_size;
	c.fd = fd;
	c.ord = malloc(m->nrecs * sizeof(*c.ord) + 1);
	if (!c.ord) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m->nrecs; i++)
		c.ord[i] = &m->recs[i];
	/* A clock stepped back between two commits must not reorder a session. */
	qsort(c.ord, m->nrecs, sizeof(*c.ord), cmp_session_seq);
	for (size_t i = 0; i < m->nrecs; i++) {
		struct mrec *r = c.ord[i], *p = i ? c.ord[i - 1] : NULL;

		r->time = r->r.time_ns;
		if (p && p->r.session_id == r->r.session_id && p->time > r->time)
			r->time = p->time;
	}
	qsort(c.ord, m->nrecs, sizeof(*c.ord), cmp_merge_order);
	ret = build_extents(&c, fd);
	if (ret)
		goto out;
	c.orig_size = c.min_size = c.size;	/* as read */

	ret = simulate(&c, policy, s);
	if (!ret)
		ret = build_runs(&c);
	if (ret)
		goto out;
	if (dry || (policy == COWMAP_POLICY_ALL_OR_NOTHING && s->conflicts))
		goto done;
	ret = size_ok(&c);
	if (ret)
		goto out;
	if (out)
		ret = write_out(&c, fd, out, &st, flags, s);
	else if (c.nruns || c.size != c.orig_size || c.keep < c.orig_size)
		ret = write_in_place(&c, fd, intent, &st, flags, s);
	if (ret)
		goto out;
	stage(m, COWMAP_MSTAGE_DONE, 0);
done:
	ret = s->conflicts - s->forced > INT32_MAX ? INT32_MAX :
	      (int)(s->conflicts - s->forced);
out:
	ctx_free(&c);
	free(real);
	free(intent);
	close(fd);
	return ret;
}

/* Changed in 0.2.0: the LIBCOWMAP_0 versions are in compat.c. */
CM_VERSION_1(cowmap_merger_run);
