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

// Links a block onto its class's free list; counted = false when its bytes
// are already in free_bytes (a block leaving limbo).
void push(write_txn::impl& t, int cls, std::uint64_t off, std::uint64_t bytes, bool counted = true) {
  t.set64(off, t.get64(head_off(cls)));
  t.set64(head_off(cls), off);
  if (counted) t.set64(KEEL_META(free_bytes), t.get64(KEEL_META(free_bytes)) + bytes);
}

std::uint64_t limbo_at(int i, std::size_t field) {
  return KEEL_META(limbo) + sizeof(fmt::limbo_entry) * static_cast<std::uint64_t>(i) + field;
}
constexpr std::size_t kOff = offsetof(fmt::limbo_entry, off), kBytes = offsetof(fmt::limbo_entry, bytes),
                      kFreeLsn = offsetof(fmt::limbo_entry, free_lsn);

std::uint64_t limbo_count(write_txn::impl& t) {
  const std::uint64_t n = t.get64(KEEL_META(limbo_count));
  if (n > static_cast<std::uint64_t>(fmt::kLimbo))
    throw error(errc::corrupt, t.s.path, "meta page: limbo holds " + std::to_string(n) + " entries, more than " +
                                             std::to_string(fmt::kLimbo));
  return n;
}

// Index of the limbo entry for the block at off, or -1.
int limbo_find(write_txn::impl& t, std::uint64_t off) {
  const int n = static_cast<int>(limbo_count(t));
  for (int i = 0; i < n; ++i)
    if (t.get64(limbo_at(i, kOff)) == off) return i;
  return -1;
}

// Moves every freed limbo block whose freeing commit a checkpoint covers to
// its free list: no record that may copy from it can be replayed any more.
void drain(write_txn::impl& t) {
  int n = static_cast<int>(limbo_count(t));
  for (int i = 0; i < n;) {
    const std::uint64_t lsn = t.get64(limbo_at(i, kFreeLsn));
    if (lsn == fmt::kPinned || lsn > t.s.sb.checkpoint_lsn) {
      ++i;
      continue;
    }
    const std::uint64_t off = t.get64(limbo_at(i, kOff)), bytes = t.get64(limbo_at(i, kBytes));
    const int cls = class_of(bytes);
    if (bytes == 0 || class_bytes(cls) != bytes)
      throw error(errc::corrupt, t.s.path, "meta page: limbo entry " + std::to_string(i) + " holds a block of " +
                                               std::to_string(bytes) + " bytes, not a size class");
    check_block(t, cls, off, bytes);
    push(t, cls, off, bytes, false);
    --n;
    for (std::size_t f : {kOff, kBytes, kFreeLsn}) t.set64(limbo_at(i, f), t.get64(limbo_at(n, f)));
    t.set64(KEEL_META(limbo_count), static_cast<std::uint64_t>(n));
  }
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

std::uint64_t bump_at(std::uint64_t cursor, std::uint64_t bytes) noexcept {
  // Small blocks stay inside one page; large ones start a page.
  if ((bytes <= kPage && (cursor % kPage) + bytes > kPage) || (bytes > kPage && cursor % kPage != 0))
    return fmt::align_up(cursor, kPage);
  return cursor;
}

std::uint64_t allocate(write_txn::impl& t, std::uint64_t n) {
  if (n == 0 || n > t.s.sb.max_size)
    throw error(errc::invalid_argument, t.s.path, "cannot allocate " + std::to_string(n) + " bytes");
  const int cls = class_of(n);
  const std::uint64_t bytes = class_bytes(cls);
  if (t.get64(KEEL_META(limbo_count)) != 0) drain(t);
  if (std::uint64_t head = t.get64(head_off(cls))) {
    check_block(t, cls, head, bytes);
    const std::uint64_t next = t.get64(head);
    if (next != 0) check_block(t, cls, next, bytes);
    t.set64(head_off(cls), next);
    t.set64(KEEL_META(free_bytes), t.get64(KEEL_META(free_bytes)) - bytes);
    account_live(t, static_cast<std::int64_t>(bytes));
    return head;
  }
  const std::uint64_t old = t.cursor, at = bump_at(old, bytes);
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

// The class of an n-byte block at off, which must be placed like one.
int block_class(write_txn::impl& t, std::uint64_t off, std::uint64_t n, const char* what) {
  if (n == 0 || n > t.s.sb.max_size)
    throw error(errc::invalid_argument, t.s.path, std::string("cannot ") + what + " " + std::to_string(n) + " bytes");
  const int cls = class_of(n);
  const std::uint64_t bytes = class_bytes(cls);
  const bool small = bytes <= kPage;
  if (off < fmt::kArenaOffset || off % 16 != 0 || off > t.cursor || bytes > t.cursor - off ||
      (small ? (off % kPage) + bytes > kPage : off % kPage != 0))
    throw error(errc::invalid_argument, t.s.path,
                std::string(what) + " of " + std::to_string(n) + " bytes at " + std::to_string(off) +
                    ": not a block of that size");
  return cls;
}

void release(write_txn::impl& t, std::uint64_t off, std::uint64_t n) {
  const int cls = block_class(t, off, n, "free");
  const std::uint64_t bytes = class_bytes(cls);
  account_live(t, -static_cast<std::int64_t>(bytes));
  if (t.get64(KEEL_META(limbo_count)) != 0)
    if (const int i = limbo_find(t, off); i >= 0 && t.get64(limbo_at(i, kFreeLsn)) == fmt::kPinned) {
      if (t.get64(limbo_at(i, kBytes)) != bytes)
        throw error(errc::corrupt, t.s.path, "meta page: limbo entry " + std::to_string(i) + " pins " +
                                                 std::to_string(t.get64(limbo_at(i, kBytes))) + " bytes at " +
                                                 std::to_string(off) + ", freed as " + std::to_string(bytes));
      t.set64(limbo_at(i, kFreeLsn), t.s.last_lsn + 1);  // this transaction's LSN
      if (off == t.pin_lo) t.pin_lo = t.pin_hi = 0;      // no more copies from it
      t.set64(KEEL_META(free_bytes), t.get64(KEEL_META(free_bytes)) + bytes);
      return;
    }
  push(t, cls, off, bytes);
}

bool pin(write_txn::impl& t, std::uint64_t off, std::uint64_t n) {
  const int cls = block_class(t, off, n, "pin");
  const int i = limbo_find(t, off);
  if (i >= 0) {
    if (t.get64(limbo_at(i, kFreeLsn)) != fmt::kPinned)
      throw error(errc::invalid_argument, t.s.path, "pin of " + std::to_string(off) + ": the block was freed");
    return true;
  }
  const std::uint64_t count = limbo_count(t);
  if (count == static_cast<std::uint64_t>(fmt::kLimbo)) return false;
  const int at = static_cast<int>(count);
  t.set64(limbo_at(at, kOff), off);
  t.set64(limbo_at(at, kBytes), class_bytes(cls));
  t.set64(limbo_at(at, kFreeLsn), fmt::kPinned);
  t.set64(KEEL_META(limbo_count), count + 1);
  return true;
}

}  // namespace keel::allocator
