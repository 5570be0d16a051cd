#include "store/prefaulter.h"

#include <algorithm>
#include <cerrno>

namespace keel {

void prefaulter::request(std::byte* addr, std::size_t len, bool write) noexcept {
  push(addr, len, write ? k_write : k_read);
}

void prefaulter::read_ahead(std::byte* addr, std::size_t len) noexcept { push(addr, len, k_ahead); }

void prefaulter::push(std::byte* addr, std::size_t len, kind how) noexcept {
  if (len == 0) return;
  std::lock_guard<std::mutex> g(mu_);
  if (stopping_ || unsupported_[how] || queue_.size() >= kMaxPending) return;
  try {
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    queue_.push_back({addr, len, how});
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
  return done_[write ? k_write : k_read];
}

std::uint64_t prefaulter::read_ahead_bytes() const noexcept {
  std::lock_guard<std::mutex> g(mu_);
  return done_[k_ahead];
}

void prefaulter::run() noexcept {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    span& s = queue_.front();
    const kind how = s.how;
    const std::size_t n = std::min(s.len, how == k_ahead ? kAheadChunk : kChunk);
    std::byte* const at = s.addr;
    s.addr += n;
    s.len -= n;
    if (s.len == 0) queue_.pop_front();
    lk.unlock();
    const int r = how == k_write  ? sys_.populate_write(at, n)
                  : how == k_read ? sys_.populate_read(at, n)
                                  : sys_.advise_willneed(at, n);
    lk.lock();
    if (r == 0) {
      done_[how] += n;
    } else if (r == -EINVAL || r == -EOPNOTSUPP || r == -ENOSYS) {
      // The kernel predates MADV_POPULATE_READ/WRITE (Linux 5.14), or
      // refuses the kind, or the OS layer has no such call: the writer
      // faults its pages in itself.
      unsupported_[how] = true;
      std::erase_if(queue_, [how](const span& q) { return q.how == how; });
    }
    // Any other failure (EFAULT, ENOMEM, EINTR) loses only this chunk: the
    // writer's own stores fault the pages in, and report what is wrong.
  }
}

}  // namespace keel
