#include "store/prefaulter.h"

#include <algorithm>
#include <cerrno>

namespace keel {

void prefaulter::request(std::byte* addr, std::size_t len, bool write) noexcept {
  if (len == 0) return;
  std::lock_guard<std::mutex> g(mu_);
  if (stopping_ || unsupported_[write] || queue_.size() >= kMaxPending) return;
  try {
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    queue_.push_back({addr, len, write});
  } catch (...) {  // no thread or no memory: a hint, dropped
    return;
  }
  cv_.notify_one();
}

void prefaulter::stop() noexcept {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t prefaulter::done_bytes(bool write) const noexcept {
  std::lock_guard<std::mutex> g(mu_);
  return done_[write];
}

void prefaulter::run() noexcept {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    span& s = queue_.front();
    const std::size_t n = std::min(s.len, kChunk);
    std::byte* const at = s.addr;
    const bool write = s.write;
    s.addr += n;
    s.len -= n;
    if (s.len == 0) queue_.pop_front();
    lk.unlock();
    const int r = write ? sys_.populate_write(at, n) : sys_.populate_read(at, n);
    lk.lock();
    if (r == 0) {
      done_[write] += n;
    } else if (r == -EINVAL || r == -EOPNOTSUPP || r == -ENOSYS) {
      // The kernel predates MADV_POPULATE_READ/WRITE (Linux 5.14), or the
      // OS layer has no such call: the writer faults its pages in itself.
      unsupported_[write] = true;
      std::erase_if(queue_, [write](const span& q) { return q.write == write; });
    }
    // Any other failure (EFAULT, ENOMEM, EINTR) loses only this chunk: the
    // writer's own stores fault the pages in, and report what is wrong.
  }
}

}  // namespace keel
