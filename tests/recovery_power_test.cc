// Power loss during recovery: "also crash again during recovery". Crash
// states are built as power_loss_test.cc builds them (the ledger workload in
// each durability mode, a power cut at the workload's I/O calls under the
// five cut policies of support/crash_state.h). For a sample of them, the
// recovery a reboot would run (the writable open) is run through a sim_os
// and the power is cut again before its k-th I/O call, for every k (or a
// sample when there are many), under the same policies in turn. Each such
// second crash state is recovered normally (twice, recover_twice) and must
// hold a committed prefix within the first state's bounds (no older than the
// mode guaranteed durable before the first cut, no newer than what had been
// started); it must moreover be the very prefix the uninterrupted recovery of
// the first state finds (DURABILITY.md, "Recovery": a crash during recovery
// is followed by the same recovery). For a few states the second recovery is
// cut again (a third level).
//
// The test was seen to fail (a local experiment, not kept): with the harness
// cutting each second-level state's -journal back to its 64-byte header
// before recovering it (so the checkpoint's before-images are never
// restored), batch mode failed at its first explored state (cut before the
// journal's fdatasync, then before recovery's first call): recovered 5 where
// the uninterrupted recovery found 0, and the next state's ledger pointed
// outside the arena. (Deleting the -journal file outright is refused by open
// with "missing".) Sync mode's cuts all passed even with the sabotage.
//
// A new-boot recovery of these states makes up to 8 cuttable calls: mmap,
// msync (the restored and replayed pages), pwrite and fdatasync of the
// superblock, ftruncate and fdatasync of the log, then of the journal; the
// page-subset policies cover a cut in the middle of the restore and replay,
// which write through the mapping with no call in between.
#include <doctest/doctest.h>
#include <keel/keel.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "support/crash_state.h"
#include "support/ledger.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"

using keel_test::cut_policy;
using keel_test::ledger;
using keel_test::op;
using keel_test::sim_os;

namespace {

using u64 = std::uint64_t;

// The three files of a crash state.
using image = keel_test::store_files;

// The calls a cut can come before: as arm_power_cuts, every call on the
// store's files other than pread and open (those change nothing on disk).
bool cuttable(op which, const std::string& file, const std::string& path) {
  return file.rfind(path, 0) == 0 && which != op::pread && which != op::open;
}

// Recovery runs with no background flusher or timed checkpoint, so the
// sequence of its I/O calls is deterministic.
keel::options recovery_options(keel::durability mode, sim_os* os) {
  return keel::options{.create_if_missing = false,
                       .mode = mode,
                       .batch_window = std::chrono::hours(1),
                       .checkpoint_interval = std::chrono::hours(1),
                       .os = os};
}

constexpr int kMaxCutsPerRecovery = 24;  // beyond this, a spread sample of k (first and last included)
constexpr int kThirdLevelEvery = 8;      // every 8th explored state also gets a third level
constexpr int kThirdLevelKs = 3;         // ... for this many of its second-level cuts

std::vector<int> sample_ks(int n, int max) {
  std::vector<int> ks;
  if (n <= max) {
    for (int k = 1; k <= n; ++k) ks.push_back(k);
    return ks;
  }
  for (int i = 0; i < max; ++i) ks.push_back(1 + static_cast<int>(static_cast<long>(i) * (n - 1) / (max - 1)));
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  return ks;
}

struct explorer {
  keel_test::temp_dir& dir;
  keel::durability mode;
  std::mt19937_64 rng;
  int first_level = 0;  // first-level states explored
  int cuts = 0;         // crash states made by cutting during a recovery (any level)
  int third = 0;        // of which cut during the recovery of a second-level state
  int changed = 0;      // of which differ from the state being recovered
  int max_calls = 0;    // most cuttable I/O calls one recovery made
  int same_as_uninterrupted = 0;
  u64 min_recovered = UINT64_MAX, max_recovered = 0;

  std::string file(char kind, int depth) const {
    std::string name(1, kind);
    name += std::to_string(depth);
    name += ".keel";
    return dir.path(name);
  }
  std::string work(int depth) const { return file('w', depth); }     // a state being recovered
  std::string cut_img(int depth) const { return file('c', depth); }  // a state cut during a recovery

  // Recovers state (written to work(depth)) through a fresh boot; when
  // cut_at > 0 writes to cut_img(depth + 1) the files a power cut before the
  // cut_at-th cuttable call could leave (policy p), and *what names that
  // call. Lets the recovery run on to its end either way (the live files are
  // thrown away). Returns the number of cuttable calls the recovery made;
  // *count (when given) gets the ledger count the recovery found.
  int recover_cutting(const image& state, int depth, int cut_at, const cut_policy& p, std::string* what, u64* count,
                      const std::string& where) {
    INFO(where);
    const std::string w = work(depth);
    keel_test::write_store(w, state);
    sim_os os;
    os.new_boot();
    int n = 0;
    os.on_call = [&](op which, const std::string& file) {
      if (!cuttable(which, file, w)) return;
      if (++n != cut_at) return;
      os.power_cut(w, cut_img(depth + 1), p, rng);
      if (what) *what = std::string(keel_test::op_name(which)) + " of " + file.substr(dir.dir().size() + 1);
    };
    auto db = keel::store::open(w, recovery_options(mode, &os));
    os.on_call = nullptr;  // recovery is the open; the close is not part of it
    if (count) {
      const std::string bad = ledger::verify(*db, count);
      REQUIRE_MESSAGE(bad.empty(), "uninterrupted recovery: ", bad);
    }
    db->close();
    return n;
  }

  // Cuts the power at the recovery of state (a crash state at level depth)
  // and checks what recovering each resulting state finds.
  void explore(const image& state, int depth, u64 lower, u64 upper, bool deeper, const std::string& where) {
    u64 expect = 0;
    const int n = recover_cutting(state, depth, 0, {}, nullptr, &expect, where);
    max_calls = std::max(max_calls, n);
    {
      INFO(where);
      REQUIRE_MESSAGE(expect >= lower, "uninterrupted recovery lost committed transactions: ", expect, " < ", lower);
      REQUIRE_MESSAGE(expect <= upper, "uninterrupted recovery: ", expect, " > started ", upper);
    }
    const std::vector<int> ks = sample_ks(n, kMaxCutsPerRecovery);
    for (std::size_t i = 0; i < ks.size(); ++i) {
      const int k = ks[i];
      const std::size_t pi = static_cast<std::size_t>(cuts) % std::size(keel_test::kPowerCutPolicies);
      const cut_policy& p = keel_test::kPowerCutPolicies[pi];
      std::string what;
      const int n2 = recover_cutting(state, depth, k, p, &what, nullptr, where);
      REQUIRE(n2 == n);  // the recovery's calls are the same each time
      ++cuts;
      if (depth > 1) ++third;
      const std::string where2 = where + "\n  level " + std::to_string(depth + 1) + ": cut before recovery call " +
                                 std::to_string(k) + "/" + std::to_string(n) + " (" + what + "), policy " +
                                 std::to_string(pi) + ", uninterrupted recovery finds " + std::to_string(expect);
      const std::string img = cut_img(depth + 1);
      const image cut_state = keel_test::read_store(img);
      // The cut state differs from the one recovered when the recovery had
      // already made something durable (or written something back) by call k.
      if (cut_state != state) ++changed;
      // A third level: cut the recovery of this second-level state too.
      if (deeper && i % std::max<std::size_t>(1, ks.size() / kThirdLevelKs) == ks.size() / (2 * kThirdLevelKs))
        explore(cut_state, depth + 1, lower, upper, false, where2);
      const u64 got = keel_test::recover_twice(img, mode, lower, upper, where2, ledger::verify,
                                               [](keel::store& db, u64) { return ledger::step(db); });
      INFO(where2);
      CHECK_MESSAGE(got == expect, "recovered ", got, " after a cut during recovery, ", expect, " without");
      if (got == expect) ++same_as_uninterrupted;
      min_recovered = std::min(min_recovered, got);
      max_recovered = std::max(max_recovered, got);
    }
  }
};

const char* mode_name(keel::durability m) {
  return m == keel::durability::sync ? "sync" : m == keel::durability::batch ? "batch" : "checkpoint";
}

// The ledger workload of power_loss_test.cc; every explore_every-th crash
// state (taken in arm_power_cuts' order, so the five policies rotate through
// the explored ones too when explore_every is prime to 5) is explored.
explorer run(keel::durability mode, u64 seed, int transactions, int explore_every, keel_test::temp_dir& dir) {
  const std::string path = dir.path("s.keel");
  sim_os sys;
  std::mt19937_64 rng(seed);
  explorer ex{dir, mode, std::mt19937_64(seed * 7919 + 1)};
  auto db = keel::store::open(path, keel_test::power_run_options(mode, &sys));
  ledger::setup(*db);
  db->checkpoint();

  u64 acked = 0, checkpointed = 0;
  keel_test::power_outcome out;
  int seen = 0;
  keel_test::arm_power_cuts(sys, path, dir.path("cut.keel"), mode, rng, acked, checkpointed,
                            std::string(", mode ") + mode_name(mode), out,
                            [&](const std::string& img, u64 lower, u64 upper, const std::string& where) -> u64 {
                              if (seen++ % explore_every != 0) return lower;
                              ++ex.first_level;
                              ex.explore(keel_test::read_store(img), 1, lower, upper, ex.first_level % kThirdLevelEvery == 0, where);
                              return lower;
                            });
  keel_test::run_checkpointed(*db, transactions, acked, checkpointed, [&] { return ledger::step(*db); });
  sys.on_call = nullptr;
  db->close();
  return ex;
}

}  // namespace

TEST_CASE("power loss during recovery (and during the recovery after that) recovers a committed prefix in bounds") {
  const auto t0 = std::chrono::steady_clock::now();
  int states = 0, cuts = 0, third = 0, same = 0, changed = 0, max_calls = 0;
  const struct {
    keel::durability mode;
    u64 seed;
  } runs[] = {{keel::durability::sync, 11}, {keel::durability::batch, 12}, {keel::durability::checkpoint, 13}};
  for (const auto& r : runs) {
    keel_test::temp_dir dir;
    const explorer ex = run(r.mode, r.seed, 40, 3, dir);
    MESSAGE(std::string(mode_name(r.mode)), ": ", ex.first_level, " first-level states, ", ex.cuts,
            " cuts during recovery (", ex.third, " at the third level), up to ", ex.max_calls,
            " I/O calls per recovery, recovered ", ex.min_recovered, "..", ex.max_recovered);
    CHECK(ex.first_level > 20);
    CHECK(ex.max_recovered > ex.min_recovered);  // the states differ
    states += ex.first_level;
    cuts += ex.cuts;
    third += ex.third;
    same += ex.same_as_uninterrupted;
    changed += ex.changed;
    max_calls = std::max(max_calls, ex.max_calls);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE(states, " first-level states, ", cuts, " cuts during recovery (", third,
          " during the second recovery), all recovered to a prefix in bounds (", same,
          " to the uninterrupted recovery's; ", changed, " differ from the state whose recovery was cut), in ", secs,
          " s");
  CHECK(cuts > 100);
  CHECK(third > 10);
  CHECK(changed > 100);  // most cuts come after recovery has changed the disk, not before it began
  CHECK(max_calls > 3);
}
