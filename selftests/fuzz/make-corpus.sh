#!/bin/bash
# Regenerate the seed corpus from real journals (make fuzz-corpus): the
# module and cowmapctl make them in the VM (corpus-guest.sh), then
#   corpus/log/    every journal file and dump, as they are
#   corpus/merge/  fuzz_merge inputs packed by mkseed: source + logs
#                  (+ an intent file) with various options
set -euo pipefail
cd "$(dirname "$0")/../.."

C=selftests/fuzz/corpus
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
tools/vm run --include selftests/fuzz/corpus-guest.sh -- sh /corpus-guest.sh >"$T/out" 2>"$T/err" ||
	{ cat "$T/err" >&2; exit 1; }
sed -n '/^@@corpus-begin/,/^@@corpus-end/p' "$T/out" | sed '1d;$d' | tr -d '\r' |
	base64 -d | tar xf - -C "$T"
# size-v2.log and id-v1.log (demo.log with an 80-byte header holding a
# file id) were written by hand (docs/journal-format.md): keep them.
cp "$C/log/size-v2.log" "$T/size-v2.log"
cp "$C/log/id-v1.log" "$T/id-v1.log"
rm -rf "$C"
mkdir -p "$C/log" "$C/merge"
cp "$T"/*.log "$C/log/"
S=build/fuzz/mkseed
# The options byte: policy (0 all-or-nothing, 1 skip, 2 force), 0x04 dry
# run, 0x08 salvage, 0x10 -o, 0x20 intent file, 0x40 fix the intent.
$S "$C/merge/demo" 0x00 "$T/demo.src" "$T/demo.log"
$S "$C/merge/demo-out" 0x10 "$T/demo.src" "$T/demo.log"
$S "$C/merge/multi-skip" 0x01 "$T/multi.src" "$T/multi-a.log" "$T/multi-b.log"
$S "$C/merge/multi-force" 0x02 "$T/multi.src" "$T/multi-a.log" "$T/multi-b.log"
$S "$C/merge/bin-dump" 0x01 "$T/bin.src" "$T/bin.log" "$T/bin-dump.log"
$S "$C/merge/big-dry" 0x04 "$T/big.src" "$T/big.log"
$S "$C/merge/damaged-salvage" 0x09 "$T/bin.src" "$T/bin-torn.log" "$T/bin-flip.log"
# Version 2: size-v2.log is of the demo source (grow, write past the old
# end, shrink with a cut CRC); in place and -o with skip.
$S "$C/merge/size-v2" 0x00 "$T/demo.src" "$T/size-v2.log"
$S "$C/merge/size-v2-out-skip" 0x11 "$T/demo.src" "$T/size-v2.log"
# An 80-byte header (the file id) in front of the demo's record.
$S "$C/merge/id-v1" 0x00 "$T/demo.src" "$T/id-v1.log"
# An intent file: one run of the demo (offset 15, "llo" -> "xxx"), laid
# out as merge.c writes it; fuzz_merge fixes its identity and CRC (0x40).
le64() {	# VALUE: 8 little-endian bytes
	local v=$1 i
	for i in 0 1 2 3 4 5 6 7; do
		printf "\\$(printf %03o $(((v >> (8 * i)) & 255)))"
	done
}
{
	printf 'COWMAPIN'; le64 1; le64 0; le64 0	# magic, version, device, inode
	le64 38; le64 38; le64 1; le64 104		# sizes before/after, runs, file size
	le64 15; le64 3; le64 3; printf 'lloxxx\0\0'		# the run, padded to 8
	le64 0						# CRC (fixed by fuzz_merge)
} >"$T/intent"
$S "$C/merge/demo-intent" 0x60 "$T/demo.src" "$T/demo.log" "$T/demo.log" --intent "$T/intent"
ls -l "$C/log" "$C/merge"
