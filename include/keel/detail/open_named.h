// How the structures' open(store&, name) finds or creates a named root.
#pragma once

#include <cstdint>
#include <string_view>

#include "keel/store.h"

namespace keel::detail {

// find(const read_view&) -> root checks kind and types and throws when the
// name is absent; create(write_txn&) -> root finds or creates it. A
// read-only handle only finds. A writable one looks the name up first in a
// lock-free read, so that opening an existing structure takes no write
// transaction (nor waits for one another thread holds); only an absent name
// (or one without a root) costs a write transaction.
template <class Find, class Create>
std::uint64_t open_named(store& db, std::string_view name, Find find, Create create) {
  if (!db.writable()) return db.read(find);
  const std::uint64_t root =
      db.read([&](const read_view& v) -> std::uint64_t { return v.find(name) ? find(v) : 0; });
  if (root != 0) return root;
  std::uint64_t made = 0;
  db.write([&](write_txn& tx) { made = create(tx); });
  return made;
}

}  // namespace keel::detail
