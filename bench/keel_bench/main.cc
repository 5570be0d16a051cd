// keel-bench: named workloads run in order against Keel and the stores a
// user would pick instead, in one process and one run, printed per system
// and then as ratios (shared machines are noisy; ratios within one run are
// what to compare). See docs/BENCH.md.
//
//   keel-bench [--num=N] [--value_size=16|32|100|256|1000]
//              [--benchmarks=fill-seq,append,fill-random,read-random,read-miss,
//                            read-seq,scan,overwrite,erase,wicked,restart,multi-process,
//                            read-interleaved,restart-interleaved,fill-interleaved]
//              [--systems=keel,keel-tree,lmdb,boost,absl,btree,redis]
//              [--quick] [--dir=DIR] [--json=FILE] [--histogram] ... (--help)
#include <fmt/core.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <keel/version.h>
#include <string>

#include "restart.h"
#include "systems.h"

namespace kb {

clk::time_point g_main_start;
extern bool g_histogram_tables;

const std::vector<system_entry>& all_systems() {
  static const std::vector<system_entry> s = {
      {"keel", run_keel, child_keel, "keel::hash_map<u64, V>, one lock-free read per get", live_keel, restart_store_keel,
       fill_keel},
#ifdef KEEL_BENCH_TREE
      {"keel-tree", run_keel_tree, child_keel_tree, "keel::tree_map<u64, V> (B+tree)", live_keel_tree, restart_store_keel_tree},
#endif
      {"lmdb", run_lmdb, child_lmdb, "LMDB, MDB_INTEGERKEY | MDB_WRITEMAP", live_lmdb, restart_store_lmdb, fill_lmdb},
      {"boost", run_boost, nullptr, "boost::unordered_map in a Boost.Interprocess managed_mapped_file", live_boost,
       nullptr, fill_boost},
      {"absl", run_absl, nullptr, "absl::flat_hash_map in RAM (the ceiling)", live_absl, nullptr, fill_absl},
      {"btree", run_btree, nullptr, "absl::btree_map in RAM (the ordered ceiling)", live_btree},
      {"redis", run_redis, nullptr, "redis-server: restart (RDB load) only"},
  };
  return s;
}

namespace {

const std::vector<std::string> kBenchmarks = {"fill-seq", "append",   "fill-random", "read-random",
                                              "read-miss", "read-seq", "scan",        "overwrite",
                                              "erase",     "wicked",   "restart",     "multi-process",
                                              "read-interleaved", "restart-interleaved", "fill-interleaved"};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    const std::size_t c = std::min(s.find(',', at), s.size());
    if (c > at) out.push_back(s.substr(at, c - at));
    at = c + 1;
  }
  return out;
}

std::uint64_t count(const std::string& v, const std::string& flag) {
  char* end = nullptr;
  const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end) die(fmt::format("{} wants a non-negative integer, got '{}'", flag, v));
  return x;
}

mode parse_mode(const std::string& s) {
  if (s == "sync") return mode::sync;
  if (s == "batch") return mode::batch;
  if (s == "checkpoint") return mode::checkpoint;
  die("unknown mode '" + s + "' (sync, batch, checkpoint)");
}

void usage() {
  fmt::print(
      "usage: keel-bench [flags]   (docs/BENCH.md)\n"
      "  --num=N             entries in a filled store (default 1000000)\n"
      "  --value_size=B      16, 32, 100, 256 or 1000 (default 32)\n"
      "  --benchmarks=a,b    workloads, run in this order per system (default all):\n"
      "                      fill-seq, append, fill-random, read-random, read-miss, read-seq, scan,\n"
      "                      overwrite, erase, wicked, restart, multi-process, read-interleaved,\n"
      "                      restart-interleaved, fill-interleaved\n"
      "  --systems=a,b       keel, keel-tree, lmdb, boost, absl, btree, redis (default all built)\n"
      "  --quick             tiny sizes (CI); exit status still reflects every check\n"
      "  --dir=DIR           where files go (default a temp dir under the build dir, removed at the end)\n"
      "  --json=FILE         also write every result as JSON\n"
      "  --histogram         print each latency histogram in full\n"
      "  --txn=10000,1       operations per transaction of write workloads\n"
      "  --modes=checkpoint,batch,sync   durability modes of write workloads (reads run in the first)\n"
      "  --reads=N           lookups per read workload (default min(num, 2M))\n"
      "  --single_ops=N      operations of a 1-per-transaction workload, batch/checkpoint (default 2000)\n"
      "  --sync_ops=N        ... in sync mode (default 500)\n"
      "  --reps=N            passes of each read workload; the best is reported (default 3)\n"
      "  --sample=N          1 in N operations timed alone for the histogram (default 8)\n"
      "  --restart_reps=N    opens per system in restart and rounds of restart-interleaved (default 11)\n"
      "  --kill_reps=N --kill_after_ms=MS --redis_reps=N\n"
      "  --readers=R --mp_seconds=S --mp_rounds=N   multi-process: reader processes, seconds per\n"
      "                      phase, rounds (the median round is reported; default 3)\n"
      "  --huge_pages=0|1        ask every system for 2 MiB pages: keel::options::huge_pages, MADV_HUGEPAGE\n"
      "                        on LMDB's and Boost's maps and the RAM maps' tables (default 0, as Keel's)\n"
      "  --wicked_ops=N --scan_len=N\n"
      "  --interleave_rounds=N   read-interleaved: rounds of one lookup pass per system (default 11)\n"
      "  --fill_rounds=N     fill-interleaved: rounds of one fresh fill per system, largest --txn,\n"
      "                      first --modes (default 5)\n");
}

std::string first_line_with(const char* file, const char* key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) {
      const auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(line.find_first_not_of(" \t", c + 1));
    }
  return "?";
}

std::string fs_type(const std::string& dir) {
  struct statfs s;
  if (::statfs(dir.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    case 0x9123683E: return "btrfs";
    default: return fmt::format("fs 0x{:x}", static_cast<unsigned long>(s.f_type));
  }
}

void describe_machine(const config& c) {
  utsname u;
  ::uname(&u);
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", std::localtime(&now));
  fmt::print("keel-bench (keel {}), {}\n", KEEL_VERSION, date);
  fmt::print("machine: {} x {}, {} RAM, Linux {}; files on {} ({})\n", ::sysconf(_SC_NPROCESSORS_ONLN),
             first_line_with("/proc/cpuinfo", "model name"), first_line_with("/proc/meminfo", "MemTotal"), u.release,
             fs_type(c.dir), c.dir);
  fmt::print("build: g++ {}, {}\n", __VERSION__,
#if defined(__OPTIMIZE__)
             "optimised"
#else
             "NOT optimised"
#endif
  );
#if !defined(__OPTIMIZE__)
  fmt::print("WARNING: built without optimisation; figures are not meaningful\n");
#endif
#if !defined(NDEBUG)
  fmt::print("WARNING: assertions are enabled (NDEBUG not defined)\n");
#endif
  fmt::print("load average at start: {}\n", loadavg());
  // What a histogram sample carries besides the operation: two clock reads.
  {
    std::uint64_t best = ~0ull;
    for (int i = 0; i < 100000; ++i) {
      const auto a = clk::now();
      const auto b = clk::now();
      best = std::min<std::uint64_t>(best, std::uint64_t((b - a).count()));
    }
    fmt::print("timer: steady_clock read-to-read {} ns (included in every histogram sample, not in time/op of reads)\n", best);
  }
  fmt::print("num={} value_size={} reads={} txn=", c.num, c.value_size, c.n_reads());
  for (std::size_t i = 0; i < c.txn.size(); ++i) fmt::print("{}{}", i ? "," : "", c.txn[i]);
  fmt::print(" modes=");
  for (std::size_t i = 0; i < c.modes.size(); ++i) fmt::print("{}{}", i ? "," : "", mode_name(c.modes[i]));
  fmt::print(" single_ops={} sync_ops={} reps={} huge_pages={}\n", c.single_ops, c.sync_ops, c.reps, c.huge_pages ? 1 : 0);
  fmt::print("systems:\n");
  for (const auto& s : all_systems())
    if (c.want_system(s.name)) fmt::print("  {:<10} {}\n", s.name, s.what);
  fmt::print("\n{:<14} {:<10} {:<26} {:>14} {:>10} {:>12}  latency (1 in {} ops timed alone)\n", "workload", "system",
             "variant", "time/op", "ops/s", "MB/s", c.sample);
}

}  // namespace
}  // namespace kb

int main(int argc, char** argv) {
  using namespace kb;
  g_main_start = clk::now();
  config c;
  child_args ca;
  std::string system, benchmarks, systems;
  bool dir_given = false;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args)
    if (a == "--quick") {
      c.quick = true;
      c.num = 20'000;
      c.single_ops = 300;
      c.sync_ops = 30;
      c.reps = 1;
      c.restart_reps = 3;
      c.kill_reps = 2;
      c.kill_after_ms = 200;
      c.redis_reps = 1;
      c.mp_seconds = 0.5;
      c.mp_rounds = 1;
      c.interleave_rounds = 2;
      c.fill_rounds = 2;
      c.wicked_ops = 40'000;
    }
  for (const auto& a : args) {
    const auto eq = a.find('=');
    const std::string k = a.substr(0, eq), v = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (k == "--quick") continue;
    else if (k == "--help" || k == "-h") return usage(), 0;
    else if (k == "--histogram") g_histogram_tables = true;
    else if (k == "--inject_mismatch") c.inject_mismatch = true;
    else if (k == "--num") c.num = count(v, k);
    else if (k == "--value_size") c.value_size = count(v, k);
    else if (k == "--reads") c.reads = count(v, k);
    else if (k == "--benchmarks") benchmarks = v;
    else if (k == "--systems" || k == "--system") (k == "--system" ? system : systems) = v;
    else if (k == "--dir") c.dir = v, dir_given = true;
    else if (k == "--json") c.json = v;
    else if (k == "--txn") {
      c.txn.clear();
      for (const auto& t : split(v)) c.txn.push_back(std::max<std::uint64_t>(1, count(t, k)));
    } else if (k == "--modes") {
      c.modes.clear();
      for (const auto& m : split(v)) c.modes.push_back(parse_mode(m));
    } else if (k == "--single_ops") c.single_ops = count(v, k);
    else if (k == "--sync_ops") c.sync_ops = count(v, k);
    else if (k == "--reps") c.reps = std::max(1, int(count(v, k)));
    else if (k == "--sample") c.sample = std::max(1, int(count(v, k)));
    else if (k == "--restart_reps") c.restart_reps = std::max(1, int(count(v, k)));
    else if (k == "--kill_reps") c.kill_reps = int(count(v, k));
    else if (k == "--kill_after_ms") c.kill_after_ms = int(count(v, k));
    else if (k == "--redis_reps") c.redis_reps = std::max(1, int(count(v, k)));
    else if (k == "--readers") c.readers = std::max(1, int(count(v, k)));
    else if (k == "--mp_seconds") c.mp_seconds = std::strtod(v.c_str(), nullptr);
    else if (k == "--mp_rounds") c.mp_rounds = std::atoi(v.c_str());
    else if (k == "--interleave_rounds") c.interleave_rounds = std::atoi(v.c_str());
    else if (k == "--fill_rounds") c.fill_rounds = std::atoi(v.c_str());
    else if (k == "--huge_pages") c.huge_pages = v != "0";
    else if (k == "--wicked_ops") c.wicked_ops = count(v, k);
    else if (k == "--scan_len") c.scan_len = std::max<std::uint64_t>(1, count(v, k));
    // Child sub-modes (restart, multi-process, out_of_core.sh).
    else if (k == "--child") ca.kind = v;
    else if (k == "--ack") ca.ack = v;
    else if (k == "--check_commit") ca.check_commit = std::int64_t(count(v, k));
    else if (k == "--rep") ca.rep = int(count(v, k));
    else if (k == "--start_ns") ca.start_ns = count(v, k);
    else if (k == "--seconds") ca.seconds = std::strtod(v.c_str(), nullptr);
    else {
      fmt::print(stderr, "keel-bench: unknown flag {}\n", a);
      usage();
      return 2;
    }
  }
  if (c.num < 100) die("--num must be at least 100");
  if (c.mp_rounds < 1 || c.mp_seconds <= 0) die("--mp_rounds must be at least 1 and --mp_seconds above 0");
  if (c.interleave_rounds < 1) die("--interleave_rounds must be at least 1");
  if (c.fill_rounds < 1) die("--fill_rounds must be at least 1");

  if (!ca.kind.empty()) {
    for (const auto& s : all_systems())
      if (system == s.name) {
        if (!s.child) die(std::string(s.name) + " has no child modes");
        try {
          return s.child(c, ca);
        } catch (const std::exception& e) {
          die(fmt::format("child {} {}: {}", ca.kind, system, e.what()));
        }
      }
    die("--child needs --system=keel|keel-tree|lmdb");
  }

  c.benchmarks = benchmarks.empty() ? kBenchmarks : split(benchmarks);
  for (const auto& b : c.benchmarks)
    if (std::find(kBenchmarks.begin(), kBenchmarks.end(), b) == kBenchmarks.end()) die("unknown benchmark " + b);
  if (systems.empty())
    for (const auto& s : all_systems()) c.systems.push_back(s.name);
  else
    c.systems = split(systems);
  for (const auto& s : c.systems)
    if (std::none_of(all_systems().begin(), all_systems().end(), [&](const system_entry& e) { return s == e.name; }))
      die("unknown or not built system " + s);
  if (c.modes.empty() || c.txn.empty()) die("--modes and --txn need at least one value");

  c.self = std::filesystem::canonical("/proc/self/exe").string();
  std::string made_dir;
  if (!dir_given) {
    std::string tmpl = std::string(KEEL_BENCH_BUILD_DIR) + "/keel-bench-XXXXXX";
    if (!::mkdtemp(tmpl.data())) die("cannot create a temporary directory under " KEEL_BENCH_BUILD_DIR);
    c.dir = made_dir = tmpl;
  } else {
    std::filesystem::create_directories(c.dir);
  }
  c.dir = std::filesystem::canonical(c.dir).string();

  describe_machine(c);
  reporter rep;
  for (const auto& s : all_systems()) {
    if (!c.want_system(s.name)) continue;
    if (std::string(s.name) == "redis" && !c.want("restart")) continue;
    try {
      s.run(c, rep);
    } catch (const std::exception& e) {
      fmt::print("{}: FAILED: {}\n", s.name, e.what());
      result r;
      r.workload = "error";
      r.system = s.name;
      r.mismatches = 1;
      r.note = e.what();
      rep.add(std::move(r));
    }
    std::filesystem::remove_all(c.dir + "/" + s.name);
  }
  // The interleaved workloads, after every system's own: each runs all
  // wanted systems side by side, round by round.
  const std::pair<const char*, void (*)(const config&, reporter&)> interleaved[] = {
      {"read-interleaved", run_interleaved},
      {"restart-interleaved", run_restart_interleaved},
      {"fill-interleaved", run_fill_interleaved}};
  for (const auto& [name, run] : interleaved) {
    if (!c.want(name)) continue;
    try {
      run(c, rep);
    } catch (const std::exception& e) {
      fmt::print("{}: FAILED: {}\n", name, e.what());
      result r;
      r.workload = "error";
      r.system = name;
      r.mismatches = 1;
      r.note = e.what();
      rep.add(std::move(r));
    }
  }
  rep.summary(c);
  fmt::print("load average at end: {}\n", loadavg());
  if (!c.json.empty()) rep.write_json(c, c.json);
  if (!made_dir.empty()) std::filesystem::remove_all(made_dir);
  return rep.mismatches() ? 1 : 0;
}
