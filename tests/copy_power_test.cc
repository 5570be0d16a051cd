// Copied slots: a resize's moves out of a pinned old table are logged as
// copy ranges (destination, source) instead of the bytes, and the old slot
// block waits in limbo after it is freed until a checkpoint covers the
// free, so that replay always finds the source as it was
// (docs/DURABILITY.md, "Copied slots"). Bytes given to write_unpublished()
// are logged as given, in order among the copies ("Unpublished writes"),
// and one that cannot be recorded (no memory) is not written at all.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <keel/check.h>
#include <keel/hash_map.h>
#include <keel/keel.h>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "file/format.h"
#include "txn/redo_log.h"
#include "support/crash_state.h"
#include "support/log_file.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"

using keel_test::cut_policy;
using keel_test::sim_os;
using u64 = std::uint64_t;
namespace fmt = keel::fmt;

// Allocation failure on demand: the next operator new after arming throws
// std::bad_alloc (one test below makes a transaction's span list fail to
// grow). Unarmed, these are malloc and free.
namespace {
std::atomic<int> g_fail_next_new{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_fail_next_new.exchange(0) != 0) throw std::bad_alloc();
  if (void* p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

constexpr u64 kBlock = 64 * 1024;

u64 read_u64(keel::store& db, u64 off) {
  return db.read([&](const keel::read_view& v) {
    u64 x;
    std::memcpy(&x, v.bytes(off, 8), 8);
    return x;
  });
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void write_file(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f);
}

// The copy ranges in the records of a log file.
u64 copy_count(const std::string& log_path) {
  u64 n = 0;
  const std::string log = read_file(log_path);
  for (const keel_test::log_record& r : keel_test::log_records(log))
    for (const keel::redo::range& g : r.ranges) n += g.src != 0;
  return n;
}

bool clean(const keel::check_report& rep) {
  for (const auto& p : rep.problems) MESSAGE(p.where, " @", p.offset, ": ", p.what);
  return rep.clean();
}

// Clean but for the live bytes of blocks the test allocated and linked to
// no structure on purpose.
bool clean_but_unlinked(const keel::check_report& rep) {
  bool ok = true;
  for (const auto& p : rep.problems) {
    if (p.what.find("the blocks reachable from the catalog total") != std::string::npos) continue;
    MESSAGE(p.where, " @", p.offset, ": ", p.what);
    ok = false;
  }
  return ok;
}

std::unique_ptr<keel::store> reopen(const std::string& img, keel::durability mode, sim_os& after) {
  after.new_boot();
  return keel::store::open(img, {.create_if_missing = false, .mode = mode, .os = &after});
}

// A committed block of n bytes, byte i holding (i * 7 + salt) & 0xff.
u64 pattern_block(keel::store& db, u64 n, int salt) {
  u64 off = 0;
  db.write([&](keel::write_txn& tx) {
    off = tx.alloc(n);
    for (u64 o = 0; o < n; o += fmt::kPage) {
      std::byte* p = tx.mut_bytes(off + o, fmt::kPage);
      for (u64 i = 0; i < fmt::kPage; ++i) p[i] = static_cast<std::byte>(((o + i) * 7 + salt) & 0xff);
    }
  });
  return off;
}

// A store in sync mode over a simulated OS holding a block of kBlock
// pattern bytes to copy from and a zeroed page to copy into, both older
// than its last checkpoint.
struct copy_rig {
  keel_test::temp_dir dir;
  std::string path;
  sim_os sys;
  std::mt19937_64 rng;
  std::unique_ptr<keel::store> db;
  u64 src = 0, dst = 0;
  copy_rig(u64 seed, int salt) : path(dir.path("s.keel")), rng(seed) {
    db = keel::store::open(path, keel_test::power_run_options(keel::durability::sync, &sys));
    src = pattern_block(*db, kBlock, salt);
    db->write([&](keel::write_txn& tx) {
      dst = tx.alloc(fmt::kPage);
      tx.zero(dst, fmt::kPage);
    });
    db->checkpoint();
  }
  // A power cut that wrote back nothing of the data file since the
  // checkpoint (replay alone must rebuild every byte written since), the
  // store closed and its image checked.
  void cut() {
    sys.power_cut(path, dir.path("cut.keel"), {cut_policy::none, false, cut_policy::no_tail}, rng);
    db->close();
    CHECK(clean_but_unlinked(keel::check(dir.path("cut.keel"))));
  }
  // The cut image reopened over `after` (which must outlive it): recovery
  // replayed at least one record.
  std::unique_ptr<keel::store> reopened(sim_os& after) {
    auto back = reopen(dir.path("cut.keel"), keel::durability::sync, after);
    CHECK(back->info().recovered_records >= 1);
    return back;
  }
};

// n bytes at off as the store's readers see them.
std::string at(keel::store& s, u64 off, std::size_t n) {
  return s.read([&](const keel::read_view& v) { return std::string(reinterpret_cast<const char*>(v.bytes(off, n)), n); });
}
std::string bytes(const void* p, std::size_t n) { return std::string(static_cast<const char*>(p), n); }

}  // namespace

TEST_CASE("a pinned block, once freed, waits in limbo until a checkpoint covers the free") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s.keel");
  auto db = keel::store::open(path, {});
  const u64 src = pattern_block(*db, kBlock, 1);
  db->write([&](keel::write_txn& tx) {
    CHECK(tx.pin_for_copies(src, kBlock));
    CHECK(tx.pin_for_copies(src, kBlock));  // already pinned
  });
  db->write([&](keel::write_txn& tx) { CHECK(tx.pin_for_copies(src, kBlock)); });  // pinned by a commit
  db->write([&](keel::write_txn& tx) { tx.free(src, kBlock); });
  CHECK(clean(keel::check(path)));  // limbo's freed block counts as free space

  u64 other = 0;
  db->write([&](keel::write_txn& tx) {
    other = tx.alloc(kBlock);  // no checkpoint since the free: not the pinned block
    CHECK_THROWS_AS(tx.pin_for_copies(src, kBlock), keel::error);  // freed: no more copies from it
  });
  CHECK(other != src);
  db->checkpoint();
  u64 again = 0;
  db->write([&](keel::write_txn& tx) { again = tx.alloc(kBlock); });
  CHECK(again == src);  // drained onto its free list, and reused
  CHECK(clean_but_unlinked(keel::check(path)));
}

TEST_CASE("a damaged limbo is named by keel check and refused by the allocator") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s.keel");
  {
    auto db = keel::store::open(path, {});
    const u64 src = pattern_block(*db, kBlock, 1);
    db->write([&](keel::write_txn& tx) { REQUIRE(tx.pin_for_copies(src, kBlock)); });
    db->write([&](keel::write_txn& tx) { tx.free(src, kBlock); });
    db->close();
  }
  REQUIRE(clean(keel::check(path)));
  const std::string good = read_file(path);
  auto damaged = [&](std::size_t field, u64 v, const char* says) {
    std::string f = good;
    std::memcpy(f.data() + fmt::kMetaOffset + field, &v, 8);
    write_file(path, f);
    const keel::check_report rep = keel::check(path);
    bool named = false;
    for (const auto& p : rep.problems) named |= p.what.find(says) != std::string::npos;
    CHECK_MESSAGE(named, says);
    auto db = keel::store::open(path, {});
    try {
      db->write([&](keel::write_txn& tx) { tx.alloc(kBlock); });
      FAIL("allocation went past a damaged limbo");
    } catch (const keel::error& e) {
      CHECK(e.code() == keel::errc::corrupt);
    }
  };
  damaged(offsetof(fmt::meta_page, limbo_count), 99, "limbo holds 99 entries");
  damaged(offsetof(fmt::meta_page, limbo) + offsetof(fmt::limbo_entry, bytes), 12345, "not a block of a size class");
}

TEST_CASE("limbo holds 32 pinned blocks; a full limbo refuses pins, which callers take as no copies") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s.keel"), {});
  db->write([&](keel::write_txn& tx) {
    for (int i = 0; i < fmt::kLimbo; ++i) CHECK(tx.pin_for_copies(tx.alloc(kBlock), kBlock));
    CHECK_FALSE(tx.pin_for_copies(tx.alloc(kBlock), kBlock));
    CHECK_THROWS_AS(tx.pin_for_copies(tx.alloc(kBlock) + 16, kBlock), keel::error);  // not a block
  });
  CHECK(clean_but_unlinked(keel::check(dir.path("s.keel"))));
}

TEST_CASE("power loss: copies replay from the pinned source, in order; a direct write of the same bytes ends as the mapping holds it") {
  copy_rig rig(11, 3);
  auto& [dir, path, sys, rng, db, src, dst] = rig;
  const u64 x = 0x1111111111111111, y = 0x2222222222222222;
  db->write([&](keel::write_txn& tx) {
    REQUIRE(tx.pin_for_copies(src, kBlock));
    tx.copy_unpublished(dst, src + 4096, 40);
    tx.copy_unpublished(dst + 64, src + 8192, 40);
    // A direct write, then a copy over it: the copy is last.
    std::memcpy(tx.mut_unpublished(dst + 128, 8), &x, 8);
    tx.copy_unpublished(dst + 128, src + 12288, 40);
    // A copy, then a direct write over it: the write is last.
    tx.copy_unpublished(dst + 256, src + 16384, 40);
    std::memcpy(tx.mut_unpublished(dst + 256, 8), &y, 8);
    // Two copies into the same bytes: the later one is last.
    tx.copy_unpublished(dst + 768, src + 24576, 40);
    tx.copy_unpublished(dst + 768, src + 28672, 40);
    // A source this transaction changed (a private copy): copied as bytes.
    std::memcpy(tx.mut_bytes(src + 20480, 8), &x, 8);
    tx.copy_unpublished(dst + 512, src + 20480, 40);
  });
  db->write([&](keel::write_txn& tx) {
    // No pin_for_copies() in this transaction: bytes, though the block
    // is still pinned by the last one. The transaction changes no private
    // page and allocates nothing: its record holds only that write.
    tx.copy_unpublished(dst + 1024, src + 32768, 40);
  });
  CHECK(copy_count(path + "-log") == 6);  // all but the one from a changed source and the unpinned one
  auto expect = [&](keel::store& s) {
    CHECK(read_u64(s, dst) == read_u64(s, src + 4096));
    CHECK(read_u64(s, dst + 32) == read_u64(s, src + 4096 + 32));
    CHECK(read_u64(s, dst + 64) == read_u64(s, src + 8192));
    CHECK(read_u64(s, dst + 128) == read_u64(s, src + 12288));
    CHECK(read_u64(s, dst + 136) == read_u64(s, src + 12288 + 8));
    CHECK(read_u64(s, dst + 256) == y);
    CHECK(read_u64(s, dst + 264) == read_u64(s, src + 16384 + 8));
    CHECK(read_u64(s, dst + 512) == x);
    CHECK(read_u64(s, dst + 520) == read_u64(s, src + 20480 + 8));
    CHECK(read_u64(s, dst + 768) == read_u64(s, src + 28672));
    CHECK(read_u64(s, dst + 800) == read_u64(s, src + 28672 + 32));
    CHECK(read_u64(s, dst + 1024) == read_u64(s, src + 32768));
  };
  expect(*db);
  // The copies are rebuilt from the log and the source alone.
  rig.cut();

  // The same image with a copy's source moved outside the store (both
  // checksums resealed): corruption for keel check and for recovery.
  const std::string bad = dir.path("bad.keel");
  for (const char* ext : {"", "-log", "-journal"}) write_file(bad + ext, read_file(dir.path("cut.keel") + ext));
  {
    // The first record with a copy, encoded again with that copy's source
    // moved (both checksums are computed anew) and spliced in its place.
    const std::string log = read_file(bad + "-log");
    std::vector<keel_test::log_record> recs = keel_test::log_records(log);
    auto with_copy = std::find_if(recs.begin(), recs.end(), [](const keel_test::log_record& r) {
      return std::any_of(r.ranges.begin(), r.ranges.end(), [](const keel::redo::range& g) { return g.src != 0; });
    });
    REQUIRE(with_copy != recs.end());
    for (keel::redo::range& g : with_copy->ranges)
      if (g.src != 0) {
        g.src = u64{1} << 45;
        break;
      }
    std::vector<std::byte> rec;
    keel::redo::encode(rec, with_copy->lsn, with_copy->commit_ns, with_copy->ranges);
    const std::string spliced = log.substr(0, with_copy->pos) +
                                std::string(reinterpret_cast<const char*>(rec.data()), rec.size()) +
                                log.substr(with_copy->pos + with_copy->bytes);
    write_file(bad + "-log", spliced);
  }
  const keel::check_report rep = keel::check(bad);
  bool named = false;
  for (const auto& p : rep.problems) named |= p.what.find("copy source") != std::string::npos;
  CHECK(named);
  sim_os other;
  other.new_boot();
  try {
    keel::store::open(bad, {.create_if_missing = false, .mode = keel::durability::sync, .os = &other});
    FAIL("recovery replayed a copy from outside the store");
  } catch (const keel::error& e) {
    CHECK(e.code() == keel::errc::corrupt);
  }

  sim_os after;
  auto back = rig.reopened(after);
  expect(*back);
}

TEST_CASE("power loss: bytes given to write_unpublished replay as given, in the order written, among copies and later writes") {
  copy_rig rig(12, 5);
  auto& [dir, path, sys, rng, db, src, dst] = rig;
  // Keys and values of 8 and 32 bytes, as a hash slot takes them.
  auto key = [](u64 v) { return v * 0x0101010101010101ull; };
  std::byte va[32], vb[32];
  for (int i = 0; i < 32; ++i) {
    va[i] = static_cast<std::byte>(0xa0 + i);
    vb[i] = static_cast<std::byte>(0xb0 + i);
  }
  const u64 ka = key(0xa1), kb = key(0xb1), x = 0x3333333333333333;
  db->write([&](keel::write_txn& tx) {
    REQUIRE(tx.pin_for_copies(src, kBlock));
    // Overlapping writes, the later one at the lower offset: replay in
    // offset order would leave the earlier one's bytes in [+8, +40).
    tx.write_unpublished(dst + 8, &ka, 8, va, 32);
    tx.write_unpublished(dst, &kb, 8, vb, 32);
    // A copy, then a write of the same bytes: the write is last.
    tx.copy_unpublished(dst + 128, src + 4096, 40);
    tx.write_unpublished(dst + 128, &ka, 8, va, 32);
    // A write, then a copy over it: the copy is last.
    tx.write_unpublished(dst + 256, &kb, 8, vb, 32);
    tx.copy_unpublished(dst + 256, src + 8192, 40);
    // A write, then a pointer write into it: the mapping's bytes at commit.
    tx.write_unpublished(dst + 384, &ka, 8, va, 32);
    std::memcpy(tx.mut_unpublished(dst + 392, 8), &x, 8);
    // A write, then a private copy of its page changed: the copy is last,
    // and a write after that goes through the copy.
    tx.write_unpublished(dst + 512, &kb, 8, vb, 32);
    std::memcpy(tx.mut_bytes(dst + 520, 8), &x, 8);
    tx.write_unpublished(dst + 640, &ka, 8, va, 32);
  });
  const std::string a = bytes(&ka, 8) + bytes(va, 32), b = bytes(&kb, 8) + bytes(vb, 32);
  auto expect = [&](keel::store& s) {
    CHECK(at(s, dst, 40) == b);
    CHECK(at(s, dst + 40, 8) == a.substr(32, 8));
    CHECK(at(s, dst + 128, 40) == a);
    CHECK(at(s, dst + 256, 40) == at(s, src + 8192, 40));
    CHECK(at(s, dst + 384, 40) == a.substr(0, 8) + bytes(&x, 8) + a.substr(16));
    CHECK(at(s, dst + 512, 40) == b.substr(0, 8) + bytes(&x, 8) + b.substr(16));
    CHECK(at(s, dst + 640, 40) == a);
  };
  expect(*db);
  // The record carries the first write's bytes as given (not the bytes the
  // mapping holds at commit, which the second write changed).
  bool as_given = false;
  for (const keel_test::log_record& r : keel_test::log_records(read_file(path + "-log")))
    for (const keel::redo::range& g : r.ranges)
      as_given |= g.off == dst + 8 && g.len == 40 && g.data != nullptr && bytes(g.data, 40) == a;
  CHECK(as_given);
  rig.cut();
  sim_os after;
  expect(*rig.reopened(after));
}

TEST_CASE("a write_unpublished whose span cannot be recorded throws and leaves no trace; the transaction goes on") {
  copy_rig rig(13, 7);
  auto& [dir, path, sys, rng, db, src, dst] = rig;
  const u64 k1 = 0x1111111111111111, k2 = 0x2222222222222222, k3 = 0x3333333333333333;
  std::byte v1[32], v2[32], v3[32];
  for (int i = 0; i < 32; ++i) {
    v1[i] = static_cast<std::byte>(0x10 + i);
    v2[i] = static_cast<std::byte>(0x40 + i);
    v3[i] = static_cast<std::byte>(0x70 + i);
  }
  db->write([&](keel::write_txn& tx) {
    // The first write sizes the captured bytes' buffer and the span list
    // (one span); the second needs the list to grow, and that allocation
    // fails.
    tx.write_unpublished(dst, &k1, 8, v1, 32);
    bool threw = false;
    try {
      g_fail_next_new = 1;
      tx.write_unpublished(dst + 64, &k2, 8, v2, 32);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    g_fail_next_new = 0;
    CHECK(threw);
    // Nothing reached the mapping that the record would not carry.
    CHECK(bytes(tx.bytes(dst + 64, 40), 40) == std::string(40, '\0'));
    tx.write_unpublished(dst + 128, &k3, 8, v3, 32);
  });
  const std::string one = bytes(&k1, 8) + bytes(v1, 32), three = bytes(&k3, 8) + bytes(v3, 32);
  auto expect = [&](keel::store& s) {
    CHECK(at(s, dst, 40) == one);
    CHECK(at(s, dst + 64, 40) == std::string(40, '\0'));
    CHECK(at(s, dst + 128, 40) == three);
  };
  expect(*db);
  // Replay alone gives the same.
  rig.cut();
  sim_os after;
  expect(*rig.reopened(after));
}

TEST_CASE("power loss: a resize logs its moves as copies, and the old table's space is not reused before a checkpoint") {
  // Every write after the fill reuses blocks of the old slot block's size
  // and fills them with garbage; every dirty data page reaches the disk. A
  // reuse of the old slots before a checkpoint would hand recovery garbage
  // to copy.
  for (u64 seed = 1; seed <= 3; ++seed) {
    CAPTURE(seed);
    keel_test::temp_dir dir;
    const std::string path = dir.path("s.keel");
    sim_os sys;
    std::mt19937_64 rng(seed);
    auto db = keel::store::open(path, keel_test::power_run_options(keel::durability::sync, &sys));
    auto m = keel::hash_map<u64, u64>::open(*db, "m");
    constexpr u64 n = 6000;  // the 4096-slot table (64 KiB of slots) doubles at 3585 entries
    for (u64 k = 1; k <= n; k += 100) {
      db->write([&](keel::write_txn& tx) {
        for (u64 j = k; j < k + 100 && j <= n; ++j) m.put(tx, j * 0x9E3779B97F4A7C15ull, j * 7);
      });
      if (k == 3401) db->checkpoint();  // just before the resize: the old slots predate it
    }
    CHECK(copy_count(path + "-log") > 1000);
    db->write([&](keel::write_txn& tx) {
      u64 b[8];
      for (u64& x : b) {
        x = tx.alloc(kBlock);
        for (u64 o = 0; o < kBlock; o += fmt::kPage) std::memset(tx.mut_bytes(x + o, fmt::kPage), 0xee, fmt::kPage);
      }
      for (u64 x : b) tx.free(x, kBlock);  // written all the same
    });
    sys.power_cut(path, dir.path("cut.keel"), {cut_policy::all, false, cut_policy::no_tail}, rng);
    db->close();
    const keel::check_report rep = keel::check(dir.path("cut.keel"));
    CHECK(clean(rep));
    CHECK(rep.entries == n);
    sim_os after;
    auto back = reopen(dir.path("cut.keel"), keel::durability::sync, after);
    auto bm = keel::hash_map<u64, u64>::open(*back, "m");
    CHECK(bm.size() == n);
    u64 wrong = 0;
    for (u64 j = 1; j <= n; ++j)
      if (bm.get(j * 0x9E3779B97F4A7C15ull) != std::optional<u64>(j * 7)) ++wrong;
    CHECK(wrong == 0);
    back->close();
    CHECK(clean(keel::check(dir.path("cut.keel"))));
  }
}
