// The before-image journal: the checkpoint image of every page changed
// since the last checkpoint, synced before the change reaches the mapping.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "keel/os.h"

namespace keel::journal {

// Appends one entry to buf: the lines of `mask` of the page image at `page`.
void append_entry(std::vector<std::byte>& buf, std::uint64_t page_off, std::uint64_t epoch, std::uint64_t mask,
                  const std::byte* page);

struct scan_result {
  std::uint64_t end = 0;      // position after the last valid entry
  std::uint64_t entries = 0;  // valid entries seen
  std::string stop;           // why scanning stopped early ("" = clean end)
};

// Reads entries from the header's end, stopping at the first invalid one
// (torn tail, or another epoch's), and calls on_entry(page_offset, mask,
// lines) for each valid entry whose page lies in [meta page, data_limit);
// `lines` holds popcount(mask) lines of 64 bytes, in line order.
scan_result scan(os& sys, int fd, const std::string& path, std::uint64_t epoch, std::uint64_t data_limit,
                 const std::function<void(std::uint64_t page_off, std::uint64_t mask, const std::byte* lines)>& on_entry);

}  // namespace keel::journal
