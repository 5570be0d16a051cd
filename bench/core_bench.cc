// keel-core-bench: the core's figures, peers in the same run, ratios printed.
//   1. commit latency (p50/p99) of a one-key transaction in each durability
//      mode, beside LMDB (synced, and MDB_NOSYNC);
//   2. open time after a clean close for a 1 GiB and a 10 GiB store;
//   3. read overhead of the seqlock on a hot point read.
// Usage: keel-core-bench [DIR] [--quick]
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <keel/keel.h>
#include <string>
#include <vector>
#ifdef KEEL_BENCH_LMDB
#include <lmdb.h>
#endif

namespace {

using clk = std::chrono::steady_clock;
double ns_since(clk::time_point t) { return std::chrono::duration<double, std::nano>(clk::now() - t).count(); }

struct stats {
  double p50, p99, mean;
};
stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)], sum / v.size()};
}

void wipe(const std::string& p) {
  for (const char* s : {"", "-log", "-journal"}) std::filesystem::remove(p + s);
}

stats keel_commits(const std::string& path, keel::durability mode, int n) {
  wipe(path);
  auto db = keel::store::open(path, {.max_size = 1ull << 30, .mode = mode});
  std::uint64_t block = 0;
  db->write([&](keel::write_txn& tx) {
    block = tx.alloc(8 * 1024);
    std::vector<std::byte> zero(8 * 1024);
    tx.write(block, zero.data(), zero.size());
  });
  std::vector<double> lat;
  lat.reserve(n);
  for (int i = 0; i < n; ++i) {
    const auto t = clk::now();
    db->write([&](keel::write_txn& tx) {
      const std::uint64_t v = i;
      tx.put(keel::ref<std::uint64_t>{block + (i % 1024) * 8}, v);
    });
    lat.push_back(ns_since(t));
  }
  db->close();
  wipe(path);
  return summarize(lat);
}

#ifdef KEEL_BENCH_LMDB
stats lmdb_commits(const std::string& dir, bool nosync, int n) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  MDB_env* env;
  mdb_env_create(&env);
  mdb_env_set_mapsize(env, 1ull << 30);
  if (int rc = mdb_env_open(env, dir.c_str(), nosync ? MDB_NOSYNC : 0, 0600)) {
    fmt::print(stderr, "lmdb: {}\n", mdb_strerror(rc));
    std::exit(1);
  }
  MDB_dbi dbi;
  MDB_txn* txn;
  mdb_txn_begin(env, nullptr, 0, &txn);
  mdb_dbi_open(txn, nullptr, 0, &dbi);
  mdb_txn_commit(txn);
  std::vector<double> lat;
  lat.reserve(n);
  for (int i = 0; i < n; ++i) {
    const auto t = clk::now();
    std::uint64_t k = i % 1024, v = i;
    MDB_val key{8, &k}, val{8, &v};
    mdb_txn_begin(env, nullptr, 0, &txn);
    mdb_put(txn, dbi, &key, &val, 0);
    mdb_txn_commit(txn);
    lat.push_back(ns_since(t));
  }
  mdb_env_close(env);
  std::filesystem::remove_all(dir);
  return summarize(lat);
}
#endif

// Creates a store whose arena spans `bytes`, then times open + first
// lookup (+ close) after a clean close.
struct open_times {
  double open_rw_ms, open_ro_ms, close_ms;
};
open_times open_cost(const std::string& path, std::uint64_t bytes, int reps) {
  wipe(path);
  {
    auto db = keel::store::open(path, {.initial_size = bytes + (64ull << 20), .max_size = bytes * 2});
    constexpr std::uint64_t kChunk = 64ull << 20;
    for (std::uint64_t done = 0; done < bytes; done += kChunk)
      db->write([&](keel::write_txn& tx) {
        const std::uint64_t b = tx.alloc(kChunk);
        for (std::uint64_t o = 0; o < kChunk; o += 1 << 20) tx.put(keel::ref<std::uint64_t>{b + o}, o);
        if (done == 0) {
          tx.open_root("probe", keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<std::uint64_t>());
          tx.set_root("probe", b + (1 << 20), 0);
        }
      });
    db->close();
  }
  std::vector<double> rw, ro, cl;
  for (int i = 0; i < reps; ++i) {
    for (bool read_only : {false, true}) {
      auto t = clk::now();
      auto db = keel::store::open(path, {.create_if_missing = false, .read_only = read_only});
      const auto v = db->read([](const keel::read_view& rv) { return rv.get(keel::ref<std::uint64_t>{rv.find("probe")->root}); });
      (read_only ? ro : rw).push_back(ns_since(t) / 1e6);
      if (v != (1 << 20)) std::abort();
      t = clk::now();
      db->close();
      if (!read_only) cl.push_back(ns_since(t) / 1e6);
    }
  }
  wipe(path);
  return {summarize(rw).p50, summarize(ro).p50, summarize(cl).p50};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "bench-data";
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else dir = argv[i];
  }
#if !defined(__OPTIMIZE__)
  fmt::print("WARNING: built without optimisation; figures are not meaningful\n");
#endif
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/bench.keel";
  const int n = quick ? 300 : 3000;

  fmt::print("== commit latency, one 8-byte key per transaction ({} commits; ns) ==\n", n);
  fmt::print("{:<28} {:>10} {:>10} {:>10}\n", "system", "p50", "p99", "mean");
  auto row = [](const std::string& name, stats s) {
    fmt::print("{:<28} {:>10.0f} {:>10.0f} {:>10.0f}\n", name, s.p50, s.p99, s.mean);
  };
  const stats ks = keel_commits(path, keel::durability::sync, n);
  row("keel sync", ks);
  const stats kb = keel_commits(path, keel::durability::batch, n * 10);
  row("keel batch (10 ms)", kb);
  const stats kc = keel_commits(path, keel::durability::checkpoint, n * 10);
  row("keel checkpoint", kc);
#ifdef KEEL_BENCH_LMDB
  const stats ls = lmdb_commits(dir + "/lmdb", false, n);
  row("lmdb (synced)", ls);
  const stats ln = lmdb_commits(dir + "/lmdb", true, n * 10);
  row("lmdb MDB_NOSYNC", ln);
  fmt::print("ratio keel sync / lmdb synced, p50: {:.2f}x   keel batch / lmdb nosync, p50: {:.2f}x\n",
             ks.p50 / ls.p50, kb.p50 / ln.p50);
#endif

  fmt::print("\n== open after a clean close: open + first lookup, median (ms) ==\n");
  const int reps = quick ? 5 : 21;
  const std::uint64_t small = quick ? (256ull << 20) : (1ull << 30), big = quick ? (1ull << 30) : (10ull << 30);
  const open_times a = open_cost(path, small, reps), b = open_cost(path, big, reps);
  fmt::print("{:<12} {:>12} {:>12} {:>14}\n", "arena", "writable", "read-only", "close (ckpt)");
  fmt::print("{:<12} {:>12.3f} {:>12.3f} {:>14.3f}\n", fmt::format("{} MiB", small >> 20), a.open_rw_ms, a.open_ro_ms,
             a.close_ms);
  fmt::print("{:<12} {:>12.3f} {:>12.3f} {:>14.3f}\n", fmt::format("{} MiB", big >> 20), b.open_rw_ms, b.open_ro_ms,
             b.close_ms);
  fmt::print("ratio {}x larger store: writable open {:.2f}x, read-only open {:.2f}x\n", big / small,
             b.open_rw_ms / a.open_rw_ms, b.open_ro_ms / a.open_ro_ms);

  fmt::print("\n== hot point read: seqlock overhead (ns/read) ==\n");
  {
    wipe(path);
    auto db = keel::store::open(path, {.max_size = 1ull << 30});
    std::uint64_t block = 0;
    db->write([&](keel::write_txn& tx) {
      block = tx.alloc(8 * 1024);
      for (std::uint64_t i = 0; i < 1024; ++i) tx.put(keel::ref<std::uint64_t>{block + i * 8}, i);
    });
    std::vector<std::uint64_t> heap(1024);
    for (std::uint64_t i = 0; i < 1024; ++i) heap[i] = i;
    const std::uint64_t reads = quick ? 2'000'000 : 20'000'000;
    volatile std::uint64_t sink = 0;
    auto t = clk::now();
    for (std::uint64_t i = 0; i < reads; ++i) sink = sink + heap[(i * 7) & 1023];
    const double plain = ns_since(t) / reads;
    t = clk::now();
    for (std::uint64_t i = 0; i < reads; ++i)
      sink = sink + db->read([&](const keel::read_view& v) { return v.get(keel::ref<std::uint64_t>{block + ((i * 7) & 1023) * 8}); });
    const double keel_read = ns_since(t) / reads;
    fmt::print("{:<36} {:>8.2f}\n{:<36} {:>8.2f}\n", "plain heap array load", plain, "keel store::read (seqlock + check)",
               keel_read);
    fmt::print("seqlock + range check overhead: {:.2f} ns per read\n", keel_read - plain);
    db->close();
    wipe(path);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
