// The checker's shared state: a bounded view of a data-file image, the
// report being filled, and every block found so far. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "file/format.h"
#include "keel/check.h"
#include "keel/txn.h"

namespace keel::detail {

// Builds read_views over an image the checker mapped itself (the one
// accessor keel::check needs from include/keel/txn.h).
struct view_access {
  static read_view make(const std::byte* base, std::uint64_t lo, std::uint64_t hi, const std::string* path) {
    read_view v;
    v.base_ = base;
    v.lo_ = lo;
    v.hi_ = hi;
    v.path_ = path;
    return v;
  }
};

}  // namespace keel::detail

namespace keel::checker {

inline constexpr std::size_t kMaxListed = 1000;

// Bytes [0, size) of a data file (the original, mapped read-only, or a
// snapshot). Every read goes through at()/get(), which check the span.
struct image {
  const std::byte* base = nullptr;
  std::uint64_t size = 0;
  bool has(std::uint64_t off, std::uint64_t len) const noexcept { return off <= size && len <= size - off; }
  const std::byte* at(std::uint64_t off, std::uint64_t len) const noexcept { return has(off, len) ? base + off : nullptr; }
  template <class T>
  bool get(std::uint64_t off, T& out) const noexcept {
    if (!has(off, sizeof(T))) return false;
    std::memcpy(&out, base + off, sizeof(T));
    return true;
  }
};

struct block {
  std::uint64_t off, len;
  std::uint32_t owner;  // index into context::owners
  bool free;
};

struct context {
  check_report& report;
  image img;
  std::string path;            // for read_views handed to structure checkers
  std::uint64_t file_size = 0; // bytes of the data file the superblock allows
  std::uint64_t limit = 0;     // arena end: the meta cursor when valid, else the image end
  bool cursor_ok = false;
  std::uint64_t free_found = 0;     // bytes on the free lists
  bool unknown_blocks = false;      // raw structures or unchecked trees own blocks we cannot see
  std::vector<block> blocks;
  std::vector<std::string> owners;
  // Structure bytes scanned so far. A damaged catalog can name one huge
  // table many times; past a budget proportional to the image, further
  // structures are reported as not checked instead of scanned again.
  std::uint64_t work = 0;
  std::uint64_t work_budget() const noexcept { return 16 * img.size + (64ull << 20); }
  progress_fn progress;
  std::uint64_t progress_done = 0, progress_total = 0;

  void problem(const std::string& where, std::uint64_t off, std::string what) {
    if (report.problems.size() >= kMaxListed) {
      ++report.problems_not_listed;
      return;
    }
    report.problems.push_back({where, off, std::move(what)});
  }
  void note(const std::string& where, std::uint64_t off, std::string what) {
    if (report.notes.size() < kMaxListed) report.notes.push_back({where, off, std::move(what)});
  }
  std::uint32_t owner(std::string name) {
    owners.push_back(std::move(name));
    return static_cast<std::uint32_t>(owners.size() - 1);
  }
  void add_block(std::uint64_t off, std::uint64_t len, std::uint32_t who, bool is_free = false) {
    blocks.push_back({off, len, who, is_free});
  }
  // A block of class bytes `len` obeys the allocator's placement rules and
  // lies inside the arena.
  bool block_ok(std::uint64_t off, std::uint64_t len) const noexcept {
    if (off < fmt::kArenaOffset || off % 16 != 0 || off > limit || len > limit - off) return false;
    return len <= fmt::kPage ? (off % fmt::kPage) + len <= fmt::kPage : off % fmt::kPage == 0;
  }
  void advance(std::uint64_t bytes) {
    progress_done += bytes;
    report.bytes_checked += bytes;
    if (progress) progress(std::min(progress_done, progress_total), progress_total);
  }
};

std::string hex(std::uint64_t v);

// Meta page, free lists, catalog, every structure, then block overlap and
// accounting (check_arena.cc). sb is the superblock describing the image.
void check_data(context& c, const fmt::superblock& sb);

// One hash map or bytes map (check_maps.cc). Returns live entries.
void check_hash_map(context& c, const std::string& where, bool bytes, std::uint32_t key_size,
                    std::uint32_t value_size, std::uint64_t root);
// One tree (check_maps.cc); false when the tree checker is not built in.
bool check_tree(context& c, const std::string& where, std::uint64_t root);

}  // namespace keel::checker
