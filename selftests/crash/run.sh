#!/bin/bash
# Power-off tests: two scenarios at a time boot the kernel twice on one disk
# image.
# The first boot ends with the power cut (crashtest's reboot(2), no sync),
# the second checks what survived. Prints KTAP and "N passed, M failed".
# Usage: selftests/crash/run.sh [--kernel 6.1|6.12|7.3|debug]
set -euo pipefail
cd "$(dirname "$0")/../.."

KERNEL=6.1
if [ "${1:-}" = --kernel ]; then
	KERNEL=$2
fi
# A test entry point: it installs what it needs ("make" never does).
tools/deps.sh
make -s "$PWD/build/crash/crashtest" tools
DISK=build/vm/crash-$KERNEL.img
LOG=build/vm/crash-$KERNEL.log
: >"$LOG"

pass=0
fail=0
n=0
# Two boots on one disk image: the first halves of some scenarios, each in
# its own directory (the last one cuts the power), then their checks. One
# KTAP line per scenario, from the check's "crashtest: result" line.
pair() {	# NAME:FIRST-HALF:CHECK... (each scenario's directory is its NAME)
	local first="" checks="" s name ok=0
	rm -f "$DISK"
	for s in "$@"; do
		IFS=: read -r name a b <<<"$s"
		first+=" $a /mnt/ext4/$name"
		checks+=" $b /mnt/ext4/$name"
	done
	if tools/vm run --kernel "$KERNEL" --disk "$DISK" --include build/crash -- "/crash/crashtest$first" >>"$LOG" 2>&1; then
		# A failed check fails its scenario only: the results say which.
		tools/vm run --kernel "$KERNEL" --disk "$DISK" --no-module --include build/crash -- "/crash/crashtest$checks" >>"$LOG" 2>&1 || true
		ok=1
	fi
	for s in "$@"; do
		IFS=: read -r name a b <<<"$s"
		n=$((n + 1))
		if [ "$ok" = 1 ] && grep -q "^crashtest: result $b /mnt/ext4/$name ok" "$LOG"; then
			echo "ok $n $name"
			pass=$((pass + 1))
		else
			sed 's/^/# /' "$LOG" | tail -n 30
			echo "not ok $n $name"
			fail=$((fail + 1))
		fi
	done
	grep '^crashtest:' "$LOG" | sed 's/^/# /' || true
	: >"$LOG"
}

echo "TAP version 13"
echo "1..4"
# Durable commits (journal) and the same through a view fd, where fsync(2)
# of the view is the durable commit (journal-view), share a boot with a
# kernel merge in progress when the power goes (at a random moment): the
# offline in-place merge completes it in the second boot, exactly.  The
# offline in-place merge cut at a random moment has the second pair.
pair journal-survives-power-off:journal:journal-check \
	kernel-merge-power-off-completes:kmerge:merge-check
pair view-fsync-survives-power-off:journal-view:journal-check \
	offline-merge-power-off-completes:omerge:merge-check
rm -f "$DISK"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
