// errc::full inside a transaction that writes B+trees: a put that throws
// full changes nothing (its spare pages and out-of-line value are allocated
// before the tree is touched), the transaction stays usable and commits,
// and the trees equal the model after a reopen, with nothing leaked.
#include <doctest/doctest.h>

#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>
#include <map>
#include <string>

#include "support/temp_dir.h"
#include "support/testing.h"

namespace {

using keel_test::u64;
using namespace keel::literals;

struct wide {
  u64 a[12];  // 96 bytes: ~38 per leaf, so splits come often
};

std::vector<std::pair<u64, std::string>> problems_of(keel::write_txn& tx, u64 root) {
  std::vector<std::pair<u64, std::string>> p;
  keel::detail::tree_check(tx, root, p);
  return p;
}

u64 mix(u64 x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

}  // namespace

TEST_CASE("errc::full in tree puts: nothing changed by the failing put, the transaction commits, trees intact") {
  keel_test::temp_dir dir;
  keel::options o = keel_test::small_opts();
  o.mode = keel::durability::checkpoint;
  o.max_size = 4_MiB;
  std::map<u64, u64> tm;
  std::map<std::string, std::string> bm;
  int fulls_typed = 0, fulls_bytes = 0;
  {
    auto db = keel::store::open(dir.path("s"), o);
    auto t = keel::tree_map<u64, wide>::open(*db, "t");
    auto b = keel::bytes_tree::open(*db, "b");
    u64 next = 1;
    for (int round = 0; round < 200 && (fulls_typed < 3 || fulls_bytes < 3); ++round) {
      db->write([&](keel::write_txn& tx) {
        for (int i = 0; i < 200; ++i) {
          const u64 k = mix(next++);
          wide w{};
          w.a[0] = k;
          try {
            const bool added = t.put(tx, k, w);
            REQUIRE(added);
            tm[k] = k;
          } catch (const keel::error& e) {
            REQUIRE_MESSAGE(e.code() == keel::errc::full, e.what());
            ++fulls_typed;
            CHECK(!t.get(tx, k).has_value());
          }
          // Every fourth value goes out of line (a blob allocated first).
          const std::string key = "key/" + std::to_string(k % 100000);
          const std::string value(i % 4 == 0 ? 3000 : 40, static_cast<char>('a' + i % 26));
          try {
            b.put(tx, key, value);
            bm[key] = value;
          } catch (const keel::error& e) {
            REQUIRE_MESSAGE(e.code() == keel::errc::full, e.what());
            ++fulls_bytes;
            const auto old = b.get(tx, key);
            const auto want = bm.find(key);
            CHECK(old.has_value() == (want != bm.end()));
            if (old && want != bm.end()) CHECK(*old == want->second);
          }
        }
        const auto pt = problems_of(tx, t.root()), pb = problems_of(tx, b.root());
        REQUIRE_MESSAGE(pt.empty(), (pt.empty() ? std::string() : pt.front().second));
        REQUIRE_MESSAGE(pb.empty(), (pb.empty() ? std::string() : pb.front().second));
        CHECK(t.size(tx) == tm.size());
        CHECK(b.size(tx) == bm.size());
      });
    }
    MESSAGE("typed puts refused full: ", fulls_typed, ", byte-string puts: ", fulls_bytes, ", entries ", tm.size(),
            " + ", bm.size());
    CHECK(fulls_typed > 0);
    CHECK(fulls_bytes > 0);
    db->close();
  }
  auto db = keel::store::open(dir.path("s"), o);
  auto t = keel::tree_map<u64, wide>::open(*db, "t");
  auto b = keel::bytes_tree::open(*db, "b");
  REQUIRE(t.size() == tm.size());
  REQUIRE(b.size() == bm.size());
  auto it = tm.begin();
  t.for_each([&](const u64& k, const wide& w) {
    REQUIRE(it != tm.end());
    CHECK(k == it->first);
    CHECK(w.a[0] == it->second);
    ++it;
  });
  auto bit = bm.begin();
  b.for_each([&](std::string_view k, std::string_view v) {
    REQUIRE(bit != bm.end());
    CHECK(k == bit->first);
    CHECK(v == bit->second);
    ++bit;
  });
  // Nothing leaked: clearing both trees returns every block.
  const u64 before = db->info().live_bytes;
  db->write([&](keel::write_txn& tx) {
    t.clear(tx);
    b.clear(tx);
  });
  const u64 after = db->info().live_bytes;
  CHECK(after < before);
  std::vector<std::pair<u64, std::string>> p;
  db->write([&](keel::write_txn& tx) { p = problems_of(tx, t.root()); });
  CHECK(p.empty());
  // What remains live: the catalog page and the two 64-byte tree roots.
  CHECK(after <= 4096 + 2 * 64);
}
