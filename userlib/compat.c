// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/*
 * The LIBCOWMAP_0 versions of the functions whose structs grew in 0.2.0
 * (docs/install.md, "Library ABI"). A program built against 0.1.0's
 * header allocated the 0.1.0 layouts below and was linked to NAME@LIBCOWMAP_0:
 * these functions convert between those layouts and the current ones, so
 * that the library never writes or reads past what such a program
 * allocated. Programs built now link NAME@@LIBCOWMAP_1, the current
 * functions.
 *
 * A size record (journal format 2, new in 0.2.0) has no 0.1.0 form: the
 * LIBCOWMAP_0 readers report it as a record with flags they do not know
 * (-EBADMSG, COWMAP_LOGERR_REC_FLAGS, reading goes on after it), which is
 * what 0.1.0 said of any record with flags.
 *
 * Only libcowmap.so exports these (libcowmap.a users are always built
 * against the header they link with).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* cm_compat0_NAME is exported as NAME@LIBCOWMAP_0 (.symver: gcc and clang). */
#define COMPAT0(name) __asm__(".symver cm_compat0_" #name ", cowmap_" #name "@LIBCOWMAP_0")

/* 0.1.0's struct cowmap_rec: the current one up to @pos. */
struct rec0 {
	uint64_t seq;
	uint64_t session_id;
	uint64_t offset;
	uint32_t length;
	uint32_t flags;
	uint64_t time_ns;
	uint32_t pid;
	uint32_t uid;
	const uint8_t *old_bytes;
	const uint8_t *new_bytes;
	uint64_t pos;
};

/* 0.1.0's struct cowmap_log_info: the current one up to @flags. */
struct info0 {
	uint32_t version;
	uint32_t header_size;
	uint64_t session_id;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t ino;
	uint64_t size_at_attach;
	uint64_t created_ns;
	uint32_t flags;
};

/* 0.1.0's struct cowmap_log_error: the current one up to @resume. */
struct err0 {
	enum cowmap_log_err_kind kind;
	int err;
	uint64_t offset;
	uint64_t resume;
};

/* 0.1.0's struct cowmap_merger_stats: the current one up to @recovered. */
struct stats0 {
	uint64_t logs;
	uint64_t records;
	uint64_t applied;
	uint64_t already;
	uint64_t conflicts;
	uint64_t forced;
	uint64_t log_errors;
	int written;
	uint64_t bytes_written;
	int recovered;
};

/* 0.1.0's struct cowmap_nl_session: the current one up to @journal_path. */
struct nl_session0 {
	uint64_t session_id;
	uint32_t state;
	uint32_t owner_pid;
	uint32_t owner_uid;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t ino;
	uint64_t size;
	uint64_t private_pages;
	uint64_t twin_pages;
	uint64_t records;
	uint64_t journal_bytes;
	uint64_t merged;
	const char *path;
	const char *journal_path;
};

/* 0.1.0's struct cowmap_nl_event: the current one up to @present. */
struct nl_event0 {
	uint32_t event;
	uint32_t owner_uid;
	uint64_t session_id;
	uint64_t records;
	uint64_t journal_bytes;
	uint64_t applied;
	uint64_t already;
	uint64_t conflicts;
	uint64_t limit_hits;
	uint32_t present;
};

/* Each old layout is a prefix of the current one: copying it is enough. */
#define PREFIX(old, cur, last) \
	_Static_assert(offsetof(struct old, last) == offsetof(struct cur, last) && \
		       sizeof(struct old) <= sizeof(struct cur), #old " is a prefix of " #cur)
PREFIX(rec0, cowmap_rec, pos);
PREFIX(info0, cowmap_log_info, flags);
PREFIX(err0, cowmap_log_error, resume);
PREFIX(stats0, cowmap_merger_stats, recovered);
PREFIX(nl_session0, cowmap_nl_session, journal_path);
PREFIX(nl_event0, cowmap_nl_event, present);

/*
 * The LIBCOWMAP_1 layouts (LP64): a new member takes a reserved slot, it
 * does not grow the struct (docs/install.md, "Library ABI").
 */
#if __SIZEOF_POINTER__ == 8 && __SIZEOF_LONG__ == 8
#define SIZE1(s, n) _Static_assert(sizeof(struct s) == (n), \
	"struct " #s " changed size: take a reserved field (docs/install.md)")
SIZE1(cowmap_rec, 128);
SIZE1(cowmap_log_info, 88);
SIZE1(cowmap_log_error, 40);
SIZE1(cowmap_merger_stats, 128);
SIZE1(cowmap_nl_session, 240);
SIZE1(cowmap_nl_event, 104);
#endif

static void info_from0(struct cowmap_log_info *info, const struct info0 *i0)
{
	memset(info, 0, sizeof(*info));
	memcpy(info, i0, sizeof(*i0));
}

static void rec_from0(struct cowmap_rec *rec, const struct rec0 *r0)
{
	memset(rec, 0, sizeof(*rec));
	memcpy(rec, r0, sizeof(*r0));
}

static void err_to0(struct err0 *e0, const struct cowmap_log_error *e)
{
	if (e0)
		memcpy(e0, e, sizeof(*e0));
}

/*
 * A record read by the current reader (@ret its return value), for a
 * LIBCOWMAP_0 caller: a size record is an unknown-flags record.
 */
static int rec_to0(int ret, const struct cowmap_rec *rec, struct cowmap_log_error *e,
		   struct rec0 *r0, struct err0 *e0)
{
	if (ret == 1 && rec->flags & COWMAP_REC_SIZE) {
		memset(e, 0, sizeof(*e));
		e->kind = COWMAP_LOGERR_REC_FLAGS;
		e->err = -EBADMSG;
		e->offset = rec->pos;
		e->resume = rec->pos + SIZE_REC;
		ret = -EBADMSG;
	} else if (ret == 1) {
		memcpy(r0, rec, sizeof(*r0));
	}
	err_to0(e0, e);
	return ret;
}

COMPAT0(log_open);
API int cm_compat0_log_open(const char *path, struct cowmap_log **log, struct err0 *e0)
{
	struct cowmap_log_error e;
	int ret = cowmap_log_open(path, log, &e);

	err_to0(e0, &e);
	return ret;
}

COMPAT0(log_open_mem);
API int cm_compat0_log_open_mem(const void *buf, size_t len, struct cowmap_log **log,
			    struct err0 *e0)
{
	struct cowmap_log_error e;
	int ret = cowmap_log_open_mem(buf, len, log, &e);

	err_to0(e0, &e);
	return ret;
}

COMPAT0(log_next);
API int cm_compat0_log_next(struct cowmap_log *log, struct rec0 *r0, struct err0 *e0)
{
	struct cowmap_log_error e;
	struct cowmap_rec rec;

	return rec_to0(cowmap_log_next(log, &rec, &e), &rec, &e, r0, e0);
}

COMPAT0(dump_next);
API int cm_compat0_dump_next(struct cowmap_dump_iter *it, struct rec0 *r0, struct err0 *e0)
{
	struct cowmap_log_error e;
	struct cowmap_rec rec;

	return rec_to0(cowmap_dump_next(it, &rec, &e), &rec, &e, r0, e0);
}

COMPAT0(log_writer_open);
API int cm_compat0_log_writer_open(const char *path, const struct info0 *i0,
			       unsigned int flags, struct cowmap_log_writer **w)
{
	struct cowmap_log_info info;

	info_from0(&info, i0);
	return cowmap_log_writer_open(path, &info, flags, w);
}

COMPAT0(log_writer_fd);
API int cm_compat0_log_writer_fd(int fd, const struct info0 *i0, struct cowmap_log_writer **w)
{
	struct cowmap_log_info info;

	info_from0(&info, i0);
	return cowmap_log_writer_fd(fd, &info, w);
}

COMPAT0(log_encode_header);
API void cm_compat0_log_encode_header(const struct info0 *i0, void *out)
{
	struct cowmap_log_info info;

	info_from0(&info, i0);
	cowmap_log_encode_header(&info, out);
}

COMPAT0(log_encode_record);
API int cm_compat0_log_encode_record(const struct rec0 *r0, void *out)
{
	struct cowmap_rec rec;

	rec_from0(&rec, r0);
	return cowmap_log_encode_record(&rec, out);
}

COMPAT0(log_append);
API int cm_compat0_log_append(struct cowmap_log_writer *w, const struct rec0 *r0)
{
	struct cowmap_rec rec;

	rec_from0(&rec, r0);
	return cowmap_log_append(w, &rec);
}

COMPAT0(merger_run);
API int cm_compat0_merger_run(struct cowmap_merger *m, const char *source, const char *out,
			  enum cowmap_merger_policy policy, unsigned int flags,
			  struct stats0 *s0)
{
	struct cowmap_merger_stats s;
	int ret = cowmap_merger_run(m, source, out, policy, flags, &s);

	if (s0)
		memcpy(s0, &s, sizeof(*s0));
	return ret;
}

COMPAT0(nl_session_get);
API int cm_compat0_nl_session_get(struct cowmap_nl *nl, uint64_t session_id,
			      struct nl_session0 *s0)
{
	struct cowmap_nl_session s;
	int ret = cowmap_nl_session_get(nl, session_id, &s);

	if (!ret)
		memcpy(s0, &s, sizeof(*s0));
	return ret;
}

COMPAT0(nl_event_next);
API int cm_compat0_nl_event_next(struct cowmap_nl *nl, struct nl_event0 *ev0, int timeout_ms)
{
	struct cowmap_nl_event ev;
	int ret = cowmap_nl_event_next(nl, &ev, timeout_ms);

	if (ret == 1)
		memcpy(ev0, &ev, sizeof(*ev0));
	return ret;
}
