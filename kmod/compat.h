/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The differences between the kernels cowmap supports (6.1 and 6.12 LTS,
 * and 7.3 from Debian 13 backports), and nothing else. Each shim names the
 * version that changed the API. 6.13 to 7.2 are not supported: nothing was
 * built or tested there.
 */
#ifndef _COWMAP_COMPAT_H
#define _COWMAP_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/slab.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0) || \
	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0) && \
	 LINUX_VERSION_CODE < KERNEL_VERSION(7, 3, 0)) || \
	LINUX_VERSION_CODE >= KERNEL_VERSION(7, 4, 0)
#error "cowmap supports Linux 6.1 to 6.12 and 7.3"
#endif

/* After 6.12 (7.3 has only the new one): pagevec.h became folio_batch.h. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(7, 3, 0)
#include <linux/pagevec.h>
#else
#include <linux/folio_batch.h>
#endif

/* 6.3: vma->vm_flags became read-only; vm_flags_set() is the way to set. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void cowmap_vm_flags_set(struct vm_area_struct *vma,
				       vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void cowmap_vm_flags_clear(struct vm_area_struct *vma,
					 vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#else
#define cowmap_vm_flags_set(vma, flags) vm_flags_set(vma, flags)
#define cowmap_vm_flags_clear(vma, flags) vm_flags_clear(vma, flags)
#endif

/* 6.3: filemap_get_folio() returns ERR_PTR(-ENOENT) instead of NULL. */
static inline struct folio *cowmap_filemap_get_folio(struct address_space *m,
						     pgoff_t index)
{
	struct folio *folio = filemap_get_folio(m, index);

	return IS_ERR(folio) ? NULL : folio;
}

/*
 * 6.16: a file may have ->mmap_prepare instead of ->mmap (7.x: ext4, tmpfs
 * and most other filesystems). Either one means the file can be mapped.
 */
static inline bool cowmap_file_can_mmap(struct file *file)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 16, 0)
	return file->f_op->mmap;
#else
	return file->f_op->mmap || file->f_op->mmap_prepare;
#endif
}

/*
 * 6.17: a workqueue states whether it is per-CPU (WQ_PERCPU) or unbound;
 * 7.x warns at alloc_workqueue() if it says neither. Per-CPU is what 0
 * meant before, so older kernels keep their flags.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#define COWMAP_WQ_PERCPU	0
#else
#define COWMAP_WQ_PERCPU	WQ_PERCPU
#endif

/* 6.6: the attributes of a dump moved into a struct genl_info. */
#include <net/genetlink.h>
static inline struct nlattr **cowmap_dump_attrs(struct netlink_callback *cb)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 6, 0)
	return genl_dumpit_info(cb)->attrs;
#else
	return genl_info_dump(cb)->attrs;
#endif
}

/* 6.3: inode operations take a struct mnt_idmap instead of a user_namespace. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
#define cowmap_idmap user_namespace
#define cowmap_file_idmap file_mnt_user_ns
#else
#define cowmap_idmap mnt_idmap
#define cowmap_file_idmap file_mnt_idmap
#endif

static inline int cowmap_file_permission(struct file *f, int mask)
{
	return inode_permission(cowmap_file_idmap(f), file_inode(f), mask);
}

/* 6.5: generic_file_splice_read() went; copy_splice_read() reads by read_iter. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
#define cowmap_splice_read generic_file_splice_read
#else
#define cowmap_splice_read copy_splice_read
#endif

/*
 * Gone by 7.3 (7.x is refused before 7.3): copy_page_from_iter_atomic();
 * copy_folio_from_iter_atomic() takes an offset into the folio.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(7, 0, 0)
#define cowmap_copy_page_from_iter_atomic copy_page_from_iter_atomic
#else
static inline size_t
cowmap_copy_page_from_iter_atomic(struct page *page, size_t off, size_t n,
				  struct iov_iter *i)
{
	struct folio *folio = page_folio(page);
	size_t at = folio_page_idx(folio, page) * PAGE_SIZE + off;

	return copy_folio_from_iter_atomic(folio, at, n, i);
}
#endif

/*
 * 6.7: shrinkers are allocated by the core (shrinker_alloc()) instead of
 * embedded and registered by the caller (register_shrinker()). Seeks 0:
 * what cowmap's shrinker frees takes no I/O to make again, so reclaim
 * trims it hard (half of it per pass).
 */
#include <linux/list_lru.h>
#include <linux/shrinker.h>
typedef unsigned long (*cowmap_shrink_fn)(struct shrinker *,
					  struct shrink_control *);

/*
 * A memcg-aware shrinker (each memory cgroup's reclaim calls it for that
 * cgroup) and @lru, the list_lru whose per-cgroup lists tell the core
 * which cgroups have anything for it. The list's shrinker id exists once
 * the shrinker has one: 6.7+ between shrinker_alloc() and
 * shrinker_register(); before, only register_shrinker() is exported, so
 * the shrinker is registered first and must find nothing until @lru is
 * ready (@ready, set last). NONSLAB: it frees page-cache pins, not slab
 * objects. (With kernel-memory accounting off the entries are not
 * charged and all sit on the root list: only global reclaim finds them.)
 */
static inline struct shrinker *
cowmap_shrinker_create(cowmap_shrink_fn count, cowmap_shrink_fn scan,
		       const char *name, struct list_lru *lru, bool *ready)
{
	const unsigned int flags = SHRINKER_MEMCG_AWARE | SHRINKER_NONSLAB;
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 7, 0)
	struct shrinker *sh = kzalloc(sizeof(*sh), GFP_KERNEL);

	if (!sh)
		return NULL;
	sh->count_objects = count;
	sh->scan_objects = scan;
	sh->seeks = 0;
	sh->flags = flags;
	if (register_shrinker(sh, "%s", name)) {
		kfree(sh);
		return NULL;
	}
	if (list_lru_init_memcg(lru, sh)) {
		unregister_shrinker(sh);
		kfree(sh);
		return NULL;
	}
	/* Pairs with the acquire in the count callback: lists ready. */
	smp_store_release(ready, true);
	return sh;
#else
	struct shrinker *sh = shrinker_alloc(flags, "%s", name);

	if (!sh)
		return NULL;
	if (list_lru_init_memcg(lru, sh)) {
		shrinker_free(sh);
		return NULL;
	}
	sh->count_objects = count;
	sh->scan_objects = scan;
	sh->seeks = 0;
	/* Pairs with the acquire in the count callback: lists ready. */
	smp_store_release(ready, true);
	shrinker_register(sh);
	return sh;
#endif
}

/* The shrinker alone: no call of it runs or starts after this. */
static inline void cowmap_shrinker_unregister(struct shrinker *sh)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 7, 0)
	unregister_shrinker(sh);
	kfree(sh);
#else
	shrinker_free(sh);
#endif
}

static inline void cowmap_shrinker_destroy(struct shrinker *sh,
					   struct list_lru *lru)
{
	cowmap_shrinker_unregister(sh);
	list_lru_destroy(lru);
}

/* 6.8: list_lru_add() takes the node and memcg; _obj() finds them. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
#define cowmap_lru_add(lru, item) list_lru_add(lru, item)
#define cowmap_lru_del(lru, item) list_lru_del(lru, item)
#else
#define cowmap_lru_add(lru, item) list_lru_add_obj(lru, item)
#define cowmap_lru_del(lru, item) list_lru_del_obj(lru, item)
#endif

/* 6.13: list_lru walk callbacks lost the lock argument. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0)
#define COWMAP_LRU_CB_ARGS struct list_head *item, struct list_lru_one *list, \
			   spinlock_t *lock, void *arg
#else
#define COWMAP_LRU_CB_ARGS struct list_head *item, struct list_lru_one *list, \
			   void *arg
#endif

/*
 * 6.9: a lock's owner, flags, type, file and wait queue moved into its
 * struct file_lock_core (fl->c). The merge takes a whole-file OFD lock
 * (fcntl(F_OFD_SETLKW)'s: the struct file is the owner).
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 9, 0)
#include <linux/fs.h>
#define cowmap_flc(fl)		(fl)
#define cowmap_fl_owner		fl_owner
#define cowmap_fl_pid		fl_pid
#define cowmap_fl_file		fl_file
#define cowmap_fl_flags		fl_flags
#define cowmap_fl_type		fl_type
#define cowmap_fl_wait		fl_wait
#define cowmap_fl_blocked	fl_blocked_member
#else
#include <linux/filelock.h>
#define cowmap_flc(fl)		(&(fl)->c)
#define cowmap_fl_owner		flc_owner
#define cowmap_fl_pid		flc_pid
#define cowmap_fl_file		flc_file
#define cowmap_fl_flags		flc_flags
#define cowmap_fl_type		flc_type
#define cowmap_fl_wait		flc_wait
#define cowmap_fl_blocked	flc_blocked_member
#endif

static inline struct file_lock *cowmap_ofd_lock_alloc(struct file *f, int type)
{
	struct file_lock *fl = locks_alloc_lock();

	if (!fl)
		return NULL;
	cowmap_flc(fl)->cowmap_fl_owner = f;
	cowmap_flc(fl)->cowmap_fl_pid = current->tgid;
	cowmap_flc(fl)->cowmap_fl_file = f;
	cowmap_flc(fl)->cowmap_fl_flags = FL_POSIX | FL_OFDLCK |
					  (type == F_UNLCK ? 0 : FL_SLEEP);
	cowmap_flc(fl)->cowmap_fl_type = type;
	fl->fl_start = 0;
	fl->fl_end = OFFSET_MAX;
	return fl;
}

/* Woken: the lock @fl waited for went (or the wait was cancelled). */
static inline bool cowmap_ofd_lock_unblocked(struct file_lock *fl)
{
	return list_empty(&cowmap_flc(fl)->cowmap_fl_blocked);
}

static inline wait_queue_head_t *cowmap_ofd_lock_wq(struct file_lock *fl)
{
	return &cowmap_flc(fl)->cowmap_fl_wait;
}

#endif /* _COWMAP_COMPAT_H */
