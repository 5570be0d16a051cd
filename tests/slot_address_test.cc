// Where slot i of a hash map table sits: docs/FORMAT.md "Slots" lays slots
// end to end, slot i at slots + i · slot, in a block of groups · 16 · slot
// bytes rounded up to whole pages, under the magic KEELHMAP when slot
// divides 4096 and KEELHMA2 otherwise. The lock-free readers
// (detail::map_layout: compile-time sizes, a 32-bit index) and the writer
// (keel::hash::geom: run-time sizes) compute each of these on their own.
// For every slot size a hash_map allows, near the first and the last
// indices a table can have and at random indices, they must agree with the
// format; and where the magic stays KEELHMAP, the offsets must be the ones
// an earlier build's page-packed layout gave, which is what lets both read
// such a root.
#include <doctest/doctest.h>

#include <keel/hash_map.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include "hash/table.h"

namespace {

using u64 = std::uint64_t;

// The index of every slot a table of the most groups (2^28) can have is
// below 2^32.
constexpr u64 kMaxGroups = u64{1} << 28;
constexpr u64 kMaxIdx = kMaxGroups * 16 - 1;

template <u64 Slot>
std::string check_slot_size() {
  constexpr u64 ks = 8, vs = Slot - 8;
  using L = keel::detail::map_layout<ks, vs>;
  static_assert(L::slot == Slot);
  const keel::hash::geom g(ks, vs);
  keel::fmt::map_table t{};
  t.slots = 0x40000000;  // any page-aligned block offset
  const bool packed = 4096 % Slot == 0;  // layouts 1 and 2 coincide
  std::string err;
  auto fail = [&](const std::string& what) {
    if (err.size() < 600) err += "slot " + std::to_string(Slot) + ": " + what + "; ";
  };
  auto at = [&](u64 idx) {
    const u64 want = t.slots + idx * Slot;  // FORMAT.md, in 64 bits
    const u64 reader = L::slot_off(t.slots, idx), writer = g.slot_off(t, idx);
    if (reader != want || writer != want)
      fail("idx " + std::to_string(idx) + ": format " + std::to_string(want) + ", reader " + std::to_string(reader) +
           ", writer " + std::to_string(writer));
    if (packed && want != t.slots + idx / (4096 / Slot) * 4096 + idx % (4096 / Slot) * Slot)
      fail("idx " + std::to_string(idx) + " is not where the page-packed layout put it");
  };
  for (u64 idx = 0; idx < 40 * 4096 / Slot + 2; ++idx) at(idx);
  for (u64 back = 0; back < 40 * 4096 / Slot + 2; ++back) at(kMaxIdx - back);
  std::mt19937_64 rng(Slot);
  for (int n = 0; n < 2000; ++n) at(rng() % (kMaxIdx + 1));

  for (u64 groups = 1; groups <= kMaxGroups; groups *= 2) {
    const u64 want = (groups * 16 * Slot + 4095) / 4096 * 4096;
    if (L::slot_bytes(groups) != want || g.slot_bytes(groups) != want)
      fail(std::to_string(groups) + " groups: block " + std::to_string(want) + ", reader " +
           std::to_string(L::slot_bytes(groups)) + ", writer " + std::to_string(g.slot_bytes(groups)));
    // The last slot ends inside the block.
    keel::fmt::map_table b{};
    b.slots = t.slots;
    if (g.slot_off(b, groups * 16 - 1) + Slot > b.slots + want) fail(std::to_string(groups) + " groups overflow");
  }

  const unsigned char* want_magic = packed ? keel::fmt::kMapMagic : keel::fmt::kMapMagic2;
  u64 reader_magic;
  std::memcpy(&reader_magic, want_magic, 8);
  if (std::memcmp(g.magic(), want_magic, 8) != 0 || L::magic != reader_magic) fail("magic disagrees");
  return err;
}

template <u64... I>
std::string check_all(std::integer_sequence<u64, I...>) {
  std::string err;
  ((err += check_slot_size<8 * (I + 1)>()), ...);  // slots of 8 ... 4000 bytes (8-byte keys)
  return err;
}

}  // namespace

TEST_CASE("readers, writer and FORMAT.md agree on every slot's offset, block and magic, for every slot size") {
  const std::string err = check_all(std::make_integer_sequence<u64, 4000 / 8>{});
  CHECK_MESSAGE(err.empty(), err);
  // Slots now cross pages: u64 -> 32 bytes (40-byte slots) puts slot 102 at
  // 4080, across the first page's end, where the page-packed layout began
  // the second page.
  using L = keel::detail::map_layout<8, 32>;
  CHECK(L::slot_off(0, 102) == 4080);
  CHECK(L::slot_bytes(1 << 20) == 640ull << 20);  // 10M entries' table: 640 MiB, 658 MiB page-packed
}
