// The one checksum of the format: XXH3-64, seed 0 (libxxhash).
#pragma once

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstddef>
#include <cstdint>

namespace keel {

inline std::uint64_t checksum(const void* p, std::size_t n) noexcept { return XXH3_64bits(p, n); }

// Checksum of two discontiguous pieces, as if they were one buffer.
inline std::uint64_t checksum2(const void* a, std::size_t na, const void* b, std::size_t nb) noexcept {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, a, na);
  XXH3_64bits_update(&st, b, nb);
  return XXH3_64bits_digest(&st);
}

}  // namespace keel
