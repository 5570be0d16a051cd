// The lock-free lookup of keel::hash_map, inline so that a loop of gets
// keeps several lookups in flight (each is two dependent cache misses).
// Layout: docs/FORMAT.md "Hash map"; src/hash/ holds the rest of the engine
// and checks at compile time that map_root_bytes matches the format.
#pragma once

#include <atomic>
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

// xxhash declares XXH3_64bits_withSeed `static inline`, a hint only: in a
// large translation unit the compiler leaves it a call, with its dispatch
// on the length, even where the length is a constant (keel-bench's lookup
// loop called it; inlining it took keel / absl from 2.54x to 2.29x in
// read-interleaved at 10M entries). Declared again here with always_inline
// (same function, one more attribute), so every hash of a fixed-size key
// folds to the few instructions of its length's case.
[[gnu::always_inline]] inline XXH64_hash_t XXH3_64bits_withSeed(const void* input, size_t len, XXH64_hash_t seed);

#include "keel/store.h"
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
  std::uint64_t migrate, layout_gen;
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
  static constexpr std::uint32_t pad = 4096 - spp * slot;  // unused bytes at each page's end
  // slots + ⌊i / spp⌋ · 4096 + (i mod spp) · slot (docs/FORMAT.md), written
  // as i · slot plus the pads of the pages before slot i's: no remainder to
  // take, so one multiply fewer on the chain from the key to the slot it
  // loads (keel / absl 1.56x -> 1.40x in alternated runs; slots laid end to
  // end, with no multiply at all, gained nothing more: docs/PERFORMANCE.md,
  // "Slot addresses without a remainder", "Slots end to end"). idx < 2^32
  // (groups <= 2^28), so the quotient is taken in 32 bits.
  static constexpr std::uint64_t slot_off(std::uint64_t slots, std::uint64_t idx) {
    const auto i = static_cast<std::uint32_t>(idx);
    return slots + std::uint64_t{i} * slot + (pad == 0 ? 0 : std::uint64_t{i / spp} * pad);
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

inline std::uint64_t load64(const std::byte* p) noexcept {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

// One table as a lookup sees it: its control and slot blocks, each
// range-checked as a whole (read_view::bytes: errc::corrupt when outside the
// arena), with power-of-two groups and a bounded probe length.
struct probe_table {  // value-initialise ({}) for an absent table
  const std::byte* ctrl;
  const std::byte* slots;
  std::uint64_t groups, max_probe;
};

template <std::uint32_t SPP>
bool table_numbers_ok(std::uint64_t groups, std::uint64_t max_probe) noexcept {
  return groups != 0 && groups <= (std::uint64_t{1} << 28) && (groups & (groups - 1)) == 0 && max_probe < groups;
}

template <std::uint32_t SPP>
probe_table probe_view(const read_view& v, const std::byte* desc) {
  const std::uint64_t groups = load64(desc + 16);
  return {v.bytes(load64(desc), groups * 16), v.bytes(load64(desc + 8), (groups * 16 + SPP - 1) / SPP * 4096), groups,
          load64(desc + 32)};
}

// XXH3-64 of a key's n bytes with the map's seed: the hash readers and the
// writer agree on.
[[gnu::always_inline]] inline std::uint64_t map_key_hash(const void* key, std::size_t n, std::uint64_t seed) noexcept {
  return XXH3_64bits_withSeed(key, n, seed);
}

// The slot tag of a hash (high bit set: a full slot) and its home group: the
// top log2(groups) bits (none when groups == 1). The writer (src/hash) uses
// these same two functions, so readers and writer agree on where a key lives.
inline std::uint8_t tag_of(std::uint64_t h) noexcept { return static_cast<std::uint8_t>(0x80 | (h & 0x7f)); }
inline std::uint64_t home_group(std::uint64_t h, std::uint64_t groups) noexcept {
  return (h >> 1) >> (63 - std::countr_zero(groups));
}
// The slot of its group a key takes when that slot is free (bits 7-10 of
// the hash, used by neither the tag nor, for groups <= 2^28, the home
// group). Only a placement preference: lookups match tags over the whole
// group, but one that prefetches this slot while the control bytes load
// usually finds its key there, so its two cache misses overlap.
inline unsigned preferred_slot(std::uint64_t h) noexcept { return static_cast<unsigned>((h >> 7) & 15); }

// Looks key up from group gi of a table of mask + 1 groups, at most
// max_probe groups further; groups below dead_below were moved out already
// and are probed through but never matched. kPrefetch: see below (off for
// callers that prefetched the candidate slot themselves).
template <class K, class V, bool kPrefetch = true>
[[gnu::always_inline]] inline bool map_probe_groups(const std::byte* ctrl, const std::byte* slots, std::uint64_t mask,
                                                    std::uint64_t gi, std::uint64_t max_probe, std::uint64_t h,
                                                    std::uint64_t dead_below, const K& key, V& out) {
  using L = map_layout<sizeof(K), sizeof(V)>;
  // Start loading the key's preferred slot in its home group while the
  // control group is still loading: usually the key is there, and then the
  // two cache misses (and TLB walks) of a lookup overlap instead of
  // following each other.
  if constexpr (kPrefetch) {
    const std::byte* p = slots + L::slot_off(0, gi * 16 + preferred_slot(h));
    __builtin_prefetch(p);
    __builtin_prefetch(p + sizeof(K) + sizeof(V) - 1);  // the slot may straddle two lines
  }
  const std::uint8_t tag = tag_of(h);
  for (std::uint64_t p = 0; p <= max_probe; ++p, gi = (gi + 1) & mask) {
    const std::byte* c = ctrl + gi * 16;
    if (gi >= dead_below)  // moved groups: probe through, never match
      for (std::uint32_t m = group_match(c, tag); m != 0; m &= m - 1) {
        const std::byte* s = slots + L::slot_off(0, gi * 16 + static_cast<std::uint64_t>(std::countr_zero(m)));
        if (std::memcmp(s, &key, sizeof(K)) == 0) {
          std::memcpy(&out, s + sizeof(K), sizeof(V));
          return true;
        }
      }
    if (group_match(c, 0) != 0) return false;  // an empty slot ends the probe
  }
  return false;
}

// Looks key up in one table (see map_probe_groups).
template <class K, class V, bool kPrefetch = true>
[[gnu::always_inline]] inline bool map_probe_table(const probe_table& t, const K& key, std::uint64_t h,
                                                   std::uint64_t dead_below, V& out) {
  return map_probe_groups<K, V, kPrefetch>(t.ctrl, t.slots, t.groups - 1, home_group(h, t.groups), t.max_probe, h,
                                           dead_below, key, out);
}

// The root's tables, checked enough for probing.
struct map_probe_state {
  std::uint64_t seed;
  probe_table cur, old;
  std::uint64_t migrate;
};

template <class K, class V>
map_probe_state map_probe_root(const read_view& v, std::uint64_t root) {
  using L = map_layout<sizeof(K), sizeof(V)>;
  constexpr std::uint64_t kMagic = 0x50414d484c45454bull;  // "KEELHMAP"
  constexpr std::uint64_t kSizes = (std::uint64_t{sizeof(V)} << 32) | sizeof(K);
  const std::byte* r = v.bytes(root, sizeof(map_root_bytes));
  const std::byte* cur = r + offsetof(map_root_bytes, cur);
  const std::byte* old = r + offsetof(map_root_bytes, old);
  map_probe_state s{load64(r + offsetof(map_root_bytes, seed)), {}, {}, load64(r + offsetof(map_root_bytes, migrate))};
  const std::uint64_t old_groups = load64(old + 16);
  if (load64(r) != kMagic || load64(r + 8) != kSizes || !table_numbers_ok<L::spp>(load64(cur + 16), load64(cur + 32)) ||
      (old_groups != 0 && (!table_numbers_ok<L::spp>(old_groups, load64(old + 32)) || s.migrate >= old_groups)))
      [[unlikely]]
    map_root_corrupt(v, root, sizeof(K), sizeof(V));
  s.cur = probe_view<L::spp>(v, cur);
  if (old_groups != 0) s.old = probe_view<L::spp>(v, old);
  return s;
}

// A map handle's copy of its root's layout (seed, and each table's blocks
// and groups) as checked by map_probe_root, so that a lookup need not check
// it again: valid while the root's layout generation (bumped by the writer
// whenever that layout changes, docs/FORMAT.md "Hash map") is the one it was
// taken at, and the arena has not shrunk below the end it was checked
// against (it never does). Only a state read in an unchanged view (one
// committed state) is stored.
//
// Threads share it through its own seqlock, ver_: a fill makes it odd (a
// fill that finds another running is skipped), writes the generation and
// the fields, and makes it even again. A reader takes an even ver_ (begin),
// the generation and fields, and keeps them only when ver_ is unchanged
// (still). The generation alone cannot mark a fill: a stale fill can write
// an older generation again after a newer one, and a reader across the
// three would see one layout's fields mixed with another's under an
// unchanged generation (layout_cache_test caught this).
class layout_cache {
 public:
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};  // no root's generation reaches it

  layout_cache() = default;
  layout_cache(const layout_cache&) noexcept {}  // a copy starts empty
  layout_cache& operator=(const layout_cache&) noexcept {
    clear();
    return *this;
  }

  // Fills s (all but the live max_probe and migrate fields) from the cache
  // when it holds the layout of root block r at generation gen, checked
  // against an arena end at most hi.
  bool get(const std::byte* r, std::uint64_t gen, std::uint64_t hi, map_probe_state& s) const noexcept {
    const std::uint64_t v = begin();
    if ((v & 1) != 0 || gen == kNone || ld(gen_) != gen || ld(root_) != r || ld(hi_) > hi) return false;
    s.seed = ld(seed_);
    s.cur = {ld(cur_.ctrl), ld(cur_.slots), ld(cur_.groups), 0};
    s.old = {ld(old_.ctrl), ld(old_.slots), ld(old_.groups), 0};
    return still(v);
  }
  void put(const std::byte* r, std::uint64_t gen, std::uint64_t hi, const map_probe_state& s) noexcept {
    std::uint64_t v = ld(ver_);
    if ((v & 1) != 0 || !std::atomic_ref<std::uint64_t>(ver_).compare_exchange_strong(v, v + 1,
                                                                                         std::memory_order_acquire))
      return;
    std::atomic_thread_fence(std::memory_order_release);
    st(gen_, r == nullptr ? kNone : gen);
    st(root_, r), st(hi_, hi), st(seed_, s.seed), st(shift_, shift_of(s.cur.groups));
    st(cur_.ctrl, s.cur.ctrl), st(cur_.slots, s.cur.slots), st(cur_.groups, s.cur.groups);
    st(old_.ctrl, s.old.ctrl), st(old_.slots, s.old.slots), st(old_.groups, s.old.groups);
    rel(ver_, v + 2);
  }
  void clear() noexcept { put(nullptr, 0, 0, map_probe_state{}); }

  // For the lookup without a read_view (map_probe_fast): begin() (odd: a
  // fill runs, do not use), then the generation to compare with the root's
  // (kNone when empty) and the fields, then still(begin's value) before
  // following any of them.
  std::uint64_t begin() const noexcept { return acq(ver_); }
  std::uint64_t gen() const noexcept { return ld(gen_); }
  std::uint64_t seed() const noexcept { return ld(seed_); }
  const std::byte* ctrl() const noexcept { return ld(cur_.ctrl); }
  const std::byte* slots() const noexcept { return ld(cur_.slots); }
  std::uint64_t groups() const noexcept { return ld(cur_.groups); }
  std::uint32_t shift() const noexcept { return ld(shift_); }  // home_group's shift for groups()
  // The old table while a resize runs (groups 0: none); its max probe and
  // the migrate mark are live fields of the root.
  probe_table old_table() const noexcept { return {ld(old_.ctrl), ld(old_.slots), ld(old_.groups), 0}; }
  bool resizing() const noexcept { return ld(old_.groups) != 0; }  // an old table is cached
  const std::byte* root() const noexcept { return ld(root_); }  // the root block these fields were read from
  // No fill overlapped the reads since begin() returned v.
  bool still(std::uint64_t v) const noexcept {
    std::atomic_thread_fence(std::memory_order_acquire);
    return ld(ver_) == v;
  }

 private:
  static std::uint32_t shift_of(std::uint64_t groups) noexcept {
    return groups == 0 ? 0 : static_cast<std::uint32_t>(63 - std::countr_zero(groups));
  }
  template <class T>
  static T ld(const T& x) noexcept {
    return std::atomic_ref<T>(const_cast<T&>(x)).load(std::memory_order_relaxed);
  }
  template <class T>
  static T acq(const T& x) noexcept {
    return std::atomic_ref<T>(const_cast<T&>(x)).load(std::memory_order_acquire);
  }
  template <class T>
  static void st(T& x, T v) noexcept {
    std::atomic_ref<T>(x).store(v, std::memory_order_relaxed);
  }
  template <class T>
  static void rel(T& x, T v) noexcept {
    std::atomic_ref<T>(x).store(v, std::memory_order_release);
  }
  // The fast path's fields first, in one cache line.
  alignas(64) std::uint64_t ver_ = 0;  // odd while a fill runs
  std::uint64_t gen_ = kNone;
  std::uint64_t seed_ = 0;
  probe_table cur_{};
  std::uint32_t shift_ = 0;
  const std::byte* root_ = nullptr;
  std::uint64_t hi_ = 0;
  probe_table old_{};
};

// The old table during a resize (out of line: most lookups never get here).
template <class K, class V>
[[gnu::noinline]] bool map_probe_old(const map_probe_state& s, const K& key, std::uint64_t h, V& out) {
  return map_probe_table(s.old, key, h, s.migrate, out);
}

// The cache missed: the root fully checked, and cached when this view is
// still one committed state.
template <class K, class V>
[[gnu::noinline]] void map_probe_fill(const read_view& v, std::uint64_t root, layout_cache& c, const std::byte* r,
                                      std::uint64_t gen, map_probe_state& s) {
  s = map_probe_root<K, V>(v, root);
  if (v.unchanged()) c.put(r, gen, v.limit(), s);
}

// The root's tables for a lookup, into s: from the cache when its layout
// generation matches (then only the fields that change with every write,
// max probe and migrate, are read and bounded), else fully checked and
// cached.
template <class K, class V>
[[gnu::always_inline]] inline void map_probe_layout(const read_view& v, std::uint64_t root, layout_cache& c,
                                                    map_probe_state& s) {
  const std::byte* r = v.bytes(root, sizeof(map_root_bytes));
  const std::uint64_t gen = load64(r + offsetof(map_root_bytes, layout_gen));
  if (!c.get(r, gen, v.limit(), s)) [[unlikely]] {
    map_probe_fill<K, V>(v, root, c, r, gen, s);
    return;
  }
  s.cur.max_probe = load64(r + offsetof(map_root_bytes, cur) + 32);
  bool ok = s.cur.max_probe < s.cur.groups;
  s.migrate = 0;
  if (s.old.groups != 0) {
    s.old.max_probe = load64(r + offsetof(map_root_bytes, old) + 32);
    s.migrate = load64(r + offsetof(map_root_bytes, migrate));
    ok = ok && s.old.max_probe < s.old.groups && s.migrate < s.old.groups;
  }
  if (!ok) [[unlikely]]
    map_root_corrupt(v, root, sizeof(K), sizeof(V));
}

template <class K, class V>
[[gnu::always_inline]] inline bool map_probe(const read_view& v, std::uint64_t root, layout_cache& c, const K& key,
                                             V& out) {
  map_probe_state s;
  map_probe_layout<K, V>(v, root, c, s);
  const std::uint64_t h = detail::map_key_hash(&key, sizeof(K), s.seed);
  if (map_probe_table(s.cur, key, h, 0, out)) return true;
  return s.old.groups != 0 && map_probe_old(s, key, h, out);
}

// The rest of a map_probe_fast lookup (out of line: most lookups end in the
// key's home group): the groups after the home group when it had no empty
// slot (home_full), then the old table while a resize runs. 1 found, 0
// absent, -1 as for map_probe_fast. Takes the layout from the cache again,
// and checks it is one fill's, rather than from its caller, which then
// keeps fewer values live across its own probe; reads the live max probe
// and migrate mark from the root block r and bounds them. The key by
// value, as for hash_map::get_read: a key whose address reached an
// out-of-line call would sit in memory, and the inline lookup would read it
// back before hashing.
template <class K, class V>
[[gnu::noinline]] int map_probe_fast_more(const std::byte* r, const layout_cache& c, std::uint64_t ver, bool home_full,
                                          const K key, V& out) {
  const std::uint64_t groups = c.groups(), seed = c.seed();
  const std::byte *ctrl = c.ctrl(), *slots = c.slots();
  const probe_table old_t = c.old_table();
  if (!c.still(ver)) return -1;  // only one fill's fields may be followed
  const std::uint64_t h = detail::map_key_hash(&key, sizeof(K), seed);
  if (home_full) {
    const std::uint64_t max_probe = load64(r + offsetof(map_root_bytes, cur) + 32);
    if (max_probe >= groups) return -1;
    if (max_probe > 0 && map_probe_groups<K, V, false>(ctrl, slots, groups - 1, (home_group(h, groups) + 1) & (groups - 1),
                                                       max_probe - 1, h, 0, key, out))
      return 1;
  }
  if (old_t.groups == 0) return 0;
  probe_table t = old_t;
  const std::uint64_t migrate = load64(r + offsetof(map_root_bytes, migrate));
  t.max_probe = load64(r + offsetof(map_root_bytes, old) + 32);
  if (migrate >= t.groups || t.max_probe >= t.groups) return -1;
  return map_probe_table(t, key, h, migrate, out) ? 1 : 0;
}

// A lookup without a read_view (store::optimistic_begin): 1 found, 0
// absent, -1 when it cannot answer alone (nothing cached yet, another
// layout generation, a commit applying or one that overlapped it, a fill
// of the cache that overlapped it, a bad max probe or migrate mark): then
// take store::read. r is the root block in db's mapping (fixed for the
// handle: the mapping never moves). The cached fields are checked to be one
// fill's (still) before any is followed: a mix of two layouts could point
// past the file. Inline it probes only the key's home group, which ends
// most lookups (a match, or an empty slot); the live max probe is needed
// only past it, and any slot size takes this path. What bounds a loop of
// these lookups is measured, in part, in docs/PERFORMANCE.md ("Slot
// addresses without a remainder" and the sections after it).
template <class K, class V>
[[gnu::always_inline]] inline int map_probe_fast(const store& db, const std::byte* r, const layout_cache& c,
                                                 const K& key, V& out) {
  const std::uint64_t token = db.optimistic_begin();  // odd: a commit applies, or the store is closed
  // An empty cache has generation kNone, which no root's generation
  // reaches; a corrupt root that claims it still only probes tables
  // checked earlier (or none: groups 0).
  const std::uint64_t ver = c.begin(), gen = c.gen();
  if (((token | ver) & 1) != 0 || load64(r + offsetof(map_root_bytes, layout_gen)) != gen) [[unlikely]]
    return -1;
  const std::uint64_t seed = c.seed();
  const std::byte *ctrl = c.ctrl(), *slots = c.slots();
  const std::uint32_t shift = c.shift();
  if (!c.still(ver)) [[unlikely]]
    return -1;
  using L = map_layout<sizeof(K), sizeof(V)>;
  const std::uint64_t h = detail::map_key_hash(&key, sizeof(K), seed);
  const std::uint64_t gi = (h >> 1) >> shift;
  // Start loading the preferred slot (usually the key's) while the control
  // bytes load, so the two cache misses overlap.
  const std::byte* pref = slots + L::slot_off(0, gi * 16 + preferred_slot(h));
  __builtin_prefetch(pref);
  __builtin_prefetch(pref + sizeof(K) + sizeof(V) - 1);  // the slot may straddle two lines
  const std::byte* cg = ctrl + gi * 16;
  for (std::uint32_t m = group_match(cg, tag_of(h)); m != 0; m &= m - 1) {
    const std::byte* s = slots + L::slot_off(0, gi * 16 + static_cast<std::uint64_t>(std::countr_zero(m)));
    if (std::memcmp(s, &key, sizeof(K)) == 0) {
      std::memcpy(&out, s + sizeof(K), sizeof(V));
      return db.optimistic_validate(token) ? 1 : -1;
    }
  }
  const bool home_full = group_match(cg, 0) == 0;
  const int found = home_full || c.resizing() ? map_probe_fast_more(r, c, ver, home_full, key, out) : 0;
  if (!db.optimistic_validate(token)) [[unlikely]]
    return -1;
  return found;
}

// Looks up n keys, several at a time: hashes and prefetches the home control
// groups of a window of keys, then prefetches each key's first candidate
// slot, then probes. The cache misses of a window overlap instead of being
// paid one after another. Returns how many were found.
template <class K, class V>
std::size_t map_probe_many(const read_view& v, std::uint64_t root, layout_cache& c, const K* keys,
                           std::optional<V>* out, std::size_t n) {
  using L = map_layout<sizeof(K), sizeof(V)>;
  constexpr std::size_t kWindow = 16;
  map_probe_state s;
  map_probe_layout<K, V>(v, root, c, s);
  std::size_t found = 0;
  for (std::size_t at = 0; at < n; at += kWindow) {
    const std::size_t w = std::min(kWindow, n - at);
    std::uint64_t h[kWindow], home[kWindow];
    for (std::size_t i = 0; i < w; ++i) {
      h[i] = detail::map_key_hash(&keys[at + i], sizeof(K), s.seed);
      home[i] = home_group(h[i], s.cur.groups);
      __builtin_prefetch(s.cur.ctrl + home[i] * 16);
    }
    for (std::size_t i = 0; i < w; ++i) {
      const std::uint32_t m = group_match(s.cur.ctrl + home[i] * 16, tag_of(h[i]));
      if (m != 0)
        __builtin_prefetch(s.cur.slots + L::slot_off(0, home[i] * 16 + static_cast<std::uint64_t>(std::countr_zero(m))));
    }
    for (std::size_t i = 0; i < w; ++i) {
      V val;
      if (map_probe_table<K, V, false>(s.cur, keys[at + i], h[i], 0, val) ||
          (s.old.groups != 0 && map_probe_table(s.old, keys[at + i], h[i], s.migrate, val))) {
        out[at + i] = val;
        ++found;
      } else {
        out[at + i].reset();
      }
    }
  }
  return found;
}

}  // namespace keel::detail
