#include "common.h"

#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <new>
#include <cstdio>
#include <cstdlib>

namespace kb {

namespace {
std::atomic<std::uint64_t> g_huge_bytes{0};
std::size_t huge_round(std::size_t bytes) { return (bytes + kHugeBlock - 1) / kHugeBlock * kHugeBlock; }
}  // namespace

void huge_advise(void* p, std::size_t len) { (void)::madvise(p, len, MADV_HUGEPAGE); }

void huge_advise_file(const std::string& file) {
  std::error_code ec;
  const std::string want = std::filesystem::weakly_canonical(file, ec).string();
  std::FILE* f = std::fopen("/proc/self/maps", "r");
  if (!f) return;
  char line[4096];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo = 0, hi = 0;
    int path_at = -1;
    if (std::sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &path_at) < 2 || path_at < 0) continue;
    std::string path(line + path_at);
    while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
    if (path == want) huge_advise(reinterpret_cast<void*>(lo), hi - lo);
  }
  std::fclose(f);
}

void* huge_alloc(std::size_t bytes) {
  const std::size_t len = huge_round(bytes);
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  huge_advise(p, len);
  g_huge_bytes += len;
  return p;
}

void huge_free(void* p, std::size_t bytes) {
  const std::size_t len = huge_round(bytes);
  ::munmap(p, len);
  g_huge_bytes -= len;
}

std::uint64_t huge_bytes() { return g_huge_bytes.load(); }

void die(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "keel-bench: %s\n", what.c_str());
  std::exit(2);
}

process_usage process_usage::now() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) die("getrusage failed");
  auto secs = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; };
  return {secs(u.ru_stime), secs(u.ru_utime), std::uint64_t(u.ru_minflt) + std::uint64_t(u.ru_majflt)};
}

const char* mode_name(mode m) {
  switch (m) {
    case mode::sync: return "sync";
    case mode::batch: return "batch";
    case mode::checkpoint: return "checkpoint";
    default: return "none";
  }
}

std::string variant(std::uint64_t txn, mode m) {
  std::string s;
  if (txn) s = fmt::format("txn={}", txn);
  if (m != mode::none) s += fmt::format("{}mode={}", s.empty() ? "" : " ", mode_name(m));
  return s;
}

bool config::want(const std::string& b) const {
  return std::find(benchmarks.begin(), benchmarks.end(), b) != benchmarks.end();
}
bool config::want_system(const std::string& s) const {
  return std::find(systems.begin(), systems.end(), s) != systems.end();
}

std::string human_bytes(double b) {
  if (b >= double(1ull << 30)) return fmt::format("{:.2f} GiB", b / double(1ull << 30));
  if (b >= double(1ull << 20)) return fmt::format("{:.1f} MiB", b / double(1ull << 20));
  return fmt::format("{:.1f} KiB", b / 1024.0);
}

std::string human_ns(double ns) {
  if (ns < 1e3) return fmt::format("{:.0f}ns", ns);
  if (ns < 1e4) return fmt::format("{:.2f}µs", ns / 1e3);
  if (ns < 1e6) return fmt::format("{:.0f}µs", ns / 1e3);
  if (ns < 1e9) return fmt::format("{:.1f}ms", ns / 1e6);
  return fmt::format("{:.2f}s", ns / 1e9);
}

std::string loadavg() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return "?";
  char buf[128] = {};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!ok) return "?";
  std::string s = buf;
  std::size_t at = 0;
  for (int i = 0; i < 3 && at != std::string::npos; ++i) at = s.find(' ', at + 1);
  return s.substr(0, at);
}

}  // namespace kb
