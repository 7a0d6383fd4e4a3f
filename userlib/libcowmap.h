/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * libcowmap: the user-space side of cowmap.
 *
 * Sessions: open /dev/cowmap and negotiate the API (cowmap_open()), attach
 * to a file (cowmap_attach()), map it (cowmap_map()), commit writes
 * (cowmap_commit()), read the journal (cowmap_dump_begin() and friends),
 * adopt or discard an orphaned session (cowmap_adopt(), cowmap_discard()),
 * merge its journal into a file in the kernel (cowmap_merge(), cowmap_trim()).
 *
 * Netlink: list and look up sessions, fetch a journal without a session
 * fd, receive events (cowmap_nl_*(); libcowmap.so links libmnl for these).
 *
 * Offline: read a journal file or dump (cowmap_log_open()), write one
 * (cowmap_log_writer_open()), and merge journals into a file with conflict
 * detection (cowmap_merger_new() and friends). The offline side needs no
 * module. The format is described in docs/journal-format.md.
 *
 * Errors: every function that returns int returns 0 (or a documented
 * non-negative count) on success and a negative errno value on failure;
 * errno itself is not part of the interface. Functions returning void
 * cannot fail. -ENODEV from the functions that open the device or the
 * netlink family (cowmap_open(), cowmap_session_open(),
 * cowmap_session_adopt(), cowmap_nl_open()) always means that the module
 * is not loaded; -ENOENT never does.
 *
 * Thread safety: no global state except the CRC table, which is built once
 * under pthread_once(). Objects (iterators, logs, writers, merges) must not
 * be used by two threads at once.
 *
 * ABI (docs/install.md, "Library ABI"): the soname is libcowmap.so.0 and
 * every exported function carries a version node: LIBCOWMAP_0 is 0.1.0's
 * interface, LIBCOWMAP_1 0.2.0's (its new functions, and new versions of
 * those whose structs grew). A struct that callers allocate never changes
 * size within a node: new members take its reserved fields, which callers
 * zero (= { 0 } or memset) and the library zeroes in what it returns; an
 * input with a non-zero reserved field is refused with -EINVAL. A struct
 * that must outgrow its reserved space gets new versions of the functions
 * that take it, under a new node, and the old versions keep the old
 * layout, so that programs built against an older header go on working
 * unchanged. Structs only the library allocates (struct
 * cowmap_merger_event, the results of cowmap_log_info() and
 * cowmap_dump_info(), the sessions of cowmap_nl_sessions()) may grow at
 * their end. The soname changes only if an old interface cannot be kept.
 */
#ifndef LIBCOWMAP_H
#define LIBCOWMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/cowmap.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The version of this header: that of the library a program was built
 * against (cowmap_version() is that of the library it runs with). The
 * build checks them against the VERSION file (mk/user.mk).
 */
#define LIBCOWMAP_VERSION_MAJOR	0
#define LIBCOWMAP_VERSION_MINOR	2
#define LIBCOWMAP_VERSION_PATCH	0

/**
 * cowmap_version() - the library version
 *
 * Return: "MAJOR.MINOR.PATCH" as in the VERSION file the library was built
 * from.
 */
const char *cowmap_version(void);

/**
 * cowmap_crc32() - CRC-32 as used by the journal format
 * @crc: 0 to start, or the value returned for the preceding bytes
 * @buf: the bytes
 * @len: their number
 *
 * The IEEE 802.3 CRC-32 that zlib's crc32() computes, with the same
 * chaining convention: cowmap_crc32(0, "123456789", 9) == 0xCBF43926.
 *
 * Return: the CRC of everything so far.
 */
uint32_t cowmap_crc32(uint32_t crc, const void *buf, size_t len);

/* --- Sessions (need the module) ------------------------------------- */

/**
 * cowmap_open() - open /dev/cowmap and do the API handshake
 * @api: if not NULL, receives the module's answer (supported features,
 *	available ioctls: test with COWMAP_IOCTL_BIT())
 *
 * Opens COWMAP_DEVICE_PATH read-write with O_CLOEXEC and negotiates
 * COWMAP_API with no optional features.
 *
 * Return: the new session fd, or a negative errno: -ENODEV (the module is
 * not loaded: COWMAP_DEVICE_PATH is missing or has no driver behind it),
 * another errno of open(2) (-EACCES: the node's permissions, -EMFILE, ...),
 * -EINVAL (the module does not speak COWMAP_API).
 */
int cowmap_open(struct cowmap_api *api);

/**
 * cowmap_attach() - attach a session to a file
 * @fd: a session fd from cowmap_open()
 * @file_fd: the file, opened for reading
 * @journal_fd: a journal file opened for reading and writing, or -1 for
 *	none (see COWMAP_ATTACH_JOURNAL in <linux/cowmap.h>)
 * @session_id: if not NULL, receives the session id
 *
 * Both fds may be closed afterwards: the session keeps its own references.
 *
 * Before the attach, a file without the COWMAP_FILE_ID_XATTR xattr gets
 * one (16 random bytes) if the caller may write it, so that the journal
 * names the file on every machine (docs/nfs.md, "Journal identity across
 * machines"); where it cannot be set (no user xattrs, no write permission),
 * nothing changes and the journal names the file by device and inode.
 *
 * Return: 0 or a negative errno (see COWMAP_IOC_ATTACH).
 */
int cowmap_attach(int fd, int file_fd, int journal_fd, uint64_t *session_id);

/**
 * cowmap_session_open() - open a file and a session attached to it
 * @path: the file
 * @journal_path: a journal file to create or append to, or NULL
 * @session_id: if not NULL, receives the session id
 *
 * Opens @path read-only and @journal_path read-write (created with mode
 * 0600 if missing), then cowmap_open() and cowmap_attach(). The file and
 * journal fds are closed before returning.
 *
 * Return: the session fd, or a negative errno: an errno of open(2) for
 * @path or @journal_path (-ENOENT: no such file), one of cowmap_open()
 * (-ENODEV: the module is not loaded), or one of cowmap_attach().
 */
int cowmap_session_open(const char *path, const char *journal_path,
			uint64_t *session_id);

/**
 * cowmap_map() - map (part of) a session
 * @fd: an attached session fd
 * @len: bytes to map
 * @offset: file offset, a multiple of the page size
 * @prot: PROT_READ, or PROT_READ | PROT_WRITE
 * @addr: receives the address
 *
 * A MAP_SHARED mapping of the session (MAP_PRIVATE is refused by cowmap).
 *
 * Return: 0 or a negative errno from mmap(2).
 */
int cowmap_map(int fd, size_t len, off_t offset, int prot, void **addr);

/**
 * cowmap_unmap() - unmap what cowmap_map() mapped
 * @addr: the address cowmap_map() returned
 * @len: the length given to it
 *
 * Return: 0 or a negative errno from munmap(2).
 */
int cowmap_unmap(void *addr, size_t len);

/**
 * cowmap_view() - a regular-file fd on the session
 * @fd: an attached or adopted session fd
 * @flags: COWMAP_VIEW_RDWR for a read-write view (the session fd must be
 *	open for writing), 0 for a read-only one; COWMAP_VIEW_CLOEXEC
 *
 * The new fd reads and writes the session with read(2), write(2), lseek(2),
 * fsync(2) (a durable commit), mmap(2), sendfile(2), ... as a regular file
 * (see COWMAP_IOC_VIEW in <linux/cowmap.h> and cowmap(4)). Writes go to the
 * session's pages, never to the file, and are journalled by the next
 * commit. The session lives on while the view is open.
 *
 * Return: the new fd, or a negative errno: -EINVAL (unknown flags, not
 * attached), -EBADF (a read-write view of a read-only session fd), -EMFILE,
 * -ENOTTY (a module without views).
 */
int cowmap_view(int fd, unsigned int flags);

/**
 * cowmap_set_size() - set the session's size
 * @fd: an attached or adopted session fd, open for writing
 * @size: the new size in bytes
 * @old_size: if not NULL, receives the size before
 *
 * From the first change the session has a size of its own: bytes past the
 * file's end read as zeros until written, and a shrink drops the session's
 * pages past the new end. Each change is journalled as a size record
 * (journal format 2; see COWMAP_IOC_SET_SIZE and cowmap(4)); a merge
 * resizes the target.
 *
 * Return: 0 or a negative errno: -EINVAL (negative @size), -EFBIG (past
 * RLIMIT_FSIZE or the file's filesystem), -EBADF (fd not open for
 * writing), -ENOSPC (journal full), -ENOTTY (a module without sizes).
 */
int cowmap_set_size(int fd, int64_t size, int64_t *old_size);

/**
 * cowmap_refresh() - look at the session's file again now
 * @fd: an attached or adopted session fd (read-only too)
 * @invalidated: if not NULL, receives how many pages the session showed
 *	from the file that were no longer the file's and are unmapped now
 *
 * For files on NFS (or any filesystem whose file another machine can
 * change): makes the filesystem revalidate the file and drop cached pages
 * that are out of date, then unmaps every page the session shows from the
 * file that left the page cache, so pages the session has not written
 * show the file as the server has it. Pages it wrote stay. Local changes
 * need no call (see COWMAP_IOC_REFRESH and cowmap(4)).
 *
 * Return: 0 or a negative errno: -EINVAL (not attached), -ENOTTY (a module
 * without refresh), and the filesystem's errors (-EIO, -ESTALE, -EINTR).
 */
int cowmap_refresh(int fd, uint64_t *invalidated);

/**
 * cowmap_commit() - turn the session's writes into journal records
 * @fd: an attached session fd
 * @durable: non-zero to fsync the journal file (COWMAP_COMMIT_DURABLE)
 * @out: if not NULL, receives the kernel's answer (records, bytes,
 *	first_seq, pages)
 *
 * Return: the number of records added (0 or more), or a negative errno
 * (see COWMAP_IOC_COMMIT; -ENOTTY from a module without commit).
 */
int cowmap_commit(int fd, int durable, struct cowmap_commit *out);

/**
 * cowmap_status() - session status
 * @fd: a session fd
 * @st: receives the status
 *
 * Return: 0 or a negative errno.
 */
int cowmap_status(int fd, struct cowmap_status *st);

/**
 * cowmap_adopt() - take over an orphaned session
 * @fd: a fresh session fd from cowmap_open() (not attached)
 * @session_id: the orphan's id
 *
 * The fd becomes the session. Closing it orphans the session again if it
 * still has records.
 *
 * Return: 0 or a negative errno: -ENOENT (no such orphan), -EPERM (another
 * user's), -EBUSY (@fd is attached).
 */
int cowmap_adopt(int fd, uint64_t session_id);

/**
 * cowmap_session_adopt() - cowmap_open() then cowmap_adopt()
 * @session_id: the orphan's id
 *
 * Return: the session fd, or a negative errno: one of cowmap_open()
 * (-ENODEV: the module is not loaded) or of cowmap_adopt() (-ENOENT: no
 * orphaned session @session_id).
 */
int cowmap_session_adopt(uint64_t session_id);

/**
 * cowmap_discard() - drop the session's journal and written pages
 * @fd: an attached or adopted session fd
 *
 * The session shows the file again; closing it then frees it.
 *
 * Return: 0 or a negative errno.
 */
int cowmap_discard(int fd);

/**
 * cowmap_merge() - apply the session's journal to a file (kernel merge)
 * @fd: an attached or adopted session fd
 * @target_fd: the file, opened O_RDWR (usually the backing file itself)
 * @flags: COWMAP_MERGE_SKIP or COWMAP_MERGE_FORCE (not both),
 *	COWMAP_MERGE_DRY_RUN, COWMAP_MERGE_FSYNC
 * @conflicts: an array receiving the first @max conflict reports, or NULL
 * @max: entries in @conflicts
 * @out: receives the counts (records, applied, already, conflicts,
 *	written); may be NULL
 *
 * See COWMAP_IOC_MERGE in <linux/cowmap.h>: records apply in sequence
 * order; with the default policy nothing is written if any conflicts.
 *
 * Return: the number of conflicting records (0: everything applied or
 * already applied; with COWMAP_MERGE_FORCE they were written anyway), or
 * a negative errno: -EBADF (@target_fd not open
 * O_RDWR), -EINVAL (flags, target), -EOPNOTSUPP, -ENOTTY (a module
 * without kernel merge), I/O errors.
 */
int cowmap_merge(int fd, int target_fd, unsigned int flags,
		 struct cowmap_conflict *conflicts, unsigned int max,
		 struct cowmap_merge *out);

/**
 * cowmap_trim() - drop the records a merge marked merged
 * @fd: an attached or adopted session fd
 *
 * Records still missing from the journal file are kept. Sequence numbers
 * of the others do not change. A session left without records or
 * uncommitted pages is freed when its fd is closed.
 *
 * Return: 0 or a negative errno (-ENOTTY: a module without trim).
 */
int cowmap_trim(int fd);

/* --- The journal format, decoded ------------------------------------ */

/**
 * struct cowmap_log_info - a log header, decoded (host byte order)
 * @version: format version: COWMAP_LOG_VERSION_1, or COWMAP_LOG_VERSION
 *	(2: the log may hold size records)
 * @header_size: bytes before the first record
 * @session_id: the session that created the log
 * @dev_major: backing file's device
 * @dev_minor: backing file's device
 * @ino: backing file's inode number
 * @size_at_attach: backing file's size at attach
 * @created_ns: creation time (CLOCK_REALTIME, ns)
 * @flags: header flags (zero in version 1)
 * @reserved0: zero (room to grow, see "ABI" above)
 * @file_id: the backing file's id (COWMAP_FILE_ID_XATTR) from an 80-byte
 *	header, all zeros when the log has none (new after 0.2.0; was reserved). The
 *	writer writes an 80-byte header when it is not all zeros.
 * @reserved: zero
 *
 * The writer (cowmap_log_writer_open(), cowmap_log_writer_fd()) refuses
 * non-zero reserved fields with -EINVAL: zero the whole struct (= { 0 },
 * memset) before setting members, or start from cowmap_log_info().
 */
struct cowmap_log_info {
	uint32_t version;
	uint32_t header_size;
	uint64_t session_id;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t ino;
	uint64_t size_at_attach;
	uint64_t created_ns;
	uint32_t flags;
	uint32_t reserved0;
	uint8_t file_id[COWMAP_FILE_ID_SIZE];
	uint64_t reserved[2];
};

/**
 * struct cowmap_rec - a journal record, decoded (host byte order)
 * @seq: sequence number within its session
 * @session_id: the session that committed it
 * @offset: file offset of the first changed byte
 * @length: number of changed bytes
 * @flags: record flags (zero in version 1)
 * @time_ns: commit time (CLOCK_REALTIME, ns)
 * @pid: committing process
 * @uid: committing user
 * @old_bytes: @length bytes before the change
 * @new_bytes: @length bytes after the change
 * @pos: byte offset of the record in its log or dump stream
 * @old_size: a size record's size before (see below)
 * @new_size: a size record's size after (equals @offset)
 * @cut_crc: a size record that shrinks: CRC-32 of the bytes cut,
 *	[@new_size, @old_size), as the session had them; else zero
 * @reserved0: zero (room to grow, see "ABI" above)
 * @reserved: zero
 *
 * @old_bytes and @new_bytes point into memory owned by whatever returned
 * the record, valid until its next call.
 *
 * A size record (version-2 logs, @flags has COWMAP_REC_SIZE) changes the
 * file's size from @old_size to @new_size: @length is 0, @offset is the
 * new size, and only @old_size, @new_size and @cut_crc say more. They are
 * zero in a byte record. The readers zero the reserved fields; the writer
 * (cowmap_log_encode_record(), cowmap_log_append()) refuses non-zero ones
 * with -EINVAL. (0.2.0 added these fields: programs built against 0.1.0
 * call the LIBCOWMAP_0 versions of the functions that take this struct,
 * which keep its 0.1.0 layout.)
 */
struct cowmap_rec {
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
	uint64_t old_size;
	uint64_t new_size;
	uint32_t cut_crc;
	uint32_t reserved0;
	uint64_t reserved[4];
};

/** enum cowmap_log_err_kind - what is wrong with a log, see cowmap_log_strerror() */
enum cowmap_log_err_kind {
	COWMAP_LOGERR_NONE = 0,
	COWMAP_LOGERR_IO,		/* read error (err holds the errno) */
	COWMAP_LOGERR_SHORT_HEADER,	/* fewer bytes than a header */
	COWMAP_LOGERR_BAD_MAGIC,	/* not a cowmap log */
	COWMAP_LOGERR_BAD_VERSION,	/* a version this library does not know */
	COWMAP_LOGERR_HEADER_CRC,	/* header checksum mismatch */
	COWMAP_LOGERR_BAD_HEADER,	/* header_size or flags invalid */
	COWMAP_LOGERR_REC_MAGIC,	/* no record magic where a record starts */
	COWMAP_LOGERR_REC_SIZE,		/* size/length fields inconsistent */
	COWMAP_LOGERR_REC_CRC,		/* record checksum mismatch */
	COWMAP_LOGERR_REC_FLAGS,	/* record flags this library does not know */
	COWMAP_LOGERR_TRUNCATED,	/* incomplete or zero-filled last record */
};

/**
 * struct cowmap_log_error - where and what
 * @kind: COWMAP_LOGERR_*
 * @err: the negative errno the call returned
 * @offset: byte offset of the bad header or record in the log
 * @resume: offset where reading goes on (the next valid record, or the
 *	end of the log)
 * @reserved: zeroed by the library (room to grow)
 */
struct cowmap_log_error {
	enum cowmap_log_err_kind kind;
	int err;
	uint64_t offset;
	uint64_t resume;
	uint64_t reserved[2];
};

/**
 * cowmap_log_strerror() - describe an error kind
 * @kind: COWMAP_LOGERR_*
 *
 * Return: a static English phrase, e.g. "record CRC mismatch".
 */
const char *cowmap_log_strerror(enum cowmap_log_err_kind kind);

/* --- Dump: read a session's journal through COWMAP_IOC_DUMP ----------- */

struct cowmap_dump_iter;

/**
 * cowmap_dump_begin() - start reading a session's journal
 * @fd: an attached or adopted session fd
 * @buf_size: the buffer handed to COWMAP_IOC_DUMP (0: 64 KiB). It grows
 *	to the size of a single item that does not fit, up to 1 MiB.
 * @it: receives the iterator
 *
 * Fetches and checks the log header (its CRC, magic and version).
 *
 * Return: 0 or a negative errno: -ENOTTY (module without dump), -EBADMSG
 * (bad header), -ENOMEM.
 */
int cowmap_dump_begin(int fd, size_t buf_size, struct cowmap_dump_iter **it);

/**
 * cowmap_dump_info() - the header of the dump
 * @it: an iterator from cowmap_dump_begin()
 *
 * Return: the decoded header, valid until cowmap_dump_end().
 */
const struct cowmap_log_info *cowmap_dump_info(const struct cowmap_dump_iter *it);

/**
 * cowmap_dump_next() - the next record
 * @it: the iterator
 * @rec: receives the record; its bytes stay valid until the next call
 * @err: if not NULL, receives details when a record is bad
 *
 * Every record's CRC, magic, size and flags are checked. A bad record is
 * reported once (-EBADMSG and @err) and skipped when its size can be
 * trusted; otherwise the iteration ends with that error.
 *
 * Return: 1 (a record), 0 (the end), or a negative errno.
 */
int cowmap_dump_next(struct cowmap_dump_iter *it, struct cowmap_rec *rec,
		     struct cowmap_log_error *err);

/**
 * cowmap_dump_end() - free the iterator
 * @it: the iterator, or NULL
 */
void cowmap_dump_end(struct cowmap_dump_iter *it);

/* --- Log reader ------------------------------------------------------ */

struct cowmap_log;

/**
 * cowmap_log_open() - open a log (journal file or saved dump)
 * @path: the file
 * @log: receives the reader
 * @err: if not NULL, receives details when the header is bad
 *
 * Reads and checks the header: magic, version (this library reads
 * versions 1 and 2, and refuses others with -EPROTONOSUPPORT), header CRC,
 * header_size and flags.
 *
 * Return: 0, or a negative errno: -EBADMSG (not a log, or a damaged
 * header), -EPROTONOSUPPORT (unknown version), or an open/read error.
 */
int cowmap_log_open(const char *path, struct cowmap_log **log,
		    struct cowmap_log_error *err);

/**
 * cowmap_log_open_mem() - read a log held in memory
 * @buf: the log bytes; must stay valid while the reader is used
 * @len: their number
 * @log: receives the reader
 * @err: as for cowmap_log_open()
 *
 * Return: as for cowmap_log_open().
 */
int cowmap_log_open_mem(const void *buf, size_t len, struct cowmap_log **log,
			struct cowmap_log_error *err);

/**
 * cowmap_log_info() - the decoded header
 * @log: the reader
 *
 * Return: the header, valid until cowmap_log_close().
 */
const struct cowmap_log_info *cowmap_log_info(const struct cowmap_log *log);

/**
 * cowmap_log_next() - the next record
 * @log: the reader
 * @rec: receives the record; its bytes stay valid until the next call
 * @err: if not NULL, receives details on an error
 *
 * Each record is checked (magic, size against length, CRC, flags) before
 * it is returned: a record that fails is never returned. After an error,
 * the next call goes on at @err->resume: the next 8-byte aligned position
 * holding a complete record with a valid CRC, or the end of the log. A
 * damaged region is reported once. An incomplete last record (a torn
 * append) or a zero-filled tail is reported as COWMAP_LOGERR_TRUNCATED
 * with -ENODATA; every other damage is -EBADMSG. Read errors (-EIO etc.)
 * are final.
 *
 * Return: 1 (a record), 0 (the end), or a negative errno.
 */
int cowmap_log_next(struct cowmap_log *log, struct cowmap_rec *rec,
		    struct cowmap_log_error *err);

/**
 * cowmap_log_close() - free the reader
 * @log: the reader, or NULL
 */
void cowmap_log_close(struct cowmap_log *log);

/* --- Log writer ------------------------------------------------------ */

struct cowmap_log_writer;

/* cowmap_log_writer_open() flags */
#define COWMAP_LOGW_ATOMIC	(1U << 0)	/* temp file, rename at close */
#define COWMAP_LOGW_APPEND	(1U << 1)	/* append to an existing log */
#define COWMAP_LOGW_NO_SYNC	(1U << 2)	/* close without fsync (scratch logs) */

/**
 * cowmap_log_writer_open() - create a log file, or append to one
 * @path: the file
 * @info: the header to write (header_size and flags are set by the
 *	writer; version 2 when @info->version is COWMAP_LOG_VERSION, else 1:
 *	only a version-2 writer takes size records); with COWMAP_LOGW_APPEND,
 *	the existing header must name the same device and inode, and gives
 *	the version
 * @flags: COWMAP_LOGW_*
 * @w: receives the writer
 *
 * Without flags, @path is created or truncated (mode 0644 less umask).
 * COWMAP_LOGW_ATOMIC writes a temporary file (mode 0600) in @path's
 * directory that cowmap_log_writer_close() fsyncs and renames over @path:
 * @path is either its old self or the complete new log. COWMAP_LOGW_APPEND
 * opens an existing log, checks it completely (-EBADMSG if any record is
 * bad, so nothing is appended behind damage) and appends; it cannot be
 * combined with COWMAP_LOGW_ATOMIC. COWMAP_LOGW_NO_SYNC makes
 * cowmap_log_writer_close() skip its fsyncs (for scratch files and tests).
 *
 * Return: 0 or a negative errno (-EINVAL for bad flags, -EXDEV for an
 * append to a log of another file).
 */
int cowmap_log_writer_open(const char *path, const struct cowmap_log_info *info,
			   unsigned int flags, struct cowmap_log_writer **w);

/**
 * cowmap_log_writer_fd() - write a new log to an open fd
 * @fd: written sequentially with write(2); not closed by the writer
 * @info: the header
 * @w: receives the writer
 *
 * Return: 0 or a negative errno.
 */
int cowmap_log_writer_fd(int fd, const struct cowmap_log_info *info,
			 struct cowmap_log_writer **w);

/**
 * cowmap_log_append() - append a record
 * @w: the writer
 * @rec: the record (@rec->pos is ignored); size, padding and CRC are
 *	computed here
 *
 * Return: 0 or a negative errno (-EINVAL for a length of 0 or more than
 * COWMAP_LOG_MAX_RUN). After a failure the writer only accepts close.
 */
int cowmap_log_append(struct cowmap_log_writer *w, const struct cowmap_rec *rec);

/**
 * cowmap_log_writer_close() - finish or abandon a log
 * @w: the writer, or NULL
 * @commit: non-zero: fsync the file (and with COWMAP_LOGW_ATOMIC rename it
 *	into place and fsync the directory; no fsync with COWMAP_LOGW_NO_SYNC);
 *	zero: abandon it (the temporary
 *	file is removed; a plain or appended file keeps what was written)
 *
 * Always frees @w.
 *
 * Return: 0 or the first negative errno met by the writer or here.
 */
int cowmap_log_writer_close(struct cowmap_log_writer *w, int commit);

/**
 * cowmap_log_encode_header() - the 64 header bytes of @info
 * @info: the header (header_size and flags are forced; the version is 2
 *	when @info->version is COWMAP_LOG_VERSION, else 1; @info->file_id is
 *	not encoded: the writers write the 80-byte header that holds it)
 * @out: 64 bytes
 */
void cowmap_log_encode_header(const struct cowmap_log_info *info, void *out);

/**
 * cowmap_log_record_size() - encoded size of a record
 * @length: changed bytes
 *
 * Return: 64 + 2 * @length, rounded up to a multiple of 8.
 */
size_t cowmap_log_record_size(uint32_t length);

/**
 * cowmap_log_encode_record() - encode a record
 * @rec: the record
 * @out: cowmap_log_record_size(@rec->length) bytes
 *
 * A size record (@rec->flags COWMAP_REC_SIZE, @rec->length 0, @rec->offset
 * equal to @rec->new_size, @rec->cut_crc zero unless it shrinks) takes 96
 * bytes, and belongs in a version-2 log only.
 *
 * Return: the number of bytes written, or -EINVAL for a bad length or an
 * inconsistent size record.
 */
int cowmap_log_encode_record(const struct cowmap_rec *rec, void *out);

/* --- Offline merge --------------------------------------------------- */

/** enum cowmap_merger_policy - what to do with conflicting records */
enum cowmap_merger_policy {
	COWMAP_POLICY_ALL_OR_NOTHING = 0,	/* any conflict: write nothing */
	COWMAP_POLICY_SKIP,			/* leave conflicting records out */
	COWMAP_POLICY_FORCE,			/* write their new bytes anyway */
};

/* cowmap_merger_run() flags */
#define COWMAP_MERGER_DRY_RUN	(1U << 0)	/* report, write nothing */
#define COWMAP_MERGER_SALVAGE	(1U << 1)	/* use the good records of damaged logs */
#define COWMAP_MERGER_ANY_IDENTITY (1U << 2)	/* accept logs of another dev/inode */
#define COWMAP_MERGER_NO_SYNC	(1U << 3)	/* skip fsync (tests, scratch files) */

/** enum cowmap_merger_event_type - what a merge reports */
enum cowmap_merger_event_type {
	COWMAP_MEV_APPLY,	/* old bytes found: the new bytes apply */
	COWMAP_MEV_ALREADY,	/* already applied: nothing to do */
	COWMAP_MEV_CONFLICT,	/* neither: not applied */
	COWMAP_MEV_FORCED,	/* a conflict written anyway (force policy) */
	COWMAP_MEV_LOG_ERROR,	/* a damaged or unusable log */
	COWMAP_MEV_LOG_WARNING,	/* a truncated tail: the records before it are used */
	COWMAP_MEV_LOG_SKIPPED,	/* --all: a file that is not a log of the source */
	COWMAP_MEV_RECOVERED,	/* an interrupted in-place merge was completed */
	COWMAP_MEV_NOTE,	/* anything else worth saying (see @message) */
};

/**
 * struct cowmap_merger_event - one report of a merge
 * @type: COWMAP_MEV_*
 * @log: path of the log concerned, or NULL
 * @rec: APPLY, ALREADY, CONFLICT, FORCED: the record
 * @found: CONFLICT, FORCED: the target's bytes at the record's range
 *	(as the merge saw them, after the records before it in merge order)
 * @found_len: their number: less than @rec->length when the range runs
 *	past the end of the file; a size record (COWMAP_REC_SIZE): @found is NULL,
 *	@found_len 0, and @message says what differed (the size, or the CRC
 *	of the bytes it cuts)
 * @error: LOG_ERROR, LOG_WARNING: where and what, when about one record
 *	or header; NULL otherwise
 * @message: a human-readable detail, or NULL
 *
 * Everything points to memory valid during the callback only. The
 * library allocates this struct (callers never do): it may grow at its end.
 */
struct cowmap_merger_event {
	enum cowmap_merger_event_type type;
	const char *log;
	const struct cowmap_rec *rec;
	const uint8_t *found;
	size_t found_len;
	const struct cowmap_log_error *error;
	const char *message;
};

typedef void (*cowmap_merger_cb)(void *arg, const struct cowmap_merger_event *ev);

/** enum cowmap_merger_stage - points of a merge's write phase, for tests */
enum cowmap_merger_stage {
	COWMAP_MSTAGE_INTENT_SYNCED,	/* in place: intent file durable, source untouched */
	COWMAP_MSTAGE_RUN_WRITTEN,	/* in place: one more run written (not synced) */
	COWMAP_MSTAGE_TEMP_SYNCED,	/* -o: temp file complete and synced, not renamed */
	COWMAP_MSTAGE_DONE,		/* everything durable, intent/temp gone */
};

typedef void (*cowmap_merger_stage_cb)(void *arg, enum cowmap_merger_stage stage,
				      uint64_t n);

/**
 * struct cowmap_merger_stats - what a merge did
 * @logs: logs loaded
 * @records: records considered
 * @applied: records whose old bytes were found (written unless nothing
 *	was written, see @written)
 * @already: records found already applied
 * @conflicts: conflicting records (including forced ones)
 * @forced: conflicting records written anyway
 * @log_errors: damaged regions and unusable logs
 * @written: 1 if the target was written (in place) or OUT was created
 * @bytes_written: bytes written into the target (in place) or changed in OUT
 * @recovered: 1 if an interrupted in-place merge was completed first
 * @reserved: zeroed by the library (room to grow)
 */
struct cowmap_merger_stats {
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
	uint64_t reserved[6];
};

struct cowmap_merger;

/**
 * cowmap_merger_new() - a new, empty merge
 * @cb: called for every event (see struct cowmap_merger_event), or NULL
 * @arg: passed to @cb
 * @m: receives the merge
 *
 * Return: 0 or -ENOMEM.
 */
int cowmap_merger_new(cowmap_merger_cb cb, void *arg, struct cowmap_merger **m);

/**
 * cowmap_merger_set_stage_cb() - observe the write phase (tests)
 * @m: the merge
 * @cb: called at each COWMAP_MSTAGE_*, or NULL
 * @arg: passed to @cb
 */
void cowmap_merger_set_stage_cb(struct cowmap_merger *m, cowmap_merger_stage_cb cb,
			       void *arg);

/**
 * cowmap_merger_add_log() - load every record of a log
 * @m: the merge
 * @path: the log
 *
 * Bad records and truncated tails are reported as events; the good records
 * are loaded. Whether a damaged log may be used is decided by
 * cowmap_merger_run() (COWMAP_MERGER_SALVAGE).
 *
 * Return: the number of records loaded, or a negative errno when the log
 * cannot be used at all (open error, bad header, read error).
 */
int cowmap_merger_add_log(struct cowmap_merger *m, const char *path);

/**
 * cowmap_merger_add_dir() - load every log of @source found in @dir
 * @m: the merge
 * @dir: the directory (not recursive; names starting with '.' are ignored)
 * @source: the file the logs must be about
 * @any_identity: non-zero to take every log regardless of device and inode
 *
 * A regular file whose first bytes are not COWMAP_LOG_MAGIC is skipped
 * silently (a COWMAP_MEV_LOG_SKIPPED event), so is a log whose header names
 * another device and inode than stat(@source) unless @any_identity. A file
 * that starts like a log but has a bad header is an error.
 *
 * Return: the number of logs loaded, or a negative errno.
 */
int cowmap_merger_add_dir(struct cowmap_merger *m, const char *dir,
			 const char *source, int any_identity);

/**
 * cowmap_merger_run() - merge the loaded logs into a file
 * @m: the merge
 * @source: the file the logs are about
 * @out: NULL to write into @source in place; else the output file, created
 *	atomically as a copy of @source with the records applied
 * @policy: COWMAP_POLICY_ALL_OR_NOTHING, _SKIP or _FORCE
 * @flags: COWMAP_MERGER_DRY_RUN, _SALVAGE, _ANY_IDENTITY, _NO_SYNC
 * @stats: if not NULL, receives counts
 *
 * Records apply in order of (time_ns, session_id, seq). A record whose
 * range holds its old bytes applies; one that holds its new bytes, or the
 * result of it and later records over the same bytes, is already applied;
 * anything else, including a range running past the end of the file, is a
 * conflict. Every record is reported through the callback. See
 * docs/cowmapctl.md for the write protocol (intent file in place; temp
 * file, fsync, rename, directory fsync for @out).
 *
 * Return: the number of conflicting records left unapplied (0 means
 * everything is applied or already was; with FORCE always 0), or a
 * negative errno: -EBADMSG (a damaged log without SALVAGE), -EXDEV (a log
 * of another file without ANY_IDENTITY), -EUCLEAN (@out requested while
 * @source has an unfinished in-place merge), -ESTALE (the unfinished
 * in-place merge cannot be completed because @source changed since),
 * I/O errors. Nothing is written when an error is returned before the
 * write phase.
 */
int cowmap_merger_run(struct cowmap_merger *m, const char *source, const char *out,
		     enum cowmap_merger_policy policy, unsigned int flags,
		     struct cowmap_merger_stats *stats);

/**
 * cowmap_merger_free() - free a merge
 * @m: the merge, or NULL
 */
void cowmap_merger_free(struct cowmap_merger *m);

/* --- Generic netlink: observe sessions (needs the module) ------------ */

/*
 * These functions live in libcowmap.so, which links libmnl. Static users of
 * libcowmap.a that call them link -lmnl too (Debian ships no static
 * libmnl: link it dynamically). A handle must not be used by two threads
 * at once; use one handle for requests and another for events.
 */

struct cowmap_nl;

/**
 * cowmap_nl_open() - open a netlink handle on the "cowmap" family
 * @nl: receives the handle
 *
 * Return: 0, or a negative errno: -ENODEV (no family "cowmap": the module
 * is not loaded), -EPROTONOSUPPORT (no generic netlink), -ENOMEM.
 */
int cowmap_nl_open(struct cowmap_nl **nl);

/**
 * cowmap_nl_close() - close the handle
 * @nl: the handle, or NULL
 */
void cowmap_nl_close(struct cowmap_nl *nl);

/**
 * cowmap_nl_fd() - the socket, to poll(2) for events
 * @nl: the handle
 *
 * Return: the file descriptor (owned by the handle).
 */
int cowmap_nl_fd(const struct cowmap_nl *nl);

/**
 * cowmap_nl_extack() - the kernel's message about the last failed request
 * @nl: the handle
 *
 * Return: the extended ACK message of the last error reply (for example
 * "no such session"), or NULL if there was none. Valid until the next
 * request on @nl.
 */
const char *cowmap_nl_extack(const struct cowmap_nl *nl);

/**
 * struct cowmap_nl_session - a session as COWMAP_CMD_SESSION_GET tells it
 * @session_id: the id
 * @state: COWMAP_STATE_ATTACHED or COWMAP_STATE_ORPHANED
 * @owner_pid: the process that attached it
 * @owner_uid: its owner
 * @dev_major: backing file's device
 * @dev_minor: backing file's device
 * @ino: backing file's inode number
 * @size: backing file's size now
 * @private_pages: pages holding the session's own copies
 * @twin_pages: pages written and not yet committed
 * @records: journal records held in the kernel
 * @journal_bytes: their size in the journal format
 * @merged: records a kernel merge applied or found applied
 * @path: the backing file's path, or NULL when the kernel cannot name it
 * @journal_path: the journal file's path, or NULL without one
 * @has_counters: 1 if the kernel sent the counters below (modules before
 *	0.2.0's COWMAP_A_MAPPINGS do not; they are 0 then)
 * @mappings: the counters of struct cowmap_status of the same names,
 *	read without adopting the session
 * @base_pages: see @mappings
 * @faults: see @mappings
 * @cow_copies: see @mappings
 * @rearms: see @mappings
 * @base_invalidations: see @mappings
 * @limit_hits: see @mappings
 * @commits: see @mappings
 * @has_session_size: 1 if the kernel sent @session_size (COWMAP_A_SESSION_SIZE;
 *	modules before it do not: it is 0 then)
 * @session_size: the session's size: the backing file's until the session
 *	sets its own (a view's ftruncate or write past the end,
 *	cowmap_set_size()), as struct cowmap_status's field of that name
 * @reserved: zeroed by the library (room to grow: a new member takes the
 *	first reserved slot, so that the struct keeps its size)
 *
 * The strings belong to the handle: valid until its next request (in a
 * cowmap_nl_sessions() callback: during the callback).
 */
struct cowmap_nl_session {
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
	uint32_t has_counters;
	uint64_t mappings;
	uint64_t base_pages;
	uint64_t faults;
	uint64_t cow_copies;
	uint64_t rearms;
	uint64_t base_invalidations;
	uint64_t limit_hits;
	uint64_t commits;
	uint32_t has_session_size;
	uint64_t session_size;
	uint64_t reserved[6];
};

typedef void (*cowmap_nl_session_cb)(void *arg, const struct cowmap_nl_session *s);

/**
 * cowmap_nl_session_get() - one session by id
 * @nl: the handle
 * @session_id: the id
 * @s: receives the session
 *
 * A caller without CAP_SYS_ADMIN sees only sessions of its own uid.
 *
 * Return: 0 or a negative errno: -ENOENT (no such session, or another
 * user's; cowmap_nl_extack() says "no such session").
 */
int cowmap_nl_session_get(struct cowmap_nl *nl, uint64_t session_id,
			  struct cowmap_nl_session *s);

/**
 * cowmap_nl_sessions() - every visible session, in id order
 * @nl: the handle
 * @cb: called once per session
 * @arg: passed to @cb
 *
 * Return: the number of sessions, or a negative errno.
 */
int cowmap_nl_sessions(struct cowmap_nl *nl, cowmap_nl_session_cb cb, void *arg);

/**
 * cowmap_nl_log_get() - a session's whole journal (COWMAP_CMD_LOG_GET)
 * @nl: the handle
 * @session_id: the session
 * @buf: receives a malloc()ed buffer: the log header, then every record,
 *	in the journal format (the bytes COWMAP_IOC_DUMP gives); free() it
 * @len: receives its length
 *
 * No session fd is needed: any visible session, attached or orphaned.
 * Read the result with cowmap_log_open_mem(), which checks every record.
 *
 * Return: 0 or a negative errno: -ENOENT (no such session), -EPROTO (an
 * answer out of order), -ENOMEM.
 */
int cowmap_nl_log_get(struct cowmap_nl *nl, uint64_t session_id, void **buf,
		      size_t *len);

/**
 * cowmap_nl_subscribe() - join the "events" multicast group
 * @nl: the handle (use it for events only from now on)
 *
 * Return: 0 or a negative errno.
 */
int cowmap_nl_subscribe(struct cowmap_nl *nl);

/* struct cowmap_nl_event.present */
#define COWMAP_NL_EV_HAS_RECORDS	(1U << 0)	/* records, journal_bytes */
#define COWMAP_NL_EV_HAS_MERGE		(1U << 1)	/* applied, already */
#define COWMAP_NL_EV_HAS_CONFLICTS	(1U << 2)	/* conflicts */
#define COWMAP_NL_EV_HAS_LIMIT_HITS	(1U << 3)	/* limit_hits */

/**
 * struct cowmap_nl_event - one event (COWMAP_CMD_EVENT)
 * @event: COWMAP_EV_*
 * @owner_uid: the session's owner
 * @session_id: the session
 * @records: COMMIT: records added
 * @journal_bytes: COMMIT: journal bytes added
 * @applied: MERGE: records applied
 * @already: MERGE: records found already applied
 * @conflicts: MERGE, CONFLICT: conflicting records
 * @limit_hits: LIMIT: faults refused so far
 * @present: COWMAP_NL_EV_HAS_*: which counts the event carried
 * @reserved0: zeroed by the library (room to grow)
 * @reserved: zeroed by the library
 */
struct cowmap_nl_event {
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
	uint32_t reserved0;
	uint64_t reserved[4];
};

/**
 * cowmap_nl_event_next() - wait for the next event
 * @nl: a subscribed handle
 * @ev: receives the event
 * @timeout_ms: how long to wait: -1 forever, 0 not at all
 *
 * Return: 1 (an event), 0 (the timeout passed), or a negative errno:
 * -EINTR (a signal arrived), -ENOBUFS (the socket overflowed and events
 * were lost; the next call goes on with the following ones), -EINVAL (not
 * subscribed).
 */
int cowmap_nl_event_next(struct cowmap_nl *nl, struct cowmap_nl_event *ev,
			 int timeout_ms);

/**
 * cowmap_nl_event_name() - the name of an event
 * @event: COWMAP_EV_*
 *
 * Return: "attach", "commit", "merge", "conflict", "orphan", "adopt",
 * "discard", "limit", "dropped", "close", or NULL for an unknown value.
 */
const char *cowmap_nl_event_name(uint32_t event);

#ifdef __cplusplus
}
#endif

#endif /* LIBCOWMAP_H */
