// A keel::os for tests: forwards to the real calls, and
//  - fails a chosen call (the nth of a kind, once or from then on) with an errno;
//  - tracks what each sync made durable, so a test can write out the files a
//    power cut at this instant could leave (durable image plus any subset of
//    the unsynced changes the kernel might have written back);
//  - lets a test run code at every call (a crash point), and change the boot id.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "keel/os.h"

namespace keel_test {

enum class op { open, pread, pwrite, fsync, fdatasync, ftruncate, fallocate, mmap, msync, rename, sync_dir, advise, populate, populate_read, advise_random, advise_random_reads, read_ahead, count_ };
const char* op_name(op o);

// How much of what was not synced reaches the disk at the power cut.
struct cut_policy {
  // Unsynced pages of the data file that reach the disk: none, all, a random
  // subset, or (mask) dirty page i (in file order) exactly when bit i of
  // page_mask is set.
  enum pages_t { none, all, random, mask } data_pages = none;
  bool tear_one_page = false;  // one written-back page reaches disk in random 512-byte pieces only
  enum tail_t { no_tail, whole_tail, random_tail } side_tail = no_tail;  // unsynced log/journal bytes
  std::uint64_t page_mask = 0;
  // The data file's size on disk: as of its last fsync/fdatasync (durable;
  // a range msync syncs no size; a grown size not yet synced is lost with
  // the pages past it),
  // the live size (the kernel wrote the inode back), or either at random.
  enum size_policy { live_size, durable_size, random_size } data_size = live_size;
};

class sim_os final : public keel::os {
 public:
  sim_os();

  // Fail the nth call of `which` from now (1 = the next) with -err; when
  // sticky, every later call of that kind fails too.
  void fail(op which, int nth, int err, bool sticky = false);
  void clear_faults();
  int calls(op which) const;

  // Called before every forwarded call with its kind and file path ("" when
  // unknown), except populate_write and populate_read: the store's
  // prefaulter thread makes those, they change no byte, and a hook (a power
  // cut) must only ever run on the writer's thread.
  std::function<void(op, const std::string&)> on_call;

  // Writes to dest, dest-log, dest-journal the files a power cut now could
  // leave for the store at `path`.
  void power_cut(const std::string& path, const std::string& dest, const cut_policy& p, std::mt19937_64& rng);
  // Pages of the data file at `path` whose live bytes differ from the durable image.
  std::size_t dirty_pages(const std::string& path) const;

  void new_boot();  // the next boot_id() differs
  int boot_id_reads() const;  // boot_id() calls so far

  // populate_write or populate_read calls on an address inside no live
  // mapping (a prefaulter still running after its store unmapped): they
  // fail with -EFAULT.
  int stray_populates() const;
  // The file ranges [offset, end) populate_read was asked for, in order.
  using ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  ranges read_populates() const;
  // The same for populate_write.
  ranges write_populates() const;
  // The same for advise_willneed (op::read_ahead).
  ranges read_aheads() const;
  // The file ranges msync was asked for, in order.
  ranges msyncs() const;
  // Each populate call first sleeps this long (a slow disk or a large
  // block): set before the store opens.
  int populate_delay_ms = 0;
  // What physical_memory() answers when non-zero (else the machine's):
  // set before the store opens.
  std::uint64_t memory_bytes = 0;

  // keel::os
  int open(const std::string& path, int flags, mode_t mode) override;
  int close(int fd) override;
  ssize_t pread(int fd, void* buf, std::size_t len, std::uint64_t off) override;
  ssize_t pwrite(int fd, const void* buf, std::size_t len, std::uint64_t off) override;
  int fsync(int fd) override;
  int fdatasync(int fd) override;
  int ftruncate(int fd, std::uint64_t size) override;
  int fallocate(int fd, std::uint64_t off, std::uint64_t len) override;
  std::int64_t file_size(int fd) override;
  void* mmap(int fd, std::size_t len, bool writable, int* err) override;
  int munmap(void* addr, std::size_t len) override;
  int advise_huge_pages(void* addr, std::size_t len) override;  // op::advise
  int advise_random(void* addr, std::size_t len) override;       // op::advise_random
  int advise_random_reads(int fd) override;                     // op::advise_random_reads
  int populate_write(void* addr, std::size_t len) override;      // op::populate
  int populate_read(void* addr, std::size_t len) override;       // op::populate_read
  std::uint64_t physical_memory() override;
  int advise_willneed(void* addr, std::size_t len) override;     // op::read_ahead
  int msync(void* addr, std::size_t len) override;
  int try_lock(int fd) override;
  int unlock(int fd) override;
  int lock_held(int fd) override;
  int rename(const std::string& from, const std::string& to) override;
  int unlink(const std::string& path) override;
  int sync_dir(const std::string& path) override;
  std::array<std::uint8_t, 16> boot_id() override;

 private:
  struct fault {
    int countdown = 0;
    int err = 0;
    bool sticky = false;
    bool tripped = false;
  };
  std::string path_of_mapping(const void* addr, std::uint64_t* off) const;
  struct mapping {
    std::byte* base;
    std::size_t len;
    std::string path;
  };
  // Counts the call, runs on_call (when `hook`), returns -err when the call must fail.
  int before(op which, const std::string& path, bool hook = true);
  std::string path_of(int fd) const;
  void make_durable(const std::string& path, std::uint64_t off, std::uint64_t len);  // from the live file
  std::string live(const std::string& path) const;

  keel::os& real_;
  mutable std::recursive_mutex mu_;
  std::array<fault, static_cast<int>(op::count_)> faults_{};
  std::array<int, static_cast<int>(op::count_)> calls_{};
  std::map<int, std::string> fds_;
  std::map<std::string, std::string> durable_;  // path -> bytes as of the last sync
  std::vector<mapping> maps_;
  std::array<std::uint8_t, 16> boot_;
  int boot_id_reads_ = 0;
  int stray_populates_ = 0;
  ranges read_populates_, write_populates_, read_aheads_, msyncs_;
  ranges locked_copy(const ranges& v) const;  // v, read under mu_
  int populate(op which, void* addr, std::size_t len);
};

}  // namespace keel_test
