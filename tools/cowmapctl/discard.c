// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl discard: drop an orphaned session.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "cowmapctl.h"

static const char help_discard[] =
"Usage: cowmapctl discard ID [--json]   (ID or --session ID)\n"
"\n"
"Adopt orphaned session ID, drop its journal and written pages, and close it\n"
"(it is then freed).\n"
"\n"
"  -j, --json   {\"session_id\":ID,...,\"discarded\":true}\n";

int cmd_discard(int argc, char **argv)
{
	int fd, c;
	uint64_t id;

	c = id_arg(argc, argv, help_discard, NULL, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	fd = adopt_or_fail(id);
	if (fd < 0)
		return EX_ERR;
	c = cowmap_discard(fd);
	close(fd);
	if (c)
		return fail("discard", c);
	if (json_out) {
		struct json_object *o = jobj();

		jput_id(o, "session_id", id);
		jput_bool(o, "discarded", 1);
		jprint(o);
	} else {
		printf("session %" PRIu64 " discarded\n", id);
	}
	return EX_OK;
}
