#!/bin/bash
# Build (once) and cache the cowmap debug kernel: KASAN, lockdep, kmemleak,
# UBSAN, DEBUG_VM, fault injection, ... (see tools/debug-kernel.config).
#
#   tools/debug-kernel.sh           build if needed, then print the paths
#   tools/debug-kernel.sh --print   only print the paths (exit 1 if not built)
#
# Output (stdout, last two lines):
#   BZIMAGE=<path>   bootable with qemu-system-x86_64 -kernel
#   KDIR=<path>      full O= build tree: make -C $KDIR M=$PWD modules
#
# Cache: ${COWMAP_CACHE:-/var/cache/cowmap}/kernels/debug-<KEY>/ where KEY is
# the first 12 hex digits of the sha256 of
#   <contents of tools/debug-kernel.config>
#   <dpkg version of linux-source-6.1>\n
#   <first line of `gcc --version`>\n
# Layout: src/ (unpacked source), build/ (O= tree), KDIR -> build,
# bzImage, config, key.txt, build.log, .lock (flock), .done (stamp).
# A failed or interrupted build never leaves .done; re-running resumes the
# incremental build in build/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FRAG=$HERE/debug-kernel.config
SRC_PKG=linux-source-6.1
SRC_TAR=/usr/src/linux-source-6.1.tar.xz
BASE_CONFIG=allnoconfig
CACHE_ROOT=$(realpath -m "${COWMAP_CACHE:-/var/cache/cowmap}")

msg() { echo "debug-kernel: $*" >&2; }
die() { msg "error: $*"; exit 1; }

usage() {
	sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

MODE=build
case "${1:-}" in
	"") ;;
	--print) MODE=print ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }

src_version() {
	local s
	s=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$SRC_PKG" 2>/dev/null) || return 1
	[ "${s%% *}" = installed ] || return 1
	echo "${s#* }"
}

# Prints the key inputs (second and third part) on stdout.
key_inputs() {
	local v g
	v=$(src_version) || return 1
	g=$(gcc --version 2>/dev/null) || return 1
	printf '%s\n%s\n' "$v" "${g%%$'\n'*}"
}

compute_key() {
	local inputs
	[ -r "$FRAG" ] || die "missing $FRAG"
	inputs=$(key_inputs) || return 1
	{ cat "$FRAG"; printf '%s\n' "$inputs"; } | sha256sum | cut -c1-12
}

is_done() {
	[ -f "$DIR/.done" ] && [ -f "$DIR/bzImage" ] && [ -f "$DIR/KDIR/Module.symvers" ]
}

print_paths() {
	echo "BZIMAGE=$DIR/bzImage"
	echo "KDIR=$(readlink -f "$DIR/KDIR")"
}

# ---- fast path: already built ----
if KEY=$(compute_key); then
	DIR=$CACHE_ROOT/kernels/debug-$KEY
	if is_done; then
		print_paths
		exit 0
	fi
fi
if [ "$MODE" = print ]; then
	msg "debug kernel not built${KEY:+ (expected in $CACHE_ROOT/kernels/debug-$KEY)}; run $0"
	exit 1
fi

# ---- slow path: build ----
"$HERE/deps.sh"
KEY=$(compute_key) || die "cannot compute cache key ($SRC_PKG installed? gcc?)"
DIR=$CACHE_ROOT/kernels/debug-$KEY
SRC=$DIR/src
OBJ=$DIR/build
LOG=$DIR/build.log
mkdir -p "$DIR"

exec 9>"$DIR/.lock"
if ! flock -n 9; then
	msg "another build holds $DIR/.lock, waiting for it"
	flock 9
fi
if is_done; then
	print_paths
	exit 0
fi
rm -f "$DIR/.done"

[ -f "$LOG" ] && mv -f "$LOG" "$LOG.prev"
: >"$LOG"
on_exit() {
	local rc=$?
	if [ "$rc" -ne 0 ]; then
		msg "FAILED (exit $rc); last lines of $LOG:"
		tail -n 60 "$LOG" >&2 || true
		msg "FAILED (exit $rc); full log: $LOG"
	fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run() {
	echo "+ $*" >>"$LOG"
	"$@" >>"$LOG" 2>&1
}

{
	echo "key $KEY = sha256(fragment + source version + gcc version)[:12]"
	echo "fragment: $FRAG (sha256 $(sha256sum <"$FRAG" | cut -d' ' -f1))"
	key_inputs | sed -e "1s/^/$SRC_PKG: /" -e '2s/^/gcc: /'
	echo "base config: $BASE_CONFIG"
} >"$DIR/key.txt"
cat "$DIR/key.txt" >>"$LOG"
msg "building debug kernel in $DIR (log: $LOG)"
start=$(date +%s)

# 1. Source.  src/ only ever appears complete (atomic rename).
if [ ! -f "$SRC/Makefile" ]; then
	msg "unpacking $SRC_TAR"
	rm -rf "$SRC" "$DIR/src.tmp"
	mkdir "$DIR/src.tmp"
	run tar -xf "$SRC_TAR" -C "$DIR/src.tmp" --strip-components=1
	mv "$DIR/src.tmp" "$SRC"
fi

# 2. Configuration: base config + fragment, then verify every fragment line.
KMAKE=(make -C "$SRC" O="$OBJ")
if [ ! -f "$DIR/.config-ok" ] || [ ! -f "$OBJ/.config" ]; then
	msg "configuring ($BASE_CONFIG + $(basename "$FRAG"))"
	rm -f "$DIR/.config-ok"
	mkdir -p "$OBJ"
	# Everything off but what the fragment asks for (and what that
	# selects or needs).
	run "${KMAKE[@]}" KCONFIG_ALLCONFIG="$FRAG" "$BASE_CONFIG"
fi
bad=()
while IFS= read -r line || [ -n "$line" ]; do
	if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
		grep -qxF -- "$line" "$OBJ/.config" || bad+=("want '$line', got '$(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$OBJ/.config" || echo unset)'")
	elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
		if grep -q "^${BASH_REMATCH[1]}=" "$OBJ/.config"; then
			bad+=("want '$line', got '$(grep "^${BASH_REMATCH[1]}=" "$OBJ/.config")'")
		fi
	fi
done <"$FRAG"
if [ ${#bad[@]} -gt 0 ]; then
	printf 'config check: %s\n' "${bad[@]}" >>"$LOG"
	printf 'debug-kernel: config check: %s\n' "${bad[@]}" >&2
	rm -f "$DIR/.config-ok"
	die "${#bad[@]} option(s) of $FRAG did not end up as requested (unmet dependencies?)"
fi
touch "$DIR/.config-ok"
cp "$OBJ/.config" "$DIR/config"

# 3. Build vmlinux, bzImage, in-tree modules and Module.symvers.
msg "compiling with -j$(nproc) (tail -f $LOG to follow)"
run "${KMAKE[@]}" -j"$(nproc)" all
[ -f "$OBJ/arch/x86/boot/bzImage" ] || die "no bzImage after build"
[ -f "$OBJ/Module.symvers" ] || die "no Module.symvers after build"

# 4. Publish.
cp -f "$OBJ/arch/x86/boot/bzImage" "$DIR/bzImage.tmp"
mv -f "$DIR/bzImage.tmp" "$DIR/bzImage"
ln -sfn build "$DIR/KDIR"
end=$(date +%s)
{
	echo "release $(cat "$OBJ/include/config/kernel.release")"
	echo "built $(date -u +%FT%TZ) in $((end - start))s"
	cat "$DIR/key.txt"
} >"$DIR/.done.tmp"
mv -f "$DIR/.done.tmp" "$DIR/.done"
msg "done in $((end - start))s: $(cat "$OBJ/include/config/kernel.release")"
print_paths
