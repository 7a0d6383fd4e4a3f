// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench rows 7 and 8: kernel and offline merge. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libcowmap.h>		/* the offline merge (row 8) */
#include "cowbench.h"

/* ---- rows 7, 8: merge ---- */

/*
 * C.mrecords records of 8 bytes at random 16-byte slots of the write file
 * (never adjacent: one record each), committed once in one session, the
 * journal also dumped to a log file. The target is a copy of the write
 * file. A round is a few pairs, in random order: a merge of all the
 * records into the target (old bytes to new), then at once the pwrite
 * baseline, which writes the old bytes back into the same extents (the
 * same bytes, the same, dirty, cached pages, right after). Pairs: MERGE
 * kernel merges (row 7), one offline merge without fsync (8a), one durable
 * offline merge whose baseline is the pwrites and an fsync (8b); the fsync
 * also writes back what the pairs before left dirty, as the merge's does.
 * Values are ns per record. No warm-up round: a pass of thousands of
 * records amortises the translation of the code by TCG.
 */
enum { MT_KERNEL, MT_PWRITE, MT_OFFLINE, MT_DURABLE, MT_PWRITE_SYNC, MT_N };

static struct {
	int sfd;
	size_t k;
	uint64_t *off;			/* sorted */
	char log[512];
	char path[512];
	int fd;
	int round;			/* the round of ns[], n[] */
	int err;
	uint64_t ns[MT_N];
	size_t n[MT_N];			/* records */
} MG = { .sfd = -1, .fd = -1, .round = -1 };

static int merge_pwrite(int fd, int new);

int merge_setup(void)
{
	size_t slots = C.write_size / 16, k = C.mrecords, n = 0;
	struct cowmap_commit cc = { 0 };
	uint8_t *bits, *p;
	uint64_t t0;
	int lfd;

	if (k < 1 || k > slots / 4)
		return EINVAL;
	bits = calloc(slots / 8 + 1, 1);
	MG.off = malloc(k * sizeof(*MG.off));
	if (!bits || !MG.off)
		return ENOMEM;
	for (size_t i = 0; i < k; ) {
		size_t sl = rnd() % slots;

		if (!(bits[sl / 8] & (1 << (sl % 8)))) {
			bits[sl / 8] |= 1 << (sl % 8);
			i++;
		}
	}
	for (size_t sl = 0; sl < slots; sl++)
		if (bits[sl / 8] & (1 << (sl % 8)))
			MG.off[n++] = sl * 16;
	free(bits);
	MG.k = k;

	MG.sfd = cm_session(C.wfd);
	if (MG.sfd < 0)
		return errno;
	p = mmap(NULL, C.write_size, PROT_READ | PROT_WRITE, MAP_SHARED, MG.sfd, 0);
	if (p == MAP_FAILED)
		return errno;
	for (size_t i = 0; i < k; i++)
		*(volatile uint64_t *)(p + MG.off[i]) = ~file_word(MG.off[i]);
	munmap(p, C.write_size);
	t0 = now_ns();
	if (ioctl(MG.sfd, COWMAP_IOC_COMMIT, &cc))
		return errno;
	fact("merge_commit_ns_per_record", (double)(now_ns() - t0) / k);
	if (cc.records != k)
		return EPROTO;
	fact("merge_records", k);

	snprintf(MG.log, sizeof(MG.log), "%s/merge.log", C.dir);
	lfd = open(MG.log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (lfd < 0)
		return errno;
	if (dump_to(MG.sfd, lfd) < 0 || fsync(lfd)) {
		close(lfd);
		return errno;
	}
	close(lfd);
	MG.fd = make_file(MG.path, sizeof(MG.path), C.dir, "merge.dat", C.write_size);
	/* The state every merge starts from: the old bytes, in dirty pages. */
	return merge_pwrite(MG.fd, 0);
}

void merge_teardown(void)
{
	if (MG.fd >= 0) {
		close(MG.fd);
		unlink(MG.path);
	}
	MG.fd = -1;
	if (MG.log[0])
		unlink(MG.log);
	if (MG.sfd >= 0)
		cm_close(MG.sfd);
	MG.sfd = -1;
	free(MG.off);
	MG.off = NULL;
}

/* pwrite every record's new (or old) 8 bytes into @fd. */
static int merge_pwrite(int fd, int new)
{
	for (size_t i = 0; i < MG.k; i++) {
		uint64_t w = file_word(MG.off[i]);

		if (new)
			w = ~w;
		if (pwrite(fd, &w, 8, MG.off[i]) != 8)
			return errno ? errno : EIO;
	}
	return 0;
}

static int merge_offline(const char *target, unsigned int flags)
{
	struct cowmap_merger_stats st = { 0 };
	struct cowmap_merger *m;
	int ret;

	ret = cowmap_merger_new(NULL, NULL, &m);
	if (ret)
		return -ret;
	ret = cowmap_merger_add_log(m, MG.log);
	if (ret >= 0)
		ret = cowmap_merger_run(m, target, NULL, COWMAP_POLICY_ALL_OR_NOTHING,
					COWMAP_MERGER_ANY_IDENTITY | flags, &st);
	cowmap_merger_free(m);
	if (ret < 0)
		return -ret;
	return ret || st.applied != MG.k ? EPROTO : 0;
}

/* One pair: merge of kind @t (old to new), then the pwrite back (timed). */
static int merge_pair(int t)
{
	struct cowmap_merge m = { .target_fd = MG.fd };
	int base = t == MT_DURABLE ? MT_PWRITE_SYNC : MT_PWRITE;
	uint64_t t0 = now_ns();
	int err = 0;

	if (t == MT_KERNEL) {
		if (ioctl(MG.sfd, COWMAP_IOC_MERGE, &m))
			err = errno;
		else if (m.applied != MG.k || m.conflicts)
			err = EPROTO;
	} else {
		err = merge_offline(MG.path, t == MT_OFFLINE ? COWMAP_MERGER_NO_SYNC : 0);
	}
	MG.ns[t] += now_ns() - t0;
	MG.n[t] += MG.k;
	if (err)
		return err;
	t0 = now_ns();
	err = merge_pwrite(MG.fd, 0);
	if (!err && base == MT_PWRITE_SYNC && fsync(MG.fd))
		err = errno;
	MG.ns[base] += now_ns() - t0;
	MG.n[base] += MG.k;
	return err;
}

static void merge_round(void)
{
	int pairs[MERGE_PAIRS + 2], np = 0;

	memset(MG.ns, 0, sizeof(MG.ns));
	memset(MG.n, 0, sizeof(MG.n));
	for (int i = 0; i < MERGE_PAIRS; i++)
		pairs[np++] = MT_KERNEL;
	pairs[np++] = MT_OFFLINE;
	pairs[np++] = MT_DURABLE;
	for (int i = np - 1; i > 0; i--) {
		int j = rnd() % (i + 1), t = pairs[i];

		pairs[i] = pairs[j];
		pairs[j] = t;
	}
	for (int i = 0; i < np && !MG.err; i++)
		MG.err = merge_pair(pairs[i]);
}

static int mg_variant(struct run *r, enum phase ph, int t)
{
	if (ph != WHOLE)
		return EINVAL;
	/* The first variant called in a round runs the round's pairs. */
	if (MG.round != cur_round) {
		MG.round = cur_round;
		merge_round();
	}
	if (MG.err)
		return MG.err;
	r->m.value = (double)MG.ns[t] / MG.n[t];
	return 0;
}

int mg_kernel(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_KERNEL); }
int mg_pwrite(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_PWRITE); }
int mg_offline(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_OFFLINE); }
int mg_durable(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_DURABLE); }
int mg_pwrite_sync(struct run *r, enum phase ph) { return mg_variant(r, ph, MT_PWRITE_SYNC); }
