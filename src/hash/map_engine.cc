// The engine behind keel::hash_map: SwissTable-style control groups over a
// page-packed slot array, incremental resize, lookups shared by readers
// (read_view) and the writer (write_txn). Every value read from the file is
// checked before it is used; every probe is bounded by the table's
// max_probe, which is itself bounded by the table size.
#include <bit>
#include <cstring>
#include <random>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "file/format.h"
#include "keel/hash_map.h"
#include "util/checksum.h"

namespace keel::detail {

namespace {

using fmt::kGroup;
using fmt::kPage;
using fmt::map_root;
using fmt::map_table;

constexpr int kMigrateGroups = 4;    // old groups moved per write
constexpr std::uint64_t kLongProbe = 32;  // groups; a longer probe starts a resize

// Sizes derived from the key and value sizes.
struct geom {
  std::uint32_t ks, vs, slot, spp;  // key, value, slot bytes; slots per page
  explicit geom(map_shape s)
      : ks(s.key_size),
        vs(s.value_size),
        slot(static_cast<std::uint32_t>(fmt::align_up(std::max<std::uint64_t>(ks + vs, 8), 8))),
        spp(static_cast<std::uint32_t>(kPage / slot)) {}
  std::uint64_t slot_bytes(std::uint64_t groups) const {
    return (groups * kGroup + spp - 1) / spp * kPage;
  }
  std::uint64_t slot_off(const map_table& t, std::uint64_t idx) const {
    const auto i = static_cast<std::uint32_t>(idx);  // < 2^32: groups <= 2^28
    return t.slots + static_cast<std::uint64_t>(i / spp) * kPage + static_cast<std::uint64_t>(i % spp) * slot;
  }
};

std::uint64_t hash_of(const void* key, std::uint32_t ks, std::uint64_t seed) {
  return XXH3_64bits_withSeed(key, ks, seed);
}
std::uint8_t tag_of(std::uint64_t h) { return static_cast<std::uint8_t>(0x80 | (h & 0x7f)); }
std::uint64_t home_of(std::uint64_t h, std::uint64_t groups) {
  return groups == 1 ? 0 : h >> (64 - std::countr_zero(groups));
}

// Bit i set when control byte i of the group matches.
std::uint32_t match(const std::byte* c, std::uint8_t tag) {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
  return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(static_cast<char>(tag)))));
#else
  std::uint32_t m = 0;
  for (int i = 0; i < 16; ++i) m |= (static_cast<std::uint8_t>(c[i]) == tag ? 1u : 0u) << i;
  return m;
#endif
}
std::uint32_t match_empty(const std::byte* c) { return match(c, fmt::kCtrlEmpty); }
std::uint32_t match_free(const std::byte* c) {  // empty or deleted: high bit clear
#if defined(__SSE2__)
  return ~static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)))) & 0xffff;
#else
  std::uint32_t m = 0;
  for (int i = 0; i < 16; ++i) m |= ((static_cast<std::uint8_t>(c[i]) & 0x80) ? 0u : 1u) << i;
  return m;
#endif
}
std::uint32_t match_full(const std::byte* c) { return ~match_free(c) & 0xffff; }

[[noreturn]] void bad(const std::string& path, std::uint64_t root, const std::string& what) {
  throw error(errc::corrupt, path, "hash map at " + std::to_string(root) + ": " + what);
}

bool table_ok(const map_table& t) {
  return t.groups >= 1 && t.groups <= fmt::kMaxGroups && std::has_single_bit(t.groups) && t.ctrl != 0 &&
         t.slots != 0 && t.max_probe < t.groups && t.used <= t.groups * kGroup;
}

// Reads and checks the root block. R: read_view or write_txn.
template <class R>
map_root load_root(R& r, std::uint64_t root, const geom& g) {
  map_root rt;
  std::memcpy(&rt, r.bytes(root, sizeof rt), sizeof rt);
  if (std::memcmp(rt.magic, fmt::kMapMagic, 8) != 0) bad(r.path(), root, "no hash map magic");
  if (rt.key_size != g.ks || rt.value_size != g.vs)
    bad(r.path(), root,
        "holds " + std::to_string(rt.key_size) + "/" + std::to_string(rt.value_size) + "-byte keys/values, not " +
            std::to_string(g.ks) + "/" + std::to_string(g.vs));
  if (!table_ok(rt.cur)) bad(r.path(), root, "current table descriptor is invalid");
  if (rt.old.groups != 0 && (!table_ok(rt.old) || rt.migrate >= rt.old.groups))
    bad(r.path(), root, "resize state is invalid");
  return rt;
}

// Slot index of key in t, or -1. Matches in groups below `dead_below` were
// already moved to the new table and count as absent.
template <class R>
std::int64_t find(R& r, const map_table& t, const geom& g, const void* key, std::uint64_t h,
                  std::uint64_t dead_below = 0) {
  const std::uint8_t tag = tag_of(h);
  const std::uint64_t mask = t.groups - 1, home = home_of(h, t.groups);
  for (std::uint64_t p = 0; p <= t.max_probe; ++p) {
    const std::uint64_t gi = (home + p) & mask;
    const std::byte* c = r.bytes(t.ctrl + gi * kGroup, kGroup);
    for (std::uint32_t m = match(c, tag); m != 0; m &= m - 1) {
      const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
      if (std::memcmp(r.bytes(g.slot_off(t, idx), g.ks), key, g.ks) == 0)
        return gi < dead_below ? -1 : static_cast<std::int64_t>(idx);
    }
    if (match_empty(c) != 0) return -1;
  }
  return -1;
}

// Where key lives: table (0 cur, 1 old) and slot, or table -1.
struct location {
  int table = -1;
  std::int64_t idx = -1;
};
template <class R>
location locate(R& r, const map_root& rt, const geom& g, const void* key, std::uint64_t h) {
  if (std::int64_t i = find(r, rt.cur, g, key, h); i >= 0) return {0, i};
  if (rt.old.groups != 0)
    if (std::int64_t i = find(r, rt.old, g, key, h, rt.migrate); i >= 0) return {1, i};
  return {};
}

template <class R>
bool get_impl(R& r, std::uint64_t root, map_shape s, const void* key, void* out) {
  const geom g(s);
  const map_root rt = load_root(r, root, g);
  const location at = locate(r, rt, g, key, hash_of(key, g.ks, rt.seed));
  if (at.table < 0) return false;
  const map_table& t = at.table == 0 ? rt.cur : rt.old;
  std::memcpy(out, r.bytes(g.slot_off(t, static_cast<std::uint64_t>(at.idx)) + g.ks, g.vs), g.vs);
  return true;
}

// ---- writer side

void store_root(write_txn& tx, std::uint64_t root, const map_root& rt) {
  std::memcpy(tx.mut_bytes(root, sizeof rt), &rt, sizeof rt);
}

std::uint64_t groups_for(std::uint64_t entries) {
  const std::uint64_t slots = entries * 8 / 7 + 1;
  std::uint64_t groups = std::bit_ceil(std::max<std::uint64_t>(1, (slots + kGroup - 1) / kGroup));
  return std::min(groups, fmt::kMaxGroups);
}

map_table new_table(write_txn& tx, const geom& g, std::uint64_t groups) {
  map_table t{};
  t.groups = groups;
  t.ctrl = tx.alloc(groups * kGroup);
  tx.zero(t.ctrl, groups * kGroup);  // all empty; logged as one zero range when fresh
  t.slots = tx.alloc(g.slot_bytes(groups));
  return t;
}

void free_table(write_txn& tx, const geom& g, map_table& t) {
  tx.free(t.ctrl, t.groups * kGroup);
  tx.free(t.slots, g.slot_bytes(t.groups));
  t = {};
}

// Puts an entry known to be absent into t. Returns the probe distance.
std::uint64_t place(write_txn& tx, map_table& t, const geom& g, const void* key, const void* value,
                    std::uint64_t h) {
  const std::uint64_t mask = t.groups - 1, home = home_of(h, t.groups);
  for (std::uint64_t p = 0; p < t.groups; ++p) {
    const std::uint64_t gi = (home + p) & mask;
    const std::byte* c = tx.bytes(t.ctrl + gi * kGroup, kGroup);
    const std::uint32_t free = match_free(c);
    if (free == 0) continue;
    const int i = std::countr_zero(free);
    const bool was_empty = static_cast<std::uint8_t>(c[i]) == fmt::kCtrlEmpty;
    const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(i);
    *tx.mut_bytes(t.ctrl + idx, 1) = static_cast<std::byte>(tag_of(h));
    std::byte* slot = tx.mut_bytes(g.slot_off(t, idx), g.ks + g.vs);
    std::memcpy(slot, key, g.ks);
    std::memcpy(slot + g.ks, value, g.vs);
    if (was_empty) ++t.used;
    t.max_probe = std::max(t.max_probe, p);
    return p;
  }
  throw error(errc::corrupt, tx.path(), "hash table has no free slot although its accounting says so");
}

void remove_at(write_txn& tx, map_table& t, std::uint64_t idx) {
  const std::uint64_t gi = idx / kGroup;
  // A group with an empty slot was never full, so no probe went past it:
  // the slot can be empty again. Otherwise it must stay a tombstone.
  const bool never_full = match_empty(tx.bytes(t.ctrl + gi * kGroup, kGroup)) != 0;
  *tx.mut_bytes(t.ctrl + idx, 1) = static_cast<std::byte>(never_full ? fmt::kCtrlEmpty : fmt::kCtrlDeleted);
  if (never_full) --t.used;
}

// Moves up to max_groups old groups into the new table.
void migrate(write_txn& tx, map_root& rt, const geom& g, std::uint64_t max_groups) {
  std::vector<std::byte> entry(g.ks + g.vs);
  for (std::uint64_t n = 0; rt.old.groups != 0 && n < max_groups; ++n) {
    const std::uint64_t gi = rt.migrate;
    std::byte c[kGroup];
    std::memcpy(c, tx.bytes(rt.old.ctrl + gi * kGroup, kGroup), kGroup);
    for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
      const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
      std::memcpy(entry.data(), tx.bytes(g.slot_off(rt.old, idx), g.ks + g.vs), g.ks + g.vs);
      place(tx, rt.cur, g, entry.data(), entry.data() + g.ks, hash_of(entry.data(), g.ks, rt.seed));
    }
    if (++rt.migrate == rt.old.groups) {
      free_table(tx, g, rt.old);
      rt.migrate = 0;
    }
  }
}

// Replaces the current table by one sized for `entries`; the old one is
// moved incrementally by later writes.
void start_resize(write_txn& tx, map_root& rt, const geom& g, std::uint64_t entries) {
  migrate(tx, rt, g, UINT64_MAX);  // a running resize finishes first (rare: see FORMAT.md)
  map_table t = new_table(tx, g, groups_for(entries));
  rt.old = rt.cur;
  rt.cur = t;
  rt.migrate = 0;
  if (rt.size == 0 || rt.old.used == 0) free_table(tx, g, rt.old);
}

map_root write_prologue(write_txn& tx, std::uint64_t root, const geom& g) {
  map_root rt = load_root(tx, root, g);
  migrate(tx, rt, g, kMigrateGroups);
  return rt;
}

void check_entry(const catalog_entry& e, const std::string& path, std::string_view name, type_desc key,
                 type_desc value) {
  if (e.kind != kind::hash_map || !(e.key == key) || !(e.value == value))
    throw error(errc::type_mismatch, path,
                "'" + std::string(name) + "' is not a hash_map<" + key.describe() + ", " + value.describe() + ">");
  if (e.root == 0) throw error(errc::corrupt, path, "hash map '" + std::string(name) + "' has no root");
}

template <class R>
void visit_table(R& r, const map_root& rt, const map_table& t, std::uint64_t from_group, const geom& g,
                 std::uint64_t first_group, std::uint64_t count, std::uint64_t lo, std::uint64_t hi,
                 std::vector<std::byte>& out) {
  for (std::uint64_t j = 0; j < count; ++j) {
    const std::uint64_t gi = (first_group + j) & (t.groups - 1);
    if (gi < from_group) continue;
    const std::byte* c = r.bytes(t.ctrl + gi * kGroup, kGroup);
    for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
      const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
      const std::byte* s = r.bytes(g.slot_off(t, idx), g.ks + g.vs);
      const std::uint64_t h = hash_of(s, g.ks, rt.seed);
      if (h < lo || h > hi) continue;
      out.insert(out.end(), s, s + g.ks + g.vs);
    }
  }
}

// Copies out every entry whose hash lies in [lo, hi], from both tables.
void collect(const read_view& v, std::uint64_t root, const geom& g, std::uint64_t lo, std::uint64_t hi,
             std::vector<std::byte>& out) {
  out.clear();
  const map_root rt = load_root(v, root, g);
  for (int which = 0; which < 2; ++which) {
    const map_table& t = which == 0 ? rt.cur : rt.old;
    if (t.groups == 0) continue;
    const std::uint64_t first = home_of(lo, t.groups), last = home_of(hi, t.groups);
    const std::uint64_t count = std::min(t.groups, last - first + 1 + t.max_probe);
    visit_table(v, rt, t, which == 0 ? 0 : rt.migrate, g, first, count, lo, hi, out);
  }
}

}  // namespace

// ---- open / find

std::uint64_t map_open(write_txn& tx, std::string_view name, map_shape shape, type_desc key, type_desc value) {
  const catalog_entry e = tx.open_root(name, kind::hash_map, key, value);
  const geom g(shape);
  if (e.root != 0) {
    load_root(tx, e.root, g);
    return e.root;
  }
  map_root rt{};
  std::memcpy(rt.magic, fmt::kMapMagic, 8);
  rt.key_size = g.ks;
  rt.value_size = g.vs;
  std::random_device rd;
  rt.seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  rt.cur = new_table(tx, g, 1);
  const std::uint64_t root = tx.alloc(sizeof rt);
  store_root(tx, root, rt);
  tx.set_root(name, root, 0);
  return root;
}

std::uint64_t map_find(const read_view& v, std::string_view name, map_shape shape, type_desc key, type_desc value) {
  const auto e = v.find(name);
  if (!e) throw error(errc::invalid_argument, v.path(), "no hash map named '" + std::string(name) + "'");
  check_entry(*e, v.path(), name, key, value);
  load_root(v, e->root, geom(shape));
  return e->root;
}

std::uint64_t map_find(write_txn& tx, std::string_view name, map_shape shape, type_desc key, type_desc value) {
  const auto e = tx.find(name);
  if (!e) throw error(errc::invalid_argument, tx.path(), "no hash map named '" + std::string(name) + "'");
  check_entry(*e, tx.path(), name, key, value);
  load_root(tx, e->root, geom(shape));
  return e->root;
}

// ---- reads

bool map_get(const read_view& v, std::uint64_t root, map_shape s, const void* key, void* out) {
  return get_impl(v, root, s, key, out);
}
bool map_get(write_txn& tx, std::uint64_t root, map_shape s, const void* key, void* out) {
  return get_impl(tx, root, s, key, out);
}
std::uint64_t map_size(const read_view& v, std::uint64_t root, map_shape s) { return load_root(v, root, geom(s)).size; }
std::uint64_t map_size(write_txn& tx, std::uint64_t root, map_shape s) { return load_root(tx, root, geom(s)).size; }

// ---- writes

bool map_put(write_txn& tx, std::uint64_t root, map_shape s, const void* key, const void* value, int mode) {
  const geom g(s);
  map_root rt = write_prologue(tx, root, g);
  const std::uint64_t h = hash_of(key, g.ks, rt.seed);
  const location at = locate(tx, rt, g, key, h);
  if (at.table >= 0) {
    if (mode == 1) {
      const map_table& t = at.table == 0 ? rt.cur : rt.old;
      std::memcpy(tx.mut_bytes(g.slot_off(t, static_cast<std::uint64_t>(at.idx)) + g.ks, g.vs), value, g.vs);
    }
    store_root(tx, root, rt);
    return false;
  }
  if ((rt.cur.used + 1) * 8 > rt.cur.groups * kGroup * 7) start_resize(tx, rt, g, 2 * (rt.size + 1));
  const std::uint64_t probe = place(tx, rt.cur, g, key, value, h);
  ++rt.size;
  if (probe > kLongProbe && rt.old.groups == 0 && rt.cur.groups < fmt::kMaxGroups)
    start_resize(tx, rt, g, 2 * rt.cur.groups * kGroup);
  store_root(tx, root, rt);
  return true;
}

void* map_value_for_update(write_txn& tx, std::uint64_t root, map_shape s, const void* key) {
  const geom g(s);
  const map_root rt = load_root(tx, root, g);
  const location at = locate(tx, rt, g, key, hash_of(key, g.ks, rt.seed));
  if (at.table < 0) return nullptr;
  const map_table& t = at.table == 0 ? rt.cur : rt.old;
  return tx.mut_bytes(g.slot_off(t, static_cast<std::uint64_t>(at.idx)) + g.ks, g.vs);
}

bool map_erase(write_txn& tx, std::uint64_t root, map_shape s, const void* key) {
  const geom g(s);
  map_root rt = write_prologue(tx, root, g);
  const location at = locate(tx, rt, g, key, hash_of(key, g.ks, rt.seed));
  if (at.table >= 0) {
    remove_at(tx, at.table == 0 ? rt.cur : rt.old, static_cast<std::uint64_t>(at.idx));
    --rt.size;
  }
  store_root(tx, root, rt);
  return at.table >= 0;
}

void map_clear(write_txn& tx, std::uint64_t root, map_shape s) {
  const geom g(s);
  map_root rt = load_root(tx, root, g);
  if (rt.old.groups != 0) free_table(tx, g, rt.old);
  free_table(tx, g, rt.cur);
  rt.cur = new_table(tx, g, 1);
  rt.size = 0;
  rt.migrate = 0;
  store_root(tx, root, rt);
}

void map_reserve(write_txn& tx, std::uint64_t root, map_shape s, std::uint64_t n) {
  const geom g(s);
  map_root rt = write_prologue(tx, root, g);
  if (n > fmt::kMaxGroups * kGroup / 8 * 7)
    throw error(errc::invalid_argument, tx.path(), "cannot reserve " + std::to_string(n) + " entries");
  if (n * 8 > rt.cur.groups * kGroup * 7) start_resize(tx, rt, g, n);
  store_root(tx, root, rt);
}

// ---- iteration

void map_for_each(const store& db, std::uint64_t root, map_shape s, map_visit f, void* ctx) {
  const geom g(s);
  const std::uint64_t groups = db.read([&](const read_view& v) {
    const map_root rt = load_root(v, root, g);
    return std::max(rt.cur.groups, rt.old.groups);
  });
  // Slices of the hash space of about four home groups each. An entry never
  // leaves its slice (moves keep the hash), and each slice is one consistent
  // read, so no entry is seen twice and none present throughout is missed.
  const int bits = std::min(std::max(std::countr_zero(groups) - 2, 0), 24);
  const std::uint64_t slices = 1ull << bits;
  std::vector<std::byte> buf;
  for (std::uint64_t i = 0; i < slices; ++i) {
    const std::uint64_t lo = bits == 0 ? 0 : i << (64 - bits);
    const std::uint64_t hi = bits == 0 ? UINT64_MAX : lo + ((1ull << (64 - bits)) - 1);
    db.read([&](const read_view& v) { collect(v, root, g, lo, hi, buf); });
    for (std::size_t at = 0; at < buf.size(); at += g.ks + g.vs)
      if (!f(ctx, buf.data() + at, buf.data() + at + g.ks)) return;
  }
}

void map_for_each(write_txn& tx, std::uint64_t root, map_shape s, map_visit f, void* ctx) {
  const geom g(s);
  const map_root rt = load_root(tx, root, g);
  std::vector<std::byte> entry(g.ks + g.vs);
  for (int which = 0; which < 2; ++which) {
    const map_table& t = which == 0 ? rt.cur : rt.old;
    for (std::uint64_t gi = which == 0 ? 0 : rt.migrate; gi < t.groups; ++gi) {
      std::byte c[kGroup];
      std::memcpy(c, tx.bytes(t.ctrl + gi * kGroup, kGroup), kGroup);
      for (std::uint32_t m = match_full(c); m != 0; m &= m - 1) {
        const std::uint64_t idx = gi * kGroup + static_cast<std::uint64_t>(std::countr_zero(m));
        std::memcpy(entry.data(), tx.bytes(g.slot_off(t, idx), g.ks + g.vs), g.ks + g.vs);
        if (!f(ctx, entry.data(), entry.data() + g.ks)) return;
      }
    }
  }
}

}  // namespace keel::detail
