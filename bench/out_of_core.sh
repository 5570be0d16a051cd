#!/usr/bin/env bash
# out_of_core.sh: random lookups in a store larger than the page cache it
# may use. Builds a store of N entries per system with keel-bench, drops the
# file from the page cache, then runs the lookups inside a memory cgroup
# whose limit (page cache included) is smaller than the file, printing the
# file's page-cache residency before and after. docs/BENCH.md.
#
#   bench/out_of_core.sh [--entries=N] [--cache_mb=MB] [--seconds=S]
#                        [--systems=keel,lmdb] [--value_size=B]
#                        [--bench=PATH/keel-bench] [--dir=DIR]
#                        [--huge_pages=0|1]
# Defaults: 5,000,000 entries, 128 MiB of cache, 10 s of lookups, keel and
# lmdb, keel-bench from ./build-bench, ./build or /work/build-bench.
#
# The cache limit needs root and a writable memory cgroup (v1 or v2); without
# one the lookups run unlimited and the script says so: then pick --entries
# so that the files exceed the machine's free RAM.
set -euo pipefail

entries=5000000
cache_mb=128
seconds=10
systems=keel,lmdb
value_size=32
huge=0
bench=""
dir=""
for arg in "$@"; do
  case "$arg" in
    --entries=*) entries="${arg#*=}" ;;
    --cache_mb=*) cache_mb="${arg#*=}" ;;
    --seconds=*) seconds="${arg#*=}" ;;
    --systems=*) systems="${arg#*=}" ;;
    --value_size=*) value_size="${arg#*=}" ;;
    --huge_pages=*) huge="${arg#*=}" ;;
    --bench=*) bench="${arg#*=}" ;;
    --dir=*) dir="${arg#*=}" ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "out_of_core.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$bench" ]; then
  for b in "$root/build-bench/bench/keel-bench" "$root/build/bench/keel-bench" /work/build-bench/bench/keel-bench; do
    if [ -x "$b" ]; then bench="$b"; break; fi
  done
fi
[ -x "$bench" ] || { echo "out_of_core.sh: keel-bench not found (build it, or pass --bench=PATH)" >&2; exit 2; }
made_dir=""
if [ -z "$dir" ]; then
  dir="$(mktemp -d "$(dirname "$(dirname "$bench")")/keel-ooc-XXXXXX")"
  made_dir="$dir"
fi
mkdir -p "$dir"

# A memory cgroup for the readers: v2 (memory.max) or v1 (memory.limit_in_bytes),
# created under this shell's own cgroup.
cg=""
cleanup() {
  if [ -n "$cg" ] && [ -d "$cg" ]; then rmdir "$cg" 2>/dev/null || true; fi
  if [ -n "$made_dir" ]; then rm -rf "$made_dir"; fi
}
trap cleanup EXIT
limit=$((cache_mb * 1024 * 1024))
if [ "$(id -u)" -eq 0 ]; then
  if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    own="$(awk -F: '$1=="0"{print $3}' /proc/self/cgroup)"
    cand="/sys/fs/cgroup${own}/keel-ooc-$$"
    if mkdir "$cand" 2>/dev/null && echo "$limit" > "$cand/memory.max" 2>/dev/null; then
      cg="$cand"; procs="$cg/cgroup.procs"
    else
      rmdir "$cand" 2>/dev/null || true
    fi
  elif [ -d /sys/fs/cgroup/memory ]; then
    own="$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)"
    cand="/sys/fs/cgroup/memory${own}/keel-ooc-$$"
    if mkdir "$cand" 2>/dev/null && echo "$limit" > "$cand/memory.limit_in_bytes" 2>/dev/null; then
      cg="$cand"; procs="$cg/cgroup.procs"
    else
      rmdir "$cand" 2>/dev/null || true
    fi
  fi
fi

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "out_of_core: $entries entries, value $value_size bytes, ${seconds}s of random lookups per system"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$cg" ]; then
  echo "page cache for the lookups limited to $cache_mb MiB (memory cgroup $cg)"
else
  echo "WARNING: no writable memory cgroup (needs root): lookups run without a cache limit;"
  echo "         the store is out of core only if it is larger than free RAM"
fi

status=0
IFS=',' read -r -a list <<< "$systems"
for sys in "${list[@]}"; do
  sdir="$dir/$sys"
  echo "-- $sys: building"
  "$bench" --child=build --system="$sys" --dir="$sdir" --num="$entries" --value_size="$value_size" --huge_pages="$huge"
  case "$sys" in
    lmdb) file="$sdir/data.mdb" ;;
    keel-tree) file="$sdir/tree.keel" ;;
    *) file="$sdir/hash.keel" ;;
  esac
  # Clean the file's pages, then drop them from the page cache.
  sync "$file"
  dd if="$file" iflag=nocache count=0 status=none
  cmd=("$bench" --child=ooc-read --system="$sys" --dir="$sdir" --num="$entries" --value_size="$value_size" --seconds="$seconds" --huge_pages="$huge")
  if [ -n "$cg" ]; then
    out="$(sh -c 'echo $$ > "$0" && exec "$@"' "$procs" "${cmd[@]}")" || status=1
  else
    out="$("${cmd[@]}")" || status=1
  fi
  ops=$(sed -n 's/.*ops=\([0-9]*\).*/\1/p' <<< "$out")
  secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<< "$out")
  mism=$(sed -n 's/.*mismatches=\([0-9]*\).*/\1/p' <<< "$out")
  before=$(sed -n 's/.*resident_before=\([0-9]*\).*/\1/p' <<< "$out")
  after=$(sed -n 's/.*resident_after=\([0-9]*\).*/\1/p' <<< "$out")
  size=$(sed -n 's/.* file=\([0-9]*\).*/\1/p' <<< "$out")
  if [ -z "$ops" ] || [ -z "$size" ]; then
    echo "$sys: lookups failed: $out"; status=1; continue
  fi
  [ "$mism" = "0" ] || status=1
  awk -v s="$sys" -v o="$ops" -v t="$secs" -v m="$mism" -v b="$before" -v a="$after" -v f="$size" 'BEGIN {
    printf "%-10s %12.0f lookups/s  file %.1f MiB  resident before %.1f%%, after %.1f%% (%.1f MiB)  mismatches %d\n",
           s, o / t, f / 1048576, 100 * b / f, 100 * a / f, a / 1048576, m }'
done
exit $status
