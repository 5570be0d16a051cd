// Seeds and knobs of the randomized tests: environment variables, a seed
// from the clock, and the seeded hashing workloads derive their operations
// from. Header-only.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>

namespace keel_test {

inline std::uint64_t env_u64(const char* name, std::uint64_t dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return std::strtoull(v, nullptr, 0);
}

// The variable's value, else a seed from the clock (32 bits).
inline std::uint64_t env_seed(const char* name) {
  return env_u64(name,
                 static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) & 0xFFFFFFFFull);
}

// splitmix64 finalizer.
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
// A pure function of (seed, k, i): workloads derive transaction k's operations from it.
inline std::uint64_t h3(std::uint64_t seed, std::uint64_t k, std::uint64_t i) {
  return mix(seed ^ mix(k * 0x100000001b3ull ^ mix(i + 0x51ed27)));
}

}  // namespace keel_test
