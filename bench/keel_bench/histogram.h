// keel-bench: a latency histogram with log-linear buckets (32 per power of
// two, so a percentile is within about 3% of the true value), mergeable,
// with exact min, max and mean.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kb {

class histogram {
 public:
  void add(std::uint64_t ns);
  void merge(const histogram& o);
  bool empty() const { return count_ == 0; }
  std::uint64_t count() const { return count_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }
  // The value below which a fraction p (0..1) of the samples lie,
  // interpolated inside its bucket.
  double percentile(double p) const;
  // "p50 1.2 µs  p99 3.4 µs  p999 10 µs  max 20 µs"
  std::string brief() const;
  // Bucket table, db_bench style (ranges holding samples, with % and cumulative %).
  std::string table() const;

 private:
  static constexpr int kSub = 32;
  static int bucket(std::uint64_t ns);
  static std::uint64_t lower(int b);
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0, sum_ = 0, min_ = ~0ull, max_ = 0;
};

}  // namespace kb
