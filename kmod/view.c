// SPDX-License-Identifier: GPL-2.0
/*
 * Views: a session as a regular file (COWMAP_IOC_VIEW).
 *
 * A view is a file on the module's pseudo filesystem whose inode is the
 * session's own inode (the one whose address_space links the session's
 * VMAs), marked S_IFREG, with the session's size as i_size. Reads copy from
 * the page a mapping would show (the session's private page, or the backing
 * file's page-cache page); writes go through the fault path's machinery
 * (cowmap_write_page()): a private copy and a twin, exactly as a store
 * through a mapping makes them, so a commit journals them the same way.
 * mmap of a view is a mapping of the session.
 *
 * The session lock is never held across a copy that may fault: a read
 * takes a reference on the page and copies after dropping the lock; a
 * write faults the user's buffer in first and copies with page faults
 * disabled under the lock, as generic_perform_write() does under a folio
 * lock, and retries when that copy fell short.
 */
#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uio.h>

#include "compat.h"
#include "cowmap.h"

/* What a view's file holds. */
struct cowmap_vfile {
	struct cowmap_session *s;	/* a reference, and one of @s->users */
	/*
	 * SEEK_DATA and SEEK_HOLE ask the backing file, through a file of our
	 * own (opened on first use): llseek moves the file position, and the
	 * fd the session was attached with belongs to the caller.
	 */
	struct mutex seek_lock;
	struct file *seek;
	bool seek_failed;
};

static struct cowmap_session *cowmap_vfile_session(struct file *file)
{
	return ((struct cowmap_vfile *)file->private_data)->s;
}

static ssize_t cowmap_view_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct cowmap_session *s = cowmap_vfile_session(iocb->ki_filp);
	loff_t pos = iocb->ki_pos;
	ssize_t done = 0;
	int err = 0;

	while (iov_iter_count(to)) {
		loff_t size = cowmap_size(s);
		size_t off = offset_in_page(pos), n, copied, k;
		struct folio *pre;
		struct page *page;
		void *kaddr;
		bool priv;

		if (pos >= size)
			break;
		n = min3((loff_t)(PAGE_SIZE - off), size - pos,
			 (loff_t)iov_iter_count(to));
		/* The file's I/O waits here, not under s->lock (issue 16, 7). */
		pre = cowmap_prefetch_base(s, pos >> PAGE_SHIFT);
		if (IS_ERR(pre)) {
			err = PTR_ERR(pre);
			break;
		}
		mutex_lock(&s->lock);
		page = cowmap_read_page(s, pos >> PAGE_SHIFT, &priv);
		/* A base page shows the base up to its end, zeros after. */
		k = n;
		if (page && !IS_ERR(page) && !priv) {
			k = clamp_t(loff_t, cowmap_base_end(s) - pos, 0, n);
			/*
			 * Without a size of its own the session ends where the
			 * file does: a file that shrank since @size was read
			 * ends the read there, as a regular file's read does,
			 * instead of showing zeros up to the old end.
			 */
			if (!s->own_size)
				n = k;
		}
		mutex_unlock(&s->lock);
		if (pre)
			folio_put(pre);
		if (!n) {
			put_page(page);
			break;
		}
		if (IS_ERR(page)) {
			/*
			 * The file shrank meanwhile (-ENXIO; tmpfs says -EINVAL
			 * past its end): an end of file, not an error.
			 */
			if (PTR_ERR(page) != -ENXIO && pos < cowmap_size(s))
				err = PTR_ERR(page);
			break;
		}
		/*
		 * A copy, also into a pipe: 6.1's copy_page_to_iter() would put
		 * a reference to the page itself in the pipe, a snapshot that
		 * is not one, and splice refuses pages not in a page cache.
		 */
		copied = 0;
		if (page) {
			kaddr = kmap_local_page(page);
			copied = copy_to_iter(kaddr + off, k, to);
			kunmap_local(kaddr);
			put_page(page);
		}
		if (copied == (page ? k : 0))
			copied += iov_iter_zero(n - copied, to);
		pos += copied;
		done += copied;
		if (copied < n) {
			err = -EFAULT;
			break;
		}
		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		cond_resched();
	}
	iocb->ki_pos = pos;
	return done ?: err;
}

/*
 * Write @n bytes from @from (or zeros if NULL) at @pos, within one page and
 * inside the file. Returns the bytes written, 0 if the copy fell short
 * before any byte (the caller faults the buffer in and retries), or an
 * error.
 */
static ssize_t cowmap_view_write_page(struct cowmap_session *s, loff_t pos,
				      size_t n, struct iov_iter *from)
{
	size_t off = offset_in_page(pos), copied;
	/* The file's I/O waits here, not under s->lock (issue 16, 7). */
	struct folio *pre = cowmap_prefetch_base(s, pos >> PAGE_SHIFT);
	struct page *page;

	if (IS_ERR(pre))
		return PTR_ERR(pre);
	mutex_lock(&s->lock);
	page = cowmap_write_page(s, pos >> PAGE_SHIFT);
	if (pre)
		folio_put(pre);
	if (IS_ERR(page)) {
		mutex_unlock(&s->lock);
		return PTR_ERR(page);
	}
	if (from) {
		copied = cowmap_copy_page_from_iter_atomic(page, off, n, from);
	} else {
		memzero_page(page, off, n);
		copied = n;
	}
	mutex_unlock(&s->lock);
	return copied;
}

/* Write [pos, pos + len) of the session, inside the file, from @from or zeros. */
static ssize_t cowmap_view_write(struct cowmap_session *s, loff_t pos,
				 size_t len, struct iov_iter *from)
{
	ssize_t done = 0, ret = 0;

	while (len) {
		size_t n = min_t(size_t, PAGE_SIZE - offset_in_page(pos), len);

		if (from && fault_in_iov_iter_readable(from, n) == n) {
			ret = -EFAULT;
			break;
		}
		if (pos >= cowmap_size(s)) {
			ret = -EFBIG;
			break;
		}
		ret = cowmap_view_write_page(s, pos, n, from);
		if (ret < 0)
			break;
		if (!ret) {
			/*
			 * Faulted in, then taken away (the source maps this
			 * session's page, which became private: it is not
			 * unmapped again): fault one segment in, retry.
			 */
			n = min_t(size_t, n, iov_iter_single_seg_count(from));
			if (fault_in_iov_iter_readable(from, n) == n) {
				ret = -EFAULT;
				break;
			}
			ret = cowmap_view_write_page(s, pos, n, from);
			if (ret < 0)
				break;
			if (!ret) {
				ret = -EFAULT;
				break;
			}
		}
		pos += ret;
		done += ret;
		len -= ret;
		ret = 0;
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	return done ?: ret;
}

static ssize_t cowmap_view_write_iter(struct kiocb *iocb,
				      struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct cowmap_session *s = cowmap_vfile_session(file);
	struct inode *inode = file_inode(file);
	ssize_t ret;
	loff_t size;

	inode_lock(inode);
	/* O_APPEND, RLIMIT_FSIZE and s_maxbytes look at i_size. */
	mutex_lock(&s->lock);
	cowmap_sync_size(s);
	mutex_unlock(&s->lock);
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	/* A write past the end grows the session first. */
	size = cowmap_size(s);
	if (iocb->ki_pos + iov_iter_count(from) > size) {
		ret = cowmap_set_size(s, iocb->ki_pos + iov_iter_count(from),
				      NULL);
		if (ret)
			goto out;
	}
	ret = file_modified(file);
	if (ret)
		goto out;
	ret = cowmap_view_write(s, iocb->ki_pos, iov_iter_count(from), from);
	if (ret > 0)
		iocb->ki_pos += ret;
out:
	inode_unlock(inode);
	/* O_SYNC, O_DSYNC, RWF_SYNC: a durable commit through ->fsync. */
	if (ret > 0)
		ret = generic_write_sync(iocb, ret);
	return ret;
}

/* Where SEEK_DATA / SEEK_HOLE from @pos lands in the backing file alone. */
static loff_t cowmap_base_seek(struct cowmap_vfile *vf, loff_t pos, int whence,
			       loff_t size)
{
	struct file *backing = vf->s->backing;
	loff_t ret, bend = cowmap_base_end(vf->s);

	/* Past the base's end, the session shows zeros: a hole. */
	if (pos >= bend)
		return whence == SEEK_DATA ? size : pos;
	mutex_lock(&vf->seek_lock);
	if (!vf->seek && !vf->seek_failed) {
		struct file *f = dentry_open(&backing->f_path,
					     O_RDONLY | O_LARGEFILE,
					     backing->f_cred);

		if (IS_ERR(f))
			vf->seek_failed = true;
		else
			vf->seek = f;
	}
	/* Without it, the whole file is data (what generic_file_llseek says). */
	if (vf->seek)
		ret = vfs_llseek(vf->seek, pos, whence);
	else
		ret = whence == SEEK_DATA ? pos : size;
	mutex_unlock(&vf->seek_lock);
	if (ret == -ENXIO)
		ret = size;	/* no data from @pos on, or a hole at the end */
	if (ret >= bend)
		ret = whence == SEEK_DATA ? size : bend;
	return ret < 0 ? ret : min(ret, size);
}

/* The end of the run of pages the session wrote that holds @pos, or @pos. */
static loff_t cowmap_private_end(struct cowmap_session *s, loff_t pos)
{
	pgoff_t idx = pos >> PAGE_SHIFT;

	mutex_lock(&s->lock);
	while (xa_load(&s->pages, idx))
		idx++;
	mutex_unlock(&s->lock);
	return max(pos, (loff_t)idx << PAGE_SHIFT);
}

/* The first page at or after @pos the session wrote, as an offset, or @size. */
static loff_t cowmap_private_next(struct cowmap_session *s, loff_t pos,
				  loff_t size)
{
	unsigned long idx = pos >> PAGE_SHIFT;
	void *cp;

	mutex_lock(&s->lock);
	cp = xa_find(&s->pages, &idx, ULONG_MAX, XA_PRESENT);
	mutex_unlock(&s->lock);
	if (!cp)
		return size;
	return min(max(pos, (loff_t)idx << PAGE_SHIFT), size);
}

static loff_t cowmap_view_seek_data(struct cowmap_vfile *vf, loff_t pos,
				    int whence)
{
	struct cowmap_session *s = vf->s;
	loff_t size = cowmap_size(s), b;

	if (pos < 0 || pos >= size)
		return -ENXIO;
	if (whence == SEEK_DATA) {
		b = cowmap_base_seek(vf, pos, SEEK_DATA, size);
		if (b < 0)
			return b;
		b = min(b, cowmap_private_next(s, pos, size));
		return b < size ? b : -ENXIO;
	}
	/* SEEK_HOLE: a hole of the file that the session did not write. */
	for (;;) {
		loff_t p;

		b = cowmap_base_seek(vf, pos, SEEK_HOLE, size);
		if (b < 0 || b >= size)
			return b < 0 ? b : size;
		p = cowmap_private_end(s, b);
		if (p == b)
			return b;
		pos = p;
		if (pos >= size)
			return size;
	}
}

static loff_t cowmap_view_llseek(struct file *file, loff_t offset, int whence)
{
	struct cowmap_vfile *vf = file->private_data;
	loff_t pos;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return generic_file_llseek_size(file, offset, whence,
						MAX_LFS_FILESIZE,
						cowmap_size(vf->s));
	pos = cowmap_view_seek_data(vf, offset, whence);
	if (pos < 0)
		return pos;
	return vfs_setpos(file, pos, MAX_LFS_FILESIZE);
}

static int cowmap_view_mmap(struct file *file, struct vm_area_struct *vma)
{
	return cowmap_mmap_session(cowmap_vfile_session(file), vma);
}

/* fsync(2), fdatasync(2), O_SYNC writes: a durable commit. */
static int cowmap_view_fsync(struct file *file, loff_t start, loff_t end,
			     int datasync)
{
	struct cowmap_commit c = { .flags = COWMAP_COMMIT_DURABLE };

	return cowmap_commit(cowmap_vfile_session(file), &c);
}

static long cowmap_view_fallocate(struct file *file, int mode, loff_t off,
				  loff_t len)
{
	struct cowmap_session *s = cowmap_vfile_session(file);
	struct inode *inode = file_inode(file);
	loff_t end, size;
	ssize_t ret = 0;

	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		break;
	default:
		return -EOPNOTSUPP;
	}
	/* vfs_fallocate() checked off >= 0, len > 0 and off + len. */
	end = off + len;
	inode_lock(inode);
	size = cowmap_size(s);
	if (end > size && !(mode & FALLOC_FL_KEEP_SIZE)) {
		ret = inode_newsize_ok(inode, end);
		if (!ret)
			ret = cowmap_set_size(s, end, NULL);
		if (ret)
			goto out;
	}
	/* The bytes are there already; pages are made when written. */
	if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) ||
	    off >= size)
		goto out;
	ret = file_modified(file);
	if (ret)
		goto out;
	len = min(end, size) - off;
	ret = cowmap_view_write(s, off, len, NULL);
	if (ret >= 0)
		ret = ret == len ? 0 : -EIO;
out:
	inode_unlock(inode);
	return ret;
}

static int cowmap_view_check_flags(int flags)
{
	/* No direct I/O: the session's pages are memory, not blocks. */
	return flags & O_DIRECT ? -EINVAL : 0;
}

static int cowmap_view_release(struct inode *inode, struct file *file)
{
	struct cowmap_vfile *vf = file->private_data;

	if (vf->seek)
		fput(vf->seek);
	mutex_destroy(&vf->seek_lock);
	cowmap_session_unuse(vf->s);
	cowmap_session_put(vf->s);
	kfree(vf);
	return 0;
}

static const struct file_operations cowmap_view_fops = {
	.owner = THIS_MODULE,
	.llseek = cowmap_view_llseek,
	.read_iter = cowmap_view_read_iter,
	.write_iter = cowmap_view_write_iter,
	.mmap = cowmap_view_mmap,
	.fsync = cowmap_view_fsync,
	.fallocate = cowmap_view_fallocate,
	.check_flags = cowmap_view_check_flags,
	.splice_read = cowmap_splice_read,
	.splice_write = iter_file_splice_write,
	.release = cowmap_view_release,
};

/* ftruncate(2), fchmod(2), futimens(2), ... on a view. */
static int cowmap_view_setattr(struct cowmap_idmap *idmap,
			       struct dentry *dentry, struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	struct cowmap_vfile *vf;
	int ret;

	ret = setattr_prepare(idmap, dentry, attr);
	if (ret)
		return ret;
	if (attr->ia_valid & ATTR_SIZE) {
		if (!(attr->ia_valid & ATTR_FILE))
			return -EOPNOTSUPP;
		vf = attr->ia_file->private_data;
		ret = cowmap_set_size(vf->s, attr->ia_size, NULL);
		if (ret)
			return ret;
	}
	setattr_copy(idmap, inode, attr);
	return 0;
}

static const struct inode_operations cowmap_view_iops = {
	.setattr = cowmap_view_setattr,
};

/*
 * A new view of @s (COWMAP_IOC_VIEW). The file is returned in *@filep with
 * its fd reserved in @v->fd; the caller installs it once the answer has
 * reached the user, or puts both.
 */
int cowmap_view_open(struct cowmap_session *s, struct cowmap_view *v,
		     struct file **filep)
{
	int flags = v->flags & COWMAP_VIEW_RDWR ? O_RDWR : O_RDONLY;
	struct cowmap_vfile *vf;
	struct file *file;
	int fd;

	if (v->flags & ~(COWMAP_VIEW_RDWR | COWMAP_VIEW_CLOEXEC) || v->fd ||
	    memchr_inv(v->reserved, 0, sizeof(v->reserved)))
		return -EINVAL;

	vf = kzalloc(sizeof(*vf), GFP_KERNEL_ACCOUNT);
	if (!vf)
		return -ENOMEM;
	mutex_init(&vf->seek_lock);
	fd = get_unused_fd_flags(v->flags & COWMAP_VIEW_CLOEXEC ? O_CLOEXEC : 0);
	if (fd < 0) {
		kfree(vf);
		return fd;
	}

	/*
	 * The file's final fput() puts the module (its f_op->owner), as for a
	 * file opened through a path; this ioctl runs in the module.
	 */
	__module_get(THIS_MODULE);
	/* The dentry of the file holds this inode reference. */
	ihold(s->inode);
	s->inode->i_op = &cowmap_view_iops;
	file = alloc_file_pseudo(s->inode, cowmap_mnt, "cowmap-view",
				 flags | O_LARGEFILE, &cowmap_view_fops);
	if (IS_ERR(file)) {
		iput(s->inode);
		module_put(THIS_MODULE);
		put_unused_fd(fd);
		kfree(vf);
		return PTR_ERR(file);
	}
	file->f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
	/* The caller's fd holds a user: the count cannot be zero here. */
	kref_get(&s->ref);
	atomic_inc(&s->users);
	vf->s = s;
	file->private_data = vf;
	v->fd = fd;
	*filep = file;
	return 0;
}
