// The redo log: one checksummed record per committed transaction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
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
  const std::byte* data;  // nullptr: set the bytes to zero, or copy them from src
  std::uint64_t src = 0;  // nonzero: copy len bytes from this offset of the store (kRangeCopy)
};

// Bytes a range's payload takes in a record.
inline std::uint64_t payload_of(const range& r) {
  return r.src != 0 ? 8 : r.data ? fmt::align_up(r.len, 8) : 0;
}

// Where replaying r reads or writes: the end of the furthest byte.
inline std::uint64_t reach(const range& r) {
  return std::max<std::uint64_t>(r.off + r.len, r.src != 0 ? r.src + r.len : 0);
}

// Replays one range onto a store mapped at base (memmove: a copy's source
// and destination may be anything the scan accepted).
inline void replay(std::byte* base, const range& r) {
  if (r.src != 0)
    std::memmove(base + r.off, base + r.src, r.len);
  else if (r.data)
    std::memcpy(base + r.off, r.data, r.len);
  else
    std::memset(base + r.off, 0, r.len);
}

// Whether r writes any byte of the meta page's allocator cursor: a replay
// that did extends the data file up to the cursor it leaves (a file a power
// cut took back to its synced size, DURABILITY.md "Growing the file").
inline bool writes_cursor(const range& r) {
  constexpr std::uint64_t at = fmt::kMetaOffset + offsetof(fmt::meta_page, cursor);
  return r.off < at + 8 && r.off + r.len > at;
}

// Whether [off, off + len) lies where a record may write or copy from:
// from the meta page up to the store's maximum size.
inline bool in_store(std::uint64_t off, std::uint64_t len, std::uint64_t data_limit) {
  return off >= fmt::kMetaOffset && off <= data_limit && len <= data_limit - off;
}

// Serializes one record into buf (replacing its contents): the ranges in
// packed runs (fmt::kRangePacked), except one too large for a run, which
// keeps its own header.
void encode(std::vector<std::byte>& buf, std::uint64_t lsn, std::uint64_t commit_ns, std::span<const range> ranges);

// Appends to `out` the ranges of a record's payload [p, p + n), which holds
// `count` top-level ranges (plain, zero, copy or packed runs); data
// pointers point into p. Returns "" when the ranges are well formed, lie
// (and copy from) inside the store per in_store(), and use every byte;
// otherwise what is wrong, naming the range by its place in the record.
std::string decode(const std::byte* p, std::uint64_t n, std::uint32_t count, std::uint64_t data_limit,
                   std::vector<range>& out);

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
