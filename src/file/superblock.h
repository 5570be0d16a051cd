// Reading, validating and writing the two superblock slots.
#pragma once

#include <cstdint>
#include <string>

#include "file/format.h"
#include "keel/os.h"

namespace keel::superblock {

void seal(fmt::superblock& sb) noexcept;

// Why a slot is unusable, or empty when it is valid.
std::string problem(const fmt::superblock& sb, std::uint32_t slot);

// Reads both slots of an open file of `actual_size` bytes and returns the
// valid one with the highest sequence. Throws not_a_keel_file,
// version_mismatch or corrupt (naming what is wrong with each slot), and
// corrupt when the file is shorter than the superblock says (truncated).
fmt::superblock choose(os& sys, int fd, const std::string& path, std::uint64_t actual_size);

// Writes sb into its slot and fdatasyncs the file.
void write(os& sys, int fd, const std::string& path, fmt::superblock& sb);

}  // namespace keel::superblock
