// keel::check: what is read where. Superblocks, control page, log and
// journal are always read from the original files; the data (meta page,
// allocator, catalog, structures) is checked in place when no writer holds
// the lock and nothing needs recovery, else on a private recovered
// snapshot (src/backup/snapshot.h) with the same offsets.
#include "keel/check.h"

#include <algorithm>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "backup/snapshot.h"
#include "check/check_internal.h"
#include "file/superblock.h"
#include "os/io.h"
#include "txn/redo_log.h"
#include "txn/side_file.h"
#include "util/checksum.h"

namespace keel {

namespace {

using checker::context;
using fmt::kPage;

std::string num(std::uint64_t v) { return std::to_string(v); }

std::uint64_t size_of(os& sys, int fd, const std::string& path) {
  const std::int64_t n = sys.file_size(fd);
  if (n < 0) io::fail(path, "fstat", static_cast<int>(n));
  return static_cast<std::uint64_t>(n);
}

// ---------------------------------------------------------------- superblocks

std::optional<fmt::superblock> check_superblocks(context& c, os& sys, int fd, const std::string& path,
                                                 std::uint64_t actual) {
  fmt::superblock s[2]{};
  bool ok[2]{};
  for (std::uint32_t i = 0; i < 2; ++i) {
    const std::string where = "superblock " + num(i);
    if (!io::read_at(sys, fd, &s[i], sizeof s[i], i * kPage, path))
      c.problem(where, i * kPage, "missing: the file is only " + num(actual) + " bytes");
    else if (std::string why = superblock::problem(s[i], i); !why.empty())
      c.problem(where, i * kPage, "unusable: " + why);
    else
      ok[i] = true;
  }
  c.advance(2 * kPage);
  if (!ok[0] && !ok[1]) {
    c.problem("superblock", 0, "no valid superblock: the store cannot be opened");
    return std::nullopt;
  }
  const std::uint32_t best = ok[0] && (!ok[1] || s[0].sequence > s[1].sequence) ? 0 : 1, other = 1 - best;
  const fmt::superblock& b = s[best];
  const std::string bw = "superblock " + num(best), ow = "superblock " + num(other);
  std::string about_other = "; " + ow + " is unusable, so this is the only copy";
  if (ok[other]) {
    const fmt::superblock& o = s[other];
    about_other = "; " + ow + " (sequence " + num(o.sequence) + ", checkpoint LSN " + num(o.checkpoint_lsn) +
                  ") is the previous checkpoint";
    if (o.file_id != b.file_id)
      c.problem(ow, other * kPage + offsetof(fmt::superblock, file_id),
                "belongs to another store: its file id differs from " + bw + "'s");
    if (o.max_size != b.max_size)
      c.problem(ow, other * kPage + offsetof(fmt::superblock, max_size),
                "max size " + num(o.max_size) + " differs from " + bw + "'s " + num(b.max_size) + " (fixed at creation)");
    if (o.checkpoint_lsn > b.checkpoint_lsn)
      c.problem(ow, other * kPage + offsetof(fmt::superblock, checkpoint_lsn),
                "the older superblock has the later checkpoint LSN " + num(o.checkpoint_lsn) + " (newest has " +
                    num(b.checkpoint_lsn) + ")");
    if (o.sequence + 1 != b.sequence)
      c.note(ow, other * kPage + offsetof(fmt::superblock, sequence),
             "sequences " + num(o.sequence) + " and " + num(b.sequence) + " are not consecutive");
  }
  c.note(bw, best * kPage,
         "in use: sequence " + num(b.sequence) + ", checkpoint LSN " + num(b.checkpoint_lsn) + ", file size " +
             num(b.file_size) + ", max size " + num(b.max_size) +
             ((b.flags & fmt::kFlagCleanClose) ? ", written by a clean close" : "") + about_other);
  if (b.file_size > actual)
    c.problem(bw, best * kPage + offsetof(fmt::superblock, file_size),
              "file size " + num(b.file_size) + ", but the file is only " + num(actual) + " bytes (truncated)");
  return b;
}

bool same_superblocks(os& sys, int fd, const std::string& path, const fmt::superblock& sb) {
  try {
    const fmt::superblock now = superblock::choose(sys, fd, path, size_of(sys, fd, path));
    return now.sequence == sb.sequence && now.slot == sb.slot;
  } catch (const error&) {
    return false;
  }
}

// ---------------------------------------------------------------- control page

void check_control(context& c, const fmt::control_page& ctrl, const fmt::superblock& sb, bool writer, os& sys) {
  const auto boot = sys.boot_id();
  const std::uint64_t at = fmt::kControlOffset;
  // What a stale page means for the next writer (DURABILITY.md, "Recovery").
  const std::string next =
      ": a writable open runs a full recovery if anything lies past the checkpoint, else its first write takes the "
      "page over";
  if (std::memcmp(ctrl.magic, fmt::kControlMagic, 8) != 0)
    c.note("control page", at, "not initialized (volatile page)" + next);
  else if (ctrl.file_id != sb.file_id)
    c.note("control page", at + offsetof(fmt::control_page, file_id), "carries another file id (a copied store?)" + next);
  else if (std::memcmp(ctrl.boot_id, boot.data(), 16) != 0)
    c.note("control page", at + offsetof(fmt::control_page, boot_id), "written before the last restart" + next);
  if (writer)
    c.note("control page", at + offsetof(fmt::control_page, writer_pid),
           "a writer holds the writer lock; the page names pid " + num(ctrl.writer_pid) +
               ", the last writer that took it over (one that has not written since its open has not)");
  else if ((ctrl.seqlock & 1) != 0)
    c.note("control page", at + offsetof(fmt::control_page, seqlock),
           "the seqlock is odd: a commit was being applied when its writer died; the next writable open replays it");
}

// ---------------------------------------------------------------- log and journal

struct side_state {
  std::uint64_t records = 0, first = 0, last = 0;  // log records since the checkpoint
  std::uint64_t journal_entries = 0;
  bool mid_corruption = false;
};

bool open_side(context& c, os& sys, const std::string& path, const char* where, const unsigned char (&magic)[8],
               const fmt::superblock& sb, io::fd_guard& fd, std::uint64_t& len) {
  const int f = sys.open(path, O_RDONLY, 0);
  if (f < 0) {
    c.problem(where, 0, f == -ENOENT ? std::string("missing: ") + path + " does not exist"
                                     : "cannot open " + path + ": " + std::strerror(-f));
    return false;
  }
  fd = io::fd_guard(sys, f);
  len = size_of(sys, f, path);
  fmt::file_header h{};
  if (!io::read_at(sys, f, &h, sizeof h, 0, path)) {
    c.problem(where, 0, "header missing: the file is " + num(len) + " bytes");
    return false;
  }
  if (std::string why = side::header_problem(h, magic, sb.file_id); !why.empty()) {
    c.problem(where, 0, "header: " + why);
    return false;
  }
  return true;
}

constexpr std::uint64_t kHeader = sizeof(fmt::file_header);

bool valid_record_header(const fmt::record_header& h) {
  return h.magic == fmt::kRecordMagic && h.checksum == checksum(&h, offsetof(fmt::record_header, checksum));
}

// Records are bounded by max_size, not by the data file's size: growth is
// not synced, so after a restart a durable record may write past the end of
// a file cut back to its last synced size (recovery extends it).
void check_log(context& c, os& sys, const std::string& path, const fmt::superblock& sb, side_state& st) {
  const std::uint64_t limit = sb.max_size;
  io::fd_guard fd(sys, -1);
  std::uint64_t len = 0;
  if (!open_side(c, sys, path + "-log", "log", fmt::kLogMagic, sb, fd, len)) return;
  const std::string lpath = path + "-log";
  side::reader rd(sys, fd.get(), lpath, len);
  const std::uint64_t L = sb.checkpoint_lsn;
  std::uint64_t pos = kHeader, last = 0, old_epoch = 0;
  bool first = true;
  std::vector<redo::range> ranges;  // a record's, decoded to validate them
  // Stopped at pos: a torn tail (a note) unless a valid record follows
  // (corruption in the middle: recovery would lose what follows).
  auto stop = [&](const std::string& why, std::uint64_t resume) {
    // Zeros to the end are the log's reserve (FORMAT.md), not a torn tail.
    bool zeros = true;
    for (std::uint64_t q = pos; q < len && zeros;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(4096, len - q));
      const std::byte* p = rd.at(q, n);
      zeros = p && std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
      q += n;
    }
    if (zeros) return;
    for (std::uint64_t q = std::max(resume, pos + 8); q <= len && len - q >= sizeof(fmt::record_header); q += 8) {
      const std::byte* p = rd.at(q, sizeof(fmt::record_header));
      if (!p) break;
      fmt::record_header h;
      std::memcpy(&h, p, sizeof h);
      if (valid_record_header(h) && h.lsn > last) {
        st.mid_corruption = true;
        c.problem("log", pos,
                  why + "; a valid record (LSN " + num(h.lsn) + ") follows at " + num(q) +
                      ": recovery stops here and loses it and everything after");
        return;
      }
    }
    c.note("log", pos,
           "torn tail: " + why + "; recovery drops the " + num(len - pos) + " bytes from here (last complete record: LSN " +
               num(last) + ")");
  };
  for (;;) {
    const std::byte* hp = rd.at(pos, sizeof(fmt::record_header));
    if (!hp) {
      if (pos != len) stop("a record header is cut off", pos + 8);
      break;
    }
    fmt::record_header h;
    std::memcpy(&h, hp, sizeof h);
    if (!valid_record_header(h)) {
      stop("invalid record header (magic or checksum)", pos + 8);
      break;
    }
    if (first && h.lsn == 0) {
      stop("record with LSN 0", pos + 8);
      break;
    }
    if (first && h.lsn > L + 1) {
      c.problem("log", pos,
                "the log starts at LSN " + num(h.lsn) + " but the checkpoint holds only up to LSN " + num(L) +
                    ": transactions are missing (recovery refuses this store)");
      break;
    }
    if (!first && h.lsn != last + 1) {
      stop("record has LSN " + num(h.lsn) + ", expected " + num(last + 1), pos + 8);
      break;
    }
    if (first) last = h.lsn - 1;
    const std::uint64_t total = sizeof(fmt::record_header) + h.payload_bytes + sizeof(fmt::record_trailer);
    if (h.payload_bytes > len || total > len - pos) {
      stop("record of " + num(total) + " bytes runs past the end of the log", pos + 8);
      break;
    }
    const std::byte* rp = rd.at(pos, static_cast<std::size_t>(total));
    if (!rp) {
      stop("record cannot be read whole", pos + 8);
      break;
    }
    fmt::record_trailer t;
    std::memcpy(&t, rp + total - sizeof t, sizeof t);
    if (t.magic != fmt::kCommitMagic || t.lsn != h.lsn || t.checksum != checksum(rp, static_cast<std::size_t>(total - sizeof t))) {
      stop("record LSN " + num(h.lsn) + " has no valid commit marker (trailer or payload checksum)", pos + total);
      break;
    }
    // Checksums matched: a bad range is corruption, not a torn write.
    ranges.clear();
    const std::string bad = redo::decode(rp + sizeof(fmt::record_header), h.payload_bytes, h.range_count, limit, ranges);
    if (!bad.empty()) {
      c.problem("log", pos, "record LSN " + num(h.lsn) + ": " + bad + " (checksums match: recovery refuses this log)");
      break;
    }
    if (h.lsn <= L) {
      ++old_epoch;
    } else {
      if (st.records++ == 0) st.first = h.lsn;
      st.last = h.lsn;
    }
    last = h.lsn;
    first = false;
    pos += total;
  }
  c.advance(len);
  if (old_epoch > 0)
    c.note("log", kHeader,
           num(old_epoch) + " records of the previous epoch (LSN up to " + num(L) +
               ") lead the log (a crash came before its recycling was durable): recovery skips them");
}

bool valid_journal_entry(const fmt::journal_entry& e, const std::byte* lines) {
  return e.checksum == checksum2(&e, offsetof(fmt::journal_entry, checksum), lines,
                                 static_cast<std::size_t>(std::popcount(e.line_mask)) * fmt::kLine);
}

void check_journal(context& c, os& sys, const std::string& path, const fmt::superblock& sb, std::uint64_t data_size,
                   side_state& st) {
  io::fd_guard fd(sys, -1);
  std::uint64_t len = 0;
  if (!open_side(c, sys, path + "-journal", "journal", fmt::kJournalMagic, sb, fd, len)) return;
  side::reader rd(sys, fd.get(), path + "-journal", len);
  const std::uint64_t L = sb.checkpoint_lsn;
  std::uint64_t pos = kHeader;
  auto stop = [&](const std::string& why) {
    for (std::uint64_t q = pos + 8; q <= len && len - q >= sizeof(fmt::journal_entry); q += 8) {
      const std::byte* p = rd.at(q, sizeof(fmt::journal_entry));
      if (!p) break;
      fmt::journal_entry e;
      std::memcpy(&e, p, sizeof e);
      if (e.magic != fmt::kJournalEntryMagic || e.line_mask == 0 || e.epoch_lsn != L) continue;
      const std::byte* full = rd.at(q, sizeof e + std::popcount(e.line_mask) * fmt::kLine);
      if (full && valid_journal_entry(e, full + sizeof e)) {
        st.mid_corruption = true;
        c.problem("journal", pos,
                  why + "; valid entries follow at " + num(q) +
                      ": a recovery after a restart stops here and does not restore the pages journaled after it");
        return;
      }
    }
    c.note("journal", pos, "torn tail: " + why + "; recovery ignores the " + num(len - pos) + " bytes from here");
  };
  for (;;) {
    const std::byte* hp = rd.at(pos, sizeof(fmt::journal_entry));
    if (!hp) {
      if (pos < len) stop("an entry header is cut off");
      break;
    }
    fmt::journal_entry e;
    std::memcpy(&e, hp, sizeof e);
    const std::uint64_t body = static_cast<std::uint64_t>(std::popcount(e.line_mask)) * fmt::kLine;
    if (e.magic != fmt::kJournalEntryMagic || e.line_mask == 0) {
      stop("invalid entry (magic or empty line mask)");
      break;
    }
    const std::byte* p = rd.at(pos, sizeof e + body);
    if (!p) {
      stop("entry runs past the end of the journal");
      break;
    }
    if (!valid_journal_entry(e, p + sizeof e)) {
      stop("entry checksum mismatch");
      break;
    }
    if (e.epoch_lsn != L) {
      c.note("journal", pos,
             "entries of epoch " + num(e.epoch_lsn) + " (not the current checkpoint LSN " + num(L) +
                 ") from here on: recovery ignores them");
      break;
    }
    if (e.page_offset % kPage != 0 || e.page_offset < fmt::kMetaOffset || e.page_offset >= data_size) {
      c.problem("journal", pos,
                "entry for page " + num(e.page_offset) + " lies outside the data file (checksum matches): recovery "
                "stops here");
      break;
    }
    ++st.journal_entries;
    pos += sizeof e + body;
  }
  c.advance(len);
}

// ---------------------------------------------------------------- what may change under us

struct mark {
  int lock = 0;
  std::uint64_t super[2] = {}, seqlock = 0, commits = 0;
  std::int64_t log_len = -1, jrn_len = -1;
  friend bool operator==(const mark&, const mark&) = default;
};

mark take_mark(os& sys, int fd, const std::string& path) {
  mark m;
  m.lock = sys.lock_held(fd);
  for (std::uint32_t i = 0; i < 2; ++i) {
    fmt::superblock s{};
    io::read_at(sys, fd, &s, sizeof s, i * kPage, path);
    m.super[i] = checksum(&s, sizeof s);
  }
  io::read_at(sys, fd, &m.seqlock, 8, fmt::kControlOffset + offsetof(fmt::control_page, seqlock), path);
  io::read_at(sys, fd, &m.commits, 8, fmt::kMetaOffset + offsetof(fmt::meta_page, commits), path);
  for (auto [len, p] : {std::pair{&m.log_len, path + "-log"}, std::pair{&m.jrn_len, path + "-journal"}}) {
    const int f = sys.open(p, O_RDONLY, 0);
    if (f < 0) continue;
    *len = sys.file_size(f);
    sys.close(f);
  }
  return m;
}

std::uint64_t file_len(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

int temp_file(os& sys, const std::string& dir) {
  const int fd = sys.open(dir, O_TMPFILE | O_RDWR, 0600);
  if (fd >= 0) return fd;
  std::string t = dir + "/keel-check-XXXXXX";
  const int f = ::mkostemp(t.data(), O_CLOEXEC);
  if (f < 0) io::fail(dir, "cannot create a temporary file for the snapshot", -errno);
  ::unlink(t.c_str());
  return f;
}

void check_in_place(check_report& rep, os& sys, int fd, const std::string& path, const fmt::superblock& sb,
                    std::uint64_t actual, context& outer) {
  const std::uint64_t len = std::min(actual, sb.max_size);
  int err = 0;
  void* p = sys.mmap(fd, len, false, &err);
  if (!p) io::fail(path, "cannot map the data file", err);
  context dc{rep};
  dc.img = {static_cast<const std::byte*>(p), len};
  dc.path = path;
  dc.progress = outer.progress;
  dc.progress_done = outer.progress_done;
  dc.progress_total = outer.progress_total;
  try {
    checker::check_data(dc, sb);
  } catch (...) {
    sys.munmap(p, len);
    throw;
  }
  sys.munmap(p, len);
}

}  // namespace

check_report check(const std::string& path, const progress_fn& progress, const check_options& opts) {
  os& sys = posix_os();
  check_report rep;
  const int f = sys.open(path, O_RDONLY, 0);
  if (f < 0) io::fail(path, "cannot open for reading", f);
  io::fd_guard fd(sys, f);
  const std::uint64_t actual = size_of(sys, fd.get(), path);
  context c{rep};
  c.path = path;
  c.progress = progress;
  c.progress_total = actual + file_len(path + "-log") + file_len(path + "-journal");
  const auto sb_opt = check_superblocks(c, sys, fd.get(), path, actual);
  if (!sb_opt) return rep;
  const fmt::superblock sb = *sb_opt;
  fmt::control_page ctrl{};
  io::read_at(sys, fd.get(), &ctrl, sizeof ctrl, fmt::kControlOffset, path);
  const bool writer = sys.lock_held(fd.get()) == 1;
  check_control(c, ctrl, sb, writer, sys);

  // Log and journal, read again when a checkpoint recycled them under us (or
  // a live writer's append looked like damage).
  side_state st;
  check_report side;
  for (int attempt = 0; attempt < 3; ++attempt) {
    side = check_report{};
    st = side_state{};
    context sc{side};
    sc.progress = c.progress;
    sc.progress_done = c.progress_done;
    sc.progress_total = c.progress_total;
    const std::uint64_t data_size = size_of(sys, fd.get(), path);
    check_log(sc, sys, path, sb, st);
    check_journal(sc, sys, path, sb, data_size, st);
    const bool moved = !same_superblocks(sys, fd.get(), path, sb);
    if (attempt == 2 && moved)
      c.note("log", 0, "checkpoints kept recycling the log and journal while they were read: findings may be stale");
    if (!moved && !(writer && st.mid_corruption)) break;
  }
  for (auto& p : side.problems) c.problem(p.where, p.offset, std::move(p.what));
  c.report.problems_not_listed += side.problems_not_listed;
  for (auto& n : side.notes) c.note(n.where, n.offset, std::move(n.what));
  c.advance(side.bytes_checked);
  rep.log_records = st.records;
  rep.journal_entries = st.journal_entries;

  // Data in place when nothing can change it and nothing needs replay.
  const bool quiet = !writer && st.records == 0 && st.journal_entries == 0 && (ctrl.seqlock & 1) == 0;
  if (quiet) {
    const check_report before_data = rep;
    const mark m0 = take_mark(sys, fd.get(), path);
    check_in_place(rep, sys, fd.get(), path, sb, actual, c);
    if (take_mark(sys, fd.get(), path) == m0) {
      if (rep.lsn > sb.checkpoint_lsn) {
        rep.recovery_pending = true;
        c.note("meta page", fmt::kMetaOffset + offsetof(fmt::meta_page, commits),
               "records " + num(rep.lsn) + " commits, past the checkpoint LSN " + num(sb.checkpoint_lsn) +
                   " of the superblock in use, with nothing to replay: the newest superblock was lost after its "
                   "checkpoint; the next writable open adopts the data and rewrites it");
      }
      return rep;
    }
    rep = before_data;  // a writer started meanwhile: check a snapshot instead
    c.note("snapshot", 0, "a writer started during the check: the data was checked again on a snapshot");
  }

  // A consistent recovered copy, private and unnamed.
  std::string dir = opts.temp_dir;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = t && *t ? t : "/tmp";
  }
  snapshot::copy cp;
  cp.sys = &sys;
  cp.fd = temp_file(sys, dir);
  snapshot::result res;
  const std::uint64_t done0 = c.progress_done;
  try {
    res = snapshot::take(sys, path, fd.get(), cp,
                         progress ? progress_fn([&](std::uint64_t d, std::uint64_t t) {
                           progress(done0 + d, std::max(c.progress_total, done0 + t));
                         })
                                  : progress_fn{},
                         8);
  } catch (const error& e) {
    if (e.code() == errc::io || e.code() == errc::full || e.code() == errc::permission) throw;
    c.problem("snapshot", 0, std::string("the data could not be checked: ") + e.what());
    return rep;
  }
  rep.snapshot = true;
  rep.recovery_pending = res.recovery_pending;
  if (res.writer)
    c.note("snapshot", 0,
           "a writer is committing: the data was checked on a snapshot as of LSN " + num(res.lsn) + " (" +
               num(res.attempts) + (res.attempts == 1 ? " copy)" : " copies)"));
  if (res.recovery_pending)
    c.note("snapshot", 0,
           "recovery pending: the next writable open replays " + num(res.replayed) + " log records (through LSN " +
               num(res.lsn) + ")" + (res.restored_pages ? ", after restoring " + num(res.restored_pages) + " journaled pages" : std::string()) +
               "; the data was checked as that recovery will leave it, on a private copy");
  if (res.adopted_meta)
    c.note("meta page", fmt::kMetaOffset + offsetof(fmt::meta_page, commits),
           "records " + num(res.lsn) + " commits, past the checkpoint LSN " + num(res.sb.checkpoint_lsn) +
               " with nothing to replay: the newest superblock was lost after its checkpoint");
  context dc{rep};
  dc.img = {cp.base, cp.size};
  dc.path = path;
  dc.progress = progress;
  dc.progress_done = c.progress_done + res.copied;
  dc.progress_total = std::max(c.progress_total, dc.progress_done);
  rep.bytes_checked += res.copied;
  checker::check_data(dc, res.sb);
  if (rep.lsn != 0 && rep.lsn != res.lsn)
    c.problem("meta page", fmt::kMetaOffset + offsetof(fmt::meta_page, commits),
              "records " + num(rep.lsn) + " commits, but the log ends at LSN " + num(res.lsn));
  rep.lsn = res.lsn;
  return rep;
}

}  // namespace keel
