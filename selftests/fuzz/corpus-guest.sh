#!/bin/sh
# Runs in the VM (selftests/fuzz/make-corpus.sh): make real journals with
# the module and cowmapctl, and print them as a base64 tar between markers.
# Each case leaves its source as it was when the sessions attached
# (NAME.src) and its logs (NAME*.log).
set -e
D=/mnt/ext4/corpus
rm -rf $D
mkdir -p $D
cd $D
seed='------------ Hello World! ------------'

# 1. The seed demo.
printf '%s' "$seed" >demo
cp demo demo.src
cowmapctl map demo --write 15:xxx --log demo.log >/dev/null

# 2. Three sessions on one file, two sharing a journal, one conflicting.
printf '%s' "$seed" >multi
cp multi multi.src
cowmapctl map multi -w 0:ABC -w 20:ORLD --log multi-a.log >/dev/null
cowmapctl map multi -w 30:zz --log multi-a.log >/dev/null
cowmapctl map multi -w 14:EXX --log multi-b.log >/dev/null

# 3. A binary file, many small records and a run over a page boundary;
#    the kernel dump of the same session (byte-identical to its journal).
dd if=/dev/urandom of=bin bs=4096 count=3 2>/dev/null
cp bin bin.src
w=""
for o in 7 100 515 1024 2047 3000 4000 5000 6100 8191 9000 12000; do
	w="$w -w $o:\\x00\\xff\\x7f"
done
id=$(cowmapctl map bin $w -w 4090:PAGEBOUNDARY --log bin.log --keep)
cowmapctl dump "$id" --raw -o bin-dump.log
cowmapctl discard "$id" >/dev/null

# 4. The largest records: 20000 changed bytes split at COWMAP_LOG_MAX_RUN.
dd if=/dev/zero of=big bs=4096 count=6 2>/dev/null
cp big big.src
cowmapctl map big -w "100:$(head -c 20000 /dev/zero | tr '\0' Z)" --log big.log >/dev/null

# 5. Damage: a torn tail and a flipped bit.
head -c $(($(wc -c <bin.log) - 13)) bin.log >bin-torn.log
cp bin.log bin-flip.log
printf '\001' | dd of=bin-flip.log bs=1 seek=150 conv=notrunc 2>/dev/null

rm -f demo multi bin big
echo "@@corpus-begin"
tar cf - . | base64
echo "@@corpus-end"
