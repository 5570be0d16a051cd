// keel::hash_map under process crashes.
//
// 1. Crash loop: a writer child commits seeded-random transactions of 50..2000
//    hash-map operations (put / erase / insert / update; the map starts empty
//    and grows through many resizes, so kills land inside resizes and inside
//    the commits that start them) and reports each committed transaction
//    number through a pipe; the parent SIGKILLs it at random moments, reopens
//    the store and checks that the map equals the model after exactly the
//    reported number of transactions or one more (model recomputed
//    deterministically from the seed): size, every key, a lock-free for_each
//    (no key twice, count = size). Sometimes the next child recovers instead
//    of the parent, and checks the map itself before it goes on. Every
//    durability mode.
// 2. Readers during resizes: one writer process grows the map from empty
//    through many resizes (and clears it now and then), two reader processes
//    do lock-free gets and for_each walks. Values are self-validating
//    ({key, version, check}), and a reader also re-derives, from the seed,
//    that the transaction `version` really wrote that key. A walk must never
//    report a key twice and must see every pinned key (present throughout).
//    Readers may get errc::busy (counted), never a bad value, a crash or a
//    hang (heartbeat). The writer is SIGKILLed and restarted several times;
//    at the end the map must equal the model after the final count.
//
// Environment:
//   KEEL_CRASH_KILLS  scales the kills (240 = default: 120 crash-loop kills
//                     over the three modes, 15 writer kills in part 2)
//   KEEL_CRASH_SEED   seed (default: from the clock; printed)
#include <doctest/doctest.h>
#include <fcntl.h>
#include <keel/keel.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "file/format.h"
#include "support/inspect.h"
#include "support/proc.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using u64 = std::uint64_t;
namespace kf = keel::fmt;
using keel_test::describe;
using keel_test::describe_status;
using keel_test::env_u64;
using keel_test::h3;
using keel_test::mix;
using keel_test::read_root;
using keel_test::write_all;

// ====================================================================== 1. crash loop

namespace loop {

constexpr const char* kMap = "hm";
constexpr const char* kMeta = "hm_meta";
constexpr u64 kMaxKeys = 400'000;

struct meta {
  u64 count;  // transactions applied
  u64 check;  // mix(count)
};

struct op {
  int kind;  // 0 put, 1 erase, 2 insert, 3 update (value ^= v)
  u64 key, value;
};

// Transaction k (1-based): a pure function of (seed, k). Log-uniform 50..2000
// operations on a key space that grows with k (the map grows from empty).
std::vector<op> plan(u64 seed, u64 k) {
  const double u = static_cast<double>(h3(seed, k, 0) % 1000000) / 1e6;
  const auto n = static_cast<u64>(std::exp(std::log(50.0) + u * (std::log(2001.0) - std::log(50.0))));
  const u64 space = std::min<u64>(64 + 150 * k, kMaxKeys);
  std::vector<op> ops;
  ops.reserve(n);
  for (u64 i = 0; i < n; ++i) {
    const u64 r = h3(seed, k, i + 1);
    const u64 pick = r % 100;
    const int kind = pick < 62 ? 0 : pick < 88 ? 1 : pick < 94 ? 2 : 3;
    ops.push_back({kind, mix((r >> 8) % space + 1), h3(seed, k, i + 1'000'000) | 1});
  }
  return ops;
}

struct model {
  u64 seed = 0, count = 0;
  std::unordered_map<u64, u64> m;
  void apply_one(const op& o) {
    switch (o.kind) {
      case 0:
        m[o.key] = o.value;
        break;
      case 1:
        m.erase(o.key);
        break;
      case 2:
        m.emplace(o.key, o.value);
        break;
      default:
        if (auto it = m.find(o.key); it != m.end()) it->second ^= o.value;
    }
  }
  void apply(const std::vector<op>& ops) {
    for (const op& o : ops) apply_one(o);
  }
  void advance_to(u64 c) {
    while (count < c) apply(plan(seed, ++count));
  }
};

// Empty when the map in db holds exactly m.
std::string verify_map(keel::store& db, const keel::hash_map<u64, u64>& map, const model& md) {
  std::ostringstream o;
  const u64 s = map.size();
  if (s != md.m.size()) o << "size() " << s << ", model " << md.m.size() << "; ";
  u64 wrong = 0;
  for (const auto& [k, v] : md.m) {
    const std::optional<u64> got = map.get(k);
    if (got != std::optional<u64>(v) && wrong++ < 3)
      o << "get(" << k << ") = " << (got ? std::to_string(*got) : "<absent>") << ", model " << v << "; ";
  }
  if (wrong) o << wrong << " keys wrong; ";
  std::unordered_set<u64> seen;
  seen.reserve(md.m.size());
  u64 n = 0, dup = 0, extra = 0, badval = 0;
  map.for_each([&](const u64& k, const u64& v) {
    ++n;
    if (!seen.insert(k).second) ++dup;
    const auto it = md.m.find(k);
    if (it == md.m.end())
      ++extra;
    else if (it->second != v)
      ++badval;
  });
  if (dup || extra || badval || n != md.m.size())
    o << "for_each: " << n << " visits, " << dup << " duplicates, " << extra << " keys not in the model, " << badval
      << " wrong values, model has " << md.m.size() << "; ";
  (void)db;
  return o.str();
}

constexpr u64 kOpenTag = 0xFFFF'FFFF'4841'0001ull;
constexpr u64 kFailTag = 0xFFFF'FFFF'4841'0002ull;
// Commit reports: the transaction number, plus flags about the map it left.
constexpr u64 kMidResize = u64{1} << 62;  // a resize is running (old table still moving)
constexpr u64 kImminent = u64{1} << 61;   // the next transaction's inserts may start a resize
constexpr u64 kCountMask = kImminent - 1;

// One message per open (and one on a failure), in one write() (< PIPE_BUF).
struct report {
  u64 tag;
  u64 count;     // transactions found at open
  u64 verified;  // 1 when the child checked the whole map
  u64 recovery, recovered_records, old_groups;
  char msg[900];
};
static_assert(sizeof(report) < PIPE_BUF);

struct mode_cfg {
  std::string name;
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
  std::fprintf(stderr, "[hash_crash child %d] %s\n", static_cast<int>(::getpid()), what.c_str());
  ::_exit(3);
}

// md: the parent's model as of the last reported commit (inherited by fork).
[[noreturn]] void child_main(const std::string& path, const mode_cfg& cfg, model md, bool verify, int out) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    const keel::options opts = make_opts(cfg);
    auto db = keel::store::open(path, opts);
    auto map = keel::hash_map<u64, u64>::open(*db, kMap);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    const meta mt = db->read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{meta_root}); });
    if (mt.check != mix(mt.count)) child_fail(out, "meta block fails its check at open");
    report r{};
    r.tag = kOpenTag;
    r.count = mt.count;
    r.recovery = static_cast<u64>(db->info().recovery);
    r.recovered_records = db->info().recovered_records;
    r.old_groups = read_root(*db, map.root()).old.groups;
    if (mt.count < md.count || mt.count > md.count + 1)
      child_fail(out, "open found " + std::to_string(mt.count) + " transactions, last reported " +
                          std::to_string(md.count));
    md.advance_to(mt.count);
    if (verify) {
      const std::string bad = verify_map(*db, map, md);
      if (!bad.empty())
        child_fail(out, "after recovery of " + std::to_string(mt.count) + " transactions (" +
                            describe(read_root(*db, map.root())) + "): " + bad);
      r.verified = 1;
    }
    if (!write_all(out, &r, sizeof r)) child_fail(out, "pipe write failed");
    std::uint64_t expect = mt.count;
    for (;;) {
      const u64 k = expect + 1;
      const std::vector<op> ops = plan(md.seed, k);
      db->write([&](keel::write_txn& tx) {
        meta cur = tx.get(keel::ref<meta>{meta_root});
        if (cur.count != expect || cur.check != mix(cur.count))
          throw std::runtime_error("meta count " + std::to_string(cur.count) + ", expected " + std::to_string(expect));
        for (const op& o : ops) {
          const bool present = md.m.count(o.key) != 0;
          bool r2 = false;
          switch (o.kind) {
            case 0:
              r2 = map.put(tx, o.key, o.value) == !present;
              break;
            case 1:
              r2 = map.erase(tx, o.key) == present;
              break;
            case 2:
              r2 = map.insert(tx, o.key, o.value) == !present;
              break;
            default:
              r2 = map.update(tx, o.key, [&](u64& v) { v ^= o.value; }) == present;
          }
          if (!r2)
            throw std::runtime_error("transaction " + std::to_string(k) + ": op " + std::to_string(o.kind) + " on key " +
                                     std::to_string(o.key) + " returned the wrong result (present " +
                                     std::to_string(present) + ")");
          md.apply_one(o);
        }
        if (map.size(tx) != md.m.size())
          throw std::runtime_error("size(tx) " + std::to_string(map.size(tx)) + ", model " +
                                   std::to_string(md.m.size()));
        cur.count = k;
        cur.check = mix(k);
        tx.put(keel::ref<meta>{meta_root}, cur);
      });
      md.count = k;
      expect = k;
      const kf::map_root rt = read_root(*db, map.root());
      const u64 next_ops = plan(md.seed, k + 1).size();
      u64 word = k;
      if (rt.old.groups) word |= kMidResize;
      if ((rt.cur.used + next_ops) * 8 > rt.cur.groups * kf::kGroup * 7) word |= kImminent;
      if (!write_all(out, &word, sizeof word)) child_fail(out, "pipe write failed");
      const u64 q = h3(md.seed, k, 777);
      if (q % 61 == 0) db->checkpoint();
      if ((q >> 16) % 151 == 0) {  // clean close and reopen
        db->close();
        db.reset();
        db = keel::store::open(path, opts);
        map = keel::hash_map<u64, u64>::open(*db, kMap);
        if (db->info().recovered_records != 0) child_fail(out, "reopen after a clean close replayed log records");
      }
    }
  } catch (const std::exception& e) {
    child_fail(out, e.what());
  }
}

struct stats {
  int kills = 0, targeted = 0, early_kills = 0, inflight_present = 0, parent_verifies = 0, child_verifies = 0, mid_resize = 0,
      stores = 0, replays = 0;
  u64 commits = 0, ops = 0, max_size = 0, max_groups = 0;
  std::set<u64> table_sizes;
};

class run {
 public:
  run(const mode_cfg& cfg, int kills, u64 seed, clk::time_point deadline)
      : cfg_(cfg), kills_(kills), seed_(seed), rng_(seed), deadline_(deadline) {}

  void go() {
    new_store();
    for (int n = 1; n <= kills_; ++n) {
      kill_no_ = n;
      if (clk::now() > deadline_) {
        WARN_MESSAGE(false, ctx(), "time budget spent after ", n - 1, " of ", kills_, " kills");
        break;
      }
      // A fresh, empty store now and then: every store grows through the small resizes again.
      if (n > 1 && (md_.m.size() > 150'000 || (n - 1) % 20 == 0)) {
        parent_verify();
        new_store();
      }
      one_kill();
      if (rng_() % 3 != 0 || n == kills_) parent_verify();
    }
    REQUIRE_MESSAGE(st_.commits >= static_cast<u64>(st_.kills / 4), ctx(), "writers made too little progress: ",
                    st_.commits, " commits over ", st_.kills, " kills");
    MESSAGE(cfg_.name, ": ", st_.kills, " kills (", st_.targeted, " right after a commit next to a resize, ",
            st_.early_kills, " before the child finished opening, ",
            st_.inflight_present, " with the unreported in-flight transaction found), ", st_.commits, " commits, ",
            st_.ops, " map operations, ", st_.stores, " stores, ", st_.parent_verifies, " parent checks, ",
            st_.child_verifies, " child checks, ", st_.mid_resize, " recovered maps were in the middle of a resize, ",
            st_.replays, " opens replayed a log tail, ", st_.table_sizes.size(), " table sizes seen (largest ",
            st_.max_groups, " groups), largest map ", st_.max_size);
    total_kills_ += st_.kills;
  }
  static int total_kills_;

 private:
  std::string ctx() const {
    std::ostringstream o;
    o << "[mode " << cfg_.name << ", seed " << seed_ << ", store " << st_.stores << ", kill " << kill_no_ << "/"
      << kills_ << ", last reported " << md_.count << "] ";
    return o.str();
  }

  void new_store() {
    ++st_.stores;
    std::string name = std::to_string(st_.stores);
    name.insert(0, 1, 's');
    path_ = dir_.path(name);
    md_ = model{};
    md_.seed = mix(seed_ + static_cast<u64>(st_.stores));
    auto db = keel::store::open(path_, make_opts(cfg_));
    db->write([&](keel::write_txn& tx) {
      keel::hash_map<u64, u64>::open(*db, tx, kMap);
      tx.open_root(kMeta, keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<meta>());
      tx.set_root(kMeta, tx.create(meta{0, mix(0)}).off);
    });
    db->close();
    prev_clean_ = true;
  }

  void on_open(const report& r) {
    INFO(ctx(), "child opened: count ", r.count, ", recovery ", r.recovery, ", ", r.recovered_records,
         " records replayed");
    REQUIRE_MESSAGE((r.count >= md_.count && r.count <= md_.count + 1), "the store holds ", r.count,
                    " transactions, the last reported commit was ", md_.count);
    if (prev_clean_) REQUIRE_MESSAGE(r.count == md_.count, "after a clean close the store holds one more transaction");
    if (r.count == md_.count + 1) ++st_.inflight_present;
    if (r.verified) ++st_.child_verifies;
    if (r.old_groups) ++st_.mid_resize;
    if (r.recovered_records) ++st_.replays;
    md_.advance_to(r.count);
  }

  void on_commit(u64 word) {
    const u64 k = word & kCountMask;
    if (word & (kMidResize | kImminent)) flagged_ = true;
    REQUIRE_MESSAGE(k == md_.count + 1, ctx(), "child reported commit ", k);
    st_.ops += plan(md_.seed, k).size();
    md_.advance_to(k);
    ++st_.commits;
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
  // Reads what the child wrote (at most timeout_ms) and consumes the complete messages; false at EOF.
  bool pump(keel_test::child_proc& c, stream& s, int timeout_ms) {
    const std::size_t had = s.buf.size();
    if (!c.pump(s.buf, timeout_ms)) return false;
    if (s.buf.size() != had) parse(s, false);
    return true;
  }

  void one_kill() {
    const bool early = rng_() % 8 == 0;
    const bool verify = !prev_clean_;
    keel_test::child_proc c =
        keel_test::child_proc::spawn([&](int out) { child_main(path_, cfg_, md_, verify, out); });
    REQUIRE(c.pid() > 0);
    u64 delay_us;
    const u64 pick = rng_() % 10;
    // Targeted: kill within 0..1.5 ms of a commit that left a resize running or
    // precedes one (the next transaction moves or starts a table); else at
    // the random deadline.
    const bool targeted = !early && rng_() % 5 < 2;
    if (early)
      delay_us = rng_() % 3000;
    else if (targeted)
      delay_us = 1500000;
    else if (pick < 6)
      delay_us = 1000 + rng_() % 30000;
    else if (pick < 9)
      delay_us = 30000 + rng_() % 90000;
    else
      delay_us = 120000 + rng_() % 280000;
    stream s;
    flagged_ = false;
    auto deadline = clk::now() + std::chrono::microseconds(delay_us);
    bool hit = false;
    keel_test::pump_until(
        c, s.buf, 2,
        [&] {
          if (targeted && flagged_ && !hit) {
            hit = true;
            deadline = std::min(deadline, clk::now() + std::chrono::microseconds(rng_() % 1500));
          }
          return deadline;
        },
        [&] { parse(s, false); });
    if (hit) ++st_.targeted;
    const pid_t pid = c.pid();
    const int status = c.kill_and_wait();
    REQUIRE(status != -1);
    ++st_.kills;
    const auto drain_until = clk::now() + 10s;
    while (pump(c, s, 100)) REQUIRE_MESSAGE(clk::now() < drain_until, ctx(), "no EOF on the child's pipe");
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
    auto map = keel::hash_map<u64, u64>::open(*db, kMap);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    const meta mt = db->read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{meta_root}); });
    const kf::map_root rt = read_root(*db, map.root());
    INFO(ctx(), "parent opened: count ", mt.count, ", recovery ", db->info().recovery, ", ",
         db->info().recovered_records, " records replayed, map ", describe(rt));
    REQUIRE(mt.check == mix(mt.count));
    REQUIRE_MESSAGE((mt.count >= md_.count && mt.count <= md_.count + 1), "the store holds ", mt.count,
                    " transactions, the last reported commit was ", md_.count);
    if (prev_clean_) REQUIRE(mt.count == md_.count);
    if (mt.count == md_.count + 1) ++st_.inflight_present;
    if (db->info().recovered_records) ++st_.replays;
    md_.advance_to(mt.count);
    const std::string bad = verify_map(*db, map, md_);
    REQUIRE_MESSAGE(bad.empty(), bad);
    if (rt.old.groups) ++st_.mid_resize;
    st_.table_sizes.insert(rt.cur.groups);
    st_.max_groups = std::max(st_.max_groups, rt.cur.groups);
    st_.max_size = std::max<u64>(st_.max_size, md_.m.size());
    const keel::store_info in = db->info();
    REQUIRE_MESSAGE(in.live_bytes + in.free_bytes == in.arena_used - kf::kArenaOffset, "allocator accounting: live ",
                    in.live_bytes, " + free ", in.free_bytes, " != arena ", in.arena_used - kf::kArenaOffset);
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
  bool flagged_ = false;
  int kill_no_ = 0;
  stats st_;
};
int run::total_kills_ = 0;

}  // namespace loop

// ====================================================================== 2. readers during resizes

namespace rd {

constexpr const char* kMap = "hm";
constexpr const char* kMeta = "hm_meta";
constexpr u64 kPinned = 200;
constexpr u64 kCycle = 400;      // transactions per grow cycle (then clear)
constexpr u64 kSpanPerTxn = 300;  // key space growth per transaction of a cycle
constexpr u64 kMaxKey = kCycle * kSpanPerTxn + 64;
constexpr auto kHeartbeatLimit = 2000ms;

// 32 bytes: with the 8-byte key the benchmark's 40-byte slot, 102 to a
// page with a pad at its end (docs/FORMAT.md "Slots"). `tail`, the last
// word, is checked too, so a slot read at a wrong offset or half written
// shows.
struct val {
  u64 key, version, check, tail;
};
u64 check_of(u64 key, u64 version) { return mix(mix(key + 0x1234) ^ (version * 0x9E3779B97F4A7C15ull)); }
val make_val(u64 key, u64 version) {
  const u64 c = check_of(key, version);
  return {key, version, c, ~c};
}
// v is a value make_val wrote for key (at v's own version).
bool well_formed(u64 key, const val& v) {
  return v.key == key && v.check == check_of(key, v.version) && v.tail == ~v.check;
}
u64 pinned_key(u64 i) { return (u64{1} << 40) + i; }
bool is_pinned(u64 k) { return k >= pinned_key(0) && k < pinned_key(kPinned); }

struct meta {
  u64 count, check;
};

struct op {
  int kind;  // 0 put, 1 erase, 2 clear (then the pinned keys again)
  u64 key;
};
// Transaction t (1-based): a pure function of (seed, t).
std::vector<op> plan(u64 seed, u64 t) {
  std::vector<op> ops;
  const u64 pos = t % kCycle;
  if (pos == 0) {
    ops.push_back({2, 0});
    for (u64 i = 0; i < kPinned; ++i) ops.push_back({0, pinned_key(i)});
    return ops;
  }
  const u64 n = 20 + h3(seed, t, 0) % 380;
  const u64 space = 64 + pos * kSpanPerTxn;
  for (u64 i = 0; i < n; ++i) {
    const u64 r = h3(seed, t, i + 1);
    const u64 pick = r % 100;
    if (pick < 72)
      ops.push_back({0, (r >> 8) % space});
    else if (pick < 96)
      ops.push_back({1, (r >> 8) % space});
    else
      ops.push_back({0, pinned_key((r >> 8) % kPinned)});
  }
  return ops;
}
// Did transaction t put key? (What a reader checks a version against.)
bool wrote(u64 seed, u64 t, u64 key) {
  if (t == 0) return is_pinned(key);  // setup
  for (const op& o : plan(seed, t))
    if (o.kind == 0 && o.key == key) return true;
  return false;
}

struct reader_slot {
  std::atomic<u64> heartbeat{0}, gets{0}, walks{0}, walk_entries{0}, busy{0}, derived{0};
  char msg[512];
};
struct shared {
  std::atomic<int> stop{0};
  std::atomic<u64> started{0};    // highest transaction number any writer began to commit
  std::atomic<u64> committed{0};  // last commit of the current writer (or found at its open)
  std::atomic<u64> open_gen{0}, open_count{0}, commits{0}, mid_resize{0}, clears{0}, max_groups{0};
  char writer_msg[512];
  reader_slot readers[2];
};
void set_msg(char (&dst)[512], const std::string& m) { std::snprintf(dst, sizeof dst, "%s", m.c_str()); }

keel::options base_opts() {
  keel::options o;
  o.initial_size = keel::operator""_MiB(1);
  o.max_size = keel::operator""_GiB(2);
  return o;
}

void raise_to(std::atomic<u64>& a, u64 v) {
  u64 cur = a.load();
  while (cur < v && !a.compare_exchange_weak(cur, v)) {
  }
}

[[noreturn]] void writer_main(const std::string& path, shared* sh, u64 gen, keel::durability mode, u64 seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const std::string where = "writer gen " + std::to_string(gen) + " (pid " + std::to_string(::getpid()) + ")";
  try {
    keel::options o = base_opts();
    o.mode = mode;
    o.checkpoint_bytes = keel::operator""_MiB(2);
    o.batch_window = 5ms;
    o.lock_timeout = 5000ms;
    auto db = keel::store::open(path, o);
    auto map = keel::hash_map<u64, val>::open(*db, kMap);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    const meta mt = db->read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{meta_root}); });
    if (mt.check != mix(mt.count)) throw std::runtime_error("meta fails its check after recovery");
    u64 expect = mt.count;
    sh->committed.store(expect);
    sh->open_count.store(expect);
    sh->open_gen.store(gen);
    while (!sh->stop.load(std::memory_order_relaxed)) {
      const u64 t = expect + 1;
      const std::vector<op> ops = plan(seed, t);
      raise_to(sh->started, t);  // before the commit can become visible
      db->write([&](keel::write_txn& tx) {
        meta cur = tx.get(keel::ref<meta>{meta_root});
        if (cur.count != expect) throw std::runtime_error("meta count " + std::to_string(cur.count));
        for (const op& x : ops) {
          if (x.kind == 2)
            map.clear(tx);
          else if (x.kind == 1)
            map.erase(tx, x.key);
          else
            map.put(tx, x.key, make_val(x.key, t));
        }
        cur.count = t;
        cur.check = mix(t);
        tx.put(keel::ref<meta>{meta_root}, cur);
      });
      expect = t;
      sh->committed.store(t);
      sh->commits.fetch_add(1);
      if (ops[0].kind == 2) sh->clears.fetch_add(1);
      const kf::map_root rt = read_root(*db, map.root());
      if (rt.old.groups) sh->mid_resize.fetch_add(1);
      raise_to(sh->max_groups, rt.cur.groups);
    }
    db->close();
  } catch (const std::exception& e) {
    set_msg(sh->writer_msg, where + ": " + e.what());
    std::fprintf(stderr, "[hash_crash] %s: %s\n", where.c_str(), e.what());
    ::_exit(3);
  }
  ::_exit(0);
}

[[noreturn]] void reader_main(const std::string& path, shared* sh, int slot, u64 seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  reader_slot& me = sh->readers[slot];
  const std::string where = "reader " + std::to_string(slot) + " (pid " + std::to_string(::getpid()) + ")";
  auto fail = [&](const std::string& m) {
    set_msg(me.msg, where + ": " + m);
    std::fprintf(stderr, "[hash_crash] %s: %s\n", where.c_str(), m.c_str());
    ::_exit(1);
  };
  // A value read for key k: well-formed, from no future transaction, and
  // (sampled) written to k by transaction `version`.
  u64 sample = 0;
  auto check_val = [&](u64 k, const val& v, const char* how) {
    if (!well_formed(k, v))
      fail(std::string(how) + ": key " + std::to_string(k) + " has a malformed value {key " + std::to_string(v.key) +
           ", version " + std::to_string(v.version) + ", check " + std::to_string(v.check) + ", tail " +
           std::to_string(v.tail) + "}");
    const u64 started = sh->started.load();
    if (v.version > started)
      fail(std::string(how) + ": key " + std::to_string(k) + " has version " + std::to_string(v.version) +
           ", but no transaction after " + std::to_string(started) + " was started");
    if (++sample % 8 == 0) {
      if (!wrote(seed, v.version, k))
        fail(std::string(how) + ": key " + std::to_string(k) + " has version " + std::to_string(v.version) +
             ", but that transaction did not write it");
      me.derived.fetch_add(1);
    }
  };
  try {
    keel::options o = base_opts();
    o.read_only = true;
    o.read_timeout = 300ms;
    std::mt19937_64 rng(mix(seed ^ static_cast<u64>(::getpid())));
    u64 n = 0;
    std::unique_ptr<keel::store> db;
    std::unique_ptr<keel::hash_map<u64, val>> map;
    while (!sh->stop.load(std::memory_order_relaxed)) {
      me.heartbeat.fetch_add(1);
      try {
        if (++n % 3000 == 0 && db) {  // reopen now and then: opens race crashes too
          map.reset();
          db->close();
          db.reset();
        }
        if (!db) db = keel::store::open(path, o);
        if (!map) map = std::make_unique<keel::hash_map<u64, val>>(keel::hash_map<u64, val>::open(*db, kMap));
        if (n % 40 == 0) {
          std::unordered_set<u64> seen;
          u64 pinned = 0;
          map->for_each([&](const u64& k, const val& v) {
            if (!seen.insert(k).second) fail("for_each visited key " + std::to_string(k) + " twice in one walk");
            check_val(k, v, "for_each");
            if (is_pinned(k)) ++pinned;
          });
          if (pinned != kPinned)
            fail("a walk saw " + std::to_string(pinned) + " of the " + std::to_string(kPinned) +
                 " pinned keys (present throughout)");
          me.walks.fetch_add(1);
          me.walk_entries.fetch_add(seen.size());
        } else {
          for (int i = 0; i < 64; ++i) {
            const bool pin = i % 8 == 0;
            const u64 k = pin ? pinned_key(rng() % kPinned) : rng() % kMaxKey;
            const std::optional<val> v = map->get(k);
            if (v) check_val(k, *v, "get");
            if (pin && !v) fail("pinned key " + std::to_string(k) + " not found");
            me.gets.fetch_add(1);
          }
          const u64 s = map->size();
          if (s > kMaxKey + kPinned) fail("size() " + std::to_string(s));
        }
      } catch (const keel::error& e) {
        if (e.code() != keel::errc::busy) fail(std::string("read threw ") + e.what());
        me.busy.fetch_add(1);
      }
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  ::_exit(0);
}

class harness {
 public:
  harness(u64 seed, int kills) : seed_(seed), kills_(kills), rng_(seed) {
    sh_ = shm_.get();
    REQUIRE(sh_ != nullptr);
    path_ = dir_.path("store");
  }
  ~harness() {
    writer_ = {};
    readers_[0] = {};
    readers_[1] = {};
  }

  void go() {
    setup();
    for (int i = 0; i < 2; ++i) start_reader(i);
    start_writer();
    for (int n = 1; n <= kills_; ++n) {
      kill_no_ = n;
      const u64 pick = rng_() % 10;
      const u64 delay_us = pick < 2 ? rng_() % 5000 : pick < 7 ? 50000 + rng_() % 300000 : 350000 + rng_() % 600000;
      watch_for(std::chrono::microseconds(delay_us));
      kill_writer();
      if (rng_() % 6 == 0) watch_for(std::chrono::milliseconds(200 + rng_() % 400));  // no writer for a while
      if (rng_() % 5 == 0) {
        const int i = static_cast<int>(rng_() % 2);
        kill_reader(i);
        start_reader(i);
      }
      start_writer();
    }
    watch_for(500ms);
    stop_all();
    final_check();
  }

 private:
  std::string ctx() const {
    std::ostringstream o;
    o << "[seed " << seed_ << ", kill " << kill_no_ << "/" << kills_ << ", writer gen " << gen_ << ", committed "
      << lo_ << "] ";
    return o.str();
  }

  void setup() {
    auto db = keel::store::open(path_, base_opts());
    db->write([&](keel::write_txn& tx) {
      auto map = keel::hash_map<u64, val>::open(*db, tx, kMap);
      for (u64 i = 0; i < kPinned; ++i) map.put(tx, pinned_key(i), make_val(pinned_key(i), 0));
      tx.open_root(kMeta, keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<meta>());
      tx.set_root(kMeta, tx.create(meta{0, mix(0)}).off);
    });
    db->close();
  }

  void start_writer() {
    ++gen_;
    const keel::durability modes[] = {keel::durability::sync, keel::durability::batch, keel::durability::checkpoint};
    const keel::durability mode = modes[rng_() % 3];
    writer_ = keel_test::child_proc::spawn([&](int) { writer_main(path_, sh_, gen_, mode, seed_); });
    REQUIRE(writer_.pid() > 0);
  }

  void start_reader(int i) {
    reader_slot& s = sh_->readers[i];
    s.heartbeat = 0;
    s.gets = 0;
    s.walks = 0;
    s.walk_entries = 0;
    s.busy = 0;
    s.derived = 0;
    s.msg[0] = 0;
    readers_[i] = keel_test::child_proc::spawn([&](int) { reader_main(path_, sh_, i, seed_); });
    REQUIRE(readers_[i].pid() > 0);
    last_hb_[i] = 0;
    last_hb_change_[i] = clk::now();
  }

  void account_writer() {
    if (sh_->open_gen.load() == gen_) {
      const u64 r = sh_->open_count.load();
      REQUIRE_MESSAGE((r >= lo_ && r <= lo_ + 1), ctx(), "writer gen ", gen_, " recovered ", r,
                      " transactions; the last reported commit was ", lo_);
      if (r == lo_ + 1) ++inflight_present_;
    } else {
      ++early_kills_;
    }
    const u64 c = sh_->committed.load();
    REQUIRE_MESSAGE(c >= lo_, ctx(), "committed count went back to ", c);
    lo_ = c;
  }

  void kill_writer() {
    const int status = writer_.kill_and_wait();
    REQUIRE(status != -1);
    ++kills_done_;
    if (!keel_test::killed_by_sigkill(status))
      FAIL(ctx(), "writer ended on its own before the kill: ", describe_status(status), ": ",
           std::string(sh_->writer_msg));
    account_writer();
  }

  // pid: the reaped reader's.
  void finish_reader(int i, pid_t pid, int status, bool killed) {
    reader_slot& s = sh_->readers[i];
    const bool ok = killed ? keel_test::killed_by_sigkill(status) : WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
      FAIL(ctx(), "reader ", i, " (pid ", pid, ") failed: ", describe_status(status), ": ", std::string(s.msg));
    gets_ += s.gets.load();
    walks_ += s.walks.load();
    walk_entries_ += s.walk_entries.load();
    busy_ += s.busy.load();
    derived_ += s.derived.load();
  }

  void kill_reader(int i) {
    const pid_t pid = readers_[i].pid();
    const int status = readers_[i].kill_and_wait();
    REQUIRE(status != -1);
    ++reader_kills_;
    finish_reader(i, pid, status, true);
  }

  void check_children() {
    const auto now = clk::now();
    for (int i = 0; i < 2; ++i) {
      if (readers_[i].pid() <= 0) continue;
      int status = 0;
      if (const pid_t pid = readers_[i].pid(); readers_[i].try_wait(&status)) {
        FAIL(ctx(), "reader ", i, " (pid ", pid, ") ended early: ", describe_status(status), ": ",
             std::string(sh_->readers[i].msg));
      }
      const u64 hb = sh_->readers[i].heartbeat.load();
      if (hb != last_hb_[i]) {
        max_gap_ = std::max(max_gap_, now - last_hb_change_[i]);
        last_hb_[i] = hb;
        last_hb_change_[i] = now;
      } else if (now - last_hb_change_[i] > kHeartbeatLimit) {
        FAIL(ctx(), "reader ", i, " hung: no heartbeat for ",
             std::chrono::duration_cast<std::chrono::milliseconds>(now - last_hb_change_[i]).count(), " ms (gets ",
             sh_->readers[i].gets.load(), ", walks ", sh_->readers[i].walks.load(), ", busy ",
             sh_->readers[i].busy.load(), ")");
      }
    }
    if (writer_.pid() > 0) {
      int status = 0;
      if (writer_.try_wait(&status))
        FAIL(ctx(), "writer gen ", gen_, " ended early: ", describe_status(status), ": ", std::string(sh_->writer_msg));
    }
  }

  void watch_for(clk::duration d) {
    keel_test::watch_for(d, [&] { check_children(); });
  }

  void stop_all() {
    sh_->stop.store(1);
    int status = 0;
    const auto deadline = clk::now() + 20s;
    if (!keel_test::wait_until(writer_, &status, deadline)) FAIL(ctx(), "writer did not stop within 20 s");
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      FAIL(ctx(), "writer failed at stop: ", describe_status(status), ": ", std::string(sh_->writer_msg));
    account_writer();
    for (int i = 0; i < 2; ++i) {
      CHECK_MESSAGE(sh_->readers[i].gets.load() + sh_->readers[i].walks.load() > 0, ctx(), "reader ", i,
                    " made no successful read (busy ", sh_->readers[i].busy.load(), ")");
      const auto dl = clk::now() + 10s;
      const pid_t pid = readers_[i].pid();
      if (!keel_test::wait_until(readers_[i], &status, dl)) FAIL(ctx(), "reader ", i, " did not stop within 10 s");
      finish_reader(i, pid, status, false);
    }
  }

  void final_check() {
    auto db = keel::store::open(path_, base_opts());
    auto map = keel::hash_map<u64, val>::open(*db, kMap);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    const meta mt = db->read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{meta_root}); });
    REQUIRE(mt.check == mix(mt.count));
    CHECK_MESSAGE(mt.count == lo_, ctx(), "final store has ", mt.count, " transactions, the writer reported ", lo_);
    // The model after mt.count transactions.
    std::unordered_map<u64, u64> model;  // key -> version
    for (u64 i = 0; i < kPinned; ++i) model[pinned_key(i)] = 0;
    for (u64 t = 1; t <= mt.count; ++t)
      for (const op& o : plan(seed_, t)) {
        if (o.kind == 2)
          model.clear();
        else if (o.kind == 1)
          model.erase(o.key);
        else
          model[o.key] = t;
      }
    CHECK_MESSAGE(map.size() == model.size(), ctx(), "final size ", map.size(), ", model ", model.size());
    u64 wrong = 0;
    for (const auto& [k, ver] : model) {
      const std::optional<val> v = map.get(k);
      if (!v || v->version != ver || !well_formed(k, *v)) ++wrong;
    }
    CHECK_MESSAGE(wrong == 0, ctx(), wrong, " keys differ from the model after ", mt.count, " transactions");
    u64 n = 0;
    std::unordered_set<u64> seen;
    map.for_each([&](const u64& k, const val&) {
      ++n;
      seen.insert(k);
    });
    CHECK_MESSAGE((n == model.size() && seen.size() == model.size()), ctx(), "final walk: ", n, " visits, ",
                  seen.size(), " distinct, model ", model.size());
    const keel::store_info info = db->info();
    CHECK(info.live_bytes + info.free_bytes == info.arena_used - kf::kArenaOffset);
    db->close();
    REQUIRE_MESSAGE(sh_->commits.load() > 0, ctx(), "the writers committed nothing");
    CHECK_MESSAGE(walks_ > 0, ctx(), "no complete for_each walk");
    CHECK_MESSAGE(derived_ > 0, ctx(), "no value was traced back to its transaction");
    MESSAGE("readers during resizes: ", kills_done_, " writer kills (", early_kills_,
            " before the writer finished open, ", inflight_present_, " with the in-flight commit found), ",
            reader_kills_, " reader kills, ", sh_->commits.load(), " commits (", sh_->mid_resize.load(),
            " left a resize running, ", sh_->clears.load(), " clears, largest table ", sh_->max_groups.load(),
            " groups), final count ", mt.count, ", size ", model.size(), "; readers: ", gets_, " gets, ", walks_,
            " walks (", walk_entries_, " entries), ", derived_, " values traced to their transaction, ", busy_,
            " busy, longest heartbeat gap ",
            std::chrono::duration_cast<std::chrono::milliseconds>(max_gap_).count(), " ms");
  }

  keel_test::temp_dir dir_;
  std::string path_;
  u64 seed_;
  int kills_;
  std::mt19937_64 rng_;
  keel_test::shared_block<shared> shm_;
  shared* sh_ = nullptr;
  keel_test::child_proc writer_, readers_[2];
  u64 last_hb_[2] = {};
  clk::time_point last_hb_change_[2];
  clk::duration max_gap_{};
  u64 gen_ = 0, lo_ = 0;
  int kill_no_ = 0, kills_done_ = 0, reader_kills_ = 0, early_kills_ = 0, inflight_present_ = 0;
  u64 gets_ = 0, walks_ = 0, walk_entries_ = 0, busy_ = 0, derived_ = 0;
};

}  // namespace rd

u64 seed_from_env() {
  static const u64 s =
      env_u64("KEEL_CRASH_SEED", static_cast<u64>(clk::now().time_since_epoch().count()) & 0xFFFFFFFFull);
  return s;
}

}  // namespace

TEST_CASE("hash map crash loop: SIGKILL a writer mid-resize, recover, compare with the model") {
  const u64 total = std::max<u64>(env_u64("KEEL_CRASH_KILLS", 240) / 2, 3);
  const u64 seed = seed_from_env();
  MESSAGE("hash_crash: seed ", seed, " (set KEEL_CRASH_SEED to repeat), ", total, " kills over three modes");
  const loop::mode_cfg modes[] = {
      {"sync", keel::durability::sync, keel::operator""_MiB(2)},
      {"batch", keel::durability::batch, keel::operator""_MiB(4)},
      {"checkpoint", keel::durability::checkpoint, keel::operator""_MiB(4)},
  };
  const auto t0 = clk::now();
  // ~90 s for the default count; proportionally more for long runs.
  const auto budget = std::chrono::milliseconds(static_cast<std::int64_t>(90'000 * std::max<u64>(total, 120) / 120));
  for (std::size_t i = 0; i < std::size(modes); ++i) {
    const int kills = static_cast<int>(total / 3 + (i < total % 3 ? 1 : 0));
    const auto deadline = t0 + budget * static_cast<std::int64_t>(i + 1) / 3;
    loop::run r(modes[i], kills, seed + i, deadline);
    r.go();
  }
  CHECK_MESSAGE(loop::run::total_kills_ >= static_cast<int>(std::min<u64>(total, 100)), "only ",
                loop::run::total_kills_, " kills within the time budget");
  MESSAGE("hash_crash loop: ", loop::run::total_kills_, " kills in ",
          std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count(), " ms");
}

TEST_CASE("hash map readers stay consistent and live during resizes while the writer is SIGKILLed") {
  const int kills = static_cast<int>(std::max<u64>(3, env_u64("KEEL_CRASH_KILLS", 240) * 15 / 240));
  const u64 seed = seed_from_env() ^ 0x5EED;
  MESSAGE("hash readers: seed ", seed, " (KEEL_CRASH_SEED ", seed_from_env(), "), ", kills, " writer kills");
  const auto t0 = clk::now();
  rd::harness h(seed, kills);
  h.go();
  MESSAGE("hash readers: ", std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count(), " ms");
}
