// Per checkpoint epoch, for every page that existed at the checkpoint, two
// line masks: lines whose checkpoint image (or an image holding only durable
// commits) is durable in the journal, and lines an earlier commit of the
// epoch changed without journaling them (it made the log durable instead;
// docs/DURABILITY.md, "Commit"). Pages are grouped in chunks of 512,
// allocated on first use, so the cost follows the pages touched, not the
// file size; clear() at a checkpoint frees the chunks in use.
// Internal.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace keel {

class line_marks {
 public:
  struct entry {
    std::uint64_t journaled = 0;
    std::uint64_t seen = 0;  // changed, covered by a log sync, not journaled
  };

  // The entry of the page at byte offset `page` (page aligned).
  entry& at(std::uint64_t page) {
    const std::uint64_t n = page >> 12, c = n >> kShift;
    if (c >= chunks_.size()) chunks_.resize(c + 1);
    std::unique_ptr<chunk>& ch = chunks_[c];
    if (!ch) {
      ch = std::make_unique<chunk>();
      used_.push_back(c);
    }
    return ch->e[n & (kPerChunk - 1)];
  }
  // Hints the entry of `page` into the cache, if its chunk exists.
  void prefetch(std::uint64_t page) const noexcept {
    const std::uint64_t n = page >> 12, c = n >> kShift;
    if (c < chunks_.size() && chunks_[c]) __builtin_prefetch(&chunks_[c]->e[n & (kPerChunk - 1)]);
  }
  void clear() noexcept {
    for (std::uint64_t c : used_) chunks_[c].reset();
    used_.clear();
  }

 private:
  static constexpr int kShift = 9;
  static constexpr std::uint64_t kPerChunk = 1u << kShift;
  struct chunk {
    entry e[kPerChunk];
  };
  std::vector<std::unique_ptr<chunk>> chunks_;
  std::vector<std::uint64_t> used_;
};

}  // namespace keel
