// One regression test per bug found in the transaction layer, named after
// what it caught.
#include <doctest/doctest.h>

#include <keel/keel.h>

#include "support/temp_dir.h"
#include "support/testing.h"

using namespace keel;
using namespace keel_test;

TEST_CASE("regression: a changed line straddling the committed cursor must not overwrite fresh bytes") {
  // Bytes below the committed cursor are changed in a private copy filled in
  // 64-byte lines; bytes past it are written in place. A line holding both
  // used to be applied whole at commit, putting back the stale fresh bytes.
  temp_dir d;
  for (auto mode : {durability::sync, durability::batch, durability::checkpoint}) {
    CAPTURE(static_cast<int>(mode));
    options o = small_opts();
    o.mode = mode;
    const std::string p = d.path("s" + std::to_string(static_cast<int>(mode)) + ".keel");
    u64 a = 0, b = 0;
    {
      auto db = store::open(p, o);
      db->write([&](write_txn& tx) {
        a = tx.alloc(16);
        tx.put(ref<u64>{a}, u64{1});
      });
      db->write([&](write_txn& tx) {
        tx.put(ref<u64>{a}, u64{2});  // fills the private line holding a (and the space after it)
        b = tx.alloc(16);             // fresh space in that same line
        tx.put(ref<u64>{b}, u64{0xB0B});
      });
      REQUIRE(a / 64 == b / 64);  // the case under test: same line
      CHECK(db->read([&](const read_view& v) { return v.get(ref<u64>{b}); }) == 0xB0B);
      CHECK(db->read([&](const read_view& v) { return v.get(ref<u64>{a}); }) == 2);
    }
    auto db = store::open(p, o);  // and after the log is replayed / checkpointed
    CHECK(db->read([&](const read_view& v) { return v.get(ref<u64>{b}); }) == 0xB0B);
  }
}
