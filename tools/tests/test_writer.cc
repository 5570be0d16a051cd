// A writer process for the keel tool's tests: holds a store open for
// writing, or keeps committing, until it is killed.
//   keel-test-writer FILE hold READY    100 entries in hash map "held", then wait
//   keel-test-writer FILE churn READY   commit counter i -> i into "churn" forever
// READY is created once the first commit is done.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "keel/hash_map.h"
#include "keel/store.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: keel-test-writer FILE hold|churn READY\n");
    return 2;
  }
  const std::string path = argv[1], mode = argv[2], ready = argv[3];
  try {
    keel::options o;
    o.mode = keel::durability::batch;
    o.checkpoint_bytes = 1 << 20;  // churn: checkpoints keep recycling the log during a backup
    auto db = keel::store::open(path, o);
    auto m = keel::hash_map<std::uint64_t, std::uint64_t>::open(*db, mode == "hold" ? "held" : "churn");
    std::uint64_t i = 0;
    db->write([&](keel::write_txn& tx) {
      for (; i < 100; ++i) m.put(tx, i, i);
    });
    std::ofstream(ready) << "ready\n";
    if (mode == "hold")
      for (;;) ::pause();
    for (;;) {
      db->write([&](keel::write_txn& tx) {
        for (int k = 0; k < 10; ++k, ++i) m.put(tx, i, i);
      });
      ::usleep(200);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "keel-test-writer: %s\n", e.what());
    return 1;
  }
}
