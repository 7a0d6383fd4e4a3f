// SPDX-License-Identifier: GPL-2.0
/*
 * The generic netlink family, through libmnl: sessions listed and looked
 * up, a journal dumped (byte-identical to the ioctl dump), events in order,
 * strict validation with extended ACKs, and the uid rule.
 */
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <time.h>

#include "cowmap_test.h"
#include "cowmap_log.h"
#include "cowmap_harness.h"
#include "cowmap_nl.h"

/* Send @nlh and run @cb on every answer; 0, or -errno from the kernel. */
/* The extended ACK of the last failed request: its message, missing attr. */
static struct {
	char msg[256];
	int miss_type;
} ack;

static int ack_attr_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
	    !mnl_attr_validate(a, MNL_TYPE_NUL_STRING))
		snprintf(ack.msg, sizeof(ack.msg), "%s", mnl_attr_get_str(a));
	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MISS_TYPE &&
	    !mnl_attr_validate(a, MNL_TYPE_U32))
		ack.miss_type = mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

/* NLMSG_ERROR: 0 is the ACK; an error keeps its TLVs (the ACK is capped). */
static int error_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return MNL_CB_ERROR;
	if (!e->error)
		return MNL_CB_STOP;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS)
		mnl_attr_parse(nlh, sizeof(*e), ack_attr_cb, NULL);
	errno = -e->error;
	return MNL_CB_ERROR;
}

/* NLMSG_DONE carries the dump's last error, and TLVs when it failed. */
static int done_cb(const struct nlmsghdr *nlh, void *data)
{
	int err = 0;

	if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(err)))
		memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
	if (err >= 0)
		return MNL_CB_STOP;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS)
		mnl_attr_parse(nlh, sizeof(err), ack_attr_cb, NULL);
	errno = -err;
	return MNL_CB_ERROR;
}

static int talk(struct nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	static char buf[256 * 1024];	/* a log dump message can be 33 KiB */
	static mnl_cb_t ctl[NLMSG_MIN_TYPE] = {
		[NLMSG_ERROR] = error_cb,
		[NLMSG_DONE] = done_cb,
	};
	unsigned int portid = mnl_socket_get_portid(nl->sk);
	int ret;

	memset(&ack, 0, sizeof(ack));
	if (mnl_socket_sendto(nl->sk, nlh, nlh->nlmsg_len) < 0)
		return -errno;
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

	int one = 1;

	memset(nl, 0, sizeof(*nl));
	nl->sk = mnl_socket_open(NETLINK_GENERIC);
	if (!nl->sk || mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0)
		return -1;
	if (mnl_socket_setsockopt(nl->sk, NETLINK_EXT_ACK, &one, sizeof(one)) ||
	    mnl_socket_setsockopt(nl->sk, NETLINK_CAP_ACK, &one, sizeof(one)))
		return -1;
	nlh = req(nl, buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, COWMAP_GENL_NAME);
	return talk(nl, nlh, family_cb, nl) || !nl->family ? -1 : 0;
}

/* What a session message said. */
struct sess {
	uint64_t id, records, private_pages, ino, size, session_size;
	uint32_t state, uid, pid;
	int has_session_size;
	char path[256];
};

struct sess_list {
	struct sess s[64];
	int n;
};

static int sess_attr_cb(const struct nlattr *a, void *data)
{
	struct sess *s = data;

	switch (mnl_attr_get_type(a)) {
	case COWMAP_A_SESSION_ID: s->id = mnl_attr_get_u64(a); break;
	case COWMAP_A_RECORDS: s->records = mnl_attr_get_u64(a); break;
	case COWMAP_A_PRIVATE_PAGES: s->private_pages = mnl_attr_get_u64(a); break;
	case COWMAP_A_INO: s->ino = mnl_attr_get_u64(a); break;
	case COWMAP_A_SIZE: s->size = mnl_attr_get_u64(a); break;
	case COWMAP_A_SESSION_SIZE:
		s->session_size = mnl_attr_get_u64(a);
		s->has_session_size = 1;
		break;
	case COWMAP_A_STATE: s->state = mnl_attr_get_u32(a); break;
	case COWMAP_A_OWNER_UID: s->uid = mnl_attr_get_u32(a); break;
	case COWMAP_A_OWNER_PID: s->pid = mnl_attr_get_u32(a); break;
	case COWMAP_A_PATH:
		snprintf(s->path, sizeof(s->path), "%s", mnl_attr_get_str(a));
		break;
	}
	return MNL_CB_OK;
}

static int sess_cb(const struct nlmsghdr *nlh, void *data)
{
	struct sess_list *l = data;

	if (l->n == 64)
		return MNL_CB_ERROR;
	memset(&l->s[l->n], 0, sizeof(l->s[0]));
	mnl_attr_parse(nlh, sizeof(struct genlmsghdr), sess_attr_cb, &l->s[l->n]);
	l->n++;
	return MNL_CB_OK;
}

static int list_sessions(struct nl *nl, struct sess_list *l)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	l->n = 0;
	return talk(nl, req(nl, buf, nl->family, COWMAP_CMD_SESSION_GET, NLM_F_DUMP),
		    sess_cb, l);
}

static int get_session(struct nl *nl, uint64_t id, struct sess_list *l)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = req(nl, buf, nl->family, COWMAP_CMD_SESSION_GET, 0);

	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, id);
	l->n = 0;
	return talk(nl, nlh, sess_cb, l);
}

/* A log dump, reassembled as the bytes of a log. */
static int log_attr_cb(const struct nlattr *a, void *data)
{
	struct log *l = data;
	uint16_t t = mnl_attr_get_type(a);

	if (t == COWMAP_A_LOG_HEADER || t == COWMAP_A_RECORD) {
		l->buf = realloc(l->buf, l->len + mnl_attr_get_payload_len(a));
		memcpy(l->buf + l->len, mnl_attr_get_payload(a),
		       mnl_attr_get_payload_len(a));
		l->len += mnl_attr_get_payload_len(a);
	}
	return MNL_CB_OK;
}

static int log_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), log_attr_cb, data);
}

static int nl_dump_log(struct nl *nl, uint64_t id, struct log *l)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = req(nl, buf, nl->family, COWMAP_CMD_LOG_GET, NLM_F_DUMP);

	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, id);
	l->buf = NULL;
	l->len = 0;
	return talk(nl, nlh, log_cb, l);
}

static uint64_t session_id(int fd)
{
	struct cowmap_status st;

	return cm_status(fd, &st) ? 0 : st.session_id;
}

TEST(family_and_sessions)
{
	struct sess_list l;
	struct cowmap_view v = { .flags = COWMAP_VIEW_RDWR | COWMAP_VIEW_CLOEXEC };
	struct nl nl;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "nls", 4 * PG, O_RDONLY);
	int fd = cm_session(file);
	uint64_t id = session_id(fd);
	uint8_t *m = cm_map(fd, 4 * PG, 0);
	struct stat st;

	ASSERT_EQ(0, nl_open(&nl));
	ASSERT_NE(0, nl.group);
	m[0] ^= 1;
	m[PG] ^= 1;
	ASSERT_EQ(2, cm_commit(fd, 0));
	ASSERT_EQ(0, list_sessions(&nl, &l));
	int found = -1;

	for (int i = 0; i < l.n; i++)
		if (l.s[i].id == id)
			found = i;
	ASSERT_LE(0, found);
	ASSERT_EQ(0, fstat(file, &st));
	EXPECT_EQ(st.st_ino, l.s[found].ino);
	EXPECT_EQ(2, l.s[found].records);
	EXPECT_EQ(2, l.s[found].private_pages);
	EXPECT_EQ(COWMAP_STATE_ATTACHED, l.s[found].state);
	EXPECT_EQ(getpid(), l.s[found].pid);
	EXPECT_EQ(0, l.s[found].uid);
	EXPECT_STREQ(path, l.s[found].path);
	/* The session's size: the file's until it sets its own. */
	EXPECT_EQ(4 * PG, l.s[found].size);
	EXPECT_EQ(1, l.s[found].has_session_size);
	EXPECT_EQ(4 * PG, l.s[found].session_size);
	/* One session by id. */
	ASSERT_EQ(0, get_session(&nl, id, &l));
	ASSERT_EQ(1, l.n);
	EXPECT_EQ(id, l.s[0].id);
	EXPECT_EQ(4 * PG, l.s[0].session_size);
	/* A size of its own: netlink says it, the file's stays. */
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_VIEW, &v));
	ASSERT_EQ(0, ftruncate(v.fd, 10 * PG + 5));
	ASSERT_EQ(0, get_session(&nl, id, &l));
	ASSERT_EQ(1, l.n);
	EXPECT_EQ(10 * PG + 5, l.s[0].session_size);
	EXPECT_EQ(4 * PG, l.s[0].size);
	ASSERT_EQ(0, ftruncate(v.fd, 7));
	ASSERT_EQ(0, get_session(&nl, id, &l));
	EXPECT_EQ(7, l.s[0].session_size);
	close(v.fd);
	EXPECT_EQ(-ENOENT, get_session(&nl, 1ULL << 60, &l));
	munmap(m, 4 * PG);
	cm_end(fd);
	close(file);
	unlink(path);
	mnl_socket_close(nl.sk);
}

TEST(bad_requests)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct sess_list l;
	struct log lg;
	struct nlmsghdr *nlh;
	struct nl nl;

	ASSERT_EQ(0, nl_open(&nl));
	/* A do without the id; a log dump without it; a wrong type. */
	EXPECT_EQ(-EINVAL, talk(&nl, req(&nl, buf, nl.family, COWMAP_CMD_SESSION_GET, 0),
				sess_cb, &l));
	EXPECT_EQ(COWMAP_A_SESSION_ID, ack.miss_type);
	EXPECT_EQ(-EINVAL, talk(&nl, req(&nl, buf, nl.family, COWMAP_CMD_LOG_GET,
					 NLM_F_DUMP), log_cb, &lg));
	EXPECT_STREQ("COWMAP_A_SESSION_ID is required", ack.msg);
	nlh = req(&nl, buf, nl.family, COWMAP_CMD_LOG_GET, NLM_F_DUMP);
	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, 1ULL << 60);
	EXPECT_EQ(-ENOENT, talk(&nl, nlh, log_cb, &lg));
	EXPECT_STREQ("no such session", ack.msg);
	nlh = req(&nl, buf, nl.family, COWMAP_CMD_SESSION_GET, 0);
	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, 1ULL << 60);
	EXPECT_EQ(-ENOENT, talk(&nl, nlh, sess_cb, &l));
	EXPECT_STREQ("no such session", ack.msg);
	nlh = req(&nl, buf, nl.family, COWMAP_CMD_SESSION_GET, 0);
	mnl_attr_put_u32(nlh, COWMAP_A_SESSION_ID, 1);
	EXPECT_GT(0, talk(&nl, nlh, sess_cb, &l));
	EXPECT_NE(0, ack.msg[0]);	/* the policy says what is wrong */
	/* Unknown command, unknown attribute. */
	EXPECT_EQ(-EOPNOTSUPP, talk(&nl, req(&nl, buf, nl.family, 99, 0), sess_cb, &l));
	nlh = req(&nl, buf, nl.family, COWMAP_CMD_SESSION_GET, 0);
	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, 1);
	mnl_attr_put_u32(nlh, __COWMAP_A_MAX + 5, 1);
	EXPECT_EQ(-EINVAL, talk(&nl, nlh, sess_cb, &l));
	EXPECT_NE(0, ack.msg[0]);
	/* The event command is not a request. */
	EXPECT_EQ(-EOPNOTSUPP, talk(&nl, req(&nl, buf, nl.family, COWMAP_CMD_EVENT, 0),
				    sess_cb, &l));
	mnl_socket_close(nl.sk);
}

TEST(log_dump_equals_ioctl_dump)
{
	struct log a = { 0 }, b = { 0 };
	struct nl nl;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "nll", 64 * PG, O_RDONLY);
	int fd = cm_session(file);
	uint8_t *m = cm_map(fd, 64 * PG, 0);

	ASSERT_EQ(0, nl_open(&nl));
	ASSERT_NE(MAP_FAILED, m);
	/* Many small records and a few of the largest size. */
	for (int i = 0; i < 500; i++)
		m[i * 97] ^= 0x55;
	for (size_t i = 40 * PG; i < 64 * PG; i++)
		m[i] = ~cm_pat(i, 0);
	ASSERT_LT(500, cm_commit(fd, 0));
	ASSERT_EQ(0, dump_all(fd, &a, 1 << 20));
	ASSERT_EQ(0, nl_dump_log(&nl, session_id(fd), &b));
	ASSERT_EQ(a.len, b.len);
	EXPECT_EQ(0, memcmp(a.buf, b.buf, a.len));
	EXPECT_EQ(0, parse_log(&b));
	free(a.buf);
	free(b.buf);
	munmap(m, 64 * PG);
	cm_end(fd);
	close(file);
	unlink(path);
	mnl_socket_close(nl.sk);
}

/* Events: collected from the multicast group. */
struct ev_list {
	uint32_t ev[64];
	uint64_t id[64], a[64];
	int n;
};

static int ev_attr_cb(const struct nlattr *at, void *data)
{
	struct ev_list *l = data;

	switch (mnl_attr_get_type(at)) {
	case COWMAP_A_EVENT: l->ev[l->n] = mnl_attr_get_u32(at); break;
	case COWMAP_A_SESSION_ID: l->id[l->n] = mnl_attr_get_u64(at); break;
	case COWMAP_A_RECORDS:
	case COWMAP_A_APPLIED:
		l->a[l->n] = mnl_attr_get_u64(at);
		break;
	}
	return MNL_CB_OK;
}

static int ev_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ev_list *l = data;

	if (l->n == 64)
		return MNL_CB_ERROR;
	l->a[l->n] = 0;
	mnl_attr_parse(nlh, sizeof(struct genlmsghdr), ev_attr_cb, l);
	l->n++;
	return MNL_CB_OK;
}

/* Read the events queued on @nl for session @id. */
static void read_events(struct nl *nl, uint64_t id, struct ev_list *out)
{
	static char buf[64 * 1024];
	struct ev_list all = { 0 };
	int n;

	while ((n = recv(mnl_socket_get_fd(nl->sk), buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		mnl_cb_run(buf, n, 0, 0, ev_cb, &all);
	out->n = 0;
	for (int i = 0; i < all.n; i++)
		if (all.id[i] == id) {
			out->ev[out->n] = all.ev[i];
			out->a[out->n++] = all.a[i];
		}
}

TEST(events)
{
	struct cowmap_merge mg = { 0 };
	struct ev_list l;
	struct nl nl;
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "nle", 4 * PG, O_RDWR);
	int fd, limit_fd;
	uint64_t id;
	uint8_t *m;

	ASSERT_EQ(0, nl_open(&nl));
	ASSERT_EQ(0, mnl_socket_setsockopt(nl.sk, NETLINK_ADD_MEMBERSHIP, &nl.group,
					   sizeof(nl.group)));
	fd = cm_session(file);
	id = session_id(fd);
	m = cm_map(fd, 4 * PG, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[1] ^= 1;
	m[2 * PG] ^= 1;
	ASSERT_EQ(2, cm_commit(fd, 0));
	mg.target_fd = file;
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_MERGE, &mg));
	ASSERT_EQ(3, pwrite(file, "zzz", 3, 100));
	m[100] ^= 1;
	ASSERT_EQ(1, cm_commit(fd, 0));
	mg = (struct cowmap_merge){ .target_fd = file };
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_MERGE, &mg));	/* a conflict */
	munmap(m, 4 * PG);
	close(fd);	/* an orphan */
	fd = cm_adopt_new(id);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, COWMAP_IOC_DISCARD, 0));
	close(fd);	/* nothing left: closed */
	usleep(100000);
	read_events(&nl, id, &l);
	uint32_t want[] = { COWMAP_EV_ATTACH, COWMAP_EV_COMMIT, COWMAP_EV_MERGE,
			    COWMAP_EV_COMMIT, COWMAP_EV_MERGE, COWMAP_EV_CONFLICT,
			    COWMAP_EV_ORPHAN, COWMAP_EV_ADOPT, COWMAP_EV_DISCARD,
			    COWMAP_EV_CLOSE };
	ASSERT_EQ(sizeof(want) / sizeof(want[0]), l.n);
	for (int i = 0; i < l.n; i++) {
		EXPECT_EQ(want[i], l.ev[i]) TH_LOG("event %d", i);
	}
	EXPECT_EQ(2, l.a[1]);	/* records of the first commit */
	EXPECT_EQ(2, l.a[2]);	/* applied by the first merge */

	/* A limit hit in a fault is reported, from a work item. */
	long old = cm_param_get("max_session_pages");

	limit_fd = cm_session(file);
	id = session_id(limit_fd);
	m = cm_map(limit_fd, 4 * PG, 0);
	ASSERT_EQ(0, cm_param_set("max_session_pages", 2));
	EXPECT_EQ(0, cm_try_write(m, 1));
	EXPECT_EQ(SIGBUS, cm_try_write(m + PG, 1));
	ASSERT_EQ(0, cm_param_set("max_session_pages", old));
	usleep(200000);
	read_events(&nl, id, &l);
	ASSERT_EQ(2, l.n);
	EXPECT_EQ(COWMAP_EV_ATTACH, l.ev[0]);
	EXPECT_EQ(COWMAP_EV_LIMIT, l.ev[1]);
	munmap(m, 4 * PG);
	cm_end(limit_fd);
	close(file);
	unlink(path);
	mnl_socket_close(nl.sk);
}

/* Another uid sees neither the sessions nor their journals. */
TEST(other_uid_sees_nothing)
{
	char path[256];
	int file = cm_mkfile(path, sizeof(path), "nlu", PG, O_RDONLY);
	int fd = cm_session(file);
	uint64_t id = session_id(fd);
	pid_t pid;

	ASSERT_NE(0, id);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct sess_list l;
		struct log lg;
		struct nl nl;

		if (setuid(65534) || nl_open(&nl))
			_exit(10);
		if (list_sessions(&nl, &l))
			_exit(11);
		for (int i = 0; i < l.n; i++)
			if (l.s[i].id == id)
				_exit(12);
		if (get_session(&nl, id, &l) != -ENOENT)
			_exit(13);
		if (nl_dump_log(&nl, id, &lg) != -ENOENT)
			_exit(14);
		_exit(0);
	}
	EXPECT_EQ(0, cm_wait(pid));
	cm_end(fd);
	close(file);
	unlink(path);
}

TEST_HARNESS_MAIN
