// SPDX-License-Identifier: GPL-2.0
/*
 * cowbench row 3: N processes, each its own session (or private mapping). See cowbench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowbench.h"

/* ---- row 3: N processes, each its own session (or private mapping) ---- */

/*
 * SETUP forks the processes; each maps the first C.scale_size bytes of the
 * write file (its own session, or MAP_PRIVATE) and waits for commands. A
 * SLICE sends each its slice; they meet at a spinning barrier, so they
 * start together however late a wake-up comes, and report when they
 * started and ended. The slice's time is from the first start to the last
 * end: wake-ups are not counted.
 */
struct procset {
	int n;
	pid_t pid[MAX_PROCS];
	int cmd[MAX_PROCS];	/* write ends, one per process */
	int reply;		/* read end, shared */
	struct procshm {
		int arrived;
		int err[MAX_PROCS];
		uint64_t t0[MAX_PROCS], t1[MAX_PROCS];
		long flt[MAX_PROCS];
	} *sh;
};

struct proc_cmd {
	size_t first, n;	/* n == 0: exit */
};

static void proc_child(struct procset *ps, int k, int session, int cmd, int reply)
{
	struct run r = { .pages = C.scale_size / PG };
	struct proc_cmd c;
	long f0;

	ps->sh->err[k] = map_setup(&r, C.wfd, session,
				   session ? MAP_SHARED : MAP_PRIVATE, C.scale_size);
	if (write(reply, "r", 1) != 1)
		_exit(1);
	while (read(cmd, &c, sizeof(c)) == sizeof(c) && c.n) {
		__atomic_add_fetch(&ps->sh->arrived, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&ps->sh->arrived, __ATOMIC_SEQ_CST) < ps->n)
			;
		f0 = minflt();
		ps->sh->t0[k] = now_ns();
		if (!ps->sh->err[k])
			write_pages(r.p + c.first * PG, c.n);
		ps->sh->t1[k] = now_ns();
		ps->sh->flt[k] = minflt() - f0;
		if (write(reply, "d", 1) != 1)
			_exit(1);
	}
	if (!ps->sh->err[k])
		map_done(&r, C.scale_size);
	_exit(0);
}

static void procs_stop(struct procset *ps)
{
	struct proc_cmd quit = { 0, 0 };

	for (int i = 0; i < ps->n; i++) {
		if (write(ps->cmd[i], &quit, sizeof(quit)) != sizeof(quit))
			kill(ps->pid[i], SIGKILL);
		close(ps->cmd[i]);
	}
	for (int i = 0; i < ps->n; i++)
		waitpid(ps->pid[i], NULL, 0);
	close(ps->reply);
	munmap(ps->sh, sizeof(*ps->sh));
	free(ps);
}

static int procs(struct run *r, enum phase ph, int n, int session)
{
	struct procset *ps = r->priv;
	struct proc_cmd c = { r->first, r->n };
	uint64_t t0 = UINT64_MAX, t1 = 0;
	int reply[2], err = 0;
	char ch;

	switch (ph) {
	case SETUP:
		ps = calloc(1, sizeof(*ps));
		ps->sh = mmap(NULL, sizeof(*ps->sh), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (ps->sh == MAP_FAILED || pipe2(reply, O_CLOEXEC))
			die("scale setup");
		ps->reply = reply[0];
		for (int i = 0; i < n; i++) {
			int cmd[2];

			if (pipe2(cmd, O_CLOEXEC))
				die("pipe");
			ps->pid[i] = fork();
			if (ps->pid[i] < 0)
				die("fork");
			if (ps->pid[i] == 0) {
				close(reply[0]);
				close(cmd[1]);
				proc_child(ps, i, session, cmd[0], reply[1]);
			}
			close(cmd[0]);
			ps->cmd[i] = cmd[1];
			ps->n = i + 1;
		}
		close(reply[1]);
		r->priv = ps;
		r->procs = n;
		for (int i = 0; i < n; i++)
			if (read(ps->reply, &ch, 1) != 1)
				die("scale: a process died");
		for (int i = 0; i < n; i++)
			if (ps->sh->err[i])
				err = ps->sh->err[i];
		if (err) {
			procs_stop(ps);
			r->priv = NULL;
		}
		return err;
	case SLICE:
		ps->sh->arrived = 0;
		for (int i = 0; i < n; i++)
			if (write(ps->cmd[i], &c, sizeof(c)) != sizeof(c))
				die("scale: command");
		for (int i = 0; i < n; i++)
			if (read(ps->reply, &ch, 1) != 1)
				die("scale: a process died");
		for (int i = 0; i < n; i++) {
			t0 = ps->sh->t0[i] < t0 ? ps->sh->t0[i] : t0;
			t1 = ps->sh->t1[i] > t1 ? ps->sh->t1[i] : t1;
			r->slice_flt += ps->sh->flt[i];
		}
		r->slice_ns = t1 - t0;
		return 0;
	case DONE:
		if (ps)
			procs_stop(ps);
		r->priv = NULL;
		return 0;
	default:
		return EINVAL;
	}
}

int s1_cowmap(struct run *r, enum phase ph) { return procs(r, ph, 1, 1); }
int s2_cowmap(struct run *r, enum phase ph) { return procs(r, ph, 2, 1); }
int s1_private(struct run *r, enum phase ph) { return procs(r, ph, 1, 0); }
int s2_private(struct run *r, enum phase ph) { return procs(r, ph, 2, 0); }
