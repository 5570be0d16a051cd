// The redo log: one checksummed record per committed transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "keel/os.h"

namespace keel::redo {

struct range {
  std::uint64_t off;
  std::uint32_t len;
  const std::byte* data;
};

// Serializes one record into buf (replacing its contents).
void encode(std::vector<std::byte>& buf, std::uint64_t lsn, std::uint64_t commit_ns, std::span<const range> ranges);

struct scan_result {
  std::uint64_t end = 0;       // position after the last valid record
  std::uint64_t last_lsn = 0;  // LSN of the last valid record (or the LSN expected before `pos`)
  std::uint64_t applied = 0;   // records handed to on_record
  std::uint64_t last_commit_ns = 0;
  std::string stop;            // why scanning stopped before the end of file ("" = clean end)
};

// Reads records from `pos` (the first must carry LSN prev_lsn + 1, each
// next one LSN + 1), validating checksums and that every range lies in
// [meta page, data_limit). Records with LSN <= skip_upto are checked but not
// passed on. Stops at the first invalid record.
scan_result scan(os& sys, int fd, const std::string& path, std::uint64_t pos, std::uint64_t prev_lsn,
                 std::uint64_t skip_upto, std::uint64_t data_limit,
                 const std::function<void(std::uint64_t lsn, std::span<const range>)>& on_record);

}  // namespace keel::redo
