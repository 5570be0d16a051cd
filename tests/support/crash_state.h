// Power-loss runs through the OS seam (support/sim_os.h), shared by
// power_loss_test.cc and tree_power_test.cc: at every I/O call of a workload,
// build the files a power cut at that instant could leave, recover them as
// after a reboot (twice) and check the recovered state. Header-only; the
// workload (setup, transaction, verification) is the caller's.
#pragma once

#include <doctest/doctest.h>
#include <keel/keel.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>

#include "support/sim_os.h"

namespace keel_test {

// What the crash states of one run recovered.
struct power_outcome {
  int cuts = 0;
  std::uint64_t min_recovered = UINT64_MAX, max_recovered = 0;
};

// The five cut policies arm_power_cuts takes in turn: nothing unsynced
// reaches the disk (a data file grown since its last sync keeps its old
// size); everything does; random pages, log/journal prefixes and file size;
// the same with one page torn; every page, one torn, no log/journal tail.
inline constexpr cut_policy kPowerCutPolicies[] = {
    {cut_policy::none, false, cut_policy::no_tail, 0, cut_policy::durable_size},
    {cut_policy::all, false, cut_policy::whole_tail, 0, cut_policy::live_size},
    {cut_policy::random, false, cut_policy::random_tail, 0, cut_policy::random_size},
    {cut_policy::random, true, cut_policy::random_tail, 0, cut_policy::random_size},
    {cut_policy::all, true, cut_policy::no_tail, 0, cut_policy::live_size},
};

// The store under test: small, and durable only through sync commits and
// explicit checkpoints (batch's flusher and the automatic checkpoints wait an hour).
inline keel::options power_run_options(keel::durability mode, sim_os* os) {
  return keel::options{.initial_size = 64 * 1024,
                       .max_size = 64ull << 20,
                       .mode = mode,
                       .batch_window = std::chrono::hours(1),  // batch: durability from checkpoints only here
                       .checkpoint_bytes = 1ull << 30,
                       .checkpoint_interval = std::chrono::hours(1),
                       .os = os};
}

// Opens the crash image img as the first writer after a reboot would and
// checks it: verify(db, &count) returns "" when the store holds the state
// after its count transactions; lower <= count <= upper; the store takes one
// more transaction (step(db, count) == count + 1); a second recovery of the
// recovered store finds exactly that. Returns the recovered count.
template <class Verify, class Step>
std::uint64_t recover_twice(const std::string& img, keel::durability mode, std::uint64_t lower, std::uint64_t upper,
                            const std::string& where, Verify&& verify, Step&& step) {
  INFO(where);
  sim_os after;
  after.new_boot();
  std::uint64_t count = 0;
  {
    auto db = keel::store::open(img, {.create_if_missing = false, .mode = mode, .os = &after});
    const std::string bad = verify(*db, &count);
    REQUIRE_MESSAGE(bad.empty(), "recovered ", count, " transactions: ", bad);
    REQUIRE_MESSAGE(count >= lower, "lost committed transactions: recovered ", count, ", mode requires >= ", lower);
    REQUIRE_MESSAGE(count <= upper, "recovered ", count, " > transactions started ", upper);
    REQUIRE(step(*db, count) == count + 1);  // the recovered store takes new commits
    db->close();
  }
  sim_os again;
  again.new_boot();
  auto db = keel::store::open(img, {.create_if_missing = false, .mode = mode, .os = &again});
  std::uint64_t count2 = 0;
  const std::string bad = verify(*db, &count2);
  REQUIRE_MESSAGE(bad.empty(), "second recovery: ", bad);
  REQUIRE(count2 == count + 1);
  return count;
}

// Arms sys.on_call: before every call other than pread and open on a file
// under path (and not from inside the hook), writes to img the files a power
// cut at that instant could leave (the five cut policies in turn) and calls
// recover(img, lower, upper, where), which returns the recovered count:
// lower is acked in sync mode, else checkpointed (both read at each call),
// upper is acked + 1. Counts the cuts and the recovered range in out.
// where_suffix ends the "crash point" text.
template <class Recover>
void arm_power_cuts(sim_os& sys, const std::string& path, const std::string& img, keel::durability mode,
                    std::mt19937_64& rng, const std::uint64_t& acked, const std::uint64_t& checkpointed,
                    const std::string& where_suffix, power_outcome& out, Recover recover) {
  sys.on_call = [&sys, &rng, &acked, &checkpointed, &out, path, img, mode, where_suffix, recover,
                 in_hook = false](op which, const std::string& file) mutable {
    if (in_hook || file.rfind(path, 0) != 0) return;
    if (which == op::pread || which == op::open) return;
    in_hook = true;
    const cut_policy& p = kPowerCutPolicies[out.cuts % std::size(kPowerCutPolicies)];
    sys.power_cut(path, img, p, rng);
    const std::uint64_t lower = mode == keel::durability::sync ? acked : checkpointed;
    const std::string where = std::string("crash point: before ") + op_name(which) + " of " + file + ", cut #" +
                              std::to_string(out.cuts) + ", acked " + std::to_string(acked) + where_suffix;
    const std::uint64_t got = recover(img, lower, acked + 1, where);
    out.min_recovered = std::min(out.min_recovered, got);
    out.max_recovered = std::max(out.max_recovered, got);
    ++out.cuts;
    in_hook = false;
  };
}

// Runs n transactions (step() returns the number of the one it committed),
// with an explicit checkpoint after every 7th; keeps acked and checkpointed
// (what arm_power_cuts reads) current.
template <class Step>
void run_checkpointed(keel::store& db, int n, std::uint64_t& acked, std::uint64_t& checkpointed, Step&& step) {
  for (int i = 0; i < n; ++i) {
    acked = step();
    if (i % 7 == 6) {
      const std::uint64_t at = acked;
      db.checkpoint();
      checkpointed = at;
    }
  }
}

}  // namespace keel_test
