#include "os/io.h"

#include <cerrno>

namespace keel::io {

errc classify(int err) noexcept {
  switch (err) {
    case EACCES:
    case EPERM: return errc::permission;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return errc::full;
    case EROFS: return errc::read_only;
    default: return errc::io;
  }
}

void fail(const std::string& file, const std::string& what, int neg_errno) {
  throw error(classify(-neg_errno), file, what, -neg_errno);
}

void check(int r, const std::string& file, const char* what) {
  if (r < 0) fail(file, what, r);
}

bool read_at(os& sys, int fd, void* buf, std::size_t len, std::uint64_t off, const std::string& file) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t r = sys.pread(fd, p, len, off);
    if (r < 0) fail(file, "read failed", static_cast<int>(r));
    if (r == 0) return false;
    p += r;
    off += static_cast<std::uint64_t>(r);
    len -= static_cast<std::size_t>(r);
  }
  return true;
}

void write_at(os& sys, int fd, const void* buf, std::size_t len, std::uint64_t off, const std::string& file) {
  auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t r = sys.pwrite(fd, p, len, off);
    if (r < 0) fail(file, "write failed", static_cast<int>(r));
    if (r == 0) fail(file, "write made no progress", -EIO);
    p += r;
    off += static_cast<std::uint64_t>(r);
    len -= static_cast<std::size_t>(r);
  }
}

}  // namespace keel::io
