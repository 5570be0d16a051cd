// keel info FILE [--json]: what a store holds and in what state it is.
#include <fcntl.h>
#include <fmt/format.h>

#include <ctime>

#include "commands.h"
#include "common.h"
#include "file/format.h"
#include "keel/error.h"
#include "keel/os.h"
#include "structure.h"
#include "superblocks.h"
#include "text_codec.h"

namespace keel::cli {

namespace {

std::string utc(std::uint64_t ns) {
  if (ns == 0) return "never";
  const std::time_t t = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// 1 when another open file description holds the writer lock, 0 when none, -1 unknown.
int writer_active(const std::string& path) {
  os& sys = posix_os();
  const int fd = sys.open(path, O_RDONLY, 0);
  if (fd < 0) return -1;
  const int r = sys.lock_held(fd);
  sys.close(fd);
  return r < 0 ? -1 : r;
}

struct structure_row {
  catalog_entry e;
  std::optional<std::uint64_t> entries;
  std::string problem;
};

std::string slot_json(const superblock_slot& s, int index, bool newest) {
  if (!s.present) return ::fmt::format(R"({{"slot":{},"valid":false,"problem":{}}})", index, json_quote(s.problem));
  const auto& b = s.sb;
  return ::fmt::format(
      R"({{"slot":{},"valid":{},"newest":{},"problem":{},"sequence":{},"checkpoint_lsn":{},"file_size":{},)"
      R"("max_size":{},"cursor":{},"catalog_head":{},"mode":{},"clean_close":{},"created":{},"checkpoint_time":{}}})",
      index, s.valid(), newest, s.valid() ? "null" : json_quote(s.problem), b.sequence, b.checkpoint_lsn, b.file_size,
      b.max_size, b.cursor, b.catalog_head,
      b.mode <= 2 ? json_quote(mode_name(static_cast<durability>(b.mode))) : "null",
      (b.flags & fmt::kFlagCleanClose) != 0, json_quote(utc(b.created_ns)), json_quote(utc(b.checkpoint_ns)));
}

std::string slot_text(const superblock_slot& s, bool newest) {
  if (!s.present) return "missing (" + s.problem + ")";
  const auto& b = s.sb;
  std::string t = s.valid() ? (newest ? "valid, newest" : "valid") : "INVALID (" + s.problem + ")";
  if (s.valid() || s.problem == "checksum mismatch")
    t += ::fmt::format(", sequence {}, checkpoint LSN {} at {}{}", b.sequence, b.checkpoint_lsn, utc(b.checkpoint_ns),
                       (b.flags & fmt::kFlagCleanClose) ? ", clean close" : "");
  return t;
}

}  // namespace

int run_info(const info_args& a) {
  const std::uint64_t actual_size = require_store_file(a.file);
  // The superblocks first, straight from the file: they are what an
  // operator needs when the store itself will not open.
  const auto slots = read_superblocks(a.file);
  const int newest = newest_slot(slots);

  std::unique_ptr<store> db;
  std::string open_problem;
  try {
    db = open_reader(a.file);
  } catch (const error& e) {
    if (e.code() != errc::needs_recovery) throw;
    open_problem = e.what();
  }
  const int writer = writer_active(a.file);

  store_info si;
  std::vector<structure_row> rows;
  if (db) {
    si = db->info();
    for (auto& e : db->read([](const read_view& v) { return v.list(); })) {
      structure_row r{e, std::nullopt, {}};
      if (e.kind != kind::raw) {
        try {
          r.entries = entry_count(*db, layout_of(e));
        } catch (const std::exception& x) {
          r.problem = x.what();
        }
      }
      rows.push_back(std::move(r));
    }
  }
  const fmt::superblock* sb = newest >= 0 ? &slots[newest].sb : nullptr;
  // The newest superblock's flag says the last close checkpointed; a writer
  // that opened the store after it and died leaves log records past that
  // checkpoint (a writer's open writes no superblock).
  const bool clean = sb && (sb->flags & fmt::kFlagCleanClose) != 0 && writer != 1 && db &&
                     si.last_lsn == si.checkpoint_lsn && si.log_bytes == 0;
  std::string close_state;
  if (writer == 1)
    close_state = "the store is open for writing now";
  else if (clean)
    close_state = "clean";
  else if (!db)
    close_state = "not clean: needs recovery";
  else
    close_state =
        ::fmt::format("not clean: a writer died; the next writable open replays {} of log", human_bytes(si.log_bytes));

  if (a.json) {
    std::string o = "{";
    o += ::fmt::format(R"("path":{},"format_version":{},"page_size":{},)", json_quote(a.file), fmt::kVersion,
                       fmt::kPage);
    o += R"("superblocks":[)" + slot_json(slots[0], 0, newest == 0) + "," + slot_json(slots[1], 1, newest == 1) + "],";
    o += ::fmt::format(R"("writer_active":{},)", writer < 0 ? "null" : writer ? "true" : "false");
    o += ::fmt::format(R"("needs_recovery":{},)", db ? "false" : "true");
    o += ::fmt::format(R"("clean_close":{},"close_state":{},)", clean, json_quote(close_state));
    if (db) {
      o += ::fmt::format(R"("sizes":{{"file":{},"max":{},"arena_used":{},"allocated":{},"free":{},"reserved":{}}},)",
                         si.file_size, si.max_size, si.arena_used - fmt::kArenaOffset, si.live_bytes, si.free_bytes,
                         si.file_size > si.arena_used ? si.file_size - si.arena_used : 0);
      o += ::fmt::format(R"("durability":{},"last_lsn":{},"checkpoint_lsn":{},"last_checkpoint":{},)",
                         json_quote(mode_name(si.mode)), si.last_lsn, si.checkpoint_lsn,
                         json_quote(utc(sb ? sb->checkpoint_ns : 0)));
      o += ::fmt::format(R"("log_bytes":{},"journal_bytes":{},)", si.log_bytes, si.journal_bytes);
      o += R"("structures":[)";
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        o += ::fmt::format(R"({}{{"name":{},"kind":{},"key_type":{},"value_type":{},"root":{},"entries":{})",
                           i ? "," : "", json_quote(r.e.name), json_quote(kind_name(r.e.kind)),
                           json_quote(type_spec(r.e.key)), json_quote(type_spec(r.e.value)), r.e.root,
                           r.entries ? std::to_string(*r.entries) : "null");
        if (!r.problem.empty()) o += R"(,"problem":)" + json_quote(r.problem);
        o += "}";
      }
      o += "]";
    } else {
      o += ::fmt::format(R"("file_size":{},"problem":{})", actual_size, json_quote(open_problem));
    }
    o += "}\n";
    std::fputs(o.c_str(), stdout);
    return kOk;
  }

  std::string o;
  o += ::fmt::format("store            {}\n", a.file);
  o += ::fmt::format("format           version {}, page size {}\n", fmt::kVersion, fmt::kPage);
  o += ::fmt::format("superblock 0     {}\n", slot_text(slots[0], newest == 0));
  o += ::fmt::format("superblock 1     {}\n", slot_text(slots[1], newest == 1));
  if (sb) o += ::fmt::format("created          {}\n", utc(sb->created_ns));
  o += ::fmt::format("writer           {}\n", writer < 0 ? "unknown"
                                              : writer   ? "a process has the store open for writing"
                                                         : "none");
  if (!db) {
    o += ::fmt::format("last close       {}\n", close_state);
    o += ::fmt::format("state            {}\n", open_problem);
    o += ::fmt::format("file size        {} ({} bytes)\n", human_bytes(actual_size), actual_size);
    std::fputs(o.c_str(), stdout);
    return kOk;
  }
  o += ::fmt::format("last close       {}\n", close_state);
  o += ::fmt::format("durability       {} (as recorded by the last checkpoint)\n", mode_name(si.mode));
  o += ::fmt::format("last checkpoint  LSN {} at {}; last commit LSN {}\n", si.checkpoint_lsn,
                     utc(sb ? sb->checkpoint_ns : 0), si.last_lsn);
  o += ::fmt::format("log              {} since the checkpoint; journal {}\n", human_bytes(si.log_bytes),
                     human_bytes(si.journal_bytes));
  const std::uint64_t reserved = si.file_size > si.arena_used ? si.file_size - si.arena_used : 0;
  o += ::fmt::format("file size        {} ({} bytes), max size {}\n", human_bytes(si.file_size), si.file_size,
                     human_bytes(si.max_size));
  o += ::fmt::format("arena            {} used: {} allocated, {} free (reusable); {} reserved beyond it\n",
                     human_bytes(si.arena_used - fmt::kArenaOffset), human_bytes(si.live_bytes),
                     human_bytes(si.free_bytes), human_bytes(reserved));
  o += ::fmt::format("structures       {}\n", rows.size());
  if (!rows.empty()) {
    std::size_t w = 4, kw = 3, vw = 5;
    for (const auto& r : rows) {
      w = std::max(w, r.e.name.size());
      kw = std::max(kw, type_spec(r.e.key).size());
      vw = std::max(vw, type_spec(r.e.value).size());
    }
    o += ::fmt::format("  {:<{}}  {:<10}  {:<{}}  {:<{}}  {:>10}  {}\n", "NAME", w, "KIND", "KEY", kw, "VALUE", vw,
                       "ENTRIES", "ROOT");
    for (const auto& r : rows)
      o += ::fmt::format("  {:<{}}  {:<10}  {:<{}}  {:<{}}  {:>10}  {}{}\n", r.e.name, w, kind_name(r.e.kind),
                         type_spec(r.e.key), kw, type_spec(r.e.value), vw, r.entries ? std::to_string(*r.entries) : "-",
                         r.e.root, r.problem.empty() ? "" : "  (" + r.problem + ")");
  }
  std::fputs(o.c_str(), stdout);
  return kOk;
}

}  // namespace keel::cli
