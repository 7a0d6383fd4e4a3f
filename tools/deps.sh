#!/bin/bash
# Install every Debian package cowmap needs to build, test and package.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail

BPO_LIST=/etc/apt/sources.list.d/cowmap-backports.list

PKGS=(
	build-essential gcc make bc bison flex libelf-dev libssl-dev
	kmod cpio xz-utils zstd rsync
	linux-image-amd64 linux-headers-amd64 linux-source-6.1
	qemu-system-x86 busybox-static e2fsprogs xfsprogs btrfs-progs
	libmnl-dev libjson-c-dev pkg-config sparse dkms python3
	debhelper dh-dkms devscripts lintian fakeroot
	clang libclang-rt-14-dev
	man-db groff-base
	mmdebstrap
	sqlite3 lmdb-utils dash mawk coreutils
	nfs-kernel-server nfs-common
)

# One dpkg-query for all (one per package took 2-8 s, and tools/vm runs
# this before every boot).
declare -A have=()
while read -r p st; do
	# "install ok installed", or "hold ok installed" (apt-mark hold)
	[[ $st == *" ok installed" ]] && have[${p%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null || true)
need=()
for p in "${PKGS[@]}"; do
	[ -n "${have[$p]:-}" ] || need+=("$p")
done

have_612() {
	# The generic flavour only: not -rt, not -cloud.
	ls /boot/vmlinuz-6.12.*+deb12-amd64 >/dev/null 2>&1 &&
		ls -d /usr/src/linux-headers-6.12.*+deb12-amd64 >/dev/null 2>&1
}

if [ ${#need[@]} -eq 0 ] && have_612; then
	exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "deps.sh: must run as root to install: ${need[*]}" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
if [ ! -f "$BPO_LIST" ]; then
	# Backports from the mirror the machine's apt already uses.
	mirror=$("$(dirname "$0")"/apt-mirror bookworm) || exit 1
	echo "deb $mirror bookworm-backports main" > "$BPO_LIST"
fi
apt-get update -q
if [ ${#need[@]} -gt 0 ]; then
	apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if ! have_612; then
	# The newest 6.12 image + headers in bookworm-backports (same gcc-12).
	img=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' |
		awk '{print $1}' | sort -V | tail -n1)
	[ -n "$img" ] || { echo "deps.sh: no 6.12 image in bookworm-backports" >&2; exit 1; }
	hdr=${img/linux-image/linux-headers}
	apt-get install -y -q --no-install-recommends -t bookworm-backports "$img" "$hdr"
fi
