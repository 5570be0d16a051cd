// keel::hash_map unit tests.
//
//  - differential test against std::unordered_map: seeded random insert / put /
//    erase / get / contains / update / size / for_each / clear / reserve, in
//    transactions and lock-free, committed and aborted (abort(), an exception
//    out of store::write, a dropped write_txn), with close + reopen, in every
//    durability mode; dense u64 keys, 16-byte keys differing in one byte, and
//    u64 keys crafted (from the map's seed, read from its root block) to share
//    one home group, to share home group and control tag, and to wrap around
//    the end of the table;
//  - growth through many resizes with a check after every transaction, erase
//    and re-insert (tombstones), bounded arena over insert/erase cycles;
//  - reserve(), put/insert/update/erase semantics, for_each (idle, during a
//    resize, early stop, concurrent writer threads);
//  - a table almost all tombstones with a few live entries (crafted keys)
//    that must keep growing; a rejected reserve() in the middle of a resize;
//    errc::full during growth (map consistent, transaction usable, no leak);
//  - type checks, read-only opens, keys and values of many sizes;
//  - corrupt root blocks (typed errors) and corrupt tables (no crash, no hang).
//
// Environment:
//   KEEL_HASH_OPS   random operations of the differential tests (default
//                   1,250,000: ~10 s of CPU in Release, ~25 s with ASan+UBSan;
//                   can be scaled down for slow sanitizer runs)
//   KEEL_HASH_SEED  seed (default: from the clock; printed)
#include <doctest/doctest.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <keel/keel.h>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "file/format.h"
#include "support/inspect.h"
#include "support/seeds.h"
#include "support/temp_dir.h"
#include "support/testing.h"

namespace {

namespace kf = keel::fmt;
using keel_test::describe;
using keel_test::describe_status;
using keel_test::read_root;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using u64 = std::uint64_t;
using u32 = std::uint32_t;
using u8 = std::uint8_t;
using keel::operator""_MiB;
using keel::operator""_GiB;

using keel_test::env_u64;
using keel_test::mix;

constexpr const char* kName = "map";

u64 base_seed() {
  static const u64 s = keel_test::env_seed("KEEL_HASH_SEED");
  return s;
}

double secs_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

// ------------------------------------------------------------ key and value types

struct k16 {
  u64 a, b;
};
static_assert(std::has_unique_object_representations_v<k16>);
template <std::size_t N>
struct blob {
  unsigned char b[N];
};
static_assert(sizeof(blob<200>) == 200 && sizeof(blob<3000>) == 3000);

template <class T>
bool same(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
std::string hex(const T& t) {
  static const char* d = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(&t);
  std::string s;
  const std::size_t n = std::min<std::size_t>(sizeof(T), 24);
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  if (sizeof(T) > n) s += "...(" + std::to_string(sizeof(T)) + " bytes)";
  return s;
}
template <class T>
std::string opt_hex(const std::optional<T>& t) {
  return t ? hex(*t) : std::string("<absent>");
}

template <class T>
struct byte_hash {
  std::size_t operator()(const T& t) const noexcept {
    return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(&t), sizeof(T)));
  }
};
template <class T>
struct byte_eq {
  bool operator()(const T& a, const T& b) const noexcept { return same(a, b); }
};
template <class K, class V>
using model_t = std::unordered_map<K, V, byte_hash<K>, byte_eq<K>>;
template <class K>
using key_set = std::unordered_set<K, byte_hash<K>, byte_eq<K>>;

template <class T>
T random_of(std::mt19937_64& r) {
  T t;
  auto* p = reinterpret_cast<unsigned char*>(&t);
  for (std::size_t i = 0; i < sizeof(T); i += 8) {
    const u64 x = r();
    std::memcpy(p + i, &x, std::min<std::size_t>(8, sizeof(T) - i));
  }
  return t;
}

// The change update() applies (the model applies the same).
template <class V>
void bump(V& v) {
  auto* p = reinterpret_cast<unsigned char*>(&v);
  p[0] = static_cast<unsigned char>(p[0] + 1);
  p[sizeof(V) - 1] = static_cast<unsigned char>(p[sizeof(V) - 1] ^ 0x5a);
}

keel::options opts_for(keel::durability m) {
  keel::options o;
  o.initial_size = 1_MiB;
  o.max_size = 2_GiB;
  o.mode = m;
  o.batch_window = 5ms;
  o.checkpoint_bytes = 8_MiB;  // checkpoints happen during the runs
  return o;
}
std::string mode_name(keel::durability m) {
  return m == keel::durability::sync ? "sync" : m == keel::durability::batch ? "batch" : "checkpoint";
}

// The engine's hash and home group (docs/FORMAT.md): XXH3-64 with the map's seed,
// home = top log2(groups) bits.
u64 key_hash(const void* k, std::size_t n, u64 seed) { return XXH3_64bits_withSeed(k, n, seed); }
u64 home_of(u64 h, u64 groups) { return groups <= 1 ? 0 : h >> (64 - std::countr_zero(groups)); }

struct deliberate {};  // thrown out of store::write to abort

// Compares a for_each walk with a model: every model entry exactly once, nothing else.
// Callers hand for_each an rvalue (std::forward): hash_map::for_each(F&& f)
// instantiates visit<F> with F = X& for a named callable and does not compile
// (static_cast<F*> forms a pointer to a reference).
template <class K, class V, class Walk>
std::string compare_walk(Walk&& walk, const model_t<K, V>& m) {
  key_set<K> seen;
  seen.reserve(m.size());
  std::string err;
  u64 n = 0;
  walk([&](const K& k, const V& v) {
    ++n;
    if (!seen.insert(k).second && err.size() < 2000) err += "key " + hex(k) + " visited twice; ";
    const auto it = m.find(k);
    if (it == m.end()) {
      if (err.size() < 2000) err += "visited key " + hex(k) + " is not in the model; ";
    } else if (!same(it->second, v) && err.size() < 2000) {
      err += "key " + hex(k) + " visited with value " + hex(v) + ", model has " + hex(it->second) + "; ";
    }
  });
  if (seen.size() != m.size() || n != m.size())
    err += "walk visited " + std::to_string(n) + " entries (" + std::to_string(seen.size()) + " distinct), model has " +
           std::to_string(m.size()) + "; ";
  return err;
}

// ------------------------------------------------------------ the differential driver

template <class K, class V>
class differ {
 public:
  using map = keel::hash_map<K, V>;
  using keygen = std::function<K(std::mt19937_64&)>;
  struct cfg {
    std::string label;
    keel::durability mode = keel::durability::batch;
    u64 seed = 0;
    u64 ops = 0;  // random operations to run
    int txn_min = 1, txn_max = 300;
    int reopens = 1;
    bool allow_clear = true;
    u64 for_each_limit = 60000;  // no for_each when the model is larger
  };

  differ(cfg c, std::string path, keygen kg) : c_(std::move(c)), path_(std::move(path)), key_(std::move(kg)), rng_(c_.seed) {}

  void open() {
    db_ = keel::store::open(path_, opts_for(c_.mode));
    map_.emplace(map::open(*db_, kName));
  }
  void close() {
    map_.reset();
    db_->close();
    db_.reset();
  }
  keel::store& db() { return *db_; }
  map& m() { return *map_; }
  void set_keygen(keygen kg) { key_ = std::move(kg); }

  void run() {
    if (!db_) open();
    const u64 start = ops_;
    const u64 per = c_.ops / static_cast<u64>(c_.reopens + 1);
    u64 next_reopen = start + per;
    int reopened = 0;
    try {
      while (ops_ - start < c_.ops) {
        round();
        if (ops_ >= next_reopen && reopened < c_.reopens) {
          full_check("before close");
          close();
          open();
          full_check("after reopen");
          ++reopened;
          next_reopen += per;
        }
      }
      full_check("at the end");
    } catch (const keel::error& e) {
      FAIL(ctx(), "keel::error ", keel::to_string(e.code()), ": ", std::string(e.what()));
    }
  }

  // Everything in the model is there, nothing else, in every way of reading.
  void full_check(const std::string& where) {
    ++full_checks_;
    const u64 sz = map_->size();
    if (sz != model_.size()) fail(where + ": size() " + std::to_string(sz) + ", model " + std::to_string(model_.size()));
    for (const auto& [k, v] : model_) {
      const std::optional<V> got = map_->get(k);
      if (!got || !same(*got, v)) fail(where + ": get(" + hex(k) + ") = " + opt_hex(got) + ", model " + hex(v));
    }
    // Several lookups in one read section.
    std::vector<std::pair<K, V>> all(model_.begin(), model_.end());
    for (std::size_t at = 0; at < all.size(); at += 64) {
      const std::size_t end = std::min(all.size(), at + 64);
      const std::string bad = db_->read([&](const keel::read_view& v) -> std::string {
        for (std::size_t i = at; i < end; ++i) {
          const std::optional<V> got = map_->get(v, all[i].first);
          if (!got || !same(*got, all[i].second) || !map_->contains(v, all[i].first))
            return "get(view, " + hex(all[i].first) + ") = " + opt_hex(got) + ", model " + hex(all[i].second);
        }
        if (map_->size(v) != model_.size()) return "size(view) " + std::to_string(map_->size(v));
        return {};
      });
      if (!bad.empty()) fail(where + ": " + bad);
    }
    std::string bad = compare_walk<K, V>([&](auto&& f) { map_->for_each(std::forward<decltype(f)>(f)); }, model_);
    if (!bad.empty()) fail(where + ": lock-free for_each: " + bad);
    {
      auto tx = db_->begin_write();
      bad = compare_walk<K, V>([&](auto&& f) { map_->for_each(tx, std::forward<decltype(f)>(f)); }, model_);
      if (!bad.empty()) fail(where + ": for_each in a transaction: " + bad);
      if (map_->size(tx) != model_.size()) fail(where + ": size(tx) " + std::to_string(map_->size(tx)));
      tx.abort();
    }
    for (int i = 0; i < 500; ++i) {
      const K k = key_(rng_);
      const auto it = model_.find(k);
      const std::optional<V> got = map_->get(k);
      if (it == model_.end() ? got.has_value() : (!got || !same(*got, it->second)))
        fail(where + ": get(" + hex(k) + ") = " + opt_hex(got) + ", model " +
             (it == model_.end() ? std::string("<absent>") : hex(it->second)));
    }
  }

  u64 ops() const { return ops_; }
  u64 txns() const { return txns_; }
  u64 aborted() const { return aborted_; }
  u64 mid_resize() const { return mid_resize_; }
  u64 max_groups() const { return max_groups_; }
  u64 max_probe() const { return max_probe_; }
  u64 clears() const { return clears_; }
  const model_t<K, V>& model() const { return model_; }
  std::string stats() const {
    std::ostringstream o;
    o << c_.label << " [" << mode_name(c_.mode) << "]: " << ops_ << " ops in " << txns_ << " transactions (" << aborted_
      << " aborted), " << mid_resize_ << " commits left a resize running, " << clears_ << " clears, largest table "
      << max_groups_ << " groups, longest probe " << max_probe_ << " groups, " << full_checks_ << " full checks, final size "
      << model_.size();
    return o.str();
  }

 private:
  std::string ctx() const {
    std::ostringstream o;
    o << "[" << c_.label << ", mode " << mode_name(c_.mode) << ", seed " << c_.seed << ", op " << ops_ << ", txn "
      << txns_ << "] ";
    return o.str();
  }
  [[noreturn]] void fail(const std::string& what) {
    std::string root;
    try {
      root = describe(read_root(*db_, map_->root()));
    } catch (const std::exception& e) {
      root = std::string(e.what());
    }
    FAIL(ctx(), what, " (map root: ", root, ")");
    std::abort();  // unreachable: FAIL throws
  }

  void check_get(const std::optional<V>& got, const K& k, const model_t<K, V>& mm, const char* how) {
    const auto it = mm.find(k);
    if (it == mm.end() ? got.has_value() : (!got || !same(*got, it->second)))
      fail(std::string(how) + "(" + hex(k) + ") = " + opt_hex(got) + ", model " +
           (it == mm.end() ? std::string("<absent>") : hex(it->second)));
  }

  // n random operations inside tx, mirrored in mm.
  void txn_ops(keel::write_txn& tx, model_t<K, V>& mm, int n, std::vector<K>* touched) {
    for (int i = 0; i < n; ++i) {
      ++ops_;
      const u64 r = rng_() % 10000;
      const K k = key_(rng_);
      if (touched) touched->push_back(k);
      if (r < 2500) {
        const V v = random_of<V>(rng_);
        const bool added = map_->put(tx, k, v);
        const bool want = mm.find(k) == mm.end();
        if (added != want) fail("put(" + hex(k) + ") returned " + std::to_string(added) + ", expected " + std::to_string(want));
        mm[k] = v;
      } else if (r < 3700) {
        const V v = random_of<V>(rng_);
        const bool added = map_->insert(tx, k, v);
        const bool want = mm.find(k) == mm.end();
        if (added != want)
          fail("insert(" + hex(k) + ") returned " + std::to_string(added) + ", expected " + std::to_string(want));
        if (want) mm.emplace(k, v);
      } else if (r < 5700) {
        const bool erased = map_->erase(tx, k);
        const bool want = mm.erase(k) == 1;
        if (erased != want)
          fail("erase(" + hex(k) + ") returned " + std::to_string(erased) + ", expected " + std::to_string(want));
      } else if (r < 7200) {
        check_get(map_->get(tx, k), k, mm, "get(tx)");
      } else if (r < 7700) {
        const bool c = map_->contains(tx, k);
        if (c != (mm.find(k) != mm.end())) fail("contains(tx, " + hex(k) + ") = " + std::to_string(c));
      } else if (r < 9000) {
        const auto it = mm.find(k);
        int calls = 0;
        const bool found = map_->update(tx, k, [&](V& v) {
          ++calls;
          if (it == mm.end() || !same(v, it->second))
            fail("update(" + hex(k) + ") passed " + hex(v) + ", model " +
                 (it == mm.end() ? std::string("<absent>") : hex(it->second)));
          bump(v);
        });
        if (found != (it != mm.end()) || calls != (found ? 1 : 0))
          fail("update(" + hex(k) + ") returned " + std::to_string(found) + " after " + std::to_string(calls) + " calls");
        if (found) bump(it->second);
      } else if (r < 9600) {
        const u64 s = map_->size(tx);
        if (s != mm.size()) fail("size(tx) " + std::to_string(s) + ", model " + std::to_string(mm.size()));
      } else if (r < 9608) {
        if (mm.size() <= c_.for_each_limit) {
          const std::string bad = compare_walk<K, V>([&](auto&& f) { map_->for_each(tx, std::forward<decltype(f)>(f)); }, mm);
          if (!bad.empty()) fail("for_each(tx): " + bad);
        }
      } else if (r < 9620) {
        map_->reserve(tx, mm.size() + rng_() % (mm.size() + 2000));
      } else if (r < 9621) {
        if (c_.allow_clear && rng_() % 8 == 0) {
          map_->clear(tx);
          mm.clear();
          ++clears_;
          if (map_->size(tx) != 0) fail("size(tx) after clear " + std::to_string(map_->size(tx)));
        }
      } else {
        // erase then look: the key must be gone in this transaction
        const bool erased = map_->erase(tx, k);
        if (erased != (mm.erase(k) == 1)) fail("erase(" + hex(k) + ") returned " + std::to_string(erased));
        if (map_->get(tx, k)) fail("get(tx, " + hex(k) + ") finds the key just erased");
      }
    }
  }

  void lock_free_ops(int n) {
    for (int i = 0; i < n; ++i) {
      ++ops_;
      const u64 r = rng_() % 100;
      const K k = key_(rng_);
      if (r < 50) {
        check_get(map_->get(k), k, model_, "get");
      } else if (r < 70) {
        const bool c = map_->contains(k);
        if (c != (model_.find(k) != model_.end())) fail("contains(" + hex(k) + ") = " + std::to_string(c));
      } else if (r < 80) {
        const u64 s = map_->size();
        if (s != model_.size()) fail("size() " + std::to_string(s) + ", model " + std::to_string(model_.size()));
      } else {
        K keys[8];
        keys[0] = k;
        for (int j = 1; j < 8; ++j) keys[j] = key_(rng_);
        std::optional<V> got[8];
        db_->read([&](const keel::read_view& v) {
          for (int j = 0; j < 8; ++j) got[j] = map_->get(v, keys[j]);
        });
        for (int j = 0; j < 8; ++j) check_get(got[j], keys[j], model_, "get(view)");
      }
    }
  }

  void note_root() {
    const kf::map_root r = read_root(*db_, map_->root());
    if (r.old.groups != 0) ++mid_resize_;
    max_groups_ = std::max(max_groups_, r.cur.groups);
    max_probe_ = std::max(max_probe_, r.cur.max_probe);
    if (r.size != model_.size()) fail("root says size " + std::to_string(r.size));
  }

  void round() {
    ++txns_;
    // log-uniform: many small transactions (commits land inside resizes), some big ones
    const double lo = std::log(static_cast<double>(c_.txn_min)), hi = std::log(static_cast<double>(c_.txn_max) + 1);
    const int n = std::clamp(static_cast<int>(std::exp(lo + (hi - lo) * static_cast<double>(rng_() % 1000000) / 1e6)),
                             c_.txn_min, c_.txn_max);
    const u64 pick = rng_() % 100;
    if (pick < 7) {
      // An aborted transaction: its changes must vanish.
      ++aborted_;
      model_t<K, V> scratch = model_;
      std::vector<K> touched;
      const u64 lsn0 = db_->info().last_lsn;
      if (pick < 3) {
        auto tx = db_->begin_write();
        txn_ops(tx, scratch, n, &touched);
        tx.abort();
      } else if (pick < 6) {
        bool returned = false;
        try {
          db_->write([&](keel::write_txn& tx) {
            txn_ops(tx, scratch, n, &touched);
            throw deliberate{};
          });
          returned = true;
        } catch (const deliberate&) {
        }
        if (returned) fail("store::write returned although its callback threw");
      } else {
        auto tx = db_->begin_write();
        txn_ops(tx, scratch, n, &touched);
        // destroyed uncommitted
      }
      if (db_->info().last_lsn != lsn0) fail("an aborted transaction changed last_lsn");
      const u64 s = map_->size();
      if (s != model_.size()) fail("after an abort size() " + std::to_string(s) + ", model " + std::to_string(model_.size()));
      for (const K& k : touched) check_get(map_->get(k), k, model_, "get after abort");
      // and the next transaction sees the same
      auto tx = db_->begin_write();
      for (std::size_t i = 0; i < touched.size(); i += 7) check_get(map_->get(tx, touched[i]), touched[i], model_, "get(tx) after abort");
      tx.abort();
    } else {
      db_->write([&](keel::write_txn& tx) { txn_ops(tx, model_, n, nullptr); });
    }
    note_root();
    lock_free_ops(1 + static_cast<int>(rng_() % 16));
    if (rng_() % 150 == 0 && model_.size() <= c_.for_each_limit) {
      ++ops_;
      const std::string bad = compare_walk<K, V>([&](auto&& f) { map_->for_each(std::forward<decltype(f)>(f)); }, model_);
      if (!bad.empty()) fail("lock-free for_each: " + bad);
    }
  }

  cfg c_;
  std::string path_;
  keygen key_;
  std::mt19937_64 rng_;
  std::unique_ptr<keel::store> db_;
  std::optional<map> map_;
  model_t<K, V> model_;
  u64 ops_ = 0, txns_ = 0, aborted_ = 0, mid_resize_ = 0, max_groups_ = 0, max_probe_ = 0, clears_ = 0,
      full_checks_ = 0;
};

// Share of the op budget per mode: sync commits pay an fdatasync each, so it
// gets fewer, bigger transactions.
struct mode_plan {
  keel::durability mode;
  int txn_min, txn_max;
};
const mode_plan kModes[] = {
    {keel::durability::sync, 400, 2500},
    {keel::durability::batch, 1, 500},
    {keel::durability::checkpoint, 1, 500},
};

u64 total_ops() { return std::max<u64>(env_u64("KEEL_HASH_OPS", 1'250'000), 3000); }

// One differential run per durability mode (kModes), `budget` ops in all;
// keys() makes each run's key generator; each run must commit more than
// min_txns transactions. Returns the ops done.
template <class K, class V>
u64 differential_every_mode(const std::string& label, u64 budget, u64 seed, int reopens,
                            const std::function<typename differ<K, V>::keygen()>& keys, u64 min_txns = 0) {
  u64 done = 0;
  for (const mode_plan& mp : kModes) {
    keel_test::temp_dir dir;
    typename differ<K, V>::cfg c;
    c.label = label;
    c.mode = mp.mode;
    c.seed = seed ^ static_cast<u64>(mp.mode);
    c.ops = budget / 3;
    c.txn_min = mp.txn_min;
    c.txn_max = mp.txn_max;
    c.reopens = reopens;
    differ<K, V> d(c, dir.path("s"), keys());
    d.run();
    MESSAGE(d.stats());
    CHECK_MESSAGE(d.txns() > min_txns, d.stats());
    done += d.ops();
  }
  CHECK(done >= budget - 3);
  return done;
}

}  // namespace

// ====================================================================== differential

TEST_CASE("differential: u64 -> u64, dense keys, every durability mode") {
  const u64 seed = base_seed();
  MESSAGE("hash_map_test: seed ", seed, " (set KEEL_HASH_SEED to repeat), ", total_ops(), " random ops in total");
  const auto t0 = clk::now();
  // Key range changes in epochs (dense: the table is full of hits, misses and tombstones).
  const u64 done = differential_every_mode<u64, u64>("dense u64", total_ops() * 36 / 100, seed ^ 0x1000, 2, [] {
    auto range = std::make_shared<u64>(64);
    auto left = std::make_shared<u64>(0);
    return [range, left](std::mt19937_64& r) {
      if ((*left)-- == 0) {
        static const u64 ranges[] = {16, 64, 700, 5000, 30000, 60000};
        *range = ranges[r() % std::size(ranges)];
        *left = 2000 + r() % 40000;
      }
      return r() % *range;
    };
  }, 50);
  MESSAGE("dense u64: ", done, " ops in ", secs_since(t0), " s");
}

// The benchmark's shape: 40-byte slots, 102 to a page with a 16-byte pad at
// each page's end (docs/FORMAT.md "Slots"), so slot offsets take the
// page arithmetic that power-of-two slots skip.
TEST_CASE("differential: u64 -> 32-byte values (40-byte slots, page pads), every durability mode") {
  const auto t0 = clk::now();
  const u64 done = differential_every_mode<u64, blob<32>>("u64 -> 32 bytes", total_ops() * 16 / 100,
                                                          base_seed() ^ 0x1800, 1, [] {
                                                            return [](std::mt19937_64& r) { return r() % 20000; };
                                                          });
  MESSAGE("u64 -> 32 bytes: ", done, " ops in ", secs_since(t0), " s");
}

TEST_CASE("differential: 16-byte keys differing in one byte, every durability mode") {
  const auto t0 = clk::now();
  const u64 done = differential_every_mode<k16, u64>("k16 one byte apart", total_ops() * 24 / 100,
                                                     base_seed() ^ 0x2000, 1, [] {
    return [](std::mt19937_64& r) {
      // 16 positions x 256 byte values around one base key (4081 distinct keys).
      k16 k{0x0123456789abcdefull, 0xfedcba9876543210ull};
      const u64 i = r() % 4096;
      reinterpret_cast<unsigned char*>(&k)[i >> 8] = static_cast<unsigned char>(i & 0xff);
      return k;
    };
  });
  MESSAGE("k16: ", done, " ops in ", secs_since(t0), " s");
}

// Keys chosen with the map's own seed (read from its root block) so that they
// collide on purpose: 1500 keys whose top 9 hash bits are all ones (one home
// group in every table of <= 512 groups, the last one, so probes wrap around
// to group 0), and 400 keys with top 6 bits zero and the same 7-bit control
// tag (every tag match is a false positive the key compare must reject).
TEST_CASE("differential: crafted colliding keys (same home group, same tag, wrap-around)") {
  const u64 budget = total_ops() * 24 / 100;
  const u64 seed = base_seed();
  const auto t0 = clk::now();
  u64 done = 0;
  const keel::durability modes[] = {keel::durability::batch, keel::durability::checkpoint};
  for (const keel::durability mode : modes) {
    keel_test::temp_dir dir;
    typename differ<u64, u64>::cfg c;
    c.label = "crafted collisions";
    c.mode = mode;
    c.seed = seed ^ 0x3000 ^ static_cast<u64>(mode);
    c.ops = budget / 2;
    c.txn_min = 1;
    c.txn_max = 400;
    c.reopens = 1;
    c.allow_clear = false;
    auto pool = std::make_shared<std::vector<u64>>();
    differ<u64, u64> d(c, dir.path("s"), [pool](std::mt19937_64& r) { return (*pool)[r() % pool->size()]; });
    d.open();
    const kf::map_root rt = read_root(d.db(), d.m().root());
    std::vector<u64> wrap, tagged;
    for (u64 x = 1; wrap.size() < 1500 || tagged.size() < 400; ++x) {
      const u64 key = mix(x ^ c.seed);
      const u64 h = key_hash(&key, 8, rt.seed);
      if ((h >> 55) == 0x1ff && wrap.size() < 1500) wrap.push_back(key);
      if ((h >> 58) == 0 && (h & 0x7f) == 0x2a && tagged.size() < 400) tagged.push_back(key);
    }
    *pool = wrap;
    pool->insert(pool->end(), tagged.begin(), tagged.end());
    for (u64 i = 0; i < 600; ++i) pool->push_back(mix(i + 77));  // a few ordinary keys
    d.run();
    MESSAGE(d.stats());
    // The collisions were real (the engine's hash is the one computed here):
    // 1500 keys in one home group make probes far longer than random keys do.
    CHECK_MESSAGE(d.max_probe() >= 16, "longest probe only ", d.max_probe(), " groups: the crafted keys did not collide");
    done += d.ops();
  }
  MESSAGE("crafted: ", done, " ops in ", secs_since(t0), " s");
}

// ====================================================================== growth

TEST_CASE("growth through many resizes: every transaction checked; erase most, insert again") {
  keel_test::temp_dir dir;
  const u64 seed = base_seed() ^ 0x4000;
  INFO("seed ", seed);
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  std::mt19937_64 rng(seed);
  std::vector<u64> keys;  // keys[i] = mix(seed + i), value = i * 3 + 1
  auto key_of = [&](u64 i) { return mix(seed + i); };
  auto val_of = [](u64 i, u64 gen) { return i * 3 + 1 + (gen << 40); };
  constexpr u64 kN = 300'000, kTxn = 1000;
  std::vector<u64> gen(kN * 2, 0);  // per key index: 0 absent, else generation + 1
  u64 present = 0, resizes = 0, mid = 0, last_groups = 0;
  auto check_after = [&](const std::string& phase, u64 lo, u64 hi) {
    // size, every key touched by the transaction, and a random sample
    const u64 s = m.size();
    REQUIRE_MESSAGE(s == present, phase, ": size() ", s, ", expected ", present);
    auto check_key = [&](u64 i) {
      const std::optional<u64> got = m.get(key_of(i));
      const bool want = gen[i] != 0;
      if (want ? (!got || *got != val_of(i, gen[i] - 1)) : got.has_value())
        FAIL(phase, ": key #", i, " get = ", got ? std::to_string(*got) : "<absent>", ", expected ",
             want ? std::to_string(val_of(i, gen[i] - 1)) : "<absent>", " (", describe(read_root(*db, m.root())), ")");
    };
    for (u64 i = lo; i < hi; ++i) check_key(i);
    const u64 limit = std::max<u64>(hi, 1);
    for (int j = 0; j < 300; ++j) check_key(rng() % limit);
    const kf::map_root rt = read_root(*db, m.root());
    if (rt.cur.groups != last_groups) ++resizes;
    last_groups = rt.cur.groups;
    if (rt.old.groups) ++mid;
  };
  const auto t0 = clk::now();
  // 1: grow from empty to 300k; transactions grow with the map (1 insert at
  // first, at most 1000), so that every resize is seen from outside.
  u64 txn_no = 0;
  for (u64 at = 0, step = 1; at < kN; at += step, step = std::clamp<u64>(at / 8, 1, kTxn)) {
    step = std::min(step, kN - at);
    db->write([&](keel::write_txn& tx) {
      for (u64 i = at; i < at + step; ++i) {
        if (!m.insert(tx, key_of(i), val_of(i, 0))) FAIL("insert of new key #", i, " returned false");
        gen[i] = 1;
      }
      REQUIRE(m.size(tx) == at + step);
    });
    present = at + step;
    check_after("growth", at, at + step);
    if (++txn_no % 60 == 59) {  // a full walk now and then
      u64 n = 0;
      key_set<u64> seen;
      m.for_each([&](const u64& k, const u64&) {
        ++n;
        seen.insert(k);
      });
      REQUIRE_MESSAGE((n == present && seen.size() == present), "for_each during growth visited ", n, " (",
                      seen.size(), " distinct) of ", present);
    }
  }
  // 1 group to >= 2^15: at least 8 growths even if each quadrupled the table.
  CHECK_MESSAGE(resizes >= 8, "only ", resizes, " table sizes seen while growing to ", kN);
  CHECK_MESSAGE(mid > 0, "no transaction ever left a resize running");
  MESSAGE("growth to ", kN, ": ", resizes, " table sizes, ", mid, " checks during a resize, ", secs_since(t0), " s");
  // 2: erase 90%.
  for (u64 at = 0; at < kN; at += 2 * kTxn) {
    db->write([&](keel::write_txn& tx) {
      for (u64 i = at; i < at + 2 * kTxn; ++i)
        if (i % 10 != 0) {
          if (!m.erase(tx, key_of(i))) FAIL("erase of present key #", i, " returned false");
          gen[i] = 0;
          --present;
        }
    });
    check_after("erase", at, at + 2 * kTxn);
  }
  REQUIRE(m.size() == kN / 10);
  // 3: insert 270k new keys into a table full of tombstones, and re-insert erased ones.
  for (u64 at = kN; at < 2 * kN - kN / 10; at += kTxn) {
    db->write([&](keel::write_txn& tx) {
      for (u64 i = at; i < at + kTxn; ++i) {
        if (!m.put(tx, key_of(i), val_of(i, 0))) FAIL("put of new key #", i, " returned false");
        gen[i] = 1;
        ++present;
      }
      for (u64 j = 0; j < 50; ++j) {  // old keys back, with a new value
        const u64 i = rng() % kN;
        const bool fresh = gen[i] == 0;
        if (m.put(tx, key_of(i), val_of(i, 5)) != fresh) FAIL("put(#", i, ") returned ", !fresh);
        if (fresh) ++present;
        gen[i] = 6;
      }
    });
    check_after("re-insert", at, at + kTxn);
  }
  // Final: every key.
  u64 bad = 0;
  for (u64 i = 0; i < gen.size(); ++i) {
    const std::optional<u64> got = m.get(key_of(i));
    if (gen[i] ? (!got || *got != val_of(i, gen[i] - 1)) : got.has_value()) ++bad;
  }
  CHECK_MESSAGE(bad == 0, bad, " keys wrong at the end");
  u64 n = 0;
  m.for_each([&](const u64&, const u64&) { ++n; });
  CHECK(n == present);
  MESSAGE("growth test: ", secs_since(t0), " s, final size ", present, ", ", describe(read_root(*db, m.root())));
  db->close();
}

// Repeated cycles with the same number of keys must reuse the freed tables.
TEST_CASE("insert/erase cycles of the same key count keep the arena bounded") {
  keel_test::temp_dir dir;
  const u64 seed = base_seed() ^ 0x5000;
  INFO("seed ", seed);
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  constexpr u64 kKeys = 40'000, kKeep = 40;
  std::vector<u64> arena;
  std::vector<u64> survivors;
  u64 next = 0;
  for (int cycle = 1; cycle <= 12; ++cycle) {
    CAPTURE(cycle);
    std::vector<u64> keys;
    for (u64 i = 0; i < kKeys; ++i) keys.push_back(mix(seed + next++));
    for (std::size_t at = 0; at < keys.size(); at += 1000)
      db->write([&](keel::write_txn& tx) {
        for (std::size_t i = at; i < at + 1000; ++i)
          if (!m.insert(tx, keys[i], keys[i] ^ 1)) FAIL("insert of a new key returned false");
      });
    REQUIRE(m.size() == kKeys + survivors.size());
    for (u64 s : survivors) REQUIRE(m.get(s) == std::optional<u64>(s ^ 1));
    // Erase all but a few (and the previous cycle's survivors).
    for (std::size_t at = 0; at < keys.size(); at += 1000)
      db->write([&](keel::write_txn& tx) {
        for (std::size_t i = at; i < at + 1000; ++i)
          if (i >= kKeep && !m.erase(tx, keys[i])) FAIL("erase of a present key returned false");
      });
    db->write([&](keel::write_txn& tx) {
      for (u64 s : survivors)
        if (!m.erase(tx, s)) FAIL("erase of a survivor returned false");
    });
    survivors.assign(keys.begin(), keys.begin() + kKeep);
    REQUIRE(m.size() == kKeep);
    for (int j = 0; j < 200; ++j) REQUIRE(!m.contains(keys[kKeep + static_cast<std::size_t>(j) * 97]));
    arena.push_back(db->info().arena_used);
  }
  std::ostringstream o;
  for (u64 a : arena) o << (a >> 10) << " ";
  MESSAGE("arena_used (KiB) after each cycle: ", o.str());
  CHECK_MESSAGE(arena[9] <= arena[1] + arena[1] / 2, "arena after cycle 10 ", arena[9], " > 1.5 x after cycle 2 ",
                arena[1], " (", o.str(), ")");
  CHECK(arena[11] <= arena[1] + arena[1] / 2);
  const keel::store_info in = db->info();
  CHECK(in.live_bytes + in.free_bytes == in.arena_used - kf::kArenaOffset);
  db->close();
}

// A table whose slots are exactly 7/8 used, almost all by tombstones, with a
// few live entries in its last groups (keys crafted with the map's seed so
// that each of groups 0..895 of 1024 holds 16). The next insert must rehash.
// Found with keel 7e4cb7e: the rehash took a table sized for the 8 live
// entries (2 groups); new inserts filled it long before the old table had
// moved (4 groups per write), and the next growth, which first finishes the
// running move into the full small table, threw errc::corrupt "no free
// slot" on every further insert. Whatever the rehash policy, inserts must
// keep working and the map must stay exact.
TEST_CASE("tombstone-driven shrink while a large old table still migrates") {
  keel_test::temp_dir dir;
  const u64 seed = base_seed() ^ 0x6000;
  INFO("seed ", seed);
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  db->write([&](keel::write_txn& tx) { m.reserve(tx, 14000); });
  kf::map_root rt = read_root(*db, m.root());
  REQUIRE_MESSAGE(rt.cur.groups == 1024, describe(rt));
  REQUIRE(rt.old.groups == 0);
  // 16 keys homed in each of groups 0..895: 14336 slots used = exactly 7/8.
  std::vector<std::vector<u64>> bucket(896);
  u64 filled = 0;
  for (u64 x = 1; filled < 896; ++x) {
    const u64 k = mix(x ^ seed);
    const u64 gi = home_of(key_hash(&k, 8, rt.seed), 1024);
    if (gi < 896 && bucket[gi].size() < 16) {
      bucket[gi].push_back(k);
      if (bucket[gi].size() == 16) ++filled;
    }
  }
  db->write([&](keel::write_txn& tx) {
    for (auto& b : bucket)
      for (u64 k : b) REQUIRE(m.insert(tx, k, k + 1));
  });
  rt = read_root(*db, m.root());
  // Also proves that the hash computed here is the engine's.
  REQUIRE_MESSAGE((rt.cur.groups == 1024 && rt.cur.used == 14336 && rt.cur.max_probe == 0 && rt.old.groups == 0),
                  describe(rt));
  // Erase all but one key in each of groups 888..895: the full groups keep tombstones.
  model_t<u64, u64> model;
  db->write([&](keel::write_txn& tx) {
    for (u64 gi = 0; gi < 896; ++gi)
      for (std::size_t j = 0; j < 16; ++j) {
        const u64 k = bucket[gi][j];
        if (gi >= 888 && j == 0)
          model[k] = k + 1;
        else
          REQUIRE(m.erase(tx, k));
      }
  });
  rt = read_root(*db, m.root());
  REQUIRE_MESSAGE((rt.size == 8 && rt.cur.used == 14336), describe(rt));
  // Insert fresh keys, one transaction each, then 2000 in one.
  std::mt19937_64 rng(seed);
  std::string failure;
  for (int i = 0; i < 200 && failure.empty(); ++i) {
    const u64 k = rng() | 1;
    try {
      db->write([&](keel::write_txn& tx) {
        if (!m.put(tx, k, k + 1)) throw std::runtime_error("put of a new key returned false");
      });
      model[k] = k + 1;
    } catch (const std::exception& e) {
      failure = "insert #" + std::to_string(i) + " after the shrink threw: " + std::string(e.what()) + " (root before: " +
                describe(read_root(*db, m.root())) + ")";
    }
  }
  CHECK_MESSAGE(failure.empty(), failure);
  if (failure.empty()) {
    db->write([&](keel::write_txn& tx) {
      for (int i = 0; i < 2000; ++i) {
        const u64 k = rng() | 1;
        m.put(tx, k, k + 1);
        model[k] = k + 1;
      }
    });
  }
  // Whatever happened, the map must hold exactly the model.
  CHECK(m.size() == model.size());
  for (const auto& [k, v] : model) CHECK_MESSAGE(m.get(k) == std::optional<u64>(v), "key ", k);
  const std::string bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(std::forward<decltype(f)>(f)); }, model);
  CHECK_MESSAGE(bad.empty(), bad);
  MESSAGE("after the shrink: ", describe(read_root(*db, m.root())));
  db->close();
}

// ====================================================================== reserve

TEST_CASE("reserve(n) then n inserts: no further resize, no arena growth") {
  keel_test::temp_dir dir;
  const u64 seed = base_seed() ^ 0x7000;
  INFO("seed ", seed);
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::batch));
  for (const u64 pre : {u64{0}, u64{3000}}) {
    CAPTURE(pre);
    const std::string name = "r" + std::to_string(pre);
    auto m = keel::hash_map<u64, u64>::open(*db, name);
    u64 next = seed + pre * 1000003;
    db->write([&](keel::write_txn& tx) {
      for (u64 i = 0; i < pre; ++i) REQUIRE(m.insert(tx, mix(next++), i));
    });
    constexpr u64 kN = 60'000;
    db->write([&](keel::write_txn& tx) { m.reserve(tx, pre + kN); });
    const kf::map_root r0 = read_root(*db, m.root());
    INFO("after reserve: ", describe(r0));
    CHECK(r0.cur.groups * kf::kGroup * 7 / 8 >= pre + kN);
    const u64 arena0 = db->info().arena_used;
    u64 inserted = 0;
    for (u64 at = 0; at < kN; at += 5000)
      db->write([&](keel::write_txn& tx) {
        for (u64 i = 0; i < 5000; ++i) {
          REQUIRE(m.insert(tx, mix(next++), i));
          ++inserted;
        }
        const kf::map_root r = tx.get(keel::ref<kf::map_root>{m.root()});
        if (r.cur.groups != r0.cur.groups)
          FAIL("the table was resized after reserve(", pre + kN, ") at insert ", inserted, ": ", describe(r));
      });
    const kf::map_root r1 = read_root(*db, m.root());
    const u64 arena1 = db->info().arena_used;
    CHECK_MESSAGE(r1.cur.groups == r0.cur.groups, describe(r1));
    CHECK(r1.old.groups == 0);  // a pre-existing table has finished moving
    CHECK_MESSAGE(arena1 <= arena0 + 2 * 4096, "arena grew from ", arena0, " to ", arena1, " after reserve");
    CHECK(m.size() == pre + kN);
    u64 n = 0;
    m.for_each([&](const u64&, const u64&) { ++n; });
    CHECK(n == pre + kN);
    // A smaller reserve changes nothing.
    db->write([&](keel::write_txn& tx) { m.reserve(tx, 10); });
    CHECK(read_root(*db, m.root()).cur.groups == r0.cur.groups);
    CHECK(db->info().arena_used == arena1);
  }
  // An impossible reserve is invalid_argument.
  auto m = keel::hash_map<u64, u64>::open(*db, "big");
  auto e = keel_test::catch_error([&] { db->write([&](keel::write_txn& tx) { m.reserve(tx, u64{1} << 40); }); });
  REQUIRE(e.has_value());
  CHECK(e->code() == keel::errc::invalid_argument);
  db->close();
}

// A rejected reserve() (invalid_argument, caught) inside a transaction that
// then commits must leave the map as it was — also when a resize is running,
// where every write first moves part of the old table. (keel 7e4cb7e moved 4
// groups before validating n and never stored the root: after commit the
// moved entries were in both tables, walked twice, and came back after erase.)
TEST_CASE("a rejected reserve() in the middle of a resize leaves the map consistent") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::batch));
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  model_t<u64, u64> model;
  u64 next = 1;
  // Grow until a commit leaves a resize running.
  kf::map_root rt{};
  for (int i = 0; i < 100000; ++i) {
    db->write([&](keel::write_txn& tx) {
      const u64 k = mix(next++);
      m.put(tx, k, k);
      model[k] = k;
    });
    rt = read_root(*db, m.root());
    if (rt.old.groups >= 64) break;  // a resize just started: migrate is 0
  }
  REQUIRE_MESSAGE(rt.old.groups != 0, describe(rt));
  INFO("before: ", describe(rt));
  db->write([&](keel::write_txn& tx) {
    auto e = keel_test::catch_error([&] { m.reserve(tx, u64{1} << 40); });
    REQUIRE(e.has_value());
    CHECK(e->code() == keel::errc::invalid_argument);
    // the transaction goes on and commits
  });
  const kf::map_root after = read_root(*db, m.root());
  INFO("after: ", describe(after));
  std::string bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(std::forward<decltype(f)>(f)); }, model);
  CHECK_MESSAGE(bad.empty(), "lock-free for_each after the rejected reserve: ", bad);
  db->write([&](keel::write_txn& tx) {
    bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(tx, std::forward<decltype(f)>(f)); }, model);
    CHECK_MESSAGE(bad.empty(), "for_each(tx) after the rejected reserve: ", bad);
  });
  // Erase everything: nothing may come back.
  db->write([&](keel::write_txn& tx) {
    for (const auto& [k, v] : model) CHECK(m.erase(tx, k));
  });
  u64 back = 0;
  for (const auto& [k, v] : model)
    if (m.contains(k)) ++back;
  CHECK_MESSAGE(back == 0, back, " erased keys are still (or again) present after the rejected reserve; ",
                describe(read_root(*db, m.root())));
  CHECK(m.size() == 0);
  u64 n = 0;
  m.for_each([&](const u64&, const u64&) { ++n; });
  CHECK_MESSAGE(n == 0, "for_each visits ", n, " entries of an empty map");
  db->close();
}

// errc::full from growth leaves the transaction usable (txn.h: alloc "throws
// errc::full ...; the transaction stays usable") and the map consistent.
// (keel 7e4cb7e leaked the new table's control block when its slot block
// failed, and, when the failure came from the long-probe resize, left the
// entry placed but uncounted: a ghost seen by for_each, not by size().)
TEST_CASE("errc::full while the map grows: the transaction stays usable, the map consistent") {
  keel_test::temp_dir dir;
  keel::options o = opts_for(keel::durability::checkpoint);
  // 20 MiB: the table of 65536 groups (16 MiB of slots) is a request below
  // max_size that no longer fits behind the cursor: errc::full.
  o.max_size = 20_MiB;
  auto db = keel::store::open(dir.path("s"), o);
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  const u64 live_empty = db->info().live_bytes;  // catalog page, root, a one-group table
  model_t<u64, u64> model;
  u64 next = 1;
  bool full = false;
  for (int t = 0; t < 2000 && !full; ++t) {
    db->write([&](keel::write_txn& tx) {
      for (int i = 0; i < 500; ++i) {
        const u64 k = mix(next++);
        try {
          const bool added = m.put(tx, k, k * 3);
          if (!added) FAIL("put of a new key returned false");
          model[k] = k * 3;
        } catch (const keel::error& e) {
          REQUIRE_MESSAGE(e.code() == keel::errc::full, std::string(e.what()));
          full = true;
          break;
        }
      }
      // the rest of the transaction: erase a few keys, commit
      if (full) {
        int erased = 0;
        for (auto it = model.begin(); it != model.end() && erased < 100; ++erased) {
          REQUIRE(m.erase(tx, it->first));
          it = model.erase(it);
        }
      }
    });
  }
  REQUIRE_MESSAGE(full, "the store never filled up");
  MESSAGE("full at ", model.size(), " entries: ", describe(read_root(*db, m.root())));
  std::string bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(std::forward<decltype(f)>(f)); }, model);
  CHECK_MESSAGE(bad.empty(), bad);
  CHECK(m.size() == model.size());
  u64 wrong = 0;
  for (const auto& [k, v] : model)
    if (m.get(k) != std::optional<u64>(v)) ++wrong;
  CHECK(wrong == 0);
  // Still usable after the failure: erase half, insert some back.
  std::vector<u64> ks;
  for (const auto& [k, v] : model) ks.push_back(k);
  db->write([&](keel::write_txn& tx) {
    for (std::size_t i = 0; i < ks.size(); i += 2) {
      REQUIRE(m.erase(tx, ks[i]));
      model.erase(ks[i]);
    }
    for (int i = 0; i < 1000; ++i) {
      const u64 k = mix(next++);
      REQUIRE(m.insert(tx, k, 5));
      model[k] = 5;
    }
  });
  bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(std::forward<decltype(f)>(f)); }, model);
  CHECK_MESSAGE(bad.empty(), bad);
  db->close();
  db = keel::store::open(dir.path("s"), o);
  auto m2 = keel::hash_map<u64, u64>::open(*db, kName);
  bad = compare_walk<u64, u64>([&](auto&& f) { m2.for_each(std::forward<decltype(f)>(f)); }, model);
  CHECK_MESSAGE(bad.empty(), "after reopen: ", bad);
  const keel::store_info in = db->info();
  CHECK(in.live_bytes + in.free_bytes == in.arena_used - kf::kArenaOffset);
  // clear() returns the tables' space: back to the empty map's live bytes
  // (a block allocated by the failed growth and never freed would show here).
  db->write([&](keel::write_txn& tx) { m2.clear(tx); });
  const u64 live_after = db->info().live_bytes;
  CHECK_MESSAGE(live_after == live_empty, "after clear() ", live_after, " bytes are live, an empty map had ", live_empty,
                " (", static_cast<std::int64_t>(live_after - live_empty), " bytes leaked)");
  db->close();
}

// ====================================================================== semantics

TEST_CASE("put / insert / update / erase / contains semantics, in a resize and across tables") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::batch));
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  CHECK(m.size() == 0);
  CHECK_FALSE(m.get(1).has_value());
  CHECK_FALSE(m.contains(1));
  db->write([&](keel::write_txn& tx) {
    CHECK(m.put(tx, 1, 10));         // new
    CHECK_FALSE(m.put(tx, 1, 11));   // assign
    CHECK(m.get(tx, 1) == std::optional<u64>(11));
    CHECK_FALSE(m.insert(tx, 1, 12));  // no overwrite
    CHECK(m.get(tx, 1) == std::optional<u64>(11));
    CHECK(m.insert(tx, 2, 20));
    int calls = 0;
    CHECK_FALSE(m.update(tx, 3, [&](u64&) { ++calls; }));
    CHECK(calls == 0);
    CHECK(m.update(tx, 2, [&](u64& v) {
      ++calls;
      CHECK(v == 20);
      v = 21;
    }));
    CHECK(calls == 1);
    CHECK(m.get(tx, 2) == std::optional<u64>(21));
    // update returning something: the callable's result is ignored
    CHECK(m.update(tx, 2, [](u64& v) { return ++v; }));
    CHECK(m.get(tx, 2) == std::optional<u64>(22));
    CHECK(m.size(tx) == 2);
    CHECK_FALSE(m.erase(tx, 3));
    CHECK(m.erase(tx, 1));
    CHECK_FALSE(m.erase(tx, 1));
    CHECK_FALSE(m.contains(tx, 1));
    CHECK(m.size(tx) == 1);
    // not visible outside before commit
    CHECK_FALSE(m.contains(2));
  });
  CHECK(m.get(2) == std::optional<u64>(22));
  CHECK_FALSE(m.contains(1));
  CHECK(m.size() == 1);
  // An exception out of update's callable leaves the value alone.
  CHECK_THROWS_AS(db->write([&](keel::write_txn& tx) { m.update(tx, 2, [](u64&) { throw deliberate{}; }); }),
                  deliberate);
  CHECK(m.get(2) == std::optional<u64>(22));
  CHECK_THROWS_AS(db->write([&](keel::write_txn& tx) {
    m.update(tx, 2, [](u64& v) {
      v = 100;
      throw deliberate{};
    });
  }),
                  deliberate);
  CHECK(m.get(2) == std::optional<u64>(22));
  db->close();
}

// Same, but the keys are spread over both tables of a running resize: every
// operation on keys still in the old table and keys already moved.
TEST_CASE("operations on keys in the old and the new table of a running resize") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  model_t<u64, u64> model;
  u64 next = 1, mid_seen = 0;
  int checked_mid = 0;
  std::mt19937_64 rng(base_seed() ^ 0x7100);
  while (model.size() < 16000) {
    // three inserts per transaction: commits land at many points of every move
    db->write([&](keel::write_txn& tx) {
      for (int i = 0; i < 3; ++i) {
        const u64 k = mix(next++);
        REQUIRE(m.insert(tx, k, k));
        model[k] = k;
      }
    });
    const kf::map_root rt = read_root(*db, m.root());
    if (rt.old.groups == 0) continue;
    ++mid_seen;
    ++checked_mid;
    // In one transaction: update, put, insert, erase of existing keys (some
    // still in the old table), each checked right away, then after commit.
    std::vector<u64> ks;
    for (const auto& [k, v] : model) ks.push_back(k);
    db->write([&](keel::write_txn& tx) {
      for (int j = 0; j < 8; ++j) {
        const u64 k = ks[rng() % ks.size()];
        if (!model.count(k)) continue;
        switch (j % 4) {
          case 0:
            REQUIRE(m.update(tx, k, [](u64& v) { v ^= 0xff00; }));
            model[k] ^= 0xff00;
            break;
          case 1:
            REQUIRE_FALSE(m.put(tx, k, k + 7));
            model[k] = k + 7;
            break;
          case 2:
            REQUIRE_FALSE(m.insert(tx, k, 0));
            break;
          default:
            REQUIRE(m.erase(tx, k));
            REQUIRE_FALSE(m.contains(tx, k));
            model.erase(k);
        }
        if (model.count(k)) REQUIRE(m.get(tx, k) == std::optional<u64>(model[k]));
      }
    });
    for (const auto& [k, v] : model) REQUIRE_MESSAGE(m.get(k) == std::optional<u64>(v), describe(rt));
    REQUIRE(m.size() == model.size());
    const std::string bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(std::forward<decltype(f)>(f)); }, model);
    REQUIRE_MESSAGE(bad.empty(), bad, " (", describe(rt), ")");
  }
  MESSAGE("old/new table operations: ", checked_mid, " checks during a resize (", mid_seen, " commits left one running)");
  CHECK_MESSAGE(checked_mid >= 20, "only ", checked_mid, " checks during a resize");
  db->close();
}

// ====================================================================== for_each

TEST_CASE("for_each: each key exactly once, idle and during resizes; early stop") {
  keel_test::temp_dir dir;
  const u64 seed = base_seed() ^ 0x8000;
  INFO("seed ", seed);
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  // empty map
  int calls = 0;
  m.for_each([&](const u64&, const u64&) { ++calls; });
  CHECK(calls == 0);
  db->write([&](keel::write_txn& tx) { m.for_each(tx, [&](const u64&, const u64&) { ++calls; }); });
  CHECK(calls == 0);

  model_t<u64, u64> model;
  std::mt19937_64 rng(seed);
  int mid_checks = 0, idle_checks = 0;
  // Grow to 40k in small transactions (inserts and some erases); after each
  // one that leaves a resize running, and every 25th otherwise, walk both ways.
  for (int t = 0; model.size() < 40000; ++t) {
    db->write([&](keel::write_txn& tx) {
      const int n = 1 + static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) {
        const u64 k = rng() % 200000;
        if (rng() % 5 == 0) {
          m.erase(tx, k);
          model.erase(k);
        } else {
          m.put(tx, k, k * 7 + static_cast<u64>(t));
          model[k] = k * 7 + static_cast<u64>(t);
        }
      }
    });
    const kf::map_root rt = read_root(*db, m.root());
    const bool mid = rt.old.groups != 0;
    if (!mid && t % 25) continue;
    (mid ? mid_checks : idle_checks)++;
    std::string bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(std::forward<decltype(f)>(f)); }, model);
    REQUIRE_MESSAGE(bad.empty(), "lock-free, transaction ", t, ": ", bad, " (", describe(rt), ")");
    db->write([&](keel::write_txn& tx) {
      bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(tx, std::forward<decltype(f)>(f)); }, model);
      REQUIRE_MESSAGE(bad.empty(), "in a transaction, ", t, ": ", bad, " (", describe(rt), ")");
    });
    // Inside a transaction that itself just started a resize (uncommitted).
    if (mid && mid_checks % 10 == 0) {
      auto tx = db->begin_write();
      model_t<u64, u64> scratch = model;
      for (int i = 0; i < 300; ++i) {
        const u64 k = 1'000'000 + rng() % 1'000'000;
        m.put(tx, k, 1);
        scratch[k] = 1;
      }
      bad = compare_walk<u64, u64>([&](auto&& f) { m.for_each(tx, std::forward<decltype(f)>(f)); }, scratch);
      REQUIRE_MESSAGE(bad.empty(), "in an uncommitted transaction: ", bad);
      tx.abort();
    }
  }
  MESSAGE("for_each: ", mid_checks, " walks during a resize, ", idle_checks, " idle");
  CHECK(mid_checks >= 20);
  // Early stop: false stops at once.
  for (int stop_after : {1, 2, 7, 1000}) {
    CAPTURE(stop_after);
    int n = 0;
    m.for_each([&](const u64&, const u64&) { return ++n < stop_after; });
    CHECK(n == stop_after);
    n = 0;
    db->write([&](keel::write_txn& tx) { m.for_each(tx, [&](const u64&, const u64&) { return ++n < stop_after; }); });
    CHECK(n == stop_after);
  }
  // A callback that reads the map (lock-free) is allowed.
  u64 n = 0, mism = 0;
  m.for_each([&](const u64& k, const u64& v) {
    ++n;
    if (m.get(k) != std::optional<u64>(v)) ++mism;
  });
  CHECK(n == model.size());
  CHECK(mism == 0);
  db->close();
}

// Lock-free walks and lookups from threads while the writer grows, shrinks
// and clears the map: never a torn or foreign value, never a key twice in a
// walk, every pinned key (present throughout) seen exactly once.
TEST_CASE("for_each and get from threads while a writer resizes the map") {
  struct val {
    u64 key, version, check;
  };
  auto check_of = [](u64 k, u64 ver) { return mix(k * 0x9E3779B97F4A7C15ull ^ mix(ver + 17)); };
  keel_test::temp_dir dir;
  const u64 seed = base_seed() ^ 0x9000;
  INFO("seed ", seed);
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto m = keel::hash_map<u64, val>::open(*db, kName);
  constexpr u64 kPinned = 300;
  auto pinned_key = [](u64 i) { return (u64{1} << 40) + i; };
  db->write([&](keel::write_txn& tx) {
    for (u64 i = 0; i < kPinned; ++i) m.put(tx, pinned_key(i), val{pinned_key(i), 0, check_of(pinned_key(i), 0)});
  });
  std::atomic<bool> stop{false};
  std::atomic<u64> walks{0}, gets{0}, walk_entries{0};
  std::mutex mu;
  std::string error;
  auto report = [&](const std::string& e) {
    std::lock_guard<std::mutex> g(mu);
    if (error.empty()) error = e;
    stop = true;
  };
  auto reader = [&](int id) {
    std::mt19937_64 rng(seed + static_cast<u64>(id));
    try {
      while (!stop) {
        std::unordered_set<u64> seen;
        u64 pinned_seen = 0;
        std::string bad;
        m.for_each([&](const u64& k, const val& v) {
          if (!bad.empty()) return false;
          if (v.key != k || v.check != check_of(k, v.version)) bad = "walk: key " + std::to_string(k) + " has a bad value";
          if (!seen.insert(k).second) bad = "walk: key " + std::to_string(k) + " visited twice";
          if (k >= pinned_key(0) && k < pinned_key(kPinned)) ++pinned_seen;
          return true;
        });
        if (bad.empty() && pinned_seen != kPinned)
          bad = "walk saw " + std::to_string(pinned_seen) + " of the " + std::to_string(kPinned) + " pinned keys";
        if (!bad.empty()) return report("reader " + std::to_string(id) + ": " + bad);
        ++walks;
        walk_entries += seen.size();
        for (int i = 0; i < 200; ++i) {
          const bool pin = i % 4 == 0;
          const u64 k = pin ? pinned_key(rng() % kPinned) : rng() % 300000;
          const std::optional<val> v = m.get(k);
          if (pin && !v) return report("pinned key " + std::to_string(k) + " not found");
          if (v && (v->key != k || v->check != check_of(k, v->version)))
            return report("get(" + std::to_string(k) + ") returned a bad value");
          ++gets;
        }
      }
    } catch (const std::exception& e) {
      report(std::string("reader threw: ") + std::string(e.what()));
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);
  std::mt19937_64 rng(seed);
  const auto t0 = clk::now();
  u64 version = 0, clears = 0, mid = 0, commits = 0;
  try {
    while (secs_since(t0) < 2.5 && !stop) {
      db->write([&](keel::write_txn& tx) {
        ++version;
        if (version % 700 == 0) {  // clear and pin again
          m.clear(tx);
          for (u64 i = 0; i < kPinned; ++i)
            m.put(tx, pinned_key(i), val{pinned_key(i), version, check_of(pinned_key(i), version)});
          ++clears;
          return;
        }
        const int n = 1 + static_cast<int>(rng() % 150);
        for (int i = 0; i < n; ++i) {
          const u64 r = rng() % 100;
          if (r < 70) {
            const u64 k = rng() % 300000;
            m.put(tx, k, val{k, version, check_of(k, version)});
          } else if (r < 95) {
            m.erase(tx, rng() % 300000);
          } else {
            const u64 k = pinned_key(rng() % kPinned);
            m.put(tx, k, val{k, version, check_of(k, version)});
          }
        }
      });
      ++commits;
      if (read_root(*db, m.root()).old.groups) ++mid;
    }
  } catch (const std::exception& e) {
    report(std::string("writer threw: ") + std::string(e.what()));
  }
  stop = true;
  r1.join();
  r2.join();
  CHECK_MESSAGE(error.empty(), error);
  CHECK(walks > 0);
  MESSAGE("threads: ", commits, " commits (", mid, " left a resize running, ", clears, " clears), ", walks.load(),
          " walks (", walk_entries.load(), " entries), ", gets.load(), " gets");
  db->close();
}

// ====================================================================== types

// Two 8-byte value types that differ only in their type_name.
struct price {
  u64 ticks;
};
struct volume {
  u64 shares;
};
template <>
struct keel::type_name<price> {
  static std::string_view get() { return "test/price"; }
};
template <>
struct keel::type_name<volume> {
  static std::string_view get() { return "test/volume"; }
};

TEST_CASE("get after close: errc::invalid_argument, although the handle cached its layout") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s"), keel_test::small_opts());
  auto m = keel::hash_map<u64, u64>::open(*db, "m");
  db->write([&](keel::write_txn& tx) { m.put(tx, 5, 50); });
  REQUIRE(m.get(5) == std::optional<u64>(50));  // fills the cache: the next get would need no read_view
  REQUIRE(m.get(5) == std::optional<u64>(50));
  db->close();  // unmaps the file
  for (const u64 k : {u64{5}, u64{6}}) {
    auto e = keel_test::catch_error([&] { (void)m.get(k); });
    REQUIRE(e.has_value());
    CHECK_MESSAGE(e->code() == keel::errc::invalid_argument, std::string(e->what()));
  }
}

TEST_CASE("opening with a type that differs only in name says what the map holds") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s");
  auto db = keel::store::open(path, keel_test::small_opts());
  keel::hash_map<u64, price>::open(*db, "p");
  const auto have = keel::type_desc::of<price>().describe(), want = keel::type_desc::of<volume>().describe();
  REQUIRE(have != want);  // the descriptions tell the two apart
  auto e = keel_test::catch_error([&] { keel::hash_map<u64, volume>::open(*db, "p"); });
  REQUIRE(e.has_value());
  CHECK(e->code() == keel::errc::type_mismatch);
  const std::string msg = e->what();
  CHECK_MESSAGE(msg.find("holds hash_map<u64, " + have + ">, opened as hash_map<u64, " + want + ">") != std::string::npos, msg);
  db->close();
  auto ro = keel::store::open(path, keel_test::read_only_opts());
  e = keel_test::catch_error([&] { keel::hash_map<u64, volume>::open(*ro, "p"); });
  REQUIRE(e.has_value());
  CHECK(e->code() == keel::errc::type_mismatch);
  CHECK_MESSAGE(std::string(e->what()).find("holds hash_map<u64, " + have + ">") != std::string::npos, e->what());
  e = keel_test::catch_error([&] { keel::tree_map<u64, price>::open(*ro, "p"); });
  REQUIRE(e.has_value());
  CHECK(e->code() == keel::errc::type_mismatch);
  CHECK_MESSAGE(std::string(e->what()).find("holds hash_map<u64, " + have + ">, opened as tree_map<") != std::string::npos,
                e->what());
}

TEST_CASE("open with other types, a raw root, read-only stores") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s");
  {
    auto db = keel::store::open(path, keel_test::small_opts());
    auto m = keel::hash_map<u64, u64>::open(*db, "m");
    db->write([&](keel::write_txn& tx) { m.put(tx, 5, 50); });
    db->write([&](keel::write_txn& tx) {
      tx.open_root("raw", keel::kind::raw, keel::type_desc::of<u64>(), keel::type_desc::of<u64>());
      tx.set_root("raw", tx.create<u64>(7).off);
    });
    auto expect_mismatch = [&](auto&& f, const std::string& what) {
      auto e = keel_test::catch_error(f);
      REQUIRE_MESSAGE(e.has_value(), what, ": no error");
      CHECK_MESSAGE(e->code() == keel::errc::type_mismatch, what, ": ", std::string(e->what()));
    };
    expect_mismatch([&] { keel::hash_map<u64, u32>::open(*db, "m"); }, "other value type");
    expect_mismatch([&] { keel::hash_map<u32, u64>::open(*db, "m"); }, "other key type");
    expect_mismatch([&] { keel::hash_map<std::int64_t, u64>::open(*db, "m"); }, "signed key of the same size");
    expect_mismatch([&] { keel::hash_map<u64, std::int64_t>::open(*db, "m"); }, "signed value of the same size");
    expect_mismatch([&] { keel::hash_map<u64, double>::open(*db, "m"); }, "double value");
    expect_mismatch([&] { keel::hash_map<k16, u64>::open(*db, "m"); }, "16-byte key");
    expect_mismatch([&] { keel::hash_map<u64, u64>::open(*db, "raw"); }, "raw root, writable");
    expect_mismatch(
        [&] {
          db->write([&](keel::write_txn& tx) { keel::hash_map<u64, u64>::open(*db, tx, "raw"); });
        },
        "raw root, in a transaction");
    // the map is untouched by the failed opens
    CHECK(keel::hash_map<u64, u64>::open(*db, "m").get(5) == std::optional<u64>(50));
    // open inside a caller's transaction
    db->write([&](keel::write_txn& tx) {
      auto m2 = keel::hash_map<u64, u64>::open(*db, tx, "m2");
      CHECK(m2.put(tx, 1, 2));
      CHECK(m2.get(tx, 1) == std::optional<u64>(2));
    });
    CHECK(keel::hash_map<u64, u64>::open(*db, "m2").get(1) == std::optional<u64>(2));
    db->close();
  }
  auto ro = keel::store::open(path, keel_test::read_only_opts());
  auto m = keel::hash_map<u64, u64>::open(*ro, "m");
  CHECK(m.get(5) == std::optional<u64>(50));
  CHECK(m.size() == 1);
  u64 n = 0;
  m.for_each([&](const u64& k, const u64& v) {
    ++n;
    CHECK(k == 5);
    CHECK(v == 50);
  });
  CHECK(n == 1);
  auto e = keel_test::catch_error([&] { keel::hash_map<u64, u64>::open(*ro, "missing"); });
  REQUIRE(e.has_value());
  CHECK_MESSAGE(e->code() == keel::errc::invalid_argument, std::string(e->what()));
  e = keel_test::catch_error([&] { keel::hash_map<u64, u64>::open(*ro, "raw"); });
  REQUIRE(e.has_value());
  CHECK_MESSAGE(e->code() == keel::errc::type_mismatch, std::string(e->what()));
  e = keel_test::catch_error([&] { keel::hash_map<u64, u32>::open(*ro, "m"); });
  REQUIRE(e.has_value());
  CHECK_MESSAGE(e->code() == keel::errc::type_mismatch, std::string(e->what()));
  e = keel_test::catch_error([&] { ro->begin_write(); });
  REQUIRE(e.has_value());
  CHECK(e->code() == keel::errc::read_only);
  ro->close();
}

namespace {
template <class K, class V>
void sized_run(const std::string& label, u64 ops, std::function<K(std::mt19937_64&)> kg) {
  keel_test::temp_dir dir;
  typename differ<K, V>::cfg c;
  c.label = label;
  c.mode = keel::durability::batch;
  c.seed = base_seed() ^ std::hash<std::string>{}(label);
  c.ops = ops;
  c.txn_min = 1;
  c.txn_max = 200;
  c.reopens = 1;
  differ<K, V> d(c, dir.path("s"), std::move(kg));
  d.run();
  const kf::map_root rt = read_root(d.db(), d.m().root());
  CHECK(rt.key_size == sizeof(K));
  CHECK(rt.value_size == sizeof(V));
  MESSAGE(d.stats());
  d.close();
}
}  // namespace

TEST_CASE("keys and values of many sizes") {
  const u64 base = std::min<u64>(total_ops() / 40, 40000);
  sized_run<u8, u8>("u8 -> u8 (every key)", base, [](std::mt19937_64& r) { return static_cast<u8>(r()); });
  sized_run<u32, u64>("u32 -> u64", base, [](std::mt19937_64& r) { return static_cast<u32>(r() % 20000); });
  sized_run<k16, blob<200>>(
      "k16 -> 200 bytes", base / 2,
      [](std::mt19937_64& r) {
        const u64 i = r() % 3000;
        return k16{i, ~i};
      });
  sized_run<u64, blob<3000>>("u64 -> 3000 bytes", base / 8, [](std::mt19937_64& r) { return r() % 1200; });
  sized_run<k16, blob<3984>>(
      "k16 -> 3984 bytes (4000-byte slot)", base / 10,
      [](std::mt19937_64& r) {
        const u64 i = r() % 600;
        return k16{i << 32, i};
      });
  sized_run<blob<24>, u32>(
      "24-byte key -> u32", base / 2,
      [](std::mt19937_64& r) {
        blob<24> b{};
        b.b[r() % 24] = static_cast<unsigned char>(r() % 64);  // 24 positions x 64 values
        return b;
      });
}

// ====================================================================== bad bytes on disk

namespace {


// Builds a closed store with a map of n u64 -> u64 entries; returns its root offset.
u64 build_map(const std::string& path, u64 n, model_t<u64, u64>& model, u64 seed) {
  auto db = keel::store::open(path, keel_test::small_opts());
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  db->write([&](keel::write_txn& tx) {
    for (u64 i = 0; i < n; ++i) {
      const u64 k = mix(seed + i);
      m.put(tx, k, i);
      model[k] = i;
    }
  });
  db->close();
  auto ro = keel::store::open(path, keel_test::read_only_opts());
  const u64 root = ro->read([](const keel::read_view& v) { return v.find(kName)->root; });
  ro->close();
  return root;
}

}  // namespace

TEST_CASE("a corrupt map root block gives errc::corrupt, never a crash") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s");
  model_t<u64, u64> model;
  const u64 root = build_map(path, 5000, model, base_seed());
  const keel_test::store_files pristine = keel_test::read_store(path);
  kf::map_root good;
  {
    const std::string& f = pristine.data;
    REQUIRE(f.size() >= root + sizeof good);
    std::memcpy(&good, f.data() + root, sizeof good);
  }
  REQUIRE(std::memcmp(good.magic, kf::kMapMagic, 8) == 0);
  INFO("root at ", root, ": ", describe(good));
  const u64 some_key = model.begin()->first;

  // open_fails: open itself checks the root, every read fails.
  // reads_fail: table offsets outside the file: open may report it, else
  //   every lookup of a present key and every walk follows one and fails.
  // no_crash: offsets near 2^64 (they wrap around when indexed): open may
  //   report it, else reads may land in the arena and return garbage
  //   (allowed), but must not crash; errors, if any, are corrupt.
  // lenient: open reports it; a handle opened before the damage may still
  //   answer lookups that never depend on the damaged field (e.g. cur.used,
  //   or the old table when the key is found in the current one): it must
  //   then answer correctly, or throw corrupt.
  enum class expect { open_fails, lenient, reads_fail, no_crash };
  struct mutation {
    std::string what;
    std::function<void(kf::map_root&)> f;
    expect e;
  };
  const mutation muts[] = {
      {"magic flipped", [](kf::map_root& r) { r.magic[0] ^= 0xff; }, expect::open_fails},
      {"cur.groups = 3 (not a power of two)", [](kf::map_root& r) { r.cur.groups = 3; }, expect::open_fails},
      {"cur.groups = 0", [](kf::map_root& r) { r.cur.groups = 0; }, expect::open_fails},
      {"cur.groups = 2^29 (above the maximum)", [](kf::map_root& r) { r.cur.groups = u64{1} << 29; },
       expect::open_fails},
      {"cur.groups = 2^63", [](kf::map_root& r) { r.cur.groups = u64{1} << 63; }, expect::open_fails},
      {"cur.max_probe = groups", [](kf::map_root& r) { r.cur.max_probe = r.cur.groups; }, expect::open_fails},
      {"cur.max_probe = ~0", [](kf::map_root& r) { r.cur.max_probe = ~u64{0}; }, expect::open_fails},
      {"cur.used > slots", [](kf::map_root& r) { r.cur.used = r.cur.groups * 16 + 1; }, expect::lenient},
      {"cur.ctrl = 0", [](kf::map_root& r) { r.cur.ctrl = 0; }, expect::lenient},
      {"cur.slots = 0", [](kf::map_root& r) { r.cur.slots = 0; }, expect::lenient},
      {"key_size = 4", [](kf::map_root& r) { r.key_size = 4; }, expect::open_fails},
      {"value_size = 16", [](kf::map_root& r) { r.value_size = 16; }, expect::open_fails},
      {"old.groups = 3",
       [](kf::map_root& r) {
         r.old = r.cur;
         r.old.groups = 3;
       },
       expect::lenient},
      {"old table with migrate = old.groups",
       [](kf::map_root& r) {
         r.old = r.cur;
         r.migrate = r.old.groups;
       },
       expect::lenient},
      {"old.max_probe = old.groups",
       [](kf::map_root& r) {
         r.old = r.cur;
         r.old.max_probe = r.old.groups;
       },
       expect::lenient},
      {"cur.ctrl far outside the file", [](kf::map_root& r) { r.cur.ctrl = u64{1} << 45; }, expect::reads_fail},
      {"cur.slots far outside the file", [](kf::map_root& r) { r.cur.slots = u64{1} << 45; }, expect::reads_fail},
      {"cur.ctrl near 2^64", [](kf::map_root& r) { r.cur.ctrl = ~u64{0} - 8; }, expect::no_crash},
      {"cur.slots near 2^64", [](kf::map_root& r) { r.cur.slots = ~u64{0} - 4096; }, expect::no_crash},
  };
  for (const mutation& mu : muts) {
    CAPTURE(mu.what);
    // A read-only handle that looked a key up (caching the checked layout)
    // before the damage; bump: the damage also advanced the layout
    // generation, as any layout change by a writer does.
    auto damaged_after_open = [&](bool bump) {
      keel_test::write_store(path, pristine);
      auto st = keel::store::open(path, keel_test::read_only_opts());
      auto m = keel::hash_map<u64, u64>::open(*st, kName);
      REQUIRE(m.get(some_key) == std::optional<u64>(model[some_key]));
      kf::map_root bad = good;
      mu.f(bad);
      if (bump) bad.layout_gen = good.layout_gen + 1;
      keel_test::poke(path, root, &bad, sizeof bad);
      return std::pair{std::move(st), m};
    };
    // Same generation: lookups go by the layout the handle checked, so each
    // answers as before or throws corrupt (never wrong, never a crash);
    // open and keel::check report the damage.
    {
      auto [live, lm] = damaged_after_open(false);
      u64 answered = 0, wrong = 0, other_errors = 0;
      for (const auto& [k, v] : model) {
        std::optional<u64> got;
        if (auto e = keel_test::catch_error([&] { got = lm.get(k); })) {
          if (e->code() != keel::errc::corrupt) ++other_errors;
          continue;
        }
        ++answered;
        if (got != std::optional<u64>(v)) ++wrong;
      }
      CHECK_MESSAGE(wrong == 0, "same generation: ", wrong, " of ", answered, " answers wrong");
      CHECK_MESSAGE(other_errors == 0, "same generation: ", other_errors, " errors other than corrupt");
      live->close();
    }
    // Advanced generation: the handle checks the root again and must report it.
    auto [live, lm] = damaged_after_open(true);
    auto expect_corrupt = [&](auto&& f, const std::string& op) {
      auto e = keel_test::catch_error(f);
      REQUIRE_MESSAGE(e.has_value(), op, ": no error");
      CHECK_MESSAGE(e->code() == keel::errc::corrupt, op, ": ", keel::to_string(e->code()), ": ", std::string(e->what()));
    };
    auto corrupt_or_nothing = [&](auto&& f, const std::string& op) {
      auto e = keel_test::catch_error(f);
      if (e) CHECK_MESSAGE(e->code() == keel::errc::corrupt, op, ": ", keel::to_string(e->code()), ": ", std::string(e->what()));
    };
    // A map handle, or nullopt when open itself reports the damage (it may:
    // checking table extents at open is as good as at every read).
    using map_t = keel::hash_map<u64, u64>;
    auto open_map = [&](keel::store& st, const std::string& how) -> std::optional<map_t> {
      try {
        return map_t::open(st, kName);
      } catch (const keel::error& e) {
        CHECK_MESSAGE(e.code() == keel::errc::corrupt, how, ": ", keel::to_string(e.code()), ": ", std::string(e.what()));
        return std::nullopt;
      }
    };
    if (mu.e == expect::no_crash) {
      for (const auto& [k, v] : model) corrupt_or_nothing([&] { (void)lm.get(k); }, "get");
      corrupt_or_nothing([&] { lm.for_each([](const u64&, const u64&) {}); }, "for_each");
      live->close();
      auto db = keel::store::open(path, keel_test::small_opts());
      if (auto m = open_map(*db, "writable open")) {
        u64 errors = 0;
        for (int i = 0; i < 200; ++i)
          if (keel_test::catch_error(
                  [&] { db->write([&](keel::write_txn& tx) { (void)m->get(tx, mix(static_cast<u64>(i))); }); }))
            ++errors;
        MESSAGE(mu.what, ": ", errors, " of 200 get(tx) failed");
      }
      db->close();
      continue;
    }
    if (mu.e == expect::lenient) {
      u64 answered = 0, wrong = 0;
      std::string first;
      for (const auto& [k, v] : model) {
        std::optional<u64> got;
        if (keel_test::catch_error([&] { got = lm.get(k); })) continue;  // (the code is checked below)
        ++answered;
        if (got != std::optional<u64>(v) && wrong++ == 0)
          first = "get(" + std::to_string(k) + ") returned " + (got ? std::to_string(*got) : "<absent>") + ", not " +
                  std::to_string(v);
      }
      CHECK_MESSAGE(wrong == 0, "a handle opened before the damage answered ", wrong, " of ", model.size(),
                    " lookups of present keys wrongly instead of throwing corrupt, e.g. ", first);
      corrupt_or_nothing([&] { (void)lm.get(some_key); }, "get of a present key");
      corrupt_or_nothing([&] { (void)lm.get(12345); }, "get of an absent key");
      corrupt_or_nothing([&] { lm.for_each([](const u64&, const u64&) {}); }, "for_each");
      if (answered) MESSAGE(mu.what, ": a handle opened before the damage still answered ", answered, " lookups");
    }
    // Lookups of present keys reach the damage.
    if (mu.e != expect::lenient) expect_corrupt([&] { (void)lm.get(some_key); }, "get of a present key");
    if (mu.e != expect::lenient) {
      expect_corrupt([&] { (void)lm.contains(some_key); }, "contains of a present key");
      expect_corrupt([&] { lm.for_each([](const u64&, const u64&) {}); }, "for_each");
    }
    if (mu.e == expect::open_fails) {
      expect_corrupt([&] { (void)lm.get(12345); }, "get of an absent key");
      expect_corrupt([&] { (void)lm.size(); }, "size");
    } else if (mu.e == expect::reads_fail) {
      for (int i = 0; i < 200; ++i) corrupt_or_nothing([&] { (void)lm.get(mix(static_cast<u64>(i))); }, "get");
    }
    live->close();
    // Fresh opens.
    {
      auto ro = keel::store::open(path, keel_test::read_only_opts());
      if (mu.e == expect::open_fails || mu.e == expect::lenient) {
        expect_corrupt([&] { map_t::open(*ro, kName); }, "read-only open");
      } else if (auto m = open_map(*ro, "read-only open")) {
        expect_corrupt([&] { (void)m->get(some_key); }, "get after a read-only open");
      }
      ro->close();
    }
    {
      auto db = keel::store::open(path, keel_test::small_opts());
      if (mu.e == expect::open_fails || mu.e == expect::lenient) {
        expect_corrupt([&] { map_t::open(*db, kName); }, "writable open");
        expect_corrupt(
            [&] {
              db->write([&](keel::write_txn& tx) { map_t::open(*db, tx, kName); });
            },
            "open in a transaction");
      } else if (auto m = open_map(*db, "writable open")) {
        expect_corrupt([&] { db->write([&](keel::write_txn& tx) { (void)m->get(tx, some_key); }); }, "get(tx)");
        expect_corrupt([&] { db->write([&](keel::write_txn& tx) { m->put(tx, some_key, 1); }); }, "put");
        expect_corrupt([&] { db->write([&](keel::write_txn& tx) { m->erase(tx, some_key); }); }, "erase");
        expect_corrupt(
            [&] { db->write([&](keel::write_txn& tx) { m->for_each(tx, [](const u64&, const u64&) {}); }); },
            "for_each(tx)");
      }
      db->close();
    }
  }
  // The pristine file is still fine (the test's own sanity).
  keel_test::write_store(path, pristine);
  auto db = keel::store::open(path, keel_test::read_only_opts());
  auto m = keel::hash_map<u64, u64>::open(*db, kName);
  CHECK(m.size() == model.size());
  db->close();
}

TEST_CASE("corrupt control and slot bytes: reads and walks complete, no crash, no hang") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s");
  model_t<u64, u64> model;
  const u64 seed = base_seed() ^ 0xA000;
  INFO("seed ", seed);
  const u64 root = build_map(path, 6000, model, seed);
  const keel_test::store_files pristine = keel_test::read_store(path);
  kf::map_root good;
  std::memcpy(&good, pristine.data.data() + root, sizeof good);
  INFO(describe(good));
  REQUIRE(good.old.groups == 0);
  const u64 G = good.cur.groups, spp = 4096 / 16;  // u64 -> u64: 16-byte slots
  const u64 slot_bytes = (G * 16 + spp - 1) / spp * 4096;
  std::vector<u64> keys;
  for (const auto& [k, v] : model) keys.push_back(k);
  std::mt19937_64 rng(seed);

  struct damage {
    std::string what;
    std::function<void(std::string&)> f;
  };
  auto ctrl_at = [&](std::string& f, u64 i) -> char& { return f[good.cur.ctrl + i]; };
  const damage dmg[] = {
      {"10% of control bytes random",
       [&](std::string& f) {
         for (u64 i = 0; i < G * 16; ++i)
           if (rng() % 10 == 0) ctrl_at(f, i) = static_cast<char>(rng());
       }},
      {"every control byte full (no empty slot anywhere)",
       [&](std::string& f) {
         for (u64 i = 0; i < G * 16; ++i) ctrl_at(f, i) = static_cast<char>(0x80 | (i & 0x7f));
       }},
      {"every control byte full, max_probe = groups - 1",
       [&](std::string& f) {
         for (u64 i = 0; i < G * 16; ++i) ctrl_at(f, i) = static_cast<char>(0x80 | (rng() & 0x7f));
         kf::map_root r = good;
         r.cur.max_probe = G - 1;
         std::memcpy(f.data() + root, &r, sizeof r);
       }},
      {"every control byte 0xff",
       [&](std::string& f) {
         for (u64 i = 0; i < G * 16; ++i) ctrl_at(f, i) = static_cast<char>(0xff);
       }},
      {"slot bytes random",
       [&](std::string& f) {
         for (u64 i = 0; i < slot_bytes; ++i)
           if (rng() % 3 == 0) f[good.cur.slots + i] = static_cast<char>(rng());
       }},
      {"control and slot bytes random, fake resize state",
       [&](std::string& f) {
         for (u64 i = 0; i < G * 16; ++i) ctrl_at(f, i) = static_cast<char>(rng());
         for (u64 i = 0; i < slot_bytes; i += 1 + rng() % 16) f[good.cur.slots + i] = static_cast<char>(rng());
         kf::map_root r = good;
         r.old = r.cur;  // the same table twice, half moved
         r.migrate = G / 2;
         r.old.max_probe = G - 1;
         std::memcpy(f.data() + root, &r, sizeof r);
       }},
  };
  for (const damage& d : dmg) {
    CAPTURE(d.what);
    keel_test::write_store(path, pristine);
    std::string f = pristine.data;
    d.f(f);
    keel_test::write_file(path, f);
    const auto t0 = clk::now();
    u64 found = 0, corrupt = 0, wrong = 0;
    {
      auto ro = keel::store::open(path, keel_test::read_only_opts());
      auto m = keel::hash_map<u64, u64>::open(*ro, kName);
      for (int i = 0; i < 3000; ++i) {
        const u64 k = i % 2 ? keys[rng() % keys.size()] : rng();
        try {
          const std::optional<u64> v = m.get(k);
          if (v) ++found;
          if (v && (!model.count(k) || model[k] != *v)) ++wrong;
        } catch (const keel::error& e) {
          REQUIRE_MESSAGE(e.code() == keel::errc::corrupt, std::string(e.what()));
          ++corrupt;
        }
      }
      u64 visited = 0;
      auto e = keel_test::catch_error([&] { m.for_each([&](const u64&, const u64&) { ++visited; }); });
      if (e) CHECK_MESSAGE(e->code() == keel::errc::corrupt, std::string(e->what()));
      CHECK(visited <= G * 16 * 2);
      (void)keel_test::catch_error([&] { (void)m.size(); });
      ro->close();
    }
    {
      // The writer's view: walks and writes either work or throw corrupt.
      auto db = keel::store::open(path, keel_test::small_opts());
      auto m = keel::hash_map<u64, u64>::open(*db, kName);
      auto tx = db->begin_write();
      u64 visited = 0, write_errors = 0;
      auto e = keel_test::catch_error([&] { m.for_each(tx, [&](const u64&, const u64&) { ++visited; }); });
      if (e) CHECK_MESSAGE(e->code() == keel::errc::corrupt, std::string(e->what()));
      for (int i = 0; i < 300; ++i) {
        const u64 k = i % 2 ? keys[rng() % keys.size()] : rng();
        auto we = keel_test::catch_error([&] {
          if (i % 3 == 0)
            m.erase(tx, k);
          else
            m.put(tx, k, 1);
        });
        if (we) {
          ++write_errors;
          break;  // the transaction's state after a failed write is not used further
        }
      }
      tx.abort();
      db->close();
      MESSAGE(d.what, ": writer walk visited ", visited, ", ", write_errors, " write errors");
    }
    const double s = secs_since(t0);
    MESSAGE(d.what, ": ", found, " found (", wrong, " wrong), ", corrupt, " corrupt, ", s, " s");
    CHECK_MESSAGE(s < 60, "reads of a damaged table took ", s, " s");
  }
}
