// keel-bench adapter: keel::hash_map<u64, val<N>> in one store file.
// Every lookup is its own lock-free read (store::read: seqlock + range
// checks), as a reader in another process would do it.
#pragma once

#include <fmt/core.h>

#include <filesystem>
#include <keel/hash_map.h>
#include <keel/keel.h>
#include <memory>
#include <optional>
#include <string>

#include "common.h"

template <std::size_t N>
struct keel::type_name<kb::val<N>> {
  static std::string_view get() {
    static const std::string s = "keel-bench/val" + std::to_string(N);
    return s;
  }
};

namespace kb {

inline keel::durability keel_mode(mode m) {
  switch (m) {
    case mode::sync: return keel::durability::sync;
    case mode::checkpoint: return keel::durability::checkpoint;
    default: return keel::durability::batch;
  }
}

// What the Keel adapters share: one store file, Keel's default options
// except the durability mode (what a user gets) and, with
// --huge_pages=1, options::huge_pages on; one structure named
// "bench", one write transaction at a time. M is the structure type.
template <class V, class M>
class keel_store {
 public:
  using value_type = V;
  static constexpr bool kTxn = true, kPersistent = true, kMultiProcess = true;
  static constexpr mode kDefaultMode = mode::batch;  // keel::options default

  keel_store(std::string file_name, const config& c) : file_name_(std::move(file_name)), huge_pages_(c.huge_pages) {}

  void create(const std::string& dir, mode m) {
    drop_files(path(dir));
    std::filesystem::create_directories(dir);
    open(dir, m, false);
  }
  void open(const std::string& dir, mode m, bool read_only) {
    keel::options o;
    o.mode = keel_mode(m);
    o.read_only = read_only;
    o.create_if_missing = !read_only;
    o.huge_pages = huge_pages_;
    db_ = keel::store::open(path(dir), o);
    map_.emplace(M::open(*db_, "bench"));
  }
  void close() {
    tx_.reset();
    map_.reset();
    if (db_) db_->close();
    db_.reset();
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
  bool erase(std::uint64_t k) { return map_->erase(*tx_, k); }

  void read_begin() {}
  void read_end() {}
  [[gnu::always_inline]] bool get(std::uint64_t k, V& out) {
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
  std::string describe() {
    const keel::store_info in = db_->info();
    const double raw = double(map_->size()) * double(sizeof(std::uint64_t) + sizeof(V));
    std::string vs_raw = raw > 0 ? fmt::format(" = {:.2f}x the raw keys+values", double(in.file_size) / raw) : "";
    return fmt::format("file {}{}, arena {}, log {}", human_bytes(double(in.file_size)), vs_raw,
                       human_bytes(double(in.arena_used)), human_bytes(double(in.log_bytes)));
  }
  std::uint64_t recovered() { return db_->info().recovered_records; }

 protected:
  static void drop_files(const std::string& file) {
    for (const char* s : {"", "-log", "-journal"}) std::filesystem::remove(file + s);
  }
  std::string path(const std::string& dir) const { return dir + "/" + file_name_; }

  std::string file_name_;
  bool huge_pages_ = false;
  std::unique_ptr<keel::store> db_;
  std::optional<M> map_;
  std::optional<keel::write_txn> tx_;
};

template <class V>
class keel_hash : public keel_store<V, keel::hash_map<std::uint64_t, V>> {
 public:
  static constexpr const char* kName = "keel";
  static constexpr bool kOrdered = false;

  explicit keel_hash(const config& c) : keel_store<V, keel::hash_map<std::uint64_t, V>>("hash.keel", c) {}
  static std::string file(const std::string& dir) { return dir + "/hash.keel"; }
  static std::string data_file(const std::string& dir) { return file(dir); }
  static void drop(const std::string& dir) { keel_hash::drop_files(file(dir)); }

  template <class F>
  std::uint64_t scan(std::uint64_t, std::uint64_t, F&&) {
    return 0;
  }
};

}  // namespace kb
