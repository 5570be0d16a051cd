// The before-image journal: the checkpoint image of every page changed
// since the last checkpoint, synced before the change reaches the mapping.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "keel/os.h"

namespace keel::journal {

// Appends one entry (header + page image) to buf.
void append_entry(std::vector<std::byte>& buf, std::uint64_t page_off, std::uint64_t epoch, const std::byte* image);

struct scan_result {
  std::uint64_t end = 0;      // position after the last valid entry
  std::uint64_t entries = 0;  // valid entries seen
  std::string stop;           // why scanning stopped early ("" = clean end)
};

// Reads entries from the header's end, stopping at the first invalid one
// (torn tail), and calls on_entry(page_offset, image) for each valid entry
// of `epoch` whose page lies in [meta page, data_limit).
scan_result scan(os& sys, int fd, const std::string& path, std::uint64_t epoch, std::uint64_t data_limit,
                 const std::function<void(std::uint64_t page_off, const std::byte* image)>& on_entry);

}  // namespace keel::journal
