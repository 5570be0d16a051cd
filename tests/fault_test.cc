// Fault injection through the OS seam: a failed msync, fdatasync, fallocate,
// ftruncate or write is reported by the commit (or checkpoint) that met it;
// after an I/O failure no later commit on that handle reports success; a
// reopen recovers a committed prefix holding every acknowledged commit.
// A full disk (ENOSPC when growing) answers errc::full and the store stays
// usable.
#include <doctest/doctest.h>

#include <cerrno>
#include <keel/keel.h>

#include "support/ledger.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"

using keel_test::ledger;
using keel_test::op;
using keel_test::sim_os;

namespace {

keel::options opts(sim_os& sys, keel::durability mode) {
  return {.initial_size = 64 * 1024,
          .max_size = 256ull << 20,
          .mode = mode,
          .checkpoint_bytes = 256 * 1024,  // checkpoints happen during the run
          .os = &sys};
}

// One transaction of the workload: the ledger step, and every fourth time a
// large allocation that makes the file grow.
std::uint64_t step(keel::store& db, int i) {
  if (i % 4 == 3)
    db.write([](keel::write_txn& tx) {
      const std::uint64_t b = tx.alloc(300 * 1024);
      tx.free(b, 300 * 1024);
    });
  return ledger::step(db);
}

struct result {
  bool failed = false;
  keel::errc code{};
  std::string what;
};

}  // namespace

TEST_CASE("every failing call kind, at the Nth call, once or from then on") {
  const op kinds[] = {op::msync, op::fdatasync, op::fsync, op::fallocate, op::ftruncate, op::pwrite};
  int scenarios = 0, failures_seen = 0;
  for (auto mode : {keel::durability::sync, keel::durability::batch, keel::durability::checkpoint})
    for (op kind : kinds)
      for (int err : {EIO, ENOSPC})
        for (bool sticky : {false, true})
          for (int nth : {1, 2, 5, 11}) {
            keel_test::temp_dir dir;
            const std::string path = dir.path("f.keel");
            sim_os sys;
            std::uint64_t acked = 0;
            {
              auto db = keel::store::open(path, opts(sys, mode));
              ledger::setup(*db);
              sys.fail(kind, nth, err, sticky);
              result first;
              for (int i = 0; i < 60; ++i) {
                try {
                  acked = step(*db, i);
                  if (i % 9 == 8) db->checkpoint();
                  // After an I/O failure nothing may succeed any more.
                  REQUIRE_MESSAGE((!first.failed || first.code == keel::errc::full), "commit succeeded after ",
                                  first.what);
                } catch (const keel::error& e) {
                  if (!first.failed) first = {true, e.code(), e.what()};
                  ++failures_seen;
                  const bool enospc_growth = kind == op::fallocate && err == ENOSPC;
                  INFO(e.what());
                  CHECK((e.code() == keel::errc::io || e.code() == keel::errc::full));
                  if (enospc_growth) CHECK(e.code() == keel::errc::full);
                }
              }
              if (first.failed && first.code != keel::errc::full) {
                // Poisoned: refuses, with the first failure named.
                try {
                  ledger::step(*db);
                  FAIL("poisoned handle committed");
                } catch (const keel::error& e) {
                  CHECK(e.code() == keel::errc::io);
                  CHECK(std::string(e.what()).find("poisoned") != std::string::npos);
                }
              }
              sys.clear_faults();
              try {
                db->close();
              } catch (const keel::error&) {
              }
            }
            // Reopen on a healthy OS: a committed prefix with every acknowledged commit.
            auto db = keel::store::open(path, {.create_if_missing = false, .mode = mode});
            std::uint64_t count = 0;
            const std::string bad = ledger::verify(*db, &count);
            INFO("mode ", static_cast<int>(mode), " ", keel_test::op_name(kind), " errno ", err, " nth ", nth,
                 sticky ? " sticky" : " once");
            REQUIRE_MESSAGE(bad.empty(), bad);
            CHECK(count >= acked);
            CHECK(count <= acked + 1);
            ++scenarios;
          }
  MESSAGE(scenarios, " fault scenarios, ", failures_seen, " failed operations reported");
  CHECK(failures_seen > scenarios / 2);
}

TEST_CASE("a full disk while growing answers full and the store stays usable") {
  keel_test::temp_dir dir;
  sim_os sys;
  auto db = keel::store::open(dir.path("g.keel"), opts(sys, keel::durability::sync));
  ledger::setup(*db);
  sys.fail(op::fallocate, 1, ENOSPC, true);
  try {
    db->write([](keel::write_txn& tx) { tx.alloc(10ull << 20); });
    FAIL("allocation beyond the disk succeeded");
  } catch (const keel::error& e) {
    CHECK(e.code() == keel::errc::full);
    CHECK(std::string(e.what()).find(dir.path("g.keel")) != std::string::npos);
  }
  // Small transactions that fit in the reserved space still commit.
  for (int i = 0; i < 20; ++i) ledger::step(*db);
  sys.clear_faults();
  db->write([](keel::write_txn& tx) { tx.alloc(10ull << 20); });
  std::uint64_t count = 0;
  CHECK(ledger::verify(*db, &count).empty());
  CHECK(count == 20);
}

TEST_CASE("a failed fdatasync of the log in sync mode: the commit fails, the handle is poisoned, reopen recovers") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("p.keel");
  sim_os sys;
  std::uint64_t acked = 0;
  {
    auto db = keel::store::open(path, opts(sys, keel::durability::sync));
    ledger::setup(*db);
    for (int i = 0; i < 5; ++i) acked = ledger::step(*db);
    sys.fail(op::fdatasync, 1, EIO);
    CHECK_THROWS_AS(ledger::step(*db), keel::error);
    // The fault was one-shot, but the handle must not trust the file again.
    CHECK_THROWS_WITH_AS(ledger::step(*db), doctest::Contains("poisoned"), keel::error);
    CHECK_THROWS_AS(db->checkpoint(), keel::error);
  }
  auto db = keel::store::open(path, {.create_if_missing = false});
  std::uint64_t count = 0;
  CHECK(ledger::verify(*db, &count).empty());
  CHECK((count == acked || count == acked + 1));
}

// The mapping hints (options::huge_pages; README "Huge pages", DURABILITY.md
// "Page-cache folios"): with huge pages every mapping asks for them; without,
// a writable mapping asks for no read-ahead and a read-only one asks nothing.
TEST_CASE("mapping hints: huge pages asked by every mapping when set; no read-ahead by writable ones otherwise") {
  CHECK_FALSE(keel::options{}.huge_pages);  // off unless asked for
  keel_test::temp_dir dir;
  for (bool huge : {true, false}) {
    const std::string path = dir.path(huge ? "huge.keel" : "small.keel");
    sim_os sys;
    keel::options o = opts(sys, keel::durability::batch);
    o.huge_pages = huge;
    auto db = keel::store::open(path, o);
    ledger::setup(*db);
    std::uint64_t acked = 0;
    for (int i = 0; i < 20; ++i) acked = step(*db, i);  // grows the file: no new mapping, no new hint
    CHECK(sys.calls(op::advise) == (huge ? 1 : 0));
    CHECK(sys.calls(op::advise_random) == (huge ? 0 : 1));
    o.read_only = true;
    auto reader = keel::store::open(path, o);  // each handle maps: huge pages asked again, read-ahead kept
    CHECK(sys.calls(op::advise) == (huge ? 2 : 0));
    CHECK(sys.calls(op::advise_random) == (huge ? 0 : 1));
    std::uint64_t count = 0;
    CHECK(ledger::verify(*reader, &count).empty());
    CHECK(count == acked);
    reader->close();
    db->close();
    o.read_only = false;
    auto again = keel::store::open(path, o);
    CHECK(sys.calls(op::advise) == (huge ? 3 : 0));
    CHECK(sys.calls(op::advise_random) == (huge ? 0 : 2));
  }
  // A kernel that refuses either hint (EINVAL: no file huge pages, no madvise) changes nothing.
  for (bool huge : {true, false}) {
    const op hint = huge ? op::advise : op::advise_random;
    CAPTURE(op_name(hint));
    const std::string path = dir.path(huge ? "refused-huge.keel" : "refused-random.keel");
    sim_os sys;
    sys.fail(hint, 1, EINVAL, true);
    keel::options o = opts(sys, keel::durability::batch);
    o.huge_pages = huge;
    auto db = keel::store::open(path, o);
    ledger::setup(*db);
    std::uint64_t acked = 0;
    for (int i = 0; i < 8; ++i) acked = step(*db, i);
    CHECK(sys.calls(hint) == 1);
    std::uint64_t count = 0;
    CHECK(ledger::verify(*db, &count).empty());
    CHECK(count == acked);
  }
}
