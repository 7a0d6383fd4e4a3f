// SPDX-License-Identifier: GPL-2.0
/*
 * cowmap-demo write FILE NAME FIND REPLACE [--wait PATH]
 *
 * One writer of the demo (tools/demo): opens its own cowmap session on
 * FILE, replaces the first FIND with REPLACE (same length) through the
 * session's mapping, shows its view next to the file's, commits, writes its
 * session id to NAME.id and creates NAME.ready. With --wait it stays until
 * PATH exists, so that the session can be seen attached. Then it exits
 * without discarding: the session stays as an orphan, to be merged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libcowmap.h"

static const char *who = "demo";

static void die(const char *what, int err)
{
	fprintf(stderr, "cowmap-demo: %s: %s: %s\n", who, what, strerror(err));
	exit(1);
}

/* The line of @buf (@len bytes) around offset @off. */
static void show_line(const char *label, const char *buf, size_t len, size_t off)
{
	size_t a = off, b = off;

	while (a > 0 && buf[a - 1] != '\n')
		a--;
	while (b < len && buf[b] != '\n')
		b++;
	printf("[%-5s]   %-10s %.*s\n", who, label, (int)(b - a), buf + a);
}

static int cmd_write(int argc, char **argv)
{
	const char *file, *find, *repl, *wait = NULL;
	char idpath[300], *content;
	struct cowmap_commit c;
	struct stat st;
	uint64_t id;
	char *map, *at;
	size_t n;
	int fd, ffd, ret;
	FILE *f;

	if (argc == 8 && !strcmp(argv[6], "--wait"))
		wait = argv[7];
	else if (argc != 6)
		return 2;
	file = argv[2];
	who = argv[3];
	find = argv[4];
	repl = argv[5];
	n = strlen(find);
	if (!n || strlen(repl) != n) {
		fprintf(stderr, "cowmap-demo: FIND and REPLACE must have the same length\n");
		return 2;
	}

	ffd = open(file, O_RDONLY);
	if (ffd < 0 || fstat(ffd, &st))
		die(file, errno);
	content = calloc(1, st.st_size + 1);
	if (!content || pread(ffd, content, st.st_size, 0) != st.st_size)
		die(file, errno);
	at = strstr(content, find);
	if (!at) {
		fprintf(stderr, "cowmap-demo: %s: \"%s\" not in %s\n", who, find, file);
		return 1;
	}

	/* A session of our own: writes go to private copies of the pages. */
	fd = cowmap_session_open(file, NULL, &id);
	if (fd < 0)
		die("session", -fd);
	ret = cowmap_map(fd, st.st_size, 0, PROT_READ | PROT_WRITE, (void **)&map);
	if (ret)
		die("mmap", -ret);
	printf("[%-5s] pid %d, session %" PRIu64 ": writes \"%s\" over \"%s\" at offset %zu\n",
	       who, getpid(), id, repl, find, (size_t)(at - content));
	memcpy(map + (at - content), repl, n);
	show_line("I see:", map, st.st_size, at - content);
	if (pread(ffd, content, st.st_size, 0) != st.st_size)
		die(file, errno);
	show_line("the file:", content, st.st_size, at - content);

	ret = cowmap_commit(fd, 0, &c);
	if (ret < 0)
		die("commit", -ret);
	printf("[%-5s]   committed %u record%s (%llu journal bytes)\n", who, c.records,
	       c.records == 1 ? "" : "s", (unsigned long long)c.bytes);
	fflush(stdout);

	snprintf(idpath, sizeof(idpath), "%s.id", who);
	f = fopen(idpath, "w");
	if (!f || fprintf(f, "%" PRIu64 "\n", id) < 0 || fclose(f))
		die(idpath, errno);
	snprintf(idpath, sizeof(idpath), "%s.ready", who);
	close(open(idpath, O_WRONLY | O_CREAT, 0644));

	for (int i = 0; wait && access(wait, F_OK) && i < 1200; i++)
		usleep(50000);
	/* No discard: closing keeps the session, with its record, as an orphan. */
	munmap(map, st.st_size);
	close(fd);
	close(ffd);
	free(content);
	return 0;
}

int main(int argc, char **argv)
{
	int ret = 2;

	if (argc > 1 && !strcmp(argv[1], "write"))
		ret = cmd_write(argc, argv);
	if (ret == 2)
		fprintf(stderr, "usage: cowmap-demo write FILE NAME FIND REPLACE [--wait PATH]\n");
	return ret;
}
