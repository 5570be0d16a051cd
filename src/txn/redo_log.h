// The redo log: one checksummed record per committed transaction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "file/format.h"
#include "keel/os.h"

namespace keel::redo {

struct range {
  std::uint64_t off;
  std::uint32_t len;
  const std::byte* data;  // nullptr: set the bytes to zero
};

// Whether r writes any byte of the meta page's allocator cursor: a replay
// that did extends the data file up to the cursor it leaves (a file a power
// cut took back to its synced size, DURABILITY.md "Growing the file").
inline bool writes_cursor(const range& r) {
  constexpr std::uint64_t at = fmt::kMetaOffset + offsetof(fmt::meta_page, cursor);
  return r.off < at + 8 && r.off + r.len > at;
}

// Serializes one record into buf (replacing its contents).
void encode(std::vector<std::byte>& buf, std::uint64_t lsn, std::uint64_t commit_ns, std::span<const range> ranges);

struct scan_result {
  std::uint64_t end = 0;       // position after the last valid record
  std::uint64_t last_lsn = 0;  // LSN of the last valid record (or the LSN expected before `pos`)
  std::uint64_t applied = 0;   // records handed to on_record
  std::uint64_t last_commit_ns = 0;
  std::string stop;            // why scanning stopped before the end of file ("" = clean end)
};

// Reads records from `pos`, validating checksums and that every range lies
// in [meta page, data_limit). The first record must carry LSN prev_lsn + 1
// (when prev_lsn is unknown, any LSN <= skip_upto + 1: older ones are a
// previous epoch's, which a crash before recycling may leave); each next
// one LSN + 1. Records with LSN <= skip_upto are checked but not passed on.
// Stops at the first invalid record; a first record past skip_upto + 1 is
// a gap and throws errc::corrupt.
scan_result scan(os& sys, int fd, const std::string& path, std::uint64_t pos, std::optional<std::uint64_t> prev_lsn,
                 std::uint64_t skip_upto, std::uint64_t data_limit,
                 const std::function<void(std::uint64_t lsn, std::span<const range>)>& on_record);

}  // namespace keel::redo
