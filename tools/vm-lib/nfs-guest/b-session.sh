#!/bin/sh
# Client B's session in the NFS scenario (tools/vm-lib/nfs-guest/nfs-guest.sh):
# run by dash under "cowmapctl run --file DATA", so coreutils dd's opens of
# DATA are views of one session.  Args: GUEST_DIR CTL_DIR DATA.
C=$2
D=$3
P=/cowmap/progs
PAGE=4096

waitf() {
	i=0
	while [ ! -e "$C/$1" ]; do
		i=$((i + 1))
		[ $i -le 1200 ] || exit 1
		sleep 0.1
	done
}
# Four bytes of page N of the session.
page() { $P/dd if="$D" bs=1 skip=$(($1 * PAGE)) count=4 2>/dev/null; }
view() { echo "$(page 0) $(page 1) $(page 2) $(page 3)" >"$C/$1.tmp" && mv "$C/$1.tmp" "$C/$1"; }

# Page 0 is the session's own; page 1 is read (cached on B) before A writes.
printf BBBB | $P/dd of="$D" bs=1 seek=0 conv=notrunc 2>/dev/null || exit 1
[ "$(page 1)" = "...." ] || exit 1
: >"$C/b-session"
waitf a-wrote
view b-view-1
waitf b-reopen
view b-view-2
waitf b-merge-seen
view b-view-3
waitf b-end
