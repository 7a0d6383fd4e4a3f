#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# run_test: "cowmapctl run" with unmodified Debian programs (docs/run.md).
# Runs in the guest (busybox ash) from tools/vm's list, in $COWMAP_TESTDIR;
# the programs are in /cowmap/progs (selftests/guest-programs). KTAP output.
#
# Every case checks that the routed file is unchanged until the merge (a
# checksum taken before the run), so a routing leak fails it.

P=/cowmap/progs
# tools/vm puts the preload library next to cowmapctl, as in a build tree:
# /usr/bin/cowmapctl finds /usr/lib/libcowmap-preload.so (its ../lib).
PRE=/usr/lib/libcowmap-preload.so
unset COWMAP_PRELOAD
D=${COWMAP_TESTDIR:-$(pwd)}
cd "$D" || exit 1

CASES="sqlite_keep_merge sqlite_merge sqlite_conflict sqlite_discard dd_notrunc dash_append
awk_reads_session python_mmap dir_paths lmdb rename_refused fd_gone static_refused bad_input
killed log_dir no_preload"
NCASES=$(echo "$CASES" | wc -w)

echo "TAP version 13"
echo "1..$NCASES"
N=0
FAILED=0

# Each case runs in a subshell; "fail MSG" ends it with a diagnostic.
fail() {
	echo "# $CASE: $*"
	exit 1
}
sum() { sha256sum "$1" | cut -d' ' -f1; }
# The session id cowmapctl run printed for a kept session (stderr in $1).
kept_id() { sed -n 's/.*session \([0-9]*\) kept.*/\1/p' "$1" | head -n 1; }
run() { cowmapctl run "$@"; }
sq() { "$P/sqlite3" -batch "$@"; }

sqlite_db() {
	rm -f "$1"
	sq "$1" "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);
		INSERT INTO t VALUES (1,'one'),(2,'two'),(3,'three');" || fail "sqlite3 setup"
}

case_sqlite_keep_merge() {
	sqlite_db db
	before=$(sum db)
	run --file db -- "$P/sqlite3" -batch db \
		"BEGIN; INSERT INTO t VALUES (4,'four'); UPDATE t SET v='ONE' WHERE k=1; COMMIT;" \
		2>err || fail "run: exit $? $(cat err)"
	[ "$(sum db)" = "$before" ] || fail "db changed before the merge"
	[ "$(sq db 'SELECT count(*) FROM t')" = 3 ] || fail "the real db has the new row"
	id=$(kept_id err)
	[ -n "$id" ] || fail "no kept session in: $(cat err)"
	cowmapctl merge "$id" --into db >out || fail "merge: exit $? $(cat out)"
	[ "$(sq db 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after merge"
	[ "$(sq db 'SELECT count(*) FROM t')" = 4 ] || fail "rows after merge"
	[ "$(sq db 'SELECT v FROM t WHERE k=1')" = ONE ] || fail "update after merge"
	cowmapctl discard "$id" >/dev/null 2>&1
	return 0
}

case_sqlite_merge() {
	sqlite_db db
	# Reads through the session see the session's rows, within one run.
	run --file db --merge -- "$P/dash" -c \
		"$P/sqlite3 db \"INSERT INTO t VALUES (5,'five');\" &&
		 [ \"\$($P/sqlite3 db 'SELECT v FROM t WHERE k=5')\" = five ]" 2>err ||
		fail "run --merge: exit $? $(cat err)"
	grep -q merged err || fail "no merge reported: $(cat err)"
	[ "$(sq db 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
	[ "$(sq db 'SELECT v FROM t WHERE k=5')" = five ] || fail "row not merged"
	# A program that fails is not merged.
	before=$(sum db)
	run --file db --merge -- "$P/dash" -c \
		"$P/sqlite3 db \"INSERT INTO t VALUES (6,'six');\"; exit 7" 2>err
	rc=$?
	[ $rc = 7 ] || fail "exit status $rc, not the program's 7"
	[ "$(sum db)" = "$before" ] || fail "a failed program's session was merged"
	id=$(kept_id err)
	[ -n "$id" ] || fail "the failed program's session was not kept: $(cat err)"
	cowmapctl discard "$id" >/dev/null
}

case_sqlite_conflict() {
	sqlite_db db
	run --file db -- "$P/sqlite3" db "UPDATE t SET v='A' WHERE k=2;" 2>err1 ||
		fail "run A: $(cat err1)"
	a=$(kept_id err1)
	run --file db --merge -- "$P/sqlite3" db "UPDATE t SET v='B' WHERE k=2;" 2>err2 ||
		fail "run B --merge: exit $? $(cat err2)"
	after=$(sum db)
	cowmapctl merge "$a" --into db >out 2>&1
	rc=$?
	[ $rc = 3 ] || fail "merge of A: exit $rc, not 3: $(cat out)"
	[ "$(sum db)" = "$after" ] || fail "a conflicting merge wrote the file"
	[ "$(sq db 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
	[ "$(sq db 'SELECT v FROM t WHERE k=2')" = B ] || fail "B's row is gone"
	cowmapctl discard "$a" >/dev/null
	# The same at the end of a run --merge: another merge into the real
	# file while the program runs (cowmapctl without the preload library):
	# exit 3, nothing written, the session kept.
	run --file db -- "$P/sqlite3" db "UPDATE t SET v='C' WHERE k=1;" 2>err3
	c=$(kept_id err3)
	run --file db --merge -- "$P/dash" -c \
		"$P/sqlite3 db \"UPDATE t SET v='D' WHERE k=1;\" &&
		 env -u LD_PRELOAD cowmapctl merge $c --into db >/dev/null" >/dev/null 2>err4
	rc=$?
	[ $rc = 3 ] || fail "run --merge after a concurrent merge: exit $rc, not 3: $(cat err4)"
	[ "$(sq db 'SELECT v FROM t WHERE k=1')" = C ] || fail "C's row is not there"
	[ "$(sq db 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
	d=$(kept_id err4)
	[ -n "$d" ] || fail "the conflicting session was not kept: $(cat err4)"
	cowmapctl discard "$c" >/dev/null
	cowmapctl discard "$d" >/dev/null
	return 0
}

case_sqlite_discard() {
	sqlite_db db
	before=$(sum db)
	run --file db --discard -- "$P/sqlite3" db "DELETE FROM t;" 2>err || fail "run: $(cat err)"
	grep -q discarded err || fail "not discarded: $(cat err)"
	[ "$(sum db)" = "$before" ] || fail "db changed"
	[ "$(sq db 'SELECT count(*) FROM t')" = 3 ] || fail "rows"
}

case_dd_notrunc() {
	head -c 8192 /dev/zero | tr '\0' a >f
	printf 'XYZ' >src
	before=$(sum f)
	run --file f -- "$P/dd" if=src of=f bs=1 seek=100 conv=notrunc status=none 2>err ||
		fail "run: $(cat err)"
	[ "$(sum f)" = "$before" ] || fail "f changed before the merge"
	id=$(kept_id err)
	cowmapctl merge "$id" --into f >/dev/null || fail "merge"
	[ "$(dd if=f bs=1 skip=99 count=5 2>/dev/null)" = aXYZa ] || fail "merged bytes"
	[ "$(wc -c <f)" = 8192 ] || fail "size"
	cowmapctl discard "$id" >/dev/null 2>&1
	return 0
}

case_dash_append() {
	printf 'line1\n' >f
	before=$(sum f)
	run --file f -- "$P/dash" -c 'echo x >> f; echo y >> f' 2>err || fail "run: $(cat err)"
	[ "$(sum f)" = "$before" ] || fail "f changed before the merge"
	id=$(kept_id err)
	cowmapctl merge "$id" --into f >/dev/null || fail "merge"
	[ "$(cat f)" = "$(printf 'line1\nx\ny')" ] || fail "merged: $(cat f)"
	cowmapctl discard "$id" >/dev/null 2>&1
	# O_TRUNC (dash's >) truncates the session, not the file.
	before=$(sum f)
	run --file f -- "$P/dash" -c 'echo new > f; [ "$(wc -c < f)" = 4 ]' 2>err ||
		fail "O_TRUNC run: $(cat err)"
	[ "$(sum f)" = "$before" ] || fail "O_TRUNC reached the file"
	id=$(kept_id err)
	cowmapctl merge "$id" --into f >/dev/null || fail "merge of the truncation"
	[ "$(cat f)" = new ] || fail "after O_TRUNC and merge: $(cat f)"
	cowmapctl discard "$id" >/dev/null 2>&1
	return 0
}

case_awk_reads_session() {
	printf '1\n2\n' >f
	before=$(sum f)
	run --file f --discard -- "$P/dash" -c "echo 3 >> f; $P/mawk '{ s += \$1 } END { print s }' f >out" \
		2>err || fail "run: $(cat err)"
	[ "$(cat out)" = 6 ] || fail "awk read '$(cat out)', not the session's 6"
	[ "$(sum f)" = "$before" ] || fail "f changed"
}

case_python_mmap() {
	printf 'hello world\n' >f
	before=$(sum f)
	cat >script.py <<'EOF'
import mmap, os
with open("f", "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    m[0:5] = b"HELLO"
    m.flush()
    m.close()
    f.seek(0, os.SEEK_END)
    f.write(b"tail\n")
with open("f", "rb") as f:
    assert f.read() == b"HELLO world\ntail\n"
print(os.stat("f").st_size, os.path.getsize("f"))
EOF
	run --file f -- "$P/python3.11" -I -S script.py >out 2>err || fail "run: $(cat err)"
	[ "$(cat out)" = "17 17" ] || fail "stat in the run: '$(cat out)', not the session's 17"
	[ "$(sum f)" = "$before" ] || fail "f changed before the merge"
	id=$(kept_id err)
	cowmapctl merge "$id" --into f >/dev/null || fail "merge"
	[ "$(cat f)" = "$(printf 'HELLO world\ntail')" ] || fail "merged: $(cat f)"
	cowmapctl discard "$id" >/dev/null 2>&1
	return 0
}

case_dir_paths() {
	mkdir -p d/sub other
	printf 'a\n' >d/sub/f
	ln -sf ../d/sub/f other/link
	before=$(sum d/sub/f)
	here=$(pwd)
	run --dir d -- "$P/dash" -c \
		"cd other && echo b >> link && echo c >> ../d/sub/../sub/f && cd .. && echo d >> $here/d/sub/f" \
		2>err || fail "run: $(cat err)"
	[ "$(sum d/sub/f)" = "$before" ] || fail "d/sub/f changed before the merge"
	id=$(kept_id err)
	cowmapctl merge "$id" --into d/sub/f >/dev/null || fail "merge"
	[ "$(cat d/sub/f)" = "$(printf 'a\nb\nc\nd')" ] || fail "merged: $(cat d/sub/f)"
	# A file created in the directory is not routed (documented).
	run --dir d --discard -- "$P/dash" -c 'echo new > d/new' 2>/dev/null || fail "new file"
	[ "$(cat d/new)" = new ] || fail "new file not created"
	cowmapctl discard "$id" >/dev/null 2>&1
	return 0
}

case_lmdb() {
	rm -rf env
	mkdir env
	printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n k1\n v1\n k2\n v2\nDATA=END\n' >in1
	"$P/mdb_load" -f in1 env || fail "mdb_load setup"
	before=$(sum env/data.mdb)
	printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n k3\n v3\nDATA=END\n' >in2
	run --file env/data.mdb -- "$P/dash" -c \
		"$P/mdb_load -f in2 env && $P/mdb_dump -p env >inside" 2>err || fail "run: $(cat err)"
	grep -q '^ k3$' inside || fail "mdb_dump in the run does not show k3"
	[ "$(sum env/data.mdb)" = "$before" ] || fail "data.mdb changed before the merge"
	"$P/mdb_dump" -p env | grep -q '^ k3$' && fail "the real env has k3"
	id=$(kept_id err)
	cowmapctl merge "$id" --into env/data.mdb >/dev/null || fail "merge"
	"$P/mdb_dump" -p env >after || fail "mdb_dump after merge"
	for k in k1 k2 k3; do grep -q "^ $k\$" after || fail "$k missing after the merge"; done
	cowmapctl discard "$id" >/dev/null 2>&1
	return 0
}

case_rename_refused() {
	printf 'keep\n' >f
	printf 'other\n' >g
	run --file f --discard -- "$P/mv" g f 2>err && fail "mv over a routed file succeeded"
	grep -q 'rename of g to f refused' err || fail "no message: $(cat err)"
	[ "$(cat f)" = keep ] && [ -f g ] || fail "the rename happened"
	run --file f --discard -- "$P/mv" f h 2>err && fail "mv of a routed file succeeded"
	[ -f f ] && [ ! -e h ] || fail "the rename happened"
	return 0
}

case_fd_gone() {
	printf 'orig\n' >f
	# The session fd named in COWMAP_RUN is not a session: refused, EIO.
	dev=$((0x$(stat -c %D f)))
	ino=$(stat -c %i f)
	maj=$(((dev >> 8) & 0xfff))
	min=$(((dev & 0xff) | ((dev >> 12) & 0xfff00)))
	COWMAP_RUN="1;7,1,$maj,$min,$ino" LD_PRELOAD=$PRE \
		"$P/dash" -c 'echo y >> f' 7>/dev/null 2>err && fail "the open succeeded"
	grep -q 'no longer that session' err || fail "no message: $(cat err)"
	[ "$(cat f)" = orig ] || fail "the real file was written"
	COWMAP_RUN="1;bad" LD_PRELOAD=$PRE "$P/dash" -c 'echo y >> f' 2>err
	[ $? = 126 ] || fail "a malformed COWMAP_RUN did not stop the program"
	[ "$(cat f)" = orig ] || fail "the real file was written"
}

case_static_refused() {
	printf 'orig\n' >f
	run --file f -- /bin/busybox sh -c 'echo x >> f' 2>err
	rc=$?
	[ $rc = 1 ] || fail "exit $rc, not 1"
	grep -q 'statically linked' err || fail "no message: $(cat err)"
	[ "$(cat f)" = orig ] || fail "the static program ran"
	printf '#!/bin/busybox sh\necho x >> f\n' >script
	chmod +x script
	run --file f -- ./script 2>err
	[ $? = 1 ] && grep -q 'statically linked' err || fail "a script run by busybox: $(cat err)"
	[ "$(cat f)" = orig ] || fail "the script ran"
}

case_bad_input() {
	printf 'x\n' >f
	mkdir -p dd1
	run --file dd1 -- "$P/dash" -c true 2>err
	[ $? = 1 ] && grep -q 'not a regular file' err || fail "--file DIR: $(cat err)"
	run --dir nosuchdir -- "$P/dash" -c true 2>err
	[ $? = 1 ] || fail "--dir missing: $(cat err)"
	run --file f --merge --keep -- "$P/dash" -c true 2>err
	[ $? = 2 ] || fail "--merge --keep: $(cat err)"
	run --file f -- ./no-such-program 2>err
	[ $? = 127 ] || fail "a missing program: not 127"
	run --file f -- no-such-program-in-path 2>err
	[ $? = 127 ] || fail "a missing program in PATH: not 127"
	run -- "$P/dash" -c true 2>err
	[ $? = 2 ] || fail "nothing routed: not a usage error"
	run --file f 2>err
	[ $? = 2 ] || fail "no program: not a usage error"
	run --file f --discard -- "$P/dash" -c 'exit 42' 2>err
	[ $? = 42 ] || fail "the exit status is not passed through"
	return 0
}

case_killed() {
	printf 'orig\n' >f
	run --file f --merge -- "$P/dash" -c 'echo x >> f; kill -9 $$' 2>err
	rc=$?
	[ $rc = 137 ] || fail "exit $rc, not 137"
	grep -q 'killed by signal 9' err || fail "no message: $(cat err)"
	[ "$(cat f)" = orig ] || fail "merged after a kill"
	id=$(kept_id err)
	[ -n "$id" ] || fail "session not kept: $(cat err)"
	cowmapctl dump "$id" >/dev/null || fail "the kept session cannot be dumped"
	cowmapctl discard "$id" >/dev/null
	# SIGTERM to cowmapctl goes to the program; cowmapctl still finishes.
	cowmapctl run --file f --merge -- "$P/dash" -c 'echo y >> f; exec sleep 30' 2>err2 &
	pid=$!
	i=0
	while ! grep -q 'session [0-9]*$' err2 && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	sleep 0.5
	kill -TERM $pid
	wait $pid
	rc=$?
	[ $rc = 143 ] || fail "SIGTERM: exit $rc, not 143: $(cat err2)"
	[ "$(cat f)" = orig ] || fail "merged after SIGTERM"
	id=$(kept_id err2)
	[ -n "$id" ] || fail "session not kept after SIGTERM: $(cat err2)"
	cowmapctl discard "$id" >/dev/null
}

case_log_dir() {
	printf 'orig\n' >f
	mkdir -p logs
	run --file f --log logs -- "$P/dash" -c 'echo x >> f' 2>err || fail "run: $(cat err)"
	log=$(ls logs/f.*.log 2>/dev/null | head -n 1)
	[ -n "$log" ] || fail "no journal file in logs/"
	cowmapctl dump -l "$log" >out || fail "dump -l"
	cowmapctl merge -s f -l "$log" -o merged >/dev/null || fail "offline merge"
	[ "$(cat merged)" = "$(printf 'orig\nx')" ] || fail "offline merge result"
	[ "$(cat f)" = orig ] || fail "f changed"
	cowmapctl discard "$(kept_id err)" >/dev/null
}

case_no_preload() {
	printf 'orig\n' >f
	COWMAP_PRELOAD=/nonexistent/libcowmap-preload.so run --file f -- "$P/dash" -c 'echo x >> f' \
		2>err
	[ $? = 1 ] && grep -q 'COWMAP_PRELOAD=/nonexistent' err || fail "$(cat err)"
	[ "$(cat f)" = orig ] || fail "the program ran"
	# A cowmapctl with no library next to it, none installed: refused.
	mkdir -p bin
	cp /usr/bin/cowmapctl bin/
	bin/cowmapctl run --file f -- "$P/dash" -c 'echo x >> f' 2>err
	[ $? = 1 ] && grep -q 'libcowmap-preload.so not found' err || fail "$(cat err)"
	[ "$(cat f)" = orig ] || fail "the program ran"
	# $COWMAP_PRELOAD wins over the one next to cowmapctl.
	cp "$PRE" lib.so
	COWMAP_PRELOAD=$(pwd)/lib.so bin/cowmapctl run --file f --discard -- "$P/dash" -c \
		'echo "$LD_PRELOAD" > where' 2>err || fail "$(cat err)"
	[ "$(cat where)" = "$(pwd)/lib.so" ] || fail "LD_PRELOAD was $(cat where)"
}

for CASE in $CASES; do
	N=$((N + 1))
	mkdir -p "$D/$CASE"
	(cd "$D/$CASE" && "case_$CASE") >"$D/$CASE.out" 2>&1
	rc=$?
	sed 's/^/# /' "$D/$CASE.out" | grep -v '^# $' | head -n 40
	if [ $rc = 0 ]; then
		echo "ok $N $CASE"
	else
		echo "not ok $N $CASE"
		FAILED=$((FAILED + 1))
	fi
done
echo "# $FAILED failed"
# Sessions a failed case left kept: the module must unload after the suite.
cat "$D"/*/err* 2>/dev/null | sed -n 's/.*session \([0-9]*\) kept.*/\1/p' | sort -u |
	while read -r id; do cowmapctl discard "$id" >/dev/null 2>&1; done
[ $FAILED = 0 ]
