// SPDX-License-Identifier: GPL-2.0
/*
 * Text formatting shared by the commands, and the JSON of a session.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
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
