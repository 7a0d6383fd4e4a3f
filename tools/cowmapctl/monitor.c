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
"Usage: cowmapctl monitor [--json] [--count N] [--session ID] [--timestamp]\n"
"                         [--quiet]\n"
"\n"
"Print cowmap events as they happen, one line each, until SIGINT or SIGTERM\n"
"(netlink multicast group \"events\"):\n"
"  commit   session=3 uid=0 records=1 bytes=72\n"
"Events: attach commit merge conflict orphan adopt discard limit dropped close.\n"
"\n"
"  -j, --json        one JSON object per line\n"
"  -c, --count N     exit after N events\n"
"  -s, --session ID  only the events of session ID\n"
"  -t, --timestamp   prefix each event with the time it was received\n"
"  -q, --quiet       no \"listening\" line on stderr\n";

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static void print_event(const struct cowmap_nl_event *ev, int json, int stamp)
{
	const char *name = cowmap_nl_event_name(ev->event);
	struct timespec now;
	char unknown[32];

	if (!name) {
		snprintf(unknown, sizeof(unknown), "event-%u", ev->event);
		name = unknown;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (json) {
		printf("{\"event\":\"%s\",\"session_id\":%" PRIu64 ",\"owner_uid\":%u",
		       name, ev->session_id, ev->owner_uid);
		if (stamp)
			printf(",\"time_ns\":%llu", (unsigned long long)now.tv_sec *
			       1000000000ULL + now.tv_nsec);
		if (ev->present & COWMAP_NL_EV_HAS_RECORDS)
			printf(",\"records\":%" PRIu64 ",\"journal_bytes\":%" PRIu64,
			       ev->records, ev->journal_bytes);
		if (ev->present & COWMAP_NL_EV_HAS_MERGE)
			printf(",\"applied\":%" PRIu64 ",\"already\":%" PRIu64,
			       ev->applied, ev->already);
		if (ev->present & COWMAP_NL_EV_HAS_CONFLICTS)
			printf(",\"conflicts\":%" PRIu64, ev->conflicts);
		if (ev->present & COWMAP_NL_EV_HAS_LIMIT_HITS)
			printf(",\"limit_hits\":%" PRIu64, ev->limit_hits);
		printf("}\n");
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
		{ "session", required_argument, NULL, 's' },
		{ "timestamp", no_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct sigaction sa = { .sa_handler = on_stop };	/* no SA_RESTART */
	uint64_t count = 0, seen = 0, only = 0;
	int json = 0, stamp = 0, quiet = 0, c, ret = EX_OK;
	struct cowmap_nl_event ev;
	struct cowmap_nl *nl;

	if (want_help(argc, argv, help_monitor))
		return EX_OK;
	while ((c = getopt_long(argc, argv, "jc:s:tq", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'c':
			if (parse_u64(optarg, &count) || !count)
				return usage_err("--count wants a positive number, not '%s'", optarg);
			break;
		case 's':
			if (parse_id(optarg, &only))
				return EX_USAGE;
			break;
		case 't': stamp = 1; break;
		case 'q': quiet = 1; break;
		default: return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
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
		print_event(&ev, json, stamp);
		seen++;
	}
	cowmap_nl_close(nl);
	return ret;
}
