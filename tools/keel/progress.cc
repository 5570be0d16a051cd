#include "progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common.h"

namespace keel::cli {

namespace {

std::string duration(double s) {
  if (s < 60) return ::fmt::format("{:.0f}s", s);
  const auto t = static_cast<std::uint64_t>(s);
  if (t < 3600) return ::fmt::format("{}m{:02}s", t / 60, t % 60);
  return ::fmt::format("{}h{:02}m", t / 3600, t % 3600 / 60);
}

std::string compact_count(double v) {
  if (v >= 1e9) return ::fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return ::fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return ::fmt::format("{:.1f}k", v / 1e3);
  return ::fmt::format("{:.0f}", v);
}

}  // namespace

progress::progress(std::string label, std::string what, std::uint64_t total, unit u)
    : label_(std::move(label)), what_(std::move(what)), total_(total), unit_(u) {
  enabled_ = !settings().quiet;
  tty_ = ::isatty(STDERR_FILENO) == 1;
  // A terminal: drawn after a quarter second (short commands stay silent),
  // then 10 times a second. A log: a line every 2 seconds.
  delay_s_ = tty_ ? 0.25 : 2;
  every_s_ = tty_ ? 0.1 : 2;
  if (const char* e = std::getenv("KEEL_PROGRESS_INTERVAL_MS")) {  // tests: KEEL_PROGRESS_INTERVAL_MS=0
    delay_s_ = every_s_ = std::atof(e) / 1000;
  }
  start_ = last_ = std::chrono::steady_clock::now();
}

progress::~progress() {
  if (!finished_ && printed_ && tty_) std::fputs("\n", stderr);  // leave the bar's line on error
}

std::string progress::amount(std::uint64_t n) const {
  return unit_ == unit::bytes ? human_bytes(n) : compact_count(static_cast<double>(n));
}

std::string progress::suffix() const {
  return unit_ == unit::bytes ? std::string() : " " + what_;
}

std::string progress::line(double secs, bool bar) const {
  const double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
  const std::string rate_s = unit_ == unit::bytes ? human_bytes(static_cast<std::uint64_t>(rate)) + "/s"
                                                  : compact_count(rate) + " " + what_ + "/s";
  std::string s = label_ + ": ";
  if (total_ > 0) {
    const double f = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    if (bar) {
      constexpr int width = 30;
      const int full = static_cast<int>(f * width);
      s += '[';
      s.append(static_cast<std::size_t>(full), '=');
      if (full < width) s += '>';
      s.append(static_cast<std::size_t>(width - std::min(width, full + 1)), ' ');
      s += "] ";
    }
    s += ::fmt::format("{:5.1f}% {}/{}{}, {}", 100 * f, amount(done_), amount(total_), suffix(), rate_s);
    if (rate > 0 && done_ < total_) s += ", " + duration(static_cast<double>(total_ - done_) / rate) + " left";
  } else {
    s += ::fmt::format("{}{}, {}", amount(done_), suffix(), rate_s);
  }
  return s;
}

void progress::tick(bool force) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since_start = std::chrono::duration<double>(now - start_).count();
  const double since_last = std::chrono::duration<double>(now - last_).count();
  if (!force && (since_start < delay_s_ || since_last < every_s_)) return;
  if (tty_)
    std::fprintf(stderr, "\r%s\x1b[K", line(since_start, true).c_str());
  else
    std::fprintf(stderr, "%s\n", line(since_start, false).c_str());
  std::fflush(stderr);
  printed_ = true;
  last_ = now;
}

void progress::finish() {
  if (finished_) return;
  if (enabled_ && printed_) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const std::string done = ::fmt::format("{}: done, {}{} in {}", label_, amount(done_), suffix(), duration(secs));
    if (tty_)
      std::fprintf(stderr, "\r%s\x1b[K\n", done.c_str());
    else
      std::fprintf(stderr, "%s\n", done.c_str());
  }
  finished_ = true;
}

}  // namespace keel::cli
