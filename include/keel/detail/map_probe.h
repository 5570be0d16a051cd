// The lock-free lookup of keel::hash_map, inline so that a loop of gets
// keeps several lookups in flight (each is two dependent cache misses).
// Layout: docs/FORMAT.md "Hash map"; src/hash/ holds the rest of the engine
// and checks at compile time that map_root_bytes matches the format.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "keel/txn.h"

namespace keel::detail {

struct map_shape;

struct map_table_bytes {
  std::uint64_t ctrl, slots, groups, used, max_probe;
};
struct map_root_bytes {
  unsigned char magic[8];
  std::uint32_t key_size, value_size;
  std::uint64_t seed, size;
  map_table_bytes cur, old;
  std::uint64_t migrate, reserved;
};
static_assert(sizeof(map_root_bytes) == 128);

// Full validation of a root that failed the quick check below; always throws
// errc::corrupt naming what is wrong.
[[noreturn]] void map_root_corrupt(const read_view& v, std::uint64_t root, std::uint32_t key_size,
                                   std::uint32_t value_size);

template <std::uint32_t KS, std::uint32_t VS>
struct map_layout {
  static constexpr std::uint32_t slot = ((KS + VS < 8 ? 8 : KS + VS) + 7) / 8 * 8;
  static constexpr std::uint32_t spp = 4096 / slot;  // slots per page; none crosses a page
  static constexpr std::uint64_t slot_off(std::uint64_t slots, std::uint64_t idx) {
    return slots + idx / spp * 4096 + idx % spp * slot;
  }
};

// Control bytes of a group equal to `tag`, as a bit mask.
inline std::uint32_t group_match(const std::byte* c, std::uint8_t tag) noexcept {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
  return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(static_cast<char>(tag)))));
#else
  std::uint32_t m = 0;
  for (int i = 0; i < 16; ++i) m |= (static_cast<std::uint8_t>(c[i]) == tag ? 1u : 0u) << i;
  return m;
#endif
}

inline bool table_quick_ok(const map_table_bytes& t) noexcept {
  return t.groups != 0 && t.groups <= (std::uint64_t{1} << 28) && (t.groups & (t.groups - 1)) == 0 &&
         t.max_probe < t.groups;
}

// Looks key up in one table; matches in groups below dead_below were moved
// out already and count as absent. Every offset goes through v.bytes().
template <class K, class V>
bool map_probe_table(const read_view& v, const map_table_bytes& t, const K& key, std::uint64_t h,
                     std::uint64_t dead_below, V& out) {
  using L = map_layout<sizeof(K), sizeof(V)>;
  const auto tag = static_cast<std::uint8_t>(0x80 | (h & 0x7f));
  const std::uint64_t mask = t.groups - 1;
  std::uint64_t gi = t.groups == 1 ? 0 : h >> (64 - std::countr_zero(t.groups));
  for (std::uint64_t p = 0; p <= t.max_probe; ++p, gi = (gi + 1) & mask) {
    const std::byte* c = v.bytes(t.ctrl + gi * 16, 16);
    for (std::uint32_t m = group_match(c, tag); m != 0; m &= m - 1) {
      const std::uint64_t idx = gi * 16 + static_cast<std::uint64_t>(std::countr_zero(m));
      const std::byte* s = v.bytes(L::slot_off(t.slots, idx), sizeof(K) + sizeof(V));
      if (std::memcmp(s, &key, sizeof(K)) == 0) {
        if (gi < dead_below) return false;
        std::memcpy(&out, s + sizeof(K), sizeof(V));
        return true;
      }
    }
    if (group_match(c, 0) != 0) return false;  // an empty slot ends the probe
  }
  return false;
}

inline std::uint64_t load64(const std::byte* p) noexcept {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

inline map_table_bytes load_table(const std::byte* p) noexcept {
  return {load64(p), load64(p + 8), load64(p + 16), 0, load64(p + 32)};
}

template <class K, class V>
bool map_probe(const read_view& v, std::uint64_t root, const K& key, V& out) {
  // "KEELHMAP" read as a little-endian word, and the two sizes as one word.
  constexpr std::uint64_t kMagic = 0x50414d484c45454bull;
  constexpr std::uint64_t kSizes = (std::uint64_t{sizeof(V)} << 32) | sizeof(K);
  const std::byte* r = v.bytes(root, sizeof(map_root_bytes));
  const map_table_bytes cur = load_table(r + offsetof(map_root_bytes, cur));
  const std::uint64_t old_groups = load64(r + offsetof(map_root_bytes, old) + 16);
  if (load64(r) != kMagic || load64(r + 8) != kSizes || !table_quick_ok(cur)) [[unlikely]]
    map_root_corrupt(v, root, sizeof(K), sizeof(V));
  const std::uint64_t h = XXH3_64bits_withSeed(&key, sizeof(K), load64(r + offsetof(map_root_bytes, seed)));
  if (map_probe_table(v, cur, key, h, 0, out)) return true;
  if (old_groups == 0) return false;
  const map_table_bytes old = load_table(r + offsetof(map_root_bytes, old));
  const std::uint64_t migrate = load64(r + offsetof(map_root_bytes, migrate));
  if (old.groups != old_groups || !table_quick_ok(old) || migrate >= old.groups) [[unlikely]]
    map_root_corrupt(v, root, sizeof(K), sizeof(V));
  return map_probe_table(v, old, key, h, migrate, out);
}

}  // namespace keel::detail
