// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl status: one session, over netlink or (--ioctl) adopted.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "cowmapctl.h"

static const char help_status[] =
"Usage: cowmapctl status ID [--json] [--ioctl]   (ID or --session ID)\n"
"\n"
"Print session ID as the kernel describes it over netlink (no session fd\n"
"needed; attached and orphaned sessions of your uid, or all with\n"
"CAP_SYS_ADMIN): state, owner, backing file, pages, journal.\n"
"\n"
"  -j, --json   one JSON object\n"
"      --ioctl  adopt orphaned session ID and print all of struct\n"
"               cowmap_status (fault and page counters), then close it again\n";

/* The old status: adopt the orphan and print all of struct cowmap_status. */
static int status_ioctl(uint64_t id)
{
	struct cowmap_status st;
	const char *state;
	int fd = adopt_or_fail(id), c;

	if (fd < 0)
		return EX_ERR;
	c = cowmap_status(fd, &st);
	close(fd);
	if (c)
		return fail("status", c);
	/* id: an identifier or size (JSON: also as a string, KEY_str). */
#define F(name, id) { #name, st.name, id }
	const struct { const char *name; uint64_t v; int id; } f[] = {
		F(session_id, 1), F(dev_major, 0), F(dev_minor, 0), F(ino, 1),
		F(size_at_attach, 1), F(size, 1), F(mappings, 0), F(private_pages, 0),
		F(twin_pages, 0), F(base_pages, 0), F(faults, 0), F(cow_copies, 0),
		F(rearms, 0), F(base_invalidations, 0), F(limit_hits, 0),
		F(journal_records, 0), F(journal_bytes, 0), F(next_seq, 1), F(commits, 0),
		F(journal_file_seq, 1), F(merged_records, 0), F(session_size, 1),
		F(base_reclaimed, 0),
	};
#undef F
	/*
	 * Only an orphan can be adopted, and closing it makes it one again:
	 * report that, not the "attached" it is while we hold it.
	 */
	state = st.state == COWMAP_STATE_ATTACHED ? "orphaned" : state_name(st.state);
	if (json_out) {
		struct json_object *o = jobj();

		jput_str(o, "state", state);
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			(f[i].id ? jput_id : jput_u64)(o, f[i].name, f[i].v);
		jprint(o);
	} else {
		printf("%-20s %s\n", "state:", state);
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
			char k[40];

			snprintf(k, sizeof(k), "%s:", f[i].name);
			printf("%-20s %" PRIu64 "\n", k, f[i].v);
		}
	}
	return EX_OK;
}

int cmd_status(int argc, char **argv)
{
	struct cowmap_nl_session s;
	struct cowmap_nl *nl;
	int use_ioctl = 0, c;
	char what[64];
	uint64_t id;

	c = id_arg(argc, argv, help_status, &use_ioctl, &id);
	if (c)
		return c < 0 ? EX_OK : c;
	if (use_ioctl)
		return status_ioctl(id);
	nl = nl_open_or_fail();
	if (!nl)
		return EX_ERR;
	c = cowmap_nl_session_get(nl, id, &s);
	if (c) {
		snprintf(what, sizeof(what), "session %" PRIu64, id);
		c = nl_fail(nl, what, c);
		cowmap_nl_close(nl);
		return c;
	}
	if (json_out) {
		jprint(session_json(&s));
	} else {
		printf("%-17s %" PRIu64 "\n", "session:", s.session_id);
		printf("%-17s %s\n", "state:", state_name(s.state));
		printf("%-17s %u\n", "owner_pid:", s.owner_pid);
		printf("%-17s %u\n", "owner_uid:", s.owner_uid);
		printf("%-17s %s\n", "path:", s.path ? s.path : "(unknown)");
		printf("%-17s %u:%u\n", "device:", s.dev_major, s.dev_minor);
		printf("%-17s %" PRIu64 "\n", "inode:", s.ino);
		printf("%-17s %" PRIu64 "\n", "size:", s.size);
		if (s.has_session_size)
			printf("%-17s %" PRIu64 "\n", "session_size:", s.session_size);
		printf("%-17s %" PRIu64 "\n", "private_pages:", s.private_pages);
		printf("%-17s %" PRIu64 "\n", "twin_pages:", s.twin_pages);
		printf("%-17s %" PRIu64 "\n", "journal_records:", s.records);
		printf("%-17s %" PRIu64 "\n", "journal_bytes:", s.journal_bytes);
		printf("%-17s %" PRIu64 "\n", "merged_records:", s.merged);
		printf("%-17s %s\n", "journal_path:", s.journal_path ? s.journal_path : "(none)");
	}
	cowmap_nl_close(nl);
	return EX_OK;
}
