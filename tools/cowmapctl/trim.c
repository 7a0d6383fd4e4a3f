// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl trim: drop the merged records of an orphaned session.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "cowmapctl.h"

static const char help_trim[] =
"Usage: cowmapctl trim ID [--json]   (ID or --session ID)\n"
"\n"
"Adopt orphaned session ID, drop the records a kernel merge marked merged\n"
"(COWMAP_IOC_TRIM), and close it: it stays an orphan if records or\n"
"uncommitted pages remain, and is freed otherwise.\n"
"\n"
"  -j, --json   {\"session_id\":ID,...,\"records_trimmed\":N,\"records_left\":N,\"freed\":BOOL}\n";

int cmd_trim(int argc, char **argv)
{
	struct cowmap_status before, after;
	int fd, c;
	uint64_t id;

	c = id_arg(argc, argv, help_trim, NULL, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	fd = adopt_or_fail(id);
	if (fd < 0)
		return EX_ERR;
	c = cowmap_status(fd, &before);
	if (!c)
		c = cowmap_trim(fd);
	if (!c)
		c = cowmap_status(fd, &after);
	close(fd);
	if (c)
		return fail("trim", c);
	if (json_out) {
		struct json_object *o = jobj();

		jput_id(o, "session_id", id);
		jput_u64(o, "records_trimmed", before.journal_records - after.journal_records);
		jput_u64(o, "records_left", after.journal_records);
		jput_bool(o, "freed", !after.journal_records && !after.twin_pages);
		jprint(o);
		return EX_OK;
	}
	printf("session %" PRIu64 ": %llu merged record%s trimmed, %llu left%s\n",
	       id, (unsigned long long)(before.journal_records - after.journal_records),
	       before.journal_records - after.journal_records == 1 ? "" : "s",
	       (unsigned long long)after.journal_records,
	       after.journal_records || after.twin_pages ? "" : "; session freed");
	return EX_OK;
}
