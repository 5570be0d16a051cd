// An append-only byte buffer for a transaction's captured bytes: no zero
// fill on growth (unlike std::vector<std::byte>::resize), short appends
// copied inline, capacity kept between transactions. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace keel {

// Copies n bytes (any n; inline for the slot sizes a hash map writes).
inline void copy_short(std::byte* d, const void* src, std::size_t n) noexcept {
  const auto* s = static_cast<const std::byte*>(src);
  if (n >= 8 && n <= 16) {  // two 8-byte moves, overlapping when n < 16
    std::uint64_t a, b;
    std::memcpy(&a, s, 8);
    std::memcpy(&b, s + n - 8, 8);
    std::memcpy(d, &a, 8);
    std::memcpy(d + n - 8, &b, 8);
  } else if (n > 16 && n <= 32) {
    std::byte a[16], b[16];
    std::memcpy(a, s, 16);
    std::memcpy(b, s + n - 16, 16);
    std::memcpy(d, a, 16);
    std::memcpy(d + n - 16, b, 16);
  } else if (n != 0) {
    std::memcpy(d, s, n);
  }
}

class byte_buffer {
 public:
  // Appends a (na bytes) then b (nb bytes); returns where they start.
  // Throws std::bad_alloc, leaving the buffer as it was.
  std::size_t append(const void* a, std::size_t na, const void* b, std::size_t nb) {
    const std::size_t at = size_;
    if (cap_ - size_ < na + nb) grow(na + nb);
    copy_short(data_.get() + at, a, na);
    copy_short(data_.get() + at + na, b, nb);
    size_ = at + na + nb;
    return at;
  }
  // Drops what was appended from `at` on.
  void truncate(std::size_t at) noexcept {
    if (at < size_) size_ = at;
  }
  const std::byte* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  // Empties it; a buffer far larger than what it held is given back, so a
  // small transaction after a huge one does not keep the memory.
  void clear() noexcept {
    if (cap_ > (std::size_t{16} << 20) && size_ * 8 < cap_) {
      data_.reset();
      cap_ = 0;
    }
    size_ = 0;
  }

 private:
  void grow(std::size_t more) {
    std::size_t cap = cap_ == 0 ? std::size_t{64} << 10 : cap_ * 2;
    while (cap - size_ < more) cap *= 2;
    auto next = std::make_unique_for_overwrite<std::byte[]>(cap);
    if (size_ != 0) std::memcpy(next.get(), data_.get(), size_);
    data_ = std::move(next);
    cap_ = cap;
  }
  std::unique_ptr<std::byte[]> data_;
  std::size_t size_ = 0, cap_ = 0;
};

}  // namespace keel
