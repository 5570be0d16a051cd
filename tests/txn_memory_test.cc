// txn_lists and page_slab (src/store/store_impl.h): the memory a write
// transaction works in, which the store keeps between transactions.
// txn_lists holds what a transaction wrote outside its private page
// copies: clear() must empty every list, keep the capacity of lists sized
// like a transaction's (so the next one does not grow them again), and give
// back a list far larger than what it last held (a resize's transaction
// holds hundreds of thousands of copy spans). page_slab holds the private
// page copies (below).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "store/store_impl.h"

namespace {

keel::copy_span span(std::uint64_t i) { return {4096 + 40 * i, 1 << 20, 40, true}; }

}  // namespace

TEST_CASE("clear empties every list and keeps the capacity of transaction-sized ones") {
  keel::txn_lists l;
  for (std::uint64_t i = 0; i < 10'000; ++i) {
    l.copies.push_back(span(i));
    l.fresh.push_back({i * 64, i * 64 + 40});
    l.fresh_zero.push_back({i * 64, i * 64 + 8});
    l.direct.push_back({i * 128, i * 128 + 40});
    l.extent_buf.push_back({i, i + 1});
    const std::uint64_t bytes[5] = {i, i + 1, i + 2, i + 3, i + 4};
    l.captured.append(bytes, 8, bytes + 1, 32);
  }
  const std::size_t copies_cap = l.copies.capacity(), fresh_cap = l.fresh.capacity(), captured_cap = l.captured.capacity();
  l.clear();
  CHECK(l.copies.empty());
  CHECK(l.fresh.empty());
  CHECK(l.fresh_zero.empty());
  CHECK(l.direct.empty());
  CHECK(l.extent_buf.empty());
  CHECK(l.captured.size() == 0);
  CHECK(l.copies.capacity() == copies_cap);
  CHECK(l.fresh.capacity() == fresh_cap);
  CHECK(l.captured.capacity() == captured_cap);
  // Reused: the next transaction's lists start empty and work as new.
  l.copies.push_back(span(7));
  REQUIRE(l.copies.size() == 1);
  CHECK(l.copies[0].dst == span(7).dst);
}

TEST_CASE("clear gives back a list over 16 MiB that held less than an eighth of it, and keeps a fuller one") {
  keel::txn_lists l;
  constexpr std::size_t big = (std::size_t{32} << 20) / sizeof(keel::copy_span);  // 32 MiB of spans
  l.copies.reserve(big);
  l.direct.reserve(big);
  for (std::uint64_t i = 0; i < 1000; ++i) l.copies.push_back(span(i));  // far below an eighth
  for (std::uint64_t i = 0; i < big / 4; ++i) l.direct.push_back({i * 64, i * 64 + 40});  // a quarter
  l.clear();
  CHECK(l.copies.empty());
  CHECK(l.copies.capacity() == 0);
  CHECK(l.direct.empty());
  CHECK(l.direct.capacity() >= big);
}

// page_slab (same header): a transaction's private page copies. Each chunk
// of 1,024 pages is a mapping of its own, 2 MiB aligned, advised for huge
// pages before its first touch (write_txn.cc, page_slab::add_chunk).
namespace {

// "THPeligible" of the /proc/self/smaps mapping holding p: 1 when the
// kernel may back it with huge pages, -1 when not found.
int thp_eligible(const void* p) {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  char line[512];
  bool inside = false;
  int out = -1;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && std::strchr(line, '-') < std::strchr(line, ' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    int v = 0;
    if (inside && std::sscanf(line, "THPeligible: %d", &v) == 1) {
      out = v;
      break;
    }
  }
  std::fclose(f);
  return out;
}

bool thp_madvise_or_always() {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f) return false;
  char buf[128] = {};
  const bool ok = std::fgets(buf, sizeof buf, f) && !std::strstr(buf, "[never]");
  std::fclose(f);
  return ok;
}

}  // namespace

TEST_CASE("page_slab: 2 MiB-aligned chunks of distinct writable pages, advised for huge pages, reused after reset") {
  keel::page_slab slab;
  constexpr std::size_t n = 2500;  // three chunks
  std::vector<keel::txn_page*> got;
  for (std::size_t i = 0; i < n; ++i) got.push_back(slab.take());
  for (std::size_t i = 0; i < n; ++i) {
    const auto a = reinterpret_cast<std::uintptr_t>(got[i]->data);
    CAPTURE(i);
    CHECK(a % keel::fmt::kPage == 0);
    if (i % 1024 == 0) CHECK(a % (std::uintptr_t{2} << 20) == 0);  // a chunk's first page
    if (i % 1024 != 0) CHECK(got[i]->data == got[i - 1]->data + keel::fmt::kPage);
    std::memset(got[i]->data, static_cast<int>(i & 0xff), keel::fmt::kPage);
  }
  for (std::size_t i = 0; i < n; i += 97) {  // every page kept its own bytes
    CAPTURE(i);
    CHECK(got[i]->data[0] == static_cast<std::byte>(i & 0xff));
    CHECK(got[i]->data[keel::fmt::kPage - 1] == static_cast<std::byte>(i & 0xff));
  }
  if (thp_madvise_or_always())
    for (std::size_t c = 0; c < n; c += 1024) {
      CAPTURE(c);
      CHECK(thp_eligible(got[c]->data) == 1);
    }
  slab.reset();
  for (std::size_t i = 0; i < n; ++i) CHECK(slab.take() == got[i]);
}
