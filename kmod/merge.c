// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel merge: apply a session's journal to a file the caller opened for
 * writing, with conflict detection, and trim merged records.
 *
 * Under a whole-file OFD write lock on the target (fcntl(F_OFD_SETLKW)'s,
 * which NFS forwards to the server and libcowmap's offline merge takes
 * too), the byte ranges the records touch are read into a shadow copy
 * ("extents") through the filesystem's read path, every record is applied
 * to the shadow in sequence order (old bytes match: apply; new bytes
 * there: already applied; else conflict), and only then are the changed
 * extents written through the filesystem's write path (kernel_write(), so
 * permissions, LSMs, immutable files, quotas, RLIMIT_FSIZE and fsnotify
 * apply) and the size set as ftruncate(2) would. So the policy is decided
 * on the whole journal before anything is written. A write or resize that
 * fails part-way writes the target's original bytes back (kept from the
 * read) and restores its size, best effort, before returning the error.
 */
#include <linux/bitmap.h>
#include <linux/file.h>
#include <linux/hash.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/sched/signal.h>
#include <linux/sort.h>
#include <linux/uaccess.h>

#include "compat.h"
#include "cowmap.h"

/* A byte range of the target, read into @buf, changed if @dirty. */
struct cowmap_extent {
	loff_t off;
	size_t len;
	size_t avail;	/* bytes the target had there (less at its end) */
	size_t avail0;	/* @avail as read */
	bool dirty;
	bool tried;	/* written, or cut by a shrink: an undo restores it */
	u8 *buf;
	u8 *orig;	/* the bytes as read, once the shadow changes them */
};

struct cowmap_merger {
	struct cowmap_session *s;
	struct file *target;
	struct cowmap_merge *m;
	struct cowmap_conflict __user *ubuf;
	const struct cowmap_log_record **recs;	/* in sequence order */
	size_t nrecs;
	struct cowmap_extent *ext;
	size_t next;
	/* The target's size: at the start, as records leave it, the least. */
	loff_t size0, size, min_size;
};

static bool cowmap_rec_is_size(const struct cowmap_log_record *h)
{
	return le32_to_cpu(h->flags) & COWMAP_REC_SIZE;
}

static loff_t cowmap_rec_off(const struct cowmap_log_record *h)
{
	return le64_to_cpu(h->offset);
}

static u32 cowmap_rec_len(const struct cowmap_log_record *h)
{
	return le32_to_cpu(h->length);
}

static int cowmap_cmp_off(const void *a, const void *b)
{
	loff_t x = cowmap_rec_off(*(const struct cowmap_log_record **)a);
	loff_t y = cowmap_rec_off(*(const struct cowmap_log_record **)b);

	return x < y ? -1 : x > y;
}

/* The union of the records' ranges, as sorted, disjoint extents. */
static int cowmap_build_extents(struct cowmap_merger *mg)
{
	const struct cowmap_log_record **by_off;
	struct cowmap_extent *e;
	size_t i;

	by_off = kvmalloc_array(mg->nrecs, sizeof(*by_off), GFP_KERNEL_ACCOUNT);
	mg->ext = kvcalloc(mg->nrecs, sizeof(*mg->ext), GFP_KERNEL_ACCOUNT);
	if (!by_off || !mg->ext) {
		kvfree(by_off);
		return -ENOMEM;
	}
	memcpy(by_off, mg->recs, mg->nrecs * sizeof(*by_off));
	sort(by_off, mg->nrecs, sizeof(*by_off), cowmap_cmp_off, NULL);

	for (i = 0; i < mg->nrecs; i++) {
		loff_t off = cowmap_rec_off(by_off[i]);
		loff_t end = off + cowmap_rec_len(by_off[i]);

		if (cowmap_rec_is_size(by_off[i]))
			continue;
		e = mg->next ? &mg->ext[mg->next - 1] : NULL;
		if (e && off <= e->off + (loff_t)e->len) {
			if (end > e->off + (loff_t)e->len)
				e->len = end - e->off;
			continue;
		}
		mg->ext[mg->next++] = (struct cowmap_extent){ .off = off,
							      .len = end - off };
	}
	kvfree(by_off);
	return 0;
}

static int cowmap_read_extents(struct cowmap_merger *mg)
{
	size_t i;

	for (i = 0; i < mg->next; i++) {
		struct cowmap_extent *e = &mg->ext[i];
		loff_t pos = e->off;
		ssize_t n;

		e->buf = kvmalloc(e->len, GFP_KERNEL_ACCOUNT);
		if (!e->buf)
			return -ENOMEM;
		n = kernel_read(mg->target, e->buf, e->len, &pos);
		if (n < 0)
			return n;
		e->avail = n;	/* short at the end of the target */
		e->avail0 = n;
	}
	return 0;
}

/* Keep the target's bytes of @e for an undo, before the shadow changes. */
static int cowmap_extent_save(struct cowmap_extent *e)
{
	if (e->orig)
		return 0;
	e->orig = kvmalloc(max_t(size_t, e->avail0, 1), GFP_KERNEL_ACCOUNT);
	if (!e->orig)
		return -ENOMEM;
	memcpy(e->orig, e->buf, e->avail0);
	return 0;
}

/* The extent holding [@off, @off + @len): one exists by construction. */
static struct cowmap_extent *cowmap_find_extent(struct cowmap_merger *mg,
						loff_t off)
{
	size_t lo = 0, hi = mg->next;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (mg->ext[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &mg->ext[lo];
}

static int cowmap_report(struct cowmap_merger *mg,
			 const struct cowmap_log_record *rec,
			 const u8 *old, const u8 *found, size_t avail)
{
	struct cowmap_conflict c = { };
	u32 len = cowmap_rec_len(rec), at = 0;

	if (!mg->ubuf || mg->m->conflicts >= mg->m->conflicts_max)
		return 0;
	/* From the first byte that is not the old one (shown as expected). */
	while (at < len && at < avail && found[at] == old[at])
		at++;
	c.session_id = le64_to_cpu(rec->session_id);
	c.seq = le64_to_cpu(rec->seq);
	c.offset = cowmap_rec_off(rec);
	c.length = len;
	c.diff_at = at;
	c.shown = min_t(u32, len - at, COWMAP_CONFLICT_SHOW);
	memcpy(c.expected, old + at, c.shown);
	if (at < avail) {
		u32 n = min_t(size_t, c.shown, avail - at);

		memcpy(c.found, found + at, n);
		c.shown = n;
	} else {
		c.shown = 0;
	}
	return copy_to_user(&mg->ubuf[mg->m->conflicts], &c, sizeof(c)) ?
	       -EFAULT : 0;
}

/*
 * CRC-32 of the target's bytes [@from, @to) as the records so far leave
 * them: the shadow where an extent holds them, the file elsewhere (zeros
 * past its original end: only a growth can have put bytes there).
 */
static int cowmap_shadow_crc(struct cowmap_merger *mg, loff_t from, loff_t to,
			     u32 *crc)
{
	u32 c = 0;
	u8 *buf = kvmalloc(PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	size_t i = 0;

	if (!buf)
		return -ENOMEM;
	while (from < to) {
		struct cowmap_extent *e = NULL;
		loff_t stop = to;
		size_t n;

		while (i < mg->next && mg->ext[i].off + (loff_t)mg->ext[i].avail <= from)
			i++;
		if (i < mg->next && mg->ext[i].off <= from)
			e = &mg->ext[i];
		else if (i < mg->next)
			stop = min(stop, mg->ext[i].off);
		if (e) {
			n = min_t(loff_t, e->off + e->avail, to) - from;
			c = cowmap_log_crc(c, e->buf + (from - e->off), n);
		} else if (from >= min(mg->size0, mg->min_size)) {
			/* Cut, or past the target's end: zeros a growth put there. */
			n = stop - from;
			c = cowmap_log_crc_zeros(c, n);
		} else {
			loff_t pos = from;
			ssize_t got = 0;

			n = min_t(loff_t, stop - from, PAGE_SIZE);
			n = min_t(loff_t, n, min(mg->size0, mg->min_size) - from);
			got = kernel_read(mg->target, buf, n, &pos);
			if (got < 0) {
				kvfree(buf);
				return got;
			}
			memset(buf + got, 0, n - got);
			c = cowmap_log_crc(c, buf, n);
		}
		from += n;
		cond_resched();
	}
	kvfree(buf);
	*crc = c;
	return 0;
}

/* The target's size becomes @size in the shadow. */
static int cowmap_shadow_resize(struct cowmap_merger *mg, loff_t size)
{
	size_t i;

	for (i = 0; i < mg->next; i++) {
		struct cowmap_extent *e = &mg->ext[i];
		size_t avail = clamp_t(loff_t, size - e->off, 0, e->len);

		if (avail != e->avail && cowmap_extent_save(e))
			return -ENOMEM;
		if (avail > e->avail)
			memset(e->buf + e->avail, 0, avail - e->avail);
		if (avail != e->avail)
			e->dirty = true;
		e->avail = avail;
	}
	mg->size = size;
	mg->min_size = min(mg->min_size, size);
	return 0;
}

/* A size record: apply, already applied, or a conflict. */
static int cowmap_check_size(struct cowmap_merger *mg,
			     const struct cowmap_log_record *rec, bool *merged)
{
	const struct cowmap_log_size *z = (const void *)(rec + 1);
	loff_t old = le64_to_cpu(z->old_size), new = le64_to_cpu(z->new_size);
	bool apply = false;
	u32 crc;
	int ret;

	if (mg->size == old) {
		apply = true;
		if (new < old) {
			ret = cowmap_shadow_crc(mg, new, old, &crc);
			if (ret)
				return ret;
			apply = crc == le32_to_cpu(z->cut_crc);
		}
	}
	if (apply) {
		ret = cowmap_shadow_resize(mg, new);
		if (ret)
			return ret;
		mg->m->applied++;
		*merged = true;
	} else if (mg->size == new) {
		mg->m->already++;
		*merged = true;
	} else {
		struct cowmap_conflict c = { };

		if (mg->ubuf && mg->m->conflicts < mg->m->conflicts_max) {
			c.session_id = le64_to_cpu(rec->session_id);
			c.seq = le64_to_cpu(rec->seq);
			c.offset = new;
			if (copy_to_user(&mg->ubuf[mg->m->conflicts], &c,
					 sizeof(c)))
				return -EFAULT;
		}
		mg->m->conflicts++;
		if (mg->m->flags & COWMAP_MERGE_FORCE) {
			ret = cowmap_shadow_resize(mg, new);
			if (ret)
				return ret;
			*merged = true;
		}
	}
	return 0;
}

/* Rule 4's scan of the target for zeros reads at most this much. */
#define COWMAP_MERGE_SCAN_MAX	(256ULL << 20)

/*
 * Are the target's bytes [@from, @to) outside the extents all zeros? The
 * file may end before @to (its size was checked). *@zero false also when
 * more than COWMAP_MERGE_SCAN_MAX bytes outside the extents would be read.
 */
static int cowmap_zeros_outside(struct cowmap_merger *mg, loff_t from,
				loff_t to, bool *zero)
{
	u64 scanned = 0;
	u8 *buf;
	size_t i = 0;
	int ret = 0;

	*zero = false;
	if (from >= to)
		goto yes;
	buf = kvmalloc(PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!buf)
		return -ENOMEM;
	while (from < to) {
		loff_t stop = to, pos = from;
		ssize_t got;
		size_t n;

		while (i < mg->next && mg->ext[i].off + (loff_t)mg->ext[i].len <= from)
			i++;
		if (i < mg->next && mg->ext[i].off <= from) {
			from = mg->ext[i].off + mg->ext[i].len;
			continue;
		}
		if (i < mg->next)
			stop = min(stop, mg->ext[i].off);
		n = min_t(loff_t, stop - from, PAGE_SIZE);
		/* The limit counts the bytes read, outside the extents. */
		if (scanned + n > COWMAP_MERGE_SCAN_MAX)
			break;
		scanned += n;
		got = kernel_read(mg->target, buf, n, &pos);
		if (got < 0) {
			ret = got;
			break;
		}
		if (memchr_inv(buf, 0, got))
			break;
		if (got < n) {
			from = to;	/* the file ends here */
			break;
		}
		from += n;
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	kvfree(buf);
	if (ret || from < to)
		return ret;
yes:
	*zero = true;
	return 0;
}

/*
 * Rule 4 with size records (the offline merge's, docs/cowmapctl.md): does
 * the target hold the state the records leave when each applies in turn
 * to a file of the first size record's old size? That is: the target's
 * size is the last size record's new size; every byte below it that a
 * record determines holds the last value written there, or zero where a
 * size record cut it (or it lay past the first size) and no record wrote
 * it since; every other byte from the least size on is zero. Then every
 * record is already applied: a merge run again over a journal that shrank
 * over its own writes, or went through several sizes, changes nothing and
 * reports no conflict. Checked on the extents as read, before anything is
 * applied to them. A journal without size records is left to the rule of
 * each record.
 */
static int cowmap_final_state(struct cowmap_merger *mg, bool *done)
{
	loff_t first = -1, least = LLONG_MAX, last = 0, cur, cut = LLONG_MAX;
	unsigned long **det;
	size_t i, x;
	int ret = 0;

	*done = false;
	for (i = 0; i < mg->nrecs; i++) {
		const struct cowmap_log_size *z = (const void *)(mg->recs[i] + 1);

		if (!cowmap_rec_is_size(mg->recs[i]))
			continue;
		if (first < 0)
			first = le64_to_cpu(z->old_size);
		last = le64_to_cpu(z->new_size);
		least = min(least, last);
	}
	if (first < 0 || mg->size0 != last)
		return 0;
	least = min(least, first);
	/* Each byte record lies inside the size the records before left. */
	for (i = 0, cur = first; i < mg->nrecs; i++) {
		const struct cowmap_log_record *rec = mg->recs[i];

		if (cowmap_rec_is_size(rec))
			cur = cowmap_rec_off(rec);
		else if (cowmap_rec_off(rec) + cowmap_rec_len(rec) > cur)
			return 0;
	}

	/* Backwards: the first value met for a byte is its last one. */
	det = kvcalloc(max_t(size_t, mg->next, 1), sizeof(*det), GFP_KERNEL_ACCOUNT);
	if (!det)
		return -ENOMEM;
	/* A bit per byte: virtually contiguous, an extent may be large. */
	for (x = 0; x < mg->next; x++) {
		det[x] = kvcalloc(BITS_TO_LONGS(mg->ext[x].len), sizeof(long),
				  GFP_KERNEL_ACCOUNT);
		if (!det[x]) {
			ret = -ENOMEM;
			goto out;
		}
	}
	for (i = mg->nrecs; i-- > 0;) {
		const struct cowmap_log_record *rec = mg->recs[i];
		loff_t off = cowmap_rec_off(rec), p;
		const u8 *new = (const u8 *)(rec + 1) + cowmap_rec_len(rec);
		struct cowmap_extent *e;

		if (cowmap_rec_is_size(rec)) {
			cut = min(cut, off);
			continue;
		}
		e = cowmap_find_extent(mg, off);
		x = e - mg->ext;
		/* Past a later cut or the final end, a byte is not this one's. */
		for (p = off; p < off + cowmap_rec_len(rec) && p < min(cut, last); p++) {
			size_t at = p - e->off;

			if (test_bit(at, det[x]))
				continue;
			__set_bit(at, det[x]);
			if (at >= e->avail || e->buf[at] != new[p - off])
				goto out;
		}
		cond_resched();
	}
	/* Bytes no record determines: zeros from the least size on. */
	for (x = 0; x < mg->next; x++) {
		struct cowmap_extent *e = &mg->ext[x];
		loff_t p = max(e->off, least), end = min(e->off + (loff_t)e->len, last);

		for (; p < end; p++) {
			size_t at = p - e->off;

			if (!test_bit(at, det[x]) && (at >= e->avail || e->buf[at]))
				goto out;
			if (!(at & 0xfffff)) {
				if (fatal_signal_pending(current)) {
					ret = -EINTR;
					goto out;
				}
				cond_resched();
			}
		}
	}
	ret = cowmap_zeros_outside(mg, least, last, done);
out:
	for (x = 0; x < mg->next && det[x]; x++)
		kvfree(det[x]);
	kvfree(det);
	/* Only a shortcut for merges run again: without memory, check. */
	if (ret == -ENOMEM) {
		*done = false;
		ret = 0;
	}
	return ret;
}

/* Apply every record to the shadow extents; count and report. */
static int cowmap_check(struct cowmap_merger *mg, bool *merged)
{
	bool force = mg->m->flags & COWMAP_MERGE_FORCE;
	size_t i;
	int ret;

	for (i = 0; i < mg->nrecs; i++) {
		const struct cowmap_log_record *rec = mg->recs[i];
		loff_t off = cowmap_rec_off(rec);
		u32 len = cowmap_rec_len(rec);
		const u8 *old = (const u8 *)(rec + 1), *new = old + len;
		struct cowmap_extent *e;
		size_t at;
		u8 *cur;
		bool whole;

		if (cowmap_rec_is_size(rec)) {
			ret = cowmap_check_size(mg, rec, &merged[i]);
			if (ret)
				return ret;
			continue;
		}
		e = cowmap_find_extent(mg, off);
		at = off - e->off;
		cur = e->buf + at;
		/* The target has these bytes only if it reaches that far. */
		whole = at + len <= e->avail;

		if (whole && !memcmp(cur, old, len)) {
			ret = cowmap_extent_save(e);
			if (ret)
				return ret;
			memcpy(cur, new, len);
			e->dirty = true;
			mg->m->applied++;
			merged[i] = true;
		} else if (whole && !memcmp(cur, new, len)) {
			mg->m->already++;
			merged[i] = true;
		} else {
			ret = cowmap_report(mg, rec, old, cur,
					    e->avail > at ? e->avail - at : 0);
			if (ret)
				return ret;
			mg->m->conflicts++;
			if (force) {
				ret = cowmap_extent_save(e);
				if (ret)
					return ret;
				/* Past the target's end: zeros up to the record. */
				if (at > e->avail)
					memset(e->buf + e->avail, 0, at - e->avail);
				memcpy(cur, new, len);
				if (at + len > e->avail)
					e->avail = at + len;
				mg->size = max(mg->size, off + (loff_t)len);
				e->dirty = true;
				merged[i] = true;
			}
		}
	}
	return 0;
}

/*
 * Resize the target as ftruncate(2) on it would: append-only and immutable
 * files refuse, set-id bits go, and the filesystem's ->setattr checks
 * RLIMIT_FSIZE and its own limits (inode_newsize_ok()). The inode lock is
 * held for this step only (do_truncate()'s; it is not exported).
 */
static int cowmap_truncate(struct cowmap_merger *mg, loff_t size)
{
	struct file *f = mg->target;
	struct inode *inode = file_inode(f);
	struct iattr attr = {
		.ia_valid = ATTR_SIZE | ATTR_FILE | ATTR_MTIME | ATTR_CTIME,
		.ia_size = size,
		.ia_file = f,
	};
	int ret;

	if (IS_APPEND(inode) || IS_IMMUTABLE(inode))
		return -EPERM;
	file_start_write(f);
	inode_lock(inode);
	ret = file_remove_privs(f);
	if (!ret)
		ret = notify_change(cowmap_file_idmap(f), f->f_path.dentry,
				    &attr, NULL);
	inode_unlock(inode);
	file_end_write(f);
	return ret;
}

/*
 * Write @len bytes at @off through the filesystem's write path, on from
 * *@done (short writes go on; RLIMIT_FSIZE cuts a write short first).
 */
static int cowmap_write_range(struct file *f, loff_t off, const u8 *buf,
			      size_t len, size_t *done)
{
	while (*done < len) {
		loff_t pos = off + *done;
		ssize_t n = kernel_write(f, buf + *done, len - *done, &pos);

		if (n < 0)
			return n;
		if (!n)
			return -EIO;
		*done += n;
		cond_resched();
	}
	return 0;
}

/*
 * A write or resize failed: the extents tried get their bytes as read
 * back, and the target its size, best effort (a fatal signal or a dead
 * disk can stop this too; a re-run then finds each record old or new).
 */
static void cowmap_undo(struct cowmap_merger *mg)
{
	struct file *f = mg->target;
	size_t i, done;

	for (i = 0; i < mg->next; i++) {
		struct cowmap_extent *e = &mg->ext[i];

		if (!e->tried)
			continue;
		done = 0;
		/* An extent the shadow never changed still holds them. */
		if (cowmap_write_range(f, e->off, e->orig ?: e->buf, e->avail0, &done))
			pr_warn_ratelimited("cowmap: merge undo: could not restore %zu bytes at %lld of inode %llu\n",
					    e->avail0 - done, e->off + done,
					    (u64)file_inode(f)->i_ino);
	}
	if (i_size_read(file_inode(f)) != mg->size0 &&
	    cowmap_truncate(mg, mg->size0))
		pr_warn_ratelimited("cowmap: merge undo: could not restore the size %lld of inode %llu\n",
				    mg->size0, (u64)file_inode(f)->i_ino);
	mg->m->written = 0;
}

/*
 * Write the changed extents and set the size, through the filesystem's
 * own paths. Order: a size the records cut below both the original and
 * the final size first (its cut bytes outside the extents are not kept
 * for an undo), then the extents (growing the file as they go), then the
 * final size. All or nothing: a failure undoes what was done.
 */
static int cowmap_write_extents(struct cowmap_merger *mg)
{
	struct file *f = mg->target;
	struct inode *inode = file_inode(f);
	bool dirty = false, resize;
	size_t i, done;
	int ret = 0;

	for (i = 0; i < mg->next; i++)
		dirty |= mg->ext[i].dirty;
	resize = mg->size != mg->size0 || mg->min_size != mg->size0;
	if (!dirty && !resize)
		return 0;
	/* A resize that would be refused: before anything is written. */
	if (resize) {
		if (IS_APPEND(inode) || IS_IMMUTABLE(inode))
			return -EPERM;
		ret = inode_newsize_ok(inode, mg->size);
		if (ret)
			return ret;
	}
	if (mg->min_size < min(mg->size0, mg->size)) {
		ret = cowmap_truncate(mg, mg->min_size);
		/* The cut zeroed what extents had past it: an undo restores it. */
		for (i = 0; !ret && i < mg->next; i++)
			if (mg->ext[i].off + mg->ext[i].avail0 > mg->min_size)
				mg->ext[i].tried = true;
	}
	for (i = 0; !ret && i < mg->next; i++) {
		struct cowmap_extent *e = &mg->ext[i];

		if (!e->dirty || !e->avail)
			continue;
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		e->tried = true;
		done = 0;
		ret = cowmap_write_range(f, e->off, e->buf, e->avail, &done);
		mg->m->written += done;
	}
	if (!ret && i_size_read(inode) != mg->size)
		ret = cowmap_truncate(mg, mg->size);
	if (ret)
		cowmap_undo(mg);
	return ret;
}

/*
 * A filesystem with its own ->lock (NFS, SMB, Ceph, FUSE, ...) forwards
 * the lock and decides how a blocked request waits. The NFSv4.1+ client
 * resends a denied LOCK when the server's CB_NOTIFY_LOCK comes or after
 * 30 s (NFS4_LOCK_MAXTIMEOUT), and nfsd of 6.12 (not of 6.1) sends none
 * for a filesystem without EXPORT_OP_ASYNC_LOCK (all but GFS2 and OCFS2),
 * so a merge waited up to 30 s for a lock released in milliseconds
 * (docs/nfs.md, "Lock waits"). There the lock is tried
 * without blocking (F_OFD_SETLK's) and tried again after a backoff that
 * doubles from COWMAP_LOCK_POLL_MIN_MS to COWMAP_LOCK_POLL_MAX_MS. Local
 * locks keep the kernel's blocking wait, which is woken at the unlock.
 */
#define COWMAP_LOCK_POLL_MIN_MS	4
#define COWMAP_LOCK_POLL_MAX_MS	200

static int cowmap_lock_target_poll(struct file *f, struct file_lock *fl)
{
	unsigned int ms = COWMAP_LOCK_POLL_MIN_MS;
	int ret;

	cowmap_flc(fl)->cowmap_fl_flags &= ~FL_SLEEP;
	for (;;) {
		ret = vfs_lock_file(f, F_SETLK, fl, NULL);
		/* A conflict: EAGAIN, or EACCES (fcntl(2) allows it; SMB). */
		if (ret != -EAGAIN && ret != -EACCES)
			return ret;
		schedule_timeout_killable(msecs_to_jiffies(ms));
		if (fatal_signal_pending(current))
			return -EINTR;
		ms = min_t(unsigned int, 2 * ms, COWMAP_LOCK_POLL_MAX_MS);
	}
}

/*
 * The whole-file OFD write lock of F_OFD_SETLKW on @f (killable): merges
 * here, offline merges (libcowmap takes the same lock) and, over NFS,
 * merges on other machines serialise on it. A filesystem without locks
 * (ENOLCK, EOPNOTSUPP) merges without. *@held tells whether it is held.
 */
static int cowmap_lock_target(struct file *f, bool *held)
{
	struct file_lock *fl = cowmap_ofd_lock_alloc(f, F_WRLCK);
	int ret;

	*held = false;
	if (!fl)
		return -ENOMEM;
	if (f->f_op->lock) {
		ret = cowmap_lock_target_poll(f, fl);
	} else {
		for (;;) {
			ret = vfs_lock_file(f, F_SETLKW, fl, NULL);
			if (ret != FILE_LOCK_DEFERRED)
				break;
			ret = wait_event_killable(*cowmap_ofd_lock_wq(fl),
						  cowmap_ofd_lock_unblocked(fl));
			if (ret)
				break;
		}
		locks_delete_block(fl);
	}
	locks_free_lock(fl);
	if (ret == -ENOLCK || ret == -EOPNOTSUPP)
		return 0;
	if (ret == -ERESTARTSYS)
		ret = -EINTR;
	*held = !ret;
	return ret;
}

static void cowmap_unlock_target(struct file *f)
{
	struct file_lock *fl = cowmap_ofd_lock_alloc(f, F_UNLCK);

	/* Without memory: the lock goes at the last close of @f. */
	if (!fl || vfs_lock_file(f, F_SETLK, fl, NULL))
		pr_warn_ratelimited("cowmap: merge: could not release the lock on inode %llu\n",
				    (u64)file_inode(f)->i_ino);
	if (fl)
		locks_free_lock(fl);
}

/*
 * Two merges through one open file description share the OFD lock's owner:
 * the second one's lock request succeeds at once, and the first one's
 * unlock would release the lock under the second. So merges through the
 * same struct file wait for each other before the lock (killable; only
 * they wait), in this list of the files being merged into.
 */
struct cowmap_merging {
	struct list_head node;
	struct file *f;
};

static LIST_HEAD(cowmap_merging_list);
static DEFINE_SPINLOCK(cowmap_merging_lock);
static DECLARE_WAIT_QUEUE_HEAD(cowmap_merging_wq);

/* Enter @m unless its file is being merged into: true if entered. */
static bool cowmap_merging_try(struct cowmap_merging *m)
{
	struct cowmap_merging *o;
	bool busy = false;

	spin_lock(&cowmap_merging_lock);
	list_for_each_entry(o, &cowmap_merging_list, node)
		busy |= o->f == m->f;
	if (!busy)
		list_add(&m->node, &cowmap_merging_list);
	spin_unlock(&cowmap_merging_lock);
	return !busy;
}

static int cowmap_merging_enter(struct cowmap_merging *m, struct file *f)
{
	m->f = f;
	/* The condition enters only when true: a kill leaves @m out. */
	if (wait_event_killable(cowmap_merging_wq, cowmap_merging_try(m)))
		return -EINTR;
	return 0;
}

static void cowmap_merging_leave(struct cowmap_merging *m)
{
	spin_lock(&cowmap_merging_lock);
	list_del(&m->node);
	spin_unlock(&cowmap_merging_lock);
	wake_up_all(&cowmap_merging_wq);
}

/*
 * Merges into one inode through different open file descriptions are
 * ordered by the OFD lock, unless the filesystem has no locks (ENOLCK):
 * then these order them here (another machine has its own). Taken after
 * the lock.
 */
#define COWMAP_MERGE_MUTEXES	8
static struct mutex cowmap_merge_mutex[COWMAP_MERGE_MUTEXES] = {
	__MUTEX_INITIALIZER(cowmap_merge_mutex[0]),
	__MUTEX_INITIALIZER(cowmap_merge_mutex[1]),
	__MUTEX_INITIALIZER(cowmap_merge_mutex[2]),
	__MUTEX_INITIALIZER(cowmap_merge_mutex[3]),
	__MUTEX_INITIALIZER(cowmap_merge_mutex[4]),
	__MUTEX_INITIALIZER(cowmap_merge_mutex[5]),
	__MUTEX_INITIALIZER(cowmap_merge_mutex[6]),
	__MUTEX_INITIALIZER(cowmap_merge_mutex[7]),
};

static struct mutex *cowmap_merge_mutex_of(struct file *f)
{
	return &cowmap_merge_mutex[hash_ptr(file_inode(f), ilog2(COWMAP_MERGE_MUTEXES))];
}

static int cowmap_check_target(struct file *f)
{
	struct inode *inode = file_inode(f);

	/* A merge reads the target (to find conflicts) and writes it. */
	if ((f->f_mode & (FMODE_READ | FMODE_WRITE)) != (FMODE_READ | FMODE_WRITE))
		return -EBADF;
	if (!S_ISREG(inode->i_mode) || f->f_flags & (O_DIRECT | O_APPEND))
		return -EINVAL;
	/* A view is a session's, not a file: merge into its file. */
	if (f->f_path.mnt == cowmap_mnt)
		return -EINVAL;
	if (!(f->f_mode & FMODE_CAN_READ) || !(f->f_mode & FMODE_CAN_WRITE))
		return -EOPNOTSUPP;
	return 0;
}

int cowmap_merge(struct cowmap_session *s, struct cowmap_merge *m)
{
	const u32 flags = COWMAP_MERGE_SKIP | COWMAP_MERGE_FORCE |
			  COWMAP_MERGE_DRY_RUN | COWMAP_MERGE_FSYNC;
	struct cowmap_merger mg = { .s = s, .m = m };
	struct cowmap_merging merging;
	const struct cowmap_log_record *rec;
	struct cowmap_jpos p;
	bool *merged = NULL;
	bool write, done, locked;
	struct kstat st;
	size_t i;
	int ret;

	if (m->flags & ~flags || m->reserved0 || m->records || m->applied ||
	    m->already || m->conflicts || m->written ||
	    memchr_inv(m->reserved, 0, sizeof(m->reserved)) ||
	    (m->flags & COWMAP_MERGE_SKIP && m->flags & COWMAP_MERGE_FORCE))
		return -EINVAL;
	mg.ubuf = u64_to_user_ptr(m->conflicts_buf);

	mg.target = fget(m->target_fd);
	if (!mg.target)
		return -EBADF;
	ret = cowmap_check_target(mg.target);
	if (ret)
		goto out_fput;
	ret = cowmap_merging_enter(&merging, mg.target);
	if (ret)
		goto out_fput;
	/* Before @jlock: commits go on while another merge holds the file. */
	ret = cowmap_lock_target(mg.target, &locked);
	if (ret)
		goto out_merging;
	if (mutex_lock_killable(cowmap_merge_mutex_of(mg.target))) {
		ret = -EINTR;
		goto out_lock;
	}

	/* Records are stable while @jlock is held; merge marks them. */
	if (down_write_killable(&s->jlock)) {
		ret = -EINTR;
		goto out_mutex;
	}
	mg.recs = kvmalloc_array(max_t(u64, s->nr_records, 1), sizeof(*mg.recs),
				 GFP_KERNEL_ACCOUNT);
	merged = kvcalloc(max_t(u64, s->nr_records, 1), sizeof(*merged),
			  GFP_KERNEL_ACCOUNT);
	ret = -ENOMEM;
	if (!mg.recs || !merged)
		goto out_unlock;
	for (rec = cowmap_journal_seek(s, 1, &p); rec;
	     rec = cowmap_journal_next(s, &p))
		mg.recs[mg.nrecs++] = rec;
	m->records = mg.nrecs;
	ret = 0;
	if (!mg.nrecs)
		goto out_unlock;

	ret = cowmap_build_extents(&mg);
	if (ret)
		goto out_unlock;

	/* As fstat(2) sees it: NFS revalidates its attributes here. */
	ret = vfs_getattr(&mg.target->f_path, &st, STATX_SIZE,
			  AT_STATX_SYNC_AS_STAT);
	if (ret)
		goto out_unlock;
	mg.size0 = st.size;
	mg.size = mg.size0;
	mg.min_size = mg.size0;
	ret = cowmap_read_extents(&mg);
	if (!ret)
		ret = cowmap_final_state(&mg, &done);
	if (!ret && done) {
		/* Nothing to write: every record is already applied. */
		m->already = mg.nrecs;
		for (i = 0; i < mg.nrecs; i++)
			merged[i] = true;
	} else if (!ret) {
		ret = cowmap_check(&mg, merged);
	}
	write = !ret && !(m->flags & COWMAP_MERGE_DRY_RUN) &&
		(!m->conflicts || m->flags & (COWMAP_MERGE_SKIP | COWMAP_MERGE_FORCE));
	if (write)
		ret = cowmap_write_extents(&mg);

	if (write && !ret) {
		/* The same walk as above: @jlock was held all along. */
		mutex_lock(&s->lock);
		for (i = 0, rec = cowmap_journal_seek(s, 1, &p); rec;
		     i++, rec = cowmap_journal_next(s, &p))
			if (merged[i])
				cowmap_journal_set_merged(s, &p);
		mutex_unlock(&s->lock);
	}
	if (write && !ret && m->flags & COWMAP_MERGE_FSYNC)
		ret = vfs_fsync(mg.target, 0);

out_unlock:
	up_write(&s->jlock);
out_mutex:
	mutex_unlock(cowmap_merge_mutex_of(mg.target));
out_lock:
	if (locked)
		cowmap_unlock_target(mg.target);
out_merging:
	cowmap_merging_leave(&merging);
	if (!ret && m->records) {
		cowmap_nl_event(s, COWMAP_EV_MERGE, m->applied, m->already,
				m->conflicts);
		if (m->conflicts)
			cowmap_nl_event(s, COWMAP_EV_CONFLICT, m->conflicts, 0, 0);
	}
	for (i = 0; mg.ext && i < mg.next; i++) {
		kvfree(mg.ext[i].buf);
		kvfree(mg.ext[i].orig);
	}
	kvfree(mg.ext);
	kvfree(merged);
	kvfree(mg.recs);
out_fput:
	fput(mg.target);
	return ret;
}

/*
 * Drop merged records (that the journal file has, if there is one).
 * -EINTR if killed while a merge of the session holds @jlock.
 */
int cowmap_trim(struct cowmap_session *s)
{
	if (down_write_killable(&s->jlock))
		return -EINTR;
	mutex_lock(&s->lock);
	cowmap_journal_trim(s);
	mutex_unlock(&s->lock);
	up_write(&s->jlock);
	return 0;
}
