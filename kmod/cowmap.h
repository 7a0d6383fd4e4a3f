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
#include <linux/refcount.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "../uapi/cowmap.h"

struct mem_cgroup;
struct cowmap_watch;

/*
 * What one user's sessions hold (account.c), keyed by the effective uid of
 * the fd that attached. Freed with its last session.
 */
struct cowmap_user {
	struct hlist_node node;
	kuid_t uid;
	refcount_t ref;
	atomic_t sessions;	/* attached and orphaned */
	atomic_long_t pages;	/* private copies and twins */
	atomic_long_t base;	/* pinned file pages */
	atomic_long_t jmem;	/* journal memory, bytes */
	/* Under cowmap_registry_lock. */
	unsigned int orphans;
	size_t orphan_bytes;
};

/*
 * Unmap counters of a session (->map_gen): an unmap of one page moves one,
 * so that it does not send the write faults of other pages back.
 */
#define COWMAP_MAP_GENS	16

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
	/*
	 * Made for a write by a fault that maps it writable: a truncation
	 * can unmap it (or come before its PTE) before the store lands, and
	 * until the page differs from @twin nothing says the store did.
	 * Cleared when the twin goes or is rewritten (commit, cut).
	 */
	bool unconfirmed;
};

/*
 * An entry of a session's ->pages: a struct cowmap_page, or, for a page
 * with no twin and neither mark (written and committed, what most written
 * pages are after a commit), its private page alone, tagged COWMAP_BARE,
 * which costs the xarray slot and no allocation of its own
 * (cowmap_bare_page(); a write makes it a struct cowmap_page again).
 */
#define COWMAP_BARE	1

static inline bool cowmap_entry_bare(void *e)
{
	return xa_pointer_tag(e) == COWMAP_BARE;
}

/* The private page of entry @e. */
static inline struct page *cowmap_entry_priv(void *e)
{
	if (cowmap_entry_bare(e))
		return xa_untag_pointer(e);
	return ((struct cowmap_page *)e)->priv;
}

/* Entry @e as a struct cowmap_page, or NULL if it is bare. */
static inline struct cowmap_page *cowmap_entry_cp(void *e)
{
	return cowmap_entry_bare(e) ? NULL : e;
}

/*
 * A chunk of the journal: committed records back to back in @data, in the
 * journal format (struct cowmap_log_record, old, new, padding), with
 * consecutive sequence numbers from @first_seq. Records are immutable once
 * published; a commit appends to the last chunk while its free tail has
 * room. A trim marks records dropped; the chunk is freed when none is
 * left. @data comes from kmalloc() up to a page and from vmalloc() above
 * (page granular: no power-of-two rounding), at most COWMAP_CHUNK_MAX.
 * Every field changes only with the session's @jlock (written) and @lock
 * held.
 */
struct cowmap_chunk {
	u64 first_seq;
	u32 nr;		/* records in @data, dropped ones included */
	u32 live;	/* records not dropped */
	u32 used;	/* bytes of @data holding records */
	u32 cap;	/* bytes of @data */
	u8 *data;
	unsigned long *merged;	/* record i applied by a kernel merge */
	unsigned long dropped[];	/* record i dropped by a trim; then @merged */
};

/* A place in the journal: record @idx of chunk @ci, at byte @off of it. */
struct cowmap_jpos {
	unsigned int ci;
	u32 idx;
	u32 off;
};

/*
 * One session: an isolated view of one file, created by attach. Freed when
 * the last reference goes: the fd that attached or adopted it, the orphan
 * registry, and the work item of the backing inode's watch while it
 * revalidates the session each hold one.
 */
struct cowmap_session {
	struct kref ref;
	u64 id;

	/* Under cowmap_registry_lock. */
	struct list_head node;
	int state;			/* COWMAP_STATE_ATTACHED or _ORPHANED */
	size_t orphan_bytes;
	u64 orphan_since;		/* boot time (s) it became an orphan */

	struct cowmap_user *user;	/* charged for what it holds */
	bool user_counted;		/* in user->sessions */

	/*
	 * @lock serialises everything that decides what a PTE of this session
	 * points at: faults, mkwrite, invalidation of base pages, commit,
	 * teardown. Order: mmap_lock -> @lock -> i_mmap_rwsem of @inode -> PTL.
	 * Never held across copy_{to,from}_user() or file I/O (a fault
	 * reads the file's page before it takes @lock; it reads under it
	 * only if the page went from the page cache in between). A write
	 * fault allocates and copies before it takes @lock, and checks
	 * the copy under it (fault.c, cowmap_take_precopy()).
	 */
	struct mutex lock;
	bool dead;

	/* Per-session inode: its i_mapping links the session's VMAs only. */
	struct inode *inode;

	/* Set once at attach, constant afterwards. */
	struct file *backing;
	bool base_shmem;
	u64 size_at_attach;
	dev_t dev;
	u64 ino;
	u64 created_ns;
	/* The file's COWMAP_FILE_ID_XATTR at attach: the header then has it. */
	u8 file_id[COWMAP_FILE_ID_SIZE];
	bool has_file_id;
	/*
	 * The watch of the backing inode, shared by its sessions (set at
	 * attach, a reference until the session is freed); @watch_node on
	 * its list of sessions, @reval_node on its work's (session.c).
	 * @reval_work: this session's walk alone, when the shared walk found
	 * its lock held (it holds a reference while queued).
	 */
	struct cowmap_watch *watch;
	struct list_head watch_node;
	struct list_head reval_node;
	struct work_struct reval_work;

	kuid_t owner_uid;		/* effective uid of the fd that attached */
	pid_t owner_pid;		/* the process that attached */
	/*
	 * The fd that holds the session: its opener's credentials and the
	 * process that attached or adopted; records are signed with these
	 * when the commit runs where current means nothing (a kworker doing
	 * the last fput). Set at attach, changed by adopt with @jlock
	 * (written) and @lock held.
	 */
	const struct cred *fd_cred;
	pid_t fd_pid;
	struct mem_cgroup *memcg;	/* pages and records are charged here */
	struct cowmap_lru_ent *lru_ent;	/* the shrinker's, in @memcg's list */
	struct file_ra_state ra;	/* readahead of the faults' reads */
	bool limit_pending;		/* a limit event is queued; under @lock */
	struct work_struct limit_work;

	struct xarray pages;	/* pgoff -> struct cowmap_page *, or bare */
	struct xarray base;	/* window -> cowmap_base_win (fault.c), one folio ref a page */

	/*
	 * Private pages and twins allocated, with those of copies faults
	 * make before they take @lock (max_session_pages counts these).
	 */
	atomic_long_t held;

	/* Under @lock. */
	unsigned long nr_private;
	unsigned long nr_twins;
	unsigned long nr_base;
	u64 faults;
	u64 cow_copies;
	u64 rearms;
	u64 base_invalidations;
	u64 limit_hits;
	u64 base_reclaimed;	/* base pages unpinned for reclaim */
	pgoff_t reclaim_next;	/* where the next reclaim starts */
	pgoff_t last_miss;	/* the last fault that found no cached page */

	atomic_t nr_vmas;

	/*
	 * The session's size: the backing file's until the session changes
	 * it (@own_size), then @size. @csize is the size the journal has
	 * reached (the last size record's); base bytes past @base_cut read
	 * as zeros. Under @lock, changed with @jlock held too. @log_v2: the
	 * journal holds a size record, so its log is version 2.
	 */
	bool own_size;
	bool log_v2;
	bool jfile_v2;		/* the journal file's header says version 2 */
	loff_t size;
	loff_t csize;
	loff_t base_cut;
	pgoff_t base_pg_seen;	/* cowmap_base_pgoff() at the last look */
	/*
	 * Changes of the backing file (docs/design.md, "When someone else
	 * changes the file"): the watch shared by the file's sessions counts
	 * them (the fsnotify handler), @mod_gen counts those the session
	 * looked for itself (COWMAP_IOC_REFRESH); cowmap_mod_gen() is their
	 * sum. @gen_seen is the sum the session last caught up with,
	 * @gen_walked the one its last walk of the pinned pages started from
	 * (both under @lock); @end_seen is the base's end in pages the session
	 * last unmapped from (cowmap_notice_size()).
	 */
	atomic_t mod_gen;
	/*
	 * Moved by every unmap of the session's pages (cowmap_zap()), before
	 * it walks the page tables, one counter per page modulo
	 * COWMAP_MAP_GENS: a write fault sets its PTE after it drops @lock,
	 * only if its page's did not move since (fault.c; "Locking" in
	 * docs/design.md).
	 */
	atomic_t map_gen[COWMAP_MAP_GENS];
	int gen_seen;
	int gen_walked;
	atomic_long_t end_seen;
	/*
	 * Open fds on the session: the session fd and its views. The last
	 * one to go closes the session (cowmap_session_unuse()); an orphan
	 * has none.
	 */
	atomic_t users;

	/*
	 * The journal. @jlock (outer to mmap_lock and @lock) is held for
	 * writing by commit and discard, for reading by dump and read(2);
	 * the fields below change only with @jlock and @lock both held.
	 */
	struct rw_semaphore jlock;
	struct cowmap_chunk **chunks;	/* in sequence order */
	unsigned int nr_chunks;
	unsigned int chunks_cap;	/* entries allocated in @chunks */
	u64 next_seq;
	u64 nr_records;
	u64 journal_bytes;
	u64 journal_mem;	/* bytes allocated for chunks */
	u64 nr_merged;
	u64 commits;
	/* The journal file: written under @jlock only, never under @lock. */
	struct file *jfile;
	loff_t jfile_len;	/* bytes of it known good */
	u64 jfile_seq;		/* last record written to it */
	/* Its header (64 or 80 bytes), kept for the rewrite to version 2. */
	struct cowmap_log_header_id jfile_hdr;
	u32 jfile_hsize;
};

/*
 * What an open /dev/cowmap fd holds. @s is set once, by attach or adopt,
 * with @lock held, and published with smp_store_release() after the
 * file's f_mapping points at the session's inode; it never changes again.
 */
struct cowmap_file {
	struct mutex lock;	/* attach, adopt, handshake, read(2) */
	bool api_done;
	struct cowmap_session *s;
	/* read(2): the stream position of record @rd_seq, under @lock. */
	loff_t rd_pos;
	u64 rd_seq;
};

static inline struct cowmap_session *cowmap_file_session(struct file *file)
{
	struct cowmap_file *cf = file->private_data;

	/* Pairs with cowmap_file_set(): f_mapping is set before @s. */
	return smp_load_acquire(&cf->s);
}

/* Module parameters (limits), read with READ_ONCE(). */
extern unsigned long cowmap_max_session_pages;
extern unsigned long cowmap_max_total_pages;
extern unsigned long cowmap_max_journal_bytes;
extern unsigned int cowmap_max_orphans;
extern unsigned long cowmap_max_orphan_bytes;
extern unsigned int cowmap_orphan_expiry_secs;
extern unsigned int cowmap_max_user_orphans;
extern unsigned long cowmap_max_user_orphan_bytes;

/* pool.c */
int cowmap_pool_init(void);
void cowmap_pool_exit(void);
struct page *cowmap_pool_get(struct cowmap_session *s);
bool cowmap_pool_put(struct cowmap_session *s, struct page *page);

/* account.c */
extern const struct kernel_param_ops cowmap_ro_long_ops;
void cowmap_account_init(void);
int cowmap_acct_session_start(struct cowmap_session *s);
void cowmap_acct_session_end(struct cowmap_session *s);
void cowmap_acct_session_free(struct cowmap_session *s);
bool cowmap_acct_page(struct cowmap_session *s);
void cowmap_unacct_page(struct cowmap_session *s);
bool cowmap_acct_base(struct cowmap_session *s, unsigned long nr);
void cowmap_unacct_base(struct cowmap_session *s, unsigned long nr);
bool cowmap_acct_base_user_full(struct cowmap_session *s, unsigned long nr);
u64 cowmap_acct_journal_room(struct cowmap_session *s, int *err);
int cowmap_acct_journal(struct cowmap_session *s, u64 bytes);
void cowmap_unacct_journal(struct cowmap_session *s, u64 bytes);
bool cowmap_acct_orphan(struct cowmap_session *s, size_t bytes);
void cowmap_unacct_orphan(struct cowmap_session *s, size_t bytes);

/* session.c */
int cowmap_session_init(void);
void cowmap_session_quiesce(void);
void cowmap_session_exit(void);
void cowmap_session_put(struct cowmap_session *s);
void cowmap_session_close(struct cowmap_session *s);
int cowmap_attach(struct file *file, struct cowmap_attach *arg);
int cowmap_adopt(struct file *file, struct cowmap_adopt *arg);
int cowmap_discard(struct cowmap_session *s);
int cowmap_status(struct cowmap_session *s, struct cowmap_status *st);
pgoff_t cowmap_eof_pgoff(struct cowmap_session *s);
loff_t cowmap_size(struct cowmap_session *s);
loff_t cowmap_base_end(struct cowmap_session *s);
pgoff_t cowmap_base_pgoff(struct cowmap_session *s);
int cowmap_set_size(struct cowmap_session *s, loff_t size, loff_t *old);
void cowmap_session_unuse(struct cowmap_session *s);
void cowmap_sync_size(struct cowmap_session *s);
extern struct vfsmount *cowmap_mnt;

struct cowmap_session *cowmap_session_get(u64 id);
struct cowmap_session *cowmap_session_next(u64 after);

/* netlink.c */
int cowmap_nl_init(void);
void cowmap_nl_exit(void);
bool cowmap_queue_work(struct work_struct *work);
void cowmap_nl_init_session(struct cowmap_session *s);
void cowmap_nl_event(struct cowmap_session *s, enum cowmap_event ev, u64 a,
		     u64 b, u64 c);
void cowmap_nl_limit_hit(struct cowmap_session *s);

/* fault.c */
int cowmap_fault_init(void);
void cowmap_fault_exit(void);
int cowmap_mmap(struct file *file, struct vm_area_struct *vma);
int cowmap_mmap_session(struct cowmap_session *s, struct vm_area_struct *vma);
struct page *cowmap_read_page(struct cowmap_session *s, pgoff_t pgoff,
			      bool *priv);
struct page *cowmap_write_page(struct cowmap_session *s, pgoff_t pgoff);
int cowmap_cut_page(struct cowmap_session *s, loff_t pos);
void cowmap_drop_past(struct cowmap_session *s, pgoff_t from);
void cowmap_zap(struct cowmap_session *s, pgoff_t pgoff, pgoff_t nr);
unsigned long cowmap_reclaim_session(struct cowmap_session *s,
				     unsigned long nr);
unsigned long cowmap_reclaim_bases(struct cowmap_user *u,
				   struct cowmap_session *skip,
				   unsigned long nr);
void cowmap_drop_twin(struct cowmap_session *s, struct cowmap_page *cp);
void cowmap_bare_page(struct cowmap_session *s, pgoff_t pgoff,
		      struct cowmap_page *cp);
void cowmap_invalidate_base(struct cowmap_session *s);
void cowmap_revalidate(struct cowmap_session *s, bool full);
void cowmap_notice_size(struct cowmap_session *s, struct inode *inode,
			bool shrunk);
int cowmap_mod_gen(struct cowmap_session *s);
int cowmap_mod_gen_nolock(struct cowmap_session *s);
void cowmap_watch_saw_end(struct cowmap_session *s);
int cowmap_refresh(struct cowmap_session *s, u64 *invalidated);
struct folio *cowmap_prefetch_base(struct cowmap_session *s, pgoff_t pgoff);
void cowmap_free_pages(struct cowmap_session *s);

/* view.c */
int cowmap_view_open(struct cowmap_session *s, struct cowmap_view *v,
		     struct file **filep);

/* merge.c */
int cowmap_merge(struct cowmap_session *s, struct cowmap_merge *m);
int cowmap_trim(struct cowmap_session *s);

/* journal.c */
size_t cowmap_log_header(struct cowmap_session *s,
			 struct cowmap_log_header_id *h);
dev_t cowmap_file_dev(struct file *f);
void cowmap_file_id_read(struct cowmap_session *s, struct file *f);
int cowmap_jfile_attach(struct cowmap_session *s, struct file *jfile);
int cowmap_commit_final(struct cowmap_session *s, struct cowmap_commit *c);
int cowmap_commit(struct cowmap_session *s, struct cowmap_commit *c);
int cowmap_commit_locked(struct cowmap_session *s, struct cowmap_commit *c);
int cowmap_commit_held(struct cowmap_session *s, struct cowmap_commit *c);
int cowmap_jfile_sync(struct cowmap_session *s, bool durable);
int cowmap_journal_add_size(struct cowmap_session *s, loff_t old, loff_t new,
			    u32 cut_crc);
void cowmap_journal_drop_size(struct cowmap_session *s, bool was_v2);
u32 cowmap_log_crc(u32 crc, const void *p, size_t len);
u32 cowmap_log_crc_zeros(u32 crc, u64 n);
int cowmap_dump(struct cowmap_session *s, struct cowmap_dump *d);
ssize_t cowmap_read(struct file *file, char __user *buf, size_t count,
		    loff_t *ppos);
void cowmap_journal_free(struct cowmap_session *s);
const struct cowmap_log_record *
cowmap_journal_seek(struct cowmap_session *s, u64 seq, struct cowmap_jpos *p);
const struct cowmap_log_record *
cowmap_journal_next(struct cowmap_session *s, struct cowmap_jpos *p);
bool cowmap_journal_set_merged(struct cowmap_session *s,
			       const struct cowmap_jpos *p);
void cowmap_journal_trim(struct cowmap_session *s);

#endif /* _COWMAP_H */
