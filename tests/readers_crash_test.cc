// Readers during crashes: a writer child moves amounts between N counters
// (every transaction keeps their sum S) as fast as it can, while two
// read-only reader children sum the counters in lock-free reads and check
// every counter's checksum word. The parent SIGKILLs the writer at random
// moments and starts a new one (which recovers, and must find the sum
// intact); sometimes it also kills a reader and starts another. A reader
// fails (non-zero exit) on a wrong sum, a bad checksum, a transaction count
// going backwards, or any error other than errc::busy; the parent also
// requires every reader to make progress and to heartbeat at least every 2 s.
//
// Environment:
//   KEEL_CRASH_KILLS  scales the number of writer kills (240 = default 50 here)
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
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
using keel_test::env_u64;

constexpr int kCounters = 100;
constexpr std::int64_t kInitial = 1000;
constexpr std::int64_t kSum = kCounters * kInitial;
constexpr const char* kName = "counters";
constexpr std::uint64_t kHeaderMagic = 0x4b45454c43545253ull;
constexpr std::uint64_t kSeqlockOffset = 2 * 4096 + 128;  // docs/FORMAT.md: control page seqlock
constexpr auto kHeartbeatLimit = 2000ms;
constexpr std::uint64_t kBallastBytes = 256 * 1024;
constexpr std::uint64_t kMaxBallast = 96;  // 24 MiB

// 128-byte records so the block spans several pages and a transfer often
// changes two of them: a torn view would show one side of a transfer only.
struct rec {
  std::int64_t value;
  std::uint64_t version;  // transfers this counter took part in
  std::uint64_t check;    // check_of(i, value, version)
  std::uint64_t pad[13];
};
struct header {
  std::uint64_t magic;
  std::uint64_t txns;  // = catalog aux
  std::uint64_t count;
  // Large blocks allocated now and then (never freed: replacing them with
  // blocks of other sizes would run into the allocator's unbounded growth,
  // see crash_loop_test.cc), so the file grows under the readers. The newest
  // one's first word is ballast_tag and its last word ~ballast_tag.
  std::uint64_t ballast_off, ballast_size, ballast_tag, ballast_count;
  std::uint64_t pad[9];
};
struct block {
  header h;
  rec r[kCounters];
};
static_assert(sizeof(rec) == 128 && sizeof(header) == 128);
constexpr std::size_t kBlockBytes = sizeof(block);  // 12928: 4 pages

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
std::uint64_t check_of(int i, std::int64_t value, std::uint64_t version) {
  return mix(mix(static_cast<std::uint64_t>(i) + 0x1234) ^ mix(static_cast<std::uint64_t>(value) * 31 + version));
}

// ------------------------------------------------------------ shared state

struct reader_slot {
  std::atomic<std::uint64_t> heartbeat{0};
  std::atomic<std::uint64_t> reads_ok{0};
  std::atomic<std::uint64_t> busy{0};
  std::atomic<std::uint64_t> last_txns{0};
  char msg[512];
};

struct shared {
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> committed{0};  // last transaction the current writer committed (or found at open)
  std::atomic<std::uint64_t> open_gen{0};   // writer generation that finished open + check
  std::atomic<std::uint64_t> open_txns{0};  // transactions it found
  std::atomic<std::uint64_t> commits{0};    // by all writers
  char writer_msg[512];
  reader_slot readers[2];
};

void set_msg(char (&dst)[512], const std::string& m) {
  std::snprintf(dst, sizeof dst, "%s", m.c_str());
}

keel::options base_opts() {
  keel::options o;
  o.initial_size = keel::operator""_MiB(1);
  o.max_size = keel::operator""_MiB(256);
  return o;
}

// Empty when the block is a consistent state of the counters.
std::string check_block(const block& b, std::uint64_t aux) {
  std::ostringstream o;
  if (b.h.magic != kHeaderMagic || b.h.count != kCounters) {
    o << "bad header (magic " << std::hex << b.h.magic << std::dec << ", count " << b.h.count << ")";
    return o.str();
  }
  if (b.h.txns != aux) o << "header says " << b.h.txns << " transactions, catalog aux says " << aux << "; ";
  std::int64_t sum = 0;
  int bad = 0;
  for (int i = 0; i < kCounters; ++i) {
    sum += b.r[i].value;
    if (b.r[i].check != check_of(i, b.r[i].value, b.r[i].version) && bad++ == 0)
      o << "counter " << i << " (value " << b.r[i].value << ", version " << b.r[i].version << ") fails its checksum; ";
  }
  if (bad > 1) o << bad << " counters fail their checksum; ";
  if (sum != kSum) o << "sum " << sum << " != " << kSum << " at transaction " << b.h.txns << "; ";
  return o.str();
}

struct read_result {
  bool found = false;
  std::uint64_t aux = 0, root = 0;
  std::uint64_t ballast_first = 0, ballast_last = 0;
  block b;
};

std::string check_result(const read_result& r) {
  std::string bad = check_block(r.b, r.aux);
  const header& h = r.b.h;
  if (h.ballast_size && (r.ballast_first != h.ballast_tag || r.ballast_last != ~h.ballast_tag))
    bad += "ballast block at " + std::to_string(h.ballast_off) + " (+" + std::to_string(h.ballast_size) +
           ") does not hold its tag " + std::to_string(h.ballast_tag) + "; ";
  return bad;
}

read_result read_block(const keel::store& db) {
  return db.read([](const keel::read_view& v) {
    read_result r;
    auto e = v.find(kName);
    if (!e) return r;
    r.found = true;
    r.aux = e->aux;
    r.root = e->root;
    std::memcpy(&r.b, v.bytes(e->root, kBlockBytes), kBlockBytes);
    if (const std::uint64_t n = r.b.h.ballast_size; n >= 16) {  // touches the far end of a grown file
      std::memcpy(&r.ballast_first, v.bytes(r.b.h.ballast_off, 8), 8);
      std::memcpy(&r.ballast_last, v.bytes(r.b.h.ballast_off + n - 8, 8), 8);
    }
    return r;
  });
}

// ------------------------------------------------------------ children

[[noreturn]] void writer_main(const std::string& path, shared* sh, std::uint64_t gen, keel::durability mode,
                              std::uint64_t seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::string where = "writer gen " + std::to_string(gen) + " (pid " + std::to_string(::getpid()) + ")";
  try {
    keel::options o = base_opts();
    o.mode = mode;
    o.checkpoint_bytes = keel::operator""_KiB(64);
    o.batch_window = 5ms;
    o.lock_timeout = 5000ms;
    auto db = keel::store::open(path, o);
    read_result rr = read_block(*db);
    if (!rr.found) throw std::runtime_error("catalog entry missing after recovery");
    const std::string bad = check_result(rr);
    if (!bad.empty())
      throw std::runtime_error("after recovery (recovery " + std::to_string(db->info().recovery) + "): " + bad);
    std::uint64_t expect = rr.b.h.txns;
    sh->committed.store(expect);
    sh->open_txns.store(expect);
    sh->open_gen.store(gen);
    std::mt19937_64 rng(mix(seed ^ gen));
    while (!sh->stop.load(std::memory_order_relaxed)) {
      const std::uint64_t t = db->write([&](keel::write_txn& tx) {
        auto e = tx.find(kName);
        if (!e) throw std::runtime_error("catalog entry missing");
        std::uint64_t root = e->root;
        header h;
        tx.read(root, &h, sizeof h);
        if (h.txns != expect || e->aux != expect)
          throw std::runtime_error("transaction count " + std::to_string(h.txns) + " / aux " + std::to_string(e->aux) +
                                   ", expected " + std::to_string(expect));
        h.txns = expect + 1;
        const int transfers = 1 + static_cast<int>(rng() % 4);
        for (int x = 0; x < transfers; ++x) {
          const int a = static_cast<int>(rng() % kCounters);
          int b = static_cast<int>(rng() % (kCounters - 1));
          if (b >= a) ++b;
          const std::int64_t amount = 1 + static_cast<std::int64_t>(rng() % 200);
          rec ra, rb;
          const std::uint64_t oa = root + sizeof(header) + sizeof(rec) * static_cast<std::uint64_t>(a);
          const std::uint64_t ob = root + sizeof(header) + sizeof(rec) * static_cast<std::uint64_t>(b);
          tx.read(oa, &ra, sizeof ra);
          tx.read(ob, &rb, sizeof rb);
          ra.value -= amount;
          rb.value += amount;
          ++ra.version;
          ++rb.version;
          ra.check = check_of(a, ra.value, ra.version);
          rb.check = check_of(b, rb.value, rb.version);
          tx.write(oa, &ra, sizeof ra);
          tx.write(ob, &rb, sizeof rb);
        }
        if (h.ballast_count < kMaxBallast && rng() % 40 == 0) {  // the file grows while readers read
          h.ballast_size = kBallastBytes;
          h.ballast_off = tx.alloc(h.ballast_size);
          h.ballast_tag = h.txns;
          ++h.ballast_count;
          const std::uint64_t last = ~h.ballast_tag;
          tx.write(h.ballast_off, &h.ballast_tag, 8);
          tx.write(h.ballast_off + h.ballast_size - 8, &last, 8);
        }
        tx.write(root, &h, sizeof h);
        if (rng() % 25 == 0) {  // move the whole block: readers must follow the new root
          std::vector<std::byte> copy(kBlockBytes);
          tx.read(root, copy.data(), kBlockBytes);
          const std::uint64_t fresh = tx.alloc(kBlockBytes);
          tx.write(fresh, copy.data(), kBlockBytes);
          tx.free(root, kBlockBytes);  // its first bytes become a free-list link
          root = fresh;
        }
        tx.set_root(kName, root, h.txns);
        return h.txns;
      });
      expect = t;
      sh->committed.store(t);
      sh->commits.fetch_add(1);
    }
    db->close();
  } catch (const std::exception& e) {
    set_msg(sh->writer_msg, where + ": " + e.what());
    std::fprintf(stderr, "[readers_crash] %s: %s\n", where.c_str(), e.what());
    ::_exit(3);
  }
  ::_exit(0);
}

[[noreturn]] void reader_main(const std::string& path, shared* sh, int slot) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  reader_slot& me = sh->readers[slot];
  const std::string where = "reader " + std::to_string(slot) + " (pid " + std::to_string(::getpid()) + ")";
  auto fail = [&](const std::string& m) {
    set_msg(me.msg, where + ": " + m);
    std::fprintf(stderr, "[readers_crash] %s: %s\n", where.c_str(), m.c_str());
    ::_exit(1);
  };
  try {
    keel::options o = base_opts();
    o.read_only = true;
    o.read_timeout = 300ms;  // a dead writer's half-applied commit: busy, well inside the heartbeat limit
    std::uint64_t last = 0, n = 0;
    auto db = keel::store::open(path, o);
    while (!sh->stop.load(std::memory_order_relaxed)) {
      me.heartbeat.fetch_add(1);
      if (++n % 2000 == 0) {  // reopen now and then: opens race crashes too
        db->close();
        db = keel::store::open(path, o);
      }
      read_result r;
      try {
        r = read_block(*db);
      } catch (const keel::error& e) {
        if (e.code() != keel::errc::busy) fail(std::string("read threw ") + e.what());
        me.busy.fetch_add(1);
        continue;
      }
      if (!r.found) fail("catalog entry '" + std::string(kName) + "' not found");
      const std::string bad = check_result(r);
      if (!bad.empty()) fail("inconsistent read (root " + std::to_string(r.root) + "): " + bad);
      if (r.b.h.txns < last)
        fail("transaction count went back from " + std::to_string(last) + " to " + std::to_string(r.b.h.txns));
      last = r.b.h.txns;
      me.last_txns.store(last);
      me.reads_ok.fetch_add(1);
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  ::_exit(0);
}

// ------------------------------------------------------------ the parent

class harness {
 public:
  harness(std::uint64_t seed, int kills) : seed_(seed), kills_(kills), rng_(seed) {
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
      std::uint64_t delay_us;
      const std::uint64_t pick = rng_() % 10;
      if (pick < 2)
        delay_us = rng_() % 5000;  // lands in the new writer's open / recovery
      else if (pick < 7)
        delay_us = 5000 + rng_() % 150000;
      else
        delay_us = 150000 + rng_() % 350000;
      watch_for(std::chrono::microseconds(delay_us));
      const bool odd = kill_writer();
      if (odd || rng_() % 10 == 0) {
        // No writer for a while: with the seqlock left odd, reads wait out
        // read_timeout and throw busy; readers must keep heartbeating.
        ++writerless_pauses_;
        watch_for(std::chrono::milliseconds(300 + rng_() % 500));
      }
      if (rng_() % 5 == 0) {
        const int i = static_cast<int>(rng_() % 2);
        kill_reader(i);
        start_reader(i);
      }
      start_writer();
    }
    watch_for(300ms);
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
    db->write([](keel::write_txn& tx) {
      tx.open_root(kName, keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<block>());
      block b{};
      b.h.magic = kHeaderMagic;
      b.h.count = kCounters;
      for (int i = 0; i < kCounters; ++i) {
        b.r[i].value = kInitial;
        b.r[i].check = check_of(i, kInitial, 0);
      }
      const std::uint64_t off = tx.alloc(kBlockBytes);
      tx.write(off, &b, sizeof b);
      tx.set_root(kName, off, 0);
    });
    db->close();
  }

  void start_writer() {
    ++gen_;
    const auto modes = {keel::durability::sync, keel::durability::batch, keel::durability::checkpoint};
    const keel::durability mode = *(modes.begin() + rng_() % 3);
    writer_ = keel_test::child_proc::spawn([&](int) { writer_main(path_, sh_, gen_, mode, seed_); });
    REQUIRE(writer_.pid() > 0);
  }

  void start_reader(int i) {
    reader_slot& s = sh_->readers[i];
    s.heartbeat.store(0);
    s.reads_ok.store(0);
    s.busy.store(0);
    s.last_txns.store(0);
    s.msg[0] = 0;
    readers_[i] = keel_test::child_proc::spawn([&](int) { reader_main(path_, sh_, i); });
    REQUIRE(readers_[i].pid() > 0);
    last_hb_[i] = 0;
    last_hb_change_[i] = clk::now();
  }

  // Checks the writer's open report, then takes its last commit as known.
  void account_writer() {
    if (sh_->open_gen.load() == gen_) {
      const std::uint64_t r = sh_->open_txns.load();
      REQUIRE_MESSAGE((r >= lo_ && r <= lo_ + 1), ctx(), "writer gen ", gen_, " recovered ", r,
                      " transactions; the last reported commit was ", lo_);
      if (r == lo_ + 1) ++inflight_present_;
      ++writer_opens_;
    } else {
      ++early_kills_;
    }
    const std::uint64_t c = sh_->committed.load();
    REQUIRE_MESSAGE(c >= lo_, ctx(), "committed count went back to ", c);
    lo_ = c;
  }

  // Returns whether the writer left the seqlock odd (died inside an apply or a recovery).
  bool kill_writer() {
    const int status = writer_.kill_and_wait();
    REQUIRE(status != -1);
    ++kills_done_;
    if (!keel_test::killed_by_sigkill(status))
      FAIL(ctx(), "writer ended on its own before the kill: ", keel_test::describe_status(status), ": ", std::string(sh_->writer_msg));
    const bool odd = (read_seqlock() & 1) != 0;
    if (odd) ++mid_apply_;
    account_writer();
    return odd;
  }

  // pid: the reaped reader's.
  void finish_reader(int i, pid_t pid, int status, bool killed) {
    reader_slot& s = sh_->readers[i];
    // Killed by us, or (at the end) exited 0: anything else is a reader failure.
    const bool ok = killed ? keel_test::killed_by_sigkill(status) : WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
      FAIL(ctx(), "reader ", i, " (pid ", pid, ") failed: ", keel_test::describe_status(status), ": ", std::string(s.msg));
    reads_total_ += s.reads_ok.load();
    busy_total_ += s.busy.load();
  }

  void kill_reader(int i) {
    const pid_t pid = readers_[i].pid();
    const int status = readers_[i].kill_and_wait();
    REQUIRE(status != -1);
    ++reader_kills_;
    finish_reader(i, pid, status, true);
  }

  // Children must not end by themselves, and readers must heartbeat.
  void check_children() {
    const auto now = clk::now();
    for (int i = 0; i < 2; ++i) {
      if (readers_[i].pid() <= 0) continue;
      int status = 0;
      if (const pid_t pid = readers_[i].pid(); readers_[i].try_wait(&status)) {
        FAIL(ctx(), "reader ", i, " (pid ", pid, ") ended early: ", keel_test::describe_status(status), ": ",
             std::string(sh_->readers[i].msg));
      }
      const std::uint64_t hb = sh_->readers[i].heartbeat.load();
      if (hb != last_hb_[i]) {
        max_gap_ = std::max(max_gap_, now - last_hb_change_[i]);
        last_hb_[i] = hb;
        last_hb_change_[i] = now;
      } else if (now - last_hb_change_[i] > kHeartbeatLimit) {
        FAIL(ctx(), "reader ", i, " (pid ", readers_[i].pid(), ") hung: no heartbeat for ",
             std::chrono::duration_cast<std::chrono::milliseconds>(now - last_hb_change_[i]).count(), " ms (heartbeat ",
             hb, ", reads ", sh_->readers[i].reads_ok.load(), ", busy ", sh_->readers[i].busy.load(), ")");
      }
    }
    if (writer_.pid() > 0) {
      int status = 0;
      if (writer_.try_wait(&status))
        FAIL(ctx(), "writer gen ", gen_, " ended early: ", keel_test::describe_status(status), ": ", std::string(sh_->writer_msg));
    }
  }

  void watch_for(clk::duration d) {
    keel_test::watch_for(d, [&] { check_children(); });
  }

  void stop_all() {
    sh_->stop.store(1);
    // The writer finishes its transaction and closes cleanly.
    const auto deadline = clk::now() + 10s;
    int status = 0;
    if (!keel_test::wait_until(writer_, &status, deadline)) FAIL(ctx(), "writer did not stop within 10 s");
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      FAIL(ctx(), "writer failed at stop: ", keel_test::describe_status(status), ": ", std::string(sh_->writer_msg));
    account_writer();
    for (int i = 0; i < 2; ++i) {
      const std::uint64_t progress = sh_->readers[i].reads_ok.load();
      CHECK_MESSAGE(progress > 0, ctx(), "reader ", i, " made no successful read (busy ", sh_->readers[i].busy.load(),
                    ")");
      const auto dl = clk::now() + 5s;
      const pid_t pid = readers_[i].pid();
      if (!keel_test::wait_until(readers_[i], &status, dl)) FAIL(ctx(), "reader ", i, " did not stop within 5 s");
      finish_reader(i, pid, status, false);
    }
  }

  void final_check() {
    auto db = keel::store::open(path_, base_opts());
    const read_result r = read_block(*db);
    REQUIRE_MESSAGE(r.found, ctx(), "catalog entry missing at the end");
    const std::string bad = check_result(r);
    REQUIRE_MESSAGE(bad.empty(), ctx(), "final state: ", bad);
    CHECK_MESSAGE(r.b.h.txns == lo_, ctx(), "final store has ", r.b.h.txns, " transactions, the writer reported ", lo_);
    const keel::store_info info = db->info();
    CHECK_MESSAGE(info.live_bytes + info.free_bytes == info.arena_used - 4 * 4096, ctx(), "allocator accounting: live ",
                  info.live_bytes, " + free ", info.free_bytes, " != arena used ", info.arena_used - 4 * 4096);
    db->close();
    REQUIRE_MESSAGE(sh_->commits.load() > 0, ctx(), "the writers committed nothing");
    REQUIRE_MESSAGE(reads_total_ > 0, ctx(), "no successful reads at all");
    MESSAGE("readers_crash: ", kills_done_, " writer kills (", early_kills_, " before the writer finished open, ",
            mid_apply_, " with the seqlock odd, ", inflight_present_, " with the unreported in-flight commit found), ",
            writerless_pauses_, " pauses without a writer, ", reader_kills_, " reader kills, ", sh_->commits.load(),
            " commits, ", reads_total_, " consistent reads, ", busy_total_, " busy, longest heartbeat gap ",
            std::chrono::duration_cast<std::chrono::milliseconds>(max_gap_).count(), " ms, file grew to ",
            info.file_size >> 20, " MiB");
  }

  std::uint64_t read_seqlock() const {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    std::uint64_t v = 0;
    if (::pread(fd, &v, 8, kSeqlockOffset) != 8) v = 0;
    ::close(fd);
    return v;
  }

  keel_test::temp_dir dir_;
  std::string path_;
  std::uint64_t seed_;
  int kills_;
  std::mt19937_64 rng_;
  keel_test::shared_block<shared> shm_;
  shared* sh_ = nullptr;
  keel_test::child_proc writer_, readers_[2];
  std::uint64_t last_hb_[2] = {};
  clk::time_point last_hb_change_[2];
  clk::duration max_gap_{};
  std::uint64_t gen_ = 0, lo_ = 0;
  int kill_no_ = 0, kills_done_ = 0, reader_kills_ = 0, early_kills_ = 0, mid_apply_ = 0, inflight_present_ = 0,
      writer_opens_ = 0, writerless_pauses_ = 0;
  std::uint64_t reads_total_ = 0, busy_total_ = 0;
};

}  // namespace

TEST_CASE("readers stay consistent and live while the writer is SIGKILLed and restarted") {
  const std::uint64_t scaled = env_u64("KEEL_CRASH_KILLS", 240);
  const int kills = static_cast<int>(std::max<std::uint64_t>(5, scaled * 50 / 240));
  const std::uint64_t seed =
      env_u64("KEEL_CRASH_SEED", static_cast<std::uint64_t>(clk::now().time_since_epoch().count()) & 0xFFFFFFFFull);
  MESSAGE("readers_crash: seed ", seed, " (set KEEL_CRASH_SEED to repeat), ", kills, " writer kills");
  const auto t0 = clk::now();
  harness h(seed, kills);
  h.go();
  MESSAGE("readers_crash: ", std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count(), " ms");
}
