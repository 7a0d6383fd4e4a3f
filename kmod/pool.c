// SPDX-License-Identifier: GPL-2.0
/*
 * A pool of the pages sessions free, for their next copies (issue 17).
 *
 * A private page or a twin is always overwritten whole before anything
 * reads it: a copy of the file's page, of the private page, or zeros. A
 * page from the allocator comes zeroed all the same when init_on_alloc is
 * on (Debian's default), so a first write paid two zeroings on top of its
 * copies, where MAP_PRIVATE pays one zeroing and one copy. The pages that
 * sessions free (at a commit, a discard, a close) go to this pool instead,
 * and the next copy of any session of the same memory cgroup takes its
 * pages from there, as they are.
 *
 * A page stays charged to the cgroup it was allocated in. The pool is
 * therefore one list per cgroup: a list_lru of batches of pages, each
 * batch allocated, and charged, in the cgroup its pages are charged to,
 * which puts it on that cgroup's list. Only a session of that cgroup takes
 * the pages again, and the cgroup's own reclaim drains its list through
 * the shrinker ("cowmap-pool"). When a cgroup goes, its lists and its
 * charges move to the parent together.
 *
 * At most max_pool_pages pages are kept, in all users' sessions; a page
 * anybody else holds a reference to is not kept, nor anything when
 * init_on_free asks for freed memory to be wiped at once. Users are not charged for
 * what is in the pool (their max_user_pages counts what their sessions
 * hold); their cgroups are.
 */
#include <linux/delay.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/nodemask.h>
#include <linux/page-flags.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include "compat.h"
#include "cowmap.h"

/* 256 bytes a batch (on 64-bit). */
#define COWMAP_POOL_BATCH	29

struct cowmap_pool_batch {
	struct list_head node;		/* on its cgroup's list */
	unsigned int nr;		/* >= 1 while on a list */
	struct page *page[COWMAP_POOL_BATCH];
};

static struct list_lru cowmap_pool_lru;
static bool cowmap_pool_ready;
static struct shrinker *cowmap_pool_shrinker;
static struct kmem_cache *cowmap_pool_cache;
static atomic_long_t cowmap_pool_nr = ATOMIC_LONG_INIT(0);

/* 0 at load: an eighth of max_total_pages. */
static unsigned long cowmap_max_pool_pages;
module_param_named(max_pool_pages, cowmap_max_pool_pages, ulong, 0644);
MODULE_PARM_DESC(max_pool_pages,
		 "Freed pages kept for the next copies, in all (0 at load: max_total_pages / 8)");

module_param_cb(pool_pages, &cowmap_ro_long_ops, &cowmap_pool_nr, 0444);
MODULE_PARM_DESC(pool_pages, "Freed pages the pool keeps now (read-only)");

/* Under the list's lock: the last page of the first batch. */
struct cowmap_pool_take {
	struct page *page;
	struct cowmap_pool_batch *empty;	/* off the list, to free */
};

static enum lru_status cowmap_pool_take_cb(COWMAP_LRU_CB_ARGS)
{
	struct cowmap_pool_batch *b = container_of(item, typeof(*b), node);
	struct cowmap_pool_take *t = arg;

	t->page = b->page[--b->nr];
	if (b->nr)
		return LRU_SKIP;
	list_lru_isolate(list, item);
	t->empty = b;
	return LRU_REMOVED;
}

/**
 * cowmap_pool_get() - a page from the pool of @s's memory cgroup
 * @s: the session the page is for
 *
 * The page holds what its last session left in it: the caller overwrites
 * it whole before anyone can read it. Any context that may take a
 * spinlock.
 *
 * Return: the page, charged to @s's cgroup, or NULL if its pool is empty.
 */
struct page *cowmap_pool_get(struct cowmap_session *s)
{
	struct cowmap_pool_take t = { };
	unsigned long one;
	int nid;

	if (!atomic_long_read(&cowmap_pool_nr))
		return NULL;
	/* This node's list first, then the others. */
	one = 1;
	list_lru_walk_one(&cowmap_pool_lru, numa_node_id(), s->memcg,
			  cowmap_pool_take_cb, &t, &one);
	for_each_node_state(nid, N_MEMORY) {
		if (t.page)
			break;
		if (nid == numa_node_id())
			continue;
		one = 1;
		list_lru_walk_one(&cowmap_pool_lru, nid, s->memcg,
				  cowmap_pool_take_cb, &t, &one);
	}
	if (!t.page)
		return NULL;
	atomic_long_dec(&cowmap_pool_nr);
	if (t.empty)
		kmem_cache_free(cowmap_pool_cache, t.empty);
	/* Poisoned while it waited: the page allocator's, not ours. */
	if (unlikely(PageHWPoison(t.page))) {
		put_page(t.page);
		return NULL;
	}
	return t.page;
}

/* Under the list's lock: a place in the first batch that has one. */
static enum lru_status cowmap_pool_give_cb(COWMAP_LRU_CB_ARGS)
{
	struct cowmap_pool_batch *b = container_of(item, typeof(*b), node);
	struct page **page = arg;

	if (!*page)			/* given already (no LRU_STOP in 6.1) */
		return LRU_SKIP;
	if (b->nr == COWMAP_POOL_BATCH)
		return LRU_ROTATE;	/* full: behind the others */
	b->page[b->nr++] = *page;
	*page = NULL;
	return LRU_SKIP;
}

/**
 * cowmap_pool_put() - keep a page @s frees for the next copy
 * @s: the session that frees it (its cgroup is the page's)
 * @page: the page, which @s no longer uses, nor maps anywhere
 *
 * Any context that may take a spinlock: a batch is allocated without
 * sleeping.
 *
 * Return: true if the pool took @page (and the caller's reference), false
 * if the caller frees it: the pool is full, somebody else still holds a
 * reference, or no batch could be allocated.
 */
bool cowmap_pool_put(struct cowmap_session *s, struct page *page)
{
	struct cowmap_pool_batch *b;
	struct mem_cgroup *old;
	struct page *p = page;
	unsigned long two = 2;

	/* Pairs with the release in cowmap_shrinker_create(): lists ready. */
	if (!smp_load_acquire(&cowmap_pool_ready))
		return false;
	/* init_on_free: what is freed is to be wiped now, not kept. */
	if (want_init_on_free())
		return false;
	/* As the network's page_pool recycles: nobody else has it. */
	if (page_ref_count(page) != 1 || PageHWPoison(page))
		return false;
	if ((unsigned long)atomic_long_inc_return(&cowmap_pool_nr) >
	    READ_ONCE(cowmap_max_pool_pages))
		goto full;
	/* The first batch with room, among the first two of the list. */
	list_lru_walk_one(&cowmap_pool_lru, numa_node_id(), s->memcg,
			  cowmap_pool_give_cb, &p, &two);
	if (!p)
		return true;

	/* In @s's cgroup, which puts it on that cgroup's list. */
	old = set_active_memcg(s->memcg);
	b = kmem_cache_alloc_lru(cowmap_pool_cache, &cowmap_pool_lru,
				 GFP_NOWAIT | __GFP_NOWARN);
	set_active_memcg(old);
	if (!b)
		goto full;
	INIT_LIST_HEAD(&b->node);
	b->nr = 1;
	b->page[0] = page;
	cowmap_lru_add(&cowmap_pool_lru, &b->node);
	return true;
full:
	atomic_long_dec(&cowmap_pool_nr);
	return false;
}

/* Free the pages of the batches on @list, and the batches. */
static unsigned long cowmap_pool_free(struct list_head *list)
{
	struct cowmap_pool_batch *b, *tmp;
	unsigned long pages = 0;
	unsigned int i;

	list_for_each_entry_safe(b, tmp, list, node) {
		for (i = 0; i < b->nr; i++)
			put_page(b->page[i]);
		pages += b->nr;
		kmem_cache_free(cowmap_pool_cache, b);
	}
	atomic_long_sub(pages, &cowmap_pool_nr);
	return pages;
}

static enum lru_status cowmap_pool_drain_cb(COWMAP_LRU_CB_ARGS)
{
	list_lru_isolate_move(list, item, arg);
	return LRU_REMOVED;
}

/*
 * The shrinker counts pages as full batches would hold them (the lists
 * count batches), and frees whole batches.
 */
static unsigned long cowmap_pool_count(struct shrinker *sh,
				       struct shrink_control *sc)
{
	unsigned long n = 0;
	int nid;

	/* Pairs with the release in cowmap_shrinker_create(): lists ready. */
	if (!smp_load_acquire(&cowmap_pool_ready))
		return SHRINK_EMPTY;
	for_each_node_state(nid, N_MEMORY)
		n += list_lru_count_one(&cowmap_pool_lru, nid, sc->memcg);
	return n ? n * COWMAP_POOL_BATCH : SHRINK_EMPTY;
}

static unsigned long cowmap_pool_scan(struct shrinker *sh,
				      struct shrink_control *sc)
{
	unsigned long walk = DIV_ROUND_UP(sc->nr_to_scan, COWMAP_POOL_BATCH);
	unsigned long done;
	LIST_HEAD(dispose);
	int nid;

	for_each_node_state(nid, N_MEMORY)
		if (walk)
			list_lru_walk_one(&cowmap_pool_lru, nid, sc->memcg,
					  cowmap_pool_drain_cb, &dispose, &walk);
	done = cowmap_pool_free(&dispose);
	sc->nr_scanned = done;
	return done ?: SHRINK_STOP;
}

int cowmap_pool_init(void)
{
	if (!cowmap_max_pool_pages)
		cowmap_max_pool_pages = cowmap_max_total_pages / 8;
	cowmap_pool_cache = KMEM_CACHE(cowmap_pool_batch, SLAB_ACCOUNT);
	if (!cowmap_pool_cache)
		return -ENOMEM;
	cowmap_pool_shrinker = cowmap_shrinker_create(cowmap_pool_count,
						      cowmap_pool_scan,
						      "cowmap-pool",
						      &cowmap_pool_lru,
						      &cowmap_pool_ready);
	if (!cowmap_pool_shrinker) {
		kmem_cache_destroy(cowmap_pool_cache);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Unload: no session is left to put or take a page, and the shrinker goes
 * first, so that no scan holds batches off the lists. A cgroup on its way
 * out may be passed over by the walk until its lists have moved to its
 * parent (6.13+): walk again for a while.
 */
void cowmap_pool_exit(void)
{
	unsigned long all;
	int nid, tries;

	cowmap_shrinker_unregister(cowmap_pool_shrinker);
	for (tries = 0; tries < 100 && atomic_long_read(&cowmap_pool_nr);
	     tries++) {
		LIST_HEAD(dispose);

		if (tries)
			msleep(20);
		for_each_node(nid) {
			all = ULONG_MAX;
			list_lru_walk_node(&cowmap_pool_lru, nid,
					   cowmap_pool_drain_cb, &dispose, &all);
		}
		cowmap_pool_free(&dispose);
	}
	WARN_ON_ONCE(atomic_long_read(&cowmap_pool_nr));
	list_lru_destroy(&cowmap_pool_lru);
	kmem_cache_destroy(cowmap_pool_cache);
}
