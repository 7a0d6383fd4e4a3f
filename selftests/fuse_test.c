// SPDX-License-Identifier: GPL-2.0
/*
 * A backing file whose server never answers (issue 16, item 7): a session
 * on a file of a FUSE filesystem served by a tiny server in a child process
 * (written against /dev/fuse, no libfuse), which on command holds every
 * FUSE_READ instead of answering it. While a fault, a view read or a view
 * write of the session waits for such a READ, the session's status, a
 * commit, netlink's session list, lookup and journal dump, and another
 * process using the session's cached and private pages must all finish
 * (s->lock is not held across the backing file's I/O), and the waiting
 * process must die of SIGKILL. Afterwards nothing is left: the module's
 * page counters are back where they were.
 *
 * Waits are bounded (WAIT_MS, far above anything a working kernel needs
 * under TCG), never timed: a failure is "did not finish in 20 s".
 */
#include <libmnl/libmnl.h>
#include <linux/fuse.h>
#include <linux/genetlink.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"
#include "cowmap_nl.h"

#define NPAGES		64
#define FSIZE		(NPAGES * PG)
#define WAIT_MS		20000
#define FILE_INO	2
#define MAX_HELD	64
#define SRV_BUF		(256 * 1024)	/* > max_write + the request header */

/* What the server and the test share (MAP_SHARED). */
struct srv_shared {
	int hold;		/* hold FUSE_READs instead of answering them */
	int reads;		/* READs seen */
	int held;		/* READs held now */
	int interrupts;		/* FUSE_INTERRUPTs seen (a hung server ignores them) */
	int opens;		/* FUSE_OPENs seen */
};

/* ------------------------------------------------------------- server --- */

struct held_read {
	uint64_t unique, off;
	uint32_t size;
};

static void srv_reply(int fd, uint64_t unique, int err, const void *p, size_t n)
{
	struct fuse_out_header h = {
		.len = sizeof(h) + (err ? 0 : n),
		.error = -err,
		.unique = unique,
	};
	struct iovec iov[2] = {
		{ &h, sizeof(h) },
		{ (void *)p, err ? 0 : n },
	};

	/* ENOENT: the kernel gave the request up meanwhile (killed waiter). */
	if (writev(fd, iov, 2) < 0 && errno != ENOENT)
		_exit(3);
}

static void srv_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->blksize = PG;
	if (ino == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0644;
		a->nlink = 1;
		a->size = FSIZE;
		a->blocks = FSIZE / 512;
	}
}

static void srv_answer_read(int fd, uint64_t unique, uint64_t off, uint32_t size)
{
	static uint8_t data[SRV_BUF];
	size_t n = off >= FSIZE ? 0 : FSIZE - off;

	if (n > size)
		n = size;
	if (n > sizeof(data))
		n = sizeof(data);
	cm_fill(data, off, n, 0);
	srv_reply(fd, unique, 0, data, n);
}

static void srv_handle(int fd, struct srv_shared *sh, int ev, const void *buf,
		       struct held_read *held, int *nheld)
{
	const struct fuse_in_header *in = buf;
	const void *arg = in + 1;
	union {
		struct fuse_init_out init;
		struct fuse_entry_out entry;
		struct fuse_attr_out attr;
		struct fuse_open_out open;
		struct fuse_statfs_out st;
	} o;
	uint64_t ino = in->nodeid;

	memset(&o, 0, sizeof(o));
	switch (in->opcode) {
	case FUSE_INIT: {
		const struct fuse_init_in *ii = arg;

		if (ii->major != FUSE_KERNEL_VERSION) {
			srv_reply(fd, in->unique, EPROTO, NULL, 0);
			return;
		}
		o.init.major = FUSE_KERNEL_VERSION;
		o.init.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ?
			       ii->minor : FUSE_KERNEL_MINOR_VERSION;
		/* Readahead as libfuse does it: asynchronous READs. */
		o.init.flags = ii->flags & FUSE_ASYNC_READ;
		o.init.max_readahead = 4 * PG;
		o.init.max_background = 16;
		o.init.congestion_threshold = 12;
		o.init.max_write = 32 * PG;
		o.init.time_gran = 1;
		srv_reply(fd, in->unique, 0, &o.init, sizeof(o.init));
		return;
	}
	case FUSE_LOOKUP:
		if (ino != FUSE_ROOT_ID || strcmp(arg, "data")) {
			srv_reply(fd, in->unique, ENOENT, NULL, 0);
			return;
		}
		o.entry.nodeid = FILE_INO;
		o.entry.generation = 1;
		o.entry.entry_valid = 3600;
		o.entry.attr_valid = 3600;
		srv_attr(&o.entry.attr, FILE_INO);
		srv_reply(fd, in->unique, 0, &o.entry, sizeof(o.entry));
		return;
	case FUSE_GETATTR:
		o.attr.attr_valid = 3600;
		srv_attr(&o.attr.attr, ino);
		srv_reply(fd, in->unique, 0, &o.attr, sizeof(o.attr));
		return;
	case FUSE_OPEN:
		__atomic_add_fetch(&sh->opens, 1, __ATOMIC_SEQ_CST);
		/* No FOPEN_KEEP_CACHE (libfuse's default): an open drops the cache. */
		o.open.fh = ino;
		srv_reply(fd, in->unique, 0, &o.open, sizeof(o.open));
		return;
	case FUSE_OPENDIR:
		o.open.fh = ino;
		srv_reply(fd, in->unique, 0, &o.open, sizeof(o.open));
		return;
	case FUSE_READ: {
		const struct fuse_read_in *r = arg;

		__atomic_add_fetch(&sh->reads, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&sh->hold, __ATOMIC_SEQ_CST) && *nheld < MAX_HELD) {
			held[(*nheld)++] = (struct held_read){ in->unique, r->offset, r->size };
			__atomic_add_fetch(&sh->held, 1, __ATOMIC_SEQ_CST);
			if (write(ev, "r", 1) != 1)
				_exit(3);
			return;
		}
		srv_answer_read(fd, in->unique, r->offset, r->size);
		return;
	}
	case FUSE_STATFS:
		o.st.st.bsize = PG;
		o.st.st.frsize = PG;
		o.st.st.namelen = 255;
		srv_reply(fd, in->unique, 0, &o.st, sizeof(o.st));
		return;
	case FUSE_READDIR:
		srv_reply(fd, in->unique, 0, NULL, 0);
		return;
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_FLUSH:
	case FUSE_FSYNC:
	case FUSE_ACCESS:
	case FUSE_DESTROY:
		srv_reply(fd, in->unique, 0, NULL, 0);
		return;
	case FUSE_INTERRUPT:
		/* A server that never answers ignores these too. */
		__atomic_add_fetch(&sh->interrupts, 1, __ATOMIC_SEQ_CST);
		return;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
		return;		/* no answer */
	default:
		srv_reply(fd, in->unique, ENOSYS, NULL, 0);
		return;
	}
}

/*
 * The server: requests from @fd, commands from @cmd ('a': answer the held
 * READs, acknowledged with 'A' on @ack; 'q' or EOF: exit). Every READ held
 * is told on @ev ('r').
 */
static void __attribute__((noreturn))
srv_main(int fd, int cmd, int ack, int ev, struct srv_shared *sh)
{
	static struct held_read held[MAX_HELD];
	static char buf[SRV_BUF];
	int nheld = 0;

	for (;;) {
		struct pollfd p[2] = { { fd, POLLIN, 0 }, { cmd, POLLIN, 0 } };
		ssize_t n;
		char c;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(2);
		}
		if (p[1].revents) {
			if (read(cmd, &c, 1) != 1 || c == 'q')
				_exit(0);
			if (c == 'a') {
				for (int i = 0; i < nheld; i++)
					srv_answer_read(fd, held[i].unique, held[i].off,
							held[i].size);
				nheld = 0;
				__atomic_store_n(&sh->held, 0, __ATOMIC_SEQ_CST);
				if (write(ack, "A", 1) != 1)
					_exit(3);
			}
			continue;
		}
		if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			_exit(0);	/* unmounted and gone, or aborted */
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			/* ENOENT: interrupted before we read it; ENODEV: unmounted. */
			if (errno == ENOENT || errno == EINTR || errno == EAGAIN)
				continue;
			_exit(errno == ENODEV ? 0 : 2);
		}
		if ((size_t)n < sizeof(struct fuse_in_header))
			_exit(2);
		srv_handle(fd, sh, ev, buf, held, &nheld);
	}
}

/* ------------------------------------------------------------ netlink --- */

/* Sessions seen with id @want (*data: struct nl_seen). */
struct nl_seen {
	uint64_t want;
	int found, messages;
};

static int nl_sess_attr_cb(const struct nlattr *a, void *data)
{
	struct nl_seen *s = data;

	if (mnl_attr_get_type(a) == COWMAP_A_SESSION_ID &&
	    mnl_attr_get_u64(a) == s->want)
		s->found++;
	return MNL_CB_OK;
}

static int nl_sess_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nl_seen *s = data;

	s->messages++;
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), nl_sess_attr_cb, data);
}

/*
 * What an administrator's "cowmapctl list" and "dump" do: the session list
 * (a dump), the session by id, its journal (a dump). 0 if all three
 * answered and named session @id.
 */
static int nl_look_at(uint64_t id)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nl_seen seen = { .want = id };
	struct nlmsghdr *nlh;
	struct nl nl;
	int ret;

	if (cm_nl_open(&nl))
		return 10;
	ret = cm_nl_talk(&nl, req(&nl, buf, nl.family, COWMAP_CMD_SESSION_GET,
				  NLM_F_DUMP), nl_sess_cb, &seen, false);
	if (ret || seen.found != 1)
		return 11;
	seen.found = 0;
	nlh = req(&nl, buf, nl.family, COWMAP_CMD_SESSION_GET, 0);
	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, id);
	if (cm_nl_talk(&nl, nlh, nl_sess_cb, &seen, false) || seen.found != 1)
		return 12;
	seen.messages = 0;
	nlh = req(&nl, buf, nl.family, COWMAP_CMD_LOG_GET, NLM_F_DUMP);
	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, id);
	if (cm_nl_talk(&nl, nlh, nl_sess_cb, &seen, false) || !seen.messages)
		return 13;
	mnl_socket_close(nl.sk);
	return 0;
}

/* ------------------------------------------------------------ fixture --- */

FIXTURE(fuse) {
	bool ready;
	char why[160];
	char mnt[256], path[300];
	bool mounted;
	pid_t srv;
	int cmd, ack, ev;		/* the test's ends of the pipes */
	struct srv_shared *sh;
	int file;			/* the FUSE file, read-only */
	int fd;				/* the session */
	int view, view_rw;		/* views of it */
	uint8_t *m;			/* the test's own mapping of the session */
	uint64_t id;
	long pages0, base0;		/* the module's counters before */
	pid_t kids[16];			/* children still to wait for */
	int nkids;
};

FIXTURE_SETUP(fuse)
{
	struct cowmap_view v = { .flags = COWMAP_VIEW_CLOEXEC };
	struct cowmap_status st;
	int cmdp[2], ackp[2], evp[2];
	char opts[128];
	int dev;

	/* A server gone (unmounted) makes the last 'q' an EPIPE, not a death. */
	signal(SIGPIPE, SIG_IGN);
	self->fd = self->file = self->view = self->view_rw = -1;
	self->cmd = self->ack = self->ev = -1;
	self->pages0 = cm_param_get("pages_in_use");
	self->base0 = cm_param_get("base_pages_in_use");
	dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		snprintf(self->why, sizeof(self->why),
			 "/dev/fuse: %s (no FUSE in this kernel: CONFIG_FUSE_FS, fuse.ko)",
			 strerror(errno));
		return;
	}
	snprintf(self->mnt, sizeof(self->mnt), "%s/fusemnt.%d", cm_dir(), getpid());
	snprintf(self->path, sizeof(self->path), "%s/data", self->mnt);
	ASSERT_EQ(0, mkdir(self->mnt, 0755));
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", dev);
	if (mount("cowmap-test", self->mnt, "fuse", MS_NOSUID | MS_NODEV, opts)) {
		int err = errno;

		snprintf(self->why, sizeof(self->why), "mount -t fuse: %s",
			 strerror(err));
		close(dev);
		rmdir(self->mnt);
		ASSERT_EQ(ENODEV, err);	/* no fuse filesystem: skip */
		return;
	}
	self->mounted = true;
	self->sh = mmap(NULL, PG, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->sh);
	ASSERT_EQ(0, pipe2(cmdp, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(ackp, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(evp, O_CLOEXEC));
	self->srv = fork();
	ASSERT_LE(0, self->srv);
	if (!self->srv) {
		close(cmdp[1]);
		close(ackp[0]);
		close(evp[0]);
		srv_main(dev, cmdp[0], ackp[1], evp[1], self->sh);
	}
	close(dev);
	close(cmdp[0]);
	close(ackp[1]);
	close(evp[1]);
	self->cmd = cmdp[1];
	self->ack = ackp[0];
	self->ev = evp[0];

	self->file = open(self->path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, self->file) TH_LOG("%s: %s", self->path, strerror(errno));
	self->fd = cm_session(self->file);
	ASSERT_LE(0, self->fd) TH_LOG("attach to the FUSE file: %s", strerror(errno));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	self->id = st.session_id;
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_VIEW, &v));
	self->view = v.fd;
	v.flags = COWMAP_VIEW_CLOEXEC | COWMAP_VIEW_RDWR;
	v.fd = 0;
	ASSERT_EQ(0, ioctl(self->fd, COWMAP_IOC_VIEW, &v));
	self->view_rw = v.fd;
	self->m = cm_map(self->fd, FSIZE, 0);
	ASSERT_NE(MAP_FAILED, self->m);
	/*
	 * Page 0 written (read from the server first, which answers): the
	 * session has a private page, a commit has a record to make, and
	 * another user of the session has a page that needs no file I/O.
	 */
	ASSERT_TRUE(cm_is_pat(self->m, 0, 16, 0));
	self->m[0] = 0xa5;
	self->ready = true;
}

/* Wait for @pid up to @ms: its status as cm_wait() gives it, -1 if it lives. */
static int wait_bounded(pid_t pid, int ms)
{
	int pfd = syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p = { pfd, POLLIN, 0 };

	if (pfd < 0)
		return -2;
	if (poll(&p, 1, ms) != 1) {
		close(pfd);
		return -1;
	}
	close(pfd);
	return cm_wait(pid);
}

static void forget_kid(FIXTURE_DATA(fuse) *self, pid_t pid)
{
	for (int i = 0; i < self->nkids; i++)
		if (self->kids[i] == pid)
			self->kids[i] = self->kids[--self->nkids];
}

/* Tell the server to answer what it holds, and to hold nothing more. */
static int srv_release(FIXTURE_DATA(fuse) *self)
{
	struct pollfd p = { self->ack, POLLIN, 0 };
	char c;

	__atomic_store_n(&self->sh->hold, 0, __ATOMIC_SEQ_CST);
	if (write(self->cmd, "a", 1) != 1)
		return -1;
	if (poll(&p, 1, WAIT_MS) != 1 || read(self->ack, &c, 1) != 1)
		return -1;
	return c == 'A' ? 0 : -1;
}

FIXTURE_TEARDOWN(fuse)
{
	pid_t pid;

	if (!self->mounted)
		return;
	/* Whatever a failed case left waiting: the server answers now. */
	EXPECT_EQ(0, srv_release(self));
	while (self->nkids) {
		pid = self->kids[0];
		if (wait_bounded(pid, WAIT_MS) == -1) {
			TH_LOG("child %d still there after the server answered", pid);
			_metadata->passed = 0;
			kill(pid, SIGKILL);
			/* The server goes, the connection is aborted: it ends. */
			kill(self->srv, SIGKILL);
			cm_wait(pid);
		}
		forget_kid(self, pid);
	}
	if (self->m && self->m != MAP_FAILED)
		munmap(self->m, FSIZE);
	if (self->view >= 0)
		close(self->view);
	if (self->view_rw >= 0)
		close(self->view_rw);
	if (self->fd >= 0)
		cm_end(self->fd);
	if (self->file >= 0)
		close(self->file);
	EXPECT_EQ(0, umount2(self->mnt, MNT_DETACH));
	if (self->cmd >= 0 && write(self->cmd, "q", 1) != 1)
		kill(self->srv, SIGKILL);
	if (wait_bounded(self->srv, WAIT_MS) == -1) {
		kill(self->srv, SIGKILL);
		cm_wait(self->srv);
	}
	rmdir(self->mnt);
	/* Nothing kept: sessions go with their last reference (allow a moment). */
	for (int i = 0; i < 100; i++) {
		if (cm_param_get("pages_in_use") == self->pages0 &&
		    cm_param_get("base_pages_in_use") == self->base0)
			break;
		usleep(50000);
	}
	EXPECT_EQ(self->pages0, cm_param_get("pages_in_use"));
	EXPECT_EQ(self->base0, cm_param_get("base_pages_in_use"));
}

/* ---------------------------------------------------- what children do --- */

enum op {
	OP_FAULT_READ,		/* read a page through a new mapping */
	OP_FAULT_WRITE,		/* first write to a page, new mapping */
	OP_MKWRITE,		/* write through the test's mapping (PTE present) */
	OP_VIEW_PREAD,		/* pread(2) of a view */
	OP_VIEW_PWRITE,		/* pwrite(2) of part of a page to a view */
	OP_PLAIN_PREAD,		/* pread(2) of the FUSE file itself */
	OP_SHRINK,		/* COWMAP_IOC_SET_SIZE down to page @pg */
	OP_STATUS,		/* COWMAP_IOC_STATUS */
	OP_COMMIT,		/* COWMAP_IOC_COMMIT: page 0's record */
	OP_NETLINK,		/* list, lookup, journal dump */
	OP_OTHER_USER,		/* another process: page 0 (private), read and write */
};

static int do_op(FIXTURE_DATA(fuse) *self, enum op op, long pg)
{
	off_t off = pg * PG;
	struct cowmap_status st;
	uint8_t buf[PG], *m;
	int r;

	switch (op) {
	case OP_FAULT_READ:
		m = cm_map(self->fd, FSIZE, 0);
		return m != MAP_FAILED && cm_is_pat(m + off, off, PG, 0) ? 0 : 1;
	case OP_FAULT_WRITE:
		m = cm_map(self->fd, FSIZE, 0);
		if (m == MAP_FAILED)
			return 1;
		m[off + 7] = 0x5a;
		return cm_is_pat(m + off, off, 7, 0) && m[off + 7] == 0x5a ? 0 : 2;
	case OP_MKWRITE:
		self->m[off + 7] = 0x5a;
		return cm_is_pat(self->m + off, off, 7, 0) ? 0 : 2;
	case OP_VIEW_PREAD:
		return pread(self->view, buf, PG, off) == PG &&
		       cm_is_pat(buf, off, PG, 0) ? 0 : 1;
	case OP_VIEW_PWRITE:
		return pwrite(self->view_rw, "xyz", 3, off + 100) == 3 ? 0 : 1;
	case OP_PLAIN_PREAD:
		return pread(self->file, buf, PG, off) == PG &&
		       cm_is_pat(buf, off, PG, 0) ? 0 : 1;
	case OP_SHRINK: {
		struct cowmap_size z = { .size = off };

		return ioctl(self->fd, COWMAP_IOC_SET_SIZE, &z) ? 1 : 0;
	}
	case OP_STATUS:
		return !cm_status(self->fd, &st) && st.session_id == self->id &&
		       st.private_pages >= 1 ? 0 : 1;
	case OP_COMMIT:
		r = cm_commit(self->fd, 0);
		return r >= 1 ? 0 : 1;
	case OP_NETLINK:
		return nl_look_at(self->id);
	case OP_OTHER_USER:
		m = cm_map(self->fd, PG, 0);
		if (m == MAP_FAILED || m[0] != 0xa5 || m[1] != cm_pat(1, 0))
			return 1;
		m[1] = 0x11;
		return 0;
	}
	return 99;
}

static pid_t spawn(FIXTURE_DATA(fuse) *self, enum op op, long pg)
{
	pid_t pid = fork();

	if (!pid)
		_exit(do_op(self, op, pg));
	if (pid > 0)
		self->kids[self->nkids++] = pid;
	return pid;
}

/* Wait until the server holds @n READs; false after WAIT_MS. */
static bool wait_held(FIXTURE_DATA(fuse) *self, int n)
{
	struct pollfd p = { self->ev, POLLIN, 0 };
	char c;

	for (int i = 0; i < WAIT_MS / 100; i++) {
		if (__atomic_load_n(&self->sh->held, __ATOMIC_SEQ_CST) >= n)
			return true;
		if (poll(&p, 1, 100) == 1 && read(self->ev, &c, 1) != 1)
			return false;
	}
	return false;
}

/* Is @pid asleep (S or D) in the kernel? It does nothing but its one call. */
static bool asleep(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

static const char *const op_name[] = {
	[OP_FAULT_READ] = "read fault", [OP_FAULT_WRITE] = "write fault",
	[OP_MKWRITE] = "write to a mapped page", [OP_VIEW_PREAD] = "view pread",
	[OP_VIEW_PWRITE] = "view pwrite", [OP_PLAIN_PREAD] = "pread of the file",
	[OP_SHRINK] = "COWMAP_IOC_SET_SIZE (shrink)",
	[OP_STATUS] = "COWMAP_IOC_STATUS", [OP_COMMIT] = "COWMAP_IOC_COMMIT",
	[OP_NETLINK] = "netlink list/lookup/dump", [OP_OTHER_USER] = "another user",
};

/*
 * Hold the server's READs, start @op on page @pg in a child and see it
 * wait for the server. Returns the child.
 */
static pid_t start_blocked(struct __test_metadata *_metadata,
			   FIXTURE_DATA(fuse) *self, enum op op, long pg)
{
	int held = __atomic_load_n(&self->sh->held, __ATOMIC_SEQ_CST);
	pid_t pid;

	__atomic_store_n(&self->sh->hold, 1, __ATOMIC_SEQ_CST);
	pid = spawn(self, op, pg);
	EXPECT_LT(0, pid);
	EXPECT_TRUE(wait_held(self, held + 1))
		TH_LOG("%s of page %ld: no READ reached the server", op_name[op], pg);
	/* Give the held READ's waiter time to be seen asleep (bounded). */
	for (int i = 0; i < WAIT_MS / 10 && !asleep(pid); i++)
		usleep(10000);
	EXPECT_TRUE(asleep(pid));
	return pid;
}

/*
 * While @blocked waits for the server: the session's status, a commit,
 * netlink and another process using the session all finish, and @blocked
 * still waits (they ran while it did).
 */
static void others_proceed(struct __test_metadata *_metadata,
			   FIXTURE_DATA(fuse) *self, pid_t blocked)
{
	static const enum op ops[] = { OP_STATUS, OP_COMMIT, OP_NETLINK, OP_OTHER_USER };
	pid_t pid[4];

	for (int i = 0; i < 4; i++)
		pid[i] = spawn(self, ops[i], 0);
	for (int i = 0; i < 4; i++) {
		int r = wait_bounded(pid[i], WAIT_MS);

		EXPECT_EQ(0, r) TH_LOG("%s while a READ is held: %s (%d)",
				      op_name[ops[i]],
				      r == -1 ? "did not finish in 20 s" : "failed", r);
		if (r != -1)
			forget_kid(self, pid[i]);
	}
	EXPECT_EQ(0, waitpid(blocked, NULL, WNOHANG));
}

/* SIGKILL @pid, which waits for the server: it must go. */
static void kill_blocked(struct __test_metadata *_metadata,
			 FIXTURE_DATA(fuse) *self, pid_t pid, enum op op)
{
	int r;

	ASSERT_EQ(0, kill(pid, SIGKILL));
	r = wait_bounded(pid, WAIT_MS);
	EXPECT_EQ(128 + SIGKILL, r)
		TH_LOG("%s waiting for the server, SIGKILLed: %s (%d)", op_name[op],
		       r == -1 ? "still there after 20 s" : "ended otherwise", r);
	if (r != -1)
		forget_kid(self, pid);
}

/* The blocked op finishes with the right bytes once the server answers. */
static void answer(struct __test_metadata *_metadata,
		   FIXTURE_DATA(fuse) *self, pid_t pid, enum op op)
{
	int r;

	ASSERT_EQ(0, srv_release(self));
	r = wait_bounded(pid, WAIT_MS);
	EXPECT_EQ(0, r) TH_LOG("%s after the server answered: %d", op_name[op], r);
	if (r != -1)
		forget_kid(self, pid);
}

/* The session still works for everyone: a status and a read of page @pg. */
static void still_works(struct __test_metadata *_metadata,
			FIXTURE_DATA(fuse) *self, long pg)
{
	pid_t pid;

	ASSERT_EQ(0, srv_release(self));
	pid = spawn(self, OP_STATUS, 0);
	EXPECT_EQ(0, wait_bounded(pid, WAIT_MS));
	forget_kid(self, pid);
	pid = spawn(self, OP_VIEW_PREAD, pg + 1);
	EXPECT_EQ(0, wait_bounded(pid, WAIT_MS));
	forget_kid(self, pid);
}

#define NEED_FUSE() do { \
	if (!self->ready) \
		SKIP(return, "%s", self->why); \
} while (0)

/*
 * The control: the server's hold works, and the kernel's own read of the
 * FUSE file waits killably (asynchronous readahead, a killable wait for
 * the page), the standard the session's reads are held to.
 */
TEST_F_TIMEOUT(fuse, plain_read_killable, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_PLAIN_PREAD, 40);
	kill_blocked(_metadata, self, pid, OP_PLAIN_PREAD);
}

/* A read fault waits for the server; everything else goes on; it completes. */
TEST_F_TIMEOUT(fuse, read_fault_held_others_proceed, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_FAULT_READ, 40);
	others_proceed(_metadata, self, pid);
	answer(_metadata, self, pid, OP_FAULT_READ);
}

TEST_F_TIMEOUT(fuse, read_fault_held_killable, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_FAULT_READ, 40);
	others_proceed(_metadata, self, pid);
	kill_blocked(_metadata, self, pid, OP_FAULT_READ);
	still_works(_metadata, self, 40);
}

/* The first write to a page never read: the same. */
TEST_F_TIMEOUT(fuse, write_fault_held_killable, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_FAULT_WRITE, 40);
	others_proceed(_metadata, self, pid);
	kill_blocked(_metadata, self, pid, OP_FAULT_WRITE);
	still_works(_metadata, self, 40);
}

TEST_F_TIMEOUT(fuse, write_fault_held_answered, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_FAULT_WRITE, 40);
	others_proceed(_metadata, self, pid);
	answer(_metadata, self, pid, OP_FAULT_WRITE);
}

/* pread(2) and pwrite(2) of a view. */
TEST_F_TIMEOUT(fuse, view_pread_held_killable, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_VIEW_PREAD, 40);
	others_proceed(_metadata, self, pid);
	kill_blocked(_metadata, self, pid, OP_VIEW_PREAD);
	still_works(_metadata, self, 40);
}

TEST_F_TIMEOUT(fuse, view_pwrite_held_killable, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_VIEW_PWRITE, 40);
	others_proceed(_metadata, self, pid);
	kill_blocked(_metadata, self, pid, OP_VIEW_PWRITE);
	still_works(_metadata, self, 40);
}

/* A shrink reads the pages it cuts (their CRC) before it takes the lock. */
TEST_F_TIMEOUT(fuse, shrink_held_killable, 300)
{
	pid_t pid;

	NEED_FUSE();
	pid = start_blocked(_metadata, self, OP_SHRINK, 40);
	others_proceed(_metadata, self, pid);
	kill_blocked(_metadata, self, pid, OP_SHRINK);
	still_works(_metadata, self, 40);
}

/*
 * A page the session read and maps, whose page-cache copy is then dropped
 * (another open(2) of a FUSE file without FOPEN_KEEP_CACHE invalidates
 * its cache, as libfuse's default does): the first write to it, through
 * the present read-only PTE (->pfn_mkwrite), reads the file again. That
 * read must not run under s->lock either.
 */
TEST_F_TIMEOUT(fuse, write_after_cache_dropped, 300)
{
	struct cowmap_status st;
	int opens, fd2;
	pid_t pid;

	NEED_FUSE();
	ASSERT_TRUE(cm_is_pat(self->m + 40 * PG, 40 * PG, PG, 0));
	ASSERT_EQ(0, cm_status(self->fd, &st));
	EXPECT_LE(1, st.base_pages);
	opens = __atomic_load_n(&self->sh->opens, __ATOMIC_SEQ_CST);
	fd2 = open(self->path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	close(fd2);
	ASSERT_EQ(opens + 1, __atomic_load_n(&self->sh->opens, __ATOMIC_SEQ_CST));
	/* The child inherits the test's mapping and its read-only PTE. */
	pid = start_blocked(_metadata, self, OP_MKWRITE, 40);
	others_proceed(_metadata, self, pid);
	kill_blocked(_metadata, self, pid, OP_MKWRITE);
	still_works(_metadata, self, 40);
}

TEST_HARNESS_MAIN
