// keel check FILE and keel backup FILE DEST: front ends of keel::check and
// keel::backup (src/check/, src/backup/).
#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "commands.h"
#include "common.h"
#include "keel/backup.h"
#include "keel/check.h"
#include "keel/detail/tree_engine.h"
#include "progress.h"
#include "superblocks.h"
#include "text_codec.h"

namespace keel::cli {

namespace {

// keel::check reaches the B+tree checker through a weak reference (so that
// programs without trees need not link the engine); a weak reference does
// not pull src/tree/check.cc out of the static library, so without this
// strong one the tool would report trees as "not checked".
using tree_check_fn = void (*)(const read_view&, std::uint64_t, std::vector<std::pair<std::uint64_t, std::string>>&,
                               std::vector<std::pair<std::uint64_t, std::uint64_t>>*);
[[gnu::used]] const tree_check_fn link_tree_check = &detail::tree_check;

std::string problem_text(const check_problem& p) {
  if (p.offset != 0) return ::fmt::format("{}, offset {}: {}", p.where, p.offset, p.what);
  return ::fmt::format("{}: {}", p.where, p.what);
}

std::string problem_json(const check_problem& p) {
  return ::fmt::format(R"({{"where":{},"offset":{},"what":{}}})", json_quote(p.where), p.offset, json_quote(p.what));
}

// A file without the Keel magic in either superblock and without a Keel
// log beside it is not a store at all (one line, exit 3) rather than a
// damaged one (a report, exit 1).
bool looks_like_a_store(const std::string& path) {
  for (const auto& s : read_superblocks(path))
    if (s.present && std::memcmp(s.sb.magic, fmt::kSuperMagic, 8) == 0) return true;
  char magic[8] = {};
  std::ifstream log(path + "-log", std::ios::binary);
  return log.read(magic, sizeof magic) && std::memcmp(magic, fmt::kLogMagic, 8) == 0;
}

}  // namespace

int run_check(const check_args& a) {
  require_store_file(a.file);
  if (!looks_like_a_store(a.file))
    throw failure(a.file + ": not a Keel store (no Keel superblock, no Keel log beside it)");
  progress p("check", "bytes", 0, progress::unit::bytes);
  const check_report r = keel::check(a.file, [&](std::uint64_t done, std::uint64_t total) {
    p.set_total(total);
    p.set(done);
  });
  p.finish();
  const std::uint64_t n_problems = r.problems.size() + r.problems_not_listed;
  std::string o;
  if (a.json) {
    o += ::fmt::format(R"({{"path":{},"clean":{},"structures":{},"entries":{},"blocks":{},"log_records":{},)",
                       json_quote(a.file), r.clean(), r.structures, r.entries, r.blocks, r.log_records);
    o += ::fmt::format(R"("journal_entries":{},"bytes_checked":{},"lsn":{},"recovery_pending":{},"snapshot":{},)",
                       r.journal_entries, r.bytes_checked, r.lsn, r.recovery_pending, r.snapshot);
    o += R"("problems":[)";
    for (std::size_t i = 0; i < r.problems.size(); ++i)
      o += ::fmt::format("{}{}", i ? "," : "", problem_json(r.problems[i]));
    o += ::fmt::format(R"(],"problems_not_listed":{},"notes":[)", r.problems_not_listed);
    for (std::size_t i = 0; i < r.notes.size(); ++i) o += ::fmt::format("{}{}", i ? "," : "", problem_json(r.notes[i]));
    o += "]}\n";
  } else {
    o += ::fmt::format("check {}: {} structures, {} entries, {} blocks, {} log records, {} journal entries, LSN {}{}\n",
                       a.file, r.structures, r.entries, r.blocks, r.log_records, r.journal_entries, r.lsn,
                       r.snapshot ? " (checked on a snapshot)" : "");
    for (const auto& n : r.notes) o += ::fmt::format("  note: {}\n", problem_text(n));
    for (const auto& x : r.problems) o += ::fmt::format("  PROBLEM: {}\n", problem_text(x));
    if (r.problems_not_listed > 0) o += ::fmt::format("  ... and {} more problems\n", r.problems_not_listed);
    o += n_problems == 0 ? std::string("clean\n")
                         : ::fmt::format("{} problem{} found\n", n_problems, n_problems == 1 ? "" : "s");
  }
  std::fputs(o.c_str(), stdout);
  return n_problems == 0 ? kOk : kProblems;
}

int run_backup(const maintenance_args& a) {
  require_store_file(a.file);
  progress p("backup", "bytes", 0, progress::unit::bytes);
  const backup_result r = keel::backup(a.file, a.dest, [&](std::uint64_t done, std::uint64_t total) {
    p.set_total(total);
    p.set(done);
  });
  p.finish();
  std::fputs(
      ::fmt::format("backed up {} -> {}: consistent as of LSN {}, {} copied in {:.2f} s{}\n", a.file, a.dest, r.lsn,
                    human_bytes(r.bytes), r.seconds, r.attempts > 1 ? ::fmt::format(" ({} attempts)", r.attempts) : "")
          .c_str(),
      stdout);
  return kOk;
}

}  // namespace keel::cli
