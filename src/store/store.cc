// Opening, creating, checkpointing and closing a store; the reader path.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "file/superblock.h"
#include "os/io.h"
#include "store/store_impl.h"
#include "txn/side_file.h"

namespace keel {

using fmt::kPage;

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// ---------------------------------------------------------------- seqlock

void store::impl::seq_enter() noexcept {
  auto q = seq();
  q.store(q.load(std::memory_order_relaxed) | 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void store::impl::seq_exit() noexcept {
  auto q = seq();
  q.store(q.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void store::impl::apply(std::span<const redo::range> ranges) noexcept {
  // Scattered ranges (a control byte here, a slot there) each miss the
  // cache and the TLB: start the stores' lines a few ranges ahead.
  constexpr std::size_t kAhead = 8;
  for (std::size_t i = 0; i < ranges.size() && i < kAhead; ++i) __builtin_prefetch(base + ranges[i].off, 1);
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (i + kAhead < ranges.size()) __builtin_prefetch(base + ranges[i + kAhead].off, 1);
    redo::replay(base, ranges[i]);
  }
}

// ---------------------------------------------------------------- state

void store::impl::poison(const std::string& why) {
  {
    std::lock_guard<std::mutex> g(sync_mu);
    if (poison_why.empty()) poison_why = why;
  }
  poisoned.store(true);
}

void store::impl::check_usable() {
  if (closed) throw error(errc::invalid_argument, path, "store is closed");
  if (!writable) throw error(errc::read_only, path, "store was opened read-only");
  if (poisoned.load()) {
    std::lock_guard<std::mutex> g(sync_mu);
    throw error(errc::io, path, "an earlier I/O failure poisoned this handle; reopen to recover (" + poison_why + ")");
  }
}

void store::impl::grow(std::uint64_t need, bool exact) {
  if (need <= file_size) return;
  if (need > sb.max_size)
    throw error(errc::full, path, "store is full: max_size is " + std::to_string(sb.max_size) + " bytes");
  const std::uint64_t step = exact ? 0 : std::clamp<std::uint64_t>(file_size / 2, 1_MiB, 1_GiB);
  std::uint64_t target = std::min(sb.max_size, fmt::align_up(std::max(need, file_size + step), kPage));
  int r = sys->fallocate(fd, file_size, target - file_size);
  if (r < 0 && io::classify(-r) == errc::full && target > fmt::align_up(need, kPage)) {
    target = fmt::align_up(need, kPage);
    r = sys->fallocate(fd, file_size, target - file_size);
  }
  if (r < 0) {
    if (io::classify(-r) == errc::full)  // nothing changed: the store stays usable
      throw error(errc::full, path, "disk full: cannot reserve " + std::to_string(target) + " bytes", -r);
    poison("fallocate failed");  // the file may be half extended: trust nothing more
    io::fail(path, "fallocate", r);
  }
  // No fsync: the new size becomes durable with the next checkpoint (its
  // msync and the superblock's fdatasync). A power cut before then can
  // leave the file at its old size; recovery extends it again before it
  // replays a record that writes past the end (DURABILITY.md, "Growing the
  // file"). An fsync here wrote back every dirty page of the store, so a
  // fill paid a partial checkpoint at every growth step.
  file_size = target;
  known_size.store(target);
}

void store::impl::reserve_log(std::uint64_t need) {
  if (need <= log_cap) return;
  constexpr std::uint64_t kLogReserve = 4_MiB;
  const std::uint64_t target = fmt::align_up(need + kLogReserve, kPage);
  if (const int r = sys->fallocate(log_fd, log_cap, target - log_cap); r < 0) {
    // No room for the reserve: the record is appended instead (a slower
    // sync, the same durability); a real I/O error is reported.
    if (io::classify(-r) == errc::full || r == -EOPNOTSUPP) return;
    io::fail(log_path, "reserving log space", r);
  }
  log_cap = target;
}

// ---------------------------------------------------------------- checkpoint

void store::impl::checkpoint_locked(bool clean_close) {
  check_usable();
  const std::uint64_t cursor = meta()->cursor;
  // 1. Data first: a header must never reach disk before what it describes.
  if (int r = sys->msync(base, fmt::align_up(cursor, kPage)); r < 0) {
    poison("msync failed");
    io::fail(path, "msync of the data during checkpoint", r);
  }
  // 2. The size the superblock is about to record: growth since the last
  //    checkpoint was not synced (grow()).
  if (file_size > sb.file_size) {
    if (int r = sys->fdatasync(fd); r < 0) {
      poison("fdatasync of the grown data file failed");
      io::fail(path, "fdatasync of the grown data file during checkpoint", r);
    }
  }
  fmt::superblock n = sb;
  n.slot = 1 - sb.slot;
  n.sequence = sb.sequence + 1;
  n.checkpoint_lsn = last_lsn;
  n.file_size = file_size;
  n.cursor = cursor;
  n.catalog_head = meta()->catalog_head;
  n.checkpoint_ns = now_ns();
  n.mode = static_cast<std::uint32_t>(opt.mode);
  n.flags = clean_close ? fmt::kFlagCleanClose : 0;
  try {
    superblock::write(*sys, fd, path, n);
    sb = n;
    {
      std::lock_guard<std::mutex> g(sync_mu);  // the flusher syncs the log under it
      side::recycle(*sys, log_fd, log_path);
      log_cap = sizeof(fmt::file_header);
      log_written.store(sizeof(fmt::file_header));
      log_synced.store(sizeof(fmt::file_header));
    }
    side::recycle(*sys, jrn_fd, jrn_path);
  } catch (const error& e) {
    poison(e.what());
    throw;
  }
  log_end = jrn_end = sizeof(fmt::file_header);
  marks.clear();
  ckpt_cursor = cursor;
  last_ckpt = std::chrono::steady_clock::now();
  auto* c = ctrl();
  c->checkpoint_lsn = last_lsn;
  c->applied_log_pos = log_end;
  c->journal_end = jrn_end;
}

void store::impl::start_flusher() {
  if (opt.mode != durability::batch || flusher.joinable()) return;
  flusher = std::thread([this] {
    std::unique_lock<std::mutex> lk(sync_mu);
    while (!stop_flusher) {
      sync_cv.wait_for(lk, opt.batch_window, [this] { return stop_flusher; });
      const std::uint64_t w = log_written.load(std::memory_order_acquire);
      if (w <= log_synced.load() || poisoned.load()) continue;
      if (int r = sys->fdatasync(log_fd); r < 0) {
        if (poison_why.empty()) poison_why = log_path + ": fdatasync of the log failed: " + std::strerror(-r);
        poisoned.store(true);
      } else {
        log_synced.store(w);
      }
    }
  });
}

void store::impl::stop_flusher_thread() noexcept {
  if (!flusher.joinable()) return;
  {
    std::lock_guard<std::mutex> g(sync_mu);
    stop_flusher = true;
  }
  sync_cv.notify_all();
  flusher.join();
}

// ---------------------------------------------------------------- open

namespace {

std::uint64_t random_id() {
  std::random_device rd;
  std::uint64_t v = 0;
  while (v == 0) v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return v;
}

void validate(const std::string& path, const options& o) {
  auto bad = [&](const std::string& what) { throw error(errc::invalid_argument, path, what); };
  if (path.empty()) bad("empty path");
  if (o.max_size < fmt::kArenaOffset + kPage || o.max_size > fmt::kMaxMaxSize)
    bad("max_size must be between " + std::to_string(fmt::kArenaOffset + kPage) + " and " +
        std::to_string(fmt::kMaxMaxSize) + " bytes");
  if (o.initial_size > o.max_size) bad("initial_size exceeds max_size");
  if (o.mode != durability::sync && o.mode != durability::batch && o.mode != durability::checkpoint)
    bad("unknown durability mode");
  if (o.mode == durability::batch && o.batch_window.count() <= 0) bad("batch_window must be positive");
  if (o.checkpoint_bytes == 0) bad("checkpoint_bytes must be positive");
  if (o.lock_timeout.count() < 0 || o.read_timeout.count() < 0) bad("timeouts must not be negative");
}

}  // namespace

void store::impl::create_new() {
  const std::string tmp = path + ".creating-" + std::to_string(::getpid()) + "-" + std::to_string(random_id() % 1000000);
  int tfd = sys->open(tmp, O_RDWR | O_CREAT | O_EXCL, opt.file_mode);
  if (tfd < 0) io::fail(tmp, "cannot create", tfd);
  io::fd_guard guard(*sys, tfd);
  bool renamed = false;
  try {
    io::check(sys->try_lock(tfd), tmp, "lock");
    const std::uint64_t size = fmt::align_up(std::max(opt.initial_size, fmt::kArenaOffset + kPage), kPage);
    if (int r = sys->fallocate(tfd, 0, size); r < 0) io::fail(tmp, "cannot reserve " + std::to_string(size) + " bytes", r);
    const std::uint64_t id = random_id();
    alignas(8) std::byte page[kPage] = {};
    auto* m = reinterpret_cast<fmt::meta_page*>(page);
    std::memcpy(m->magic, fmt::kMetaMagic, 8);
    m->cursor = fmt::kArenaOffset;
    io::write_at(*sys, tfd, page, kPage, fmt::kMetaOffset, tmp);
    std::memset(page, 0, kPage);
    auto* c = reinterpret_cast<fmt::control_page*>(page);
    std::memcpy(c->magic, fmt::kControlMagic, 8);
    const auto boot = sys->boot_id();
    std::memcpy(c->boot_id, boot.data(), 16);
    c->file_id = id;
    c->applied_log_pos = c->journal_end = sizeof(fmt::file_header);
    io::write_at(*sys, tfd, page, kPage, fmt::kControlOffset, tmp);
    io::check(sys->fdatasync(tfd), tmp, "fdatasync");
    fmt::superblock s{};
    std::memcpy(s.magic, fmt::kSuperMagic, 8);
    s.version = fmt::kVersion;
    s.byte_order = fmt::kByteOrderMark;
    s.page_size = kPage;
    s.file_id = id;
    s.file_size = size;
    s.max_size = fmt::align_up(opt.max_size, kPage);
    s.arena_offset = fmt::kArenaOffset;
    s.meta_offset = fmt::kMetaOffset;
    s.control_offset = fmt::kControlOffset;
    s.cursor = fmt::kArenaOffset;
    s.created_ns = s.checkpoint_ns = now_ns();
    s.mode = static_cast<std::uint32_t>(opt.mode);
    for (std::uint32_t slot = 0; slot < 2; ++slot) {
      s.slot = slot;
      s.sequence = slot + 1;
      superblock::write(*sys, tfd, tmp, s);
    }
    io::check(sys->fsync(tfd), tmp, "fsync");
    if (int r = sys->rename(tmp, path); r < 0) {
      if (r == -EEXIST) {  // another process created it first: open theirs
        sys->unlink(tmp);
        fd = -1;
        return;
      }
      io::fail(path, "cannot rename the new store into place", r);
    }
    renamed = true;
    io::check(sys->sync_dir(path), path, "fsync of the directory");
    for (auto* side_path : {&log_path, &jrn_path}) {
      int sfd = sys->open(*side_path, O_RDWR | O_CREAT | O_TRUNC, opt.file_mode);
      if (sfd < 0) io::fail(*side_path, "cannot create", sfd);
      io::fd_guard g(*sys, sfd);
      side::create(*sys, sfd, *side_path, side_path == &log_path ? fmt::kLogMagic : fmt::kJournalMagic, id);
    }
    io::check(sys->sync_dir(path), path, "fsync of the directory");
  } catch (...) {
    if (!renamed) sys->unlink(tmp);
    throw;
  }
  fd = guard.release();
}

void store::impl::open_files(bool create_ok) {
  const int flags = writable ? O_RDWR : O_RDONLY;
  for (int attempt = 0; fd < 0; ++attempt) {
    fd = sys->open(path, flags, 0);
    if (fd == -ENOENT && create_ok && writable && attempt < 3) {
      fd = -1;
      create_new();
      continue;
    }
    if (fd < 0) {
      const int e = fd;
      fd = -1;
      io::fail(path, writable ? "cannot open for reading and writing" : "cannot open for reading", e);
    }
    if (opt.error_if_exists && attempt == 0) throw error(errc::invalid_argument, path, "store already exists");
    if (writable) {
      const auto deadline = std::chrono::steady_clock::now() + opt.lock_timeout;
      for (;;) {
        const int r = sys->try_lock(fd);
        if (r == 0) break;
        if (r != -EAGAIN) io::fail(path, "cannot take the writer lock", r);
        if (std::chrono::steady_clock::now() >= deadline)
          throw error(errc::busy, path,
                      "another process holds the writer lock (waited " + std::to_string(opt.lock_timeout.count()) +
                          " ms)");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
}

void store::impl::map() {
  const std::int64_t actual = sys->file_size(fd);
  if (actual < 0) io::fail(path, "fstat", static_cast<int>(actual));
  sb = superblock::choose(*sys, fd, path, static_cast<std::uint64_t>(actual));
  file_size = std::min<std::uint64_t>(static_cast<std::uint64_t>(actual) & ~(kPage - 1), sb.max_size);
  known_size.store(file_size);
  int err = 0;
  void* p = sys->mmap(fd, sb.max_size, writable, &err);
  if (!p) io::fail(path, "cannot map " + std::to_string(sb.max_size) + " bytes (max_size) of address space", err);
  base = static_cast<std::byte*>(p);
  map_len = sb.max_size;
  // Hints; either page size works. Without huge pages, a writable handle
  // asks for no read-ahead, so that what its faults bring in (its writes,
  // its resizes' fresh space, what it reads) sits in 4 KiB page-cache
  // folios, and a checkpoint writes back 4 KiB for a changed line rather
  // than a whole large folio (docs/DURABILITY.md, "Page-cache folios").
  // Read-only handles keep the kernel's read-ahead for their scans.
  if (opt.huge_pages)
    (void)sys->advise_huge_pages(p, map_len);
  else if (writable)
    (void)sys->advise_random(p, map_len);
  if (writable) faults = std::make_unique<prefaulter>(*sys);
}

std::uint64_t store::impl::observe_growth() const noexcept {
  const std::int64_t sz = sys->file_size(fd);
  std::uint64_t k = known_size.load();
  if (sz > 0) {
    const auto n = std::min<std::uint64_t>(static_cast<std::uint64_t>(sz), map_len);
    while (k < n && !known_size.compare_exchange_weak(k, n)) {
    }
  }
  return known_size.load();
}

bool store::impl::check_meta() {
  const fmt::meta_page* m = meta();
  if (std::memcmp(m->magic, fmt::kMetaMagic, 8) != 0) throw error(errc::corrupt, path, "meta page has no magic");
  const std::uint64_t cur = m->cursor;
  // A reader's map() took the size before this read of a live writer's
  // cursor, which may since have moved past it into space grown meanwhile.
  const std::uint64_t size = !writable && cur > file_size ? observe_growth() : file_size;
  if (cur < fmt::kArenaOffset || cur > size)
    throw error(errc::corrupt, path, "meta page cursor " + std::to_string(cur) + " is outside the file");
  if (m->catalog_head != 0 && (m->catalog_head < fmt::kArenaOffset || m->catalog_head >= cur))
    throw error(errc::corrupt, path, "meta page catalog head is outside the arena");
  if (writable && m->live_bytes + m->free_bytes != cur - fmt::kArenaOffset)
    throw error(errc::corrupt, path,
                "allocator accounting: live " + std::to_string(m->live_bytes) + " + free " +
                    std::to_string(m->free_bytes) + " != arena used " + std::to_string(cur - fmt::kArenaOffset));
  if (!writable || m->commits == last_lsn) return false;
  // Recovery has replayed the whole log, so a meta page ahead of it can only
  // be a checkpoint whose superblock is gone; one behind it is damage.
  if (m->commits < last_lsn || last_lsn != sb.checkpoint_lsn)
    throw error(errc::corrupt, path,
                "meta page records " + std::to_string(m->commits) + " commits but the log ends at LSN " +
                    std::to_string(last_lsn));
  last_lsn = m->commits;  // the control page takes it from init_control
  return true;
}

std::unique_ptr<store> store::open(const std::string& path, const options& opts) {
  validate(path, opts);
  auto p = std::make_unique<impl>();
  p->path = path;
  p->log_path = path + "-log";
  p->jrn_path = path + "-journal";
  p->opt = opts;
  p->sys = opts.os ? opts.os : &posix_os();
  p->writable = !opts.read_only;
  p->open_files(opts.create_if_missing);
  p->map();
  p->recover();
  const bool superblock_behind = p->check_meta();
  if (p->writable) {
    if (!p->defer_control) p->init_control();
    p->init_log_state();
    if (superblock_behind) {
      std::lock_guard<std::mutex> g(p->write_mu);
      p->ensure_control();
      p->recovery = 2;
      p->checkpoint_locked(false);  // both slots describe the data again
    }
    p->last_ckpt = std::chrono::steady_clock::now();  // the flusher starts with the first commit
  }
  return std::unique_ptr<store>(new store(std::move(p)));
}

store::store(std::unique_ptr<impl> p) : p_(std::move(p)) {
  static_assert(kArena == fmt::kArenaOffset);
  base_ = p_->base;
  seq_ = &p_->ctrl()->seqlock;
  cursor_ = &p_->meta()->cursor;
  known_size_ = &p_->known_size;
  path_ = &p_->path;
}

store::~store() {
  try {
    close();
  } catch (...) {
  }
}

void store::close() {
  if (!p_ || p_->closed) return;
  impl& s = *p_;
  std::exception_ptr failure;
  if (s.writable && !s.poisoned.load()) {
    std::lock_guard<std::mutex> g(s.write_mu);
    try {
      s.ensure_control();
      s.checkpoint_locked(true);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  s.closed = true;
  closed_ = true;
  seq_ = &closed_seq_;  // before the mapping goes: an optimistic read now gives up
  s.release_resources();
  if (failure) std::rethrow_exception(failure);
}

void store::impl::release_resources() noexcept {
  stop_flusher_thread();
  if (faults) faults->stop();  // its thread may be inside the mapping
  if (base) sys->munmap(base, map_len);
  base = nullptr;
  for (int* f : {&log_fd, &jrn_fd, &fd})
    if (*f >= 0) {
      sys->close(*f);
      *f = -1;
    }
}

write_txn store::begin_write() {
  impl& s = *p_;
  if (s.closed) throw error(errc::invalid_argument, s.path, "store is closed");
  if (!s.writable) throw error(errc::read_only, s.path, "store was opened read-only");
  std::unique_lock<std::mutex> lk(s.write_mu);
  s.check_usable();
  s.ensure_control();
  return write_txn(std::make_unique<write_txn::impl>(s, std::move(lk)));
}

void store::checkpoint() {
  impl& s = *p_;
  std::lock_guard<std::mutex> g(s.write_mu);
  s.check_usable();
  s.ensure_control();
  s.checkpoint_locked(false);
}

const std::string& store::path() const noexcept { return p_->path; }
bool store::writable() const noexcept { return p_->writable; }

// ---------------------------------------------------------------- readers


void store::read_begin_slow(read_attempt& a) const {
  const impl& s = *p_;
  if (closed_ || s.closed) throw error(errc::invalid_argument, s.path, "store is closed");
  auto q = s.seq();
  for (;;) {
    const std::uint64_t v = q.load(std::memory_order_acquire);
    if ((v & 1) == 0) {
      a.view.version_ = v;
      break;
    }
    // A commit is being applied (microseconds), or its writer died mid-apply.
    if (a.deadline_ns == 0) a.deadline_ns = now_ns() + static_cast<std::uint64_t>(s.opt.read_timeout.count()) * 1000000;
    // Spin first: an apply takes microseconds, and a sleep, however short
    // the request, lasts the timer slack (50 us by default). Sleep only once
    // the commit has been applying for longer than 100 us (a preempted or
    // dead writer).
    if (a.spin_until_ns == 0) a.spin_until_ns = now_ns() + 100'000;
    if (++a.spins % 64 != 0 || now_ns() < a.spin_until_ns) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      continue;
    }
    if (now_ns() > a.deadline_ns)
      throw error(errc::busy, s.path,
                  "a commit has been applying for longer than read_timeout; if its writer died, open the store "
                  "for writing to recover");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::uint64_t cursor = std::atomic_ref<std::uint64_t>(s.meta()->cursor).load(std::memory_order_relaxed);
  if (cursor > s.known_size.load(std::memory_order_relaxed))  // the writer grew the file
    cursor = std::min(cursor, s.observe_growth());  // never touch a page past its end (SIGBUS)
  a.view.base_ = s.base;
  a.view.lo_ = fmt::kArenaOffset;
  a.view.hi_ = std::max<std::uint64_t>(cursor, fmt::kArenaOffset);
  a.view.path_ = &s.path;
  a.view.seq_ = &s.ctrl()->seqlock;
}

void store::note_retry(read_attempt& a) const noexcept {
  if (a.deadline_ns == 0)
    a.deadline_ns = now_ns() + static_cast<std::uint64_t>(p_->opt.read_timeout.count()) * 1000000;
}

store_info store::info() const {
  const impl& s = *p_;
  if (s.closed) throw error(errc::invalid_argument, s.path, "store is closed");  // the mapping is gone
  store_info i;
  i.path = s.path;
  i.max_size = s.sb.max_size;
  i.file_size = s.known_size.load();
  const fmt::meta_page* m = s.meta();
  i.arena_used = m->cursor;
  i.live_bytes = m->live_bytes;
  i.free_bytes = m->free_bytes;
  i.last_lsn = m->commits;
  i.checkpoint_lsn = s.sb.checkpoint_lsn;
  i.superblock_sequence = s.sb.sequence;
  i.clean_close = (s.sb.flags & fmt::kFlagCleanClose) != 0;
  i.mode = s.writable ? s.opt.mode : static_cast<durability>(s.sb.mode);
  const std::int64_t lb = s.sys->file_size(s.log_fd), jb = s.sys->file_size(s.jrn_fd);
  // The log file is longer than its records (a zero-filled reserve): count
  // up to the last record written (the writer's own figure, or what the
  // control page says the writer applied).
  std::uint64_t log_end = s.writable ? s.log_written.load() : s.ctrl()->applied_log_pos;
  if (lb >= 0) log_end = std::min<std::uint64_t>(log_end, static_cast<std::uint64_t>(lb));
  i.log_bytes = log_end > 64 ? log_end - 64 : 0;
  i.journal_bytes = jb > 64 ? static_cast<std::uint64_t>(jb) - 64 : 0;
  i.recovery = s.recovery;
  i.recovered_records = s.recovered_records;
  i.restored_pages = s.restored_pages;
  i.prefaulted_bytes = s.faults ? s.faults->done_bytes(true) : 0;
  i.read_ahead_bytes = s.faults ? s.faults->done_bytes(false) : 0;
  i.committed_read_ahead_bytes = s.faults ? s.faults->read_ahead_bytes() : 0;
  return i;
}

}  // namespace keel
