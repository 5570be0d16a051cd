// hash_map::get_many against single gets and a model: present and absent
// keys, batch sizes around the prefetch window (16) and the read-section
// run (256), in the middle of a resize (keys in the old table), and a short
// output span.
#include <doctest/doctest.h>

#include <keel/keel.h>
#include <map>
#include <optional>
#include <random>
#include <vector>

#include "support/temp_dir.h"
#include "support/testing.h"

using namespace keel;
using namespace keel_test;

namespace {

struct val {
  u64 a, b;
};

void check_batch(const hash_map<u64, val>& m, const std::map<u64, val>& model, const std::vector<u64>& keys) {
  std::vector<std::optional<val>> out(keys.size(), val{1, 1});
  const std::size_t found = m.get_many(keys, out);
  std::size_t want = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto it = model.find(keys[i]);
    CAPTURE(i);
    REQUIRE(out[i].has_value() == (it != model.end()));
    if (out[i]) {
      CHECK(out[i]->a == it->second.a);
      CHECK(out[i]->b == it->second.b);
      ++want;
    }
    const auto single = m.get(keys[i]);
    REQUIRE(single.has_value() == out[i].has_value());
  }
  CHECK(found == want);
}

}  // namespace

TEST_CASE("get_many equals single gets and the model, through resizes") {
  temp_dir d;
  options o = small_opts();
  o.max_size = 1ull << 30;
  auto db = store::open(d.path("g.keel"), o);
  auto m = hash_map<u64, val>::open(*db, "m");
  std::map<u64, val> model;
  std::mt19937_64 rng(11);
  int checked_during_resize = 0;
  // Small transactions: a resize moves 4 old groups per write, so it stays
  // in progress across many of them.
  const std::size_t sizes[] = {0, 1, 15, 16, 17, 255, 256, 257, 600};
  const int txns = 800;
  for (int t = 0; t < txns; ++t) {
    db->write([&](write_txn& tx) {
      for (int i = 0; i < 20; ++i) {
        const u64 k = rng() % 40000;
        if (rng() % 5 == 0) {
          m.erase(tx, k);
          model.erase(k);
        } else {
          const val v{k, static_cast<u64>(t)};
          m.put(tx, k, v);
          model[k] = v;
        }
      }
    });
    // Was a resize left running (an old table still holding keys)?
    const bool resizing = db->read([&](const read_view& v) {
      u64 old_groups;
      std::memcpy(&old_groups, v.bytes(m.root() + 72 + 16, 8), 8);
      return old_groups != 0;
    });
    checked_during_resize += resizing;
    std::vector<u64> keys(sizes[t % std::size(sizes)]);
    for (auto& k : keys) k = rng() % 50000;  // some absent
    check_batch(m, model, keys);
  }
  MESSAGE(checked_during_resize, " of ", txns, " checks ran while a resize was in progress");
  CHECK(checked_during_resize >= 8);
}

TEST_CASE("get_many with a short output span is invalid_argument") {
  temp_dir d;
  auto db = store::open(d.path("s.keel"), small_opts());
  auto m = hash_map<u64, val>::open(*db, "m");
  std::vector<u64> keys(5, 1);
  std::vector<std::optional<val>> out(4);
  auto e = catch_error([&] { m.get_many(keys, out); });
  REQUIRE(e);
  CHECK(e->code() == errc::invalid_argument);
}
