/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cowmap internals shared by the module's source files.
 */
#ifndef _COWMAP_H
#define _COWMAP_H

#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/xarray.h>

#include "../uapi/cowmap.h"

struct mem_cgroup;
struct cowmap_notify;

/*
 * The state of one file page the session has written.
 * @priv: the session's own copy; mapped into the session's VMAs.
 * @twin: the page's content before its first write since the last commit,
 *	or NULL when the page has not been written since (then any PTE that
 *	maps @priv is read-only, so the next write is noticed).
 */
struct cowmap_page {
	struct page *priv;
	struct page *twin;
};

/*
 * One session: an isolated view of one file. Created by open(/dev/cowmap),
 * freed when the last reference goes: the file (which every VMA pins) and the
 * fsnotify mark on the backing inode each hold one.
 */
struct cowmap_session {
	struct kref ref;
	u64 id;

	/*
	 * @lock serialises everything that decides what a PTE of this session
	 * points at: faults, mkwrite, invalidation of base pages, teardown.
	 * Order: mmap_lock -> @lock -> i_mmap_rwsem of @inode -> PTL.
	 * Never held across copy_{to,from}_user().
	 */
	struct mutex lock;
	bool api_done;
	bool attached;
	bool dead;

	/* Per-session inode: its i_mapping links the session's VMAs only. */
	struct inode *inode;

	/* Set once at attach, constant afterwards. */
	struct file *backing;
	bool base_shmem;
	u64 size_at_attach;
	dev_t dev;
	u64 ino;
	struct cowmap_notify *notify;

	kuid_t owner_uid;
	struct mem_cgroup *memcg;	/* private pages are charged here */

	struct xarray pages;	/* pgoff -> struct cowmap_page * */
	struct xarray base;	/* pgoff -> struct page *, one folio ref each */

	/* Under @lock. */
	unsigned long nr_private;
	unsigned long nr_twins;
	unsigned long nr_base;
	u64 faults;
	u64 cow_copies;
	u64 rearms;
	u64 base_invalidations;
	u64 limit_hits;

	atomic_t nr_vmas;
};

/* Module parameters (limits), read with READ_ONCE(). */
extern unsigned long cowmap_max_session_pages;
extern unsigned long cowmap_max_total_pages;
extern unsigned long cowmap_max_journal_bytes;
extern unsigned int cowmap_max_orphans;
extern unsigned long cowmap_max_orphan_bytes;

/* session.c */
int cowmap_session_init(void);
void cowmap_session_exit(void);
struct cowmap_session *cowmap_session_create(void);
void cowmap_session_put(struct cowmap_session *s);
void cowmap_session_release(struct cowmap_session *s);
int cowmap_attach(struct cowmap_session *s, struct cowmap_attach *arg);
void cowmap_status(struct cowmap_session *s, struct cowmap_status *st);
pgoff_t cowmap_eof_pgoff(struct cowmap_session *s);

/* fault.c */
int cowmap_mmap(struct file *file, struct vm_area_struct *vma);
void cowmap_invalidate_base(struct cowmap_session *s);
void cowmap_free_pages(struct cowmap_session *s);

#endif /* _COWMAP_H */
