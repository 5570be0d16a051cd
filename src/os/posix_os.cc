// The real system calls behind keel::os.
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "keel/os.h"

namespace keel {
namespace {

int neg(int r) { return r < 0 ? -errno : r; }

class posix final : public os {
 public:
  int open(const std::string& path, int flags, mode_t mode) override {
    return neg(::open(path.c_str(), flags | O_CLOEXEC, mode));
  }
  int close(int fd) override { return neg(::close(fd)); }
  ssize_t pread(int fd, void* buf, std::size_t len, std::uint64_t off) override {
    ssize_t r;
    do r = ::pread(fd, buf, len, static_cast<off_t>(off));
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
  }
  ssize_t pwrite(int fd, const void* buf, std::size_t len, std::uint64_t off) override {
    ssize_t r;
    do r = ::pwrite(fd, buf, len, static_cast<off_t>(off));
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
  }
  int fsync(int fd) override { return neg(::fsync(fd)); }
  int fdatasync(int fd) override { return neg(::fdatasync(fd)); }
  int ftruncate(int fd, std::uint64_t size) override { return neg(::ftruncate(fd, static_cast<off_t>(size))); }
  int fallocate(int fd, std::uint64_t off, std::uint64_t len) override {
    return -::posix_fallocate(fd, static_cast<off_t>(off), static_cast<off_t>(len));
  }
  std::int64_t file_size(int fd) override {
    struct stat st;
    if (::fstat(fd, &st) < 0) return -errno;
    return st.st_size;
  }
  void* mmap(int fd, std::size_t len, bool writable, int* err) override {
    void* p = ::mmap(nullptr, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
      *err = -errno;
      return nullptr;
    }
    return p;
  }
  int munmap(void* addr, std::size_t len) override { return neg(::munmap(addr, len)); }
  int advise_huge_pages(void* addr, std::size_t len) override {
    return neg(::madvise(addr, len, MADV_HUGEPAGE));
  }
  int advise_random(void* addr, std::size_t len) override { return neg(::madvise(addr, len, MADV_RANDOM)); }
  int advise_random_reads(int fd) override { return -::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM); }
  int populate_write(void* addr, std::size_t len) override {
    return neg(::madvise(addr, len, MADV_POPULATE_WRITE));
  }
  int populate_read(void* addr, std::size_t len) override {
    return neg(::madvise(addr, len, MADV_POPULATE_READ));
  }
  int advise_willneed(void* addr, std::size_t len) override { return neg(::madvise(addr, len, MADV_WILLNEED)); }
  int msync(void* addr, std::size_t len) override { return neg(::msync(addr, len, MS_SYNC)); }
  int try_lock(int fd) override {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    int r = ::fcntl(fd, F_OFD_SETLK, &fl);
    if (r < 0) return (errno == EACCES || errno == EAGAIN) ? -EAGAIN : -errno;
    return 0;
  }
  int unlock(int fd) override {
    struct flock fl {};
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_len = 1;
    return neg(::fcntl(fd, F_OFD_SETLK, &fl));
  }
  int lock_held(int fd) override {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_len = 1;
    if (::fcntl(fd, F_OFD_GETLK, &fl) < 0) return -errno;
    return fl.l_type == F_UNLCK ? 0 : 1;
  }
  int rename(const std::string& from, const std::string& to) override {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -errno;
    // File systems without RENAME_NOREPLACE: link refuses to replace too.
    if (::link(from.c_str(), to.c_str()) < 0) return -errno;
    ::unlink(from.c_str());
    return 0;
  }
  int unlink(const std::string& path) override { return neg(::unlink(path.c_str())); }
  int sync_dir(const std::string& path) override {
    auto slash = path.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = neg(::fsync(fd));
    ::close(fd);
    return r;
  }
  std::array<std::uint8_t, 16> boot_id() override {
    static const std::array<std::uint8_t, 16> id = read_boot_id();
    return id;
  }

 private:
  // The kernel's boot id ("xxxxxxxx-xxxx-...": 32 hex digits), read with
  // plain syscalls: an iostream would initialise locales, which costs a
  // fresh process more than the rest of a read-only open. Zeros when it
  // cannot be read.
  static std::array<std::uint8_t, 16> read_boot_id() {
    std::array<std::uint8_t, 16> id{};
    char buf[64];
    const int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return id;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int digits = 0;
    for (ssize_t i = 0; i < n && digits < 32; ++i) {
      const int d = hex(buf[i]);
      if (d < 0) continue;  // the dashes (and anything else)
      id[static_cast<std::size_t>(digits / 2)] |= static_cast<std::uint8_t>(digits % 2 == 0 ? d << 4 : d);
      ++digits;
    }
    return id;
  }
};

}  // namespace

std::uint64_t os::physical_memory() {
  static const std::uint64_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(size) : 0;
  }();
  return bytes;
}

os& posix_os() {
  static posix instance;
  return instance;
}

}  // namespace keel
