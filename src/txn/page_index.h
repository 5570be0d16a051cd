// The open transaction's private pages by page offset: a flat
// open-addressing table (linear probing, offset 0 = empty: no private page
// can sit at offset 0). Internal.
#pragma once

#include <cstdint>
#include <vector>

namespace keel {

struct txn_page;

class page_index {
 public:
  page_index() { entries_.resize(64); }

  txn_page* find(std::uint64_t page) const noexcept {
    for (std::size_t i = slot(page);; i = (i + 1) & mask()) {
      const entry& e = entries_[i];
      if (e.page == page) return e.p;
      if (e.page == 0) return nullptr;
    }
  }
  // The value for page, inserted as nullptr when absent.
  txn_page*& operator[](std::uint64_t page) {
    if ((count_ + 1) * 2 > entries_.size()) grow();
    std::size_t i = slot(page);
    while (entries_[i].page != page && entries_[i].page != 0) i = (i + 1) & mask();
    if (entries_[i].page == 0) {
      entries_[i] = {page, nullptr};
      ++count_;
    }
    return entries_[i].p;
  }
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  template <class F>
  void for_each(F&& f) const {
    for (const entry& e : entries_)
      if (e.page != 0) f(e.page, e.p);
  }
  // Kept between transactions (its capacity is reused); a table far larger
  // than what the last transaction needed is shrunk, so a small transaction
  // after a huge one does not clear megabytes.
  void clear() noexcept {
    if (count_ == 0) return;
    bool shrunk = false;
    if (entries_.size() > 4096 && count_ * 16 < entries_.size()) {
      std::size_t n = 64;
      while (n < count_ * 4) n *= 2;
      try {
        std::vector<entry>(n).swap(entries_);
        shrunk = true;
      } catch (...) {  // no memory for the smaller table: clear the big one
      }
    }
    if (!shrunk)
      for (entry& e : entries_) e = {};
    count_ = 0;
  }

 private:
  struct entry {
    std::uint64_t page = 0;
    txn_page* p = nullptr;
  };
  std::size_t mask() const noexcept { return entries_.size() - 1; }
  std::size_t slot(std::uint64_t page) const noexcept {
    return static_cast<std::size_t>(((page >> 12) * 0x9E3779B97F4A7C15ull) >> 32) & mask();
  }
  void grow() {
    std::vector<entry> old(entries_.size() * 2);
    old.swap(entries_);
    count_ = 0;
    for (const entry& e : old)
      if (e.page != 0) (*this)[e.page] = e.p;
  }
  std::vector<entry> entries_;
  std::size_t count_ = 0;
};

}  // namespace keel
