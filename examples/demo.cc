// keel-demo: a market-data tick store, run by the README's first command.
//
//   keel-demo [FILE] [EVENTS] [--events N] [--symbols N] [--seed N] [--kill-at PCT] [--quick]
//
// Generates a deterministic synthetic feed (quotes and trades of thousands
// of symbols over one trading day), starts a fresh store in FILE (default
// data/demo.keel, plus FILE-log and FILE-journal), then:
//  1. a writer process ingests the feed in transactions of a few thousand
//     events: a hash map holds the last quote per symbol, a B+tree every
//     trade by (symbol, time), a second B+tree the market's trades in time
//     order (the tape, built by append);
//  2. at the same time a reader process asks "last quote of X" and "trades
//     of X between t1 and t2" for random X, lock-free, and checks every
//     answer against the feed;
//  3. at 2/3 of the feed (--kill-at) the parent kill -9s the writer in the
//     middle of a transaction, reopens the store (timing the recovery),
//     checks that it holds exactly the acknowledged transactions and
//     nothing of the open one, and ingests the rest;
//  4. prints answers, rates and the file size.
// Exit status: 0 when every check passed, 1 on any wrong answer, 2 on bad usage.
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>
#include <string_view>
#include <thread>

#include "demo/check.h"
#include "demo/feed.h"
#include "demo/processes.h"
#include "demo/queries.h"
#include "demo/report.h"
#include "demo/tick_store.h"

namespace {

using namespace demo;

struct config {
  std::string path = "data/demo.keel";
  std::uint64_t events = 4'000'000;
  std::uint32_t symbols = 5'000;
  std::uint64_t seed = 1;
  std::uint64_t kill_pct = 66;
  bool symbols_set = false;
};

bool parse(int argc, char** argv, config& c) {
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto number = [&](std::uint64_t& out) {
      if (i + 1 >= argc) return false;
      char* end = nullptr;
      out = std::strtoull(argv[++i], &end, 10);
      return *end == 0;
    };
    std::uint64_t n = 0;
    if (a == "--quick") {
      c.events = 500'000, c.symbols = 1'000, c.symbols_set = true;
    } else if (a == "--events") {
      if (!number(c.events)) return false;
    } else if (a == "--symbols") {
      if (!number(n)) return false;
      c.symbols = static_cast<std::uint32_t>(n), c.symbols_set = true;
    } else if (a == "--seed") {
      if (!number(c.seed)) return false;
    } else if (a == "--kill-at") {
      if (!number(c.kill_pct) || c.kill_pct < 1 || c.kill_pct > 99) return false;
    } else if (!a.empty() && a[0] != '-' && positional == 0) {
      c.path = a, ++positional;
    } else if (!a.empty() && a[0] != '-' && positional == 1) {
      c.events = std::strtoull(argv[i], nullptr, 10), ++positional;
    } else {
      return false;
    }
  }
  if (!c.symbols_set) c.symbols = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(c.events / 800, 20, 5000));
  return c.events >= 100 && c.events < (1ull << 31) && c.symbols >= 1 && c.symbols <= 100'000;
}

double secs(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

int run(const config& cfg) {
  namespace fs = std::filesystem;
  const std::uint64_t t_start = now_ns();
  const std::string& path = cfg.path;
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
  for (const char* suffix : {"", "-log", "-journal"}) fs::remove(path + suffix);
  fmt::print("keel-demo: a market-data tick store in {} (fresh)\n", path);

  // ---- the feed, and an empty store with its symbol table
  std::uint64_t t = now_ns();
  const feed f(cfg.seed, cfg.symbols, cfg.events);
  fmt::print("feed     {} symbols, {} quotes + {} trades, 09:30-16:00 (seed {}, made in {:.1f} s)\n",
             group(f.symbols()), group(f.quotes()), group(f.trades()), f.seed(), secs(now_ns() - t));
  {
    auto db = keel::store::open(path);
    tick_store::create(*db, f);
    db->close();
  }

  // ---- writer and reader processes
  void* mem = ::mmap(nullptr, sizeof(shared_state), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap of the shared counters failed");
  shared_state* sh = new (mem) shared_state();
  const std::uint64_t batch = std::clamp<std::uint64_t>(cfg.events / 64, 1, 4096);
  // The kill point: halfway through the first transaction that starts at or
  // after kill_pct of the feed (none when that is past the end).
  const std::uint64_t kill_txn = std::min(f.events(), (f.events() * cfg.kill_pct / 100 + batch - 1) / batch * batch);
  const std::uint64_t kill_txn_end = std::min(f.events(), kill_txn + batch);
  const std::uint64_t pause_at = kill_txn < f.events() ? kill_txn + (kill_txn_end - kill_txn) / 2 : f.events();
  std::fflush(nullptr);
  const pid_t reader = ::fork();
  if (reader == 0) reader_main(path, f, sh, cfg.seed * 7919 + 1);
  child_guard reader_guard(reader);
  while (!sh->reader_ready.load()) {  // it has opened the store and checked the symbol table
    reader_guard.check_alive("reader", sh->reader_error);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const pid_t writer = ::fork();
  if (writer == 0) writer_main(path, f, sh, batch, pause_at);
  child_guard writer_guard(writer);
  while (!sh->paused.load() && !sh->writer_done.load()) {
    writer_guard.check_alive("writer", sh->writer_error);
    reader_guard.check_alive("reader", sh->reader_error);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  writer_guard.kill_and_wait();
  const std::uint64_t acked = sh->acked.load(), seen = sh->seen.load();
  const std::uint64_t w_ns = sh->writer_last_ns - sh->writer_start_ns;
  fmt::print("writer   pid {}: {} events in {:.1f} s, {}/s ({} per transaction, batch durability)\n", writer,
             group(acked), secs(w_ns), si(acked / secs(w_ns)), group(batch));
  if (sh->writer_done)
    fmt::print("kill -9  the writer at {}% of the feed, after it had committed all of it\n", cfg.kill_pct);
  else
    fmt::print("kill -9  the writer at {}% of the feed, inside transaction {} ({} of its {} events written)\n",
               cfg.kill_pct, group(acked / batch + 1), group(pause_at - kill_txn), group(kill_txn_end - kill_txn));

  // ---- recovery
  t = now_ns();
  auto db = keel::store::open(path, {.lock_timeout = std::chrono::seconds(5)});
  const std::uint64_t reopen_ns = now_ns() - t;
  const keel::store_info info = db->info();
  fmt::print("reopen   {:.2f} ms: {}\n", reopen_ns / 1e6, describe_recovery(info));
  tick_store ts(*db);
  const std::uint64_t held = ts.read_state().committed;
  bool ok = true;
  auto fail = [&](const std::string& what) {
    fmt::print("FAILED   {}\n", what);
    ok = false;
  };
  if (held != acked || held < seen || (!sh->writer_done && held != kill_txn))
    fail(fmt::format("store holds {} events; writer acknowledged {}, reader saw {}", held, acked, seen));
  check_counts c;
  t = now_ns();
  if (auto bad = check_prefix(ts, f, held, c); !bad.empty())
    fail("after recovery: " + bad);
  else
    fmt::print("check    store = the first {} events: all {} acknowledged transactions{} [{:.1f} s]\n", group(held),
               group(sh->txns.load()), sh->writer_done ? "" : ", nothing of the open one", secs(now_ns() - t));

  // ---- the rest of the feed, in this process, while the reader goes on
  t = now_ns();
  const auto nothing = [](std::uint64_t) {};
  ingest(ts, f, held, f.events(), batch, nothing, nothing);
  const std::uint64_t resume_ns = now_ns() - t;
  if (held < f.events())
    fmt::print("resume   {} events in {:.1f} s, {}/s (this process, on the reopened store)\n", group(f.events() - held),
               secs(resume_ns), si((f.events() - held) / secs(resume_ns)));
  c = {};
  t = now_ns();
  if (auto bad = check_prefix(ts, f, f.events(), c); !bad.empty())
    fail("after the whole feed: " + bad);
  else
    fmt::print("check    store = the whole feed: {} last quotes, {} trades by symbol, {} on the tape [{:.1f} s]\n",
               group(c.quotes), group(c.trades), group(c.prints), secs(now_ns() - t));

  sh->stop_reader = 1;
  const int reader_status = reader_guard.wait();
  const double r_s = secs(sh->reader_ns);
  fmt::print("reader   pid {}, all along: {} lookups ({}/s), {} range scans ({}/s, {:.0f} trades each), {} wrong{}\n",
             reader, group(sh->lookups), si(sh->lookups / r_s), group(sh->ranges), si(sh->ranges / r_s),
             sh->ranges ? static_cast<double>(sh->rows) / static_cast<double>(sh->ranges) : 0.0, group(sh->wrong),
             sh->busy ? fmt::format(", {} reads timed out while the writer was dead", group(sh->busy)) : "");
  if (reader_status != 0)
    fail(fmt::format("reader (exit status {}): {}", reader_status,
                     sh->reader_error[0] ? sh->reader_error : "no message"));

  // ---- answers
  print_answers(ts, f);
  t = now_ns();
  const std::uint64_t arena = db->info().arena_used;
  db->close();
  struct stat st {};
  ::stat(path.c_str(), &st);
  fmt::print("file     {}: {} MiB on disk, {} MiB used; closed (checkpoint) in {:.0f} ms\n", path,
             st.st_blocks * 512 >> 20, arena >> 20, (now_ns() - t) / 1e6);
  if (ok)
    fmt::print("done     in {:.1f} s, every answer checked against the feed\n", secs(now_ns() - t_start));
  else
    fmt::print("FAILED   after {:.1f} s (see above)\n", secs(now_ns() - t_start));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse(argc, argv, cfg)) {
    fmt::print(stderr,
               "usage: keel-demo [FILE] [EVENTS] [--events N] [--symbols N] [--seed N] [--kill-at PCT] [--quick]\n"
               "  FILE defaults to data/demo.keel; EVENTS (quotes + trades) to 4000000, --quick is 500000\n");
    return 2;
  }
  try {
    return run(cfg);
  } catch (const keel::error& e) {
    fmt::print(stderr, "keel-demo: {} ({})\n", e.what(), keel::to_string(e.code()));
  } catch (const std::exception& e) {
    fmt::print(stderr, "keel-demo: {}\n", e.what());
  }
  return 1;
}
