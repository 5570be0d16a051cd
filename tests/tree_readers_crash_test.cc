// B+tree readers in other processes while the writer appends, erases and is
// SIGKILLed.
//
// A writer child commits seeded transactions on a tree_map<u64, rval>: puts
// and erases of random keys, small range erases, a run of appends above every
// key (a time series) and a retention range erase of the oldest appended keys
// (merges at the left edge), and updates of 256 pinned keys that are never
// erased. Every value is {key, version, check}: version is the transaction
// that wrote it. Two read-only reader processes loop over lock-free gets,
// full forward walks (the engine runs them in chunks: many chunks per walk),
// reverse range walks and forward range walks with early stops, and check:
// every value belongs to its key and passes its check, its version is not
// beyond the last commit (+1 in flight) and, for a sample, re-derived from the
// seed, that transaction really wrote that key; walks are strictly ordered
// (no key twice); every full walk sees all 256 pinned keys; gets of pinned
// keys always find them. Readers may get errc::busy (counted), nothing else;
// a reader that crashes or hangs (heartbeat) fails the test. The parent kills
// the writer at random moments and starts another (it recovers), sometimes
// kills and restarts a reader; at the end the tree must equal the model after
// the final count and pass detail::tree_check.
//
// Environment:
//   KEEL_CRASH_KILLS  scales the writer kills (240 = default: 16 here)
//   KEEL_CRASH_SEED   seed (default: from the clock; printed)
#include <doctest/doctest.h>
#include <keel/keel.h>
#include <keel/tree_map.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/inspect.h"
#include "support/proc.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using u64 = std::uint64_t;
using keel_test::describe_status;
using keel_test::env_u64;
using keel_test::h3;
using keel_test::mix;

constexpr const char* kTree = "series";
constexpr const char* kMeta = "series_meta";
constexpr u64 kPinned = 256;
constexpr u64 kBlock = 1024;                 // pinned key i is i * kBlock
constexpr u64 kRandomSpace = kPinned * kBlock;  // random keys below this, never a multiple of kBlock
constexpr u64 kAppendBase = u64{1} << 40;    // appended keys: kAppendBase + t * 4096 + i
constexpr u64 kRetain = 40;                  // transactions of appended keys kept
constexpr auto kHeartbeatLimit = 3000ms;

struct rval {
  u64 key, version, check;
};
u64 check_of(u64 key, u64 version) { return mix(key ^ mix(version + 0x77)); }
rval make_val(u64 key, u64 version) { return {key, version, check_of(key, version)}; }
u64 pinned_key(u64 i) { return i * kBlock; }
bool is_pinned(u64 k) { return k < kRandomSpace && k % kBlock == 0; }

struct meta {
  u64 count, check;
};

struct wop {
  int kind;  // 0 put (version t), 1 erase, 2 erase_range [a, b), 3 append (version t)
  u64 a, b;
};

u64 random_key(u64 r) {
  u64 k = r % kRandomSpace;
  return k % kBlock == 0 ? k + 1 : k;
}

// Transaction t (1-based): a pure function of (seed, t).
std::vector<wop> plan(u64 seed, u64 t) {
  std::vector<wop> ops;
  const u64 n = 10 + h3(seed, t, 0) % 250;
  for (u64 i = 0; i < n; ++i) {
    const u64 r = h3(seed, t, i + 1);
    const u64 pick = r % 100;
    if (pick < 55)
      ops.push_back({0, random_key(r >> 8), 0});
    else if (pick < 93)
      ops.push_back({1, random_key(r >> 8), 0});
    else if (pick < 95) {  // a window inside one block: never a pinned key
      const u64 blk = (r >> 8) % kPinned;
      const u64 a = blk * kBlock + 1 + (r >> 20) % 1000;
      ops.push_back({2, a, std::min(a + (r >> 40) % 200, (blk + 1) * kBlock)});
    } else {
      ops.push_back({0, pinned_key((r >> 8) % kPinned), 0});
    }
  }
  const u64 na = h3(seed, t, 999) % 3 == 0 ? 0 : h3(seed, t, 998) % 400;
  for (u64 i = 0; i < na; ++i) ops.push_back({3, kAppendBase + t * 4096 + i, 0});
  if (t > kRetain && h3(seed, t, 997) % 4 == 0) ops.push_back({2, kAppendBase, kAppendBase + (t - kRetain) * 4096});
  return ops;
}
bool wrote(u64 seed, u64 version, u64 key) {
  if (version == 0) return is_pinned(key);
  for (const wop& o : plan(seed, version))
    if ((o.kind == 0 || o.kind == 3) && o.a == key) return true;
  return false;
}

// ------------------------------------------------------------ shared state

struct reader_slot {
  std::atomic<u64> heartbeat{0}, gets{0}, walks{0}, walk_entries{0}, range_walks{0}, busy{0}, derived{0};
  char msg[512];
};
struct shared {
  std::atomic<int> stop{0};
  std::atomic<u64> committed{0};  // the last transaction committed (or found at open) by the current writer
  std::atomic<u64> open_gen{0}, open_count{0};
  std::atomic<u64> commits{0}, appends{0}, retention_erases{0};
  char writer_msg[512];
  reader_slot readers[2];
};
void set_msg(char (&dst)[512], const std::string& m) { std::snprintf(dst, sizeof dst, "%s", m.c_str()); }

keel::options base_opts() {
  keel::options o;
  o.initial_size = keel::operator""_MiB(1);
  o.max_size = keel::operator""_GiB(1);
  o.checkpoint_bytes = keel::operator""_MiB(4);
  o.lock_timeout = 5000ms;
  return o;
}

[[noreturn]] void writer_main(const std::string& path, shared* sh, u64 gen, keel::durability mode, u64 seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    keel::options o = base_opts();
    o.mode = mode;
    auto db = keel::store::open(path, o);
    auto t = keel::tree_map<u64, rval>::open(*db, kTree);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    meta mt = db->read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{meta_root}); });
    if (mt.check != mix(mt.count)) throw std::runtime_error("meta fails its check at open");
    sh->open_count.store(mt.count);
    sh->committed.store(mt.count);
    sh->open_gen.store(gen);
    while (!sh->stop.load(std::memory_order_relaxed)) {
      const u64 k = mt.count + 1;
      const std::vector<wop> ops = plan(seed, k);
      u64 appends = 0, retention = 0;
      db->write([&](keel::write_txn& tx) {
        meta cur = tx.get(keel::ref<meta>{meta_root});
        if (cur.count != mt.count) throw std::runtime_error("meta count moved under the writer");
        for (const wop& w : ops) switch (w.kind) {
            case 0:
              t.put(tx, w.a, make_val(w.a, k));
              break;
            case 1:
              t.erase(tx, w.a);
              break;
            case 2:
              if (w.a == kAppendBase) retention += t.erase_range(tx, w.a, w.b);
              else
                t.erase_range(tx, w.a, w.b);
              break;
            default:
              t.append(tx, w.a, make_val(w.a, k));
              ++appends;
          }
        cur = {k, mix(k)};
        tx.put(keel::ref<meta>{meta_root}, cur);
        mt = cur;
      });
      sh->committed.store(k);
      sh->commits.fetch_add(1);
      sh->appends.fetch_add(appends);
      sh->retention_erases.fetch_add(retention);
    }
    db->close();
  } catch (const std::exception& e) {
    set_msg(sh->writer_msg, e.what());
    ::_exit(3);
  }
  ::_exit(0);
}

[[noreturn]] void reader_main(const std::string& path, shared* sh, int idx, u64 seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  reader_slot& me = sh->readers[idx];
  auto fail = [&](const std::string& m) {
    set_msg(me.msg, m);
    std::fprintf(stderr, "[tree reader %d] %s\n", idx, m.c_str());
    ::_exit(3);
  };
  std::mt19937_64 rng(mix(seed ^ static_cast<u64>(::getpid())));
  u64 sampled = 0;
  // Checks a value seen for key k; `bound` is the committed count read after the read.
  auto check_val = [&](u64 k, const rval& v, const char* how) {
    if (v.key != k || v.check != check_of(k, v.version))
      fail(std::string(how) + ": key " + std::to_string(k) + " holds a value for key " + std::to_string(v.key) +
           ", version " + std::to_string(v.version) + (v.check != check_of(v.key, v.version) ? " (bad check)" : ""));
    const u64 bound = sh->committed.load() + 1;
    if (v.version > bound)
      fail(std::string(how) + ": key " + std::to_string(k) + " has version " + std::to_string(v.version) +
           ", beyond the last commit " + std::to_string(bound - 1) + " (+1 in flight)");
    if (++sampled % 97 == 0) {
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
    u64 n = 0;
    std::unique_ptr<keel::store> db;
    std::unique_ptr<keel::tree_map<u64, rval>> t;
    while (!sh->stop.load(std::memory_order_relaxed)) {
      me.heartbeat.fetch_add(1);
      try {
        if (++n % 500 == 0 && db) {  // reopen now and then: opens race crashes too
          t.reset();
          db->close();
          db.reset();
        }
        if (!db) db = keel::store::open(path, o);
        if (!t) t = std::make_unique<keel::tree_map<u64, rval>>(keel::tree_map<u64, rval>::open(*db, kTree));
        const u64 what = n % 10;
        if (what == 0) {  // full forward walk
          u64 prev = 0, pinned = 0, seen = 0;
          bool first = true;
          t->for_each([&](const u64& k, const rval& v) {
            if (!first && k <= prev)
              fail("full walk: key " + std::to_string(k) + " after " + std::to_string(prev) +
                   (k == prev ? " (twice)" : " (out of order)"));
            first = false;
            prev = k;
            check_val(k, v, "full walk");
            if (is_pinned(k)) ++pinned;
            ++seen;
            me.heartbeat.fetch_add(1);
          });
          if (pinned != kPinned)
            fail("a full walk saw " + std::to_string(pinned) + " of the " + std::to_string(kPinned) +
                 " pinned keys (present throughout)");
          me.walks.fetch_add(1);
          me.walk_entries.fetch_add(seen);
        } else if (what < 4) {  // range walk, either direction, sometimes stopped early
          const bool rev = what == 1;
          u64 lo = rng() % 2 ? rng() % kRandomSpace : kAppendBase + rng() % (sh->committed.load() * 4096 + 1);
          u64 hi = lo + 1 + rng() % (rng() % 2 ? 200000 : 20000);
          if (rng() % 5 == 0) {
            lo = 0;
            hi = ~u64{0};
          }
          const u64 limit = rng() % 3 == 0 ? 1 + rng() % 50 : ~u64{0};
          u64 prev = 0, seen = 0, pinned = 0;
          auto f = [&](const u64& k, const rval& v) {
            if (k < lo || k >= hi) fail("range walk returned key " + std::to_string(k) + " outside the range");
            if (seen > 0 && (rev ? k >= prev : k <= prev))
              fail(std::string(rev ? "reverse" : "forward") + " range walk: key " + std::to_string(k) + " after " +
                   std::to_string(prev));
            prev = k;
            check_val(k, v, "range walk");
            if (is_pinned(k)) ++pinned;
            return ++seen < limit;
          };
          if (rev)
            t->for_each_reverse(lo, hi, f);
          else
            t->for_each(lo, hi, f);
          if (limit == ~u64{0}) {  // every pinned key in the range was seen
            u64 want = 0;
            for (u64 i = 0; i < kPinned; ++i) want += pinned_key(i) >= lo && pinned_key(i) < hi;
            if (pinned != want)
              fail("a range walk [" + std::to_string(lo) + ", " + std::to_string(hi) + ") saw " +
                   std::to_string(pinned) + " of its " + std::to_string(want) + " pinned keys");
          }
          me.range_walks.fetch_add(1);
        } else {
          for (int i = 0; i < 64; ++i) {
            const bool pin = i % 4 == 0;
            const u64 k = pin ? pinned_key(rng() % kPinned)
                              : rng() % 2 ? random_key(rng()) : kAppendBase + rng() % (sh->committed.load() * 4096 + 1);
            const auto v = t->get(k);
            if (v) check_val(k, *v, "get");
            if (pin && !v) fail("pinned key " + std::to_string(k) + " not found");
            me.gets.fetch_add(1);
          }
          if (const auto f = t->first(); !f || f->first != 0) fail("first() is not pinned key 0");
          if (const auto l = t->last()) check_val(l->first, l->second, "last");
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
      if (rng_() % 6 == 0) watch_for(std::chrono::milliseconds(100 + rng_() % 300));  // no writer for a while
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
    o << "[seed " << seed_ << ", kill " << kill_no_ << "/" << kills_ << ", writer gen " << gen_ << ", committed " << lo_
      << "] ";
    return o.str();
  }

  void setup() {
    auto db = keel::store::open(path_, base_opts());
    db->write([&](keel::write_txn& tx) {
      auto t = keel::tree_map<u64, rval>::open(*db, tx, kTree);
      for (u64 i = 0; i < kPinned; ++i) t.put(tx, pinned_key(i), make_val(pinned_key(i), 0));
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
    s.range_walks = 0;
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
    ++kills_done_;
    if (!keel_test::killed_by_sigkill(status))
      FAIL(ctx(), "writer ended on its own before the kill: ", describe_status(status), ": ",
           std::string(sh_->writer_msg));
    account_writer();
  }

  void finish_reader(int i, int status, bool killed) {
    reader_slot& s = sh_->readers[i];
    const bool ok = killed ? keel_test::killed_by_sigkill(status) : WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) FAIL(ctx(), "reader ", i, " failed: ", describe_status(status), ": ", std::string(s.msg));
    gets_ += s.gets.load();
    walks_ += s.walks.load();
    walk_entries_ += s.walk_entries.load();
    range_walks_ += s.range_walks.load();
    busy_ += s.busy.load();
    derived_ += s.derived.load();
  }
  void kill_reader(int i) {
    const int status = readers_[i].kill_and_wait();
    ++reader_kills_;
    finish_reader(i, status, true);
  }

  void check_children() {
    const auto now = clk::now();
    for (int i = 0; i < 2; ++i) {
      if (readers_[i].pid() <= 0) continue;
      int status = 0;
      if (readers_[i].try_wait(&status))
        FAIL(ctx(), "reader ", i, " ended early: ", describe_status(status), ": ", std::string(sh_->readers[i].msg));
      const u64 hb = sh_->readers[i].heartbeat.load();
      if (hb != last_hb_[i]) {
        max_gap_ = std::max(max_gap_, now - last_hb_change_[i]);
        last_hb_[i] = hb;
        last_hb_change_[i] = now;
      } else if (now - last_hb_change_[i] > kHeartbeatLimit) {
        FAIL(ctx(), "reader ", i, " hung: no heartbeat for ",
             std::chrono::duration_cast<std::chrono::milliseconds>(now - last_hb_change_[i]).count(), " ms");
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
      const auto dl = clk::now() + 10s;
      if (!keel_test::wait_until(readers_[i], &status, dl)) FAIL(ctx(), "reader ", i, " did not stop within 10 s");
      finish_reader(i, status, false);
    }
  }

  void final_check() {
    auto db = keel::store::open(path_, base_opts());
    auto t = keel::tree_map<u64, rval>::open(*db, kTree);
    const u64 meta_root = db->read([](const keel::read_view& v) { return v.find(kMeta)->root; });
    const meta mt = db->read([&](const keel::read_view& v) { return v.get(keel::ref<meta>{meta_root}); });
    REQUIRE(mt.check == mix(mt.count));
    CHECK_MESSAGE(mt.count == lo_, ctx(), "final store has ", mt.count, " transactions, the writer reported ", lo_);
    std::map<u64, u64> model;  // key -> version
    for (u64 i = 0; i < kPinned; ++i) model[pinned_key(i)] = 0;
    for (u64 k = 1; k <= mt.count; ++k)
      for (const wop& w : plan(seed_, k)) {
        if (w.kind == 0 || w.kind == 3)
          model[w.a] = k;
        else if (w.kind == 1)
          model.erase(w.a);
        else
          for (auto it = model.lower_bound(w.a); it != model.end() && it->first < w.b;) it = model.erase(it);
      }
    CHECK_MESSAGE(t.size() == model.size(), ctx(), "final size ", t.size(), ", model ", model.size());
    auto it = model.begin();
    u64 wrong = 0, n = 0;
    t.for_each([&](const u64& k, const rval& v) {
      if (it == model.end() || it->first != k || v.version != it->second || v.check != check_of(k, v.version)) ++wrong;
      if (it != model.end()) ++it;
      ++n;
    });
    CHECK_MESSAGE((wrong == 0 && n == model.size()), ctx(), wrong, " entries differ from the model after ", mt.count,
                  " transactions (walk of ", n, ", model ", model.size(), ")");
    const auto problems = db->read([&](const keel::read_view& v) {
      std::vector<std::pair<u64, std::string>> p;
      keel::detail::tree_check(v, t.root(), p);
      return p;
    });
    CHECK_MESSAGE(problems.empty(), ctx(), "tree_check: ", problems.empty() ? "" : problems[0].second);
    const auto st = db->read([&](const keel::read_view& v) { return keel::detail::tree_stat(v, t.root()); });
    db->close();
    REQUIRE_MESSAGE(sh_->commits.load() > 0, ctx(), "the writers committed nothing");
    CHECK_MESSAGE(walks_ > 0, ctx(), "no complete full walk");
    CHECK_MESSAGE(range_walks_ > 0, ctx(), "no range walk");
    CHECK_MESSAGE(derived_ > 0, ctx(), "no value was traced back to its transaction");
    MESSAGE("tree readers: ", kills_done_, " writer kills (", early_kills_, " before the writer finished open, ",
            inflight_present_, " with the in-flight commit found), ", reader_kills_, " reader kills, ",
            sh_->commits.load(), " commits (", sh_->appends.load(), " appends, ", sh_->retention_erases.load(),
            " erased by retention), final count ", mt.count, ", ", model.size(), " entries, height ", st.height, ", ",
            st.leaves, " leaves; readers: ", gets_, " gets, ", walks_, " full walks (", walk_entries_, " entries), ",
            range_walks_, " range walks, ", derived_, " values traced to their transaction, ", busy_,
            " busy, longest heartbeat gap ", std::chrono::duration_cast<std::chrono::milliseconds>(max_gap_).count(),
            " ms");
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
  u64 gets_ = 0, walks_ = 0, walk_entries_ = 0, range_walks_ = 0, busy_ = 0, derived_ = 0;
};

}  // namespace

TEST_CASE("tree readers in other processes: ordered walks, committed values, pinned keys, while the writer is SIGKILLed") {
  const int kills = static_cast<int>(std::max<u64>(3, env_u64("KEEL_CRASH_KILLS", 240) * 16 / 240));
  const u64 seed =
      env_u64("KEEL_CRASH_SEED", static_cast<u64>(clk::now().time_since_epoch().count()) & 0xFFFFFFFFull) ^ 0x7EE;
  MESSAGE("tree readers: seed ", seed, " (KEEL_CRASH_SEED ^ 0x7EE), ", kills, " writer kills");
  const auto t0 = clk::now();
  harness h(seed, kills);
  h.go();
  MESSAGE("tree readers: ", std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count(), " ms");
}
