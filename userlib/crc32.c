// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): zlib's crc32(). */
#include <pthread.h>

#include "internal.h"

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

API uint32_t cowmap_crc32(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t cm_crc_skip(const uint8_t *p, size_t len, size_t crc_off)
{
	static const uint8_t zero[4];
	uint32_t crc;

	crc = cowmap_crc32(0, p, crc_off);
	crc = cowmap_crc32(crc, zero, 4);
	return cowmap_crc32(crc, p + crc_off + 4, len - crc_off - 4);
}

/*
 * Polynomials mod P in the reflected form the table uses: bit 31 is x^0.
 * The product of @a and @b mod P.
 */
static uint32_t crc_mulmod(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;

	for (uint32_t m = 1u << 31; m; m >>= 1) {
		if (a & m)
			prod ^= b;
		b = b & 1 ? (b >> 1) ^ 0xEDB88320u : b >> 1;
	}
	return prod;
}

uint32_t cm_crc32_zeros(uint32_t crc, uint64_t n)
{
	uint32_t pow = 1u << 31, base = 1u << 23;	/* x^0, and x^8: one byte */

	/* n zero bytes multiply the register by x^(8n) mod P. */
	for (; n; n >>= 1) {
		if (n & 1)
			pow = crc_mulmod(pow, base);
		base = crc_mulmod(base, base);
	}
	return ~crc_mulmod(~crc, pow);
}
