#!/bin/bash
# Power-off tests: each scenario boots the kernel twice on one disk image.
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
scenario() {	# NAME CMD1 CMD2
	n=$((n + 1))
	rm -f "$DISK"
	if tools/vm run --kernel "$KERNEL" --disk "$DISK" --include build/crash -- "$2" >>"$LOG" 2>&1 &&
	   tools/vm run --kernel "$KERNEL" --disk "$DISK" --no-module --include build/crash -- "$3" >>"$LOG" 2>&1; then
		echo "ok $n $1"
		pass=$((pass + 1))
	else
		sed 's/^/# /' "$LOG" | tail -n 30
		echo "not ok $n $1"
		fail=$((fail + 1))
	fi
	grep '^crashtest:' "$LOG" | sed 's/^/# /' || true
	: >"$LOG"
}

echo "TAP version 13"
echo "1..4"
scenario journal-survives-power-off \
	"/crash/crashtest journal /mnt/ext4" \
	"/crash/crashtest journal-check /mnt/ext4"
# The same through a view fd: fsync(2) of the view is the durable commit.
scenario view-fsync-survives-power-off \
	"/crash/crashtest journal-view /mnt/ext4" \
	"/crash/crashtest journal-check /mnt/ext4"
# A merge in progress when the power goes (at a random moment): the
# offline in-place merge completes it in the second boot, exactly.
scenario kernel-merge-power-off-completes \
	"/crash/crashtest kmerge /mnt/ext4" \
	"/crash/crashtest merge-check /mnt/ext4"
scenario offline-merge-power-off-completes \
	"/crash/crashtest omerge /mnt/ext4" \
	"/crash/crashtest merge-check /mnt/ext4"
rm -f "$DISK"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
