#include "alloc/allocator.h"

#include <algorithm>

namespace keel::allocator {

using fmt::kPage;

namespace {

std::uint64_t head_off(int cls) { return KEEL_META(free_head) + 8 * static_cast<std::uint64_t>(cls); }

// Pages of a block of geometric class g (0-based): 2^e * (1 + j/4) for
// e = 6 + g/4, j = 1 + g%4.
std::uint64_t geo_pages(int g) {
  const std::uint64_t base = 1ull << (6 + g / 4);
  return base + base / 4 * static_cast<std::uint64_t>(1 + g % 4);
}

// A free-list link read from the file must point at a block of its class.
void check_block(write_txn::impl& t, int cls, std::uint64_t off, std::uint64_t bytes) {
  const bool small = bytes <= kPage;
  const bool ok = off >= fmt::kArenaOffset && off % 16 == 0 && off <= t.cursor && bytes <= t.cursor - off &&
                  (small ? (off % kPage) + bytes <= kPage : off % kPage == 0);
  if (!ok)
    throw error(errc::corrupt, t.s.path,
                "free list of size class " + std::to_string(cls) + ": block at " + std::to_string(off) +
                    " is outside the arena or misaligned");
}

void push(write_txn::impl& t, int cls, std::uint64_t off, std::uint64_t bytes) {
  t.set64(off, t.get64(head_off(cls)));
  t.set64(head_off(cls), off);
  t.set64(KEEL_META(free_bytes), t.get64(KEEL_META(free_bytes)) + bytes);
}

// Puts the unused tail [off, off+len) of a page on the small free lists.
void carve(write_txn::impl& t, std::uint64_t off, std::uint64_t len) {
  while (len >= 16) {
    int c = fmt::kSmallClasses - 1;
    while (fmt::kSmallClassSize[c] > len) --c;
    push(t, c, off, fmt::kSmallClassSize[c]);
    off += fmt::kSmallClassSize[c];
    len -= fmt::kSmallClassSize[c];
  }
}

void account_live(write_txn::impl& t, std::int64_t delta) {
  t.set64(KEEL_META(live_bytes), t.get64(KEEL_META(live_bytes)) + static_cast<std::uint64_t>(delta));
}

}  // namespace

int class_of(std::uint64_t n) noexcept {
  if (n <= kPage) {
    const auto* b = std::begin(fmt::kSmallClassSize);
    return static_cast<int>(std::lower_bound(b, std::end(fmt::kSmallClassSize), n) - b);
  }
  const std::uint64_t pages = (n + kPage - 1) / kPage;
  if (pages <= 64) return fmt::kSmallClasses + static_cast<int>(pages - 2);
  int g = 0;
  while (g < fmt::kGeoClasses - 1 && geo_pages(g) < pages) ++g;
  return fmt::kGeoFirst + g;
}

std::uint64_t class_bytes(int cls) noexcept {
  if (cls < fmt::kSmallClasses) return fmt::kSmallClassSize[cls];
  if (cls < fmt::kGeoFirst) return static_cast<std::uint64_t>(cls - fmt::kSmallClasses + 2) * kPage;
  return geo_pages(cls - fmt::kGeoFirst) * kPage;
}

std::uint64_t allocate(write_txn::impl& t, std::uint64_t n) {
  if (n == 0 || n > t.s.sb.max_size)
    throw error(errc::invalid_argument, t.s.path, "cannot allocate " + std::to_string(n) + " bytes");
  const int cls = class_of(n);
  const std::uint64_t bytes = class_bytes(cls);
  if (std::uint64_t head = t.get64(head_off(cls))) {
    check_block(t, cls, head, bytes);
    const std::uint64_t next = t.get64(head);
    if (next != 0) check_block(t, cls, next, bytes);
    t.set64(head_off(cls), next);
    t.set64(KEEL_META(free_bytes), t.get64(KEEL_META(free_bytes)) - bytes);
    account_live(t, static_cast<std::int64_t>(bytes));
    return head;
  }
  // Bump: keep small blocks inside one page, align large ones to pages.
  const std::uint64_t old = t.cursor;
  std::uint64_t at = old;
  if ((bytes <= kPage && (at % kPage) + bytes > kPage) || (bytes > kPage && at % kPage != 0))
    at = fmt::align_up(at, kPage);
  if (bytes > t.s.sb.max_size || at > t.s.sb.max_size - bytes)
    throw error(errc::full, t.s.path,
                "store is full: max_size is " + std::to_string(t.s.sb.max_size) + " bytes");
  t.s.grow(at + bytes);  // may throw full; nothing has changed yet
  t.cursor = at + bytes;
  t.set64(KEEL_META(cursor), t.cursor);
  carve(t, old, at - old);
  account_live(t, static_cast<std::int64_t>(bytes));
  return at;
}

void release(write_txn::impl& t, std::uint64_t off, std::uint64_t n) {
  if (n == 0 || n > t.s.sb.max_size)
    throw error(errc::invalid_argument, t.s.path, "cannot free " + std::to_string(n) + " bytes");
  const int cls = class_of(n);
  const std::uint64_t bytes = class_bytes(cls);
  const bool small = bytes <= kPage;
  if (off < fmt::kArenaOffset || off % 16 != 0 || off > t.cursor || bytes > t.cursor - off ||
      (small ? (off % kPage) + bytes > kPage : off % kPage != 0))
    throw error(errc::invalid_argument, t.s.path,
                "free of " + std::to_string(n) + " bytes at " + std::to_string(off) + ": not a block of that size");
  push(t, cls, off, bytes);
  account_live(t, -static_cast<std::int64_t>(bytes));
}

}  // namespace keel::allocator
