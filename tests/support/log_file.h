// Walking a redo log file's bytes in tests (docs/FORMAT.md, "The redo log").
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "file/format.h"
#include "txn/redo_log.h"

namespace keel_test {

// A record of a log file: where it starts, how long it is, and its ranges
// decoded (their bytes point into the string the log was read into).
struct log_record {
  std::uint64_t pos, bytes, lsn, commit_ns;
  std::vector<keel::redo::range> ranges;
};

// The records of `log` (a whole log file) up to the first place without a
// record magic. REQUIRES every record's ranges to decode.
inline std::vector<log_record> log_records(const std::string& log) {
  namespace fmt = keel::fmt;
  std::vector<log_record> out;
  std::uint64_t pos = sizeof(fmt::file_header);
  while (pos + sizeof(fmt::record_header) <= log.size()) {
    fmt::record_header h;
    std::memcpy(&h, log.data() + pos, sizeof h);
    if (h.magic != fmt::kRecordMagic) break;
    log_record r{pos, sizeof h + h.payload_bytes + sizeof(fmt::record_trailer), h.lsn, h.commit_ns, {}};
    const auto* body = reinterpret_cast<const std::byte*>(log.data() + pos + sizeof h);
    REQUIRE(keel::redo::decode(body, h.payload_bytes, h.range_count, std::uint64_t{1} << 62, r.ranges).empty());
    pos += r.bytes;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace keel_test
