#include "histogram.h"

#include <fmt/core.h>

#include <algorithm>
#include <bit>

#include "common.h"

namespace kb {

// Values below kSub get a bucket each; above, bucket = 32 per octave.
int histogram::bucket(std::uint64_t ns) {
  if (ns < kSub) return int(ns);
  const int lg = std::bit_width(ns) - 1;  // >= 5
  const int sub = int((ns >> (lg - 5)) & (kSub - 1));
  return (lg - 4) * kSub + sub;
}
std::uint64_t histogram::lower(int b) {
  if (b < kSub) return std::uint64_t(b);
  const int lg = b / kSub + 4, sub = b % kSub;
  return (std::uint64_t(kSub) + sub) << (lg - 5);
}

void histogram::add(std::uint64_t ns) {
  const int b = bucket(ns);
  if (counts_.size() <= std::size_t(b)) counts_.resize(b + 1);
  ++counts_[b];
  ++count_;
  sum_ += ns;
  min_ = std::min(min_, ns);
  max_ = std::max(max_, ns);
}

void histogram::merge(const histogram& o) {
  if (counts_.size() < o.counts_.size()) counts_.resize(o.counts_.size());
  for (std::size_t i = 0; i < o.counts_.size(); ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

double histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  const double want = p * double(count_);
  double seen = 0;
  for (std::size_t b = 0; b < counts_.size(); ++b) {
    if (counts_[b] == 0) continue;
    if (seen + double(counts_[b]) >= want) {
      const double lo = double(lower(int(b))), hi = double(lower(int(b) + 1));
      double v = lo + (hi - lo) * (want - seen) / double(counts_[b]);
      return std::clamp(v, double(min_), double(max_));
    }
    seen += double(counts_[b]);
  }
  return double(max_);
}

std::string histogram::brief() const {
  if (count_ == 0) return "";
  return fmt::format("p50 {} p99 {} p999 {} max {}", human_ns(percentile(0.5)), human_ns(percentile(0.99)),
                     human_ns(percentile(0.999)), human_ns(double(max_)));
}

std::string histogram::table() const {
  std::string out = fmt::format("    count {}  mean {}  min {}  max {}\n", count_, human_ns(mean()),
                                human_ns(double(min())), human_ns(double(max_)));
  double cum = 0;
  for (std::size_t b = 0; b < counts_.size(); ++b) {
    if (counts_[b] == 0) continue;
    cum += double(counts_[b]);
    out += fmt::format("    [{:>9}, {:>9})  {:>10}  {:6.2f}%  {:7.2f}%\n", human_ns(double(lower(int(b)))),
                       human_ns(double(lower(int(b) + 1))), counts_[b], 100.0 * double(counts_[b]) / double(count_),
                       100.0 * cum / double(count_));
  }
  return out;
}

}  // namespace kb
