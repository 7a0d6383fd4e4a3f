// SPDX-License-Identifier: GPL-2.0
/*
 * cowmap-demo FILE: several processes write to FILE through their own
 * cowmap sessions; each sees its own bytes, the file does not change.
 * Runs in the test VM (tools/demo); cowmapctl replaces it later.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/cowmap.h>

static void die(const char *what)
{
	fprintf(stderr, "cowmap-demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A new session on @file: open, handshake, attach. */
static int session(int file)
{
	struct cowmap_api api = { .api = COWMAP_API };
	struct cowmap_attach at = { .fd = file };
	int fd = open(COWMAP_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open " COWMAP_DEVICE_PATH);
	if (ioctl(fd, COWMAP_IOC_API, &api))
		die("API handshake");
	if (ioctl(fd, COWMAP_IOC_ATTACH, &at))
		die("attach");
	printf("  pid %d: session %llu, API %u\n", getpid(),
	       (unsigned long long)at.session_id, api.api);
	return fd;
}

static void show(const char *who, const char *buf, size_t len)
{
	printf("  %-28s \"%.*s\"\n", who, (int)len, buf);
}

/* Commit the session's writes, show what it recorded, then drop it all. */
static void commit_and_discard(int fd)
{
	struct cowmap_status st = { 0 };
	struct cowmap_commit c = { 0 };

	if (ioctl(fd, COWMAP_IOC_COMMIT, &c))
		die("commit");
	if (ioctl(fd, COWMAP_IOC_STATUS, &st))
		die("status");
	printf("  pid %d: session %llu: %llu private pages, %llu copies; commit: %u records, %llu journal bytes\n",
	       getpid(), (unsigned long long)st.session_id,
	       (unsigned long long)st.private_pages,
	       (unsigned long long)st.cow_copies, c.records,
	       (unsigned long long)c.bytes);
	/* cowmapctl will merge these; the demo leaves no orphan behind. */
	if (ioctl(fd, COWMAP_IOC_DISCARD, 0))
		die("discard");
}

/* One writer: its own session, a write at @off, a look at its view. */
static void writer(int file, size_t len, off_t off, const char *text)
{
	char who[64];
	int fd = session(file);
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (m == MAP_FAILED)
		die("mmap");
	memcpy(m + off, text, strlen(text));
	snprintf(who, sizeof(who), "pid %d sees:", getpid());
	show(who, m, len);
	munmap(m, len);
	commit_and_discard(fd);
	close(fd);
}

int main(int argc, char **argv)
{
	static const char *texts[] = { "xxx", "yyy", "zzz" };
	char buf[4096], who[64];
	struct stat st;
	int file, fd, pfd[2];
	ssize_t len;
	char *m, c;
	pid_t pid;

	if (argc != 2) {
		fprintf(stderr, "usage: cowmap-demo FILE\n");
		return 2;
	}
	file = open(argv[1], O_RDONLY);
	if (file < 0 || fstat(file, &st))
		die(argv[1]);
	len = pread(file, buf, sizeof(buf), 0);
	if (len <= 20)
		die("the file needs more than 20 bytes");
	printf("file %s before:\n", argv[1]);
	show("file:", buf, len);

	printf("\nthree processes, each with its own session, write at offset 15:\n");
	for (int i = 0; i < 3; i++) {
		pid = fork();
		if (pid == 0) {
			writer(file, len, 15, texts[i]);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	}

	printf("\na forked child shares its parent's session:\n");
	fd = session(file);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || pipe(pfd))
		die("mmap");
	memcpy(m + 2, "PARENT", 6);
	pid = fork();
	if (pid == 0) {
		memcpy(m + len - 8, "CHILD", 5);
		snprintf(who, sizeof(who), "child %d sees:", getpid());
		show(who, m, len);
		if (write(pfd[1], "x", 1) != 1)
			_exit(1);
		_exit(0);
	}
	if (read(pfd[0], &c, 1) != 1)
		die("pipe");
	waitpid(pid, NULL, 0);
	snprintf(who, sizeof(who), "parent %d sees:", getpid());
	show(who, m, len);
	munmap(m, len);
	commit_and_discard(fd);
	close(fd);

	printf("\nfile %s after all of that:\n", argv[1]);
	len = pread(file, buf, sizeof(buf), 0);
	show("file:", buf, len);
	return 0;
}
