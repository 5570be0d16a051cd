// keel::backup: a consistent copy of a store taken while its writer keeps
// committing (docs/DURABILITY.md, "Checking and backing up a live store").
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace keel {

class os;

// progress(done, total) in bytes; the same alias as in keel/check.h.
using progress_fn = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct backup_result {
  std::uint64_t lsn = 0;    // the copy holds exactly the transactions up to this LSN
  std::uint64_t bytes = 0;  // data bytes copied (last attempt) plus log bytes replayed
  double seconds = 0;
  int attempts = 0;         // 1 unless checkpoints recycled the log during a copy
};

struct backup_options {
  // Check the copy with keel::check's rules before publishing it; a damaged
  // source then fails with errc::corrupt naming the first problems and no
  // `dest` is written. Default true; false rescues what a damaged store holds.
  bool verify = true;
  // Copies restarted because a checkpoint recycled the log meanwhile, before
  // giving up with errc::busy. Default 8.
  int max_attempts = 8;
  // The OS seam for the copy's reads, writes and mapping; nullptr = the real
  // POSIX calls. Tests inject it. Must outlive the call.
  keel::os* os = nullptr;
};

// Writes a consistent copy of the store at `src` to `dest` (with `dest`-log
// and `dest`-journal) while a writer in another process keeps committing,
// without stopping or slowing it (no lock is taken). The copy is the store
// exactly as of one committed transaction (result.lsn), recovered and
// checkpointed: it opens at once with an empty log and journal, has its own
// file id, and keeps every offset of the original.
//
// How: copy the used bytes of `src` (fuzzily, as commits go on), then
// replay every log record since the checkpoint over the copy (the log holds
// physical after-images, so this gives exactly the state of the last
// complete record), restoring the journal's before-images first when the
// page cache did not survive a restart. A checkpoint during the copy
// recycles records the copy needs: the copy restarts, up to max_attempts.
// A store whose writer died is copied as its recovery will leave it; the
// original is never modified.
//
// Crash: `dest` appears atomically (an unnamed file linked into place after
// it is complete and synced, or a temporary name renamed without replacing);
// a crash or kill at any point leaves no `dest` (at most empty `dest`-log
// and `dest`-journal files, which are rewritten by the next backup).
//
// Errors (keel::error): `dest` exists: errc::invalid_argument; `src` missing
// or unreadable: errc::io / errc::permission; not a store:
// errc::not_a_keel_file / errc::version_mismatch; a damaged store (bad log
// or journal header, a checksummed record outside the file, verify
// failing): errc::corrupt; checkpoints kept recycling the log:
// errc::busy; out of space: errc::full.
//
// Thread-safety: any number of backups of one store may run at once.
backup_result backup(const std::string& src, const std::string& dest, const progress_fn& progress = {},
                     const backup_options& opts = {});

}  // namespace keel
