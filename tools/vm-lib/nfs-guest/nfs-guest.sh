#!/bin/sh
# The NFS scenario of tools/vm-nfs, inside one guest (busybox sh; run by
# tools/vm-lib/init as the "run" command): "nfs-guest.sh server|a|b".
#
# Network: the server has eth0 10.0.1.1 (link to client A, 10.0.1.2) and
# eth1 10.0.2.1 (link to client B, 10.0.2.2): QEMU UDP socket links on
# 127.0.0.1 of the host, nothing else.  The server exports its ext4 disk's
# /export as the NFSv4 root, NFSv4.2 only (no rpcbind, no lockd, no statd).
#
# The guests step together through files in ctl/ on the share: each client
# mounts the export twice, /mnt/nfs with the default (close-to-open)
# caching for the tests and /mnt/ctl with noac,lookupcache=none (its own
# superblock) for the step files.  Results: lines "nfs-result: ok NAME" or
# "nfs-result: not ok NAME # why" on stdout (tools/vm-nfs collects them).
ROLE=$1
P=/cowmap/progs
G=$(dirname "$0")
PAGE=4096
NPAGES=16
ROUNDS=${NFS_ROUNDS:-20}

say() { echo "nfs-$ROLE: $*"; }
ok() { echo "nfs-result: ok $1"; }
nok() {
	n=$1
	shift
	echo "nfs-result: not ok $n # $ROLE: $*"
}
check() { # NAME GOT WANT WHAT
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		nok "$1" "$4: got '$2', want '$3'"
	fi
}

net_up() { # IFACE ADDR
	ip link set lo up
	ip addr add "$2/24" dev "$1"
	ip link set "$1" up
}

# ---------------------------------------------------------------- server ---

server() {
	hostname nfs-server
	net_up eth0 10.0.1.1
	net_up eth1 10.0.2.1
	mkdir -p /etc /var/lib/nfs/v4recovery /run/rpc_pipefs /var/lib/nfs/rpc_pipefs
	cp /netconfig /etc/netconfig
	: >/etc/exports
	: >/var/lib/nfs/etab
	: >/var/lib/nfs/rmtab
	mount -t nfsd nfsd /proc/fs/nfsd || return 1
	E=/mnt/ext4/export
	if [ ! -d $E ]; then
		# First boot: the files the clients share.
		mkdir -p $E/ctl $E/j
		dd if=/dev/zero bs=$PAGE count=$NPAGES 2>/dev/null | tr '\0' '.' >$E/data
		dd if=/dev/zero bs=$PAGE count=2 2>/dev/null | tr '\0' '-' >$E/other
		chmod -R a+rwX $E
		sync
	fi
	$P/exportfs -o rw,no_root_squash,no_subtree_check,sync,fsid=0 '*:'$E || return 1
	# The grace period after a start is as long as the lease: 10 s, the
	# least nfsd takes (90 s by default).
	echo 10 >/proc/fs/nfsd/nfsv4leasetime
	echo 10 >/proc/fs/nfsd/nfsv4gracetime
	$P/rpc.mountd -N 3 -u || return 1
	$P/rpc.nfsd -p 2049 -N 3 -V 4.2 -N 4.0 -N 4.1 -U 4 || return 1
	say "versions: $(cat /proc/fs/nfsd/versions)"
	: >$E/ctl/server-up
	# Serve until both clients are done (at most 8 minutes).
	t=0
	while [ ! -e $E/ctl/a-done ] || [ ! -e $E/ctl/b-done ]; do
		t=$((t + 1))
		[ $t -lt 960 ] || break
		if [ -e $E/ctl/server-merge ] && [ ! -e $E/ctl/server-merged ]; then
			server_merge
			: >$E/ctl/server-merged
		fi
		sleep 0.5
	done
	$P/rpc.nfsd 0
	$P/exportfs -ua
	say "clients done"
}

# The server merges journals that client A wrote, into its own ext4 file.
server_merge() {
	E=/mnt/ext4/export
	out=$(cowmapctl merge -s $E/data -l $E/j/id.log --dry-run 2>&1)
	rc=$?
	check identity-server "$rc" 0 "cowmapctl merge --dry-run of A's journal on the server ($out)"
	out=$(cowmapctl merge -s $E/other -l $E/j/id.log --dry-run 2>&1)
	rc=$?
	check identity-other-refused-server "$rc" 1 "a journal of data merged into other ($out)"
}

# --------------------------------------------------------------- clients ---

C=/mnt/ctl/ctl
D=/mnt/nfs/data
J=/mnt/nfs/j

sig() {
	: >"$C/$1" || say "cannot create $C/$1"
}
# Wait for step file $1, at most 3 minutes.
waitf() {
	read -r t0 _ </proc/uptime
	t0=${t0%.*}
	while [ ! -e "$C/$1" ]; do
		read -r t _ </proc/uptime
		if [ $((${t%.*} - t0)) -gt 180 ]; then
			say "timed out waiting for $1"
			return 1
		fi
		sleep 0.1
	done
}

# Bytes [OFF, OFF+LEN) of FILE, read by busybox (static: never routed).
peek() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null; }

mount_share() { # SERVER
	mkdir -p /mnt/nfs /mnt/ctl
	i=0
	until $P/mount.nfs4 "$1:/" /mnt/nfs -o vers=4.2,retry=0 2>/tmp/mount.err; do
		i=$((i + 1))
		if [ $i -gt 90 ]; then
			say "mount failed: $(cat /tmp/mount.err)"
			return 1
		fi
		sleep 1
	done
	$P/mount.nfs4 "$1:/" /mnt/ctl -o vers=4.2,noac,lookupcache=none,nosharecache || return 1
	i=0
	until [ -e $C/server-up ]; do
		i=$((i + 1))
		[ $i -lt 600 ] || return 1
		sleep 0.1
	done
}

client() {
	if [ "$ROLE" = a ]; then
		hostname nfs-client-a
		net_up eth0 10.0.1.2
		SERVER=10.0.1.1
	else
		hostname nfs-client-b
		net_up eth0 10.0.2.2
		SERVER=10.0.2.1
	fi
	mkdir -p /etc
	cp /netconfig /etc/netconfig
	# Each client its own NFSv4 client owner, whatever the nodename.
	echo "cowmap-vm-nfs-$ROLE" >/sys/module/nfs/parameters/nfs4_unique_id ||
		say "cannot set nfs4_unique_id"
	if ! mount_share $SERVER; then
		nok "mount-$ROLE" "cannot mount $SERVER:/"
		return 1
	fi
	ok "mount-$ROLE"
	sig "$ROLE-up"
	say "up; step files: $(cd $C && echo *)"
	waitf a-up && waitf b-up || return 1
	"client_$ROLE"
	sig "$ROLE-done"
	umount /mnt/nfs
	umount /mnt/ctl
}

# Client A: changes the file by plain writes and merges, in steps with B.
client_a() {
	# 1. B holds a session and has read page 1 through it.
	waitf b-session || return 1
	# A's session on the same file, at the same time as B's.
	id=$(cowmapctl map $D --write 100:a-session --keep 2>&1)
	if cowmapctl list --noheadings 2>/dev/null | grep -qw "$id"; then
		ok sessions-both-clients
	else
		nok sessions-both-clients "cowmapctl map --keep on A: $id"
	fi
	cowmapctl discard "$id" >/dev/null 2>&1
	# 2. A plain write over pages 1 and 2, closed (close-to-open).
	printf AAAA | dd of=$D bs=1 seek=$((PAGE)) conv=notrunc 2>/dev/null
	printf AAAA | dd of=$D bs=1 seek=$((2 * PAGE)) conv=notrunc 2>/dev/null
	sig a-wrote
	waitf b-read1 || return 1
	# 3. A merge on A (offline: the kernel merge is not used on NFS yet)
	# over page 3.
	rm -f $J/a3.log
	cowmapctl map $D --write $((3 * PAGE)):MMMM --log $J/a3.log >/dev/null 2>&1
	out=$(cowmapctl merge -s $D -l $J/a3.log --in-place 2>&1)
	check merge-a "$?" 0 "offline merge on A ($out)"
	sig a-merged
	waitf b-read2 || return 1

	# 4. Conflict: both journal a change of the same bytes from the same
	# base; A merges first, B's merge must report a conflict.
	rm -f $J/c-a.log
	cowmapctl map $D --write 20000:from-a --log $J/c-a.log >/dev/null 2>&1
	sig a-conflict-log
	waitf b-conflict-log || return 1
	out=$(cowmapctl merge -s $D -l $J/c-a.log --in-place 2>&1)
	check conflict-first-merge "$?" 0 "A's merge ($out)"
	sig a-conflict-merged
	waitf b-conflict-checked || return 1

	# 5. Disjoint changes merged at the same moment, ROUNDS times.
	disjoint 32768

	# 6. Journal identity: a journal of data made here, merged on B and on
	# the server without --force-identity.
	rm -f $J/id.log
	cowmapctl map $D --write 60000:identity --log $J/id.log >/dev/null 2>&1
	out=$(cowmapctl merge -s $D -l $J/id.log --in-place 2>&1)
	check identity-local "$?" 0 "merge of A's journal on A ($out)"
	sig a-id-log
	sig server-merge
	waitf b-id-checked || return 1
	waitf server-merged || return 1
}

# Rounds of disjoint merges: A writes at BASE + 8 * round, B at BASE +
# 8192 + 8 * round; both wait for the other's journal, then merge at once.
disjoint() {
	base=$1
	[ "$ROLE" = a ] || base=$((base + 8192))
	other=b
	[ "$ROLE" = a ] || other=a
	r=0 fails=0
	while [ $r -lt "$ROUNDS" ]; do
		log=$J/d-$ROLE-$r.log
		rm -f "$log"
		cowmapctl map $D --write "$((base + 8 * r)):$ROLE-r$r" --log "$log" >/dev/null 2>&1
		sig "d-$ROLE-$r"
		waitf "d-$other-$r" || return 1
		cowmapctl merge -s $D -l "$log" --in-place >/tmp/merge.out 2>&1 || {
			fails=$((fails + 1))
			say "round $r: merge failed: $(cat /tmp/merge.out)"
		}
		r=$((r + 1))
	done
	sig "d-$ROLE-end"
	waitf "d-$other-end" || return 1
	# Every change of both clients is in the file (read after an open).
	lost=0 r=0
	while [ $r -lt "$ROUNDS" ]; do
		for who in a b; do
			o=$((32768 + 8 * r))
			[ $who = a ] || o=$((o + 8192))
			want=$who-r$r
			got=$(peek $D $o ${#want})
			[ "$got" = "$want" ] || {
				lost=$((lost + 1))
				say "round $r: $who's change at $o: '$got'"
			}
		done
		r=$((r + 1))
	done
	check "disjoint-merges-$ROLE" "$fails/$lost" 0/0 "failed merges/lost changes in $ROUNDS rounds"
}

# Client B: a session that lives through A's changes.
client_b() {
	rm -f $C/b-view
	# The session: dash under "cowmapctl run", reading and writing the file
	# with coreutils dd (routed); busybox reads the file itself.
	cowmapctl run --file $D --discard -- $P/dash "$G/b-session.sh" \
		"$G" $C $D >/tmp/b-session.out 2>&1 &
	bpid=$!
	waitf b-session || return 1
	waitf a-wrote || return 1
	# The session, before anything on B opened the file again.
	b=$(cat $C/b-view-1)
	check session-own-page "${b%% *}" BBBB "the session's own page 0"
	say "session after A's write, no open on B yet: page 1 '$(echo "$b" | cut -d' ' -f2)'," \
		"page 2 '$(echo "$b" | cut -d' ' -f3)'"
	# A plain reader on B opens the file: close-to-open revalidation.
	got=$(peek $D $PAGE 4)$(peek $D $((2 * PAGE)) 4)
	check reader-sees-a-write "$got" AAAAAAAA "a plain reader on B, pages 1 and 2"
	sig b-reopen
	waitf b-view-2 || return 1
	b=$(cat $C/b-view-2)
	check session-sees-a-write "${b#* }" "AAAA AAAA" "B's session, pages 1 (read before) and 2, after an open on B"
	sig b-read1
	waitf a-merged || return 1
	got=$(peek $D $((3 * PAGE)) 4)
	check reader-sees-a-merge "$got" MMMM "a plain reader on B, page 3"
	sig b-merge-seen
	waitf b-view-3 || return 1
	b=$(cat $C/b-view-3)
	check session-sees-a-merge "${b##* }" MMMM "B's session, page 3, after an open on B"
	sig b-end
	wait $bpid
	rc=$?
	check session-run-b "$rc" 0 "cowmapctl run on B: $(tr '\n' ' ' </tmp/b-session.out)"
	sig b-read2

	# Conflict.
	rm -f $J/c-b.log
	cowmapctl map $D --write 20000:from-b --log $J/c-b.log >/dev/null 2>&1
	sig b-conflict-log
	waitf a-conflict-merged || return 1
	out=$(cowmapctl merge -s $D -l $J/c-b.log --in-place 2>&1)
	rc=$?
	check conflict-reported "$rc/$(peek $D 20000 6)" 3/from-a "B's merge of a conflicting change: exit status/bytes ($out)"
	sig b-conflict-checked

	disjoint 32768

	waitf a-id-log || return 1
	out=$(cowmapctl merge -s $D -l $J/id.log --dry-run 2>&1)
	check identity-b "$?" 0 "merge --dry-run on B of A's journal, no --force-identity ($out)"
	out=$(cowmapctl merge -s /mnt/nfs/other -l $J/id.log --dry-run 2>&1)
	check identity-other-refused-b "$?" 1 "A's journal of data merged into other ($out)"
	sig b-id-checked
}

case "$ROLE" in
	server) server ;;
	a | b) client ;;
	*)
		echo "usage: nfs-guest.sh server|a|b" >&2
		exit 2
		;;
esac
