// SPDX-License-Identifier: GPL-2.0
/*
 * Messages on stderr, and the errors of the device, of netlink and of adoption.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cowmapctl.h"

/* "cowmapctl: CMD: message" on stderr; with --json also for the JSON. */
static void vmsg(const char *fmt, va_list ap)
{
	va_list ap2;

	va_copy(ap2, ap);
	jerror_note(fmt, ap2);
	va_end(ap2);
	fprintf(stderr, "cowmapctl: %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

int usage_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'cowmapctl %s --help'.\n", cmd);
	return EX_USAGE;
}

/* Errno of a session operation, with a hint where there is one. */
int fail(const char *what, int e)
{
	const char *hint = "";

	if (e == -ENODEV && !strcmp(what, "open " COWMAP_DEVICE_PATH))
		hint = MODULE_HINT;
	else if (e == -ENOTTY)
		hint = " (the loaded cowmap module does not support this)";
	else if (e == -ENOENT && strstr(what, "adopt"))
		hint = " (no orphaned session with that id)";
	err("%s: %s%s", what, strerror(-e), hint);
	return EX_ERR;
}

/* --- netlink -------------------------------------------------------------- */

struct cowmap_nl *nl_open_or_fail(void)
{
	struct cowmap_nl *nl;
	int c = cowmap_nl_open(&nl);

	if (!c)
		return nl;
	if (c == -ENODEV)
		err("no generic netlink family \"" COWMAP_GENL_NAME "\"" MODULE_HINT);
	else
		err("netlink: %s", strerror(-c));
	return NULL;
}

/* A failed request: the kernel's extack message if it sent one. */
int nl_fail(struct cowmap_nl *nl, const char *what, int e)
{
	const char *x = cowmap_nl_extack(nl);

	/* A log dump's .start cannot always attach its message. */
	if (!x && e == -ENOENT)
		x = "no such session";
	if (x)
		err("%s: %s (%s)", what, x, strerror(-e));
	else
		err("%s: %s", what, strerror(-e));
	return EX_ERR;
}

/* --- session fds --------------------------------------------------------- */

/* A new session fd (cowmap_open()), or -1 after an error message. */
int dev_open_or_fail(void)
{
	int fd = cowmap_open(NULL);

	if (fd >= 0)
		return fd;
	fail("open " COWMAP_DEVICE_PATH, fd);
	return -1;
}

/*
 * A new fd that adopted orphan @id, or -1 after an error message. The
 * device is opened first, so that its errors are never taken for the
 * session's (cowmap_session_adopt() keeps them apart too, by errno).
 */
int adopt_or_fail(uint64_t id)
{
	struct cowmap_nl_session s;
	struct cowmap_nl *nl;
	char what[64];
	int fd = dev_open_or_fail(), c;

	if (fd < 0)
		return -1;
	c = cowmap_adopt(fd, id);
	if (!c)
		return fd;
	close(fd);
	snprintf(what, sizeof(what), "adopt session %" PRIu64, id);
	/* Say why when the session exists but is not an orphan. */
	if ((c == -ENOENT || c == -EBUSY) && !cowmap_nl_open(&nl)) {
		if (!cowmap_nl_session_get(nl, id, &s) && s.state == COWMAP_STATE_ATTACHED) {
			err("%s: session %" PRIu64 " is attached (process %u): only an orphan can be adopted",
			    what, id, s.owner_pid);
			cowmap_nl_close(nl);
			return -1;
		}
		cowmap_nl_close(nl);
	}
	fail(what, c);
	return -1;
}
