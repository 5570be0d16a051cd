// keel-bench: what every part shares: the run's configuration, the key and
// value scheme (values that encode their key and a version, so every read
// can be checked), timing and the reporter that prints one line per
// workload per system.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "histogram.h"

namespace kb {

using clk = std::chrono::steady_clock;
inline double secs_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }
inline std::uint64_t mono_ns() {
  return std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch()).count());
}

[[noreturn]] void die(const std::string& what);

// What the process has used so far (getrusage(RUSAGE_SELF): every thread):
// CPU seconds in the kernel and in user space, and page faults (minor and
// major). Differences of two readings cost a timed stretch.
struct process_usage {
  double sys_s = 0, user_s = 0;
  std::uint64_t faults = 0;
  static process_usage now();
  process_usage operator-(const process_usage& o) const {
    return {sys_s - o.sys_s, user_s - o.user_s, faults - o.faults};
  }
};

// Durability modes. Keel's own three; peers map them as docs/BENCH.md says
// (LMDB: sync = default flags, batch = MDB_NOSYNC + env_sync every window,
// checkpoint = MDB_NOSYNC). `none` is a system without durability (RAM maps,
// Boost.Interprocess).
enum class mode { sync, batch, checkpoint, none };
const char* mode_name(mode m);
// "txn=10000 mode=sync"; txn 0 and mode none are left out.
std::string variant(std::uint64_t txn, mode m);

struct config {
  std::uint64_t num = 1'000'000;     // entries in a filled store
  std::uint64_t reads = 0;           // lookups per read workload (0: min(num, 2M))
  std::size_t value_size = 32;       // 16, 32, 100, 256 or 1000
  std::uint64_t batch = 10'000;      // operations per transaction in bulk workloads
  std::vector<std::uint64_t> txn = {10'000, 1};
  std::vector<mode> modes = {mode::checkpoint, mode::batch, mode::sync};
  std::uint64_t single_ops = 2'000;   // operations of a 1-per-transaction workload (batch, checkpoint)
  std::uint64_t sync_ops = 500;       // ... in sync mode
  int reps = 3;                       // read passes; the best is reported
  int sample = 8;                     // 1 in `sample` operations timed alone for the histogram
  int restart_reps = 11;
  int kill_reps = 3;
  int kill_after_ms = 1500;
  int redis_reps = 3;
  int readers = 1;
  double mp_seconds = 2.0;
  int mp_rounds = 3;             // multi-process: rounds of (alone, alone, together); the median is reported
  int interleave_rounds = 11;    // read-interleaved: rounds of one pass per system; medians are reported
  int fill_rounds = 5;           // fill-interleaved: rounds of one fresh fill per system; medians are reported
  // --huge_pages=1: every system asked for 2 MiB pages the way it can be:
  // keel::options::huge_pages, madvise(MADV_HUGEPAGE) on LMDB's and Boost's
  // maps and on the RAM maps' large blocks (huge_advise, ram_allocator).
  bool huge_pages = false;
  std::uint64_t wicked_ops = 300'000;
  std::uint64_t scan_len = 100;
  bool quick = false;
  bool inject_mismatch = false;  // self-test of the checks (--inject_mismatch)
  std::string dir;
  std::string json;
  std::string self;  // path of this executable (children exec it)
  std::vector<std::string> benchmarks;
  std::vector<std::string> systems;

  bool want(const std::string& benchmark) const;
  bool want_system(const std::string& s) const;
  std::uint64_t n_reads() const { return reads ? reads : std::min<std::uint64_t>(num, 2'000'000); }
  // fill-interleaved's operations per transaction: the largest --txn.
  std::uint64_t fill_txn() const {
    std::uint64_t t = 1;
    for (const std::uint64_t x : txn) t = std::max(t, x);
    return t;
  }
  std::uint64_t ops_for(std::uint64_t txn_size, mode m) const {
    if (txn_size > 1) return num;
    return m == mode::sync ? sync_ops : single_ops;
  }
};

// ---- keys: splitmix64 of an index is a bijection, so key(i) are distinct
// for distinct i, computable in any process without a table.
constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;
constexpr std::uint64_t kSeed = 0x6b65656c2d62656eull;  // "keel-ben"
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Random keys: index i of the loaded stream. Miss keys: indices 2^62 and up
// of the same stream, so they never equal a loaded key.
inline std::uint64_t rkey(std::uint64_t i) { return mix64(kSeed + (i + 1) * kGamma); }
inline std::uint64_t miss_key(std::uint64_t i) { return rkey(i + (1ull << 62)); }
// Sequential keys (fill-seq): ascending.
inline std::uint64_t skey(std::uint64_t i) { return i + 1; }

__extension__ typedef unsigned __int128 u128;

struct rng {
  std::uint64_t s;
  std::uint64_t next() { return mix64(s += kGamma); }
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>(u128(next()) * n >> 64); }
};

// ---- values: bytes [0,8) the key, [8,16) a version (never 0), the rest a
// pattern derived from both, so a torn or misplaced value fails the check.
template <std::size_t N>
struct val {
  static_assert(N >= 16);
  unsigned char b[N];
};

template <std::size_t N>
inline void make_val(val<N>& v, std::uint64_t key, std::uint64_t version) {
  std::memcpy(v.b, &key, 8);
  std::memcpy(v.b + 8, &version, 8);
  std::uint64_t w = mix64(key ^ (version * kGamma));
  std::size_t at = 16;
  for (; at + 8 <= N; at += 8, w += kGamma) std::memcpy(v.b + at, &w, 8);
  if (at < N) std::memcpy(v.b + at, &w, N - at);
}
inline std::uint64_t val_key(const unsigned char* b) {
  std::uint64_t k;
  std::memcpy(&k, b, 8);
  return k;
}
inline std::uint64_t val_version(const unsigned char* b) {
  std::uint64_t v;
  std::memcpy(&v, b + 8, 8);
  return v;
}
// Every byte of v folded into one word: a read loop adds it to a sink so
// that each system delivers the whole value, as a caller that uses what it
// looked up would need, and no compiler can drop the part of a copy the
// key check does not read (it did for the in-RAM maps, which then read one
// cache line of a slot where a store that must copy before it validates
// reads two).
template <std::size_t N>
[[gnu::always_inline]] inline std::uint64_t val_fold(const val<N>& v) {
  std::uint64_t acc = 0;
  std::size_t at = 0;
  for (; at + 8 <= N; at += 8) {
    std::uint64_t w;
    std::memcpy(&w, v.b + at, 8);
    acc ^= w;
  }
  for (; at < N; ++at) acc = (acc << 8 | acc >> 56) ^ v.b[at];
  return acc;
}
// The version stored in v when v is a well-formed value of `key`, else 0.
template <std::size_t N>
inline std::uint64_t check_val(const val<N>& v, std::uint64_t key) {
  if (val_key(v.b) != key) return 0;
  const std::uint64_t version = val_version(v.b);
  val<N> want;
  make_val(want, key, version);
  return std::memcmp(want.b, v.b, N) == 0 ? version : 0;
}

// --huge_pages=1 for a mapping that is not Keel's: madvise(MADV_HUGEPAGE)
// over [p, p + len), or over every range of this process's address space
// that maps `file` (/proc/self/maps); a hint whose refusal changes nothing.
void huge_advise(void* p, std::size_t len);
void huge_advise_file(const std::string& file);

// The RAM maps' allocator: std::allocator's memory, or with --huge_pages=1
// blocks of 2 MiB or more mmapped whole (2 MiB multiples) and huge_advise'd,
// as Keel's mapping is with options::huge_pages. huge_bytes() counts those
// blocks (malloc's statistics do not see them).
void* huge_alloc(std::size_t bytes);
void huge_free(void* p, std::size_t bytes);
std::uint64_t huge_bytes();
inline constexpr std::size_t kHugeBlock = std::size_t{2} << 20;

template <class T>
struct ram_allocator {
  using value_type = T;
  bool huge = false;
  ram_allocator() = default;
  explicit ram_allocator(bool h) noexcept : huge(h) {}
  template <class U>
  ram_allocator(const ram_allocator<U>& o) noexcept : huge(o.huge) {}
  T* allocate(std::size_t n) {
    if (!huge || n * sizeof(T) < kHugeBlock) return std::allocator<T>().allocate(n);
    return static_cast<T*>(huge_alloc(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (!huge || n * sizeof(T) < kHugeBlock) return std::allocator<T>().deallocate(p, n);
    huge_free(p, n * sizeof(T));
  }
  template <class U>
  bool operator==(const ram_allocator<U>& o) const noexcept {
    return huge == o.huge;
  }
};

// A filled store kept open for read-interleaved (suite.h live_reads_of).
struct live_reads {
  virtual ~live_reads() = default;
  // One pass of lookups of the present keys q; returns its seconds and adds
  // wrong or missing answers to bad.
  virtual double pass(const std::vector<std::uint64_t>& q, std::uint64_t& bad) = 0;
};

// ---- results

struct result {
  std::string workload, system, variant;  // variant: "txn=10000 mode=sync" etc.
  std::uint64_t ops = 0;
  double secs = 0;
  double ns_per_op = 0;  // 0: not a per-op figure
  double mb_per_s = 0;
  histogram hist;        // empty: no latency figures
  std::uint64_t mismatches = 0;
  std::map<std::string, double> extra;  // named figures (restart ms, ops/s ...)
  std::string note;
};

class reporter {
 public:
  void add(result r);  // prints the line
  void note(const std::string& system, const std::string& workload, const std::string& text);
  const std::vector<result>& all() const { return results_; }
  std::uint64_t mismatches() const;
  const result* find(const std::string& workload, const std::string& system, const std::string& variant) const;
  void summary(const config& c) const;
  void write_json(const config& c, const std::string& path) const;

 private:
  std::vector<result> results_;
};

std::string human_bytes(double b);
std::string human_ns(double ns);
std::string loadavg();

}  // namespace kb
