#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The Debian 13 build root of the newest release kernel (Linux 7.x from
# trixie-backports): a minimal trixie system (mmdebstrap --variant=minbase)
# with gcc-14, make, libelf-dev, bc, kmod, xz-utils, sparse, dkms (for
# tools/dkms-check) and the pinned kernel's headers and image.  cowmap.ko
# for that kernel is built inside it, with its gcc-14 against its headers;
# tools/vm boots its image with its modules.
#
#   tools/trixie-root.sh                 build if needed, then print the paths
#   tools/trixie-root.sh --print         only print the paths (exit 1 if not built)
#   tools/trixie-root.sh --lane          print the lane name (7.3: major.minor)
#   tools/trixie-root.sh --newest        print the newest 7.x kernel in
#                                        trixie-backports and the pinned one
#   tools/trixie-root.sh run [--overlay ODIR] DIR -- CMD
#                                        run CMD in the root (chroot, private
#                                        mount namespace) with DIR bound at
#                                        /build (the working directory);
#                                        --overlay: on an overlayfs whose
#                                        writable layer is ODIR/upper, so
#                                        the cached root never changes
#   tools/trixie-root.sh module DIR [ARG...]
#                                        build the module whose sources are
#                                        in DIR: run DIR -- make -C KDIR
#                                        M=/build modules ARG... (W=1, C=2)
#
# Output of a build or --print (stdout):
#   ROOT=<path>     the root directory
#   KREL=<release>  e.g. 7.3.4+deb13-amd64
#   BZIMAGE=<path>  the kernel image (ROOT/boot/vmlinuz-KREL)
#   MODDIR=<path>   its modules (ROOT/lib/modules/KREL)
#   KDIR=<path>     the headers, as a path inside the root
#
# The kernel: KVER below is the one place that pins it.  To follow
# trixie-backports, run --newest; if it names a newer 7.x, set KVER to it,
# extend the supported range in kmod/compat.h and dkms.conf, and run the
# lane (make check KERNEL=<new major.minor>).  A new KVER is a new cache
# key, so the next run builds a new root; old roots stay until removed.
#
# Cache: ${COWMAP_CACHE:-/var/cache/cowmap}/roots/trixie-<KEY>/ where KEY is
# the first 12 hex digits of the sha256 of the package list (with KVER in
# it), the suites and the checker-valid.sh stand-in below.  A root is built in a temporary directory next to it
# and renamed into place when complete, under a lock (.lock, flock), so a
# path that exists is a whole root.  The apt mirror is the host's own
# (tools/apt-mirror): no archive host is named here.
set -euo pipefail

# The pinned Debian 13 backports kernel (ABI name without the flavour).
KVER=7.3.4+deb13
FLAVOUR=amd64

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=$(realpath -m "${COWMAP_CACHE:-/var/cache/cowmap}")
KREL=$KVER-$FLAVOUR
SUITES="trixie trixie-backports"
# linux-base comes from backports: the 7.x image needs its newer version.
PKGS=(
	gcc-14 make libelf-dev bc kmod xz-utils sparse dkms
	linux-base/trixie-backports
	"linux-headers-$KREL" "linux-image-$KREL"
)

# The headers package lacks scripts/checker-valid.sh, which the 7.x
# Makefile runs for C=1/C=2 to see whether sparse is usable; without it,
# sparse is switched off with a warning.  This stand-in (written into the
# root at /usr/src/linux-headers-$KVER-common/scripts/) does the same
# test: print 1 if the checker parses __typeof_unqual__ without error.
# (Debian's sparse 0.6.4 does not: tools/lint-trixie gives it a macro.)
CHECKER_VALID='#!/bin/sh
# cowmap (tools/trixie-root.sh): stand-in for the kernel script.
printf "static int u(const int *q) { __typeof_unqual__(*q) v = *q; return v; }\n" |
	"$@" - 2>&1 | awk "BEGIN { c = 1 } /error/ { c = 0 } END { print c }"
'

msg() { echo "trixie-root: $*" >&2; }
die() { msg "error: $*"; exit 1; }
usage() { sed -n '3,27s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

KEY=$({
	printf '%s\n' "${PKGS[@]}" | sort
	echo "suites: $SUITES"
	echo "checker-valid.sh: $CHECKER_VALID"
} | sha256sum | cut -c1-12)
DIR=$CACHE_ROOT/roots/trixie-$KEY

is_done() {
	[ -f "$DIR/root/boot/vmlinuz-$KREL" ] &&
		[ -f "$DIR/root/usr/src/linux-headers-$KREL/Makefile" ] &&
		[ -f "$DIR/root/lib/modules/$KREL/modules.dep" ]
}

print_paths() {
	echo "ROOT=$DIR/root"
	echo "KREL=$KREL"
	echo "BZIMAGE=$DIR/root/boot/vmlinuz-$KREL"
	echo "MODDIR=$DIR/root/lib/modules/$KREL"
	echo "KDIR=/usr/src/linux-headers-$KREL"
}

# The newest linux-image-7.*-amd64 in trixie-backports, from the mirror's
# index through apt (a throw-away apt state, nothing on the host changes).
newest() {
	local mirror tmp
	mirror=$("$HERE/apt-mirror") || exit 1
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	mkdir -p "$tmp"/{lists/partial,cache/archives/partial}
	echo "deb $mirror trixie-backports main" >"$tmp/sources.list"
	local opts=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=-
		-o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache"
		-o Dir::State::Status=/dev/null -o APT::Architecture=amd64
		-o APT::Sandbox::User=root
		-o Dir::Etc::Trusted=/usr/share/keyrings/debian-archive-keyring.gpg)
	apt-get "${opts[@]}" -q update >&2
	apt-cache "${opts[@]}" search --names-only "^linux-image-7\\.[0-9.]+\\+deb13-$FLAVOUR\$" |
		awk '{print $1}' | sed "s/^linux-image-//; s/-$FLAVOUR\$//" | sort -V | tail -n1
}

case "${1:-}" in
	"") ;;
	--print)
		is_done || { msg "not built (expected in $DIR); run $0"; exit 1; }
		print_paths
		exit 0
		;;
	--lane)
		cut -d. -f1,2 <<<"$KVER"
		exit 0
		;;
	--newest)
		n=$(newest)
		[ -n "$n" ] || die "no 7.x kernel found in trixie-backports"
		echo "newest in trixie-backports: $n"
		echo "pinned (KVER in $0): $KVER"
		[ "$n" = "$KVER" ] || echo "to follow it: set KVER=$n (see the comment at the top of $0)"
		exit 0
		;;
	module)
		[ $# -ge 2 ] || { usage >&2; exit 2; }
		dir=$2
		shift 2
		exec "$0" run "$dir" -- make -C "/usr/src/linux-headers-$KREL" M=/build "$@" modules
		;;
	run)
		shift
		ovl=
		if [ "${1:-}" = --overlay ] && [ $# -ge 2 ]; then
			mkdir -p "$2"
			ovl=$(realpath "$2")
			shift 2
		fi
		[ $# -ge 3 ] && [ "$2" = -- ] || { usage >&2; exit 2; }
		bind=$(realpath "$1")
		shift 2
		is_done || "$0" >/dev/null
		[ -d "$bind" ] || die "run: $bind is not a directory"
		# A private mount namespace: the mounts vanish with the command.
		exec unshare --mount --propagation private -- /bin/sh -euc '
			r=$1 b=$2 o=$3; shift 3
			if [ -n "$o" ]; then
				mkdir -p "$o/upper" "$o/work" "$o/merged"
				mount -t overlay overlay -o "lowerdir=$r,upperdir=$o/upper,workdir=$o/work" "$o/merged"
				r=$o/merged
			fi
			mount --rbind /dev "$r/dev"
			mount -t proc proc "$r/proc"
			mount --bind "$b" "$r/build"
			exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
				HOME=/root LC_ALL=C.UTF-8 /bin/sh -c "cd /build && exec \"\$@\"" sh "$@"
		' sh "$DIR/root" "$bind" "$ovl" "$@"
		;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
esac

if is_done; then
	print_paths
	exit 0
fi

# ---- build ----
[ "$(id -u)" -eq 0 ] || die "must run as root to build the root (mmdebstrap)"
command -v mmdebstrap >/dev/null || "$HERE/deps.sh"
command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (tools/deps.sh)"
mirror=$("$HERE/apt-mirror") || die "no Debian mirror in this machine's apt sources"
mkdir -p "$CACHE_ROOT/roots"
exec 9>"$DIR.lock"
if ! flock -n 9; then
	msg "another build holds $DIR.lock, waiting for it"
	flock 9
fi
if is_done; then
	print_paths
	exit 0
fi

TMP=$DIR.tmp.$$
LOG=$DIR.log
rm -rf "$DIR" "$DIR".tmp.*
mkdir -p "$TMP"
cleanup() {
	local rc=$?
	rm -rf "$TMP"
	if [ "$rc" -ne 0 ]; then
		msg "FAILED (exit $rc); last lines of $LOG:"
		tail -n 30 "$LOG" >&2 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

src=()
for s in $SUITES; do
	src+=("deb $mirror $s main")
done
msg "building the Debian 13 root for $KREL in $DIR (log: $LOG)"
start=$(date +%s)
# mode root: this script runs as root.  No recommends, no docs, no
# locales: the root compiles a module and carries an image, nothing else.
mmdebstrap --mode=root --variant=minbase --format=directory \
	--keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
	--aptopt='Apt::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--include="$(IFS=,; echo "${PKGS[*]}")" \
	--customize-hook='mkdir -p "$1/build"' \
	--customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
	trixie "$TMP/root" "${src[@]}" >"$LOG" 2>&1
f=$TMP/root/usr/src/linux-headers-$KVER-common/scripts/checker-valid.sh
if [ ! -e "$f" ]; then
	printf '%s' "$CHECKER_VALID" >"$f"
	chmod 755 "$f"
fi
end=$(date +%s)
{
	echo "key $KEY: sha256 of the package list, the suites and checker-valid.sh"
	printf 'package: %s\n' "${PKGS[@]}"
	echo "suites: $SUITES (from $mirror)"
	echo "built $(date -u +%FT%TZ) in $((end - start))s, $(du -sm "$TMP/root" | cut -f1) MB"
	echo "gcc: $(chroot "$TMP/root" gcc-14 --version | head -n1)"
} >"$TMP/key.txt"
[ -f "$TMP/root/boot/vmlinuz-$KREL" ] || die "no /boot/vmlinuz-$KREL in the new root"
[ -f "$TMP/root/lib/modules/$KREL/modules.dep" ] || die "no modules.dep for $KREL in the new root"
mv "$TMP" "$DIR"
trap - EXIT
msg "done in $((end - start))s: $(tail -n2 "$DIR/key.txt" | head -n1)"
print_paths
