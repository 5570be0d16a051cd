#!/usr/bin/env bash
# Runs Keel's libFuzzer targets (tests/fuzz/) for a given time each, built
# with clang -fsanitize=fuzzer,address,undefined, and prints executions and
# failures per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s, every target
#
# Targets: fuzz_open_check fuzz_log_replay fuzz_ops_hash fuzz_ops_tree.
# Installs clang and libclang-rt-14-dev (Debian 12) when -fsanitize=fuzzer
# does not link. Builds into $KEEL_FUZZ_BUILD (default ./build-fuzz).
# Each target reads its committed corpus (tests/fuzz/corpus/<target>) and
# writes new inputs to $KEEL_FUZZ_BUILD/corpus-new/<target>, never into
# the committed corpus; a failing input lands in
# $KEEL_FUZZ_BUILD/artifacts/<target>/ (crash-*, timeout-*, leak-*, oom-*).
# After a failure the target is restarted for the time left (at most
# $KEEL_FUZZ_RESTARTS times, default 5), so one bug does not end the run.
# To keep a found input: minimize it (<binary> -minimize_crash=1 -runs=2000
# <file>) and copy it under tests/fuzz/corpus/<target>/ with a name that
# says what it caught.
#
# The last line is machine-readable (scripts/long_run.sh parses it):
#   FUZZ_TOTAL executions=N failures=F
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_open_check fuzz_log_replay fuzz_ops_hash fuzz_ops_tree)
build=${KEEL_FUZZ_BUILD:-$root/build-fuzz}
restarts=${KEEL_FUZZ_RESTARTS:-5}

# ---- toolchain: clang with the libFuzzer runtime
fuzzer_links() {
  local d
  d=$(mktemp -d)
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$d/t.cc"
  local ok=1
  clang++ -fsanitize=fuzzer,address,undefined "$d/t.cc" -o "$d/t" >/dev/null 2>&1 || ok=0
  rm -rf "$d"
  [ $ok = 1 ]
}
if ! command -v clang++ >/dev/null 2>&1 || ! fuzzer_links; then
  echo "fuzz: installing clang and libclang-rt-14-dev (libFuzzer runtime)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
  fuzzer_links || { echo "fuzz: clang++ -fsanitize=fuzzer still does not link" >&2; exit 1; }
fi

# ---- build: the library and the targets instrumented for coverage + ASan + UBSan
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKEEL_BUILD_BENCH=OFF -DKEEL_BUILD_TOOLS=OFF -DKEEL_LIBFUZZER=ON \
    "-DCMAKE_CXX_FLAGS=$flags" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null
fi
cmake --build "$build" --target "${targets[@]}" -- -j"$(nproc)" >"$build/fuzz-build.log" 2>&1 ||
  { tail -30 "$build/fuzz-build.log"; echo "fuzz: build failed (log: $build/fuzz-build.log)" >&2; exit 1; }

# ---- run
scratch=$(mktemp -d "${TMPDIR:-/tmp}/keel-fuzz-run-XXXXXX")
[ -w /dev/shm ] && scratch=$(mktemp -d /dev/shm/keel-fuzz-run-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export KEEL_FUZZ_TMP=$scratch
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

max_len() {
  case $1 in
    fuzz_open_check) echo 131072 ;;
    fuzz_log_replay) echo 32768 ;;
    *) echo 4096 ;;
  esac
}

total_execs=0
total_failures=0
summary=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  new="$build/corpus-new/$t"
  art="$build/artifacts/$t"
  mkdir -p "$new" "$art"
  execs=0
  failures=0
  before=$(ls "$art" | wc -l)
  start=$(date +%s)
  runs=0
  while :; do
    left=$((seconds - ($(date +%s) - start)))
    [ "$left" -gt 0 ] || break
    log="$build/$t.$runs.log"
    rc=0
    "$bin" -max_total_time="$left" -timeout=30 -rss_limit_mb=2560 -max_len="$(max_len "$t")" \
      -artifact_prefix="$art/" -print_final_stats=1 "$new" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    n=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -1)
    if [ -z "$n" ]; then  # a crash skips the final stats: take the last progress line
      n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    execs=$((execs + ${n:-0}))
    if [ "$rc" -ne 0 ]; then
      failures=$((failures + 1))
      echo "fuzz: $t failed (exit $rc); log $log"
      grep -E 'FAILURE|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/    /'
    fi
    runs=$((runs + 1))
    [ "$rc" -ne 0 ] && [ "$runs" -le "$restarts" ] || break
  done
  found=$(($(ls "$art" | wc -l) - before))
  summary+=("$(printf '%-16s %12s %9s %10s' "$t" "$execs" "$failures" "$(ls "$new" | wc -l)")")
  total_execs=$((total_execs + execs))
  total_failures=$((total_failures + failures))
  echo "FUZZ_TARGET $t executions=$execs failures=$failures artifacts=$found seconds=$seconds"
done

echo
printf '%-16s %12s %9s %10s\n' target executions failures new-inputs
for s in "${summary[@]}"; do echo "$s"; done
echo "FUZZ_TOTAL executions=$total_execs failures=$total_failures"
[ "$total_failures" -eq 0 ]
