// One function per `keel` subcommand. Each returns the exit code or throws
// failure / keel::error (main() turns those into one line and exit code 3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace keel::cli {

struct create_args {
  std::string file;
  std::string size = "16MiB", max_size = "1TiB", durability = "batch";
  std::string file_mode = "0600";
};
int run_create(const create_args& a);

struct info_args {
  std::string file;
  bool json = false;
};
int run_info(const info_args& a);

struct check_args {
  std::string file;
  bool json = false;
};
int run_check(const check_args& a);

struct dump_args {
  std::string file, name, format = "jsonl", output;
};
int run_dump(const dump_args& a);

struct load_args {
  std::string file, name, format = "jsonl", input;
  std::string kind, key_type, value_type;
  std::uint64_t batch = 0;       // 0: one transaction for the whole input
  std::uint64_t start_line = 1;  // skip input lines before this one (resuming)
  std::string durability;        // empty: the store's recorded mode
  std::uint64_t wait_ms = 0;
};
int run_load(const load_args& a);

struct maintenance_args {
  std::string file, dest;
  std::uint64_t wait_ms = 0;
  bool force = false;
};
int run_checkpoint(const maintenance_args& a);
int run_backup(const maintenance_args& a);
int run_compact(const maintenance_args& a);

struct bench_args {
  std::vector<std::string> args;
};
int run_bench(const bench_args& a, const char* argv0);

}  // namespace keel::cli
