#include "alloc/allocator.h"

#include <algorithm>

namespace keel::allocator {

using fmt::kPage;

namespace {

constexpr int kMaxHugeSteps = 64;

std::uint64_t head_off(int cls) { return KEEL_META(free_head) + 8 * static_cast<std::uint64_t>(cls); }

int class_of_pages(std::uint64_t pages) {
  if (pages <= 1) return fmt::kSmallClasses - 1;
  if (pages <= 64) return fmt::kSmallClasses + static_cast<int>(pages - 2);
  return fmt::kHugeClass;
}

// A free-list link read from the file must point at a block of its class.
void check_block(write_txn::impl& t, int cls, std::uint64_t off, std::uint64_t bytes, const char* what) {
  const bool small = bytes <= kPage;
  const bool ok = off >= fmt::kArenaOffset && off % 16 == 0 && off <= t.cursor && bytes <= t.cursor - off &&
                  (small ? (off % kPage) + bytes <= kPage : off % kPage == 0);
  if (!ok)
    throw error(errc::corrupt, t.s.path,
                std::string(what) + " of size class " + std::to_string(cls) + ": block at " + std::to_string(off) +
                    " is outside the arena or misaligned");
}

void push(write_txn::impl& t, int cls, std::uint64_t off, std::uint64_t bytes) {
  t.set64(off, t.get64(head_off(cls)));
  if (cls == fmt::kHugeClass) t.set64(off + 8, bytes);
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

std::uint64_t pop_huge(write_txn::impl& t, std::uint64_t want) {
  std::uint64_t prev_link = head_off(fmt::kHugeClass);
  std::uint64_t cur = t.get64(prev_link);
  for (int step = 0; cur != 0 && step < kMaxHugeSteps; ++step) {
    check_block(t, fmt::kHugeClass, cur, 16, "free list");
    const std::uint64_t size = t.get64(cur + 8);
    check_block(t, fmt::kHugeClass, cur, size, "free list");
    const std::uint64_t next = t.get64(cur);
    if (size >= want) {
      t.set64(prev_link, next);
      t.set64(KEEL_META(free_bytes), t.get64(KEEL_META(free_bytes)) - size);
      if (size > want) {
        const std::uint64_t rest = size - want;
        push(t, class_of_pages(rest / kPage), cur + want, rest);
      }
      return cur;
    }
    prev_link = cur;
    cur = next;
  }
  return 0;
}

}  // namespace

int class_of(std::uint64_t n) noexcept {
  if (n <= kPage) {
    const auto* b = std::begin(fmt::kSmallClassSize);
    return static_cast<int>(std::lower_bound(b, std::end(fmt::kSmallClassSize), n) - b);
  }
  return class_of_pages((n + kPage - 1) / kPage);
}

std::uint64_t class_bytes(int cls, std::uint64_t n) noexcept {
  if (cls < fmt::kSmallClasses) return fmt::kSmallClassSize[cls];
  if (cls < fmt::kHugeClass) return static_cast<std::uint64_t>(cls - fmt::kSmallClasses + 2) * kPage;
  return fmt::align_up(n, kPage);
}

std::uint64_t allocate(write_txn::impl& t, std::uint64_t n) {
  if (n == 0 || n > t.s.sb.max_size)
    throw error(errc::invalid_argument, t.s.path, "cannot allocate " + std::to_string(n) + " bytes");
  const int cls = class_of(n);
  const std::uint64_t bytes = class_bytes(cls, n);
  if (cls == fmt::kHugeClass) {
    if (std::uint64_t off = pop_huge(t, bytes)) {
      account_live(t, static_cast<std::int64_t>(bytes));
      return off;
    }
  } else if (std::uint64_t head = t.get64(head_off(cls))) {
    check_block(t, cls, head, bytes, "free list");
    const std::uint64_t next = t.get64(head);
    if (next != 0) check_block(t, cls, next, bytes, "free list");
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
  if (at + bytes > t.s.sb.max_size || at + bytes < at)
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
  const std::uint64_t bytes = class_bytes(cls, n);
  const bool small = bytes <= kPage;
  if (off < fmt::kArenaOffset || off % 16 != 0 || off > t.cursor || bytes > t.cursor - off ||
      (small ? (off % kPage) + bytes > kPage : off % kPage != 0))
    throw error(errc::invalid_argument, t.s.path,
                "free of " + std::to_string(n) + " bytes at " + std::to_string(off) + ": not a block of that size");
  push(t, cls, off, bytes);
  account_live(t, -static_cast<std::int64_t>(bytes));
}

}  // namespace keel::allocator
