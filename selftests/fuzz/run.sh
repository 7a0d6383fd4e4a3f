#!/bin/bash
# Run the libFuzzer targets for a bounded time (make fuzz FUZZ_SECONDS=N).
# First every saved crasher (selftests/fuzz/crashers/TARGET/) is replayed,
# then fuzz_log and fuzz_merge run side by side, N seconds each, starting
# from the seed corpus (selftests/fuzz/corpus/TARGET/) plus what earlier
# runs found (build/fuzz/work/TARGET/). Exit 0 only if nothing crashed.
# A crash leaves its input in build/fuzz/artifacts/: to keep it as a
# regression test, copy it into selftests/fuzz/crashers/TARGET/.
set -uo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH=${1:-60}
[[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: FUZZ_SECONDS must be a positive number" >&2; exit 2; }
OUT=build/fuzz
mkdir -p "$OUT/artifacts" "$OUT/tmp"
export FUZZ_TMPDIR=$OUT/tmp
# Leaks and every UBSan report are failures; keep ASan's reports readable.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

fail=0
for t in fuzz_log fuzz_merge; do
	dir=selftests/fuzz/crashers/$t
	if compgen -G "$dir/*" >/dev/null; then
		echo "== $t: replaying $(ls "$dir" | wc -l) saved crashers"
		if ! "$OUT/$t" -runs=1 "$dir"/* >"$OUT/$t-replay.log" 2>&1; then
			tail -n 30 "$OUT/$t-replay.log"
			echo "fuzz: $t: a saved crasher fails again ($OUT/$t-replay.log)"
			fail=1
		fi
	fi
done

declare -A maxlen=([fuzz_log]=131072 [fuzz_merge]=65536)
pids=()
for t in fuzz_log fuzz_merge; do
	mkdir -p "$OUT/work/$t"
	echo "== $t: ${SECONDS_EACH}s (log: $OUT/$t.log)"
	"$OUT/$t" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 \
		-max_len="${maxlen[$t]}" -print_final_stats=1 \
		-artifact_prefix="$OUT/artifacts/$t-" \
		"$OUT/work/$t" "selftests/fuzz/corpus/${t#fuzz_}" >"$OUT/$t.log" 2>&1 &
	pids+=($!)
done
i=0
for t in fuzz_log fuzz_merge; do
	if wait "${pids[$i]}"; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log")
		cov=$(grep -o 'cov: [0-9]*' "$OUT/$t.log" | tail -n1)
		echo "ok $t: $runs inputs, $cov, corpus $(ls "$OUT/work/$t" | wc -l) files"
	else
		tail -n 40 "$OUT/$t.log"
		echo "not ok $t: crashed; input in $OUT/artifacts/ (log: $OUT/$t.log)"
		fail=1
	fi
	i=$((i + 1))
done
rm -rf "$OUT/tmp"
exit $fail
