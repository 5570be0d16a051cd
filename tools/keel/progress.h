// Progress of a long command on stderr: a bar with rate and time left when
// stderr is a terminal, a plain line every few seconds otherwise (nothing
// at all with --quiet). Not thread-safe: one thread reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace keel::cli {

class progress {
 public:
  enum class unit { items, bytes };
  // total 0: unknown (no percentage or time left).
  progress(std::string label, std::string what, std::uint64_t total, unit u = unit::items);
  ~progress();
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;

  void set_total(std::uint64_t total) { total_ = total; }
  // Cheap enough to call per entry: the clock is read every 64 calls.
  void update(std::uint64_t done) {
    done_ = done;
    if (++calls_ % 64 == 0) tick(false);
  }
  // For callbacks that come now and then: reads the clock every time.
  void set(std::uint64_t done) {
    done_ = done;
    tick(false);
  }
  // Ends the display: a terminal gets a summary line; a plain log gets one
  // when it printed anything before. Idempotent.
  void finish();

 private:
  void tick(bool force);
  std::string amount(std::uint64_t n) const;
  std::string suffix() const;  // " entries", or nothing for bytes
  std::string line(double secs, bool bar) const;

  std::string label_, what_;
  std::uint64_t total_, done_ = 0, calls_ = 0;
  unit unit_;
  bool enabled_, tty_, printed_ = false, finished_ = false;
  double delay_s_, every_s_;  // silent for delay_s_, then a line at most every every_s_
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace keel::cli
