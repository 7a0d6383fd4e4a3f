// SPDX-License-Identifier: GPL-2.0
/*
 * JSON output, written with json-c (docs/cowmapctl.md, "JSON"):
 *
 * - strings: valid UTF-8 is passed through as it is (json-c escapes only
 *   '"', '\\' and the control characters); each byte that is not part of
 *   a valid UTF-8 sequence becomes U+FFFD, and the member is followed by
 *   KEY_hex with the exact bytes. Byte data (journal records, conflicts)
 *   always has its KEY_hex member.
 * - identifiers, nanoseconds and offsets, 64 bits wide: a number, and
 *   KEY_str with the same value as a decimal string (JavaScript and jq
 *   lose integers above 2^53).
 * - an error while --json is in effect: an "error" member {"message",
 *   "exit"} in the command's object, or, if the command printed none, an
 *   object {"error":{...}} of its own (jerror_flush(), from main()).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "cowmapctl.h"

int json_out;
static int json_printed;
static char json_error[512];

/* The length of the valid UTF-8 sequence at @p (at most @n bytes), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	size_t len;
	uint32_t cp, min;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f, min = 0x80;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f, min = 0x800;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* No overlong forms, no surrogates, nothing above U+10FFFF. */
	if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * @p as a JSON string: valid UTF-8 as it is, U+FFFD for each other byte.
 * *@lossy: whether any byte was replaced.
 */
static struct json_object *jstring(const uint8_t *p, size_t len, int *lossy)
{
	struct json_object *s;
	size_t n = 0, k;
	char *buf;

	*lossy = 0;
	buf = malloc(len * 3 + 1);
	if (!buf)
		return NULL;
	for (size_t i = 0; i < len; i += k) {
		k = utf8_seq(p + i, len - i);
		if (k) {
			memcpy(buf + n, p + i, k);
			n += k;
		} else {
			memcpy(buf + n, "\xef\xbf\xbd", 3);
			n += 3;
			*lossy = 1;
			k = 1;
		}
	}
	s = json_object_new_string_len(buf, n);
	free(buf);
	return s;
}

static void jadd(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add(o, key, v);
}

static void jput_hex(struct json_object *o, const char *key, const uint8_t *p, size_t len)
{
	char k[64], *hex = malloc(len * 2 + 1);

	snprintf(k, sizeof(k), "%s_hex", key);
	if (!hex) {
		jadd(o, k, NULL);
		return;
	}
	for (size_t i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", p[i]);
	hex[2 * len] = '\0';
	jadd(o, k, json_object_new_string_len(hex, len * 2));
	free(hex);
}

/* json-c's constructors fail only without memory: say so and exit. */
static struct json_object *jalloc(struct json_object *o)
{
	if (!o) {
		fputs("cowmapctl: out of memory\n", stderr);
		exit(EX_ERR);
	}
	return o;
}

struct json_object *jobj(void)
{
	return jalloc(json_object_new_object());
}

struct json_object *jarr(void)
{
	return jalloc(json_object_new_array());
}

void jappend(struct json_object *a, struct json_object *v)
{
	json_object_array_add(a, v);
}

void jput(struct json_object *o, const char *key, struct json_object *v)
{
	jadd(o, key, v);
}

void jput_str(struct json_object *o, const char *key, const char *s)
{
	int lossy;

	if (!s) {
		jadd(o, key, NULL);
		return;
	}
	jadd(o, key, jstring((const uint8_t *)s, strlen(s), &lossy));
	if (lossy)
		jput_hex(o, key, (const uint8_t *)s, strlen(s));
}

void jput_bytes(struct json_object *o, const char *key, const uint8_t *p, size_t len)
{
	int lossy;

	jadd(o, key, jstring(p, len, &lossy));
	jput_hex(o, key, p, len);
}

void jput_u64(struct json_object *o, const char *key, uint64_t v)
{
	jadd(o, key, json_object_new_uint64(v));
}

void jput_id(struct json_object *o, const char *key, uint64_t v)
{
	char k[64], s[24];

	jadd(o, key, json_object_new_uint64(v));
	snprintf(k, sizeof(k), "%s_str", key);
	snprintf(s, sizeof(s), "%" PRIu64, v);
	jadd(o, k, json_object_new_string(s));
}

void jput_int(struct json_object *o, const char *key, int64_t v)
{
	jadd(o, key, json_object_new_int64(v));
}

void jput_bool(struct json_object *o, const char *key, int v)
{
	jadd(o, key, json_object_new_boolean(!!v));
}

const char *jtext(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
}

void jprint(struct json_object *o)
{
	fputs(jtext(o), stdout);
	putchar('\n');
	json_object_put(o);
	json_printed = 1;
}

void jfree(struct json_object *o)
{
	json_object_put(o);
}

void jerror_note(const char *fmt, va_list ap)
{
	if (!json_out || json_error[0])
		return;
	vsnprintf(json_error, sizeof(json_error), fmt, ap);
}

void jerror(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	jerror_note(fmt, ap);
	va_end(ap);
}

void jput_error(struct json_object *o, int status)
{
	struct json_object *e = jobj();

	jput_str(e, "message", json_error[0] ? json_error : "failed");
	jput_int(e, "exit", status);
	jadd(o, "error", e);
}

void jdone(void)
{
	json_printed = 1;
}

void jerror_flush(int status)
{
	struct json_object *o;

	if (!json_out || json_printed || status == EX_OK)
		return;
	o = jobj();
	jput_error(o, status);
	jprint(o);
}
