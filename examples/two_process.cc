// Two processes, one map: a writer process updates a keel::hash_map in
// transactions while a reader process reads it lock-free and checks that it
// always sees whole transactions.   keel-two-process [FILE]
#include <keel/keel.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

struct price {
  std::uint64_t seq;  // the update that wrote it
  std::int64_t bid, ask;
};
using price_map = keel::hash_map<std::uint32_t, price>;  // symbol id -> price

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "two_process.keel";
  for (const char* suffix : {"", "-log", "-journal"}) std::remove((path + suffix).c_str());
  {
    auto db = keel::store::open(path);  // create the store and the map, then close
    price_map::open(*db, "prices");
  }
  constexpr std::uint64_t kUpdates = 200'000, kPerTxn = 100, kSymbols = 10;

  const pid_t writer = ::fork();
  if (writer == 0) {  // the writer process: the one writable handle
    auto db = keel::store::open(path);
    auto prices = price_map::open(*db, "prices");
    for (std::uint64_t n = 0; n < kUpdates; n += kPerTxn)
      db->write([&](keel::write_txn& tx) {  // all 100 updates become visible at once
        for (std::uint64_t k = n; k < n + kPerTxn; ++k)
          prices.put(tx, k % kSymbols,
                     price{k, 1000 + static_cast<std::int64_t>(k), 1001 + static_cast<std::int64_t>(k)});
      });
    ::_exit(0);
  }

  // The reader process (any number of them): no lock, never blocks the writer.
  auto db = keel::store::open(path, {.read_only = true});
  auto prices = price_map::open(*db, "prices");
  std::uint64_t reads = 0, torn = 0, last = 0;
  int status = 0;
  for (bool done = false; !done;) {
    done = ::waitpid(writer, &status, WNOHANG) == writer;  // one more read after the writer exits
    // One consistent view: every symbol's price comes from the same transaction.
    const auto [lo, hi] = db->read([&](const keel::read_view& v) {
      std::uint64_t a = UINT64_MAX, b = 0;
      for (std::uint32_t s = 0; s < kSymbols; ++s)
        if (auto p = prices.get(v, s)) a = std::min(a, p->seq / kPerTxn), b = std::max(b, p->seq / kPerTxn);
      return std::pair{a, b};
    });
    ++reads;
    if (hi != 0 || lo != UINT64_MAX) torn += lo != hi || hi < last;
    last = hi;
  }
  const auto p = prices.get(7);
  std::printf("reader saw %llu consistent views while the writer committed %llu transactions; torn: %llu\n",
              static_cast<unsigned long long>(reads), static_cast<unsigned long long>(kUpdates / kPerTxn),
              static_cast<unsigned long long>(torn));
  std::printf("price of symbol 7: update %llu, bid %lld ask %lld\n", static_cast<unsigned long long>(p ? p->seq : 0),
              static_cast<long long>(p ? p->bid : 0), static_cast<long long>(p ? p->ask : 0));
  const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && torn == 0 && p && p->seq == kUpdates - 3;
  return ok ? 0 : 1;
}
