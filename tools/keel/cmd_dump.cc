// keel dump FILE NAME: every entry of a structure as JSON lines or CSV.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "commands.h"
#include "common.h"
#include "progress.h"
#include "structure.h"
#include "text_codec.h"

namespace keel::cli {

namespace {

// Buffered output to a descriptor, with errors reported (a full disk or a
// closed pipe must not pass for a complete dump).
class out_file {
 public:
  explicit out_file(const std::string& path) : path_(path.empty() ? "standard output" : path) {
    if (path.empty()) {
      fd_ = STDOUT_FILENO;
    } else {
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd_ < 0) throw failure(path + ": cannot create: " + std::strerror(errno));
      owned_ = true;
    }
  }
  ~out_file() {
    if (owned_) ::close(fd_);
  }
  std::string& buf() { return buf_; }
  void maybe_flush() {
    if (buf_.size() >= (1 << 16)) flush();
  }
  void flush() {
    std::size_t at = 0;
    while (at < buf_.size()) {
      const ssize_t n = ::write(fd_, buf_.data() + at, buf_.size() - at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw failure(path_ + ": write failed: " + std::strerror(errno));
      at += static_cast<std::size_t>(n);
    }
    buf_.clear();
  }
  void close() {
    flush();
    if (owned_ && ::fsync(fd_) != 0 && errno != EINVAL)
      throw failure(path_ + ": fsync failed: " + std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool owned_ = false;
  std::string buf_;
};

text_format parse_format(const std::string& f) {
  if (f == "jsonl" || f == "json") return text_format::jsonl;
  if (f == "csv") return text_format::csv;
  throw failure(::fmt::format("--format: '{}' is not jsonl or csv", f), kUsage);
}

}  // namespace

text_format format_of(const std::string& f) {
  return parse_format(f);
}

int run_dump(const dump_args& a) {
  const text_format f = parse_format(a.format);
  auto db = open_reader(a.file);
  const layout l = layout_of(find_entry(*db, a.name));
  const std::uint64_t total = entry_count(*db, l);
  out_file out(a.output);
  if (f == text_format::csv) out.buf() += "key,value\n";
  progress p("dump", "entries", total);
  std::uint64_t n = 0;
  scan(*db, l, [&](std::string_view k, std::string_view v) {
    std::string& b = out.buf();
    if (f == text_format::jsonl) {
      b += "{\"key\":";
      append_json(b, l.key, k);
      b += ",\"value\":";
      append_json(b, l.value, v);
      b += "}\n";
    } else {
      append_csv(b, l.key, k);
      b += ',';
      append_csv(b, l.value, v);
      b += '\n';
    }
    out.maybe_flush();
    p.update(++n);
    return true;
  });
  out.close();
  p.finish();
  return kOk;
}

}  // namespace keel::cli
