// keel-demo: the writer and reader processes, and what they share with the
// parent (an anonymous shared mapping: progress, counters, first error).
#pragma once

#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "feed.h"
#include "queries.h"
#include "tick_store.h"

namespace demo {

inline std::uint64_t now_ns() {  // CLOCK_MONOTONIC: comparable across processes
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

struct shared_state {
  // writer
  std::atomic<std::uint64_t> acked{0};  // events committed: the last commit() that returned
  std::atomic<std::uint64_t> txns{0};
  std::atomic<std::uint64_t> writer_start_ns{0}, writer_last_ns{0};
  std::atomic<int> paused{0};       // the writer stopped inside a transaction, for the parent's SIGKILL
  std::atomic<int> writer_done{0};  // it committed the whole feed
  // reader
  std::atomic<int> reader_ready{0}, stop_reader{0};
  std::atomic<std::uint64_t> lookups{0}, ranges{0}, rows{0}, busy{0}, wrong{0};
  std::atomic<std::uint64_t> seen{0};  // largest committed prefix the reader saw
  std::atomic<std::uint64_t> reader_ns{0};
  char writer_error[512] = {};
  char reader_error[512] = {};
};

inline void set_error(char (&dst)[512], const std::string& what) {
  std::snprintf(dst, sizeof dst, "%s", what.c_str());
}

// Ingests the whole feed in transactions of `batch` events, publishing each
// acknowledged commit. Before event pause_at (the middle of a transaction)
// it stops and waits there, the transaction open, for the parent's SIGKILL.
[[noreturn]] inline void writer_main(const std::string& path, const feed& f, shared_state* sh, std::uint64_t batch,
                                     std::uint64_t pause_at) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    keel::options o;  // durability::batch: no sync on the commit path
    o.lock_timeout = std::chrono::seconds(5);
    auto db = keel::store::open(path, o);
    tick_store ts(*db);
    sh->writer_start_ns = now_ns();
    auto each_event = [&](std::uint64_t i) {
      if (i != pause_at) return;
      sh->paused = 1;
      for (;;) ::pause();
    };
    ingest(ts, f, 0, f.events(), batch, each_event, [&](std::uint64_t end) {
      sh->acked.store(end);
      sh->txns.fetch_add(1);
      sh->writer_last_ns = now_ns();
    });
    sh->writer_done = 1;
    for (;;) ::pause();  // fed everything before the kill landed: wait for it
  } catch (const std::exception& e) {
    set_error(sh->writer_error, e.what());
    ::_exit(3);
  }
}

// Until told to stop: 8 "last quote" lookups and one "trades in a window"
// scan per round, for random symbols, each answer checked against the feed.
// The reader keeps its handle across the writer's death and the recovery.
[[noreturn]] inline void reader_main(const std::string& path, const feed& f, shared_state* sh, std::uint64_t seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto wrong = [&](const std::string& what) {
    if (sh->wrong.fetch_add(1) == 0) set_error(sh->reader_error, what);
  };
  try {
    keel::options o;
    o.read_only = true;                               // no lock, never blocks the writer
    o.read_timeout = std::chrono::milliseconds(250);  // a dead writer's half-applied commit: busy
    auto db = keel::store::open(path, o);
    tick_store ts(*db);
    for (std::uint32_t s = 0; s < f.symbols(); ++s)
      if (ts.symbol_id(f.name(s)) != s) wrong("symbol table: " + f.name(s) + " does not map to its id");
    sh->reader_ready = 1;
    std::mt19937_64 rng(seed);
    range_answer ra;
    std::uint64_t seen = 0;
    const std::uint64_t t0 = now_ns();
    while (!sh->stop_reader.load(std::memory_order_relaxed)) {
      try {
        for (int n = 0; n < 8; ++n) {
          const std::uint64_t r = rng();
          const auto s = (r & 1) ? f.busy_symbol(r) : static_cast<std::uint32_t>((r >> 1) % f.symbols());
          const quote_answer a = last_quote(ts, s);
          if (a.committed < seen) wrong(fmt::format("committed prefix went back from {} to {}", seen, a.committed));
          seen = std::max(seen, a.committed);
          if (auto bad = check_quote(f, s, a); !bad.empty()) wrong(bad);
          sh->lookups.fetch_add(1, std::memory_order_relaxed);
        }
        if (seen > 0) {
          // Trades of a busy symbol in the last 1..10 minutes of feed time,
          // or in a window as long anywhere earlier in the day.
          const std::uint64_t r = rng();
          const auto s = f.busy_symbol(r);
          const std::int64_t now = f.time(seen - 1) + 1,
                             len = (1 + static_cast<std::int64_t>((r >> 40) % 600)) * kSecond;
          const auto before = static_cast<std::int64_t>((r >> 1) % static_cast<std::uint64_t>(now - kOpen));
          const std::int64_t end = (r & 1) ? now : now - before;
          trades_between(ts, s, end - len, end, ra);
          if (auto bad = check_range(f, s, end - len, end, ra); !bad.empty()) wrong(bad);
          sh->ranges.fetch_add(1, std::memory_order_relaxed);
          sh->rows.fetch_add(ra.rows.size(), std::memory_order_relaxed);
        }
      } catch (const keel::error& e) {
        if (e.code() != keel::errc::busy) throw;
        sh->busy.fetch_add(1);  // reads kept racing a commit the dead writer left half applied
      }
      sh->seen.store(seen, std::memory_order_relaxed);
    }
    sh->reader_ns = now_ns() - t0;
  } catch (const std::exception& e) {
    set_error(sh->reader_error, e.what());
    ::_exit(2);
  }
  ::_exit(sh->wrong.load() ? 1 : 0);
}

}  // namespace demo
