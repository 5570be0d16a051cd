// keel::bytes_map: the generic table (table.h) whose 16-byte slots hold the
// key's hash and the offset of an entry block:
//   u32 key length, u32 flags (bit 0: value out of line), u64 value length,
//   u64 value offset (out of line only), key bytes, value bytes (inline only).
#include "keel/bytes_map.h"
#include "keel/detail/open_named.h"

#include "hash/table.h"

namespace keel {

namespace {

using namespace keel::hash;

struct entry_header {
  std::uint32_t key_len;
  std::uint32_t flags;
  std::uint64_t value_len;
  std::uint64_t value_off;
};
static_assert(sizeof(entry_header) == 24);
constexpr std::uint32_t kOutOfLine = 1;

bool fits_inline(std::size_t k, std::size_t v) { return sizeof(entry_header) + k + v <= fmt::kPage; }

struct byte_keys {
  using key_type = std::string_view;
  geom g{16, 0};
  std::uint32_t root_ks = 0, root_vs = 0;

  template <class R>
  entry_header header(R& r, std::uint64_t e) const {
    entry_header h;
    std::memcpy(&h, r.bytes(e, sizeof h), sizeof h);
    const bool ool = (h.flags & kOutOfLine) != 0;
    if (h.key_len > bytes_map::max_key || h.value_len > bytes_map::max_value || (h.flags & ~kOutOfLine) != 0 ||
        (!ool && !fits_inline(h.key_len, h.value_len)))
      throw error(errc::corrupt, r.path(), "bytes map entry at " + std::to_string(e) + " is malformed");
    return h;
  }
  template <class R>
  std::uint64_t entry_at(R& r, const map_table& t, std::uint64_t idx, std::uint64_t* h = nullptr) const {
    std::uint64_t s[2];
    std::memcpy(s, r.bytes(g.slot_off(t, idx), 16), 16);
    if (h) *h = s[0];
    return s[1];
  }
  template <class R>
  bool same(R& r, const map_table& t, std::uint64_t idx, std::string_view key, std::uint64_t h) const {
    std::uint64_t sh;
    const std::uint64_t e = entry_at(r, t, idx, &sh);
    if (sh != h) return false;
    const entry_header eh = header(r, e);
    return eh.key_len == key.size() &&
           (key.empty() || std::memcmp(r.bytes(e + sizeof eh, key.size()), key.data(), key.size()) == 0);
  }
  std::uint64_t hash(std::string_view key, std::uint64_t seed) const {
    return XXH3_64bits_withSeed(key.data(), key.size(), seed);
  }
  std::uint64_t slot_hash(const std::byte* slot, std::uint64_t) const {
    std::uint64_t h;
    std::memcpy(&h, slot, 8);
    return h;
  }
};

void copy_out(const read_view& v, std::uint64_t off, std::size_t len, char* dst) {
  if (len) std::memcpy(dst, v.bytes(off, len), len);
}
void copy_out(write_txn& tx, std::uint64_t off, std::size_t len, char* dst) {
  if (len) tx.read(off, dst, len);
}

template <class R>
std::string key_of(R& r, const byte_keys& k, std::uint64_t e) {
  const entry_header h = k.header(r, e);
  std::string out(h.key_len, '\0');
  copy_out(r, e + sizeof h, h.key_len, out.data());
  return out;
}

template <class R>
std::string value_of(R& r, const byte_keys& k, std::uint64_t e) {
  const entry_header h = k.header(r, e);
  std::string out(h.value_len, '\0');
  if (h.flags & kOutOfLine)
    copy_out(r, h.value_off, h.value_len, out.data());
  else
    copy_out(r, e + sizeof h + h.key_len, h.value_len, out.data());
  return out;
}

template <class R>
std::optional<std::string> get_impl(R& r, std::uint64_t root, std::string_view key) {
  const byte_keys k;
  const map_root rt = load_root(r, root, 0, 0, byte_keys().g);
  const location at = locate(r, rt, k, key, k.hash(key, rt.seed));
  if (at.table < 0) return std::nullopt;
  return value_of(r, k, k.entry_at(r, at.table == 0 ? rt.cur : rt.old, static_cast<std::uint64_t>(at.idx)));
}

std::uint64_t write_entry(write_txn& tx, std::string_view key, std::string_view value) {
  entry_header h{static_cast<std::uint32_t>(key.size()), 0, value.size(), 0};
  const bool inl = fits_inline(key.size(), value.size());
  if (!inl) {
    h.flags = kOutOfLine;
    h.value_off = tx.alloc(std::max<std::size_t>(value.size(), 1));
    tx.write(h.value_off, value.data(), value.size());
  }
  const std::uint64_t e = tx.alloc(sizeof h + key.size() + (inl ? value.size() : 0));
  tx.write(e, &h, sizeof h);
  tx.write(e + sizeof h, key.data(), key.size());
  if (inl) tx.write(e + sizeof h + key.size(), value.data(), value.size());
  return e;
}

void free_entry(write_txn& tx, const byte_keys& k, std::uint64_t e) {
  const entry_header h = k.header(tx, e);
  const bool ool = (h.flags & kOutOfLine) != 0;
  if (ool) tx.free(h.value_off, std::max<std::uint64_t>(h.value_len, 1));
  tx.free(e, sizeof h + h.key_len + (ool ? 0 : h.value_len));
}

void check_sizes(write_txn& tx, std::string_view key, std::string_view value) {
  if (key.size() > bytes_map::max_key)
    throw error(errc::invalid_argument, tx.path(),
                "bytes_map key of " + std::to_string(key.size()) + " bytes exceeds " +
                    std::to_string(bytes_map::max_key));
  if (value.size() > bytes_map::max_value)
    throw error(errc::invalid_argument, tx.path(),
                "bytes_map value of " + std::to_string(value.size()) + " bytes exceeds " +
                    std::to_string(bytes_map::max_value));
}

bool put_impl(write_txn& tx, std::uint64_t root, std::string_view key, std::string_view value, bool assign) {
  check_sizes(tx, key, value);
  const byte_keys k;
  map_root rt = write_prologue(tx, root, k);
  const std::uint64_t h = k.hash(key, rt.seed);
  const location at = locate(tx, rt, k, key, h);
  if (at.table >= 0) {
    if (assign) {
      const map_table& t = at.table == 0 ? rt.cur : rt.old;
      const std::uint64_t idx = static_cast<std::uint64_t>(at.idx);
      const std::uint64_t old_entry = k.entry_at(tx, t, idx);
      const std::uint64_t e = write_entry(tx, key, value);
      std::memcpy(tx.mut_bytes(k.g.slot_off(t, idx) + 8, 8), &e, 8);
      free_entry(tx, k, old_entry);
    }
    store_root(tx, root, rt);
    return false;
  }
  make_room(tx, root, rt, k);
  store_root(tx, root, rt);  // a resize is recorded before write_entry can fail
  const std::uint64_t slot[2] = {h, write_entry(tx, key, value)};
  const std::uint64_t probe = place(tx, rt.cur, k.g, slot, slot, h, committed_cur(tx, root, rt.cur));  // no value part: vs = 0
  ++rt.size;
  grow_after_long_probe(tx, root, rt, k, probe);
  store_root(tx, root, rt);
  return true;
}

template <class R>
std::uint64_t find_root(R& r, std::string_view name) {
  const auto e = r.find(name);
  if (!e) throw error(errc::invalid_argument, r.path(), "no bytes map named '" + std::string(name) + "'");
  check_entry(*e, r.path(), name, kind::bytes_hash_map, type_desc::bytes(), type_desc::bytes());
  load_root(r, e->root, 0, 0, byte_keys().g);
  return e->root;
}

}  // namespace

bytes_map bytes_map::open(store& db, std::string_view name) {
  return bytes_map(db, detail::open_named(
                           db, name, [&](const read_view& v) { return find_root(v, name); },
                           [&](write_txn& tx) { return open(db, tx, name).root_; }));
}

bytes_map bytes_map::open(store& db, write_txn& tx, std::string_view name) {
  const catalog_entry e = tx.open_root(name, kind::bytes_hash_map, type_desc::bytes(), type_desc::bytes());
  if (e.root != 0) {
    load_root(tx, e.root, 0, 0, byte_keys().g);
    return bytes_map(db, e.root);
  }
  const std::uint64_t root = new_map_root(tx, 0, 0, byte_keys().g);
  tx.set_root(name, root, 0);
  return bytes_map(db, root);
}

std::optional<std::string> bytes_map::get(std::string_view key) const {
  return db_->read([&](const read_view& v) { return get_impl(v, root_, key); });
}
bool bytes_map::contains(std::string_view key) const { return get(key).has_value(); }
std::uint64_t bytes_map::size() const {
  return db_->read([&](const read_view& v) { return size(v); });
}
std::optional<std::string> bytes_map::get(const read_view& v, std::string_view key) const {
  return get_impl(v, root_, key);
}
std::uint64_t bytes_map::size(const read_view& v) const { return load_root(v, root_, 0, 0, byte_keys().g).size; }
std::optional<std::string> bytes_map::get(write_txn& tx, std::string_view key) const {
  return get_impl(tx, root_, key);
}
std::uint64_t bytes_map::size(write_txn& tx) const { return load_root(tx, root_, 0, 0, byte_keys().g).size; }

bool bytes_map::insert(write_txn& tx, std::string_view key, std::string_view value) {
  return put_impl(tx, root_, key, value, false);
}
bool bytes_map::put(write_txn& tx, std::string_view key, std::string_view value) {
  return put_impl(tx, root_, key, value, true);
}

bool bytes_map::erase(write_txn& tx, std::string_view key) {
  const byte_keys k;
  map_root rt = write_prologue(tx, root_, k);
  const location at = locate(tx, rt, k, key, k.hash(key, rt.seed));
  if (at.table >= 0) {
    map_table& t = at.table == 0 ? rt.cur : rt.old;
    const std::uint64_t idx = static_cast<std::uint64_t>(at.idx);
    free_entry(tx, k, k.entry_at(tx, t, idx));
    remove_at(tx, t, idx);
    --rt.size;
  }
  store_root(tx, root_, rt);
  return at.table >= 0;
}

void bytes_map::clear(write_txn& tx) {
  const byte_keys k;
  map_root rt = load_root(tx, root_, 0, 0, byte_keys().g);
  std::vector<std::uint64_t> entries;
  every(tx, rt, [&](const map_table& t, std::uint64_t idx) {
    entries.push_back(k.entry_at(tx, t, idx));
    return true;
  });
  for (std::uint64_t e : entries) free_entry(tx, k, e);
  if (rt.old.groups != 0) free_table(tx, k.g, rt.old);
  free_table(tx, k.g, rt.cur);
  rt.cur = new_table(tx, k.g, 1);
  rt.size = 0;
  rt.migrate = 0;
  store_root(tx, root_, rt);
}

void bytes_map::reserve(write_txn& tx, std::uint64_t n) {
  const byte_keys k;
  if (n > fmt::kMaxGroups * kGroup / 8 * 7)
    throw error(errc::invalid_argument, tx.path(), "cannot reserve " + std::to_string(n) + " entries");
  map_root rt = write_prologue(tx, root_, k);
  if (n * 8 > rt.cur.groups * kGroup * 7) start_resize(tx, root_, rt, k, groups_for(n));
  store_root(tx, root_, rt);
}

void bytes_map::for_each_impl(visitor f, void* ctx) const {
  const byte_keys k;
  const std::uint64_t groups = db_->read([&](const read_view& v) {
    const map_root rt = load_root(v, root_, 0, 0, byte_keys().g);
    return std::max(rt.cur.groups, rt.old.groups);
  });
  const int bits = slice_bits(groups);
  std::vector<std::pair<std::string, std::string>> buf;
  for (std::uint64_t i = 0; i < (1ull << bits); ++i) {
    db_->read([&](const read_view& v) {
      buf.clear();
      const map_root rt = load_root(v, root_, 0, 0, byte_keys().g);
      slice(v, rt, k, slice_lo(bits, i), slice_hi(bits, i), [&](const map_table& t, std::uint64_t idx) {
        const std::uint64_t e = k.entry_at(v, t, idx);
        buf.emplace_back(key_of(v, k, e), value_of(v, k, e));
      });
    });
    for (const auto& [key, value] : buf)
      if (!f(ctx, key, value)) return;
  }
}

void bytes_map::for_each_impl(write_txn& tx, visitor f, void* ctx) const {
  const byte_keys k;
  const map_root rt = load_root(tx, root_, 0, 0, byte_keys().g);
  every(tx, rt, [&](const map_table& t, std::uint64_t idx) {
    const std::uint64_t e = k.entry_at(tx, t, idx);
    return f(ctx, key_of(tx, k, e), value_of(tx, k, e));
  });
}

}  // namespace keel
