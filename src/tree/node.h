// B+tree node layout (docs/FORMAT.md, "B+tree") and validated read access.
// Every accessor checks what it reads from the file before trusting it: a
// corrupt or torn node throws errc::corrupt. Internal.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "keel/detail/tree_engine.h"
#include "keel/error.h"
#include "keel/txn.h"

namespace keel::tree {

inline constexpr std::uint64_t kPage = 4096;
inline constexpr std::uint32_t kNodeMagic = 0x444E544B;  // "KTND"
inline constexpr unsigned char kRootMagic[8] = {'K', 'E', 'E', 'L', 'T', 'R', 'E', 'E'};
inline constexpr std::uint32_t kHeader = 48;
inline constexpr std::uint32_t kUsable = kPage - kHeader;   // 4048
inline constexpr std::uint32_t kMinFill = kUsable / 5;      // 809: below it a node rebalances
inline constexpr std::uint32_t kMaxLeafCell = 1344;         // three cells always fit
inline constexpr std::uint32_t kMaxHeight = 32;
inline constexpr std::uint32_t kFlagBlob = 1;               // byte-string leaf cell: value out of line

// Node header field offsets.
inline constexpr std::uint32_t kOffLevel = 4, kOffCount = 6, kOffHeap = 8, kOffGarbage = 10, kOffPrev = 16,
                               kOffNext = 24, kOffChild0 = 32;

struct root_block {
  unsigned char magic[8];
  std::uint32_t key_size;
  std::uint32_t value_size;
  std::uint64_t node;
  std::uint64_t size;
  std::uint32_t height;
  std::uint32_t reserved;
  std::uint64_t first_leaf;
  std::uint64_t last_leaf;
  std::uint64_t nodes;
};
static_assert(sizeof(root_block) == 64);

template <class T>
inline T ld(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void st(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// memcmp order, the shorter first on a tie; 8-byte keys compare as
// big-endian words (the typed u64/i64 case) without a call.
inline int compare(const std::byte* a, std::size_t an, const std::byte* b, std::size_t bn) {
  if (an == 8 && bn == 8) {
    const std::uint64_t x = __builtin_bswap64(ld<std::uint64_t>(a)), y = __builtin_bswap64(ld<std::uint64_t>(b));
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const int c = std::memcmp(a, b, std::min(an, bn));
  if (c != 0) return c;
  return an < bn ? -1 : an > bn ? 1 : 0;
}
inline int compare(std::string_view a, const std::byte* b, std::size_t bn) {
  return compare(reinterpret_cast<const std::byte*>(a.data()), a.size(), b, bn);
}

[[noreturn]] void corrupt(const std::string& path, std::uint64_t off, const std::string& what);

// The shape of a tree and the sizes of its cells.
struct geometry {
  std::uint32_t ks, vs;  // fixed sizes; ks == 0: byte strings
  bool var() const { return ks == 0; }
  explicit geometry(detail::tree_shape s) : ks(s.key_size), vs(s.value_size) {}
  geometry(std::uint32_t k, std::uint32_t v) : ks(k), vs(v) {}
  // Leaf cell for a key of klen and a value of vlen bytes; sets inline_value.
  std::uint32_t leaf_cell(std::size_t klen, std::uint64_t vlen, bool* inline_value = nullptr) const {
    if (!var()) return ks + vs;
    const bool in = 8 + klen + vlen <= kMaxLeafCell;
    if (inline_value) *inline_value = in;
    return static_cast<std::uint32_t>(8 + klen + (in ? vlen : 8));
  }
  std::uint32_t branch_cell(std::size_t klen) const {
    return var() ? static_cast<std::uint32_t>(2 + klen + 8) : ks + 8;
  }
};

// A cell's parsed fields. For a leaf: key and either an inline value or a
// blob (offset, length). For a branch: key and child.
struct cell {
  const std::byte* key;
  std::uint32_t klen;
  std::uint32_t size;  // bytes of the cell
  const std::byte* value = nullptr;  // inline value (leaf)
  std::uint64_t vlen = 0;
  std::uint64_t blob = 0;            // out-of-line value offset (leaf), 0 if inline
  std::uint64_t child = 0;           // branch
};

// A node page read from the file (or a transaction's copy), validated.
struct node {
  const std::byte* p = nullptr;
  std::uint64_t off = 0;
  std::uint32_t level = 0, count = 0, heap = 0, garbage = 0;
  const geometry* g = nullptr;
  const std::string* path = nullptr;

  bool leaf() const { return level == 0; }
  std::uint64_t prev() const { return ld<std::uint64_t>(p + kOffPrev); }
  std::uint64_t next() const { return ld<std::uint64_t>(p + kOffNext); }
  std::uint64_t child0() const { return ld<std::uint64_t>(p + kOffChild0); }
  std::uint32_t slot(std::uint32_t i) const { return ld<std::uint16_t>(p + kHeader + 2 * i); }
  // Bytes of cells and slots in use.
  std::uint32_t used() const { return kUsable - free_total(); }
  std::uint32_t free_total() const { return heap - (kHeader + 2 * count) + garbage; }

  cell at(std::uint32_t i) const {
    const std::uint32_t o = slot(i);
    if (o < heap || o >= kPage) bad(i, "cell offset " + std::to_string(o) + " outside the heap");
    const std::byte* c = p + o;
    const std::uint32_t room = kPage - o;
    cell r{};
    if (!g->var()) {
      r.key = c;
      r.klen = g->ks;
      if (leaf()) {
        r.size = g->ks + g->vs;
        r.value = c + g->ks;
        r.vlen = g->vs;
      } else {
        r.size = g->ks + 8;
      }
      if (r.size > room) bad(i, "cell runs past the page end");
      if (!leaf()) r.child = ld<std::uint64_t>(c + g->ks);
      return r;
    }
    if (room < 2) bad(i, "cell runs past the page end");
    r.klen = ld<std::uint16_t>(c);
    if (r.klen > detail::kTreeMaxKey) bad(i, "key length " + std::to_string(r.klen) + " over the limit");
    if (leaf()) {
      if (room < 8) bad(i, "cell runs past the page end");
      const std::uint8_t flags = ld<std::uint8_t>(c + 2);
      r.vlen = ld<std::uint32_t>(c + 4);
      r.key = c + 8;
      if (flags & ~kFlagBlob) bad(i, "unknown cell flags");
      if (flags & kFlagBlob) {
        r.size = 8 + r.klen + 8;
        if (r.size > room) bad(i, "cell runs past the page end");
        r.blob = ld<std::uint64_t>(c + 8 + r.klen);
        if (r.blob == 0 || 8 + r.klen + r.vlen <= kMaxLeafCell) bad(i, "bad out-of-line value reference");
      } else {
        r.size = 8 + r.klen + static_cast<std::uint32_t>(std::min<std::uint64_t>(r.vlen, kPage));
        if (r.vlen > kMaxLeafCell || r.size > room) bad(i, "inline value runs past the page end");
        r.value = c + 8 + r.klen;
      }
    } else {
      r.key = c + 2;
      r.size = 2 + r.klen + 8;
      if (r.size > room) bad(i, "cell runs past the page end");
      r.child = ld<std::uint64_t>(c + 2 + r.klen);
    }
    return r;
  }
  // Child i of a branch: 0 is child0, i > 0 the child of cell i - 1.
  std::uint64_t child(std::uint32_t i) const { return i == 0 ? child0() : at(i - 1).child; }

  // Key of cell i. For fixed shapes without parsing the whole cell.
  const std::byte* fixed_key(std::uint32_t i) const {
    const std::uint32_t o = slot(i);
    if (o < heap || o > kPage - g->ks) bad(i, "cell offset " + std::to_string(o) + " outside the heap");
    return p + o;
  }
  // A fixed-shape leaf cell (key then value) without parsing it.
  const std::byte* fixed_leaf_cell(std::uint32_t i) const {
    const std::uint32_t o = slot(i);
    if (o < heap || o > kPage - (g->ks + g->vs)) bad(i, "cell offset " + std::to_string(o) + " outside the heap");
    return p + o;
  }
  // First cell index whose key is >= key (lower) or > key (upper).
  std::uint32_t search(std::string_view key, bool upper) const {
    std::uint32_t lo = 0, hi = count;
    if (!g->var()) {
      const auto* k = reinterpret_cast<const std::byte*>(key.data());
      const std::size_t n = key.size();
      while (lo < hi) {
        const std::uint32_t mid = (lo + hi) / 2;
        const int r = compare(k, n, fixed_key(mid), g->ks);
        if (r > 0 || (upper && r == 0))
          lo = mid + 1;
        else
          hi = mid;
      }
      return lo;
    }
    while (lo < hi) {
      const std::uint32_t mid = (lo + hi) / 2;
      const cell c = at(mid);
      const int r = compare(key, c.key, c.klen);
      if (r > 0 || (upper && r == 0))
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }
  // Which child of a branch holds key: the number of separators <= key.
  std::uint32_t route(std::string_view key) const { return search(key, true); }

  [[noreturn]] void bad(std::uint32_t i, const std::string& what) const {
    corrupt(*path, off, "cell " + std::to_string(i) + ": " + what);
  }
};

// Parses and checks the header of the node page at p (offset off).
inline node parse(const std::byte* p, std::uint64_t off, std::uint32_t level, const geometry& g,
                  const std::string& path) {
  node n;
  n.p = p;
  n.off = off;
  n.g = &g;
  n.path = &path;
  if (ld<std::uint32_t>(p) != kNodeMagic) corrupt(path, off, "not a tree node (bad magic)");
  n.level = ld<std::uint8_t>(p + kOffLevel);
  n.count = ld<std::uint16_t>(p + kOffCount);
  n.heap = ld<std::uint16_t>(p + kOffHeap);
  n.garbage = ld<std::uint16_t>(p + kOffGarbage);
  if (n.level != level)
    corrupt(path, off, "node level " + std::to_string(n.level) + " where " + std::to_string(level) + " was expected");
  if (kHeader + 2 * n.count > n.heap || n.heap > kPage || n.garbage > kPage - n.heap)
    corrupt(path, off, "node count/heap/garbage out of bounds");
  return n;
}

// Node and root reads over a read_view or a write_txn.
inline const std::byte* page_of(const read_view& v, std::uint64_t off) { return v.bytes(off, kPage); }
inline const std::byte* page_of(write_txn& tx, std::uint64_t off) { return tx.bytes(off, kPage); }
inline const std::string& path_of(const read_view& v) { return v.path(); }
inline const std::string& path_of(write_txn& tx) { return tx.path(); }

// A node offset read from the file: a whole page inside the allocated arena.
template <class R>
void check_node_offset(R& r, std::uint64_t off) {
  if (off % kPage != 0) corrupt(path_of(r), off, "node offset not page aligned");
  if (off < 4 * kPage || r.limit() < kPage || off > r.limit() - kPage)
    corrupt(path_of(r), off, "node offset outside the allocated arena");
}

template <class R>
node load(R& r, std::uint64_t off, std::uint32_t level, const geometry& g) {
  check_node_offset(r, off);
  return parse(page_of(r, off), off, level, g, path_of(r));
}

template <class R>
root_block load_root(R& r, std::uint64_t off) {
  root_block b;
  if (off == 0 || off % 16 != 0 || off < 3 * kPage || r.limit() < sizeof b || off > r.limit() - sizeof b)
    corrupt(path_of(r), off, "bad tree root offset");
  std::memcpy(&b, r.bytes(off, sizeof b), sizeof b);
  if (std::memcmp(b.magic, kRootMagic, 8) != 0) corrupt(path_of(r), off, "not a tree root (bad magic)");
  const bool var = b.key_size == 0;
  if (var ? b.value_size != 0
          : (b.key_size > detail::kTreeMaxKey || b.key_size + b.value_size > detail::kTreeMaxFixedEntry))
    corrupt(path_of(r), off, "tree root has impossible key/value sizes");
  if (b.height > kMaxHeight || (b.height == 0) != (b.node == 0) || (b.height == 0 && b.size != 0))
    corrupt(path_of(r), off, "tree root height/node/size disagree");
  return b;
}

// Copies a leaf cell's value out (reading a blob when out of line).
template <class R>
void copy_value(R& r, const cell& c, const geometry& g, detail::tree_out out) {
  if (out.fixed) {
    std::memcpy(out.fixed, c.value, g.vs);
    return;
  }
  if (!out.var) return;
  if (c.blob == 0) {
    out.var->assign(reinterpret_cast<const char*>(c.value), c.vlen);
    return;
  }
  if (c.vlen > detail::kTreeMaxValue) corrupt(path_of(r), c.blob, "value length over the limit");
  out.var->resize(c.vlen);
  if constexpr (std::is_same_v<R, write_txn>)
    r.read(c.blob, out.var->data(), c.vlen);
  else
    std::memcpy(out.var->data(), r.bytes(c.blob, c.vlen), c.vlen);
}

}  // namespace keel::tree
