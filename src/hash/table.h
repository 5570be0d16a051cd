// The generic hash table under hash_map and bytes_map: SwissTable-style
// control groups over page-packed slots, incremental resize, bounded probes.
// A key policy says how a slot's key compares with a probe key and what its
// hash is (fixed keys: the key bytes in the slot; byte strings: a stored
// hash and an entry block). Internal.
#pragma once

#include <bit>
#include <cstring>
#include <string>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// XXH3 inlined: hashing an 8-byte key is a few instructions, not a call.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "file/format.h"
#include "keel/detail/map_probe.h"
#include "keel/error.h"
#include "keel/txn.h"

namespace keel::hash {


using fmt::kGroup;
using fmt::kPage;
using fmt::map_root;
using fmt::map_table;

inline constexpr int kMigrateGroups = 4;    // old groups moved per write
inline constexpr std::uint64_t kLongProbe = 32;  // groups; a longer probe starts a resize
inline constexpr std::uint64_t kPrefaultFromBytes = 1u << 20;  // slot blocks handed to the prefaulter

// Sizes derived from the key and value sizes.
struct geom {
  std::uint32_t ks, vs, slot, spp;  // key, value, slot bytes; slots per page
  std::uint64_t spp_inv;            // 2^64 / spp rounded up (spp > 1): i / spp = (i * spp_inv) >> 64 for 32-bit i
  geom(std::uint32_t key_size, std::uint32_t value_size)
      : ks(key_size),
        vs(value_size),
        slot(static_cast<std::uint32_t>(fmt::align_up(std::max<std::uint64_t>(ks + vs, 8), 8))),
        spp(static_cast<std::uint32_t>(kPage / slot)),
        spp_inv(spp > 1 ? UINT64_MAX / spp + 1 : 0) {}
  std::uint64_t slot_bytes(std::uint64_t groups) const {
    return (groups * kGroup + spp - 1) / spp * kPage;
  }
  std::uint64_t slot_off(const map_table& t, std::uint64_t idx) const {
    const auto i = static_cast<std::uint32_t>(idx);  // < 2^32: groups <= 2^28
    __extension__ using u128 = unsigned __int128;  // one 64x64->128 multiply (GCC/Clang)
    const auto q = spp == 1 ? i : static_cast<std::uint64_t>((static_cast<u128>(spp_inv) * i) >> 64);
    return t.slots + q * kPage + (i - q * spp) * slot;
  }
};

inline std::uint64_t hash_of(const void* key, std::uint32_t ks, std::uint64_t seed) {
  return detail::map_key_hash(key, ks, seed);
}
using detail::tag_of;
inline std::uint64_t home_of(std::uint64_t h, std::uint64_t groups) { return detail::home_group(h, groups); }

// Bit i set when control byte i of the group matches (shared with the
// inline reader probe).
inline std::uint32_t match(const std::byte* c, std::uint8_t tag) { return detail::group_match(c, tag); }
inline std::uint32_t match_empty(const std::byte* c) { return match(c, fmt::kCtrlEmpty); }
inline std::uint32_t match_free(const std::byte* c) {  // empty or deleted: high bit clear
#if defined(__SSE2__)
  return ~static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)))) & 0xffff;
#else
  std::uint32_t m = 0;
  for (int i = 0; i < 16; ++i) m |= ((static_cast<std::uint8_t>(c[i]) & 0x80) ? 0u : 1u) << i;
  return m;
#endif
}
inline std::uint32_t match_full(const std::byte* c) { return ~match_free(c) & 0xffff; }

[[noreturn]] inline void bad(const std::string& path, std::uint64_t root, const std::string& what) {
  throw error(errc::corrupt, path, "hash map at " + std::to_string(root) + ": " + what);
}

// A table descriptor read from the file: sane numbers, and both blocks
// inside the allocated arena [arena, limit).
inline bool table_ok(const map_table& t, const geom& g, std::uint64_t limit) {
  if (t.groups < 1 || t.groups > fmt::kMaxGroups || !std::has_single_bit(t.groups) || t.max_probe >= t.groups ||
      t.used > t.groups * kGroup)
    return false;
  const std::uint64_t ctrl_len = t.groups * kGroup, slot_len = g.slot_bytes(t.groups);
  return t.ctrl >= fmt::kArenaOffset && t.ctrl <= limit && ctrl_len <= limit - t.ctrl && t.slots >= fmt::kArenaOffset &&
         t.slots % kPage == 0 && t.slots <= limit && slot_len <= limit - t.slots;
}

// Reads and checks the root block. R: read_view or write_txn. key_size and
// value_size are what the root must record (0, 0 for a byte-string map); g
// is the slot geometry.
template <class R>
map_root load_root(R& r, std::uint64_t root, std::uint32_t key_size, std::uint32_t value_size, const geom& g) {
  map_root rt;
  std::memcpy(&rt, r.bytes(root, sizeof rt), sizeof rt);
  if (std::memcmp(rt.magic, fmt::kMapMagic, 8) != 0) bad(r.path(), root, "no hash map magic");
  if (rt.key_size != key_size || rt.value_size != value_size)
    bad(r.path(), root,
        "holds " + std::to_string(rt.key_size) + "/" + std::to_string(rt.value_size) + "-byte keys/values, not " +
            std::to_string(key_size) + "/" + std::to_string(value_size));
  if (!table_ok(rt.cur, g, r.limit())) bad(r.path(), root, "current table descriptor is invalid");
  if (rt.old.groups != 0 && (!table_ok(rt.old, g, r.limit()) || rt.migrate >= rt.old.groups))
    bad(r.path(), root, "resize state is invalid");
  return rt;
}

// Slot index of key in t, or -1. Matches in groups below `dead_below` were
// already moved to the new table and count as absent.
template <class R, class P>
std::int64_t find(R& r, const map_table& t, const P& pol, const typename P::key_type& key, std::uint64_t h,
                  std::uint64_t dead_below = 0) {
  const std::uint8_t tag = tag_of(h);
  const std::uint64_t mask = t.groups - 1, home = home_of(h, t.groups);
  for (std::uint64_t p = 0; p <= t.max_probe; ++p) {
    const std::uint64_t gi = (home + p) & mask;
    const std::byte* c = r.bytes(t.ctrl + gi * kGroup, kGroup);
    // Groups already moved keep their control bytes (probes pass through
    // them) but their slots are dead: a byte-string entry they point at may
    // have been freed and reused. Never look at them.
    if (gi >= dead_below)
      for (std::uint32_t m = match(c, tag); m != 0; m &= m - 1) {
        const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
        if (pol.same(r, t, idx, key, h)) return static_cast<std::int64_t>(idx);
      }
    if (match_empty(c) != 0) return -1;
  }
  return -1;
}

// Starts loading the lines a write of hash h usually touches: its home
// control group and the group's preferred slot (both lines of it), so the
// two cache misses overlap instead of following each other.
inline void prefetch_home(write_txn& tx, const map_table& t, const geom& g, std::uint64_t h) {
  const std::uint64_t gi = home_of(h, t.groups);
  const std::uint64_t slot = g.slot_off(t, gi * kGroup + detail::preferred_slot(h));
  tx.prefetch(t.ctrl + gi * kGroup);
  tx.prefetch(slot);
  tx.prefetch(slot + g.ks + g.vs - 1);
}

// Where key lives: table (0 cur, 1 old) and slot, or table -1.
struct location {
  int table = -1;
  std::int64_t idx = -1;
};
template <class R, class P>
location locate(R& r, const map_root& rt, const P& pol, const typename P::key_type& key, std::uint64_t h) {
  if (std::int64_t i = find(r, rt.cur, pol, key, h); i >= 0) return {0, i};
  if (rt.old.groups != 0)
    if (std::int64_t i = find(r, rt.old, pol, key, h, rt.migrate); i >= 0) return {1, i};
  return {};
}

// ---- writer side

// The fields a reader may cache between lookups (keel/detail/map_probe.h):
// the seed and where each table's blocks are and how many groups they have.
inline bool same_layout(const map_root& a, const map_root& b) {
  return a.seed == b.seed && a.cur.ctrl == b.cur.ctrl && a.cur.slots == b.cur.slots && a.cur.groups == b.cur.groups &&
         a.old.ctrl == b.old.ctrl && a.old.slots == b.old.slots && a.old.groups == b.old.groups;
}

// Every write of a root goes through here: it carries the layout generation
// over from the bytes it replaces and advances it when the layout changes,
// so a reader's cached layout is valid exactly while the generation is.
inline void store_root(write_txn& tx, std::uint64_t root, const map_root& rt) {
  std::byte* p = tx.mut_bytes(root, sizeof rt);
  map_root prev;
  std::memcpy(&prev, p, sizeof prev);
  map_root next = rt;
  next.layout_gen = prev.layout_gen + (same_layout(prev, rt) ? 0 : 1);
  std::memcpy(p, &next, sizeof next);
}

// Groups that hold `entries` below the 7/8 load limit.
inline std::uint64_t groups_for(std::uint64_t entries) {
  const std::uint64_t slots = entries * 8 / 7 + 1;
  std::uint64_t groups = std::bit_ceil(std::max<std::uint64_t>(1, (slots + kGroup - 1) / kGroup));
  return std::min(groups, fmt::kMaxGroups);
}

// Allocates a table (both blocks or neither: errc::full leaves nothing behind).
inline map_table new_table(write_txn& tx, const geom& g, std::uint64_t groups) {
  map_table t{};
  t.groups = groups;
  t.ctrl = tx.alloc(groups * kGroup);
  try {
    t.slots = tx.alloc(g.slot_bytes(groups));
  } catch (...) {
    tx.free(t.ctrl, groups * kGroup);
    throw;
  }
  tx.zero(t.ctrl, groups * kGroup);  // all empty; logged as one zero range when fresh
  return t;
}

inline void free_table(write_txn& tx, const geom& g, map_table& t) {
  tx.free(t.ctrl, t.groups * kGroup);
  tx.free(t.slots, g.slot_bytes(t.groups));
  t = {};
}

// Whether t is the current table of the map at `root` as the last commit
// left it: only then do its committed control bytes say which of its slots
// anything committed uses. (A table this transaction allocated may sit in
// space that was, until now, another table, a free block or anything else.)
inline bool committed_cur(write_txn& tx, std::uint64_t root, const map_table& t) {
  const std::byte* p = tx.committed_bytes(root, sizeof(map_root));
  if (p == nullptr) return false;  // a root this transaction allocated
  map_root c;
  std::memcpy(&c, p, sizeof c);
  return c.cur.ctrl == t.ctrl && c.cur.slots == t.slots && c.cur.groups == t.groups;
}

// One group of t whose control bytes are written, possibly several times
// (a resize fills a new group from several entries): this transaction's
// copy and the last commit's (nullptr unless the table is committed_cur),
// looked up once for all of them.
struct group_cursor {
  std::uint64_t gi = UINT64_MAX;
  std::byte* ctrl = nullptr;
  const std::byte* committed = nullptr;
};

// Puts a slot (ks + vs bytes: a then b, hash h) known to be absent into
// group gi of t; false (nothing changed) when the group is full.
// `committed`: committed_cur(t). `from`: the offset of a pinned old slot
// holding the same bytes, which an unused slot may be logged as a copy of
// (0: none).
inline bool place_in_group(write_txn& tx, map_table& t, const geom& g, const void* a, const void* b,
                           std::uint64_t h, std::uint64_t gi, group_cursor& gc, bool committed,
                           std::uint64_t from = 0) {
  if (gc.gi != gi) {
    gc.ctrl = tx.mut_bytes(t.ctrl + gi * kGroup, kGroup);
    gc.committed = committed ? tx.committed_bytes(t.ctrl + gi * kGroup, kGroup) : nullptr;
    gc.gi = gi;
  }
  const std::uint32_t free = match_free(gc.ctrl);
  if (free == 0) return false;
  const unsigned pref = detail::preferred_slot(h);
  const int i = (free >> pref) & 1 ? static_cast<int>(pref) : std::countr_zero(free);
  if (static_cast<std::uint8_t>(gc.ctrl[i]) == fmt::kCtrlEmpty) ++t.used;
  gc.ctrl[i] = static_cast<std::byte>(tag_of(h));
  // A slot of the committed table that the last commit left empty or
  // deleted is read by nobody until the control byte written here commits:
  // its bytes can skip the private page copy (write_txn::write_unpublished,
  // which also keeps the bytes for the log).
  const std::uint64_t so = g.slot_off(t, gi * kGroup + static_cast<std::uint64_t>(i));
  const bool unused = gc.committed != nullptr && (static_cast<std::uint8_t>(gc.committed[i]) & 0x80) == 0;
  if (unused && from != 0) {
    tx.copy_unpublished(so, from, g.ks + g.vs);
    return true;
  }
  if (unused) {
    tx.write_unpublished(so, a, g.ks, b, g.vs);
    return true;
  }
  std::byte* slot = tx.mut_bytes(so, g.ks + g.vs);
  std::memcpy(slot, a, g.ks);
  if (g.vs) std::memcpy(slot + g.ks, b, g.vs);
  return true;
}

// Puts a slot (ks + vs bytes: a then b) known to be absent into t, at the
// first group from its home with room. Returns the probe distance.
inline std::uint64_t place(write_txn& tx, map_table& t, const geom& g, const void* a, const void* b,
                           std::uint64_t h, bool committed, std::uint64_t from = 0) {
  const std::uint64_t mask = t.groups - 1, home = home_of(h, t.groups);
  for (std::uint64_t p = 0; p < t.groups; ++p) {
    group_cursor gc;
    if (!place_in_group(tx, t, g, a, b, h, (home + p) & mask, gc, committed, from)) continue;
    t.max_probe = std::max(t.max_probe, p);
    return p;
  }
  throw error(errc::corrupt, tx.path(), "hash table has no free slot although its accounting says so");
}

inline void remove_at(write_txn& tx, map_table& t, std::uint64_t idx) {
  const std::uint64_t gi = idx / kGroup;
  // A group with an empty slot was never full, so no probe went past it:
  // the slot can be empty again. Otherwise it must stay a tombstone.
  const bool never_full = match_empty(tx.bytes(t.ctrl + gi * kGroup, kGroup)) != 0;
  *tx.mut_bytes(t.ctrl + idx, 1) = static_cast<std::byte>(never_full ? fmt::kCtrlEmpty : fmt::kCtrlDeleted);
  if (never_full) --t.used;
}

// Old slot blocks at least this large are pinned so that moves out of them
// are logged as copies (docs/DURABILITY.md, "Copied slots"): 24 bytes each
// instead of a range header and the slot. Smaller ones are not worth a
// limbo entry.
inline constexpr std::uint64_t kCopyFromBytes = 64 * 1024;

// Moves up to max_groups old groups into the new table.
template <class P>
void migrate(write_txn& tx, std::uint64_t root, map_root& rt, const P& pol, std::uint64_t max_groups) {
  const geom& g = pol.g;
  const bool committed = rt.old.groups != 0 && committed_cur(tx, root, rt.cur);
  // Copies only when the current table is the committed one: then the
  // resize was running at the last commit, with this old table, and this
  // transaction placed nothing in its slots (inserts go to the current
  // table), so they hold what replay will find before this record.
  const bool copies = committed && g.slot_bytes(rt.old.groups) >= kCopyFromBytes &&
                      tx.pin_for_copies(rt.old.slots, g.slot_bytes(rt.old.groups));
  // Old group gi's entries mostly have their home there, so in the new
  // table (twice the groups) their home is 2gi or 2gi+1: one cursor each.
  group_cursor home_groups[2];
  for (std::uint64_t n = 0; rt.old.groups != 0 && n < max_groups; ++n) {
    const std::uint64_t gi = rt.migrate;
    std::byte c[kGroup];
    std::memcpy(c, tx.bytes(rt.old.ctrl + gi * kGroup, kGroup), kGroup);
    for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
      const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
      // The old table's slots are never written while its entries move
      // (place writes only the current table, whose blocks share no page
      // with the old one's slots), so the pointer stays valid through place.
      const std::uint64_t so = g.slot_off(rt.old, idx);
      const std::byte* e = tx.bytes(so, g.ks + g.vs);
      const std::uint64_t h = pol.slot_hash(e, rt.seed), home = home_of(h, rt.cur.groups);
      const std::uint64_t from = copies ? so : 0;
      if (!place_in_group(tx, rt.cur, g, e, e + g.ks, h, home, home_groups[home & 1], committed, from))
        place(tx, rt.cur, g, e, e + g.ks, h, committed, from);
    }
    if (++rt.migrate == rt.old.groups) {
      free_table(tx, g, rt.old);
      rt.migrate = 0;
    }
  }
}

// Replaces the current table by one of `groups` groups; the old one is
// moved incrementally by later writes. The new table is allocated before
// anything changes, so errc::full leaves the map as it was.
template <class P>
void start_resize(write_txn& tx, std::uint64_t root, map_root& rt, const P& pol, std::uint64_t groups) {
  const geom& g = pol.g;
  map_table t = new_table(tx, g, groups);
  migrate(tx, root, rt, pol, UINT64_MAX);  // a running resize finishes first (rare: see FORMAT.md)
  rt.old = rt.cur;
  rt.cur = t;
  rt.migrate = 0;
  if (rt.size == 0 || rt.old.used == 0) {
    free_table(tx, g, rt.old);
    return;
  }
  // The move writes the new slots from the front, and with at least two
  // entries per page on average (any doubling) nearly every page: a
  // background thread takes the page faults ahead of it. Not for a sparse
  // table (reserve() far ahead of the size), whose untouched pages would
  // only be dirtied, written back by the checkpoint and kept in memory, nor
  // for a block too small to be worth the hand-off.
  const std::uint64_t bytes = g.slot_bytes(t.groups);
  if (bytes >= kPrefaultFromBytes && rt.size >= 2 * (bytes / kPage)) tx.prefault(t.slots, bytes);
}

// Makes room for one more entry in the current table: twice the groups when
// live entries are most of what is used, the same number when most used
// slots are deleted ones (a rehash that drops them).
template <class P>
void make_room(write_txn& tx, std::uint64_t root, map_root& rt, const P& pol) {
  if ((rt.cur.used + 1) * 8 <= rt.cur.groups * kGroup * 7) {
    // A quarter of the way before the doubling: have the space its table
    // will most likely take (fresh space past the allocation cursor: after
    // a doubling fill no free block is that large) made writable on the
    // second core, so that the resize's writes to it take no page faults
    // (write_txn::prefault_ahead). A quarter of the inserts to the
    // doubling gives that thread the time: at about 4 us per page it needs
    // about two thirds of it in a 10M fill (docs/PERFORMANCE.md).
    const std::uint64_t limit = rt.cur.groups * kGroup * 7 / 8;
    if (rt.old.groups == 0 && rt.cur.used + 1 == limit - limit / 4 && rt.cur.groups < fmt::kMaxGroups) {
      const std::uint64_t next = rt.cur.groups * 2, slots = pol.g.slot_bytes(next);
      const std::uint64_t sizes[] = {next * kGroup, slots};  // new_table's two allocations, in order
      if (slots >= kPrefaultFromBytes) tx.prefault_ahead(sizes);
    }
    return;
  }
  const bool mostly_live = (rt.size + 1) * 2 > rt.cur.used;
  if (mostly_live && rt.cur.groups >= fmt::kMaxGroups)
    throw error(errc::full, tx.path(), "hash map reached its maximum of 2^32 slots");
  start_resize(tx, root, rt, pol, mostly_live ? rt.cur.groups * 2 : rt.cur.groups);
}

// Asks for both tables' blocks to be read ahead (write_txn::read_ahead):
// writes land at random over them, and the writer's mapping has no
// read-ahead (os::advise_random), so where they are not cached (after a
// reboot, or evicted) each write would wait for its own 4 KiB from disk.
inline void read_ahead_tables(write_txn& tx, const map_root& rt, const geom& g) {
  for (const map_table* t : {&rt.cur, &rt.old})
    if (t->groups != 0 && g.slot_bytes(t->groups) >= kPrefaultFromBytes) {
      tx.read_ahead(t->ctrl, t->groups * kGroup);
      tx.read_ahead(t->slots, g.slot_bytes(t->groups));
    }
}

// Every write starts here: it moves a few old groups and records that at
// once, so an exception later in the operation (errc::full, a rejected
// argument) leaves a consistent map in the still-open transaction.
template <class P>
map_root write_prologue(write_txn& tx, std::uint64_t root, const P& pol) {
  map_root rt = load_root(tx, root, pol.root_ks, pol.root_vs, pol.g);
  // A cold table is read in bulk, once per writer, on the second core (a
  // cold 3.7M-entry map taking 1M inserts: 17-20 s without, docs/PERFORMANCE.md).
  if (tx.first_touch(root)) read_ahead_tables(tx, rt, pol.g);
  if (rt.old.groups != 0) {
    migrate(tx, root, rt, pol, kMigrateGroups);
    store_root(tx, root, rt);
  }
  return rt;
}

// Growth after a long probe is an optimisation: a full store just skips it.
template <class P>
void grow_after_long_probe(write_txn& tx, std::uint64_t root, map_root& rt, const P& pol, std::uint64_t probe) {
  if (probe <= kLongProbe || rt.old.groups != 0 || rt.cur.groups >= fmt::kMaxGroups) return;
  try {
    start_resize(tx, root, rt, pol, rt.cur.groups * 2);
  } catch (const error& e) {
    if (e.code() != errc::full) throw;
  }
}

inline void check_entry(const catalog_entry& e, const std::string& path, std::string_view name, kind k,
                        type_desc key, type_desc value) {
  check_type(e, path, k, key, value);
  if (e.root == 0) throw error(errc::corrupt, path, "hash map '" + std::string(name) + "' has no root");
}

// Calls out(table, slot index) for every live slot whose hash lies in
// [lo, hi], in both tables: groups home(lo) .. home(hi) + max probe.
template <class R, class P, class Out>
void slice(R& r, const map_root& rt, const P& pol, std::uint64_t lo, std::uint64_t hi, Out&& out) {
  for (int which = 0; which < 2; ++which) {
    const map_table& t = which == 0 ? rt.cur : rt.old;
    if (t.groups == 0) continue;
    const std::uint64_t from = which == 0 ? 0 : rt.migrate;
    const std::uint64_t first = home_of(lo, t.groups), last = home_of(hi, t.groups);
    const std::uint64_t count = std::min(t.groups, last - first + 1 + t.max_probe);
    for (std::uint64_t j = 0; j < count; ++j) {
      const std::uint64_t gi = (first + j) & (t.groups - 1);
      if (gi < from) continue;
      const std::byte* c = r.bytes(t.ctrl + gi * kGroup, kGroup);
      for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
        const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
        const std::uint64_t h = pol.slot_hash(r.bytes(pol.g.slot_off(t, idx), pol.g.ks), rt.seed);
        if (h >= lo && h <= hi) out(t, idx);
      }
    }
  }
}

// Calls out(table, slot index) for every live slot, in table order.
template <class R, class Out>
void every(R& r, const map_root& rt, Out&& out) {
  for (int which = 0; which < 2; ++which) {
    const map_table& t = which == 0 ? rt.cur : rt.old;
    for (std::uint64_t gi = which == 0 ? 0 : rt.migrate; gi < t.groups; ++gi) {
      std::byte c[kGroup];
      std::memcpy(c, r.bytes(t.ctrl + gi * kGroup, kGroup), kGroup);
      for (std::uint32_t m = match_full(c); m != 0; m &= m - 1)
        if (!out(t, gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m)))) return;
    }
  }
}

// Allocates a root block with an empty one-group table and a random seed.
std::uint64_t new_map_root(write_txn& tx, std::uint32_t key_size, std::uint32_t value_size, const geom& g);

// Slices of the hash space for iteration: about four home groups each.
inline int slice_bits(std::uint64_t groups) {
  return std::min(std::max(std::countr_zero(std::max<std::uint64_t>(groups, 1)) - 2, 0), 24);
}
inline std::uint64_t slice_lo(int bits, std::uint64_t i) { return bits == 0 ? 0 : i << (64 - bits); }
inline std::uint64_t slice_hi(int bits, std::uint64_t i) {
  return bits == 0 ? UINT64_MAX : slice_lo(bits, i) + ((1ull << (64 - bits)) - 1);
}

}  // namespace keel::hash
