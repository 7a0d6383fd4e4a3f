// SPDX-License-Identifier: GPL-2.0
/*
 * Generic netlink family "cowmap": list sessions, dump a journal, and
 * multicast events. It only observes: every change of state goes through
 * a session fd. A socket is treated like an fd: what it may see is decided
 * by the credentials of whoever opened it (and, for CAP_SYS_ADMIN, also of
 * the task that sends), never by the sending task alone. Without
 * CAP_SYS_ADMIN a socket sees the sessions of its opener's effective uid;
 * the events group is for CAP_SYS_ADMIN only.
 */
#include <linux/cred.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>
#include <net/sock.h>

#include "compat.h"
#include "cowmap.h"

static const struct nla_policy cowmap_get_policy[COWMAP_A_MAX + 1] = {
	[COWMAP_A_SESSION_ID] = { .type = NLA_U64 },
};

static int cowmap_nl_session_get_doit(struct sk_buff *skb, struct genl_info *info);
static int cowmap_nl_session_dumpit(struct sk_buff *skb, struct netlink_callback *cb);
static int cowmap_nl_log_dumpit(struct sk_buff *skb, struct netlink_callback *cb);

/*
 * A session message: the fixed attributes, and the backing file's and the
 * journal file's paths, each up to PATH_MAX with its NUL.
 */
#define COWMAP_NL_SESSION_ALLOC (NLMSG_DEFAULT_SIZE + 2 * nla_total_size(PATH_MAX))

/* Every message of a log dump can hold the largest record. */
#define COWMAP_NL_LOG_ALLOC (sizeof(struct cowmap_log_record) + \
			     2 * COWMAP_LOG_MAX_RUN + 1024)

static bool cowmap_nl_may_see(const struct sk_buff *skb,
			      struct cowmap_session *s);

/*
 * Check a log dump request: the id is there and names a session the caller
 * may see. Returns the id in @id.
 */
static int cowmap_nl_log_check(struct netlink_callback *cb,
			       struct netlink_ext_ack *extack, u64 *id)
{
	struct nlattr **attrs = cowmap_dump_attrs(cb);
	struct cowmap_session *s;
	bool visible;

	if (!attrs[COWMAP_A_SESSION_ID]) {
		NL_SET_ERR_MSG(extack, "COWMAP_A_SESSION_ID is required");
		return -EINVAL;
	}
	*id = nla_get_u64(attrs[COWMAP_A_SESSION_ID]);
	s = cowmap_session_get(*id);
	visible = s && cowmap_nl_may_see(cb->skb, s);
	if (s)
		cowmap_session_put(s);
	if (!visible) {
		NL_SET_ERR_MSG_ATTR(extack, attrs[COWMAP_A_SESSION_ID],
				    "no such session");
		return -ENOENT;
	}
	return 0;
}

/*
 * Check the request here when the kernel gives .start an extack (6.2 and
 * later): its error is then an NLMSG_ERROR reply with the message. 6.1
 * calls .start without one, so the check waits for the first .dumpit,
 * whose error and message arrive in NLMSG_DONE (cb->args[2] says so).
 */
static int cowmap_nl_log_start(struct netlink_callback *cb)
{
	u64 id;
	int ret;

	cb->min_dump_alloc = COWMAP_NL_LOG_ALLOC;
	if (!cb->extack) {
		cb->args[2] = 1;
		return 0;
	}
	ret = cowmap_nl_log_check(cb, cb->extack, &id);
	if (ret)
		return ret;
	cb->args[0] = id;
	return 0;
}

/* Every message of a session dump can hold a session with two long paths. */
static int cowmap_nl_session_start(struct netlink_callback *cb)
{
	cb->min_dump_alloc = COWMAP_NL_SESSION_ALLOC;
	return 0;
}

static const struct genl_ops cowmap_nl_ops[] = {
	{
		.cmd = COWMAP_CMD_SESSION_GET,
		.start = cowmap_nl_session_start,
		.doit = cowmap_nl_session_get_doit,
		.dumpit = cowmap_nl_session_dumpit,
		.policy = cowmap_get_policy,
		.maxattr = COWMAP_A_MAX,
	},
	{
		.cmd = COWMAP_CMD_LOG_GET,
		.start = cowmap_nl_log_start,
		.dumpit = cowmap_nl_log_dumpit,
		.policy = cowmap_get_policy,
		.maxattr = COWMAP_A_MAX,
	},
};

static const struct genl_multicast_group cowmap_nl_mcgrps[] = {
	/* Events name other users' sessions: for CAP_SYS_ADMIN only. */
	{ .name = COWMAP_MCGRP_EVENTS, .flags = GENL_MCAST_CAP_SYS_ADMIN },
};

static struct genl_family cowmap_nl_family __ro_after_init = {
	.name = COWMAP_GENL_NAME,
	.version = COWMAP_GENL_VERSION,
	.maxattr = COWMAP_A_MAX,
	.ops = cowmap_nl_ops,
	.n_ops = ARRAY_SIZE(cowmap_nl_ops),
	.mcgrps = cowmap_nl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(cowmap_nl_mcgrps),
	.parallel_ops = true,
	.module = THIS_MODULE,
};

/* Limit events happen in the fault path: they are sent from here. */
static struct workqueue_struct *cowmap_wq;

/*
 * May the socket that sent @skb see @s? The socket's opener decides, like
 * for an fd: a privileged process that writes a request to a socket an
 * unprivileged one opened (CVE-2014-0181) gets only what the opener may
 * see. CAP_SYS_ADMIN counts only if both the opener and the sender have it
 * (netlink_capable()).
 */
static bool cowmap_nl_may_see(const struct sk_buff *skb,
			      struct cowmap_session *s)
{
	struct sock *sk = NETLINK_CB(skb).sk;
	struct file *f = sk && sk->sk_socket ? sk->sk_socket->file : NULL;

	/* A kernel socket has no opener: it gets nothing. */
	if (!f)
		return false;
	return uid_eq(s->owner_uid, f->f_cred->euid) ||
	       netlink_capable(skb, CAP_SYS_ADMIN);
}

static int cowmap_put_u64(struct sk_buff *skb, int type, u64 v)
{
	return nla_put_u64_64bit(skb, type, v, COWMAP_A_PAD);
}

/* One session's description. */
static int cowmap_nl_fill_session(struct sk_buff *skb, struct cowmap_session *s,
				  u32 portid, u32 seq, int flags)
{
	struct cowmap_status st = { };
	char *buf, *path;
	void *hdr;
	int ret;

	hdr = genlmsg_put(skb, portid, seq, &cowmap_nl_family, flags,
			  COWMAP_CMD_SESSION_GET);
	if (!hdr)
		return -EMSGSIZE;
	ret = cowmap_status(s, &st);
	if (ret) {
		genlmsg_cancel(skb, hdr);
		return ret;
	}
	ret = cowmap_put_u64(skb, COWMAP_A_SESSION_ID, st.session_id) ?:
	      nla_put_u32(skb, COWMAP_A_STATE, st.state) ?:
	      nla_put_u32(skb, COWMAP_A_OWNER_PID, s->owner_pid) ?:
	      nla_put_u32(skb, COWMAP_A_OWNER_UID,
			  from_kuid_munged(&init_user_ns, s->owner_uid)) ?:
	      nla_put_u32(skb, COWMAP_A_DEV_MAJOR, st.dev_major) ?:
	      nla_put_u32(skb, COWMAP_A_DEV_MINOR, st.dev_minor) ?:
	      cowmap_put_u64(skb, COWMAP_A_INO, st.ino) ?:
	      cowmap_put_u64(skb, COWMAP_A_SIZE, st.size) ?:
	      cowmap_put_u64(skb, COWMAP_A_PRIVATE_PAGES, st.private_pages) ?:
	      cowmap_put_u64(skb, COWMAP_A_TWIN_PAGES, st.twin_pages) ?:
	      cowmap_put_u64(skb, COWMAP_A_RECORDS, st.journal_records) ?:
	      cowmap_put_u64(skb, COWMAP_A_JOURNAL_BYTES, st.journal_bytes) ?:
	      cowmap_put_u64(skb, COWMAP_A_MERGED, st.merged_records) ?:
	      cowmap_put_u64(skb, COWMAP_A_MAPPINGS, st.mappings) ?:
	      cowmap_put_u64(skb, COWMAP_A_BASE_PAGES, st.base_pages) ?:
	      cowmap_put_u64(skb, COWMAP_A_FAULTS, st.faults) ?:
	      cowmap_put_u64(skb, COWMAP_A_COW_COPIES, st.cow_copies) ?:
	      cowmap_put_u64(skb, COWMAP_A_REARMS, st.rearms) ?:
	      cowmap_put_u64(skb, COWMAP_A_BASE_INVALIDATIONS, st.base_invalidations) ?:
	      cowmap_put_u64(skb, COWMAP_A_LIMIT_HITS, st.limit_hits) ?:
	      cowmap_put_u64(skb, COWMAP_A_COMMITS, st.commits) ?:
	      cowmap_put_u64(skb, COWMAP_A_SESSION_SIZE, st.session_size);
	if (ret)
		goto cancel;

	buf = kmalloc(PATH_MAX, GFP_KERNEL);
	if (buf) {
		path = file_path(s->backing, buf, PATH_MAX);
		ret = IS_ERR(path) ? 0 : nla_put_string(skb, COWMAP_A_PATH, path);
		if (!ret && s->jfile) {
			path = file_path(s->jfile, buf, PATH_MAX);
			ret = IS_ERR(path) ? 0 :
			      nla_put_string(skb, COWMAP_A_JOURNAL_PATH, path);
		}
		kfree(buf);
		if (ret)
			goto cancel;
	}
	genlmsg_end(skb, hdr);
	return 0;
cancel:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

static int cowmap_nl_session_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct cowmap_session *s;
	struct sk_buff *msg;
	int ret;

	if (GENL_REQ_ATTR_CHECK(info, COWMAP_A_SESSION_ID))
		return -EINVAL;
	s = cowmap_session_get(nla_get_u64(info->attrs[COWMAP_A_SESSION_ID]));
	if (!s || !cowmap_nl_may_see(skb, s)) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[COWMAP_A_SESSION_ID],
				    "no such session");
		ret = -ENOENT;
		goto out;
	}
	msg = genlmsg_new(COWMAP_NL_SESSION_ALLOC, GFP_KERNEL);
	ret = -ENOMEM;
	if (!msg)
		goto out;
	ret = cowmap_nl_fill_session(msg, s, info->snd_portid, info->snd_seq, 0);
	if (ret) {
		nlmsg_free(msg);
		goto out;
	}
	ret = genlmsg_reply(msg, info);
out:
	if (s)
		cowmap_session_put(s);
	return ret;
}

/*
 * cb->args[0]: the last session id sent. A session that does not fit goes
 * into the next message; one that does not fit into an empty message (it
 * cannot happen: see cowmap_nl_session_start()) ends the dump with
 * EMSGSIZE, never silently.
 */
static int cowmap_nl_session_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct cowmap_session *s;
	int ret;

	while ((s = cowmap_session_next(cb->args[0]))) {
		if (cowmap_nl_may_see(cb->skb, s)) {
			ret = cowmap_nl_fill_session(skb, s,
						     NETLINK_CB(cb->skb).portid,
						     cb->nlh->nlmsg_seq, NLM_F_MULTI);
			if (ret) {
				cowmap_session_put(s);
				return skb->len ?: ret;
			}
		}
		cb->args[0] = s->id;
		cowmap_session_put(s);
	}
	return skb->len;
}

/*
 * cb->args[0]: the session id (checked by .start); cb->args[1]: the next
 * record's sequence number, 0 before the header was sent; cb->args[2]: the
 * request is still to be checked (see cowmap_nl_log_start()).
 */
static int cowmap_nl_log_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	const struct cowmap_log_record *rec = NULL;
	struct cowmap_log_header_id h;
	struct cowmap_session *s;
	struct cowmap_jpos p;
	void *hdr;
	int sent = 0;

	if (cb->args[2]) {
		u64 id;
		int ret = cowmap_nl_log_check(cb, cb->extack, &id);

		if (ret)
			return ret;
		cb->args[0] = id;
		cb->args[2] = 0;
	}
	s = cowmap_session_get(cb->args[0]);
	if (!s) {
		/* Gone since .start or between two parts of the dump. */
		return 0;
	}

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &cowmap_nl_family, NLM_F_MULTI, COWMAP_CMD_LOG_GET);
	if (!hdr)
		goto full;
	if (cowmap_put_u64(skb, COWMAP_A_SESSION_ID, s->id))
		goto cancel;

	/* A merge holds @jlock while it writes a target that may hang. */
	if (down_read_killable(&s->jlock)) {
		genlmsg_cancel(skb, hdr);
		cowmap_session_put(s);
		return -EINTR;
	}
	if (!cb->args[1]) {
		if (nla_put(skb, COWMAP_A_LOG_HEADER,
			    cowmap_log_header(s, &h), &h)) {
			up_read(&s->jlock);
			goto cancel;
		}
		cb->args[1] = 1;
		sent++;
	}
	for (rec = cowmap_journal_seek(s, cb->args[1], &p); rec;
	     rec = cowmap_journal_next(s, &p)) {
		if (nla_put(skb, COWMAP_A_RECORD, le32_to_cpu(rec->size), rec))
			break;
		cb->args[1] = le64_to_cpu(rec->seq) + 1;
		sent++;
	}
	up_read(&s->jlock);
	if (!sent)
		goto cancel;
	genlmsg_end(skb, hdr);
	cowmap_session_put(s);
	return skb->len;
cancel:
	genlmsg_cancel(skb, hdr);
full:
	cowmap_session_put(s);
	/*
	 * An empty message means the end of the journal, unless a record was
	 * left that did not fit even alone: never end a dump early silently.
	 */
	if (!skb->len && rec)
		return -EMSGSIZE;
	return skb->len;
}

/*
 * Multicast an event about @s. @a, @b and @c are the event's counts (see
 * enum cowmap_event). Process context, no session lock held.
 */
void cowmap_nl_event(struct cowmap_session *s, enum cowmap_event ev, u64 a,
		     u64 b, u64 c)
{
	struct sk_buff *skb;
	void *hdr;
	int ret;

	might_sleep();
	if (!genl_has_listeners(&cowmap_nl_family, &init_net, 0))
		return;
	skb = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &cowmap_nl_family, 0, COWMAP_CMD_EVENT);
	if (!hdr)
		goto free;
	ret = nla_put_u32(skb, COWMAP_A_EVENT, ev) ?:
	      cowmap_put_u64(skb, COWMAP_A_SESSION_ID, s->id) ?:
	      nla_put_u32(skb, COWMAP_A_OWNER_UID,
			  from_kuid_munged(&init_user_ns, s->owner_uid));
	switch (ev) {
	case COWMAP_EV_COMMIT:
		ret = ret ?: cowmap_put_u64(skb, COWMAP_A_RECORDS, a) ?:
			     cowmap_put_u64(skb, COWMAP_A_JOURNAL_BYTES, b);
		break;
	case COWMAP_EV_MERGE:
		ret = ret ?: cowmap_put_u64(skb, COWMAP_A_APPLIED, a) ?:
			     cowmap_put_u64(skb, COWMAP_A_ALREADY, b) ?:
			     cowmap_put_u64(skb, COWMAP_A_CONFLICTS, c);
		break;
	case COWMAP_EV_CONFLICT:
		ret = ret ?: cowmap_put_u64(skb, COWMAP_A_CONFLICTS, a);
		break;
	case COWMAP_EV_LIMIT:
		ret = ret ?: cowmap_put_u64(skb, COWMAP_A_LIMIT_HITS, a);
		break;
	default:
		break;
	}
	if (ret)
		goto free;
	genlmsg_end(skb, hdr);
	/* -ESRCH: nobody listened after all; not an error. */
	genlmsg_multicast(&cowmap_nl_family, skb, 0, 0, GFP_KERNEL);
	return;
free:
	nlmsg_free(skb);
}

static void cowmap_limit_work(struct work_struct *work)
{
	struct cowmap_session *s = container_of(work, struct cowmap_session,
						limit_work);
	u64 hits;

	mutex_lock(&s->lock);
	s->limit_pending = false;
	hits = s->limit_hits;
	mutex_unlock(&s->lock);
	cowmap_nl_event(s, COWMAP_EV_LIMIT, hits, 0, 0);
	cowmap_session_put(s);
}

/* A fault hit a limit: tell listeners later, from a work item. */
void cowmap_nl_limit_hit(struct cowmap_session *s)
{
	lockdep_assert_held(&s->lock);
	if (s->limit_pending)
		return;
	s->limit_pending = true;
	kref_get(&s->ref);
	queue_work(cowmap_wq, &s->limit_work);
}

/*
 * Queue @work on the module's workqueue, which module unload drains: a
 * work item that holds a session reference must never outlive the module.
 * False if it was queued already.
 */
bool cowmap_queue_work(struct work_struct *work)
{
	return queue_work(cowmap_wq, work);
}

void cowmap_nl_init_session(struct cowmap_session *s)
{
	INIT_WORK(&s->limit_work, cowmap_limit_work);
}

int cowmap_nl_init(void)
{
	int ret;

	cowmap_wq = alloc_workqueue("cowmap", COWMAP_WQ_PERCPU, 0);
	if (!cowmap_wq)
		return -ENOMEM;
	ret = genl_register_family(&cowmap_nl_family);
	if (ret)
		destroy_workqueue(cowmap_wq);
	return ret;
}

void cowmap_nl_exit(void)
{
	genl_unregister_family(&cowmap_nl_family);
	/* Pending limit events hold session references: let them finish. */
	destroy_workqueue(cowmap_wq);
}

/*
 * A CTRL_CMD_GETFAMILY for an unknown family makes genetlink request
 * "net-pf-16-proto-16-family-<name>": this alias loads the module on the
 * first netlink request, as for any other family.
 */
MODULE_ALIAS_GENL_FAMILY(COWMAP_GENL_NAME);
