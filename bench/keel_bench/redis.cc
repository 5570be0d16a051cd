// keel-bench: Redis restart time. A redis-server started by the benchmark
// on a free loopback port is filled with the same N entries (8-byte binary
// keys, values as elsewhere) by pipelined SETs over a raw RESP socket, made
// to SAVE its RDB file, and stopped; then each repetition starts
// redis-server on that file and times fork/exec to the first GET answered
// with the right value (Redis answers -LOADING until the RDB is loaded).
#include <arpa/inet.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common.h"
#include "process.h"

namespace kb {

namespace {

std::string find_redis() {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
  path += ":/usr/sbin:/usr/local/bin";
  std::size_t at = 0;
  while (at <= path.size()) {
    const std::size_t colon = std::min(path.find(':', at), path.size());
    const std::string cand = path.substr(at, colon - at) + "/redis-server";
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    at = colon + 1;
  }
  return "";
}

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("redis: bind for a free port failed");
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// -1 when nothing listens yet.
int try_connect(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(std::uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(s);
    return -1;
  }
  int one = 1;
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

void send_all(int s, const std::string& b) {
  std::size_t at = 0;
  while (at < b.size()) {
    const ssize_t n = ::send(s, b.data() + at, b.size() - at, MSG_NOSIGNAL);
    if (n <= 0) die(std::string("redis: send: ") + std::strerror(errno));
    at += std::size_t(n);
  }
}

// Reads until `buf` holds at least n bytes.
void recv_at_least(int s, std::string& buf, std::size_t n) {
  char tmp[65536];
  while (buf.size() < n) {
    const ssize_t r = ::recv(s, tmp, sizeof tmp, 0);
    if (r <= 0) die("redis: connection closed while reading a reply");
    buf.append(tmp, std::size_t(r));
  }
}

void bulk(std::string& out, const void* p, std::size_t n) {
  out += fmt::format("${}\r\n", n);
  out.append(static_cast<const char*>(p), n);
  out += "\r\n";
}

std::string command(std::initializer_list<std::string> args) {
  std::string out = fmt::format("*{}\r\n", args.size());
  for (const auto& a : args) bulk(out, a.data(), a.size());
  return out;
}

// One reply line (status, error, or the header of a bulk string).
std::string reply_line(int s, std::string& buf) {
  for (;;) {
    if (const auto nl = buf.find("\r\n"); nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 2);
      return line;
    }
    recv_at_least(s, buf, buf.size() + 1);
  }
}

struct server {
  child_proc proc;
  int port = 0;
};

server start(const std::string& exe, const std::string& dir, int port) {
  server sv;
  sv.port = port;
  sv.proc = spawn(exe, {"--port", std::to_string(port), "--bind", "127.0.0.1", "--dir", dir, "--dbfilename", "dump.rdb",
                        "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no", "--logfile",
                        dir + "/redis.log"});
  return sv;
}

void stop(server& sv) {
  if (const int s = try_connect(sv.port); s >= 0) {
    send_all(s, command({"SHUTDOWN", "NOSAVE"}));
    char c;
    while (::recv(s, &c, 1, 0) > 0) {
    }
    ::close(s);
  } else {
    kill9(sv.proc);
  }
  wait_exit(sv.proc);
}

template <std::size_t N>
void run(const config& c, reporter& rep, const std::string& exe) {
  const std::string dir = c.dir + "/redis";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  // Fill and save.
  server sv = start(exe, dir, free_port());
  int s = -1;
  for (int i = 0; i < 20000 && s < 0; ++i) {
    s = try_connect(sv.port);
    if (s < 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  if (s < 0) die("redis: server did not accept connections within 10 s (see " + dir + "/redis.log)");
  const auto t0 = clk::now();
  val<N> v;
  std::string out, in;
  constexpr std::uint64_t kPipe = 2000;
  for (std::uint64_t i = 0; i < c.num; i += kPipe) {
    out.clear();
    const std::uint64_t end = std::min(c.num, i + kPipe);
    for (std::uint64_t j = i; j < end; ++j) {
      const std::uint64_t k = rkey(j);
      make_val(v, k, 1);
      out += "*3\r\n$3\r\nSET\r\n";
      bulk(out, &k, 8);
      bulk(out, v.b, N);
    }
    send_all(s, out);
    in.clear();
    recv_at_least(s, in, (end - i) * 5);  // "+OK\r\n" each
    if (in.size() != (end - i) * 5 || in.find('-') != std::string::npos) die("redis: SET failed: " + in.substr(0, 80));
  }
  const double load_secs = secs_since(t0);
  send_all(s, command({"SAVE"}));
  in.clear();
  if (const std::string l = reply_line(s, in); l != "+OK") die("redis: SAVE answered " + l);
  ::close(s);
  stop(sv);
  const std::uint64_t rdb = std::filesystem::file_size(dir + "/dump.rdb");

  // Timed restarts.
  const std::uint64_t k0 = rkey(0);
  val<N> want;
  make_val(want, k0, 1);
  std::string get = "*2\r\n$3\r\nGET\r\n";
  bulk(get, &k0, 8);
  result r;
  r.workload = "restart-clean";
  r.system = "redis";
  std::vector<double> total;
  std::uint64_t loading_replies = 0;
  for (int rep_i = 0; rep_i < c.redis_reps; ++rep_i) {
    const int port = free_port();
    const auto t1 = clk::now();
    server sv2 = start(exe, dir, port);
    bool answered = false;
    while (!answered) {
      if (secs_since(t1) > 600) die("redis: no answer within 600 s");
      const int cs = try_connect(port);
      if (cs < 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      std::string buf;
      while (!answered) {
        send_all(cs, get);
        const std::string line = reply_line(cs, buf);
        if (line.rfind("-LOADING", 0) == 0) {
          ++loading_replies;
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          continue;
        }
        if (line != fmt::format("${}", N)) {
          ++r.mismatches;
          answered = true;
          break;
        }
        recv_at_least(cs, buf, N + 2);
        if (std::memcmp(buf.data(), want.b, N) != 0) ++r.mismatches;
        answered = true;
      }
      ::close(cs);
    }
    total.push_back(secs_since(t1) * 1e3);
    stop(sv2);
  }
  std::sort(total.begin(), total.end());
  r.ops = std::uint64_t(c.redis_reps);
  r.extra["total_ms"] = total[total.size() / 2];
  r.note = fmt::format("{} entries, RDB {}, filled in {:.1f} s by pipelined SET; median of {}", c.num,
                       human_bytes(double(rdb)), load_secs, c.redis_reps);
  rep.add(std::move(r));
  std::filesystem::remove_all(dir);
}

}  // namespace

void run_redis(const config& c, reporter& rep) {
  const std::string exe = find_redis();
  if (exe.empty()) {
    fmt::print("redis: skipped (redis-server not found)\n");
    return;
  }
  switch (c.value_size) {
    case 16: return run<16>(c, rep, exe);
    case 32: return run<32>(c, rep, exe);
    case 100: return run<100>(c, rep, exe);
    case 256: return run<256>(c, rep, exe);
    case 1000: return run<1000>(c, rep, exe);
    default: die("redis: value size not compiled in");
  }
}

}  // namespace kb
