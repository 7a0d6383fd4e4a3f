// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/*
 * example: libcowmap in one page (see libcowmap(3)).
 *
 *   cc -o example example.c $(pkg-config --cflags --libs cowmap)
 *   ./example FILE
 *
 * Opens a session on FILE and upper-cases the letters of its first 64
 * bytes through the session's mapping: FILE does not change. Commits,
 * asks the kernel about the session over netlink, reads the journal back,
 * merges it into FILE in the kernel, and discards the session. Every
 * libcowmap call returns a negative errno on failure.
 */
#define _POSIX_C_SOURCE 200809L	/* pread(); builds with -std=c11 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcowmap.h>

static int check(int ret, const char *what)
{
	if (ret < 0) {
		fprintf(stderr, "example: %s: %s\n", what, strerror(-ret));
		exit(1);
	}
	return ret;
}

int main(int argc, char **argv)
{
	struct cowmap_merge result;
	struct cowmap_dump_iter *it;
	struct cowmap_nl_session s;
	struct cowmap_nl *nl;
	struct cowmap_rec rec;
	char before[64], after[64];
	uint64_t id;
	struct stat st;
	size_t n;
	char *map;
	int fd, file, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: example FILE\n");
		return 2;
	}
	/* A session: /dev/cowmap, the API handshake, attached to the file. */
	fd = check(cowmap_session_open(argv[1], NULL, &id), "session");
	file = open(argv[1], O_RDWR);	/* read-write: the merge writes it */
	if (file < 0 || fstat(file, &st) || st.st_size == 0) {
		perror(argv[1]);
		return 1;
	}
	n = st.st_size < 64 ? st.st_size : 64;

	/* Write through the mapping: private copy-on-write pages. */
	check(cowmap_map(fd, st.st_size, 0, PROT_READ | PROT_WRITE, (void **)&map), "mmap");
	for (size_t i = 0; i < n; i++)
		map[i] = toupper((unsigned char)map[i]);
	memcpy(after, map, n);
	cowmap_unmap(map, st.st_size);
	if (pread(file, before, n, 0) != (ssize_t)n)
		return 1;
	printf("session %llu sees \"%.*s\"\n", (unsigned long long)id, (int)n, after);
	printf("the file holds   \"%.*s\"\n", (int)n, before);

	/* Commit: each run of changed bytes becomes a journal record. */
	ret = check(cowmap_commit(fd, 0, NULL), "commit");
	printf("committed %d record%s\n", ret, ret == 1 ? "" : "s");

	/* Netlink: what the kernel says about the session (no fd needed). */
	if (cowmap_nl_open(&nl) == 0) {
		check(cowmap_nl_session_get(nl, id, &s), "netlink session_get");
		printf("netlink: session %llu is %s, %llu records, file %s\n",
		       (unsigned long long)s.session_id,
		       s.state == COWMAP_STATE_ATTACHED ? "attached" : "orphaned",
		       (unsigned long long)s.records, s.path ? s.path : "?");
		cowmap_nl_close(nl);
	}

	/* The journal: old and new bytes of every record. */
	check(cowmap_dump_begin(fd, 0, &it), "dump");
	while ((ret = cowmap_dump_next(it, &rec, NULL)) == 1)
		printf("record seq=%llu offset=%llu length=%u old=\"%.*s\" new=\"%.*s\"\n",
		       (unsigned long long)rec.seq, (unsigned long long)rec.offset,
		       rec.length, (int)rec.length, (const char *)rec.old_bytes,
		       (int)rec.length, (const char *)rec.new_bytes);
	check(ret, "dump");
	cowmap_dump_end(it);

	/* Merge into the file in the kernel; conflicts would be reported. */
	ret = check(cowmap_merge(fd, file, COWMAP_MERGE_FSYNC, NULL, 0, &result), "merge");
	printf("merge: %llu applied, %llu already applied, %d conflicts, %llu bytes written\n",
	       (unsigned long long)result.applied, (unsigned long long)result.already,
	       ret, (unsigned long long)result.written);
	if (pread(file, before, n, 0) != (ssize_t)n)
		return 1;
	printf("the file holds   \"%.*s\"\n", (int)n, before);

	/* Discard before closing, or the session would stay as an orphan. */
	check(cowmap_discard(fd), "discard");
	close(fd);
	close(file);
	return 0;
}
