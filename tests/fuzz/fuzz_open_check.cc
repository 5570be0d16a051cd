// Fuzz target: an arbitrary store (data file, log and journal packed as in
// fuzz_common.h) is checked, opened read-only and read through every
// catalogued structure, opened for writing (recovery), checked again, and
// written to. Any keel::error is an acceptable answer; a crash, hang, leak,
// sanitizer report or a non-Keel exception is a bug. Oracles beyond "no
// crash", each a contract of docs/DURABILITY.md:
//  - a store check calls clean is readable: no structure read throws, the
//    tree checker agrees, and a writable open recovers it to the LSN the
//    check reported, with nothing lost (check again clean, same entries);
//  - a store recovered by a writable open never makes check throw.
// One exception, by design: a dead writer's image of *this* boot recovers
// from the control page's applied-LSN hint and trusts the mapping for what
// was applied, while check's snapshot replays from the checkpoint
// (DURABILITY.md); bytes changed behind the log then differ. "Recovery
// keeps a clean store clean" is only asserted when both replay the same.
#include <cstdint>
#include <cstring>

#include "fuzz_common.h"

using namespace keel_fuzz;

namespace {

constexpr const char* kTarget = "fuzz_open_check";

bool strict_code(keel::errc c) {
  // Errors that contradict a clean check (environmental ones do not).
  return c == keel::errc::corrupt || c == keel::errc::not_a_keel_file || c == keel::errc::version_mismatch ||
         c == keel::errc::type_mismatch || c == keel::errc::invalid_argument;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 20)) return -1;
  const image im = unpack(data, size);
  const std::string path = scratch_dir() + "/s.keel";
  install(im, path);

  // 1. check, before anything touched the files.
  bool clean = false;
  keel::check_report first;
  try {
    first = check_store(path);
    clean = first.clean();
    say("check: " + describe(first));
  } catch (const keel::error& e) {
    say(std::string("check threw: ") + e.what());
    if (strict_code(e.code())) fail(kTarget, std::string("check threw on a damaged store: ") + e.what());
  }

  // 2. read-only open and reads. A store needing recovery refuses (needs_recovery).
  try {
    auto db = keel::store::open(path, fuzz_opts(false));
    const read_stats st = read_everything(*db);
    if (clean && !first.recovery_pending && (st.errors != 0 || st.tree_problems != 0))
      fail(kTarget, "check called the store clean (" + describe(first) + ") but reading it failed: " +
                        std::to_string(st.errors) + " errors (" + st.first_error + "), " +
                        std::to_string(st.tree_problems) + " tree_check problems");
    say("read-only open: " + std::to_string(st.structures) + " structures, " + std::to_string(st.entries) +
        " entries, " + std::to_string(st.errors) + " errors " + st.first_error);
    db->close();
  } catch (const keel::error& e) {
    say(std::string("read-only open: ") + e.what());
  }

  const bool same_path = !(first.recovery_pending && (im.flags & 1));
  // 3. writable open: recovery. Then read everything and close (a checkpoint).
  bool recovered = false;
  try {
    auto db = keel::store::open(path, fuzz_opts(true));
    recovered = true;
    const keel::store_info info = db->info();
    const read_stats st = read_everything(*db);
    say("writable open: recovery " + std::to_string(info.recovery) + ", " + std::to_string(info.recovered_records) +
        " records, LSN " + std::to_string(info.last_lsn) + ", " + std::to_string(st.entries) + " entries, " +
        std::to_string(st.errors) + " errors " + st.first_error);
    if (clean && info.last_lsn != first.lsn)
      fail(kTarget, "check said LSN " + std::to_string(first.lsn) + " (" + describe(first) +
                        "), recovery reached LSN " + std::to_string(info.last_lsn));
    if (clean && same_path && (st.errors != 0 || st.tree_problems != 0))
      fail(kTarget, "check called the store clean (" + describe(first) + ") but after recovery reading failed: " +
                        st.first_error);
    db->close();
  } catch (const keel::error& e) {
    say(std::string("writable open: ") + e.what());
    if (clean && strict_code(e.code()))
      fail(kTarget, "check called the store clean (" + describe(first) + ") but the writable open failed: " + e.what());
  }

  // 4. after a successful recovery, check answers with a report: clean with
  // the same content when the first check was clean.
  if (recovered) {
    try {
      const keel::check_report again = check_store(path);
      if (clean && same_path && (!again.clean() || again.entries != first.entries || again.lsn != first.lsn))
        fail(kTarget, "recovery of a clean store changed it: before " + describe(first) + "\nafter " + describe(again));
    } catch (const keel::error& e) {
      if (strict_code(e.code())) fail(kTarget, std::string("check threw after recovery: ") + e.what());
    }
    // 5. writes over whatever the file holds, then a last check (no crash).
    try {
      auto db = keel::store::open(path, fuzz_opts(true));
      write_something(*db);
      (void)read_everything(*db);
      db->close();
    } catch (const keel::error&) {
    }
    try {
      const keel::check_report last = check_store(path);
      if (clean && same_path && !last.clean()) fail(kTarget, "writes to a clean store made it unclean: " + describe(last));
    } catch (const keel::error& e) {
      if (strict_code(e.code())) fail(kTarget, std::string("check threw after writes: ") + e.what());
    }
  }
  remove_store(path);
  return 0;
}
