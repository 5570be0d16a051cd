// The untyped B+tree engine behind tree_map and bytes_tree (src/tree/).
// Keys are byte strings compared with memcmp (shorter first on a tie);
// values are byte strings. A tree of fixed shape stores every key in
// key_size bytes and every value in value_size bytes; shape {0, 0} is a
// byte-string tree (keys 1..kMaxKey bytes, values 0..kMaxValue bytes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/txn.h"
#include "keel/types.h"

namespace keel {
class store;
}

namespace keel::detail {

struct tree_shape {
  std::uint32_t key_size;    // 0: byte-string keys
  std::uint32_t value_size;  // with key_size 0: byte-string values
  bool variable() const noexcept { return key_size == 0; }
};

inline constexpr std::size_t kTreeMaxKey = 1024;
inline constexpr std::uint64_t kTreeMaxValue = 1ull << 30;
// Fixed shapes: key_size <= kTreeMaxKey and key_size + value_size <= kTreeMaxFixedEntry.
inline constexpr std::size_t kTreeMaxFixedEntry = 1336;

// Finds `name` (creating an empty tree in tree_open), checking kind and types.
std::uint64_t tree_open(write_txn& tx, std::string_view name, kind k, tree_shape s, type_desc key, type_desc value);
std::uint64_t tree_find(const read_view& v, std::string_view name, kind k, tree_shape s, type_desc key, type_desc value);
std::uint64_t tree_find(write_txn& tx, std::string_view name, kind k, tree_shape s, type_desc key, type_desc value);

// Where a value goes: `fixed` receives value_size bytes, `var` is assigned.
struct tree_out {
  void* fixed = nullptr;
  std::string* var = nullptr;
};

bool tree_get(const read_view& v, std::uint64_t root, std::string_view key, tree_out out);
bool tree_get(write_txn& tx, std::uint64_t root, std::string_view key, tree_out out);
std::uint64_t tree_size(const read_view& v, std::uint64_t root);
std::uint64_t tree_size(write_txn& tx, std::uint64_t root);

enum class put_mode { insert, assign, append };
// Returns true when the key was added. put_mode::append REQUIRES key above
// every key in the tree (errc::invalid_argument otherwise) and fills leaves
// densely. Throws errc::invalid_argument for a key or value over the limits.
bool tree_put(write_txn& tx, std::uint64_t root, std::string_view key, std::string_view value, put_mode mode);
// Appends n records (encoded key then value, fixed shape) in strictly
// ascending key order, all above the tree's largest key, filling each leaf
// with one copy. errc::invalid_argument when the order is wrong (records
// before the offending one may have been added: abort the transaction).
void tree_append_sorted(write_txn& tx, std::uint64_t root, const void* records, std::size_t n);
// Pointer to a fixed-shape value for in-place change (logged), or nullptr.
void* tree_value_for_update(write_txn& tx, std::uint64_t root, std::string_view key);
bool tree_erase(write_txn& tx, std::uint64_t root, std::string_view key);
// Erases keys in [lo, hi) (a null bound is open). Returns how many.
struct tree_bound {
  std::string_view key;
  bool set = false;
};
std::uint64_t tree_erase_range(write_txn& tx, std::uint64_t root, tree_bound lo, tree_bound hi);
void tree_clear(write_txn& tx, std::uint64_t root);

// Ordered visit of keys in [lo, hi) (ascending; descending when reverse),
// starting strictly after `after` when it is set (for resuming). The
// visitor returns false to stop.
using tree_visit = bool (*)(void* ctx, std::string_view key, std::string_view value);
struct tree_range {
  tree_bound lo, hi;
  bool reverse = false;
  bool lo_exclusive = false;  // (lo, hi) instead of [lo, hi): upper_bound
};
// A visitor of a run of n fixed-shape records (ks key bytes, then vs value
// bytes, each), in visiting order: one call per chunk instead of one per
// entry. Returns false to stop (the rest of the run is then not visited).
using tree_visit_run = bool (*)(void* ctx, const char* records, std::size_t n, std::uint32_t ks, std::uint32_t vs);
// Lock-free: runs in chunks, each one consistent read; the visitor runs
// outside the read sections. Sees keys in order, never one twice, never a
// torn entry; every key present for the whole walk is visited. A
// fixed-shape tree's chunks go to run when it is set, else to f.
void tree_scan(const store& db, std::uint64_t root, const tree_range& r, tree_visit f, void* ctx,
               tree_visit_run run = nullptr);
// Inside a caller's read section (one consistent view; keep it short).
void tree_scan(const read_view& v, std::uint64_t root, const tree_range& r, tree_visit f, void* ctx);
// Inside the write transaction (sees its own writes). f must not write the tree.
void tree_scan(write_txn& tx, std::uint64_t root, const tree_range& r, tree_visit f, void* ctx);

// Invariant check (keys sorted within and across nodes, separators bound
// their children, one depth for all leaves, sibling links agree with the
// in-order walk, minimum fill, counts, blob references). Appends each
// problem as (offset, text) and, when blocks is set, (offset, bytes) of
// every block the tree owns. Never crashes or loops on a corrupt tree.
void tree_check(const read_view& v, std::uint64_t root, std::vector<std::pair<std::uint64_t, std::string>>& problems,
                std::vector<std::pair<std::uint64_t, std::uint64_t>>* blocks = nullptr);
void tree_check(write_txn& tx, std::uint64_t root, std::vector<std::pair<std::uint64_t, std::string>>& problems,
                std::vector<std::pair<std::uint64_t, std::uint64_t>>* blocks = nullptr);

struct tree_stats {
  std::uint64_t entries = 0, height = 0, leaves = 0, branches = 0, blobs = 0;
};
tree_stats tree_stat(const read_view& v, std::uint64_t root);

}  // namespace keel::detail
