// The lock-free lookup of keel::hash_map, inline so that a loop of gets
// keeps several lookups in flight (each is two dependent cache misses).
// Layout: docs/FORMAT.md "Hash map"; src/hash/ holds the rest of the engine
// and checks at compile time that map_root_bytes matches the format.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
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

// What probing relies on, checked on every lookup: power-of-two groups,
// bounded probes, and both blocks inside the arena [arena, limit). (A
// damaged offset inside the arena can still give wrong answers, never a
// wild read: every access also goes through read_view::bytes.)
template <std::uint32_t SPP>
bool table_quick_ok(const map_table_bytes& t, std::uint64_t limit) noexcept {
  constexpr std::uint64_t kArena = 4 * 4096;
  if (t.groups == 0 || t.groups > (std::uint64_t{1} << 28) || (t.groups & (t.groups - 1)) != 0 ||
      t.max_probe >= t.groups)
    return false;
  const std::uint64_t ctrl_len = t.groups * 16, slot_len = (t.groups * 16 + SPP - 1) / SPP * 4096;
  return t.ctrl >= kArena && t.ctrl <= limit && ctrl_len <= limit - t.ctrl && t.slots >= kArena &&
         t.slots % 4096 == 0 && t.slots <= limit && slot_len <= limit - t.slots;
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
    if (gi >= dead_below)  // moved groups: probe through, never match
      for (std::uint32_t m = group_match(c, tag); m != 0; m &= m - 1) {
        const std::uint64_t idx = gi * 16 + static_cast<std::uint64_t>(std::countr_zero(m));
        const std::byte* s = v.bytes(L::slot_off(t.slots, idx), sizeof(K) + sizeof(V));
        if (std::memcmp(s, &key, sizeof(K)) == 0) {
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

// The root's tables, checked enough for probing (power-of-two groups, bounded
// probes); everything else is checked by v.bytes() on each access.
struct map_probe_state {
  std::uint64_t seed;
  map_table_bytes cur, old;
  std::uint64_t migrate;
};

template <class K, class V>
map_probe_state map_probe_root(const read_view& v, std::uint64_t root) {
  constexpr std::uint64_t kMagic = 0x50414d484c45454bull;  // "KEELHMAP"
  constexpr std::uint64_t kSizes = (std::uint64_t{sizeof(V)} << 32) | sizeof(K);
  const std::byte* r = v.bytes(root, sizeof(map_root_bytes));
  map_probe_state s{load64(r + offsetof(map_root_bytes, seed)), load_table(r + offsetof(map_root_bytes, cur)),
                    load_table(r + offsetof(map_root_bytes, old)), load64(r + offsetof(map_root_bytes, migrate))};
  using L = map_layout<sizeof(K), sizeof(V)>;
  if (load64(r) != kMagic || load64(r + 8) != kSizes || !table_quick_ok<L::spp>(s.cur, v.limit()) ||
      (s.old.groups != 0 && (!table_quick_ok<L::spp>(s.old, v.limit()) || s.migrate >= s.old.groups)))
      [[unlikely]]
    map_root_corrupt(v, root, sizeof(K), sizeof(V));
  return s;
}

// Looks up n keys, several at a time: hashes and prefetches the home control
// groups of a window of keys, then prefetches each key's first candidate
// slot, then probes. The cache misses of a window overlap instead of being
// paid one after another. Returns how many were found.
template <class K, class V>
std::size_t map_probe_many(const read_view& v, std::uint64_t root, const K* keys, std::optional<V>* out,
                           std::size_t n) {
  using L = map_layout<sizeof(K), sizeof(V)>;
  constexpr std::size_t kWindow = 16;
  const map_probe_state s = map_probe_root<K, V>(v, root);
  const int shift = 64 - std::countr_zero(s.cur.groups);
  std::size_t found = 0;
  for (std::size_t at = 0; at < n; at += kWindow) {
    const std::size_t w = std::min(kWindow, n - at);
    std::uint64_t h[kWindow], home[kWindow];
    const std::byte* ctrl[kWindow];
    for (std::size_t i = 0; i < w; ++i) {
      h[i] = XXH3_64bits_withSeed(&keys[at + i], sizeof(K), s.seed);
      home[i] = s.cur.groups == 1 ? 0 : h[i] >> shift;
      ctrl[i] = v.bytes(s.cur.ctrl + home[i] * 16, 16);
      __builtin_prefetch(ctrl[i]);
    }
    for (std::size_t i = 0; i < w; ++i) {
      const std::uint32_t m = group_match(ctrl[i], static_cast<std::uint8_t>(0x80 | (h[i] & 0x7f)));
      if (m != 0) {
        const std::uint64_t idx = home[i] * 16 + static_cast<std::uint64_t>(std::countr_zero(m));
        __builtin_prefetch(v.bytes(L::slot_off(s.cur.slots, idx), sizeof(K) + sizeof(V)));
      }
    }
    for (std::size_t i = 0; i < w; ++i) {
      V val;
      if (map_probe_table(v, s.cur, keys[at + i], h[i], 0, val) ||
          (s.old.groups != 0 && map_probe_table(v, s.old, keys[at + i], h[i], s.migrate, val))) {
        out[at + i] = val;
        ++found;
      } else {
        out[at + i].reset();
      }
    }
  }
  return found;
}

template <class K, class V>
bool map_probe(const read_view& v, std::uint64_t root, const K& key, V& out) {
  const map_probe_state s = map_probe_root<K, V>(v, root);
  const std::uint64_t h = XXH3_64bits_withSeed(&key, sizeof(K), s.seed);
  if (map_probe_table(v, s.cur, key, h, 0, out)) return true;
  return s.old.groups != 0 && map_probe_table(v, s.old, key, h, s.migrate, out);
}

}  // namespace keel::detail
