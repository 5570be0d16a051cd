// B+tree reads: open by name, point lookups, size and ordered scans, over a
// read_view (lock-free readers) or the write transaction.
#include <vector>

#include "keel/store.h"
#include "tree/node.h"

namespace keel::tree {

void corrupt(const std::string& path, std::uint64_t off, const std::string& what) {
  throw error(errc::corrupt, path, "tree node at offset " + std::to_string(off) + ": " + what);
}

namespace {

const char* kind_name(kind k) { return k == kind::tree_map ? "tree_map" : "bytes_tree"; }

template <class R>
std::uint64_t find_root(R& r, std::string_view name, kind k, detail::tree_shape s, type_desc key, type_desc value) {
  const auto e = r.find(name);
  if (!e) throw error(errc::invalid_argument, r.path(), "no " + std::string(kind_name(k)) + " named '" + std::string(name) + "'");
  if (e->kind != k || !(e->key == key) || !(e->value == value))
    throw error(errc::type_mismatch, r.path(),
                "'" + std::string(name) + "' is not a " + kind_name(k) + "<" + key.describe() + ", " +
                    value.describe() + ">");
  const root_block b = load_root(r, e->root);
  if (b.key_size != s.key_size || b.value_size != s.value_size)
    throw error(errc::type_mismatch, r.path(), "'" + std::string(name) + "': the tree's stored key/value sizes differ");
  return e->root;
}

template <class R>
bool get_impl(R& r, std::uint64_t root, std::string_view key, detail::tree_out out) {
  const root_block b = load_root(r, root);
  if (b.height == 0) return false;
  const geometry g(b.key_size, b.value_size);
  if (!g.var() && key.size() != g.ks)
    throw error(errc::invalid_argument, path_of(r), "key of " + std::to_string(key.size()) + " bytes for a tree of " +
                                                        std::to_string(g.ks) + "-byte keys");
  std::uint64_t off = b.node;
  for (std::uint32_t level = b.height - 1; level > 0; --level) {
    const node n = load(r, off, level, g);
    off = n.child(n.route(key));
  }
  const node leaf = load(r, off, 0, g);
  const std::uint32_t i = leaf.search(key, false);
  if (i == leaf.count) return false;
  const cell c = leaf.at(i);
  if (compare(key, c.key, c.klen) != 0) return false;
  copy_value(r, c, g, out);
  return true;
}

}  // namespace

// One ordered pass over [lo, hi) calling emit(node, cell); emit returns
// false to stop. Keys must strictly increase (decrease in reverse) along
// the walk, which bounds it on a corrupt leaf chain.
template <class R, class Emit>
void walk(R& r, std::uint64_t root, const detail::tree_range& rg, Emit&& emit) {
  const root_block b = load_root(r, root);
  if (b.height == 0) return;
  const geometry g(b.key_size, b.value_size);
  const std::string& path = path_of(r);
  std::uint64_t off = b.node;
  for (std::uint32_t level = b.height - 1; level > 0; --level) {
    const node n = load(r, off, level, g);
    std::uint32_t i;
    if (!rg.reverse)
      i = rg.lo.set ? n.route(rg.lo.key) : 0;
    else
      i = rg.hi.set ? n.search(rg.hi.key, false) : n.count;  // separators < hi
    off = n.child(i);
  }
  node leaf = load(r, off, 0, g);
  const std::byte* last = nullptr;
  std::uint32_t last_len = 0;
  auto step_ok = [&](const cell& c) {
    if (last) {
      const int o = compare(c.key, c.klen, last, last_len);
      if (rg.reverse ? o >= 0 : o <= 0) corrupt(path, leaf.off, "keys out of order along the leaf chain");
    }
    last = c.key;
    last_len = c.klen;
  };
  if (!rg.reverse) {
    std::uint32_t i = rg.lo.set ? leaf.search(rg.lo.key, rg.lo_exclusive) : 0;
    for (;;) {
      while (i == leaf.count) {
        const std::uint64_t nx = leaf.next();
        if (nx == 0) return;
        leaf = load(r, nx, 0, g);
        if (leaf.count == 0) corrupt(path, nx, "empty leaf in the chain");
        i = 0;
      }
      const cell c = leaf.at(i);
      if (rg.hi.set && compare(rg.hi.key, c.key, c.klen) <= 0) return;
      step_ok(c);
      if (!emit(leaf, c)) return;
      ++i;
    }
  } else {
    std::uint32_t i = rg.hi.set ? leaf.search(rg.hi.key, false) : leaf.count;
    for (;;) {
      while (i == 0) {
        const std::uint64_t pv = leaf.prev();
        if (pv == 0) return;
        leaf = load(r, pv, 0, g);
        if (leaf.count == 0) corrupt(path, pv, "empty leaf in the chain");
        i = leaf.count;
      }
      const cell c = leaf.at(i - 1);
      if (rg.lo.set) {
        const int o = compare(rg.lo.key, c.key, c.klen);
        if (o > 0 || (o == 0 && rg.lo_exclusive)) return;
      }
      step_ok(c);
      if (!emit(leaf, c)) return;
      --i;
    }
  }
}

template <class R>
void scan_impl(R& r, std::uint64_t root, const detail::tree_range& rg, detail::tree_visit f, void* ctx) {
  std::string value;
  walk(r, root, rg, [&](const node& n, const cell& c) {
    std::string_view v;
    if (c.blob == 0) {
      v = {reinterpret_cast<const char*>(c.value), static_cast<std::size_t>(c.vlen)};
    } else {
      copy_value(r, c, *n.g, {nullptr, &value});
      v = value;
    }
    return f(ctx, {reinterpret_cast<const char*>(c.key), c.klen}, v);
  });
}

}  // namespace keel::tree

namespace keel::detail {

using namespace keel::tree;

std::uint64_t tree_find(const read_view& v, std::string_view name, kind k, tree_shape s, type_desc key,
                        type_desc value) {
  return find_root(v, name, k, s, key, value);
}
std::uint64_t tree_find(write_txn& tx, std::string_view name, kind k, tree_shape s, type_desc key, type_desc value) {
  return find_root(tx, name, k, s, key, value);
}

std::uint64_t tree_open(write_txn& tx, std::string_view name, kind k, tree_shape s, type_desc key, type_desc value) {
  if (s.variable() ? s.value_size != 0
                   : (s.key_size > kTreeMaxKey || s.key_size + s.value_size > kTreeMaxFixedEntry))
    throw error(errc::invalid_argument, tx.path(), "tree key/value sizes over the limits");
  const catalog_entry e = tx.open_root(name, k, key, value);
  if (e.root != 0) return find_root(tx, name, k, s, key, value);
  root_block b{};
  std::memcpy(b.magic, kRootMagic, 8);
  b.key_size = s.key_size;
  b.value_size = s.value_size;
  const std::uint64_t root = tx.alloc(sizeof b);
  tx.write(root, &b, sizeof b);
  tx.set_root(name, root, 0);
  return root;
}

bool tree_get(const read_view& v, std::uint64_t root, std::string_view key, tree_out out) {
  return get_impl(v, root, key, out);
}
bool tree_get(write_txn& tx, std::uint64_t root, std::string_view key, tree_out out) {
  return get_impl(tx, root, key, out);
}
std::uint64_t tree_size(const read_view& v, std::uint64_t root) { return load_root(v, root).size; }
std::uint64_t tree_size(write_txn& tx, std::uint64_t root) { return load_root(tx, root).size; }

void tree_scan(const read_view& v, std::uint64_t root, const tree_range& r, tree_visit f, void* ctx) {
  scan_impl(v, root, r, f, ctx);
}
void tree_scan(write_txn& tx, std::uint64_t root, const tree_range& r, tree_visit f, void* ctx) {
  scan_impl(tx, root, r, f, ctx);
}

// Chunks of at most this many entries or bytes, each one consistent read.
static constexpr std::size_t kChunkEntries = 512, kChunkBytes = 1 << 20;

void tree_scan(const store& db, std::uint64_t root, const tree_range& r, tree_visit f, void* ctx) {
  struct item {
    std::size_t k, kn, v, vn;
  };
  std::vector<item> items;
  std::string buf, resume;
  tree_range cur = r;
  for (;;) {
    const bool done = db.read([&](const read_view& v) {
      items.clear();
      buf.clear();
      bool more = false;
      walk(v, root, cur, [&](const node& n, const cell& c) {
        if (!items.empty() && (items.size() >= kChunkEntries || buf.size() >= kChunkBytes)) {
          more = true;
          return false;
        }
        item it{buf.size(), c.klen, 0, 0};
        buf.append(reinterpret_cast<const char*>(c.key), c.klen);
        it.v = buf.size();
        if (c.blob == 0) {
          buf.append(reinterpret_cast<const char*>(c.value), c.vlen);
        } else {
          if (c.vlen > kTreeMaxValue) tree::corrupt(v.path(), c.blob, "value length over the limit");
          buf.append(reinterpret_cast<const char*>(v.bytes(c.blob, c.vlen)), c.vlen);
        }
        (void)n;
        it.vn = c.vlen;
        items.push_back(it);
        return true;
      });
      return !more;
    });
    for (const item& it : items)
      if (!f(ctx, {buf.data() + it.k, it.kn}, {buf.data() + it.v, it.vn})) return;
    if (done || items.empty()) return;
    const item& lastit = items.back();
    resume.assign(buf.data() + lastit.k, lastit.kn);
    if (!cur.reverse) {
      cur.lo = {resume, true};
      cur.lo_exclusive = true;
    } else {
      cur.hi = {resume, true};
    }
  }
}

}  // namespace keel::detail
