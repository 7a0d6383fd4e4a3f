// SPDX-License-Identifier: GPL-2.0
/*
 * mkseed OUT OPTIONS SOURCE [LOG...] [--intent FILE]: pack files into one
 * fuzz_merge input (see fuzz_merge.c): the options byte (a number, e.g.
 * 0x10), then each file as a u32 little-endian length and its bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_file(FILE *out, const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, len[4];
	size_t n = 0, cap = 0, got;

	if (!f) {
		perror(path);
		exit(1);
	}
	do {
		if (n == cap)
			buf = realloc(buf, cap = cap ? 2 * cap : 4096);
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	for (int i = 0; i < 4; i++)
		len[i] = n >> (8 * i);
	fwrite(len, 1, 4, out);
	fwrite(buf, 1, n, out);
	free(buf);
}

int main(int argc, char **argv)
{
	const char *intent = NULL;
	uint8_t opt;
	FILE *out;

	if (argc < 4) {
		fprintf(stderr, "usage: mkseed OUT OPTIONS SOURCE [LOG...] [--intent FILE]\n");
		return 2;
	}
	if (argc >= 6 && !strcmp(argv[argc - 2], "--intent")) {
		intent = argv[argc - 1];
		argc -= 2;
	}
	opt = strtoul(argv[2], NULL, 0);
	out = fopen(argv[1], "wb");
	if (!out) {
		perror(argv[1]);
		return 1;
	}
	fputc(opt, out);
	for (int i = 3; i < argc; i++)
		put_file(out, argv[i]);
	if (intent)
		put_file(out, intent);
	return fclose(out) ? 1 : 0;
}
