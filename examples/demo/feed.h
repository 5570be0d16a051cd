// keel-demo: the synthetic market-data feed and what the store holds.
//
// The feed is a pure function of (seed, symbols, events): event i has a
// symbol, a kind (quote or trade), a time and prices that any process can
// recompute from i alone. That is how the reader and the recovery check know
// the exact right answer to every query for any prefix of the feed.
#pragma once

#include <keel/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace demo {

// ---- what the store holds (names in the catalog: see tick_store.h)

struct quote {            // "quotes": symbol id -> last quote
  std::uint64_t seq;      // event number in the feed
  std::int64_t time_ns;   // since midnight
  std::int64_t bid, ask;  // price in 1/10000 of a dollar
  std::uint32_t symbol, bid_size, ask_size, pad;
  friend bool operator==(const quote&, const quote&) = default;
};
struct trade {  // "trades": (symbol id, time) -> trade
  std::uint64_t seq;
  std::int64_t price;
  std::uint32_t symbol, size;
  friend bool operator==(const trade&, const trade&) = default;
};
struct print {  // "tape": time -> every trade of the market, appended in time order
  std::uint32_t symbol, size;
  std::int64_t price;
  friend bool operator==(const print&, const print&) = default;
};
using trade_key = std::pair<std::uint32_t, std::int64_t>;  // (symbol, ns since midnight)

struct feed_state {  // "feed": the feed's parameters and how much of it is committed
  std::uint64_t magic, seed, symbols, events;
  std::uint64_t committed;  // events [0, committed) are in the store, in the same transaction
};
inline constexpr std::uint64_t kFeedMagic = 0x4b45454c44454d4full;  // "KEELDEMO"

inline constexpr std::int64_t kSecond = 1'000'000'000;
inline constexpr std::int64_t kOpen = (9 * 3600 + 30 * 60) * kSecond;  // 09:30:00
inline constexpr std::int64_t kClose = 16 * 3600 * kSecond;            // 16:00:00
inline constexpr std::int64_t kTick = 100;                             // $0.01
inline constexpr std::uint32_t kTradeBit = 0x80000000u;

inline std::uint64_t mix(std::uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class feed {
 public:
  // Generates the symbol and kind of every event, then indexes them per
  // symbol (about 12 bytes per event). REQUIRES: events < 2^31, symbols <= 100000.
  feed(std::uint64_t seed, std::uint32_t symbols, std::uint64_t events)
      : seed_(seed),
        symbols_(symbols),
        events_(events),
        gap_(std::max<std::int64_t>(2, (kClose - kOpen) / static_cast<std::int64_t>(events + 1))) {
    sym_.resize(events);
    std::vector<std::uint32_t> nq(symbols + 1), nt(symbols + 1);
    for (std::uint64_t i = 0; i < events; ++i) {
      const std::uint64_t h = mix(seed_ ^ (i * 0x2545f4914f6cdd1dull));
      const double u = static_cast<double>(h >> 11) * 0x1p-53;
      // Skewed like a real feed: a few symbols take most of the events.
      const auto s = std::min<std::uint32_t>(symbols - 1, static_cast<std::uint32_t>(symbols * u * u * u));
      const bool is_trade = (h & 7) < 2;  // 1 in 4
      sym_[i] = s | (is_trade ? kTradeBit : 0);
      ++(is_trade ? nt : nq)[s + 1];
    }
    for (std::uint32_t s = 0; s < symbols; ++s) nq[s + 1] += nq[s], nt[s + 1] += nt[s];
    q_off_ = nq;
    t_off_ = nt;
    q_idx_.resize(nq[symbols]);
    t_idx_.resize(nt[symbols]);
    for (std::uint64_t i = 0; i < events; ++i) {
      const std::uint32_t s = symbol(i);
      if (is_trade(i))
        t_idx_[nt[s]++] = static_cast<std::uint32_t>(i);
      else
        q_idx_[nq[s]++] = static_cast<std::uint32_t>(i);
    }
    std::unordered_set<std::string> used;
    static constexpr const char* kFirst[] = {"ACME", "BOLT", "CRUX", "DYNO", "EPIC", "FLUX",
                                             "GRID", "HALO", "IRIS", "JADE", "KILN", "LUMA"};
    for (std::uint32_t s = 0; s < symbols; ++s) {
      std::string n = s < std::size(kFirst) ? kFirst[s] : "";
      for (std::uint64_t attempt = 0; n.empty() || used.count(n); ++attempt) {
        std::uint64_t h = mix(seed_ * 31 + s * 977 + attempt);
        n.assign(3 + h % 3, 'A');  // 3 to 5 letters
        for (char& c : n) c = static_cast<char>('A' + (h >>= 5) % 26);
      }
      used.insert(n);
      names_.push_back(n);
    }
  }

  std::uint64_t seed() const { return seed_; }
  std::uint32_t symbols() const { return symbols_; }
  std::uint64_t events() const { return events_; }
  std::uint64_t quotes() const { return q_idx_.size(); }
  std::uint64_t trades() const { return t_idx_.size(); }
  const std::string& name(std::uint32_t s) const { return names_[s]; }

  std::uint32_t symbol(std::uint64_t i) const { return sym_[i] & ~kTradeBit; }
  bool is_trade(std::uint64_t i) const { return (sym_[i] & kTradeBit) != 0; }
  // Strictly increasing in i, so trades of a symbol arrive in time order.
  std::int64_t time(std::uint64_t i) const {
    return kOpen + static_cast<std::int64_t>(i) * gap_ +
           static_cast<std::int64_t>(mix(seed_ + i) % static_cast<std::uint64_t>(gap_ / 2));
  }
  // The first event at or after time t (events() when none).
  std::uint64_t first_at(std::int64_t t) const {
    std::uint64_t lo = 0, hi = events_;
    while (lo < hi) {
      const std::uint64_t m = lo + (hi - lo) / 2;
      if (time(m) < t)
        lo = m + 1;
      else
        hi = m;
    }
    return lo;
  }

  quote quote_at(std::uint64_t i) const {
    const std::uint32_t s = symbol(i);
    const std::int64_t t = time(i), mid = mid_price(s, t);
    const std::uint64_t h = mix(seed_ ^ (i * 0x9e3779b97f4a7c15ull) ^ 0x51);
    const std::int64_t half = kTick * static_cast<std::int64_t>(1 + h % 3);
    quote q{};
    q.seq = i, q.time_ns = t, q.symbol = s;
    q.bid = mid - half, q.ask = mid + half;
    q.bid_size = static_cast<std::uint32_t>(100 * (1 + (h >> 8) % 50));
    q.ask_size = static_cast<std::uint32_t>(100 * (1 + (h >> 16) % 50));
    return q;
  }
  trade trade_at(std::uint64_t i) const {
    const std::uint32_t s = symbol(i);
    const std::uint64_t h = mix(seed_ ^ (i * 0x9e3779b97f4a7c15ull) ^ 0x7a);
    const std::int64_t px = mid_price(s, time(i)) + kTick * (static_cast<std::int64_t>(h % 5) - 2);
    return {i, px, s, static_cast<std::uint32_t>(1 + (h >> 8) % 1000)};
  }

  // The last quote of s among events [0, end), if any.
  std::optional<std::uint64_t> last_quote(std::uint32_t s, std::uint64_t end) const {
    const std::uint32_t* b = q_idx_.data() + q_off_[s];
    const std::uint32_t* e = q_idx_.data() + q_off_[s + 1];
    const std::uint32_t* p = std::lower_bound(b, e, end);
    if (p == b) return std::nullopt;
    return *(p - 1);
  }
  // Trades of s among events [from, end), as positions [first, last) in trades_of(s).
  std::pair<std::size_t, std::size_t> trades_between(std::uint32_t s, std::uint64_t from, std::uint64_t end) const {
    const std::uint32_t* b = t_idx_.data() + t_off_[s];
    const std::uint32_t* e = t_idx_.data() + t_off_[s + 1];
    const auto lo = std::lower_bound(b, e, from) - b;
    const auto hi = std::lower_bound(b, e, std::max(from, end)) - b;
    return {static_cast<std::size_t>(lo), static_cast<std::size_t>(hi)};
  }
  std::uint64_t trade_of(std::uint32_t s, std::size_t k) const { return t_idx_[t_off_[s] + k]; }
  std::size_t trade_count(std::uint32_t s) const { return t_off_[s + 1] - t_off_[s]; }
  // A symbol drawn like the feed draws them (mostly the busy ones).
  std::uint32_t busy_symbol(std::uint64_t r) const {
    const double u = static_cast<double>(r >> 11) * 0x1p-53;
    return std::min<std::uint32_t>(symbols_ - 1, static_cast<std::uint32_t>(symbols_ * u * u * u));
  }

 private:
  // A smooth intraday swing around a per-symbol base price, on the tick grid.
  std::int64_t mid_price(std::uint32_t s, std::int64_t t) const {
    const std::uint64_t h = mix(seed_ * 7 + s);
    const double base = 5.0 + static_cast<double>(h % 49500) / 100.0;  // $5 .. $500
    const double phase = static_cast<double>((h >> 20) % 1000) / 1000.0;
    const double period = static_cast<double>(1800 + (h >> 40) % 7200) * 1e9;
    const double px = base * (1.0 + 0.02 * std::sin(2 * std::numbers::pi * (static_cast<double>(t) / period + phase)));
    return static_cast<std::int64_t>(std::llround(px * 100)) * kTick;
  }

  std::uint64_t seed_;
  std::uint32_t symbols_;
  std::uint64_t events_;
  std::int64_t gap_;                                          // ns between consecutive events
  std::vector<std::uint32_t> sym_;                            // per event: symbol | kTradeBit
  std::vector<std::uint32_t> q_off_, q_idx_, t_off_, t_idx_;  // per symbol: its quote / trade event numbers
  std::vector<std::string> names_;
};

}  // namespace demo

// Stable type names in the catalog (not the compiler's mangled ones).
template <>
struct keel::type_name<demo::quote> {
  static std::string_view get() { return "keel-demo.quote.v1"; }
};
template <>
struct keel::type_name<demo::trade> {
  static std::string_view get() { return "keel-demo.trade.v1"; }
};
template <>
struct keel::type_name<demo::print> {
  static std::string_view get() { return "keel-demo.print.v1"; }
};
template <>
struct keel::type_name<demo::feed_state> {
  static std::string_view get() { return "keel-demo.feed_state.v1"; }
};
template <>
struct keel::type_name<demo::trade_key> {
  static std::string_view get() { return "keel-demo.(symbol u32, time ns i64)"; }
};
