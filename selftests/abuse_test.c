// SPDX-License-Identifier: GPL-2.0
/*
 * The attacker's view (issue 16, docs/security.md): /dev/cowmap is mode
 * 0666, so these tests fork, drop to uids 65534 and 65533 and check that
 * neither can read, change, pin, fill or drop what belongs to root or to
 * the other, and that the work and memory one user can cause are bounded.
 * Module parameters are set by the parent (root) and restored.
 */
#include <grp.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <time.h>

#include "cowmap_test.h"
#include "cowmap_log.h"
#include "cowmap_harness.h"

#define NOBODY 65534
#define OTHER 65533

/* Become @uid for good (no saved root): what an attacker runs as. */
static int drop_to(uid_t uid)
{
	return setgroups(0, NULL) || setresgid(uid, uid, uid) ||
	       setresuid(uid, uid, uid) ? -1 : 0;
}

static uint64_t sid(int fd)
{
	struct cowmap_status st;

	return cm_status(fd, &st) ? 0 : st.session_id;
}

/* ------------------------------------------------------------ netlink --- */

struct nl {
	struct mnl_socket *sk;
	uint16_t family;
	uint32_t group;
	unsigned int seq;
};

static int family_attr_cb(const struct nlattr *a, void *data)
{
	struct nl *nl = data;
	struct nlattr *grp, *x;

	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID)
		nl->family = mnl_attr_get_u16(a);
	if (mnl_attr_get_type(a) == CTRL_ATTR_MCAST_GROUPS)
		mnl_attr_for_each_nested(grp, a)
			mnl_attr_for_each_nested(x, grp)
				if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_ID)
					nl->group = mnl_attr_get_u32(x);
	return MNL_CB_OK;
}

static int family_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_attr_cb, data);
}

static struct nlmsghdr *req(struct nl *nl, char *buf, uint16_t type, uint8_t cmd,
			    uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++nl->seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = type == GENL_ID_CTRL ? 1 : COWMAP_GENL_VERSION;
	return nlh;
}

static int error_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	if (!e->error)
		return MNL_CB_STOP;
	errno = -e->error;
	return MNL_CB_ERROR;
}

static int done_cb(const struct nlmsghdr *nlh, void *data)
{
	int err = 0;

	if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(err)))
		memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
	if (err >= 0)
		return MNL_CB_STOP;
	errno = -err;
	return MNL_CB_ERROR;
}

static int nl_via_write;	/* the next request goes with write(2) */

/* Send @nlh, run @cb on every answer; 0 or -errno. */
static int talk(struct nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	static char buf[256 * 1024];
	static mnl_cb_t ctl[NLMSG_MIN_TYPE] = {
		[NLMSG_ERROR] = error_cb,
		[NLMSG_DONE] = done_cb,
	};
	unsigned int portid = mnl_socket_get_portid(nl->sk);
	int ret;

	if (nl_via_write) {
		nl_via_write = 0;
		if (write(mnl_socket_get_fd(nl->sk), nlh, nlh->nlmsg_len) < 0)
			return -errno;
	} else if (mnl_socket_sendto(nl->sk, nlh, nlh->nlmsg_len) < 0) {
		return -errno;
	}
	do {
		ret = mnl_socket_recvfrom(nl->sk, buf, sizeof(buf));
		if (ret < 0)
			return -errno;
		ret = mnl_cb_run2(buf, ret, nlh->nlmsg_seq, portid, cb, data,
				  ctl, NLMSG_MIN_TYPE);
	} while (ret > 0);
	return ret < 0 ? -errno : 0;
}

static int nl_open(struct nl *nl)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;

	memset(nl, 0, sizeof(*nl));
	nl->sk = mnl_socket_open(NETLINK_GENERIC);
	if (!nl->sk || mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0)
		return -1;
	nlh = req(nl, buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, COWMAP_GENL_NAME);
	return talk(nl, nlh, family_cb, nl) || !nl->family ? -1 : 0;
}

struct sess {
	uint64_t id;
	char path[4096], jpath[4096];
};

struct sess_list {
	struct sess s[16];
	int n;
	int total;	/* messages seen, kept or not */
};

static int sess_attr_cb(const struct nlattr *a, void *data)
{
	struct sess *s = data;

	switch (mnl_attr_get_type(a)) {
	case COWMAP_A_SESSION_ID:
		s->id = mnl_attr_get_u64(a);
		break;
	case COWMAP_A_PATH:
		snprintf(s->path, sizeof(s->path), "%s", mnl_attr_get_str(a));
		break;
	case COWMAP_A_JOURNAL_PATH:
		snprintf(s->jpath, sizeof(s->jpath), "%s", mnl_attr_get_str(a));
		break;
	}
	return MNL_CB_OK;
}

static int sess_cb(const struct nlmsghdr *nlh, void *data)
{
	static struct sess scratch;
	struct sess_list *l = data;
	struct sess *s = l->n < 16 ? &l->s[l->n++] : &scratch;

	memset(s, 0, sizeof(*s));
	l->total++;
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), sess_attr_cb, s);
}

static int get_session(struct nl *nl, uint64_t id, struct sess_list *l)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = req(nl, buf, nl->family, COWMAP_CMD_SESSION_GET, 0);

	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, id);
	l->n = l->total = 0;
	return talk(nl, nlh, sess_cb, l);
}

/*
 * The same, sent with write(2): no destination address, as when a
 * privileged program is made to write attacker bytes to a socket it got.
 */
static int get_session_write(struct nl *nl, uint64_t id, struct sess_list *l)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = req(nl, buf, nl->family, COWMAP_CMD_SESSION_GET, 0);

	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, id);
	l->n = l->total = 0;
	nl_via_write = 1;
	return talk(nl, nlh, sess_cb, l);
}

static int list_sessions(struct nl *nl, struct sess_list *l)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	l->n = l->total = 0;
	return talk(nl, req(nl, buf, nl->family, COWMAP_CMD_SESSION_GET, NLM_F_DUMP),
		    sess_cb, l);
}

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	(*(int *)data)++;
	return MNL_CB_OK;
}

/* A log dump of @id; the number of messages in *@msgs. */
static int dump_log(struct nl *nl, uint64_t id, int *msgs)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = req(nl, buf, nl->family, COWMAP_CMD_LOG_GET, NLM_F_DUMP);

	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, id);
	*msgs = 0;
	return talk(nl, nlh, count_cb, msgs);
}

/*
 * Item 5: a socket opened by an unprivileged user and written by root
 * (the CVE-2014-0181 pattern: a setuid program writing attacker bytes)
 * sees only what its opener may see.
 */
TEST(nl_socket_opener_decides)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "nlo", PG, O_RDONLY);
	int fd = cm_session(file);
	uint64_t id = sid(fd);
	uint8_t *m = cm_map(fd, PG, 0);
	pid_t pid;

	ASSERT_NE(MAP_FAILED, m);
	m[0] ^= 1;
	ASSERT_EQ(1, cm_commit(fd, 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct sess_list l;
		struct nl nl;
		int msgs;

		/* Open as nobody, keeping root as saved uid; then be root again. */
		if (setresuid(NOBODY, NOBODY, 0) || nl_open(&nl) ||
		    setresuid(0, 0, 0) || geteuid() != 0)
			_exit(10);
		int r = get_session_write(&nl, id, &l);

		if (r != -ENOENT) {
			fprintf(stderr, "# lookup: %d\n", r);
			_exit(11);
		}
		nl_via_write = 1;
		if (dump_log(&nl, id, &msgs) != -ENOENT)
			_exit(12);
		nl_via_write = 1;
		if (list_sessions(&nl, &l))
			_exit(13);
		for (int i = 0; i < l.n; i++)
			if (l.s[i].id == id)
				_exit(14);
		_exit(0);
	}
	EXPECT_EQ(0, cm_wait(pid)) {
		TH_LOG("child failed");
	}
	/* The same request on root's own socket sees it. */
	{
		struct sess_list l;
		struct nl nl;

		ASSERT_EQ(0, nl_open(&nl));
		EXPECT_EQ(0, get_session(&nl, id, &l));
		mnl_socket_close(nl.sk);
	}
	munmap(m, PG);
	cm_end(fd);
	close(file);
	unlink(path);
}

/* Item 5: events name every user's sessions: CAP_SYS_ADMIN only. */
TEST(nl_events_need_cap_sys_admin)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct nl nl;

		if (drop_to(NOBODY) || nl_open(&nl) || !nl.group)
			_exit(10);
		if (!mnl_socket_setsockopt(nl.sk, NETLINK_ADD_MEMBERSHIP, &nl.group,
					   sizeof(nl.group)))
			_exit(11);
		_exit(errno == EPERM ? 0 : 12);
	}
	EXPECT_EQ(0, cm_wait(pid));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct nl nl;

		if (nl_open(&nl))
			_exit(10);
		_exit(mnl_socket_setsockopt(nl.sk, NETLINK_ADD_MEMBERSHIP, &nl.group,
					    sizeof(nl.group)) ? 11 : 0);
	}
	EXPECT_EQ(0, cm_wait(pid));
}

/*
 * Item 8: a session whose file and journal file both have paths close to
 * PATH_MAX is described whole by a lookup and by a dump.
 */
TEST(nl_long_paths)
{
	char dir[4096], file_path[4096], jpath[4096], name[201];
	struct sess_list l;
	struct nl nl;
	int dfd, nd, file, jfd, fd, depth = 0, found = 0;
	struct cowmap_attach a = { .flags = COWMAP_ATTACH_JOURNAL };
	size_t len;

	memset(name, 'd', 200);
	name[200] = 0;
	snprintf(dir, sizeof(dir), "%s", cm_dir());
	dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, dfd);
	/* Components of up to 200 bytes, the last one filling up to 3997. */
	while (strlen(dir) + 2 < 3997) {
		size_t n = 3997 - strlen(dir) - 1;

		name[n < 200 ? n : 200] = 0;
		ASSERT_EQ(0, mkdirat(dfd, name, 0755) && errno != EEXIST);
		nd = openat(dfd, name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		ASSERT_LE(0, nd);
		close(dfd);
		dfd = nd;
		len = strlen(dir);
		snprintf(dir + len, sizeof(dir) - len, "/%s", name);
		depth++;
	}
	file = openat(dfd, "f", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	jfd = openat(dfd, "j", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, file);
	ASSERT_LE(0, jfd);
	ASSERT_EQ(0, ftruncate(file, PG));
	snprintf(file_path, sizeof(file_path), "%s/f", dir);
	snprintf(jpath, sizeof(jpath), "%s/j", dir);
	ASSERT_LT(3900, strlen(file_path));

	fd = cm_open();
	ASSERT_EQ(0, cm_handshake(fd));
	a.fd = file;
	a.journal_fd = jfd;
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_ATTACH, &a));
	ASSERT_EQ(0, nl_open(&nl));
	ASSERT_EQ(0, get_session(&nl, a.session_id, &l));
	ASSERT_EQ(1, l.n);
	EXPECT_STREQ(file_path, l.s[0].path);
	EXPECT_STREQ(jpath, l.s[0].jpath);
	ASSERT_EQ(0, list_sessions(&nl, &l));
	for (int i = 0; i < l.n; i++)
		if (l.s[i].id == a.session_id) {
			found = 1;
			EXPECT_STREQ(jpath, l.s[i].jpath);
		}
	EXPECT_EQ(1, found);
	mnl_socket_close(nl.sk);
	cm_end(fd);
	close(file);
	close(jfd);
	unlinkat(dfd, "f", 0);
	unlinkat(dfd, "j", 0);
	close(dfd);
	while (depth--) {
		char *slash = strrchr(dir, '/');

		rmdir(dir);
		*slash = 0;
	}
}

TEST_HARNESS_MAIN
