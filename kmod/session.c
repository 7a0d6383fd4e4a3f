// SPDX-License-Identifier: GPL-2.0
/*
 * Sessions: creation, attach to a backing file, status, teardown.
 *
 * Each session owns an inode on a private pseudo filesystem, so that its
 * VMAs hang off an address_space of their own: zapping a page of one session
 * (unmap_mapping_pages()) never touches another session's mappings.
 *
 * Sessions are created by attach. A session whose fd is closed with changes
 * (committed records or written pages) is kept as an orphan, within the
 * orphan limits, until a new fd adopts it.
 *
 * An fsnotify mark on the backing inode, one shared by all the sessions on
 * it, tells them when the file was modified by someone else (write,
 * truncate, hole punch, direct I/O): base pages that left the page cache
 * are then unmapped, so the next access sees the file as it is now, or gets
 * SIGBUS past its new end. The handler runs in the writer's context and
 * only counts the change (and unmaps a shrunk tail); each session catches
 * up lazily and one work item walks the sessions' pins.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/fs_context.h>
#include <linux/fsnotify_backend.h>
#include <linux/hashtable.h>
#include <linux/magic.h>
#include <linux/memcontrol.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>

#include "compat.h"
#include "cowmap.h"

#define COWMAP_FS_MAGIC 0x636f776d	/* "cowm" */

/*
 * The watch of a backing inode: one fsnotify mark shared by every session
 * on the inode, so that a change of the file costs its writer the same
 * whatever the number of sessions (issue 16, item 4). Found by the inode in
 * cowmap_watches while attached; @sessions lists its sessions (under
 * @lock). The handler counts changes in @gen, which the sessions compare
 * with what they last saw, and @work revalidates each session's pinned
 * pages after a change, outside the writer's context.
 *
 * Lifetime: the hash table holds the mark's reference; a session points to
 * the watch (->watch, under the session's lock) from attach to teardown.
 * The last session to leave detaches the mark and drops that reference;
 * fsnotify frees the mark after an SRCU grace period, which no handler can
 * outlive, and cowmap_free_mark() cancels @work, so it never runs on a
 * freed watch. @inode (the key) is pinned while the mark is attached.
 */
struct cowmap_watch {
	struct fsnotify_mark mark;
	struct inode *inode;
	struct hlist_node hnode;	/* in cowmap_watches */
	atomic_t gen;
	atomic_long_t end_seen;		/* the file's end in pages, last seen */
	struct mutex lock;
	struct list_head sessions;
	struct delayed_work work;
};

/* Attached watches by inode; add and detach under cowmap_watch_lock. */
static DEFINE_HASHTABLE(cowmap_watches, 8);
static DEFINE_MUTEX(cowmap_watch_lock);

/*
 * How long after a change of the file the walk of the pinned pages runs:
 * changes within that time share one walk, so a file written all the time
 * costs each session at most this many walks a second, whatever the rate.
 */
#define COWMAP_REVAL_DELAY	(HZ / 20)

struct vfsmount *cowmap_mnt;
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

/*
 * The backing file was modified (write, truncate, hole punch, direct I/O).
 * This runs in the modifier's context, once for all the sessions on the
 * file (they share the mark), so it must not cost what they hold: no
 * session lock, no walk of the pinned pages, no loop over the sessions
 * (issue 16, item 4). It counts the change, so that each session's next
 * fault, view access or status catches up under its own lock, and queues
 * the work item that walks the sessions' pinned pages COWMAP_REVAL_DELAY
 * later. One exception: when the file shrank, the sessions' mappings of
 * what is gone are unmapped at once (cowmap_notice_size()), as the kernel
 * unmaps every mapping of a truncated file in the truncating task.
 */
/*
 * For the selftests: ignore changes of backing files, so that a local
 * change (direct I/O) stands for one no event reports (another NFS client's
 * write), which only COWMAP_IOC_REFRESH finds. Root only.
 */
static bool cowmap_test_ignore_changes;
module_param_named(test_ignore_changes, cowmap_test_ignore_changes, bool, 0600);
MODULE_PARM_DESC(test_ignore_changes,
		 "Testing only: ignore fsnotify events of backing files");

/* The file's end in pages. */
static pgoff_t cowmap_watch_end(struct cowmap_watch *w)
{
	return (pgoff_t)DIV_ROUND_UP_ULL(i_size_read(w->inode), PAGE_SIZE);
}

/*
 * Raise @w->end_seen to @end if it is lower. A file that grew with no
 * event (another NFS client's write, found by a refresh or an attach)
 * must not leave it low: a later shrink to a size in between would not
 * be seen as one.
 */
static void cowmap_watch_raise_end(struct cowmap_watch *w, pgoff_t end)
{
	long old = atomic_long_read(&w->end_seen);

	while ((long)end > old &&
	       !atomic_long_try_cmpxchg(&w->end_seen, &old, end))
		;
}

/* The same for @s's watch, after a refresh (fault.c). */
void cowmap_watch_saw_end(struct cowmap_session *s)
{
	struct cowmap_watch *w = READ_ONCE(s->watch);

	if (w)
		cowmap_watch_raise_end(w, cowmap_watch_end(w));
}

static int cowmap_handle_event(struct fsnotify_mark *mark, u32 mask,
			       struct inode *inode, struct inode *dir,
			       const struct qstr *name, u32 cookie)
{
	struct cowmap_watch *w = container_of(mark, struct cowmap_watch, mark);
	pgoff_t end, old;
	struct cowmap_session *s;

	if (unlikely(READ_ONCE(cowmap_test_ignore_changes)))
		return 0;
	atomic_inc(&w->gen);
	/* Pairs with cowmap_fault(): it sees the count or we see its PTEs. */
	smp_mb__after_atomic();
	end = cowmap_watch_end(w);
	old = atomic_long_read(&w->end_seen);
	if (likely(end >= old)) {
		/* Growth or none: raise @end_seen (too high is only safe). */
		cowmap_watch_raise_end(w, end);
	} else {
		/*
		 * A shrink. The new end is published after every session's
		 * tail is unmapped, so that a truncating task whose handler
		 * comes second waits here for the first one's unmaps and
		 * ftruncate() returns with no PTE past the end. Read again
		 * at the end: a growth's handler meanwhile raised it.
		 */
		mutex_lock(&w->lock);
		list_for_each_entry(s, &w->sessions, watch_node)
			cowmap_notice_size(s, s->inode, true);
		atomic_long_set(&w->end_seen, cowmap_watch_end(w));
		mutex_unlock(&w->lock);
	}
	queue_delayed_work(system_unbound_wq, &w->work, COWMAP_REVAL_DELAY);
	return 0;
}

/* One session's walk, queued by the shared one; drops its reference. */
static void cowmap_reval_session_fn(struct work_struct *work)
{
	struct cowmap_session *s = container_of(work, struct cowmap_session,
						reval_work);

	cowmap_invalidate_base(s);
	cowmap_session_put(s);
}

/*
 * A change's walk of every session's pinned pages, in a kworker. The
 * sessions are taken with a reference first, so that the walks run without
 * @lock (a shrink's handler takes it) and sessions may leave meanwhile.
 * @reval_node is this work's only: a work item never runs twice at once.
 * A session whose lock is held (a long commit, a fault waiting for a slow
 * server) is not waited for: its walk goes to a work item of its own,
 * which may wait, so that it delays no other session's (issue 16, item 4).
 */
static void cowmap_reval_fn(struct work_struct *work)
{
	struct cowmap_watch *w = container_of(to_delayed_work(work),
					      struct cowmap_watch, work);
	struct cowmap_session *s, *tmp;
	LIST_HEAD(todo);

	mutex_lock(&w->lock);
	list_for_each_entry(s, &w->sessions, watch_node) {
		kref_get(&s->ref);
		list_add_tail(&s->reval_node, &todo);
	}
	mutex_unlock(&w->lock);
	list_for_each_entry_safe(s, tmp, &todo, reval_node) {
		list_del(&s->reval_node);
		if (mutex_trylock(&s->lock)) {
			cowmap_revalidate(s, true);
			mutex_unlock(&s->lock);
		} else if (cowmap_queue_work(&s->reval_work)) {
			continue;	/* the reference goes with it */
		}
		cowmap_session_put(s);
		cond_resched();
	}
}

static void cowmap_free_mark(struct fsnotify_mark *mark)
{
	struct cowmap_watch *w = container_of(mark, struct cowmap_watch, mark);

	/* No handler runs any more (SRCU): nothing queues the work again. */
	cancel_delayed_work_sync(&w->work);
	mutex_destroy(&w->lock);
	kfree(w);
}

/*
 * The changes of the backing file the session has to catch up with: the
 * file's and its own refreshes. Under @s->lock (->watch).
 */
int cowmap_mod_gen(struct cowmap_session *s)
{
	lockdep_assert_held(&s->lock);
	return cowmap_mod_gen_nolock(s);
}

/*
 * The same without @s->lock, for a write fault's snapshot before it takes
 * the lock (cowmap_precopy()): ->watch is set at attach, before the
 * session has an fd, and cleared in cowmap_session_destroy(), which no
 * fault can overlap (its VMA holds the session's file).
 */
int cowmap_mod_gen_nolock(struct cowmap_session *s)
{
	struct cowmap_watch *w = READ_ONCE(s->watch);
	int gen = atomic_read(&s->mod_gen);

	return w ? gen + atomic_read(&w->gen) : gen;
}

static const struct fsnotify_ops cowmap_fsnotify_ops = {
	.handle_inode_event = cowmap_handle_event,
	.free_mark = cowmap_free_mark,
};

/*
 * The shrinker finds sessions by memory cgroup: each session has an entry
 * on @cowmap_lru, in the list of the cgroup it was attached in (the entry
 * is allocated, and charged, there). A cgroup's reclaim then unpins the
 * base pages of that cgroup's sessions (issue 17): a session cannot make
 * a process over its memory.max be OOM-killed by pinning page cache.
 */
struct cowmap_lru_ent {
	struct list_head node;
	struct cowmap_session *s;
};

static struct shrinker *cowmap_shrinker;
static struct list_lru cowmap_lru;
static bool cowmap_lru_ready;
static struct kmem_cache *cowmap_lru_cache;
static unsigned long cowmap_shrink_count(struct shrinker *sh,
					 struct shrink_control *sc);
static unsigned long cowmap_shrink_scan(struct shrinker *sh,
					struct shrink_control *sc);

int cowmap_session_init(void)
{
	cowmap_mnt = kern_mount(&cowmap_fs_type);
	if (IS_ERR(cowmap_mnt))
		return PTR_ERR(cowmap_mnt);

	/* DUPS: a detached watch may linger while a new one is added. */
	cowmap_group = fsnotify_alloc_group(&cowmap_fsnotify_ops,
					    FSNOTIFY_GROUP_DUPS);
	if (IS_ERR(cowmap_group)) {
		kern_unmount(cowmap_mnt);
		return PTR_ERR(cowmap_group);
	}
	cowmap_lru_cache = KMEM_CACHE(cowmap_lru_ent, SLAB_ACCOUNT);
	if (cowmap_lru_cache)
		cowmap_shrinker = cowmap_shrinker_create(cowmap_shrink_count,
							 cowmap_shrink_scan,
							 "cowmap-base",
							 &cowmap_lru,
							 &cowmap_lru_ready);
	if (!cowmap_shrinker) {
		kmem_cache_destroy(cowmap_lru_cache);
		fsnotify_put_group(cowmap_group);
		kern_unmount(cowmap_mnt);
		return -ENOMEM;
	}
	return 0;
}

static void cowmap_expire_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(cowmap_expire_work, cowmap_expire_fn);
static bool cowmap_expire_stopped;	/* unloading: queue no more */

/*
 * Unload, before the module's workqueue goes: no work item of this file
 * runs any more, so none queues a session's walk (cowmap_reval_fn()) on
 * it afterwards. Again in cowmap_session_exit(), harmlessly.
 */
void cowmap_session_quiesce(void)
{
	/* No orphan is left (each holds the module): nothing to expire. */
	WRITE_ONCE(cowmap_expire_stopped, true);
	cancel_delayed_work_sync(&cowmap_expire_work);
	/*
	 * Marks are freed from a work item; it calls back into this module,
	 * and freeing a mark cancels its walk.
	 */
	fsnotify_wait_marks_destroyed();
}

void cowmap_session_exit(void)
{
	cowmap_session_quiesce();
	fsnotify_put_group(cowmap_group);
	cowmap_shrinker_destroy(cowmap_shrinker, &cowmap_lru);
	kmem_cache_destroy(cowmap_lru_cache);
	kern_unmount(cowmap_mnt);
}

/* Every attached or orphaned session, for adopt and for listing. */
static DEFINE_MUTEX(cowmap_registry_lock);
static LIST_HEAD(cowmap_sessions);
static unsigned int cowmap_nr_orphans;
static size_t cowmap_orphan_bytes;
static atomic_long_t cowmap_orphans_dropped = ATOMIC_LONG_INIT(0);

/*
 * Unpin up to @nr base pages of the sessions of @u (all users' if NULL),
 * but not of @skip, for a fault of @skip at a pinning limit: each session
 * gives a share proportional to what it pins, from its clock hand on
 * (cowmap_reclaim_session()). The fault holds @skip's lock, so the others
 * are only try-locked: a session busy in a fault or a commit is passed
 * over. Nobody holding the registry lock waits for anything else.
 * Returns how many pages were unpinned. (Memory pressure goes through the
 * shrinker instead, cgroup by cgroup: cowmap_shrink_scan().)
 */
unsigned long cowmap_reclaim_bases(struct cowmap_user *u,
				   struct cowmap_session *skip,
				   unsigned long nr)
{
	unsigned long total = 0, done = 0, share, pinned;
	struct cowmap_session *s;

	mutex_lock(&cowmap_registry_lock);
	list_for_each_entry(s, &cowmap_sessions, node)
		if (s != skip && (!u || s->user == u))
			total += READ_ONCE(s->nr_base);
	list_for_each_entry(s, &cowmap_sessions, node) {
		if (done >= nr || !total)
			break;
		if (s == skip || (u && s->user != u))
			continue;
		pinned = READ_ONCE(s->nr_base);
		if (!pinned || !mutex_trylock(&s->lock))
			continue;
		/* On the list under the registry lock: not destroyed yet. */
		share = DIV64_U64_ROUND_UP((u64)nr * pinned, total);
		done += cowmap_reclaim_session(s, min(share, nr - done));
		mutex_unlock(&s->lock);
	}
	mutex_unlock(&cowmap_registry_lock);
	return done;
}

/*
 * The shrinker: under memory pressure, base pages that mappings pin go
 * back to the page cache, where reclaim can take them like any other.
 * Called for each memory cgroup in turn (the root's list holds the
 * sessions of no cgroup), it looks at that cgroup's sessions only. The
 * entries of a list are on the node their memory came from, not the pins':
 * every node's list is looked at (the shrinker is not NUMA-aware).
 */
#define COWMAP_SHRINK_BATCH	16

struct cowmap_shrink_walk {
	bool count;			/* count pins, take nothing */
	unsigned long pinned;
	unsigned long entries;		/* sessions seen by the count */
	unsigned int n;
	struct cowmap_session *s[COWMAP_SHRINK_BATCH];
};

/* Under the list's lock: no sleeping, no session lock. */
static enum lru_status cowmap_lru_pick(COWMAP_LRU_CB_ARGS)
{
	struct cowmap_session *s = container_of(item, struct cowmap_lru_ent,
						node)->s;
	struct cowmap_shrink_walk *w = arg;
	unsigned int i;

	if (w->count) {
		w->entries++;
		w->pinned += READ_ONCE(s->nr_base);
		return LRU_SKIP;
	}
	if (w->n == COWMAP_SHRINK_BATCH)
		return LRU_SKIP;
	for (i = 0; i < w->n; i++)
		if (w->s[i] == s)	/* rotated and met again */
			return LRU_SKIP;
	/*
	 * Nothing pinned, or being freed (it leaves the list in
	 * cowmap_session_free()): to the tail too, so that the next batch
	 * gets past it.
	 */
	if (!READ_ONCE(s->nr_base) || !kref_get_unless_zero(&s->ref))
		return LRU_ROTATE;
	w->s[w->n++] = s;
	/* To the tail: the next pass starts with other sessions. */
	return LRU_ROTATE;
}

static unsigned long cowmap_shrink_count(struct shrinker *sh,
					 struct shrink_control *sc)
{
	struct cowmap_shrink_walk w = { .count = true };
	unsigned long all;
	int nid;

	/* Pairs with the release in cowmap_shrinker_create(): lists ready. */
	if (!smp_load_acquire(&cowmap_lru_ready))
		return SHRINK_EMPTY;
	for_each_node_state(nid, N_MEMORY) {
		all = ULONG_MAX;
		list_lru_walk_one(&cowmap_lru, nid, sc->memcg, cowmap_lru_pick,
				  &w, &all);
	}
	/*
	 * SHRINK_EMPTY makes the core clear this cgroup's bit of the
	 * shrinker, and only list_lru_add() to an empty list sets it again:
	 * while the cgroup has sessions, say 0 (none pinned now), not empty.
	 */
	return w.entries ? w.pinned : SHRINK_EMPTY;
}

static unsigned long cowmap_shrink_scan(struct shrinker *sh,
					struct shrink_control *sc)
{
	unsigned long nr = sc->nr_to_scan, done = 0, walk, share;
	struct cowmap_shrink_walk w;
	struct cowmap_session *s;
	unsigned int i;
	int nid;

	for_each_node_state(nid, N_MEMORY) {
		/* Each session of the list at most once per call. */
		unsigned long left = list_lru_count_one(&cowmap_lru, nid,
							sc->memcg);

		while (done < nr && left) {
			w.count = false;
			w.n = 0;
			walk = min_t(unsigned long, left,
				     COWMAP_SHRINK_BATCH * 2);
			left -= walk;
			list_lru_walk_one(&cowmap_lru, nid, sc->memcg,
					  cowmap_lru_pick, &w, &walk);
			for (i = 0; i < w.n; i++) {
				s = w.s[i];
				share = DIV_ROUND_UP(nr - done, w.n - i);
				/* Busy in a fault or a commit: passed over. */
				if (done < nr && mutex_trylock(&s->lock)) {
					if (!s->dead)
						done += cowmap_reclaim_session(s, share);
					mutex_unlock(&s->lock);
				}
				cowmap_session_put(s);
			}
		}
	}
	sc->nr_scanned = done;
	return done ?: SHRINK_STOP;
}

module_param_cb(orphans_dropped, &cowmap_ro_long_ops, &cowmap_orphans_dropped, 0444);
MODULE_PARM_DESC(orphans_dropped,
		 "Sessions with changes dropped because the orphan limits were reached (read-only)");

static struct cowmap_session *cowmap_session_alloc(struct file *file)
{
	struct mem_cgroup *old_memcg;
	struct cowmap_session *s;
	struct inode *inode;

	s = kzalloc(sizeof(*s), GFP_KERNEL_ACCOUNT);
	if (!s)
		return ERR_PTR(-ENOMEM);
	s->memcg = get_mem_cgroup_from_mm(current->mm);
	/* In this cgroup's list of the shrinker (charged to it). */
	old_memcg = set_active_memcg(s->memcg);
	s->lru_ent = kmem_cache_alloc_lru(cowmap_lru_cache, &cowmap_lru,
					  GFP_KERNEL);
	set_active_memcg(old_memcg);
	inode = s->lru_ent ? alloc_anon_inode(cowmap_mnt->mnt_sb) :
			     ERR_PTR(-ENOMEM);
	if (IS_ERR(inode)) {
		if (s->lru_ent)
			kmem_cache_free(cowmap_lru_cache, s->lru_ent);
		mem_cgroup_put(s->memcg);
		kfree(s);
		return ERR_CAST(inode);
	}

	/* A view of the session is a regular file showing this inode. */
	inode->i_mode |= S_IFREG;
	kref_init(&s->ref);
	INIT_LIST_HEAD(&s->node);
	INIT_LIST_HEAD(&s->watch_node);
	mutex_init(&s->lock);
	init_rwsem(&s->jlock);
	xa_init(&s->pages);
	xa_init(&s->base);
	atomic_set(&s->nr_vmas, 0);
	s->next_seq = 1;
	s->inode = inode;
	s->owner_uid = file->f_cred->euid;
	s->owner_pid = task_tgid_nr(current);
	s->fd_cred = get_cred(file->f_cred);
	s->fd_pid = s->owner_pid;
	s->lru_ent->s = s;
	INIT_LIST_HEAD(&s->lru_ent->node);
	cowmap_lru_add(&cowmap_lru, &s->lru_ent->node);
	cowmap_nl_init_session(s);
	INIT_WORK(&s->reval_work, cowmap_reval_session_fn);
	s->created_ns = ktime_get_real_ns();
	return s;
}

static void cowmap_session_free(struct kref *ref)
{
	struct cowmap_session *s = container_of(ref, struct cowmap_session, ref);

	/*
	 * The files go last: a netlink reader or a queued event may hold a
	 * reference after teardown and still read the backing file's size
	 * and path.
	 */
	/* The shrinker takes no reference from here on. */
	cowmap_lru_del(&cowmap_lru, &s->lru_ent->node);
	kmem_cache_free(cowmap_lru_cache, s->lru_ent);
	if (s->jfile)
		fput(s->jfile);
	if (s->backing)
		fput(s->backing);
	put_cred(s->fd_cred);
	cowmap_acct_session_free(s);
	mutex_destroy(&s->lock);
	kfree(s);
}

void cowmap_session_put(struct cowmap_session *s)
{
	kref_put(&s->ref, cowmap_session_free);
}

static void cowmap_unwatch(struct cowmap_session *s, struct cowmap_watch *w);

/*
 * Free everything the session holds and drop the caller's reference. No fd
 * and no VMA is left (every VMA holds the file that holds the session).
 */
static void cowmap_session_destroy(struct cowmap_session *s)
{
	struct cowmap_watch *w;

	if (s->id)
		cowmap_nl_event(s, COWMAP_EV_CLOSE, 0, 0, 0);
	mutex_lock(&cowmap_registry_lock);
	list_del_init(&s->node);
	mutex_unlock(&cowmap_registry_lock);

	down_write(&s->jlock);
	mutex_lock(&s->lock);
	s->dead = true;
	w = s->watch;
	WRITE_ONCE(s->watch, NULL);
	cowmap_free_pages(s);
	cowmap_journal_free(s);
	mutex_unlock(&s->lock);
	up_write(&s->jlock);

	/* Off the watch's list: no handler unmaps its pages any more. */
	cowmap_unwatch(s, w);
	iput(s->inode);
	mem_cgroup_put(s->memcg);
	cowmap_acct_session_end(s);
	cowmap_session_put(s);
}

/*
 * Orphans expire: the expiry work destroys those older than
 * orphan_expiry_secs (0: never), with an event. It runs at least once a
 * minute while orphans exist, so an orphan goes at most a minute late.
 */
unsigned int cowmap_orphan_expiry_secs = 7 * 24 * 3600;

/* A new expiry applies at once: scan now, whatever was scheduled. */
static int cowmap_expiry_set(const char *val, const struct kernel_param *kp)
{
	int ret = param_set_uint(val, kp);

	if (!ret && !READ_ONCE(cowmap_expire_stopped))
		mod_delayed_work(system_wq, &cowmap_expire_work, 0);
	return ret;
}

static const struct kernel_param_ops cowmap_expiry_ops = {
	.set = cowmap_expiry_set,
	.get = param_get_uint,
};

module_param_cb(orphan_expiry_secs, &cowmap_expiry_ops,
		&cowmap_orphan_expiry_secs, 0644);
MODULE_PARM_DESC(orphan_expiry_secs,
		 "Seconds an orphan is kept before it is dropped (default: a week; 0: forever)");

static void cowmap_session_destroy(struct cowmap_session *s);

static void cowmap_expire_kick(void)
{
	unsigned int secs = READ_ONCE(cowmap_orphan_expiry_secs);

	if (secs)
		queue_delayed_work(system_wq, &cowmap_expire_work,
				   min(secs, 60U) * HZ);
}

static void cowmap_expire_fn(struct work_struct *work)
{
	unsigned int secs = READ_ONCE(cowmap_orphan_expiry_secs);
	u64 now = ktime_get_boottime_seconds();
	struct cowmap_session *s, *victim;
	bool more;

	do {
		victim = NULL;
		more = false;
		mutex_lock(&cowmap_registry_lock);
		list_for_each_entry(s, &cowmap_sessions, node) {
			if (s->state != COWMAP_STATE_ORPHANED)
				continue;
			if (secs && now - s->orphan_since >= secs) {
				victim = s;
				break;
			}
			more = true;
		}
		if (victim) {
			/* Off the list: nobody can adopt or look it up now. */
			list_del_init(&victim->node);
			cowmap_nr_orphans--;
			cowmap_orphan_bytes -= victim->orphan_bytes;
			cowmap_unacct_orphan(victim, victim->orphan_bytes);
		}
		mutex_unlock(&cowmap_registry_lock);
		if (victim) {
			pr_info("session %llu: orphan expired after %u s: dropping its %llu records\n",
				victim->id, secs, victim->nr_records);
			cowmap_nl_event(victim, COWMAP_EV_EXPIRED, 0, 0, 0);
			/* The orphan's reference and module reference go. */
			cowmap_session_destroy(victim);
			module_put(THIS_MODULE);
		}
	} while (victim);
	if (more)
		cowmap_expire_kick();
}

/* Keep @s, which has changes, as an orphan if the limits allow. */
static bool cowmap_orphan(struct cowmap_session *s)
{
	size_t bytes;
	bool kept = false;

	mutex_lock(&s->lock);
	bytes = s->journal_bytes + (s->nr_private + s->nr_twins) * PAGE_SIZE;
	mutex_unlock(&s->lock);

	/*
	 * Only the owner's own limits decide (account.c): no other user can
	 * make this session be dropped. The global max_orphans and
	 * max_orphan_bytes are checked at attach instead.
	 */
	mutex_lock(&cowmap_registry_lock);
	if (cowmap_acct_orphan(s, bytes)) {
		s->state = COWMAP_STATE_ORPHANED;
		s->orphan_bytes = bytes;
		s->orphan_since = ktime_get_boottime_seconds();
		cowmap_nr_orphans++;
		cowmap_orphan_bytes += bytes;
		/* Unloading would lose it: the module stays while orphans exist. */
		__module_get(THIS_MODULE);
		kept = true;
	}
	mutex_unlock(&cowmap_registry_lock);

	cowmap_nl_event(s, kept ? COWMAP_EV_ORPHAN : COWMAP_EV_DROPPED, 0, 0, 0);
	if (kept) {
		cowmap_expire_kick();
	} else {
		atomic_long_inc(&cowmap_orphans_dropped);
		pr_warn("session %llu: orphan limits of uid %u reached (max_user_orphans %u, max_user_orphan_bytes %lu): dropping its %llu records and %lu written pages%s\n",
			s->id, from_kuid_munged(&init_user_ns, s->owner_uid),
			READ_ONCE(cowmap_max_user_orphans),
			READ_ONCE(cowmap_max_user_orphan_bytes), s->nr_records,
			s->nr_private, s->jfile ?
			"; its journal file holds every committed record" : "");
	}
	return kept;
}

/*
 * The fd holding @s is closed, and no VMA is left. A session with changes
 * commits what is still uncommitted and stays as an orphan; any other is
 * freed.
 */
void cowmap_session_close(struct cowmap_session *s)
{
	struct cowmap_commit c = { .flags = COWMAP_COMMIT_DURABLE };
	bool changes;

	/* An error leaves the pages written: the orphan keeps them. */
	cowmap_commit_final(s, &c);

	mutex_lock(&s->lock);
	changes = s->nr_records || s->nr_twins;
	mutex_unlock(&s->lock);

	if (changes && cowmap_orphan(s))
		return;
	cowmap_session_destroy(s);
}

/*
 * A session fd or a view is closed. The last one closes the session; no
 * VMA is left then, since every VMA holds one of them.
 */
void cowmap_session_unuse(struct cowmap_session *s)
{
	if (atomic_dec_and_test(&s->users))
		cowmap_session_close(s);
}

/* The session inode's size, which views report, is the session's. */
void cowmap_sync_size(struct cowmap_session *s)
{
	lockdep_assert_held(&s->lock);
	i_size_write(s->inode, cowmap_size(s));
}

/* The session's size: the backing file's, until the session sets its own. */
loff_t cowmap_size(struct cowmap_session *s)
{
	if (READ_ONCE(s->own_size))
		return READ_ONCE(s->size);
	return i_size_read(file_inode(s->backing));
}

/* Where the backing file's bytes end for the session; zeros after. */
loff_t cowmap_base_end(struct cowmap_session *s)
{
	loff_t size = i_size_read(file_inode(s->backing));

	if (READ_ONCE(s->own_size))
		return min(size, READ_ONCE(s->base_cut));
	return size;
}

pgoff_t cowmap_eof_pgoff(struct cowmap_session *s)
{
	return (pgoff_t)DIV_ROUND_UP_ULL(cowmap_size(s), PAGE_SIZE);
}

pgoff_t cowmap_base_pgoff(struct cowmap_session *s)
{
	return (pgoff_t)DIV_ROUND_UP_ULL(cowmap_base_end(s), PAGE_SIZE);
}

/* CRC-32 of the session's bytes [@from, @to), page by page. Under @lock. */
static int cowmap_cut_crc(struct cowmap_session *s, loff_t from, loff_t to,
			  u32 *crc)
{
	u32 c = 0;

	while (from < to) {
		size_t off = offset_in_page(from);
		size_t n = min_t(loff_t, PAGE_SIZE - off, to - from);
		loff_t bend = cowmap_base_end(s);
		unsigned long idx = from >> PAGE_SHIFT;
		struct page *page;
		bool priv;
		u8 *p;

		/* Past the base, zeros up to the next page the session wrote. */
		if (from >= bend && !xa_load(&s->pages, idx)) {
			loff_t next = to;

			if (xa_find(&s->pages, &idx, ULONG_MAX, XA_PRESENT))
				next = clamp_t(loff_t, (loff_t)idx << PAGE_SHIFT,
					       from, to);
			c = cowmap_log_crc_zeros(c, next - from);
			from = next;
			continue;
		}

		page = cowmap_read_page(s, from >> PAGE_SHIFT, &priv);
		if (IS_ERR(page))
			return PTR_ERR(page);
		p = kmap_local_page(page ? page : ZERO_PAGE(0));
		if (page && !priv && from + n > bend) {
			/* The base's bytes end inside: zeros after. */
			size_t k = bend > from ? bend - from : 0;

			c = cowmap_log_crc(c, p + off, k);
			c = cowmap_log_crc(c, page_address(ZERO_PAGE(0)), n - k);
		} else {
			c = cowmap_log_crc(c, p + off, n);
		}
		kunmap_local(p);
		if (page)
			put_page(page);
		from += n;
		cond_resched();
	}
	*crc = c;
	return 0;
}

/*
 * Before a shrink to @size takes @lock: read the base pages it cuts (their
 * CRC goes in the size record) and the one its new end falls in, so that
 * a slow or hung server (NFS, FUSE) holds up this call alone, killably,
 * not the faults, status and netlink lookups of the session. Only a hint:
 * a page evicted or changed meanwhile is read again under the lock.
 */
static int cowmap_prefetch_cut(struct cowmap_session *s, loff_t size)
{
	pgoff_t pg = size >> PAGE_SHIFT;
	pgoff_t end = min(cowmap_eof_pgoff(s), cowmap_base_pgoff(s));
	struct folio *folio;

	for (; pg < end; pg++) {
		folio = cowmap_prefetch_base(s, pg);
		if (IS_ERR(folio))
			return PTR_ERR(folio);
		if (folio)
			folio_put(folio);
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/*
 * Set the session's size (COWMAP_IOC_SET_SIZE, ftruncate(2) of a view, a
 * write or fallocate(2) past its end). The first change makes the size
 * the session's own. A growth is journalled by the next commit, ahead of
 * its byte records; a shrink commits first, then records the size with
 * the CRC of the bytes it cuts, then drops the pages past the new end.
 * The caller holds the session inode's lock (views' writes serialise on
 * it). *@old gets the size before.
 */
int cowmap_set_size(struct cowmap_session *s, loff_t size, loff_t *old)
{
	struct cowmap_commit c = { };
	bool was_v2;
	loff_t cur;
	u32 crc = 0;
	int ret = 0, fret;

	if (size < 0)
		return -EINVAL;
	/* A size the backing file could not have could never be merged. */
	if (size > file_inode(s->backing)->i_sb->s_maxbytes)
		return -EFBIG;
	ret = inode_newsize_ok(s->inode, size);
	if (ret)
		return ret;
	ret = cowmap_prefetch_cut(s, size);
	if (ret)
		return ret;

	/* A merge holds @jlock while it writes a target that may hang. */
	if (down_write_killable(&s->jlock))
		return -EINTR;
	mutex_lock(&s->lock);
	cur = cowmap_size(s);
	if (old)
		*old = cur;
	if (size == cur)
		goto unlock;
	/* A version 1 journal file opened O_APPEND cannot become version 2. */
	ret = -EINVAL;
	if (s->jfile && !s->jfile_v2 && s->jfile->f_flags & O_APPEND)
		goto unlock;
	ret = 0;
	if (!s->own_size) {
		/* From now on the base shows up to here, at most. */
		s->csize = cur;
		s->size = cur;
		s->base_cut = cur;
		s->base_pg_seen = cowmap_base_pgoff(s);
		WRITE_ONCE(s->own_size, true);
		ret = cowmap_cut_page(s, cur);
		if (ret) {
			/* Nothing was recorded: still the file's size. */
			WRITE_ONCE(s->own_size, false);
			goto unlock;
		}
	}
	if (size > cur) {
		/* Bytes past the old end read as zeros, also in its last page. */
		ret = cowmap_cut_page(s, cur);
		if (!ret)
			WRITE_ONCE(s->size, size);
		goto unlock;
	}

	/*
	 * A shrink: what was written before it is journalled before it. The
	 * lock stays held from the commit to the end: a write between them
	 * (a fault) would be in the cut bytes' CRC and in no record, and a
	 * merge of this very journal would then find the cut conflicting.
	 */
	ret = cowmap_commit_held(s, &c);
	if (ret)
		goto unlock;
	cur = cowmap_size(s);
	was_v2 = s->log_v2;
	ret = cowmap_cut_crc(s, size, cur, &crc);
	if (!ret)
		ret = cowmap_journal_add_size(s, cur, size, crc);
	if (ret)
		goto unlock;
	/*
	 * The page that holds the new end becomes private with its tail
	 * zeroed: the one step after the record that can fail (ENOMEM, a
	 * page limit). Then the record goes again: nothing changed.
	 */
	ret = cowmap_cut_page(s, size);
	if (ret) {
		cowmap_journal_drop_size(s, was_v2);
		goto unlock;
	}
	WRITE_ONCE(s->size, size);
	s->csize = size;
	WRITE_ONCE(s->base_cut, min(s->base_cut, size));
	cowmap_drop_past(s, (pgoff_t)DIV_ROUND_UP_ULL(size, PAGE_SIZE));
unlock:
	/* The base's end may have moved: the handler compares with this. */
	atomic_long_set(&s->end_seen, cowmap_base_pgoff(s));
	cowmap_sync_size(s);
	mutex_unlock(&s->lock);
	fret = cowmap_jfile_sync(s, false);
	up_write(&s->jlock);
	return ret ?: fret;
}

/*
 * Pseudo filesystems whose regular files are kernel interfaces, not data
 * (kernfs: sysfs, cgroupfs, resctrl; procfs, debugfs, tracefs, ...): their
 * page cache, if any, is not the file's content, and a session on one
 * would only pin kernel objects.
 */
static const unsigned long cowmap_pseudo_fs[] = {
	SYSFS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, RDTGROUP_SUPER_MAGIC,
	PROC_SUPER_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC, SECURITYFS_MAGIC,
	BPF_FS_MAGIC, EFIVARFS_MAGIC, PSTOREFS_MAGIC, SELINUX_MAGIC,
	SMACK_MAGIC, BINFMTFS_MAGIC,
};

/* Can the module read @file's pages through its page cache? */
static int cowmap_check_backing(struct file *file)
{
	struct inode *inode = file_inode(file);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cowmap_pseudo_fs); i++)
		if (inode->i_sb->s_magic == cowmap_pseudo_fs[i])
			return -EOPNOTSUPP;

	if (S_ISDIR(inode->i_mode))
		return -EISDIR;
	if (!S_ISREG(inode->i_mode))
		return -EINVAL;
	if (!(file->f_mode & FMODE_READ))
		return -EACCES;
	if (IS_DAX(inode) || !cowmap_file_can_mmap(file))
		return -EOPNOTSUPP;
	/* tmpfs has no ->read_folio; it is read with shmem_read_mapping_page. */
	if (inode->i_sb->s_magic != TMPFS_MAGIC &&
	    !file->f_mapping->a_ops->read_folio)
		return -EOPNOTSUPP;
	return 0;
}

/* A journal file must be a regular file opened for writing. */
static int cowmap_check_journal(struct file *jfile, struct file *backing)
{
	struct inode *ji = file_inode(jfile);

	if (S_ISDIR(ji->i_mode))
		return -EISDIR;
	if (!S_ISREG(ji->i_mode) || ji == file_inode(backing))
		return -EINVAL;
	if (!(jfile->f_mode & FMODE_WRITE))
		return -EACCES;
	return 0;
}

/*
 * No file may be both a backing file and a journal file of sessions: a
 * commit writing the journal would notify a session watching that file.
 */
static int cowmap_check_roles(struct file *backing, struct file *jfile)
{
	struct inode *bi = file_inode(backing);
	struct inode *ji = jfile ? file_inode(jfile) : NULL;
	struct cowmap_session *o;

	lockdep_assert_held(&cowmap_registry_lock);
	list_for_each_entry(o, &cowmap_sessions, node) {
		if ((o->jfile && file_inode(o->jfile) == bi) ||
		    (ji && file_inode(o->backing) == ji))
			return -EINVAL;
	}
	return 0;
}

/* A new watch of @inode, attached and in cowmap_watches, or an ERR_PTR. */
static struct cowmap_watch *cowmap_watch_new(struct inode *inode)
{
	struct cowmap_watch *w;
	int ret;

	lockdep_assert_held(&cowmap_watch_lock);
	w = kzalloc(sizeof(*w), GFP_KERNEL_ACCOUNT);
	if (!w)
		return ERR_PTR(-ENOMEM);
	/* From here on, putting the mark frees the watch. */
	fsnotify_init_mark(&w->mark, cowmap_group);
	w->mark.mask = FS_MODIFY;
	w->inode = inode;
	mutex_init(&w->lock);
	INIT_LIST_HEAD(&w->sessions);
	INIT_DELAYED_WORK(&w->work, cowmap_reval_fn);
	atomic_long_set(&w->end_seen, cowmap_watch_end(w));
	ret = fsnotify_add_inode_mark(&w->mark, inode, 0);
	if (ret) {
		fsnotify_put_mark(&w->mark);
		return ERR_PTR(ret);
	}
	hash_add(cowmap_watches, &w->hnode, (unsigned long)inode);
	return w;
}

/* Join the watch of the backing @inode, made if it has none yet. */
static int cowmap_watch(struct cowmap_session *s, struct inode *inode)
{
	struct cowmap_watch *w;

	mutex_lock(&cowmap_watch_lock);
	hash_for_each_possible(cowmap_watches, w, hnode, (unsigned long)inode)
		if (w->inode == inode)
			break;
	if (!w)
		w = cowmap_watch_new(inode);
	if (IS_ERR(w)) {
		mutex_unlock(&cowmap_watch_lock);
		return PTR_ERR(w);
	}
	mutex_lock(&w->lock);
	cowmap_watch_raise_end(w, cowmap_watch_end(w));
	atomic_long_set(&s->end_seen, cowmap_base_pgoff(s));
	/* From here on, a shrink's handler unmaps this session's tail too. */
	list_add_tail(&s->watch_node, &w->sessions);
	mutex_unlock(&w->lock);
	mutex_unlock(&cowmap_watch_lock);
	/* Not nested in @w->lock: a handler takes it under the file's locks. */
	mutex_lock(&s->lock);
	WRITE_ONCE(s->watch, w);
	mutex_unlock(&s->lock);
	return 0;
}

/*
 * Leave the watch @w at teardown (the session's lock cleared ->watch): no
 * handler looks at the session any more. The last session detaches the
 * mark.
 */
static void cowmap_unwatch(struct cowmap_session *s, struct cowmap_watch *w)
{
	bool last;

	if (!w)
		return;
	mutex_lock(&cowmap_watch_lock);
	mutex_lock(&w->lock);
	list_del_init(&s->watch_node);
	last = list_empty(&w->sessions);
	mutex_unlock(&w->lock);
	if (last) {
		hash_del(&w->hnode);
		fsnotify_destroy_mark(&w->mark, cowmap_group);
		fsnotify_put_mark(&w->mark);	/* the hash table's */
	}
	mutex_unlock(&cowmap_watch_lock);
}

/* Make @s the session of @file: its VMAs will link to the session's inode. */
static void cowmap_file_set(struct file *file, struct cowmap_session *s)
{
	struct cowmap_file *cf = file->private_data;

	lockdep_assert_held(&cf->lock);
	file->f_mapping = s->inode->i_mapping;
	/* Pairs with cowmap_file_session(): mmap sees f_mapping set. */
	smp_store_release(&cf->s, s);
}

int cowmap_attach(struct file *file, struct cowmap_attach *a)
{
	struct cowmap_file *cf = file->private_data;
	struct file *backing, *jfile = NULL;
	struct cowmap_session *s;
	struct inode *inode;
	int ret;

	if (a->flags & ~COWMAP_ATTACH_JOURNAL || a->session_id || a->reserved0 ||
	    memchr_inv(a->reserved, 0, sizeof(a->reserved)) ||
	    (!(a->flags & COWMAP_ATTACH_JOURNAL) && a->journal_fd))
		return -EINVAL;

	backing = fget(a->fd);
	if (!backing)
		return -EBADF;
	ret = cowmap_check_backing(backing);
	if (ret)
		goto out_backing;
	if (a->flags & COWMAP_ATTACH_JOURNAL) {
		jfile = fget(a->journal_fd);
		if (!jfile) {
			ret = -EBADF;
			goto out_backing;
		}
	}
	inode = file_inode(backing);

	s = cowmap_session_alloc(file);
	if (IS_ERR(s)) {
		ret = PTR_ERR(s);
		goto out_jfile;
	}
	s->backing = backing;
	file_ra_state_init(&s->ra, backing->f_mapping);
	s->base_shmem = inode->i_sb->s_magic == TMPFS_MAGIC;
	s->size_at_attach = i_size_read(inode);
	s->dev = cowmap_file_dev(backing);
	s->ino = inode->i_ino;
	cowmap_file_id_read(s, backing);

	mutex_lock(&cf->lock);
	if (cf->s) {
		ret = -EBUSY;
		goto out_unlock;
	}
	ret = cowmap_acct_session_start(s);
	if (ret)
		goto out_unlock;
	mutex_lock(&cowmap_registry_lock);
	ret = jfile ? cowmap_check_journal(jfile, backing) : 0;
	if (!ret)
		ret = cowmap_check_roles(backing, jfile);
	/*
	 * The global orphan limits: no new session while they are reached
	 * (closing never drops a session for them; see cowmap_orphan()).
	 */
	if (!ret && (cowmap_nr_orphans >= READ_ONCE(cowmap_max_orphans) ||
		     cowmap_orphan_bytes >= READ_ONCE(cowmap_max_orphan_bytes)))
		ret = -ENOSPC;
	if (!ret) {
		s->id = atomic64_inc_return(&cowmap_next_id);
		s->state = COWMAP_STATE_ATTACHED;
		list_add_tail(&s->node, &cowmap_sessions);
	}
	mutex_unlock(&cowmap_registry_lock);
	if (ret)
		goto out_unlock;

	/* From here on, destroying the session puts both files. */
	ret = cowmap_watch(s, inode);
	if (!ret && jfile)
		ret = cowmap_jfile_attach(s, jfile);
	if (ret) {
		mutex_unlock(&cf->lock);
		if (jfile && !s->jfile)
			fput(jfile);
		cowmap_session_destroy(s);
		return ret;
	}
	a->session_id = s->id;
	mutex_lock(&s->lock);
	cowmap_sync_size(s);
	mutex_unlock(&s->lock);
	atomic_set(&s->users, 1);
	cowmap_file_set(file, s);
	mutex_unlock(&cf->lock);
	cowmap_nl_event(s, COWMAP_EV_ATTACH, 0, 0, 0);
	return 0;

out_unlock:
	mutex_unlock(&cf->lock);
	s->backing = NULL;
	iput(s->inode);
	mem_cgroup_put(s->memcg);
	cowmap_session_put(s);
out_jfile:
	if (jfile)
		fput(jfile);
out_backing:
	fput(backing);
	return ret;
}

/*
 * May the fd @file adopt @s? Its opener and the calling task both must be
 * the owner (same effective uid) or have CAP_SYS_ADMIN, and both must still
 * be allowed to read the backing file and to write the journal file now:
 * the orphan's files were opened with the owner's rights of back then.
 */
static int cowmap_may_adopt(struct file *file, struct cowmap_session *s)
{
	const struct cred *fcred = file->f_cred, *old;
	int ret;

	if ((!uid_eq(s->owner_uid, fcred->euid) ||
	     !uid_eq(s->owner_uid, current_euid())) &&
	    !(file_ns_capable(file, &init_user_ns, CAP_SYS_ADMIN) &&
	      capable(CAP_SYS_ADMIN)))
		return -EPERM;

	ret = cowmap_file_permission(s->backing, MAY_READ);
	if (!ret && s->jfile)
		ret = cowmap_file_permission(s->jfile, MAY_WRITE);
	if (ret)
		return ret;
	old = override_creds(fcred);
	ret = cowmap_file_permission(s->backing, MAY_READ);
	if (!ret && s->jfile)
		ret = cowmap_file_permission(s->jfile, MAY_WRITE);
	revert_creds(old);
	return ret;
}

int cowmap_adopt(struct file *file, struct cowmap_adopt *a)
{
	struct cowmap_file *cf = file->private_data;
	struct cowmap_session *s, *found = NULL;
	const struct cred *old_cred;
	int ret = -ENOENT;

	if (memchr_inv(a->reserved, 0, sizeof(a->reserved)))
		return -EINVAL;

	mutex_lock(&cf->lock);
	if (cf->s) {
		mutex_unlock(&cf->lock);
		return -EBUSY;
	}
	/* Look it up; check the rights without the registry lock (file I/O). */
	mutex_lock(&cowmap_registry_lock);
	list_for_each_entry(s, &cowmap_sessions, node) {
		if (s->id == a->session_id && s->state == COWMAP_STATE_ORPHANED) {
			kref_get(&s->ref);
			found = s;
			break;
		}
	}
	mutex_unlock(&cowmap_registry_lock);
	if (!found)
		goto out;
	ret = cowmap_may_adopt(file, found);
	if (!ret) {
		ret = -ENOENT;	/* adopted, expired or dropped meanwhile */
		mutex_lock(&cowmap_registry_lock);
		/* An expiring orphan is off the list already. */
		if (found->state == COWMAP_STATE_ORPHANED &&
		    !list_empty(&found->node)) {
			found->state = COWMAP_STATE_ATTACHED;
			cowmap_nr_orphans--;
			cowmap_orphan_bytes -= found->orphan_bytes;
			cowmap_unacct_orphan(found, found->orphan_bytes);
			ret = 0;
		}
		mutex_unlock(&cowmap_registry_lock);
	}
	if (ret) {
		cowmap_session_put(found);
		found = NULL;
		goto out;
	}
	/* Records committed from now on are signed by this fd's opener. */
	down_write(&found->jlock);
	mutex_lock(&found->lock);
	old_cred = found->fd_cred;
	found->fd_cred = get_cred(file->f_cred);
	found->fd_pid = task_tgid_nr(current);
	mutex_unlock(&found->lock);
	up_write(&found->jlock);
	put_cred(old_cred);
	/* The orphan's reference becomes the fd's; drop the lookup's. */
	atomic_set(&found->users, 1);
	cowmap_file_set(file, found);
	cowmap_session_put(found);
	module_put(THIS_MODULE);
out:
	mutex_unlock(&cf->lock);
	if (found)
		cowmap_nl_event(found, COWMAP_EV_ADOPT, 0, 0, 0);
	return ret;
}

/*
 * Drop the journal and the written pages: the session shows the file.
 * -EINTR if killed while a merge of the session holds @jlock.
 */
int cowmap_discard(struct cowmap_session *s)
{
	if (down_write_killable(&s->jlock))
		return -EINTR;
	mutex_lock(&s->lock);
	cowmap_zap(s, 0, 0);
	cowmap_free_pages(s);
	cowmap_journal_free(s);
	/* The file's size again; a journal file keeps its version. */
	WRITE_ONCE(s->own_size, false);
	WRITE_ONCE(s->log_v2, s->jfile_v2);
	/* The base ends where the file does again (cowmap_notice_size()). */
	atomic_long_set(&s->end_seen, cowmap_base_pgoff(s));
	cowmap_sync_size(s);
	mutex_unlock(&s->lock);
	up_write(&s->jlock);
	cowmap_nl_event(s, COWMAP_EV_DISCARD, 0, 0, 0);
	return 0;
}

/* The attached or orphaned session @id, with a reference, or NULL. */
struct cowmap_session *cowmap_session_get(u64 id)
{
	struct cowmap_session *s, *found = NULL;

	mutex_lock(&cowmap_registry_lock);
	list_for_each_entry(s, &cowmap_sessions, node) {
		if (s->id == id) {
			kref_get(&s->ref);
			found = s;
			break;
		}
	}
	mutex_unlock(&cowmap_registry_lock);
	return found;
}

/* The session with the smallest id above @after, with a reference. */
struct cowmap_session *cowmap_session_next(u64 after)
{
	struct cowmap_session *s, *found = NULL;

	/* The list is in id order: sessions are added at attach. */
	mutex_lock(&cowmap_registry_lock);
	list_for_each_entry(s, &cowmap_sessions, node) {
		if (s->id > after) {
			kref_get(&s->ref);
			found = s;
			break;
		}
	}
	mutex_unlock(&cowmap_registry_lock);
	return found;
}

/*
 * The session's figures. Waits for @lock killably: a session busy for long
 * (a merge reading a target on a server that does not answer) must not
 * hold an admin's netlink dump or status call unkillably. -EINTR then.
 */
int cowmap_status(struct cowmap_session *s, struct cowmap_status *st)
{
	st->session_id = s->id;
	mutex_lock(&cowmap_registry_lock);
	st->state = s->state;
	mutex_unlock(&cowmap_registry_lock);

	if (mutex_lock_killable(&s->lock))
		return -EINTR;
	/* What changed in the file since the last look counts now. */
	cowmap_revalidate(s, true);
	st->dev_major = MAJOR(s->dev);
	st->dev_minor = MINOR(s->dev);
	st->ino = s->ino;
	st->size_at_attach = s->size_at_attach;
	st->size = i_size_read(file_inode(s->backing));
	st->session_size = cowmap_size(s);
	st->mappings = atomic_read(&s->nr_vmas);
	st->private_pages = s->nr_private;
	st->twin_pages = s->nr_twins;
	st->base_pages = s->nr_base;
	st->faults = s->faults;
	st->cow_copies = s->cow_copies;
	st->rearms = s->rearms;
	st->base_invalidations = s->base_invalidations;
	st->limit_hits = s->limit_hits;
	st->base_reclaimed = s->base_reclaimed;
	st->journal_records = s->nr_records;
	st->journal_bytes = s->journal_bytes;
	st->next_seq = s->next_seq;
	st->commits = s->commits;
	st->journal_file_seq = READ_ONCE(s->jfile_seq);
	st->merged_records = s->nr_merged;
	mutex_unlock(&s->lock);
	return 0;
}
