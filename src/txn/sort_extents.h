// Sorting a commit's extents ([lo, hi) byte ranges) by start offset.
// Internal.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace keel {

// Sorts v by E::lo (a std::uint64_t), using tmp as scratch. A resize's
// commit holds hundreds of thousands of extents: from 1,024 on, an LSD
// radix sort (11-bit digits, as many as the largest offset needs, stable)
// takes a few passes where a comparison sort takes about twenty; below
// that std::sort (not stable: equal starts may come in any order).
template <class E>
void sort_extents(std::vector<E>& v, std::vector<E>& tmp) {
  if (v.size() < 1024) {
    std::sort(v.begin(), v.end(), [](const E& a, const E& b) { return a.lo < b.lo; });
    return;
  }
  constexpr int kBits = 11;
  constexpr std::size_t kBuckets = std::size_t{1} << kBits;
  std::uint64_t top = 0;
  for (const E& e : v) top |= e.lo;
  tmp.resize(v.size());
  std::vector<std::size_t> count(kBuckets + 1);
  for (int shift = 0; shift < 64 && (top >> shift) != 0; shift += kBits) {
    std::fill(count.begin(), count.end(), 0);
    for (const E& e : v) ++count[((e.lo >> shift) & (kBuckets - 1)) + 1];
    for (std::size_t i = 0; i < kBuckets; ++i) count[i + 1] += count[i];
    for (const E& e : v) tmp[count[(e.lo >> shift) & (kBuckets - 1)]++] = e;
    v.swap(tmp);
  }
}

}  // namespace keel
