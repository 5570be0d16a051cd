// The persistent allocator through write_txn::alloc/free: alignment, page
// rules, reuse of freed blocks, accounting under random alloc/free, data
// surviving commit + reopen, bad frees, and corrupt free lists.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <keel/keel.h>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "file/format.h"
#include "support/temp_dir.h"
#include "support/testing.h"

using namespace keel;
using namespace keel_test;

namespace {

constexpr u64 kPage = fmt::kPage;

// Room for the random workload's largest blocks.
options alloc_opts() {
  options o = small_opts();
  o.max_size = 256_MiB;
  return o;
}

// The bytes a request of n occupies, from docs/FORMAT.md (independent of the
// library's own class table code).
u64 span_of(u64 n) {
  if (n <= kPage) {
    for (u64 c : fmt::kSmallClassSize)
      if (c >= n) return c;
  }
  const u64 pages = (n + kPage - 1) / kPage;
  if (pages <= 64) return pages * kPage;
  // Four classes per doubling: 80, 96, 112, 128, 160, ... pages.
  for (u64 base = 64;; base *= 2)
    for (u64 j = 1; j <= 4; ++j)
      if (base + base / 4 * j >= pages) return (base + base / 4 * j) * kPage;
}

void check_placement(u64 off, u64 n) {
  CHECK(off >= fmt::kArenaOffset);
  CHECK(off % 16 == 0);
  if (n <= kPage)
    CHECK_MESSAGE(off / kPage == (off + n - 1) / kPage, "block of " << n << " at " << off << " crosses a page");
  else
    CHECK_MESSAGE(off % kPage == 0, "block of " << n << " at " << off << " is not page aligned");
}

void poke64(const std::string& path, u64 off, u64 v) { poke(path, off, &v, 8); }
u64 free_head_at(int cls) { return fmt::kMetaOffset + offsetof(fmt::meta_page, free_head) + 8 * static_cast<u64>(cls); }

int small_class_of(u64 n) {
  for (int c = 0; c < fmt::kSmallClasses; ++c)
    if (fmt::kSmallClassSize[c] >= n) return c;
  return -1;
}

void fill(std::vector<unsigned char>& buf, u64 n, u64 off, unsigned tag) {
  buf.resize(n);
  for (u64 i = 0; i < n; ++i) buf[i] = static_cast<unsigned char>((off * 31 + i * 7 + tag + (i >> 8)) & 0xff);
}

}  // namespace

TEST_CASE("blocks are 16-aligned, small ones stay in a page, large ones are page aligned") {
  keel_test::temp_dir d;
  auto s = store::open(d.path("a.keel"), alloc_opts());
  const u64 sizes[] = {1,    8,    15,   16,   17,   31,    33,    100,   255,    257,    1000,  2000,
                       3000, 4000, 4095, 4096, 4097, 5000,  8191,  8192,  8193,   12000,  65536, 200000,
                       300000, 1,  4096, 7,    3584, 3585,  2049,  4096,  262144, 266241, 17,    4000};
  std::map<u64, u64> blocks;  // off -> span
  auto tx = s->begin_write();
  for (u64 n : sizes) {
    const u64 off = tx.alloc(n);
    check_placement(off, n);
    // No overlap with any block handed out before.
    auto next = blocks.lower_bound(off);
    if (next != blocks.end()) CHECK(off + span_of(n) <= next->first);
    if (next != blocks.begin()) {
      auto prev = std::prev(next);
      CHECK(prev->first + prev->second <= off);
    }
    blocks[off] = span_of(n);
  }
  // A random mix, many of them after a misaligned bump position.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    const u64 n = 1 + rng() % (i % 3 == 0 ? 20000 : 600);
    const u64 off = tx.alloc(n);
    check_placement(off, n);
    auto next = blocks.lower_bound(off);
    if (next != blocks.end()) CHECK(off + span_of(n) <= next->first);
    if (next != blocks.begin()) CHECK(std::prev(next)->first + std::prev(next)->second <= off);
    blocks[off] = span_of(n);
  }
  tx.commit();
  const auto i = s->info();
  CHECK(i.live_bytes + i.free_bytes == i.arena_used - fmt::kArenaOffset);
  u64 live = 0;
  for (auto& [off, sp] : blocks) live += sp;
  CHECK(i.live_bytes == live);
  CHECK(blocks.rbegin()->first + blocks.rbegin()->second <= i.arena_used);
}

TEST_CASE("freed blocks of the same size class come back") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto s = store::open(p, alloc_opts());

  SUBCASE("in the same transaction") {
    auto tx = s->begin_write();
    for (u64 n : {u64{1}, u64{100}, u64{4096}, u64{10000}, u64{300000}}) {
      const u64 a = tx.alloc(n);
      tx.alloc(16);  // something after it, so the cursor cannot simply move back
      tx.free(a, n);
      CHECK(tx.alloc(n) == a);
    }
    // Another size of the same class: 100 and 110 are both 112-byte blocks,
    // 9000 and 12000 are both 3-page runs.
    const u64 b = tx.alloc(100);
    tx.free(b, 100);
    CHECK(tx.alloc(110) == b);
    const u64 c = tx.alloc(9000);
    tx.free(c, 9000);
    CHECK(tx.alloc(12000) == c);
    tx.commit();
  }
  SUBCASE("across transactions and reopen") {
    const u64 sizes[] = {24, 700, 4096, 8192, 70000, 400000};
    std::vector<u64> offs;
    s->write([&](write_txn& tx) {
      for (u64 n : sizes) {
        offs.push_back(tx.alloc(n));
        tx.alloc(32);
      }
    });
    s->write([&](write_txn& tx) {
      for (std::size_t k = 0; k < offs.size(); ++k) tx.free(offs[k], sizes[k]);
    });
    const auto i = s->info();
    CHECK(i.free_bytes >= 24 + 700 + 4096 + 8192 + 70000 + 400000);
    CHECK(i.live_bytes + i.free_bytes == i.arena_used - fmt::kArenaOffset);
    s->close();
    s = store::open(p, alloc_opts());
    const u64 used = s->info().arena_used;
    s->write([&](write_txn& tx) {
      for (std::size_t k = offs.size(); k-- > 0;) CHECK(tx.alloc(sizes[k]) == offs[k]);
    });
    CHECK(s->info().arena_used == used);  // all from free lists, no bump
  }
  SUBCASE("a large block is reused whole by a request of its class, never split") {
    const u64 big = s->write([](write_txn& tx) {
      const u64 b = tx.alloc(100 * kPage);  // class of 112 pages
      tx.alloc(16);
      return b;
    });
    s->write([&](write_txn& tx) { tx.free(big, 100 * kPage); });
    const u64 used = s->info().arena_used;
    s->write([&](write_txn& tx) {
      CHECK(tx.alloc(70 * kPage) != big);   // class of 80 pages: not carved out of it
      CHECK(tx.alloc(97 * kPage) == big);   // same class (97..112 pages): reused whole
    });
    CHECK(s->info().arena_used == (used + kPage - 1) / kPage * kPage + 80 * kPage);  // page-aligned bump
    const auto i = s->info();
    CHECK(i.live_bytes + i.free_bytes == i.arena_used - fmt::kArenaOffset);
  }
}

TEST_CASE("random alloc/free keeps accounting exact, blocks disjoint and data intact") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto s = store::open(p, alloc_opts());
  struct blk {
    u64 n;
    unsigned tag;
  };
  std::map<u64, blk> live;  // committed model
  std::mt19937_64 rng(12345);
  std::vector<unsigned char> buf, back;

  auto check_accounting = [&](const std::map<u64, blk>& m) {
    const auto i = s->info();
    CHECK(i.live_bytes + i.free_bytes == i.arena_used - fmt::kArenaOffset);
    u64 sum = 0;
    for (auto& [off, b] : m) sum += span_of(b.n);
    CHECK(i.live_bytes == sum);
    if (!m.empty()) CHECK(m.rbegin()->first + span_of(m.rbegin()->second.n) <= i.arena_used);
  };
  auto verify_all = [&](const store& st, const std::map<u64, blk>& m) {
    int bad = 0;
    st.read([&](const read_view& v) {
      bad = 0;
      for (auto& [off, b] : m) {
        fill(buf, b.n, off, b.tag);
        if (std::memcmp(v.bytes(off, b.n), buf.data(), b.n) != 0) ++bad;
      }
    });
    CHECK_MESSAGE(bad == 0, bad << " blocks lost their data");
  };

  constexpr int kOps = 4000, kPerTxn = 50;
  int commits = 0, aborts = 0;
  for (int op = 0; op < kOps;) {
    auto m = live;  // this transaction's view
    auto tx = s->begin_write();
    for (int k = 0; k < kPerTxn; ++k, ++op) {
      if (m.empty() || rng() % 100 < 60) {
        const u64 n = 1 + (rng() % 2 ? rng() % 20000 : rng() % 512);
        const u64 off = tx.alloc(n);
        check_placement(off, n);
        const u64 sp = span_of(n);
        auto next = m.lower_bound(off);
        if (next != m.end()) CHECK_MESSAGE(off + sp <= next->first, "overlap at " << off);
        if (next != m.begin()) {
          auto prev = std::prev(next);
          CHECK_MESSAGE(prev->first + span_of(prev->second.n) <= off, "overlap at " << off);
        }
        const unsigned tag = static_cast<unsigned>(rng());
        fill(buf, n, off, tag);
        tx.write(off, buf.data(), n);
        m[off] = {n, tag};
      } else {
        auto it = m.begin();
        std::advance(it, static_cast<long>(rng() % m.size()));
        // Check the block's data before letting it go (its first bytes become a link).
        back.resize(it->second.n);
        tx.read(it->first, back.data(), back.size());
        fill(buf, it->second.n, it->first, it->second.tag);
        CHECK(back == buf);
        tx.free(it->first, it->second.n);
        m.erase(it);
      }
    }
    if (rng() % 5 == 0) {
      tx.abort();
      ++aborts;
    } else {
      tx.commit();
      live = std::move(m);
      ++commits;
    }
    check_accounting(live);
    if (op % 1000 == 0) verify_all(*s, live);
  }
  CHECK(commits > 0);
  CHECK(aborts > 0);
  verify_all(*s, live);
  s->close();

  auto r = store::open(p, [] {
    auto o = small_opts();
    o.read_only = true;
    return o;
  }());
  verify_all(*r, live);
  r->close();
  s = store::open(p, alloc_opts());  // writable open re-checks the accounting
  check_accounting(live);
  verify_all(*s, live);
  // Free everything: all arena bytes end up on free lists.
  s->write([&](write_txn& tx) {
    for (auto& [off, b] : live) tx.free(off, b.n);
  });
  const auto i = s->info();
  CHECK(i.live_bytes == 0);
  CHECK(i.free_bytes == i.arena_used - fmt::kArenaOffset);
}

TEST_CASE("free of a block that cannot exist throws errc::invalid_argument") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto s = store::open(p, alloc_opts());
  const u64 page_block = s->write([](write_txn& tx) {
    tx.alloc(16);
    return tx.alloc(2 * kPage);
  });
  const auto before = s->info();
  auto tx = s->begin_write();
  auto expect_invalid = [&](u64 off, u64 n) {
    auto e = catch_error([&] { tx.free(off, n); });
    REQUIRE_MESSAGE(e, "free(" << off << ", " << n << ") did not throw");
    CHECK(e->code() == errc::invalid_argument);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
  };
  expect_invalid(7, 16);                              // below the arena, misaligned
  expect_invalid(fmt::kMetaOffset, 16);               // the meta page
  expect_invalid(fmt::kArenaOffset + 8, 16);          // misaligned
  expect_invalid(before.arena_used + kPage, 16);      // beyond the cursor
  expect_invalid(1ull << 40, 16);                     // far beyond the file
  expect_invalid(fmt::kArenaOffset, 0);               // zero size
  expect_invalid(fmt::kArenaOffset, 1ull << 40);      // larger than max_size
  expect_invalid(page_block + kPage - 16, 100);       // would cross a page
  expect_invalid(page_block + 16, 2 * kPage);         // large block not page aligned
  expect_invalid(page_block, 64 * kPage);             // runs past the cursor
  expect_invalid(~0ull - 15, 16);                     // overflow
  // Nothing changed and the transaction is still usable.
  tx.free(page_block, 2 * kPage);
  CHECK(tx.commit() == 2);
  const auto after = s->info();
  CHECK(after.free_bytes == before.free_bytes + 2 * kPage);
  CHECK(after.live_bytes + after.free_bytes == after.arena_used - fmt::kArenaOffset);
  // alloc(0) is refused too.
  auto tx2 = s->begin_write();
  auto e = catch_error([&] { tx2.alloc(0); });
  REQUIRE(e);
  CHECK(e->code() == errc::invalid_argument);
}

TEST_CASE("a corrupt free list gives errc::corrupt, not a crash") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  const int cls112 = small_class_of(112);
  REQUIRE(cls112 >= 0);
  u64 freed = 0;
  {
    auto s = store::open(p, alloc_opts());
    freed = s->write([](write_txn& tx) {
      const u64 a = tx.alloc(100);
      tx.alloc(100);
      const u64 two = tx.alloc(2 * kPage);  // page aligned, below the cursor
      CHECK(two == 20_KiB);
      tx.alloc(16);
      return a;
    });
    s->close();
  }
  REQUIRE(peek64(p, free_head_at(cls112)) == 0);

  int cls = cls112;
  u64 req = 100;
  SUBCASE("head = 7 (misaligned, below the arena)") { poke64(p, free_head_at(cls), 7); }
  SUBCASE("head beyond the file") { poke64(p, free_head_at(cls), 1ull << 40); }
  SUBCASE("head aligned but beyond the cursor") {
    poke64(p, free_head_at(cls), 512_KiB);  // inside the 1 MiB file, above the cursor
  }
  SUBCASE("head straddling a page") {
    cls = small_class_of(4096);
    req = 4096;
    poke64(p, free_head_at(cls), fmt::kArenaOffset + 2048);
  }
  SUBCASE("head pointing into the meta page") { poke64(p, free_head_at(cls), fmt::kMetaOffset + 48); }
  SUBCASE("a free block's link is bogus") {
    // Free a real block, then break the link stored in its first 8 bytes.
    {
      auto s = store::open(p, alloc_opts());
      s->write([&](write_txn& tx) { tx.free(freed, 100); });
      s->close();
    }
    REQUIRE(peek64(p, free_head_at(cls)) == freed);
    poke64(p, freed, 12345);
  }
  SUBCASE("large (112-page) class head beyond the file") {
    cls = fmt::kGeoFirst + 2;
    req = 100 * kPage;
    poke64(p, free_head_at(cls), 1ull << 40);
  }
  SUBCASE("large class head points at a page-aligned block running past the cursor") {
    cls = fmt::kGeoFirst + 2;
    req = 100 * kPage;
    poke64(p, free_head_at(cls), 20_KiB);
  }

  auto s = store::open(p, alloc_opts());
  auto tx = s->begin_write();
  auto e = catch_error([&] { tx.alloc(req); });
  REQUIRE_MESSAGE(e, "allocation from a corrupt free list did not throw");
  CHECK(e->code() == errc::corrupt);
  CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
  tx.abort();
  // Other size classes still work and commit.
  const u64 other = s->write([&](write_txn& tx2) {
    const u64 b = tx2.alloc(cls >= fmt::kGeoFirst ? 48 : 8 * kPage);
    tx2.put(ref<u64>{b}, u64{42});
    return b;
  });
  CHECK(s->read([&](const read_view& v) { return v.get(ref<u64>{other}); }) == 42);
}
