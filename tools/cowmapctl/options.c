// SPDX-License-Identifier: GPL-2.0
/*
 * Argument parsing shared by the commands.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowmapctl.h"

/* Unescape --write TEXT: \\ \" \n \t \r \0 \xNN. Returns length or -1. */
ssize_t unescape(const char *s, uint8_t *out)
{
	size_t n = 0;

	while (*s) {
		if (*s != '\\') {
			out[n++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case '\\': out[n++] = '\\'; break;
		case '"': out[n++] = '"'; break;
		case 'n': out[n++] = '\n'; break;
		case 't': out[n++] = '\t'; break;
		case 'r': out[n++] = '\r'; break;
		case '0': out[n++] = 0; break;
		case 'x': {
			char hex[3] = { 0 };
			char *end;

			if (!s[1] || !s[2])
				return -1;
			hex[0] = s[1];
			hex[1] = s[2];
			out[n++] = strtoul(hex, &end, 16);
			if (*end)
				return -1;
			s += 2;
			break;
		}
		default:
			return -1;
		}
		s++;
	}
	return n;
}

int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || *end ? -1 : 0;
}

int parse_id(const char *s, uint64_t *id)
{
	if (parse_u64(s, id) || !*id)
		return usage_err("bad session id '%s'", s);
	return 0;
}

int want_help(int argc, char **argv, const char *help)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return 1;
		}
	}
	return 0;
}

/* "ID [--json] [--ioctl]": parse; 0, or the exit status (-1: --help shown). */
int id_arg(int argc, char **argv, const char *help, int *json, int *use_ioctl,
		  uint64_t *id)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "ioctl", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	int c;

	if (want_help(argc, argv, help))
		return -1;
	while ((c = getopt_long(argc, argv, json ? "j" : "", opts, NULL)) != -1) {
		if (c == 'j' && json)
			*json = 1;
		else if (c == 'I' && use_ioctl)
			*use_ioctl = 1;
		else
			return usage_err("bad option");
	}
	if (optind != argc - 1)
		return usage_err(optind < argc ? "one session ID expected, not '%s'" :
				 "session ID missing", argv[argc - 1]);
	if (parse_id(argv[optind], id))
		return EX_USAGE;
	return 0;
}
