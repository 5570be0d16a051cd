// B+trees under process crashes.
//
// A writer child commits seeded transactions of 20..1200 operations on a
// tree_map<u64, u64> and a bytes_tree (dense fills in random order, runs of
// appends, bulk erases of ranges and single erases, random puts / erases /
// updates), so that most of its time goes to splits and merges, and reports
// each committed transaction number through a pipe. The parent SIGKILLs it at
// random moments, then (or the next child, at its open) checks the recovered
// store: a meta block counts the transactions in the store, which must be the
// last reported one or the one in flight; both trees must equal the model
// after exactly that many transactions (recomputed from the seed: size, a full
// walk with every value, lock-free and inside a transaction), and
// detail::tree_check must report nothing. Every durability mode, with small
// checkpoint_bytes so kills also land in checkpoints; sometimes the child is
// killed while it opens (recovers) the store.
//
// Environment:
//   KEEL_CRASH_KILLS  total kills over the three modes (default 240)
//   KEEL_CRASH_SEED   seed (default: from the clock; printed)
#include <doctest/doctest.h>
#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/inspect.h"
#include "support/proc.h"
#include "support/trees.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using u64 = std::uint64_t;
using u32 = std::uint32_t;
using keel_test::describe_status;
using keel_test::env_u64;
using keel_test::h3;
using keel_test::mix;
using keel_test::write_all;

constexpr const char* kTm = "tm";
constexpr const char* kBt = "bt";
constexpr const char* kMeta = "tree_meta";
constexpr u64 kAppendBase = u64{1} << 40;  // tree_map appends live above this; other keys below 2^18
constexpr u32 kBtAppendBase = 50'000'000;  // bytes_tree key numbers: appends above, others below 10^6
constexpr u64 kTmCap = 60'000, kBtCap = 2'500;

struct meta {
  u64 count;  // transactions applied
  u64 check;  // mix(count)
};

// bytes_tree keys: 8 decimal digits (so key order is number order), then a
// tail of 0..96 bytes fixed by the number.
std::string bt_key(u32 n) {
  char d[16];
  std::snprintf(d, sizeof d, "%08u", n);
  std::string s(d);
  s.append(n % 97, static_cast<char>('a' + n % 26));
  return s;
}
u32 bt_number(std::string_view k) {
  u32 n = 0;
  for (std::size_t i = 0; i < 8 && i < k.size(); ++i) n = n * 10 + static_cast<u32>(k[i] - '0');
  return n;
}
// A value is a function of its tag: about 15 % are over a cell (out of line).
std::size_t bt_len(u64 tag) { return tag % 100 < 15 ? 1400 + tag % 5000 : tag % 300; }
std::string bt_value(u64 tag) {
  std::string s(bt_len(tag), '\0');
  for (std::size_t i = 0; i < s.size(); i += 8) {
    const u64 w = mix(tag + i);
    std::memcpy(s.data() + i, &w, std::min<std::size_t>(8, s.size() - i));
  }
  return s;
}

struct op {
  std::uint8_t tree;  // 0 tree_map, 1 bytes_tree
  std::uint8_t kind;  // 0 insert, 1 put, 2 append, 3 erase, 4 erase_range [a, b), 5 update (v ^=)
  u64 a, b, v;
};

struct model {
  u64 seed = 0, count = 0;
  std::map<u64, u64> tm;
  std::map<u32, u64> bt;  // key number -> value tag

  // Applies one operation; returns what the tree must return (added / found / erased count).
  u64 apply(const op& o) {
    if (o.tree == 0) {
      switch (o.kind) {
        case 0:
          return tm.emplace(o.a, o.v).second;
        case 1: {
          const bool added = !tm.count(o.a);
          tm[o.a] = o.v;
          return added;
        }
        case 2:
          tm[o.a] = o.v;
          return 1;
        case 3:
          return tm.erase(o.a);
        case 4: {
          u64 n = 0;
          if (o.a < o.b)
            for (auto it = tm.lower_bound(o.a); it != tm.end() && it->first < o.b; ++n) it = tm.erase(it);
          return n;
        }
        default: {
          auto it = tm.find(o.a);
          if (it == tm.end()) return 0;
          it->second ^= o.v;
          return 1;
        }
      }
    }
    const u32 a = static_cast<u32>(o.a), b = static_cast<u32>(o.b);
    switch (o.kind) {
      case 0:
        return bt.emplace(a, o.v).second;
      case 1: {
        const bool added = !bt.count(a);
        bt[a] = o.v;
        return added;
      }
      case 2:
        bt[a] = o.v;
        return 1;
      case 3:
        return bt.erase(a);
      default: {
        u64 n = 0;
        if (a < b)
          for (auto it = bt.lower_bound(a); it != bt.end() && it->first < b; ++n) it = bt.erase(it);
        return n;
      }
    }
  }

  // Transaction k (1-based): a pure function of (seed, k) and the state after k - 1.
  std::vector<op> plan(u64 k) const {
    const double u = static_cast<double>(h3(seed, k, 0) % 1000000) / 1e6;
    const auto n = static_cast<u64>(std::exp(std::log(20.0) + u * (std::log(1201.0) - std::log(20.0))));
    u64 phase = h3(seed, k, 1) % 100;
    if (tm.size() > kTmCap || bt.size() > kBtCap) phase = 60;  // bulk erase
    std::vector<op> ops;
    ops.reserve(n);
    const u64 window = (h3(seed, k, 2) % 80) * 3000;
    u64 tm_top = std::max(tm.empty() ? 0 : tm.rbegin()->first, kAppendBase);
    u32 bt_top = std::max(bt.empty() ? 0u : bt.rbegin()->first, kBtAppendBase);
    auto tm_existing = [&](u64 r) -> u64 {
      if (tm.empty()) return r % 250'000;
      auto it = tm.lower_bound(r % (tm.rbegin()->first + 1));
      return it == tm.end() ? tm.rbegin()->first : it->first;
    };
    auto bt_existing = [&](u64 r) -> u32 {
      if (bt.empty()) return static_cast<u32>(r % 300'000);
      auto it = bt.lower_bound(static_cast<u32>(r % (u64{bt.rbegin()->first} + 1)));
      return it == bt.end() ? bt.rbegin()->first : it->first;
    };
    for (u64 i = 0; i < n; ++i) {
      const u64 r = h3(seed, k, i + 10), r2 = h3(seed, k, i + 5'000'000), v = h3(seed, k, i + 9'000'000) | 1;
      const bool bt_op = r % 8 == 0;  // one in eight operations goes to the bytes_tree
      const u64 pick = (r >> 8) % 100;
      op o{static_cast<std::uint8_t>(bt_op), 1, 0, 0, v};
      if (phase < 30) {  // dense fill of a window, in random order
        o.kind = pick < 55 ? 0 : pick < 95 ? 1 : 3;
        o.a = bt_op ? window / 10 + r2 % 600 : window + r2 % 3000;
      } else if (phase < 50) {  // appends
        if (pick < 90) {
          o.kind = 2;
          if (bt_op)
            o.a = bt_top += 1 + static_cast<u32>(r2 % 3);
          else
            o.a = tm_top += 1 + r2 % 3;
        } else {
          o.kind = 3;
          o.a = bt_op ? bt_existing(r2) : tm_existing(r2);
        }
      } else if (phase < 75) {  // bulk erase: ranges from present keys, single erases
        if (pick < 4) {
          o.kind = 4;
          o.a = bt_op ? bt_existing(r2) : tm_existing(r2);
          o.b = o.a + (bt_op ? r2 % 400 : r2 % 6000);
        } else if (pick < 85) {
          o.kind = 3;
          o.a = bt_op ? bt_existing(r2) : tm_existing(r2);
        } else {
          o.kind = 1;
          o.a = bt_op ? r2 % 300'000 : r2 % 250'000;
        }
      } else {  // random
        o.kind = pick < 40 ? 1 : pick < 50 ? 0 : pick < 85 ? 3 : pick < 87 ? 4 : 5;
        if (bt_op && o.kind == 5) o.kind = 1;
        o.a = pick % 2 ? (bt_op ? bt_existing(r2) : tm_existing(r2)) : (bt_op ? r2 % 300'000 : r2 % 250'000);
        o.b = o.a + r2 % 50;
      }
      ops.push_back(o);
    }
    return ops;
  }

  void advance_to(u64 c) {
    while (count < c) {
      const std::vector<op> ops = plan(count + 1);
      for (const op& o : ops) apply(o);
      ++count;
    }
  }
};

// Runs one operation on the trees; returns what they returned.
u64 run_op(keel::write_txn& tx, keel::tree_map<u64, u64>& tm, keel::bytes_tree& bt, const op& o) {
  if (o.tree == 0) {
    switch (o.kind) {
      case 0:
        return tm.insert(tx, o.a, o.v);
      case 1:
        return tm.put(tx, o.a, o.v);
      case 2:
        tm.append(tx, o.a, o.v);
        return 1;
      case 3:
        return tm.erase(tx, o.a);
      case 4:
        return tm.erase_range(tx, o.a, o.b);
      default:
        return tm.update(tx, o.a, [&](u64& x) { x ^= o.v; });
    }
  }
  const std::string key = bt_key(static_cast<u32>(o.a));
  switch (o.kind) {
    case 0:
      return bt.insert(tx, key, bt_value(o.v));
    case 1:
      return bt.put(tx, key, bt_value(o.v));
    case 2:
      bt.append(tx, key, bt_value(o.v));
      return 1;
    case 3:
      return bt.erase(tx, key);
    default:
      return bt.erase_range(tx, key, bt_key(static_cast<u32>(o.b)));
  }
}

using problems_t = keel_test::tree_problems_t;

// Empty when the store holds exactly md's trees (md.count transactions).
std::string verify_trees(keel::store& db, const keel::tree_map<u64, u64>& tm, const keel::bytes_tree& bt,
                         const model& md) {
  std::ostringstream o;
  for (const auto& [name, root] : {std::pair<const char*, u64>{"tree_map", tm.root()}, {"bytes_tree", bt.root()}}) {
    problems_t p = keel_test::tree_problems(db, root);
    // KEEL_TREE_IGNORE_FILL=1: look past "under the minimum fill" (see tree_diff_test.cc) while it is open.
    if (env_u64("KEEL_TREE_IGNORE_FILL", 0))
      std::erase_if(p, [](const auto& x) { return x.second.find("minimum fill") != std::string::npos; });
    if (!p.empty()) o << name << " tree_check: " << keel_test::describe(p, 6) << "; ";
  }
  if (tm.size() != md.tm.size()) o << "tree_map size " << tm.size() << ", model " << md.tm.size() << "; ";
  if (bt.size() != md.bt.size()) o << "bytes_tree size " << bt.size() << ", model " << md.bt.size() << "; ";
  {
    auto it = md.tm.begin();
    u64 n = 0, bad = 0;
    std::string first;
    tm.for_each([&](const u64& k, const u64& v) {
      const bool ok = it != md.tm.end() && it->first == k && it->second == v;
      if (!ok && bad++ == 0)
        first = "visit " + std::to_string(n) + ": (" + std::to_string(k) + ", " + std::to_string(v) + "), model " +
                (it == md.tm.end() ? "<end>" : "(" + std::to_string(it->first) + ", " + std::to_string(it->second) + ")");
      if (it != md.tm.end()) ++it;
      ++n;
      return bad < 1;
    });
    if (bad || n != md.tm.size()) o << "tree_map walk: " << n << " visits, " << first << "; ";
  }
  {
    auto it = md.bt.begin();
    u64 n = 0, bad = 0;
    std::string first;
    bt.for_each([&](std::string_view k, std::string_view v) {
      const bool ok = it != md.bt.end() && k == bt_key(it->first) && v == bt_value(it->second);
      if (!ok && bad++ == 0)
        first = "visit " + std::to_string(n) + ": key number " + std::to_string(bt_number(k)) + " (" +
                std::to_string(v.size()) + "-byte value), model " +
                (it == md.bt.end() ? "<end>" : std::to_string(it->first) + " (" + std::to_string(bt_len(it->second)) + ")");
      if (it != md.bt.end()) ++it;
      ++n;
      return bad < 1;
    });
    if (bad || n != md.bt.size()) o << "bytes_tree walk: " << n << " visits, " << first << "; ";
  }
  // A few point reads, present and absent.
  u64 i = 0;
  for (auto it = md.tm.begin(); it != md.tm.end() && i < 200; ++i, std::advance(it, std::min<u64>(97, std::distance(it, md.tm.end()))))
    if (tm.get(it->first) != it->second) o << "tree_map get(" << it->first << ") wrong; ";
  if (tm.get(kAppendBase - 1).has_value() != md.tm.count(kAppendBase - 1)) o << "tree_map get of an absent key; ";
  return o.str();
}

constexpr u64 kOpenTag = 0xFFFF'FFFF'5452'0001ull;
constexpr u64 kFailTag = 0xFFFF'FFFF'5452'0002ull;

struct report {
  u64 tag;
  u64 count;     // transactions found at open
  u64 verified;  // 1 when the child checked both trees
  u64 recovery, recovered_records;
  u64 tm_height, bt_height, tm_nodes;
  char msg[900];
};
static_assert(sizeof(report) < PIPE_BUF);

struct mode_cfg {
  const char* name;
  keel::durability mode;
  u64 checkpoint_bytes;
};

keel::options make_opts(const mode_cfg& c) {
  keel::options o;
  o.initial_size = keel::operator""_MiB(1);
  o.max_size = keel::operator""_GiB(2);
  o.mode = c.mode;
  o.checkpoint_bytes = c.checkpoint_bytes;
  o.batch_window = 5ms;
  o.lock_timeout = 5000ms;
  return o;
}

[[noreturn]] void child_fail(int out, const std::string& what) {
  report r{};
  r.tag = kFailTag;
  std::snprintf(r.msg, sizeof r.msg, "%s", what.c_str());
  write_all(out, &r, sizeof r);
  std::fprintf(stderr, "[tree_crash child %d] %s\n", static_cast<int>(::getpid()), what.c_str());
  ::_exit(3);
}

u64 read_meta(keel::store& db, u64 meta_root) {
  const meta mt = db.read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{meta_root}); });
  if (mt.check != mix(mt.count)) throw std::runtime_error("meta block fails its check");
  return mt.count;
}

// md: the parent's model as of the last reported commit (inherited by fork).
[[noreturn]] void child_main(const std::string& path, const mode_cfg& cfg, model md, bool verify, int out) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    const keel::options opts = make_opts(cfg);
    auto db = keel::store::open(path, opts);
    auto tm = keel::tree_map<u64, u64>::open(*db, kTm);
    auto bt = keel::bytes_tree::open(*db, kBt);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    const u64 count = read_meta(*db, meta_root);
    report r{};
    r.tag = kOpenTag;
    r.count = count;
    r.recovery = static_cast<u64>(db->info().recovery);
    r.recovered_records = db->info().recovered_records;
    if (count < md.count || count > md.count + 1)
      child_fail(out, "open found " + std::to_string(count) + " transactions, last reported " + std::to_string(md.count));
    md.advance_to(count);
    if (verify) {
      const std::string bad = verify_trees(*db, tm, bt, md);
      if (!bad.empty()) child_fail(out, "after recovery of " + std::to_string(count) + " transactions: " + bad);
      r.verified = 1;
    }
    const auto st = db->read([&](const keel::read_view& v) { return keel::detail::tree_stat(v, tm.root()); });
    r.tm_height = st.height;
    r.tm_nodes = st.leaves + st.branches;
    r.bt_height = db->read([&](const keel::read_view& v) { return keel::detail::tree_stat(v, bt.root()).height; });
    if (!write_all(out, &r, sizeof r)) child_fail(out, "pipe write failed");
    for (;;) {
      const u64 k = md.count + 1;
      const std::vector<op> ops = md.plan(k);
      db->write([&](keel::write_txn& tx) {
        meta cur = tx.get(keel::ref<meta>{meta_root});
        if (cur.count != md.count || cur.check != mix(cur.count))
          throw std::runtime_error("meta count " + std::to_string(cur.count) + ", expected " + std::to_string(md.count));
        for (std::size_t i = 0; i < ops.size(); ++i) {
          const u64 want = md.apply(ops[i]);
          const u64 got = run_op(tx, tm, bt, ops[i]);
          if (got != want)
            throw std::runtime_error("transaction " + std::to_string(k) + " op " + std::to_string(i) + " (tree " +
                                     std::to_string(ops[i].tree) + ", kind " + std::to_string(ops[i].kind) + ", key " +
                                     std::to_string(ops[i].a) + ") returned " + std::to_string(got) + ", model " +
                                     std::to_string(want));
        }
        cur.count = k;
        cur.check = mix(k);
        tx.put(keel::ref<meta>{meta_root}, cur);
      });
      md.count = k;
      if (!write_all(out, &k, sizeof k)) child_fail(out, "pipe write failed");
      const u64 q = h3(md.seed, k, 777);
      if (q % 53 == 0) db->checkpoint();
      if ((q >> 16) % 131 == 0) {  // clean close and reopen
        db->close();
        db.reset();
        db = keel::store::open(path, opts);
        tm = keel::tree_map<u64, u64>::open(*db, kTm);
        bt = keel::bytes_tree::open(*db, kBt);
        if (db->info().recovered_records != 0) child_fail(out, "reopen after a clean close replayed log records");
      }
    }
  } catch (const std::exception& e) {
    child_fail(out, e.what());
  }
}

struct stats {
  int kills = 0, early_kills = 0, inflight_present = 0, parent_verifies = 0, child_verifies = 0, stores = 0,
      replays = 0;
  u64 commits = 0, ops = 0, max_tm = 0, max_bt = 0, max_tm_height = 0, max_bt_height = 0;
};

class run {
 public:
  run(const mode_cfg& cfg, int kills, u64 seed, clk::time_point deadline)
      : cfg_(cfg), kills_(kills), seed_(seed), rng_(seed), deadline_(deadline) {}

  int go() {
    new_store();
    for (int n = 1; n <= kills_; ++n) {
      kill_no_ = n;
      if (clk::now() > deadline_) {
        WARN_MESSAGE(false, ctx(), "time budget spent after ", n - 1, " of ", kills_, " kills");
        break;
      }
      if (n > 1 && (n - 1) % 40 == 0) {  // a fresh store now and then: the trees grow from empty again
        parent_verify();
        new_store();
      }
      one_kill();
      if (rng_() % 3 != 0 || n == kills_) parent_verify();
    }
    REQUIRE_MESSAGE(st_.commits >= static_cast<u64>(st_.kills / 4), ctx(), "writers made too little progress: ",
                    st_.commits, " commits over ", st_.kills, " kills");
    MESSAGE(std::string(cfg_.name), ": ", st_.kills, " kills (", st_.early_kills,
            " before the child finished opening, ", st_.inflight_present,
            " with the unreported in-flight transaction found), ", st_.commits, " commits, ", st_.ops,
            " tree operations, ", st_.stores, " stores, ", st_.parent_verifies, " parent checks, ", st_.child_verifies,
            " child checks, ", st_.replays, " opens replayed a log tail; largest tree_map ", st_.max_tm,
            " entries (height ", st_.max_tm_height, "), largest bytes_tree ", st_.max_bt, " entries (height ",
            st_.max_bt_height, ")");
    return st_.kills;
  }

 private:
  std::string ctx() const {
    std::ostringstream o;
    o << "[mode " << cfg_.name << ", seed " << seed_ << ", store " << st_.stores << ", kill " << kill_no_ << "/"
      << kills_ << ", last reported " << md_.count << "] ";
    return o.str();
  }

  void new_store() {
    ++st_.stores;
    path_ = dir_.path("s" + std::to_string(st_.stores));
    md_ = model{};
    md_.seed = mix(mix(seed_) + static_cast<u64>(st_.stores));
    auto db = keel::store::open(path_, make_opts(cfg_));
    db->write([&](keel::write_txn& tx) {
      keel::tree_map<u64, u64>::open(*db, tx, kTm);
      keel::bytes_tree::open(*db, tx, kBt);
      tx.open_root(kMeta, keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<meta>());
      tx.set_root(kMeta, tx.create(meta{0, mix(0)}).off);
    });
    db->close();
    prev_clean_ = true;
  }

  void note_sizes() {
    st_.max_tm = std::max<u64>(st_.max_tm, md_.tm.size());
    st_.max_bt = std::max<u64>(st_.max_bt, md_.bt.size());
  }

  void on_open(const report& r) {
    INFO(ctx(), "child opened: count ", r.count, ", recovery ", r.recovery, ", ", r.recovered_records,
         " records replayed");
    REQUIRE_MESSAGE((r.count >= md_.count && r.count <= md_.count + 1), "the store holds ", r.count,
                    " transactions, the last reported commit was ", md_.count);
    if (prev_clean_) REQUIRE_MESSAGE(r.count == md_.count, "after a clean close the store holds one more transaction");
    if (r.count == md_.count + 1) ++st_.inflight_present;
    if (r.verified) ++st_.child_verifies;
    if (r.recovered_records) ++st_.replays;
    st_.max_tm_height = std::max(st_.max_tm_height, r.tm_height);
    st_.max_bt_height = std::max(st_.max_bt_height, r.bt_height);
    md_.advance_to(r.count);
    note_sizes();
  }

  void on_commit(u64 k) {
    REQUIRE_MESSAGE(k == md_.count + 1, ctx(), "child reported commit ", k);
    st_.ops += md_.plan(k).size();
    md_.advance_to(k);
    ++st_.commits;
    note_sizes();
  }

  struct stream {
    std::vector<char> buf;
    bool opened = false;
  };
  void parse(stream& s, bool at_eof) {
    std::size_t at = 0;
    while (s.buf.size() - at >= 8) {
      u64 w;
      std::memcpy(&w, s.buf.data() + at, 8);
      if (w == kOpenTag || w == kFailTag) {
        if (s.buf.size() - at < sizeof(report)) break;
        report r;
        std::memcpy(&r, s.buf.data() + at, sizeof r);
        at += sizeof r;
        if (w == kFailTag) FAIL(ctx(), "the child failed: ", std::string(r.msg));
        REQUIRE_MESSAGE(!s.opened, ctx(), "two open reports from one child");
        s.opened = true;
        on_open(r);
        prev_clean_ = false;
      } else {
        REQUIRE_MESSAGE(s.opened, ctx(), "commit report before the open report");
        at += 8;
        on_commit(w);
      }
    }
    s.buf.erase(s.buf.begin(), s.buf.begin() + static_cast<std::ptrdiff_t>(at));
    if (at_eof) REQUIRE_MESSAGE(s.buf.empty(), ctx(), "torn message in the pipe: ", s.buf.size(), " bytes");
  }

  void one_kill() {
    const bool early = rng_() % 8 == 0;
    const bool verify = !prev_clean_;
    keel_test::child_proc c =
        keel_test::child_proc::spawn([&](int out) { child_main(path_, cfg_, md_, verify, out); });
    REQUIRE(c.pid() > 0);
    u64 delay_us;
    const u64 pick = rng_() % 10;
    if (early)
      delay_us = rng_() % 3000;
    else if (pick < 6)
      delay_us = 1000 + rng_() % 30000;
    else if (pick < 9)
      delay_us = 30000 + rng_() % 90000;
    else
      delay_us = 120000 + rng_() % 280000;
    stream s;
    const auto deadline = clk::now() + std::chrono::microseconds(delay_us);
    keel_test::pump_until(c, s.buf, 5, [&] { return deadline; }, [&] { parse(s, false); });
    const pid_t pid = c.pid();
    const int status = c.kill_and_wait();
    ++st_.kills;
    const auto drain_until = clk::now() + 10s;
    while (c.pump(s.buf, 100)) REQUIRE_MESSAGE(clk::now() < drain_until, ctx(), "no EOF on the child's pipe");
    parse(s, true);
    if (!keel_test::killed_by_sigkill(status))
      FAIL(ctx(), "child ", pid, " ended on its own before the kill: ", describe_status(status),
           " (its message is on stderr above)");
    if (!s.opened) {
      ++st_.early_kills;
      prev_clean_ = false;  // it may have started recovering
    }
  }

  void parent_verify() {
    auto db = keel::store::open(path_, make_opts(cfg_));
    auto tm = keel::tree_map<u64, u64>::open(*db, kTm);
    auto bt = keel::bytes_tree::open(*db, kBt);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    const u64 count = read_meta(*db, meta_root);
    INFO(ctx(), "parent opened: count ", count, ", recovery ", db->info().recovery, ", ",
         db->info().recovered_records, " records replayed");
    REQUIRE_MESSAGE((count >= md_.count && count <= md_.count + 1), "the store holds ", count,
                    " transactions, the last reported commit was ", md_.count);
    if (prev_clean_) REQUIRE(count == md_.count);
    if (count == md_.count + 1) ++st_.inflight_present;
    md_.advance_to(count);
    note_sizes();
    const std::string bad = verify_trees(*db, tm, bt, md_);
    REQUIRE_MESSAGE(bad.empty(), "after recovery of ", count, " transactions: ", bad);
    // The writer's view agrees: a walk inside a transaction.
    db->write([&](keel::write_txn& tx) {
      u64 n = 0;
      auto it = md_.tm.begin();
      tm.for_each(tx, 0, ~u64{0}, [&](const u64& k, const u64& v) {
        REQUIRE_MESSAGE((it != md_.tm.end() && it->first == k && it->second == v), "walk in a transaction, visit ", n);
        ++it;
        ++n;
      });
      REQUIRE(n == md_.tm.size() - md_.tm.count(~u64{0}));
      REQUIRE(bt.size(tx) == md_.bt.size());
    });
    const auto s = db->read([&](const keel::read_view& v) { return keel::detail::tree_stat(v, tm.root()); });
    st_.max_tm_height = std::max(st_.max_tm_height, s.height);
    const keel::store_info info = db->info();
    REQUIRE_MESSAGE(info.live_bytes + info.free_bytes == info.arena_used - keel::fmt::kArenaOffset, ctx(),
                    "allocator accounting: live ", info.live_bytes, " + free ", info.free_bytes, " != arena ",
                    info.arena_used - keel::fmt::kArenaOffset);
    db->close();
    ++st_.parent_verifies;
    prev_clean_ = true;
  }

  keel_test::temp_dir dir_;
  std::string path_;
  mode_cfg cfg_;
  int kills_;
  u64 seed_;
  std::mt19937_64 rng_;
  clk::time_point deadline_;
  model md_;
  bool prev_clean_ = true;
  int kill_no_ = 0;
  stats st_;
};

}  // namespace

TEST_CASE("tree crash loop: SIGKILL a writer in the middle of splits and merges, recover, compare with the model") {
  const u64 total = std::max<u64>(env_u64("KEEL_CRASH_KILLS", 240), 3);
  const u64 seed =
      env_u64("KEEL_CRASH_SEED", static_cast<u64>(clk::now().time_since_epoch().count()) & 0xFFFFFFFFull);
  MESSAGE("tree_crash: seed ", seed, " (set KEEL_CRASH_SEED to repeat), ", total, " kills over three modes");
  const mode_cfg modes[] = {
      {"sync", keel::durability::sync, keel::operator""_KiB(512)},
      {"batch", keel::durability::batch, keel::operator""_MiB(1)},
      {"checkpoint", keel::durability::checkpoint, keel::operator""_MiB(1)},
  };
  const auto t0 = clk::now();
  // ~60 s for the default count; proportionally more for long runs.
  const auto budget = std::chrono::milliseconds(static_cast<std::int64_t>(60'000 * std::max<u64>(total, 240) / 240));
  int kills = 0;
  for (std::size_t i = 0; i < std::size(modes); ++i) {
    const int k = static_cast<int>(total / 3 + (i < total % 3 ? 1 : 0));
    run r(modes[i], k, seed + i, t0 + budget * static_cast<std::int64_t>(i + 1) / 3);
    kills += r.go();
  }
  CHECK_MESSAGE(kills >= static_cast<int>(std::min<u64>(total, 100)), "only ", kills, " kills within the time budget");
  MESSAGE("tree_crash: ", kills, " kills in ",
          std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count(), " ms");
}
