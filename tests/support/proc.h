// Child processes for the crash tests: fork a child that reports through a
// pipe, read what it wrote, SIGKILL it, reap it; the store-using children of
// the backup and check tests. Plus full writes (and, through support/seeds.h,
// the env knobs and seeded hashing every crash test had its own copy of).
// Header-only.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "support/seeds.h"

namespace keel_test {

// write() until done; false on an error (EINTR retried).
inline bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// A forked child writing to a pipe the parent reads. The destructor SIGKILLs
// and reaps a child still running (so a failed REQUIRE leaves none behind)
// and closes the read end.
class child_proc {
 public:
  child_proc() = default;
  child_proc(const child_proc&) = delete;
  child_proc& operator=(const child_proc&) = delete;
  child_proc(child_proc&& o) noexcept : pid_(std::exchange(o.pid_, 0)), fd_(std::exchange(o.fd_, -1)) {}
  child_proc& operator=(child_proc&& o) noexcept {
    if (this != &o) {
      reset();
      pid_ = std::exchange(o.pid_, 0);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~child_proc() { reset(); }

  // SIGKILLs and reaps the child if it still runs; closes the pipe.
  void reset() noexcept {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Forks; the child runs body(write_fd) and must not return (it _exits or is
  // killed). Returns a child with pid() <= 0 when pipe or fork failed.
  template <class Body>
  static child_proc spawn(Body&& body) {
    child_proc c;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return c;
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return c;
    }
    if (pid == 0) {
      ::close(fds[0]);
      body(fds[1]);
      ::_exit(0);
    }
    ::close(fds[1]);
    c.pid_ = pid;
    c.fd_ = fds[0];
    return c;
  }

  pid_t pid() const noexcept { return pid_; }
  int fd() const noexcept { return fd_; }

  // Waits for the one byte signal_ready() writes. False when the child
  // ended (or the pipe failed) first.
  bool wait_ready() {
    char c;
    return ::read(fd_, &c, 1) == 1;
  }

  // Appends what the child wrote (waiting at most timeout_ms for it) to buf.
  // False at EOF; true otherwise (also when nothing came).
  bool pump(std::vector<char>& buf, int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return true;
    char tmp[65536];
    const ssize_t n = ::read(fd_, tmp, sizeof tmp);
    if (n == 0) return false;
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    buf.insert(buf.end(), tmp, tmp + n);
    return true;
  }

  // SIGKILL, then reap. Returns the wait status (-1 when waitpid failed).
  int kill_and_wait() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGKILL);
    return wait();
  }
  // Reaps the child (blocking). Returns the wait status (-1 when waitpid failed).
  int wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return r < 0 ? -1 : status;
  }
  // Reaps the child if it has ended. Returns true and sets *status then.
  bool try_wait(int* status) {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, status, WNOHANG) != pid_) return false;
    pid_ = 0;
    return true;
  }

 private:
  pid_t pid_ = 0;
  int fd_ = -1;
};

// Reads what the child writes into buf until deadline() (asked before every
// wait, so it may move) has passed or the pipe is at EOF; on_data() after
// every read that brought bytes. Waits at most cap_ms at a time; a
// sub-millisecond remainder is slept out.
template <class Deadline, class OnData>
void pump_until(child_proc& c, std::vector<char>& buf, std::int64_t cap_ms, Deadline&& deadline, OnData&& on_data) {
  using clk = std::chrono::steady_clock;
  for (;;) {
    const clk::time_point end = deadline();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - clk::now()).count();
    if (left < 0) return;
    if (left == 0) {
      while (clk::now() < end) ::usleep(50);
      return;
    }
    const std::size_t had = buf.size();
    const bool open = c.pump(buf, static_cast<int>(std::min<std::int64_t>(left, cap_ms)));
    if (buf.size() != had) on_data();
    if (!open) return;
  }
}

// Polls (every 2 ms) until the child ends: true and *status then; false
// when deadline passes first.
inline bool wait_until(child_proc& c, int* status, std::chrono::steady_clock::time_point deadline) {
  while (!c.try_wait(status)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    ::usleep(2000);
  }
  return true;
}

// Calls check() now, every 10 ms, and once more when d has passed.
template <class Check>
void watch_for(std::chrono::steady_clock::duration d, Check&& check) {
  using clk = std::chrono::steady_clock;
  const auto end = clk::now() + d;
  for (;;) {
    check();
    const auto now = clk::now();
    if (now >= end) break;
    const auto step = std::min<clk::duration>(end - now, std::chrono::milliseconds(10));
    ::usleep(static_cast<useconds_t>(std::chrono::duration_cast<std::chrono::microseconds>(step).count()));
  }
}

// A T in an anonymous shared mapping: the parent and the children it forks
// afterwards see the same object. get() is null when mmap failed.
template <class T>
class shared_block {
 public:
  shared_block() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) p_ = new (p) T();
  }
  shared_block(const shared_block&) = delete;
  shared_block& operator=(const shared_block&) = delete;
  ~shared_block() {
    if (p_) ::munmap(p_, sizeof(T));
  }
  T* get() const noexcept { return p_; }

 private:
  T* p_ = nullptr;
};

inline bool killed_by_sigkill(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }
inline bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// A child that uses a store: dies with the parent (PR_SET_PDEATHSIG), runs
// body(write_fd); an exception out of body ends it with status 2, a return
// with 0. A body that must not run destructors (a writer that is to die
// holding a log tail) calls ::_exit itself.
template <class Body>
child_proc spawn_store_child(Body&& body) {
  return child_proc::spawn([&](int out) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    try {
      body(out);
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);
  });
}

// In the child: tells the parent (child_proc::wait_ready) that it is set up;
// ends the child with status 3 when the pipe write fails.
inline void signal_ready(int out) {
  const char c = 1;
  if (::write(out, &c, 1) != 1) ::_exit(3);
}

}  // namespace keel_test
