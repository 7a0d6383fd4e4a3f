// SPDX-License-Identifier: GPL-2.0
/*
 * cowmap: isolated copy-on-write sessions on a regular file.
 *
 * This file holds the character device, the module parameters and the
 * ioctl dispatcher. Sessions live in session.c, the fault path in fault.c,
 * the journal in journal.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "compat.h"
#include "cowmap.h"

unsigned long cowmap_max_session_pages = 262144;	/* 1 GiB of 4 KiB pages */
module_param_named(max_session_pages, cowmap_max_session_pages, ulong, 0644);
MODULE_PARM_DESC(max_session_pages,
		 "Pages (private copies + twins) one session may own; a write past it gets SIGBUS");

unsigned long cowmap_max_total_pages;	/* set at load: a quarter of RAM */
module_param_named(max_total_pages, cowmap_max_total_pages, ulong, 0644);
MODULE_PARM_DESC(max_total_pages,
		 "Pages all sessions together may own (default: a quarter of RAM)");

unsigned long cowmap_max_journal_bytes = 64UL << 20;
module_param_named(max_journal_bytes, cowmap_max_journal_bytes, ulong, 0644);
MODULE_PARM_DESC(max_journal_bytes,
		 "Journal bytes one session may hold; a commit past it fails with ENOSPC");

unsigned int cowmap_max_orphans = 64;
module_param_named(max_orphans, cowmap_max_orphans, uint, 0644);
MODULE_PARM_DESC(max_orphans, "Sessions kept after their last user went away");

unsigned long cowmap_max_orphan_bytes = 256UL << 20;
module_param_named(max_orphan_bytes, cowmap_max_orphan_bytes, ulong, 0644);
MODULE_PARM_DESC(max_orphan_bytes, "Memory all orphaned sessions together may keep");

static int cowmap_open(struct inode *inode, struct file *file)
{
	struct cowmap_file *cf = kzalloc(sizeof(*cf), GFP_KERNEL_ACCOUNT);

	if (!cf)
		return -ENOMEM;
	mutex_init(&cf->lock);
	file->private_data = cf;
	return 0;
}

static int cowmap_release(struct inode *inode, struct file *file)
{
	struct cowmap_file *cf = file->private_data;

	/* Every VMA holds the file: none is left. */
	if (cf->s)
		cowmap_session_unuse(cf->s);
	mutex_destroy(&cf->lock);
	kfree(cf);
	return 0;
}

/*
 * The session of @file, for an operation that changes the journal or a
 * file (commit, merge, discard, trim): only through an fd opened for
 * writing. NULL with *@err set otherwise.
 */
static struct cowmap_session *cowmap_file_session_w(struct file *file, int *err)
{
	struct cowmap_session *s = cowmap_file_session(file);

	*err = -EINVAL;
	if (!s)
		return NULL;
	*err = -EBADF;
	return file->f_mode & FMODE_WRITE ? s : NULL;
}

/* fsync(2) and msync(MS_SYNC): a durable commit. */
static int cowmap_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct cowmap_commit c = { .flags = COWMAP_COMMIT_DURABLE };
	struct cowmap_session *s;
	int err;

	s = cowmap_file_session_w(file, &err);
	if (!s)
		return err;
	return cowmap_commit(s, &c);
}

union cowmap_ioc_arg {
	struct cowmap_api api;
	struct cowmap_attach attach;
	struct cowmap_status status;
	struct cowmap_commit commit;
	struct cowmap_dump dump;
	struct cowmap_adopt adopt;
	struct cowmap_merge merge;
	struct cowmap_view view;
	struct cowmap_size size;
	struct cowmap_refresh refresh;
};

static int cowmap_ioc_api(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_file *cf = file->private_data;
	struct cowmap_api *api = &a->api;
	int ret = 0;

	if (api->api != COWMAP_API || api->reserved0 ||
	    memchr_inv(api->reserved, 0, sizeof(api->reserved)) ||
	    api->features & ~COWMAP_FEATURES_ALL || api->ioctls)
		return -EINVAL;

	mutex_lock(&cf->lock);
	if (cf->api_done)
		ret = -EBUSY;
	cf->api_done = true;
	mutex_unlock(&cf->lock);
	if (ret)
		return ret;

	api->features = COWMAP_FEATURES_ALL;
	api->ioctls = COWMAP_IOCTL_BIT(COWMAP_IOC_API) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_ATTACH) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_STATUS) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_COMMIT) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_DUMP) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_ADOPT) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_DISCARD) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_MERGE) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_TRIM) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_VIEW) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_SET_SIZE) |
		      COWMAP_IOCTL_BIT(COWMAP_IOC_REFRESH);
	return 0;
}

static int cowmap_ioc_attach(struct file *file, union cowmap_ioc_arg *a)
{
	return cowmap_attach(file, &a->attach);
}

static int cowmap_ioc_adopt(struct file *file, union cowmap_ioc_arg *a)
{
	return cowmap_adopt(file, &a->adopt);
}

static int cowmap_ioc_status(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s = cowmap_file_session(file);

	if (s)
		return cowmap_status(s, &a->status);
	a->status.state = COWMAP_STATE_NEW;
	return 0;
}

static int cowmap_ioc_commit(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s;
	int err;

	s = cowmap_file_session_w(file, &err);
	if (!s)
		return err;
	return cowmap_commit(s, &a->commit);
}

static int cowmap_ioc_dump(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s = cowmap_file_session(file);

	if (!s)
		return -EINVAL;
	return cowmap_dump(s, &a->dump);
}

static int cowmap_ioc_merge(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s;
	int err;

	s = cowmap_file_session_w(file, &err);
	if (!s)
		return err;
	return cowmap_merge(s, &a->merge);
}

/* Records were dropped: read(2) positions past them mean nothing now. */
static void cowmap_forget_read_pos(struct file *file)
{
	struct cowmap_file *cf = file->private_data;

	mutex_lock(&cf->lock);
	cf->rd_seq = 0;
	mutex_unlock(&cf->lock);
}

static int cowmap_ioc_discard(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s;
	int err;

	s = cowmap_file_session_w(file, &err);
	if (!s)
		return err;
	err = cowmap_discard(s);
	if (!err)
		cowmap_forget_read_pos(file);
	return err;
}

static int cowmap_ioc_trim(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s;
	int err;

	s = cowmap_file_session_w(file, &err);
	if (!s)
		return err;
	err = cowmap_trim(s);
	if (!err)
		cowmap_forget_read_pos(file);
	return err;
}

/* The view's file is installed in the fd table only once the answer is out. */
static int cowmap_ioc_view(struct file *file, union cowmap_ioc_arg *a,
			   struct file **install)
{
	struct cowmap_session *s = cowmap_file_session(file);

	if (!s)
		return -EINVAL;
	if ((a->view.flags & COWMAP_VIEW_RDWR) && !(file->f_mode & FMODE_WRITE))
		return -EBADF;
	return cowmap_view_open(s, &a->view, install);
}

static int cowmap_ioc_set_size(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s = cowmap_file_session(file);
	struct cowmap_size *z = &a->size;
	loff_t old;
	int ret;

	if (!s)
		return -EINVAL;
	if (z->flags || z->reserved0 || z->old_size ||
	    memchr_inv(z->reserved, 0, sizeof(z->reserved)))
		return -EINVAL;
	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	/* As ftruncate(2) of a view: serialised with the views' writes. */
	inode_lock(s->inode);
	ret = cowmap_set_size(s, z->size, &old);
	inode_unlock(s->inode);
	if (!ret)
		z->old_size = old;
	return ret;
}

static int cowmap_ioc_refresh(struct file *file, union cowmap_ioc_arg *a)
{
	struct cowmap_session *s = cowmap_file_session(file);
	struct cowmap_refresh *r = &a->refresh;

	if (!s)
		return -EINVAL;
	if (r->flags || r->reserved0 || r->invalidated ||
	    memchr_inv(r->reserved, 0, sizeof(r->reserved)))
		return -EINVAL;
	return cowmap_refresh(s, &r->invalidated);
}

struct cowmap_ioc {
	unsigned int cmd;
	int (*fn)(struct file *file, union cowmap_ioc_arg *a);
};

/* Indexed by _IOC_NR(). */
static const struct cowmap_ioc cowmap_iocs[] = {
	[_IOC_NR(COWMAP_IOC_API)] = { COWMAP_IOC_API, cowmap_ioc_api },
	[_IOC_NR(COWMAP_IOC_ATTACH)] = { COWMAP_IOC_ATTACH, cowmap_ioc_attach },
	[_IOC_NR(COWMAP_IOC_STATUS)] = { COWMAP_IOC_STATUS, cowmap_ioc_status },
	[_IOC_NR(COWMAP_IOC_COMMIT)] = { COWMAP_IOC_COMMIT, cowmap_ioc_commit },
	[_IOC_NR(COWMAP_IOC_DUMP)] = { COWMAP_IOC_DUMP, cowmap_ioc_dump },
	[_IOC_NR(COWMAP_IOC_ADOPT)] = { COWMAP_IOC_ADOPT, cowmap_ioc_adopt },
	[_IOC_NR(COWMAP_IOC_DISCARD)] = { COWMAP_IOC_DISCARD, cowmap_ioc_discard },
	[_IOC_NR(COWMAP_IOC_MERGE)] = { COWMAP_IOC_MERGE, cowmap_ioc_merge },
	[_IOC_NR(COWMAP_IOC_TRIM)] = { COWMAP_IOC_TRIM, cowmap_ioc_trim },
	/* Called with a third argument, below. */
	[_IOC_NR(COWMAP_IOC_VIEW)] = { COWMAP_IOC_VIEW, NULL },
	[_IOC_NR(COWMAP_IOC_SET_SIZE)] = { COWMAP_IOC_SET_SIZE, cowmap_ioc_set_size },
	[_IOC_NR(COWMAP_IOC_REFRESH)] = { COWMAP_IOC_REFRESH, cowmap_ioc_refresh },
};

static long cowmap_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct cowmap_file *cf = file->private_data;
	void __user *uarg = (void __user *)arg;
	const struct cowmap_ioc *ioc;
	struct file *install = NULL;
	union cowmap_ioc_arg a;
	unsigned int size, nr;
	bool api_done;
	int ret;

	nr = _IOC_NR(cmd);
	if (_IOC_TYPE(cmd) != COWMAP_IOC_MAGIC || nr >= ARRAY_SIZE(cowmap_iocs) ||
	    !cowmap_iocs[nr].cmd)
		return -ENOTTY;
	ioc = &cowmap_iocs[nr];
	/* A known command with another size or direction: a wrong struct. */
	if (cmd != ioc->cmd)
		return -EINVAL;
	/* Commands without an argument take none. */
	if (_IOC_DIR(cmd) == _IOC_NONE && arg)
		return -EINVAL;

	mutex_lock(&cf->lock);
	api_done = cf->api_done;
	mutex_unlock(&cf->lock);
	if (!api_done && cmd != COWMAP_IOC_API)
		return -EINVAL;

	size = _IOC_SIZE(cmd);
	BUILD_BUG_ON(sizeof(a) > 256);
	memset(&a, 0, sizeof(a));
	if ((_IOC_DIR(cmd) & _IOC_WRITE) && copy_from_user(&a, uarg, size))
		return -EFAULT;

	if (cmd == COWMAP_IOC_VIEW)
		ret = cowmap_ioc_view(file, &a, &install);
	else
		ret = ioc->fn(file, &a);
	if (ret)
		return ret;

	if ((_IOC_DIR(cmd) & _IOC_READ) && copy_to_user(uarg, &a, size)) {
		if (install) {
			fput(install);
			put_unused_fd(a.view.fd);
		}
		/* The caller never saw the answer: the handshake did not happen. */
		if (cmd == COWMAP_IOC_API) {
			mutex_lock(&cf->lock);
			cf->api_done = false;
			mutex_unlock(&cf->lock);
		}
		return -EFAULT;
	}
	if (install)
		fd_install(a.view.fd, install);
	return 0;
}

static const struct file_operations cowmap_fops = {
	.owner = THIS_MODULE,
	.open = cowmap_open,
	.release = cowmap_release,
	.unlocked_ioctl = cowmap_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = cowmap_mmap,
	.read = cowmap_read,
	.fsync = cowmap_fsync,
	.llseek = default_llseek,
};

static struct miscdevice cowmap_misc = {
	/* Fixed, for the devname alias below (docs/design.md, "Loading"). */
	.minor = COWMAP_MISC_MINOR,
	.name = "cowmap",
	.fops = &cowmap_fops,
	/* Every operation works on fds the caller opened itself. */
	.mode = 0666,
};

static int __init cowmap_init(void)
{
	int ret;

	if (!cowmap_max_total_pages)
		cowmap_max_total_pages = totalram_pages() / 4;
	cowmap_account_init();

	ret = cowmap_fault_init();
	if (ret)
		return ret;
	ret = cowmap_pool_init();
	if (ret)
		goto out_fault;
	ret = cowmap_session_init();
	if (ret)
		goto out_pool;
	ret = cowmap_nl_init();
	if (ret)
		goto out_session;
	ret = misc_register(&cowmap_misc);
	if (ret) {
		if (ret == -EBUSY)
			pr_err("device %d:%d is taken by another driver\n",
			       MISC_MAJOR, COWMAP_MISC_MINOR);
		goto out_nl;
	}
	pr_info("loaded, API %d\n", COWMAP_API);
	return 0;

out_nl:
	cowmap_nl_exit();
out_session:
	cowmap_session_exit();
out_pool:
	cowmap_pool_exit();
out_fault:
	cowmap_fault_exit();
	return ret;
}

static void __exit cowmap_exit(void)
{
	misc_deregister(&cowmap_misc);
	cowmap_session_quiesce();
	cowmap_nl_exit();
	cowmap_session_exit();
	cowmap_pool_exit();
	cowmap_fault_exit();
}

module_init(cowmap_init);
module_exit(cowmap_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Isolated copy-on-write sessions on a regular file, with a change journal");
MODULE_AUTHOR("cowmap developers");
MODULE_VERSION(COWMAP_VERSION);
/* Opening a static /dev/cowmap node (modules.devname) loads the module. */
MODULE_ALIAS_MISCDEV(COWMAP_MISC_MINOR);
MODULE_ALIAS("devname:cowmap");
