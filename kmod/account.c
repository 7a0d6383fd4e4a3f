// SPDX-License-Identifier: GPL-2.0
/*
 * Per-user accounting: /dev/cowmap is mode 0666, so every limit that
 * protects the machine also exists per user, and a user who reaches one
 * gets the error (or SIGBUS) alone; the global limits stay for the
 * administrator. docs/security.md describes the threat model and every
 * limit.
 *
 * A session is charged to the effective uid (in the initial user namespace)
 * of the fd that attached it, for its whole life, whoever adopts it later.
 * What is counted per user: sessions (attached and orphaned), pages (private
 * copies and twins), pinned base pages, journal memory (allocated chunk
 * bytes, not record bytes), orphans and the memory orphans keep. The memory
 * itself is also charged to the memory cgroup of the process that attached.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/sysfs.h>

#include "compat.h"
#include "cowmap.h"

/* Set at load when 0: fractions of RAM (see cowmap_account_init()). */
static unsigned long cowmap_max_user_pages;
module_param_named(max_user_pages, cowmap_max_user_pages, ulong, 0644);
MODULE_PARM_DESC(max_user_pages,
		 "Pages (private copies + twins) the sessions of one user may own; a write past it gets SIGBUS (default: half of max_total_pages)");

static unsigned long cowmap_max_user_base_pages;
module_param_named(max_user_base_pages, cowmap_max_user_base_pages, ulong, 0644);
MODULE_PARM_DESC(max_user_base_pages,
		 "File pages the mappings of one user's sessions may pin; a read fault past it gets SIGBUS (default: half of max_total_base_pages)");

static unsigned long cowmap_max_total_base_pages;
module_param_named(max_total_base_pages, cowmap_max_total_base_pages, ulong, 0644);
MODULE_PARM_DESC(max_total_base_pages,
		 "File pages all sessions' mappings together may pin (default: a quarter of RAM)");

static unsigned long cowmap_max_user_journal_bytes;
module_param_named(max_user_journal_bytes, cowmap_max_user_journal_bytes, ulong, 0644);
MODULE_PARM_DESC(max_user_journal_bytes,
		 "Journal memory the sessions of one user may hold; a commit past it fails with EDQUOT (default: half of max_total_journal_bytes)");

static unsigned long cowmap_max_total_journal_bytes;
module_param_named(max_total_journal_bytes, cowmap_max_total_journal_bytes, ulong, 0644);
MODULE_PARM_DESC(max_total_journal_bytes,
		 "Journal memory all sessions together may hold; a commit past it fails with ENOSPC (default: an eighth of RAM)");

static unsigned int cowmap_max_user_sessions = 1024;
module_param_named(max_user_sessions, cowmap_max_user_sessions, uint, 0644);
MODULE_PARM_DESC(max_user_sessions,
		 "Sessions (attached and orphaned) one user may have; attach past it fails with EDQUOT");

unsigned int cowmap_max_user_orphans = 16;
module_param_named(max_user_orphans, cowmap_max_user_orphans, uint, 0644);
MODULE_PARM_DESC(max_user_orphans,
		 "Orphans one user may have; a session of that user closed with changes past it is dropped");

unsigned long cowmap_max_user_orphan_bytes = 64UL << 20;
module_param_named(max_user_orphan_bytes, cowmap_max_user_orphan_bytes, ulong, 0644);
MODULE_PARM_DESC(max_user_orphan_bytes,
		 "Memory one user's orphans may keep; a session of that user closed with changes past it is dropped");

static atomic_long_t cowmap_base_total = ATOMIC_LONG_INIT(0);
static atomic_long_t cowmap_jmem_total = ATOMIC_LONG_INIT(0);

static int cowmap_get_long(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(kp->arg));
}

/* A read-only parameter showing the atomic_long_t its ->arg points to. */
const struct kernel_param_ops cowmap_ro_long_ops = {
	.get = cowmap_get_long,
};

module_param_cb(base_pages_in_use, &cowmap_ro_long_ops, &cowmap_base_total, 0444);
MODULE_PARM_DESC(base_pages_in_use, "File pages all sessions pin now (read-only)");
module_param_cb(journal_bytes_in_use, &cowmap_ro_long_ops, &cowmap_jmem_total, 0444);
MODULE_PARM_DESC(journal_bytes_in_use,
		 "Journal memory all sessions hold now, in bytes (read-only)");

#define COWMAP_USER_BITS 6
static DEFINE_HASHTABLE(cowmap_users, COWMAP_USER_BITS);
static DEFINE_SPINLOCK(cowmap_users_lock);

static struct cowmap_user *cowmap_user_find(kuid_t uid)
{
	struct cowmap_user *u;

	hash_for_each_possible(cowmap_users, u, node, __kuid_val(uid))
		if (uid_eq(u->uid, uid))
			return u;
	return NULL;
}

/* The accounting of @uid, with a reference; NULL without memory. */
static struct cowmap_user *cowmap_user_get(kuid_t uid)
{
	struct cowmap_user *u, *n;

	spin_lock(&cowmap_users_lock);
	u = cowmap_user_find(uid);
	if (u)
		refcount_inc(&u->ref);
	spin_unlock(&cowmap_users_lock);
	if (u)
		return u;

	n = kzalloc(sizeof(*n), GFP_KERNEL_ACCOUNT);
	if (!n)
		return NULL;
	n->uid = uid;
	refcount_set(&n->ref, 1);
	spin_lock(&cowmap_users_lock);
	u = cowmap_user_find(uid);
	if (u) {
		refcount_inc(&u->ref);
	} else {
		hash_add(cowmap_users, &n->node, __kuid_val(uid));
		u = n;
		n = NULL;
	}
	spin_unlock(&cowmap_users_lock);
	kfree(n);
	return u;
}

static void cowmap_user_put(struct cowmap_user *u)
{
	spin_lock(&cowmap_users_lock);
	if (!refcount_dec_and_test(&u->ref)) {
		spin_unlock(&cowmap_users_lock);
		return;
	}
	hash_del(&u->node);
	spin_unlock(&cowmap_users_lock);
	WARN_ON_ONCE(atomic_long_read(&u->pages) || atomic_long_read(&u->base) ||
		     atomic_long_read(&u->jmem) || u->orphans);
	kfree(u);
}

/*
 * Charge a new session to its owner. -EDQUOT past max_user_sessions,
 * -ENOMEM. Undone by cowmap_acct_session_end().
 */
int cowmap_acct_session_start(struct cowmap_session *s)
{
	struct cowmap_user *u = cowmap_user_get(s->owner_uid);

	if (!u)
		return -ENOMEM;
	if (atomic_inc_return(&u->sessions) > READ_ONCE(cowmap_max_user_sessions)) {
		atomic_dec(&u->sessions);
		cowmap_user_put(u);
		return -EDQUOT;
	}
	s->user = u;
	s->user_counted = true;
	return 0;
}

/*
 * The session is gone for its user (destroyed): it counts no more, even if
 * a reference (the fsnotify mark's, freed from a work item) keeps it a bit.
 */
void cowmap_acct_session_end(struct cowmap_session *s)
{
	if (s->user && s->user_counted) {
		atomic_dec(&s->user->sessions);
		s->user_counted = false;
	}
}

/* The session is freed: everything it had charged is uncharged by now. */
void cowmap_acct_session_free(struct cowmap_session *s)
{
	if (!s->user)
		return;
	cowmap_acct_session_end(s);
	cowmap_user_put(s->user);
	s->user = NULL;
}

/* Charge @nr to @v within @max; false (nothing charged) past it. */
static bool cowmap_charge(atomic_long_t *v, long nr, unsigned long max)
{
	if (atomic_long_add_return(nr, v) > (long)min_t(unsigned long, max, LONG_MAX)) {
		atomic_long_sub(nr, v);
		return false;
	}
	return true;
}

/* A private page or twin for @s: within its owner's max_user_pages? */
bool cowmap_acct_page(struct cowmap_session *s)
{
	return cowmap_charge(&s->user->pages, 1, READ_ONCE(cowmap_max_user_pages));
}

void cowmap_unacct_page(struct cowmap_session *s)
{
	atomic_long_dec(&s->user->pages);
}

/* @nr base pages pinned by @s: within the user's and the global limit? */
bool cowmap_acct_base(struct cowmap_session *s, unsigned long nr)
{
	if (!cowmap_charge(&s->user->base, nr, READ_ONCE(cowmap_max_user_base_pages)))
		return false;
	if (!cowmap_charge(&cowmap_base_total, nr, READ_ONCE(cowmap_max_total_base_pages))) {
		atomic_long_sub(nr, &s->user->base);
		return false;
	}
	return true;
}

void cowmap_unacct_base(struct cowmap_session *s, unsigned long nr)
{
	atomic_long_sub(nr, &s->user->base);
	atomic_long_sub(nr, &cowmap_base_total);
}

/* Would @nr more base pages take @s's user past max_user_base_pages? */
bool cowmap_acct_base_user_full(struct cowmap_session *s, unsigned long nr)
{
	return atomic_long_read(&s->user->base) + nr >
	       min_t(unsigned long, READ_ONCE(cowmap_max_user_base_pages), LONG_MAX);
}

/*
 * How many more bytes of journal memory @s may allocate now, the smallest
 * of what its own, its user's and the global limit leave; *@err: the
 * errno of the limit that is the smallest (ENOSPC, or EDQUOT for the
 * user's). Under @jlock (written) and @lock.
 */
u64 cowmap_acct_journal_room(struct cowmap_session *s, int *err)
{
	long user = atomic_long_read(&s->user->jmem);
	long total = atomic_long_read(&cowmap_jmem_total);
	u64 mine = READ_ONCE(cowmap_max_journal_bytes);
	u64 umax = READ_ONCE(cowmap_max_user_journal_bytes);
	u64 tmax = READ_ONCE(cowmap_max_total_journal_bytes);
	u64 room, r;

	room = mine > s->journal_mem ? mine - s->journal_mem : 0;
	*err = -ENOSPC;
	r = umax > (u64)max(user, 0L) ? umax - max(user, 0L) : 0;
	if (r < room) {
		room = r;
		*err = -EDQUOT;
	}
	r = tmax > (u64)max(total, 0L) ? tmax - max(total, 0L) : 0;
	if (r < room) {
		room = r;
		*err = -ENOSPC;
	}
	return room;
}

/*
 * Charge @bytes of journal memory to @s: 0, or the errno of the limit it
 * would pass (nothing charged). Under @jlock (written) and @lock.
 */
int cowmap_acct_journal(struct cowmap_session *s, u64 bytes)
{
	int err;

	if (bytes > cowmap_acct_journal_room(s, &err))
		return err;
	/* Concurrent commits of other sessions: charge, then check again. */
	if (!cowmap_charge(&s->user->jmem, bytes,
			   READ_ONCE(cowmap_max_user_journal_bytes)))
		return -EDQUOT;
	if (!cowmap_charge(&cowmap_jmem_total, bytes,
			   READ_ONCE(cowmap_max_total_journal_bytes))) {
		atomic_long_sub(bytes, &s->user->jmem);
		return -ENOSPC;
	}
	s->journal_mem += bytes;
	return 0;
}

void cowmap_unacct_journal(struct cowmap_session *s, u64 bytes)
{
	atomic_long_sub(bytes, &s->user->jmem);
	atomic_long_sub(bytes, &cowmap_jmem_total);
	s->journal_mem -= bytes;
}

/*
 * May @s, closed with changes worth @bytes, stay as an orphan? Only its
 * own user's orphan limits decide: another user can never make it be
 * dropped. Under cowmap_registry_lock.
 */
bool cowmap_acct_orphan(struct cowmap_session *s, size_t bytes)
{
	struct cowmap_user *u = s->user;

	if (u->orphans >= READ_ONCE(cowmap_max_user_orphans) ||
	    u->orphan_bytes + bytes > READ_ONCE(cowmap_max_user_orphan_bytes))
		return false;
	u->orphans++;
	u->orphan_bytes += bytes;
	return true;
}

/* The orphan @s was adopted or is going. Under cowmap_registry_lock. */
void cowmap_unacct_orphan(struct cowmap_session *s, size_t bytes)
{
	s->user->orphans--;
	s->user->orphan_bytes -= bytes;
}

void cowmap_account_init(void)
{
	unsigned long ram = totalram_pages();

	if (!cowmap_max_user_pages)
		cowmap_max_user_pages = cowmap_max_total_pages / 2;
	if (!cowmap_max_total_base_pages)
		cowmap_max_total_base_pages = ram / 4;
	if (!cowmap_max_user_base_pages)
		cowmap_max_user_base_pages = cowmap_max_total_base_pages / 2;
	if (!cowmap_max_total_journal_bytes)
		cowmap_max_total_journal_bytes = (ram / 8) << PAGE_SHIFT;
	if (!cowmap_max_user_journal_bytes)
		cowmap_max_user_journal_bytes = cowmap_max_total_journal_bytes / 2;
}
