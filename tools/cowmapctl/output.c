// SPDX-License-Identifier: GPL-2.0
/*
 * Text formatting shared by the commands, the JSON of a session, and the
 * table writer of list (-o COLUMNS, --raw, --noheadings).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cowmapctl.h"

/* Print @len bytes as a C-like string body: \", \\, \xNN for the rest. */
void put_escaped(FILE *f, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
}

void put_hex(FILE *f, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", p[i]);
}

void put_time(FILE *f, uint64_t ns)
{
	time_t t = ns / 1000000000ULL;
	struct tm tm;
	char buf[64];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "%s.%09" PRIu64 "Z", buf, (uint64_t)(ns % 1000000000ULL));
}

const char *state_name(uint32_t s)
{
	switch (s) {
	case COWMAP_STATE_NEW: return "new";
	case COWMAP_STATE_ATTACHED: return "attached";
	case COWMAP_STATE_ORPHANED: return "orphaned";
	}
	return "unknown";
}

/* The JSON object of a session (the names of struct cowmap_status where it has them). */
struct json_object *session_json(const struct cowmap_nl_session *s)
{
	struct json_object *o = jobj();

	jput_id(o, "session_id", s->session_id);
	jput_str(o, "state", state_name(s->state));
	jput_u64(o, "owner_pid", s->owner_pid);
	jput_u64(o, "owner_uid", s->owner_uid);
	jput_u64(o, "dev_major", s->dev_major);
	jput_u64(o, "dev_minor", s->dev_minor);
	jput_id(o, "ino", s->ino);
	jput_id(o, "size", s->size);
	if (s->has_session_size)
		jput_id(o, "session_size", s->session_size);
	jput_u64(o, "private_pages", s->private_pages);
	jput_u64(o, "twin_pages", s->twin_pages);
	jput_u64(o, "journal_records", s->records);
	jput_u64(o, "journal_bytes", s->journal_bytes);
	jput_u64(o, "merged_records", s->merged);
	jput_str(o, "path", s->path);
	jput_str(o, "journal_path", s->journal_path);
	return o;
}

/* Into @o: the members of a journal record that say which it is (dump, merge). */
void rec_json(struct json_object *o, const struct cowmap_rec *r)
{
	jput_id(o, "session_id", r->session_id);
	jput_id(o, "seq", r->seq);
	jput_id(o, "offset", r->offset);
	jput_u64(o, "length", r->length);
	jput_id(o, "time_ns", r->time_ns);
	if (r->flags & COWMAP_REC_SIZE) {
		/* A size record (journal format 2): struct cowmap_log_size. */
		jput_id(o, "old_size", r->old_size);
		jput_id(o, "new_size", r->new_size);
		jput_u64(o, "cut_crc", r->cut_crc);
	}
}

/* --- tables (list): -o COLUMNS, --raw, --noheadings, the util-linux way ---- */

struct table {
	int raw, noheadings;
	size_t ncols, nrows, cap;
	const struct tcol *cols[TABLE_MAX_COLS];
	size_t width[TABLE_MAX_COLS];
	char **cells;		/* nrows * ncols */
	char **notes;		/* a line after the row (--stats), or NULL */
};

struct table *table_new(int raw, int noheadings)
{
	struct table *t = calloc(1, sizeof(*t));

	if (!t) {
		fputs("cowmapctl: out of memory\n", stderr);
		exit(EX_ERR);
	}
	t->raw = raw;
	t->noheadings = noheadings;
	return t;
}

/* The display width of UTF-8 text: its code points (no wide characters in names we make). */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

void table_add_col(struct table *t, const struct tcol *c)
{
	if (t->ncols < TABLE_MAX_COLS) {
		t->cols[t->ncols] = c;
		t->width[t->ncols] = t->noheadings || t->raw ? 0 : text_width(c->name);
		if (!t->raw && t->width[t->ncols] < c->min_width)
			t->width[t->ncols] = c->min_width;
		t->ncols++;
	}
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fputs("cowmapctl: out of memory\n", stderr);
		exit(EX_ERR);
	}
	return p;
}

/*
 * @s as a cell: control characters (and, --raw, space and backslash, which
 * separate and escape there) as \xNN; UTF-8 as it is.
 */
static char *cell_text(const struct table *t, const char *s)
{
	char *out = xrealloc(NULL, strlen(s) * 4 + 1), *o = out;

	for (; *s; s++) {
		unsigned char c = *s;

		if (c < 0x20 || c == 0x7f || (t->raw && (c == ' ' || c == '\\')))
			o += sprintf(o, "\\x%02x", c);
		else
			*o++ = c;
	}
	*o = '\0';
	return out;
}

void table_row(struct table *t)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(*t->cells));
		t->notes = xrealloc(t->notes, t->cap * sizeof(*t->notes));
	}
	memset(t->cells + t->nrows * t->ncols, 0, t->ncols * sizeof(*t->cells));
	t->notes[t->nrows] = NULL;
	t->nrows++;
}

/* Cell @col of the last row: @s (NULL: "-"). */
void table_set(struct table *t, size_t col, const char *s)
{
	char **cell = &t->cells[(t->nrows - 1) * t->ncols + col];
	size_t w;

	free(*cell);
	*cell = cell_text(t, s ? s : "-");
	w = text_width(*cell);
	if (w > t->width[col])
		t->width[col] = w;
}

void table_note(struct table *t, const char *line)
{
	free(t->notes[t->nrows - 1]);
	t->notes[t->nrows - 1] = xrealloc(NULL, strlen(line) + 1);
	strcpy(t->notes[t->nrows - 1], line);
}

static void put_cell(const struct table *t, size_t col, const char *s)
{
	size_t pad = t->width[col] - text_width(s);
	int last = col + 1 == t->ncols;

	if (col)
		putchar(' ');
	if (t->raw || (last && !(t->cols[col]->flags & TCOL_RIGHT))) {
		fputs(s, stdout);
		return;
	}
	if (t->cols[col]->flags & TCOL_RIGHT)
		printf("%*s%s", (int)pad, "", s);
	else
		printf("%s%*s", s, (int)pad, "");
}

void table_print(struct table *t)
{
	if (!t->noheadings) {
		for (size_t c = 0; c < t->ncols; c++)
			put_cell(t, c, t->cols[c]->name);
		putchar('\n');
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];

			put_cell(t, c, s ? s : "-");
		}
		putchar('\n');
		if (t->notes[r] && !t->raw)
			puts(t->notes[r]);
	}
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	for (size_t r = 0; r < t->nrows; r++)
		free(t->notes[r]);
	free(t->cells);
	free(t->notes);
	free(t);
}

/*
 * -o COLUMNS: names from @cols (case does not matter), separated by
 * commas; "+A,B" is the @ndefault default columns followed by A and B.
 * Fills @out (at most TABLE_MAX_COLS); the count, or -1 after a usage error.
 */
int table_parse_cols(const char *spec, const struct tcol *cols, size_t ncols,
		     size_t ndefault, const struct tcol **out)
{
	char *copy, *tok, *save = NULL;
	size_t n = 0;

	if (*spec == '+') {
		for (; n < ndefault; n++)
			out[n] = &cols[n];
		spec++;
	}
	copy = xrealloc(NULL, strlen(spec) + 1);
	strcpy(copy, spec);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < ncols && strcasecmp(tok, cols[i].name); i++)
			;
		if (i == ncols) {
			usage_err("unknown column '%s'", tok);
			free(copy);
			return -1;
		}
		if (n == TABLE_MAX_COLS) {
			usage_err("too many columns");
			free(copy);
			return -1;
		}
		out[n++] = &cols[i];
	}
	free(copy);
	if (!n)
		usage_err("-o: no columns");
	return n ? (int)n : -1;
}
