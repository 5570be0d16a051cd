// keel-hash-bench: keel::hash_map beside in-RAM and on-file peers, one run,
// ratios printed.
//   Workload: N u64 keys (uniform random 64-bit: a fixed-seed splitmix64
//   sequence), values a 32-byte struct, loaded in transactions of 10,000
//   inserts (in-RAM maps: plain inserts); then M random hit lookups and M
//   miss lookups, single thread, warm page cache; then the space used
//   against the raw N x 40 key+value bytes.
//   Systems: keel::hash_map (checkpoint mode; batch mode insert row too),
//   absl::flat_hash_map, std::unordered_map, boost::unordered_map in a
//   Boost.Interprocess managed_mapped_file, LMDB (MDB_WRITEMAP|MDB_NOSYNC).
//   Each system is built, measured, reported and freed before the next.
// Usage: keel-hash-bench [DIR] [--quick] [--n=N] [--m=M] [--reps=R]
//                        [--only=keel,absl,std,boost,lmdb]
//   DIR (default bench-data) holds the files; it is deleted at the end.
//   --quick: N = 1,000,000, M = 200,000 (CI size).
//   --reps: lookup passes per figure, the best one reported (default 3).
#include <fmt/core.h>
#include <lmdb.h>
#include <malloc.h>
#include <sys/stat.h>

#include <absl/container/flat_hash_map.h>
#include <algorithm>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_mapped_file.hpp>
#include <boost/unordered_map.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <keel/hash_map.h>
#include <keel/keel.h>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace {
struct val32 {
  std::uint64_t a, b, c, d;
};
static_assert(sizeof(val32) == 32);
}  // namespace

template <>
struct keel::type_name<val32> {
  static std::string_view get() { return "keel-hash-bench/val32"; }
};

namespace {

using namespace keel::literals;
using clk = std::chrono::steady_clock;
double secs_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

[[noreturn]] void die(const std::string& what) {
  fmt::print(stderr, "keel-hash-bench: {}\n", what);
  std::fflush(stdout);
  std::abort();
}

// splitmix64: next() is mix(state += gamma) and mix is a bijection, so the
// first 2^64 outputs of one sequence are distinct. Miss keys come from the
// same sequence started 2^62 steps further (another seed), so no miss key
// can equal a loaded key.
constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;
constexpr std::uint64_t kSeed = 0x6b65656c2d686173ull;  // "keel-has"
struct splitmix64 {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += kGamma);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

val32 make_val(std::uint64_t k) { return {k, k ^ 0x5555555555555555ull, k * kGamma, ~k}; }
bool same(const val32& x, const val32& y) { return std::memcmp(&x, &y, sizeof x) == 0; }

struct workload {
  std::uint64_t n = 10'000'000, m = 2'000'000;
  int reps = 3;
  std::size_t batch = 10'000;
  std::vector<std::uint64_t> keys;  // loaded, in insertion order
  std::vector<std::uint64_t> hits;  // m random loaded keys
  std::vector<std::uint64_t> miss;  // m keys never loaded
  std::uint64_t raw_bytes() const { return n * (sizeof(std::uint64_t) + sizeof(val32)); }
};

void make_keys(workload& w) {
  splitmix64 g{kSeed};
  w.keys.resize(w.n);
  for (auto& k : w.keys) k = g.next();
  splitmix64 pick{kSeed ^ 0xA5A5A5A5A5A5A5A5ull};
  w.hits.resize(w.m);
  for (auto& k : w.hits) k = w.keys[pick.next() % w.n];
  splitmix64 other{kSeed + (1ull << 62) * kGamma};
  w.miss.resize(w.m);
  for (auto& k : w.miss) k = other.next();
}

// ---- output

std::string human_bytes(double b) {
  if (b >= double(1_GiB)) return fmt::format("{:.2f} GiB", b / double(1_GiB));
  if (b >= double(1_MiB)) return fmt::format("{:.1f} MiB", b / double(1_MiB));
  return fmt::format("{:.1f} KiB", b / double(1_KiB));
}
void row(const std::string& sys, const std::string& metric, const std::string& value, const std::string& note = "") {
  fmt::print("{:<34} {:<10} {:>18}  {}\n", sys, metric, value, note);
  std::fflush(stdout);
}
void insert_row(const std::string& sys, std::uint64_t n, double secs, const std::string& note = "") {
  row(sys, "insert", fmt::format("{:.0f}/s", n / secs), fmt::format("{:.2f} s{}{}", secs, note.empty() ? "" : "; ", note));
}
void get_row(const std::string& sys, const char* metric, double ns) { row(sys, metric, fmt::format("{:.1f} ns/op", ns)); }
void space_row(const std::string& sys, double bytes, std::uint64_t raw, const std::string& note) {
  row(sys, "space", fmt::format("{:.2f}x raw", bytes / raw), fmt::format("{} of {} raw; {}", human_bytes(bytes), human_bytes(raw), note));
}

// Figures kept for the summary (0 = not measured).
struct figures {
  double insert_per_s = 0, hit_ns = 0, miss_ns = 0;
  double many_hit_ns = 0;  // keel: get_many, per key
};

// ---- lookups: `lookup(keys, count, sum)` looks up count keys, adds one
// field of each found value to sum and returns how many were found. Best of
// reps passes; checks that every hit hits and every miss misses.
template <class Lookup>
double time_gets(const workload& w, const std::vector<std::uint64_t>& q, bool expect_found, const char* sys,
                 Lookup&& lookup) {
  double best = 1e300;
  std::uint64_t sum = 0;
  for (int r = 0; r < w.reps; ++r) {
    const auto t = clk::now();
    const std::uint64_t found = lookup(q.data(), q.size(), sum);
    best = std::min(best, secs_since(t) * 1e9 / q.size());
    if (found != (expect_found ? q.size() : 0))
      die(fmt::format("{}: {} of {} {} lookups found", sys, found, q.size(), expect_found ? "hit" : "miss"));
  }
  static volatile std::uint64_t sink;
  sink = sink + sum;
  return best;
}

// Sample check after the load: every 1 in `step` loaded keys returns its
// value; a sample of miss keys misses. get(key) -> std::optional<val32>.
template <class Get>
void verify(const workload& w, const char* sys, Get&& get) {
  const std::uint64_t step = std::max<std::uint64_t>(1, w.n / 100'000);
  for (std::uint64_t i = 0; i < w.n; i += step) {
    const std::optional<val32> v = get(w.keys[i]);
    if (!v) die(fmt::format("{}: loaded key #{} ({:#x}) not found", sys, i, w.keys[i]));
    if (!same(*v, make_val(w.keys[i]))) die(fmt::format("{}: key #{} ({:#x}) has a wrong value", sys, i, w.keys[i]));
  }
  for (std::uint64_t i = 0; i < std::min<std::uint64_t>(w.m, 10'000); ++i)
    if (get(w.miss[i])) die(fmt::format("{}: miss key {:#x} found", sys, w.miss[i]));
}

std::uint64_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}
std::uint64_t file_bytes(const std::string& p) {
  std::error_code ec;
  const auto s = std::filesystem::file_size(p, ec);
  return ec ? 0 : s;
}
std::uint64_t disk_bytes(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? std::uint64_t(st.st_blocks) * 512 : 0;
}

// ---- keel

void keel_wipe(const std::string& p) {
  for (const char* s : {"", "-log", "-journal"}) std::filesystem::remove(p + s);
}
keel::options keel_opts(keel::durability mode, std::uint64_t n) {
  keel::options o;
  o.initial_size = 64_MiB;
  o.max_size = 64_GiB;
  o.mode = mode;
  // No checkpoint during the load: the redo log takes about 100-200 bytes
  // per random insert, so 1 GiB is not enough for 10M.
  o.checkpoint_bytes = std::max<std::uint64_t>(1_GiB, n * 1_KiB);
  o.checkpoint_interval = std::chrono::hours(1);
  return o;
}
double keel_load(keel::store& db, keel::hash_map<std::uint64_t, val32>& map, const workload& w) {
  const auto t = clk::now();
  std::uint64_t added = 0;
  for (std::uint64_t i = 0; i < w.n; i += w.batch) {
    const std::uint64_t end = std::min<std::uint64_t>(w.n, i + w.batch);
    db.write([&](keel::write_txn& tx) {
      for (std::uint64_t j = i; j < end; ++j) added += map.insert(tx, w.keys[j], make_val(w.keys[j]));
    });
  }
  const double s = secs_since(t);
  if (added != w.n) die(fmt::format("keel: {} of {} inserts added a key", added, w.n));
  return s;
}

figures bench_keel(const workload& w, const std::string& dir) {
  figures f;
  const std::string path = dir + "/hash.keel";
  const char* sys = "keel";
  {
    keel_wipe(path);
    auto db = keel::store::open(path, keel_opts(keel::durability::checkpoint, w.n));
    auto map = keel::hash_map<std::uint64_t, val32>::open(*db, "bench");
    const double s = keel_load(*db, map, w);
    const keel::store_info in = db->info();
    f.insert_per_s = w.n / s;
    insert_row("keel (checkpoint mode)", w.n, s,
               fmt::format("log {}, journal {}{}", human_bytes(in.log_bytes), human_bytes(in.journal_bytes),
                           in.checkpoint_lsn ? ", a checkpoint ran" : ""));
    if (map.size() != w.n) die(fmt::format("keel: size() {} after {} inserts", map.size(), w.n));
    verify(w, sys, [&](std::uint64_t k) { return map.get(k); });

    auto one = [&](const std::uint64_t* q, std::size_t n, std::uint64_t& sum) {
      std::uint64_t found = 0;
      for (std::size_t i = 0; i < n; ++i)
        if (const auto v = map.get(q[i])) {
          sum += v->c;
          ++found;
        }
      return found;
    };
    f.hit_ns = time_gets(w, w.hits, true, sys, one);
    get_row("keel", "get hit", f.hit_ns);
    f.miss_ns = time_gets(w, w.miss, false, sys, one);
    get_row("keel", "get miss", f.miss_ns);

    auto batched = [&](const std::uint64_t* q, std::size_t n, std::uint64_t& sum) {
      std::uint64_t found = 0;
      for (std::size_t i = 0; i < n; i += 16) {
        const std::size_t end = std::min(n, i + 16);
        const auto [s2, f2] = db->read([&](const keel::read_view& v) {
          std::uint64_t s = 0, c = 0;
          for (std::size_t j = i; j < end; ++j)
            if (const auto x = map.get(v, q[j])) {
              s += x->c;
              ++c;
            }
          return std::pair{s, c};
        });
        sum += s2;
        found += f2;
      }
      return found;
    };
    get_row("keel (batched read section, 16)", "get hit", time_gets(w, w.hits, true, sys, batched));
    get_row("keel (batched read section, 16)", "get miss", time_gets(w, w.miss, false, sys, batched));

    std::vector<std::optional<val32>> many_out(256);
    auto many = [&](const std::uint64_t* q, std::size_t n, std::uint64_t& sum) {
      std::uint64_t found = 0;
      for (std::size_t i = 0; i < n; i += 256) {
        const std::size_t k = std::min<std::size_t>(256, n - i);
        found += map.get_many(std::span<const std::uint64_t>(q + i, k), std::span(many_out.data(), k));
        for (std::size_t j = 0; j < k; ++j)
          if (many_out[j]) sum += many_out[j]->c;
      }
      return found;
    };
    f.many_hit_ns = time_gets(w, w.hits, true, sys, many);
    get_row("keel get_many (256 per call)", "get hit", f.many_hit_ns);
    get_row("keel get_many (256 per call)", "get miss", time_gets(w, w.miss, false, sys, many));

    const keel::store_info in2 = db->info();
    space_row("keel", double(in2.file_size), w.raw_bytes(),
              fmt::format("data file; arena used {}, live {}, free lists {}", human_bytes(in2.arena_used),
                          human_bytes(in2.live_bytes), human_bytes(in2.free_bytes)));
    const auto t = clk::now();
    db->close();
    row("keel", "close", fmt::format("{:.0f} ms", secs_since(t) * 1e3), "checkpoint of the loaded store");
  }
  keel_wipe(path);
  {
    auto db = keel::store::open(path, keel_opts(keel::durability::batch, w.n));
    auto map = keel::hash_map<std::uint64_t, val32>::open(*db, "bench");
    const double s = keel_load(*db, map, w);
    const keel::store_info in = db->info();
    insert_row("keel (batch mode, 10 ms)", w.n, s,
               fmt::format("log {}, journal {}{}", human_bytes(in.log_bytes), human_bytes(in.journal_bytes),
                           in.checkpoint_lsn ? ", a checkpoint ran" : ""));
    verify(w, "keel (batch mode)", [&](std::uint64_t k) { return map.get(k); });
    db->close();
  }
  keel_wipe(path);
  return f;
}

// ---- in-RAM maps (absl::flat_hash_map, std::unordered_map)

template <class Map>
figures bench_ram(const workload& w, const char* sys) {
  figures f;
  const std::uint64_t heap0 = heap_in_use();
  {
    Map map;
    const auto t = clk::now();
    std::uint64_t added = 0;
    for (std::uint64_t i = 0; i < w.n; ++i) added += map.try_emplace(w.keys[i], make_val(w.keys[i])).second;
    const double s = secs_since(t);
    if (added != w.n || map.size() != w.n) die(fmt::format("{}: {} of {} inserts added a key", sys, added, w.n));
    f.insert_per_s = w.n / s;
    insert_row(sys, w.n, s);
    const std::uint64_t heap = heap_in_use() - heap0;
    verify(w, sys, [&](std::uint64_t k) -> std::optional<val32> {
      const auto it = map.find(k);
      if (it == map.end()) return std::nullopt;
      return it->second;
    });
    auto look = [&](const std::uint64_t* q, std::size_t n, std::uint64_t& sum) {
      std::uint64_t found = 0;
      for (std::size_t i = 0; i < n; ++i)
        if (const auto it = map.find(q[i]); it != map.end()) {
          sum += it->second.c;
          ++found;
        }
      return found;
    };
    f.hit_ns = time_gets(w, w.hits, true, sys, look);
    get_row(sys, "get hit", f.hit_ns);
    f.miss_ns = time_gets(w, w.miss, false, sys, look);
    get_row(sys, "get miss", f.miss_ns);
    space_row(sys, double(heap), w.raw_bytes(), fmt::format("heap (malloc'd bytes); {} buckets", map.bucket_count()));
  }
  malloc_trim(0);
  return f;
}

// ---- Boost.Interprocess: boost::unordered_map in a managed_mapped_file

namespace bip = boost::interprocess;
using bseg = bip::managed_mapped_file;
using bvalue = std::pair<const std::uint64_t, val32>;
using balloc = bip::allocator<bvalue, bseg::segment_manager>;
using bmap = boost::unordered_map<std::uint64_t, val32, boost::hash<std::uint64_t>, std::equal_to<std::uint64_t>, balloc>;

figures bench_boost(const workload& w, const std::string& dir) {
  figures f;
  const char* sys = "boost::unordered_map (bip file)";
  const std::string path = dir + "/boost.bin";
  std::filesystem::remove(path);
  // About 2 GiB for 10M entries; grown (doubled) when free space runs low.
  std::uint64_t size = std::max<std::uint64_t>(64_MiB, w.n * 215);
  {
    auto seg = std::make_unique<bseg>(bip::create_only, path.c_str(), size);
    bmap* map = seg->construct<bmap>("map")(0, boost::hash<std::uint64_t>(), std::equal_to<std::uint64_t>(),
                                            balloc(seg->get_segment_manager()));
    int grows = 0;
    double grow_secs = 0;
    const auto t = clk::now();
    std::uint64_t added = 0;
    for (std::uint64_t i = 0; i < w.n; i += w.batch) {
      // Room for this batch's nodes plus a rehash's new bucket array.
      const std::uint64_t need = w.batch * 96 + map->bucket_count() * 8 * 3 + 16_MiB;
      if (seg->get_free_memory() < need) {
        const auto tg = clk::now();
        seg.reset();
        bseg::grow(path.c_str(), size);
        size *= 2;
        seg = std::make_unique<bseg>(bip::open_only, path.c_str());
        map = seg->find<bmap>("map").first;
        if (!map) die("boost: map not found after growing the file");
        ++grows;
        grow_secs += secs_since(tg);
      }
      const std::uint64_t end = std::min<std::uint64_t>(w.n, i + w.batch);
      for (std::uint64_t j = i; j < end; ++j) added += map->try_emplace(w.keys[j], make_val(w.keys[j])).second;
    }
    const double s = secs_since(t);
    if (added != w.n || map->size() != w.n) die(fmt::format("boost: {} of {} inserts added a key", added, w.n));
    f.insert_per_s = w.n / s;
    insert_row(sys, w.n, s, fmt::format("file grown {} times ({:.2f} s)", grows, grow_secs));
    verify(w, sys, [&](std::uint64_t k) -> std::optional<val32> {
      const auto it = map->find(k);
      if (it == map->end()) return std::nullopt;
      return it->second;
    });
    auto look = [&](const std::uint64_t* q, std::size_t n, std::uint64_t& sum) {
      std::uint64_t found = 0;
      for (std::size_t i = 0; i < n; ++i)
        if (const auto it = map->find(q[i]); it != map->end()) {
          sum += it->second.c;
          ++found;
        }
      return found;
    };
    f.hit_ns = time_gets(w, w.hits, true, sys, look);
    get_row(sys, "get hit", f.hit_ns);
    f.miss_ns = time_gets(w, w.miss, false, sys, look);
    get_row(sys, "get miss", f.miss_ns);
    const double used = double(seg->get_size() - seg->get_free_memory());
    space_row(sys, used, w.raw_bytes(),
              fmt::format("used in the segment; file {} (sized ahead)", human_bytes(double(file_bytes(path)))));
  }
  std::filesystem::remove(path);
  return f;
}

// ---- LMDB

void lmdb_check(int rc, const char* what) {
  if (rc) die(fmt::format("lmdb {}: {}", what, mdb_strerror(rc)));
}

figures bench_lmdb(const workload& w, const std::string& dir) {
  figures f;
  const char* sys = "lmdb (WRITEMAP|NOSYNC)";
  const std::string env_dir = dir + "/lmdb";
  std::filesystem::remove_all(env_dir);
  std::filesystem::create_directories(env_dir);
  MDB_env* env;
  lmdb_check(mdb_env_create(&env), "env_create");
  lmdb_check(mdb_env_set_mapsize(env, std::max<std::uint64_t>(4_GiB, w.n * 400)), "set_mapsize");
  lmdb_check(mdb_env_open(env, env_dir.c_str(), MDB_WRITEMAP | MDB_NOSYNC, 0600), "env_open");
  MDB_dbi dbi;
  MDB_txn* txn;
  lmdb_check(mdb_txn_begin(env, nullptr, 0, &txn), "txn_begin");
  // The keys are native-endian u64s: MDB_INTEGERKEY compares them as such.
  lmdb_check(mdb_dbi_open(txn, nullptr, MDB_INTEGERKEY, &dbi), "dbi_open");
  lmdb_check(mdb_txn_commit(txn), "commit");

  const auto t = clk::now();
  for (std::uint64_t i = 0; i < w.n; i += w.batch) {
    const std::uint64_t end = std::min<std::uint64_t>(w.n, i + w.batch);
    lmdb_check(mdb_txn_begin(env, nullptr, 0, &txn), "txn_begin");
    for (std::uint64_t j = i; j < end; ++j) {
      std::uint64_t k = w.keys[j];
      val32 v = make_val(k);
      MDB_val key{sizeof k, &k}, val{sizeof v, &v};
      lmdb_check(mdb_put(txn, dbi, &key, &val, MDB_NOOVERWRITE), "put");
    }
    lmdb_check(mdb_txn_commit(txn), "commit");
  }
  const double s = secs_since(t);
  f.insert_per_s = w.n / s;
  insert_row(sys, w.n, s);

  MDB_txn* rtxn;
  lmdb_check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &rtxn), "txn_begin ro");
  MDB_stat st;
  lmdb_check(mdb_stat(rtxn, dbi, &st), "stat");
  if (st.ms_entries != w.n) die(fmt::format("lmdb: {} entries after {} inserts", st.ms_entries, w.n));
  auto get = [&](std::uint64_t k) -> std::optional<val32> {
    MDB_val key{sizeof k, &k}, val;
    const int rc = mdb_get(rtxn, dbi, &key, &val);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    lmdb_check(rc, "get");
    if (val.mv_size != sizeof(val32)) die("lmdb: value of the wrong size");
    val32 v;
    std::memcpy(&v, val.mv_data, sizeof v);
    return v;
  };
  verify(w, sys, get);
  mdb_txn_reset(rtxn);
  // One read transaction renewed per 1000 gets, so begin costs are amortised.
  auto look = [&](const std::uint64_t* q, std::size_t n, std::uint64_t& sum) {
    std::uint64_t found = 0;
    for (std::size_t i = 0; i < n; i += 1000) {
      lmdb_check(mdb_txn_renew(rtxn), "txn_renew");
      const std::size_t end = std::min(n, i + 1000);
      for (std::size_t j = i; j < end; ++j) {
        std::uint64_t k = q[j];
        MDB_val key{sizeof k, &k}, val;
        const int rc = mdb_get(rtxn, dbi, &key, &val);
        if (rc == 0) {
          std::uint64_t c;
          std::memcpy(&c, static_cast<const char*>(val.mv_data) + offsetof(val32, c), sizeof c);
          sum += c;
          ++found;
        } else if (rc != MDB_NOTFOUND) {
          lmdb_check(rc, "get");
        }
      }
      mdb_txn_reset(rtxn);
    }
    return found;
  };
  f.hit_ns = time_gets(w, w.hits, true, sys, look);
  get_row(sys, "get hit", f.hit_ns);
  f.miss_ns = time_gets(w, w.miss, false, sys, look);
  get_row(sys, "get miss", f.miss_ns);
  mdb_txn_abort(rtxn);

  MDB_envinfo ei;
  MDB_stat es;
  mdb_env_info(env, &ei);
  mdb_env_stat(env, &es);
  const double used = double(ei.me_last_pgno + 1) * es.ms_psize;
  space_row(sys, used, w.raw_bytes(),
            fmt::format("pages used; B-tree depth {}, {} leaf pages; data.mdb sparse, {} on disk", st.ms_depth,
                        st.ms_leaf_pages, human_bytes(double(disk_bytes(env_dir + "/data.mdb")))));
  mdb_env_close(env);
  std::filesystem::remove_all(env_dir);
  return f;
}

// ---- summary

void target(const char* what, double ratio, bool met, const char* goal) {
  fmt::print("{:<44} {:>8.2f}x   (target {:<7}) {}\n", what, ratio, goal, met ? "target met" : "target MISSED");
}
void no_figure(const char* what, const char* goal) {
  fmt::print("{:<44} {:>9}   (target {:<7}) target MISSED (not measured)\n", what, "n/a", goal);
}

// The machine's load: figures from a busy machine (2 cores here) are noisy.
std::string loadavg() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return "?";
  char buf[64] = {};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  std::string s = ok ? buf : "?";
  const auto sp = s.find(' ', s.find(' ', s.find(' ') + 1) + 1);  // the 1, 5 and 15 minute figures
  return s.substr(0, sp);
}

std::uint64_t parse_count(const char* arg, const char* flag) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(arg, &end, 10);
  if (!end || *end || v == 0) die(fmt::format("{} wants a positive integer, got '{}'", flag, arg));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "bench-data";
  workload w;
  std::string only;
  bool n_set = false, m_set = false;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a.rfind("--n=", 0) == 0) w.n = parse_count(a.c_str() + 4, "--n"), n_set = true;
    else if (a.rfind("--m=", 0) == 0) w.m = parse_count(a.c_str() + 4, "--m"), m_set = true;
    else if (a.rfind("--reps=", 0) == 0) w.reps = int(parse_count(a.c_str() + 7, "--reps"));
    else if (a.rfind("--only=", 0) == 0) only = fmt::format(",{},", a.substr(7));
    else if (a.rfind("--", 0) == 0) {
      fmt::print(stderr, "usage: keel-hash-bench [DIR] [--quick] [--n=N] [--m=M] [--reps=R] [--only=keel,absl,std,boost,lmdb]\n");
      return 2;
    } else dir = a;
  }
  if (quick) {
    if (!n_set) w.n = 1'000'000;
    if (!m_set) w.m = 200'000;
  }
  auto want = [&](const char* s) { return only.empty() || only.find(fmt::format(",{},", s)) != std::string::npos; };
#if !defined(__OPTIMIZE__)
  fmt::print("WARNING: built without optimisation; figures are not meaningful\n");
#endif
  std::filesystem::create_directories(dir);
  make_keys(w);

  fmt::print("== hash map: N = {} u64 keys -> 32-byte values (raw {}), M = {} lookups, best of {} ==\n", w.n,
             human_bytes(double(w.raw_bytes())), w.m, w.reps);
  fmt::print("load average at start: {}\n", loadavg());
  fmt::print("{:<34} {:<10} {:>18}  {}\n", "system", "metric", "value", "notes");
  figures keel, absl, stdm, boost, lmdb;
  if (want("keel")) keel = bench_keel(w, dir);
  if (want("absl")) absl = bench_ram<absl::flat_hash_map<std::uint64_t, val32>>(w, "absl::flat_hash_map (RAM)");
  if (want("std")) stdm = bench_ram<std::unordered_map<std::uint64_t, val32>>(w, "std::unordered_map (RAM)");
  if (want("boost")) boost = bench_boost(w, dir);
  if (want("lmdb")) lmdb = bench_lmdb(w, dir);

  fmt::print("\n== keel ratios (get = get hit, single lookups; inserts = checkpoint mode) ==\n");
  auto check = [](const char* what, double num, double den, auto pass, const char* goal_text) {
    if (num <= 0 || den <= 0) return no_figure(what, goal_text);
    target(what, num / den, pass(num / den), goal_text);
  };
  check("get hit  keel / absl::flat_hash_map", keel.hit_ns, absl.hit_ns, [](double r) { return r <= 1.5; }, "<= 1.5x");
  check("get hit  LMDB / keel", lmdb.hit_ns, keel.hit_ns, [](double r) { return r >= 4.0; }, ">= 4x");
  check("get hit  Boost.Interprocess / keel", boost.hit_ns, keel.hit_ns, [](double r) { return r >= 1.7; }, ">= 1.7x");
  check("inserts  keel / LMDB", keel.insert_per_s, lmdb.insert_per_s, [](double r) { return r >= 2.0; }, ">= 2x");
  check("inserts  keel / Boost.Interprocess", keel.insert_per_s, boost.insert_per_s, [](double r) { return r > 1.0; }, "> 1x");
  if (keel.many_hit_ns > 0 && absl.hit_ns > 0 && lmdb.hit_ns > 0 && boost.hit_ns > 0)
    fmt::print("(get_many per key, batched lookups: keel/absl {:.2f}x, LMDB/keel {:.2f}x, Boost/keel {:.2f}x)\n",
               keel.many_hit_ns / absl.hit_ns, lmdb.hit_ns / keel.many_hit_ns, boost.hit_ns / keel.many_hit_ns);
  if (keel.miss_ns > 0 && absl.miss_ns > 0 && lmdb.miss_ns > 0 && boost.miss_ns > 0)
    fmt::print("(get miss, for reference: keel/absl {:.2f}x, LMDB/keel {:.2f}x, Boost/keel {:.2f}x)\n",
               keel.miss_ns / absl.miss_ns, lmdb.miss_ns / keel.miss_ns, boost.miss_ns / keel.miss_ns);
  fmt::print("load average at end: {}\n", loadavg());
  std::filesystem::remove_all(dir);
  return 0;
}
