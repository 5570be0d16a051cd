// The README's example, compiled and run by the test suite (quickstart test).
#include <keel/keel.h>

#include <cstdio>
#include <string>

struct quote { double bid, ask; };
struct trade { double price; std::uint32_t size; };

int main(int argc, char** argv) {
  using namespace keel::literals;
  auto db = keel::store::open(argc > 1 ? argv[1] : "quotes.keel", {.max_size = 64_GiB, .mode = keel::durability::batch});
  auto last = keel::hash_map<std::uint32_t, quote>::open(*db, "last");  // found or created by name
  auto trades = keel::tree_map<std::pair<std::uint32_t, std::int64_t>, trade>::open(*db, "trades");  // (symbol, ns)

  db->write([&](keel::write_txn& tx) {  // atomic: all of it or none, in every process
    last.put(tx, 7, quote{101.5, 101.7});
    trades.put(tx, {7, 1'000}, trade{101.6, 300});
    trades.put(tx, {7, 2'000}, trade{101.7, 100});
  });

  std::optional<quote> q = last.get(7);  // lock-free, from any process
  std::uint64_t volume = 0;              // symbol 7, times in [0, 1500): an ordered range scan
  trades.for_each({7, 0}, {7, 1'500}, [&](const auto&, const trade& t) { volume += t.size; });

  std::printf("bid %.2f ask %.2f, volume %llu\n", q->bid, q->ask, static_cast<unsigned long long>(volume));
  return q && q->bid == 101.5 && volume == 300 ? 0 : 1;
}
