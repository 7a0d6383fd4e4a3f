#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/run.sh KERNEL [COWBENCH OPTIONS]: run build/bench/cowbench in the test
# VM (tools/vm run) on KERNEL (6.1, 6.12, 7.3, debug), show its table and write
# its JSON to build/bench/results-KERNEL.json (results-KERNEL-quick.json with
# --quick).  The guest's full output stays in build/bench/run-KERNEL*.log.
# Exit status: the guest command's, or tools/vm's verdict.
set -euo pipefail

cd "$(dirname "$0")/.."
KERNEL=${1:-6.1}
[ $# -eq 0 ] || shift
OUT=build/bench
BIN=$OUT/cowbench
[ -x "$BIN" ] || { echo "bench/run.sh: no $BIN (make bench builds it)" >&2; exit 1; }

# COWBENCH_FS=xfs,btrfs: the guest also gets those disks (tools/vm --fs),
# for rows run there with --dir /mnt/xfs/cowbench; the results' name
# then says so (results-6.12-xfs,btrfs.json).
FS=${COWBENCH_FS:-}
suffix=$KERNEL${FS:+-$FS}
for a in "$@"; do
	[ "$a" != --quick ] || suffix=$suffix-quick
done
LOG=$OUT/run-$suffix.log
JSON=$OUT/results-$suffix.json

# What the guest cannot see: the host it runs on.
{
	echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "ncpu=$(nproc)"
	echo "kernel=$(uname -r)"
	echo "qemu=$(qemu-system-x86_64 --version | head -n 1)"
	echo "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	if rev=$(git rev-parse --short HEAD 2>/dev/null); then
		git diff --quiet HEAD -- kmod uapi Kbuild 2>/dev/null || rev=$rev+dirty
		echo "commit=$rev"
	fi
} >"$OUT/host.txt"

# Everything but the JSON block goes to the terminal.
set +e
# 4 GiB: row 12's 1,024 sessions own 1.3 GiB (1 % of 64 MiB each, twins).
tools/vm run --kernel "$KERNEL" --timeout 1500 --mem "${COWBENCH_MEM:-4G}" ${FS:+--fs "tmpfs,$FS"} \
	--include "$BIN" --include "$OUT/host.txt" -- \
	/cowbench --host-info /host.txt "$@" |
	tee "$LOG" |
	awk '/^==== cowbench json begin ====/ { j = 1 } !j { print; fflush() }
	     /^==== cowbench json end ====/ { j = 0 }'
rc=${PIPESTATUS[0]}
set -e

awk '/^==== cowbench json end ====/ { j = 0 } j { print }
     /^==== cowbench json begin ====/ { j = 1 }' "$LOG" >"$JSON.tmp"
if [ ! -s "$JSON.tmp" ]; then
	rm -f "$JSON.tmp"
	echo "bench/run.sh: no JSON in the guest output ($LOG)" >&2
	exit $((rc ? rc : 1))
fi
if command -v python3 >/dev/null && ! python3 -m json.tool "$JSON.tmp" >/dev/null; then
	echo "bench/run.sh: the guest's JSON does not parse ($JSON.tmp)" >&2
	exit $((rc ? rc : 1))
fi
mv "$JSON.tmp" "$JSON"
echo "results: $JSON (guest output: $LOG)"
exit "$rc"
