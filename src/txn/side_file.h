// What the redo log and the journal share: a checksummed 64-byte header and
// a windowed sequential reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "file/format.h"
#include "keel/os.h"

namespace keel::side {

fmt::file_header make_header(const unsigned char (&magic)[8], std::uint64_t file_id);
// Empty when the header is valid for this store, else what is wrong.
std::string header_problem(const fmt::file_header& h, const unsigned char (&magic)[8], std::uint64_t file_id);

// Writes the header of a new, empty file and syncs it. The header is never
// rewritten afterwards, so no later crash can tear it.
void create(os& sys, int fd, const std::string& path, const unsigned char (&magic)[8], std::uint64_t file_id);
// Truncates to just the header and syncs. Until the truncation is durable a
// crash may leave the old entries; they belong to the previous epoch and
// recovery skips them (records by LSN, journal entries by epoch).
void recycle(os& sys, int fd, const std::string& path);

// True when bytes [from, to) of the file are all zero (the log's reserve).
bool zero_from(os& sys, int fd, const std::string& path, std::uint64_t from, std::uint64_t to);

// Reads a file front to back through a window of at least 1 MiB.
class reader {
 public:
  reader(os& sys, int fd, const std::string& path, std::uint64_t file_len);
  // Pointer to n bytes at pos, or nullptr when the file ends first.
  const std::byte* at(std::uint64_t pos, std::size_t n);
  std::uint64_t size() const noexcept { return len_; }

 private:
  os& sys_;
  int fd_;
  const std::string& path_;
  std::uint64_t len_;
  std::uint64_t win_pos_ = 0;
  std::vector<std::byte> win_;
};

}  // namespace keel::side
