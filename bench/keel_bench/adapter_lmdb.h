// keel-bench adapter: LMDB, one unnamed database with MDB_INTEGERKEY (the
// u64 keys in native order), MDB_WRITEMAP (LMDB's fastest write path).
// Modes: sync = LMDB's default synced commit (data, then meta page: two
// syncs); batch = MDB_NOSYNC plus a thread calling mdb_env_sync every 10 ms
// (Keel's default batch window); checkpoint = MDB_NOSYNC, synced at close.
// Lookups run in a read transaction renewed every 1,000 gets (LMDB's cheap
// path; a snapshot may be up to 1,000 gets old).
#pragma once

#include <fmt/core.h>
#include <lmdb.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "common.h"

namespace kb {

inline void lmdb_check(int rc, const char* what) {
  if (rc) die(fmt::format("lmdb {}: {}", what, mdb_strerror(rc)));
}

template <class V>
class lmdb_kv {
 public:
  using value_type = V;
  static constexpr const char* kName = "lmdb";
  static constexpr bool kTxn = true, kPersistent = true, kOrdered = true, kMultiProcess = true;
  static constexpr mode kDefaultMode = mode::sync;  // LMDB default flags
  static std::string data_file(const std::string& dir) { return dir + "/data.mdb"; }

  explicit lmdb_kv(const config& c)
      : map_size_(std::max<std::uint64_t>(1ull << 30, (c.num + c.single_ops * 4 + c.wicked_ops) * (sizeof(V) + 8) * 8)),
        huge_(c.huge_pages) {}
  ~lmdb_kv() { close(); }

  void create(const std::string& dir, mode m) {
    drop(dir);
    open(dir, m, false);
  }
  void open(const std::string& dir, mode m, bool read_only) {
    std::filesystem::create_directories(dir);
    lmdb_check(mdb_env_create(&env_), "env_create");
    lmdb_check(mdb_env_set_mapsize(env_, map_size_), "set_mapsize");
    lmdb_check(mdb_env_set_maxreaders(env_, 256), "set_maxreaders");
    unsigned flags = MDB_NOTLS | (read_only ? MDB_RDONLY : MDB_WRITEMAP);
    if (m == mode::batch || m == mode::checkpoint) flags |= MDB_NOSYNC;
    lmdb_check(mdb_env_open(env_, dir.c_str(), flags, 0600), "env_open");
    if (huge_) huge_advise_file(data_file(dir));  // mdb_env_info gives the address only for MDB_FIXEDMAP
    MDB_txn* t;
    lmdb_check(mdb_txn_begin(env_, nullptr, read_only ? MDB_RDONLY : 0, &t), "txn_begin");
    lmdb_check(mdb_dbi_open(t, nullptr, MDB_INTEGERKEY, &dbi_), "dbi_open");
    lmdb_check(mdb_txn_commit(t), "commit");
    lmdb_check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &rtxn_), "txn_begin ro");
    mdb_txn_reset(rtxn_);
    if (m == mode::batch && !read_only) {
      stop_ = false;
      flusher_ = std::thread([this] {
        while (!stop_.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          mdb_env_sync(env_, 1);
        }
      });
    }
    read_only_ = read_only;
  }
  void close() {
    if (!env_) return;
    if (flusher_.joinable()) {
      stop_ = true;
      flusher_.join();
    }
    if (wtxn_) mdb_txn_abort(wtxn_);
    wtxn_ = nullptr;
    if (rtxn_) mdb_txn_abort(rtxn_);
    rtxn_ = nullptr;
    if (!read_only_) mdb_env_sync(env_, 1);
    mdb_env_close(env_);
    env_ = nullptr;
  }
  static void drop(const std::string& dir) { std::filesystem::remove_all(dir); }

  void begin() { lmdb_check(mdb_txn_begin(env_, nullptr, 0, &wtxn_), "txn_begin"); }
  void commit() {
    lmdb_check(mdb_txn_commit(wtxn_), "commit");
    wtxn_ = nullptr;
  }
  void abort() {
    mdb_txn_abort(wtxn_);
    wtxn_ = nullptr;
  }
  void put(std::uint64_t k, const V& v) {
    MDB_val key{8, &k}, val{sizeof(V), const_cast<V*>(&v)};
    lmdb_check(mdb_put(wtxn_, dbi_, &key, &val, 0), "put");
  }
  // Keys above the current maximum (fill-seq): LMDB's MDB_APPEND path.
  void append(std::uint64_t k, const V& v) {
    MDB_val key{8, &k}, val{sizeof(V), const_cast<V*>(&v)};
    lmdb_check(mdb_put(wtxn_, dbi_, &key, &val, MDB_APPEND), "put append");
  }
  bool erase(std::uint64_t k) {
    MDB_val key{8, &k};
    const int rc = mdb_del(wtxn_, dbi_, &key, nullptr);
    if (rc == MDB_NOTFOUND) return false;
    lmdb_check(rc, "del");
    return true;
  }

  void read_begin() {
    lmdb_check(mdb_txn_renew(rtxn_), "txn_renew");
    reading_ = true;
  }
  void read_end() {
    mdb_txn_reset(rtxn_);
    reading_ = false;
  }
  [[gnu::always_inline]] bool get(std::uint64_t k, V& out) {
    const bool own = !reading_;
    if (own) read_begin();
    MDB_val key{8, &k}, val;
    const int rc = mdb_get(rtxn_, dbi_, &key, &val);
    bool found = false;
    if (rc == 0) {
      if (val.mv_size != sizeof(V)) die("lmdb: value of the wrong size");
      std::memcpy(&out, val.mv_data, sizeof(V));
      found = true;
    } else if (rc != MDB_NOTFOUND) {
      lmdb_check(rc, "get");
    }
    if (own) read_end();
    return found;
  }
  std::uint64_t size() {
    read_begin();
    MDB_stat st;
    lmdb_check(mdb_stat(rtxn_, dbi_, &st), "stat");
    read_end();
    return st.ms_entries;
  }
  template <class F>
  void for_each(F&& f) {
    scan_impl(nullptr, ~0ull, f);
  }
  template <class F>
  std::uint64_t scan(std::uint64_t lo, std::uint64_t n, F&& f) {
    return scan_impl(&lo, n, f);
  }
  std::string describe() {
    MDB_envinfo ei;
    MDB_stat es;
    mdb_env_info(env_, &ei);
    mdb_env_stat(env_, &es);
    return fmt::format("pages used {}", human_bytes(double(ei.me_last_pgno + 1) * es.ms_psize));
  }
  std::uint64_t recovered() { return 0; }

 private:
  template <class F>
  std::uint64_t scan_impl(const std::uint64_t* lo, std::uint64_t n, F& f) {
    read_begin();
    MDB_cursor* cur;
    lmdb_check(mdb_cursor_open(rtxn_, dbi_, &cur), "cursor_open");
    std::uint64_t k = lo ? *lo : 0;
    MDB_val key{8, &k}, val;
    int rc = mdb_cursor_get(cur, &key, &val, lo ? MDB_SET_RANGE : MDB_FIRST);
    std::uint64_t seen = 0;
    V v;
    while (rc == 0 && seen < n) {
      std::uint64_t kk;
      std::memcpy(&kk, key.mv_data, 8);
      std::memcpy(&v, val.mv_data, sizeof(V));
      f(kk, v);
      ++seen;
      rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) lmdb_check(rc, "cursor_get");
    mdb_cursor_close(cur);
    read_end();
    return seen;
  }

  std::uint64_t map_size_;
  bool huge_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_txn* wtxn_ = nullptr;
  MDB_txn* rtxn_ = nullptr;
  bool reading_ = false, read_only_ = false;
  std::atomic<bool> stop_{false};
  std::thread flusher_;
};

}  // namespace kb
