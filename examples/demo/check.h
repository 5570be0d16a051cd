// keel-demo: the full check that a store holds exactly a prefix of the feed.
#pragma once

#include <fmt/core.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "feed.h"
#include "queries.h"
#include "tick_store.h"

namespace demo {

struct check_counts {
  std::uint64_t quotes = 0, trades = 0, prints = 0, names = 0;
};

// Empty when the store holds exactly events [0, end): the last quote of
// every symbol, every trade in both trees and nothing else, and the symbol
// table. Otherwise the first difference.
inline std::string check_prefix(const tick_store& ts, const feed& f, std::uint64_t end, check_counts& c) {
  const feed_state st = ts.read_state();
  if (st.magic != kFeedMagic || st.seed != f.seed() || st.symbols != f.symbols() || st.events != f.events())
    return "the store holds another feed";
  if (st.committed != end) return fmt::format("feed state says {} events, expected {}", st.committed, end);

  for (std::uint32_t s = 0; s < f.symbols(); ++s) {
    const quote_answer a{end, ts.quotes.get(s)};
    if (auto bad = check_quote(f, s, a); !bad.empty()) return bad;
    c.quotes += a.q.has_value();
  }
  if (const auto n = ts.quotes.size(); n != c.quotes)
    return fmt::format("quotes map has {} entries, expected {}", n, c.quotes);

  // trades: by symbol, then time.
  std::string bad;
  std::uint32_t s = 0;
  std::size_t k = 0, k_end = f.trades_between(0, 0, end).second;
  ts.trades.for_each([&](const trade_key& key, const trade& t) {
    while (k == k_end && ++s < f.symbols()) k = 0, k_end = f.trades_between(s, 0, end).second;
    if (s >= f.symbols()) {
      bad = fmt::format("trades tree holds ({}, {}) after the last trade of the feed", key.first, key.second);
      return false;
    }
    const std::uint64_t i = f.trade_of(s, k++);
    if (key != trade_key{s, f.time(i)} || t != f.trade_at(i)) {
      bad = fmt::format("trades tree: entry {} is ({}, {}) -> event {}, expected event {}", c.trades, key.first,
                        key.second, t.seq, i);
      return false;
    }
    ++c.trades;
    return true;
  });
  if (!bad.empty()) return bad;
  while (k == k_end && ++s < f.symbols()) k = 0, k_end = f.trades_between(s, 0, end).second;
  if (s < f.symbols()) return fmt::format("trades tree lacks event {} (and maybe more)", f.trade_of(s, k));

  // tape: every trade in event (= time) order.
  std::uint64_t i = 0;
  auto next_trade = [&] {
    while (i < end && !f.is_trade(i)) ++i;
  };
  next_trade();
  ts.tape.for_each([&](const std::int64_t& time, const print& p) {
    const trade t = i < end ? f.trade_at(i) : trade{};
    if (i >= end || time != f.time(i) || p != print{t.symbol, t.size, t.price}) {
      bad = fmt::format("tape: entry {} at {} ns, expected event {}", c.prints, time, i);
      return false;
    }
    ++c.prints, ++i;
    next_trade();
    return true;
  });
  if (!bad.empty()) return bad;
  if (i < end) return fmt::format("tape lacks event {} (and maybe more)", i);

  ts.symbols.for_each([&](std::string_view name, std::string_view id) {
    std::uint32_t v = 0;
    if (id.size() == sizeof v) std::memcpy(&v, id.data(), sizeof v);
    if (id.size() != sizeof v || v >= f.symbols() || f.name(v) != name) {
      bad = fmt::format("symbol table: {} -> a wrong id", name);
      return false;
    }
    ++c.names;
    return true;
  });
  if (!bad.empty()) return bad;
  if (c.names != f.symbols()) return fmt::format("symbol table has {} names, expected {}", c.names, f.symbols());
  return {};
}

}  // namespace demo
