#!/usr/bin/env bash
# The long versions of Keel's crash and fuzz tests, and a summary of what
# they did (docs/DURABILITY.md, "Figures from a long run"):
#
#   scripts/long_run.sh [MINUTES]      default 30
#
# The time is shared out, one thing at a time (the tests use both cores):
#   ~45 %  kill -9 loops: crash_loop, hash_crash, tree_crash, readers_crash,
#          tree_readers_crash, round-robin, a new KEEL_CRASH_SEED each run,
#          KEEL_CRASH_KILLS=$KEEL_LONG_KILLS (default 600) per run
#   ~15 %  power loss and faults: power_loss_test and fault_test once (they
#          have fixed seeds), then tree_power_test with new seeds
#   ~5 %   check_test's random byte flips, 1000 damaged files per seed
#   rest   the libFuzzer targets, an equal share each (scripts/fuzz.sh)
# Builds the tests (Release) into $KEEL_LONG_BUILD (default ./build-long);
# logs go to $KEEL_LONG_BUILD/long-run-<date>/. A failing run is counted and
# listed with the command that repeats it; the script goes on.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

minutes=${1:-30}
total=$((minutes * 60))
build=${KEEL_LONG_BUILD:-$root/build-long}
kills_per_run=${KEEL_LONG_KILLS:-600}
seed0=${KEEL_LONG_SEED:-$(($(date +%s) % 100000))}
out="$build/long-run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

crash_tests=(crash_loop_test hash_crash_test tree_crash_test readers_crash_test tree_readers_crash_test)
other_tests=(power_loss_test tree_power_test fault_test check_test)

echo "long run: $minutes min, seeds from $seed0, logs in $out"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_BENCH=OFF -DKEEL_BUILD_TOOLS=OFF \
    >"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
fi
cmake --build "$build" --target "${crash_tests[@]}" "${other_tests[@]}" -- -j"$(nproc)" >"$out/build.log" 2>&1 ||
  { tail -30 "$out/build.log"; echo "long run: build failed" >&2; exit 1; }

start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }

runs=0
failures=0
failed_cmds=()
# run NAME ENV... : runs a test binary under `timeout`, logs to $last_log,
# counts failures.
last_log=""
run() {
  local name=$1
  shift
  last_log="$out/$name-$runs.log"
  local rc=0
  env "$@" timeout 1800 "$build/tests/$name" "${test_args[@]}" >"$last_log" 2>&1 || rc=$?
  runs=$((runs + 1))
  if [ "$rc" -ne 0 ]; then
    failures=$((failures + 1))
    failed_cmds+=("$* build/tests/$name ${test_args[*]}   (exit $rc, log $last_log)")
    echo "  FAILED: $name $* (exit $rc)"
  fi
}

# ---- kill -9 loops
test_args=()
kill_until=$((total * 45 / 100))
i=0
echo "kill loops until $((kill_until / 60)) min..."
while [ "$(elapsed)" -lt "$kill_until" ]; do
  t=${crash_tests[$((i % ${#crash_tests[@]}))]}
  seed=$((seed0 + i))
  run "$t" KEEL_CRASH_KILLS="$kills_per_run" KEEL_CRASH_SEED="$seed"
  echo "  $t seed $seed: $(grep -hoE '[0-9]+ (writer )?kills \(' "$last_log" | awk '{s+=$1} END {print s+0}') kills"
  i=$((i + 1))
done

# ---- power loss and faults
echo "power loss and faults..."
run power_loss_test
run fault_test
power_until=$((total * 60 / 100))
j=0
while [ "$j" -lt 1 ] || [ "$(elapsed)" -lt "$power_until" ]; do
  run tree_power_test KEEL_CRASH_SEED=$((seed0 + 1000 + j))
  j=$((j + 1))
done

# ---- check over damaged files
echo "check over damaged files..."
test_args=("-tc=random byte flips*")
flips_until=$((total * 65 / 100))
j=0
while [ "$j" -lt 1 ] || [ "$(elapsed)" -lt "$flips_until" ]; do
  run check_test KEEL_FUZZ_ITERATIONS=1000 KEEL_FUZZ_SEED=$((seed0 + 2000 + j))
  j=$((j + 1))
done
test_args=()

# ---- fuzzing: the rest of the time
left=$((total - $(elapsed)))
[ "$left" -gt 60 ] || left=60
per_target=$((left / 4))
echo "fuzzing, $per_target s per target..."
KEEL_FUZZ_BUILD=${KEEL_FUZZ_BUILD:-$root/build-fuzz} "$root/scripts/fuzz.sh" "$per_target" >"$out/fuzz.log" 2>&1
fuzz_rc=$?
grep -E '^fuzz: .* failed|^    ' "$out/fuzz.log" | head -20
fuzz_execs=$(grep -oE '^FUZZ_TOTAL executions=[0-9]+' "$out/fuzz.log" | grep -oE '[0-9]+$')
fuzz_fail=$(grep -oE 'failures=[0-9]+$' "$out/fuzz.log" | tail -1 | grep -oE '[0-9]+$')
if [ -z "$fuzz_execs" ]; then
  echo "  fuzz.sh did not finish (exit $fuzz_rc): see $out/fuzz.log"
  fuzz_execs=0
  fuzz_fail=1
fi

# ---- summary: figures parsed from the tests' MESSAGE lines
sum() { grep -hoE "$1" "$out"/"$2"-*.log 2>/dev/null | grep -oE '^[0-9]+' | awk '{s+=$1} END {print s+0}'; }
kills=0
for t in "${crash_tests[@]}"; do kills=$((kills + $(sum '[0-9]+ (writer )?kills \(' "$t"))); done
reader_kills=0
for t in readers_crash_test tree_readers_crash_test hash_crash_test; do
  reader_kills=$((reader_kills + $(grep -hoE '[0-9]+ reader kills' "$out"/$t-*.log 2>/dev/null | awk '{s+=$1} END {print s+0}')))
done
states=$(($(sum '[0-9]+ crash states' power_loss_test) + $(sum '[0-9]+ crash states' tree_power_test)))
faults=$(sum '[0-9]+ fault scenarios' fault_test)
failed_ops=$(grep -hoE '[0-9]+ failed operations' "$out"/fault_test-*.log | awk '{s+=$1} END {print s+0}')
damaged=$(sum '[0-9]+ damaged files' check_test)
all_failures=$((failures + ${fuzz_fail:-0}))

echo
echo "Keel long run: $minutes min on $(nproc) cores, $(uname -srm), $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "| figure | value |"
echo "| --- | --- |"
echo "| power-loss crash states checked (power_loss_test, tree_power_test) | $states |"
echo "| kill -9 of a writer survived (5 kill loops) | $kills |"
echo "| reader processes killed meanwhile | $reader_kills |"
echo "| faults injected (fault scenarios; failed operations reported) | $faults ($failed_ops) |"
echo "| damaged files checked (check_test random flips) | $damaged |"
echo "| fuzz executions (4 libFuzzer targets, ASan+UBSan) | $fuzz_execs |"
echo "| test runs | $runs |"
echo "| failures found | $all_failures |"
echo
echo "Fuzzing per target:"
sed -n '/^target /,/^FUZZ_TOTAL/p' "$out/fuzz.log"
if [ ${#failed_cmds[@]} -gt 0 ]; then
  echo
  echo "Failed runs (repeat with):"
  for c in "${failed_cmds[@]}"; do echo "  $c"; done
fi
[ "$all_failures" -eq 0 ]
