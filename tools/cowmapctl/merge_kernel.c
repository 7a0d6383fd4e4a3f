// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl merge --session: the kernel merge (COWMAP_IOC_MERGE).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowmapctl.h"

/* Expected vs found of a kernel conflict report, from the first difference. */
static void show_kconflict(const struct cowmap_conflict *k)
{
	uint32_t rest = k->length - k->diff_at;
	const char *more = k->diff_at + k->shown < k->length ? "..." : "";

	if (!k->length) {
		/* A size record (offset: the size it wanted): no bytes to show. */
		printf("    a size record: the file's size is neither its old size nor %llu,\n"
		       "    or the bytes it cuts differ\n", (unsigned long long)k->offset);
		return;
	}
	/* The kernel shows bytes from the first one that is not the old one. */
	printf("    first difference at +%u\n    expected \"", k->diff_at);
	put_escaped(stdout, k->expected, k->shown);
	printf("%s\" (", more);
	put_hex(stdout, k->expected, k->shown);
	printf("%s)\n", more);
	if (!k->shown) {
		printf("    found    nothing (the file ends before offset %llu)\n",
		       (unsigned long long)(k->offset + k->diff_at));
		return;
	}
	printf("    found    \"");
	put_escaped(stdout, k->found, k->shown);
	printf("%s\" (", more);
	put_hex(stdout, k->found, k->shown);
	printf("%s)%s\n", more, k->shown < rest && k->shown < COWMAP_CONFLICT_SHOW ?
	       " [range runs past the end of the file]" : "");
}

int kernel_merge(struct kmerge *km)
{
	struct cowmap_conflict *cf = NULL;
	struct cowmap_status st, after;
	struct cowmap_merge m;
	unsigned int max = 0;
	int fd, target, c, ret = EX_ERR, trimmed = 0;
	const char *policy = km->skip ? "skip" : km->force ? "force" : "all-or-nothing";
	int dry = !!(km->flags & COWMAP_MERGE_DRY_RUN);

	target = open(km->into, O_RDWR | O_CLOEXEC);
	if (target < 0) {
		err("%s: %s", km->into, strerror(errno));
		return EX_ERR;
	}
	fd = adopt_or_fail(km->id);
	if (fd < 0) {
		close(target);
		return EX_ERR;
	}
	c = cowmap_status(fd, &st);
	if (c) {
		fail("status", c);
		goto out;
	}
	/* Room for every conflict the journal could have (bounded). */
	max = st.journal_records < 65536 ? st.journal_records : 65536;
	cf = calloc(max ? max : 1, sizeof(*cf));
	if (!cf) {
		err("%s", strerror(ENOMEM));
		goto out;
	}
	c = cowmap_merge(fd, target, km->flags, cf, max, &m);
	if (c < 0) {
		if (c == -EBADF)
			err("merge into %s: %s (the file must be opened read-write)",
			    km->into, strerror(-c));
		else
			fail("merge", c);
		goto out;
	}
	if (km->trim && !dry) {
		c = cowmap_trim(fd);
		if (!c)
			c = cowmap_status(fd, &after);
		if (c) {
			fail("trim", c);
			goto out;
		}
		trimmed = 1;
	}
	ret = m.conflicts && !km->force ? EX_CONFLICT : EX_OK;
	if (json_out) {
		struct json_object *o = jobj(), *a = jarr();

		jput_id(o, "session_id", km->id);
		jput_str(o, "into", km->into);
		jput_str(o, "policy", policy);
		jput_bool(o, "dry_run", dry);
		jput_bool(o, "fsync", km->flags & COWMAP_MERGE_FSYNC);
		jput_u64(o, "records", m.records);
		jput_u64(o, "applied", m.applied);
		jput_u64(o, "already", m.already);
		jput_u64(o, "conflicts", m.conflicts);
		jput_bool(o, "written", m.written);
		jput_u64(o, "bytes_written", m.written);
		for (uint64_t i = 0; i < m.conflicts && i < max; i++) {
			const struct cowmap_conflict *k = &cf[i];
			struct json_object *j = jobj();

			jput_id(j, "session_id", k->session_id);
			jput_id(j, "seq", k->seq);
			jput_id(j, "offset", k->offset);
			jput_u64(j, "length", k->length);
			jput_u64(j, "diff_at", k->diff_at);
			jput_bool(j, "forced", km->force);
			jput_bytes(j, "expected", k->expected, k->shown);
			jput_bytes(j, "found", k->found, k->shown);
			jappend(a, j);
		}
		jput(o, "conflict_reports", a);
		jput_bool(o, "trimmed", trimmed);
		if (trimmed)
			jput_u64(o, "records_left", after.journal_records);
		else
			jput(o, "records_left", NULL);
		jput_int(o, "exit", ret);
		jprint(o);
		goto out;
	}
	for (uint64_t i = 0; i < m.conflicts && i < max; i++) {
		const struct cowmap_conflict *k = &cf[i];

		printf("%-9s session=%llu seq=%llu offset=%llu length=%u\n",
		       km->force ? "forced" : "conflict", (unsigned long long)k->session_id,
		       (unsigned long long)k->seq, (unsigned long long)k->offset, k->length);
		show_kconflict(k);
	}
	if (m.conflicts > max)
		printf("... and %llu more conflicts\n", (unsigned long long)(m.conflicts - max));
	printf("merge: session %" PRIu64 ", %llu record%s: %llu applied, %llu already applied, "
	       "%llu conflict%s", km->id, (unsigned long long)m.records,
	       m.records == 1 ? "" : "s", (unsigned long long)m.applied,
	       (unsigned long long)m.already, (unsigned long long)m.conflicts,
	       m.conflicts == 1 ? "" : "s");
	if (km->force && m.conflicts)
		printf(" (%llu forced)", (unsigned long long)m.conflicts);
	if (dry)
		printf("; dry run, nothing written");
	else if (m.written)
		printf("; %llu bytes written to %s%s", (unsigned long long)m.written, km->into,
		       km->flags & COWMAP_MERGE_FSYNC ? " (synced)" : "");
	else if (m.conflicts && !km->skip && !km->force)
		printf("; nothing written (all-or-nothing)");
	else
		printf("; nothing to write");
	if (trimmed) {
		if (after.journal_records || after.twin_pages)
			printf("; trimmed, %llu record%s left",
			       (unsigned long long)after.journal_records,
			       after.journal_records == 1 ? "" : "s");
		else
			printf("; trimmed, session freed");
	}
	putchar('\n');
out:
	free(cf);
	close(fd);	/* an orphan again if records remain */
	close(target);
	return ret;
}
