// B+tree writes inside the write transaction: insert with splits (dense on
// the append path), erase with merges and redistribution, clear.
//
// Nodes are changed in the transaction's private page copies; only the
// bytes that change are marked (and so logged): the header line, the moved
// part of the slot array and the new cell, or a whole node when it is
// rebuilt by a split, merge or compaction.
#include <array>
#include <optional>
#include <vector>

#include "tree/node.h"

namespace keel::tree {
namespace {

struct span {
  const std::byte* p;
  std::uint32_t size;
};

// A node the transaction may change: its private copy, fully readable.
struct wnode {
  std::uint64_t off;
  std::byte* p;
};

wnode writable(write_txn& tx, std::uint64_t off) {
  check_node_offset(tx, off);
  tx.mut_bytes(off, kHeader);  // makes the private copy; the header is about to change
  return {off, const_cast<std::byte*>(tx.bytes(off, kPage))};
}

void dirty(write_txn& tx, const wnode& w, std::uint32_t lo, std::uint32_t hi) {
  if (hi > lo) tx.mut_bytes(w.off + lo, hi - lo);
}

std::string_view key_of(const geometry& g, bool leaf, span c) {
  const char* p = reinterpret_cast<const char*>(c.p);
  if (!g.var()) return {p, g.ks};
  return {p + (leaf ? 8 : 2), ld<std::uint16_t>(c.p)};
}
std::uint64_t child_of(const geometry& g, span c) {
  return ld<std::uint64_t>(c.p + (g.var() ? 2 + ld<std::uint16_t>(c.p) : g.ks));
}

// Writes a whole node image built from cells [from, to): header, slots, heap.
void write_node(write_txn& tx, std::uint64_t off, std::uint32_t level, const std::vector<span>& cells,
                std::size_t from, std::size_t to, std::uint64_t prev, std::uint64_t next, std::uint64_t child0) {
  alignas(16) std::array<std::byte, kPage> img{};
  st<std::uint32_t>(img.data(), kNodeMagic);
  st<std::uint8_t>(img.data() + kOffLevel, static_cast<std::uint8_t>(level));
  std::uint32_t heap = kPage;
  const auto count = static_cast<std::uint32_t>(to - from);
  if (kHeader + 2 * count > kPage) throw error(errc::corrupt, tx.path(), "tree: node image overflow");
  for (std::size_t j = from; j < to; ++j) {
    if (cells[j].size + 2 * count + kHeader > heap) throw error(errc::corrupt, tx.path(), "tree: node image overflow");
    heap -= cells[j].size;
    std::memcpy(img.data() + heap, cells[j].p, cells[j].size);
    st<std::uint16_t>(img.data() + kHeader + 2 * (j - from), static_cast<std::uint16_t>(heap));
  }
  st<std::uint16_t>(img.data() + kOffCount, static_cast<std::uint16_t>(count));
  st<std::uint16_t>(img.data() + kOffHeap, static_cast<std::uint16_t>(heap));
  st<std::uint64_t>(img.data() + kOffPrev, prev);
  st<std::uint64_t>(img.data() + kOffNext, next);
  st<std::uint64_t>(img.data() + kOffChild0, child0);
  tx.write(off, img.data(), kHeader + 2 * count);
  if (heap < kPage) tx.write(off + heap, img.data() + heap, kPage - heap);
}

std::uint32_t bytes_of(const std::vector<span>& cells, std::size_t from, std::size_t to) {
  std::uint32_t s = 0;
  for (std::size_t j = from; j < to; ++j) s += cells[j].size + 2;
  return s;
}

// Split point for `cells` into two nodes: leaves keep cells [0, k) and
// [k, n); branches [0, k) and [k+1, n), cell k going up. Both sides fit and
// their sizes differ by at most one cell.
std::size_t balanced_split(const std::vector<span>& cells, bool leaf, const std::string& path) {
  const std::size_t n = cells.size();
  std::size_t best = 0;
  std::uint32_t best_diff = UINT32_MAX;
  std::uint32_t left = 0;
  const std::uint32_t total = bytes_of(cells, 0, n);
  for (std::size_t k = 1; k + (leaf ? 0 : 1) < n; ++k) {
    left += cells[k - 1].size + 2;
    const std::uint32_t right = total - left - (leaf ? 0 : cells[k].size + 2);
    if (left > kUsable || right > kUsable) continue;
    const std::uint32_t diff = left > right ? left - right : right - left;
    if (diff < best_diff) {
      best_diff = diff;
      best = k;
    }
  }
  if (best == 0) throw error(errc::corrupt, path, "tree: no split point fits (corrupt cell sizes)");
  return best;
}

struct step {
  std::uint64_t off;
  std::uint32_t idx;  // branch: child index taken; leaf: cell position
};

// A leaf cell under construction (at most kMaxLeafCell bytes).
struct cell_buf {
  std::array<std::byte, kMaxLeafCell> b;
  std::uint32_t n = 0;
  std::byte* data() { return b.data(); }
  const std::byte* data() const { return b.data(); }
  std::uint32_t size() const { return n; }
};

// Builds a leaf cell for key/value; an out-of-line value gets its blob now.
cell_buf leaf_cell(write_txn& tx, const geometry& g, std::string_view key, std::string_view value) {
  bool in = true;
  cell_buf c;
  c.n = g.leaf_cell(key.size(), value.size(), &in);
  if (!g.var()) {
    std::memcpy(c.data(), key.data(), key.size());
    std::memcpy(c.data() + key.size(), value.data(), value.size());
    return c;
  }
  st<std::uint16_t>(c.data(), static_cast<std::uint16_t>(key.size()));
  st<std::uint8_t>(c.data() + 2, in ? 0 : kFlagBlob);
  st<std::uint32_t>(c.data() + 4, static_cast<std::uint32_t>(value.size()));
  std::memcpy(c.data() + 8, key.data(), key.size());
  if (in) {
    std::memcpy(c.data() + 8 + key.size(), value.data(), value.size());
  } else {
    const std::uint64_t blob = tx.alloc(value.size());
    tx.write(blob, value.data(), value.size());
    st<std::uint64_t>(c.data() + 8 + key.size(), blob);
  }
  return c;
}

void free_blob(write_txn& tx, const cell& c) {
  if (c.blob != 0) tx.free(c.blob, c.vlen);
}

// Undoes leaf_cell's blob when the insert cannot go on.
void free_new_blob(write_txn& tx, const geometry& g, const cell_buf& c, std::size_t klen,
                   std::size_t vlen) {
  if (g.var() && (ld<std::uint8_t>(c.data() + 2) & kFlagBlob)) tx.free(ld<std::uint64_t>(c.data() + 8 + klen), vlen);
}

// The nodes from the root to a leaf, without a heap allocation.
struct path_t {
  step s[kMaxHeight + 1];
  std::size_t n = 0;
  std::size_t size() const { return n; }
  void clear() { n = 0; }
  void push_back(step x) { s[n++] = x; }
  step& back() { return s[n - 1]; }
  step& operator[](std::size_t i) { return s[i]; }
};

// One write operation on a tree: its root block, path and spare pages.
struct op {
  write_txn& tx;
  std::uint64_t root_off;
  root_block b;
  geometry g;
  path_t path;  // path[0] the root node, path.back() the leaf
  std::vector<std::uint64_t> spare;  // pages allocated up front, so a split cannot fail half way

  op(write_txn& t, std::uint64_t root) : tx(t), root_off(root), b(load_root(t, root)), g(b.key_size, b.value_size) {}

  void save_root() { tx.write(root_off, &b, sizeof b); }
  node load_at(std::size_t d) {
    return load(tx, path[d].off, static_cast<std::uint32_t>(path.size() - 1 - d), g);
  }
  std::uint64_t new_page() {
    std::uint64_t off;
    if (!spare.empty()) {
      off = spare.back();
      spare.pop_back();
    } else {
      off = tx.alloc(kPage);
    }
    ++b.nodes;
    return off;
  }
  void free_page(std::uint64_t off) {
    tx.free(off, kPage);
    --b.nodes;
  }
  void reserve_pages(std::size_t n) {
    while (spare.size() < n) spare.push_back(tx.alloc(kPage));
  }
  void release_spare() {
    for (std::uint64_t off : spare) tx.free(off, kPage);
    spare.clear();
  }

  // A key above every key goes to the end of the last leaf without a
  // descent when it fits there. Returns false when it does not apply.
  bool fast_append(std::string_view key, std::string_view value, bool must) {
    if (b.last_leaf == 0) return false;
    if (!g.var()) return fast_append_fixed(key, value, must);
    const node last = load(tx, b.last_leaf, 0, g);
    if (last.count == 0) return false;
    const cell lc = last.at(last.count - 1);
    if (compare(key, lc.key, lc.klen) <= 0) {
      if (must) throw error(errc::invalid_argument, tx.path(), "tree append: key is not above the largest key");
      return false;
    }
    if (last.free_total() < g.leaf_cell(key.size(), value.size()) + 2) return false;
    const cell_buf c = leaf_cell(tx, g, key, value);
    wnode w = writable(tx, last.off);
    insert_cell(w, parse(w.p, w.off, 0, g, tx.path()), last.count, {c.data(), c.size()});
    ++b.size;
    save_root();
    return true;
  }

  // fast_append for fixed-size cells, with one private-copy lookup for the
  // leaf (the whole page, made writable once) and the cell written in place:
  // the time-series append path. Leaves compaction, blobs and splits to the
  // general path (returns false when the cell does not fit the leaf's gap).
  bool fast_append_fixed(std::string_view key, std::string_view value, bool must) {
    if (key.size() != g.ks || value.size() != g.vs) return false;  // the general path reports it
    const std::uint64_t off = b.last_leaf;
    check_node_offset(tx, off);
    std::byte* p = tx.mut_bytes(off, kPage);
    const node n = parse(p, off, 0, g, tx.path());
    if (n.count == 0) return false;
    const cell lc = n.at(n.count - 1);
    if (compare(key, lc.key, lc.klen) <= 0) {
      if (must) throw error(errc::invalid_argument, tx.path(), "tree append: key is not above the largest key");
      return false;
    }
    const std::uint32_t size = g.ks + g.vs;
    if (n.heap < kHeader + 2 * (n.count + 1) + size) return false;  // no gap: compaction or a split
    const std::uint32_t heap = n.heap - size;
    std::memcpy(p + heap, key.data(), g.ks);
    std::memcpy(p + heap + g.ks, value.data(), g.vs);
    st<std::uint16_t>(p + kHeader + 2 * n.count, static_cast<std::uint16_t>(heap));
    st<std::uint16_t>(p + kOffCount, static_cast<std::uint16_t>(n.count + 1));
    st<std::uint16_t>(p + kOffHeap, static_cast<std::uint16_t>(heap));
    ++b.size;
    save_root();
    return true;
  }

  // Descends to the leaf for key (rightmost when append), recording the path.
  node descend(std::string_view key, bool rightmost) {
    path.clear();
    std::uint64_t off = b.node;
    for (std::uint32_t level = b.height - 1; level > 0; --level) {
      const node n = load(tx, off, level, g);
      const std::uint32_t i = rightmost ? n.count : n.route(key);
      path.push_back({off, i});
      off = n.child(i);
    }
    const node leaf = load(tx, off, 0, g);
    path.push_back({off, 0});
    return leaf;
  }
  bool rightmost(std::size_t d) {
    for (std::size_t a = 0; a < d; ++a)
      if (path[a].idx != load_at(a).count) return false;
    return true;
  }

  void insert_cell(wnode& w, const node& n, std::uint32_t i, span c) {
    std::uint32_t count = n.count, heap = n.heap;
    if (heap < kHeader + 2 * count + c.size + 2) {  // gap too small: compact first
      std::vector<span> cells;
      std::vector<std::byte> copy(w.p, w.p + kPage);
      const node cn = parse(copy.data(), n.off, n.level, g, tx.path());
      for (std::uint32_t j = 0; j < count; ++j) {
        const cell x = cn.at(j);
        cells.push_back({copy.data() + cn.slot(j), x.size});
      }
      write_node(tx, w.off, n.level, cells, 0, count, n.prev(), n.next(), n.child0());
      heap = ld<std::uint16_t>(w.p + kOffHeap);
    }
    heap -= c.size;
    std::memcpy(w.p + heap, c.p, c.size);
    std::byte* slots = w.p + kHeader;
    std::memmove(slots + 2 * (i + 1), slots + 2 * i, 2 * (count - i));
    st<std::uint16_t>(slots + 2 * i, static_cast<std::uint16_t>(heap));
    ++count;
    st<std::uint16_t>(w.p + kOffCount, static_cast<std::uint16_t>(count));
    st<std::uint16_t>(w.p + kOffHeap, static_cast<std::uint16_t>(heap));
    dirty(tx, w, 0, kHeader);
    dirty(tx, w, kHeader + 2 * i, kHeader + 2 * count);
    dirty(tx, w, heap, heap + c.size);
  }

  // insert_cell's common case without a private copy of the whole page:
  // when the gap between the slots and the heap takes the cell, only the
  // lines of the header, the shifted slots and the new cell are copied and
  // written (a random insert touches a handful of a leaf's 64 lines).
  // Returns false, changing nothing, when the gap is too small.
  bool insert_in_gap(std::uint64_t off, std::uint32_t level, std::uint32_t i, span c) {
    const node n = load(tx, off, level, g);
    if (i > n.count || n.heap < kHeader + 2 * (n.count + 1) + c.size) return false;
    const std::uint32_t heap = n.heap - c.size, count = n.count;
    std::memcpy(tx.mut_bytes(off + heap, c.size), c.p, c.size);
    std::byte* slots = tx.mut_bytes(off + kHeader + 2 * i, 2 * (count + 1 - i));
    std::memmove(slots + 2, slots, 2 * (count - i));
    st<std::uint16_t>(slots, static_cast<std::uint16_t>(heap));
    std::byte* h = tx.mut_bytes(off, kHeader);
    st<std::uint16_t>(h + kOffCount, static_cast<std::uint16_t>(count + 1));
    st<std::uint16_t>(h + kOffHeap, static_cast<std::uint16_t>(heap));
    return true;
  }

  void remove_cell(wnode& w, const node& n, std::uint32_t i) {
    const cell c = n.at(i);
    const std::uint32_t o = n.slot(i);
    std::uint32_t heap = n.heap, garbage = n.garbage;
    if (o == heap)
      heap += c.size;
    else
      garbage += c.size;
    std::byte* slots = w.p + kHeader;
    std::memmove(slots + 2 * i, slots + 2 * (i + 1), 2 * (n.count - i - 1));
    st<std::uint16_t>(w.p + kOffCount, static_cast<std::uint16_t>(n.count - 1));
    st<std::uint16_t>(w.p + kOffHeap, static_cast<std::uint16_t>(heap));
    st<std::uint16_t>(w.p + kOffGarbage, static_cast<std::uint16_t>(garbage));
    dirty(tx, w, 0, kHeader);
    dirty(tx, w, kHeader + 2 * i, kHeader + 2 * n.count);
  }

  // The cells of node n as spans into `copy` (a snapshot of its page).
  std::vector<span> cells_of(const node& n, std::vector<std::byte>& copy) {
    copy.assign(n.p, n.p + kPage);
    const node cn = parse(copy.data(), n.off, n.level, g, tx.path());
    std::vector<span> cells;
    cells.reserve(cn.count + 2);
    for (std::uint32_t j = 0; j < cn.count; ++j) cells.push_back({copy.data() + cn.slot(j), cn.at(j).size});
    return cells;
  }

  std::vector<std::byte> branch_cell(std::string_view key, std::uint64_t child) {
    std::vector<std::byte> c(g.branch_cell(key.size()));
    std::size_t at = 0;
    if (g.var()) {
      st<std::uint16_t>(c.data(), static_cast<std::uint16_t>(key.size()));
      at = 2;
    }
    std::memcpy(c.data() + at, key.data(), key.size());
    st<std::uint64_t>(c.data() + at + key.size(), child);
    return c;
  }

  // Inserts cell c at position i of the node at depth d, splitting it (and
  // its ancestors) when it has no room. Returns true when it split.
  bool insert_at(std::size_t d, std::uint32_t i, span c) {
    if (insert_in_gap(path[d].off, static_cast<std::uint32_t>(path.size() - 1 - d), i, c)) return false;
    wnode w = writable(tx, path[d].off);
    const node n = parse(w.p, w.off, static_cast<std::uint32_t>(path.size() - 1 - d), g, tx.path());
    if (n.free_total() >= c.size + 2) {
      insert_cell(w, n, i, c);
      return false;
    }
    std::vector<std::byte> copy;
    std::vector<span> cells = cells_of(n, copy);
    cells.insert(cells.begin() + i, c);
    const bool leaf = n.leaf();
    const std::uint64_t old_next = leaf ? n.next() : 0;
    const bool append = i == n.count && (leaf ? old_next == 0 : rightmost(d));
    const std::uint64_t right = new_page();
    std::string sep;
    if (append && leaf) {  // the full leaf stays as it is; the new one starts with the new cell
      sep.assign(key_of(g, true, cells.back()));
      write_node(tx, right, 0, cells, cells.size() - 1, cells.size(), n.off, 0, 0);
      st<std::uint64_t>(w.p + kOffNext, right);
      dirty(tx, w, 0, kHeader);
    } else if (append) {  // branch: the last old cell goes up, the new node holds the new cell
      const std::size_t k = cells.size() - 2;
      sep.assign(key_of(g, false, cells[k]));
      write_node(tx, right, n.level, cells, k + 1, cells.size(), 0, 0, child_of(g, cells[k]));
      write_node(tx, n.off, n.level, cells, 0, k, 0, 0, n.child0());
    } else {
      const std::size_t k = balanced_split(cells, leaf, tx.path());
      sep.assign(key_of(g, leaf, cells[k]));
      if (leaf) {
        const std::uint64_t prev = n.prev();
        write_node(tx, right, 0, cells, k, cells.size(), n.off, old_next, 0);
        write_node(tx, n.off, 0, cells, 0, k, prev, right, 0);
        if (old_next != 0) {
          wnode nx = writable(tx, old_next);
          st<std::uint64_t>(nx.p + kOffPrev, right);
        }
      } else {
        const std::uint64_t child0 = n.child0();
        write_node(tx, right, n.level, cells, k + 1, cells.size(), 0, 0, child_of(g, cells[k]));
        write_node(tx, n.off, n.level, cells, 0, k, 0, 0, child0);
      }
    }
    if (leaf && old_next == 0) b.last_leaf = right;
    const std::vector<std::byte> up = branch_cell(sep, right);
    if (d == 0) {  // a new root above
      const std::uint64_t nr = new_page();
      const std::vector<span> one{{up.data(), static_cast<std::uint32_t>(up.size())}};
      write_node(tx, nr, n.level + 1, one, 0, 1, 0, 0, n.off);
      b.node = nr;
      ++b.height;
      if (b.height > kMaxHeight) throw error(errc::corrupt, tx.path(), "tree: height over the limit");
      return true;
    }
    insert_at(d - 1, path[d - 1].idx, {up.data(), static_cast<std::uint32_t>(up.size())});
    return true;
  }

  // After a removal from the node at depth d: merge or redistribute while
  // a node is below the minimum fill; collapse the root.
  void fix_underflow(std::size_t d) {
    for (;;) {
      const node n = load_at(d);
      if (d == 0) {
        if (n.count == 0 && n.leaf()) {
          free_page(n.off);
          b.node = b.first_leaf = b.last_leaf = 0;
          b.height = 0;
        } else if (n.count == 0) {
          b.node = n.child0();
          --b.height;
          free_page(n.off);
        }
        return;
      }
      if (n.used() >= kMinFill) return;
      const node parent = load_at(d - 1);
      const std::uint32_t j = path[d - 1].idx;
      if (parent.count == 0) corrupt(tx.path(), parent.off, "branch below the root with a single child");
      const std::uint32_t sep_idx = j > 0 ? j - 1 : 0;
      const std::uint64_t left_off = parent.child(sep_idx), right_off = parent.child(sep_idx + 1);
      const std::uint32_t level = n.level;
      const node left = load(tx, left_off, level, g), right = load(tx, right_off, level, g);
      std::vector<std::byte> lcopy, rcopy;
      std::vector<span> cells = cells_of(left, lcopy);
      const std::vector<span> rcells = cells_of(right, rcopy);
      std::vector<std::byte> down;
      if (!n.leaf()) {
        down = branch_cell(key_of(g, false, span{parent.p + parent.slot(sep_idx), parent.at(sep_idx).size}),
                           right.child0());
        cells.push_back({down.data(), static_cast<std::uint32_t>(down.size())});
      }
      cells.insert(cells.end(), rcells.begin(), rcells.end());
      const std::uint64_t rnext = right.next();
      wnode pw = writable(tx, parent.off);
      const node pn = parse(pw.p, pw.off, parent.level, g, tx.path());
      if (bytes_of(cells, 0, cells.size()) <= kUsable) {  // merge into the left node
        write_node(tx, left_off, level, cells, 0, cells.size(), n.leaf() ? left.prev() : 0, n.leaf() ? rnext : 0,
                   n.leaf() ? 0 : left.child0());
        if (n.leaf()) {
          if (rnext != 0) {
            wnode nx = writable(tx, rnext);
            st<std::uint64_t>(nx.p + kOffPrev, left_off);
          } else {
            b.last_leaf = left_off;
          }
        }
        free_page(right_off);
        remove_cell(pw, pn, sep_idx);
        --d;
        continue;
      }
      // Redistribute: split the union in the middle and replace the separator.
      const std::size_t k = balanced_split(cells, n.leaf(), tx.path());
      const std::string sep(key_of(g, n.leaf(), cells[k]));
      if (n.leaf()) {
        write_node(tx, left_off, 0, cells, 0, k, left.prev(), right_off, 0);
        write_node(tx, right_off, 0, cells, k, cells.size(), left_off, rnext, 0);
      } else {
        write_node(tx, left_off, level, cells, 0, k, 0, 0, left.child0());
        write_node(tx, right_off, level, cells, k + 1, cells.size(), 0, 0, child_of(g, cells[k]));
      }
      remove_cell(pw, pn, sep_idx);
      const std::vector<std::byte> up = branch_cell(sep, right_off);
      // A shorter separator can leave the parent under the minimum fill
      // (byte-string keys); a split leaves both halves above it.
      if (insert_at(d - 1, sep_idx, {up.data(), static_cast<std::uint32_t>(up.size())})) return;
      --d;
    }
  }
};

void check_sizes(write_txn& tx, const geometry& g, std::string_view key, std::string_view value) {
  if (!g.var()) {
    if (key.size() != g.ks || value.size() != g.vs)
      throw error(errc::invalid_argument, tx.path(), "tree: key/value size differs from the tree's");
    return;
  }
  if (key.size() > detail::kTreeMaxKey)
    throw error(errc::invalid_argument, tx.path(),
                "tree key of " + std::to_string(key.size()) + " bytes is over the limit of 1024");
  if (value.size() > detail::kTreeMaxValue)
    throw error(errc::invalid_argument, tx.path(),
                "tree value of " + std::to_string(value.size()) + " bytes is over the limit of 1 GiB");
}

}  // namespace
}  // namespace keel::tree

namespace keel::detail {

using namespace keel::tree;

bool tree_put(write_txn& tx, std::uint64_t root, std::string_view key, std::string_view value, put_mode mode) {
  op o(tx, root);
  check_sizes(tx, o.g, key, value);
  if (o.b.height == 0) {
    cell_buf c = leaf_cell(tx, o.g, key, value);
    std::uint64_t leaf;
    try {
      leaf = o.new_page();
    } catch (...) {
      free_new_blob(tx, o.g, c, key.size(), value.size());
      throw;
    }
    const std::vector<tree::span> one{{c.data(), c.size()}};
    write_node(tx, leaf, 0, one, 0, 1, 0, 0, 0);
    o.b.node = o.b.first_leaf = o.b.last_leaf = leaf;
    o.b.height = 1;
    o.b.size = 1;
    o.save_root();
    return true;
  }
  const bool append = mode == put_mode::append;
  if (o.fast_append(key, value, append)) return true;
  const node leaf = o.descend(key, append);
  std::uint32_t i;
  if (append) {
    if (leaf.count > 0) {
      const cell last = leaf.at(leaf.count - 1);
      if (compare(key, last.key, last.klen) <= 0)
        throw error(errc::invalid_argument, tx.path(), "tree append: key is not above the largest key");
    }
    i = leaf.count;
  } else {
    i = leaf.search(key, false);
  }
  const std::optional<cell> found = i < leaf.count ? std::optional<cell>(leaf.at(i)) : std::nullopt;  // validated
  const bool exists = found && compare(key, found->key, found->klen) == 0;
  const std::uint32_t old_size = exists ? found->size : 0;
  if (exists && mode == put_mode::insert) return false;
  if (exists && !o.g.var()) {  // assign a fixed value in place
    std::memcpy(tx.mut_bytes(leaf.off + leaf.slot(i) + o.g.ks, o.g.vs), value.data(), o.g.vs);
    return false;
  }
  o.path.back().idx = i;
  const std::uint32_t need = o.g.leaf_cell(key.size(), value.size()) + 2;
  const std::uint32_t room = leaf.free_total() + (exists ? leaf.at(i).size + 2 : 0);
  cell_buf c = leaf_cell(tx, o.g, key, value);
  if (room < need) {
    try {
      o.reserve_pages(o.b.height + 1);
    } catch (...) {  // errc::full before any change: the tree is as it was
      free_new_blob(tx, o.g, c, key.size(), value.size());
      o.release_spare();
      throw;
    }
  }
  if (exists) {  // byte-string value: drop the old cell, then insert as new
    const cell old = leaf.at(i);
    free_blob(tx, old);
    wnode w = writable(tx, leaf.off);
    o.remove_cell(w, parse(w.p, w.off, 0, o.g, tx.path()), i);
  }
  o.insert_at(o.path.size() - 1, i, {c.data(), static_cast<std::uint32_t>(c.size())});
  // A shorter cell replaced a longer one (no split can have happened): the
  // leaf may now be under the minimum fill.
  if (exists && c.size() < old_size) o.fix_underflow(o.path.size() - 1);
  o.release_spare();
  if (!exists) ++o.b.size;
  o.save_root();
  return !exists;
}

void tree_append_sorted(write_txn& tx, std::uint64_t root, const void* records, std::size_t n) {
  const auto* recs = static_cast<const std::byte*>(records);
  op o(tx, root);
  if (o.g.var()) throw error(errc::invalid_argument, tx.path(), "tree: append_sorted needs a fixed-shape tree");
  const std::uint32_t ks = o.g.ks, rec = o.g.ks + o.g.vs;
  for (std::size_t i = 1; i < n; ++i)
    if (compare(recs + (i - 1) * rec, ks, recs + i * rec, ks) >= 0)
      throw error(errc::invalid_argument, tx.path(), "tree append_sorted: keys not strictly ascending");
  std::size_t i = 0;
  while (i < n) {
    const std::byte* r = recs + i * rec;
    if (o.b.last_leaf == 0) {  // empty tree: the first entry makes the root leaf
      tree_put(tx, root, {reinterpret_cast<const char*>(r), ks}, {reinterpret_cast<const char*>(r) + ks, o.g.vs},
               put_mode::append);
      o.b = load_root(tx, root);
      ++i;
      continue;
    }
    const node last = load(tx, o.b.last_leaf, 0, o.g);
    if (last.count > 0) {
      const cell lc = last.at(last.count - 1);
      if (compare(r, ks, lc.key, lc.klen) <= 0)
        throw error(errc::invalid_argument, tx.path(), "tree append_sorted: key is not above the largest key");
    }
    const std::size_t fit = std::min<std::size_t>(n - i, last.free_total() / (rec + 2));
    if (fit == 0) {  // the last leaf is full: one append starts the next leaf
      tree_put(tx, root, {reinterpret_cast<const char*>(r), ks}, {reinterpret_cast<const char*>(r) + ks, o.g.vs},
               put_mode::append);
      o.b = load_root(tx, root);
      ++i;
      continue;
    }
    wnode w = writable(tx, last.off);
    node cur = parse(w.p, w.off, 0, o.g, tx.path());
    if (cur.heap - (kHeader + 2 * cur.count) < fit * (rec + 2)) {  // reclaim garbage first
      std::vector<std::byte> copy;
      const std::vector<span> cells = o.cells_of(cur, copy);
      write_node(tx, w.off, 0, cells, 0, cells.size(), cur.prev(), cur.next(), 0);
      cur = parse(w.p, w.off, 0, o.g, tx.path());
    }
    // The new cells go below the heap in ascending order, in one copy.
    const std::uint32_t heap = cur.heap - static_cast<std::uint32_t>(fit * rec);
    std::memcpy(w.p + heap, r, fit * rec);
    for (std::size_t j = 0; j < fit; ++j)
      st<std::uint16_t>(w.p + kHeader + 2 * (cur.count + j), static_cast<std::uint16_t>(heap + j * rec));
    const std::uint32_t count = cur.count + static_cast<std::uint32_t>(fit);
    st<std::uint16_t>(w.p + kOffCount, static_cast<std::uint16_t>(count));
    st<std::uint16_t>(w.p + kOffHeap, static_cast<std::uint16_t>(heap));
    dirty(tx, w, 0, kHeader);
    dirty(tx, w, kHeader + 2 * cur.count, kHeader + 2 * count);
    dirty(tx, w, heap, cur.heap);
    o.b.size += fit;
    o.save_root();
    i += fit;
  }
}

void* tree_value_for_update(write_txn& tx, std::uint64_t root, std::string_view key) {
  op o(tx, root);
  if (o.g.var()) throw error(errc::invalid_argument, tx.path(), "tree: in-place update needs fixed-size values");
  if (key.size() != o.g.ks) throw error(errc::invalid_argument, tx.path(), "tree: key size differs from the tree's");
  if (o.b.height == 0) return nullptr;
  const node leaf = o.descend(key, false);
  const std::uint32_t i = leaf.search(key, false);
  if (i == leaf.count || compare(key, leaf.at(i).key, leaf.at(i).klen) != 0) return nullptr;
  return tx.mut_bytes(leaf.off + leaf.slot(i) + o.g.ks, o.g.vs);
}

bool tree_erase(write_txn& tx, std::uint64_t root, std::string_view key) {
  op o(tx, root);
  if (o.b.height == 0) return false;
  if (!o.g.var() && key.size() != o.g.ks) throw error(errc::invalid_argument, tx.path(), "tree: key size differs");
  const node leaf = o.descend(key, false);
  const std::uint32_t i = leaf.search(key, false);
  if (i == leaf.count) return false;
  const cell c = leaf.at(i);
  if (compare(key, c.key, c.klen) != 0) return false;
  free_blob(tx, c);
  wnode w = writable(tx, leaf.off);
  o.remove_cell(w, parse(w.p, w.off, 0, o.g, tx.path()), i);
  --o.b.size;
  o.fix_underflow(o.path.size() - 1);
  o.save_root();
  return true;
}

std::uint64_t tree_erase_range(write_txn& tx, std::uint64_t root, tree_bound lo, tree_bound hi) {
  struct found_key {
    std::string key;
    bool found = false;
  } f;
  auto first = [](void* ctx, std::string_view key, std::string_view) {
    auto* p = static_cast<found_key*>(ctx);
    p->key.assign(key);
    p->found = true;
    return false;
  };
  std::uint64_t n = 0;
  std::string from;
  tree_bound cur = lo;
  for (;;) {
    f.found = false;
    tree_scan(tx, root, tree_range{cur, hi, false, false}, first, &f);
    if (!f.found) return n;
    tree_erase(tx, root, f.key);
    ++n;
    from = f.key;  // everything below it in the range is gone
    cur = {from, true};
  }
}

void tree_clear(write_txn& tx, std::uint64_t root) {
  op o(tx, root);
  if (o.b.height == 0) return;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> todo{{o.b.node, o.b.height - 1}};
  std::uint64_t seen = 0;
  while (!todo.empty()) {
    const auto [off, level] = todo.back();
    todo.pop_back();
    if (++seen > o.b.nodes) throw error(errc::corrupt, tx.path(), "tree clear: more nodes than the root records");
    const node n = load(tx, off, level, o.g);
    if (level > 0) {
      for (std::uint32_t i = 0; i <= n.count; ++i) todo.push_back({n.child(i), level - 1});
    } else {
      for (std::uint32_t i = 0; i < n.count; ++i) free_blob(tx, n.at(i));
    }
    tx.free(off, kPage);
  }
  o.b.node = o.b.first_leaf = o.b.last_leaf = o.b.size = o.b.nodes = 0;
  o.b.height = 0;
  o.save_root();
}

}  // namespace keel::detail
