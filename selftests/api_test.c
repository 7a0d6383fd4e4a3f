// SPDX-License-Identifier: GPL-2.0
/*
 * The device, the API handshake and bad input: /dev/cowmap must refuse
 * anything it does not understand with the documented errno.
 */
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "cowmap_test.h"
#include "cowmap_harness.h"

TEST(device_node)
{
	struct stat st;

	ASSERT_EQ(0, stat(COWMAP_DEVICE_PATH, &st));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
	/* Without udev the device keeps the module's mode: 0666. */
	EXPECT_EQ(0666, st.st_mode & 0777);
	/* The fixed number the devname alias needs: misc 10:248. */
	EXPECT_EQ(10, major(st.st_rdev));
	EXPECT_EQ(COWMAP_MISC_MINOR, minor(st.st_rdev));
}

TEST(open_close)
{
	int fds[64];

	for (int i = 0; i < 64; i++) {
		fds[i] = cm_open();
		ASSERT_LE(0, fds[i]);
	}
	for (int i = 0; i < 64; i++)
		ASSERT_EQ(0, close(fds[i]));

	/* Read-only opens work too (status needs no write access). */
	int fd = open(COWMAP_DEVICE_PATH, O_RDONLY);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	close(fd);
}

TEST(handshake_good)
{
	struct cowmap_api a = { .api = COWMAP_API };
	int fd = cm_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_API, &a));
	EXPECT_EQ(COWMAP_API, a.api);
	EXPECT_EQ(COWMAP_FEATURES_ALL, a.features);
	/* Exactly the ioctls the header defines. */
	EXPECT_EQ(COWMAP_IOCTL_BIT(COWMAP_IOC_API) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_ATTACH) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_STATUS) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_COMMIT) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_DUMP) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_ADOPT) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_DISCARD) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_MERGE) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_TRIM) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_VIEW) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_SET_SIZE) |
		  COWMAP_IOCTL_BIT(COWMAP_IOC_REFRESH), a.ioctls);
	close(fd);
}

TEST(handshake_repeated)
{
	struct cowmap_api a = { .api = COWMAP_API };
	int fd = cm_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_API, &a));
	a = (struct cowmap_api){ .api = COWMAP_API };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, &a));
	EXPECT_EQ(EBUSY, errno);
	/* The fd still works after the refused second handshake. */
	struct cowmap_status st;

	EXPECT_EQ(0, cm_status(fd, &st));
	close(fd);
}

TEST(handshake_bad_version)
{
	unsigned int versions[] = { 0, COWMAP_API + 1, 0xffffffff };
	int fd = cm_open();

	ASSERT_LE(0, fd);
	for (unsigned int i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		struct cowmap_api a = { .api = versions[i] };

		EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, &a));
		EXPECT_EQ(EINVAL, errno);
	}
	/* A refused handshake does not count: a good one still works. */
	EXPECT_EQ(0, cm_handshake(fd));
	close(fd);
}

TEST(handshake_unknown_feature)
{
	int fd = cm_open();

	ASSERT_LE(0, fd);
	for (int bit = 0; bit < 64; bit++) {
		struct cowmap_api a = { .api = COWMAP_API,
					.features = 1ULL << bit };

		if (COWMAP_FEATURES_ALL & (1ULL << bit))
			continue;
		EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, &a));
		EXPECT_EQ(EINVAL, errno);
	}
	close(fd);
}

TEST(handshake_reserved_nonzero)
{
	int fd = cm_open();

	ASSERT_LE(0, fd);
	for (int i = 0; i < 4; i++) {
		struct cowmap_api a = { .api = COWMAP_API };

		a.reserved[i] = 1;
		EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, &a));
		EXPECT_EQ(EINVAL, errno);
	}
	struct cowmap_api a = { .api = COWMAP_API, .reserved0 = 1 };

	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, &a));
	EXPECT_EQ(EINVAL, errno);
	a = (struct cowmap_api){ .api = COWMAP_API, .ioctls = 1 };
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, &a));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

TEST(ioctl_before_handshake)
{
	struct cowmap_status st;
	char path[256];
	int fd = cm_open();
	int file = cm_mkfile(path, sizeof(path), "prehs", PG, O_RDONLY);

	ASSERT_LE(0, fd);
	ASSERT_LE(0, file);
	EXPECT_EQ(-1, cm_status(fd, &st));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, cm_attach(fd, file));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
	close(file);
	unlink(path);
}

TEST(unknown_ioctl)
{
	char buf[512] = { 0 };
	int fd = cm_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	/* Unknown numbers in our type, another type, and no-argument forms. */
	unsigned long cmds[] = {
		_IOWR(COWMAP_IOC_MAGIC, 0x3f, struct cowmap_status),
		_IO(COWMAP_IOC_MAGIC, 0xff),
		_IOR('T', 0x01, int),
		_IOWR(COWMAP_IOC_MAGIC + 1, 0x00, struct cowmap_api),
		TCGETS,
		FIONREAD,
	};

	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		EXPECT_EQ(-1, ioctl(fd, cmds[i], buf));
		EXPECT_EQ(ENOTTY, errno);
	}
	close(fd);
}

TEST(wrong_struct_size)
{
	char buf[512] = { 0 };
	struct cowmap_api *a = (void *)buf;
	int fd = cm_open();

	ASSERT_LE(0, fd);
	a->api = COWMAP_API;
	/* A short and a long struct for a known command. */
	EXPECT_EQ(-1, ioctl(fd, _IOC(_IOC_READ | _IOC_WRITE, COWMAP_IOC_MAGIC, 0,
				     sizeof(struct cowmap_api) - 8), buf));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(fd, _IOC(_IOC_READ | _IOC_WRITE, COWMAP_IOC_MAGIC, 0,
				     sizeof(struct cowmap_api) + 8), buf));
	EXPECT_EQ(EINVAL, errno);
	/* Right size, wrong direction. */
	EXPECT_EQ(-1, ioctl(fd, _IOC(_IOC_WRITE, COWMAP_IOC_MAGIC, 0,
				     sizeof(struct cowmap_api)), buf));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, cm_handshake(fd));
	EXPECT_EQ(-1, ioctl(fd, _IOC(_IOC_READ, COWMAP_IOC_MAGIC, 2,
				     sizeof(struct cowmap_status) - 8), buf));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(fd, _IOC(_IOC_READ, COWMAP_IOC_MAGIC, 2,
				     sizeof(struct cowmap_status) + 8), buf));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

TEST(bad_pointer)
{
	int fd = cm_open();
	void *unmapped;

	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, (void *)1));
	EXPECT_EQ(EFAULT, errno);
	/* A kernel address. */
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, (void *)0xffffffff81000000UL));
	EXPECT_EQ(EFAULT, errno);

	/* A read-only buffer: the handshake is accepted but cannot answer. */
	unmapped = mmap(NULL, PG, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, unmapped);
	((struct cowmap_api *)unmapped)->api = COWMAP_API;
	ASSERT_EQ(0, mprotect(unmapped, PG, PROT_READ));
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_API, unmapped));
	EXPECT_EQ(EFAULT, errno);
	munmap(unmapped, PG);

	/* None of the refused handshakes counted. */
	ASSERT_EQ(0, cm_handshake(fd));
	EXPECT_EQ(-1, ioctl(fd, COWMAP_IOC_STATUS, NULL));
	EXPECT_EQ(EFAULT, errno);
	close(fd);
}

TEST(status_unattached)
{
	struct cowmap_status st, st2;
	int fd = cm_open(), fd2 = cm_open();

	ASSERT_LE(0, fd);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, cm_handshake(fd));
	ASSERT_EQ(0, cm_handshake(fd2));
	ASSERT_EQ(0, cm_status(fd, &st));
	ASSERT_EQ(0, cm_status(fd2, &st2));
	/* No session before attach. */
	EXPECT_EQ(COWMAP_STATE_NEW, st.state);
	EXPECT_EQ(0, st.session_id);
	EXPECT_EQ(COWMAP_STATE_NEW, st2.state);
	EXPECT_EQ(0, st.private_pages);
	EXPECT_EQ(0, st.mappings);
	close(fd);
	close(fd2);
}

TEST(mmap_unattached)
{
	int fd = cm_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	EXPECT_EQ(MAP_FAILED, cm_map(fd, PG, 0));
	EXPECT_EQ(ENODEV, errno);
	close(fd);
}

/* The module cannot go away under an open fd; it can once the fd is closed. */
TEST(unload_refused_while_open)
{
	struct stat st;
	int fd = cm_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	EXPECT_EQ(-1, syscall(SYS_delete_module, "cowmap", O_NONBLOCK));
	EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY);
	/* Still there and still working. */
	EXPECT_EQ(0, stat("/sys/module/cowmap", &st));
	struct cowmap_status s;

	EXPECT_EQ(0, cm_status(fd, &s));
	close(fd);
}

/* read(2) and write(2) without a session; write(2) is never supported. */
TEST(read_write_unattached)
{
	char buf[16] = "x";
	int fd = cm_open();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_handshake(fd));
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, write(fd, buf, 1));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

/*
 * An orphan holds a module reference: delete_module(2) fails with EAGAIN
 * (EWOULDBLOCK) until it is adopted and discarded.
 */
TEST(unload_refused_with_orphan)
{
	struct cowmap_status st;
	char path[256];
	uint8_t *m;
	int file, fd;

	file = cm_mkfile(path, sizeof(path), "orphan", PG, O_RDONLY);
	ASSERT_LE(0, file);
	fd = cm_session(file);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cm_status(fd, &st));
	m = cm_map(fd, PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[0] ^= 0xff;
	munmap(m, PG);
	close(fd);	/* an orphan now */
	EXPECT_EQ(-1, syscall(SYS_delete_module, "cowmap", O_NONBLOCK));
	EXPECT_EQ(EAGAIN, errno);
	fd = cm_adopt_new(st.session_id);
	ASSERT_LE(0, fd);
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
