// sort_extents (src/txn/sort_extents.h), which orders a commit's extents
// before they are merged and logged: against std::stable_sort on random
// inputs around the switch to the radix sort, with repeated starts and
// starts up to the top bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "txn/sort_extents.h"

namespace {

struct ext {
  std::uint64_t lo, hi;
  bool operator==(const ext&) const = default;
};

std::vector<ext> random_extents(std::size_t n, std::uint64_t span, std::mt19937_64& g) {
  std::vector<ext> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t lo = span == 0 ? g() : g() % span;
    v[i] = {lo, i};  // hi records the input position: stability is visible
  }
  return v;
}

}  // namespace

TEST_CASE("sort_extents orders by start; from 1,024 extents it keeps equal starts in input order") {
  std::mt19937_64 g(0x5eed);
  std::vector<ext> tmp;
  for (const std::size_t n : {0ul, 1ul, 2ul, 1023ul, 1024ul, 1025ul, 4096ul, 100000ul})
    for (const std::uint64_t span : {std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{2048}, std::uint64_t{1} << 22,
                                     std::uint64_t{1} << 40, std::uint64_t{0} /* any 64-bit value */}) {
      CAPTURE(n);
      CAPTURE(span);
      std::vector<ext> v = random_extents(n, span, g), want = v;
      std::stable_sort(want.begin(), want.end(), [](const ext& a, const ext& b) { return a.lo < b.lo; });
      keel::sort_extents(v, tmp);
      if (n >= 1024) {
        CHECK(v == want);
      } else {  // std::sort: ordered, and the same extents
        CHECK(std::is_sorted(v.begin(), v.end(), [](const ext& a, const ext& b) { return a.lo < b.lo; }));
        auto by_both = [](const ext& a, const ext& b) { return a.lo != b.lo ? a.lo < b.lo : a.hi < b.hi; };
        std::sort(v.begin(), v.end(), by_both);
        std::sort(want.begin(), want.end(), by_both);
        CHECK(v == want);
      }
    }
}

TEST_CASE("sort_extents: already sorted, reversed, and the largest offsets") {
  std::vector<ext> tmp;
  std::vector<ext> v;
  for (std::uint64_t i = 0; i < 5000; ++i) v.push_back({i * 4096, i});
  const std::vector<ext> sorted = v;
  keel::sort_extents(v, tmp);
  CHECK(v == sorted);
  std::reverse(v.begin(), v.end());
  keel::sort_extents(v, tmp);
  CHECK(v == sorted);
  // Starts differing only in their top bits (the last, partial digit).
  v.clear();
  for (std::uint64_t i = 0; i < 3000; ++i) v.push_back({~std::uint64_t{0} - (i % 3) * (std::uint64_t{1} << 62), i});
  std::vector<ext> want = v;
  std::stable_sort(want.begin(), want.end(), [](const ext& a, const ext& b) { return a.lo < b.lo; });
  keel::sort_extents(v, tmp);
  CHECK(v == want);
}
