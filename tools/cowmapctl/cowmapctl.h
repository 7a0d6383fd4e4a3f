/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cowmapctl's private header: what the command files (one per command,
 * like iproute2's ip/ and ethtool's netlink/) share. See docs/cowmapctl.md.
 *
 *   main.c          the dispatcher and the top-level help
 *   errors.c        messages on stderr; the module, netlink and adopt errors
 *   options.c       argument parsing shared by the commands
 *   output.c        text formatting, the JSON of a session, tables (list)
 *   COMMAND.c       one command each (merge: merge.c offline,
 *                   merge_kernel.c the kernel merge)
 *
 * Exit codes: 0 success, 1 error, 2 usage, 3 conflicts (merge).
 */
#ifndef COWMAPCTL_H
#define COWMAPCTL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "libcowmap.h"

#define EX_OK		0
#define EX_ERR		1
#define EX_USAGE	2
#define EX_CONFLICT	3

#define MODULE_HINT	" (is the cowmap module loaded? try 'modprobe cowmap')"

/* main.c: the command being run, for messages ("cowmapctl" before one is). */
extern const char *cmd;

/* errors.c */
void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fail(const char *what, int e);
struct cowmap_nl *nl_open_or_fail(void);
int nl_fail(struct cowmap_nl *nl, const char *what, int e);
int dev_open_or_fail(void);
int adopt_or_fail(uint64_t id);

/* options.c */
ssize_t unescape(const char *s, uint8_t *out);
int parse_u64(const char *s, uint64_t *v);
int parse_id(const char *s, uint64_t *id);
int want_help(int argc, char **argv, const char *help);
int bad_option(int c, char **argv);
int once(const char **dst, const char *name, const char *value);
int session_arg(const char *opt, int argc, char **argv, int optional, uint64_t *id);
int id_arg(int argc, char **argv, const char *help, int *use_ioctl, uint64_t *id);

/* output.c */
void put_escaped(FILE *f, const uint8_t *p, size_t len);
void put_hex(FILE *f, const uint8_t *p, size_t len);
void put_time(FILE *f, uint64_t ns);
const char *state_name(uint32_t s);
struct json_object *session_json(const struct cowmap_nl_session *s);
void rec_json(struct json_object *o, const struct cowmap_rec *r);

/*
 * output.c: tables the util-linux way. A column has a name (-o, the
 * heading), TCOL_RIGHT for numbers, and a minimum width. Rows are kept
 * until table_print(), which pads every column to its widest cell (--raw:
 * one space between cells, no padding, spaces and control characters
 * escaped as \xNN; --noheadings: no heading line).
 */
#define TABLE_MAX_COLS	32
#define TCOL_RIGHT	0x1

struct tcol {
	const char *name;
	unsigned int flags;
	size_t min_width;
	const char *help;
};

struct table;
struct table *table_new(int raw, int noheadings);
void table_add_col(struct table *t, const struct tcol *c);
void table_row(struct table *t);
void table_set(struct table *t, size_t col, const char *s);
void table_note(struct table *t, const char *line);
void table_print(struct table *t);
void table_free(struct table *t);
int table_parse_cols(const char *spec, const struct tcol *cols, size_t ncols,
		     size_t ndefault, const struct tcol **out);

/*
 * json.c: JSON output (json-c). jput_*() add a member to an object:
 * _str a string (NULL: null; invalid UTF-8: U+FFFD and KEY_hex), _bytes
 * data (and always KEY_hex), _id a 64-bit identifier, time or offset (and
 * KEY_str), _u64 and _int a count, _bool. jprint() prints an object as
 * one line and frees it; jtext() is its text (for streamed documents,
 * which call jdone() when they are complete).
 */
struct json_object;
extern int json_out;		/* --json (or the global -j) is in effect */
struct json_object *jobj(void);
struct json_object *jarr(void);
void jappend(struct json_object *a, struct json_object *v);
void jput(struct json_object *o, const char *key, struct json_object *v);
void jput_str(struct json_object *o, const char *key, const char *s);
void jput_bytes(struct json_object *o, const char *key, const uint8_t *p, size_t len);
void jput_id(struct json_object *o, const char *key, uint64_t v);
void jput_u64(struct json_object *o, const char *key, uint64_t v);
void jput_int(struct json_object *o, const char *key, int64_t v);
void jput_bool(struct json_object *o, const char *key, int v);
const char *jtext(struct json_object *o);
void jprint(struct json_object *o);
void jfree(struct json_object *o);
void jdone(void);
/* The first error message (err(), usage_err()) while json_out is set. */
void jerror_note(const char *fmt, va_list ap);
/* The same, for an error that has no message of its own on stderr. */
void jerror(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Add "error":{"message","exit":@status} to @o. */
void jput_error(struct json_object *o, int status);
/* main(): a failed command that printed no JSON prints {"error":{...}}. */
void jerror_flush(int status);

/* merge_kernel.c: adopt the orphan, COWMAP_IOC_MERGE into a file, close. */
struct kmerge {
	uint64_t id;
	const char *into;
	unsigned int flags;
	int trim, skip, force;
};

int kernel_merge(struct kmerge *km);

/* The commands: argv[0] is the command's name. */
int cmd_map(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_discard(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_trim(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
