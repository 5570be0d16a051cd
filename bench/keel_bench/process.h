// keel-bench: child processes for the restart and multi-process workloads.
// A child is this executable run again (fork + exec) in a sub-mode
// (--child=...), its stdout a pipe the parent reads answer lines from.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kb {

struct child_proc {
  pid_t pid = -1;
  int out = -1;        // read end of the child's stdout
  std::string buffer;  // bytes read past the last line
};

// fork + exec `exe` with `args` (argv[1..]); stdout to a pipe, stderr inherited.
child_proc spawn(const std::string& exe, const std::vector<std::string>& args);
// The next line of the child's stdout, without the newline; "" at EOF or
// after timeout_s seconds.
std::string read_line(child_proc& c, double timeout_s);
// waitpid; returns the exit code, or 128 + signal.
int wait_exit(child_proc& c);
void kill9(child_proc& c);

// "a=1 b=2.5 c=x" -> {a: "1", b: "2.5", c: "x"}
std::map<std::string, std::string> parse_fields(const std::string& line);
double field(const std::map<std::string, std::string>& f, const std::string& name);

// An 8-byte counter in a small shared file: a writer child publishes its
// last acknowledged commit there; the parent reads it after kill -9.
class ack_file {
 public:
  explicit ack_file(const std::string& path, bool create);
  ~ack_file();
  void set(std::uint64_t v);
  std::uint64_t get() const;

 private:
  std::uint64_t* p_ = nullptr;
};

// Page-cache residency of a file (mincore over a fresh read-only mapping):
// {resident bytes, file bytes}.
std::pair<std::uint64_t, std::uint64_t> residency(const std::string& path);
// posix_fadvise(DONTNEED) over the file: drops its clean cached pages.
void evict(const std::string& path);

}  // namespace kb
