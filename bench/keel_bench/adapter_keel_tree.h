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
class keel_tree {
 public:
  using value_type = V;
  static constexpr const char* kName = "keel-tree";
  static constexpr bool kTxn = true, kPersistent = true, kOrdered = true, kMultiProcess = true;
  static constexpr mode kDefaultMode = mode::batch;

  explicit keel_tree(const config&) {}
  static std::string file(const std::string& dir) { return dir + "/tree.keel"; }
  static std::string data_file(const std::string& dir) { return file(dir); }

  void create(const std::string& dir, mode m) {
    drop(dir);
    std::filesystem::create_directories(dir);
    open(dir, m, false);
  }
  void open(const std::string& dir, mode m, bool read_only) {
    keel::options o;
    o.mode = keel_mode(m);
    o.read_only = read_only;
    o.create_if_missing = !read_only;
    db_ = keel::store::open(file(dir), o);
    map_.emplace(keel::tree_map<std::uint64_t, V>::open(*db_, "bench"));
  }
  void close() {
    tx_.reset();
    map_.reset();
    if (db_) db_->close();
    db_.reset();
  }
  static void drop(const std::string& dir) {
    for (const char* s : {"", "-log", "-journal"}) std::filesystem::remove(file(dir) + s);
  }

  void begin() { tx_.emplace(db_->begin_write()); }
  void commit() {
    tx_->commit();
    tx_.reset();
  }
  void abort() {
    tx_->abort();
    tx_.reset();
  }
  void put(std::uint64_t k, const V& v) { map_->put(*tx_, k, v); }
  void append(std::uint64_t k, const V& v) { map_->append(*tx_, k, v); }
  bool erase(std::uint64_t k) { return map_->erase(*tx_, k); }

  void read_begin() {}
  void read_end() {}
  bool get(std::uint64_t k, V& out) {
    if (auto v = map_->get(k)) {
      out = *v;
      return true;
    }
    return false;
  }
  std::uint64_t size() { return map_->size(); }
  template <class F>
  void for_each(F&& f) {
    map_->for_each([&](const std::uint64_t& k, const V& v) { f(k, v); });
  }
  template <class F>
  std::uint64_t scan(std::uint64_t lo, std::uint64_t n, F&& f) {
    std::uint64_t seen = 0;
    if (n == 0) return 0;
    map_->for_each(lo, ~0ull, [&](const std::uint64_t& k, const V& v) {
      f(k, v);
      return ++seen < n;
    });
    return seen;
  }
  std::string describe() {
    const keel::store_info in = db_->info();
    return fmt::format("file {}, arena {}, log {}", human_bytes(double(in.file_size)), human_bytes(double(in.arena_used)),
                       human_bytes(double(in.log_bytes)));
  }
  std::uint64_t recovered() { return db_->info().recovered_records; }

 private:
  std::unique_ptr<keel::store> db_;
  std::optional<keel::tree_map<std::uint64_t, V>> map_;
  std::optional<keel::write_txn> tx_;
};

}  // namespace kb
