// keel::bytes_map: a persistent hash map from byte strings to byte strings.
//
// Keys are 1..max_key bytes (empty keys are allowed too); values 0..max_value
// bytes. An entry lives in one block with its key; a value that would not
// fit in a page with its key is stored in a block of its own. Same table,
// resize, concurrency and crash contracts as keel::hash_map (hash_map.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "keel/detail/visit.h"
#include "keel/store.h"
#include "keel/txn.h"

namespace keel {

class bytes_map {
 public:
  static constexpr std::size_t max_key = 2048;
  static constexpr std::size_t max_value = std::size_t{1} << 30;

  // Finds `name`, creating an empty map when absent (writable store only;
  // an existing one is found by a lock-free read, with no write transaction).
  // errc::type_mismatch when the name holds something else;
  // errc::invalid_argument when a read-only store lacks it.
  static bytes_map open(store& db, std::string_view name);
  static bytes_map open(store& db, write_txn& tx, std::string_view name);

  // ---- lock-free reads
  std::optional<std::string> get(std::string_view key) const;
  bool contains(std::string_view key) const;
  std::uint64_t size() const;
  std::optional<std::string> get(const read_view& v, std::string_view key) const;
  std::uint64_t size(const read_view& v) const;

  // ---- inside a write transaction. Keys over max_key or values over
  // max_value throw errc::invalid_argument and change nothing.
  std::optional<std::string> get(write_txn& tx, std::string_view key) const;
  std::uint64_t size(write_txn& tx) const;
  bool insert(write_txn& tx, std::string_view key, std::string_view value);  // true when added
  bool put(write_txn& tx, std::string_view key, std::string_view value);     // true when added, false when replaced
  bool erase(write_txn& tx, std::string_view key);                           // false when absent
  void clear(write_txn& tx);
  void reserve(write_txn& tx, std::uint64_t n);

  // Calls f(std::string_view key, std::string_view value) for every entry;
  // f returns void or bool (false stops). Lock-free, with hash_map's
  // guarantee: never a torn entry, never one twice, every key present for
  // the whole walk.
  template <class F>
  void for_each(F&& f) const {
    for_each_impl(&visit<std::remove_reference_t<F>>, &f);
  }
  template <class F>
  void for_each(write_txn& tx, F&& f) const {
    for_each_impl(tx, &visit<std::remove_reference_t<F>>, &f);
  }

  std::uint64_t root() const noexcept { return root_; }

 private:
  using visitor = bool (*)(void*, std::string_view, std::string_view);
  bytes_map(store& db, std::uint64_t root) : db_(&db), root_(root) {}
  void for_each_impl(visitor f, void* ctx) const;
  void for_each_impl(write_txn& tx, visitor f, void* ctx) const;
  template <class F>
  static bool visit(void* ctx, std::string_view k, std::string_view v) {
    return detail::keep_going(*static_cast<F*>(ctx), k, v);
  }

  store* db_;
  std::uint64_t root_;
};

}  // namespace keel
