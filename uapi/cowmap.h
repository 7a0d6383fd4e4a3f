/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * cowmap: isolated copy-on-write sessions on a regular file.
 *
 * Open /dev/cowmap, negotiate the API with COWMAP_IOC_API, attach the fd to
 * a regular file with COWMAP_IOC_ATTACH, then mmap(MAP_SHARED) the cowmap fd.
 * Pages the session never wrote show the file's live contents; pages it
 * wrote show its own private copy. Writes never reach the file.
 *
 * Every ioctl argument is a fixed-size structure whose size is encoded in the
 * command number: a size mismatch is refused with EINVAL, an unknown command
 * with ENOTTY, non-zero reserved fields or unknown flags with EINVAL.
 */
#ifndef _UAPI_LINUX_COWMAP_H
#define _UAPI_LINUX_COWMAP_H

#include <linux/const.h>
#include <linux/ioctl.h>
#include <linux/types.h>

#define COWMAP_DEVICE_PATH	"/dev/cowmap"

/*
 * /dev/cowmap is misc device 10:248, a fixed number from the range 243-254
 * that Documentation/admin-guide/devices.txt reserves for local use: a
 * static node (modules.devname, "kmod static-nodes") loads the module on
 * the first open, as /dev/fuse does.
 */
#define COWMAP_MISC_MINOR	248

/* The only API version so far. */
#define COWMAP_API		1

#define COWMAP_IOC_MAGIC	0xC7

/**
 * struct cowmap_api - API handshake (COWMAP_IOC_API)
 * @api: in: the API version the caller speaks (COWMAP_API).
 * @reserved0: must be zero.
 * @features: in: the optional features the caller wants (COWMAP_FEATURE_*);
 *	unknown bits are refused with EINVAL. out: every feature the module
 *	supports.
 * @ioctls: in: must be zero. out: bit N set means the ioctl with _IOC_NR() == N is available
 *	on this fd after the handshake (see COWMAP_IOCTL_BIT()).
 * @reserved: must be zero.
 *
 * Must be the first ioctl on a fresh /dev/cowmap fd and succeeds once per
 * fd: every other ioctl fails with EINVAL until it has succeeded, and a
 * second handshake on the same fd fails with EBUSY.
 */
struct cowmap_api {
	__u32 api;
	__u32 reserved0;
	__u64 features;
	__u64 ioctls;
	__u64 reserved[4];
};

/* No optional features are defined in API version 1. */
#define COWMAP_FEATURES_ALL	0ULL

/* struct cowmap_attach.flags */
#define COWMAP_ATTACH_JOURNAL	_BITUL(0)	/* @journal_fd is valid */

/**
 * struct cowmap_attach - attach a session to a file (COWMAP_IOC_ATTACH)
 * @fd: in: an fd of a regular file, opened for reading (O_RDONLY or O_RDWR).
 *	Its permission checks are the ones that stand: the module never opens
 *	anything by path.
 * @flags: in: COWMAP_ATTACH_*; other bits must be zero.
 * @session_id: out: the id of the session, unique while the module is
 *	loaded (also reported by COWMAP_IOC_STATUS). Must be zero on input.
 * @journal_fd: in, with COWMAP_ATTACH_JOURNAL: an fd of a regular file
 *	opened for writing, where every commit appends its records (the
 *	"journal file", see docs/journal-format.md). An empty file gets a log
 *	header first; a non-empty one must already start with a valid header
 *	for the same backing file (the same device and inode, or the same
 *	file id, COWMAP_FILE_ID_XATTR, and inode). It must not be the backing
 *	file. Without the flag, must be zero. The backing file's
 *	COWMAP_FILE_ID_XATTR is read once, here: with it, the session's log
 *	header is struct cowmap_log_header_id (80 bytes).
 * @reserved0: must be zero.
 * @reserved: must be zero.
 *
 * A session attaches once. Errors: EBADF (@fd or @journal_fd is not an
 * open fd), EACCES (@fd not opened for reading, @journal_fd not opened for
 * writing), EISDIR (a directory), EINVAL (not a regular file, or a journal
 * file that is not a log of this file), EOPNOTSUPP (a regular file whose
 * filesystem cowmap cannot read through the page cache, e.g. DAX or
 * hugetlbfs), EBUSY (already attached).
 */
struct cowmap_attach {
	__s32 fd;
	__u32 flags;
	__u64 session_id;
	__s32 journal_fd;
	__u32 reserved0;
	__u64 reserved[3];
};

/* Session states reported by COWMAP_IOC_STATUS. */
#define COWMAP_STATE_NEW	0	/* opened, not attached */
#define COWMAP_STATE_ATTACHED	1
#define COWMAP_STATE_ORPHANED	2	/* no fd or mapping left; kept for its changes */

/**
 * struct cowmap_status - session status (COWMAP_IOC_STATUS)
 * @session_id: the session's id.
 * @state: COWMAP_STATE_*.
 * @reserved0: zero.
 * @dev_major: backing file's device (as statx's stx_dev_major).
 * @dev_minor: backing file's device (as statx's stx_dev_minor).
 * @ino: backing file's inode number.
 * @size_at_attach: backing file's size in bytes when attached.
 * @size: backing file's size in bytes now.
 * @mappings: number of VMAs mapping the session, in all processes (a
 *	partial munmap or mprotect that splits a mapping counts each piece).
 * @private_pages: pages holding the session's own copy of a file page.
 * @twin_pages: pages holding the pre-write content of a page written since
 *	the last commit (the "twin" the journal diffs against).
 * @base_pages: backing-file pages the session holds a reference to because
 *	a mapping may point at them.
 * @faults: read and write faults handled.
 * @cow_copies: first writes to a page that made a private copy.
 * @rearms: writes to an already private page that took a new twin.
 * @base_invalidations: base pages unmapped because the backing file changed
 *	under them (truncate, hole punch, direct I/O).
 * @limit_hits: faults refused because a page limit was reached.
 * @journal_records: committed records held in the kernel.
 * @journal_bytes: their size in the journal format (what a dump returns,
 *	less the header).
 * @next_seq: the sequence number the next record will get (records are
 *	numbered 1, 2, ... per session).
 * @commits: commits that produced records or found nothing to record.
 * @journal_file_seq: the last sequence number written to the journal file
 *	(0 without one); smaller than @next_seq - 1 after a failed file write,
 *	which the next commit retries.
 * @merged_records: records a kernel merge applied or found applied (a trim
 *	drops them).
 * @session_size: the session's size: @size until the session changes it
 *	(see COWMAP_IOC_SET_SIZE), then its own.
 * @base_reclaimed: base pages unpinned (unmapped, the reference dropped)
 *	so that reclaim could take them: under memory pressure, or for a
 *	session at a pinning limit. A later access maps them again.
 *
 * Memory owned by the session is (@private_pages + @twin_pages) pages; both
 * count against the limits (module parameters max_session_pages and
 * max_total_pages).
 */
struct cowmap_status {
	__u64 session_id;
	__u32 state;
	__u32 reserved0;
	__u32 dev_major;
	__u32 dev_minor;
	__u64 ino;
	__u64 size_at_attach;
	__u64 size;
	__u64 mappings;
	__u64 private_pages;
	__u64 twin_pages;
	__u64 base_pages;
	__u64 faults;
	__u64 cow_copies;
	__u64 rearms;
	__u64 base_invalidations;
	__u64 limit_hits;
	__u64 journal_records;
	__u64 journal_bytes;
	__u64 next_seq;
	__u64 commits;
	__u64 journal_file_seq;
	__u64 merged_records;
	__u64 session_size;
	__u64 base_reclaimed;
};

/* struct cowmap_commit.flags */
#define COWMAP_COMMIT_DURABLE	_BITUL(0)	/* fsync the journal file */

/**
 * struct cowmap_commit - commit the session's writes (COWMAP_IOC_COMMIT)
 * @flags: in: COWMAP_COMMIT_*; other bits must be zero.
 * @records: out: records this commit added.
 * @bytes: out: journal bytes this commit added.
 * @first_seq: out: sequence number of the first record added (0 if none).
 * @pages: out: written pages this commit looked at.
 * @reserved: must be zero.
 *
 * Every page written since the last commit is compared with its content
 * before the first write (its twin); each run of changed bytes becomes a
 * record (old bytes, new bytes). Unchanged bytes produce nothing; a page
 * written back to its old content produces nothing. The pages are then
 * write-protected again, so the next write is tracked from this state.
 * Records never extend past the backing file's current end.
 *
 * Errors: ENOSPC (the journal would exceed the module parameter
 * max_journal_bytes; nothing was recorded and the pages stay written, so a
 * later commit records them), ENOMEM, and with a journal file any error of
 * writing or syncing it (EIO, ENOSPC, ...): the records are then committed
 * in the kernel but not yet in the file, and the next commit writes them
 * first. EINVAL on an unattached session. fsync(2) and msync(MS_SYNC) on
 * the session do a durable commit.
 */
struct cowmap_commit {
	__u32 flags;
	__u32 records;
	__u64 bytes;
	__u64 first_seq;
	__u64 pages;
	__u64 reserved[4];
};

/**
 * struct cowmap_dump - read the journal (COWMAP_IOC_DUMP)
 * @buf: in: user address of a buffer.
 * @buf_size: in: its size in bytes.
 * @flags: in: must be zero.
 * @cursor: in: 0 to start with the log header, else the value returned
 *	by the previous call. out: where the next call goes on.
 * @bytes: out: bytes written to @buf: whole items (the header, records)
 *	only; 0 with @needed == 0 means the end of the journal.
 * @records: out: records written to @buf.
 * @needed: out: when not even the next item fitted in @buf, its size
 *	(and @bytes is 0); else 0.
 * @reserved0: must be zero.
 * @reserved: must be zero.
 *
 * The bytes are the journal format of docs/journal-format.md: the
 * concatenation of all calls from cursor 0 to the end is a complete log,
 * byte-identical to a journal file of the session. read(2) on the session
 * fd returns the same stream.
 */
struct cowmap_dump {
	__u64 buf;
	__u32 buf_size;
	__u32 flags;
	__u64 cursor;
	__u32 bytes;
	__u32 records;
	__u32 needed;
	__u32 reserved0;
	__u64 reserved[4];
};

/**
 * struct cowmap_adopt - take over an orphaned session (COWMAP_IOC_ADOPT)
 * @session_id: in: the orphan's id.
 * @reserved: must be zero.
 *
 * On a handshaken, unattached fd. The fd becomes the session: its journal,
 * its written pages, its backing file. Only the session's owner (same uid)
 * or CAP_SYS_ADMIN may adopt it. Errors: ENOENT (no such orphan), EPERM,
 * EBUSY (the fd is attached already).
 */
struct cowmap_adopt {
	__u64 session_id;
	__u64 reserved[3];
};

/* struct cowmap_merge.flags */
#define COWMAP_MERGE_SKIP	_BITUL(0)	/* apply what applies, skip conflicts */
#define COWMAP_MERGE_FORCE	_BITUL(1)	/* write new bytes even over conflicts */
#define COWMAP_MERGE_DRY_RUN	_BITUL(2)	/* check and report, write nothing */
#define COWMAP_MERGE_FSYNC	_BITUL(3)	/* fsync the target afterwards */

/* Bytes of a conflict shown in struct cowmap_conflict. */
#define COWMAP_CONFLICT_SHOW	32

/**
 * struct cowmap_conflict - one conflicting record, reported by a merge
 * @session_id: the record's session.
 * @seq: the record's sequence number.
 * @offset: the record's file offset.
 * @length: the record's length.
 * @diff_at: offset in the record of the first byte of the target that
 *	differs from the record's old bytes (or where the target ends);
 *	@expected and @found start there.
 * @shown: bytes in @expected and @found (up to COWMAP_CONFLICT_SHOW); less
 *	than the rest of the record when the target ends early.
 * @reserved: zero.
 * @expected: the record's old bytes from @diff_at.
 * @found: the target's bytes from @diff_at.
 */
struct cowmap_conflict {
	__u64 session_id;
	__u64 seq;
	__u64 offset;
	__u32 length;
	__u32 diff_at;
	__u32 shown;
	__u32 reserved;
	__u8 expected[COWMAP_CONFLICT_SHOW];
	__u8 found[COWMAP_CONFLICT_SHOW];
};

/**
 * struct cowmap_merge - apply the journal to a file (COWMAP_IOC_MERGE)
 * @target_fd: in: a regular file opened for reading and writing (O_RDWR;
 *	the merge reads it to find conflicts), not O_DIRECT or O_APPEND;
 *	usually the backing file itself.
 * @flags: in: COWMAP_MERGE_*; SKIP and FORCE exclude each other.
 * @conflicts_buf: in: user address of an array of struct cowmap_conflict,
 *	or 0.
 * @conflicts_max: in: entries in that array.
 * @reserved0: must be zero.
 * @records: out: records examined (all the journal holds).
 * @applied: out: records whose old bytes matched and that were written
 *	(or would have been, with DRY_RUN or when conflicts stopped the merge).
 * @already: out: records whose new bytes were there already.
 * @conflicts: out: records that matched neither; the first @conflicts_max
 *	are described in @conflicts_buf.
 * @written: out: bytes written to the target.
 * @reserved: must be zero.
 *
 * Records apply in sequence order. A record applies cleanly when the
 * target's bytes equal its old bytes, is already applied when they equal
 * its new bytes (so a merge run again, or interrupted and run again,
 * completes), and conflicts otherwise; bytes past the target's end match
 * nothing. All records are checked against the target as earlier records
 * leave it, then the changed ranges are written through the filesystem's
 * own write path (as write(2) on @target_fd: permissions, LSMs, immutable
 * files, quotas, RLIMIT_FSIZE and fsnotify apply) and the size is set as
 * ftruncate(2) on it would. From the check to the end of the write the
 * merge holds a whole-file OFD write lock on @target_fd (the lock of
 * fcntl(F_OFD_SETLKW), which NFS forwards to the server; libcowmap's
 * offline merge takes it too): merges into one file serialise, here and on
 * other NFS clients. A lock the caller held on @target_fd's open file
 * description is released at the end; a lock held elsewhere makes the
 * merge wait (killable). Writers that take no lock can interleave with a
 * merge, as with two write(2) calls. A write or resize that fails part-way
 * writes the target's original bytes back and restores its size (best
 * effort) before returning the error, and @written is then 0. Default
 * policy: if any record conflicts, nothing is written. With
 * SKIP, the others are written; with FORCE, every record's new bytes are.
 * The call succeeds (0) whenever the journal could be checked: look at
 * @conflicts. Records applied or already applied are marked merged (see
 * COWMAP_IOC_TRIM). Sessions that show the target see the new bytes at
 * once in the pages they have not written.
 *
 * Errors: EBADF (not an fd, or not opened O_RDWR), EINVAL (flags, a
 * non-regular target or a view, O_DIRECT or O_APPEND), EOPNOTSUPP (a file
 * that cannot be read or written), EINTR (killed while waiting for the
 * lock), ENOMEM, and what write(2) and ftruncate(2) on the target return
 * (EPERM, ENOSPC, EDQUOT, EFBIG, EIO, ...).
 */
struct cowmap_merge {
	__s32 target_fd;
	__u32 flags;
	__u64 conflicts_buf;
	__u32 conflicts_max;
	__u32 reserved0;
	__u64 records;
	__u64 applied;
	__u64 already;
	__u64 conflicts;
	__u64 written;
	__u64 reserved[4];
};

/* struct cowmap_view.flags */
#define COWMAP_VIEW_RDWR	_BITUL(0)	/* read-write; else read-only */
#define COWMAP_VIEW_CLOEXEC	_BITUL(1)	/* the new fd is close-on-exec */

/**
 * struct cowmap_view - a regular-file fd on the session (COWMAP_IOC_VIEW)
 * @flags: in: COWMAP_VIEW_*; other bits must be zero.
 * @fd: out: the new fd. Must be zero on input.
 * @reserved: must be zero.
 *
 * The new fd is a regular file (S_ISREG, st_size the session's size) on
 * the module's own pseudo filesystem that shows the session as its
 * mapping does: read(2), pread(2), readv(2), splice(2), sendfile(2) and
 * copy_file_range(2) from it read the session's bytes (its own pages where
 * it wrote, the backing file's live bytes elsewhere); write(2), pwrite(2),
 * writev(2) copy into the session's
 * private pages exactly like stores through a mapping, and a commit
 * journals them the same way; mmap(2) MAP_SHARED maps the same pages as a
 * mapping of the session fd; fsync(2) and fdatasync(2) are a durable
 * commit; lseek(2) SEEK_DATA and SEEK_HOLE report the backing file's data
 * and holes, and the pages the session wrote as data. fallocate(2) takes
 * mode 0 (which grows the session past its end) and FALLOC_FL_KEEP_SIZE and
 * FALLOC_FL_PUNCH_HOLE or FALLOC_FL_ZERO_RANGE, which write zeros like a
 * write(2) does; other modes fail with EOPNOTSUPP. O_DIRECT is refused
 * (EINVAL from fcntl(2)). The fd keeps the session alive as a mapping
 * does: the session is closed (committed, orphaned or freed) when its last
 * fd, view or mapping goes. The backing file is never written.
 *
 * A write past the end (O_APPEND writes at the end), ftruncate(2) and
 * fallocate(2) past the end change the session's size, as
 * COWMAP_IOC_SET_SIZE does.
 *
 * Errors: EINVAL (flags, @fd or @reserved not zero; an unattached session),
 * EBADF (COWMAP_VIEW_RDWR on a session fd not opened for writing), EMFILE,
 * ENFILE, ENOMEM. On the view: EBADF (a write on a read-only view), ENOSPC
 * (a write past max_session_pages or max_total_pages), EFBIG (a size past
 * RLIMIT_FSIZE or what the backing file's filesystem allows), ENOMEM.
 */
struct cowmap_view {
	__u32 flags;
	__s32 fd;
	__u64 reserved[3];
};

/**
 * struct cowmap_size - set the session's size (COWMAP_IOC_SET_SIZE)
 * @size: in: the new size in bytes.
 * @flags: in: must be zero.
 * @reserved0: must be zero.
 * @old_size: out: the size before. Must be zero on input.
 * @reserved: must be zero.
 *
 * Until its size is first changed, a session's size is the backing
 * file's, and follows it. From the first change (this ioctl, ftruncate(2)
 * of a view, a write or fallocate(2) past the end of a view) it is the
 * session's own: bytes past the backing file's end read as zeros until
 * written, and a mapping past the session's size gets SIGBUS. Shrinking
 * drops the session's pages past the new end (growing again reads zeros).
 * Every change is journalled as a size record (journal format 2), ordered
 * with the byte records: a shrink commits what was written before it.
 *
 * Errors: EINVAL (negative @size, flags or reserved fields), EFBIG (@size
 * past the largest file size, or RLIMIT_FSIZE), ENOSPC (the journal is
 * full), ENOMEM, and the errors of a commit.
 */
struct cowmap_size {
	__s64 size;
	__u32 flags;
	__u32 reserved0;
	__s64 old_size;
	__u64 reserved[2];
};

/**
 * struct cowmap_refresh - look at the backing file again (COWMAP_IOC_REFRESH)
 * @flags: in: must be zero.
 * @reserved0: must be zero.
 * @invalidated: out: pages the session showed from the file that were no
 *	longer the file's and are unmapped now. Must be zero on input.
 * @reserved: must be zero.
 *
 * Changes made through this machine's page cache reach the session by
 * themselves (docs/design.md, "When someone else changes the file"); a
 * change no local event reports does not: another NFS client's write
 * makes this client drop its cached pages only when it next revalidates
 * the file. This ioctl makes the backing file's filesystem revalidate its
 * attributes now (as statx(AT_STATX_FORCE_SYNC) does) and read one byte
 * (NFS drops the pages of a file that changed in its read path), then
 * unmaps every page the session shows from the file that is no longer in
 * its page cache, and everything past its end. Afterwards, pages the
 * session has not written show the file as the server has it; pages it
 * wrote stay as they are. It also waits for the revalidation local
 * changes queue (hole punch, direct I/O), so that the session's mapping
 * shows them once it returns.
 *
 * Any session fd may refresh, read-only ones too. Errors: EINVAL (no
 * session, flags or reserved fields), and the errors of the filesystem's
 * getattr and read (EIO, EINTR when killed, ESTALE, ...).
 */
struct cowmap_refresh {
	__u32 flags;
	__u32 reserved0;
	__u64 invalidated;
	__u64 reserved[2];
};

#define COWMAP_IOC_API		_IOWR(COWMAP_IOC_MAGIC, 0x00, struct cowmap_api)
#define COWMAP_IOC_ATTACH	_IOWR(COWMAP_IOC_MAGIC, 0x01, struct cowmap_attach)
#define COWMAP_IOC_STATUS	_IOR(COWMAP_IOC_MAGIC, 0x02, struct cowmap_status)
#define COWMAP_IOC_COMMIT	_IOWR(COWMAP_IOC_MAGIC, 0x03, struct cowmap_commit)
#define COWMAP_IOC_DUMP		_IOWR(COWMAP_IOC_MAGIC, 0x04, struct cowmap_dump)
#define COWMAP_IOC_ADOPT	_IOW(COWMAP_IOC_MAGIC, 0x05, struct cowmap_adopt)
/* Drop the session's journal and written pages: it shows the file again. */
#define COWMAP_IOC_DISCARD	_IO(COWMAP_IOC_MAGIC, 0x06)
#define COWMAP_IOC_MERGE	_IOWR(COWMAP_IOC_MAGIC, 0x07, struct cowmap_merge)
/*
 * Drop the records a merge marked merged (and already in the journal file,
 * if there is one). The sequence numbers of the others do not change.
 */
#define COWMAP_IOC_TRIM		_IO(COWMAP_IOC_MAGIC, 0x08)
#define COWMAP_IOC_VIEW		_IOWR(COWMAP_IOC_MAGIC, 0x09, struct cowmap_view)
#define COWMAP_IOC_SET_SIZE	_IOWR(COWMAP_IOC_MAGIC, 0x0a, struct cowmap_size)
#define COWMAP_IOC_REFRESH	_IOWR(COWMAP_IOC_MAGIC, 0x0b, struct cowmap_refresh)

/*
 * The journal format (docs/journal-format.md), for dumps and journal files:
 * a header, then records. All integers are little-endian. Checksums are
 * CRC-32 (IEEE 802.3, the one zlib's crc32() computes) over the item with
 * its crc field set to zero.
 */
#define COWMAP_LOG_MAGIC	"COWMAPLG"	/* 8 bytes, no NUL */
#define COWMAP_LOG_VERSION	2	/* a log with size records */
#define COWMAP_LOG_VERSION_1	1	/* byte records only */
#define COWMAP_REC_MAGIC	0x52574f43U	/* "COWR" as little-endian bytes */
#define COWMAP_LOG_MAX_RUN	16384		/* longer runs are split */

/**
 * struct cowmap_log_header - first 64 bytes of a log (see below for 80)
 * @magic: COWMAP_LOG_MAGIC.
 * @version: COWMAP_LOG_VERSION.
 * @header_size: records start here: sizeof(struct cowmap_log_header), or
 *	sizeof(struct cowmap_log_header_id) for a log with the file's id.
 * @session_id: the session that created the log.
 * @dev_major: backing file's device, as statx's stx_dev_major.
 * @dev_minor: backing file's device, as statx's stx_dev_minor.
 * @ino: backing file's inode number.
 * @size_at_attach: backing file's size when the session attached.
 * @created_ns: when the log was created (CLOCK_REALTIME, ns).
 * @flags: zero.
 * @crc: CRC-32 of the @header_size header bytes with @crc zero.
 */
struct cowmap_log_header {
	__u8 magic[8];
	__le32 version;
	__le32 header_size;
	__le64 session_id;
	__le32 dev_major;
	__le32 dev_minor;
	__le64 ino;
	__le64 size_at_attach;
	__le64 created_ns;
	__le32 flags;
	__le32 crc;
};

/* The backing file's id (docs/nfs.md, "Journal identity across machines"). */
#define COWMAP_FILE_ID_XATTR	"user.cowmap.id"
#define COWMAP_FILE_ID_SIZE	16

/**
 * struct cowmap_log_header_id - an 80-byte log header: with the file's id
 * @h: the header; @h.header_size is 80, and @h.crc covers all 80 bytes.
 * @file_id: the backing file's COWMAP_FILE_ID_XATTR xattr (16 bytes) when
 *	the session attached. A log has this header only if the file had the
 *	xattr; a log of a file without it has the 64-byte header.
 *
 * A log names its file by @h.dev_major, @h.dev_minor and @h.ino, or by
 * @file_id and @h.ino: the id survives what the device does not (another
 * NFS client, the NFS server).
 */
struct cowmap_log_header_id {
	struct cowmap_log_header h;
	__u8 file_id[COWMAP_FILE_ID_SIZE];
};

/**
 * struct cowmap_log_record - a record: this, then old and new bytes
 * @magic: COWMAP_REC_MAGIC.
 * @size: the whole record in bytes: this header, @length old bytes,
 *	@length new bytes, and zero padding to a multiple of 8.
 * @seq: sequence number, 1, 2, ... within the session.
 * @session_id: the session that committed it.
 * @offset: file offset of the first changed byte.
 * @length: number of changed bytes (1 to COWMAP_LOG_MAX_RUN).
 * @flags: zero.
 * @time_ns: commit time (CLOCK_REALTIME, ns).
 * @pid: committing process (thread group id, initial pid namespace).
 * @uid: committing user (initial user namespace).
 * @crc: CRC-32 of the whole record (@size bytes) with @crc zero.
 * @reserved: zero.
 */
struct cowmap_log_record {
	__le32 magic;
	__le32 size;
	__le64 seq;
	__le64 session_id;
	__le64 offset;
	__le32 length;
	__le32 flags;
	__le64 time_ns;
	__le32 pid;
	__le32 uid;
	__le32 crc;
	__le32 reserved;
};

/* struct cowmap_log_record.flags */
#define COWMAP_REC_SIZE		0x1U	/* a size record (version 2) */

/**
 * struct cowmap_log_size - the payload of a size record (version 2)
 * @old_size: the session's size before the change.
 * @new_size: the size after it.
 * @cut_crc: with @new_size < @old_size, CRC-32 of the bytes cut,
 *	[@new_size, @old_size) as the session had them; else zero.
 * @reserved0: zero.
 * @reserved: zero.
 *
 * A size record is a struct cowmap_log_record with @flags COWMAP_REC_SIZE,
 * @offset the new size, @length 0, followed by this (its @size is 96).
 * A merge applies it when the target's size is @old_size (and, shrinking,
 * the bytes cut have @cut_crc), finds it applied when the size is
 * @new_size, and reports a conflict otherwise.
 */
struct cowmap_log_size {
	__le64 old_size;
	__le64 new_size;
	__le32 cut_crc;
	__le32 reserved0;
	__le64 reserved;
};

/*
 * Generic netlink family "cowmap" (docs/netlink.md): observation only;
 * every change of state goes through a session fd.
 *
 * COWMAP_CMD_SESSION_GET, do (COWMAP_A_SESSION_ID) or dump: sessions, one
 *	message each. Callers without CAP_SYS_ADMIN see their own uid's only.
 * COWMAP_CMD_LOG_GET, dump (COWMAP_A_SESSION_ID): the session's journal:
 *	COWMAP_A_LOG_HEADER in the first message, then COWMAP_A_RECORD
 *	attributes, each one record in the journal format. Same permission
 *	rule. Resumes across recvmsg() calls like any dump.
 * COWMAP_CMD_EVENT: multicast on group COWMAP_MCGRP_EVENTS, one message
 *	per event: COWMAP_A_EVENT, COWMAP_A_SESSION_ID, COWMAP_A_OWNER_UID and
 *	the counts that go with the event. Events name sessions and counts
 *	only, never data or paths.
 */
#define COWMAP_GENL_NAME	"cowmap"
#define COWMAP_GENL_VERSION	1
#define COWMAP_MCGRP_EVENTS	"events"

enum cowmap_cmd {
	COWMAP_CMD_UNSPEC,
	COWMAP_CMD_SESSION_GET,
	COWMAP_CMD_LOG_GET,
	COWMAP_CMD_EVENT,
	__COWMAP_CMD_MAX,
};

#define COWMAP_CMD_MAX (__COWMAP_CMD_MAX - 1)

/**
 * enum cowmap_attr - attributes of the netlink family
 * @COWMAP_A_UNSPEC: none
 * @COWMAP_A_PAD: padding of 64-bit attributes
 * @COWMAP_A_SESSION_ID: u64, the session
 * @COWMAP_A_STATE: u32, COWMAP_STATE_*
 * @COWMAP_A_OWNER_PID: u32, the process that attached
 * @COWMAP_A_OWNER_UID: u32, the owner
 * @COWMAP_A_DEV_MAJOR: u32, the backing file's device
 * @COWMAP_A_DEV_MINOR: u32, the backing file's device
 * @COWMAP_A_INO: u64, the backing file's inode number
 * @COWMAP_A_PATH: string, the backing file's path, when known
 * @COWMAP_A_SIZE: u64, the backing file's size now
 * @COWMAP_A_PRIVATE_PAGES: u64, the session's own pages
 * @COWMAP_A_TWIN_PAGES: u64, pages written and not committed
 * @COWMAP_A_RECORDS: u64, journal records
 * @COWMAP_A_JOURNAL_BYTES: u64, their bytes in the journal format
 * @COWMAP_A_MERGED: u64, merged records
 * @COWMAP_A_JOURNAL_PATH: string, the journal file, if any
 * @COWMAP_A_LOG_HEADER: binary, struct cowmap_log_header, or struct
 *	cowmap_log_header_id when the file has an id (its header_size says)
 * @COWMAP_A_RECORD: binary, one journal record
 * @COWMAP_A_EVENT: u32, COWMAP_EV_*
 * @COWMAP_A_APPLIED: u64, merge event
 * @COWMAP_A_ALREADY: u64, merge event
 * @COWMAP_A_CONFLICTS: u64, merge and conflict events
 * @COWMAP_A_LIMIT_HITS: u64, limit event; session counter
 * @COWMAP_A_MAPPINGS: u64, session counter of struct cowmap_status, in
 *	session messages, as the next six
 * @COWMAP_A_BASE_PAGES: u64, session counter
 * @COWMAP_A_FAULTS: u64, session counter
 * @COWMAP_A_COW_COPIES: u64, session counter
 * @COWMAP_A_REARMS: u64, session counter
 * @COWMAP_A_BASE_INVALIDATIONS: u64, session counter
 * @COWMAP_A_COMMITS: u64, session counter
 * @COWMAP_A_SESSION_SIZE: u64, in session messages: the session's size,
 *	as struct cowmap_status's @session_size says it (the backing file's
 *	until the session sets its own; docs/design.md, "Sizes"). Modules
 *	before it do not send it.
 * @__COWMAP_A_MAX: one past the last
 *
 * New attributes are added at the end; numbers never change.
 */
enum cowmap_attr {
	COWMAP_A_UNSPEC,
	COWMAP_A_PAD,
	COWMAP_A_SESSION_ID,
	COWMAP_A_STATE,
	COWMAP_A_OWNER_PID,
	COWMAP_A_OWNER_UID,
	COWMAP_A_DEV_MAJOR,
	COWMAP_A_DEV_MINOR,
	COWMAP_A_INO,
	COWMAP_A_PATH,
	COWMAP_A_SIZE,
	COWMAP_A_PRIVATE_PAGES,
	COWMAP_A_TWIN_PAGES,
	COWMAP_A_RECORDS,
	COWMAP_A_JOURNAL_BYTES,
	COWMAP_A_MERGED,
	COWMAP_A_JOURNAL_PATH,
	COWMAP_A_LOG_HEADER,
	COWMAP_A_RECORD,
	COWMAP_A_EVENT,
	COWMAP_A_APPLIED,
	COWMAP_A_ALREADY,
	COWMAP_A_CONFLICTS,
	COWMAP_A_LIMIT_HITS,
	COWMAP_A_MAPPINGS,
	COWMAP_A_BASE_PAGES,
	COWMAP_A_FAULTS,
	COWMAP_A_COW_COPIES,
	COWMAP_A_REARMS,
	COWMAP_A_BASE_INVALIDATIONS,
	COWMAP_A_COMMITS,
	COWMAP_A_SESSION_SIZE,
	__COWMAP_A_MAX,
};

#define COWMAP_A_MAX (__COWMAP_A_MAX - 1)

enum cowmap_event {
	COWMAP_EV_ATTACH = 1,	/* a session was created */
	COWMAP_EV_COMMIT,	/* with COWMAP_A_RECORDS, COWMAP_A_JOURNAL_BYTES added */
	COWMAP_EV_MERGE,	/* with APPLIED, ALREADY, CONFLICTS */
	COWMAP_EV_CONFLICT,	/* a merge found conflicts: CONFLICTS */
	COWMAP_EV_ORPHAN,	/* kept after its last fd and mapping went */
	COWMAP_EV_ADOPT,
	COWMAP_EV_DISCARD,
	COWMAP_EV_LIMIT,	/* a fault was refused at a page limit: LIMIT_HITS */
	COWMAP_EV_DROPPED,	/* closed with changes past the orphan limits */
	COWMAP_EV_CLOSE,	/* freed */
	COWMAP_EV_EXPIRED,	/* an orphan older than orphan_expiry_secs, dropped */
};

/* The bit of struct cowmap_api.ioctls that stands for ioctl @cmd. */
#define COWMAP_IOCTL_BIT(cmd)	(1ULL << _IOC_NR(cmd))

#endif /* _UAPI_LINUX_COWMAP_H */
