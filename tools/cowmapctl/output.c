// SPDX-License-Identifier: GPL-2.0
/*
 * Text and JSON formatting shared by the commands.
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

/* A JSON string of raw bytes: bytes outside printable ASCII as \u00XX. */
void put_json_bytes(FILE *f, const uint8_t *p, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], f);
		else
			fprintf(f, "\\u%04x", p[i]);
	}
	fputc('"', f);
}

void put_json_str(FILE *f, const char *s)
{
	if (!s)
		fputs("null", f);
	else
		put_json_bytes(f, (const uint8_t *)s, strlen(s));
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
void put_session_json(const struct cowmap_nl_session *s)
{
	printf("{\"session_id\":%" PRIu64 ",\"state\":\"%s\",\"owner_pid\":%u,"
	       "\"owner_uid\":%u,\"dev_major\":%u,\"dev_minor\":%u,\"ino\":%" PRIu64
	       ",\"size\":%" PRIu64 ",\"private_pages\":%" PRIu64 ",\"twin_pages\":%" PRIu64
	       ",\"journal_records\":%" PRIu64 ",\"journal_bytes\":%" PRIu64
	       ",\"merged_records\":%" PRIu64 ",\"path\":", s->session_id,
	       state_name(s->state), s->owner_pid, s->owner_uid, s->dev_major,
	       s->dev_minor, s->ino, s->size, s->private_pages, s->twin_pages,
	       s->records, s->journal_bytes, s->merged);
	put_json_str(stdout, s->path);
	printf(",\"journal_path\":");
	put_json_str(stdout, s->journal_path);
	printf("}");
}
