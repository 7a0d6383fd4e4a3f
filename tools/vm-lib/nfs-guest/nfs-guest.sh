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
# A client that fails creates ctl/ROLE-failed: the other client stops
# waiting for it, and the server prints its diagnostics.  Diagnostics are
# lines "diag-ROLE| ..." (left in the guest's output file by tools/vm-nfs).
#
# At the end, client A times a kernel merge against pwrite of the same bytes
# (lines "bench| ", nfs-big.py), then the server powers off in the middle
# of a kernel merge from A (sysrq o, once it sees A's lock in /proc/locks)
# and tools/vm-nfs boots it again on the same disk, addresses and ports.
#
# Environment: NFS_ROUNDS (rounds of simultaneous merges, default 10),
# NFS_WAIT (a client's longest wait for one step of the other, seconds,
# default 180), NFS_DEADLINE (the server stops serving at this uptime,
# seconds, default 480).
ROLE=$1
P=/cowmap/progs
G=$(dirname "$0")
PAGE=4096
NPAGES=16
ROUNDS=${NFS_ROUNDS:-10}
WAIT=${NFS_WAIT:-180}
DEADLINE=${NFS_DEADLINE:-480}
# Mount options (docs/nfs.md, "Mount options"): hard, so that no write,
# lock or merge ever fails half-done because the server is slow; NFSv4.1+
# sessions make a retransmission exactly-once.  timeo=50,retrans=3 bound
# the RPC timeout and the reconnect backoff to 5 + 3 * 5 = 20 s instead of
# 60 + 2 * 60 = 180 s.
MOPTS=vers=4.2,hard,timeo=50,retrans=3
E=/mnt/ext4/export
PY="$P/python3.11 -I -S"
# The benchmark's and the reboot case's file: BIG_PAGES pages, a change of
# one page in BIG_STRIDE from page 1 (nfs-big.py): 64 records of 4 KiB.
BIG_PAGES=256
BIG_STRIDE=4
BIG_REC=64

now() { cut -d' ' -f1 /proc/uptime; }
secs() {
	t=$(now)
	echo "${t%.*}"
}
say() { echo "nfs-$ROLE: [$(now)s] $*"; }
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

# What this guest knows about NFS, its network and its hung tasks.  Reads
# of the share are bounded by timeout: it may be what hangs.
diag() { # WHY
	say "diagnostics ($1): the lines 'diag-$ROLE| ...' of this guest's output"
	{
		echo "== $1, uptime $(now)"
		if [ "$ROLE" = server ]; then
			for f in /proc/fs/nfsd/clients/*/info /proc/fs/nfsd/clients/*/states; do
				[ -e "$f" ] || continue
				echo "-- $f"
				cat "$f"
			done
			for f in /proc/net/rpc/*/content; do
				echo "-- $f"
				cat "$f"
			done
			echo "-- /proc/net/rpc/nfsd"
			cat /proc/net/rpc/nfsd
			echo "-- $E/ctl"
			# shellcheck disable=SC2012 # for a human
			ls -lt $E/ctl | head -n 20
		else
			echo "-- /proc/self/mountstats"
			cat /proc/self/mountstats
			echo "-- /proc/net/rpc/nfs"
			cat /proc/net/rpc/nfs
			echo "-- $C (bounded: 10 s)"
			# shellcheck disable=SC2012 # for a human
			timeout -s KILL 10 ls -lt $C | head -n 20
			echo "-- cowmapctl list -s"
			timeout -s KILL 10 cowmapctl list -s
		fi
		echo "-- /proc/locks"
		cat /proc/locks
		echo "-- netstat -tn"
		netstat -tn
		echo "-- /proc/net/dev"
		cat /proc/net/dev
		echo "-- processes in D state, their kernel stacks"
		for s in /proc/[0-9]*/stat; do
			d=${s%/stat}
			read -r pid comm st _ <"$s" 2>/dev/null || continue
			[ "$st" = D ] || continue
			echo "$pid $comm $(cat "$d/wchan" 2>/dev/null)"
			cat "$d/stack" 2>/dev/null
		done
		echo "-- dmesg (last 40 lines)"
		dmesg | tail -n 40
	} 2>&1 | sed "s/^/diag-$ROLE| /"
}

# ---------------------------------------------------------------- server ---

server() {
	hostname nfs-server
	net_up eth0 10.0.1.1
	net_up eth1 10.0.2.1
	mkdir -p /etc /var/lib/nfs/v4recovery
	cp /netconfig /etc/netconfig
	: >/etc/exports
	: >/var/lib/nfs/etab
	: >/var/lib/nfs/rmtab
	mount -t nfsd nfsd /proc/fs/nfsd || return 1
	trace_on
	if [ -d $E ]; then
		say "booted again on the same disk (the reboot case)"
	else
		# First boot: the files the clients share.
		mkdir -p $E/ctl $E/j
		dd if=/dev/zero bs=$PAGE count=$NPAGES 2>/dev/null | tr '\0' '.' >$E/data
		dd if=/dev/zero bs=$PAGE count=2 2>/dev/null | tr '\0' '-' >$E/other
		chmod -R a+rwX $E
		sync
	fi
	$P/exportfs -o rw,no_root_squash,no_subtree_check,sync,fsid=0 '*:'$E || return 1
	# The grace period after a start is as long as the lease: 10 s, the
	# least nfsd takes (90 s by default).  Only settable while nfsd is down.
	echo 10 >/proc/fs/nfsd/nfsv4leasetime
	echo 10 >/proc/fs/nfsd/nfsv4gracetime
	# The clients' records (which of them may reclaim their state in the
	# grace period after a reboot) on the disk, as /var/lib/nfs would be.
	mkdir -p /mnt/ext4/v4recovery
	echo /mnt/ext4/v4recovery >/proc/fs/nfsd/nfsv4recoverydir
	$P/rpc.mountd -N 3 -u || return 1
	$P/rpc.nfsd -p 2049 -N 3 -V 4.2 -N 4.0 -N 4.1 -U 4 || return 1
	say "serving; versions: $(cat /proc/fs/nfsd/versions); lease $(cat /proc/fs/nfsd/nfsv4leasetime) s"
	: >$E/ctl/server-up
	# Serve until both clients are done, or until the deadline.
	beat=$(secs)
	why=
	while [ ! -e $E/ctl/a-done ] || [ ! -e $E/ctl/b-done ]; do
		t=$(secs)
		if [ "$t" -ge "$DEADLINE" ]; then
			why="deadline (uptime ${DEADLINE}s) reached; done: $(cd $E/ctl && echo ?-done)"
			break
		fi
		if [ -e $E/ctl/server-merge ] && [ ! -e $E/ctl/server-merged ]; then
			server_merge
			: >$E/ctl/server-merged
		fi
		if [ -e $E/ctl/reboot-arm ] && [ ! -e $E/ctl/server-powered-off ] &&
			[ ! -e $E/ctl/server-missed ]; then
			power_off_mid_merge
		fi
		if [ -e $E/ctl/server-check-big ] && [ ! -e $E/ctl/server-checked-big ]; then
			out=$($PY "$G"/nfs-big.py check $E/big $BIG_PAGES $BIG_REC $BIG_STRIDE 0 2>&1)
			check reboot-nothing-lost-server "$?" 0 "$E/big on the server's disk after the reboot ($out)"
			: >$E/ctl/server-checked-big
		fi
		for r in a b; do
			if [ -e $E/ctl/$r-failed ] && [ ! -e /tmp/diag-$r ]; then
				: >/tmp/diag-$r
				diag "client $r failed: $(cat $E/ctl/$r-failed)"
			fi
		done
		if [ $((t - beat)) -ge 30 ]; then
			beat=$t
			# shellcheck disable=SC2012 # for a human
			say "still serving; newest step files: $(cd $E/ctl && ls -t | head -n 4 | tr '\n' ' ')"
		fi
		sleep 0.5
	done
	if [ -n "$why" ]; then
		say "$why"
		diag "$why"
	else
		say "both clients done"
		for f in /proc/fs/nfsd/clients/*/info; do
			[ -e "$f" ] && say "client $(grep -E '^(address|name):' "$f" | tr '\n' ' ')"
		done
	fi
	trace_dump
	$P/rpc.nfsd 0
	$P/exportfs -ua
	[ -z "$why" ]
}

# The reboot case: once client A's kernel merge into big holds its lock
# (nfsd's lock on big's inode in /proc/locks), power off at once, as a
# power cut would: what nfsd acknowledged is on the disk (the export is
# sync), the rest of its memory is lost.  tools/vm-nfs boots the server
# again.  If the merge ends before its lock is seen, say so and go on.
power_off_mid_merge() {
	ino=$(stat -c %i $E/big)
	: >$E/ctl/server-armed
	t0=$(secs)
	while [ $(($(secs) - t0)) -lt 120 ] && [ ! -e $E/ctl/a-big-merged ]; do
		if grep -qE " WRITE +[0-9]+ [0-9a-f]+:[0-9a-f]+:$ino 0 EOF" /proc/locks; then
			say "client A's merge holds its lock on big (inode $ino): power off (sysrq o)"
			now >$E/ctl/server-powered-off
			sync
			echo o >/proc/sysrq-trigger
			sleep 60
		fi
		sleep 0.02
	done
	say "no lock of A's merge seen on big (inode $ino): not powering off"
	: >$E/ctl/server-missed
}

# The server merges a journal that client A wrote, into its own ext4 file.
server_merge() {
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

# A step file, created through the noac mount (bounded: the share may hang).
sig() {
	timeout -s KILL 60 sh -c ": >'$C/$1'" || say "cannot create $C/$1"
}
# This client failed at $1: tell the other client and the server.
failed() {
	say "failed: $1"
	timeout -s KILL 60 sh -c "echo '$1' >'$C/$ROLE-failed'" || say "cannot create $C/$ROLE-failed"
	diag "$1"
}
# Wait for step file $1, at most $2 or WAIT seconds, and not for a client
# that failed.
# (busybox sh has no local variables: the names here are waitf's own.)
waitf() {
	wf_t0=$(secs)
	while [ ! -e "$C/$1" ]; do
		for wf_r in a b; do
			if [ $wf_r != "$ROLE" ] && [ -e "$C/$wf_r-failed" ]; then
				say "client $wf_r failed ($(cat "$C/$wf_r-failed")): not waiting for $1"
				return 1
			fi
		done
		if [ $(($(secs) - wf_t0)) -ge "${2:-$WAIT}" ]; then
			say "timed out after ${2:-$WAIT}s waiting for $1"
			return 1
		fi
		sleep 0.1
	done
}

# NFS_TRACE=1: the lock and callback tracepoints of this guest, on from
# here, printed as lines "trace-ROLE| ..." by trace_dump (docs/nfs.md,
# "Lock waits").
trace_on() {
	[ "${NFS_TRACE:-0}" = 1 ] || return 0
	T=/sys/kernel/tracing
	[ -e $T/trace ] || mount -t tracefs tracefs $T || T=/sys/kernel/debug/tracing
	echo 4096 >$T/buffer_size_kb
	if [ "$ROLE" = server ]; then
		evs="nfsd/nfsd_cb_notify_lock nfsd/nfsd_cb_notify_lock_done nfsd/nfsd_cb_queue
			nfsd/nfsd_cb_start nfsd/nfsd_cb_lost nfsd/nfsd_cb_new_state nfsd/nfsd_cb_seq_status
			nfsd/nfsd_cb_setup nfsd/nfsd_cb_setup_err nfsd/nfsd_cb_probe"
	else
		evs="nfs4/nfs4_set_lock nfs4/nfs4_unlock nfs4/nfs4_cb_sequence"
	fi
	for e in $evs; do
		echo 1 >"$T/events/$e/enable" || say "trace: no event $e"
	done
	echo 1 >$T/tracing_on
	say "tracing on"
}
trace_dump() {
	[ "${NFS_TRACE:-0}" = 1 ] || return 0
	sed "s/^/trace-$ROLE| /" "$T/trace"
}

# Bytes [OFF, OFF+LEN) of FILE, read by busybox (static: never routed).
peek() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null; }

# A kept session on this client that wrote TEXT at OFFSET: its id.
kept() { # OFFSET TEXT
	cowmapctl map $D --write "$1:$2" --keep 2>/tmp/kept.err
}
# The kernel merge of kept session ID into the file; trimmed, so that a
# session all of whose records merged is freed.  Output in /tmp/kmerge.out.
kmerge() { # ID
	cowmapctl merge "$1" --into $D --trim >/tmp/kmerge.out 2>&1
}

mount_one() { # SERVER DIR OPTIONS: one attempt, at most 45 s
	timeout -s KILL 45 $P/mount.nfs4 "$1:/" "$2" -o "$3,retry=0" 2>/tmp/mount.err && return 0
	# Killed just as it succeeded?
	grep -q " $2 nfs4 " /proc/mounts
}

mount_share() { # SERVER
	mkdir -p /mnt/nfs /mnt/ctl
	t0=$(secs)
	n=1
	until mount_one "$1" /mnt/nfs $MOPTS; do
		say "mount attempt $n failed after $(($(secs) - t0))s: $(cat /tmp/mount.err)"
		if [ $(($(secs) - t0)) -ge 150 ]; then
			return 1
		fi
		n=$((n + 1))
		sleep 2
	done
	say "mounted $1:/ on /mnt/nfs after $(($(secs) - t0))s ($n attempt(s)); device $(stat -c %D /mnt/nfs)"
	mount_one "$1" /mnt/ctl "$MOPTS,noac,lookupcache=none,nosharecache" || return 1
	t0=$(secs)
	until [ -e $C/server-up ]; do
		if [ $(($(secs) - t0)) -ge 60 ]; then
			say "no $C/server-up after 60 s"
			return 1
		fi
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
	if ping -c 1 -W 20 $SERVER >/dev/null 2>&1; then
		say "the server $SERVER answers ping"
	else
		say "no ping reply from $SERVER in 20 s"
	fi
	# Two machines' NFS mounts get whatever anonymous device comes next on
	# each: identical guests would get the same one, and a journal's
	# device:inode would match by chance.  B takes two first, as a machine
	# with more mounts would.
	if [ "$ROLE" = b ]; then
		mkdir -p /mnt/pad1 /mnt/pad2
		mount -t tmpfs pad1 /mnt/pad1
		mount -t tmpfs pad2 /mnt/pad2
	fi
	if ! mount_share $SERVER; then
		nok "mount-$ROLE" "cannot mount $SERVER:/ ($(cat /tmp/mount.err))"
		diag "mount failed"
		return 1
	fi
	ok "mount-$ROLE"
	trace_on
	sig "$ROLE-up"
	# (client_a/b set rc of their own: this one is crc.)
	crc=0
	if waitf a-up && waitf b-up; then
		say "both clients up"
		"client_$ROLE" || crc=1
	else
		crc=1
	fi
	[ $crc = 0 ] || failed "a step of client $ROLE did not complete (see above)"
	trace_dump
	sig "$ROLE-done"
	say "done"
	timeout -s KILL 30 umount /mnt/nfs || umount -l /mnt/nfs
	timeout -s KILL 30 umount /mnt/ctl || umount -l /mnt/ctl
	return $crc
}

# Client A: changes the file by plain writes and merges, in steps with B.
client_a() {
	# 1. B holds a session and has read pages 1 to 3 through it; A's own
	# session on the same file meanwhile writes page 0 (not the file).
	waitf b-session || return 1
	id=$(kept 100 a-session)
	if cowmapctl list --noheadings 2>/dev/null | grep -qw "$id" &&
		[ "$(peek $D 100 9)" = "........." ]; then
		ok sessions-both-clients
	else
		nok sessions-both-clients "cowmapctl map --keep on A: '$id' $(cat /tmp/kept.err)"
	fi
	cowmapctl discard "$id" >/dev/null 2>&1

	# 2. A plain write over pages 1 and 2, closed (close-to-open).
	printf AAAA | dd of=$D bs=1 seek=$((PAGE)) conv=notrunc 2>/dev/null
	printf AAAA | dd of=$D bs=1 seek=$((2 * PAGE)) conv=notrunc 2>/dev/null
	sig a-wrote
	waitf b-read1 || return 1

	# 3. A kernel merge on A over page 3.
	id=$(kept $((3 * PAGE)) MMMM)
	kmerge "$id"
	check merge-a "$?" 0 "kernel merge on A (session '$id': $(cat /tmp/kmerge.out))"
	sig a-merged
	waitf b-read2 || return 1

	# 4. Conflict: both keep a change of the same bytes from the same
	# base; A merges first, B's merge must report a conflict.
	id=$(kept 20000 from-a)
	sig a-conflict-kept
	waitf b-conflict-kept || return 1
	kmerge "$id"
	check conflict-first-merge "$?" 0 "A's kernel merge (session '$id': $(cat /tmp/kmerge.out))"
	sig a-conflict-merged
	waitf b-conflict-checked || return 1

	# 5. Disjoint changes merged at the same moment, ROUNDS times.
	disjoint || return 1

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

	# 7. The benchmark row of issue 15: a kernel merge of 64 records of
	# 4 KiB against pwrite of the same bytes, on this client (not judged).
	if ! { $PY "$G"/nfs-big.py make /mnt/nfs/bench $BIG_PAGES &&
		$PY "$G"/nfs-big.py bench /mnt/nfs/bench $BIG_REC $BIG_STRIDE 3; }; then
		say "the benchmark failed (see above)"
	fi
	rm -f /mnt/nfs/bench

	# 8. The server powers off in the middle of a kernel merge and boots
	# again.
	reboot_a
}

# A client's tasks wait in D state while the server is away (hard mount):
# longer than the hung-task warning's 120 s if the host is slow to boot
# the server again.  The reboot case bounds its waits itself.
HUNG=/proc/sys/kernel/hung_task_timeout_secs
hung_wait() { # SECONDS
	[ ! -w $HUNG ] || echo "$1" >$HUNG
}

# The reboot case, on A: a kernel merge (with fsync) of 64 records of 4
# KiB into big; the server powers off while it holds its lock and boots
# again.  The merge must return (an error or success), a re-run must
# complete, and every page of big must be as the change makes it, here, on
# B and on the server's disk.
reboot_a() {
	big=/mnt/nfs/big
	hung_wait 600
	if ! $PY "$G"/nfs-big.py make $big $BIG_PAGES ||
		! id=$($PY "$G"/nfs-big.py keep $big $BIG_REC $BIG_STRIDE 0); then
		nok reboot-mid-merge "cannot make $big and a session changing it"
		return 1
	fi
	sig reboot-arm
	waitf server-armed || return 1
	m0=$(now)
	timeout -s KILL 500 cowmapctl merge "$id" --into $big --fsync >/tmp/rmerge.out 2>&1
	rc=$?
	m1=$(now)
	say "the kernel merge during the server's reboot: exit status $rc after $((${m1%.*} - ${m0%.*})) s: $(tr '\n' ' ' </tmp/rmerge.out)"
	sig a-big-merged
	t0=$(secs)
	while [ ! -e $C/server-powered-off ] && [ ! -e $C/server-missed ]; do
		[ $(($(secs) - t0)) -lt 60 ] || break
		sleep 0.1
	done
	if [ ! -e $C/server-powered-off ]; then
		nok reboot-mid-merge "the server did not power off during the merge (exit status $rc)"
	elif [ $rc = 0 ] || [ $rc = 1 ]; then
		ok reboot-mid-merge
	else
		nok reboot-mid-merge "the merge during the reboot: exit status $rc ($(cat /tmp/rmerge.out))"
	fi
	timeout -s KILL 300 cowmapctl merge "$id" --into $big --fsync >/tmp/rmerge.out 2>&1
	check reboot-merge-rerun "$?" 0 "the merge run again ($(tr '\n' ' ' </tmp/rmerge.out))"
	cowmapctl discard "$id" >/dev/null 2>&1
	out=$($PY "$G"/nfs-big.py check $big $BIG_PAGES $BIG_REC $BIG_STRIDE 0 2>&1)
	check reboot-nothing-lost-a "$?" 0 "$big on A after the merge ($out)"
	sig server-check-big
	sig a-big-done
	waitf server-checked-big 300 || return 1
	waitf b-big-checked 300 || return 1
	hung_wait 120
}

# Rounds of disjoint merges: A changes BASE + 8 * round, B BASE + 8192 +
# 8 * round; each keeps its change, waits for the other's, and both merge
# at once.  A merges in the kernel; B in the kernel in even rounds and
# with the offline merge (cowmapctl merge --in-place, the same OFD lock) in
# odd ones.
DBASE=32768
disjoint() {
	off=$DBASE
	[ "$ROLE" = a ] || off=$((off + 8192))
	other=b
	[ "$ROLE" = a ] || other=a
	r=0 fails=0 t0=$(secs) mt=0 mmax=0
	while [ $r -lt "$ROUNDS" ]; do
		o=$((off + 8 * r))
		if [ "$ROLE" = b ] && [ $((r % 2)) = 1 ]; then
			log=$J/d-b-$r.log
			rm -f "$log"
			cowmapctl map $D --write "$o:$ROLE-r$r" --log "$log" >/tmp/kept.err 2>&1
			sig "d-$ROLE-$r"
			waitf "d-$other-$r" || return 1
			m0=$(now)
			cowmapctl merge -s $D -l "$log" --in-place >/tmp/kmerge.out 2>&1
		else
			id=$(kept $o "$ROLE-r$r")
			sig "d-$ROLE-$r"
			waitf "d-$other-$r" || return 1
			m0=$(now)
			kmerge "$id"
		fi || {
			fails=$((fails + 1))
			say "round $r: merge failed: $(cat /tmp/kept.err /tmp/kmerge.out)"
		}
		# The merge's own time, in ms (uptime has 10 ms steps).
		m1=$(now)
		d=$(( (${m1%.*}${m1#*.} - ${m0%.*}${m0#*.}) * 10 ))
		mt=$((mt + d))
		[ "${NFS_TRACE:-0}" != 1 ] || say "round $r: merge from $m0 s took $d ms"
		[ $d -le $mmax ] || mmax=$d
		r=$((r + 1))
	done
	say "$ROUNDS rounds of merges in $(($(secs) - t0))s; the merges took $((mt / ROUNDS)) ms on average, at most $mmax ms"
	sig "d-$ROLE-end"
	waitf "d-$other-end" || return 1
	# Every change of both clients is in the file (read after an open).
	lost=0 r=0
	while [ $r -lt "$ROUNDS" ]; do
		for who in a b; do
			o=$((DBASE + 8 * r))
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

# The four pages the session showed, from its view file: "P0 P1 P2 P3 [N]".
view() { cat "$C/$1"; }
field() { echo "$1" | cut -d' ' -f"$2"; }

# Client B: a session that lives through A's changes.
client_b() {
	rm -f $C/b-view-*
	# The session: b-session.py, a cowmap session on the file through
	# /dev/cowmap, mapped whole (it writes page 0, reads pages 1 to 3).
	# Its log lines ("nfs-b: ... session: ...") go to this guest's output.
	$P/python3.11 -I -S "$G/b-session.py" $C $D $NPAGES "$WAIT" &
	bpid=$!
	waitf b-session || return 1
	waitf a-wrote || return 1
	waitf b-view-1 || return 1
	say "session after A's write, nothing on B opened the file: '$(view b-view-1)'"
	# A plain reader on B opens the file (close-to-open revalidation) while
	# the session still shows pages 1 and 2 from before A's write: cowmap
	# must not leave it stale.
	got=$(peek $D $PAGE 4)$(peek $D $((2 * PAGE)) 4)
	check reader-sees-a-write "$got" AAAAAAAA "a plain reader on B, pages 1 and 2"
	sig b-reader-1
	waitf b-view-3 || return 1
	say "session after the reader's open, before COWMAP_IOC_REFRESH: '$(view b-view-2)'"
	v=$(view b-view-3)
	say "session after COWMAP_IOC_REFRESH: '$v'"
	check session-own-page "$(field "$v" 1)" BBBB "the session's own page 0 after the refresh"
	check session-refresh-sees-a-write "$(field "$v" 2) $(field "$v" 3)" "AAAA AAAA" \
		"B's session, pages 1 and 2, after COWMAP_IOC_REFRESH"
	sig b-read1

	waitf a-merged || return 1
	waitf b-view-5 || return 1
	say "session after A's kernel merge, before COWMAP_IOC_REFRESH: '$(view b-view-4)'"
	v=$(view b-view-5)
	say "session after COWMAP_IOC_REFRESH (no open on B since the merge): '$v'"
	check session-refresh-sees-a-merge "$(field "$v" 1) $(field "$v" 4)" "BBBB MMMM" \
		"B's session, pages 0 and 3, after COWMAP_IOC_REFRESH"
	got=$(peek $D $((3 * PAGE)) 4)
	check reader-sees-a-merge "$got" MMMM "a plain reader on B, page 3"
	sig b-end
	wait $bpid
	rc=$?
	check session-b-exit "$rc" 0 "the exit status of B's session program (its log: the lines 'nfs-b: ... session:')"
	sig b-read2

	# Conflict.
	id=$(kept 20000 from-b)
	sig b-conflict-kept
	waitf a-conflict-merged || return 1
	kmerge "$id"
	rc=$?
	check conflict-reported "$rc/$(peek $D 20000 6)" 3/from-a \
		"B's kernel merge of a conflicting change: exit status/bytes ($(cat /tmp/kmerge.out))"
	cowmapctl discard "$id" >/dev/null 2>&1
	sig b-conflict-checked

	disjoint || return 1

	waitf a-id-log || return 1
	out=$(cowmapctl merge -s $D -l $J/id.log --dry-run 2>&1)
	check identity-b "$?" 0 "merge --dry-run on B of A's journal, no --force-identity ($out)"
	out=$(cowmapctl merge -s /mnt/nfs/other -l $J/id.log --dry-run 2>&1)
	check identity-other-refused-b "$?" 1 "A's journal of data merged into other ($out)"
	sig b-id-checked

	# The reboot case (reboot_a): B waits through it, then reads big.
	waitf reboot-arm 600 || return 1
	hung_wait 600
	waitf a-big-done 600 || return 1
	out=$($PY "$G"/nfs-big.py check /mnt/nfs/big $BIG_PAGES $BIG_REC $BIG_STRIDE 0 2>&1)
	check reboot-nothing-lost-b "$?" 0 "/mnt/nfs/big on B after A's merge ($out)"
	sig b-big-checked
	hung_wait 120
}

case "$ROLE" in
	server) server ;;
	a | b) client ;;
	*)
		echo "usage: nfs-guest.sh server|a|b" >&2
		exit 2
		;;
esac
