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

/*
 * getopt_long()'s '?' or ':' (the option strings start with ':', and main()
 * clears opterr): one message of ours, not getopt's and then another.
 */
int bad_option(int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return usage_err("option '%s' needs an argument", arg);
	if (optopt && strncmp(arg, "--", 2))
		return usage_err("unknown option '-%c'", optopt);
	return usage_err("unknown option '%s'", arg);
}

/* An option that takes one value: a second one is a usage error. */
int once(const char **dst, const char *name, const char *value)
{
	if (*dst) {
		usage_err("%s given twice ('%s', '%s'): give it once", name, *dst, value);
		return -1;
	}
	*dst = value;
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

/*
 * The session of a command: its one positional argument, or --session ID
 * (@opt, NULL if not given); every command takes it both ways. 0 (*@id 0
 * if @optional and absent), or the exit status of a usage error.
 */
int session_arg(const char *opt, int argc, char **argv, int optional, uint64_t *id)
{
	const char *s = opt;

	*id = 0;
	if (argc - optind > 1)
		return usage_err("unexpected argument '%s'", argv[optind + 1]);
	if (argc - optind == 1) {
		if (opt)
			return usage_err("session ID given twice ('--session %s' and '%s')",
					 opt, argv[optind]);
		s = argv[optind];
	}
	if (!s)
		return optional ? 0 : usage_err("session ID missing");
	return parse_id(s, id) ? EX_USAGE : 0;
}

/*
 * "ID [--json] [--ioctl]" (--ioctl only with @use_ioctl; ID or --session
 * ID): parse; 0, or the exit status (-1: --help shown).
 */
int id_arg(int argc, char **argv, const char *help, int *use_ioctl, uint64_t *id)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "session", required_argument, NULL, 'S' },
		{ "ioctl", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *session = NULL;
	int c;

	if (want_help(argc, argv, help))
		return -1;
	while ((c = getopt_long(argc, argv, ":j", opts, NULL)) != -1) {
		if (c == 'j')
			json_out = 1;
		else if (c == 'S' && once(&session, "--session", optarg))
			return EX_USAGE;
		else if (c == 'I' && use_ioctl)
			*use_ioctl = 1;
		else if (c != 'S')
			return bad_option(c, argv);
	}
	return session_arg(session, argc, argv, 0, id);
}
