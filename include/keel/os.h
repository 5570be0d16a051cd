// The seam between Keel and the operating system. Every system call Keel
// makes on its files goes through one of these methods, so a test can fail a
// call (EIO, ENOSPC) or model what a power cut would leave on disk.
//
// Conventions: calls return 0 (or a count / fd) on success and -errno on
// failure; they never throw. One os object may serve several stores and
// threads at once; implementations must be thread-safe.
#pragma once

#include <sys/types.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

namespace keel {

class os {
 public:
  virtual ~os() = default;

  virtual int open(const std::string& path, int flags, mode_t mode) = 0;
  virtual int close(int fd) = 0;
  // One pread/pwrite call; may be short. Returns bytes or -errno.
  virtual ssize_t pread(int fd, void* buf, std::size_t len, std::uint64_t off) = 0;
  virtual ssize_t pwrite(int fd, const void* buf, std::size_t len, std::uint64_t off) = 0;
  virtual int fsync(int fd) = 0;
  virtual int fdatasync(int fd) = 0;
  virtual int ftruncate(int fd, std::uint64_t size) = 0;
  // posix_fallocate semantics: reserve [off, off+len), growing the file.
  virtual int fallocate(int fd, std::uint64_t off, std::uint64_t len) = 0;
  // Current size of the file, or -errno.
  virtual std::int64_t file_size(int fd) = 0;
  // Map `len` bytes of fd from offset 0, MAP_SHARED. Returns nullptr and sets
  // *err (-errno) on failure.
  virtual void* mmap(int fd, std::size_t len, bool writable, int* err) = 0;
  virtual int munmap(void* addr, std::size_t len) = 0;
  // Hint that [addr, addr+len) of a mapping made by mmap() above should be
  // backed by huge-page-sized page-cache folios mapped by one page-table
  // entry each (madvise MADV_HUGEPAGE). Only a hint: Keel ignores the result.
  // The default does nothing.
  virtual int advise_huge_pages(void* addr, std::size_t len) {
    (void)addr;
    (void)len;
    return 0;
  }
  // Hint that [addr, addr+len) of a mapping made by mmap() above is read
  // at random (madvise MADV_RANDOM): a fault reads in just its page, with
  // no read-ahead around it. Read-ahead fills the page cache with large
  // folios on Linux 6.x file systems that support them (ext4 since 6.16,
  // XFS), and a store through the mapping dirties a whole folio, so one
  // changed byte would cost up to 2 MiB of write-back at the checkpoint.
  // Only a hint: Keel ignores the result. The default does nothing.
  virtual int advise_random(void* addr, std::size_t len) {
    (void)addr;
    (void)len;
    return 0;
  }
  // The same for read() and pread() of fd (posix_fadvise
  // POSIX_FADV_RANDOM): each read brings in exactly the pages it asks for.
  // Only a hint. The default does nothing.
  virtual int advise_random_reads(int fd) {
    (void)fd;
    return 0;
  }
  // Makes [addr, addr+len) of a writable mapping made by mmap() above
  // present and writable, as a write to each page would, without changing a
  // byte (madvise MADV_POPULATE_WRITE). Only a hint: -EINVAL or -EOPNOTSUPP
  // tell Keel not to ask again, other failures are ignored. The default
  // returns -EOPNOTSUPP.
  virtual int populate_write(void* addr, std::size_t len) {
    (void)addr;
    (void)len;
    return -EOPNOTSUPP;
  }
  // Makes [addr, addr+len) of a mapping made by mmap() above present for
  // reading, as a read of each page would (madvise MADV_POPULATE_READ):
  // file space never written is read in as zero pages, which stay clean.
  // Only a hint, answered as populate_write. The default returns
  // -EOPNOTSUPP.
  virtual int populate_read(void* addr, std::size_t len) {
    (void)addr;
    (void)len;
    return -EOPNOTSUPP;
  }
  // Starts reading [addr, addr+len) of a mapping made by mmap() above into
  // the page cache and returns without waiting for it (madvise
  // MADV_WILLNEED): explicit read-ahead where the writer's mapping has none
  // (advise_random). Linux reads such a range in folios of the file's
  // smallest order (4 KiB), not the large folios of fault-driven read-ahead
  // (measured on ext4, Linux 6.18: docs/DURABILITY.md), and caps one call
  // at the device's read-ahead window, so Keel asks in pieces of at most
  // 128 KiB. Only a hint, answered as
  // populate_write. The default returns -EOPNOTSUPP.
  virtual int advise_willneed(void* addr, std::size_t len) {
    (void)addr;
    (void)len;
    return -EOPNOTSUPP;
  }
  // Bytes of the machine's physical memory, 0 when unknown (then neither
  // is done): bounds what the writer's background thread reads ahead
  // (write_txn::read_ahead) and makes writable ahead of use
  // (write_txn::prefault_ahead). The default asks sysconf(_SC_PHYS_PAGES).
  virtual std::uint64_t physical_memory();
  // msync(MS_SYNC) of [addr, addr+len) of a mapping made by mmap() above.
  virtual int msync(void* addr, std::size_t len) = 0;
  // Exclusive open-file-description lock on fd (F_OFD_SETLK, never plain
  // fcntl record locks). Returns 0, -EAGAIN when another holder has it.
  virtual int try_lock(int fd) = 0;
  virtual int unlock(int fd) = 0;
  // 1 when some open file description holds the lock, 0 when none, -errno.
  virtual int lock_held(int fd) = 0;
  virtual int rename(const std::string& from, const std::string& to) = 0;
  virtual int unlink(const std::string& path) = 0;
  // fsync the directory holding `path`, so a create or rename is durable.
  virtual int sync_dir(const std::string& path) = 0;
  // Identifies the running boot; changes when the machine restarts (the page
  // cache did not survive). Tests change it to model a power cut.
  virtual std::array<std::uint8_t, 16> boot_id() = 0;
};

// The real calls. Thread-safe, stateless.
os& posix_os();

}  // namespace keel
