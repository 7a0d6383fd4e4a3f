/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The differences between the kernels cowmap supports (6.1 and 6.12 LTS),
 * and nothing else. Each shim names the version that changed the API.
 */
#ifndef _COWMAP_COMPAT_H
#define _COWMAP_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0) || \
	LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
#error "cowmap supports Linux 6.1 to 6.12"
#endif

/* 6.3: vma->vm_flags became read-only; vm_flags_set() is the way to set. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void cowmap_vm_flags_set(struct vm_area_struct *vma,
				       vm_flags_t flags)
{
	vma->vm_flags |= flags;
}
#else
#define cowmap_vm_flags_set(vma, flags) vm_flags_set(vma, flags)
#endif

/* 6.3: filemap_get_folio() returns ERR_PTR(-ENOENT) instead of NULL. */
static inline struct folio *cowmap_filemap_get_folio(struct address_space *m,
						     pgoff_t index)
{
	struct folio *folio = filemap_get_folio(m, index);

	return IS_ERR(folio) ? NULL : folio;
}

/* 6.6: the attributes of a dump moved into a struct genl_info. */
#include <net/genetlink.h>
static inline struct nlattr **cowmap_dump_attrs(struct netlink_callback *cb)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 6, 0)
	return genl_dumpit_info(cb)->attrs;
#else
	return genl_info_dump(cb)->attrs;
#endif
}

/* 6.3: inode operations take a struct mnt_idmap instead of a user_namespace. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
#define cowmap_idmap user_namespace
#else
#define cowmap_idmap mnt_idmap
#endif

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
#define cowmap_file_idmap file_mnt_user_ns
#else
#define cowmap_file_idmap file_mnt_idmap
#endif

/* 6.5: generic_file_splice_read() went; copy_splice_read() reads by read_iter. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
#define cowmap_splice_read generic_file_splice_read
#else
#define cowmap_splice_read copy_splice_read
#endif

#endif /* _COWMAP_COMPAT_H */
