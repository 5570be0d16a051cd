// keel::bytes_tree: a persistent ordered map from byte strings to byte
// strings (B+tree), keys in lexicographic (memcmp, shorter first) order.
//
// Keys are 0..max_key bytes, values 0..max_value bytes; a value that would
// make its leaf cell larger than 1344 bytes is stored in a block of its own.
// Same node layout, concurrency and crash contracts as keel::tree_map.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "keel/detail/tree_engine.h"
#include "keel/detail/visit.h"
#include "keel/store.h"

namespace keel {

class bytes_tree {
 public:
  static constexpr std::size_t max_key = detail::kTreeMaxKey;
  static constexpr std::uint64_t max_value = detail::kTreeMaxValue;
  using entry = std::pair<std::string, std::string>;

  // Finds `name`, creating an empty tree when absent (writable store only;
  // an existing one is found by a lock-free read, with no write transaction).
  // errc::type_mismatch when the name holds something else;
  // errc::invalid_argument when a read-only store lacks it.
  static bytes_tree open(store& db, std::string_view name);
  static bytes_tree open(store& db, write_txn& tx, std::string_view name);

  // ---- lock-free reads
  std::optional<std::string> get(std::string_view key) const;
  std::optional<std::string> get(const read_view& v, std::string_view key) const;
  bool contains(std::string_view key) const { return get(key).has_value(); }
  std::uint64_t size() const;
  std::optional<entry> first() const;
  std::optional<entry> last() const;
  std::optional<entry> lower_bound(std::string_view key) const;  // first key >= key
  std::optional<entry> upper_bound(std::string_view key) const;  // first key > key

  // Calls f(std::string_view key, std::string_view value) in key order over
  // [lo, hi) (descending for the _reverse forms); f returns void or bool
  // (false stops). The views are valid during the call only. Same guarantee
  // as tree_map::for_each: in order, never twice, never torn; every key
  // present for the whole walk is visited.
  template <class F>
  void for_each(std::string_view lo, std::string_view hi, F&& f) const {
    scan({{lo, true}, {hi, true}, false, false}, &visit<std::remove_reference_t<F>>, &f);
  }
  template <class F>
  void for_each_reverse(std::string_view lo, std::string_view hi, F&& f) const {
    scan({{lo, true}, {hi, true}, true, false}, &visit<std::remove_reference_t<F>>, &f);
  }
  template <class F>
  void for_each(F&& f) const {
    scan({}, &visit<std::remove_reference_t<F>>, &f);
  }
  // Keys that start with `prefix`, ascending.
  template <class F>
  void for_each_prefix(std::string_view prefix, F&& f) const {
    std::string hi;
    scan(prefix_range(prefix, hi), &visit<std::remove_reference_t<F>>, &f);
  }

  // ---- inside a write transaction. Keys over max_key and
  // values over max_value throw errc::invalid_argument and change nothing.
  std::optional<std::string> get(write_txn& tx, std::string_view key) const;
  std::uint64_t size(write_txn& tx) const;
  bool insert(write_txn& tx, std::string_view key, std::string_view value);  // true when added
  bool put(write_txn& tx, std::string_view key, std::string_view value);     // true when added
  // key above every key in the tree; errc::invalid_argument otherwise.
  void append(write_txn& tx, std::string_view key, std::string_view value);
  bool erase(write_txn& tx, std::string_view key);
  std::uint64_t erase_range(write_txn& tx, std::string_view lo, std::string_view hi);
  void clear(write_txn& tx);
  template <class F>
  void for_each(write_txn& tx, F&& f) const {
    scan(tx, {}, &visit<std::remove_reference_t<F>>, &f);
  }

  std::uint64_t root() const noexcept { return root_; }

 private:
  bytes_tree(store& db, std::uint64_t root) : db_(&db), root_(root) {}
  void scan(const detail::tree_range& r, detail::tree_visit f, void* ctx) const;
  void scan(write_txn& tx, const detail::tree_range& r, detail::tree_visit f, void* ctx) const;
  // [prefix, next string after every key with the prefix); hi_storage holds the bound.
  static detail::tree_range prefix_range(std::string_view prefix, std::string& hi_storage);
  std::optional<entry> one(const detail::tree_range& r) const;
  template <class F>
  static bool visit(void* ctx, std::string_view k, std::string_view v) {
    return detail::keep_going(*static_cast<F*>(ctx), k, v);
  }

  store* db_;
  std::uint64_t root_;
};

}  // namespace keel
