// keel::tree_map<K, V>: a persistent ordered map (B+tree) in a store.
//
// K has a keel::key_codec (integers, enums, byte arrays, pairs and tuples of
// those, chrono types, or your specialization): the tree orders keys by
// their encoded bytes, which is K's order. V is trivially copyable.
// key_codec<K>::size <= 1024 and key size + sizeof(V) <= 1336.
//
// Concurrency: reads without a transaction are lock-free from any process
// and see committed data only, never a half-applied split or merge; writes
// take the store's write_txn and become visible atomically at commit. A
// crash at any point recovers to a consistent tree (the store's contract).
//
// Layout (docs/FORMAT.md, "B+tree"): 4096-byte slotted nodes, linked leaves.
// Keys above the current maximum take the append path: no search, and a
// full rightmost leaf starts a new leaf instead of splitting in half, so
// time-ordered inserts fill leaves densely.
#pragma once

#include <array>
#include <cstring>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "keel/detail/open_named.h"
#include "keel/detail/tree_engine.h"
#include "keel/key_codec.h"
#include "keel/detail/visit.h"
#include "keel/store.h"

namespace keel {

template <tree_key K, class V>
class tree_map {
  static_assert(std::is_trivially_copyable_v<V>, "tree_map stores trivially copyable values");
  static constexpr std::size_t kKey = key_codec<K>::size;
  static_assert(kKey >= 1 && kKey <= detail::kTreeMaxKey, "tree_map keys encode to 1..1024 bytes");
  static_assert(kKey + sizeof(V) <= detail::kTreeMaxFixedEntry, "tree_map: key + value must be <= 1336 bytes");

 public:
  using entry = std::pair<K, V>;

  // Finds `name`, creating an empty tree when absent (writable store only;
  // an existing one is found by a lock-free read, with no write transaction).
  // Throws errc::type_mismatch when the name holds another kind or other
  // types; errc::invalid_argument when a read-only store lacks the name.
  static tree_map open(store& db, std::string_view name) {
    return tree_map(
        db, detail::open_named(
                db, name,
                [&](const read_view& v) {
                  return detail::tree_find(v, name, kind::tree_map, shape(), key_type(), value_type());
                },
                [&](write_txn& tx) { return open(db, tx, name).root_; }));
  }
  static tree_map open(store& db, write_txn& tx, std::string_view name) {
    return tree_map(db, detail::tree_open(tx, name, kind::tree_map, shape(), key_type(), value_type()));
  }

  // ---- lock-free reads (each call one consistent read of committed data)
  std::optional<V> get(const K& key) const {
    return db_->read([&](const read_view& v) { return get(v, key); });
  }
  bool contains(const K& key) const { return get(key).has_value(); }
  std::uint64_t size() const {
    return db_->read([&](const read_view& v) { return detail::tree_size(v, root_); });
  }
  // The smallest / largest entry; nullopt when empty.
  std::optional<entry> first() const { return one({}, {}, false, false); }
  std::optional<entry> last() const { return one({}, {}, true, false); }
  // The first entry with key >= k (lower_bound) or > k (upper_bound).
  std::optional<entry> lower_bound(const K& k) const { return one(enc(k), {}, false, false); }
  std::optional<entry> upper_bound(const K& k) const { return one(enc(k), {}, false, true); }

  // Calls f(const K&, const V&) for keys in [lo, hi) in ascending order
  // (for_each_reverse: descending); f returns void or bool (false stops).
  // Lock-free, in chunks while writers commit. What it sees: keys in order,
  // never one twice, never a torn entry; every key present for the whole
  // walk is visited, with its value as of some commit during the walk;
  // keys inserted or erased during the walk may or may not appear. f runs
  // outside any read section.
  template <class F>
  void for_each(const K& lo, const K& hi, F&& f) const {
    scan(range(enc(lo), enc(hi), false), f);
  }
  template <class F>
  void for_each_reverse(const K& lo, const K& hi, F&& f) const {
    scan(range(enc(lo), enc(hi), true), f);
  }
  // Every entry, ascending.
  template <class F>
  void for_each(F&& f) const {
    scan(detail::tree_range{}, f);
  }

  // ---- inside a caller's read section
  std::optional<V> get(const read_view& v, const K& key) const {
    V out;
    const auto k = enc(key);
    if (!detail::tree_get(v, root_, sv(k), {&out, nullptr})) return std::nullopt;
    return out;
  }

  // ---- inside a write transaction (sees the transaction's own writes)
  std::optional<V> get(write_txn& tx, const K& key) const {
    V out;
    const auto k = enc(key);
    if (!detail::tree_get(tx, root_, sv(k), {&out, nullptr})) return std::nullopt;
    return out;
  }
  std::uint64_t size(write_txn& tx) const { return detail::tree_size(tx, root_); }
  // Adds key -> value unless key is present. Returns true when added.
  bool insert(write_txn& tx, const K& key, const V& value) { return put_(tx, key, value, detail::put_mode::insert); }
  // Adds or assigns. Returns true when added.
  bool put(write_txn& tx, const K& key, const V& value) { return put_(tx, key, value, detail::put_mode::assign); }
  // Adds key -> value where key is above every key in the tree (time
  // series): no search, dense leaves. errc::invalid_argument otherwise.
  void append(write_txn& tx, const K& key, const V& value) { put_(tx, key, value, detail::put_mode::append); }
  // Appends the (K, V) pairs of [first, last): keys strictly ascending and
  // above every key in the tree. Fills each leaf with one copy: the fast way
  // to build a tree from sorted input. errc::invalid_argument when the
  // order is wrong; entries before the offending one may have been added,
  // so abort the transaction (store::write does when the error escapes).
  template <class It>
  void append_sorted(write_txn& tx, It first, It last) {
    constexpr std::size_t kBatch = 1024, kRec = kKey + sizeof(V);
    std::vector<unsigned char> buf(kBatch * kRec);
    while (first != last) {
      std::size_t n = 0;
      for (; n < kBatch && first != last; ++n, ++first) {
        const auto& [k, v] = *first;
        key_codec<K>::encode(k, buf.data() + n * kRec);
        std::memcpy(buf.data() + n * kRec + kKey, &v, sizeof(V));
      }
      detail::tree_append_sorted(tx, root_, buf.data(), n);
    }
  }
  // Calls f(V&) on the stored value in place. Returns false when absent.
  template <class F>
  bool update(write_txn& tx, const K& key, F&& f) {
    const auto k = enc(key);
    void* p = detail::tree_value_for_update(tx, root_, sv(k));
    if (!p) return false;
    V v;
    std::memcpy(&v, p, sizeof v);
    f(v);
    std::memcpy(p, &v, sizeof v);
    return true;
  }
  bool erase(write_txn& tx, const K& key) {
    const auto k = enc(key);
    return detail::tree_erase(tx, root_, sv(k));
  }
  // Erases keys in [lo, hi); returns how many.
  std::uint64_t erase_range(write_txn& tx, const K& lo, const K& hi) {
    const auto a = enc(lo), b = enc(hi);
    return detail::tree_erase_range(tx, root_, {sv(a), true}, {sv(b), true});
  }
  // Removes every entry; nodes go back to the allocator.
  void clear(write_txn& tx) { detail::tree_clear(tx, root_); }
  template <class F>
  void for_each(write_txn& tx, const K& lo, const K& hi, F&& f) const {
    const auto a = enc(lo), b = enc(hi);
    detail::tree_range r{{sv(a), true}, {sv(b), true}, false, false};
    detail::tree_scan(tx, root_, r, &visit<std::remove_reference_t<F>>, &f);
  }

  std::uint64_t root() const noexcept { return root_; }

 private:
  using key_bytes = std::array<unsigned char, kKey>;
  tree_map(store& db, std::uint64_t root) : db_(&db), root_(root) {}
  static constexpr detail::tree_shape shape() {
    return {static_cast<std::uint32_t>(kKey), static_cast<std::uint32_t>(sizeof(V))};
  }
  static type_desc key_type() {
    if constexpr (std::is_integral_v<K> && !std::is_same_v<K, bool>)
      return type_desc::of<K>();
    else
      return type_desc{12, 1, static_cast<std::uint32_t>(kKey), fingerprint(type_name<K>::get())};
  }
  static type_desc value_type() { return type_desc::of<V>(); }
  static key_bytes enc(const K& k) {
    key_bytes b;
    key_codec<K>::encode(k, b.data());
    return b;
  }
  static std::string_view sv(const key_bytes& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
  static std::optional<key_bytes> none() { return std::nullopt; }

  bool put_(write_txn& tx, const K& key, const V& value, detail::put_mode m) {
    const auto k = enc(key);
    return detail::tree_put(tx, root_, sv(k), {reinterpret_cast<const char*>(&value), sizeof(V)}, m);
  }
  // Owns the encoded bounds of a range while a scan runs.
  struct owned_range {
    std::optional<key_bytes> lo, hi;
    bool reverse = false, lo_exclusive = false;
    detail::tree_range get() const {
      detail::tree_range r;
      if (lo) r.lo = {sv(*lo), true};
      if (hi) r.hi = {sv(*hi), true};
      r.reverse = reverse;
      r.lo_exclusive = lo_exclusive;
      return r;
    }
  };
  static owned_range range(std::optional<key_bytes> lo, std::optional<key_bytes> hi, bool reverse) {
    return {lo, hi, reverse, false};
  }
  template <class F>
  void scan(const owned_range& r, F& f) const {
    detail::tree_scan(*db_, root_, r.get(), &visit<F>, &f, &visit_run<F>);
  }
  template <class F>
  void scan(const detail::tree_range& r, F& f) const {
    detail::tree_scan(*db_, root_, r, &visit<F>, &f, &visit_run<F>);
  }
  std::optional<entry> one(std::optional<key_bytes> lo, std::optional<key_bytes> hi, bool reverse,
                           bool exclusive) const {
    owned_range r{lo, hi, reverse, exclusive};
    std::optional<entry> got;
    auto f = [&](const K& k, const V& v) {
      got.emplace(k, v);
      return false;
    };
    scan(r, f);
    return got;
  }
  // A chunk's records in one call: the loop over them, and f, inline.
  template <class F>
  static bool visit_run(void* ctx, const char* recs, std::size_t n, std::uint32_t ks, std::uint32_t vs) {
    if (ks != kKey || vs != sizeof(V)) [[unlikely]] {  // not this map's shape: one record at a time
      for (std::size_t i = 0; i < n; ++i, recs += ks + vs)
        if (!visit<F>(ctx, {recs, ks}, {recs + ks, vs})) return false;
      return true;
    }
    for (std::size_t i = 0; i < n; ++i, recs += kKey + sizeof(V)) {
      const K key = key_codec<K>::decode(reinterpret_cast<const unsigned char*>(recs));
      V value;
      std::memcpy(&value, recs + kKey, sizeof value);
      if (!detail::keep_going(*static_cast<F*>(ctx), key, std::as_const(value))) return false;
    }
    return true;
  }
  template <class F>
  static bool visit(void* ctx, std::string_view k, std::string_view v) {
    const K key = key_codec<K>::decode(reinterpret_cast<const unsigned char*>(k.data()));
    V value;
    std::memcpy(&value, v.data(), sizeof value);
    return detail::keep_going(*static_cast<F*>(ctx), key, std::as_const(value));
  }

  store* db_;
  std::uint64_t root_;
};

}  // namespace keel
