// keel-bench adapters: absl::flat_hash_map and absl::btree_map in RAM, the
// ceiling (no file, no durability, no other process can see them).
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>
#include <fmt/core.h>
#include <malloc.h>

#include <memory>
#include <string>

#include "common.h"

namespace kb {

template <class Map, bool Ordered>
class ram_map {
 public:
  using value_type = typename Map::mapped_type;
  static constexpr bool kTxn = false, kPersistent = false, kOrdered = Ordered, kMultiProcess = false;
  static constexpr mode kDefaultMode = mode::none;
  static std::string data_file(const std::string&) { return ""; }

  explicit ram_map(const config& c) : huge_(c.huge_pages) {}
  void create(const std::string&, mode) { map_ = std::make_unique<Map>(typename Map::allocator_type(huge_)); }
  void open(const std::string&, mode, bool) { die("RAM maps cannot be reopened"); }
  void close() {
    map_.reset();
    malloc_trim(0);
  }
  static void drop(const std::string&) {}

  void begin() {}
  void commit() {}
  void abort() { die("RAM maps have no transactions to abort"); }
  void put(std::uint64_t k, const value_type& v) { map_->insert_or_assign(k, v); }
  bool erase(std::uint64_t k) { return map_->erase(k) != 0; }
  // Keys above the maximum: insert with the end as hint (ordered maps).
  void append(std::uint64_t k, const value_type& v) { map_->emplace_hint(map_->end(), k, v); }

  void read_begin() {}
  void read_end() {}
  [[gnu::always_inline]] bool get(std::uint64_t k, value_type& out) {
    const auto it = map_->find(k);
    if (it == map_->end()) return false;
    out = it->second;
    return true;
  }
  std::uint64_t size() { return map_->size(); }
  template <class F>
  void for_each(F&& f) {
    for (const auto& [k, v] : *map_) f(k, v);
  }
  template <class F>
  std::uint64_t scan(std::uint64_t lo, std::uint64_t n, F&& f) {
    if constexpr (Ordered) {
      std::uint64_t seen = 0;
      for (auto it = map_->lower_bound(lo); it != map_->end() && seen < n; ++it, ++seen) f(it->first, it->second);
      return seen;
    } else {
      return 0;
    }
  }
  std::string describe() {
    const struct mallinfo2 mi = mallinfo2();
    return fmt::format("heap {}", human_bytes(double(mi.uordblks + mi.hblkhd + huge_bytes())));
  }
  std::uint64_t recovered() { return 0; }

 private:
  bool huge_;
  std::unique_ptr<Map> map_;
};

template <class V>
using absl_hash_t = absl::flat_hash_map<std::uint64_t, V, absl::Hash<std::uint64_t>, std::equal_to<std::uint64_t>,
                                        ram_allocator<std::pair<const std::uint64_t, V>>>;
template <class V>
using absl_btree_t =
    absl::btree_map<std::uint64_t, V, std::less<std::uint64_t>, ram_allocator<std::pair<const std::uint64_t, V>>>;

template <class V>
struct absl_hash : ram_map<absl_hash_t<V>, false> {
  static constexpr const char* kName = "absl";
  using ram_map<absl_hash_t<V>, false>::ram_map;
};
template <class V>
struct absl_btree : ram_map<absl_btree_t<V>, true> {
  static constexpr const char* kName = "btree";
  using ram_map<absl_btree_t<V>, true>::ram_map;
};

}  // namespace kb
