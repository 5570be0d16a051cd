// Power loss through the OS seam: at every I/O call the store makes, build
// the files a power cut at that instant could leave (durable image plus
// none / all / a random subset of the unsynced pages, one page torn, any
// prefix of the unsynced log and journal), recover them as after a reboot,
// and check the result is the state after a committed prefix no older than
// the durability mode allows.
#include <doctest/doctest.h>

#include <cstring>
#include <keel/keel.h>
#include <random>
#include <thread>

#include "support/crash_state.h"
#include "support/ledger.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"

using keel_test::cut_policy;
using keel_test::ledger;
using keel_test::op;
using keel_test::sim_os;

namespace {

// Opens the crash image as the first writer after a reboot would, and
// checks it (twice). Returns the recovered transaction count.
std::uint64_t recover_and_check(const std::string& img, keel::durability mode, std::uint64_t lower,
                                std::uint64_t upper, const std::string& where) {
  return keel_test::recover_twice(img, mode, lower, upper, where, ledger::verify,
                                 [](keel::store& db, std::uint64_t) { return ledger::step(db); });
}

keel_test::power_outcome run(keel::durability mode, std::uint64_t seed, int transactions) {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s.keel");
  sim_os sys;
  std::mt19937_64 rng(seed);
  auto db = keel::store::open(path, keel_test::power_run_options(mode, &sys));
  ledger::setup(*db);
  db->checkpoint();

  std::uint64_t acked = 0, checkpointed = 0;
  keel_test::power_outcome out;
  keel_test::arm_power_cuts(sys, path, dir.path("cut.keel"), mode, rng, acked, checkpointed, "", out,
                            [&](const std::string& img, std::uint64_t lower, std::uint64_t upper,
                                const std::string& where) { return recover_and_check(img, mode, lower, upper, where); });
  keel_test::run_checkpointed(*db, transactions, acked, checkpointed, [&] { return ledger::step(*db); });
  sys.on_call = nullptr;
  db->close();
  return out;
}

}  // namespace

TEST_CASE("power loss at every I/O call recovers a committed prefix: sync mode loses nothing acknowledged") {
  const auto o = run(keel::durability::sync, 1, 40);
  MESSAGE("sync: ", o.cuts, " crash states, recovered ", o.min_recovered, "..", o.max_recovered);
  CHECK(o.cuts > 100);
  CHECK(o.max_recovered >= 39);
}

TEST_CASE("power loss: checkpoint mode goes back no further than the last checkpoint") {
  const auto o = run(keel::durability::checkpoint, 2, 40);
  MESSAGE("checkpoint: ", o.cuts, " crash states, recovered ", o.min_recovered, "..", o.max_recovered);
  CHECK(o.cuts > 30);
  CHECK(o.min_recovered < o.max_recovered);  // some states really lost the unsynced tail
}

TEST_CASE("power loss: batch mode goes back no further than the last checkpoint or log sync") {
  const auto o = run(keel::durability::batch, 3, 40);
  MESSAGE("batch: ", o.cuts, " crash states, recovered ", o.min_recovered, "..", o.max_recovered);
  CHECK(o.cuts > 30);
}

TEST_CASE("batch mode: a commit older than the batch window survives a power cut") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("b.keel");
  sim_os sys;
  std::mt19937_64 rng(9);
  auto db = keel::store::open(path, {.initial_size = 64 * 1024,
                                     .mode = keel::durability::batch,
                                     .batch_window = std::chrono::milliseconds(5),
                                     .checkpoint_interval = std::chrono::hours(1),
                                     .os = &sys});
  ledger::setup(*db);
  std::uint64_t acked = 0;
  for (int i = 0; i < 10; ++i) acked = ledger::step(*db);
  const int syncs_before = sys.calls(op::fdatasync);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // 20 windows
  CHECK(sys.calls(op::fdatasync) > syncs_before);  // the flusher synced without a commit
  sys.power_cut(path, dir.path("cut.keel"), {cut_policy::none, false, cut_policy::no_tail}, rng);
  CHECK(recover_and_check(dir.path("cut.keel"), keel::durability::batch, acked, acked, "after the window") == acked);
}

TEST_CASE("power loss right after a clean close needs no recovery") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("c.keel");
  sim_os sys;
  std::mt19937_64 rng(4);
  {
    auto db = keel::store::open(path, {.initial_size = 64 * 1024, .mode = keel::durability::checkpoint, .os = &sys});
    ledger::setup(*db);
    for (int i = 0; i < 20; ++i) ledger::step(*db);
  }
  sys.power_cut(path, dir.path("cut.keel"), {cut_policy::none, false, cut_policy::no_tail}, rng);
  sim_os after;
  after.new_boot();
  {
    // A reader may be first after the restart: nothing to recover, so it
    // needs no writer (docs/DURABILITY.md, "Recovery").
    auto ro = keel::store::open(dir.path("cut.keel"), {.create_if_missing = false, .read_only = true, .os = &after});
    std::uint64_t count = 0;
    CHECK(ledger::verify(*ro, &count).empty());
    CHECK(count == 20);
  }
  auto db = keel::store::open(dir.path("cut.keel"), {.create_if_missing = false, .os = &after});
  CHECK(db->info().recovery == 0);
  CHECK(db->info().clean_close);
  std::uint64_t count = 0;
  CHECK(ledger::verify(*db, &count).empty());
  CHECK(count == 20);
}

TEST_CASE("after a restart, a reader cannot open a store that needs recovery; after a writer recovered it, it can") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("n.keel");
  sim_os sys;
  std::mt19937_64 rng(5);
  auto db = keel::store::open(path, {.initial_size = 64 * 1024, .mode = keel::durability::sync, .os = &sys});
  ledger::setup(*db);
  for (int i = 0; i < 5; ++i) ledger::step(*db);  // logged and synced, not checkpointed
  sys.power_cut(path, dir.path("cut.keel"), {cut_policy::all, false, cut_policy::no_tail}, rng);
  sim_os after;
  after.new_boot();
  const keel::options ro{.create_if_missing = false, .read_only = true, .os = &after};
  try {
    keel::store::open(dir.path("cut.keel"), ro);
    FAIL("a reader opened a store that needs recovery");
  } catch (const keel::error& e) {
    CHECK(e.code() == keel::errc::needs_recovery);
  }
  { auto w = keel::store::open(dir.path("cut.keel"), {.create_if_missing = false, .os = &after}); }
  auto r = keel::store::open(dir.path("cut.keel"), ro);
  std::uint64_t count = 0;
  CHECK(ledger::verify(*r, &count).empty());
  CHECK(count == 5);
}
