#!/bin/bash
# Run the libFuzzer targets (fuzz_log, fuzz_merge).
#
#   run.sh check   (make fuzz, part of make check) deterministic: every
#                  saved crasher (selftests/fuzz/crashers/TARGET/) and the
#                  seed corpus (selftests/fuzz/corpus/TARGET/) replayed, then
#                  a fixed-seed run of FUZZ_RUNS_<TARGET> inputs from a
#                  private copy of the corpus. Same tree, same result: it
#                  fails only for a real defect.
#   run.sh long S  (make fuzz-long) open-ended exploration: S seconds per
#                  target, random seed, keeping what it finds in
#                  build/fuzz/work/TARGET/ across runs.
#
# Both fail on any crash, leak, sanitizer report, failed check, timeout or
# allocation over the limits. A crash leaves its input in
# build/fuzz/artifacts/: fix the cause, minimise the input
# (TARGET -minimize_crash=1 -runs=10000 INPUT) and add it to
# selftests/fuzz/crashers/TARGET/ so that every check replays it.
set -uo pipefail
cd "$(dirname "$0")/../.."

MODE=${1:-check}
OUT=build/fuzz
mkdir -p "$OUT/artifacts" "$OUT/tmp"
export FUZZ_TMPDIR=$OUT/tmp
# Leaks and every UBSan report are failures; keep ASan's reports readable.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

TARGETS=(fuzz_log fuzz_merge)
declare -A maxlen=([fuzz_log]=131072 [fuzz_merge]=65536)
# Fixed-seed runs of about 20-40 s each on this project's 2-core machines.
declare -A runs=([fuzz_log]=${FUZZ_RUNS_LOG:-20000} [fuzz_merge]=${FUZZ_RUNS_MERGE:-6000})
# No input may make the harness or the library hold more than this.
COMMON=(-timeout=20 -rss_limit_mb=1024 -malloc_limit_mb=256 -print_final_stats=1)

case "$MODE" in
	check) ;;
	long)
		SECONDS_EACH=${2:-600}
		[[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: long wants a number of seconds" >&2; exit 2; }
		;;
	*) echo "usage: run.sh check | run.sh long SECONDS" >&2; exit 2 ;;
esac

fail=0
for t in "${TARGETS[@]}"; do
	dir=selftests/fuzz/crashers/$t
	if compgen -G "$dir/*" >/dev/null; then
		echo "== $t: replaying $(ls "$dir" | wc -l) saved crashers"
		if ! "$OUT/$t" "${COMMON[@]}" -runs=1 "$dir"/* >"$OUT/$t-replay.log" 2>&1; then
			tail -n 30 "$OUT/$t-replay.log"
			echo "not ok $t: a saved crasher fails again ($OUT/$t-replay.log)"
			fail=1
		fi
	fi
done

pids=()
for t in "${TARGETS[@]}"; do
	seed=selftests/fuzz/corpus/${t#fuzz_}
	if [ "$MODE" = check ]; then
		# A private copy: libFuzzer adds what it finds to the first
		# directory, and the check must start from the same corpus
		# every time.
		work=$OUT/check/$t
		rm -rf "$work"
		mkdir -p "$work"
		cp "$seed"/* "$work"/
		args=(-seed=1 -runs="${runs[$t]}" "$work")
		echo "== $t: corpus ($(ls "$seed" | wc -l) inputs) + ${runs[$t]} inputs, seed 1 (log: $OUT/$t.log)"
	else
		work=$OUT/work/$t
		mkdir -p "$work"
		args=(-max_total_time="$SECONDS_EACH" "$work" "$seed")
		echo "== $t: ${SECONDS_EACH}s (log: $OUT/$t.log)"
	fi
	"$OUT/$t" "${COMMON[@]}" -max_len="${maxlen[$t]}" \
		-artifact_prefix="$OUT/artifacts/$t-" "${args[@]}" >"$OUT/$t.log" 2>&1 &
	pids+=($!)
done
i=0
for t in "${TARGETS[@]}"; do
	if wait "${pids[$i]}"; then
		n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log")
		cov=$(grep -o 'cov: [0-9]*' "$OUT/$t.log" | tail -n1)
		echo "ok $t: $n inputs, $cov"
	else
		tail -n 40 "$OUT/$t.log"
		echo "not ok $t: crashed; input in $OUT/artifacts/ (log: $OUT/$t.log)"
		fail=1
	fi
	i=$((i + 1))
done
rm -rf "$OUT/tmp"
exit $fail
