// Small helpers shared by the unit tests.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <keel/keel.h>
#include <optional>
#include <string>

namespace doctest {
template <>
struct StringMaker<keel::errc> {
  static String convert(keel::errc c) { return String(std::string(keel::to_string(c)).c_str()); }
};
}  // namespace doctest

namespace keel_test {

using u64 = std::uint64_t;

// Small stores keep the tests fast: 1 MiB reserved, 64 MiB at most.
inline keel::options small_opts() {
  using namespace keel::literals;
  keel::options o;
  o.initial_size = 1_MiB;
  o.max_size = 64_MiB;
  return o;
}

inline keel::options read_only_opts() {
  keel::options o = small_opts();
  o.read_only = true;
  return o;
}

// The keel::error f throws, or nullopt when it throws none.
template <class F>
std::optional<keel::error> catch_error(F&& f) {
  try {
    f();
  } catch (const keel::error& e) {
    return e;
  }
  return std::nullopt;
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// Byte surgery on a closed store file.
inline void poke(const std::string& path, u64 off, const void* p, std::size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, p, n, static_cast<off_t>(off)) == static_cast<ssize_t>(n));
  ::close(fd);
}

inline u64 peek64(const std::string& path, u64 off) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  u64 v = 0;
  REQUIRE(::pread(fd, &v, 8, static_cast<off_t>(off)) == 8);
  ::close(fd);
  return v;
}

}  // namespace keel_test
