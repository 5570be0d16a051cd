// A fuzzy copy of the data file made exact by replaying the redo log.
//
// Why it is exact: every commit appends its record (physical after-images
// of every byte it changed, fresh space included) to the log before it
// applies them to the mapping, and only commits change committed bytes. A
// byte of the copy therefore holds either its value at the checkpoint (no
// record since touched it) or a value some record since the checkpoint
// wrote; replaying, in order, every record from the checkpoint up to the
// last complete one read after the copy ended rewrites every byte any of
// them touched with its final value. What no record touched was stable for
// the whole copy. The one thing that breaks this is a checkpoint recycling
// records the copy needs: the newest superblock is written before the log
// is truncated, so an unchanged superblock after the log was read proves
// the log was intact, and a changed one restarts the copy.
//
// After a restart (the page cache lost) the data file on disk may hold
// pages written back with changes of commits whose records never became
// durable; as in recovery, the journal's before-images are restored first.
#include "backup/snapshot.h"

#include <fcntl.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "file/superblock.h"
#include "os/io.h"
#include "txn/journal.h"
#include "txn/redo_log.h"
#include "txn/side_file.h"

namespace keel::snapshot {

using fmt::kPage;

copy::~copy() {
  if (base) sys->munmap(base, map_len);
  if (fd >= 0) sys->close(fd);
}

namespace {

constexpr std::uint64_t kChunk = 1 << 20;
constexpr std::uint64_t kHeader = sizeof(fmt::file_header);

std::uint64_t size_of(os& sys, int fd, const std::string& path) {
  const std::int64_t n = sys.file_size(fd);
  if (n < 0) io::fail(path, "fstat", static_cast<int>(n));
  return static_cast<std::uint64_t>(n);
}

fmt::superblock newest(os& sys, int fd, const std::string& path) {
  return superblock::choose(sys, fd, path, size_of(sys, fd, path));
}

// The newest superblock is still the one the copy started from.
bool unchanged(os& sys, int fd, const std::string& path, const fmt::superblock& sb) {
  try {
    const fmt::superblock now = newest(sys, fd, path);
    return now.sequence == sb.sequence && now.slot == sb.slot && now.checkpoint_lsn == sb.checkpoint_lsn;
  } catch (const error&) {
    return false;  // a superblock write in progress reads as torn
  }
}

void ensure_size(copy& c, std::uint64_t need, const std::string& src) {
  need = fmt::align_up(need, kPage);
  if (need <= c.size) return;
  if (need > c.map_len)
    throw error(errc::corrupt, src, "a log record writes at " + std::to_string(need) + ", past max_size");
  if (int r = c.sys->fallocate(c.fd, c.size, need - c.size); r < 0)
    io::fail(src, "cannot reserve " + std::to_string(need) + " bytes for the copy", r);
  c.size = need;
}

// A side file (log or journal) opened read-only, or -1 when it is missing
// from a store that never committed (its creator died before writing it).
int open_side(os& sys, const std::string& path, bool pristine) {
  const int fd = sys.open(path, O_RDONLY, 0);
  if (fd == -ENOENT && pristine) return -1;
  if (fd == -ENOENT) throw error(errc::corrupt, path, "missing: the store's redo log or journal was deleted");
  if (fd < 0) io::fail(path, "cannot open for reading", fd);
  return fd;
}

void check_header(os& sys, int fd, const std::string& path, const unsigned char (&magic)[8], std::uint64_t id) {
  fmt::file_header h{};
  if (!io::read_at(sys, fd, &h, sizeof h, 0, path)) throw error(errc::corrupt, path, "header missing (file too short)");
  if (std::string why = side::header_problem(h, magic, id); !why.empty()) throw error(errc::corrupt, path, why);
}

}  // namespace

result take(os& sys, const std::string& src, int src_fd, copy& into, const progress_fn& progress, int max_attempts) {
  const std::string log_path = src + "-log", jrn_path = src + "-journal";
  result res;
  for (int attempt = 1; attempt <= max_attempts; ++attempt) {
    res = result{};
    res.attempts = attempt;
    const fmt::superblock sb = newest(sys, src_fd, src);
    res.sb = sb;
    fmt::control_page ctrl{};
    fmt::meta_page meta{};
    io::read_at(sys, src_fd, &ctrl, sizeof ctrl, fmt::kControlOffset, src);
    io::read_at(sys, src_fd, &meta, sizeof meta, fmt::kMetaOffset, src);
    const auto boot = sys.boot_id();
    const bool ctrl_valid = std::memcmp(ctrl.magic, fmt::kControlMagic, 8) == 0 && ctrl.file_id == sb.file_id &&
                            std::memcmp(ctrl.boot_id, boot.data(), 16) == 0;
    res.writer = sys.lock_held(src_fd) == 1;
    const bool pristine = sb.checkpoint_lsn == 0 && sb.sequence <= 2 && meta.commits == 0;
    io::fd_guard log(sys, open_side(sys, log_path, pristine));
    io::fd_guard jrn(sys, open_side(sys, jrn_path, pristine));
    if (log.get() >= 0) check_header(sys, log.get(), log_path, fmt::kLogMagic, sb.file_id);
    if (jrn.get() >= 0) check_header(sys, jrn.get(), jrn_path, fmt::kJournalMagic, sb.file_id);

    // 1. The fuzzy copy of [0, cursor): past the cursor nothing is allocated,
    //    and what commits allocate later is in their records.
    const std::uint64_t size0 = std::min(size_of(sys, src_fd, src) & ~(kPage - 1), sb.max_size);
    std::uint64_t cursor0 = meta.cursor;
    if (std::memcmp(meta.magic, fmt::kMetaMagic, 8) != 0 || cursor0 < fmt::kArenaOffset || cursor0 > size0)
      cursor0 = size0;  // damaged: copy everything, the checker reports it
    const std::uint64_t copy_len = fmt::align_up(cursor0, kPage);
    if (!into.base || into.map_len != sb.max_size) {
      if (into.base) into.sys->munmap(into.base, into.map_len);
      into.base = nullptr;
      into.sys = &sys;
      int err = 0;
      void* p = sys.mmap(into.fd, sb.max_size, true, &err);
      if (!p) io::fail(src, "cannot map " + std::to_string(sb.max_size) + " bytes for the copy", err);
      into.base = static_cast<std::byte*>(p);
      into.map_len = sb.max_size;
      (void)sys.advise_random(p, sb.max_size);  // the copy's page cache in 4 KiB folios, as a writer's
    }
    io::check(sys.ftruncate(into.fd, 0), src, "truncate the copy");
    into.size = 0;
    ensure_size(into, size0, src);
    const std::uint64_t log_len = log.get() >= 0 ? size_of(sys, log.get(), log_path) : 0;
    const std::uint64_t total = copy_len + log_len;
    if (progress) progress(0, total);
    for (std::uint64_t off = 0; off < copy_len; off += kChunk) {
      const std::uint64_t n = std::min(kChunk, copy_len - off);
      if (!io::read_at(sys, src_fd, into.base + off, n, off, src))
        throw error(errc::corrupt, src, "file ended at " + std::to_string(off) + " while being copied");
      res.copied += n;
      if (progress) progress(off + n, total);
    }

    // 2. After a restart: back to the checkpoint's images of changed lines.
    if (!ctrl_valid && jrn.get() >= 0) {
      std::unordered_map<std::uint64_t, std::uint64_t> done;  // lines restored, per page
      journal::scan(sys, jrn.get(), jrn_path, sb.checkpoint_lsn, into.size,
                    [&](std::uint64_t page, std::uint64_t mask, const std::byte* lines) {
                      std::uint64_t& d = done[page];
                      for (std::uint64_t m = mask; m != 0; m &= m - 1, lines += fmt::kLine) {
                        const std::uint64_t bit = m & (~m + 1);
                        if (d & bit) continue;  // the earliest image of a line is the checkpoint's
                        std::memcpy(into.base + page + std::countr_zero(m) * fmt::kLine, lines, fmt::kLine);
                        d |= bit;
                      }
                    });
      res.restored_pages = done.size();
    }

    // 3. Replay every record since the checkpoint.
    std::uint64_t max_end = 0;
    bool cursor_replayed = false;  // a record wrote the allocator cursor
    redo::scan_result r;
    r.end = kHeader;
    if (log.get() >= 0) {
      try {
        r = redo::scan(sys, log.get(), log_path, kHeader, std::nullopt, sb.checkpoint_lsn, sb.max_size,
                       [&](std::uint64_t, std::span<const redo::range> rs) {
                         for (const auto& x : rs) {
                           ensure_size(into, redo::reach(x), src);
                           cursor_replayed |= redo::writes_cursor(x);
                           redo::replay(into.base, x);
                           max_end = std::max(max_end, redo::reach(x));
                         }
                       });
      } catch (const error& e) {
        // A log recycled under the reader looks like a gap: retry.
        if (e.code() == errc::corrupt && !unchanged(sys, src_fd, src, sb)) continue;
        throw;
      }
    }
    if (!unchanged(sys, src_fd, src, sb)) continue;  // a checkpoint recycled the log meanwhile
    // In this boot the writer grew the file before any record referred to
    // the new space. After a restart the file may be back at the size of
    // its last sync (growth is not synced): the copy is extended as
    // recovery would extend the store, to the records and the replayed
    // allocator cursor.
    if (ctrl_valid && max_end > size_of(sys, src_fd, src))
      throw error(errc::corrupt, log_path,
                  "a checksummed record writes up to " + std::to_string(max_end) + ", past the end of the data file");
    if (!ctrl_valid && cursor_replayed) {
      std::uint64_t cur = 0;
      std::memcpy(&cur, into.base + fmt::kMetaOffset + offsetof(fmt::meta_page, cursor), 8);
      if (cur <= sb.max_size) ensure_size(into, cur, src);
    }
    res.replayed = r.applied;
    res.log_end = r.end;
    res.lsn = std::max(r.last_lsn, sb.checkpoint_lsn);
    std::uint64_t commits = 0;
    std::memcpy(&commits, into.base + fmt::kMetaOffset + offsetof(fmt::meta_page, commits), 8);
    if (commits > res.lsn && r.applied == 0) {
      // The newest superblock was lost after its checkpoint completed: the
      // data is that checkpoint (what a writable open adopts).
      res.lsn = commits;
      res.adopted_meta = true;
    }
    res.recovery_pending = !res.writer && (r.applied > 0 || res.restored_pages > 0 || (ctrl.seqlock & 1) != 0 ||
                                           res.adopted_meta);
    if (progress) progress(total, total);
    return res;
  }
  throw error(errc::busy, src,
              "checkpoints recycled the log during each of " + std::to_string(max_attempts) +
                  " copies; retry when the writer is quieter, or raise its checkpoint_bytes / checkpoint_interval");
}

}  // namespace keel::snapshot
