// SPDX-License-Identifier: GPL-2.0
/*
 * Sessions: creation, attach to a backing file, status, teardown.
 *
 * Each session owns an inode on a private pseudo filesystem, so that its
 * VMAs hang off an address_space of their own: zapping a page of one session
 * (unmap_mapping_pages()) never touches another session's mappings.
 *
 * An fsnotify mark on the backing inode tells the session when the file was
 * modified by someone else (write, truncate, hole punch, direct I/O): base
 * pages that left the page cache are then unmapped, so the next access sees
 * the file as it is now, or gets SIGBUS past its new end.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/fs_context.h>
#include <linux/fsnotify_backend.h>
#include <linux/magic.h>
#include <linux/memcontrol.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "compat.h"
#include "cowmap.h"

#define COWMAP_FS_MAGIC 0x636f776d	/* "cowm" */

struct cowmap_notify {
	struct fsnotify_mark mark;
	struct cowmap_session *s;	/* holds a session reference */
};

static struct vfsmount *cowmap_mnt;
static struct fsnotify_group *cowmap_group;
static atomic64_t cowmap_next_id = ATOMIC64_INIT(0);

static int cowmap_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, COWMAP_FS_MAGIC) ? 0 : -ENOMEM;
}

/*
 * No .owner: the filesystem is mounted once at load and unmounted at unload,
 * and a module reference held by that mount would make unloading impossible.
 */
static struct file_system_type cowmap_fs_type = {
	.name = "cowmap",
	.init_fs_context = cowmap_init_fs_context,
	.kill_sb = kill_anon_super,
};

static int cowmap_handle_event(struct fsnotify_mark *mark, u32 mask,
			       struct inode *inode, struct inode *dir,
			       const struct qstr *name, u32 cookie)
{
	struct cowmap_notify *n = container_of(mark, struct cowmap_notify, mark);

	cowmap_invalidate_base(n->s);
	return 0;
}

static void cowmap_free_mark(struct fsnotify_mark *mark)
{
	struct cowmap_notify *n = container_of(mark, struct cowmap_notify, mark);

	cowmap_session_put(n->s);
	kfree(n);
}

static const struct fsnotify_ops cowmap_fsnotify_ops = {
	.handle_inode_event = cowmap_handle_event,
	.free_mark = cowmap_free_mark,
};

int cowmap_session_init(void)
{
	cowmap_mnt = kern_mount(&cowmap_fs_type);
	if (IS_ERR(cowmap_mnt))
		return PTR_ERR(cowmap_mnt);

	/* DUPS: several sessions may watch one file. */
	cowmap_group = fsnotify_alloc_group(&cowmap_fsnotify_ops,
					    FSNOTIFY_GROUP_DUPS);
	if (IS_ERR(cowmap_group)) {
		kern_unmount(cowmap_mnt);
		return PTR_ERR(cowmap_group);
	}
	return 0;
}

void cowmap_session_exit(void)
{
	/* Marks are freed from a work item; it calls back into this module. */
	fsnotify_wait_marks_destroyed();
	fsnotify_put_group(cowmap_group);
	kern_unmount(cowmap_mnt);
}

struct cowmap_session *cowmap_session_create(void)
{
	struct cowmap_session *s;
	struct inode *inode;

	s = kzalloc(sizeof(*s), GFP_KERNEL_ACCOUNT);
	if (!s)
		return ERR_PTR(-ENOMEM);

	inode = alloc_anon_inode(cowmap_mnt->mnt_sb);
	if (IS_ERR(inode)) {
		kfree(s);
		return ERR_CAST(inode);
	}

	kref_init(&s->ref);
	mutex_init(&s->lock);
	xa_init(&s->pages);
	xa_init(&s->base);
	atomic_set(&s->nr_vmas, 0);
	s->inode = inode;
	s->id = atomic64_inc_return(&cowmap_next_id);
	s->owner_uid = current_uid();
	s->memcg = get_mem_cgroup_from_mm(current->mm);
	return s;
}

static void cowmap_session_free(struct kref *ref)
{
	struct cowmap_session *s = container_of(ref, struct cowmap_session, ref);

	mutex_destroy(&s->lock);
	kfree(s);
}

void cowmap_session_put(struct cowmap_session *s)
{
	kref_put(&s->ref, cowmap_session_free);
}

/*
 * The last file reference is gone, and with it every VMA (each VMA holds
 * one): no PTE points at the session's pages any more.
 */
void cowmap_session_release(struct cowmap_session *s)
{
	struct cowmap_notify *n;

	mutex_lock(&s->lock);
	s->dead = true;
	n = s->notify;
	s->notify = NULL;
	cowmap_free_pages(s);
	mutex_unlock(&s->lock);

	/* An event handler may still run: it sees ->dead and does nothing. */
	if (n) {
		fsnotify_destroy_mark(&n->mark, cowmap_group);
		fsnotify_put_mark(&n->mark);
	}
	if (s->backing)
		fput(s->backing);
	iput(s->inode);
	mem_cgroup_put(s->memcg);
	cowmap_session_put(s);
}

pgoff_t cowmap_eof_pgoff(struct cowmap_session *s)
{
	loff_t size = i_size_read(file_inode(s->backing));

	return (pgoff_t)DIV_ROUND_UP_ULL(size, PAGE_SIZE);
}

/* Can the module read @file's pages through its page cache? */
static int cowmap_check_backing(struct file *file)
{
	struct inode *inode = file_inode(file);

	if (S_ISDIR(inode->i_mode))
		return -EISDIR;
	if (!S_ISREG(inode->i_mode))
		return -EINVAL;
	if (!(file->f_mode & FMODE_READ))
		return -EACCES;
	if (IS_DAX(inode) || !file->f_op->mmap)
		return -EOPNOTSUPP;
	/* tmpfs has no ->read_folio; it is read with shmem_read_mapping_page. */
	if (inode->i_sb->s_magic != TMPFS_MAGIC &&
	    !file->f_mapping->a_ops->read_folio)
		return -EOPNOTSUPP;
	return 0;
}

int cowmap_attach(struct cowmap_session *s, struct cowmap_attach *a)
{
	struct cowmap_notify *n;
	struct inode *inode;
	struct file *file;
	int ret;

	if (a->flags || a->session_id ||
	    memchr_inv(a->reserved, 0, sizeof(a->reserved)))
		return -EINVAL;

	file = fget(a->fd);
	if (!file)
		return -EBADF;
	ret = cowmap_check_backing(file);
	if (ret)
		goto out_fput;
	inode = file_inode(file);

	n = kzalloc(sizeof(*n), GFP_KERNEL_ACCOUNT);
	if (!n) {
		ret = -ENOMEM;
		goto out_fput;
	}
	/* From here on, putting the mark frees it and drops this reference. */
	fsnotify_init_mark(&n->mark, cowmap_group);
	n->mark.mask = FS_MODIFY;
	kref_get(&s->ref);
	n->s = s;

	mutex_lock(&s->lock);
	if (s->attached) {
		ret = -EBUSY;
		goto out_unlock;
	}
	ret = fsnotify_add_inode_mark(&n->mark, inode, 0);
	if (ret)
		goto out_unlock;
	s->notify = n;
	s->backing = file;
	s->base_shmem = inode->i_sb->s_magic == TMPFS_MAGIC;
	s->size_at_attach = i_size_read(inode);
	s->dev = inode->i_sb->s_dev;
	s->ino = inode->i_ino;
	s->attached = true;
	a->session_id = s->id;
	mutex_unlock(&s->lock);
	return 0;

out_unlock:
	mutex_unlock(&s->lock);
	fsnotify_put_mark(&n->mark);
out_fput:
	fput(file);
	return ret;
}

void cowmap_status(struct cowmap_session *s, struct cowmap_status *st)
{
	mutex_lock(&s->lock);
	st->session_id = s->id;
	st->state = s->attached ? COWMAP_STATE_ATTACHED : COWMAP_STATE_NEW;
	if (s->attached) {
		st->dev_major = MAJOR(s->dev);
		st->dev_minor = MINOR(s->dev);
		st->ino = s->ino;
		st->size_at_attach = s->size_at_attach;
		st->size = i_size_read(file_inode(s->backing));
	}
	st->mappings = atomic_read(&s->nr_vmas);
	st->private_pages = s->nr_private;
	st->twin_pages = s->nr_twins;
	st->base_pages = s->nr_base;
	st->faults = s->faults;
	st->cow_copies = s->cow_copies;
	st->rearms = s->rearms;
	st->base_invalidations = s->base_invalidations;
	st->limit_hits = s->limit_hits;
	mutex_unlock(&s->lock);
}
