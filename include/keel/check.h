// keel::check: a full consistency check of a store, offline or while other
// processes use it (docs/DURABILITY.md, "Checking and backing up a live store").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace keel {

// One finding. `where` names the part of the store: "superblock 0",
// "control page", "meta page", "allocator", "catalog", "log", "journal",
// "hash_map 'quotes'", "bytes_map 'docs'", "tree_map 'ticks'", "snapshot".
// `offset` is a byte offset in the original data file (or in the log /
// journal for those parts), 0 when there is none.
struct check_problem {
  std::string where;
  std::uint64_t offset = 0;
  std::string what;
};

struct check_report {
  // Damage: something a reader or the next recovery would trip over, or
  // accounting that does not add up. Empty for a healthy store.
  std::vector<check_problem> problems;
  // Facts that are not damage: which superblock is in use, a torn log tail
  // (a crash's normal leftover, dropped by recovery), a pending recovery,
  // that a snapshot was checked, raw structures whose blocks are unknown.
  std::vector<check_problem> notes;
  std::uint64_t structures = 0;       // catalog entries checked
  std::uint64_t entries = 0;          // live entries in the checked structures
  std::uint64_t blocks = 0;           // allocator blocks accounted for (live, free, catalog)
  std::uint64_t log_records = 0;      // valid log records since the checkpoint
  std::uint64_t journal_entries = 0;  // valid journal entries of the current epoch
  std::uint64_t bytes_checked = 0;    // data, log and journal bytes read
  std::uint64_t lsn = 0;              // last transaction contained in the checked state
  // The store needs a recovery (a dead writer's log tail, a half-applied
  // commit, or a restart with a journal): the data was checked as that
  // recovery will leave it, on a private copy; the file was not touched.
  bool recovery_pending = false;
  // The data was checked on a private snapshot (a writer was committing, or
  // a recovery is pending) rather than in place.
  bool snapshot = false;
  // Problems beyond the first 1000 are counted here, not listed.
  std::uint64_t problems_not_listed = 0;
  bool clean() const { return problems.empty() && problems_not_listed == 0; }
};

// progress(done, total) in bytes, called now and then from the calling
// thread; may be empty. total may grow once as the work becomes known.
using progress_fn = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct check_options {
  // Where a snapshot is made when one is needed: an unnamed temporary file
  // of up to the store's used size in this directory. Empty: $TMPDIR, else
  // /tmp.
  std::string temp_dir;
};

// Checks the store at `path` (plus `path`-log and `path`-journal) and
// returns every problem found. Never modifies the store and never takes its
// writer lock, so it runs while any number of readers and one writer use
// it: when a writer holds the lock, or the store needs recovery, the data is
// checked on a consistent recovered snapshot (keel::backup's mechanism)
// whose offsets equal the original's; otherwise in place, and redone on a
// snapshot if a writer started meanwhile. Superblocks, control page, log
// and journal are always read from the original files.
//
// A damaged file is a report, not an exception: every value read is
// validated before use, every walk is bounded, and memory stays
// proportional to the number of blocks in the store. Throws keel::error
// only when the data file cannot be opened or read at all (missing:
// errc::io; permission), or the snapshot cannot be written (errc::full,
// errc::io).
//
// Thread-safety: independent calls may run at once, in any processes.
check_report check(const std::string& path, const progress_fn& progress = {}, const check_options& opts = {});

}  // namespace keel
