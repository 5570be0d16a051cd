// A store holding one u64 under the raw root "v", and reading and writing
// u64s at offsets: the smallest store the lifecycle tests (store_test,
// clean_open_test) open, damage and reopen. Header-only.
#pragma once

#include <keel/keel.h>

#include <string>

#include "support/testing.h"

namespace keel_test {

inline void put64(keel::write_txn& tx, u64 off, u64 v) { tx.put(keel::ref<u64>{off}, v); }

inline u64 read_u64(const keel::store& s, u64 off) {
  return s.read([&](const keel::read_view& v) { return v.get(keel::ref<u64>{off}); });
}

// Creates (or opens) the store at path, puts `value` in a new block named by
// the raw root "v", and closes it cleanly. Returns the block's offset.
inline u64 make_value_store(const std::string& path, u64 value, const keel::options& o = small_opts()) {
  auto s = keel::store::open(path, o);
  const u64 off = s->write([&](keel::write_txn& tx) {
    const u64 b = tx.alloc(sizeof(u64));
    put64(tx, b, value);
    tx.open_root("v", keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<u64>());
    tx.set_root("v", b);
    return b;
  });
  s->close();
  return off;
}

}  // namespace keel_test
