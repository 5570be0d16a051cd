// keel-demo: the tick store's structures, how they are created, and the
// ingest loop (run by the writer process, and by the parent to finish the
// feed after recovery).
#pragma once

#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "feed.h"

namespace demo {

// Handles to the five names of a tick store (catalog):
//   quotes   hash_map<symbol id, quote>         last quote per symbol
//   trades   tree_map<(symbol id, time), trade> every trade, by symbol then time
//   tape     tree_map<time, print>              every trade, in time order
//   symbols  bytes_tree                         name -> symbol id (4 bytes)
//   feed     raw root -> feed_state             feed parameters + committed prefix
struct tick_store {
  using quote_map = keel::hash_map<std::uint32_t, quote>;
  using trade_tree = keel::tree_map<trade_key, trade>;
  using tape_tree = keel::tree_map<std::int64_t, print>;

  // REQUIRES: create() ran on this store.
  explicit tick_store(keel::store& s)
      : db(&s),
        quotes(quote_map::open(s, "quotes")),
        trades(trade_tree::open(s, "trades")),
        tape(tape_tree::open(s, "tape")),
        symbols(keel::bytes_tree::open(s, "symbols")),
        state{s.read([](const keel::read_view& v) {
          const auto e = v.find("feed");
          if (!e || !e->root) throw std::runtime_error("no feed state in the store");
          return e->root;
        })} {}

  // Creates the structures of a fresh store and fills the symbol table.
  static void create(keel::store& s, const feed& f) {
    s.write([&](keel::write_txn& tx) {
      tx.open_root("feed", keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<feed_state>());
      const auto st = tx.create(feed_state{kFeedMagic, f.seed(), f.symbols(), f.events(), 0});
      tx.set_root("feed", st.off);
      quote_map::open(s, tx, "quotes").reserve(tx, f.symbols());
      trade_tree::open(s, tx, "trades");
      tape_tree::open(s, tx, "tape");
      auto names = keel::bytes_tree::open(s, tx, "symbols");
      for (std::uint32_t id = 0; id < f.symbols(); ++id)
        names.insert(tx, f.name(id), {reinterpret_cast<const char*>(&id), sizeof id});
    });
  }

  feed_state read_state(const keel::read_view& v) const { return v.get(state); }
  feed_state read_state() const {
    return db->read([&](const keel::read_view& v) { return v.get(state); });
  }
  std::optional<std::uint32_t> symbol_id(std::string_view name) const {
    const auto v = symbols.get(name);
    if (!v || v->size() != sizeof(std::uint32_t)) return std::nullopt;
    std::uint32_t id;
    std::memcpy(&id, v->data(), sizeof id);
    return id;
  }

  keel::store* db;
  quote_map quotes;
  trade_tree trades;
  tape_tree tape;
  keel::bytes_tree symbols;
  keel::ref<feed_state> state;
};

// Ingests events [from, to) of the feed in transactions of `batch` events,
// each also recording its end in feed_state.committed; calls each_event(i)
// before event i and done(end) after each commit returns. Throws if the
// store does not hold exactly [0, from) when it starts.
template <class E, class F>
void ingest(tick_store& ts, const feed& f, std::uint64_t from, std::uint64_t to, std::uint64_t batch, E&& each_event,
            F&& done) {
  for (std::uint64_t b = from; b < to;) {
    const std::uint64_t e = std::min(to, b + batch);
    ts.db->write([&](keel::write_txn& tx) {
      feed_state st = tx.get(ts.state);
      if (st.committed != b)
        throw std::runtime_error("store holds " + std::to_string(st.committed) + " events, expected " +
                                 std::to_string(b));
      for (std::uint64_t i = b; i < e; ++i) {
        each_event(i);
        if (!f.is_trade(i)) {
          ts.quotes.put(tx, f.symbol(i), f.quote_at(i));
          continue;
        }
        const trade t = f.trade_at(i);
        const std::int64_t time = f.time(i);
        // Symbols interleave, so most of these land inside the tree, not at its end.
        if (!ts.trades.insert(tx, {t.symbol, time}, t))
          throw std::runtime_error("trade " + std::to_string(i) + " was already in the tree");
        // The market's trades arrive in time order: append, no search.
        ts.tape.append(tx, time, print{t.symbol, t.size, t.price});
      }
      st.committed = e;
      tx.put(ts.state, st);
    });
    b = e;
    done(e);
  }
}

}  // namespace demo
