// The B+tree invariant checker (docs/FORMAT.md, "Invariants") and node
// statistics. Reports every problem it can reach instead of stopping at
// the first, and never trusts a value it has not bounded: each node is
// visited at most once, so cycles and shared children end the walk.
#include <algorithm>
#include <unordered_set>
#include <vector>

#include "tree/node.h"

namespace keel::tree {
namespace {

using problems = std::vector<std::pair<std::uint64_t, std::string>>;
using blocks = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

struct pending {
  std::uint64_t off;
  std::uint32_t level;
  std::string lo, hi;  // keys in [lo, hi); unset bounds are open
  bool has_lo, has_hi;
  bool rightmost, root;
  std::uint64_t parent = 0;  // the branch that points here (0 for the root)
};

std::string hex(const std::byte* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < std::min<std::size_t>(n, 16); ++i) {
    s += d[static_cast<unsigned>(p[i]) >> 4];
    s += d[static_cast<unsigned>(p[i]) & 15];
  }
  return n > 16 ? s + "..." : s;
}

template <class R>
void check_impl(R& r, std::uint64_t root, problems& out, blocks* blk) {
  auto report = [&](std::uint64_t off, std::string what) { out.emplace_back(off, std::move(what)); };
  root_block b;
  try {
    b = load_root(r, root);
  } catch (const error& e) {
    report(root, e.what());
    return;
  }
  if (blk) blk->emplace_back(root, sizeof(root_block));
  if (b.height == 0) {
    if (b.size || b.nodes || b.first_leaf || b.last_leaf) report(root, "empty tree with nonzero counts or leaf links");
    return;
  }
  const geometry g(b.key_size, b.value_size);
  const std::uint64_t max_nodes = r.limit() / kPage + 1;
  std::unordered_set<std::uint64_t> seen;
  std::vector<std::uint64_t> leaves;
  std::uint64_t entries = 0, nodes = 0;
  std::vector<pending> todo;
  todo.push_back({b.node, b.height - 1, {}, {}, false, false, true, true});
  while (!todo.empty()) {
    pending at = std::move(todo.back());
    todo.pop_back();
    if (!seen.insert(at.off).second) {
      report(at.off, "node reachable twice (a cycle or a shared child)");
      continue;
    }
    if (++nodes > max_nodes) {
      report(at.off, "more nodes than the arena can hold");
      return;
    }
    node n;
    try {
      n = load(r, at.off, at.level, g);
    } catch (const error& e) {
      report(at.off, std::string(e.what()) +
                         (at.parent ? " (child pointer in the branch at offset " + std::to_string(at.parent) + ")" : ""));
      continue;
    }
    if (blk) blk->emplace_back(at.off, kPage);
    // Cells: inside the heap, not overlapping, accounted with the garbage.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> spans;
    std::vector<cell> cells;
    bool cells_ok = true;
    for (std::uint32_t i = 0; i < n.count; ++i) {
      try {
        const cell c = n.at(i);
        cells.push_back(c);
        spans.emplace_back(n.slot(i), c.size);
      } catch (const error& e) {
        report(at.off, e.what());
        cells_ok = false;
        break;
      }
    }
    if (!cells_ok) continue;
    std::sort(spans.begin(), spans.end());
    std::uint64_t live = 0;
    for (std::size_t i = 0; i < spans.size(); ++i) {
      live += spans[i].second;
      if (i + 1 < spans.size() && spans[i].first + spans[i].second > spans[i + 1].first)
        report(at.off, "cells at " + std::to_string(spans[i].first) + " and " + std::to_string(spans[i + 1].first) +
                           " overlap");
    }
    if (live + n.garbage != kPage - n.heap)
      report(at.off, "heap accounting: " + std::to_string(live) + " live + " + std::to_string(n.garbage) +
                         " garbage bytes != " + std::to_string(kPage - n.heap) + " heap bytes");
    // Keys: strictly increasing, inside the parent's bounds.
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const cell& c = cells[i];
      if (!g.var() && c.klen != g.ks) report(at.off, "key size differs from the tree's");
      if (i > 0 && compare(cells[i - 1].key, cells[i - 1].klen, c.key, c.klen) >= 0)
        report(at.off, "keys out of order at cell " + std::to_string(i) + " (key " + hex(c.key, c.klen) + ")");
      if (at.has_lo && compare(c.key, c.klen, reinterpret_cast<const std::byte*>(at.lo.data()), at.lo.size()) < 0)
        report(at.off, "key " + hex(c.key, c.klen) + " below its parent's separator");
      if (at.has_hi && compare(c.key, c.klen, reinterpret_cast<const std::byte*>(at.hi.data()), at.hi.size()) >= 0)
        report(at.off, "key " + hex(c.key, c.klen) + " not below the next separator");
    }
    if (!at.root && !at.rightmost && n.used() < kMinFill)
      report(at.off, "node under the minimum fill: " + std::to_string(n.used()) + " < " + std::to_string(kMinFill) +
                         " bytes");
    if (n.leaf()) {
      if (n.count == 0 && !at.root) report(at.off, "empty leaf below the root");
      entries += n.count;
      leaves.push_back(at.off);
      for (const cell& c : cells) {
        if (c.blob == 0) continue;
        if (c.blob < kPage * 4 || c.vlen > r.limit() || c.blob > r.limit() - c.vlen)
          report(at.off, "out-of-line value at " + std::to_string(c.blob) + " outside the arena");
        else if (blk)
          blk->emplace_back(c.blob, c.vlen);
      }
      continue;
    }
    if (n.prev() != 0 || n.next() != 0) report(at.off, "branch with sibling links");
    if (n.count == 0) report(at.off, "branch with a single child");
    // Children, pushed right to left so leaves are met in key order.
    for (std::uint32_t i = n.count + 1; i-- > 0;) {
      pending c{i == 0 ? n.child0() : cells[i - 1].child, at.level - 1, at.lo, at.hi, at.has_lo, at.has_hi,
                at.rightmost && i == n.count, false, at.off};
      if (i > 0) {
        c.lo.assign(reinterpret_cast<const char*>(cells[i - 1].key), cells[i - 1].klen);
        c.has_lo = true;
      }
      if (i < n.count) {
        c.hi.assign(reinterpret_cast<const char*>(cells[i].key), cells[i].klen);
        c.has_hi = true;
      }
      if (c.off == 0 || c.off % kPage != 0 || c.off < kPage * 4 || c.off > r.limit() - kPage) {
        report(at.off, "child " + std::to_string(i) + " offset " + std::to_string(c.off) + " outside the arena");
        continue;
      }
      todo.push_back(std::move(c));
    }
  }
  // The leaf chain agrees with the in-order walk.
  if (!leaves.empty()) {
    if (b.first_leaf != leaves.front()) report(root, "first leaf is not the leftmost leaf");
    if (b.last_leaf != leaves.back()) report(root, "last leaf is not the rightmost leaf");
  }
  for (std::size_t j = 0; j < leaves.size(); ++j) {
    try {
      const node n = load(r, leaves[j], 0, g);
      const std::uint64_t want_prev = j > 0 ? leaves[j - 1] : 0, want_next = j + 1 < leaves.size() ? leaves[j + 1] : 0;
      if (n.prev() != want_prev) report(leaves[j], "prev link " + std::to_string(n.prev()) + " != " + std::to_string(want_prev));
      if (n.next() != want_next) report(leaves[j], "next link " + std::to_string(n.next()) + " != " + std::to_string(want_next));
    } catch (const error&) {  // already reported
    }
  }
  if (entries != b.size)
    report(root, "root counts " + std::to_string(b.size) + " entries, the leaves hold " + std::to_string(entries));
  if (nodes != b.nodes)
    report(root, "root counts " + std::to_string(b.nodes) + " nodes, the walk found " + std::to_string(nodes));
}

}  // namespace
}  // namespace keel::tree

namespace keel::detail {

using namespace keel::tree;

void tree_check(const read_view& v, std::uint64_t root, std::vector<std::pair<std::uint64_t, std::string>>& problems,
                std::vector<std::pair<std::uint64_t, std::uint64_t>>* blocks) {
  check_impl(v, root, problems, blocks);
}
void tree_check(write_txn& tx, std::uint64_t root, std::vector<std::pair<std::uint64_t, std::string>>& problems,
                std::vector<std::pair<std::uint64_t, std::uint64_t>>* blocks) {
  check_impl(tx, root, problems, blocks);
}

tree_stats tree_stat(const read_view& v, std::uint64_t root) {
  tree_stats s;
  const root_block b = load_root(v, root);
  s.entries = b.size;
  s.height = b.height;
  if (b.height == 0) return s;
  const geometry g(b.key_size, b.value_size);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> todo{{b.node, b.height - 1}};
  std::uint64_t visited = 0;
  while (!todo.empty()) {
    const auto [off, level] = todo.back();
    todo.pop_back();
    if (++visited > b.nodes) tree::corrupt(v.path(), off, "more nodes than the root records");
    const node n = load(v, off, level, g);
    if (level == 0) {
      ++s.leaves;
      for (std::uint32_t i = 0; i < n.count; ++i) s.blobs += n.at(i).blob != 0;
    } else {
      ++s.branches;
      for (std::uint32_t i = 0; i <= n.count; ++i) todo.push_back({n.child(i), level - 1});
    }
  }
  return s;
}

}  // namespace keel::detail
