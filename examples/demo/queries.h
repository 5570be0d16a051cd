// keel-demo: the two questions a strategy asks, and how each answer is
// checked against the feed. Both run lock-free, from any process, while a
// writer commits.
#pragma once

#include <fmt/core.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "feed.h"
#include "tick_store.h"

namespace demo {

// "Last quote of s": one consistent read of the quote and of how much of the
// feed is committed, so the exact right answer is known.
struct quote_answer {
  std::uint64_t committed = 0;
  std::optional<quote> q;
};
inline quote_answer last_quote(const tick_store& ts, std::uint32_t s) {
  return ts.db->read([&](const keel::read_view& v) {
    return quote_answer{ts.read_state(v).committed, ts.quotes.get(v, s)};
  });
}
// Empty when the answer is the last quote of s in the committed prefix.
inline std::string check_quote(const feed& f, std::uint32_t s, const quote_answer& a) {
  const auto want = f.last_quote(s, a.committed);
  if (!want && !a.q) return {};
  if (!want)
    return fmt::format("last quote of {}: got event {}, but none in the first {} events", s, a.q->seq, a.committed);
  if (!a.q) return fmt::format("last quote of {}: got none, expected event {}", s, *want);
  if (*a.q != f.quote_at(*want))
    return fmt::format("last quote of {} with {} events committed: got event {} (symbol {}), expected event {}", s,
                       a.committed, a.q->seq, a.q->symbol, *want);
  return {};
}

// "Trades of s in [t1, t2)": a scan in chunks while the writer commits.
// before/after: the committed prefix read just before and just after it.
struct range_answer {
  std::uint64_t before = 0, after = 0;
  std::vector<std::pair<trade_key, trade>> rows;
};
inline void trades_between(const tick_store& ts, std::uint32_t s, std::int64_t t1, std::int64_t t2, range_answer& a) {
  a.rows.clear();
  a.before = ts.read_state().committed;
  ts.trades.for_each({s, t1}, {s, t2}, [&](const trade_key& k, const trade& t) { a.rows.emplace_back(k, t); });
  a.after = ts.read_state().committed;
}
// Empty when the rows are trades of s in [t1, t2), in time order, each
// exactly as in the feed, and include every such trade committed before the
// scan began (trades committed during it may or may not appear).
inline std::string check_range(const feed& f, std::uint32_t s, std::int64_t t1, std::int64_t t2,
                               const range_answer& a) {
  std::int64_t prev = t1 - 1;
  std::uint64_t old = 0;
  for (const auto& [k, t] : a.rows) {
    const std::uint64_t i = t.seq;
    if (k.first != s || k.second <= prev || k.second >= t2 || i >= a.after || !f.is_trade(i) || f.symbol(i) != s ||
        f.time(i) != k.second || t != f.trade_at(i))
      return fmt::format("trades of {} in [{}, {}): row ({}, {}) -> event {} is wrong or out of order", s, t1, t2,
                         k.first, k.second, i);
    prev = k.second;
    old += i < a.before;
  }
  const auto [lo, hi] = f.trades_between(s, f.first_at(t1), std::min(f.first_at(t2), a.before));
  if (old != hi - lo)
    return fmt::format("trades of {} in [{}, {}): {} trades committed before the scan, the scan found {}", s, t1, t2,
                       hi - lo, old);
  return {};
}

}  // namespace demo
