// Recovery on open. Two cases, told apart by the control page's boot id:
//  - same boot (a writer died, the page cache survived): replay only the log
//    records its mapping had not yet applied;
//  - new boot or unknown control page (power loss, OS crash, copied file):
//    restore the journal's before-images (back to the checkpoint), replay
//    the durable log prefix, drop a torn tail, checkpoint.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "os/io.h"
#include "store/store_impl.h"
#include "txn/journal.h"
#include "txn/side_file.h"

namespace keel {

namespace {

fmt::file_header read_header(os& sys, int fd, const std::string& path) {
  fmt::file_header h{};
  if (!io::read_at(sys, fd, &h, sizeof h, 0, path)) std::memset(&h, 0, sizeof h);
  return h;
}

}  // namespace

bool store::impl::control_valid() const {
  const fmt::control_page* c = ctrl();
  const auto boot = sys->boot_id();
  return std::memcmp(c->magic, fmt::kControlMagic, 8) == 0 && c->file_id == sb.file_id &&
         std::memcmp(c->boot_id, boot.data(), 16) == 0;
}

bool store::impl::nothing_past_checkpoint() {
  constexpr std::int64_t kHeader = sizeof(fmt::file_header);
  const std::int64_t ll = sys->file_size(log_fd), jl = sys->file_size(jrn_fd);
  if (ll < 0) io::fail(log_path, "fstat", static_cast<int>(ll));
  if (jl < 0) io::fail(jrn_path, "fstat", static_cast<int>(jl));
  return ll == kHeader && jl == kHeader && (seq().load() & 1) == 0;
}

bool store::impl::quiescent() {
  constexpr std::uint64_t kHeader = sizeof(fmt::file_header);
  auto lr = redo::scan(*sys, log_fd, log_path, kHeader, std::nullopt, sb.checkpoint_lsn, sb.max_size,
                       [](std::uint64_t, std::span<const redo::range>) {});
  if (lr.applied > 0) return false;
  auto jr = journal::scan(*sys, jrn_fd, jrn_path, sb.checkpoint_lsn, file_size, [](std::uint64_t, std::uint64_t, const std::byte*) {});
  return jr.entries == 0;
}

void store::impl::recover() {
  constexpr std::uint64_t kHeader = sizeof(fmt::file_header);
  const int flags = writable ? O_RDWR : O_RDONLY;
  // A store whose creator died between renaming the data file into place and
  // writing its log and journal has never committed: give it fresh ones.
  const bool pristine = sb.checkpoint_lsn == 0 && sb.sequence <= 2 && meta()->commits == 0;
  for (auto [fdp, p, magic] : {std::tuple{&log_fd, &log_path, &fmt::kLogMagic},
                               std::tuple{&jrn_fd, &jrn_path, &fmt::kJournalMagic}}) {
    *fdp = sys->open(*p, flags, 0);
    if (*fdp == -ENOENT && pristine && writable) *fdp = sys->open(*p, O_RDWR | O_CREAT | O_TRUNC, opt.file_mode);
    if (*fdp < 0) {
      const int e = *fdp;
      *fdp = -1;
      if (e == -ENOENT) throw error(errc::corrupt, *p, "missing: the store's redo log or journal was deleted");
      io::fail(*p, "cannot open", e);
    }
    std::string why = side::header_problem(read_header(*sys, *fdp, *p), *magic, sb.file_id);
    if (!why.empty() && pristine && writable) {
      side::create(*sys, *fdp, *p, *magic, sb.file_id);
      why.clear();
    }
    if (!why.empty()) throw error(errc::corrupt, *p, why);
  }

  const bool clean = nothing_past_checkpoint();
  if (!writable) {
    // Readers cannot repair: they need a store with nothing to recover (told
    // first, from the sizes alone), or a valid control page of this boot.
    if (clean) return;
    if (!control_valid() && !(quiescent() && (seq().load() & 1) == 0))
      throw error(errc::needs_recovery, path,
                  "the store was not closed cleanly before a restart; open it once for writing to recover");
    return;
  }

  const std::uint64_t L = sb.checkpoint_lsn;
  ckpt_cursor = sb.cursor;
  // ---- nothing past the checkpoint: a log and journal of a header each
  // (what every checkpoint leaves) and no half-applied commit. Whatever the
  // boot, the data is the checkpoint's, so nothing is read or written here;
  // the control page is taken over by the first write transaction or
  // checkpoint (ensure_control), which keeps a restart that only reads free
  // of the boot id read and of a write fault on the data file.
  if (clean) {
    last_lsn = L;
    log_end = jrn_end = kHeader;
    defer_control = true;
    return;
  }
  const fmt::control_page* c = ctrl();
  // After the last record of a log written in this boot: the zero reserve
  // (FORMAT.md), not a torn record. A killed writer's pwrite leaves a prefix
  // of its record, header first, so a zero header means nothing of a next
  // record was written.
  auto reserve_follows = [&](std::uint64_t end, std::uint64_t len) {
    return len - end >= sizeof(fmt::record_header) &&
           side::zero_from(*sys, log_fd, log_path, end, end + sizeof(fmt::record_header));
  };
  // Records may write past the file's end: growth is not synced, so after a
  // power cut the file can be back at the size of its last sync (a
  // checkpoint's at least). Extend it first, as the writer did; records are
  // bounded by max_size. A replayed allocator cursor past the end is
  // covered after the replay.
  bool cursor_replayed = false;
  auto replay = [&](std::uint64_t, std::span<const redo::range> rs) {
    std::uint64_t end = 0;
    for (const redo::range& x : rs) {
      end = std::max(end, redo::reach(x));  // a copy's source too
      cursor_replayed |= redo::writes_cursor(x);
    }
    grow(end);
    apply(rs);
  };
  auto cover_cursor = [&] {
    const std::uint64_t cur = meta()->cursor;
    if (cursor_replayed && cur > file_size && cur <= sb.max_size) grow(cur);
  };
  const bool half_applied = (seq().load() & 1) != 0;  // a writer died inside apply
  seq_enter();  // also holds readers off that half-applied commit
  try {
    if (control_valid() && c->applied_lsn >= L) {
      // ---- same boot: the mapping holds every commit the dead writer applied.
      const std::int64_t log_len = sys->file_size(log_fd);
      if (log_len > static_cast<std::int64_t>(kHeader))  // its unsynced tail becomes durable
        io::check(sys->fdatasync(log_fd), log_path, "fdatasync");
      // The control page says how far the dead writer applied: (applied LSN,
      // log position after it). The two words are stored one after the other,
      // so a kill can separate them: trust the pair only if the record ending
      // at that position carries that LSN and the scan from there reaches the
      // end of the log. Otherwise replay everything since the checkpoint
      // (replaying an applied record again rewrites the same bytes).
      redo::scan_result r;
      const std::uint64_t hint_lsn = c->applied_lsn, hint_pos = c->applied_log_pos;
      bool hint_ok = false;
      if (c->checkpoint_lsn == L && hint_pos >= kHeader && static_cast<std::int64_t>(hint_pos) <= log_len) {
        if (hint_pos == kHeader) {
          hint_ok = hint_lsn == L;
        } else if (hint_pos >= kHeader + sizeof(fmt::record_trailer)) {
          fmt::record_trailer t{};
          hint_ok = io::read_at(*sys, log_fd, &t, sizeof t, hint_pos - sizeof t, log_path) &&
                    t.magic == fmt::kCommitMagic && t.lsn == hint_lsn;
        }
      }
      if (hint_ok) {
        r = redo::scan(*sys, log_fd, log_path, hint_pos, hint_lsn, hint_lsn, sb.max_size, replay);
        hint_ok = (r.stop.empty() && static_cast<std::int64_t>(r.end) == log_len) ||
                  reserve_follows(r.end, static_cast<std::uint64_t>(log_len));
      }
      const std::uint64_t skip = hint_ok ? hint_lsn : L;
      if (!hint_ok) r = redo::scan(*sys, log_fd, log_path, kHeader, std::nullopt, L, sb.max_size, replay);
      cover_cursor();
      recovered_records = r.applied;
      recovery = r.applied > 0 || half_applied ? 1 : 0;
      last_lsn = std::max(r.last_lsn, skip);
      last_commit_ns = r.last_commit_ns;
      log_end = r.end;
      if (r.end < static_cast<std::uint64_t>(log_len) && !reserve_follows(r.end, static_cast<std::uint64_t>(log_len))) {
        io::check(sys->ftruncate(log_fd, r.end), log_path, "truncate torn tail");
        io::check(sys->fdatasync(log_fd), log_path, "fdatasync");
      }
      // Journal entries past journal_end were never relied on.
      const std::int64_t jl = sys->file_size(jrn_fd);
      if (c->checkpoint_lsn == L && c->journal_end >= kHeader && static_cast<std::int64_t>(c->journal_end) <= jl)
        jrn_end = c->journal_end;
      else
        jrn_end = journal::scan(*sys, jrn_fd, jrn_path, L, file_size, [](std::uint64_t, std::uint64_t, const std::byte*) {}).end;
      if (static_cast<std::int64_t>(jrn_end) < jl) io::check(sys->ftruncate(jrn_fd, jrn_end), jrn_path, "truncate");
    } else {
      // ---- new boot: back to the checkpoint, then forward through the durable log.
      std::unordered_map<std::uint64_t, std::uint64_t> restored;  // lines restored, per page
      journal::scan(*sys, jrn_fd, jrn_path, L, file_size,
                    [&](std::uint64_t page, std::uint64_t mask, const std::byte* lines) {
                      std::uint64_t& done = restored[page];
                      for (std::uint64_t m = mask; m != 0; m &= m - 1, lines += fmt::kLine) {
                        const std::uint64_t bit = m & (~m + 1);
                        if (done & bit) continue;  // the earliest image of a line wins
                        std::memcpy(base + page + std::countr_zero(m) * fmt::kLine, lines, fmt::kLine);
                        done |= bit;
                      }
                    });
      restored_pages = restored.size();
      auto r = redo::scan(*sys, log_fd, log_path, kHeader, std::nullopt, L, sb.max_size, replay);
      cover_cursor();
      recovered_records = r.applied;
      last_lsn = std::max(r.last_lsn, L);
      last_commit_ns = r.last_commit_ns;
      log_end = r.end;
      jrn_end = kHeader;
      const std::int64_t ll = sys->file_size(log_fd), jl = sys->file_size(jrn_fd);
      if (ll > static_cast<std::int64_t>(kHeader) || jl > static_cast<std::int64_t>(kHeader)) {
        recovery = 2;
        checkpoint_locked(false);  // makes the recovered state the new durable base
      }
    }
  } catch (...) {
    seq_exit();
    throw;
  }
  seq_exit();
}

void store::impl::ensure_control() {
  if (!control_ready) init_control();
}

void store::impl::init_control() {
  fmt::control_page* c = ctrl();
  c->file_id = sb.file_id;
  c->applied_lsn = last_lsn;
  c->applied_log_pos = log_end;
  c->journal_end = jrn_end;
  c->checkpoint_lsn = sb.checkpoint_lsn;
  c->writer_pid = static_cast<std::uint32_t>(::getpid());
  std::memcpy(c->magic, fmt::kControlMagic, 8);
  std::atomic_thread_fence(std::memory_order_release);
  const auto boot = sys->boot_id();
  std::memcpy(c->boot_id, boot.data(), 16);  // last: readers trust the page once it matches
  control_ready = true;
}

void store::impl::init_log_state() {
  log_written.store(log_end);
  log_synced.store(log_end);
  const std::int64_t ll = sys->file_size(log_fd);
  log_cap = std::max<std::uint64_t>(log_end, ll > 0 ? static_cast<std::uint64_t>(ll) : 0);
}

}  // namespace keel
