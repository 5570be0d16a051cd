// Whole-buffer I/O over keel::os that throws keel::error naming the file.
#pragma once

#include <cstdint>
#include <string>

#include "keel/error.h"
#include "keel/os.h"

namespace keel::io {

// Maps an errno to the error code a user can act on.
errc classify(int err) noexcept;
[[noreturn]] void fail(const std::string& file, const std::string& what, int neg_errno);

// Reads exactly len bytes; returns false on a short read (end of file).
bool read_at(os& sys, int fd, void* buf, std::size_t len, std::uint64_t off, const std::string& file);
void write_at(os& sys, int fd, const void* buf, std::size_t len, std::uint64_t off, const std::string& file);
void check(int r, const std::string& file, const char* what);

// An owned file descriptor.
class fd_guard {
 public:
  fd_guard(os& sys, int fd) : sys_(&sys), fd_(fd) {}
  fd_guard(fd_guard&& o) noexcept : sys_(o.sys_), fd_(o.fd_) { o.fd_ = -1; }
  fd_guard& operator=(fd_guard&& o) noexcept {
    if (this != &o) {
      reset();
      sys_ = o.sys_;
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~fd_guard() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset() noexcept {
    if (fd_ >= 0) sys_->close(fd_);
    fd_ = -1;
  }

 private:
  os* sys_;
  int fd_;
};

}  // namespace keel::io
