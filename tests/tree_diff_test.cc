// B+tree differential tests: keel::tree_map and keel::bytes_tree against
// std::map under seeded random operations.
//
//  - tree_map<i64, u64> (224 cells per leaf) and a wide tree_map (132-byte
//    keys, 160-byte values: ~14 cells per leaf, ~30 children per branch, so
//    a few thousand entries make trees of height 3-4 whose branches split and
//    merge too). Operations: insert / put / append (also rejected appends) /
//    update / erase / erase_range / clear / get / size / for_each inside
//    transactions; get / lower_bound / upper_bound / first / last / size /
//    forward and reverse range scans with limits between them, lock-free.
//    Transactions of log-uniform sizes 1..2000, ~8 % aborted (abort(), an
//    exception out of store::write, a dropped write_txn): the model rolls back
//    from an undo log. Key regimes switch every few transactions: dense
//    ranges filled in random order and then mostly erased (erase_range and
//    single erases: merges, borrowing, root collapse, the tree emptied),
//    sequential appends, uniform random keys. Every durability mode, with
//    close + reopen twice per mode; detail::tree_check and a full walk every
//    few transactions, every key at each reopen and at the end.
//  - bytes_tree against std::map<std::string, std::string>: keys of 0..1024
//    bytes sharing prefixes, values of 0..~10 KiB (about 15 % out of line),
//    prefix scans; every mode; reopen.
//  - bytes_tree space: erased and replaced out-of-line values and nodes go
//    back to the allocator (live bytes return to the empty tree's baseline),
//    and a put/erase loop does not keep growing the file.
//
// Environment:
//   KEEL_TREE_OPS   operations in total (default 1,200,000 over every part)
//   KEEL_TREE_SEED  seed (default: from the clock; printed)
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "support/seeds.h"
#include "support/temp_dir.h"
#include "support/testing.h"
#include "support/trees.h"

namespace {

using u64 = std::uint64_t;
using i64 = std::int64_t;
using u32 = std::uint32_t;
using clk = std::chrono::steady_clock;
using keel::operator""_MiB;
using keel::operator""_GiB;
using keel_test::describe;
using keel_test::env_u64;
using keel_test::mix;
using keel_test::tstat;

u64 base_seed() {
  static const u64 s = [] {
    const u64 v = keel_test::env_seed("KEEL_TREE_SEED");
    std::printf("tree_diff_test: seed %llu (set KEEL_TREE_SEED to repeat)\n", static_cast<unsigned long long>(v));
    return v;
  }();
  return s;
}
u64 total_ops() { return env_u64("KEEL_TREE_OPS", 1'200'000); }
// Transactions between tree checks (KEEL_TREE_CHECK_EVERY=1 finds the first bad one).
u64 check_every(u64 dflt) { return std::max<u64>(1, env_u64("KEEL_TREE_CHECK_EVERY", dflt)); }

std::string opt(const std::optional<u64>& o) { return o ? std::to_string(*o) : std::string("none"); }
double secs_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

using problems_t = keel_test::tree_problems_t;
// KEEL_TREE_IGNORE_FILL=1 drops "under the minimum fill" reports of the
// differential runs (to look past that one problem while it is open).
void filter(problems_t& p) {
  static const bool ignore = env_u64("KEEL_TREE_IGNORE_FILL", 0) != 0;
  if (ignore)
    std::erase_if(p, [](const auto& x) { return x.second.find("minimum fill") != std::string::npos; });
}
problems_t check_tree(const keel::store& db, u64 root) {
  problems_t p = keel_test::tree_problems(db, root);
  filter(p);
  return p;
}
// KEEL_TREE_CHECK_OPS=1: tree_check inside the transaction after every operation (slow; to find the bad one).
bool check_ops() {
  static const bool b = env_u64("KEEL_TREE_CHECK_OPS", 0) != 0;
  return b;
}
std::string last_op;  // what the last operation was (KEEL_TREE_CHECK_OPS)
void check_in_tx(keel::write_txn& tx, u64 root, const std::string& where) {
  problems_t p;
  keel::detail::tree_check(tx, root, p);
  filter(p);
  if (!p.empty()) FAIL(where, "tree_check inside the transaction after ", last_op, ": ", describe(p));
}

struct mode_cfg {
  const char* name;
  keel::durability mode;
};
const mode_cfg kModes[] = {{"sync", keel::durability::sync},
                           {"batch", keel::durability::batch},
                           {"checkpoint", keel::durability::checkpoint}};

keel::options opts_for(keel::durability m) {
  keel::options o;
  o.initial_size = 4_MiB;
  o.max_size = 4_GiB;
  o.mode = m;
  o.checkpoint_bytes = 16_MiB;
  return o;
}

// A std::map with an undo log, so that an aborted transaction rolls back.
template <class K, class V>
struct undo_map {
  std::map<K, V> m;
  std::vector<std::pair<K, std::optional<V>>> undo;
  void set(const K& k, const V& v) {
    auto it = m.find(k);
    if (it == m.end()) {
      undo.emplace_back(k, std::nullopt);
      m.emplace(k, v);
    } else {
      undo.emplace_back(k, it->second);
      it->second = v;
    }
  }
  bool erase(const K& k) {
    auto it = m.find(k);
    if (it == m.end()) return false;
    undo.emplace_back(k, std::move(it->second));
    m.erase(it);
    return true;
  }
  u64 erase_range(const K& lo, const K& hi) {
    if (!(lo < hi)) return 0;
    u64 n = 0;
    for (auto it = m.lower_bound(lo); it != m.end() && it->first < hi; ++n) {
      undo.emplace_back(it->first, std::move(it->second));
      it = m.erase(it);
    }
    return n;
  }
  void clear() {
    for (auto& [k, v] : m) undo.emplace_back(k, std::move(v));
    m.clear();
  }
  void commit() { undo.clear(); }
  void rollback() {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      if (it->second)
        m[it->first] = std::move(*it->second);
      else
        m.erase(it->first);
    }
    undo.clear();
  }
};

enum class ending { commit, abort_call, throw_out, drop };
ending pick_ending(std::mt19937_64& rng) {
  const u64 r = rng() % 100;
  return r < 92 ? ending::commit : r < 95 ? ending::abort_call : r < 98 ? ending::throw_out : ending::drop;
}
struct abort_tx {};

// One transaction of n operations (op(tx) each), ended as e says (commit,
// abort(), an exception out of write(), or a dropped write_txn); then the
// model md commits or rolls back with it, and st counts it.
template <class Model, class Stats, class Op>
void run_txn(keel::store& db, u64 n, ending e, Model& md, Stats& st, Op&& op) {
  try {
    if (e == ending::throw_out) {
      db.write([&](keel::write_txn& tx) {
        for (u64 i = 0; i < n; ++i) op(tx);
        throw abort_tx{};
      });
    } else {
      auto tx = db.begin_write();
      for (u64 i = 0; i < n; ++i) op(tx);
      if (e == ending::commit)
        tx.commit();
      else if (e == ending::abort_call)
        tx.abort();
      // ending::drop: the destructor aborts
    }
  } catch (const abort_tx&) {
  }
  if (e == ending::commit) {
    md.commit();
  } else {
    md.rollback();
    ++st.aborted;
  }
  st.max_entries = std::max<u64>(st.max_entries, md.m.size());
}

// Log-uniform 1..max.
u64 txn_size(std::mt19937_64& rng, u64 max) {
  const double u = static_cast<double>(rng() % 1000000) / 1e6;
  return std::max<u64>(1, static_cast<u64>(std::exp(u * std::log(static_cast<double>(max) + 1))));
}

// ====================================================================== typed trees

// Model keys are i64, model values u64; a traits class maps them to the tree's K and V.
struct narrow {
  using K = i64;
  using V = u64;
  static constexpr const char* name = "tree_map<i64, u64>";
  static constexpr i64 dense_width = 40000;
  static constexpr u64 cap = 50000;  // the largest target size
  static constexpr u64 max_txn = 2000;
  static K key(i64 k) { return k; }
  static bool unkey(const K& k, i64& out) {
    out = k;
    return true;
  }
  static V val(u64 v) { return v; }
  static bool unval(const V& v, u64& out) {
    out = v;
    return true;
  }
};

struct wide_val {
  u64 v;
  unsigned char pad[152];
};
struct wide {
  using K = std::pair<i64, std::array<unsigned char, 124>>;
  using V = wide_val;
  static constexpr const char* name = "tree_map<132-byte key, 160-byte value>";
  static constexpr i64 dense_width = 6000;
  static constexpr u64 cap = 12000;
  static constexpr u64 max_txn = 600;
  static void fill(unsigned char* p, std::size_t n, u64 seed) {
    for (std::size_t i = 0; i < n; i += 8) {
      const u64 w = mix(seed + i);
      std::memcpy(p + i, &w, std::min<std::size_t>(8, n - i));
    }
  }
  static K key(i64 k) {
    K out;
    out.first = k;
    fill(out.second.data(), out.second.size(), static_cast<u64>(k));
    return out;
  }
  static bool unkey(const K& k, i64& out) {
    out = k.first;
    return k == key(k.first);
  }
  static V val(u64 v) {
    V out;
    out.v = v;
    fill(out.pad, sizeof out.pad, v ^ 0x5555);
    return out;
  }
  static bool unval(const V& v, u64& out) {
    out = v.v;
    const V want = val(v.v);
    return std::memcmp(&want, &v, sizeof v) == 0;
  }
};

struct run_stats {
  u64 ops = 0, txns = 0, aborted = 0, reopens = 0, checks = 0, full_walks = 0, rejected_appends = 0, clears = 0,
      emptied = 0, max_entries = 0, max_height = 0, range_erased = 0, appends = 0, cycles = 0;
};

template <class Tr>
class typed_run {
  using K = typename Tr::K;
  using V = typename Tr::V;
  using tree_t = keel::tree_map<K, V>;
  static constexpr i64 kMin = std::numeric_limits<i64>::min(), kMax = std::numeric_limits<i64>::max();

 public:
  typed_run(const mode_cfg& cfg, u64 seed, u64 ops) : cfg_(cfg), seed_(seed), budget_(ops), rng_(seed) {}

  run_stats go() {
    path_ = dir_.path("t");
    db_ = keel::store::open(path_, opts_for(cfg_.mode));
    tree_ = std::make_unique<tree_t>(tree_t::open(*db_, "diff"));
    const auto t0 = clk::now();
    const u64 reopen_at[2] = {budget_ / 3, 2 * budget_ / 3};
    int next_reopen = 0;
    while (st_.ops < budget_) {
      if (next_reopen < 2 && st_.ops >= reopen_at[next_reopen]) {
        ++next_reopen;
        reopen();
      }
      pick_regime();
      one_txn();
      reads_between();
      if (st_.txns % check_every(5) == 0) {
        verify_walk();
        verify_check();
      }
    }
    reopen();
    st_.max_height = std::max(st_.max_height, tstat(*db_, tree_->root()).height);
    MESSAGE(std::string(Tr::name), " / ", std::string(cfg_.name), ": ", st_.ops, " operations in ", st_.txns, " transactions (", st_.aborted,
            " aborted), ", st_.appends, " appends (", st_.rejected_appends, " rejected), ", st_.range_erased,
            " entries erased by ranges, ", st_.clears, " clears, emptied by a range ", st_.emptied, " times, ", st_.cycles,
            " grow/shrink cycles, ", st_.reopens,
            " reopens, ", st_.checks, " tree checks, ", st_.full_walks, " full walks; largest ", st_.max_entries,
            " entries, height up to ", st_.max_height, "; final ", md_.m.size(), " entries; ", secs_since(t0), " s");
    db_->close();
    return st_;
  }

 private:
  enum regime { dense_fill, dense_erase, append_run, uniform, churn };

  std::string ctx() const {
    std::ostringstream o;
    o << "[" << Tr::name << ", mode " << cfg_.name << ", seed " << seed_ << ", txn " << st_.txns << ", op " << st_.ops
      << ", regime " << regime_ << ", entries " << md_.m.size() << "] ";
    return o.str();
  }

  // The tree grows to a target size (log-uniform up to Tr::cap) through dense
  // fills, appends and random inserts, then shrinks far below it (often to
  // nothing) through bulk and single erases: splits on the way up, merges,
  // borrowing and root collapse on the way down.
  void pick_regime() {
    const u64 n = md_.m.size();
    if (!shrinking_ && n >= target_) {
      shrinking_ = true;
      low_ = rng_() % 3 == 0 ? 0 : target_ * (rng_() % 25) / 100;
      regime_left_ = 0;
    } else if (shrinking_ && n <= low_) {
      shrinking_ = false;
      const double u = static_cast<double>(rng_() % 1000000) / 1e6;
      target_ = static_cast<u64>(200.0 * std::exp(u * std::log(static_cast<double>(Tr::cap) / 200.0)));
      regime_left_ = 0;
      ++st_.cycles;
    }
    if (regime_left_ > 0) return;
    const u64 r = rng_() % 100;
    if (shrinking_) {
      regime_ = r < 80 ? dense_erase : churn;
      regime_left_ = 1 + rng_() % 5;
    } else if (r < 50) {
      regime_ = dense_fill;
      dense_lo_ = static_cast<i64>(rng_() % (u64{1} << 41)) - (i64{1} << 40);
      dense_w_ = Tr::dense_width / 4 + static_cast<i64>(rng_() % static_cast<u64>(Tr::dense_width));
      regime_left_ = 2 + rng_() % 8;
    } else if (r < 80) {
      regime_ = append_run;
      regime_left_ = 2 + rng_() % 8;
    } else {
      regime_ = uniform;
      regime_left_ = 2 + rng_() % 6;
    }
  }

  i64 random_key() {
    switch (rng_() % 4) {
      case 0:
        return static_cast<i64>(rng_());
      case 1:
        return static_cast<i64>(rng_() % 2000) - 1000;
      case 2:
        return rng_() % 2 ? kMin + static_cast<i64>(rng_() % 4) : kMax - static_cast<i64>(rng_() % 4);
      default:
        return dense_lo_ + static_cast<i64>(rng_() % static_cast<u64>(dense_w_ + 1));
    }
  }
  // A present key (when any), found through a random probe.
  std::optional<i64> existing_key() {
    if (md_.m.empty()) return std::nullopt;
    const i64 lo = md_.m.begin()->first, hi = md_.m.rbegin()->first;
    const u64 span = static_cast<u64>(hi) - static_cast<u64>(lo);
    const i64 probe = static_cast<i64>(static_cast<u64>(lo) + (span == ~u64{0} ? rng_() : rng_() % (span + 1)));
    auto it = md_.m.lower_bound(probe);
    if (it == md_.m.end()) --it;
    return it->first;
  }
  i64 key_for_write() {
    if (regime_ == dense_fill || (regime_ == churn && rng_() % 2))
      return dense_lo_ + static_cast<i64>(rng_() % static_cast<u64>(dense_w_));
    if (rng_() % 3 == 0)
      if (auto k = existing_key()) return *k;
    return random_key();
  }

  // One operation inside the transaction. Returns false when it ended the transaction.
  void tx_op(keel::write_txn& tx) {
    ++st_.ops;
    const u64 r = rng_() % 1000;
    const u64 value = rng_();
    auto expect_eq = [&](auto got, auto want, const char* what, i64 k) {
      if (got != want)
        FAIL(ctx(), what, "(", k, "): tree says ", got, ", model says ", want);
    };
    int op;  // 0 insert 1 put 2 append 3 update 4 erase 5 erase_range 6 get 7 size 8 scan 9 clear
    switch (regime_) {
      case dense_fill:
        op = r < 450 ? 0 : r < 850 ? 1 : r < 900 ? 4 : r < 960 ? 6 : r < 990 ? 3 : 8;
        break;
      case dense_erase:
        op = r < 450 ? 4 : r < 520 ? 5 : r < 700 ? 6 : r < 760 ? 1 : r < 800 ? 7 : r < 999 || low_ > 0 ? 8 : 9;
        break;
      case append_run:
        op = r < 850 ? 2 : r < 900 ? 6 : r < 950 ? 4 : r < 970 ? 5 : 3;
        break;
      case uniform:
        op = r < 300 ? 1 : r < 450 ? 0 : r < 650 ? 4 : r < 700 ? 5 : r < 850 ? 6 : r < 900 ? 3 : r < 950 ? 7 : 8;
        break;
      default:
        op = r < 300 ? 1 : r < 400 ? 0 : r < 750 ? 4 : r < 770 ? 5 : r < 900 ? 6 : r < 950 ? 3 : 8;
    }
    switch (op) {
      case 0: {
        const i64 k = key_for_write();
        const bool absent = !md_.m.count(k);
        if (check_ops()) last_op = "insert(" + std::to_string(k) + ")";
        expect_eq(tree_->insert(tx, Tr::key(k), Tr::val(value)), absent, "insert", k);
        if (absent) md_.set(k, value);
        break;
      }
      case 1: {
        const i64 k = key_for_write();
        if (check_ops()) last_op = "put(" + std::to_string(k) + ")";
        expect_eq(tree_->put(tx, Tr::key(k), Tr::val(value)), !md_.m.count(k), "put", k);
        md_.set(k, value);
        break;
      }
      case 2: {
        const i64 top = md_.m.empty() ? kMin : md_.m.rbegin()->first;
        if (rng_() % 100 == 0 && !md_.m.empty()) {  // not above the maximum: rejected, nothing changes
          const i64 k = rng_() % 2 ? top : existing_key().value();
          auto e = keel_test::catch_error([&] { tree_->append(tx, Tr::key(k), Tr::val(value)); });
          if (!e) FAIL(ctx(), "append(", k, ") at or below the maximum ", top, " was accepted");
          if (e->code() != keel::errc::invalid_argument)
            FAIL(ctx(), "append(", k, ") below the maximum: ", keel::to_string(e->code()), " ", e->what());
          expect_eq(tree_->size(tx), static_cast<u64>(md_.m.size()), "size after a rejected append", k);
          std::optional<u64> got;
          if (auto g = tree_->get(tx, Tr::key(k))) Tr::unval(*g, got.emplace());
          expect_eq(got.value_or(0xDEAD), md_.m.at(k), "get after a rejected append", k);
          ++st_.rejected_appends;
          break;
        }
        if (top > kMax - 10) break;
        const i64 k = md_.m.empty() ? static_cast<i64>(rng_() % 1000) : top + 1 + static_cast<i64>(rng_() % 3);
        if (check_ops()) last_op = "append(" + std::to_string(k) + ")";
        tree_->append(tx, Tr::key(k), Tr::val(value));
        md_.set(k, value);
        ++st_.appends;
        break;
      }
      case 3: {
        const i64 k = rng_() % 4 ? existing_key().value_or(1) : random_key();
        const bool present = md_.m.count(k);
        const bool got = tree_->update(tx, Tr::key(k), [&](V& v) {
          u64 x = 0;
          if (!Tr::unval(v, x)) FAIL(ctx(), "update(", k, ") saw a damaged value");
          v = Tr::val(x ^ value);
        });
        expect_eq(got, present, "update", k);
        if (present) md_.set(k, md_.m.at(k) ^ value);
        break;
      }
      case 4: {
        const i64 k = rng_() % 5 ? existing_key().value_or(3) : random_key();
        const bool present = md_.m.count(k);
        if (check_ops()) last_op = "erase(" + std::to_string(k) + ")";
        expect_eq(tree_->erase(tx, Tr::key(k)), present, "erase", k);
        md_.erase(k);
        break;
      }
      case 5: {
        i64 lo, hi;
        u64 shape = rng_() % 10;
        if (!shrinking_ && (shape < 5 || shape >= 8)) shape = 5;  // growing: small ranges only
        const i64 a = existing_key().value_or(random_key());
        if (shape < 5) {  // a bulk erase starting at a present key
          lo = a;
          hi = lo + static_cast<i64>(rng_() % static_cast<u64>(Tr::dense_width / 2 + 1));
          if (hi < lo) hi = kMax;
        } else if (shape < 7) {  // small
          lo = a - static_cast<i64>(rng_() % 8);
          hi = a + static_cast<i64>(rng_() % 8);
        } else if (shape < 8) {  // lo >= hi: nothing
          lo = a;
          hi = a - static_cast<i64>(rng_() % 3);
        } else if (shape < 9) {  // everything below / above a key
          if (rng_() % 2) {
            lo = kMin;
            hi = a;
          } else {
            lo = a;
            hi = kMax;
          }
        } else {
          lo = random_key();
          hi = random_key();
        }
        const u64 want = md_.erase_range(lo, hi);
        if (check_ops())
          last_op = "erase_range(" + std::to_string(lo) + ", " + std::to_string(hi) + ") of " + std::to_string(want);
        const u64 got = tree_->erase_range(tx, Tr::key(lo), Tr::key(hi));
        if (got != want) FAIL(ctx(), "erase_range(", lo, ", ", hi, ") erased ", got, ", model ", want);
        st_.range_erased += got;
        if (md_.m.empty() && got > 0) ++st_.emptied;
        break;
      }
      case 6: {
        const i64 k = rng_() % 2 ? existing_key().value_or(5) : random_key();
        std::optional<u64> got;
        if (auto g = tree_->get(tx, Tr::key(k)))
          if (!Tr::unval(*g, got.emplace())) FAIL(ctx(), "get(tx, ", k, ") returned a damaged value");
        auto it = md_.m.find(k);
        std::optional<u64> want;
        if (it != md_.m.end()) want = it->second;
        if (got != want) FAIL(ctx(), "get(tx, ", k, "): tree ", opt(got), ", model ", opt(want));
        break;
      }
      case 7:
        expect_eq(tree_->size(tx), static_cast<u64>(md_.m.size()), "size(tx)", 0);
        break;
      case 8: {
        i64 lo = existing_key().value_or(0), hi = lo + static_cast<i64>(rng_() % 5000);
        if (hi < lo) hi = kMax;
        if (rng_() % 8 == 0) std::swap(lo, hi);
        const u64 limit = 1 + rng_() % 200;
        std::vector<std::pair<i64, u64>> got;
        tree_->for_each(tx, Tr::key(lo), Tr::key(hi), [&](const K& k, const V& v) {
          i64 kk = 0;
          u64 vv = 0;
          if (!Tr::unkey(k, kk) || !Tr::unval(v, vv)) FAIL(ctx(), "for_each(tx) saw a damaged entry");
          got.emplace_back(kk, vv);
          return got.size() < limit;
        });
        std::vector<std::pair<i64, u64>> want;
        if (lo < hi)
          for (auto it = md_.m.lower_bound(lo); it != md_.m.end() && it->first < hi && want.size() < limit; ++it)
            want.emplace_back(*it);
        if (got != want)
          FAIL(ctx(), "for_each(tx, ", lo, ", ", hi, ") limit ", limit, ": ", got.size(), " entries, model ",
               want.size(), first_diff(got, want));
        break;
      }
      default:
        if (check_ops()) last_op = "clear()";
        {
          tree_->clear(tx);
          md_.clear();
          ++st_.clears;
          ++st_.emptied;
        }
    }
  }

  static std::string first_diff(const std::vector<std::pair<i64, u64>>& a, const std::vector<std::pair<i64, u64>>& b) {
    std::ostringstream o;
    for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
      if (i < a.size() && i < b.size() && a[i] == b[i]) continue;
      o << "; first difference at " << i << ": tree ";
      if (i < a.size())
        o << "(" << a[i].first << ", " << a[i].second << ")";
      else
        o << "<end>";
      o << ", model ";
      if (i < b.size())
        o << "(" << b[i].first << ", " << b[i].second << ")";
      else
        o << "<end>";
      break;
    }
    return o.str();
  }

  void op_checked(keel::write_txn& tx) {
    tx_op(tx);
    if (check_ops()) check_in_tx(tx, tree_->root(), ctx());
  }
  void one_txn() {
    --regime_left_;
    ++st_.txns;
    const u64 n = txn_size(rng_, regime_ == dense_fill || regime_ == append_run ? 4 * Tr::max_txn : Tr::max_txn);
    const ending e = pick_ending(rng_);
    run_txn(*db_, n, e, md_, st_, [&](keel::write_txn& tx) { op_checked(tx); });
  }

  // Lock-free reads of committed data against the model.
  void reads_between() {
    const u64 n = 3 + rng_() % 30;
    for (u64 i = 0; i < n; ++i) {
      ++st_.ops;
      const u64 r = rng_() % 100;
      const i64 k = rng_() % 2 ? existing_key().value_or(0) : random_key();
      if (r < 35) {
        std::optional<u64> got;
        if (auto g = tree_->get(Tr::key(k)))
          if (!Tr::unval(*g, got.emplace())) FAIL(ctx(), "get(", k, ") returned a damaged value");
        auto it = md_.m.find(k);
        std::optional<u64> want;
        if (it != md_.m.end()) want = it->second;
        if (got != want) FAIL(ctx(), "get(", k, "): tree ", opt(got), ", model ", opt(want));
      } else if (r < 50) {
        check_entry(tree_->lower_bound(Tr::key(k)), md_.m.lower_bound(k), "lower_bound", k);
      } else if (r < 65) {
        check_entry(tree_->upper_bound(Tr::key(k)), md_.m.upper_bound(k), "upper_bound", k);
      } else if (r < 70) {
        check_entry(tree_->first(), md_.m.begin(), "first", 0);
      } else if (r < 75) {
        check_entry(tree_->last(), md_.m.empty() ? md_.m.end() : std::prev(md_.m.end()), "last", 0);
      } else if (r < 78) {
        const u64 s = tree_->size();
        if (s != md_.m.size()) FAIL(ctx(), "size() ", s, ", model ", md_.m.size());
      } else {
        i64 lo = k, hi = k + static_cast<i64>(rng_() % 20000);
        if (hi < lo) hi = kMax;
        if (rng_() % 10 == 0) lo = kMin;
        if (rng_() % 10 == 0) hi = kMax;
        if (rng_() % 10 == 0) std::swap(lo, hi);
        const bool rev = rng_() % 2;
        const u64 limit = rng_() % 4 == 0 ? ~u64{0} : 1 + rng_() % 300;
        std::vector<std::pair<i64, u64>> got, want;
        auto f = [&](const K& kk, const V& vv) {
          i64 a = 0;
          u64 b = 0;
          if (!Tr::unkey(kk, a) || !Tr::unval(vv, b)) FAIL(ctx(), "scan saw a damaged entry");
          got.emplace_back(a, b);
          return got.size() < limit;
        };
        if (rev)
          tree_->for_each_reverse(Tr::key(lo), Tr::key(hi), f);
        else
          tree_->for_each(Tr::key(lo), Tr::key(hi), f);
        if (lo < hi) {
          auto a = md_.m.lower_bound(lo), b = md_.m.lower_bound(hi);
          if (!rev)
            for (auto it = a; it != b && want.size() < limit; ++it) want.emplace_back(*it);
          else
            for (auto it = b; it != a && want.size() < limit;) want.emplace_back(*--it);
        }
        if (got != want)
          FAIL(ctx(), rev ? "for_each_reverse(" : "for_each(", lo, ", ", hi, ") limit ", limit, ": ", got.size(),
               " entries, model ", want.size(), first_diff(got, want));
      }
    }
  }

  template <class It>
  void check_entry(const std::optional<std::pair<K, V>>& got, It want, const char* what, i64 k) {
    if (want == md_.m.end()) {
      if (got) {
        i64 a = 0;
        Tr::unkey(got->first, a);
        FAIL(ctx(), what, "(", k, "): tree returned key ", a, ", model: none");
      }
      return;
    }
    if (!got) FAIL(ctx(), what, "(", k, "): tree returned none, model (", want->first, ", ", want->second, ")");
    i64 a = 0;
    u64 b = 0;
    if (!Tr::unkey(got->first, a) || !Tr::unval(got->second, b)) FAIL(ctx(), what, " returned a damaged entry");
    if (a != want->first || b != want->second)
      FAIL(ctx(), what, "(", k, "): tree (", a, ", ", b, "), model (", want->first, ", ", want->second, ")");
  }

  void verify_walk() {
    ++st_.full_walks;
    auto it = md_.m.begin();
    u64 n = 0;
    tree_->for_each([&](const K& k, const V& v) {
      i64 a = 0;
      u64 b = 0;
      if (!Tr::unkey(k, a) || !Tr::unval(v, b)) FAIL(ctx(), "walk: damaged entry at visit ", n);
      if (it == md_.m.end()) FAIL(ctx(), "walk: key ", a, " beyond the model's ", md_.m.size(), " entries");
      if (a != it->first || b != it->second)
        FAIL(ctx(), "walk visit ", n, ": tree (", a, ", ", b, "), model (", it->first, ", ", it->second, ")");
      ++it;
      ++n;
    });
    if (n != md_.m.size()) FAIL(ctx(), "walk visited ", n, ", model ", md_.m.size());
    const u64 s = tree_->size();
    if (s != md_.m.size()) FAIL(ctx(), "size() ", s, ", model ", md_.m.size());
  }
  void verify_check() {
    ++st_.checks;
    const problems_t p = check_tree(*db_, tree_->root());
    if (!p.empty()) FAIL(ctx(), "tree_check: ", describe(p));
    const auto s = tstat(*db_, tree_->root());
    if (s.entries != md_.m.size()) FAIL(ctx(), "tree_stat entries ", s.entries, ", model ", md_.m.size());
    st_.max_height = std::max(st_.max_height, s.height);
  }
  void verify_all() {
    verify_walk();
    verify_check();
    for (const auto& [k, v] : md_.m) {
      const auto g = tree_->get(Tr::key(k));
      u64 x = 0;
      if (!g || !Tr::unval(*g, x) || x != v) FAIL(ctx(), "get(", k, ") after reopen: ", g ? "wrong value" : "missing");
    }
  }
  void reopen() {
    verify_all();
    tree_.reset();
    db_->close();
    db_.reset();
    db_ = keel::store::open(path_, opts_for(cfg_.mode));
    if (db_->info().recovery != 0) FAIL(ctx(), "reopen after a clean close ran recovery ", db_->info().recovery);
    tree_ = std::make_unique<tree_t>(tree_t::open(*db_, "diff"));
    ++st_.reopens;
    verify_all();
  }

  keel_test::temp_dir dir_;
  std::string path_;
  mode_cfg cfg_;
  u64 seed_, budget_;
  std::mt19937_64 rng_;
  std::unique_ptr<keel::store> db_;
  std::unique_ptr<tree_t> tree_;
  undo_map<i64, u64> md_;
  run_stats st_;
  regime regime_ = uniform;
  u64 regime_left_ = 0, target_ = Tr::cap, low_ = 0;  // the first cycle grows to the cap
  bool shrinking_ = false;
  i64 dense_lo_ = 0, dense_w_ = 1000;
};

// ====================================================================== bytes_tree

std::string rnd_bytes(std::mt19937_64& rng, std::size_t n, int alphabet) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(alphabet == 256 ? rng() : 'a' + rng() % static_cast<u64>(alphabet));
  return s;
}
// Value bytes are a function of (tag, length), so a wrong value is caught.
std::string make_value(u64 tag, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; i += 8) {
    const u64 w = mix(tag * 0x9E37 + i);
    std::memcpy(s.data() + i, &w, std::min<std::size_t>(8, n - i));
  }
  return s;
}
std::string show(std::string_view k) {
  std::ostringstream o;
  o << k.size() << " bytes \"";
  static const char* d = "0123456789abcdef";
  for (std::size_t i = 0; i < k.size() && i < 24; ++i) {
    const unsigned char c = static_cast<unsigned char>(k[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\')
      o << c;
    else
      o << "\\x" << d[c >> 4] << d[c & 15];
  }
  if (k.size() > 24) o << "...";
  o << "\"";
  return o.str();
}

class bytes_run {
 public:
  bytes_run(const mode_cfg& cfg, u64 seed, u64 ops) : cfg_(cfg), seed_(seed), budget_(ops), rng_(seed) {
    prefixes_ = {"",
                 "a",
                 "ab",
                 "abc",
                 "user/",
                 "user/0",
                 "user/00",
                 std::string(1, '\0'),
                 std::string(2, '\xff'),
                 std::string(300, 'x'),
                 std::string(1000, 'p'),
                 std::string(1023, 'q'),
                 "quote/XNAS/"};
  }

  run_stats go() {
    path_ = dir_.path("b");
    db_ = keel::store::open(path_, opts_for(cfg_.mode));
    tree_ = std::make_unique<keel::bytes_tree>(keel::bytes_tree::open(*db_, "bytes"));
    baseline_live_ = db_->info().live_bytes;
    const auto t0 = clk::now();
    int reopens = 0;
    while (st_.ops < budget_) {
      if (reopens < 1 && st_.ops >= budget_ / 2) {
        ++reopens;
        reopen();
      }
      one_txn();
      reads_between();
      if (st_.txns % check_every(20) == 0) verify_walk_check();
    }
    reopen();
    // Erase everything: every node and out-of-line value goes back.
    db_->write([&](keel::write_txn& tx) {
      u64 n = 0;
      if (rng_() % 2) {
        // [empty key, 1024 x 0xff) holds every key but that one.
        const std::string top(1024, '\xff');
        n = tree_->erase_range(tx, "", top);
        n += tree_->erase(tx, top);
      } else {
        for (const auto& [k, v] : md_.m) n += tree_->erase(tx, k);
      }
      if (n != md_.m.size()) FAIL(ctx(), "erasing everything erased ", n, " of ", md_.m.size());
    });
    md_.clear();
    md_.commit();
    verify_walk_check();
    const keel::store_info in = db_->info();
    MESSAGE("bytes_tree / ", std::string(cfg_.name), ": ", st_.ops, " operations in ", st_.txns, " transactions (", st_.aborted,
            " aborted), ", out_of_line_, " out-of-line values written, ", prefix_scans_, " prefix scans, ",
            st_.range_erased, " entries erased by ranges, ", st_.cycles, " grow/shrink cycles, ", st_.clears, " clears, largest ",
            st_.max_entries, " entries, height up to ",
            st_.max_height, "; live bytes after erasing everything ", in.live_bytes, " (empty tree: ", baseline_live_,
            "), arena ", in.arena_used >> 10, " KiB; ", secs_since(t0), " s");
    CHECK_MESSAGE(in.live_bytes == baseline_live_, ctx(), "after erasing everything ", in.live_bytes,
                  " bytes are live, the empty tree had ", baseline_live_, ": ",
                  static_cast<i64>(in.live_bytes - baseline_live_), " bytes leaked");
    db_->close();
    return st_;
  }

 private:
  std::string ctx() const {
    std::ostringstream o;
    o << "[bytes_tree, mode " << cfg_.name << ", seed " << seed_ << ", txn " << st_.txns << ", op " << st_.ops
      << ", entries " << md_.m.size() << "] ";
    return o.str();
  }

  std::string new_key() {
    const std::string& p = prefixes_[rng_() % prefixes_.size()];
    const u64 r = rng_() % 10;
    std::size_t len = r < 6 ? rng_() % 6 : r < 9 ? rng_() % 40 : rng_() % 1025;
    len = std::min<std::size_t>(len, 1024 - p.size());
    return p + rnd_bytes(rng_, len, rng_() % 4 == 0 ? 256 : 3);
  }
  std::optional<std::string> existing_key() {
    if (md_.m.empty()) return std::nullopt;
    auto it = md_.m.lower_bound(new_key());
    if (it == md_.m.end()) --it;
    return it->first;
  }
  std::string any_key() {
    if (rng_() % 2)
      if (auto k = existing_key()) return *k;
    return new_key();
  }
  std::size_t value_len() {
    const u64 r = rng_() % 100;
    return r < 55 ? rng_() % 60 : r < 80 ? 60 + rng_() % 600 : r < 88 ? 600 + rng_() % 800 : r < 96 ? 1300 + rng_() % 3000 : 4000 + rng_() % 6300;
  }
  std::string new_value() {
    const std::size_t n = value_len();
    return make_value(rng_(), n);
  }
  void note_value(const std::string& k, const std::string& v) {
    if (k.size() + v.size() + 8 > 1344) ++out_of_line_;
  }

  void tx_op(keel::write_txn& tx) {
    ++st_.ops;
    const u64 r = rng_() % 100;
    // Growing: put 40, insert 15, append 10, erase 8, erase_range 2 (%);
    // shrinking: put 10, insert 3, append 2, erase 50, erase_range 10.
    const bool shrinking = shrinking_;
    if (r < (shrinking ? 10u : 40u)) {
      const std::string k = any_key(), v = new_value();
      if (check_ops()) last_op = "put(" + show(k) + ", " + std::to_string(v.size()) + " bytes)";
      const bool added = tree_->put(tx, k, v);
      if (added != !md_.m.count(k)) FAIL(ctx(), "put(", show(k), ") returned ", added);
      md_.set(k, v);
      note_value(k, v);
    } else if (r < (shrinking ? 13u : 55u)) {
      const std::string k = any_key(), v = new_value();
      const bool absent = !md_.m.count(k);
      if (check_ops()) last_op = "insert(" + show(k) + ", " + std::to_string(v.size()) + " bytes)";
      if (tree_->insert(tx, k, v) != absent) FAIL(ctx(), "insert(", show(k), ") returned ", !absent);
      if (absent) {
        md_.set(k, v);
        note_value(k, v);
      }
    } else if (r < (shrinking ? 15u : 65u)) {  // append: a key above the maximum
      std::string k;
      if (md_.m.empty()) {
        k = new_key();
      } else {
        k = md_.m.rbegin()->first;
        if (k.size() < 1024)
          k += rnd_bytes(rng_, 1 + rng_() % std::min<std::size_t>(8, 1024 - k.size()), 256);
        else {
          while (!k.empty() && static_cast<unsigned char>(k.back()) == 0xff) k.pop_back();
          if (k.empty()) return;
          k.back() = static_cast<char>(static_cast<unsigned char>(k.back()) + 1);
        }
        if (rng_() % 50 == 0) {  // at or below the maximum: rejected
          const std::string bad = rng_() % 2 ? md_.m.rbegin()->first : existing_key().value();
          auto e = keel_test::catch_error([&] { tree_->append(tx, bad, "x"); });
          if (!e || e->code() != keel::errc::invalid_argument)
            FAIL(ctx(), "append(", show(bad), ") at or below the maximum: ", e ? e->what() : "accepted");
          if (tree_->get(tx, bad) != md_.m.at(bad)) FAIL(ctx(), "a rejected append changed ", show(bad));
          ++st_.rejected_appends;
          return;
        }
      }
      const std::string v = new_value();
      if (check_ops()) last_op = "append(" + show(k) + ", " + std::to_string(v.size()) + " bytes)";
      tree_->append(tx, k, v);
      md_.set(k, v);
      note_value(k, v);
      ++st_.appends;
    } else if (r < (shrinking ? 65u : 73u)) {
      const std::string k = rng_() % 5 ? existing_key().value_or("") : new_key();
      const bool present = md_.m.count(k);
      if (check_ops()) last_op = "erase(" + show(k) + ")";
      if (tree_->erase(tx, k) != present) FAIL(ctx(), "erase(", show(k), ") returned ", !present);
      md_.erase(k);
    } else if (r < 75) {
      std::string lo = any_key(), hi = rng_() % 3 ? lo + rnd_bytes(rng_, rng_() % 3, 3) : any_key();
      if (hi.size() > 1024) hi.resize(1024);
      if (rng_() % (shrinking ? 3 : 20) == 0) hi = std::string(1, static_cast<char>(lo.empty() ? 1 : lo[0] + 1));
      const u64 want = md_.erase_range(lo, hi);
      if (check_ops()) last_op = "erase_range(" + show(lo) + ", " + show(hi) + ") of " + std::to_string(want);
      const u64 got = tree_->erase_range(tx, lo, hi);
      if (got != want) FAIL(ctx(), "erase_range(", show(lo), ", ", show(hi), ") erased ", got, ", model ", want);
      st_.range_erased += got;
    } else if (r < 95) {
      const std::string k = any_key();
      const auto got = tree_->get(tx, k);
      auto it = md_.m.find(k);
      if (got.has_value() != (it != md_.m.end()) || (got && *got != it->second))
        FAIL(ctx(), "get(tx, ", show(k), "): tree ", got ? show(*got) : "none", ", model ",
             it == md_.m.end() ? "none" : show(it->second));
    } else if (r < 97) {
      if (tree_->size(tx) != md_.m.size()) FAIL(ctx(), "size(tx) ", tree_->size(tx), ", model ", md_.m.size());
    } else if (r < 99) {
      // Walk inside the transaction (sees its own writes).
      auto it = md_.m.begin();
      u64 n = 0;
      tree_->for_each(tx, [&](std::string_view k, std::string_view v) {
        if (it == md_.m.end() || k != it->first || v != it->second)
          FAIL(ctx(), "for_each(tx) visit ", n, ": ", show(k), " vs model ",
               it == md_.m.end() ? "<end>" : show(it->first));
        ++it;
        ++n;
        return n < 500;
      });
    } else if (shrinking_ && low_ == 0 && rng_() % 4 == 0) {
      tree_->clear(tx);
      md_.clear();
      ++st_.clears;
    }
  }

  void op_checked(keel::write_txn& tx) {
    tx_op(tx);
    if (check_ops()) check_in_tx(tx, tree_->root(), ctx());
  }
  // Grow to a target (log-uniform 50..3000 entries), then shrink far below it.
  void steer() {
    const u64 n = md_.m.size();
    if (!shrinking_ && n >= target_) {
      shrinking_ = true;
      low_ = rng_() % 3 == 0 ? 0 : target_ * (rng_() % 25) / 100;
    } else if (shrinking_ && n <= low_) {
      shrinking_ = false;
      const double u = static_cast<double>(rng_() % 1000000) / 1e6;
      target_ = static_cast<u64>(50.0 * std::exp(u * std::log(3000.0 / 50.0)));
      ++st_.cycles;
    }
  }
  void one_txn() {
    steer();
    ++st_.txns;
    const u64 n = txn_size(rng_, 300);
    const ending e = pick_ending(rng_);
    run_txn(*db_, n, e, md_, st_, [&](keel::write_txn& tx) { op_checked(tx); });
  }

  static bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

  void reads_between() {
    const u64 n = 3 + rng_() % 15;
    for (u64 i = 0; i < n; ++i) {
      ++st_.ops;
      const u64 r = rng_() % 100;
      const std::string k = any_key();
      if (r < 35) {
        const auto got = tree_->get(k);
        auto it = md_.m.find(k);
        if (got.has_value() != (it != md_.m.end()) || (got && *got != it->second))
          FAIL(ctx(), "get(", show(k), "): tree ", got ? show(*got) : "none", ", model ",
               it == md_.m.end() ? "none" : show(it->second));
      } else if (r < 55) {
        const bool upper = r < 45;
        const auto got = upper ? tree_->upper_bound(k) : tree_->lower_bound(k);
        auto it = upper ? md_.m.upper_bound(k) : md_.m.lower_bound(k);
        const bool ok = it == md_.m.end() ? !got : got && got->first == it->first && got->second == it->second;
        if (!ok)
          FAIL(ctx(), upper ? "upper_bound(" : "lower_bound(", show(k), "): tree ", got ? show(got->first) : "none",
               ", model ", it == md_.m.end() ? "none" : show(it->first));
      } else if (r < 60) {
        const auto f = tree_->first(), l = tree_->last();
        if (md_.m.empty() ? (f || l)
                          : (!f || !l || f->first != md_.m.begin()->first || l->first != md_.m.rbegin()->first ||
                             l->second != md_.m.rbegin()->second))
          FAIL(ctx(), "first/last differ from the model");
      } else if (r < 80) {  // prefix scan
        ++prefix_scans_;
        std::string p = rng_() % 2 ? prefixes_[rng_() % prefixes_.size()] : k.substr(0, rng_() % (k.size() + 1));
        if (rng_() % 8 == 0) p = std::string(1, '\xff');
        std::vector<std::string> got;
        u64 bytes = 0;
        tree_->for_each_prefix(p, [&](std::string_view kk, std::string_view vv) {
          got.emplace_back(kk);
          auto it = md_.m.find(got.back());
          if (it == md_.m.end() || it->second != vv) FAIL(ctx(), "prefix scan: ", show(kk), " wrong or unknown");
          bytes += vv.size();
        });
        std::vector<std::string> want;
        for (auto it = md_.m.lower_bound(p); it != md_.m.end() && starts_with(it->first, p); ++it)
          want.push_back(it->first);
        if (got != want)
          FAIL(ctx(), "for_each_prefix(", show(p), "): ", got.size(), " keys, model ", want.size());
      } else {  // range scans with limits, both directions
        std::string lo = k, hi = any_key();
        if (rng_() % 3 == 0) std::swap(lo, hi);
        const bool rev = rng_() % 2;
        const u64 limit = 1 + rng_() % 100;
        std::vector<std::string> got, want;
        auto f = [&](std::string_view kk, std::string_view) {
          got.emplace_back(kk);
          return got.size() < limit;
        };
        if (rev)
          tree_->for_each_reverse(lo, hi, f);
        else
          tree_->for_each(lo, hi, f);
        if (lo < hi) {
          auto a = md_.m.lower_bound(lo), b = md_.m.lower_bound(hi);
          if (!rev)
            for (auto it = a; it != b && want.size() < limit; ++it) want.push_back(it->first);
          else
            for (auto it = b; it != a && want.size() < limit;) want.push_back((--it)->first);
        }
        if (got != want)
          FAIL(ctx(), rev ? "for_each_reverse(" : "for_each(", show(lo), ", ", show(hi), ") limit ", limit, ": ",
               got.size(), " keys, model ", want.size());
      }
    }
  }

  void verify_walk_check() {
    auto it = md_.m.begin();
    u64 n = 0;
    tree_->for_each([&](std::string_view k, std::string_view v) {
      if (it == md_.m.end()) FAIL(ctx(), "walk: ", show(k), " beyond the model's end");
      if (k != it->first) FAIL(ctx(), "walk visit ", n, ": ", show(k), ", model ", show(it->first));
      if (v != it->second) FAIL(ctx(), "walk: value of ", show(k), " is ", show(v), ", model ", show(it->second));
      ++it;
      ++n;
    });
    if (n != md_.m.size()) FAIL(ctx(), "walk visited ", n, ", model ", md_.m.size());
    if (tree_->size() != md_.m.size()) FAIL(ctx(), "size() ", tree_->size(), ", model ", md_.m.size());
    const problems_t p = check_tree(*db_, tree_->root());
    if (!p.empty()) FAIL(ctx(), "tree_check: ", describe(p));
    st_.max_height = std::max(st_.max_height, tstat(*db_, tree_->root()).height);
    ++st_.checks;
  }
  void reopen() {
    verify_walk_check();
    tree_.reset();
    db_->close();
    db_ = keel::store::open(path_, opts_for(cfg_.mode));
    tree_ = std::make_unique<keel::bytes_tree>(keel::bytes_tree::open(*db_, "bytes"));
    for (const auto& [k, v] : md_.m)
      if (tree_->get(k) != v) FAIL(ctx(), "after reopen get(", show(k), ") differs");
    verify_walk_check();
  }

  keel_test::temp_dir dir_;
  std::string path_;
  mode_cfg cfg_;
  u64 seed_, budget_;
  std::mt19937_64 rng_;
  std::unique_ptr<keel::store> db_;
  std::unique_ptr<keel::bytes_tree> tree_;
  undo_map<std::string, std::string> md_;
  run_stats st_;
  std::vector<std::string> prefixes_;
  u64 baseline_live_ = 0, out_of_line_ = 0, prefix_scans_ = 0, target_ = 3000, low_ = 0;
  bool shrinking_ = false;
};

u64 g_ops = 0;

}  // namespace

TEST_CASE("differential: tree_map<i64, u64> against std::map, every durability mode") {
  const auto t0 = clk::now();
  const u64 per_mode = total_ops() * 60 / 100 / 3;
  for (std::size_t i = 0; i < std::size(kModes); ++i) {
    typed_run<narrow> r(kModes[i], base_seed() + i, per_mode);
    g_ops += r.go().ops;
  }
  MESSAGE("tree_map<i64, u64>: ", secs_since(t0), " s");
}

TEST_CASE("differential: wide tree_map (132-byte keys, 160-byte values: tall trees), every durability mode") {
  const auto t0 = clk::now();
  const u64 per_mode = total_ops() * 22 / 100 / 3;
  u64 height = 0;
  for (std::size_t i = 0; i < std::size(kModes); ++i) {
    typed_run<wide> r(kModes[i], base_seed() + 100 + i, per_mode);
    const run_stats s = r.go();
    g_ops += s.ops;
    height = std::max(height, s.max_height);
  }
  CHECK_MESSAGE(height >= 3, "the wide trees never reached height 3: splits and merges of branches untested");
  MESSAGE("wide tree_map: ", secs_since(t0), " s");
}

TEST_CASE("differential: bytes_tree against std::map<std::string, std::string>, every durability mode") {
  const auto t0 = clk::now();
  const u64 per_mode = total_ops() * 18 / 100 / 3;
  for (std::size_t i = 0; i < std::size(kModes); ++i) {
    bytes_run r(kModes[i], base_seed() + 200 + i, per_mode);
    g_ops += r.go().ops;
  }
  MESSAGE("bytes_tree: ", secs_since(t0), " s; operations in all differential runs so far: ", g_ops);
}

TEST_CASE("bytes_tree: erased and replaced out-of-line values go back to the allocator; put/erase loops reuse space") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto t = keel::bytes_tree::open(*db, "s");
  const u64 base = db->info().live_bytes;
  std::mt19937_64 rng(base_seed() ^ 0x5BACE);
  // One out-of-line value replaced by one of the same size, then by an inline one.
  db->write([&](keel::write_txn& tx) { t.put(tx, "k", make_value(1, 9000)); });
  const u64 one = db->info().live_bytes;
  CHECK(one >= base + 9000);
  db->write([&](keel::write_txn& tx) { t.put(tx, "k", make_value(2, 9000)); });
  CHECK_MESSAGE(db->info().live_bytes == one, "replacing a 9000-byte value by another left ",
                db->info().live_bytes - one, " more bytes live");
  db->write([&](keel::write_txn& tx) { t.put(tx, "k", "small"); });
  CHECK_MESSAGE(db->info().live_bytes + 9000 <= one, "replacing an out-of-line value by an inline one freed only ",
                one - db->info().live_bytes, " bytes");
  CHECK(t.get("k") == "small");
  db->write([&](keel::write_txn& tx) { CHECK(t.erase(tx, "k")); });
  CHECK(db->info().live_bytes == base);

  // Cycles: fill with mixed values (a third out of line), replace half, erase everything.
  u64 arena_after_2 = 0, arena_max = 0;
  constexpr int kCycles = 25;
  for (int c = 0; c < kCycles; ++c) {
    db->write([&](keel::write_txn& tx) {
      for (int i = 0; i < 1500; ++i) {
        const std::string k = "key/" + std::to_string(i * 7919 % 1500) + std::string(rng() % 60, 'k');
        t.put(tx, k, make_value(rng(), i % 3 == 0 ? 1400 + rng() % 8000 : rng() % 400));
      }
    });
    db->write([&](keel::write_txn& tx) {
      u64 n = 0;
      t.for_each(tx, [&](std::string_view, std::string_view) { ++n; });
      CHECK(n == t.size(tx));
    });
    std::vector<std::string> keys;
    t.for_each([&](std::string_view k, std::string_view) { keys.emplace_back(k); });
    db->write([&](keel::write_txn& tx) {
      for (std::size_t i = 0; i < keys.size(); i += 2) t.put(tx, keys[i], make_value(rng(), rng() % 2 ? 5000 : 10));
    });
    db->write([&](keel::write_txn& tx) {
      if (c % 2)
        t.clear(tx);
      else
        for (const auto& k : keys) CHECK(t.erase(tx, k));
    });
    CHECK(t.size() == 0);
    const keel::store_info in = db->info();
    CHECK_MESSAGE(in.live_bytes == base, "cycle ", c, ": ", in.live_bytes - base, " bytes still live after erasing everything");
    if (c == 2) arena_after_2 = in.arena_used;
    arena_max = std::max(arena_max, in.arena_used);
  }
  MESSAGE("put/erase cycles: arena ", arena_after_2 >> 10, " KiB after 3 cycles, ", arena_max >> 10, " KiB at most over ",
          kCycles);
  CHECK_MESSAGE(arena_max <= arena_after_2 + arena_after_2 / 4, "the arena kept growing: ", arena_after_2 >> 10,
                " KiB after 3 cycles, ", arena_max >> 10, " KiB after ", kCycles);
  const problems_t p = check_tree(*db, t.root());
  CHECK_MESSAGE(p.empty(), describe(p));
  db->close();
}

TEST_CASE("tree_map: erased nodes go back to the allocator; fill/erase loops reuse space") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
  auto t = keel::tree_map<u64, u64>::open(*db, "s");
  const u64 base = db->info().live_bytes;
  std::mt19937_64 rng(base_seed() ^ 0xF00D);
  u64 arena_after_2 = 0, arena_max = 0;
  for (int c = 0; c < 20; ++c) {
    db->write([&](keel::write_txn& tx) {
      for (int i = 0; i < 30000; ++i) t.put(tx, rng() % 1'000'000, 1);
    });
    std::vector<u64> keys;
    t.for_each([&](const u64& k, const u64&) { keys.push_back(k); });
    std::shuffle(keys.begin(), keys.end(), rng);
    db->write([&](keel::write_txn& tx) {
      if (c % 3 == 0)
        t.clear(tx);
      else if (c % 3 == 1)
        CHECK(t.erase_range(tx, 0, ~u64{0}) == keys.size());
      else
        for (u64 k : keys) CHECK(t.erase(tx, k));
    });
    CHECK(t.size() == 0);
    CHECK_MESSAGE(db->info().live_bytes == base, "cycle ", c, ": ", db->info().live_bytes - base,
                  " bytes live after emptying the tree");
    if (c == 2) arena_after_2 = db->info().arena_used;
    arena_max = std::max(arena_max, db->info().arena_used);
  }
  CHECK_MESSAGE(arena_max <= arena_after_2 + arena_after_2 / 4, "the arena kept growing: ", arena_after_2 >> 10,
                " KiB after 3 cycles, ", arena_max >> 10, " KiB at most");
  db->close();
}

// A put that makes a cell smaller (a shorter value, or an inline value moved
// out of line) can leave its leaf under the minimum fill; the tree must stay
// within its invariants (docs/FORMAT.md: every node but the root and the last
// of its level holds at least the minimum), as detail::tree_check checks.
TEST_CASE("bytes_tree: puts that shrink values keep every node at the minimum fill") {
  for (const std::size_t shrunk : {std::size_t{0}, std::size_t{1400}}) {  // empty values; out of line
    CAPTURE(shrunk);
    keel_test::temp_dir dir;
    auto db = keel::store::open(dir.path("s"), opts_for(keel::durability::checkpoint));
    auto t = keel::bytes_tree::open(*db, "s");
    std::map<std::string, std::string> m;
    db->write([&](keel::write_txn& tx) {
      for (int i = 0; i < 60; ++i) {
        char k[8];
        std::snprintf(k, sizeof k, "k%03d", i);
        t.put(tx, k, make_value(static_cast<u64>(i), 1000));
        m[k] = make_value(static_cast<u64>(i), 1000);
      }
    });
    REQUIRE(check_tree(*db, t.root()).empty());
    for (int i = 20; i < 40; ++i) {
      char k[8];
      std::snprintf(k, sizeof k, "k%03d", i);
      db->write([&](keel::write_txn& tx) { t.put(tx, k, make_value(999, shrunk)); });
      m[k] = make_value(999, shrunk);
      const problems_t p = check_tree(*db, t.root());
      CHECK_MESSAGE(p.empty(), "after put(\"", std::string(k), "\", ", shrunk, " bytes) replacing 1000 bytes: ",
                    describe(p));
      if (!p.empty()) break;
    }
    for (const auto& [k, v] : m) REQUIRE(t.get(k) == v);
    db->close();
  }
}
