/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The raw generic netlink client the netlink, abuse and fuse tests share
 * (libmnl): the family and its events group looked up, a request built,
 * an exchange run.
 */
#ifndef COWMAP_NL_TEST_H
#define COWMAP_NL_TEST_H

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>

#include "cowmap_test.h"

struct nl {
	struct mnl_socket *sk;
	uint16_t family;
	uint32_t group;
	unsigned int seq;
};

static int family_attr_cb(const struct nlattr *a, void *data)
{
	struct nl *nl = data;

	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID)
		nl->family = mnl_attr_get_u16(a);
	if (mnl_attr_get_type(a) == CTRL_ATTR_MCAST_GROUPS) {
		struct nlattr *grp, *x;

		mnl_attr_for_each_nested(grp, a)
			mnl_attr_for_each_nested(x, grp)
				if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_ID)
					nl->group = mnl_attr_get_u32(x);
	}
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

static inline int cm_nl_ack_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return MNL_CB_ERROR;
	if (!e->error)
		return MNL_CB_STOP;
	errno = -e->error;
	return MNL_CB_ERROR;
}

static inline int cm_nl_done_cb(const struct nlmsghdr *nlh, void *data)
{
	int err = 0;

	if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(err)))
		memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
	if (err >= 0)
		return MNL_CB_STOP;
	errno = -err;
	return MNL_CB_ERROR;
}

/*
 * Send @nlh (with write(2) if @via_write: no destination address, as a
 * privileged program made to write attacker bytes would), run @cb on
 * every answer; 0 or -errno.
 */
static inline int cm_nl_talk(struct nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb,
			     void *data, bool via_write)
{
	static char buf[256 * 1024];	/* a log dump message can be 33 KiB */
	static mnl_cb_t ctl[NLMSG_MIN_TYPE] = {
		[NLMSG_ERROR] = cm_nl_ack_cb,
		[NLMSG_DONE] = cm_nl_done_cb,
	};
	unsigned int portid = mnl_socket_get_portid(nl->sk);
	int ret;

	if (via_write) {
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

/* A socket with the cowmap family (and its events group) looked up. */
static inline int cm_nl_open(struct nl *nl)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;

	memset(nl, 0, sizeof(*nl));
	nl->sk = mnl_socket_open(NETLINK_GENERIC);
	if (!nl->sk || mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0)
		return -1;
	nlh = req(nl, buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, COWMAP_GENL_NAME);
	return cm_nl_talk(nl, nlh, family_cb, nl, false) || !nl->family ? -1 : 0;
}

#endif /* COWMAP_NL_TEST_H */
