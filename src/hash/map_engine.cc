// keel::hash_map's engine: the generic table (table.h) with fixed-size keys
// compared in the slot.
#include <random>

#include "hash/table.h"
#include "keel/hash_map.h"

namespace keel::hash {

std::uint64_t new_map_root(write_txn& tx, std::uint32_t key_size, std::uint32_t value_size, const geom& g) {
  map_root rt{};
  std::memcpy(rt.magic, fmt::kMapMagic, 8);
  rt.key_size = key_size;
  rt.value_size = value_size;
  std::random_device rd;
  rt.seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  rt.cur = new_table(tx, g, 1);
  const std::uint64_t root = tx.alloc(sizeof rt);
  store_root(tx, root, rt);
  return root;
}

}  // namespace keel::hash

namespace keel::detail {

namespace {

using namespace keel::hash;

struct fixed_keys {
  using key_type = const void*;
  geom g;
  std::uint32_t root_ks, root_vs;
  explicit fixed_keys(map_shape s) : g(s.key_size, s.value_size), root_ks(s.key_size), root_vs(s.value_size) {}
  template <class R>
  bool same(R& r, const map_table& t, std::uint64_t idx, const void* key, std::uint64_t) const {
    const std::byte* s = r.bytes(g.slot_off(t, idx), g.ks);
    if (g.ks == 8) {  // the common case: one compare, no call
      std::uint64_t a, b;
      std::memcpy(&a, s, 8);
      std::memcpy(&b, key, 8);
      return a == b;
    }
    return std::memcmp(s, key, g.ks) == 0;
  }
  std::uint64_t hash(const void* key, std::uint64_t seed) const { return hash_of(key, g.ks, seed); }
  std::uint64_t slot_hash(const std::byte* slot, std::uint64_t seed) const { return hash_of(slot, g.ks, seed); }
};

template <class R>
map_root root_of(R& r, std::uint64_t root, const fixed_keys& k) {
  return load_root(r, root, k.root_ks, k.root_vs, k.g);
}

template <class R>
bool get_impl(R& r, std::uint64_t root, map_shape s, const void* key, void* out) {
  const fixed_keys k(s);
  const map_root rt = root_of(r, root, k);
  const location at = locate(r, rt, k, key, k.hash(key, rt.seed));
  if (at.table < 0) return false;
  const map_table& t = at.table == 0 ? rt.cur : rt.old;
  std::memcpy(out, r.bytes(k.g.slot_off(t, static_cast<std::uint64_t>(at.idx)) + k.g.ks, k.g.vs), k.g.vs);
  return true;
}

template <class R>
std::uint64_t find_root(R& r, std::string_view name, map_shape shape, type_desc key, type_desc value) {
  const auto e = r.find(name);
  if (!e) throw error(errc::invalid_argument, r.path(), "no hash map named '" + std::string(name) + "'");
  check_entry(*e, r.path(), name, kind::hash_map, key, value);
  root_of(r, e->root, fixed_keys(shape));
  return e->root;
}

// The inline probe (keel/detail/map_probe.h) reads the root through this
// mirror of the format's struct.
static_assert(sizeof(map_root_bytes) == sizeof(map_root) && offsetof(map_root_bytes, seed) == offsetof(map_root, seed) &&
              offsetof(map_root_bytes, cur) == offsetof(map_root, cur) &&
              offsetof(map_root_bytes, old) == offsetof(map_root, old) &&
              offsetof(map_root_bytes, migrate) == offsetof(map_root, migrate) &&
              sizeof(map_table_bytes) == sizeof(map_table));
static_assert(map_layout<8, 32>::slot == 40 && map_layout<1, 1>::slot == 8 && map_layout<8, 3000>::spp == 1);

}  // namespace

void map_root_corrupt(const read_view& v, std::uint64_t root, std::uint32_t key_size, std::uint32_t value_size) {
  load_root(v, root, key_size, value_size, geom(key_size, value_size));
  throw error(errc::corrupt, v.path(), "hash map at " + std::to_string(root) + ": root block is invalid");
}

std::uint64_t map_open(write_txn& tx, std::string_view name, map_shape shape, type_desc key, type_desc value) {
  const catalog_entry e = tx.open_root(name, kind::hash_map, key, value);
  const fixed_keys k(shape);
  if (e.root != 0) {
    root_of(tx, e.root, k);
    return e.root;
  }
  const std::uint64_t root = new_map_root(tx, shape.key_size, shape.value_size, k.g);
  tx.set_root(name, root, 0);
  return root;
}

std::uint64_t map_find(const read_view& v, std::string_view name, map_shape shape, type_desc key, type_desc value) {
  return find_root(v, name, shape, key, value);
}
std::uint64_t map_find(write_txn& tx, std::string_view name, map_shape shape, type_desc key, type_desc value) {
  return find_root(tx, name, shape, key, value);
}

bool map_get(write_txn& tx, std::uint64_t root, map_shape s, const void* key, void* out) {
  return get_impl(tx, root, s, key, out);
}
std::uint64_t map_size(const read_view& v, std::uint64_t root, map_shape s) {
  return root_of(v, root, fixed_keys(s)).size;
}
std::uint64_t map_size(write_txn& tx, std::uint64_t root, map_shape s) {
  return root_of(tx, root, fixed_keys(s)).size;
}

bool map_put(write_txn& tx, std::uint64_t root, map_shape s, const void* key, const void* value, int mode) {
  const fixed_keys k(s);
  map_root rt = write_prologue(tx, root, k);
  const std::uint64_t h = k.hash(key, rt.seed);
  prefetch_home(tx, rt.cur, k.g, h);
  const location at = locate(tx, rt, k, key, h);
  if (at.table >= 0) {
    if (mode == 1) {
      const map_table& t = at.table == 0 ? rt.cur : rt.old;
      std::memcpy(tx.mut_bytes(k.g.slot_off(t, static_cast<std::uint64_t>(at.idx)) + k.g.ks, k.g.vs), value, k.g.vs);
    }
    store_root(tx, root, rt);
    return false;
  }
  make_room(tx, root, rt, k);
  const std::uint64_t probe = place(tx, rt.cur, k.g, key, value, h, committed_cur(tx, root, rt.cur));
  ++rt.size;
  grow_after_long_probe(tx, root, rt, k, probe);
  store_root(tx, root, rt);
  return true;
}

void* map_value_for_update(write_txn& tx, std::uint64_t root, map_shape s, const void* key) {
  const fixed_keys k(s);
  const map_root rt = root_of(tx, root, k);
  const location at = locate(tx, rt, k, key, k.hash(key, rt.seed));
  if (at.table < 0) return nullptr;
  const map_table& t = at.table == 0 ? rt.cur : rt.old;
  return tx.mut_bytes(k.g.slot_off(t, static_cast<std::uint64_t>(at.idx)) + k.g.ks, k.g.vs);
}

bool map_erase(write_txn& tx, std::uint64_t root, map_shape s, const void* key) {
  const fixed_keys k(s);
  map_root rt = write_prologue(tx, root, k);
  const location at = locate(tx, rt, k, key, k.hash(key, rt.seed));
  if (at.table >= 0) {
    remove_at(tx, at.table == 0 ? rt.cur : rt.old, static_cast<std::uint64_t>(at.idx));
    --rt.size;
  }
  store_root(tx, root, rt);
  return at.table >= 0;
}

void map_clear(write_txn& tx, std::uint64_t root, map_shape s) {
  const fixed_keys k(s);
  map_root rt = root_of(tx, root, k);
  if (rt.old.groups != 0) free_table(tx, k.g, rt.old);
  free_table(tx, k.g, rt.cur);
  rt.cur = new_table(tx, k.g, 1);
  rt.size = 0;
  rt.migrate = 0;
  store_root(tx, root, rt);
}

void map_reserve(write_txn& tx, std::uint64_t root, map_shape s, std::uint64_t n) {
  const fixed_keys k(s);
  if (n > fmt::kMaxGroups * kGroup / 8 * 7)
    throw error(errc::invalid_argument, tx.path(), "cannot reserve " + std::to_string(n) + " entries");
  map_root rt = write_prologue(tx, root, k);
  if (n * 8 > rt.cur.groups * kGroup * 7) start_resize(tx, root, rt, k, groups_for(n));
  store_root(tx, root, rt);
}

void map_for_each(const store& db, std::uint64_t root, map_shape s, map_visit f, void* ctx) {
  const fixed_keys k(s);
  const std::uint64_t entry = k.g.ks + k.g.vs;
  const std::uint64_t groups = db.read([&](const read_view& v) {
    const map_root rt = root_of(v, root, k);
    return std::max(rt.cur.groups, rt.old.groups);
  });
  const int bits = slice_bits(groups);
  std::vector<std::byte> buf;
  for (std::uint64_t i = 0; i < (1ull << bits); ++i) {
    db.read([&](const read_view& v) {
      buf.clear();
      const map_root rt = root_of(v, root, k);
      slice(v, rt, k, slice_lo(bits, i), slice_hi(bits, i), [&](const map_table& t, std::uint64_t idx) {
        const std::byte* p = v.bytes(k.g.slot_off(t, idx), entry);
        buf.insert(buf.end(), p, p + entry);
      });
    });
    for (std::size_t at = 0; at < buf.size(); at += entry)
      if (!f(ctx, buf.data() + at, buf.data() + at + k.g.ks)) return;
  }
}

void map_for_each(write_txn& tx, std::uint64_t root, map_shape s, map_visit f, void* ctx) {
  const fixed_keys k(s);
  const map_root rt = root_of(tx, root, k);
  std::vector<std::byte> e(k.g.ks + k.g.vs);
  every(tx, rt, [&](const map_table& t, std::uint64_t idx) {
    std::memcpy(e.data(), tx.bytes(k.g.slot_off(t, idx), e.size()), e.size());
    return f(ctx, e.data(), e.data() + k.g.ks);
  });
}

}  // namespace keel::detail
