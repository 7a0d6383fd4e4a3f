/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The raw generic netlink client the netlink and abuse tests share (libmnl):
 * the family and its events group looked up, a request built.
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

#endif /* COWMAP_NL_TEST_H */
