// SPDX-License-Identifier: GPL-2.0
/*
 * The fault path: how a session's VMAs get their PTEs.
 *
 * Session VMAs are VM_PFNMAP and shared. Every PTE is a special PFN entry,
 * so neither rmap nor GUP ever sees the pages behind it (docs/design.md):
 *
 * - A page the session has not written maps the backing file's page-cache
 *   page, read-only. The session holds a folio reference for as long as a
 *   PTE may point at it (xarray ->base), and unmaps before dropping it.
 * - The first write to such a page copies it into a page of the session
 *   (->priv) and keeps a second copy of the pre-write bytes (->twin), then
 *   unmaps the page from every VMA of the session; the write is retried and
 *   maps ->priv writable.
 * - A private page without a twin (clean since the last commit) is mapped
 *   read-only, so its next write comes through ->pfn_mkwrite and takes a new
 *   twin first.
 */
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>

#include "compat.h"
#include "cowmap.h"

/*
 * Neighbouring pages mapped by one read fault, like the core's fault-around
 * (64 KiB by default), but 128 KiB: a session's fault does more than
 * filemap_map_pages() (s->lock, the catch-up, two xarrays, the charge), and
 * that fixed part is spread over twice the pages (docs/performance.md, rows
 * 2a/2c). Below BITS_PER_LONG: slot sets are unsigned long bitmaps.
 */
#define COWMAP_FAULT_AROUND	32

#define COWMAP_GFP (GFP_HIGHUSER | __GFP_ACCOUNT | __GFP_RETRY_MAYFAIL | \
		    __GFP_NOWARN)

/* Pages owned by all sessions (private copies and twins). */
static atomic_long_t cowmap_total_pages = ATOMIC_LONG_INIT(0);

module_param_cb(pages_in_use, &cowmap_ro_long_ops, &cowmap_total_pages, 0444);
MODULE_PARM_DESC(pages_in_use, "Pages all sessions own now (read-only)");

/*
 * For the selftests: a fault sleeps this long right after its end-of-file
 * check, so that a test can truncate the file inside that window every
 * time instead of by luck. Root only; 0 (the default) costs one load.
 */
static unsigned int cowmap_test_fault_delay_ms;
module_param_named(test_fault_delay_ms, cowmap_test_fault_delay_ms, uint, 0600);
MODULE_PARM_DESC(test_fault_delay_ms,
		 "Testing only: sleep after a fault's end-of-file check (ms)");

/* A test delay of *@ms milliseconds (10 s at most); 0 costs one load. */
static void cowmap_test_sleep(const unsigned int *ms)
{
	unsigned int v = READ_ONCE(*ms);

	if (unlikely(v))
		msleep(min(v, 10000U));
}

/*
 * The same right after a write fault mapped its copy writable, before the
 * store can land: a test truncates the file there (cowmap_drop_unwritten()).
 */
static unsigned int cowmap_test_map_delay_ms;
module_param_named(test_map_delay_ms, cowmap_test_map_delay_ms, uint, 0600);
MODULE_PARM_DESC(test_map_delay_ms,
		 "Testing only: sleep after a write fault mapped its copy (ms)");

/*
 * The same after a write fault dropped @lock, before it maps its copy: a
 * test truncates the file or commits there, and the PTE must not be set.
 */
static unsigned int cowmap_test_unlocked_delay_ms;
module_param_named(test_unlocked_delay_ms, cowmap_test_unlocked_delay_ms,
		   uint, 0600);
MODULE_PARM_DESC(test_unlocked_delay_ms,
		 "Testing only: sleep before a write fault maps its copy, unlocked (ms)");

/*
 * Allocate a page for @s, within the limits, charged to the memory cgroup of
 * the process that opened the session (not of whoever faults). Needs no
 * lock: every limit is an atomic counter (@s->held for max_session_pages),
 * so faults of several threads allocate at once. *@limit: a limit refused
 * it (not a failed allocation).
 */
static struct page *cowmap_try_alloc_page(struct cowmap_session *s,
					  bool *limit)
{
	struct mem_cgroup *old;
	struct page *page;

	*limit = true;
	if ((unsigned long)atomic_long_inc_return(&s->held) >
	    READ_ONCE(cowmap_max_session_pages))
		goto no_held;
	if (!cowmap_acct_page(s))	/* the owner's max_user_pages */
		goto no_held;
	if (atomic_long_inc_return(&cowmap_total_pages) >
	    READ_ONCE(cowmap_max_total_pages))
		goto no_total;
	*limit = false;

	/* Overwritten whole by every caller: no need for a zeroed one. */
	page = cowmap_pool_get(s);
	if (page)
		return page;
	old = set_active_memcg(s->memcg);
	page = alloc_page(COWMAP_GFP);
	set_active_memcg(old);
	if (page)
		return page;
no_total:
	atomic_long_dec(&cowmap_total_pages);
	cowmap_unacct_page(s);
no_held:
	atomic_long_dec(&s->held);
	return NULL;
}

/* The same, under @lock: a limit hit is counted and reported. */
static struct page *cowmap_alloc_page(struct cowmap_session *s)
{
	struct page *page;
	bool limit;

	page = cowmap_try_alloc_page(s, &limit);
	if (limit) {
		s->limit_hits++;
		cowmap_nl_limit_hit(s);
	}
	return page;
}

static void cowmap_free_page(struct cowmap_session *s, struct page *page)
{
	if (!cowmap_pool_put(s, page))
		put_page(page);
	atomic_long_dec(&cowmap_total_pages);
	cowmap_unacct_page(s);
	atomic_long_dec(&s->held);
}

/* The unmap counter a write fault of @pgoff checks (->map_gen). */
static atomic_t *cowmap_map_gen(struct cowmap_session *s, pgoff_t pgoff)
{
	return &s->map_gen[pgoff % COWMAP_MAP_GENS];
}

/*
 * Before an unmap of @nr pages from @pgoff (0: to the end): move their
 * counters, so that a write fault of one of them that dropped @lock before
 * setting its PTE sees the move and leaves the PTE unset (cowmap_set_pte()).
 * The full barrier pairs with the one there: an unmap that finds no page
 * table where the fault then allocates one orders its count before the
 * fault reads it.
 */
static void cowmap_unmap_begin(struct cowmap_session *s, pgoff_t pgoff,
			       pgoff_t nr)
{
	pgoff_t i;

	if (!nr || nr > COWMAP_MAP_GENS)
		nr = COWMAP_MAP_GENS;
	for (i = 0; i < nr; i++)
		atomic_inc(cowmap_map_gen(s, pgoff + i));
	/* The counts before the page-table walk (cowmap_set_pte()). */
	smp_mb__after_atomic();
}

/* Unmap @nr pages of the session from @pgoff (0: to the end), all VMAs. */
void cowmap_zap(struct cowmap_session *s, pgoff_t pgoff, pgoff_t nr)
{
	cowmap_unmap_begin(s, pgoff, nr);
	unmap_mapping_pages(s->inode->i_mapping, pgoff, nr, false);
}

/*
 * Read the backing file's page at @pgoff, with a folio reference. The
 * caller checked the end of file before; a truncate may have come since.
 * read_mapping_folio() does not look at i_size: it gives a folio that was
 * removed meanwhile, or a new zero-filled one past the new end. (shmem's
 * SGP_CACHE refuses offsets past the end, but its folio can still be
 * removed right after.) So, as filemap_fault() does, the folio is checked
 * under its lock (which truncation takes to remove it): still the file's,
 * and inside it. Else -EAGAIN if it was removed but the offset is still
 * inside (read again), -ENXIO if the offset is past the end now (SIGBUS).
 */
static struct page *cowmap_read_base_once(struct cowmap_session *s,
					  pgoff_t pgoff)
{
	struct address_space *m = s->backing->f_mapping;
	struct folio *folio;
	struct page *page;
	bool ours, inside;

	if (s->base_shmem) {
		page = shmem_read_mapping_page_gfp(m, pgoff, mapping_gfp_mask(m));
		if (IS_ERR(page))
			return page;
		folio = page_folio(page);
	} else {
		folio = read_mapping_folio(m, pgoff, s->backing);
		if (IS_ERR(folio))
			return ERR_CAST(folio);
		page = folio_file_page(folio, pgoff);
	}
	folio_lock(folio);
	ours = folio->mapping == m;
	inside = pgoff < cowmap_base_pgoff(s);
	folio_unlock(folio);
	if (ours && inside)
		return page;
	folio_put(folio);
	return ERR_PTR(inside ? -EAGAIN : -ENXIO);
}

static struct page *cowmap_read_base(struct cowmap_session *s, pgoff_t pgoff)
{
	struct page *page;
	int tries = 3;

	do {
		page = cowmap_read_base_once(s, pgoff);
	} while (page == ERR_PTR(-EAGAIN) && --tries);
	return page;
}

static void cowmap_put_base(struct page *page)
{
	folio_put(page_folio(page));
}

/*
 * The base page of @pgoff, or NULL where the session shows zeros: past the
 * base's end in a session with a size of its own (docs/design.md, "Sizes").
 */
static struct page *cowmap_base_or_zero(struct cowmap_session *s, pgoff_t pgoff)
{
	struct page *page;

	if (s->own_size && pgoff >= cowmap_base_pgoff(s))
		return NULL;
	page = cowmap_read_base(s, pgoff);
	/* The base shrank meanwhile: its end moved, the session's did not. */
	if (page == ERR_PTR(-ENXIO) && s->own_size)
		return NULL;
	return page;
}

/* Is @page still the backing file's page (not truncated, punched, ...)? */
static bool cowmap_base_valid(struct cowmap_session *s, struct page *page)
{
	return READ_ONCE(page_folio(page)->mapping) == s->backing->f_mapping;
}

/*
 * The pinned base pages of one aligned window of COWMAP_FAULT_AROUND
 * pages, the unit a read fault maps: ->base holds one of these per window
 * with a pin (index: pgoff / COWMAP_FAULT_AROUND), so a fault records its
 * new pins with one allocation and at most one xarray store, not one store
 * per page. @page[i] holds a folio reference when bit i of @present is
 * set. Changed under s->lock only; freed after an RCU grace period, for
 * cowmap_base_pinned(), which looks without the lock. Its own cache: 280
 * bytes would take 512 from kmalloc.
 */
struct cowmap_base_win {
	unsigned long present;
	struct rcu_head rcu;
	struct page *page[COWMAP_FAULT_AROUND];
};

#define COWMAP_WIN(pgoff)	((pgoff) / COWMAP_FAULT_AROUND)
#define COWMAP_SLOT(pgoff)	((pgoff) % COWMAP_FAULT_AROUND)
#define COWMAP_WIN_ALL		(BIT(COWMAP_FAULT_AROUND) - 1)
static_assert(COWMAP_FAULT_AROUND < BITS_PER_LONG);

static struct kmem_cache *cowmap_win_cache;

static void cowmap_free_win(struct rcu_head *rcu)
{
	kmem_cache_free(cowmap_win_cache,
			container_of(rcu, struct cowmap_base_win, rcu));
}

int cowmap_fault_init(void)
{
	cowmap_win_cache = KMEM_CACHE(cowmap_base_win, SLAB_ACCOUNT);
	return cowmap_win_cache ? 0 : -ENOMEM;
}

/* Unload, once no session is left: after the windows' grace periods. */
void cowmap_fault_exit(void)
{
	rcu_barrier();
	kmem_cache_destroy(cowmap_win_cache);
}

/* The base page pinned at @pgoff, or NULL. Under @lock. */
static struct page *cowmap_base_page(struct cowmap_session *s, pgoff_t pgoff)
{
	struct cowmap_base_win *w = xa_load(&s->base, COWMAP_WIN(pgoff));

	if (!w || !(w->present & BIT(COWMAP_SLOT(pgoff))))
		return NULL;
	return w->page[COWMAP_SLOT(pgoff)];
}

/* Is a base page pinned at @pgoff? Without @lock: a hint. */
static bool cowmap_base_pinned(struct cowmap_session *s, pgoff_t pgoff)
{
	struct cowmap_base_win *w;
	bool pinned;

	rcu_read_lock();
	w = xa_load(&s->base, COWMAP_WIN(pgoff));
	pinned = w && (READ_ONCE(w->present) & BIT(COWMAP_SLOT(pgoff)));
	rcu_read_unlock();
	return pinned;
}

/*
 * Forget the base pages in @mask of window @w (index @win), whose PTEs are
 * already gone: drop their references and their charge, and the window
 * once it holds none. @w must not be used after its last page goes.
 */
static void cowmap_forget_bases(struct cowmap_session *s, unsigned long win,
				struct cowmap_base_win *w, unsigned long mask)
{
	struct folio *folio = NULL;
	unsigned int nr = 0, i;
	int refs = 0;

	mask &= w->present;
	if (!mask)
		return;
	/* Pairs with READ_ONCE() in cowmap_base_pinned(). */
	WRITE_ONCE(w->present, w->present & ~mask);
	/* The pages of one large folio drop theirs with one atomic op. */
	while (mask) {
		i = __ffs(mask);
		mask &= ~BIT(i);
		if (folio != page_folio(w->page[i])) {
			if (folio)
				folio_put_refs(folio, refs);
			folio = page_folio(w->page[i]);
			refs = 0;
		}
		refs++;
		w->page[i] = NULL;
		nr++;
	}
	folio_put_refs(folio, refs);
	if (!w->present) {
		xa_erase(&s->base, win);
		call_rcu(&w->rcu, cowmap_free_win);
	}
	s->nr_base -= nr;
	cowmap_unacct_base(s, nr);
}

/* Forget the base page at @pgoff, whose PTEs are already gone. */
static void cowmap_forget_base(struct cowmap_session *s, pgoff_t pgoff)
{
	struct cowmap_base_win *w = xa_load(&s->base, COWMAP_WIN(pgoff));

	if (w)
		cowmap_forget_bases(s, COWMAP_WIN(pgoff), w,
				    BIT(COWMAP_SLOT(pgoff)));
}

/*
 * Unmap the pages in @mask of window @win, one call per run of contiguous
 * pages (never a page outside @mask: a private copy there stays mapped).
 */
static void cowmap_zap_bases(struct cowmap_session *s, unsigned long win,
			     unsigned long mask)
{
	unsigned int lo, n;

	while (mask) {
		lo = __ffs(mask);
		n = __ffs(~(mask >> lo));
		cowmap_zap(s, win * COWMAP_FAULT_AROUND + lo, n);
		mask &= ~((BIT(n) - 1) << lo);
	}
}

static void cowmap_destroy_page(struct cowmap_session *s, struct cowmap_page *cp)
{
	if (cp->priv) {
		cowmap_free_page(s, cp->priv);
		s->nr_private--;
	}
	if (cp->twin) {
		cowmap_free_page(s, cp->twin);
		s->nr_twins--;
	}
	kfree(cp);
}

/* The same for an entry of ->pages, bare or not. */
static void cowmap_destroy_entry(struct cowmap_session *s, void *e)
{
	if (cowmap_entry_bare(e)) {
		cowmap_free_page(s, cowmap_entry_priv(e));
		s->nr_private--;
		return;
	}
	cowmap_destroy_page(s, e);
}

/*
 * A bare entry of @pgoff (its private page alone) made a struct
 * cowmap_page again, for a write. Replacing an entry allocates nothing in
 * the xarray, so only the struct can fail.
 */
static struct cowmap_page *cowmap_unbare(struct cowmap_session *s,
					 pgoff_t pgoff, void *e)
{
	struct cowmap_page *cp = kzalloc(sizeof(*cp), GFP_KERNEL_ACCOUNT);
	int err;

	if (!cp)
		return ERR_PTR(-ENOMEM);
	cp->priv = cowmap_entry_priv(e);
	err = xa_err(xa_store(&s->pages, pgoff, cp, GFP_KERNEL_ACCOUNT));
	if (err) {
		kfree(cp);
		return ERR_PTR(err);
	}
	return cp;
}

/**
 * cowmap_bare_page() - keep a page with no twin and no mark as its page alone
 * @s: the session
 * @pgoff: the page's offset
 * @cp: its entry in @s->pages
 *
 * After a commit most written pages have no twin and are not
 * unconfirmed: their entry becomes the private page, tagged
 * COWMAP_BARE, and @cp is freed. Anything else keeps @cp. Under @s->lock.
 */
void cowmap_bare_page(struct cowmap_session *s, pgoff_t pgoff,
		      struct cowmap_page *cp)
{
	lockdep_assert_held(&s->lock);
	if (cp->twin || cp->unconfirmed)
		return;
	/* The slot exists: replacing its entry allocates nothing. */
	if (WARN_ON_ONCE(xa_is_err(xa_store(&s->pages, pgoff,
					    xa_tag_pointer(cp->priv, COWMAP_BARE),
					    GFP_NOWAIT))))
		return;
	kfree(cp);
}

/*
 * Copy @src to @a and @b in one pass. Each word of the live page is read
 * once and stored twice, so the two copies agree even if someone writes the
 * file meanwhile, and the source is read once instead of twice.
 */
static void cowmap_copy_twice(struct page *a, struct page *b, struct page *src)
{
	const u64 *s = kmap_local_page(src);
	u64 *x = kmap_local_page(a);
	u64 *y = kmap_local_page(b);
	unsigned int i;

	for (i = 0; i < PAGE_SIZE / sizeof(u64); i += 4) {
		u64 v0 = s[i], v1 = s[i + 1], v2 = s[i + 2], v3 = s[i + 3];

		x[i] = v0;
		x[i + 1] = v1;
		x[i + 2] = v2;
		x[i + 3] = v3;
		y[i] = v0;
		y[i + 1] = v1;
		y[i + 2] = v2;
		y[i + 3] = v3;
	}
	kunmap_local(y);
	kunmap_local(x);
	kunmap_local(s);
}

/* A private copy of @base (NULL: zeros) and its twin, not yet published. */
static struct cowmap_page *cowmap_copy_base(struct cowmap_session *s,
					    struct page *base)
{
	struct cowmap_page *cp = kzalloc(sizeof(*cp), GFP_KERNEL_ACCOUNT);

	if (!cp)
		return NULL;
	cp->twin = cowmap_alloc_page(s);
	if (cp->twin)
		s->nr_twins++;
	cp->priv = cowmap_alloc_page(s);
	if (cp->priv)
		s->nr_private++;
	if (!cp->twin || !cp->priv) {
		cowmap_destroy_page(s, cp);
		return NULL;
	}
	if (base) {
		cowmap_copy_twice(cp->twin, cp->priv, base);
	} else {
		clear_highpage(cp->twin);
		clear_highpage(cp->priv);
	}
	return cp;
}

/*
 * A private copy and its twin made by a write fault before it takes @lock
 * (docs/design.md, "Locking"): the allocations and the copy are most of a
 * first write's cost, and made under @lock they would serialise every
 * thread writing the session. @src is the base page copied (its folio
 * referenced by the caller until @lock is dropped), NULL for zeros; @gen
 * is cowmap_mod_gen() before the copy. Under @lock,
 * cowmap_take_precopy() uses the copy only if the page would be copied
 * from the same source now; else it is freed and the copy is made again,
 * under @lock, as without it.
 */
struct cowmap_precopy {
	struct cowmap_page *cp;
	struct page *src;
	int gen;
};

/* With or without @lock: the pages were never counted in @nr_private. */
static void cowmap_free_precopy(struct cowmap_session *s,
				struct cowmap_precopy *pc)
{
	struct cowmap_page *cp = pc->cp;

	if (!cp)
		return;
	pc->cp = NULL;
	cowmap_free_page(s, cp->priv);
	cowmap_free_page(s, cp->twin);
	kfree(cp);
}

/*
 * Without @lock: copy @pgoff for a first write, from @folio (the backing
 * file's, referenced and up to date) or, past the base's end of a session
 * with its own size, zeros. Nothing if the session has the page already,
 * the file's page is not at hand, or a limit is reached: the fault then
 * does it all under @lock, where a limit hit is counted.
 */
static void cowmap_precopy(struct cowmap_session *s, pgoff_t pgoff,
			   struct folio *folio, struct cowmap_precopy *pc)
{
	struct cowmap_page *cp;
	bool limit;

	pc->cp = NULL;
	pc->src = NULL;
	pc->gen = cowmap_mod_gen_nolock(s);
	/* The copy reads the file after the count: a change before it counts. */
	smp_rmb();
	if (xa_load(&s->pages, pgoff))
		return;
	if (folio)
		pc->src = folio_file_page(folio, pgoff);
	else if (!READ_ONCE(s->own_size) || pgoff < cowmap_base_pgoff(s))
		return;
	cp = kzalloc(sizeof(*cp), GFP_KERNEL_ACCOUNT);
	if (!cp)
		return;
	cp->twin = cowmap_try_alloc_page(s, &limit);
	if (cp->twin)
		cp->priv = cowmap_try_alloc_page(s, &limit);
	if (!cp->priv) {
		if (cp->twin)
			cowmap_free_page(s, cp->twin);
		kfree(cp);
		return;
	}
	if (pc->src) {
		cowmap_copy_twice(cp->twin, cp->priv, pc->src);
	} else {
		clear_highpage(cp->twin);
		clear_highpage(cp->priv);
	}
	pc->cp = cp;
}

/*
 * Under @lock, for @pgoff that has no private page: @pc's copy if the file
 * did not change since it was made (cowmap_mod_gen(), which every write,
 * truncate and merge moves) and the page is still to be copied from the
 * same source: the same base page, still the file's and inside the base, or
 * zeros past the base's end (a SET_SIZE since moves that end). Anything
 * else that changes what a page shows (discard, commit, the shrinker, the
 * walk of pinned pages) leaves both of those alone. NULL: make it again.
 * *@zeros: the copy is of zeros.
 */
static struct cowmap_page *cowmap_take_precopy(struct cowmap_session *s,
					       pgoff_t pgoff,
					       struct cowmap_precopy *pc,
					       bool *zeros)
{
	struct cowmap_page *cp = pc ? pc->cp : NULL;
	pgoff_t bpg;
	bool same;

	if (!cp)
		return NULL;
	bpg = cowmap_base_pgoff(s);
	if (cowmap_mod_gen(s) != pc->gen)
		same = false;
	else if (pc->src)
		same = pgoff < bpg && cowmap_base_valid(s, pc->src);
	else
		same = s->own_size && pgoff >= bpg;
	if (!same) {
		cowmap_free_precopy(s, pc);
		return NULL;
	}
	pc->cp = NULL;
	s->nr_twins++;
	s->nr_private++;
	*zeros = !pc->src;
	return cp;
}

/*
 * Get @pgoff ready to be written by the session: a private copy exists and
 * it has a twin of its content as of before this write. Unmaps the base
 * page from every VMA of the session when it makes the private copy. @pc:
 * a copy made before @lock was taken, or NULL.
 */
static struct cowmap_page *cowmap_prepare_write(struct cowmap_session *s,
						pgoff_t pgoff,
						struct cowmap_precopy *pc)
{
	void *e = xa_load(&s->pages, pgoff);
	struct page *base, *twin;
	struct cowmap_page *cp;
	bool zeros;
	int err;

	if (e) {
		/*
		 * Another thread's copy won: ours goes now, before a twin
		 * is allocated against the same limits.
		 */
		if (pc)
			cowmap_free_precopy(s, pc);
		cp = cowmap_entry_cp(e);
		if (cp && cp->twin)
			return cp;
		/* The twin first: a bare page that gets none stays bare. */
		twin = cowmap_alloc_page(s);
		if (!twin)
			return ERR_PTR(-ENOMEM);
		if (!cp) {
			cp = cowmap_unbare(s, pgoff, e);
			if (IS_ERR(cp)) {
				cowmap_free_page(s, twin);
				return cp;
			}
		}
		copy_highpage(twin, cp->priv);
		cp->twin = twin;
		s->nr_twins++;
		s->rearms++;
		return cp;
	}

	cp = cowmap_take_precopy(s, pgoff, pc, &zeros);
	if (!cp) {
		base = cowmap_base_or_zero(s, pgoff);
		if (IS_ERR(base))
			return ERR_CAST(base);
		zeros = !base;
		cp = cowmap_copy_base(s, base);
		if (base)
			cowmap_put_base(base);
		if (!cp)
			return ERR_PTR(-ENOMEM);
	}

	err = xa_err(xa_store(&s->pages, pgoff, cp, GFP_KERNEL_ACCOUNT));
	if (err) {
		cowmap_destroy_page(s, cp);
		return ERR_PTR(err);
	}
	s->cow_copies++;

	/*
	 * No PTE of the session may keep showing the base page. Only a page
	 * in ->base can be shown by one: a first write to a page never read
	 * (the common case) needs no unmap.
	 */
	if (cowmap_base_page(s, pgoff)) {
		cowmap_zap(s, pgoff, 1);
		cowmap_forget_base(s, pgoff);
	} else if (zeros) {
		/* A page of zeros may show it (past the base's end). */
		cowmap_zap(s, pgoff, 1);
	}
	return cp;
}

/*
 * PTEs to set in one page-table walk: slot i is the page at @addr + i pages.
 * Slots not in @map are left alone, and so is any PTE already present,
 * unless @upgrade: then the one slot's PTE must be exactly @expect (a
 * read-only PTE of the page that ->pfn_mkwrite makes writable). @gen, when
 * set: nothing is set if it moved from @gen_seen (a write fault mapping
 * without @lock).
 */
struct cowmap_ptes {
	struct mm_struct *mm;
	unsigned long addr;
	unsigned int nr;
	unsigned long map;		/* slots to map */
	unsigned long writable;		/* ... of which writable */
	unsigned long done;		/* out: slots whose PTE was set */
	pgprot_t prot;			/* read-only (write-notify) */
	pgprot_t wprot;
	const atomic_t *gen;
	int gen_seen;
	bool upgrade;
	pte_t expect;
	unsigned long pfn[COWMAP_FAULT_AROUND];
};

static int cowmap_set_pte(pte_t *pte, unsigned long addr, void *data)
{
	struct cowmap_ptes *p = data;
	unsigned int i = (addr - p->addr) >> PAGE_SHIFT;
	pte_t old = ptep_get(pte);
	pgprot_t prot;

	if (!(p->map & BIT(i)))
		return 0;
	if (p->upgrade ? !pte_same(old, p->expect) : !pte_none(old))
		return 0;
	if (p->gen) {
		/*
		 * Under the PTE lock, which an unmap takes after it moved
		 * @gen; the full barrier pairs with cowmap_zap()'s for an
		 * unmap that found no page table before this walk made one.
		 */
		smp_mb();
		if (atomic_read(p->gen) != p->gen_seen)
			return 0;
	}
	prot = p->writable & BIT(i) ? p->wprot : p->prot;
	set_pte_at(p->mm, addr, pte, pte_mkspecial(pfn_pte(p->pfn[i], prot)));
	p->done |= BIT(i);
	return 0;
}

/*
 * Set the PTEs of @p under one page-table lock, as remap_pfn_range() does,
 * instead of one vmf_insert_pfn() per page, which walks the page table,
 * takes the PTE lock and looks up the PFN's PAT memory type each time. That
 * lookup is needed for device memory; every PFN mapped here is ordinary
 * RAM (page cache or our own pages), whose type is write-back unless a
 * driver changed it with set_memory_*() on pages it owns, so it is the
 * cache mode vm_page_prot already has. Like vmf_insert_pfn(), this takes no
 * reference and no rmap: the PTEs are special. update_mmu_cache() is a
 * no-op on x86.
 */
static vm_fault_t cowmap_set_ptes(struct cowmap_ptes *p)
{
	if (!p->map)
		return VM_FAULT_NOPAGE;
	if (apply_to_page_range(p->mm, p->addr, p->nr << PAGE_SHIFT,
				cowmap_set_pte, p))
		return VM_FAULT_SIGBUS;	/* no page table; never VM_FAULT_OOM */
	return VM_FAULT_NOPAGE;
}

/*
 * Map @pfn at @vmf->address, writable (vm_get_page_prot(vm_flags)), for a
 * write fault that dropped @lock: only if the page's unmap counter is
 * still @gen (no unmap since; else the write faults again). A PTE already
 * there is left alone, unless @upgrade: then it is made writable if it is
 * still the read-only @vmf->orig_pte. (An upgrade needs no TLB flush: a
 * stale read-only entry elsewhere only faults once more.)
 */
static vm_fault_t cowmap_map_write(struct vm_fault *vmf,
				   struct cowmap_session *s, unsigned long pfn,
				   int gen, bool upgrade)
{
	vm_fault_t ret;
	struct cowmap_ptes p = {
		.mm = vmf->vma->vm_mm,
		.addr = vmf->address & PAGE_MASK,
		.nr = 1,
		.map = 1,
		.writable = 1,
		.prot = vmf->vma->vm_page_prot,
		.wprot = vm_get_page_prot(vmf->vma->vm_flags),
		.gen = cowmap_map_gen(s, vmf->pgoff),
		.gen_seen = gen,
		.upgrade = upgrade,
		.expect = vmf->orig_pte,
	};

	cowmap_test_sleep(&cowmap_test_unlocked_delay_ms);
	p.pfn[0] = pfn;
	ret = cowmap_set_ptes(&p);
	if (p.done)
		cowmap_test_sleep(&cowmap_test_map_delay_ms);
	return ret;
}

/*
 * Look up the pages of the window in @need (bitmap of slots, from @first) in
 * the page cache, in one batch, and put those cached and up to date in
 * @pages, each with its own folio reference (the pages of one large folio
 * take theirs with one atomic add). No I/O is started. Not inlined: its
 * folio batch would stay on the read fault's stack through the file I/O
 * that may follow.
 */
static noinline void cowmap_peek_bases(struct cowmap_session *s,
				       pgoff_t first, unsigned long need,
				       struct page **pages)
{
	struct address_space *m = s->backing->f_mapping;
	pgoff_t start = first + __ffs(need);
	pgoff_t end = first + __fls(need);
	struct folio_batch fbatch;
	unsigned int i, j;

	folio_batch_init(&fbatch);
	while (start <= end && filemap_get_folios(m, &start, end, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];
			pgoff_t idx = max(folio->index, first);
			pgoff_t hi = min(folio->index + folio_nr_pages(folio) - 1,
					 end);
			int refs = 0;	/* its pages in @pages, one ref each */

			if (!folio_test_uptodate(folio) ||
			    READ_ONCE(folio->mapping) != m)
				goto put;
			for (; idx <= hi; idx++) {
				j = idx - first;
				if (!(need & BIT(j)))
					continue;
				pages[j] = folio_file_page(folio, idx);
				refs++;
			}
put:
			/* The batch's reference is the first page's. */
			if (refs > 1)
				folio_ref_add(folio, refs - 1);
			else if (!refs)
				folio_put(folio);
		}
		folio_batch_init(&fbatch);
	}
}

/*
 * Record the base pages in @pages (slots in @new, from @first) in their
 * window of ->base: one allocation and one xarray store for a window that
 * had no pin yet. If that fails (no memory), the pages lose their slots in
 * @new, their references and their charge.
 */
static unsigned long cowmap_store_bases(struct cowmap_session *s, pgoff_t first,
					unsigned long new, struct page **pages)
{
	unsigned long win = COWMAP_WIN(first);
	unsigned int off = COWMAP_SLOT(first), i;
	struct cowmap_base_win *w;
	unsigned long todo = new;

	if (!new)
		return 0;
	w = xa_load(&s->base, win);
	if (!w) {
		w = kmem_cache_zalloc(cowmap_win_cache, GFP_KERNEL);
		if (w && xa_err(xa_store(&s->base, win, w, GFP_KERNEL_ACCOUNT))) {
			kmem_cache_free(cowmap_win_cache, w);
			w = NULL;
		}
	}
	if (!w) {
		while (todo) {
			i = __ffs(todo);
			todo &= ~BIT(i);
			cowmap_put_base(pages[i]);
		}
		cowmap_unacct_base(s, hweight_long(new));
		return 0;
	}
	/* The fault forgot every pin of the window it replaces. */
	WARN_ON_ONCE(w->present & (new << off));
	while (todo) {
		i = __ffs(todo);
		todo &= ~BIT(i);
		w->page[off + i] = pages[i];
	}
	/* Pairs with READ_ONCE() in cowmap_base_pinned(). */
	WRITE_ONCE(w->present, w->present | (new << off));
	s->nr_base += hweight_long(new);
	return new;
}

/*
 * Unpin up to @nr base pages of @s, lowest offsets first: they are
 * unmapped and read again when touched. One in the fault window at @first
 * leaves the fault's @map too; the faulting page (@self) stays.
 */
static void cowmap_unpin_bases(struct cowmap_session *s, pgoff_t first,
			       unsigned long *map, unsigned int nr,
			       unsigned int self)
{
	struct cowmap_base_win *w;
	unsigned long win, bits, mask;
	unsigned int i;
	pgoff_t idx;

	xa_for_each(&s->base, win, w) {
		if (!nr)
			break;
		bits = w->present;
		mask = 0;
		while (bits && nr) {
			i = __ffs(bits);
			bits &= ~BIT(i);
			idx = win * COWMAP_FAULT_AROUND + i;
			if (idx == first + self)
				continue;
			if (idx >= first && idx < first + COWMAP_FAULT_AROUND)
				*map &= ~BIT(idx - first);
			mask |= BIT(i);
			nr--;
		}
		cowmap_zap_bases(s, win, mask);
		s->base_reclaimed += hweight_long(mask);
		cowmap_forget_bases(s, win, w, mask);
	}
}

/*
 * Unpin up to @nr base pages of @s for reclaim (the shrinker, or another
 * session at a pinning limit): unmap them and drop the session's
 * reference, so that they are ordinary page cache again, which reclaim can
 * evict; a later access faults them in again. A clock hand: each call goes
 * on where the last one stopped and wraps at the end, so the pages a
 * reader moving forward touched longest ago go first, and every page gets
 * its turn. The contiguous pages of a window are unmapped with one call.
 * Under @lock. Returns how many pages were unpinned.
 */
unsigned long cowmap_reclaim_session(struct cowmap_session *s,
				     unsigned long nr)
{
	unsigned long idx = s->reclaim_next, done = 0, win, bits, mask;
	bool wrapped = !idx;
	struct cowmap_base_win *w;
	unsigned int i;

	lockdep_assert_held(&s->lock);
	while (done < nr) {
		win = COWMAP_WIN(idx);
		w = xa_find(&s->base, &win, ULONG_MAX, XA_PRESENT);
		if (!w) {
			if (wrapped)
				break;
			wrapped = true;
			idx = 0;
			continue;
		}
		bits = w->present;
		/* In the window of the hand, its slots from the hand on. */
		if (win == COWMAP_WIN(idx))
			bits &= ~(BIT(COWMAP_SLOT(idx)) - 1);
		mask = 0;
		while (bits && done < nr) {
			i = __ffs(bits);
			bits &= ~BIT(i);
			mask |= BIT(i);
			done++;
		}
		idx = win * COWMAP_FAULT_AROUND +
		      (mask ? __fls(mask) + 1 : COWMAP_FAULT_AROUND);
		cowmap_zap_bases(s, win, mask);
		cowmap_forget_bases(s, win, w, mask);
	}
	s->reclaim_next = idx;
	s->base_reclaimed += done;
	return done;
}

/*
 * Charge the new base pages in @new to the pinning limits (account.c). At
 * a limit, the session first unpins as many of its own base pages (taking
 * those of the window out of @map, the slots the fault maps), then, if
 * that was not enough, the user's other sessions do (at the user's limit)
 * or every other session does (at the global one), oldest pins first
 * (cowmap_reclaim_bases()); then all of them are charged, else the
 * faulting one (@self) alone, else none (the pins are held where they
 * cannot be taken now: sessions busy in a fault or a commit). A page that
 * is not charged loses its slot and its reference.
 */
static unsigned long cowmap_charge_bases(struct cowmap_session *s,
					 pgoff_t first, unsigned long *map,
					 unsigned long new, unsigned int self,
					 struct page **pages)
{
	unsigned int i, nr = hweight_long(new);
	unsigned long keep;

	if (!nr || cowmap_acct_base(s, nr))
		return new;
	cowmap_unpin_bases(s, first, map, nr, self);
	if (cowmap_acct_base(s, nr))
		return new;
	/* Sessions busy in a fault are passed over: try again a few times. */
	for (i = 0; i < 4; i++) {
		if (cowmap_acct_base_user_full(s, nr))
			cowmap_reclaim_bases(s->user, s, nr);
		else
			cowmap_reclaim_bases(NULL, s, nr);
		if (cowmap_acct_base(s, nr))
			return new;
		cond_resched();
	}
	keep = new & BIT(self);
	if (keep && !cowmap_acct_base(s, 1)) {
		keep = 0;
		s->limit_hits++;
		cowmap_nl_limit_hit(s);
	}
	for (i = 0; i < COWMAP_FAULT_AROUND; i++)
		if ((new & ~keep) & BIT(i))
			cowmap_put_base(pages[i]);
	return keep;
}

/*
 * A read fault, with fault-around: map the aligned window of 32 pages
 * around the faulting one (@pgoff), within the VMA and the file. The
 * faulting page is read if needed; its neighbours are mapped only if they
 * are already cached and up to date. All of it with one walk of ->pages,
 * one load of the window's entry in ->base, one batch lookup in the page
 * cache, at most one allocation and one store for the new base references,
 * and one page-table lock for the PTEs. @around: no page of this window
 * faulted (cowmap_read_folio()): only what is cached is mapped, and only
 * within the pinning limits as they stand (no other pin is dropped for it);
 * 0 instead of VM_FAULT_NOPAGE when a limit kept its new pages unpinned,
 * so that no further window is tried.
 */
static vm_fault_t cowmap_read_fault(struct cowmap_session *s,
				    struct vm_fault *vmf, pgoff_t pgoff,
				    pgoff_t eof, bool around)
{
	struct vm_area_struct *vma = vmf->vma;
	struct page *pages[COWMAP_FAULT_AROUND] = { };
	struct page *old[COWMAP_FAULT_AROUND] = { };
	XA_STATE(xp, &s->pages, 0);
	struct cowmap_base_win *w;
	unsigned long need = 0, new, stale = 0;
	bool full = false;
	struct cowmap_ptes p = { };	/* no counter, no upgrade: under @lock */
	vm_fault_t ret;
	struct cowmap_page *cp;
	struct page *page;
	unsigned int i, self, off;
	void *e;
	pgoff_t first, last, bpg = cowmap_base_pgoff(s);

	first = max(round_down(pgoff, COWMAP_FAULT_AROUND), vma->vm_pgoff);
	last = min3(round_down(pgoff, COWMAP_FAULT_AROUND) +
		    COWMAP_FAULT_AROUND, vma->vm_pgoff + vma_pages(vma), eof);
	/* Around: a slot no page has (slot sets are below BITS_PER_LONG). */
	self = around ? COWMAP_FAULT_AROUND : pgoff - first;
	off = COWMAP_SLOT(first);

	p.mm = vma->vm_mm;
	p.addr = vma->vm_start + ((first - vma->vm_pgoff) << PAGE_SHIFT);
	p.nr = last - first;
	p.prot = vma->vm_page_prot;
	p.wprot = vm_get_page_prot(vma->vm_flags);

	/*
	 * Only fault.c changes either xarray, and always under s->lock; @w
	 * is not used after the loop (a forget below may free it).
	 */
	xas_set(&xp, first);
	rcu_read_lock();
	w = xa_load(&s->base, COWMAP_WIN(first));
	for (i = 0; i < p.nr; i++) {
		e = i ? xas_next(&xp) : xas_load(&xp);
		page = w && (w->present & BIT(off + i)) ? w->page[off + i] : NULL;
		if (e) {
			/* Written since the last commit: no need to notice it again. */
			cp = cowmap_entry_cp(e);
			p.pfn[i] = page_to_pfn(cowmap_entry_priv(e));
			p.map |= BIT(i);
			if (cp && cp->twin)
				p.writable |= BIT(i);
		} else if (page && cowmap_base_valid(s, page) && first + i < bpg) {
			p.pfn[i] = page_to_pfn(page);
			p.map |= BIT(i);
		} else if (s->own_size && first + i >= bpg) {
			/* Past the base, inside the session: zeros. */
			if (page)
				stale |= BIT(i);
			p.pfn[i] = page_to_pfn(ZERO_PAGE(0));
			p.map |= BIT(i);
		} else {
			old[i] = page;
			need |= BIT(i);
		}
	}
	rcu_read_unlock();
	/* A base page the base no longer reaches (it shrank): forget it. */
	while (stale) {
		i = __ffs(stale);
		stale &= ~BIT(i);
		cowmap_zap(s, first + i, 1);
		cowmap_forget_base(s, first + i);
	}

	/*
	 * One batch lookup for the faulting page too; it alone may need I/O,
	 * and is read only if the batch did not find it cached and up to date.
	 */
	if (need) {
		pgoff_t end;

		cowmap_peek_bases(s, first, need, pages);
		/*
		 * A page found past an end of file that moved since @eof was
		 * read (a zero-filled folio a racing read left there, or one
		 * that truncation has not removed yet) is not the file's.
		 */
		end = cowmap_base_pgoff(s);
		for (i = 0; i < p.nr; i++) {
			if (pages[i] && first + i >= end) {
				cowmap_put_base(pages[i]);
				pages[i] = NULL;
			}
		}
	}
	if ((need & BIT(self)) && !pages[self]) {
		page = cowmap_base_or_zero(s, pgoff);
		if (IS_ERR(page)) {
			for (i = 0; i < p.nr; i++)
				if (pages[i])
					cowmap_put_base(pages[i]);
			return VM_FAULT_SIGBUS;
		}
		pages[self] = page;
		if (!page) {
			/* The base ended meanwhile: zeros, in a session's own size. */
			p.pfn[self] = page_to_pfn(ZERO_PAGE(0));
			p.map |= BIT(self);
			need &= ~BIT(self);
		}
	}

	new = 0;
	for (i = 0; i < p.nr; i++) {
		if (!pages[i])
			continue;
		if (pages[i] == old[i]) {
			/* The same page, valid again: keep one reference. */
			cowmap_put_base(pages[i]);
			p.pfn[i] = page_to_pfn(pages[i]);
			p.map |= BIT(i);
			continue;
		}
		if (old[i]) {
			/* The file's page changed under an existing PTE. */
			cowmap_zap(s, first + i, 1);
			cowmap_forget_base(s, first + i);
			s->base_invalidations++;
		}
		new |= BIT(i);
	}
	if (!around) {
		new = cowmap_charge_bases(s, first, &p.map, new, self, pages);
	} else if (new && !cowmap_acct_base(s, hweight_long(new))) {
		for (i = 0; i < p.nr; i++)
			if (new & BIT(i))
				cowmap_put_base(pages[i]);
		new = 0;
		full = true;
	}
	new = cowmap_store_bases(s, first, new, pages);
	if ((need & BIT(self)) && !(p.map & BIT(self)) && !(new & BIT(self)))
		return VM_FAULT_SIGBUS;
	for (i = 0; i < p.nr; i++) {
		if (new & BIT(i)) {
			p.pfn[i] = page_to_pfn(pages[i]);
			p.map |= BIT(i);
		}
	}
	ret = cowmap_set_ptes(&p);
	return full && ret == VM_FAULT_NOPAGE ? 0 : ret;
}

/* The most a read fault maps: a PMD's worth, the largest page-cache folio. */
#define COWMAP_FOLIO_AROUND	512

/*
 * After a read fault that mapped @vmf->pgoff's base page: if that page is
 * part of a large folio (ext4 on 7.3, XFS), map the rest of the folio
 * too, window by window, within the VMA and the file, as the core maps a
 * whole folio per fault: a reader of a large folio takes one fault for it,
 * not one per window. Only cached pages are mapped. *@rfirst and *@rend
 * grow to the windows it mapped. Under @lock.
 */
static void cowmap_read_folio(struct cowmap_session *s, struct vm_fault *vmf,
			      pgoff_t eof, pgoff_t *rfirst, pgoff_t *rend)
{
	struct vm_area_struct *vma = vmf->vma;
	struct page *page = cowmap_base_page(s, vmf->pgoff);
	struct folio *folio;
	pgoff_t lo, hi, idx, win = COWMAP_WIN(vmf->pgoff);

	if (!page)
		return;
	folio = page_folio(page);
	if (!folio_test_large(folio))
		return;
	/* Its index stays while the pin holds it, even if truncated. */
	lo = max(folio->index, vma->vm_pgoff);
	hi = min3(folio->index + folio_nr_pages(folio),
		  vma->vm_pgoff + vma_pages(vma), eof);
	lo = max(lo, round_down(vmf->pgoff, COWMAP_FOLIO_AROUND));
	hi = min(hi, round_down(vmf->pgoff, COWMAP_FOLIO_AROUND) +
		 COWMAP_FOLIO_AROUND);
	for (idx = lo; idx < hi;
	     idx = round_down(idx, COWMAP_FAULT_AROUND) + COWMAP_FAULT_AROUND) {
		if (COWMAP_WIN(idx) == win)
			continue;
		/* Before: a window that failed may have set some PTEs. */
		*rfirst = min(*rfirst, round_down(idx, COWMAP_FAULT_AROUND));
		*rend = max(*rend, round_down(idx, COWMAP_FAULT_AROUND) +
			    COWMAP_FAULT_AROUND);
		/* Also at a pinning limit: the next windows would not pin. */
		if (cowmap_read_fault(s, vmf, idx, eof, true) != VM_FAULT_NOPAGE)
			break;
	}
}

/* Does @cp hold exactly its twin, the file's bytes as of its copy? */
static bool cowmap_same_as_twin(struct cowmap_page *cp)
{
	const u8 *a = kmap_local_page(cp->priv);
	const u8 *b = kmap_local_page(cp->twin);
	bool same = !memcmp(a, b, PAGE_SIZE);

	kunmap_local(b);
	kunmap_local(a);
	return same;
}

/*
 * A write past the end of the file fails (SIGBUS). The copy a fault made
 * for it and mapped, or was to map, writable (cp->unconfirmed) may never
 * have seen the store: a truncation unmapped it first, or came before the
 * PTE, and the write came back here. If the page still holds what was
 * copied, no write reached it: drop it, else it would show the file's old
 * bytes when the file grows again. Unmapped first, so no store lands
 * meanwhile. Such a page holds no change, whatever was committed meanwhile.
 */
static void cowmap_drop_unwritten(struct cowmap_session *s, pgoff_t pgoff)
{
	struct cowmap_page *cp = cowmap_entry_cp(xa_load(&s->pages, pgoff));

	/* A bare page (or none) is not unconfirmed. */
	if (!cp || !cp->unconfirmed)
		return;
	cowmap_zap(s, pgoff, 1);
	/*
	 * No twin: a commit found it unchanged and no write faulted since
	 * (a commit unmaps written pages; a write then rearms the twin).
	 */
	if (cp->twin && !cowmap_same_as_twin(cp)) {
		cp->unconfirmed = false;
		return;
	}
	xa_erase(&s->pages, pgoff);
	cowmap_destroy_page(s, cp);
	s->cow_copies--;
}

/*
 * Read the file's page at @pgoff into the page cache before the fault
 * takes s->lock, so that file I/O (a slow or hung NFS or FUSE server)
 * does not run under the lock that status, commit and netlink lookups
 * take too. Under the lock the page is then found cached
 * (cowmap_read_base() reads again only if it went since). Reads and
 * writes through a view do the same. The folio reference returned keeps
 * it cached until then (folio_put()); NULL if there is nothing to read or
 * the read failed (the fault then reads and fails under the lock, as
 * before); ERR_PTR(-EINTR) if the caller was killed while it waited.
 *
 * A page in @base is looked up too: its folio may have left the page
 * cache (FUSE drops a file's cache at every open(2) without
 * FOPEN_KEEP_CACHE), and the lock would then read it again.
 *
 * The page is read through readahead, even alone, and waited for
 * killably, as filemap_fault() does: a filesystem that reads
 * asynchronously (FUSE with FUSE_ASYNC_READ, NFS, block filesystems)
 * then only holds the folio lock over the I/O. read_mapping_folio() would
 * wait for a folio another reader locked in TASK_UNINTERRUPTIBLE, and
 * call ->read_folio, which FUSE sends synchronously and, once the server
 * has the request, waits for uninterruptibly.
 */
struct folio *cowmap_prefetch_base(struct cowmap_session *s, pgoff_t pgoff)
{
	struct address_space *m = s->backing->f_mapping;
	struct folio *folio;
	struct page *page;

	/* Past the base's end, a session with its own size shows zeros. */
	if (pgoff >= cowmap_base_pgoff(s) || xa_load(&s->pages, pgoff))
		return NULL;
	if (s->base_shmem) {
		/* A pinned shmem folio leaves its file only by truncation. */
		if (cowmap_base_pinned(s, pgoff))
			return NULL;
		page = shmem_read_mapping_page_gfp(m, pgoff, mapping_gfp_mask(m));
		return IS_ERR(page) ? NULL : page_folio(page);
	}
	folio = cowmap_filemap_get_folio(m, pgoff);
	if (!folio) {
		/*
		 * Not cached, and the session's last miss was just before:
		 * a reader moving forward. Read the rest of the fault's
		 * window with one readahead request (one I/O for the pages
		 * fault-around then maps). A random or strided access asks
		 * for its page only. The session's own readahead state
		 * (@ra): the backing struct file's belongs to its opener's
		 * read(2)s. @last_miss is a hint: racing faults of several
		 * threads only make the guess worse.
		 */
		pgoff_t last = READ_ONCE(s->last_miss);
		unsigned long nr = 1;

		if (pgoff > last && pgoff - last <= COWMAP_FAULT_AROUND)
			nr = COWMAP_FAULT_AROUND -
			     (pgoff & (COWMAP_FAULT_AROUND - 1));
		page_cache_sync_readahead(m, &s->ra, s->backing, pgoff, nr);
		WRITE_ONCE(s->last_miss, pgoff);
		folio = cowmap_filemap_get_folio(m, pgoff);
	}
	if (folio && !folio_test_uptodate(folio) &&
	    folio_wait_locked_killable(folio)) {
		folio_put(folio);
		return ERR_PTR(-EINTR);
	}
	if (folio && folio_test_uptodate(folio))
		return folio;
	if (folio)
		folio_put(folio);
	/* Readahead did not read it (an error, no memory): as before. */
	if (fatal_signal_pending(current))
		return ERR_PTR(-EINTR);
	folio = read_mapping_folio(m, pgoff, s->backing);
	if (!IS_ERR(folio))
		return folio;
	/* Killed in its wait: the lock must not read it again. */
	return fatal_signal_pending(current) ? ERR_PTR(-EINTR) : NULL;
}

static void cowmap_fault_recheck(struct cowmap_session *s, pgoff_t first,
				 pgoff_t end);

/*
 * The last step of a fault under @lock: if the file changed since the
 * fault read its change count @gen, unmap what the fault's windows (pages
 * @first to @end) may show that is no longer the file's. Returns the unmap
 * counter of @pgoff, against which a write's PTE is set after the unlock
 * (cowmap_map_write()). It is read before the barrier: a truncation whose
 * unmap that PTE could miss has moved the change count before the unmap
 * counters (the handler), so if this sees that unmap's count, the recheck
 * runs, and its own unmap keeps the PTE from being set.
 */
static int cowmap_fault_end(struct cowmap_session *s, pgoff_t pgoff, int gen,
			    pgoff_t first, pgoff_t end)
{
	int map_gen = atomic_read(cowmap_map_gen(s, pgoff));

	/*
	 * Pairs with the handler's barrier after its count: either it sees the
	 * PTEs set under @lock and unmaps them, or this sees its count.
	 */
	smp_mb();
	if (cowmap_mod_gen(s) != gen)
		cowmap_fault_recheck(s, first, end);
	return map_gen;
}

static vm_fault_t cowmap_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct cowmap_session *s = vma->vm_private_data;
	bool write = vmf->flags & FAULT_FLAG_WRITE;
	struct folio *pre = cowmap_prefetch_base(s, vmf->pgoff);
	struct cowmap_precopy pc = {};
	struct cowmap_page *cp;
	unsigned long wpfn = 0;		/* a write's page, mapped after @lock */
	vm_fault_t ret;
	pgoff_t eof, rfirst, rend;	/* [rfirst, rend): the windows mapped */
	int gen, map_gen;

	/* Killed while the file's I/O went on: the task is going anyway. */
	if (IS_ERR(pre))
		return VM_FAULT_SIGBUS;
	if (write)
		cowmap_precopy(s, vmf->pgoff, pre, &pc);
	mutex_lock(&s->lock);
	s->faults++;
	cowmap_revalidate(s, false);
	gen = cowmap_mod_gen(s);
	/* The end of file after the count: a truncation moved it first. */
	smp_rmb();
	eof = cowmap_eof_pgoff(s);
	rfirst = round_down(vmf->pgoff, COWMAP_FAULT_AROUND);
	rend = rfirst + COWMAP_FAULT_AROUND;
	if (vmf->pgoff >= eof) {
		if (write)
			cowmap_drop_unwritten(s, vmf->pgoff);
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	cowmap_test_sleep(&cowmap_test_fault_delay_ms);
	if (write) {
		bool made = !xa_load(&s->pages, vmf->pgoff);

		cp = cowmap_prepare_write(s, vmf->pgoff, &pc);
		if (IS_ERR(cp)) {
			ret = VM_FAULT_SIGBUS;
		} else {
			/*
			 * The PTE is set once @lock is dropped, so that threads
			 * writing the session do not map one at a time. The
			 * write goes there then, unless a truncation unmaps it
			 * first (cowmap_drop_unwritten()). If the PTE is not
			 * set after all (an unmap came between), the write
			 * faults again; if a reader mapped the copy first, the
			 * store lands there. The mark set here only says that
			 * a store may be on its way.
			 */
			if (made)
				cp->unconfirmed = true;
			wpfn = page_to_pfn(cp->priv);
			ret = VM_FAULT_NOPAGE;
		}
	} else {
		ret = cowmap_read_fault(s, vmf, vmf->pgoff, eof, false);
		if (ret == VM_FAULT_NOPAGE)
			cowmap_read_folio(s, vmf, eof, &rfirst, &rend);
	}
	map_gen = cowmap_fault_end(s, vmf->pgoff, gen, rfirst, rend);
out:
	mutex_unlock(&s->lock);
	if (wpfn)
		ret = cowmap_map_write(vmf, s, wpfn, map_gen, false);
	cowmap_free_precopy(s, &pc);
	if (pre)
		folio_put(pre);
	return ret;
}

/* A write to a present, read-only PTE. */
static vm_fault_t cowmap_pfn_mkwrite(struct vm_fault *vmf)
{
	struct cowmap_session *s = vmf->vma->vm_private_data;
	struct cowmap_precopy pc = {};
	bool was_private, created;
	struct folio *folio = NULL;
	struct cowmap_page *cp;
	unsigned long wpfn = 0;		/* the copy, mapped after @lock */
	int gen, map_gen;
	vm_fault_t ret;
	void *e;

	/*
	 * The PTE shows the base page (or zeros, or the private copy): copy
	 * the file's page before @lock, reading it first if it left the
	 * page cache since it was mapped (cowmap_prefetch_base()).
	 */
	if (!xa_load(&s->pages, vmf->pgoff)) {
		folio = cowmap_prefetch_base(s, vmf->pgoff);
		if (IS_ERR(folio))
			return VM_FAULT_SIGBUS;
		if (folio || READ_ONCE(s->own_size))
			cowmap_precopy(s, vmf->pgoff, folio, &pc);
	}
	mutex_lock(&s->lock);
	s->faults++;
	cowmap_revalidate(s, false);
	gen = cowmap_mod_gen(s);
	/* The end of file after the count: a truncation moved it first. */
	smp_rmb();
	if (vmf->pgoff >= cowmap_eof_pgoff(s)) {
		/* As in cowmap_fault(): a copy made for this write must go. */
		cowmap_drop_unwritten(s, vmf->pgoff);
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	cowmap_test_sleep(&cowmap_test_fault_delay_ms);
	e = xa_load(&s->pages, vmf->pgoff);
	created = !e;
	was_private = e && pte_pfn(vmf->orig_pte) ==
			   page_to_pfn(cowmap_entry_priv(e));

	cp = cowmap_prepare_write(s, vmf->pgoff, &pc);
	if (IS_ERR(cp)) {
		ret = VM_FAULT_SIGBUS;
	} else {
		/*
		 * The PTE showed the private page: it is made writable after
		 * the unlock, if no unmap came meanwhile. Not by the core
		 * (return 0), which only checks that the PTE is the same: a
		 * commit may have unmapped the page and dropped the twin just
		 * rearmed, and a read fault mapped it again, read-only, with
		 * the same PTE; the store would then land where nothing
		 * tracks it.
		 *
		 * Else the PTE showed the base page (or zeros): it is zapped
		 * now, and the copy is mapped writable in its place after the
		 * unlock, as a write fault maps it (one fault, not a second
		 * one for the retried write). A copy made for this write is
		 * unconfirmed, as in cowmap_fault(). VM_FAULT_NOPAGE either
		 * way: the core leaves the PTE to us.
		 */
		if (!was_private) {
			cowmap_zap(s, vmf->pgoff, 1);
			if (created)
				cp->unconfirmed = true;
		}
		wpfn = page_to_pfn(cp->priv);
		map_gen = cowmap_fault_end(s, vmf->pgoff, gen, vmf->pgoff,
					   vmf->pgoff + 1);
		ret = VM_FAULT_NOPAGE;
	}
out:
	mutex_unlock(&s->lock);
	if (wpfn)
		ret = cowmap_map_write(vmf, s, wpfn, map_gen, was_private);
	cowmap_free_precopy(s, &pc);
	if (folio)
		folio_put(folio);
	return ret;
}

static void cowmap_vm_open(struct vm_area_struct *vma)
{
	struct cowmap_session *s = vma->vm_private_data;

	atomic_inc(&s->nr_vmas);
}

static void cowmap_vm_close(struct vm_area_struct *vma)
{
	struct cowmap_session *s = vma->vm_private_data;
	struct cowmap_base_win *w;
	unsigned long win;

	if (!atomic_dec_and_test(&s->nr_vmas))
		return;

	/* The session's last mapping is gone with its PTEs: unpin the file. */
	mutex_lock(&s->lock);
	if (!atomic_read(&s->nr_vmas)) {
		xa_for_each(&s->base, win, w)
			cowmap_forget_bases(s, win, w, COWMAP_WIN_ALL);
	}
	mutex_unlock(&s->lock);
}

static const struct vm_operations_struct cowmap_vm_ops = {
	.open = cowmap_vm_open,
	.close = cowmap_vm_close,
	.fault = cowmap_fault,
	.pfn_mkwrite = cowmap_pfn_mkwrite,
};

int cowmap_mmap(struct file *file, struct vm_area_struct *vma)
{
	return cowmap_mmap_session(cowmap_file_session(file), vma);
}

/* A mapping of session @s (NULL: not attached), of its fd or of a view. */
int cowmap_mmap_session(struct cowmap_session *s, struct vm_area_struct *vma)
{
	/*
	 * A private mapping would give the process anonymous copies that the
	 * session never sees, and a COW mapping cannot be VM_PFNMAP. (MAYSHARE:
	 * the core drops VM_SHARED from a read-only MAP_SHARED mapping of an fd
	 * opened without write access.)
	 */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	/* A mapping past the largest file offset: as for a regular file. */
	if (vma->vm_end - vma->vm_start > MAX_LFS_FILESIZE ||
	    vma->vm_pgoff > (MAX_LFS_FILESIZE - (vma->vm_end - vma->vm_start)) >> PAGE_SHIFT)
		return -EOVERFLOW;

	if (!s)
		return -ENODEV;
	/*
	 * The mapping shows the backing file's bytes: they must not run from
	 * a file on a noexec mount, as with mmap(2) of the file itself
	 * (do_mmap(); path_noexec() is not exported). Nor later: no
	 * mprotect(PROT_EXEC) either.
	 */
	if ((s->backing->f_path.mnt->mnt_flags & MNT_NOEXEC) ||
	    (s->backing->f_path.mnt->mnt_sb->s_iflags & SB_I_NOEXEC)) {
		if (vma->vm_flags & VM_EXEC)
			return -EPERM;
		cowmap_vm_flags_clear(vma, VM_MAYEXEC);
	}

	cowmap_vm_flags_set(vma, VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &cowmap_vm_ops;
	vma->vm_private_data = s;
	/* The core calls ->open for copies and splits, not for this VMA. */
	cowmap_vm_open(vma);
	return 0;
}

/*
 * The backing file was modified by someone: unmap base pages that are no
 * longer the file's (truncated, hole-punched, invalidated by direct I/O or
 * by a network filesystem), and everything past the new end of file, so
 * the next access refaults. Private pages past the end are kept (they hold
 * the session's changes) but not mapped: the session's view ends where the
 * file ends. Costs a look at every pinned page: never run in the context
 * of the file's writers (cowmap_revalidate()). Under @lock.
 */
static void cowmap_walk_bases(struct cowmap_session *s)
{
	unsigned long win, bits, mask, zap;
	struct cowmap_base_win *w;
	pgoff_t eof, bpg, idx;
	unsigned int i;

	eof = cowmap_eof_pgoff(s);
	cowmap_zap(s, eof, 0);	/* 0: to the end */
	bpg = cowmap_base_pgoff(s);
	if (s->own_size && bpg != s->base_pg_seen) {
		/* Zero pages and base pages around the base's end change. */
		cowmap_zap(s, min(bpg, s->base_pg_seen), 0);
		s->base_pg_seen = bpg;
	}
	xa_for_each(&s->base, win, w) {
		bits = w->present;
		mask = 0;
		zap = 0;
		while (bits) {
			i = __ffs(bits);
			bits &= ~BIT(i);
			idx = win * COWMAP_FAULT_AROUND + i;
			/* Decide once: the file may change again. */
			if (idx < bpg && cowmap_base_valid(s, w->page[i]))
				continue;
			/*
			 * Past @bpg too, if the file shrank after @eof was
			 * read: the pin may hold the folio's last reference.
			 */
			if (idx < eof)
				zap |= BIT(i);
			mask |= BIT(i);
		}
		cowmap_zap_bases(s, win, zap);
		s->base_invalidations += hweight_long(mask);
		cowmap_forget_bases(s, win, w, mask);
	}
}

/*
 * Catch up with the changes of the backing file counted (s->mod_gen) since
 * the session last looked: its size. @full: also walk the pinned pages
 * (cowmap_walk_bases()), once per change. The fsnotify handler only counts
 * the change and queues the walk to a work item; a fault, a view access
 * and status catch up first, so they never act on what the file was.
 * Under @lock.
 */
void cowmap_revalidate(struct cowmap_session *s, bool full)
{
	int gen;

	lockdep_assert_held(&s->lock);
	if (s->dead)
		return;
	gen = cowmap_mod_gen(s);
	if (gen != s->gen_seen) {
		s->gen_seen = gen;
		cowmap_sync_size(s);
	}
	if (full && gen != s->gen_walked) {
		s->gen_walked = gen;
		cowmap_walk_bases(s);
	}
}

/* For the work item queued by a change of the file (session.c). */
void cowmap_invalidate_base(struct cowmap_session *s)
{
	mutex_lock(&s->lock);
	cowmap_revalidate(s, true);
	mutex_unlock(&s->lock);
}

/*
 * Without @lock, in the fsnotify handler when the file shrank (@shrunk) or
 * for COWMAP_IOC_REFRESH: if the base's end moved down (a truncation),
 * unmap the session's pages from there on at once, so an access past the
 * new end gets SIGBUS as with any mapping of the file. The cost is the
 * unmapped range's, not the pinned pages'. @shrunk: the file's end moved
 * down since the handler last looked, whatever this session last saw (it
 * is not told of growth: pages past its @end_seen may be mapped). In a
 * session with its own size the pages around the base's end change either
 * way (zeros past it). A fault that mapped pages while this ran catches it
 * itself (cowmap_fault_recheck()); the pins themselves go in the walk.
 * @inode: the session's inode (a reference held by the caller).
 */
void cowmap_notice_size(struct cowmap_session *s, struct inode *inode,
			bool shrunk)
{
	pgoff_t bpg = cowmap_base_pgoff(s);
	pgoff_t old = atomic_long_xchg(&s->end_seen, bpg);

	if (bpg < old || shrunk || (bpg != old && READ_ONCE(s->own_size))) {
		/* As cowmap_zap(), for a write fault mapping meanwhile. */
		cowmap_unmap_begin(s, min(bpg, old), 0);
		unmap_mapping_pages(inode->i_mapping, min(bpg, old), 0, false);
	}
}

/*
 * The file changed while a fault held @lock: the handler's zap may have run
 * before the fault set its PTEs. Unmap what the fault's windows (pages
 * @first to @end) may show that is no longer the file's, or past its end.
 */
static void cowmap_fault_recheck(struct cowmap_session *s, pgoff_t first,
				 pgoff_t end)
{
	pgoff_t bpg = cowmap_base_pgoff(s), idx;
	struct page *page;

	cowmap_revalidate(s, false);
	cowmap_zap(s, cowmap_eof_pgoff(s), 0);
	for (idx = first; idx < end; idx++) {
		page = cowmap_base_page(s, idx);
		if (!page || (idx < bpg && cowmap_base_valid(s, page)))
			continue;
		cowmap_zap(s, idx, 1);
		cowmap_forget_base(s, idx);
		s->base_invalidations++;
	}
}

/*
 * COWMAP_IOC_REFRESH: look at the backing file again now, for changes no
 * fsnotify event reports (another NFS client changed it). The filesystem
 * revalidates the file's attributes (AT_STATX_FORCE_SYNC; NFS asks the
 * server), a one-byte read lets it drop cached pages of a file that
 * changed (NFS does that in its read path), and then every pinned page
 * that left the page cache is unmapped, so the next access reads the file
 * as it is now. No file I/O under @lock. *@invalidated: pages unmapped.
 */
int cowmap_refresh(struct cowmap_session *s, u64 *invalidated)
{
	struct file *f = s->backing;
	struct kstat stat;
	loff_t pos = 0;
	ssize_t n;
	u64 before;
	char byte;
	int ret;

	ret = vfs_getattr(&f->f_path, &stat, STATX_BASIC_STATS,
			  AT_STATX_FORCE_SYNC);
	if (ret)
		return ret;
	if (!(f->f_flags & O_DIRECT) && i_size_read(file_inode(f)) > 0) {
		n = kernel_read(f, &byte, 1, &pos);
		/* EINTR and friends: the caller was killed; I/O errors count. */
		if (n < 0 && n != -EINVAL)
			return n;
	}
	atomic_inc(&s->mod_gen);
	smp_mb__after_atomic();	/* as in the fsnotify handler */
	cowmap_watch_saw_end(s);
	cowmap_notice_size(s, s->inode, false);
	mutex_lock(&s->lock);
	before = s->base_invalidations;
	cowmap_revalidate(s, true);
	*invalidated = s->base_invalidations - before;
	mutex_unlock(&s->lock);
	return 0;
}

/*
 * For a read through a view: the page that shows @pgoff, the session's own
 * or the backing file's, with a reference the caller drops with
 * put_page(). ERR_PTR(-ENXIO) past the end of the file. Under @s->lock;
 * the caller copies from it after dropping the lock.
 */
struct page *cowmap_read_page(struct cowmap_session *s, pgoff_t pgoff,
			      bool *priv)
{
	struct page *page;
	void *e;

	lockdep_assert_held(&s->lock);
	cowmap_revalidate(s, false);
	if (pgoff >= cowmap_eof_pgoff(s))
		return ERR_PTR(-ENXIO);
	e = xa_load(&s->pages, pgoff);
	*priv = e;
	if (e) {
		page = cowmap_entry_priv(e);
		get_page(page);
		return page;
	}
	page = cowmap_base_page(s, pgoff);
	if (page && cowmap_base_valid(s, page) && pgoff < cowmap_base_pgoff(s)) {
		folio_get(page_folio(page));
		return page;
	}
	return cowmap_base_or_zero(s, pgoff);
}

/*
 * The session's bytes from @pos to the end of its page read as zeros from
 * now on (a new end of file, or the old end before a growth): a private
 * page gets the tail zeroed (its twin too, so nothing is recorded there);
 * a base page that shows bytes past @pos becomes private first, without a
 * twin: it holds what the journal has. Under @lock.
 */
int cowmap_cut_page(struct cowmap_session *s, loff_t pos)
{
	pgoff_t pgoff = pos >> PAGE_SHIFT;
	size_t off = offset_in_page(pos);
	struct cowmap_page *cp;
	bool made;
	void *e;

	lockdep_assert_held(&s->lock);
	if (!off)
		return 0;
	e = xa_load(&s->pages, pgoff);
	made = !e;
	if (e && cowmap_entry_bare(e)) {
		/* No twin, no mark: only the page's tail to clear. */
		memzero_page(cowmap_entry_priv(e), off, PAGE_SIZE - off);
		return 0;
	}
	cp = e;
	if (!cp) {
		/* Past the base, the page shows zeros already. */
		if (pgoff >= cowmap_base_pgoff(s))
			return 0;
		cp = cowmap_prepare_write(s, pgoff, NULL);
		if (IS_ERR(cp))
			return PTR_ERR(cp);
	}
	memzero_page(cp->priv, off, PAGE_SIZE - off);
	if (cp->twin && made)
		cowmap_drop_twin(s, cp);
	else if (cp->twin)
		memzero_page(cp->twin, off, PAGE_SIZE - off);
	/* It holds the cut, which the file does not have: it stays. */
	cp->unconfirmed = false;
	cowmap_bare_page(s, pgoff, cp);
	return 0;
}

/* A shrink: drop the session's pages from @from on. Under @lock. */
void cowmap_drop_past(struct cowmap_session *s, pgoff_t from)
{
	struct cowmap_base_win *w;
	unsigned long idx;
	void *e;

	lockdep_assert_held(&s->lock);
	cowmap_zap(s, from, 0);
	xa_for_each_start(&s->pages, idx, e, from) {
		xa_erase(&s->pages, idx);
		cowmap_destroy_entry(s, e);
	}
	xa_for_each_start(&s->base, idx, w, COWMAP_WIN(from)) {
		unsigned long mask = COWMAP_WIN_ALL;

		if (idx == COWMAP_WIN(from))
			mask &= ~(BIT(COWMAP_SLOT(from)) - 1);
		cowmap_forget_bases(s, idx, w, mask);
	}
}

/*
 * For a write through a view: the session's private page of @pgoff, with
 * a twin of its content as of before this write, exactly as a store
 * through a mapping makes it. The caller writes it before dropping
 * @s->lock. ERR_PTR(-ENXIO) past the end of the file, -ENOSPC at a page
 * limit, -ENOMEM.
 */
struct page *cowmap_write_page(struct cowmap_session *s, pgoff_t pgoff)
{
	u64 hits = s->limit_hits;
	struct cowmap_page *cp;

	lockdep_assert_held(&s->lock);
	cowmap_revalidate(s, false);
	if (pgoff >= cowmap_eof_pgoff(s))
		return ERR_PTR(-ENXIO);
	cp = cowmap_prepare_write(s, pgoff, NULL);
	if (IS_ERR(cp))
		return ERR_PTR(s->limit_hits != hits ? -ENOSPC : PTR_ERR(cp));
	/* It holds the session's bytes now, not only the file's. */
	cp->unconfirmed = false;
	return cp->priv;
}

/* A committed page: forget its twin, so its next write is tracked again. */
void cowmap_drop_twin(struct cowmap_session *s, struct cowmap_page *cp)
{
	lockdep_assert_held(&s->lock);
	cowmap_free_page(s, cp->twin);
	cp->twin = NULL;
	s->nr_twins--;
	cp->unconfirmed = false;
}

/*
 * Teardown (no VMA is left), or a discard, which unmapped everything
 * first: no PTE points at any of these pages.
 */
void cowmap_free_pages(struct cowmap_session *s)
{
	struct cowmap_base_win *w;
	unsigned long idx;
	void *e;

	xa_for_each(&s->pages, idx, e)
		cowmap_destroy_entry(s, e);
	xa_destroy(&s->pages);

	/*
	 * Each window leaves ->base before it is freed (after a grace
	 * period): cowmap_base_pinned() may look without the lock.
	 */
	xa_for_each(&s->base, idx, w)
		cowmap_forget_bases(s, idx, w, COWMAP_WIN_ALL);
	xa_destroy(&s->base);
}
