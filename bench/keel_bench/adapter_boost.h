// keel-bench adapter: boost::unordered_map in a Boost.Interprocess
// managed_mapped_file, the do-it-yourself mmap store. No transactions and
// no crash consistency (a writer killed mid-insert leaves the file
// unusable), no safe concurrent readers: bulk and read workloads only. The
// file is grown (unmap, grow, remap) when free space runs low.
#pragma once

#include <fmt/core.h>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_mapped_file.hpp>
#include <boost/unordered_map.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "common.h"

namespace kb {

template <class V>
class boost_map {
  using seg_t = boost::interprocess::managed_mapped_file;
  using pair_t = std::pair<const std::uint64_t, V>;
  using alloc_t = boost::interprocess::allocator<pair_t, seg_t::segment_manager>;
  using map_t = boost::unordered_map<std::uint64_t, V, boost::hash<std::uint64_t>, std::equal_to<std::uint64_t>, alloc_t>;

 public:
  using value_type = V;
  static constexpr const char* kName = "boost";
  static constexpr bool kTxn = false, kPersistent = false, kOrdered = false, kMultiProcess = false;
  static constexpr mode kDefaultMode = mode::none;
  static std::string data_file(const std::string& dir) { return file(dir); }

  explicit boost_map(const config& c)
      : initial_(std::max<std::uint64_t>(64ull << 20, c.num * (sizeof(V) + 120))), huge_(c.huge_pages) {}
  static std::string file(const std::string& dir) { return dir + "/boost.bin"; }

  void create(const std::string& dir, mode) {
    drop(dir);
    std::filesystem::create_directories(dir);
    path_ = file(dir);
    size_ = initial_;
    seg_ = std::make_unique<seg_t>(boost::interprocess::create_only, path_.c_str(), size_);
    if (huge_) huge_advise(seg_->get_address(), seg_->get_size());
    map_ = seg_->construct<map_t>("map")(0, boost::hash<std::uint64_t>(), std::equal_to<std::uint64_t>(),
                                         alloc_t(seg_->get_segment_manager()));
  }
  void open(const std::string&, mode, bool) { die("boost: reopen not supported by this adapter"); }
  void close() {
    map_ = nullptr;
    if (seg_) seg_->flush();
    seg_.reset();
  }
  static void drop(const std::string& dir) { std::filesystem::remove(file(dir)); }

  void begin() {}
  void commit() {}
  void abort() { die("boost: no transactions to abort"); }
  void put(std::uint64_t k, const V& v) {
    if ((++puts_ & 1023) == 0) room();
    (*map_)[k] = v;
  }
  bool erase(std::uint64_t k) { return map_->erase(k) != 0; }

  void read_begin() {}
  void read_end() {}
  [[gnu::always_inline]] bool get(std::uint64_t k, V& out) {
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
  std::uint64_t scan(std::uint64_t, std::uint64_t, F&&) {
    return 0;
  }
  std::string describe() {
    return fmt::format("used {} of a {} file, grown {} times", human_bytes(double(seg_->get_size() - seg_->get_free_memory())),
                       human_bytes(double(seg_->get_size())), grows_);
  }
  std::uint64_t recovered() { return 0; }

 private:
  // Room for the next 1,024 nodes and a rehash's new bucket array.
  void room() {
    const std::uint64_t need = 1024 * (sizeof(V) + 96) + map_->bucket_count() * 8 * 3 + (16ull << 20);
    if (seg_->get_free_memory() >= need) return;
    seg_.reset();
    seg_t::grow(path_.c_str(), size_);
    size_ *= 2;
    seg_ = std::make_unique<seg_t>(boost::interprocess::open_only, path_.c_str());
    if (huge_) huge_advise(seg_->get_address(), seg_->get_size());
    map_ = seg_->find<map_t>("map").first;
    if (!map_) die("boost: map not found after growing the file");
    ++grows_;
  }

  std::uint64_t initial_, size_ = 0, puts_ = 0;
  bool huge_;
  int grows_ = 0;
  std::string path_;
  std::unique_ptr<seg_t> seg_;
  map_t* map_ = nullptr;
};

}  // namespace kb
