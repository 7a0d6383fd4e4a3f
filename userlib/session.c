// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/* Sessions: thin wrappers over the /dev/cowmap ioctls, and dump iteration. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "internal.h"

static int xioctl(int fd, unsigned long cmd, void *arg)
{
	int ret;

	do {
		ret = ioctl(fd, cmd, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : ret;
}

/*
 * open(2) of COWMAP_DEVICE_PATH: a node that is not there (ENOENT) or has no
 * driver behind it (ENODEV from the misc core, ENXIO for a stale major) all
 * mean that the module is not loaded, and become -ENODEV, so that callers
 * can tell it from -ENOENT of a missing file or session.
 */
static int open_device(void)
{
	int fd = open(COWMAP_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
		return -ENODEV;
	return -errno;
}

API int cowmap_open(struct cowmap_api *api)
{
	struct cowmap_api a = { .api = COWMAP_API };
	int fd, ret;

	fd = open_device();
	if (fd < 0)
		return fd;
	ret = xioctl(fd, COWMAP_IOC_API, &a);
	if (ret) {
		close(fd);
		return ret;
	}
	if (api)
		*api = a;
	return fd;
}

/*
 * Give the file an id (COWMAP_FILE_ID_XATTR, 16 random bytes) if it has
 * none, so that its journals name it on every machine that sees it (an NFS
 * client, the server): docs/nfs.md, "Journal identity across machines".
 * Before the attach: setting it changes the file's ctime (and NFS's change
 * attribute), which must not happen under a session. Best effort: without
 * user xattrs (tmpfs before 6.6, ENOTSUP), without write permission
 * (EACCES, EPERM), on a read-only mount (EROFS), the journals name the
 * file by device and inode only. XATTR_CREATE: of two attaching at once,
 * the first id stays (EEXIST).
 */
static void file_id_ensure(int file_fd)
{
	uint8_t id[COWMAP_FILE_ID_SIZE];
	ssize_t n;

	n = fgetxattr(file_fd, COWMAP_FILE_ID_XATTR, NULL, 0);
	if (n >= 0 || errno != ENODATA)
		return;
	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id) ||
	    cm_all_zero(id, sizeof(id)))
		return;
	(void)fsetxattr(file_fd, COWMAP_FILE_ID_XATTR, id, sizeof(id),
			XATTR_CREATE);
}

API int cowmap_attach(int fd, int file_fd, int journal_fd, uint64_t *session_id)
{
	struct cowmap_attach a = { .fd = file_fd };
	int ret;

	file_id_ensure(file_fd);
	if (journal_fd >= 0) {
		a.flags = COWMAP_ATTACH_JOURNAL;
		a.journal_fd = journal_fd;
	}
	ret = xioctl(fd, COWMAP_IOC_ATTACH, &a);
	if (!ret && session_id)
		*session_id = a.session_id;
	return ret;
}

API int cowmap_session_open(const char *path, const char *journal_path,
			    uint64_t *session_id)
{
	int file, jfd = -1, fd, ret;

	file = open(path, O_RDONLY | O_CLOEXEC);
	if (file < 0)
		return -errno;
	if (journal_path) {
		jfd = open(journal_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (jfd < 0) {
			ret = -errno;
			close(file);
			return ret;
		}
	}
	fd = cowmap_open(NULL);
	if (fd >= 0) {
		ret = cowmap_attach(fd, file, jfd, session_id);
		if (ret) {
			close(fd);
			fd = ret;
		}
	}
	close(file);
	if (jfd >= 0)
		close(jfd);
	return fd;
}

API int cowmap_map(int fd, size_t len, off_t offset, int prot, void **addr)
{
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, offset);

	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

API int cowmap_unmap(void *addr, size_t len)
{
	return munmap(addr, len) ? -errno : 0;
}

API int cowmap_commit(int fd, int durable, struct cowmap_commit *out)
{
	struct cowmap_commit c = { .flags = durable ? COWMAP_COMMIT_DURABLE : 0 };
	int ret = xioctl(fd, COWMAP_IOC_COMMIT, &c);

	if (ret)
		return ret;
	if (out)
		*out = c;
	return c.records > INT32_MAX ? INT32_MAX : (int)c.records;
}

API int cowmap_view(int fd, unsigned int flags)
{
	struct cowmap_view v = { .flags = flags };
	int ret = xioctl(fd, COWMAP_IOC_VIEW, &v);

	return ret ? ret : v.fd;
}

API int cowmap_set_size(int fd, int64_t size, int64_t *old_size)
{
	struct cowmap_size z = { .size = size };
	int ret = xioctl(fd, COWMAP_IOC_SET_SIZE, &z);

	if (!ret && old_size)
		*old_size = z.old_size;
	return ret;
}

API int cowmap_refresh(int fd, uint64_t *invalidated)
{
	struct cowmap_refresh r = { 0 };
	int ret = xioctl(fd, COWMAP_IOC_REFRESH, &r);

	if (!ret && invalidated)
		*invalidated = r.invalidated;
	return ret;
}

API int cowmap_status(int fd, struct cowmap_status *st)
{
	memset(st, 0, sizeof(*st));
	return xioctl(fd, COWMAP_IOC_STATUS, st);
}

API int cowmap_adopt(int fd, uint64_t session_id)
{
	struct cowmap_adopt a = { .session_id = session_id };

	return xioctl(fd, COWMAP_IOC_ADOPT, &a);
}

API int cowmap_session_adopt(uint64_t session_id)
{
	int fd = cowmap_open(NULL), ret;

	if (fd < 0)
		return fd;
	ret = cowmap_adopt(fd, session_id);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

API int cowmap_discard(int fd)
{
	return xioctl(fd, COWMAP_IOC_DISCARD, NULL);
}

API int cowmap_merge(int fd, int target_fd, unsigned int flags,
		     struct cowmap_conflict *conflicts, unsigned int max,
		     struct cowmap_merge *out)
{
	struct cowmap_merge m = {
		.target_fd = target_fd,
		.flags = flags,
		.conflicts_buf = conflicts ? (uintptr_t)conflicts : 0,
		.conflicts_max = conflicts ? max : 0,
	};
	int ret = xioctl(fd, COWMAP_IOC_MERGE, &m);

	if (ret)
		return ret;
	if (out)
		*out = m;
	return m.conflicts > INT32_MAX ? INT32_MAX : (int)m.conflicts;
}

API int cowmap_trim(int fd)
{
	return xioctl(fd, COWMAP_IOC_TRIM, NULL);
}

/* --- dump iteration ------------------------------------------------------ */

#define DUMP_DEFAULT	(64u * 1024)
#define DUMP_MAX	(1024u * 1024)

struct cowmap_dump_iter {
	int fd;
	uint8_t *buf;
	size_t cap;
	size_t len;		/* bytes in buf */
	size_t at;		/* next item in buf */
	uint64_t cursor;	/* for the next COWMAP_IOC_DUMP */
	uint64_t stream;	/* stream offset of buf[0] */
	int done;
	int fatal;
	struct cowmap_log_info info;
};

/* Refill the buffer: 1 items read, 0 end, -errno. */
static int dump_fill(struct cowmap_dump_iter *it)
{
	for (;;) {
		struct cowmap_dump d = {
			.buf = (uintptr_t)it->buf,
			.buf_size = it->cap,
			.cursor = it->cursor,
		};
		int ret = xioctl(it->fd, COWMAP_IOC_DUMP, &d);

		if (ret)
			return ret;
		if (d.bytes) {
			if (d.bytes > it->cap)
				return -EPROTO;
			it->stream += it->len;
			it->len = d.bytes;
			it->at = 0;
			it->cursor = d.cursor;
			return 1;
		}
		if (!d.needed)
			return 0;
		if (d.needed <= it->cap || d.needed > DUMP_MAX)
			return d.needed > DUMP_MAX ? -EMSGSIZE : -EPROTO;
		free(it->buf);
		it->buf = malloc(d.needed);
		it->cap = d.needed;
		if (!it->buf)
			return -ENOMEM;
	}
}

API int cowmap_dump_begin(int fd, size_t buf_size, struct cowmap_dump_iter **itp)
{
	struct cowmap_dump_iter *it = calloc(1, sizeof(*it));
	enum cowmap_log_err_kind k;
	int ret;

	if (!it)
		return -ENOMEM;
	if (!buf_size)
		buf_size = DUMP_DEFAULT;
	if (buf_size > DUMP_MAX)
		buf_size = DUMP_MAX;
	it->fd = fd;
	it->cap = buf_size;
	it->buf = malloc(buf_size);
	if (!it->buf) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = dump_fill(it);
	if (ret == 0)
		ret = -EPROTO;	/* not even a header */
	if (ret < 0)
		goto fail;
	k = cm_parse_header(it->buf, it->len, &it->info);
	if (k != COWMAP_LOGERR_NONE) {
		ret = cm_errno_of(k);
		goto fail;
	}
	it->at = it->info.header_size;
	*itp = it;
	return 0;
fail:
	cowmap_dump_end(it);
	return ret;
}

API const struct cowmap_log_info *cowmap_dump_info(const struct cowmap_dump_iter *it)
{
	return &it->info;
}

API int cowmap_dump_next(struct cowmap_dump_iter *it, struct cowmap_rec *rec,
			 struct cowmap_log_error *err)
{
	enum cowmap_log_err_kind k;
	uint64_t pos;
	uint32_t size;
	int ret;

	if (err)
		memset(err, 0, sizeof(*err));
	if (it->fatal)
		return it->fatal;
	if (it->done)
		return 0;
	if (it->at >= it->len) {
		ret = dump_fill(it);
		if (ret <= 0) {
			if (ret == 0)
				it->done = 1;
			else
				it->fatal = ret;
			return ret;
		}
	}
	pos = it->stream + it->at;
	k = COWMAP_LOGERR_TRUNCATED;
	if (it->len - it->at >= REC_HDR) {
		k = cm_check_rec_head(it->buf + it->at, it->info.version, &size);
		if (k == COWMAP_LOGERR_NONE && size > it->len - it->at)
			k = COWMAP_LOGERR_TRUNCATED;	/* dumps hold whole items */
	}
	if (k != COWMAP_LOGERR_NONE) {
		/* Record boundaries are lost: stop here. */
		it->fatal = -EBADMSG;
		if (err) {
			err->kind = k;
			err->err = -EBADMSG;
			err->offset = pos;
			err->resume = pos;
		}
		return -EBADMSG;
	}
	k = cm_parse_record(it->buf + it->at, size, pos, rec);
	it->at += size;
	if (k != COWMAP_LOGERR_NONE) {
		if (err) {
			err->kind = k;
			err->err = -EBADMSG;
			err->offset = pos;
			err->resume = pos + size;
		}
		return -EBADMSG;
	}
	return 1;
}

API void cowmap_dump_end(struct cowmap_dump_iter *it)
{
	if (!it)
		return;
	free(it->buf);
	free(it);
}

/* Changed in 0.2.0: the LIBCOWMAP_0 versions are in compat.c. */
CM_VERSION_1(cowmap_dump_next);
