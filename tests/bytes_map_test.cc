// keel::bytes_map: differential against std::unordered_map under every
// durability mode with reopen, size limits, space reuse, type checks and a
// corrupt entry block.
#include <doctest/doctest.h>

#include <keel/keel.h>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "file/format.h"
#include "support/temp_dir.h"
#include "support/testing.h"

using namespace keel;
using namespace keel_test;

namespace {

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Mostly small values, some over a page (stored out of line), some empty.
std::size_t value_len(std::mt19937_64& rng) {
  const auto r = rng() % 100;
  return r < 5 ? 0 : r < 92 ? rng() % 200 : r < 98 ? 4000 + rng() % 100 : 5000 + rng() % 60000;
}

void check_equal(store& db, const bytes_map& m, const std::unordered_map<std::string, std::string>& ref) {
  REQUIRE(m.size() == ref.size());
  for (const auto& [k, v] : ref) {
    const auto got = m.get(k);
    REQUIRE_MESSAGE(got.has_value(), "missing key of ", k.size(), " bytes");
    REQUIRE(*got == v);
  }
  std::unordered_set<std::string> seen;
  m.for_each([&](std::string_view k, std::string_view v) {
    REQUIRE_MESSAGE(seen.insert(std::string(k)).second, "for_each returned a key twice");
    const auto it = ref.find(std::string(k));
    REQUIRE(it != ref.end());
    REQUIRE(it->second == v);
  });
  REQUIRE(seen.size() == ref.size());
  (void)db;
}

}  // namespace

TEST_CASE("bytes_map matches std::unordered_map in every durability mode, across reopen") {
  for (auto mode : {durability::sync, durability::batch, durability::checkpoint}) {
    CAPTURE(static_cast<int>(mode));
    temp_dir d;
    const std::string p = d.path("b.keel");
    options o = small_opts();
    o.mode = mode;
    o.max_size = 1ull << 30;
    std::unordered_map<std::string, std::string> ref;
    std::mt19937_64 rng(42 + static_cast<int>(mode));
    const int txns = mode == durability::sync ? 40 : 200;
    std::size_t ops = 0;
    for (int round = 0; round < 2; ++round) {
      auto db = store::open(p, o);
      auto m = bytes_map::open(*db, "b");
      check_equal(*db, m, ref);
      for (int t = 0; t < txns; ++t) {
        auto shadow = ref;
        const bool abort = t % 17 == 16;
        try {
          db->write([&](write_txn& tx) {
            for (int i = 0; i < 250; ++i, ++ops) {
              // Keys of 0..40 bytes from a small space, so there are many
              // updates, erases and equal-length keys that differ in one byte.
              std::string k = "key-" + std::to_string(rng() % 3000);
              if (rng() % 8 == 0) k = random_bytes(rng, rng() % 3);
              const auto op = rng() % 10;
              if (op < 5) {
                const std::string v = random_bytes(rng, value_len(rng));
                REQUIRE(m.put(tx, k, v) == !shadow.count(k));
                shadow[k] = v;
              } else if (op < 6) {
                const std::string v = random_bytes(rng, value_len(rng));
                REQUIRE(m.insert(tx, k, v) == !shadow.count(k));
                shadow.emplace(k, v);
              } else if (op < 8) {
                REQUIRE(m.erase(tx, k) == (shadow.erase(k) == 1));
              } else {
                const auto got = m.get(tx, k);
                const auto it = shadow.find(k);
                REQUIRE(got.has_value() == (it != shadow.end()));
                if (got) REQUIRE(*got == it->second);
              }
            }
            REQUIRE(m.size(tx) == shadow.size());
            if (abort) throw std::runtime_error("abort this transaction");
          });
        } catch (const std::runtime_error& e) {
          if (std::string(e.what()) != "abort this transaction") throw;
        }
        if (!abort) ref = std::move(shadow);
        if (t % 50 == 49) check_equal(*db, m, ref);
      }
      check_equal(*db, m, ref);
      db->close();
    }
    MESSAGE("mode ", static_cast<int>(mode), ": ", ops, " operations, ", ref.size(), " entries");
  }
}

TEST_CASE("bytes_map size limits: oversized keys and values are invalid_argument and change nothing") {
  temp_dir d;
  options o = small_opts();
  o.max_size = 4ull << 30;
  auto db = store::open(d.path("l.keel"), o);
  auto m = bytes_map::open(*db, "l");
  const std::string big_key(bytes_map::max_key + 1, 'k');
  auto e = catch_error([&] { db->write([&](write_txn& tx) { m.put(tx, big_key, "v"); }); });
  REQUIRE(e);
  CHECK(e->code() == errc::invalid_argument);
  CHECK(contains(e->what(), d.path("l.keel")));
  const std::string max_key(bytes_map::max_key, 'k');
  db->write([&](write_txn& tx) { CHECK(m.put(tx, max_key, std::string(100000, 'v'))); });
  CHECK(m.get(max_key)->size() == 100000);
  CHECK(m.size() == 1);
}

TEST_CASE("bytes_map returns replaced and erased space for reuse") {
  temp_dir d;
  options o = small_opts();
  o.max_size = 1ull << 30;
  auto db = store::open(d.path("r.keel"), o);
  auto m = bytes_map::open(*db, "r");
  std::mt19937_64 rng(5);
  std::uint64_t used_after_first = 0;
  for (int cycle = 0; cycle < 12; ++cycle) {
    db->write([&](write_txn& tx) {
      for (int i = 0; i < 400; ++i) m.put(tx, "k" + std::to_string(i), random_bytes(rng, i % 10 == 0 ? 9000 : 300));
    });
    db->write([&](write_txn& tx) {
      for (int i = 0; i < 400; i += 2) m.erase(tx, "k" + std::to_string(i));
    });
    if (cycle == 1) used_after_first = db->info().arena_used;
  }
  CHECK(db->info().arena_used <= used_after_first * 3 / 2);
  db->write([&](write_txn& tx) { m.clear(tx); });
  CHECK(m.size() == 0);
  CHECK(db->info().live_bytes < 64 * 1024);  // catalog page, root and an empty table
}

TEST_CASE("bytes_map type checks and a corrupt entry block") {
  temp_dir d;
  const std::string p = d.path("t.keel");
  std::uint64_t slot_entry = 0;
  {
    auto db = store::open(p, small_opts());
    auto m = bytes_map::open(*db, "t");
    db->write([&](write_txn& tx) { m.put(tx, "alpha", "one"); });
    auto e = catch_error([&] { hash_map<std::uint64_t, std::uint64_t>::open(*db, "t"); });
    REQUIRE(e);
    CHECK(e->code() == errc::type_mismatch);
    db->write([&](write_txn& tx) { hash_map<std::uint64_t, std::uint64_t>::open(*db, tx, "h"); });
    e = catch_error([&] { bytes_map::open(*db, "h"); });
    REQUIRE(e);
    CHECK(e->code() == errc::type_mismatch);
    // Find the entry block of "alpha" through the table: the only full slot.
    slot_entry = db->read([&](const read_view& v) {
      fmt::map_root rt;
      std::memcpy(&rt, v.bytes(m.root(), sizeof rt), sizeof rt);
      const std::byte* c = v.bytes(rt.cur.ctrl, 16);
      for (int i = 0; i < 16; ++i)
        if (static_cast<std::uint8_t>(c[i]) & 0x80) {
          std::uint64_t s[2];
          std::memcpy(s, v.bytes(rt.cur.slots + 16 * static_cast<std::uint64_t>(i), 16), 16);
          return s[1];
        }
      return std::uint64_t{0};
    });
    REQUIRE(slot_entry != 0);
  }
  {
    auto ro = store::open(p, read_only_opts());
    auto e = catch_error([&] { bytes_map::open(*ro, "missing"); });
    REQUIRE(e);
    CHECK(e->code() == errc::invalid_argument);
  }
  const std::uint32_t huge_key_len = 1u << 20;  // over max_key
  poke(p, slot_entry, &huge_key_len, 4);
  auto db = store::open(p, read_only_opts());
  auto m = bytes_map::open(*db, "t");
  auto e = catch_error([&] { (void)m.get("alpha"); });
  REQUIRE(e);
  CHECK(e->code() == errc::corrupt);
  CHECK(contains(e->what(), p));
}

TEST_CASE("regression: lookups during a resize never read the dead slots of moved groups") {
  // Moved old groups keep their control bytes and slots (hash, entry
  // offset). A key moved to the new table and then erased there still has
  // its stale slot in a moved group; its entry block was freed. Looking the
  // key up again used to follow that slot and read the block, which by then
  // held other bytes ("bytes map entry ... is malformed").
  // Entries of 4024 bytes and out-of-line values of 4096 share the 4096-byte
  // size class, so a value written right after the erase reuses the block.
  temp_dir d;
  options o = small_opts();
  o.max_size = 1ull << 30;
  o.mode = durability::checkpoint;
  auto db = store::open(d.path("r.keel"), o);
  auto m = bytes_map::open(*db, "r");
  std::mt19937_64 rng(7);
  auto key = [](int i) {
    std::string k(1500, 'k');
    std::memcpy(k.data(), &i, sizeof i);
    return k;
  };
  auto resizing = [&] {
    return db->read([&](const read_view& v) {
      fmt::map_root rt;
      std::memcpy(&rt, v.bytes(m.root(), sizeof rt), sizeof rt);
      return rt.old.groups != 0 ? rt.migrate : UINT64_MAX;
    });
  };
  int n = 0, probes_in_resize = 0;
  for (int round = 0; round < 9; ++round) {
    // Grow until a resize is running.
    while (resizing() == UINT64_MAX)
      db->write([&](write_txn& tx) { m.put(tx, key(n++), random_bytes(rng, 2500)); });
    // While it runs: erase a key, reuse its block, look the key up.
    for (int i = 0; resizing() != UINT64_MAX; ++i) {
      const int victim = static_cast<int>(rng() % static_cast<std::uint64_t>(n));
      db->write([&](write_txn& tx) {
        if (!m.erase(tx, key(victim))) return;
        m.put(tx, "filler-" + std::to_string(round) + "-" + std::to_string(i), random_bytes(rng, 4096));
        REQUIRE_FALSE(m.get(tx, key(victim)).has_value());
      });
      REQUIRE_FALSE(m.get(key(victim)).has_value());
      ++probes_in_resize;
      db->write([&](write_txn& tx) { m.put(tx, key(victim), random_bytes(rng, 2500)); });
    }
  }
  MESSAGE(probes_in_resize, " lookups of erased keys during resizes");
  CHECK(probes_in_resize > 20);
}
