// A consistent, recovered copy of a store's data file, taken while its
// writer may be committing: the engine of keel::backup and of keel::check
// on a live store. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "file/format.h"
#include "keel/check.h"
#include "keel/os.h"

namespace keel::snapshot {

// The copy: a file we own, mapped read-write over the source's max_size of
// address space; bytes [0, size) exist.
struct copy {
  os* sys = nullptr;
  int fd = -1;
  std::byte* base = nullptr;
  std::uint64_t map_len = 0;
  std::uint64_t size = 0;
  copy() = default;
  copy(const copy&) = delete;
  copy& operator=(const copy&) = delete;
  ~copy();
};

struct result {
  fmt::superblock sb{};          // the source's superblock the copy starts from
  std::uint64_t lsn = 0;         // last transaction in the copy
  std::uint64_t replayed = 0;    // log records applied over the copy
  std::uint64_t log_end = 0;     // log position after the last replayed record
  std::uint64_t restored_pages = 0;
  std::uint64_t copied = 0;      // data bytes copied in the last attempt
  bool writer = false;           // a writer held the lock during the last attempt
  bool recovery_pending = false; // no writer, and the source needs a recovery
  bool adopted_meta = false;     // the meta page was ahead of the superblock (lost newest superblock)
  int attempts = 0;
};

// Copies the store `src` (open read-only as src_fd) into `into.fd` (an
// empty file open read-write) and brings the copy to the state of the last
// complete log record. Throws keel::error: not_a_keel_file /
// version_mismatch / corrupt from the source's superblocks, corrupt for a
// bad log or journal header or a checksummed record outside the file, busy
// after max_attempts copies spoiled by checkpoints, full / io writing the copy.
result take(os& sys, const std::string& src, int src_fd, copy& into, const progress_fn& progress, int max_attempts);

}  // namespace keel::snapshot
