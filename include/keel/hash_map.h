// keel::hash_map<K, V>: a persistent open-addressing hash map in a store.
//
// K and V are trivially copyable; K must have unique object representations
// (no padding bytes, no floating point), because keys are hashed and
// compared as bytes. sizeof(K) + sizeof(V) <= 4000.
//
// Concurrency: reads (get/contains/size/for_each without a transaction) are
// lock-free from any process and see committed data only; writes take a
// write_txn and become visible, atomically with the rest of the
// transaction, at commit. A crash at any point, including in the middle of
// a resize, recovers to a consistent map (the store's contract).
//
// Layout (docs/FORMAT.md, "Hash map"): SwissTable-style control bytes and a
// slot array; the home group is the top bits of a seeded XXH3 hash. Growth
// is incremental: each write moves a bounded number of old groups into the
// new table, and lookups search both tables until the move ends.
#pragma once

#include <cstdint>
#include <cstring>
#include <algorithm>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "keel/detail/map_probe.h"
#include "keel/detail/open_named.h"
#include "keel/detail/visit.h"
#include "keel/store.h"
#include "keel/txn.h"

namespace keel {

namespace detail {

// The untyped engine behind hash_map (src/hash/). Keys and values are byte
// strings of fixed sizes.
struct map_shape {
  std::uint32_t key_size;
  std::uint32_t value_size;
};

std::uint64_t map_open(write_txn& tx, std::string_view name, map_shape shape, type_desc key, type_desc value);
std::uint64_t map_find(const read_view& v, std::string_view name, map_shape shape, type_desc key, type_desc value);
std::uint64_t map_find(write_txn& tx, std::string_view name, map_shape shape, type_desc key, type_desc value);

// Returns true and copies the value when found. (Readers use the inline
// probe in keel/detail/map_probe.h.)
bool map_get(write_txn& tx, std::uint64_t root, map_shape s, const void* key, void* value_out);
std::uint64_t map_size(const read_view& v, std::uint64_t root, map_shape s);
std::uint64_t map_size(write_txn& tx, std::uint64_t root, map_shape s);
// mode: 0 insert only, 1 insert or assign. Returns true when inserted.
bool map_put(write_txn& tx, std::uint64_t root, map_shape s, const void* key, const void* value, int mode);
// Pointer to the value of key for in-place change (logged), or nullptr.
void* map_value_for_update(write_txn& tx, std::uint64_t root, map_shape s, const void* key);
bool map_erase(write_txn& tx, std::uint64_t root, map_shape s, const void* key);
void map_clear(write_txn& tx, std::uint64_t root, map_shape s);
void map_reserve(write_txn& tx, std::uint64_t root, map_shape s, std::uint64_t n);

// Iteration. A visitor receives (key bytes, value bytes) and returns false to stop.
using map_visit = bool (*)(void* ctx, const void* key, const void* value);
void map_for_each(const store& db, std::uint64_t root, map_shape s, map_visit f, void* ctx);
void map_for_each(write_txn& tx, std::uint64_t root, map_shape s, map_visit f, void* ctx);

}  // namespace detail

template <class K, class V>
class hash_map {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "hash_map stores trivially copyable keys and values");
  static_assert(std::has_unique_object_representations_v<K>,
                "hash_map keys are hashed as bytes: K must have no padding and no floating point members");
  static_assert(sizeof(K) + sizeof(V) <= 4000, "hash_map slots must fit in a page");

 public:
  // Finds `name`, creating an empty map when absent (writable store only;
  // an existing one is found by a lock-free read, with no write transaction).
  // Throws errc::type_mismatch when the name holds another kind or other
  // types; errc::invalid_argument when a read-only store lacks the name.
  static hash_map open(store& db, std::string_view name) {
    return hash_map(
        db, detail::open_named(
                db, name, [&](const read_view& v) { return detail::map_find(v, name, shape(), key_type(), value_type()); },
                [&](write_txn& tx) { return detail::map_open(tx, name, shape(), key_type(), value_type()); }));
  }
  // The same inside a caller's transaction.
  static hash_map open(store& db, write_txn& tx, std::string_view name) {
    return hash_map(db, detail::map_open(tx, name, shape(), key_type(), value_type()));
  }

  // ---- lock-free reads (each one consistent read of committed data)
  // (Inline: the common case is a few dozen instructions without a
  // read_view, so that a loop of gets keeps several lookups' cache misses in
  // flight; anything unusual goes to store::read.)
  [[gnu::always_inline]] std::optional<V> get(const K& key) const {
    V out;
    const int r = detail::map_probe_fast(*db_, root_ptr_, cache_, key, out);
    if (r < 0) [[unlikely]]
      return get_read(key);
    return r != 0 ? std::optional<V>(out) : std::nullopt;
  }
  bool contains(const K& key) const { return get(key).has_value(); }
  // Looks up keys[i] into out[i] (nullopt when absent) with the cache misses
  // of many lookups overlapped; returns how many were found. Each run of up
  // to 256 keys is one consistent read. REQUIRES: out.size() >= keys.size().
  std::size_t get_many(std::span<const K> keys, std::span<std::optional<V>> out) const {
    if (out.size() < keys.size())
      throw error(errc::invalid_argument, db_->path(), "get_many: output span shorter than the key span");
    std::size_t found = 0;
    for (std::size_t at = 0; at < keys.size(); at += 256) {
      const std::size_t n = std::min<std::size_t>(256, keys.size() - at);
      found += db_->read([&](const read_view& v) {
        return detail::map_probe_many<K, V>(v, root_, cache_, keys.data() + at, out.data() + at, n);
      });
    }
    return found;
  }
  std::uint64_t size() const {
    return db_->read([&](const read_view& v) { return size(v); });
  }
  // Inside a caller's read section: several lookups from one view.
  std::optional<V> get(const read_view& v, const K& key) const {
    V out;
    if (!detail::map_probe(v, root_, cache_, key, out)) return std::nullopt;
    return out;
  }
  bool contains(const read_view& v, const K& key) const { return get(v, key).has_value(); }
  std::uint64_t size(const read_view& v) const { return detail::map_size(v, root_, shape()); }

  // ---- inside a write transaction (sees the transaction's own writes)
  std::optional<V> get(write_txn& tx, const K& key) const {
    V out;
    if (!detail::map_get(tx, root_, shape(), &key, &out)) return std::nullopt;
    return out;
  }
  bool contains(write_txn& tx, const K& key) const { return get(tx, key).has_value(); }
  std::uint64_t size(write_txn& tx) const { return detail::map_size(tx, root_, shape()); }
  // Adds key -> value unless key is present. Returns true when added.
  bool insert(write_txn& tx, const K& key, const V& value) {
    return detail::map_put(tx, root_, shape(), &key, &value, 0);
  }
  // Adds or assigns. Returns true when added, false when assigned.
  bool put(write_txn& tx, const K& key, const V& value) {
    return detail::map_put(tx, root_, shape(), &key, &value, 1);
  }
  // Calls f(V&) on the stored value in place. Returns false when key is absent.
  template <class F>
  bool update(write_txn& tx, const K& key, F&& f) {
    void* p = detail::map_value_for_update(tx, root_, shape(), &key);
    if (!p) return false;
    V v;
    std::memcpy(&v, p, sizeof v);
    f(v);
    std::memcpy(p, &v, sizeof v);
    return true;
  }
  bool erase(write_txn& tx, const K& key) { return detail::map_erase(tx, root_, shape(), &key); }
  // Removes every entry and returns the tables' space to the allocator.
  void clear(write_txn& tx) { detail::map_clear(tx, root_, shape()); }
  // Makes room for n entries without further growth (the move itself is
  // incremental, as for any growth).
  void reserve(write_txn& tx, std::uint64_t n) { detail::map_reserve(tx, root_, shape(), n); }

  // Calls f(const K&, const V&) for every entry; f returns void or bool
  // (false stops). Without a transaction it runs lock-free in chunks, each
  // chunk one consistent read of a slice of the hash space, while writers
  // commit. What it sees: never a torn entry, never an entry twice, and every
  // key present for the whole walk (its value as of some commit during the
  // walk); keys inserted or erased during the walk may or may not appear. f
  // runs outside any read section and may do anything but write this map
  // from the same thread's transaction.
  template <class F>
  void for_each(F&& f) const {
    detail::map_for_each(*db_, root_, shape(), &visit<std::remove_reference_t<F>>, &f);
  }
  // Inside a write transaction: its own view, in table order.
  template <class F>
  void for_each(write_txn& tx, F&& f) const {
    detail::map_for_each(tx, root_, shape(), &visit<std::remove_reference_t<F>>, &f);
  }

  std::uint64_t root() const noexcept { return root_; }

 private:
  hash_map(store& db, std::uint64_t root) : db_(&db), root_(root), root_ptr_(db.mapping() + root) {}
  // The key by value, so that the inline get's caller need not keep it in
  // memory for this rare path.
  [[gnu::noinline]] std::optional<V> get_read(K key) const {
    return db_->read([&](const read_view& v) { return get(v, key); });
  }
  static constexpr detail::map_shape shape() { return {sizeof(K), sizeof(V)}; }
  static type_desc key_type() { return type_desc::of<K>(); }
  static type_desc value_type() { return type_desc::of<V>(); }
  template <class F>
  static bool visit(void* ctx, const void* k, const void* v) {
    K key;
    V value;
    std::memcpy(&key, k, sizeof key);
    std::memcpy(&value, v, sizeof value);
    return detail::keep_going(*static_cast<F*>(ctx), std::as_const(key), std::as_const(value));
  }

  store* db_;
  std::uint64_t root_;
  const std::byte* root_ptr_;  // the root block in the mapping (which never moves)
  mutable detail::layout_cache cache_;  // the root's checked layout, shared by this handle's readers
};

}  // namespace keel
