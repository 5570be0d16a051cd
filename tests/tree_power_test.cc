// B+trees under power loss, through the OS seam (support/sim_os.h), as
// power_loss_test.cc does for raw blocks: at every I/O call of a tree
// workload (transactions of inserts, appends, erases and range erases on
// small-node trees, so nearly every transaction splits or merges nodes),
// build the files a power cut at that instant could leave (durable image plus
// none / all / a random subset of the unsynced pages, one page torn, any
// prefix of the unsynced log and journal), recover them as after a reboot and
// check: the store holds the state after a committed prefix no older than the
// mode allows, both trees equal the model after exactly that prefix,
// detail::tree_check is clean; the recovered store takes one more
// transaction, and a second recovery changes nothing.
#include <doctest/doctest.h>
#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/crash_state.h"
#include "support/proc.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"

using keel_test::cut_policy;
using keel_test::h3;
using keel_test::mix;
using keel_test::op;
using keel_test::sim_os;

namespace {

using u64 = std::uint64_t;
using u32 = std::uint32_t;
using val = std::array<u64, 24>;  // 200-byte cells: ~19 per leaf, so small trees have many nodes

constexpr const char* kTm = "tm";
constexpr const char* kBt = "bt";
constexpr const char* kMeta = "meta";

struct meta {
  u64 count, check;
};

val tm_value(u64 v) {
  val a;
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = mix(v + i);
  return a;
}
std::string bt_key(u32 n) {
  char d[16];
  std::snprintf(d, sizeof d, "%06u", n);
  return std::string(d) + std::string(n % 40, 'k');
}
std::string bt_value(u64 tag) {
  std::string s(tag % 10 == 0 ? 1400 + tag % 3000 : 100 + tag % 900, '\0');
  for (std::size_t i = 0; i < s.size(); i += 8) {
    const u64 w = mix(tag ^ i);
    std::memcpy(s.data() + i, &w, std::min<std::size_t>(8, s.size() - i));
  }
  return s;
}

struct model {
  std::map<u64, u64> tm;
  std::map<u32, u64> bt;
};

// Transaction k on trees t and b (and on the model m, in step). Pure function
// of (seed, k) and the state after k - 1. Returns false when a tree's answer
// differed from the model's (written to *why).
bool txn(u64 seed, u64 k, model& m, keel::write_txn* tx, keel::tree_map<u64, val>* t, keel::bytes_tree* b,
         std::string* why) {
  const u64 n = 20 + h3(seed, k, 0) % 100;
  const u64 phase = m.tm.size() > 900 ? 2 : h3(seed, k, 1) % 3;
  const u64 window = (h3(seed, k, 2) % 20) * 100;
  auto present = [&](u64 r) -> u64 {
    if (m.tm.empty()) return r % 2000;
    auto it = m.tm.lower_bound(r % (m.tm.rbegin()->first + 1));
    return it == m.tm.end() ? m.tm.rbegin()->first : it->first;
  };
  for (u64 i = 0; i < n; ++i) {
    const u64 r = h3(seed, k, i + 10), v = h3(seed, k, i + 100000);
    const u64 pick = r % 100;
    u64 want = 0, got = 0;
    std::string what;
    if (pick < 80) {  // tree_map
      if (phase == 0) {  // dense inserts / puts in a window
        const u64 key = window + (r >> 8) % 300;
        what = "put " + std::to_string(key);
        want = !m.tm.count(key);
        m.tm[key] = v;
        if (t) got = t->put(*tx, key, tm_value(v));
      } else if (phase == 1) {  // appends
        const u64 key = (m.tm.empty() ? 100000 : std::max<u64>(m.tm.rbegin()->first, 100000)) + 1 + r % 3;
        what = "append " + std::to_string(key);
        m.tm[key] = v;
        want = got = 1;
        if (t) t->append(*tx, key, tm_value(v));
      } else if (pick < 6) {  // range erase from a present key
        const u64 lo = present(r >> 8), hi = lo + (r >> 20) % 200;
        what = "erase_range " + std::to_string(lo) + ".." + std::to_string(hi);
        for (auto it = m.tm.lower_bound(lo); it != m.tm.end() && it->first < hi; ++want) it = m.tm.erase(it);
        if (t) got = t->erase_range(*tx, lo, hi);
      } else {  // erase a present key
        const u64 key = present(r >> 8);
        what = "erase " + std::to_string(key);
        want = m.tm.erase(key);
        if (t) got = t->erase(*tx, key);
      }
    } else {  // bytes_tree
      u32 key = static_cast<u32>((r >> 8) % 500);
      if (phase == 2 && !m.bt.empty()) {  // a present key
        auto it = m.bt.lower_bound(key);
        key = it == m.bt.end() ? m.bt.begin()->first : it->first;
      }
      if (phase == 2 || pick > 95) {
        what = "bytes erase " + std::to_string(key);
        want = m.bt.erase(key);
        if (b) got = b->erase(*tx, bt_key(key));
      } else {
        what = "bytes put " + std::to_string(key);
        want = !m.bt.count(key);
        m.bt[key] = v;
        if (b) got = b->put(*tx, bt_key(key), bt_value(v));
      }
    }
    if (t && got != want) {
      *why = "transaction " + std::to_string(k) + " op " + std::to_string(i) + " (" + what + ") returned " +
             std::to_string(got) + ", model " + std::to_string(want);
      return false;
    }
  }
  return true;
}

// The models after 0..N transactions.
std::vector<model> models(u64 seed, u64 n) {
  std::vector<model> out(1);
  for (u64 k = 1; k <= n; ++k) {
    model m = out.back();
    std::string why;
    txn(seed, k, m, nullptr, nullptr, nullptr, &why);
    out.push_back(std::move(m));
  }
  return out;
}

void setup(keel::store& db) {
  db.write([&](keel::write_txn& tx) {
    keel::tree_map<u64, val>::open(db, tx, kTm);
    keel::bytes_tree::open(db, tx, kBt);
    tx.open_root(kMeta, keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<meta>());
    tx.set_root(kMeta, tx.create(meta{0, mix(0)}).off);
  });
}

// Runs transaction count+1; returns its number.
u64 step(keel::store& db, u64 seed, const model& before) {
  auto t = keel::tree_map<u64, val>::open(db, kTm);
  auto b = keel::bytes_tree::open(db, kBt);
  u64 k = 0;
  db.write([&](keel::write_txn& tx) {
    const keel::ref<meta> mr{tx.find(kMeta)->root};
    meta mt = tx.get(mr);
    k = mt.count + 1;
    model m = before;
    std::string why;
    if (!txn(seed, k, m, &tx, &t, &b, &why)) throw std::runtime_error(why);
    mt = {k, mix(k)};
    tx.put(mr, mt);
  });
  return k;
}

// Empty when the store holds the trees of ms[count]; sets *count.
std::string verify(keel::store& db, const std::vector<model>& ms, u64* count) {
  std::ostringstream o;
  const auto e = db.read([](const keel::read_view& v) { return v.find(kMeta); });
  if (!e) return "no meta block";
  const meta mt = db.read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{e->root}); });
  if (mt.check != mix(mt.count)) return "meta block fails its check";
  *count = mt.count;
  if (mt.count >= ms.size()) return "count " + std::to_string(mt.count) + " beyond the workload";
  const model& m = ms[mt.count];
  auto t = keel::tree_map<u64, val>::open(db, kTm);
  auto b = keel::bytes_tree::open(db, kBt);
  for (u64 root : {t.root(), b.root()}) {
    const auto p = db.read([&](const keel::read_view& v) {
      std::vector<std::pair<u64, std::string>> q;
      keel::detail::tree_check(v, root, q);
      return q;
    });
    for (std::size_t i = 0; i < p.size() && i < 4; ++i) o << "tree_check: [node " << p[i].first << "] " << p[i].second << "; ";
  }
  if (t.size() != m.tm.size()) o << "tree_map size " << t.size() << ", model " << m.tm.size() << "; ";
  if (b.size() != m.bt.size()) o << "bytes_tree size " << b.size() << ", model " << m.bt.size() << "; ";
  auto it = m.tm.begin();
  u64 bad = 0;
  t.for_each([&](const u64& k, const val& v) {
    if (it == m.tm.end() || it->first != k || v != tm_value(it->second)) {
      if (bad++ == 0) o << "tree_map walk differs at key " << k << "; ";
    }
    if (it != m.tm.end()) ++it;
  });
  auto jt = m.bt.begin();
  b.for_each([&](std::string_view k, std::string_view v) {
    if (jt == m.bt.end() || k != bt_key(jt->first) || v != bt_value(jt->second)) {
      if (bad++ == 0) o << "bytes_tree walk differs at a " << k.size() << "-byte key; ";
    }
    if (jt != m.bt.end()) ++jt;
  });
  return o.str();
}

u64 recover_and_check(const std::string& img, keel::durability mode, u64 seed, const std::vector<model>& ms, u64 lower,
                      u64 upper, const std::string& where) {
  return keel_test::recover_twice(
      img, mode, lower, upper, where, [&](keel::store& db, u64* count) { return verify(db, ms, count); },
      [&](keel::store& db, u64 count) { return step(db, seed, ms[count]); });
}

keel_test::power_outcome run(keel::durability mode, u64 seed, int transactions) {
  keel_test::temp_dir dir;
  const std::string path = dir.path("t.keel");
  const std::vector<model> ms = models(seed, static_cast<u64>(transactions) + 2);
  sim_os sys;
  std::mt19937_64 rng(seed);
  auto db = keel::store::open(path, keel_test::power_run_options(mode, &sys));
  setup(*db);
  db->checkpoint();
  u64 acked = 0, checkpointed = 0;
  keel_test::power_outcome out;
  keel_test::arm_power_cuts(
      sys, path, dir.path("cut.keel"), mode, rng, acked, checkpointed, ", seed " + std::to_string(seed), out,
      [&](const std::string& img, u64 lower, u64 upper, const std::string& where) {
        return recover_and_check(img, mode, seed, ms, lower, upper, where);
      });
  keel_test::run_checkpointed(*db, transactions, acked, checkpointed, [&] { return step(*db, seed, ms[acked]); });
  sys.on_call = nullptr;
  u64 final_count = 0;
  CHECK(verify(*db, ms, &final_count).empty());
  CHECK(final_count == acked);
  const auto st = db->read([&](const keel::read_view& v) {
    return keel::detail::tree_stat(v, keel::tree_map<u64, val>::open(*db, kTm).root());
  });
  MESSAGE("tree_map at the end: ", st.entries, " entries, ", st.leaves, " leaves, height ", st.height,
          "; entries over the run up to ", std::max_element(ms.begin(), ms.end(), [](const model& a, const model& b) {
                                             return a.tm.size() < b.tm.size();
                                           })->tm.size());
  db->close();
  return out;
}

// Page by page: at every fourth I/O call, a crash state for EVERY subset of
// the data file's unsynced pages when there are at most kExhaustive of them,
// else one per single page plus none and all; each with a random prefix of
// the unsynced log and journal. No page written back early, or held back,
// may break recovery.
struct subset_tally {
  keel_test::power_outcome out;
  u64 points = 0, exhaustive_points = 0, single_page_states = 0;
};

subset_tally run_subsets(keel::durability mode, u64 seed, int transactions) {
  constexpr std::size_t kExhaustive = 4;
  keel_test::temp_dir dir;
  const std::string path = dir.path("t.keel"), img = dir.path("cut.keel");
  const std::vector<model> ms = models(seed, static_cast<u64>(transactions) + 2);
  sim_os sys;
  std::mt19937_64 rng(seed);
  auto db = keel::store::open(path, keel_test::power_run_options(mode, &sys));
  setup(*db);
  db->checkpoint();
  u64 acked = 0, checkpointed = 0;
  subset_tally t;
  int calls = 0;
  bool in_hook = false;
  sys.on_call = [&](op which, const std::string& file) {
    if (in_hook || file.rfind(path, 0) != 0 || which == op::pread || which == op::open) return;
    if (calls++ % 4 != 0) return;
    in_hook = true;
    const u64 lower = mode == keel::durability::sync ? acked : checkpointed;
    const std::size_t dirty = sys.dirty_pages(path);
    auto state = [&](cut_policy p, const std::string& what) {
      p.side_tail = cut_policy::random_tail;
      sys.power_cut(path, img, p, rng);
      const std::string where = std::string("crash point: before ") + keel_test::op_name(which) + " of " + file + ", " +
                                what + " of " + std::to_string(dirty) + " unsynced pages, acked " +
                                std::to_string(acked) + ", seed " + std::to_string(seed);
      const u64 got = recover_and_check(img, mode, seed, ms, lower, acked + 1, where);
      t.out.min_recovered = std::min(t.out.min_recovered, got);
      t.out.max_recovered = std::max(t.out.max_recovered, got);
      ++t.out.cuts;
    };
    ++t.points;
    if (dirty <= kExhaustive) {
      ++t.exhaustive_points;
      for (u64 m = 0; m < (1ull << dirty); ++m)
        state({cut_policy::mask, false, cut_policy::no_tail, m, m % 2 ? cut_policy::durable_size : cut_policy::live_size},
              "page subset " + std::to_string(m));
    } else {
      state({cut_policy::none, false, cut_policy::no_tail, 0, cut_policy::durable_size}, "no page, size of the last sync");
      state({cut_policy::all}, "every page");
      for (std::size_t i = 0; i < dirty && i < 64; ++i) {
        state({cut_policy::mask, false, cut_policy::no_tail, 1ull << i}, "only page " + std::to_string(i));
        ++t.single_page_states;
      }
    }
    in_hook = false;
  };
  keel_test::run_checkpointed(*db, transactions, acked, checkpointed, [&] { return step(*db, seed, ms[acked]); });
  sys.on_call = nullptr;
  db->close();
  return t;
}

u64 seed_from_env() {
  static const u64 s = keel_test::env_u64("KEEL_CRASH_SEED", 12345);
  return s;
}

}  // namespace

TEST_CASE("tree power loss at every I/O call: sync mode loses nothing acknowledged") {
  const auto o = run(keel::durability::sync, seed_from_env(), 30);
  MESSAGE("sync: ", o.cuts, " crash states, recovered ", o.min_recovered, "..", o.max_recovered);
  CHECK(o.cuts > 60);
  CHECK(o.max_recovered >= 29);
}

TEST_CASE("tree power loss: checkpoint mode goes back no further than the last checkpoint") {
  const auto o = run(keel::durability::checkpoint, seed_from_env() + 1, 30);
  MESSAGE("checkpoint: ", o.cuts, " crash states, recovered ", o.min_recovered, "..", o.max_recovered);
  CHECK(o.cuts > 30);
  CHECK(o.min_recovered < o.max_recovered);
}

TEST_CASE("tree power loss: batch mode goes back no further than the last checkpoint or log sync") {
  const auto o = run(keel::durability::batch, seed_from_env() + 2, 30);
  MESSAGE("batch: ", o.cuts, " crash states, recovered ", o.min_recovered, "..", o.max_recovered);
  CHECK(o.cuts > 30);
}

TEST_CASE("tree power loss with every subset, or every single page, of the unsynced data pages") {
  u64 states = 0, singles = 0, exhaustive = 0;
  for (auto mode : {keel::durability::sync, keel::durability::batch, keel::durability::checkpoint}) {
    const subset_tally t = run_subsets(mode, seed_from_env() + 10 + static_cast<u64>(mode), 12);
    MESSAGE("mode ", static_cast<int>(mode), ": ", t.points, " crash points, ", t.out.cuts, " crash states (",
            t.exhaustive_points, " points with every subset, ", t.single_page_states, " single-page states), recovered ",
            t.out.min_recovered, "..", t.out.max_recovered);
    CHECK(t.points > 6);
    states += t.out.cuts;
    singles += t.single_page_states;
    exhaustive += t.exhaustive_points;
  }
  CHECK(states > 300);
  CHECK(singles > 50);
  CHECK(exhaustive > 5);
}
