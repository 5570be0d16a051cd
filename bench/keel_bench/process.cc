#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.h"

namespace kb {

child_proc spawn(const std::string& exe, const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) die(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  child_proc c;
  c.pid = pid;
  c.out = fds[0];
  return c;
}

std::string read_line(child_proc& c, double timeout_s) {
  const auto deadline = clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(timeout_s));
  for (;;) {
    if (const auto nl = c.buffer.find('\n'); nl != std::string::npos) {
      std::string line = c.buffer.substr(0, nl);
      c.buffer.erase(0, nl + 1);
      return line;
    }
    if (c.out < 0) return "";
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clk::now()).count();
    if (left <= 0) return "";
    pollfd p{c.out, POLLIN, 0};
    const int r = ::poll(&p, 1, int(std::min<long long>(left, 1000)));
    if (r < 0 && errno != EINTR) die(std::string("poll: ") + std::strerror(errno));
    if (r <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(c.out, buf, sizeof buf);
    if (n <= 0) {
      ::close(c.out);
      c.out = -1;
      continue;
    }
    c.buffer.append(buf, std::size_t(n));
  }
}

int wait_exit(child_proc& c) {
  if (c.pid < 0) return -1;
  int st = 0;
  while (::waitpid(c.pid, &st, 0) < 0 && errno == EINTR) {
  }
  c.pid = -1;
  if (c.out >= 0) ::close(c.out);
  c.out = -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

void kill9(child_proc& c) {
  if (c.pid > 0) ::kill(c.pid, SIGKILL);
}

std::map<std::string, std::string> parse_fields(const std::string& line) {
  std::map<std::string, std::string> f;
  std::size_t at = 0;
  while (at < line.size()) {
    const std::size_t sp = line.find(' ', at);
    const std::string tok = line.substr(at, sp == std::string::npos ? std::string::npos : sp - at);
    if (const auto eq = tok.find('='); eq != std::string::npos) f[tok.substr(0, eq)] = tok.substr(eq + 1);
    if (sp == std::string::npos) break;
    at = sp + 1;
  }
  return f;
}

double field(const std::map<std::string, std::string>& f, const std::string& name) {
  const auto it = f.find(name);
  return it == f.end() ? -1 : std::strtod(it->second.c_str(), nullptr);
}

ack_file::ack_file(const std::string& path, bool create) {
  const int fd = ::open(path.c_str(), create ? O_RDWR | O_CREAT | O_TRUNC : O_RDWR, 0600);
  if (fd < 0) die("ack file " + path + ": " + std::strerror(errno));
  if (create && ::ftruncate(fd, 4096) != 0) die("ack file " + path + ": " + std::strerror(errno));
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) die("ack file mmap: " + std::string(std::strerror(errno)));
  p_ = static_cast<std::uint64_t*>(p);
}
ack_file::~ack_file() {
  if (p_) ::munmap(p_, 4096);
}
void ack_file::set(std::uint64_t v) { std::atomic_ref<std::uint64_t>(*p_).store(v, std::memory_order_release); }
std::uint64_t ack_file::get() const { return std::atomic_ref<std::uint64_t>(*p_).load(std::memory_order_acquire); }

std::pair<std::uint64_t, std::uint64_t> residency(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return {0, 0};
  struct stat st;
  ::fstat(fd, &st);
  const std::uint64_t size = std::uint64_t(st.st_size);
  std::uint64_t resident = 0;
  const std::uint64_t page = std::uint64_t(::sysconf(_SC_PAGESIZE));
  const std::uint64_t chunk = 1ull << 30;
  std::vector<unsigned char> vec(chunk / page);
  for (std::uint64_t off = 0; off < size; off += chunk) {
    const std::uint64_t len = std::min(chunk, size - off);
    void* p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, off_t(off));
    if (p == MAP_FAILED) break;
    if (::mincore(p, len, vec.data()) == 0)
      for (std::uint64_t i = 0; i < (len + page - 1) / page; ++i) resident += vec[i] & 1;
    ::munmap(p, len);
  }
  ::close(fd);
  return {resident * page, size};
}

void evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace kb
