// Where slot i of a hash map table sits: docs/FORMAT.md "Slots" puts it at
// slots + ⌊i / spp⌋ · 4096 + (i mod spp) · slot. The lock-free readers
// (detail::map_layout, compile-time sizes, computed as i · slot plus the
// pads of the pages before) and the writer (keel::hash::geom, run-time sizes,
// a 128-bit reciprocal) compute it in two other ways. For every slot size
// a hash_map allows, at every index near a page edge of the first pages and
// of the last pages a table can have, and at random indices, all three
// must agree.
#include <doctest/doctest.h>

#include <keel/hash_map.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>

#include "hash/table.h"

namespace {

using u64 = std::uint64_t;

// The formula as FORMAT.md writes it, in 64 bits with a true division.
u64 format_off(u64 slots, u64 idx, u64 slot) {
  const u64 spp = 4096 / slot;
  return slots + idx / spp * 4096 + idx % spp * slot;
}

// The index of every slot a table of the most groups (2^28) can have is
// below 2^32.
constexpr u64 kMaxIdx = (u64{1} << 28) * 16 - 1;

template <u64 Slot>
std::string check_slot_size() {
  constexpr u64 ks = 8, vs = Slot - 8;
  using L = keel::detail::map_layout<ks, vs>;
  static_assert(L::slot == Slot);
  const keel::hash::geom g(ks, vs);
  keel::fmt::map_table t{};
  t.slots = 0x40000000;  // any page-aligned block offset
  const u64 spp = 4096 / Slot;
  std::string err;
  auto at = [&](u64 idx) {
    const u64 want = format_off(t.slots, idx, Slot);
    const u64 reader = L::slot_off(t.slots, idx), writer = g.slot_off(t, idx);
    if ((reader != want || writer != want) && err.size() < 400)
      err += "slot " + std::to_string(Slot) + " idx " + std::to_string(idx) + ": format " + std::to_string(want) +
             ", reader " + std::to_string(reader) + ", writer " + std::to_string(writer) + "; ";
    // No slot crosses a page.
    if ((want % 4096) + Slot > 4096 && err.size() < 400)
      err += "slot " + std::to_string(Slot) + " idx " + std::to_string(idx) + " crosses a page; ";
  };
  for (u64 page = 0; page < 40; ++page)
    for (u64 j : {u64{0}, u64{1}, spp - 1}) at(page * spp + j);
  for (u64 back = 0; back < 40 * spp; ++back) at(kMaxIdx - back);
  std::mt19937_64 rng(Slot);
  for (int n = 0; n < 2000; ++n) at(rng() % (kMaxIdx + 1));
  return err;
}

template <u64... I>
std::string check_all(std::integer_sequence<u64, I...>) {
  std::string err;
  ((err += check_slot_size<8 * (I + 1)>()), ...);  // slots of 8 ... 4000 bytes (8-byte keys)
  return err;
}

}  // namespace

TEST_CASE("readers, writer and FORMAT.md agree on every slot's offset, for every slot size") {
  const std::string err = check_all(std::make_integer_sequence<u64, 4000 / 8>{});
  CHECK_MESSAGE(err.empty(), err);
  // The pads the readers add: a 40-byte slot (u64 -> 32 bytes) leaves 16
  // bytes at each page's end, a 4000-byte one 96, a 16-byte one none.
  CHECK(keel::detail::map_layout<8, 32>::pad == 16);
  CHECK(keel::detail::map_layout<8, 3992>::pad == 96);
  CHECK(keel::detail::map_layout<8, 8>::pad == 0);
}
