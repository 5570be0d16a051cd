// A background thread that makes space the writer is about to fill present
// and writable in the mapping (os::populate_write), so that the writer's
// stores do not each take a page fault; it also asks for read-ahead of
// committed space the writer is about to touch (os::advise_willneed). A
// hash table's doubling writes hundreds of megabytes of fresh pages; each first write of one costs a
// fault that reads (zero-fills) the page and has the file system prepare it
// for writing, microseconds each, and measured at about half of the time of
// a resize's transactions. On a second core that work overlaps the writer's.
//
// It changes no byte: populating a page loads what the file holds and marks
// it writable, as the writer's first store would. Nothing depends on it
// having run; a request may be dropped at any time. Internal.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "keel/os.h"

namespace keel {

class prefaulter {
 public:
  explicit prefaulter(os& sys) noexcept : sys_(sys) {}
  ~prefaulter() { stop(); }
  prefaulter(const prefaulter&) = delete;
  prefaulter& operator=(const prefaulter&) = delete;

  // Queues [addr, addr+len) of the store's mapping, front to back. Ignored
  // after stop(), once the OS has answered that it cannot populate, or when
  // kMaxPending requests wait already. Starts the thread on first use; a
  // thread that cannot be started drops the request.
  // write: make the pages writable (os::populate_write), else only present
  // (os::populate_read: zero pages read in for space never written stay
  // clean, so nothing is written back for them if the writer never gets
  // there). Each kind is given up separately when the OS cannot do it.
  // REQUIRES: the range stays mapped until stop() returns.
  void request(std::byte* addr, std::size_t len, bool write = true) noexcept;
  // Queues read-ahead of [addr, addr+len) (os::advise_willneed, in pieces of
  // kAheadChunk): the reads start at once and run without this thread, in
  // 4 KiB page-cache folios. For committed space the writer will read soon,
  // where its mapping has no read-ahead of its own. Ignored as request() is.
  void read_ahead(std::byte* addr, std::size_t len) noexcept;

  // Drops what is queued, waits for the chunk in progress and ends the
  // thread. Must run before the mapping goes. Idempotent; request() is
  // ignored afterwards.
  void stop() noexcept;

  // Bytes populated so far by writable (write) or read requests (for
  // store_info and tests).
  std::uint64_t done_bytes(bool write = true) const noexcept;
  // Bytes asked to be read ahead so far (read_ahead).
  std::uint64_t read_ahead_bytes() const noexcept;

  // One populate call covers at most this much, so stop() waits for at
  // most one such call.
  static constexpr std::size_t kChunk = std::size_t{2} << 20;
  static constexpr std::size_t kMaxPending = 16;
  // Linux caps one MADV_WILLNEED at the larger of the device's read-ahead
  // window and its largest request (read_ahead_kb, max_sectors_kb; both
  // are often 128 KiB): a larger call reads only a prefix.
  static constexpr std::size_t kAheadChunk = std::size_t{128} << 10;

 private:
  enum kind : int { k_read = 0, k_write = 1, k_ahead = 2 };
  struct span {
    std::byte* addr;
    std::size_t len;
    kind how;
  };
  void push(std::byte* addr, std::size_t len, kind how) noexcept;
  void run() noexcept;

  os& sys_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<span> queue_;
  std::thread thread_;
  std::uint64_t done_[3] = {0, 0, 0};  // by kind
  bool stopping_ = false;
  bool unsupported_[3] = {false, false, false};  // by kind
};

}  // namespace keel
