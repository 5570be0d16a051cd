// byte_buffer and copy_short (src/txn/byte_buffer.h), which keep the bytes
// of a transaction's unpublished writes for its log record: every length
// copied exactly, appends kept across growth, truncate, and a huge buffer
// given back by clear().
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "txn/byte_buffer.h"

namespace {

std::vector<std::byte> random_bytes(std::size_t n, std::mt19937_64& g) {
  std::vector<std::byte> v(n);
  for (std::byte& b : v) b = static_cast<std::byte>(g());
  return v;
}

}  // namespace

TEST_CASE("copy_short copies exactly n bytes, for every n up to 80") {
  std::mt19937_64 g(1);
  for (std::size_t n = 0; n <= 80; ++n) {
    CAPTURE(n);
    const std::vector<std::byte> src = random_bytes(n, g);
    std::vector<std::byte> dst(n + 16, std::byte{0x5a});  // guard bytes after n
    keel::copy_short(dst.data(), src.data(), n);
    CHECK(std::equal(src.begin(), src.end(), dst.begin()));
    for (std::size_t i = n; i < dst.size(); ++i) CHECK(dst[i] == std::byte{0x5a});
  }
}

TEST_CASE("byte_buffer keeps every append, in order, across growth") {
  std::mt19937_64 g(2);
  keel::byte_buffer buf;
  CHECK(buf.size() == 0);
  std::vector<std::byte> want;
  std::vector<std::size_t> at;
  for (int i = 0; i < 20000; ++i) {  // 40-byte appends pass the first 64 KiB capacity several times
    const std::size_t na = g() % 24, nb = g() % 48;
    const std::vector<std::byte> a = random_bytes(na, g), b = random_bytes(nb, g);
    at.push_back(buf.append(a.data(), na, b.data(), nb));
    CHECK(at.back() == want.size());
    want.insert(want.end(), a.begin(), a.end());
    want.insert(want.end(), b.begin(), b.end());
  }
  REQUIRE(buf.size() == want.size());
  CHECK(buf.capacity() >= buf.size());
  CHECK(std::equal(want.begin(), want.end(), buf.data()));

  buf.truncate(at[100]);
  CHECK(buf.size() == at[100]);
  buf.truncate(at[200]);  // past the end: nothing
  CHECK(buf.size() == at[100]);
  const std::byte x[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
  CHECK(buf.append(x, 3, nullptr, 0) == at[100]);
  CHECK(std::equal(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(at[100]), buf.data()));
  CHECK(buf.data()[at[100] + 2] == std::byte{3});
}

TEST_CASE("byte_buffer::clear keeps a modest capacity and gives back a huge one") {
  keel::byte_buffer buf;
  const std::vector<std::byte> chunk(4096, std::byte{7});
  for (int i = 0; i < 64; ++i) buf.append(chunk.data(), chunk.size(), nullptr, 0);  // 256 KiB
  const std::size_t modest = buf.capacity();
  buf.clear();
  CHECK(buf.size() == 0);
  CHECK(buf.capacity() == modest);  // reused by the next transaction

  for (int i = 0; i < 8192; ++i) buf.append(chunk.data(), chunk.size(), nullptr, 0);  // 32 MiB
  REQUIRE(buf.capacity() > (std::size_t{16} << 20));
  buf.clear();
  CHECK(buf.capacity() == 32u << 20);  // it held most of it: kept
  buf.append(chunk.data(), chunk.size(), nullptr, 0);  // then a small transaction
  buf.clear();
  CHECK(buf.capacity() == 0);  // given back
  CHECK(buf.append(chunk.data(), 10, nullptr, 0) == 0);
  CHECK(buf.size() == 10);
}
