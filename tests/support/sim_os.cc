#include "support/sim_os.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/temp_dir.h"

namespace keel_test {

const char* op_name(op o) {
  static const char* names[] = {"open",      "pread", "pwrite", "fsync",  "fdatasync", "ftruncate",
                                "fallocate", "mmap",  "msync",  "rename", "sync_dir",  "advise", "populate", "populate_read", "advise_random",
                                "advise_random_reads", "read_ahead"};
  return names[static_cast<int>(o)];
}

sim_os::sim_os() : real_(keel::posix_os()), boot_(real_.boot_id()) {}

void sim_os::fail(op which, int nth, int err, bool sticky) {
  std::lock_guard g(mu_);
  faults_[static_cast<int>(which)] = {nth, err, sticky, false};
}

void sim_os::clear_faults() {
  std::lock_guard g(mu_);
  faults_ = {};
}

int sim_os::calls(op which) const {
  std::lock_guard g(mu_);
  return calls_[static_cast<int>(which)];
}

void sim_os::new_boot() {
  std::lock_guard g(mu_);
  boot_[0] ^= 0x5a;
  boot_[15] += 1;
}

std::array<std::uint8_t, 16> sim_os::boot_id() {
  std::lock_guard g(mu_);
  ++boot_id_reads_;
  return boot_;
}

int sim_os::boot_id_reads() const {
  std::lock_guard g(mu_);
  return boot_id_reads_;
}

int sim_os::before(op which, const std::string& path, bool hooked) {
  std::function<void(op, const std::string&)> hook;
  {
    std::lock_guard g(mu_);
    ++calls_[static_cast<int>(which)];
    if (hooked) hook = on_call;
  }
  if (hook) hook(which, path);
  std::lock_guard g(mu_);
  fault& f = faults_[static_cast<int>(which)];
  if (f.err == 0) return 0;
  if (f.tripped) return f.sticky ? -f.err : 0;
  if (--f.countdown <= 0) {
    f.tripped = true;
    return -f.err;
  }
  return 0;
}

std::string sim_os::path_of(int fd) const {
  std::lock_guard g(mu_);
  auto it = fds_.find(fd);
  return it == fds_.end() ? std::string() : it->second;
}

std::string sim_os::live(const std::string& path) const {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  return read_file(path);
}

void sim_os::make_durable(const std::string& path, std::uint64_t off, std::uint64_t len) {
  if (path.empty()) return;
  const std::string now = live(path);
  std::lock_guard g(mu_);
  std::string& d = durable_[path];
  if (len == UINT64_MAX) {  // whole file, size included
    d = now;
    return;
  }
  // A range (msync) makes its pages durable, not a size: pages past the
  // durable size stay lost until a sync of the whole file.
  if (off >= std::min(now.size(), d.size())) return;
  len = std::min<std::uint64_t>(len, std::min(now.size(), d.size()) - off);
  std::memcpy(d.data() + off, now.data() + off, len);
}

int sim_os::open(const std::string& path, int flags, mode_t mode) {
  if (int e = before(op::open, path)) return e;
  std::error_code ec;
  const bool existed = std::filesystem::exists(path, ec);
  int fd = real_.open(path, flags, mode);
  if (fd >= 0) {
    std::lock_guard g(mu_);
    fds_[fd] = path;
    // A file first seen already existing is taken as durable as it is.
    if (!durable_.count(path)) durable_[path] = existed ? live(path) : std::string();
  }
  return fd;
}

int sim_os::close(int fd) {
  {
    std::lock_guard g(mu_);
    fds_.erase(fd);
  }
  return real_.close(fd);
}

ssize_t sim_os::pread(int fd, void* buf, std::size_t len, std::uint64_t off) {
  if (int e = before(op::pread, path_of(fd))) return e;
  return real_.pread(fd, buf, len, off);
}

ssize_t sim_os::pwrite(int fd, const void* buf, std::size_t len, std::uint64_t off) {
  if (int e = before(op::pwrite, path_of(fd))) return e;
  return real_.pwrite(fd, buf, len, off);
}

int sim_os::fsync(int fd) {
  const std::string p = path_of(fd);
  if (int e = before(op::fsync, p)) return e;
  int r = real_.fsync(fd);
  if (r == 0) make_durable(p, 0, UINT64_MAX);
  return r;
}

int sim_os::fdatasync(int fd) {
  const std::string p = path_of(fd);
  if (int e = before(op::fdatasync, p)) return e;
  int r = real_.fdatasync(fd);
  if (r == 0) make_durable(p, 0, UINT64_MAX);
  return r;
}

int sim_os::ftruncate(int fd, std::uint64_t size) {
  if (int e = before(op::ftruncate, path_of(fd))) return e;
  return real_.ftruncate(fd, size);
}

int sim_os::fallocate(int fd, std::uint64_t off, std::uint64_t len) {
  if (int e = before(op::fallocate, path_of(fd))) return e;
  return real_.fallocate(fd, off, len);
}

std::int64_t sim_os::file_size(int fd) { return real_.file_size(fd); }

void* sim_os::mmap(int fd, std::size_t len, bool writable, int* err) {
  const std::string p = path_of(fd);
  if (int e = before(op::mmap, p)) {
    *err = e;
    return nullptr;
  }
  void* a = real_.mmap(fd, len, writable, err);
  if (a) {
    std::lock_guard g(mu_);
    maps_.push_back({static_cast<std::byte*>(a), len, p});
  }
  return a;
}

int sim_os::munmap(void* addr, std::size_t len) {
  {
    std::lock_guard g(mu_);
    std::erase_if(maps_, [&](const mapping& m) { return m.base == addr; });
  }
  return real_.munmap(addr, len);
}

std::string sim_os::path_of_mapping(const void* addr, std::uint64_t* off) const {
  std::lock_guard g(mu_);
  const auto* a = static_cast<const std::byte*>(addr);
  std::string p;
  for (const auto& m : maps_)
    if (a >= m.base && a < m.base + m.len) {
      p = m.path;
      *off = static_cast<std::uint64_t>(a - m.base);
    }
  return p;
}

int sim_os::advise_huge_pages(void* addr, std::size_t len) {
  std::uint64_t off = 0;
  if (int e = before(op::advise, path_of_mapping(addr, &off))) return e;
  return real_.advise_huge_pages(addr, len);
}

int sim_os::advise_random(void* addr, std::size_t len) {
  std::uint64_t off = 0;
  if (int e = before(op::advise_random, path_of_mapping(addr, &off))) return e;
  return real_.advise_random(addr, len);
}

int sim_os::advise_random_reads(int fd) {
  if (int e = before(op::advise_random_reads, path_of(fd))) return e;
  return real_.advise_random_reads(fd);
}

int sim_os::populate(op which, void* addr, std::size_t len) {
  std::uint64_t off = 0;
  if (populate_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(populate_delay_ms));
  const std::string p = path_of_mapping(addr, &off);  // after the delay: is it still mapped?
  if (int e = before(which, p, false)) return e;
  {
    std::lock_guard g(mu_);
    if (p.empty()) {
      ++stray_populates_;
      return -EFAULT;
    }
    if (which == op::populate_read) read_populates_.emplace_back(off, off + len);
    if (which == op::populate) write_populates_.emplace_back(off, off + len);
    if (which == op::read_ahead) read_aheads_.emplace_back(off, off + len);
  }
  if (which == op::read_ahead) return real_.advise_willneed(addr, len);
  return which == op::populate ? real_.populate_write(addr, len) : real_.populate_read(addr, len);
}

int sim_os::populate_write(void* addr, std::size_t len) { return populate(op::populate, addr, len); }
int sim_os::populate_read(void* addr, std::size_t len) { return populate(op::populate_read, addr, len); }
int sim_os::advise_willneed(void* addr, std::size_t len) { return populate(op::read_ahead, addr, len); }

sim_os::ranges sim_os::locked_copy(const ranges& v) const {
  std::lock_guard g(mu_);
  return v;
}

sim_os::ranges sim_os::read_aheads() const { return locked_copy(read_aheads_); }

sim_os::ranges sim_os::read_populates() const { return locked_copy(read_populates_); }

sim_os::ranges sim_os::write_populates() const { return locked_copy(write_populates_); }

sim_os::ranges sim_os::msyncs() const { return locked_copy(msyncs_); }

std::uint64_t sim_os::physical_memory() { return memory_bytes != 0 ? memory_bytes : real_.physical_memory(); }

int sim_os::stray_populates() const {
  std::lock_guard g(mu_);
  return stray_populates_;
}

int sim_os::msync(void* addr, std::size_t len) {
  std::uint64_t off = 0;
  const std::string p = path_of_mapping(addr, &off);
  if (int e = before(op::msync, p)) return e;
  {
    std::lock_guard g(mu_);
    msyncs_.emplace_back(off, off + len);
  }
  int r = real_.msync(addr, len);
  if (r == 0) make_durable(p, off, len);
  return r;
}

int sim_os::try_lock(int fd) { return real_.try_lock(fd); }
int sim_os::unlock(int fd) { return real_.unlock(fd); }
int sim_os::lock_held(int fd) { return real_.lock_held(fd); }

int sim_os::rename(const std::string& from, const std::string& to) {
  if (int e = before(op::rename, to)) return e;
  int r = real_.rename(from, to);
  if (r == 0) {
    std::lock_guard g(mu_);
    auto it = durable_.find(from);
    if (it != durable_.end()) {
      durable_[to] = it->second;
      durable_.erase(it);
    }
    for (auto& [fd, p] : fds_)
      if (p == from) p = to;
    for (auto& m : maps_)
      if (m.path == from) m.path = to;
  }
  return r;
}

int sim_os::unlink(const std::string& path) { return real_.unlink(path); }

int sim_os::sync_dir(const std::string& path) {
  if (int e = before(op::sync_dir, path)) return e;
  return real_.sync_dir(path);
}

std::size_t sim_os::dirty_pages(const std::string& path) const {
  constexpr std::size_t kPage = 4096;
  const std::string now = live(path);
  std::string disk;
  {
    std::lock_guard g(mu_);
    auto it = durable_.find(path);
    disk = it == durable_.end() ? now : it->second;
  }
  disk.resize(std::max(disk.size(), now.size()), '\0');
  std::size_t n = 0;
  for (std::size_t off = 0; off < now.size(); off += kPage)
    n += std::memcmp(disk.data() + off, now.data() + off, std::min(kPage, now.size() - off)) != 0;
  return n;
}

void sim_os::power_cut(const std::string& path, const std::string& dest, const cut_policy& p, std::mt19937_64& rng) {
  constexpr std::size_t kPage = 4096;
  for (const char* suffix : {"", "-log", "-journal"}) {
    const std::string src = path + suffix;
    const std::string now = live(src);
    std::string disk;
    {
      std::lock_guard g(mu_);
      auto it = durable_.find(src);
      disk = it == durable_.end() ? now : it->second;
    }
    if (*suffix == '\0') {
      // Data file: the kernel may have written back any dirty page, whole or
      // torn, and the grown size with it, or kept the size of the last sync
      // (then the pages past it are lost, whatever was written back).
      const bool short_file = disk.size() < now.size() &&
                              (p.data_size == cut_policy::durable_size ||
                               (p.data_size == cut_policy::random_size && rng() % 2 == 0));
      const std::size_t size = short_file ? disk.size() : now.size();
      disk.resize(std::max(disk.size(), now.size()), '\0');
      std::vector<std::size_t> dirty;
      for (std::size_t off = 0; off < now.size(); off += kPage) {
        const std::size_t n = std::min(kPage, now.size() - off);
        if (std::memcmp(disk.data() + off, now.data() + off, n) != 0) dirty.push_back(off);
      }
      std::vector<std::size_t> written;
      for (std::size_t i = 0; i < dirty.size(); ++i)
        if (p.data_pages == cut_policy::all || (p.data_pages == cut_policy::random && rng() % 2 == 0) ||
            (p.data_pages == cut_policy::mask && i < 64 && (p.page_mask >> i & 1) != 0))
          written.push_back(dirty[i]);
      std::size_t torn = written.empty() || !p.tear_one_page ? SIZE_MAX : written[rng() % written.size()];
      for (std::size_t off : written) {
        const std::size_t n = std::min(kPage, now.size() - off);
        if (off != torn) {
          std::memcpy(disk.data() + off, now.data() + off, n);
          continue;
        }
        for (std::size_t s = 0; s < n; s += 512)
          if (rng() % 2) std::memcpy(disk.data() + off + s, now.data() + off + s, std::min<std::size_t>(512, n - s));
      }
      disk.resize(size);
    } else if (p.side_tail != cut_policy::no_tail && now.size() > 0) {
      // Log/journal: any prefix of the unsynced bytes may have reached the disk.
      std::size_t same = 0;
      while (same < disk.size() && same < now.size() && disk[same] == now[same]) ++same;
      if (now.size() > same) {
        std::size_t extra = now.size() - same;
        if (p.side_tail == cut_policy::random_tail) extra = rng() % (extra + 1);
        disk.resize(std::max(disk.size(), same + extra), '\0');
        std::memcpy(disk.data() + same, now.data() + same, extra);
      }
    }
    write_file(dest + suffix, disk);
  }
}

}  // namespace keel_test
