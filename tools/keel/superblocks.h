// Reads both superblock slots of a store file without opening the store
// (read-only, no lock, no mapping), for `keel info` and for finding the
// durability mode a store was last checkpointed with.
#pragma once

#include <array>
#include <string>

#include "file/format.h"

namespace keel::cli {

struct superblock_slot {
  bool present = false;  // the file is long enough to hold the slot
  fmt::superblock sb{};  // the raw bytes (meaningful when present)
  std::string problem;   // why the slot is not usable; empty when valid
  bool valid() const { return present && problem.empty(); }
};

// Throws failure when the file cannot be opened or read.
std::array<superblock_slot, 2> read_superblocks(const std::string& path);
// Index of the valid slot with the highest sequence, or -1.
int newest_slot(const std::array<superblock_slot, 2>& slots);

}  // namespace keel::cli
