#include "common.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "superblocks.h"

namespace keel::cli {

std::uint64_t parse_size(std::string_view text, std::string_view option) {
  auto bad = [&] {
    return failure(::fmt::format("{}: '{}' is not a size (examples: 4096, 64M, 64MiB, 1G, 2TiB)", option, text),
                   kUsage);
  };
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || end == s.data()) throw bad();
  std::string unit(end, s.data() + s.size());
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int shift = 0;
  if (unit.empty() || unit == "b")
    shift = 0;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    shift = 10;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    shift = 20;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    shift = 30;
  else if (unit == "t" || unit == "tb" || unit == "tib")
    shift = 40;
  else
    throw bad();
  if (shift > 0 && n > (~std::uint64_t{0} >> shift)) throw bad();
  return n << shift;
}

durability parse_mode(std::string_view text) {
  if (text == "sync") return durability::sync;
  if (text == "batch") return durability::batch;
  if (text == "checkpoint") return durability::checkpoint;
  throw failure(::fmt::format("--durability: '{}' is not one of sync, batch, checkpoint", text), kUsage);
}

std::string_view mode_name(durability m) noexcept {
  switch (m) {
    case durability::sync:
      return "sync";
    case durability::batch:
      return "batch";
    case durability::checkpoint:
      return "checkpoint";
  }
  return "unknown";
}

std::string human_bytes(std::uint64_t n) {
  static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024) return ::fmt::format("{} B", n);
  double v = static_cast<double>(n);
  int u = -1;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return ::fmt::format("{:.1f} {}", v, units[u]);
}

std::uint64_t require_store_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw failure(path + ": no such file");
    throw failure(path + ": " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) throw failure(path + ": is a directory, not a Keel store");
  if (!S_ISREG(st.st_mode)) throw failure(path + ": not a regular file");
  return static_cast<std::uint64_t>(st.st_size);
}

std::unique_ptr<store> open_reader(const std::string& path) {
  require_store_file(path);
  options o;
  o.read_only = true;
  o.create_if_missing = false;
  return store::open(path, o);
}

std::optional<durability> recorded_mode(const std::string& path) {
  try {
    const auto slots = read_superblocks(path);
    const int i = newest_slot(slots);
    if (i >= 0 && slots[i].sb.mode <= 2) return static_cast<durability>(slots[i].sb.mode);
  } catch (const failure&) {
  }
  return std::nullopt;
}

std::unique_ptr<store> open_writer(const std::string& path, std::optional<durability> mode, std::uint64_t wait_ms) {
  require_store_file(path);
  options o;
  o.create_if_missing = false;
  o.mode = mode ? *mode : recorded_mode(path).value_or(durability::batch);
  o.lock_timeout = std::chrono::milliseconds(wait_ms);
  return store::open(path, o);
}

output_settings& settings() {
  static output_settings s;
  return s;
}

}  // namespace keel::cli
