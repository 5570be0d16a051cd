// The writer's prefaulter (src/store/prefaulter.h): a background thread
// that makes a large block the writer is about to fill present and
// writable, or reads fresh space in ahead of a large allocation. First the
// class against a scripted os (chunks, order, the answers that stop it,
// stop() while a call is in progress, the queue bound, the two kinds),
// then a store whose hash map resizes into blocks it prefaults and makes
// the space of its next table writable (past a budget: read in) ahead of
// the doubling.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <keel/check.h>
#include <keel/hash_map.h>
#include <keel/keel.h>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "store/prefaulter.h"
#include "support/inspect.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"
#include "support/testing.h"

using keel::prefaulter;
using keel_test::op;
using keel_test::sim_os;
using u64 = std::uint64_t;

namespace {

constexpr std::size_t kChunk = prefaulter::kChunk;

// An os whose only working call is populate_write: it records each call and
// answers what the test scripted, optionally holding a call until released.
class script_os final : public keel::os {
 public:
  struct call {
    std::byte* addr;
    std::size_t len;
    bool write = true;  // populate_write, else populate_read
  };
  std::vector<int> answers;  // answer of call i, of either kind (0 past the end)
  bool hold = false;         // calls wait in populate_write/read until release()

  int populate_write(void* addr, std::size_t len) override { return populate(addr, len, true); }
  int populate_read(void* addr, std::size_t len) override { return populate(addr, len, false); }
  int populate(void* addr, std::size_t len, bool write) {
    std::unique_lock lk(mu_);
    const std::size_t i = calls_.size();
    calls_.push_back({static_cast<std::byte*>(addr), len, write});
    inside_ = true;
    cv_.notify_all();
    cv_.wait(lk, [&] { return !hold; });
    inside_ = false;
    return i < answers.size() ? answers[i] : 0;
  }
  std::vector<call> calls() const {
    std::lock_guard g(mu_);
    return calls_;
  }
  // Waits (at most 10 s) until a call is inside populate_write.
  bool wait_inside() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::seconds(10), [&] { return inside_; });
  }
  void release() {
    std::lock_guard g(mu_);
    hold = false;
    cv_.notify_all();
  }
  void set_hold() {
    std::lock_guard g(mu_);
    hold = true;
  }

  // Everything else is unused by the prefaulter.
  int open(const std::string&, int, mode_t) override { return -ENOSYS; }
  int close(int) override { return -ENOSYS; }
  ssize_t pread(int, void*, std::size_t, std::uint64_t) override { return -ENOSYS; }
  ssize_t pwrite(int, const void*, std::size_t, std::uint64_t) override { return -ENOSYS; }
  int fsync(int) override { return -ENOSYS; }
  int fdatasync(int) override { return -ENOSYS; }
  int ftruncate(int, std::uint64_t) override { return -ENOSYS; }
  int fallocate(int, std::uint64_t, std::uint64_t) override { return -ENOSYS; }
  std::int64_t file_size(int) override { return -ENOSYS; }
  void* mmap(int, std::size_t, bool, int* err) override {
    *err = -ENOSYS;
    return nullptr;
  }
  int munmap(void*, std::size_t) override { return -ENOSYS; }
  int msync(void*, std::size_t) override { return -ENOSYS; }
  int try_lock(int) override { return -ENOSYS; }
  int unlock(int) override { return -ENOSYS; }
  int lock_held(int) override { return -ENOSYS; }
  int rename(const std::string&, const std::string&) override { return -ENOSYS; }
  int unlink(const std::string&) override { return -ENOSYS; }
  int sync_dir(const std::string&) override { return -ENOSYS; }
  std::array<std::uint8_t, 16> boot_id() override { return {}; }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<call> calls_;
  bool inside_ = false;
};

// Polls until pred() holds; false after 30 s (the background thread hung).
template <class P>
bool eventually(P pred) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A fake address: the scripted os never touches it.
std::byte* at(u64 off) { return reinterpret_cast<std::byte*>(std::uintptr_t{1} << 40) + off; }

}  // namespace

TEST_CASE("prefaulter: requests are populated front to back in chunks of at most 2 MiB") {
  script_os sys;
  prefaulter pf(sys);
  pf.request(at(0), 2 * kChunk + 4096 * 3);
  pf.request(at(100 * kChunk), 8192);
  REQUIRE(eventually([&] { return pf.done_bytes() == 2 * kChunk + 4096 * 5; }));
  pf.stop();
  const auto c = sys.calls();
  REQUIRE(c.size() == 4);
  CHECK((c[0].addr == at(0) && c[0].len == kChunk));
  CHECK((c[1].addr == at(kChunk) && c[1].len == kChunk));
  CHECK((c[2].addr == at(2 * kChunk) && c[2].len == 4096 * 3));
  CHECK((c[3].addr == at(100 * kChunk) && c[3].len == 8192));
}

TEST_CASE("prefaulter: an OS without the call is not asked again; another failure loses one chunk") {
  for (int err : {EINVAL, EOPNOTSUPP}) {
    script_os sys;
    sys.answers = {-err};
    prefaulter pf(sys);
    pf.request(at(0), 3 * kChunk);
    REQUIRE(eventually([&] { return sys.calls().size() == 1; }));
    pf.request(at(10 * kChunk), kChunk);  // ignored: may race the first answer, then cleared with it
    pf.stop();
    CHECK(sys.calls().size() == 1);
    CHECK(pf.done_bytes() == 0);
  }
  script_os sys;
  sys.answers = {0, -EFAULT, 0};
  prefaulter pf(sys);
  pf.request(at(0), 3 * kChunk);
  REQUIRE(eventually([&] { return sys.calls().size() == 3; }));
  pf.stop();
  CHECK(pf.done_bytes() == 2 * kChunk);
}

TEST_CASE("prefaulter: stop() waits for the call in progress, drops the queue and ignores later requests") {
  script_os sys;
  sys.set_hold();
  prefaulter pf(sys);
  pf.request(at(0), 4 * kChunk);
  REQUIRE(sys.wait_inside());
  auto stopped = std::async(std::launch::async, [&] { pf.stop(); });
  // stop() cannot return while the call is inside populate_write.
  CHECK(stopped.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  sys.release();
  stopped.get();
  pf.request(at(50 * kChunk), kChunk);
  CHECK(sys.calls().size() == 1);  // neither the rest of the first request nor the later one
  CHECK(pf.done_bytes() == kChunk);
}

TEST_CASE("prefaulter: at most kMaxPending requests wait; more are dropped") {
  script_os sys;
  sys.set_hold();
  prefaulter pf(sys);
  pf.request(at(0), kChunk);  // taken by the thread at once: the queue is empty again
  REQUIRE(sys.wait_inside());
  for (std::size_t i = 1; i <= prefaulter::kMaxPending + 3; ++i) pf.request(at(i * kChunk), 4096);
  sys.release();
  REQUIRE(eventually([&] { return pf.done_bytes() == kChunk + prefaulter::kMaxPending * 4096; }));
  pf.stop();
  const auto c = sys.calls();
  REQUIRE(c.size() == 1 + prefaulter::kMaxPending);
  for (std::size_t i = 1; i < c.size(); ++i) CHECK(c[i].addr == at(i * kChunk));  // the first ones, in order
}

TEST_CASE("prefaulter: read requests populate for reading; each kind is given up on its own") {
  script_os sys;
  sys.answers = {0, -EOPNOTSUPP};  // the first read chunk works, the second says the OS cannot
  sys.set_hold();
  prefaulter pf(sys);
  pf.request(at(0), 3 * kChunk, false);
  REQUIRE(sys.wait_inside());
  pf.request(at(10 * kChunk), kChunk, true);
  pf.request(at(20 * kChunk), kChunk, false);  // dropped with the rest of the reads
  sys.release();
  REQUIRE(eventually([&] { return pf.done_bytes(true) == kChunk; }));
  pf.request(at(30 * kChunk), kChunk, false);  // ignored: reads were given up
  pf.request(at(40 * kChunk), 4096, true);     // writes go on
  REQUIRE(eventually([&] { return pf.done_bytes(true) == kChunk + 4096; }));
  pf.stop();
  CHECK(pf.done_bytes(false) == kChunk);
  const auto c = sys.calls();
  REQUIRE(c.size() == 4);
  CHECK((c[0].addr == at(0) && !c[0].write));
  CHECK((c[1].addr == at(kChunk) && !c[1].write));
  CHECK((c[2].addr == at(10 * kChunk) && c[2].write));
  CHECK((c[3].addr == at(40 * kChunk) && c[3].write && c[3].len == 4096));
}

namespace {

// Values of a u64 -> V map: u64 (16-byte slots, whose blocks are size
// classes) or wide (40-byte slots, 102 a page: blocks a class rounds up).
using wide = std::array<u64, 4>;
template <class V>
V value_of(u64 k) {
  if constexpr (std::is_same_v<V, u64>)
    return ~k;
  else
    return V{~k, k, k + 1, k + 2};
}

// Fills a u64 -> V map with keys 0..n-1 (scrambled), 10,000 per transaction.
template <class V = u64>
void fill(keel::store& db, u64 n) {
  auto m = keel::hash_map<u64, V>::open(db, "m");
  for (u64 i = 0; i < n; i += 10000)
    db.write([&](keel::write_txn& tx) {
      for (u64 k = i; k < std::min(n, i + 10000); ++k) m.put(tx, k * 0x9E3779B97F4A7C15ull, value_of<V>(k));
    });
}

template <class V = u64>
void expect_filled(keel::store& db, u64 n) {
  auto m = keel::hash_map<u64, V>::open(db, "m");
  REQUIRE(m.size() == n);
  u64 wrong = 0;
  for (u64 k = 0; k < n; ++k) wrong += m.get(k * 0x9E3779B97F4A7C15ull) != std::optional<V>(value_of<V>(k));
  CHECK(wrong == 0);
}

bool clean(const keel::check_report& rep) {
  for (const auto& p : rep.problems) MESSAGE(p.where, " @", p.offset, ": ", p.what);
  return rep.clean();
}

keel::options opts(sim_os& sys) {
  keel::options o = keel_test::small_opts();
  o.os = &sys;
  return o;
}

}  // namespace

TEST_CASE("prefault: a hash map's resizes prefault their slot blocks of 1 MiB and more; nothing changes") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("p.keel");
  sim_os sys;
  // 100,000 u64/u64 entries: the table doubles through 1 MiB (4,096 groups
  // of 16 slots of 16 bytes) and 2 MiB of slots; smaller ones are skipped.
  // Each of those doublings, and the next one (to 16,384 groups, whose mark
  // at 86,016 entries is passed), also had its new table's two blocks made
  // writable ahead: 64 KiB + 1 MiB, 128 KiB + 2 MiB, 256 KiB + 4 MiB.
  constexpr u64 kN = 100000, kResizes = (1u << 20) + (2u << 20);
  constexpr u64 kAhead = (64u << 10) + (1u << 20) + (128u << 10) + (2u << 20) + (256u << 10) + (4u << 20);
  {
    auto db = keel::store::open(path, opts(sys));
    fill(*db, kN);
    REQUIRE(eventually([&] { return db->info().prefaulted_bytes == kResizes + kAhead; }));
    // Ahead: one call per block, the 4 MiB one in two chunks; then the two
    // resizes' slot blocks, the 2 MiB one a chunk.
    CHECK(sys.calls(op::populate) == 9);
    u64 asked = 0;
    for (const auto& [lo, hi] : sys.write_populates()) asked += hi - lo;
    CHECK(asked == kResizes + kAhead);
    CHECK(sys.read_populates().empty());  // all of it under the writable budget
    CHECK(db->info().read_ahead_bytes == 0);
    CHECK(db->info().file_size >= db->info().arena_used);
    expect_filled(*db, kN);
    db->close();
  }
  CHECK(clean(keel::check(path)));
  auto db = keel::store::open(path, opts(sys));
  expect_filled(*db, kN);
  CHECK(db->info().prefaulted_bytes == 0);  // counted per open
}

TEST_CASE("prefault: a kernel without MADV_POPULATE_WRITE is asked once; a failed chunk is skipped") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("p.keel");
  constexpr u64 kN = 100000;
  SUBCASE("EINVAL") {
    sim_os sys;
    sys.fail(op::populate, 1, EINVAL, true);
    auto db = keel::store::open(path, opts(sys));
    fill(*db, kN);
    CHECK(db->info().prefaulted_bytes == 0);
    db->close();  // joins the thread
    CHECK(sys.calls(op::populate) == 1);
  }
  SUBCASE("EFAULT") {
    sim_os sys;
    sys.fail(op::populate, 1, EFAULT);
    auto db = keel::store::open(path, opts(sys));
    fill(*db, kN);
    // The first call, the 64 KiB control block made writable ahead of the
    // doubling to 4,096 groups, failed; everything after it went through.
    constexpr u64 kAll = (1u << 20) + (2u << 20) + (64u << 10) + (1u << 20) + (128u << 10) + (2u << 20) +
                         (256u << 10) + (4u << 20);
    REQUIRE(eventually([&] { return db->info().prefaulted_bytes == kAll - (64u << 10); }));
    db->close();
    CHECK(sys.calls(op::populate) == 9);
  }
  CHECK(clean(keel::check(path)));
  sim_os again;
  auto db = keel::store::open(path, opts(again));
  expect_filled(*db, kN);
}

TEST_CASE("prefault: closing the store while a large block is being prefaulted") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("p.keel");
  sim_os sys;
  sys.populate_delay_ms = 100;  // 16 chunks take at least 1.6 s: the close comes first
  keel::options o = opts(sys);
  o.max_size = 1ull << 30;
  {
    auto db = keel::store::open(path, o);
    db->write([&](keel::write_txn& tx) {
      const u64 off = tx.alloc(32u << 20);
      tx.prefault(off, 32u << 20);
      tx.write(off, "keel", 4);
      tx.free(off, 32u << 20);
    });
    db->close();  // stops the thread at a chunk boundary, then unmaps
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    CHECK(sys.calls(op::populate) < 16);
    CHECK(sys.stray_populates() == 0);  // nothing asked for the mapping once it was gone
  }
  CHECK(clean(keel::check(path)));
}

TEST_CASE("prefault: a table reserved far ahead of its entries is not prefaulted") {
  keel_test::temp_dir dir;
  sim_os sys;
  auto db = keel::store::open(dir.path("r.keel"), opts(sys));
  auto m = keel::hash_map<u64, u64>::open(*db, "m");
  db->write([&](keel::write_txn& tx) {
    for (u64 k = 0; k < 1000; ++k) m.put(tx, k, k + 1);
    m.reserve(tx, 500'000);  // 65,536 groups: 16 MiB of slots for 1,000 entries
  });
  db->write([&](keel::write_txn& tx) { m.put(tx, 5000, 1); });  // finishes the move
  CHECK(m.size() == 1001);
  db->close();
  CHECK(sys.calls(op::populate) == 0);
  CHECK(sys.calls(op::populate_read) == 0);
}

TEST_CASE("prefault is only a hint: any span, no change, ignored after commit") {
  keel_test::temp_dir dir;
  sim_os sys;
  auto db = keel::store::open(dir.path("h.keel"), opts(sys));
  const u64 off = db->write([](keel::write_txn& tx) {
    const u64 o = tx.alloc(3u << 20);
    tx.write(o, "abc", 3);
    return o;
  });
  auto tx = db->begin_write();
  const u64 lim = tx.limit(), page = 4096;
  const u64 expect = page + ((lim + page - 1) / page * page - off / page * page) + page;
  for (auto [o, n] : std::vector<std::pair<u64, u64>>{
           {0, ~u64{0}}, {1, 1}, {off + 1, 5}, {off, ~u64{0}}, {tx.limit() - 1, 2}, {tx.limit(), 4096}, {~u64{0}, 1}})
    tx.prefault(o, n);
  CHECK(tx.commit() == 0);  // nothing written
  tx.prefault(off, 4096);   // a finished transaction ignores the hint
  // The pages of [off+1, +5), [off, limit) and [limit-1, +2); nothing outside
  // the arena or past the allocator's cursor.
  REQUIRE(eventually([&] { return db->info().prefaulted_bytes == expect; }));
  db->close();
  CHECK(sys.calls(op::populate) == 4);  // [off, limit) is two chunks
  auto again = keel::store::open(dir.path("h.keel"), opts(sys));
  again->read([&](const keel::read_view& v) { CHECK(std::memcmp(v.bytes(off, 3), "abc", 3) == 0); });
}

namespace {

// The space the current table's blocks take, as [ctrl, ctrl_end) and
// [slots, slots_end), for a u64 -> V map.
struct table_span {
  u64 ctrl, ctrl_end, slots, slots_end;
};
template <class V>
table_span cur_table(keel::store& db) {
  constexpr u64 spp = 4096 / (8 + sizeof(V));
  const auto r = keel_test::read_root(db, keel::hash_map<u64, V>::open(db, "m").root());
  return {r.cur.ctrl, r.cur.ctrl + r.cur.groups * 16, r.cur.slots, r.cur.slots + (r.cur.groups * 16 + spp - 1) / spp * 4096};
}

}  // namespace

namespace {

// The file ranges populate_write was asked for from the index `from` on,
// merged where they touch: [lo, hi) pairs in order.
std::vector<std::pair<u64, u64>> merged_writes(const sim_os& sys, std::size_t from) {
  std::vector<std::pair<u64, u64>> out;
  const auto all = sys.write_populates();
  for (std::size_t i = from; i < all.size(); ++i) {
    if (!out.empty() && out.back().second == all[i].first)
      out.back().second = all[i].second;
    else
      out.push_back(all[i]);
  }
  return out;
}

}  // namespace

TEST_CASE("prefault: a quarter of the way before a doubling, the new table's blocks are made writable ahead") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("a.keel");
  sim_os sys;
  auto db = keel::store::open(path, opts(sys));
  // 2,048 groups grow at 28,672 used slots; the mark is 21,504. The next
  // table, 4,096 groups, has a 64 KiB control block and 643 pages of 40-byte
  // slots, which its size class rounds up to 768: the file is extended for
  // the class, but only the 643 pages are populated.
  fill<wide>(*db, 21503);
  // The doubling to 2,048 groups (a 32 KiB control block, 322 pages of
  // slots) was prepared at its own mark, 10,752 entries, and happened since.
  // Its blocks ahead, then its slot block when it started.
  constexpr u64 kEarlier = (32u << 10) + 2 * 322 * 4096;
  REQUIRE(eventually([&] { return db->info().prefaulted_bytes == kEarlier; }));
  const std::size_t earlier = sys.write_populates().size();
  fill<wide>(*db, 21504);  // the 21,504th entry crosses the mark
  const keel::store_info at_mark = db->info();
  // Chunks of at most 2 MiB, recorded before each call, counted after it:
  // the control block, then the slot block right after it, one range.
  u64 lo = 0, hi = 0;
  REQUIRE(eventually([&] {
    const auto ranges = merged_writes(sys, earlier);
    if (ranges.size() != 1) return false;
    lo = ranges[0].first, hi = ranges[0].second;
    return hi - lo == (64u << 10) + 643 * 4096;
  }));
  REQUIRE(eventually([&] { return db->info().prefaulted_bytes == kEarlier + (hi - lo); }));
  CHECK(lo == (at_mark.arena_used + 4095) / 4096 * 4096);  // the fresh space past the cursor
  CHECK(at_mark.file_size >= hi + (768 - 643) * 4096);     // extended to the slot block's class end
  CHECK(cur_table<wide>(*db).slots_end <= lo);             // nothing moved yet
  CHECK(sys.read_populates().empty());                      // under the writable budget
  // Those pages are dirty zeros past the cursor: a checkpoint now syncs
  // the mapping only up to the cursor, so it never writes them back.
  const std::size_t syncs = sys.msyncs().size();
  db->checkpoint();
  const auto after_ckpt = sys.msyncs();
  REQUIRE(after_ckpt.size() > syncs);
  for (std::size_t i = syncs; i < after_ckpt.size(); ++i) CHECK(after_ckpt[i].second <= lo);

  fill<wide>(*db, 30000);  // the doubling: its blocks land where they were prepared, with no further growth
  const table_span t = cur_table<wide>(*db);
  CHECK(t.ctrl_end - t.ctrl == (64u << 10));
  // The control block may come from a free block of its size class, below
  // the cursor; the slot block then starts at the cursor, where the control
  // block was predicted, and still lies inside what was populated.
  // Otherwise both are exactly where they were predicted.
  CHECK((t.ctrl_end <= lo || (t.ctrl == lo && t.ctrl_end + 643 * 4096 == hi)));
  CHECK((t.slots >= lo && t.slots_end <= hi));
  CHECK(db->info().file_size == at_mark.file_size);
  // Ahead once; then the resize's own request for its slot block.
  std::vector<std::pair<u64, u64>> after;
  REQUIRE(eventually([&] {
    after = merged_writes(sys, earlier);
    return after.size() == 2;
  }));
  CHECK((after[1].first == t.slots && after[1].second == t.slots_end));
  expect_filled<wide>(*db, 30000);
  db->close();
  CHECK(clean(keel::check(path)));
  sim_os again;
  auto re = keel::store::open(path, opts(again));
  expect_filled<wide>(*re, 30000);
}

TEST_CASE("prefault: past a thirty-second of the machine's memory, the next table's space is only read in ahead") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("b.keel");
  sim_os sys;
  sys.memory_bytes = 32u << 20;  // a budget of 1 MiB per doubling
  auto db = keel::store::open(path, opts(sys));
  fill<wide>(*db, 21503);
  // The doubling to 2,048 groups: its blocks ahead (1 MiB writable, the
  // rest read), then its slot block when it started.
  REQUIRE(eventually([&] {
    const keel::store_info i = db->info();
    return i.prefaulted_bytes == (1u << 20) + 322 * 4096 && i.read_ahead_bytes == (32u << 10) + 322 * 4096 - (1u << 20);
  }));
  const std::size_t writes_before = sys.write_populates().size(), reads_before = sys.read_populates().size();
  const keel::store_info before = db->info();
  fill<wide>(*db, 21504);
  // 64 KiB of control bytes and the first 960 KiB of the slots writable;
  // the slots' other 643 * 4 KiB - 960 KiB read in (clean).
  constexpr u64 kSlots = 643 * 4096, kBudget = 1u << 20;
  REQUIRE(eventually([&] {
    const keel::store_info i = db->info();
    return i.prefaulted_bytes - before.prefaulted_bytes == kBudget &&
           i.read_ahead_bytes - before.read_ahead_bytes == (64u << 10) + kSlots - kBudget;
  }));
  const auto w = merged_writes(sys, writes_before);
  REQUIRE(w.size() == 1);
  const auto reads = sys.read_populates();
  REQUIRE(reads.size() > reads_before);
  CHECK(reads[reads_before].first == w[0].second);  // the reads go on where the writable part ends
  CHECK(reads.back().second - w[0].first == (64u << 10) + kSlots);
  fill<wide>(*db, 30000);
  expect_filled<wide>(*db, 30000);
  db->close();
  CHECK(clean(keel::check(path)));
}

TEST_CASE("prefault: a full disk when the next table's space is asked for ahead changes nothing") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("f.keel");
  sim_os sys;
  u64 file_before = 0;
  {
    auto db = keel::store::open(path, opts(sys));
    fill(*db, 21000);  // 2,048 groups; the mark is 21,504
    file_before = db->info().file_size;
    const int fallocs = sys.calls(op::fallocate);
    sys.fail(op::fallocate, 1, ENOSPC);  // the hint's extension, the transaction's first: refused
    auto m = keel::hash_map<u64, u64>::open(*db, "m");
    db->write([&](keel::write_txn& tx) {  // crosses the mark; no error
      for (u64 k = 21000; k < 21600; ++k) m.put(tx, k * 0x9E3779B97F4A7C15ull, ~k);
    });
    CHECK(sys.calls(op::fallocate) >= fallocs + 1);
    CHECK(db->info().file_size == file_before);
    for (const auto& [lo, hi] : sys.write_populates()) CHECK(hi <= file_before);  // only what the file has
    for (const auto& [lo, hi] : sys.read_populates()) CHECK(hi <= file_before);
    fill(*db, 30000);  // the doubling extends the file itself
    CHECK(db->info().file_size > file_before);
    CHECK(m.size() == 30000);
    expect_filled(*db, 30000);
    db->close();
  }
  CHECK(clean(keel::check(path)));
  sim_os again;
  auto db = keel::store::open(path, opts(again));
  expect_filled(*db, 30000);
}

TEST_CASE("first_touch: true once per key per writer handle, again after a reopen; false for a finished transaction") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("t.keel");
  auto db = keel::store::open(path, keel_test::small_opts());
  db->write([](keel::write_txn& tx) {
    CHECK(tx.first_touch(8192));
    CHECK_FALSE(tx.first_touch(8192));
    CHECK(tx.first_touch(12288));
    CHECK_FALSE(tx.first_touch(8192));  // not only the last key asked about
  });
  keel::write_txn done = db->begin_write();
  CHECK_FALSE(done.first_touch(12288));  // the next transaction of the handle
  CHECK(done.first_touch(16384));
  done.abort();
  CHECK_FALSE(done.first_touch(20480));  // finished
  db->close();
  db = keel::store::open(path, keel_test::small_opts());
  db->write([](keel::write_txn& tx) { CHECK(tx.first_touch(8192)); });
}

TEST_CASE("read-ahead: a writer's first write to a hash map reads both its tables ahead in 128 KiB pieces, once") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("r.keel");
  // 4,096 groups of 40-byte slots (2.5 MiB) after 40,000 entries; 1,000
  // more need no doubling.
  constexpr u64 kN = 40000;
  {
    auto db = keel::store::open(path, keel_test::small_opts());
    fill<wide>(*db, kN);
    db->close();
  }
  sim_os sys;
  auto db = keel::store::open(path, opts(sys));
  const table_span t = cur_table<wide>(*db);
  expect_filled<wide>(*db, kN);  // reads ask nothing
  CHECK(sys.calls(op::read_ahead) == 0);
  auto m = keel::hash_map<u64, wide>::open(*db, "m");
  const auto put = [&](u64 k) { db->write([&](keel::write_txn& tx) { m.put(tx, k * 0x9E3779B97F4A7C15ull, value_of<wide>(k)); }); };
  put(kN);
  const u64 want = (t.ctrl_end - t.ctrl) + (t.slots_end - t.slots);
  REQUIRE(eventually([&] { return db->info().committed_read_ahead_bytes == want; }));
  // Exactly the two blocks (the old table is gone), front to back.
  u64 covered = 0, next = t.ctrl;
  for (const auto& [lo, hi] : sys.read_aheads()) {
    CHECK(hi - lo <= prefaulter::kAheadChunk);
    if (lo == t.slots) next = t.slots;
    CHECK(lo == next);
    next = hi;
    covered += hi - lo;
  }
  CHECK(next == t.slots_end);
  CHECK(covered == want);
  const int calls = sys.calls(op::read_ahead);
  for (u64 k = kN + 1; k < kN + 1000; ++k) put(k);  // later writes of the same handle ask nothing
  CHECK(sys.calls(op::read_ahead) == calls);
  expect_filled<wide>(*db, kN + 1000);
  db->close();
  // A read-only handle has no writer thread and asks nothing.
  keel::options ro = opts(sys);
  ro.read_only = true;
  auto r = keel::store::open(path, ro);
  expect_filled<wide>(*r, kN + 1000);
  CHECK(sys.calls(op::read_ahead) == calls);
}

TEST_CASE("read-ahead: an OS that refuses it is not asked again, and nothing changes") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("n.keel");
  {
    auto db = keel::store::open(path, keel_test::small_opts());
    fill<wide>(*db, 40000);
    db->close();
  }
  sim_os sys;
  sys.fail(op::read_ahead, 1, EINVAL, /*sticky=*/true);
  auto db = keel::store::open(path, opts(sys));
  fill<wide>(*db, 41000);  // rewrites the first 40,000 entries, then 1,000 more
  REQUIRE(eventually([&] { return sys.calls(op::read_ahead) >= 1; }));
  CHECK(sys.calls(op::read_ahead) == 1);  // the first refusal drops the rest of the queue's read-ahead
  CHECK(db->info().committed_read_ahead_bytes == 0);
  expect_filled<wide>(*db, 41000);
  db->close();
  CHECK(clean(keel::check(path)));
}
