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

#include <linux/ioctl.h>
#include <linux/types.h>

#define COWMAP_DEVICE_PATH	"/dev/cowmap"

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

/**
 * struct cowmap_attach - attach a session to a file (COWMAP_IOC_ATTACH)
 * @fd: in: an fd of a regular file, opened for reading (O_RDONLY or O_RDWR).
 *	Its permission checks are the ones that stand: the module never opens
 *	anything by path.
 * @flags: in: must be zero in API version 1.
 * @session_id: out: the id of the session, unique while the module is
 *	loaded (also reported by COWMAP_IOC_STATUS).
 * @reserved: must be zero.
 *
 * A session attaches once. Errors: EBADF (@fd is not an open fd), EACCES
 * (not opened for reading), EISDIR (a directory), EINVAL (not a regular
 * file), EOPNOTSUPP (a regular file whose filesystem cowmap cannot read
 * through the page cache, e.g. DAX or hugetlbfs), EBUSY (already attached).
 */
struct cowmap_attach {
	__s32 fd;
	__u32 flags;
	__u64 session_id;
	__u64 reserved[4];
};

/* Session states reported by COWMAP_IOC_STATUS. */
#define COWMAP_STATE_NEW	0	/* opened, not attached */
#define COWMAP_STATE_ATTACHED	1

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
 * @reserved: zero.
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
	__u64 reserved[8];
};

#define COWMAP_IOC_API		_IOWR(COWMAP_IOC_MAGIC, 0x00, struct cowmap_api)
#define COWMAP_IOC_ATTACH	_IOWR(COWMAP_IOC_MAGIC, 0x01, struct cowmap_attach)
#define COWMAP_IOC_STATUS	_IOR(COWMAP_IOC_MAGIC, 0x02, struct cowmap_status)

/* The bit of struct cowmap_api.ioctls that stands for ioctl @cmd. */
#define COWMAP_IOCTL_BIT(cmd)	(1ULL << _IOC_NR(cmd))

#endif /* _UAPI_LINUX_COWMAP_H */
