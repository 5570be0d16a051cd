// B+tree reads: open by name, point lookups, size and ordered scans, over a
// read_view (lock-free readers) or the write transaction.
#include <optional>
#include <vector>

#include "keel/store.h"
#include "tree/node.h"

namespace keel::tree {

void corrupt(const std::string& path, std::uint64_t off, const std::string& what) {
  throw error(errc::corrupt, path, "tree node at offset " + std::to_string(off) + ": " + what);
}

namespace {

template <class R>
std::uint64_t find_root(R& r, std::string_view name, kind k, detail::tree_shape s, type_desc key, type_desc value) {
  const auto e = r.find(name);
  if (!e) throw error(errc::invalid_argument, r.path(), "no " + std::string(kind_name(k)) + " named '" + std::string(name) + "'");
  check_type(*e, r.path(), k, key, value);
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
  // A node deep in the tree is rarely in cache, and a binary search through
  // its slots makes about a dozen dependent misses: ask for every line of
  // it at once, before the header is read.
  auto fetch = [&](std::uint64_t at, std::uint32_t level) {
    if (at % kPage == 0 && at >= 4 * kPage && r.limit() >= kPage && at <= r.limit() - kPage) {
      const std::byte* p = page_of(r, at);
      for (std::uint32_t l = 0; l < kPage; l += 64) __builtin_prefetch(p + l);
    }
    return load(r, at, level, g);
  };
  std::uint64_t off = b.node;
  for (std::uint32_t level = b.height - 1; level > 0; --level) {
    const node n = load(r, off, level, g);  // branches mostly stay in cache
    off = n.child(n.route(key));
  }
  const node leaf = fetch(off, 0);
  const std::uint32_t i = leaf.search(key, false);
  if (i == leaf.count) return false;
  const cell c = leaf.at(i);
  if (compare(key, c.key, c.klen) != 0) return false;
  copy_value(r, c, g, out);
  return true;
}

}  // namespace

// One ordered pass over [lo, hi): calls run(leaf, from, to) for each run
// of cells in a leaf: ascending cells [from, to), or in reverse descending
// cells from - 1 down to to. run returns false to stop. Keys must increase
// (decrease) from one run to the next, and at most `nodes` leaves are
// visited, which bounds the walk on a corrupt leaf chain. With `at`, the
// walk starts at that leaf and position instead of descending from the
// root and searching the bound: a chunked scan resuming where it stopped,
// when no commit has run since (the leaf is then the same node, unchanged).
struct leaf_pos {
  std::uint64_t leaf;
  std::uint32_t index;  // forward: next cell; reverse: one past the next cell
};
template <class R, class Run>
void walk(R& r, std::uint64_t root, const detail::tree_range& rg, Run&& run, const leaf_pos* at = nullptr) {
  const root_block b = load_root(r, root);
  if (b.height == 0) return;
  const geometry g(b.key_size, b.value_size);
  const std::string& path = path_of(r);
  std::uint64_t off = b.node;
  if (at) {
    off = at->leaf;
  } else {
    for (std::uint32_t level = b.height - 1; level > 0; --level) {
      const node n = load(r, off, level, g);
      std::uint32_t i;
      if (!rg.reverse)
        i = rg.lo.set ? n.route(rg.lo.key) : 0;
      else
        i = rg.hi.set ? n.search(rg.hi.key, false) : n.count;  // separators < hi
      off = n.child(i);
    }
  }
  node leaf = load(r, off, 0, g);
  if (at && at->index > leaf.count) corrupt(path, off, "scan resume position past the leaf's cells");
  std::uint64_t budget = b.nodes;
  const std::byte* edge = nullptr;  // the key that ended the previous run
  std::uint32_t edge_len = 0;
  auto cross = [&](const cell& c) {
    if (!edge) return;
    const int o = compare(c.key, c.klen, edge, edge_len);
    if (rg.reverse ? o >= 0 : o <= 0) corrupt(path, leaf.off, "keys out of order along the leaf chain");
  };
  auto move = [&](std::uint64_t to) {
    if (budget-- == 0) corrupt(path, to, "leaf chain longer than the tree's node count");
    leaf = load(r, to, 0, g);
    if (leaf.count == 0) corrupt(path, to, "empty leaf in the chain");
  };
  if (!rg.reverse) {
    std::uint32_t i = at ? at->index : rg.lo.set ? leaf.search(rg.lo.key, rg.lo_exclusive) : 0;
    for (;;) {
      // The bound usually lies beyond this leaf: one compare with its last
      // key instead of a binary search.
      std::uint32_t end = leaf.count;
      if (rg.hi.set && leaf.count > 0) {
        const cell lc = leaf.at(leaf.count - 1);
        if (compare(rg.hi.key, lc.key, lc.klen) <= 0) end = leaf.search(rg.hi.key, false);
      }
      if (i < end) {
        const cell first = leaf.at(i), last = leaf.at(end - 1);
        cross(first);
        if (!run(leaf, i, end)) return;
        edge = last.key;
        edge_len = last.klen;
      }
      if (end < leaf.count || leaf.next() == 0) return;
      move(leaf.next());
      i = 0;
    }
  } else {
    std::uint32_t i = at ? at->index : rg.hi.set ? leaf.search(rg.hi.key, false) : leaf.count;
    for (;;) {
      std::uint32_t stop = 0;
      if (rg.lo.set && leaf.count > 0) {
        const cell fc = leaf.at(0);
        if (compare(rg.lo.key, fc.key, fc.klen) >= 0) stop = leaf.search(rg.lo.key, rg.lo_exclusive);
      }
      if (stop < i) {
        const cell first = leaf.at(i - 1), last = leaf.at(stop);
        cross(first);
        if (!run(leaf, i, stop)) return;
        edge = last.key;
        edge_len = last.klen;
      }
      if (stop > 0 || leaf.prev() == 0) return;
      move(leaf.prev());
      i = leaf.count;
    }
  }
}

// Calls each(leaf, cell) over a run in its direction; false stops.
template <class Each>
bool each_in_run(const node& leaf, std::uint32_t from, std::uint32_t to, bool reverse, Each&& each) {
  if (!reverse) {
    for (std::uint32_t j = from; j < to; ++j)
      if (!each(leaf.at(j))) return false;
  } else {
    for (std::uint32_t j = from; j-- > to;)
      if (!each(leaf.at(j))) return false;
  }
  return true;
}

template <class R>
void scan_impl(R& r, std::uint64_t root, const detail::tree_range& rg, detail::tree_visit f, void* ctx) {
  std::string value;
  walk(r, root, rg, [&](const node& leaf, std::uint32_t from, std::uint32_t to) {
    return each_in_run(leaf, from, to, rg.reverse, [&](const cell& c) {
      std::string_view v;
      if (c.blob == 0) {
        v = {reinterpret_cast<const char*>(c.value), static_cast<std::size_t>(c.vlen)};
      } else {
        copy_value(r, c, *leaf.g, {nullptr, &value});
        v = value;
      }
      return f(ctx, {reinterpret_cast<const char*>(c.key), c.klen}, v);
    });
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
// The first chunk is small and each next one twice as large, so a scan
// that stops early (first, lower_bound, the last N) copies little.
static constexpr std::size_t kFirstChunk = 32, kChunkEntries = 1024, kChunkBytes = 1 << 20;

void tree_scan(const store& db, std::uint64_t root, const tree_range& r, tree_visit f, void* ctx,
               tree_visit_run run) {
  struct item {
    std::size_t k, kn, v, vn;
  };
  std::vector<item> items;
  std::string buf, resume;
  tree_range cur = r;
  std::uint32_t ks = 0, vs = 0;  // fixed shape: records of ks + vs bytes, no items
  std::size_t n = 0, limit = kFirstChunk;
  // Where the last chunk stopped, and the store's commit token it was read
  // under: when no commit has run since, the next chunk starts there
  // instead of descending again (a range scan of a few hundred entries is
  // then one descent, as with a cursor).
  // An attempt that a commit overlapped is discarded, and so is where it
  // stopped: only a completed chunk's position and token carry over.
  std::optional<leaf_pos> stop, attempt_stop;
  std::uint64_t stop_token = 1, attempt_token = 1;
  for (;;) {
    const bool done = db.read([&](const read_view& v) {
      items.clear();
      n = 0;
      bool more = false;
      attempt_token = db.optimistic_begin();  // this section's state, when it validates
      const bool resume = stop && (attempt_token & 1) == 0 && attempt_token == stop_token;
      attempt_stop.reset();
      walk(v, root, cur, [&](const node& leaf, std::uint32_t from, std::uint32_t to) {
        const geometry& g = *leaf.g;
        if (!g.var()) {  // fixed shape: copy whole cells (key then value) into records
          ks = g.ks;
          vs = g.vs;
          const std::size_t rec = ks + vs;
          if (buf.size() < limit * rec) buf.resize(limit * rec);
          const std::uint32_t m = cur.reverse ? from - to : to - from;
          const std::uint32_t take = static_cast<std::uint32_t>(std::min<std::size_t>(m, limit - n));
          char* out = buf.data() + n * rec;
          for (std::uint32_t j = 0; j < take; ++j, out += rec)
            std::memcpy(out, leaf.fixed_leaf_cell(cur.reverse ? from - 1 - j : from + j), rec);
          n += take;
          if (take < m) {
            more = true;
            attempt_stop = leaf_pos{leaf.off, cur.reverse ? from - take : from + take};
          }
          return take == m;
        }
        return each_in_run(leaf, from, to, cur.reverse, [&](const cell& c) {
          if (n > 0 && (n >= limit || buf.size() >= kChunkBytes)) {
            more = true;
            return false;
          }
          if (n == 0) buf.clear();
          ++n;
          ks = vs = 0;
          item it{buf.size(), c.klen, 0, 0};
          buf.append(reinterpret_cast<const char*>(c.key), c.klen);
          it.v = buf.size();
          if (c.blob == 0) {
            buf.append(reinterpret_cast<const char*>(c.value), c.vlen);
          } else {
            if (c.vlen > kTreeMaxValue) tree::corrupt(v.path(), c.blob, "value length over the limit");
            buf.append(reinterpret_cast<const char*>(v.bytes(c.blob, c.vlen)), c.vlen);
          }
          it.vn = c.vlen;
          items.push_back(it);
          return true;
        });
      }, resume ? &*stop : nullptr);
      return !more;
    });
    stop = attempt_stop;
    stop_token = attempt_token;
    if (n == 0) return;
    std::string_view last;
    if (ks != 0) {
      const std::size_t rec = ks + vs;
      if (run != nullptr) {
        if (!run(ctx, buf.data(), n, ks, vs)) return;
      } else {
        for (std::size_t i = 0; i < n; ++i)
          if (!f(ctx, {buf.data() + i * rec, ks}, {buf.data() + i * rec + ks, vs})) return;
      }
      last = {buf.data() + (n - 1) * rec, ks};
    } else {
      for (const item& it : items)
        if (!f(ctx, {buf.data() + it.k, it.kn}, {buf.data() + it.v, it.vn})) return;
      last = {buf.data() + items.back().k, items.back().kn};
    }
    if (done) return;
    limit = std::min(limit * 2, kChunkEntries);
    resume.assign(last);
    if (!cur.reverse) {
      cur.lo = {resume, true};
      cur.lo_exclusive = true;
    } else {
      cur.hi = {resume, true};
    }
  }
}

}  // namespace keel::detail
