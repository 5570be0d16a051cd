#include "structure.h"

#include <fmt/format.h>

#include <cstring>

#include "common.h"
#include "keel/bytes_map.h"
#include "keel/bytes_tree.h"
#include "keel/detail/tree_engine.h"
#include "keel/hash_map.h"
#include "text_codec.h"

namespace keel::cli {

namespace {

bool is_int(const type_desc& t) {
  return t.code >= 1 && t.code <= 8;
}
bool is_fixed_size(const type_desc& t) {
  return (t.code >= 1 && t.code <= 10) || t.code == 12;
}

detail::map_shape map_shape_of(const layout& l) {
  return {l.key.size, l.value.size};
}
detail::tree_shape tree_shape_of(const layout& l) {
  return l.bytes() ? detail::tree_shape{0, 0} : detail::tree_shape{l.key.size, l.value.size};
}

// Typed trees keep integer keys in key_codec form: big-endian with the sign
// bit flipped, so that memcmp order is numeric order.
std::string encode_int_key(const type_desc& t, std::string_view native) {
  const std::size_t n = native.size();
  std::uint64_t u = 0;
  std::memcpy(&u, native.data(), n);
  if (t.code >= 5) u ^= std::uint64_t{1} << (8 * n - 1);
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(u >> (8 * (n - 1 - i)));
  return out;
}
std::string decode_int_key(const type_desc& t, std::string_view enc) {
  const std::size_t n = enc.size();
  std::uint64_t u = 0;
  for (std::size_t i = 0; i < n; ++i) u = u << 8 | static_cast<unsigned char>(enc[i]);
  if (t.code >= 5) u ^= std::uint64_t{1} << (8 * n - 1);
  std::string out(n, '\0');
  std::memcpy(out.data(), &u, n);
  return out;
}

struct scan_ctx {
  const layout* l;
  const visitor* f;
  std::string key;  // scratch for decoded tree keys
};

bool visit_map(void* ctx, const void* k, const void* v) {
  auto& c = *static_cast<scan_ctx*>(ctx);
  return (*c.f)({static_cast<const char*>(k), c.l->key.size}, {static_cast<const char*>(v), c.l->value.size});
}

bool visit_tree(void* ctx, std::string_view k, std::string_view v) {
  auto& c = *static_cast<scan_ctx*>(ctx);
  if (is_int(c.l->key)) {
    c.key = decode_int_key(c.l->key, k);
    return (*c.f)(c.key, v);
  }
  return (*c.f)(k, v);
}

void check_types(const layout& l, bool usage) {
  auto bad = [&](const std::string& why) {
    return failure(::fmt::format("'{}': {}", l.name, why), usage ? kUsage : kError);
  };
  const bool kb = l.key.code == 11, vb = l.value.code == 11;
  if (kb != vb)
    throw bad(
        "byte-string keys go with byte-string values (bytes_map, bytes_tree); typed structures have fixed-size "
        "keys and values");
  if (kb) return;
  if (!is_fixed_size(l.key) || !is_fixed_size(l.value))
    throw bad(::fmt::format("types {} -> {} are not supported", type_spec(l.key), type_spec(l.value)));
  if (l.key.code == 9 || l.key.code == 10)
    throw bad("floating-point keys are not supported (keys are compared as bytes)");
  if (l.tree()) {
    if (l.key.size > detail::kTreeMaxKey)
      throw bad(::fmt::format("tree keys are at most {} bytes", detail::kTreeMaxKey));
    if (l.key.size + l.value.size > detail::kTreeMaxFixedEntry)
      throw bad(::fmt::format("tree key + value must be at most {} bytes", detail::kTreeMaxFixedEntry));
  } else if (l.key.size + l.value.size > 4000) {
    throw bad("hash map key + value must be at most 4000 bytes");
  }
}

}  // namespace

layout layout_of(const catalog_entry& e) {
  layout l{e.name, e.kind, e.key, e.value, e.root};
  switch (e.kind) {
    case kind::hash_map:
    case kind::tree_map:
    case kind::bytes_hash_map:
    case kind::bytes_tree_map:
      break;
    case kind::raw:
      throw failure(
          ::fmt::format("'{}' is a raw root (offsets the application manages); the tool handles hash maps "
                        "and trees only",
                        e.name));
    default:
      throw failure(::fmt::format("'{}' has unknown kind {}", e.name, static_cast<int>(e.kind)));
  }
  check_types(l, false);
  return l;
}

layout requested_layout(std::string name, std::string_view k, const type_desc& key, const type_desc& value) {
  layout l{std::move(name), {}, key, value, 0};
  const bool bytes = key.code == 11 && value.code == 11;
  if (k == "hash")
    l.kind = bytes ? kind::bytes_hash_map : kind::hash_map;
  else if (k == "tree")
    l.kind = bytes ? kind::bytes_tree_map : kind::tree_map;
  else
    throw failure(::fmt::format("--kind: '{}' is not hash or tree", k), kUsage);
  check_types(l, true);
  return l;
}

catalog_entry find_entry(const store& db, const std::string& name) {
  auto [found, names] = db.read([&](const read_view& v) {
    auto e = v.find(name);
    std::string all;
    if (!e)
      for (const auto& x : v.list()) all += (all.empty() ? "" : ", ") + x.name;
    return std::pair{e, all};
  });
  if (!found)
    throw failure(::fmt::format("{}: no structure named '{}' ({})", db.path(), name,
                                names.empty() ? "the store holds none" : "it holds: " + names));
  return *found;
}

std::uint64_t entry_count(store& db, const layout& l) {
  switch (l.kind) {
    case kind::bytes_hash_map:
      return bytes_map::open(db, l.name).size();
    case kind::bytes_tree_map:
      return bytes_tree::open(db, l.name).size();
    case kind::hash_map:
      return db.read([&](const read_view& v) { return detail::map_size(v, l.root, map_shape_of(l)); });
    default:
      return db.read([&](const read_view& v) { return detail::tree_size(v, l.root); });
  }
}

void scan(store& db, const layout& l, const visitor& f) {
  scan_ctx c{&l, &f, {}};
  switch (l.kind) {
    case kind::bytes_hash_map:
      bytes_map::open(db, l.name).for_each([&](std::string_view k, std::string_view v) { return f(k, v); });
      break;
    case kind::bytes_tree_map:
      bytes_tree::open(db, l.name).for_each([&](std::string_view k, std::string_view v) { return f(k, v); });
      break;
    case kind::hash_map:
      detail::map_for_each(db, l.root, map_shape_of(l), &visit_map, &c);
      break;
    default:
      detail::tree_scan(db, l.root, detail::tree_range{}, &visit_tree, &c);
      break;
  }
}

void scan(store& db, write_txn& tx, const layout& l, const visitor& f) {
  scan_ctx c{&l, &f, {}};
  switch (l.kind) {
    case kind::bytes_hash_map:
      bytes_map::open(db, tx, l.name).for_each(tx, [&](std::string_view k, std::string_view v) { return f(k, v); });
      break;
    case kind::bytes_tree_map:
      bytes_tree::open(db, tx, l.name).for_each(tx, [&](std::string_view k, std::string_view v) { return f(k, v); });
      break;
    case kind::hash_map:
      detail::map_for_each(tx, l.root, map_shape_of(l), &visit_map, &c);
      break;
    default:
      detail::tree_scan(tx, l.root, detail::tree_range{}, &visit_tree, &c);
      break;
  }
}

writer::writer(store& db, write_txn& tx, const layout& l) : db_(&db), tx_(&tx), l_(l) {
  switch (l.kind) {
    case kind::bytes_hash_map:
      bmap_.emplace(bytes_map::open(db, tx, l.name));
      break;
    case kind::bytes_tree_map:
      btree_.emplace(bytes_tree::open(db, tx, l.name));
      break;
    case kind::hash_map:
      root_ = detail::map_open(tx, l.name, map_shape_of(l), l.key, l.value);
      break;
    default:
      root_ = detail::tree_open(tx, l.name, kind::tree_map, tree_shape_of(l), l.key, l.value);
      break;
  }
}

std::string writer::tree_key(std::string_view key) const {
  return is_int(l_.key) ? encode_int_key(l_.key, key) : std::string(key);
}

bool writer::put(std::string_view key, std::string_view value) {
  if (!l_.bytes() && (key.size() != l_.key.size || value.size() != l_.value.size))
    throw failure(::fmt::format("'{}': a field has the wrong size", l_.name));
  switch (l_.kind) {
    case kind::bytes_hash_map:
      return bmap_->put(*tx_, key, value);
    case kind::bytes_tree_map:
      return btree_->put(*tx_, key, value);
    case kind::hash_map:
      return detail::map_put(*tx_, root_, map_shape_of(l_), key.data(), value.data(), 1);
    default:
      return detail::tree_put(*tx_, root_, tree_key(key), value, detail::put_mode::assign);
  }
}

void writer::append(std::string_view key, std::string_view value) {
  switch (l_.kind) {
    case kind::bytes_tree_map:
      btree_->append(*tx_, key, value);
      break;
    case kind::tree_map:
      detail::tree_put(*tx_, root_, tree_key(key), value, detail::put_mode::append);
      break;
    default:
      put(key, value);
      break;
  }
}

void writer::reserve(std::uint64_t n) {
  switch (l_.kind) {
    case kind::bytes_hash_map:
      bmap_->reserve(*tx_, n);
      break;
    case kind::hash_map:
      detail::map_reserve(*tx_, root_, map_shape_of(l_), n);
      break;
    default:
      break;
  }
}

}  // namespace keel::cli
