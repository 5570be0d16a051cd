// keel-bench adapter: keel::tree_map<u64, val<N>> (B+tree) in one store
// file. Lookups are single lock-free reads; scans use for_each(lo, hi, f),
// which walks in chunks while writers commit.
#pragma once

#include <fmt/core.h>

#include <filesystem>
#include <keel/keel.h>
#include <keel/tree_map.h>
#include <memory>
#include <optional>
#include <string>

#include "adapter_keel.h"
#include "common.h"

namespace kb {

template <class V>
class keel_tree : public keel_store<V, keel::tree_map<std::uint64_t, V>> {
 public:
  static constexpr const char* kName = "keel-tree";
  static constexpr bool kOrdered = true;

  explicit keel_tree(const config& c) : keel_store<V, keel::tree_map<std::uint64_t, V>>("tree.keel", c) {}
  static std::string file(const std::string& dir) { return dir + "/tree.keel"; }
  static std::string data_file(const std::string& dir) { return file(dir); }
  static void drop(const std::string& dir) { keel_tree::drop_files(file(dir)); }

  void append(std::uint64_t k, const V& v) { this->map_->append(*this->tx_, k, v); }
  template <class F>
  std::uint64_t scan(std::uint64_t lo, std::uint64_t n, F&& f) {
    std::uint64_t seen = 0;
    if (n == 0) return 0;
    this->map_->for_each(lo, ~0ull, [&](const std::uint64_t& k, const V& v) {
      f(k, v);
      return ++seen < n;
    });
    return seen;
  }
};

}  // namespace kb
