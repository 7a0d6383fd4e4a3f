// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench row 1: first write to a clean page. See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "cowbench.h"

/* ---- row 1: first write to a clean page ---- */

static int w_map(struct run *r, enum phase ph, int session, int flags)
{
	switch (ph) {
	case SETUP:
		return map_setup(r, C.wfd, session, flags, C.write_size);
	case SLICE:
		write_pages(r->p + r->first * PG, r->n);
		return 0;
	case DONE:
		map_done(r, C.write_size);
		/* MAP_SHARED dirtied the cache: clean it, for the next round. */
		if (flags == MAP_SHARED && !session) {
			fsync(C.wfd);
			C.wdirty = 1;
		}
		return 0;
	default:
		return EINVAL;
	}
}

int w_cowmap(struct run *r, enum phase ph)
{
	return w_map(r, ph, 1, MAP_SHARED);
}

int w_private(struct run *r, enum phase ph)
{
	return w_map(r, ph, 0, MAP_PRIVATE);
}

int w_shared(struct run *r, enum phase ph)
{
	return w_map(r, ph, 0, MAP_SHARED);
}

/* An anonymous copy of the write file: the setup of rows 1c and 1d. */
static uint8_t *anon_copy(void)
{
	uint8_t *p = map_anon(C.write_size);

	if (!p)
		return NULL;
	for (size_t off = 0; off < C.write_size; ) {
		ssize_t n = pread(C.wfd, p + off, C.write_size - off, off);

		if (n <= 0) {
			munmap(p, C.write_size);
			errno = n < 0 ? errno : EIO;
			return NULL;
		}
		off += n;
	}
	return p;
}

/*
 * The seed project's tracking without a page-table editor: a private
 * anonymous copy of the file, PROT_READ; the SIGSEGV handler saves the page
 * (the twin) to a save area and makes it writable.
 */
static struct {
	uint8_t *base, *save;
	struct sigaction old;
} segv;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
	uint8_t *a = (uint8_t *)((uintptr_t)si->si_addr & ~(PG - 1));

	if (a < segv.base || a >= segv.base + C.write_size) {
		signal(sig, SIG_DFL);
		return;		/* refaults with the default action */
	}
	memcpy(segv.save + (a - segv.base), a, PG);
	mprotect(a, PG, PROT_READ | PROT_WRITE);
}

int w_sigsegv(struct run *r, enum phase ph)
{
	struct sigaction sa = { .sa_sigaction = segv_handler,
				.sa_flags = SA_SIGINFO };
	uint64_t t0;

	switch (ph) {
	case SETUP:
		t0 = now_ns();
		segv.base = anon_copy();
		if (!segv.base)
			return errno;
		segv.save = map_anon(C.write_size);
		if (!segv.save || mprotect(segv.base, C.write_size, PROT_READ)) {
			munmap(segv.base, C.write_size);
			return errno;
		}
		r->m.x[X_SETUP] = (double)(now_ns() - t0) / r->pages;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGSEGV, &sa, &segv.old);
		return 0;
	case SLICE:
		write_pages(segv.base + r->first * PG, r->n);
		return 0;
	case DONE:
		sigaction(SIGSEGV, &segv.old, NULL);
		munmap(segv.base, C.write_size);
		munmap(segv.save, C.write_size);
		return 0;
	default:
		return EINVAL;
	}
}

/*
 * userfaultfd write-protect on an anonymous copy: a handler thread saves
 * the page (the twin) and removes the protection, which wakes the writer.
 * The sliced groups run on one CPU, so writer and handler share it: under
 * TCG a wake-up across vCPUs costs milliseconds (about 4.6 ms per page
 * against 0.16 ms on one vCPU, measured once), which says nothing about uffd.
 */
static struct {
	int uffd, stop[2];
	uint8_t *base, *save;
	pthread_t th;
} uf = { .uffd = -1, .stop = { -1, -1 } };

static void *uffd_thread(void *arg)
{
	struct uffd_msg msg[16];

	for (;;) {
		struct pollfd pf[2] = { { uf.uffd, POLLIN, 0 },
					{ uf.stop[0], POLLIN, 0 } };
		ssize_t n;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		n = read(uf.uffd, msg, sizeof(msg));
		if (n < 0)
			continue;	/* EAGAIN */
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			uint64_t a = msg[i].arg.pagefault.address & ~(PG - 1);
			struct uffdio_writeprotect wp = {
				.range = { a, PG }, .mode = 0 };

			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			memcpy(uf.save + (a - (uintptr_t)uf.base),
			       (void *)(uintptr_t)a, PG);
			if (ioctl(uf.uffd, UFFDIO_WRITEPROTECT, &wp))
				perror("cowbench: UFFDIO_WRITEPROTECT");
		}
	}
	return NULL;
}

static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		close(fd);
		errno = EOPNOTSUPP;
		return -1;
	}
	return fd;
}

static int uffd_register_wp(int uffd, void *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { (uintptr_t)p, len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -1;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return 0;
}

static void uffd_teardown(void)
{
	if (uf.stop[0] >= 0) {
		close(uf.stop[0]);
		close(uf.stop[1]);
	}
	if (uf.uffd >= 0)
		close(uf.uffd);
	if (uf.save)
		munmap(uf.save, C.write_size);
	if (uf.base)
		munmap(uf.base, C.write_size);
	uf.uffd = uf.stop[0] = uf.stop[1] = -1;
	uf.base = uf.save = NULL;
}

int w_uffd(struct run *r, enum phase ph)
{
	struct uffdio_writeprotect wp;
	uint64_t t0;
	int err;

	switch (ph) {
	case SETUP:
		t0 = now_ns();
		uf.base = anon_copy();
		if (!uf.base)
			return errno;
		uf.save = map_anon(C.write_size);
		uf.uffd = uffd_open();
		wp = (struct uffdio_writeprotect){
			.range = { (uintptr_t)uf.base, C.write_size },
			.mode = UFFDIO_WRITEPROTECT_MODE_WP };
		if (!uf.save || uf.uffd < 0 || pipe2(uf.stop, O_CLOEXEC) ||
		    uffd_register_wp(uf.uffd, uf.base, C.write_size) ||
		    ioctl(uf.uffd, UFFDIO_WRITEPROTECT, &wp)) {
			err = errno;
			uffd_teardown();
			return err;
		}
		err = pthread_create(&uf.th, NULL, uffd_thread, NULL);
		if (err) {
			uffd_teardown();
			return err;
		}
		r->m.x[X_SETUP] = (double)(now_ns() - t0) / r->pages;
		return 0;
	case SLICE:
		write_pages(uf.base + r->first * PG, r->n);
		return 0;
	case DONE:
		if (write(uf.stop[1], "x", 1) != 1)
			die("pipe");
		pthread_join(uf.th, NULL);
		uffd_teardown();
		return 0;
	default:
		return EINVAL;
	}
}

/* Can an ext4 file mapping be registered for uffd-wp at all? (errno or 0) */
int uffd_probe_file(void)
{
	void *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, C.wfd, 0);
	int fd, err = 0;

	if (p == MAP_FAILED)
		return errno;
	fd = uffd_open();
	if (fd < 0 || uffd_register_wp(fd, p, PG))
		err = errno;
	if (fd >= 0)
		close(fd);
	munmap(p, PG);
	return err;
}
