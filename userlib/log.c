// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/*
 * The journal format (docs/journal-format.md): parsing, the log reader with
 * per-record checks and resynchronisation, and the log writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "internal.h"

API const char *cowmap_version(void)
{
	return COWMAP_VERSION;
}

API const char *cowmap_log_strerror(enum cowmap_log_err_kind kind)
{
	switch (kind) {
	case COWMAP_LOGERR_NONE:	return "no error";
	case COWMAP_LOGERR_IO:		return "read error";
	case COWMAP_LOGERR_SHORT_HEADER: return "truncated header";
	case COWMAP_LOGERR_BAD_MAGIC:	return "not a cowmap log (bad magic)";
	case COWMAP_LOGERR_BAD_VERSION:	return "unsupported log version";
	case COWMAP_LOGERR_HEADER_CRC:	return "header CRC mismatch";
	case COWMAP_LOGERR_BAD_HEADER:	return "invalid header (size or flags)";
	case COWMAP_LOGERR_REC_MAGIC:	return "bad record magic";
	case COWMAP_LOGERR_REC_SIZE:	return "bad record size or length";
	case COWMAP_LOGERR_REC_CRC:	return "record CRC mismatch";
	case COWMAP_LOGERR_REC_FLAGS:	return "unknown record flags";
	case COWMAP_LOGERR_TRUNCATED:	return "truncated tail (incomplete last record)";
	}
	return "unknown error";
}

int cm_errno_of(enum cowmap_log_err_kind kind)
{
	switch (kind) {
	case COWMAP_LOGERR_NONE:	return 0;
	case COWMAP_LOGERR_IO:		return -EIO;
	case COWMAP_LOGERR_BAD_VERSION:	return -EPROTONOSUPPORT;
	case COWMAP_LOGERR_TRUNCATED:	return -ENODATA;
	default:			return -EBADMSG;
	}
}

/* --- parsing ---------------------------------------------------------- */

enum cowmap_log_err_kind cm_parse_header(const uint8_t *p, size_t avail,
					 struct cowmap_log_info *info)
{
	uint32_t hsize;
	int crc_ok;

	if (avail >= 8 && memcmp(p, COWMAP_LOG_MAGIC, 8))
		return COWMAP_LOGERR_BAD_MAGIC;
	if (avail < HDR_SIZE)
		return avail < 8 && memcmp(p, COWMAP_LOG_MAGIC, avail) ?
		       COWMAP_LOGERR_BAD_MAGIC : COWMAP_LOGERR_SHORT_HEADER;
	hsize = get_le32(p + 12);
	memset(info, 0, sizeof(*info));
	info->version = get_le32(p + 8);
	info->header_size = hsize;
	info->session_id = get_le64(p + 16);
	info->dev_major = get_le32(p + 24);
	info->dev_minor = get_le32(p + 28);
	info->ino = get_le64(p + 32);
	info->size_at_attach = get_le64(p + 40);
	info->created_ns = get_le64(p + 48);
	info->flags = get_le32(p + 56);

	/*
	 * The CRC covers header_size bytes; a header_size we cannot use
	 * means we can only check the 64 we know.
	 */
	if (hsize >= HDR_SIZE && hsize <= HDR_MAX && !(hsize % 8) && hsize <= avail)
		crc_ok = cm_crc_skip(p, hsize, 60) == get_le32(p + 60);
	else
		crc_ok = cm_crc_skip(p, HDR_SIZE, 60) == get_le32(p + 60);
	/* Version 1 (byte records) and 2 (also size records). */
	if (info->version != COWMAP_LOG_VERSION_1 &&
	    info->version != COWMAP_LOG_VERSION)
		return crc_ok ? COWMAP_LOGERR_BAD_VERSION : COWMAP_LOGERR_HEADER_CRC;
	if (hsize < HDR_SIZE || hsize > HDR_MAX || hsize % 8)
		return crc_ok ? COWMAP_LOGERR_BAD_HEADER : COWMAP_LOGERR_HEADER_CRC;
	if (hsize > avail)
		return COWMAP_LOGERR_SHORT_HEADER;
	if (!crc_ok)
		return COWMAP_LOGERR_HEADER_CRC;
	if (info->flags)
		return COWMAP_LOGERR_BAD_HEADER;
	/* An 80-byte header (or larger) holds the file's id at 64. */
	if (hsize >= HDR_ID_SIZE)
		memcpy(info->file_id, p + HDR_SIZE, sizeof(info->file_id));
	return COWMAP_LOGERR_NONE;
}

API size_t cowmap_log_record_size(uint32_t length)
{
	return (REC_HDR + 2 * (size_t)length + 7) & ~(size_t)7;
}

enum cowmap_log_err_kind cm_check_rec_head(const uint8_t *p, uint32_t version,
					   uint32_t *size)
{
	uint32_t len = get_le32(p + 32);

	if (get_le32(p) != COWMAP_REC_MAGIC)
		return COWMAP_LOGERR_REC_MAGIC;
	*size = get_le32(p + 4);
	/* Version 2: a size record has no bytes, and a fixed size. */
	if (version >= COWMAP_LOG_VERSION && get_le32(p + 36) & COWMAP_REC_SIZE)
		return len || *size != SIZE_REC ? COWMAP_LOGERR_REC_SIZE :
		       COWMAP_LOGERR_NONE;
	if (len == 0 || len > COWMAP_LOG_MAX_RUN ||
	    *size != cowmap_log_record_size(len))
		return COWMAP_LOGERR_REC_SIZE;
	return COWMAP_LOGERR_NONE;
}

enum cowmap_log_err_kind cm_parse_record(const uint8_t *p, uint32_t size,
					 uint64_t pos, struct cowmap_rec *rec)
{
	if (cm_crc_skip(p, size, 56) != get_le32(p + 56))
		return COWMAP_LOGERR_REC_CRC;
	memset(rec, 0, sizeof(*rec));
	rec->seq = get_le64(p + 8);
	rec->session_id = get_le64(p + 16);
	rec->offset = get_le64(p + 24);
	rec->length = get_le32(p + 32);
	rec->flags = get_le32(p + 36);
	rec->time_ns = get_le64(p + 40);
	rec->pid = get_le32(p + 48);
	rec->uid = get_le32(p + 52);
	rec->old_bytes = p + REC_HDR;
	rec->new_bytes = p + REC_HDR + rec->length;
	rec->pos = pos;
	if (rec->flags & COWMAP_REC_SIZE && size == SIZE_REC && !rec->length) {
		/* Only cm_check_rec_head() of a version-2 log lets one by. */
		rec->old_size = get_le64(p + REC_HDR);
		rec->new_size = get_le64(p + REC_HDR + 8);
		rec->cut_crc = get_le32(p + REC_HDR + 16);
		if (rec->flags & ~COWMAP_REC_SIZE)
			return COWMAP_LOGERR_REC_FLAGS;
		/* The offset is the new size; a growth cuts nothing. */
		if (rec->offset != rec->new_size ||
		    (rec->new_size >= rec->old_size && rec->cut_crc))
			return COWMAP_LOGERR_REC_SIZE;
		return COWMAP_LOGERR_NONE;
	}
	if (rec->flags)
		return COWMAP_LOGERR_REC_FLAGS;
	return COWMAP_LOGERR_NONE;
}

/* --- small I/O helpers -------------------------------------------------- */

ssize_t cm_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

int cm_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done,
				   off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += n;
	}
	return 0;
}

int cm_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += n;
	}
	return 0;
}

static char *dir_of(const char *path)
{
	char *copy = strdup(path), *d;

	if (!copy)
		return NULL;
	d = strdup(dirname(copy));
	free(copy);
	return d;
}

int cm_fsync_dir_of(const char *path)
{
	char *d = dir_of(path);
	int fd, ret = 0;

	if (!d)
		return -ENOMEM;
	fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(d);
	if (fd < 0)
		return -errno;
	if (fsync(fd) && errno != EINVAL && errno != EROFS)
		ret = -errno;
	close(fd);
	return ret;
}

char *cm_sibling(const char *path, const char *prefix, const char *suffix)
{
	char *copy = strdup(path), *d = dir_of(path), *out = NULL;
	size_t n;

	if (copy && d) {
		const char *b = basename(copy);

		n = strlen(d) + strlen(b) + strlen(prefix) + strlen(suffix) + 2;
		out = malloc(n);
		if (out)
			snprintf(out, n, "%s/%s%s%s", d, prefix, b, suffix);
	}
	free(copy);
	free(d);
	return out;
}

/* --- the reader ---------------------------------------------------------- */

struct cowmap_log {
	int fd;			/* -1 for a memory log */
	const uint8_t *mem;
	uint64_t size;		/* bytes in the log (at open) */
	uint64_t pos;		/* where the next record starts */
	int fatal;		/* a read error: every later call returns it */
	struct cowmap_log_info info;
	uint8_t *buf;		/* the current record */
	uint8_t *scan;		/* resync window */
};

#define SCAN_WIN (256u * 1024)

/* Read @len bytes at @off into @dst; bytes read (short at the end) or -errno. */
static ssize_t log_read(struct cowmap_log *log, void *dst, size_t len, uint64_t off)
{
	if (off >= log->size)
		return 0;
	if (len > log->size - off)
		len = log->size - off;
	if (log->fd < 0) {
		memcpy(dst, log->mem + off, len);
		return len;
	}
	return cm_pread_full(log->fd, dst, len, off);
}

static void set_err(struct cowmap_log_error *err, enum cowmap_log_err_kind kind,
		    int e, uint64_t off, uint64_t resume)
{
	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	err->kind = kind;
	err->err = e;
	err->offset = off;
	err->resume = resume;
}

static int log_start(struct cowmap_log *log, struct cowmap_log_error *err)
{
	uint8_t h[HDR_MAX];
	enum cowmap_log_err_kind k;
	ssize_t n;

	log->buf = malloc(REC_MAX);
	log->scan = malloc(SCAN_WIN + REC_HDR);
	if (!log->buf || !log->scan)
		return -ENOMEM;
	n = log_read(log, h, sizeof(h), 0);
	if (n < 0) {
		set_err(err, COWMAP_LOGERR_IO, n, 0, 0);
		return n;
	}
	k = cm_parse_header(h, n, &log->info);
	if (k != COWMAP_LOGERR_NONE) {
		set_err(err, k, cm_errno_of(k), 0, 0);
		return cm_errno_of(k);
	}
	log->pos = log->info.header_size;
	return 0;
}

/* A reader over @fd, which it owns from now on. */
static int log_open_fd(int fd, struct cowmap_log **logp,
		       struct cowmap_log_error *err)
{
	struct cowmap_log *log = calloc(1, sizeof(*log));
	struct stat st;
	int ret;

	if (!log) {
		close(fd);
		return -ENOMEM;
	}
	log->fd = fd;
	if (fstat(log->fd, &st)) {
		ret = -errno;
		set_err(err, COWMAP_LOGERR_IO, ret, 0, 0);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		set_err(err, COWMAP_LOGERR_IO, ret, 0, 0);
		goto fail;
	}
	log->size = st.st_size;
	ret = log_start(log, err);
	if (ret)
		goto fail;
	*logp = log;
	return 0;
fail:
	cowmap_log_close(log);
	return ret;
}

API int cowmap_log_open(const char *path, struct cowmap_log **logp,
			struct cowmap_log_error *err)
{
	int fd, ret;

	set_err(err, COWMAP_LOGERR_NONE, 0, 0, 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		set_err(err, COWMAP_LOGERR_IO, ret, 0, 0);
		return ret;
	}
	return log_open_fd(fd, logp, err);
}

API int cowmap_log_open_mem(const void *buf, size_t len, struct cowmap_log **logp,
			    struct cowmap_log_error *err)
{
	struct cowmap_log *log = calloc(1, sizeof(*log));
	int ret;

	set_err(err, COWMAP_LOGERR_NONE, 0, 0, 0);
	if (!log)
		return -ENOMEM;
	log->fd = -1;
	log->mem = buf;
	log->size = len;
	ret = log_start(log, err);
	if (ret) {
		cowmap_log_close(log);
		return ret;
	}
	*logp = log;
	return 0;
}

API const struct cowmap_log_info *cowmap_log_info(const struct cowmap_log *log)
{
	return &log->info;
}

API void cowmap_log_close(struct cowmap_log *log)
{
	if (!log)
		return;
	if (log->fd >= 0)
		close(log->fd);
	free(log->buf);
	free(log->scan);
	free(log);
}

/*
 * Is there a complete, valid record at @off? 1 yes (left in log->buf),
 * 0 no, -errno on a read error.
 */
static int valid_record_at(struct cowmap_log *log, uint64_t off,
			   struct cowmap_rec *rec)
{
	uint32_t size;
	ssize_t n;

	if (log->size - off < REC_HDR)
		return 0;
	n = log_read(log, log->buf, REC_HDR, off);
	if (n < 0)
		return n;
	if (n < (ssize_t)REC_HDR ||
	    cm_check_rec_head(log->buf, log->info.version, &size) !=
	    COWMAP_LOGERR_NONE ||
	    size > log->size - off)
		return 0;
	n = log_read(log, log->buf, size, off);
	if (n < 0)
		return n;
	if (n < size)
		return 0;
	return cm_parse_record(log->buf, size, off, rec) == COWMAP_LOGERR_NONE;
}

/*
 * After damage at @bad: the next 8-byte aligned offset (relative to the
 * header end) with a valid record, or the log size. *@zeros is set when
 * everything from @bad to the end is zero bytes.
 */
static int64_t resync(struct cowmap_log *log, uint64_t bad, int *zeros)
{
	uint64_t off = bad;
	struct cowmap_rec rec;

	*zeros = 1;
	while (off < log->size) {
		ssize_t n = log_read(log, log->scan, SCAN_WIN, off);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i += 8) {
			uint64_t at = off + i;
			int r;

			for (ssize_t j = i; *zeros && j < i + 8 && j < n; j++)
				if (log->scan[j])
					*zeros = 0;
			if (at == bad || n - i < 4 ||
			    get_le32(log->scan + i) != COWMAP_REC_MAGIC)
				continue;
			r = valid_record_at(log, at, &rec);
			if (r < 0)
				return r;
			if (r) {
				*zeros = 0;
				return at;
			}
		}
		off += n;
		/* keep 8-byte alignment relative to @bad */
		off -= (off - bad) % 8;
		if ((uint64_t)n < SCAN_WIN)
			break;
	}
	return log->size;
}

API int cowmap_log_next(struct cowmap_log *log, struct cowmap_rec *rec,
			struct cowmap_log_error *err)
{
	enum cowmap_log_err_kind k;
	uint64_t pos = log->pos, avail;
	uint32_t size = 0;
	int64_t next;
	int zeros, e;
	ssize_t n;

	set_err(err, COWMAP_LOGERR_NONE, 0, pos, pos);
	if (log->fatal) {
		set_err(err, COWMAP_LOGERR_IO, log->fatal, pos, pos);
		return log->fatal;
	}
	if (pos >= log->size)
		return 0;
	avail = log->size - pos;
	if (avail < REC_HDR) {
		k = COWMAP_LOGERR_TRUNCATED;
		goto damaged;
	}
	n = log_read(log, log->buf, REC_HDR, pos);
	if (n < 0)
		goto io;
	k = cm_check_rec_head(log->buf, log->info.version, &size);
	if (k != COWMAP_LOGERR_NONE)
		goto damaged;
	if (size > avail) {
		k = COWMAP_LOGERR_TRUNCATED;
		goto damaged;
	}
	n = log_read(log, log->buf, size, pos);
	if (n < 0)
		goto io;
	k = cm_parse_record(log->buf, size, pos, rec);
	if (k == COWMAP_LOGERR_NONE) {
		log->pos = pos + size;
		return 1;
	}
	if (k == COWMAP_LOGERR_REC_FLAGS) {
		/* Intact but not for us: its size can be trusted. */
		log->pos = pos + size;
		set_err(err, k, -EBADMSG, pos, log->pos);
		return -EBADMSG;
	}
damaged:
	next = resync(log, pos, &zeros);
	if (next < 0) {
		n = next;
		goto io;
	}
	if ((uint64_t)next == log->size) {
		/* Nothing valid follows: a torn or zero-filled tail? */
		if (k == COWMAP_LOGERR_TRUNCATED || zeros)
			k = COWMAP_LOGERR_TRUNCATED;
	} else if (k == COWMAP_LOGERR_TRUNCATED) {
		/* A record "running past the end" with records after it. */
		k = COWMAP_LOGERR_REC_SIZE;
	}
	log->pos = next;
	e = cm_errno_of(k);
	set_err(err, k, e, pos, next);
	return e;
io:
	log->fatal = (int)n;
	set_err(err, COWMAP_LOGERR_IO, (int)n, pos, pos);
	return (int)n;
}

/* --- the writer ---------------------------------------------------------- */

struct cowmap_log_writer {
	int fd;
	int own_fd;
	unsigned int flags;
	char *path;		/* final path */
	char *tmp;		/* temporary file (ATOMIC) */
	uint32_t version;	/* of the header: 2 takes size records */
	int err;		/* first error */
	uint8_t *buf;
};

static void encode_header(const struct cowmap_log_info *info, uint8_t *p,
			  size_t size)
{
	memset(p, 0, size);
	memcpy(p, COWMAP_LOG_MAGIC, 8);
	put_le32(p + 8, info->version == COWMAP_LOG_VERSION ?
		 COWMAP_LOG_VERSION : COWMAP_LOG_VERSION_1);
	put_le32(p + 12, size);
	put_le64(p + 16, info->session_id);
	put_le32(p + 24, info->dev_major);
	put_le32(p + 28, info->dev_minor);
	put_le64(p + 32, info->ino);
	put_le64(p + 40, info->size_at_attach);
	put_le64(p + 48, info->created_ns);
	put_le32(p + 56, 0);
	if (size > HDR_SIZE)
		memcpy(p + HDR_SIZE, info->file_id, sizeof(info->file_id));
	put_le32(p + 60, cm_crc_skip(p, size, 60));
}

API void cowmap_log_encode_header(const struct cowmap_log_info *info, void *out)
{
	encode_header(info, out, HDR_SIZE);
}

size_t cm_encode_header(const struct cowmap_log_info *info, uint8_t *out)
{
	size_t size = cm_log_file_id(info) ? HDR_ID_SIZE : HDR_SIZE;

	encode_header(info, out, size);
	return size;
}

int cm_log_of_file(const struct cowmap_log_info *info, int fd,
		   const char *path, const struct stat *st)
{
	const uint8_t *id = cm_log_file_id(info);
	uint8_t x[COWMAP_FILE_ID_SIZE + 1];
	ssize_t n;

	int same_dev;

	if (info->ino != (uint64_t)st->st_ino)
		return 0;
	same_dev = info->dev_major == major(st->st_dev) &&
		   info->dev_minor == minor(st->st_dev);
	if (!id)
		return same_dev;
	/* One byte more: an xattr of another size is another id. */
	n = fd >= 0 ? fgetxattr(fd, COWMAP_FILE_ID_XATTR, x, sizeof(x)) :
		      getxattr(path, COWMAP_FILE_ID_XATTR, x, sizeof(x));
	/*
	 * Both have an id: the id decides (an inode number reused after an
	 * unlink, or anonymous devices equal on two NFS mounts, would match
	 * device and inode). The file has none (xattr removed, or a
	 * filesystem without user xattrs): device and inode.
	 */
	if (n >= 0)
		return n == COWMAP_FILE_ID_SIZE &&
		       !memcmp(x, id, COWMAP_FILE_ID_SIZE);
	return same_dev;
}

API int cowmap_log_encode_record(const struct cowmap_rec *rec, void *out)
{
	uint8_t *p = out;
	size_t size;

	if (!CM_RESERVED_ZERO(rec))
		return -EINVAL;
	if (rec->flags & COWMAP_REC_SIZE) {
		if (rec->length || rec->flags & ~COWMAP_REC_SIZE ||
		    rec->offset != rec->new_size ||
		    (rec->new_size >= rec->old_size && rec->cut_crc))
			return -EINVAL;
		memset(p, 0, SIZE_REC);
		put_le32(p, COWMAP_REC_MAGIC);
		put_le32(p + 4, SIZE_REC);
		put_le64(p + 8, rec->seq);
		put_le64(p + 16, rec->session_id);
		put_le64(p + 24, rec->offset);
		put_le32(p + 36, rec->flags);
		put_le64(p + 40, rec->time_ns);
		put_le32(p + 48, rec->pid);
		put_le32(p + 52, rec->uid);
		put_le64(p + REC_HDR, rec->old_size);
		put_le64(p + REC_HDR + 8, rec->new_size);
		put_le32(p + REC_HDR + 16, rec->cut_crc);
		put_le32(p + 56, cm_crc_skip(p, SIZE_REC, 56));
		return SIZE_REC;
	}
	if (!rec->length || rec->length > COWMAP_LOG_MAX_RUN)
		return -EINVAL;
	size = cowmap_log_record_size(rec->length);
	memset(p, 0, size);
	put_le32(p, COWMAP_REC_MAGIC);
	put_le32(p + 4, size);
	put_le64(p + 8, rec->seq);
	put_le64(p + 16, rec->session_id);
	put_le64(p + 24, rec->offset);
	put_le32(p + 32, rec->length);
	put_le32(p + 36, rec->flags);
	put_le64(p + 40, rec->time_ns);
	put_le32(p + 48, rec->pid);
	put_le32(p + 52, rec->uid);
	memcpy(p + REC_HDR, rec->old_bytes, rec->length);
	memcpy(p + REC_HDR + rec->length, rec->new_bytes, rec->length);
	put_le32(p + 56, cm_crc_skip(p, size, 56));
	return size;
}

static int writer_alloc(struct cowmap_log_writer **wp)
{
	struct cowmap_log_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->buf = malloc(REC_MAX);
	if (!w->buf) {
		free(w);
		return -ENOMEM;
	}
	*wp = w;
	return 0;
}

/* Check that the log at @fd is complete and intact and of @info's file. */
static int check_for_append(int fd, const struct cowmap_log_info *info,
			    uint32_t *version)
{
	struct cowmap_log *log;
	struct cowmap_rec rec;
	int ret, dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (dfd < 0)
		return -errno;
	ret = log_open_fd(dfd, &log, NULL);
	if (ret)
		return ret;
	*version = log->info.version;
	/* The same file: the same device and inode, or id and inode. */
	if (log->info.ino != info->ino ||
	    ((log->info.dev_major != info->dev_major ||
	      log->info.dev_minor != info->dev_minor) &&
	     (!cm_log_file_id(info) ||
	      memcmp(log->info.file_id, info->file_id, sizeof(info->file_id)))))
		ret = -EXDEV;
	while (!ret && (ret = cowmap_log_next(log, &rec, NULL)) == 1)
		ret = 0;
	if (ret == -ENODATA)
		ret = -EBADMSG;
	cowmap_log_close(log);
	return ret;
}

API int cowmap_log_writer_open(const char *path, const struct cowmap_log_info *info,
			       unsigned int flags, struct cowmap_log_writer **wp)
{
	struct cowmap_log_writer *w;
	uint8_t h[HDR_ID_SIZE];
	int ret;

	if (flags & ~(COWMAP_LOGW_ATOMIC | COWMAP_LOGW_APPEND | COWMAP_LOGW_NO_SYNC) ||
	    (flags & COWMAP_LOGW_ATOMIC && flags & COWMAP_LOGW_APPEND) ||
	    !CM_RESERVED_ZERO(info))
		return -EINVAL;
	ret = writer_alloc(&w);
	if (ret)
		return ret;
	w->own_fd = 1;
	w->flags = flags;
	w->version = info->version == COWMAP_LOG_VERSION ? COWMAP_LOG_VERSION :
		     COWMAP_LOG_VERSION_1;
	w->path = strdup(path);
	if (!w->path) {
		ret = -ENOMEM;
		goto fail;
	}
	if (flags & COWMAP_LOGW_APPEND) {
		w->fd = open(path, O_RDWR | O_CLOEXEC);
		if (w->fd < 0) {
			ret = -errno;
			goto fail;
		}
		ret = check_for_append(w->fd, info, &w->version);
		if (ret)
			goto fail;
		if (lseek(w->fd, 0, SEEK_END) < 0) {
			ret = -errno;
			goto fail;
		}
		*wp = w;
		return 0;
	}
	if (flags & COWMAP_LOGW_ATOMIC) {
		w->tmp = cm_sibling(path, ".", ".XXXXXX");
		if (!w->tmp) {
			ret = -ENOMEM;
			goto fail;
		}
		w->fd = mkostemp(w->tmp, O_CLOEXEC);
		if (w->fd < 0) {
			ret = -errno;
			free(w->tmp);
			w->tmp = NULL;
			goto fail;
		}
	} else {
		w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (w->fd < 0) {
			ret = -errno;
			goto fail;
		}
	}
	ret = cm_write_full(w->fd, h, cm_encode_header(info, h));
	if (ret)
		goto fail;
	*wp = w;
	return 0;
fail:
	cowmap_log_writer_close(w, 0);
	return ret;
}

API int cowmap_log_writer_fd(int fd, const struct cowmap_log_info *info,
			     struct cowmap_log_writer **wp)
{
	struct cowmap_log_writer *w;
	uint8_t h[HDR_ID_SIZE];
	int ret;

	if (!CM_RESERVED_ZERO(info))
		return -EINVAL;
	ret = writer_alloc(&w);
	if (ret)
		return ret;
	w->fd = fd;
	w->version = info->version == COWMAP_LOG_VERSION ? COWMAP_LOG_VERSION :
		     COWMAP_LOG_VERSION_1;
	ret = cm_write_full(fd, h, cm_encode_header(info, h));
	if (ret) {
		cowmap_log_writer_close(w, 0);
		return ret;
	}
	*wp = w;
	return 0;
}

API int cowmap_log_append(struct cowmap_log_writer *w, const struct cowmap_rec *rec)
{
	int n;

	if (w->err)
		return w->err;
	if (rec->flags & COWMAP_REC_SIZE && w->version != COWMAP_LOG_VERSION)
		return -EINVAL;	/* a version-1 log cannot hold it */
	n = cowmap_log_encode_record(rec, w->buf);
	if (n < 0)
		return n;	/* a bad argument does not spoil the writer */
	w->err = cm_write_full(w->fd, w->buf, n);
	return w->err;
}

API int cowmap_log_writer_close(struct cowmap_log_writer *w, int commit)
{
	int ret, sync;

	if (!w)
		return 0;
	sync = commit && !(w->flags & COWMAP_LOGW_NO_SYNC);
	ret = w->err;
	if (sync && !ret && w->fd >= 0 && fsync(w->fd) && errno != EINVAL)
		ret = -errno;
	if (w->own_fd && w->fd >= 0 && close(w->fd) && !ret && commit)
		ret = -errno;
	if (w->tmp) {
		if (commit && !ret) {
			if (rename(w->tmp, w->path))
				ret = -errno;
			else if (sync)
				ret = cm_fsync_dir_of(w->path);
		}
		if (!commit || ret)
			unlink(w->tmp);
		free(w->tmp);
	}
	free(w->path);
	free(w->buf);
	free(w);
	return ret;
}

/* Changed in 0.2.0: the LIBCOWMAP_0 versions are in compat.c. */
CM_VERSION_1(cowmap_log_open);
CM_VERSION_1(cowmap_log_open_mem);
CM_VERSION_1(cowmap_log_next);
CM_VERSION_1(cowmap_log_writer_open);
CM_VERSION_1(cowmap_log_writer_fd);
CM_VERSION_1(cowmap_log_encode_header);
CM_VERSION_1(cowmap_log_encode_record);
CM_VERSION_1(cowmap_log_append);
