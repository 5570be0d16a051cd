// A small deterministic workload for crash tests: transaction k sets
// count = k, writes cell k % kCells and, every third transaction, allocates
// a block holding k. The state after any prefix of transactions is known,
// so a recovered store can be checked exactly.
#pragma once

#include <cstdint>
#include <string>

#include <keel/keel.h>

namespace keel_test {

struct ledger {
  static constexpr int kCells = 32;
  struct root {
    std::uint64_t count;
    std::uint64_t last_block;  // offset of the newest block, 0 = none
    std::uint64_t cells[kCells];
  };
  static constexpr const char* kName = "ledger";

  static std::uint64_t cell_value(std::uint64_t k) { return k * 1000 + 7; }

  // Transaction 0: creates the root (count 0).
  static void setup(keel::store& db) {
    db.write([](keel::write_txn& tx) {
      tx.open_root(kName, keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<root>());
      const root r{};
      tx.set_root(kName, tx.create(r).off);
    });
  }

  // Runs transaction count+1 and returns its number.
  static std::uint64_t step(keel::store& db) {
    std::uint64_t k = 0;
    db.write([&](keel::write_txn& tx) {
      const keel::ref<root> rr{tx.find(kName)->root};
      root r = tx.get(rr);
      k = r.count + 1;
      r.count = k;
      r.cells[k % kCells] = cell_value(k);
      if (k % 3 == 0) {
        if (r.last_block && k % 2 == 0) tx.free(r.last_block, 48);
        const std::uint64_t b = tx.alloc(48);
        const std::uint64_t payload[6] = {k, ~k, k, ~k, k, ~k};
        tx.write(b, payload, sizeof payload);
        r.last_block = b;
      }
      tx.put(rr, r);
    });
    return k;
  }

  // Empty when the store holds exactly the state after its count
  // transactions; else what differs. Sets *count.
  static std::string verify(keel::store& db, std::uint64_t* count) {
    return db.read([&](const keel::read_view& v) -> std::string {
      const auto e = v.find(kName);
      if (!e) return "no ledger root";
      const root r = v.get(keel::ref<root>{e->root});
      *count = r.count;
      for (int i = 0; i < kCells; ++i) {
        std::uint64_t want = 0;
        for (std::uint64_t k = r.count; k >= 1 && k + kCells > r.count; --k)
          if (k % kCells == static_cast<std::uint64_t>(i)) want = cell_value(k);
        if (r.cells[i] != want)
          return "cell " + std::to_string(i) + " is " + std::to_string(r.cells[i]) + ", expected " +
                 std::to_string(want) + " after " + std::to_string(r.count) + " transactions";
      }
      if (r.count >= 3) {
        std::uint64_t payload[6];
        std::memcpy(payload, v.bytes(r.last_block, sizeof payload), sizeof payload);
        const std::uint64_t k = r.count / 3 * 3;
        for (int i = 0; i < 6; ++i)
          if (payload[i] != (i % 2 ? ~k : k)) return "block of transaction " + std::to_string(k) + " is wrong";
      }
      return {};
    });
  }
};

}  // namespace keel_test
