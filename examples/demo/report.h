// keel-demo: child process bookkeeping and the printed summary.
#pragma once

#include <fmt/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

#include "feed.h"
#include "processes.h"
#include "queries.h"
#include "tick_store.h"

namespace demo {

// ---- numbers and times

inline std::string group(std::uint64_t n) {  // 1234567 -> "1,234,567"
  const std::string d = std::to_string(n);
  std::string s;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) s += ',';
    s += d[i];
  }
  return s;
}
inline std::string si(double x) {  // 1234567 -> "1.23M"
  if (x >= 1e6) return fmt::format("{:.2f}M", x / 1e6);
  if (x >= 1e3) return fmt::format("{:.0f}k", x / 1e3);
  return fmt::format("{:.0f}", x);
}
inline std::string clock_time(std::int64_t ns) {  // ns since midnight -> "12:00:00.123"
  const std::int64_t ms = ns / 1'000'000;
  return fmt::format("{:02}:{:02}:{:02}.{:03}", ms / 3'600'000, ms / 60'000 % 60, ms / 1000 % 60, ms % 1000);
}
inline std::string took(double ns) {  // "32 ns", "7 µs", "1.2 ms"
  if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6) return fmt::format("{:.0f} µs", ns / 1e3);
  return fmt::format("{:.1f} ms", ns / 1e6);
}
inline std::string dollars(std::int64_t px) {
  return fmt::format("{:.2f}", static_cast<double>(px) / 10000.0);
}

// ---- child processes

// Kills (SIGKILL) and reaps the child when it goes out of scope, unless
// already reaped.
class child_guard {
 public:
  explicit child_guard(pid_t pid) : pid_(pid) {
    if (pid < 0) throw std::runtime_error("fork failed");
  }
  ~child_guard() {
    if (pid_ > 0) kill_and_wait();
  }
  child_guard(const child_guard&) = delete;
  child_guard& operator=(const child_guard&) = delete;

  void kill_and_wait() {
    ::kill(pid_, SIGKILL);
    wait();
  }
  // Exit status, or 128 + signal.
  int wait() {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  // Throws when the child has exited (it never should on its own).
  void check_alive(const char* who, const char* error) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return;
    pid_ = 0;
    throw std::runtime_error(fmt::format("the {} process exited early (status {}): {}", who,
                                         WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), error));
  }

 private:
  pid_t pid_;
};

// ---- the summary

inline std::string describe_recovery(const keel::store_info& i) {
  const std::string tail =
      fmt::format("{} since the checkpoint, {:.1f} MiB of log", group(i.last_lsn - i.checkpoint_lsn),
                  static_cast<double>(i.log_bytes) / 1048576.0);
  switch (i.recovery) {
    case 0:
      return fmt::format("nothing to replay, the dead writer had applied every commit ({})", tail);
    case 1:
      return fmt::format("replayed {} log records the dead writer had not applied ({})", group(i.recovered_records),
                         tail);
    default:
      return fmt::format("full recovery: {} pages restored from the journal, {} log records replayed",
                         group(i.restored_pages), group(i.recovered_records));
  }
}

// Nanoseconds per call of f: the best of 5 rounds of n calls (a round that
// lost the CPU to another process says nothing about the store).
template <class F>
double per_call_ns(int n, F&& f) {
  double best = 1e300;
  for (int round = 0; round < 5; ++round) {
    const std::uint64_t t = now_ns();
    for (int k = 0; k < n; ++k) f();
    best = std::min(best, static_cast<double>(now_ns() - t) / n);
  }
  return best;
}

// The two questions for a busy and a quiet symbol, and the whole market in
// one window of the tape, from the store after the whole feed.
inline void print_answers(const tick_store& ts, const feed& f) {
  const std::int64_t t1 = 12 * 3600 * kSecond, t2 = t1 + 5 * 60 * kSecond;  // 12:00-12:05
  const std::string window = clock_time(t1).substr(0, 5) + "-" + clock_time(t2).substr(0, 5);
  for (const std::uint32_t pick : {0u, std::max(1u, f.symbols() / 50)}) {
    if (pick >= f.symbols()) break;
    const std::string& name = f.name(pick);
    const auto id = ts.symbol_id(name);  // the symbol table, as a client would
    if (!id) throw std::runtime_error("symbol " + name + " is not in the symbol table");
    std::optional<quote> q;
    const double q_ns = per_call_ns(200, [&] { q = ts.quotes.get(*id); });
    if (q)
      fmt::print("{:<8} last quote {}  bid {} x {}  ask {} x {}  ({} per hot lookup)\n", name, clock_time(q->time_ns),
                 dollars(q->bid), q->bid_size, dollars(q->ask), q->ask_size, took(q_ns));
    else
      fmt::print("{:<8} no quote\n", name);
    std::uint64_t n = 0, shares = 0;
    std::int64_t lo = 0, hi = 0;
    double notional = 0;
    const double r_ns = per_call_ns(4, [&] {
      n = shares = 0, notional = 0, lo = INT64_MAX, hi = 0;
      ts.trades.for_each({*id, t1}, {*id, t2}, [&](const trade_key&, const trade& t) {
        ++n, shares += t.size, notional += static_cast<double>(t.price) * t.size;
        lo = std::min(lo, t.price), hi = std::max(hi, t.price);
      });
    });
    if (n)
      fmt::print("{:<8} trades {}: {}, {} shares, VWAP {:.4f}, low {}, high {}  ({} per scan)\n", "", window, group(n),
                 group(shares), notional / static_cast<double>(shares) / 10000.0, dollars(lo), dollars(hi), took(r_ns));
    else
      fmt::print("{:<8} trades {}: none  ({} per scan)\n", "", window, took(r_ns));
  }
  std::uint64_t n = 0, shares = 0;
  const double m_ns = per_call_ns(1, [&] {
    n = shares = 0;
    ts.tape.for_each(t1, t2, [&](const std::int64_t&, const print& p) { ++n, shares += p.size; });
  });
  fmt::print("{:<8} trades {} on the tape: {}, {} shares  ({} per scan)\n", "market", window, group(n), group(shares),
             took(m_ns));
}

}  // namespace demo
