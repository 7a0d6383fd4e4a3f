// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/*
 * The generic netlink family "cowmap" (docs/netlink.md) through libmnl:
 * list and look up sessions, fetch a journal, receive events. Errors come
 * back as negative errno values; the kernel's extended ACK message of the
 * last failed request is kept in the handle (cowmap_nl_extack()).
 *
 * Structure: one request/answer loop (nl_talk()) with our own handlers for
 * the control messages, so that NLMSG_ERROR and NLMSG_DONE can hand us
 * their extack TLVs, which libmnl's default handlers drop.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "internal.h"

/* A log dump message holds up to one largest record (~33 KiB): be generous. */
#define NL_BUF_SIZE	(256u * 1024)

struct cowmap_nl {
	struct mnl_socket *sk;
	uint32_t portid;
	uint32_t seq;
	uint16_t family;
	uint32_t group;		/* the "events" multicast group, 0 if none */
	int subscribed;
	char extack[256];
	uint8_t *buf;		/* receive buffer, NL_BUF_SIZE */
	size_t evlen, evoff;	/* events received but not yet returned */
	char path[PATH_MAX];	/* strings of the last session_get */
	char jpath[PATH_MAX];
};

/* One request in flight: what to do with its answers. */
struct nl_req {
	struct cowmap_nl *nl;
	mnl_cb_t data_cb;	/* per data message */
	void *arg;
	int err;		/* negative errno from the kernel, or 0 */
};

static int extack_attr_cb(const struct nlattr *a, void *data)
{
	struct cowmap_nl *nl = data;

	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
		snprintf(nl->extack, sizeof(nl->extack), "%s", mnl_attr_get_str(a));
	return MNL_CB_OK;
}

/* The TLVs behind an error (@off: bytes of payload before them). */
static void parse_extack(struct cowmap_nl *nl, const struct nlmsghdr *nlh, size_t off)
{
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (mnl_nlmsg_get_payload_len(nlh) <= off)
		return;
	mnl_attr_parse(nlh, off, extack_attr_cb, nl);
}

static int ctl_error(const struct nlmsghdr *nlh, void *data)
{
	struct nl_req *r = data;
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*e)) {
		r->err = -EBADMSG;
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if (!e->error)
		return MNL_CB_STOP;	/* the ACK */
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	parse_extack(r->nl, nlh, off);
	r->err = e->error < 0 ? e->error : -e->error;
	errno = -r->err;
	return MNL_CB_ERROR;
}

/* NLMSG_DONE carries the dump's last return value, and extack TLVs. */
static int ctl_done(const struct nlmsghdr *nlh, void *data)
{
	struct nl_req *r = data;
	int err;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(int))
		return MNL_CB_STOP;
	memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
	if (err >= 0)
		return MNL_CB_STOP;
	parse_extack(r->nl, nlh, sizeof(int));
	r->err = err;
	errno = -err;
	return MNL_CB_ERROR;
}

static int ctl_overrun(const struct nlmsghdr *nlh __maybe_unused, void *data)
{
	struct nl_req *r = data;

	r->err = -ENOBUFS;
	errno = ENOBUFS;
	return MNL_CB_ERROR;
}

static int ctl_noop(const struct nlmsghdr *nlh __maybe_unused,
		    void *data __maybe_unused)
{
	return MNL_CB_OK;
}

static const mnl_cb_t ctl_cbs[NLMSG_MIN_TYPE] = {
	[NLMSG_NOOP] = ctl_noop,
	[NLMSG_ERROR] = ctl_error,
	[NLMSG_DONE] = ctl_done,
	[NLMSG_OVERRUN] = ctl_overrun,
};

/* Data messages of a request; events that slip in are not answers. */
static int data_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nl_req *r = data;
	const struct genlmsghdr *g = mnl_nlmsg_get_payload(nlh);

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*g))
		return MNL_CB_OK;
	if (nlh->nlmsg_type == r->nl->family && g->cmd == COWMAP_CMD_EVENT)
		return MNL_CB_OK;
	return r->data_cb ? r->data_cb(nlh, r->arg) : MNL_CB_OK;
}

static struct nlmsghdr *nl_req_put(struct cowmap_nl *nl, void *buf, uint16_t type,
				   uint8_t cmd, uint8_t version, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++nl->seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = version;
	return nlh;
}

/* Send @nlh, run @cb (with @arg) on each answer. 0 or a negative errno. */
static int nl_talk(struct cowmap_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *arg)
{
	struct nl_req r = { .nl = nl, .data_cb = cb, .arg = arg };
	ssize_t n;
	int ret;

	nl->extack[0] = 0;
	if (mnl_socket_sendto(nl->sk, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(nl->sk, nl->buf, NL_BUF_SIZE);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		errno = 0;
		/*
		 * libmnl 1.0.4 (Debian 12) declares the array non-const
		 * but only reads it; ours stays in read-only memory.
		 */
		ret = mnl_cb_run2(nl->buf, n, nlh->nlmsg_seq, nl->portid, data_cb, &r,
				  (mnl_cb_t *)ctl_cbs, NLMSG_MIN_TYPE);
	} while (ret > MNL_CB_STOP);
	if (ret < 0)
		return r.err ? r.err : errno ? -errno : -EPROTO;
	return 0;
}

/* --- open, close -------------------------------------------------------- */

struct family_ctx {
	struct cowmap_nl *nl;
	int group_wanted;
};

static int mcgrp_cb(const struct nlattr *grp, struct cowmap_nl *nl)
{
	const struct nlattr *x;
	const char *name = NULL;
	uint32_t id = 0;

	mnl_attr_for_each_nested(x, grp) {
		if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_ID &&
		    mnl_attr_validate(x, MNL_TYPE_U32) >= 0)
			id = mnl_attr_get_u32(x);
		if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_NAME &&
		    mnl_attr_validate(x, MNL_TYPE_NUL_STRING) >= 0)
			name = mnl_attr_get_str(x);
	}
	if (name && !strcmp(name, COWMAP_MCGRP_EVENTS))
		nl->group = id;
	return MNL_CB_OK;
}

static int family_attr_cb(const struct nlattr *a, void *data)
{
	struct cowmap_nl *nl = data;
	const struct nlattr *grp;

	switch (mnl_attr_get_type(a)) {
	case CTRL_ATTR_FAMILY_ID:
		if (mnl_attr_validate(a, MNL_TYPE_U16) >= 0)
			nl->family = mnl_attr_get_u16(a);
		break;
	case CTRL_ATTR_MCAST_GROUPS:
		mnl_attr_for_each_nested(grp, a)
			mcgrp_cb(grp, nl);
		break;
	}
	return MNL_CB_OK;
}

static int family_cb(const struct nlmsghdr *nlh, void *data)
{
	mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_attr_cb, data);
	return MNL_CB_OK;
}

API int cowmap_nl_open(struct cowmap_nl **nlp)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct cowmap_nl *nl;
	struct nlmsghdr *nlh;
	int one = 1, ret;

	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->buf = malloc(NL_BUF_SIZE);
	if (!nl->buf) {
		ret = -ENOMEM;
		goto fail;
	}
	nl->sk = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
	if (!nl->sk) {
		ret = -errno;
		goto fail;
	}
	if (mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto fail;
	}
	nl->portid = mnl_socket_get_portid(nl->sk);
	/* Error messages from the kernel; answers without our request copied. */
	mnl_socket_setsockopt(nl->sk, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl->sk, NETLINK_CAP_ACK, &one, sizeof(one));
	nl->seq = (uint32_t)getpid() << 8;

	nlh = nl_req_put(nl, buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, 0);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, COWMAP_GENL_NAME);
	ret = nl_talk(nl, nlh, family_cb, nl);
	/* No family "cowmap": the module is not loaded (as in cowmap_open()). */
	if (ret == -ENOENT || (!ret && !nl->family))
		ret = -ENODEV;
	if (ret)
		goto fail;
	*nlp = nl;
	return 0;
fail:
	cowmap_nl_close(nl);
	return ret;
}

API void cowmap_nl_close(struct cowmap_nl *nl)
{
	if (!nl)
		return;
	if (nl->sk)
		mnl_socket_close(nl->sk);
	free(nl->buf);
	free(nl);
}

API int cowmap_nl_fd(const struct cowmap_nl *nl)
{
	return mnl_socket_get_fd(nl->sk);
}

API const char *cowmap_nl_extack(const struct cowmap_nl *nl)
{
	return nl->extack[0] ? nl->extack : NULL;
}

/* --- sessions ------------------------------------------------------------ */

struct sess_ctx {
	struct cowmap_nl *nl;
	struct cowmap_nl_session *s;
	cowmap_nl_session_cb cb;	/* dump: per session */
	void *arg;
	int n;
};

static uint64_t attr_u64(const struct nlattr *a)
{
	return mnl_attr_validate(a, MNL_TYPE_U64) >= 0 ? mnl_attr_get_u64(a) : 0;
}

static uint32_t attr_u32(const struct nlattr *a)
{
	return mnl_attr_validate(a, MNL_TYPE_U32) >= 0 ? mnl_attr_get_u32(a) : 0;
}

static int sess_attr_cb(const struct nlattr *a, void *data)
{
	struct sess_ctx *c = data;
	struct cowmap_nl_session *s = c->s;
	const char *str;

	switch (mnl_attr_get_type(a)) {
	case COWMAP_A_SESSION_ID: s->session_id = attr_u64(a); break;
	case COWMAP_A_STATE: s->state = attr_u32(a); break;
	case COWMAP_A_OWNER_PID: s->owner_pid = attr_u32(a); break;
	case COWMAP_A_OWNER_UID: s->owner_uid = attr_u32(a); break;
	case COWMAP_A_DEV_MAJOR: s->dev_major = attr_u32(a); break;
	case COWMAP_A_DEV_MINOR: s->dev_minor = attr_u32(a); break;
	case COWMAP_A_INO: s->ino = attr_u64(a); break;
	case COWMAP_A_SIZE: s->size = attr_u64(a); break;
	case COWMAP_A_PRIVATE_PAGES: s->private_pages = attr_u64(a); break;
	case COWMAP_A_TWIN_PAGES: s->twin_pages = attr_u64(a); break;
	case COWMAP_A_RECORDS: s->records = attr_u64(a); break;
	case COWMAP_A_JOURNAL_BYTES: s->journal_bytes = attr_u64(a); break;
	case COWMAP_A_MERGED: s->merged = attr_u64(a); break;
	case COWMAP_A_MAPPINGS: s->mappings = attr_u64(a); s->has_counters = 1; break;
	case COWMAP_A_BASE_PAGES: s->base_pages = attr_u64(a); break;
	case COWMAP_A_FAULTS: s->faults = attr_u64(a); break;
	case COWMAP_A_COW_COPIES: s->cow_copies = attr_u64(a); break;
	case COWMAP_A_REARMS: s->rearms = attr_u64(a); break;
	case COWMAP_A_BASE_INVALIDATIONS: s->base_invalidations = attr_u64(a); break;
	case COWMAP_A_LIMIT_HITS: s->limit_hits = attr_u64(a); break;
	case COWMAP_A_COMMITS: s->commits = attr_u64(a); break;
	case COWMAP_A_SESSION_SIZE:
		s->session_size = attr_u64(a);
		s->has_session_size = 1;
		break;
	case COWMAP_A_PATH:
	case COWMAP_A_JOURNAL_PATH:
		if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
			break;
		str = mnl_attr_get_str(a);
		if (mnl_attr_get_type(a) == COWMAP_A_PATH) {
			snprintf(c->nl->path, sizeof(c->nl->path), "%s", str);
			s->path = c->nl->path;
		} else {
			snprintf(c->nl->jpath, sizeof(c->nl->jpath), "%s", str);
			s->journal_path = c->nl->jpath;
		}
		break;
	}
	return MNL_CB_OK;
}

static int sess_cb(const struct nlmsghdr *nlh, void *data)
{
	struct sess_ctx *c = data;
	struct cowmap_nl_session one;

	if (c->cb)
		c->s = &one;
	memset(c->s, 0, sizeof(*c->s));
	mnl_attr_parse(nlh, sizeof(struct genlmsghdr), sess_attr_cb, c);
	c->n++;
	if (c->cb)
		c->cb(c->arg, &one);
	return MNL_CB_OK;
}

API int cowmap_nl_session_get(struct cowmap_nl *nl, uint64_t session_id,
			      struct cowmap_nl_session *s)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct sess_ctx c = { .nl = nl, .s = s };
	struct nlmsghdr *nlh;
	int ret;

	nlh = nl_req_put(nl, buf, nl->family, COWMAP_CMD_SESSION_GET,
			 COWMAP_GENL_VERSION, 0);
	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, session_id);
	ret = nl_talk(nl, nlh, sess_cb, &c);
	if (!ret && c.n != 1)
		ret = -EPROTO;
	return ret;
}

API int cowmap_nl_sessions(struct cowmap_nl *nl, cowmap_nl_session_cb cb, void *arg)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct sess_ctx c = { .nl = nl, .cb = cb, .arg = arg };
	struct nlmsghdr *nlh;
	int ret;

	nlh = nl_req_put(nl, buf, nl->family, COWMAP_CMD_SESSION_GET,
			 COWMAP_GENL_VERSION, NLM_F_DUMP);
	ret = nl_talk(nl, nlh, sess_cb, &c);
	return ret ? ret : c.n;
}

/* --- journal ---------------------------------------------------------------- */

struct log_ctx {
	uint8_t *buf;
	size_t len, cap;
	int header;	/* a header arrived */
	int err;
};

static int log_attr_cb(const struct nlattr *a, void *data)
{
	struct log_ctx *c = data;
	uint16_t t = mnl_attr_get_type(a);
	size_t n = mnl_attr_get_payload_len(a);

	if (t != COWMAP_A_LOG_HEADER && t != COWMAP_A_RECORD)
		return MNL_CB_OK;
	/* The header first, once; records after it. */
	if ((t == COWMAP_A_LOG_HEADER) == !!c->header || !n) {
		c->err = -EPROTO;
		return MNL_CB_ERROR;
	}
	if (t == COWMAP_A_LOG_HEADER)
		c->header = 1;
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 64 * 1024;
		uint8_t *p;

		while (cap < c->len + n)
			cap *= 2;
		p = realloc(c->buf, cap);
		if (!p) {
			c->err = -ENOMEM;
			return MNL_CB_ERROR;
		}
		c->buf = p;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, mnl_attr_get_payload(a), n);
	c->len += n;
	return MNL_CB_OK;
}

static int log_cb(const struct nlmsghdr *nlh, void *data)
{
	struct log_ctx *c = data;

	if (mnl_attr_parse(nlh, sizeof(struct genlmsghdr), log_attr_cb, c) < 0 && c->err) {
		errno = -c->err;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

API int cowmap_nl_log_get(struct cowmap_nl *nl, uint64_t session_id, void **buf,
			  size_t *len)
{
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct log_ctx c = { 0 };
	struct nlmsghdr *nlh;
	int ret;

	nlh = nl_req_put(nl, req, nl->family, COWMAP_CMD_LOG_GET, COWMAP_GENL_VERSION,
			 NLM_F_DUMP);
	mnl_attr_put_u64(nlh, COWMAP_A_SESSION_ID, session_id);
	ret = nl_talk(nl, nlh, log_cb, &c);
	if (c.err)
		ret = c.err;
	else if (!ret && !c.header)
		ret = -ENOENT;	/* gone before the first message */
	if (ret) {
		free(c.buf);
		return ret;
	}
	*buf = c.buf;
	*len = c.len;
	return 0;
}

/* --- events ------------------------------------------------------------------- */

API int cowmap_nl_subscribe(struct cowmap_nl *nl)
{
	int size = 1 << 20;

	if (!nl->group)
		return -ENOENT;
	if (nl->subscribed)
		return 0;
	/* Room for bursts; beyond rmem_max only with CAP_NET_ADMIN. */
	if (setsockopt(cowmap_nl_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
		setsockopt(cowmap_nl_fd(nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (mnl_socket_setsockopt(nl->sk, NETLINK_ADD_MEMBERSHIP, &nl->group,
				  sizeof(nl->group)) < 0)
		return -errno;
	nl->subscribed = 1;
	return 0;
}

static int ev_attr_cb(const struct nlattr *a, void *data)
{
	struct cowmap_nl_event *ev = data;

	switch (mnl_attr_get_type(a)) {
	case COWMAP_A_EVENT: ev->event = attr_u32(a); break;
	case COWMAP_A_SESSION_ID: ev->session_id = attr_u64(a); break;
	case COWMAP_A_OWNER_UID: ev->owner_uid = attr_u32(a); break;
	case COWMAP_A_RECORDS:
		ev->records = attr_u64(a);
		ev->present |= COWMAP_NL_EV_HAS_RECORDS;
		break;
	case COWMAP_A_JOURNAL_BYTES:
		ev->journal_bytes = attr_u64(a);
		ev->present |= COWMAP_NL_EV_HAS_RECORDS;
		break;
	case COWMAP_A_APPLIED:
		ev->applied = attr_u64(a);
		ev->present |= COWMAP_NL_EV_HAS_MERGE;
		break;
	case COWMAP_A_ALREADY:
		ev->already = attr_u64(a);
		ev->present |= COWMAP_NL_EV_HAS_MERGE;
		break;
	case COWMAP_A_CONFLICTS:
		ev->conflicts = attr_u64(a);
		ev->present |= COWMAP_NL_EV_HAS_CONFLICTS;
		break;
	case COWMAP_A_LIMIT_HITS:
		ev->limit_hits = attr_u64(a);
		ev->present |= COWMAP_NL_EV_HAS_LIMIT_HITS;
		break;
	}
	return MNL_CB_OK;
}

/* The next event message in the buffer: 1, or 0 if none is left. */
static int ev_from_buf(struct cowmap_nl *nl, struct cowmap_nl_event *ev)
{
	while (nl->evoff < nl->evlen) {
		const struct nlmsghdr *nlh = (void *)(nl->buf + nl->evoff);
		int left = nl->evlen - nl->evoff;
		const struct genlmsghdr *g;

		if (!mnl_nlmsg_ok(nlh, left)) {
			nl->evoff = nl->evlen;
			break;
		}
		nl->evoff += NLMSG_ALIGN(nlh->nlmsg_len);
		g = mnl_nlmsg_get_payload(nlh);
		if (nlh->nlmsg_type != nl->family ||
		    mnl_nlmsg_get_payload_len(nlh) < sizeof(*g) ||
		    g->cmd != COWMAP_CMD_EVENT)
			continue;
		memset(ev, 0, sizeof(*ev));
		mnl_attr_parse(nlh, sizeof(*g), ev_attr_cb, ev);
		if (ev->event)
			return 1;
	}
	nl->evoff = nl->evlen = 0;
	return 0;
}

API int cowmap_nl_event_next(struct cowmap_nl *nl, struct cowmap_nl_event *ev,
			     int timeout_ms)
{
	for (;;) {
		struct pollfd p = { .fd = cowmap_nl_fd(nl), .events = POLLIN };
		ssize_t n;
		int ret;

		if (ev_from_buf(nl, ev))
			return 1;
		if (!nl->subscribed)
			return -EINVAL;
		ret = poll(&p, 1, timeout_ms);
		if (ret < 0)
			return -errno;	/* -EINTR: a signal */
		if (ret == 0)
			return 0;
		n = recv(p.fd, nl->buf, NL_BUF_SIZE, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EAGAIN)
				continue;
			return -errno;	/* -ENOBUFS: events were lost */
		}
		if ((size_t)n > NL_BUF_SIZE)
			continue;	/* cannot happen with our messages */
		nl->evlen = n;
		nl->evoff = 0;
	}
}

API const char *cowmap_nl_event_name(uint32_t event)
{
	switch (event) {
	case COWMAP_EV_ATTACH: return "attach";
	case COWMAP_EV_COMMIT: return "commit";
	case COWMAP_EV_MERGE: return "merge";
	case COWMAP_EV_CONFLICT: return "conflict";
	case COWMAP_EV_ORPHAN: return "orphan";
	case COWMAP_EV_ADOPT: return "adopt";
	case COWMAP_EV_DISCARD: return "discard";
	case COWMAP_EV_LIMIT: return "limit";
	case COWMAP_EV_DROPPED: return "dropped";
	case COWMAP_EV_CLOSE: return "close";
	case COWMAP_EV_EXPIRED: return "expired";
	}
	return NULL;
}

/* Changed in 0.2.0: the LIBCOWMAP_0 versions are in compat.c. */
CM_VERSION_1(cowmap_nl_session_get);
CM_VERSION_1(cowmap_nl_event_next);
