// The structures the tool can dump, load and copy, driven by their catalog
// entries: typed hash maps and trees through the untyped engines
// (detail::map_*, detail::tree_*) with the sizes of the type descriptors,
// byte-string ones through keel::bytes_map and keel::bytes_tree.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "keel/bytes_map.h"
#include "keel/bytes_tree.h"
#include "keel/store.h"
#include "keel/types.h"

namespace keel::cli {

// What a structure is, as the tool handles it.
struct layout {
  std::string name;
  keel::kind kind{};
  type_desc key, value;
  std::uint64_t root = 0;
  bool tree() const { return kind == keel::kind::tree_map || kind == keel::kind::bytes_tree_map; }
  bool bytes() const { return kind == keel::kind::bytes_hash_map || kind == keel::kind::bytes_tree_map; }
};

// The layout of an existing entry; throws failure when the tool cannot
// handle it (a raw root, or types the engines do not support).
layout layout_of(const catalog_entry& e);
// The layout `keel load --kind K --key-type A --value-type B` asks for
// (kind "hash" or "tree"); throws failure(kUsage) for combinations the
// library cannot store (float keys, byte-string keys with fixed values, ...).
layout requested_layout(std::string name, std::string_view kind, const type_desc& key, const type_desc& value);

// The entry named `name` in a read view; throws failure naming the store
// and listing the names when it is absent.
catalog_entry find_entry(const store& db, const std::string& name);

// Entries a structure holds (one consistent read).
std::uint64_t entry_count(store& db, const layout& l);

// Fields are native (text_codec.h): integer tree keys are decoded from their
// key_codec form here. The visitor returns false to stop.
using visitor = std::function<bool(std::string_view key, std::string_view value)>;
// Lock-free, in chunks while writers commit (the for_each guarantee).
void scan(store& db, const layout& l, const visitor& f);
// Inside a write transaction: one consistent view.
void scan(store& db, write_txn& tx, const layout& l, const visitor& f);

// Writes into a structure inside a transaction, creating it when absent
// (with l's kind and types; errc::type_mismatch when it exists otherwise).
class writer {
 public:
  writer(store& db, write_txn& tx, const layout& l);
  // Adds or assigns. Fields are native; sizes are checked.
  bool put(std::string_view key, std::string_view value);  // true when added
  // Keys strictly ascending above every key (trees): the append path.
  void append(std::string_view key, std::string_view value);
  // Room for n entries (hash maps; no-op for trees).
  void reserve(std::uint64_t n);

 private:
  std::string tree_key(std::string_view key) const;
  store* db_;
  write_txn* tx_;
  layout l_;
  std::uint64_t root_ = 0;
  std::optional<bytes_map> bmap_;
  std::optional<bytes_tree> btree_;
};

}  // namespace keel::cli
