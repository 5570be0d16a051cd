// detail::layout_cache, the per-handle copy of a hash map root's checked
// layout that hash_map::get reads without a lock: what it answers for which
// generation, and that readers never accept fields of one fill mixed with
// another's while fills race them, including fills that write a generation
// again after another (as a stale fill can).
#include <doctest/doctest.h>

#include <keel/hash_map.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

using keel::detail::layout_cache;
using keel::detail::map_probe_state;

namespace {

using u64 = std::uint64_t;

const std::byte* ptr(u64 x) { return reinterpret_cast<const std::byte*>(x); }

// Every field a function of the generation, as in a real root: one layout
// per generation. Odd generations have a resize running (an old table).
map_probe_state state_for(u64 gen) {
  map_probe_state s{};
  s.seed = gen * 0x9E3779B97F4A7C15ull;
  s.cur = {ptr(0x10000 + gen * 64), ptr(0x900000 + gen * 128), u64{1} << (gen % 20), 0};
  if (gen % 2 == 1) s.old = {ptr(0x20000 + gen * 64), ptr(0xa00000 + gen * 128), u64{1} << (gen % 19), 0};
  return s;
}

const std::byte* const kRoot = ptr(0x4000);

}  // namespace

TEST_CASE("an empty cache answers nothing") {
  layout_cache c;
  map_probe_state s{};
  CHECK(c.gen() == layout_cache::kNone);
  CHECK_FALSE(c.get(kRoot, 0, ~u64{0}, s));
  CHECK_FALSE(c.get(kRoot, layout_cache::kNone, ~u64{0}, s));
  CHECK(c.groups() == 0);  // the fast path's max-probe check then refuses
}

TEST_CASE("a fill answers for its root, its generation and arenas at least as long") {
  layout_cache c;
  const map_probe_state want = state_for(4);
  c.put(kRoot, 4, 1000, want);
  map_probe_state s{};
  REQUIRE(c.get(kRoot, 4, 1000, s));
  CHECK(s.seed == want.seed);
  CHECK(s.cur.ctrl == want.cur.ctrl);
  CHECK(s.cur.slots == want.cur.slots);
  CHECK(s.cur.groups == want.cur.groups);
  CHECK(s.old.groups == 0);
  CHECK(c.get(kRoot, 4, 5000, s));
  CHECK_FALSE(c.get(kRoot, 5, 1000, s));      // another generation
  CHECK_FALSE(c.get(kRoot, 3, 1000, s));
  CHECK_FALSE(c.get(ptr(0x8000), 4, 1000, s));  // another root block
  CHECK_FALSE(c.get(kRoot, 4, 999, s));       // checked against a longer arena than this view's

  const u64 v = c.begin();
  CHECK(v % 2 == 0);
  CHECK(c.gen() == 4);
  CHECK(c.seed() == want.seed);
  CHECK(c.ctrl() == want.cur.ctrl);
  CHECK(c.slots() == want.cur.slots);
  CHECK(c.groups() == want.cur.groups);
  CHECK(c.shift() == 63 - 4);  // groups = 16: the home group is the top 4 bits of h >> 1
  CHECK(c.still(v));

  c.clear();
  CHECK_FALSE(c.still(v));  // a fill ran since
  CHECK(c.gen() == layout_cache::kNone);
  CHECK_FALSE(c.get(kRoot, 4, 1000, s));
}

TEST_CASE("during a resize both paths get the old table too") {
  layout_cache c;
  const map_probe_state want = state_for(7);
  c.put(kRoot, 7, 1000, want);
  CHECK(c.gen() == 7);
  map_probe_state s{};
  REQUIRE(c.get(kRoot, 7, 1000, s));
  CHECK(s.old.ctrl == want.old.ctrl);
  CHECK(s.old.slots == want.old.slots);
  CHECK(s.old.groups == want.old.groups);
  const auto old = c.old_table();
  CHECK(old.ctrl == want.old.ctrl);
  CHECK(old.slots == want.old.slots);
  CHECK(old.groups == want.old.groups);
  c.put(kRoot, 8, 1000, state_for(8));  // the resize ended
  CHECK(c.old_table().groups == 0);
}

TEST_CASE("readers racing fills of other generations accept only whole fills") {
  layout_cache c;
  std::atomic<bool> stop{false};
  std::atomic<u64> accepted{0}, torn{0};
  std::vector<std::thread> fillers;
  for (u64 t = 0; t < 2; ++t)
    fillers.emplace_back([&, t] {
      for (u64 i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const u64 gen = (i * 2 + t) % 64;
        c.put(kRoot, gen, 1000, state_for(gen));
        // A pause of a few fills' length, so that reads both overlap fills
        // and fall between them.
        for (int k = 0; k < 2000 && !stop.load(std::memory_order_relaxed); ++k)
          std::atomic_signal_fence(std::memory_order_seq_cst);
      }
    });
  std::thread reader([&] {
    for (u64 i = 0; i < 3'000'000; ++i) {
      // The fast path's reads, in its order.
      const u64 v = c.begin();
      const u64 gen = c.gen();
      if (v % 2 == 0 && gen != layout_cache::kNone) {
        const u64 seed = c.seed(), groups = c.groups();
        const std::byte *ctrl = c.ctrl(), *slots = c.slots();
        const std::uint32_t shift = c.shift();
        const keel::detail::probe_table old = c.old_table();
        if (c.still(v)) {
          const map_probe_state w = state_for(gen);
          accepted.fetch_add(1, std::memory_order_relaxed);
          if (seed != w.seed || groups != w.cur.groups || ctrl != w.cur.ctrl || slots != w.cur.slots ||
              shift != static_cast<std::uint32_t>(63 - std::countr_zero(w.cur.groups)) || old.ctrl != w.old.ctrl ||
              old.slots != w.old.slots || old.groups != w.old.groups)
            torn.fetch_add(1, std::memory_order_relaxed);
        }
      }
      // The read_view path's, for whichever generation it guesses.
      map_probe_state s{};
      const u64 guess = i % 64;
      if (c.get(kRoot, guess, 1000, s)) {
        const map_probe_state w = state_for(guess);
        accepted.fetch_add(1, std::memory_order_relaxed);
        if (s.seed != w.seed || s.cur.ctrl != w.cur.ctrl || s.cur.slots != w.cur.slots ||
            s.cur.groups != w.cur.groups || s.old.ctrl != w.old.ctrl || s.old.groups != w.old.groups)
          torn.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  reader.join();
  stop = true;
  for (auto& f : fillers) f.join();
  CHECK(torn.load() == 0);
  CHECK(accepted.load() > 0);  // the race was run, not skipped
}
