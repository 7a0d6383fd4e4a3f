// SPDX-License-Identifier: GPL-2.0
/*
 * The journal: a commit turns the pages written since the last commit into
 * records of changed bytes (old and new), dump and read(2) return them in
 * the journal format (uapi/cowmap.h, docs/journal-format.md), and the
 * journal file, when the session has one, gets every record appended.
 *
 * A commit first unmaps the written pages, so that writers fault and wait
 * on the session lock while their pages are compared with their twins.
 * Records are built and published under the lock; the journal file is
 * written afterwards under the journal lock only, since file I/O must not
 * run under a lock the fault path and fsnotify handlers take. A failed file
 * write leaves the records committed in the kernel; the next commit writes
 * them first.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/crc32.h>
#include <linux/crc32poly.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/uidgid.h>
#include <linux/vmalloc.h>
#include <linux/xattr.h>

#include "compat.h"
#include "cowmap.h"

#define COWMAP_REC_HDR	sizeof(struct cowmap_log_record)
/* The smallest record: one changed byte. A chunk holds at most cap / this. */
#define COWMAP_REC_MIN	ALIGN(COWMAP_REC_HDR + 2, 8)
/* A size record (format 2): no bytes, the sizes and the cut's CRC. */
#define COWMAP_SIZE_REC	ALIGN(COWMAP_REC_HDR + sizeof(struct cowmap_log_size), 8)
/* A new chunk's smallest size, and the largest (two whole runs fit). */
#define COWMAP_CHUNK_MIN	512
#define COWMAP_CHUNK_MAX	(256 * 1024)

static u32 cowmap_crc(const void *p, size_t len)
{
	/* The CRC-32 zlib's crc32() computes. */
	return crc32_le(~0U, p, len) ^ ~0U;
}

/* zlib's crc32(@crc, @p, @len): a CRC-32 continued over more bytes. */
u32 cowmap_log_crc(u32 crc, const void *p, size_t len)
{
	return crc32_le(crc ^ ~0U, p, len) ^ ~0U;
}

/*
 * Product of two polynomials mod the CRC-32 polynomial, in the reflected
 * bit order crc32_le() uses (the top bit is x^0).
 */
static u32 cowmap_crc_mul(u32 a, u32 b)
{
	u32 p = 0;
	int i;

	for (i = 0; i < 32; i++) {
		if (a & (0x80000000U >> i))
			p ^= b;
		b = (b >> 1) ^ (b & 1 ? CRC32_POLY_LE : 0);	/* b * x */
	}
	return p;
}

/*
 * cowmap_log_crc() over @n zero bytes, without reading them: the register
 * times x^(8 * @n), by squaring. Not crc32_le_shift(): 7.x removed it.
 */
u32 cowmap_log_crc_zeros(u32 crc, u64 n)
{
	u32 r = 0x80000000U, x = 0x00800000U;	/* x^0 and x^8 */

	for (; n; n >>= 1) {
		if (n & 1)
			r = cowmap_crc_mul(r, x);
		x = cowmap_crc_mul(x, x);
	}
	return ~cowmap_crc_mul(~crc, r);
}

/**
 * cowmap_file_dev() - the device stat(2) reports for a file
 * @f: the file
 *
 * On btrfs that is the subvolume's anonymous device, not the superblock's
 * s_dev; the journal header records it and offline merge compares it with
 * stat(2). DONT_SYNC and only STATX_INO: no I/O, no revalidation.
 *
 * Return: the device number, or the superblock's if getattr fails.
 */
dev_t cowmap_file_dev(struct file *f)
{
	struct kstat st;

	if (vfs_getattr(&f->f_path, &st, STATX_INO, AT_STATX_DONT_SYNC))
		return file_inode(f)->i_sb->s_dev;
	return st.dev;
}

/**
 * cowmap_file_id_read() - read the backing file's id at attach
 * @s: the session, not yet published
 * @f: its backing file
 *
 * The COWMAP_FILE_ID_XATTR xattr, if the file has one of exactly
 * COWMAP_FILE_ID_SIZE bytes (libcowmap sets it before attach). Any error
 * (no xattr, no user xattrs on this filesystem, EACCES) leaves the session
 * without an id: its logs then have the 64-byte header. __vfs_getxattr():
 * the same in 6.1, 6.12 and 7.3, and the filesystem's own handler (NFS
 * asks the server) still checks the caller's access; it skips
 * xattr_permission() and the LSM hook, which for a user.* name of a file
 * the caller opened for reading allow it anyway. Called with no
 * session lock held: the filesystem may sleep and take its own locks.
 */
void cowmap_file_id_read(struct cowmap_session *s, struct file *f)
{
	u8 id[COWMAP_FILE_ID_SIZE];
	ssize_t n;

	n = __vfs_getxattr(f->f_path.dentry, file_inode(f),
			   COWMAP_FILE_ID_XATTR, id, sizeof(id));
	/* An all-zero id is no id: the reader's "none". */
	if (n != sizeof(id) || !memchr_inv(id, 0, sizeof(id)))
		return;
	memcpy(s->file_id, id, sizeof(id));
	s->has_file_id = true;
}

/* Version 1 until the journal holds a size record. Returns its size. */
static size_t cowmap_log_header_v(struct cowmap_session *s,
				  struct cowmap_log_header_id *hi, bool v2)
{
	struct cowmap_log_header *h = &hi->h;
	dev_t dev = s->dev;	/* stat(2)'s, from attach: cowmap_file_dev() */
	size_t size = s->has_file_id ? sizeof(*hi) : sizeof(*h);

	memset(hi, 0, sizeof(*hi));
	memcpy(h->magic, COWMAP_LOG_MAGIC, sizeof(h->magic));
	h->version = cpu_to_le32(v2 ? COWMAP_LOG_VERSION : COWMAP_LOG_VERSION_1);
	h->header_size = cpu_to_le32(size);
	h->session_id = cpu_to_le64(s->id);
	h->dev_major = cpu_to_le32(MAJOR(dev));
	h->dev_minor = cpu_to_le32(MINOR(dev));
	h->ino = cpu_to_le64(s->ino);
	h->size_at_attach = cpu_to_le64(s->size_at_attach);
	h->created_ns = cpu_to_le64(s->created_ns);
	if (s->has_file_id)
		memcpy(hi->file_id, s->file_id, sizeof(hi->file_id));
	h->crc = cpu_to_le32(cowmap_crc(hi, size));
	return size;
}

/* The header of @s's dumps: 80 bytes with the file's id, else 64. */
size_t cowmap_log_header(struct cowmap_session *s,
			 struct cowmap_log_header_id *h)
{
	return cowmap_log_header_v(s, h, READ_ONCE(s->log_v2));
}

/*
 * Is @hi (@size bytes read) a valid header of a log of @s's backing file?
 * The inode matches, and: when both the header and the file have an id,
 * the ids are equal (a journal file made on another NFS client or on the
 * server); else the device matches (it may be the superblock's too: what
 * modules up to 0.2.0 wrote on btrfs). Returns the header's size, or 0.
 */
static size_t cowmap_header_matches(struct cowmap_session *s,
				    struct cowmap_log_header_id *hi,
				    size_t size)
{
	struct cowmap_log_header *h = &hi->h;
	u32 crc = le32_to_cpu(h->crc);
	u32 v = le32_to_cpu(h->version);
	u32 hsize = le32_to_cpu(h->header_size);
	dev_t dev = MKDEV(le32_to_cpu(h->dev_major), le32_to_cpu(h->dev_minor));
	bool id;

	if ((hsize != sizeof(*h) && hsize != sizeof(*hi)) || hsize > size)
		return 0;
	id = hsize == sizeof(*hi);
	h->crc = 0;
	if (crc != cowmap_crc(hi, hsize))
		return 0;
	h->crc = cpu_to_le32(crc);
	if (memcmp(h->magic, COWMAP_LOG_MAGIC, sizeof(h->magic)) ||
	    (v != COWMAP_LOG_VERSION_1 && v != COWMAP_LOG_VERSION) ||
	    h->flags || le64_to_cpu(h->ino) != s->ino)
		return 0;
	/*
	 * Both have an id: the id decides (a reused inode number, or equal
	 * anonymous devices of two NFS mounts, would match the device).
	 */
	if (id && s->has_file_id)
		return memcmp(hi->file_id, s->file_id, sizeof(s->file_id)) ?
		       0 : hsize;
	if (dev == s->dev || dev == file_inode(s->backing)->i_sb->s_dev)
		return hsize;
	return 0;
}

/*
 * Write all of @buf at *@pos. A short write is retried for the rest, so
 * that the error of a full filesystem is ENOSPC (or EDQUOT, EFBIG), not EIO.
 */
static int cowmap_write_all(struct file *f, const void *buf, size_t len,
			    loff_t *pos)
{
	while (len) {
		ssize_t n = kernel_write(f, buf, len, pos);

		if (n < 0)
			return n;
		if (!n)
			return -EIO;
		buf += n;
		len -= n;
	}
	return 0;
}

static size_t cowmap_rec_size(u32 len);

/*
 * The length of the valid part of a journal file of @size bytes: the
 * header and the whole records after it, up to the first record that is
 * short, malformed or fails its CRC (a commit torn by a crash).
 */
static loff_t cowmap_jfile_valid_len(struct file *jfile, loff_t size, bool v2,
				     loff_t hsize)
{
	size_t max = cowmap_rec_size(COWMAP_LOG_MAX_RUN);
	loff_t pos = hsize, valid = hsize;
	struct cowmap_log_record *h;
	u8 *buf;

	buf = kvmalloc(max, GFP_KERNEL_ACCOUNT);
	if (!buf)
		return -ENOMEM;
	h = (void *)buf;
	while (size - valid >= (loff_t)COWMAP_REC_HDR) {
		u32 rsize, len, crc;
		ssize_t n;

		pos = valid;
		n = kernel_read(jfile, buf, COWMAP_REC_HDR, &pos);
		if (n != COWMAP_REC_HDR)
			break;
		rsize = le32_to_cpu(h->size);
		len = le32_to_cpu(h->length);
		if (le32_to_cpu(h->magic) != COWMAP_REC_MAGIC || rsize > size - valid)
			break;
		if (v2 && le32_to_cpu(h->flags) & COWMAP_REC_SIZE) {
			if (len || rsize != COWMAP_SIZE_REC)
				break;
		} else if (!len || len > COWMAP_LOG_MAX_RUN ||
			   rsize != cowmap_rec_size(len)) {
			break;
		}
		n = kernel_read(jfile, buf + COWMAP_REC_HDR,
				rsize - COWMAP_REC_HDR, &pos);
		if (n != rsize - COWMAP_REC_HDR)
			break;
		crc = le32_to_cpu(h->crc);
		h->crc = 0;
		if (crc != cowmap_crc(buf, rsize))
			break;
		valid += rsize;
		if (fatal_signal_pending(current)) {
			kvfree(buf);
			return -EINTR;
		}
		cond_resched();
	}
	kvfree(buf);
	return valid;
}

/*
 * At attach: an empty journal file gets a header, another must have ours.
 * A torn tail (a commit cut short by a crash) is cut off, so that new
 * records follow the last whole one.
 */
int cowmap_jfile_attach(struct cowmap_session *s, struct file *jfile)
{
	loff_t size = i_size_read(file_inode(jfile)), pos = 0, valid;
	struct cowmap_log_header_id *h = &s->jfile_hdr;
	size_t hsize;
	ssize_t n;
	bool v2;
	int ret;

	if (size == 0) {
		hsize = cowmap_log_header(s, h);
		ret = cowmap_write_all(jfile, h, hsize, &pos);
		if (ret)
			return ret;
		s->jfile_len = pos;
	} else {
		if (!(jfile->f_mode & FMODE_READ))
			return -EACCES;
		n = kernel_read(jfile, h, sizeof(*h), &pos);
		if (n < 0)
			return n;
		hsize = cowmap_header_matches(s, h, n);
		if (!hsize)
			return -EINVAL;
		v2 = le32_to_cpu(h->h.version) == COWMAP_LOG_VERSION;
		valid = cowmap_jfile_valid_len(jfile, size, v2, hsize);
		if (valid < 0)
			return valid;
		if (valid < size) {
			ret = vfs_truncate(&jfile->f_path, valid);
			if (ret)
				return ret;
			pr_info("journal file of session %llu: cut a torn tail of %lld bytes at offset %lld\n",
				s->id, size - valid, valid);
		}
		s->jfile_len = valid;
		/* Its records continue there: a version 2 log stays one. */
		s->jfile_v2 = v2;
		s->log_v2 = s->jfile_v2;
	}
	s->jfile_hsize = hsize;
	s->jfile = jfile;
	return 0;
}

/*
 * Write the records the journal file does not have yet, then fsync it if
 * @durable. Under @jlock held for writing.
 */
static int cowmap_jfile_write(struct cowmap_session *s, bool durable)
{
	const struct cowmap_log_record *h;
	struct cowmap_jpos p;
	int ret = 0;

	lockdep_assert_held_write(&s->jlock);
	if (!s->jfile)
		return 0;
	if (s->log_v2 && !s->jfile_v2) {
		struct cowmap_log_header_id hd = s->jfile_hdr;
		loff_t pos = 0;

		/*
		 * The first size record: the file's header says version 2,
		 * the rest of it as it was (its size, its device or id).
		 */
		hd.h.version = cpu_to_le32(COWMAP_LOG_VERSION);
		hd.h.crc = 0;
		hd.h.crc = cpu_to_le32(cowmap_crc(&hd, s->jfile_hsize));
		ret = cowmap_write_all(s->jfile, &hd, s->jfile_hsize, &pos);
		if (ret)
			return ret;
		s->jfile_hdr = hd;
		s->jfile_v2 = true;
	}

	/*
	 * Records after jfile_seq are never dropped (a trim keeps what the
	 * file lacks), so the rest of their chunk is one contiguous write.
	 */
	for (h = cowmap_journal_seek(s, s->jfile_seq + 1, &p); h;
	     h = cowmap_journal_seek(s, s->jfile_seq + 1, &p)) {
		struct cowmap_chunk *c = s->chunks[p.ci];
		size_t len = c->used - p.off;
		loff_t pos = s->jfile_len;

		ret = cowmap_write_all(s->jfile, h, len, &pos);
		if (ret) {
			/* Best effort: no torn record in front of the retry. */
			vfs_truncate(&s->jfile->f_path, s->jfile_len);
			return ret;
		}
		s->jfile_len = pos;
		WRITE_ONCE(s->jfile_seq, c->first_seq + c->nr - 1);
	}
	if (durable)
		ret = vfs_fsync(s->jfile, 0);
	return ret;
}

/* Runs of changed bytes, in file order. */
struct cowmap_runs {
	struct cowmap_run {
		loff_t off;
		u32 len;
	} *v;
	size_t n, cap;
	u64 bytes;	/* journal bytes the records will take */
	u64 room;	/* the most they may take: the limits' room */
	int err;	/* the errno of the limit that sets @room */
};

static size_t cowmap_rec_size(u32 len)
{
	return ALIGN(COWMAP_REC_HDR + 2 * (size_t)len, 8);
}

/* Add [@off, @off + @len), merging with the last run, splitting long runs. */
static int cowmap_runs_add(struct cowmap_runs *r, loff_t off, u32 len)
{
	while (len) {
		struct cowmap_run *last = r->n ? &r->v[r->n - 1] : NULL;

		if (last && last->off + last->len == off &&
		    last->len < COWMAP_LOG_MAX_RUN) {
			u32 take = min_t(u32, len, COWMAP_LOG_MAX_RUN - last->len);

			r->bytes += cowmap_rec_size(last->len + take) -
				    cowmap_rec_size(last->len);
			last->len += take;
			off += take;
			len -= take;
			continue;
		}
		/*
		 * Past the limits already: fail now, before the array grows
		 * (its size is bounded by the limits, not by the pages).
		 */
		if (r->bytes + cowmap_rec_size(0) > r->room)
			return r->err;
		if (r->n == r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 64;
			struct cowmap_run *v = kvmalloc_array(cap, sizeof(*v),
							      GFP_KERNEL_ACCOUNT |
							      __GFP_NOWARN);

			if (!v)
				return -ENOMEM;
			if (r->n)
				memcpy(v, r->v, r->n * sizeof(*v));
			kvfree(r->v);
			r->v = v;
			r->cap = cap;
		}
		r->v[r->n++] = (struct cowmap_run){ .off = off };
		r->bytes += cowmap_rec_size(0);
	}
	return 0;
}

/* First index from @i where @a and @b differ, or @n. Pages are aligned. */
static size_t cowmap_skip_equal(const u8 *a, const u8 *b, size_t i, size_t n)
{
	while (i < n && (i & 7)) {
		if (a[i] != b[i])
			return i;
		i++;
	}
	while (i + 8 <= n && *(const u64 *)(a + i) == *(const u64 *)(b + i))
		i += 8;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/*
 * Compare a written page with its twin over its first @n bytes (the part
 * inside the file) and add the changed runs.
 */
static int cowmap_diff_page(struct cowmap_runs *r, struct cowmap_page *cp,
			    loff_t base, size_t n)
{
	const u8 *old = kmap_local_page(cp->twin);
	const u8 *new = kmap_local_page(cp->priv);
	size_t i = 0, start;
	int ret = 0;

	while (!ret) {
		i = cowmap_skip_equal(old, new, i, n);
		if (i >= n)
			break;
		start = i;
		while (i < n && old[i] != new[i])
			i++;
		ret = cowmap_runs_add(r, base + start, i - start);
	}
	kunmap_local(new);
	kunmap_local(old);
	return ret;
}

/* Copy [@off, @off + @len) of the twins and private pages to @old, @new. */
static void cowmap_copy_run(struct cowmap_session *s, loff_t off, u32 len,
			    u8 *old, u8 *new)
{
	u32 done = 0;

	while (done < len) {
		loff_t pos = off + done;
		size_t in = offset_in_page(pos);
		u32 chunk = min_t(u32, len - done, PAGE_SIZE - in);
		/* A page in a run has a twin: never a bare entry. */
		struct cowmap_page *cp = xa_load(&s->pages, pos >> PAGE_SHIFT);

		memcpy_from_page(old + done, cp->twin, in, chunk);
		memcpy_from_page(new + done, cp->priv, in, chunk);
		done += chunk;
	}
}

/* The bytes of @data a chunk for @want bytes of records gets. */
static size_t cowmap_chunk_cap(size_t want)
{
	return want <= PAGE_SIZE ? kmalloc_size_roundup(want) : PAGE_ALIGN(want);
}

/* The memory a chunk of @cap bytes takes: what the journal limits count. */
static size_t cowmap_chunk_mem(size_t cap)
{
	size_t longs = BITS_TO_LONGS(cap / COWMAP_REC_MIN);

	return cap + struct_size((struct cowmap_chunk *)NULL, dropped, 2 * longs);
}

static void cowmap_chunk_free(struct cowmap_session *s, struct cowmap_chunk *c)
{
	cowmap_unacct_journal(s, cowmap_chunk_mem(c->cap));
	kvfree(c->data);
	kfree(c);
}

/*
 * A chunk for at least @want bytes of records: kmalloc() up to a page, with
 * the whole bucket used; vmalloc() above, page granular. Its bitmaps are
 * sized for the most records @cap bytes can hold.
 */
static struct cowmap_chunk *cowmap_chunk_alloc(u64 first_seq, size_t want)
{
	size_t cap = cowmap_chunk_cap(want);
	size_t longs = BITS_TO_LONGS(cap / COWMAP_REC_MIN);
	struct cowmap_chunk *c;

	c = kzalloc(struct_size(c, dropped, 2 * longs), GFP_KERNEL_ACCOUNT);
	if (!c)
		return NULL;
	/* A failure is the committer's ENOMEM, not a splat in the log. */
	if (want <= PAGE_SIZE)
		c->data = kmalloc(cap, GFP_KERNEL_ACCOUNT);
	else
		c->data = __vmalloc(cap, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!c->data) {
		kfree(c);
		return NULL;
	}
	c->first_seq = first_seq;
	c->cap = cap;
	c->merged = c->dropped + longs;
	return c;
}

/* Room in @s->chunks for @n more chunks. */
static int cowmap_chunks_reserve(struct cowmap_session *s, size_t n)
{
	struct cowmap_chunk **v;
	size_t cap;

	if (s->nr_chunks + n <= s->chunks_cap)
		return 0;
	cap = max_t(size_t, 2 * s->chunks_cap, s->nr_chunks + n);
	cap = max_t(size_t, cap, 8);
	if (cap > UINT_MAX)
		return -ENOMEM;
	v = kvmalloc_array(cap, sizeof(*v), GFP_KERNEL_ACCOUNT);
	if (!v)
		return -ENOMEM;
	if (s->nr_chunks)
		memcpy(v, s->chunks, s->nr_chunks * sizeof(*v));
	kvfree(s->chunks);
	s->chunks = v;
	s->chunks_cap = cap;
	return 0;
}

/* Write the record of @run, numbered @seq, at the end of @c. */
static void cowmap_put_rec(struct cowmap_session *s, struct cowmap_chunk *c,
			   const struct cowmap_run *run, u64 seq, u64 time,
			   u32 pid, u32 uid)
{
	size_t size = cowmap_rec_size(run->len);
	struct cowmap_log_record *h = (void *)(c->data + c->used);
	u8 *old = (u8 *)(h + 1), *end = (u8 *)h + size;

	memset(h, 0, sizeof(*h));
	h->magic = cpu_to_le32(COWMAP_REC_MAGIC);
	h->size = cpu_to_le32(size);
	h->seq = cpu_to_le64(seq);
	h->session_id = cpu_to_le64(s->id);
	h->offset = cpu_to_le64(run->off);
	h->length = cpu_to_le32(run->len);
	h->time_ns = cpu_to_le64(time);
	h->pid = cpu_to_le32(pid);
	h->uid = cpu_to_le32(uid);
	cowmap_copy_run(s, run->off, run->len, old, old + run->len);
	memset(old + 2 * run->len, 0, end - (old + 2 * run->len));
	h->crc = cpu_to_le32(cowmap_crc(h, size));
	c->used += size;
	c->nr++;
	c->live++;
}

/*
 * Append the records of @r, numbered from @s->next_seq: into the free tail
 * of the last chunk first, then into new chunks of up to COWMAP_CHUNK_MAX
 * bytes, each sized to what it gets. The last new chunk is at least twice
 * the old last chunk (up to the maximum), so small commits share chunks.
 * Every allocation happens before the journal changes: on failure it is
 * as it was. Under @jlock (write) and @lock.
 */
static int cowmap_journal_add(struct cowmap_session *s,
			      const struct cowmap_runs *r)
{
	struct cowmap_chunk *tail = s->nr_chunks ?
				    s->chunks[s->nr_chunks - 1] : NULL;
	size_t grow = tail ? min_t(size_t, 2 * tail->cap, COWMAP_CHUNK_MAX) :
			     COWMAP_CHUNK_MIN;
	u64 time = ktime_get_real_ns();
	/* The fd's opener; its holder if the last fput runs in a kworker. */
	u32 pid = current->flags & PF_KTHREAD ? s->fd_pid :
						task_tgid_nr(current);
	u32 uid = from_kuid_munged(&init_user_ns, s->fd_cred->euid);
	size_t i, t = 0, k = 0, n = 0, fill;
	unsigned int first = s->nr_chunks;
	struct mem_cgroup *old;
	int ret;

	/* The sequence numbers of a chunk are consecutive. */
	if (tail && tail->first_seq + tail->nr == s->next_seq) {
		for (fill = tail->used; t < r->n; t++) {
			fill += cowmap_rec_size(r->v[t].len);
			if (fill > tail->cap)
				break;
		}
	}
	for (i = t, fill = 0; i < r->n; i++) {
		size_t size = cowmap_rec_size(r->v[i].len);

		if (!fill || fill + size > COWMAP_CHUNK_MAX) {
			k++;
			fill = 0;
		}
		fill += size;
	}

	old = set_active_memcg(s->memcg);
	ret = cowmap_chunks_reserve(s, k);
	for (i = t; !ret && i < r->n; n++) {
		u64 seq = s->next_seq + i;

		for (fill = 0; i < r->n; i++) {
			size_t size = cowmap_rec_size(r->v[i].len);

			if (fill && fill + size > COWMAP_CHUNK_MAX)
				break;
			fill += size;
		}
		if (i == r->n)
			fill = max(fill, grow);
		/* The limits count the memory, charged before it is taken. */
		ret = cowmap_acct_journal(s, cowmap_chunk_mem(cowmap_chunk_cap(fill)));
		if (ret) {
			s->chunks[first + n] = NULL;
			break;
		}
		s->chunks[first + n] = cowmap_chunk_alloc(seq, fill);
		if (!s->chunks[first + n]) {
			cowmap_unacct_journal(s, cowmap_chunk_mem(cowmap_chunk_cap(fill)));
			ret = -ENOMEM;
		}
	}
	set_active_memcg(old);
	if (ret) {
		while (n--)
			if (s->chunks[first + n])
				cowmap_chunk_free(s, s->chunks[first + n]);
		return ret;
	}

	for (i = 0; i < t; i++)
		cowmap_put_rec(s, tail, &r->v[i], s->next_seq + i, time, pid,
			       uid);
	for (n = 0; n < k; n++) {
		struct cowmap_chunk *c = s->chunks[first + n];
		u64 end = n + 1 < k ? s->chunks[first + n + 1]->first_seq :
				      s->next_seq + r->n;

		for (; s->next_seq + i < end; i++)
			cowmap_put_rec(s, c, &r->v[i], s->next_seq + i, time,
				       pid, uid);
	}
	s->nr_chunks += k;
	return 0;
}

/* Unmap every page written since the last commit; returns their number. */
static u64 cowmap_zap_written(struct cowmap_session *s)
{
	pgoff_t start = 0, end = 0;
	struct cowmap_page *cp;
	unsigned long idx;
	u64 n = 0;
	void *e;

	xa_for_each(&s->pages, idx, e) {
		cp = cowmap_entry_cp(e);
		if (!cp || !cp->twin)
			continue;
		n++;
		if (idx != end) {
			if (end > start)
				cowmap_zap(s, start, end - start);
			start = idx;
		}
		end = idx + 1;
	}
	if (end > start)
		cowmap_zap(s, start, end - start);
	return n;
}

/* Does the written page differ from its twin past its first @n bytes? */
static bool cowmap_differs_past(struct cowmap_page *cp, size_t n)
{
	const u8 *old = kmap_local_page(cp->twin);
	const u8 *new = kmap_local_page(cp->priv);
	bool differs = memcmp(old + n, new + n, PAGE_SIZE - n);

	kunmap_local(new);
	kunmap_local(old);
	return differs;
}

/*
 * The written pages are clean now, as far as the file goes: forget the
 * twin, so the next write takes a new one. A page that also changed past
 * the end of the file keeps its twin, updated with what was recorded, so
 * that those bytes are recorded if the file grows over them.
 */
static void cowmap_clean_written(struct cowmap_session *s, loff_t eof)
{
	struct cowmap_page *cp;
	unsigned long idx;
	void *e;

	xa_for_each(&s->pages, idx, e) {
		loff_t base = (loff_t)idx << PAGE_SHIFT;
		size_t n;
		u8 *p;

		cp = cowmap_entry_cp(e);
		if (!cp || !cp->twin || base >= eof)
			continue;
		n = min_t(loff_t, PAGE_SIZE, eof - base);
		if (n < PAGE_SIZE && cowmap_differs_past(cp, n)) {
			p = kmap_local_page(cp->twin);
			memcpy_from_page(p, cp->priv, 0, n);
			kunmap_local(p);
			cp->unconfirmed = false;
			continue;
		}
		/*
		 * A copy whose store may still be on its way (fault.c,
		 * cowmap_drop_unwritten()) keeps its mark while it holds no
		 * change: a truncation before that store must still find it
		 * unwritten (with no twin: no write reached it since).
		 */
		if (cp->unconfirmed && !cowmap_differs_past(cp, 0)) {
			cowmap_drop_twin(s, cp);
			cp->unconfirmed = true;
			continue;
		}
		cowmap_drop_twin(s, cp);
		cowmap_bare_page(s, idx, cp);
	}
}

int cowmap_jfile_sync(struct cowmap_session *s, bool durable)
{
	return cowmap_jfile_write(s, durable);
}

/*
 * Append a size record, numbered @s->next_seq: into the last chunk if it
 * has room, else into a new one. Nothing changes on failure. Under @jlock
 * (write) and @lock.
 */
int cowmap_journal_add_size(struct cowmap_session *s, loff_t old, loff_t new,
			    u32 cut_crc)
{
	struct cowmap_chunk *c = s->nr_chunks ? s->chunks[s->nr_chunks - 1] : NULL;
	struct cowmap_log_record *h;
	struct cowmap_log_size *z;
	struct mem_cgroup *memcg;
	u64 mem;
	int ret;

	lockdep_assert_held_write(&s->jlock);
	lockdep_assert_held(&s->lock);
	if (!c || c->first_seq + c->nr != s->next_seq ||
	    c->used + COWMAP_SIZE_REC > c->cap) {
		/* The limits count the memory, charged before it is taken. */
		mem = cowmap_chunk_mem(cowmap_chunk_cap(COWMAP_CHUNK_MIN));
		ret = cowmap_acct_journal(s, mem);
		if (ret)
			return ret;
		memcg = set_active_memcg(s->memcg);
		ret = cowmap_chunks_reserve(s, 1);
		c = ret ? NULL : cowmap_chunk_alloc(s->next_seq, COWMAP_CHUNK_MIN);
		set_active_memcg(memcg);
		if (!c) {
			cowmap_unacct_journal(s, mem);
			return -ENOMEM;
		}
		s->chunks[s->nr_chunks++] = c;
	}
	h = (void *)(c->data + c->used);
	z = (void *)(h + 1);
	memset(h, 0, COWMAP_SIZE_REC);
	h->magic = cpu_to_le32(COWMAP_REC_MAGIC);
	h->size = cpu_to_le32(COWMAP_SIZE_REC);
	h->seq = cpu_to_le64(s->next_seq);
	h->session_id = cpu_to_le64(s->id);
	h->offset = cpu_to_le64(new);
	h->flags = cpu_to_le32(COWMAP_REC_SIZE);
	h->time_ns = cpu_to_le64(ktime_get_real_ns());
	/* Signed as cowmap_journal_add() signs byte records. */
	h->pid = cpu_to_le32(current->flags & PF_KTHREAD ? s->fd_pid :
					task_tgid_nr(current));
	h->uid = cpu_to_le32(from_kuid_munged(&init_user_ns, s->fd_cred->euid));
	z->old_size = cpu_to_le64(old);
	z->new_size = cpu_to_le64(new);
	z->cut_crc = cpu_to_le32(new < old ? cut_crc : 0);
	h->crc = cpu_to_le32(cowmap_crc(h, COWMAP_SIZE_REC));
	c->used += COWMAP_SIZE_REC;
	c->nr++;
	c->live++;
	s->next_seq++;
	s->nr_records++;
	s->journal_bytes += COWMAP_SIZE_REC;
	WRITE_ONCE(s->log_v2, true);
	return 0;
}

/*
 * Take back the size record cowmap_journal_add_size() appended last, when
 * what had to follow it failed. Nothing has seen it: @jlock (write) and
 * @lock have been held since. @was_v2: @s->log_v2 before it.
 */
void cowmap_journal_drop_size(struct cowmap_session *s, bool was_v2)
{
	struct cowmap_chunk *c = s->chunks[s->nr_chunks - 1];

	lockdep_assert_held_write(&s->jlock);
	lockdep_assert_held(&s->lock);
	c->used -= COWMAP_SIZE_REC;
	c->nr--;
	c->live--;
	s->next_seq--;
	s->nr_records--;
	s->journal_bytes -= COWMAP_SIZE_REC;
	if (!c->nr) {
		cowmap_chunk_free(s, c);
		s->nr_chunks--;
	}
	WRITE_ONCE(s->log_v2, was_v2);
}

static int cowmap_do_commit(struct cowmap_session *s, struct cowmap_commit *c,
			    bool killable)
{
	bool durable = c->flags & COWMAP_COMMIT_DURABLE;
	int ret, fret;

	if (c->flags & ~COWMAP_COMMIT_DURABLE || c->records || c->bytes ||
	    c->first_seq || c->pages ||
	    memchr_inv(c->reserved, 0, sizeof(c->reserved)))
		return -EINVAL;

	if (!killable)
		down_write(&s->jlock);
	else if (down_write_killable(&s->jlock))
		return -EINTR;
	ret = cowmap_commit_locked(s, c);
	/* Also after a failure: earlier records may still be unwritten. */
	fret = cowmap_jfile_write(s, durable && !ret);
	up_write(&s->jlock);
	if (!ret && c->records)
		cowmap_nl_event(s, COWMAP_EV_COMMIT, c->records, c->bytes, 0);
	return ret ?: fret;
}

/*
 * A commit asked for (ioctl, fsync): it waits killably for a merge or
 * another commit of the session, which may wait for a slow server.
 */
int cowmap_commit(struct cowmap_session *s, struct cowmap_commit *c)
{
	return cowmap_do_commit(s, c, true);
}

/* The commit of the last close: it must run, signal or not. */
int cowmap_commit_final(struct cowmap_session *s, struct cowmap_commit *c)
{
	return cowmap_do_commit(s, c, false);
}

/*
 * The commit itself, with @jlock held for writing; the journal file is the
 * caller's to write. A size the session grew to is recorded first.
 */
int cowmap_commit_locked(struct cowmap_session *s, struct cowmap_commit *c)
{
	int ret;

	mutex_lock(&s->lock);
	ret = cowmap_commit_held(s, c);
	mutex_unlock(&s->lock);
	return ret;
}

/* cowmap_commit_locked() with @lock held too (a shrink's commit). */
int cowmap_commit_held(struct cowmap_session *s, struct cowmap_commit *c)
{
	struct cowmap_runs r = { };
	struct cowmap_page *cp;
	unsigned long idx;
	void *e;
	u64 seq0;
	int ret = 0;
	loff_t eof;

	lockdep_assert_held_write(&s->jlock);
	lockdep_assert_held(&s->lock);
	seq0 = s->next_seq;
	c->pages = cowmap_zap_written(s);
	eof = cowmap_size(s);
	if (s->own_size && s->csize != eof) {
		/* Only growths wait for a commit: a shrink records at once. */
		ret = cowmap_journal_add_size(s, s->csize, eof, 0);
		if (ret)
			goto unlock;
		s->csize = eof;
		c->first_seq = seq0;
		c->records = 1;
		c->bytes = COWMAP_SIZE_REC;
	}
	r.room = cowmap_acct_journal_room(s, &r.err);
	if (s->nr_chunks) {
		struct cowmap_chunk *tail = s->chunks[s->nr_chunks - 1];

		r.room += tail->cap - tail->used;
	}

	xa_for_each(&s->pages, idx, e) {
		loff_t base = (loff_t)idx << PAGE_SHIFT;

		cp = cowmap_entry_cp(e);
		if (!cp || !cp->twin || base >= eof)
			continue;
		ret = cowmap_diff_page(&r, cp, base,
				       min_t(loff_t, PAGE_SIZE, eof - base));
		if (ret)
			goto unlock;
	}

	if (r.n) {
		/* On failure nothing is recorded: the pages stay written. */
		ret = cowmap_journal_add(s, &r);
		if (ret)
			goto unlock;
		c->first_seq = c->first_seq ?: s->next_seq;
		c->records += r.n;
		c->bytes += r.bytes;
		s->next_seq += r.n;
		s->nr_records += r.n;
		s->journal_bytes += r.bytes;
	}
	cowmap_clean_written(s, eof);
	s->commits++;
unlock:
	kvfree(r.v);
	return ret;
}

int cowmap_dump(struct cowmap_session *s, struct cowmap_dump *d)
{
	u8 __user *buf = u64_to_user_ptr(d->buf);
	const struct cowmap_log_record *h;
	struct cowmap_log_header_id hd;
	const u8 *run = NULL;
	unsigned int run_ci = 0;
	size_t hsize;
	struct cowmap_jpos p;
	u64 seq = d->cursor;
	u32 used = 0, len = 0;
	int ret = 0;

	if (d->flags || d->bytes || d->records || d->needed || d->reserved0 ||
	    memchr_inv(d->reserved, 0, sizeof(d->reserved)))
		return -EINVAL;

	/* A merge holds @jlock while it writes a target that may hang. */
	if (down_read_killable(&s->jlock))
		return -EINTR;
	if (d->cursor == 0) {
		hsize = cowmap_log_header(s, &hd);
		if (d->buf_size < hsize) {
			d->needed = hsize;
			goto out;
		}
		if (copy_to_user(buf, &hd, hsize)) {
			ret = -EFAULT;
			goto out;
		}
		used = hsize;
		seq = 1;
		d->cursor = 1;
	}
	/* Records next to each other in a chunk are copied in one go. */
	for (h = cowmap_journal_seek(s, seq, &p); h;
	     h = cowmap_journal_next(s, &p)) {
		u32 size = le32_to_cpu(h->size);

		if (size > d->buf_size - used - len) {
			if (!used && !len)
				d->needed = size;
			break;
		}
		if (len && (p.ci != run_ci || (const u8 *)h != run + len)) {
			if (copy_to_user(buf + used, run, len)) {
				ret = -EFAULT;
				goto out;
			}
			used += len;
			len = 0;
		}
		if (!len) {
			run = (const u8 *)h;
			run_ci = p.ci;
		}
		len += size;
		d->records++;
		d->cursor = le64_to_cpu(h->seq) + 1;
	}
	if (len && copy_to_user(buf + used, run, len)) {
		ret = -EFAULT;
		goto out;
	}
	d->bytes = used + len;
out:
	up_read(&s->jlock);
	return ret;
}

/*
 * read(2): the same stream as the dump, from any position. The position of
 * the last record reached is cached, so reading in order costs no search.
 */
ssize_t cowmap_read(struct file *file, char __user *buf, size_t count,
		    loff_t *ppos)
{
	struct cowmap_session *s = cowmap_file_session(file);
	struct cowmap_file *cf = file->private_data;
	const struct cowmap_log_record *h;
	struct cowmap_log_header_id hd;
	loff_t pos = *ppos, rpos, run_rpos = 0, hsize;
	unsigned int run_ci = 0;
	const u8 *run = NULL;
	struct cowmap_jpos p;
	size_t done = 0, plen = 0;
	u64 seq, run_seq = 0;
	ssize_t ret = 0;

	if (!s)
		return -EINVAL;
	if (pos < 0)
		return -EINVAL;

	if (mutex_lock_killable(&cf->lock))
		return -EINTR;
	if (down_read_killable(&s->jlock)) {
		mutex_unlock(&cf->lock);
		return -EINTR;
	}
	/* Its size is constant: the file's id is read once, at attach. */
	hsize = cowmap_log_header(s, &hd);
	if (pos < hsize && count) {
		size_t n = min_t(size_t, count, hsize - pos);

		if (copy_to_user(buf, (u8 *)&hd + pos, n)) {
			ret = -EFAULT;
			goto out;
		}
		done = n;
		pos += n;
	}

	if (cf->rd_seq && cf->rd_pos <= pos) {
		seq = cf->rd_seq;
		rpos = cf->rd_pos;
	} else {
		seq = 1;
		rpos = hsize;
	}
	/*
	 * What is next to each other in a chunk is copied in one go. On a
	 * fault, the bytes copied count, and the cache goes back to the first
	 * record of the run.
	 */
	h = cowmap_journal_seek(s, seq, &p);
	for (;;) {
		const u8 *src = NULL;
		size_t off = 0, n = 0, left;
		u32 size = 0;

		if (h && done + plen < count) {
			size = le32_to_cpu(h->size);
			if (rpos + size <= pos) {
				rpos += size;
				seq = le64_to_cpu(h->seq) + 1;
				h = cowmap_journal_next(s, &p);
				continue;
			}
			off = pos + plen - rpos;
			n = min_t(size_t, size - off, count - done - plen);
			src = (const u8 *)h + off;
		}
		if (plen && (!src || p.ci != run_ci || src != run + plen)) {
			left = copy_to_user(buf + done, run, plen);
			done += plen - left;
			pos += plen - left;
			plen = 0;
			if (left) {
				rpos = run_rpos;
				seq = run_seq;
				ret = -EFAULT;
				break;
			}
		}
		if (!src)
			break;
		if (!plen) {
			run = src;
			run_ci = p.ci;
			run_rpos = rpos;
			run_seq = seq;
		}
		plen += n;
		if (off + n == size) {
			rpos += size;
			seq = le64_to_cpu(h->seq) + 1;
			h = cowmap_journal_next(s, &p);
		}
	}
	cf->rd_pos = rpos;
	cf->rd_seq = seq;
out:
	up_read(&s->jlock);
	mutex_unlock(&cf->lock);
	if (!done)
		return ret;
	*ppos = pos;
	return done;
}

/* From @p, the first record not dropped, or NULL at the end. */
static const struct cowmap_log_record *
cowmap_journal_settle(struct cowmap_session *s, struct cowmap_jpos *p)
{
	for (; p->ci < s->nr_chunks; p->ci++, p->idx = 0, p->off = 0) {
		struct cowmap_chunk *c = s->chunks[p->ci];

		for (; p->idx < c->nr; p->idx++) {
			const struct cowmap_log_record *h =
				(const void *)(c->data + p->off);

			if (!test_bit(p->idx, c->dropped))
				return h;
			p->off += le32_to_cpu(h->size);
		}
	}
	return NULL;
}

/*
 * The first record with a sequence number of at least @seq, its place in
 * @p; NULL (and @p at the end) if there is none. The chunk is found by a
 * binary search, the record by walking the chunk. Under @jlock.
 */
const struct cowmap_log_record *
cowmap_journal_seek(struct cowmap_session *s, u64 seq, struct cowmap_jpos *p)
{
	unsigned int lo = 0, hi = s->nr_chunks;
	struct cowmap_chunk *c;

	/* lo: the number of chunks starting at or before @seq. */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (s->chunks[mid]->first_seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	*p = (struct cowmap_jpos){ .ci = lo ? lo - 1 : 0 };
	if (lo) {
		c = s->chunks[p->ci];
		while (p->idx < c->nr && c->first_seq + p->idx < seq) {
			const struct cowmap_log_record *h =
				(const void *)(c->data + p->off);

			p->off += le32_to_cpu(h->size);
			p->idx++;
		}
	}
	return cowmap_journal_settle(s, p);
}

/* The record after the one at @p, which moves there. Under @jlock. */
const struct cowmap_log_record *
cowmap_journal_next(struct cowmap_session *s, struct cowmap_jpos *p)
{
	const struct cowmap_log_record *h =
		(const void *)(s->chunks[p->ci]->data + p->off);

	p->off += le32_to_cpu(h->size);
	p->idx++;
	return cowmap_journal_settle(s, p);
}

/*
 * Mark the record at @p merged; false if it was already. Under @jlock
 * (write) and @lock.
 */
bool cowmap_journal_set_merged(struct cowmap_session *s,
			       const struct cowmap_jpos *p)
{
	lockdep_assert_held_write(&s->jlock);
	lockdep_assert_held(&s->lock);
	if (__test_and_set_bit(p->idx, s->chunks[p->ci]->merged))
		return false;
	s->nr_merged++;
	return true;
}

/*
 * Drop the merged records the journal file has (all of them without a
 * file). A chunk is freed when its last record goes; until then, its
 * dropped records keep their bytes. Under @jlock (write) and @lock.
 */
void cowmap_journal_trim(struct cowmap_session *s)
{
	unsigned int ci, keep = 0;

	lockdep_assert_held_write(&s->jlock);
	lockdep_assert_held(&s->lock);
	for (ci = 0; ci < s->nr_chunks; ci++) {
		struct cowmap_chunk *c = s->chunks[ci];
		u32 idx, off = 0;

		for (idx = 0; idx < c->nr; idx++) {
			const struct cowmap_log_record *h =
				(const void *)(c->data + off);
			u32 size = le32_to_cpu(h->size);

			off += size;
			if (test_bit(idx, c->dropped) ||
			    !test_bit(idx, c->merged) ||
			    (s->jfile && c->first_seq + idx > s->jfile_seq))
				continue;
			__set_bit(idx, c->dropped);
			c->live--;
			s->nr_records--;
			s->nr_merged--;
			s->journal_bytes -= size;
		}
		if (c->live)
			s->chunks[keep++] = c;
		else
			cowmap_chunk_free(s, c);
	}
	s->nr_chunks = keep;
}

/* Drop every record. Under @jlock (write) and @lock. */
void cowmap_journal_free(struct cowmap_session *s)
{
	unsigned int ci;

	for (ci = 0; ci < s->nr_chunks; ci++)
		cowmap_chunk_free(s, s->chunks[ci]);
	kvfree(s->chunks);
	s->chunks = NULL;
	s->nr_chunks = 0;
	s->chunks_cap = 0;
	s->nr_records = 0;
	s->nr_merged = 0;
	s->journal_bytes = 0;
}
