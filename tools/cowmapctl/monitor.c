// SPDX-License-Identifier: GPL-2.0
/*
 * cowmapctl monitor: cowmap events as they happen (netlink multicast).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cowmapctl.h"

static const char help_monitor[] =
"Usage: cowmapctl monitor [ID] [--json] [--count N] [--timestamp] [--quiet]\n"
"\n"
"Print cowmap events as they happen, one line each, until SIGINT or SIGTERM\n"
"(netlink multicast group \"events\"):\n"
"  commit   session=3 uid=0 records=1 bytes=72\n"
"Events: attach commit merge conflict orphan adopt discard limit dropped close.\n"
"\n"
"  -j, --json        one JSON object per line\n"
"  -c, --count N     exit after N events\n"
"  ID, --session ID  only the events of session ID\n"
"  -t, --timestamp   prefix each event with the time it was received\n"
"  -q, --quiet       no \"listening\" line on stderr\n";

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static void print_event(const struct cowmap_nl_event *ev, int stamp)
{
	const char *name = cowmap_nl_event_name(ev->event);
	struct timespec now;
	char unknown[32];

	if (!name) {
		snprintf(unknown, sizeof(unknown), "event-%u", ev->event);
		name = unknown;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (json_out) {
		struct json_object *o = jobj();

		jput_str(o, "event", name);
		jput_id(o, "session_id", ev->session_id);
		jput_u64(o, "owner_uid", ev->owner_uid);
		if (stamp)
			jput_id(o, "time_ns", (uint64_t)now.tv_sec * 1000000000ULL + now.tv_nsec);
		if (ev->present & COWMAP_NL_EV_HAS_RECORDS) {
			jput_u64(o, "records", ev->records);
			jput_u64(o, "journal_bytes", ev->journal_bytes);
		}
		if (ev->present & COWMAP_NL_EV_HAS_MERGE) {
			jput_u64(o, "applied", ev->applied);
			jput_u64(o, "already", ev->already);
		}
		if (ev->present & COWMAP_NL_EV_HAS_CONFLICTS)
			jput_u64(o, "conflicts", ev->conflicts);
		if (ev->present & COWMAP_NL_EV_HAS_LIMIT_HITS)
			jput_u64(o, "limit_hits", ev->limit_hits);
		jprint(o);
		return;
	}
	if (stamp) {
		put_time(stdout, now.tv_sec * 1000000000ULL + now.tv_nsec);
		putchar(' ');
	}
	printf("%-8s session=%" PRIu64 " uid=%u", name, ev->session_id, ev->owner_uid);
	if (ev->present & COWMAP_NL_EV_HAS_RECORDS)
		printf(" records=%" PRIu64 " bytes=%" PRIu64, ev->records, ev->journal_bytes);
	if (ev->present & COWMAP_NL_EV_HAS_MERGE)
		printf(" applied=%" PRIu64 " already=%" PRIu64, ev->applied, ev->already);
	if (ev->present & COWMAP_NL_EV_HAS_CONFLICTS)
		printf(" conflicts=%" PRIu64, ev->conflicts);
	if (ev->present & COWMAP_NL_EV_HAS_LIMIT_HITS)
		printf(" limit_hits=%" PRIu64, ev->limit_hits);
	putchar('\n');
}

int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'c' },
		{ "session", required_argument, NULL, 'S' },
		{ "timestamp", no_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct sigaction sa = { .sa_handler = on_stop };	/* no SA_RESTART */
	uint64_t count = 0, seen = 0, only = 0;
	const char *session = NULL, *cnt = NULL;
	int stamp = 0, quiet = 0, c, ret = EX_OK;
	struct cowmap_nl_event ev;
	struct cowmap_nl *nl;

	if (want_help(argc, argv, help_monitor))
		return EX_OK;
	while ((c = getopt_long(argc, argv, ":jc:tq", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json_out = 1; break;
		case 'c':
			if (once(&cnt, "--count", optarg))
				return EX_USAGE;
			if (parse_u64(optarg, &count) || !count)
				return usage_err("--count wants a positive number, not '%s'", optarg);
			break;
		case 'S':
			if (once(&session, "--session", optarg))
				return EX_USAGE;
			break;
		case 't': stamp = 1; break;
		case 'q': quiet = 1; break;
		default: return bad_option(c, argv);
		}
	}
	/* Only one session's events: "monitor ID" or "monitor --session ID". */
	if (session_arg(session, argc, argv, 1, &only))
		return EX_USAGE;
	nl = nl_open_or_fail();
	if (!nl)
		return EX_ERR;
	c = cowmap_nl_subscribe(nl);
	if (c) {
		cowmap_nl_close(nl);
		err("cannot join the \"" COWMAP_MCGRP_EVENTS "\" group: %s", strerror(-c));
		return EX_ERR;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);	/* one line per event, at once */
	if (!quiet)
		fprintf(stderr, "cowmapctl: monitor: listening for cowmap events%s\n",
			count ? "" : " (Ctrl-C to stop)");
	while (!stop_signal && (!count || seen < count)) {
		/* A timeout, so that a signal between two polls is seen soon. */
		c = cowmap_nl_event_next(nl, &ev, 250);
		if (c == 0 || c == -EINTR)
			continue;
		if (c == -ENOBUFS) {
			err("events were lost (the receive buffer overflowed)");
			continue;
		}
		if (c < 0) {
			err("netlink: %s", strerror(-c));
			ret = EX_ERR;
			break;
		}
		if (only && ev.session_id != only)
			continue;
		print_event(&ev, stamp);
		seen++;
	}
	cowmap_nl_close(nl);
	return ret;
}
