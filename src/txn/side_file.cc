#include "txn/side_file.h"

#include <algorithm>
#include <cstring>

#include "os/io.h"
#include "util/checksum.h"

namespace keel::side {

fmt::file_header make_header(const unsigned char (&magic)[8], std::uint64_t file_id) {
  fmt::file_header h{};
  std::memcpy(h.magic, magic, 8);
  h.version = fmt::kVersion;
  h.file_id = file_id;
  h.checksum = checksum(&h, offsetof(fmt::file_header, checksum));
  return h;
}

std::string header_problem(const fmt::file_header& h, const unsigned char (&magic)[8], std::uint64_t file_id) {
  if (std::memcmp(h.magic, magic, 8) != 0) return "bad magic";
  if (h.checksum != checksum(&h, offsetof(fmt::file_header, checksum))) return "header checksum mismatch";
  if (h.version != fmt::kVersion) return "format version " + std::to_string(h.version);
  if (h.file_id != file_id) return "belongs to another store (file id differs)";
  return {};
}

void create(os& sys, int fd, const std::string& path, const unsigned char (&magic)[8], std::uint64_t file_id) {
  auto h = make_header(magic, file_id);
  io::check(sys.ftruncate(fd, 0), path, "truncate");
  io::write_at(sys, fd, &h, sizeof h, 0, path);
  io::check(sys.fdatasync(fd), path, "fdatasync");
}

void recycle(os& sys, int fd, const std::string& path) {
  io::check(sys.ftruncate(fd, sizeof(fmt::file_header)), path, "truncate");
  io::check(sys.fdatasync(fd), path, "fdatasync");
}

bool zero_from(os& sys, int fd, const std::string& path, std::uint64_t from, std::uint64_t to) {
  std::vector<std::byte> buf(std::min<std::uint64_t>(to > from ? to - from : 0, 1u << 20));
  for (std::uint64_t pos = from; pos < to;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), to - pos));
    if (!io::read_at(sys, fd, buf.data(), n, pos, path)) return false;
    if (std::any_of(buf.begin(), buf.begin() + n, [](std::byte b) { return b != std::byte{0}; })) return false;
    pos += n;
  }
  return true;
}

reader::reader(os& sys, int fd, const std::string& path, std::uint64_t file_len)
    : sys_(sys), fd_(fd), path_(path), len_(file_len) {}

const std::byte* reader::at(std::uint64_t pos, std::size_t n) {
  if (pos > len_ || n > len_ - pos) return nullptr;
  if (pos >= win_pos_ && pos + n <= win_pos_ + win_.size()) return win_.data() + (pos - win_pos_);
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(std::max<std::size_t>(n, 1 << 20), len_ - pos));
  win_.resize(want);
  win_pos_ = pos;
  if (!io::read_at(sys_, fd_, win_.data(), want, pos, path_)) {
    win_.clear();
    return nullptr;
  }
  return win_.data();
}

}  // namespace keel::side
