// keel create FILE and keel checkpoint FILE.
#include <fmt/format.h>
#include <sys/stat.h>

#include "commands.h"
#include "common.h"
#include "keel/error.h"

namespace keel::cli {

int run_create(const create_args& a) {
  struct stat st {};
  if (::stat(a.file.c_str(), &st) == 0) throw failure(a.file + ": already exists");
  options o;
  o.error_if_exists = true;
  o.initial_size = parse_size(a.size, "--size");
  o.max_size = parse_size(a.max_size, "--max-size");
  o.mode = parse_mode(a.durability);
  std::size_t used = 0;
  unsigned long m = 0;
  try {
    m = std::stoul(a.file_mode, &used, 8);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != a.file_mode.size() || m > 07777)
    throw failure(::fmt::format("--file-mode: '{}' is not an octal mode such as 0600", a.file_mode), kUsage);
  o.file_mode = static_cast<mode_t>(m);
  if (o.initial_size > o.max_size)
    throw failure(::fmt::format("--size {} is larger than --max-size {}", a.size, a.max_size), kUsage);
  auto db = store::open(a.file, o);
  const store_info i = db->info();
  db->close();
  std::fputs(::fmt::format("created {}: {} reserved, max size {}, durability {}\n", a.file, human_bytes(i.file_size),
                           human_bytes(i.max_size), mode_name(o.mode))
                 .c_str(),
             stdout);
  return kOk;
}

int run_checkpoint(const maintenance_args& a) {
  auto db = open_writer(a.file, std::nullopt, a.wait_ms);
  const store_info before = db->info();
  db->checkpoint();
  const store_info after = db->info();
  db->close();
  std::fputs(::fmt::format("checkpointed {}: LSN {}, log {} -> {}, journal {} -> {}\n", a.file, after.checkpoint_lsn,
                           human_bytes(before.log_bytes), human_bytes(after.log_bytes),
                           human_bytes(before.journal_bytes), human_bytes(after.journal_bytes))
                 .c_str(),
             stdout);
  return kOk;
}

}  // namespace keel::cli
