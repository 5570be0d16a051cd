// keel bench [ARGS...]: runs the quick benchmark set (keel-bench --quick),
// found next to the keel binary or in the build tree.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "commands.h"
#include "common.h"

namespace keel::cli {

namespace {

bool executable(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

std::string self_dir(const char* argv0) {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string exe = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string(argv0);
  const auto slash = exe.rfind('/');
  return slash == std::string::npos ? "." : exe.substr(0, slash);
}

}  // namespace

int run_bench(const bench_args& a, const char* argv0) {
  const std::string dir = self_dir(argv0);
  // The installed layout (beside keel), then the build tree (keel is in
  // build/tools/, the benchmarks in build/bench/).
  std::vector<std::string> looked;
  for (const char* name : {"keel-bench", "keel-hash-bench"}) {
    for (const std::string& d : {dir, dir + "/../bench", dir + "/../bench/keel_bench"}) {
      const std::string p = d + "/" + name;
      looked.push_back(p);
      if (!executable(p)) continue;
      std::vector<std::string> args{p, "--quick"};
      args.insert(args.end(), a.args.begin(), a.args.end());
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      if (std::strcmp(name, "keel-bench") != 0)
        std::fprintf(stderr, "keel: bench: keel-bench is not built; running %s --quick instead\n", p.c_str());
      std::fflush(stdout);
      std::fflush(stderr);
      ::execv(p.c_str(), argv.data());
      throw failure(::fmt::format("bench: cannot run {}: {}", p, std::strerror(errno)));
    }
  }
  std::string where;
  for (const auto& p : looked) where += (where.empty() ? "" : ", ") + p;
  throw failure("bench: the benchmark program is not built (looked for keel-bench and keel-hash-bench in: " + where +
                "); build it with: cmake --build BUILD --target keel-bench");
}

}  // namespace keel::cli
