/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kselftest_harness.h (from the kernel source package), with a per-test
 * timeout that fits the debug kernel: KASAN, lockdep and kmemleak under
 * QEMU's TCG make some tests take minutes there, instead of seconds.
 */
#ifndef COWMAP_HARNESS_H
#define COWMAP_HARNESS_H

#include "kselftest_harness.h"

#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 900

#endif /* COWMAP_HARNESS_H */
