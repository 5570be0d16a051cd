// The write transaction: private page copies, then commit = journal
// before-images, append the redo record, sync as the mode says, apply.
#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>

#include "alloc/allocator.h"
#include "os/io.h"
#include "store/store_impl.h"
#include "txn/journal.h"
#include "txn/sort_extents.h"
#include "util/checksum.h"

namespace keel {

using fmt::kPage;

page_slab::~page_slab() {
  for (chunk& c : chunks_) ::munmap(c.data, kPerChunk * kPage);
}

// Each chunk's copies are memory of its own, 2 MiB aligned and advised
// before anything touches it, so its first faults take huge pages: a
// transaction touches one line in each of thousands of copies, and on 4 KiB
// pages each would cost a TLB miss (twice: the change, then the commit's
// diff). Heap memory from aligned_alloc may already be mapped in 4 KiB pages
// (glibc serves large requests from the heap once big blocks have been
// freed), which the advice no longer changes.
void page_slab::add_chunk() {
  constexpr std::size_t bytes = kPerChunk * kPage, huge = std::size_t{2} << 20;
  chunk c;
  c.heads = std::make_unique<txn_page[]>(kPerChunk);
  void* m = ::mmap(nullptr, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto at = reinterpret_cast<std::uintptr_t>(m), start = (at + huge - 1) & ~(huge - 1);
  if (start > at) ::munmap(m, start - at);
  if (at + huge > start) ::munmap(reinterpret_cast<void*>(start + bytes), at + huge - start);
  c.data = reinterpret_cast<std::byte*>(start);
  ::madvise(c.data, bytes, MADV_HUGEPAGE);
  for (std::size_t i = 0; i < kPerChunk; ++i) c.heads[i].data = c.data + i * kPage;
  try {
    chunks_.push_back(std::move(c));
  } catch (...) {
    ::munmap(c.data, bytes);
    throw;
  }
}

write_txn::impl::impl(store::impl& st, std::unique_lock<std::mutex> lk)
    : s(st), lock(std::move(lk)), pages(st.txn_index), dirty_list(st.txn_dirty) {
  committed_cursor = cursor = s.meta()->cursor;
}

void write_txn::impl::span_error(std::uint64_t off, std::size_t len) const {
  const std::string span = "span [" + std::to_string(off) + ", +" + std::to_string(len) + ")";
  if (off < fmt::kMetaOffset || off > cursor || len > cursor - off)
    throw error(errc::invalid_argument, s.path, span + " is outside the allocated arena");
  throw error(errc::invalid_argument, s.path, span + " crosses a page boundary; use write_txn::read/write");
}

void write_txn::impl::fill(txn_page* p, std::uint64_t mask) noexcept {
  std::uint64_t missing = mask & ~p->valid;
  while (missing != 0) {
    const int first = std::countr_zero(missing);
    const int n = std::countr_one(missing >> first);
    std::memcpy(p->data + first * fmt::kLine, s.base + p->off + first * fmt::kLine, n * fmt::kLine);
    missing &= n >= 64 ? 0 : ~(((1ull << n) - 1) << first);
  }
  p->valid |= mask;
}

const std::byte* write_txn::impl::ro(std::uint64_t off, std::size_t len) {
  check_span(off, len);
  if (off >= committed_cursor) return s.base + off;  // this transaction's own fresh space
  const std::uint64_t page = off & ~(kPage - 1);
  txn_page* p = cached(page);
  if (!p) {
    p = pages.find(page);
    if (!p) return s.base + off;
    remember(p);
  }
  if (len > 0) fill(p, line_mask(off - page, off - page + len));
  return p->data + (off - page);
}

txn_page* write_txn::impl::page_for_write(std::uint64_t page) {
  if (txn_page* p = cached(page)) return p;
  txn_page*& slot = pages[page];
  if (!slot) {
    if (page == clean_src_page) clean_src_page = UINT64_MAX;  // it may change from here on
    txn_page* p = s.page_pool.take();
    p->off = page;
    p->valid = p->dirty = 0;
    slot = p;
  }
  remember(slot);
  return slot;
}

// Records [lo, hi) as written in place. A write usually touches or
// overlaps one of the last few extents (a node's header, slots and cells
// grow in place), so those absorb it and the list stays short; commit sorts
// and merges what remains. `gap`: an extent also absorbs a write at most
// this many bytes away (the bytes between are logged as the mapping holds
// them, which costs less than a range header per write).
static void note_extent(std::vector<write_txn::impl::extent>& v, std::uint64_t lo, std::uint64_t hi,
                        std::uint64_t gap = 0, std::size_t lookback = 8) {
  const std::size_t n = v.size(), look = std::min<std::size_t>(n, lookback);
  for (std::size_t i = n; i-- > n - look;) {
    write_txn::impl::extent& e = v[i];
    if (lo <= e.hi + gap && hi + gap >= e.lo) {
      e.lo = std::min(e.lo, lo);
      e.hi = std::max(e.hi, hi);
      return;
    }
  }
  v.push_back({lo, hi});
}

std::byte* write_txn::impl::rw(std::uint64_t off, std::size_t len) {
  check_span(off, len);
  if (off >= committed_cursor) {  // nothing committed refers to it: write in place, log at commit
    note_extent(fresh, off, off + len);
    return s.base + off;
  }
  const std::uint64_t page = off & ~(kPage - 1);
  txn_page* p = page_for_write(page);
  if (len > 0) {
    const std::uint64_t m = line_mask(off - page, off - page + len);
    fill(p, m);
    if (p->dirty == 0) dirty_list.push_back(p);
    p->dirty |= m;
  }
  return p->data + (off - page);
}

void store::impl::sync_log() {
  io::check(sys->fdatasync(log_fd), log_path, "fdatasync of the log");
  std::uint64_t v = log_synced.load();
  while (v < log_end && !log_synced.compare_exchange_weak(v, log_end)) {
  }
}

// A sync failure poisons the handle, as in commit.
void write_txn::impl::sync_log_now() {
  try {
    s.sync_log();
  } catch (const error& e) {
    s.poison(e.what());
    throw;
  }
}

// Unpublished bytes go straight to the mapping when three things hold
// (docs/DURABILITY.md, "Unpublished writes"): the page has no private copy
// (whose stale lines a commit would otherwise write over them), and a crash
// cannot bring back a committed state in which they were in use: the page
// did not exist at the last checkpoint (recovery rewrites every byte of it
// that a durable commit wrote), or every commit so far is durable (what is
// unused now is unused in what any recovery restores), or each line's
// checkpoint-epoch image is in the journal (recovery restores it first).
bool write_txn::impl::direct_ok(std::uint64_t off, std::size_t len) {
  const std::uint64_t page = off & ~(kPage - 1);
  if (off >= committed_cursor || len == 0 || cached(page) || pages.find(page)) return false;
  bool safe = page >= s.ckpt_cursor || s.log_synced.load(std::memory_order_acquire) >= s.log_end;
  if (!safe && s.opt.mode != durability::sync) {
    const std::uint64_t m = line_mask(off - page, off - page + len);
    safe = (s.marks.at(page).journaled & m) == m;
  }
  if (!safe && ++unpublished_copies > kSyncAfterCopies) {
    // A large transaction after a checkpoint (every page predates it) with
    // unsynced commits: one log sync now makes every commit durable, and
    // its remaining unpublished writes skip the copy, the diff and the
    // journal image a commit would otherwise write for each line.
    sync_log_now();
    safe = true;
  }
  return safe;
}

std::byte* write_txn::impl::unpublished_at(std::uint64_t off, std::size_t len, bool in_place) {
  if (!in_place) return rw(off, len);
  // Unpublished writes at most 16 bytes apart (a range header's size)
  // share a range, as the diff's changed words do: the bytes between are
  // committed ones, logged as the mapping holds them, and a private copy's
  // changes to them come later in the record.
  note_extent(direct, off, off + len, 16, 2);  // merging is only a saving: look at the last two
  return s.base + off;
}

std::byte* write_txn::impl::unpublished(std::uint64_t off, std::size_t len) {
  check_span(off, len);
  return unpublished_at(off, len, direct_ok(off, len));
}

// Copied slots (docs/DURABILITY.md): the source must be pinned, committed,
// and without a private copy (which could hold this transaction's changes to
// it, while replay copies what the store holds before the record).
void write_txn::impl::copy_unpublished(std::uint64_t dst, std::uint64_t src, std::size_t len) {
  check_span(src, len);
  check_span(dst, len);
  const std::uint64_t sp = src & ~(kPage - 1);
  bool by_ref = src >= pin_lo && src < pin_hi && len <= pin_hi - src && src + len <= committed_cursor;
  if (by_ref && sp != clean_src_page) {
    by_ref = !cached(sp) && !pages.find(sp);
    if (by_ref) clean_src_page = sp;
  }
  // Bytes, as mut_unpublished() would write them, unless both ends allow
  // a copy. direct_ok() is asked once: it counts the fallbacks that lead
  // to a log sync.
  const bool in_place = direct_ok(dst, len);
  if (by_ref && in_place) {
    std::memcpy(s.base + dst, s.base + src, len);
    copies.push_back({dst, src, static_cast<std::uint32_t>(len), true});
    return;
  }
  const std::byte* from = ro(src, len);
  if (in_place)
    capture(dst, from, len, nullptr, 0);
  else
    std::memcpy(rw(dst, len), from, len);  // distinct pages: a table never copies onto itself
}

void write_txn::impl::capture(std::uint64_t off, const void* a, std::size_t na, const void* b, std::size_t nb) {
  const std::size_t pos = captured.append(a, na, b, nb);
  try {
    copies.push_back({off, pos, static_cast<std::uint32_t>(na + nb), false});
  } catch (...) {
    captured.truncate(pos);
    throw;
  }
  std::byte* m = s.base + off;
  copy_short(m, a, na);
  copy_short(m + na, b, nb);
}

void write_txn::impl::write_unpublished(std::uint64_t off, const void* a, std::size_t na, const void* b,
                                        std::size_t nb) {
  const std::size_t len = na + nb;
  check_span(off, len);
  if (direct_ok(off, len)) {
    capture(off, a, na, b, nb);
    return;
  }
  std::byte* p = rw(off, len);
  copy_short(p, a, na);
  copy_short(p + na, b, nb);
}

void write_txn::impl::zero(std::uint64_t off, std::uint64_t len) {
  while (len > 0) {
    if (off >= committed_cursor) {
      check_span(off, len);
      std::memset(s.base + off, 0, len);
      note_extent(fresh_zero, off, off + len);
      return;
    }
    const std::uint64_t n = std::min(len, kPage - off % kPage);
    std::memset(rw(off, n), 0, n);
    off += n;
    len -= n;
  }
}

template <class T>
static void clear_modest(std::vector<T>& v) noexcept {
  if (v.capacity() * sizeof(T) > (std::size_t{16} << 20) && v.size() * 8 < v.capacity())
    std::vector<T>().swap(v);
  else
    v.clear();
}

void txn_lists::clear() noexcept {
  clear_modest(fresh);
  clear_modest(fresh_zero);
  clear_modest(direct);
  clear_modest(copies);
  clear_modest(extent_buf);
  captured.clear();
}

void write_txn::impl::release() noexcept {
  s.page_pool.reset();
  pages.clear();
  dirty_list.clear();
  s.txn_lists_kept.clear();
  pin_lo = pin_hi = 0;
  clean_src_page = UINT64_MAX;
  unpublished_copies = 0;
  for (auto& p : recent) p = nullptr;
  active = false;
  if (lock.owns_lock()) lock.unlock();
}

// Appends to `out` the byte ranges of [lo, hi) (inside one page; lo 8-aligned)
// where the copy `a` differs from the mapping `b`, in 8-byte words; runs of
// changed words separated by at most kGapWords equal ones are one range (a
// range header costs more than the equal words). Returns the page's lines
// the ranges touch.
static inline std::uint64_t word(const std::byte* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

static std::uint64_t diff_run(std::vector<redo::range>& out, std::uint64_t page, std::uint64_t lo, std::uint64_t hi,
                              const std::byte* a, const std::byte* b) {
  constexpr std::uint64_t kGapWords = 2;
  std::uint64_t lines = 0;
  std::uint64_t start = 0, last = 0;  // the open range: [start, last)
  bool open = false;
  auto changed_at = [&](std::uint64_t o, std::uint64_t n) {
    if (open && o - last > kGapWords * 8) {
      out.push_back({start, static_cast<std::uint32_t>(last - start), a + (start - lo)});
      lines |= line_mask(start - page, last - page);
      open = false;
    }
    if (!open) {
      open = true;
      start = o;
    }
    last = o + n;
  };
  std::uint64_t o = lo;
  for (; hi - o >= fmt::kLine; o += fmt::kLine) {
    const std::byte *x = a + (o - lo), *y = b + (o - lo);
    std::uint64_t d[8], any = 0;
    for (int w = 0; w < 8; ++w) any |= d[w] = word(x + 8 * w) ^ word(y + 8 * w);
    if (any == 0) continue;  // a whole equal line
    for (int w = 0; w < 8; ++w)
      if (d[w] != 0) changed_at(o + 8 * static_cast<std::uint64_t>(w), 8);
  }
  for (; o < hi; o += 8) {  // a run cut short by the committed cursor
    const std::uint64_t n = std::min<std::uint64_t>(8, hi - o);
    if (std::memcmp(a + (o - lo), b + (o - lo), n) != 0) changed_at(o, n);
  }
  if (open) {
    out.push_back({start, static_cast<std::uint32_t>(last - start), a + (start - lo)});
    lines |= line_mask(start - page, last - page);
  }
  return lines;
}

std::uint64_t write_txn::impl::commit() {
  s.check_usable();
  // Nothing to log: no private page changed, nothing allocated, nothing
  // written or copied straight into committed space.
  if (dirty_list.empty() && cursor == committed_cursor && direct.empty() && copies.empty()) {
    release();
    return 0;
  }
  const std::uint64_t lsn = s.last_lsn + 1;
  set64(KEEL_META(commits), lsn);  // the meta page is always among the dirty pages
  const std::vector<txn_page*>& dirty = dirty_list;

  try {
    // 1. The redo record: zeroed fresh space, the bytes of committed pages
    // that differ from the mapping, then what was written in fresh space
    // (read from the mapping at commit, so a range always carries its final
    // bytes). Lines written with the bytes they had are not logged.
    std::vector<redo::range>& ranges = s.range_buf;
    ranges.clear();
    constexpr std::uint64_t kChunk = 1u << 20;
    auto add_extents = [&](std::vector<extent>& v, bool zero) {
      sort_extents(v, extent_buf);
      for (std::size_t i = 0; i < v.size();) {
        extent e = v[i++];
        while (i < v.size() && v[i].lo <= e.hi) e.hi = std::max(e.hi, v[i++].hi);
        for (std::uint64_t o = e.lo; o < e.hi; o += kChunk)
          ranges.push_back({o, static_cast<std::uint32_t>(std::min(kChunk, e.hi - o)), zero ? nullptr : s.base + o});
      }
    };
    add_extents(fresh_zero, true);
    // Copied slots and captured unpublished bytes, in the order they were
    // made (a slot written twice ends with the later write): copies read
    // their source as the store holds it before this record (pinned,
    // unchanged since), so they come ahead of every range read from the
    // mapping. A later range covering the same bytes carries what the
    // mapping holds at commit, the final bytes.
    for (const write_txn::impl::copy_span& c : copies)
      ranges.push_back({c.dst, c.len, c.copy ? nullptr : captured.data() + c.from, c.copy ? c.from : 0});
    // Unpublished bytes, from the mapping, before the private pages' ranges:
    // a page copied after such a write holds the same bytes, and whatever
    // the copy changed later must win on replay.
    add_extents(direct, false);
    const std::size_t first_page_range = ranges.size();
    // Each page costs cache misses (its copy's header and lines, the
    // mapping's lines, its journal marks): start them a few pages ahead.
    const std::size_t ndirty = dirty.size();
    const bool marked = s.opt.mode != durability::sync;
    s.hot_buf.clear();
    s.first_buf.clear();
    std::uint64_t first_bytes = 0;  // journal bytes the first-changed lines would take
    for (std::size_t i = 0; i < ndirty; ++i) {
      if (i + 16 < ndirty) __builtin_prefetch(dirty[i + 16]);
      if (i + 8 < ndirty) {
        const txn_page* q = dirty[i + 8];
        const int f = std::countr_zero(q->dirty), l = 63 - std::countl_zero(q->dirty);
        __builtin_prefetch(q->data + f * fmt::kLine);
        __builtin_prefetch(s.base + q->off + f * fmt::kLine);
        if (l != f) {
          __builtin_prefetch(q->data + l * fmt::kLine);
          __builtin_prefetch(s.base + q->off + l * fmt::kLine);
        }
        if (marked && q->off < s.ckpt_cursor) s.marks.prefetch(q->off);
      }
      txn_page* p = dirty[i];
      std::uint64_t changed = 0;
      for (std::uint64_t m = p->dirty; m != 0;) {
        const int first = std::countr_zero(m);
        const int n = std::countr_one(m >> first);
        m &= n >= 64 ? 0 : ~(((1ull << n) - 1) << first);
        // A line can straddle the committed cursor. Bytes at or past it are
        // written in place (fresh space), never in this copy: stop there, or
        // the copy's stale bytes would overwrite them.
        const std::uint64_t lo = p->off + first * fmt::kLine;
        const std::uint64_t hi = std::min(lo + n * fmt::kLine, committed_cursor);
        changed |= diff_run(ranges, p->off, lo, hi, p->data + first * fmt::kLine, s.base + lo);
      }
      p->dirty = changed;  // from here on: the lines that change in the mapping
      if (marked && changed != 0 && p->off < s.ckpt_cursor) {  // the page existed at the checkpoint
        const line_marks::entry& e = s.marks.at(p->off);
        const std::uint64_t need = changed & ~e.journaled;
        if (const std::uint64_t h = need & e.seen) s.hot_buf.emplace_back(p, h);
        if (const std::uint64_t f = need & ~e.seen) {
          s.first_buf.emplace_back(p, f);
          first_bytes += sizeof(fmt::journal_entry) + static_cast<std::uint64_t>(std::popcount(f)) * fmt::kLine;
        }
      }
    }
    const std::size_t page_ranges_end = ranges.size();
    add_extents(fresh, false);
    const std::uint64_t ts = now_ns();
    redo::encode(s.rec_buf, lsn, ts, ranges);

    // 2. Before the mapping changes, every changed line of a page that
    // existed at the checkpoint needs an image holding only durable commits
    // (docs/DURABILITY.md): one in the journal, or this record made durable.
    // Lines an earlier commit of the epoch already covered by a log sync
    // are journaled (a line changed twice is likely changed again); lines
    // changed for the first time go to the journal unless syncing the log
    // costs less.
    bool sync_log = s.opt.mode == durability::sync;
    if (marked) {
      std::vector<std::pair<txn_page*, std::uint64_t>>& hot = s.hot_buf;
      std::vector<std::pair<txn_page*, std::uint64_t>>& fresh_lines = s.first_buf;
      const std::uint64_t unsynced =
          s.log_end + s.rec_buf.size() - std::min(s.log_end, s.log_synced.load(std::memory_order_acquire));
      if (!fresh_lines.empty() && unsynced <= 2 * first_bytes + 64 * 1024) {
        sync_log = true;
      } else {
        hot.insert(hot.end(), fresh_lines.begin(), fresh_lines.end());
        fresh_lines.clear();
      }
      if (!hot.empty()) {
        s.jrn_buf.clear();
        for (auto [p, m] : hot) journal::append_entry(s.jrn_buf, p->off, s.sb.checkpoint_lsn, m, s.base + p->off);
        io::write_at(*s.sys, s.jrn_fd, s.jrn_buf.data(), s.jrn_buf.size(), s.jrn_end, s.jrn_path);
        io::check(s.sys->fdatasync(s.jrn_fd), s.jrn_path, "fdatasync of the journal");
        s.jrn_end += s.jrn_buf.size();
        s.ctrl()->journal_end = s.jrn_end;
        for (auto [p, m] : hot) s.marks.at(p->off).journaled |= m;
      }
    }
    // 3. The log: append the record; sync it as the mode (or step 2) says.
    s.reserve_log(s.log_end + s.rec_buf.size());
    io::write_at(*s.sys, s.log_fd, s.rec_buf.data(), s.rec_buf.size(), s.log_end, s.log_path);
    s.log_end += s.rec_buf.size();
    s.log_written.store(s.log_end, std::memory_order_release);
    if (s.opt.mode == durability::batch && !s.flusher.joinable()) s.start_flusher();  // not at open: opens stay cheap
    if (sync_log) {
      s.sync_log();
      for (auto [p, m] : s.first_buf) s.marks.at(p->off).seen |= m;
    }
    // 4. Apply inside the seqlock; fresh space is already in place. Each
    // page about to change is first made writable by storing back one of
    // its bytes (no reader can see a change), so the write fault a clean
    // page takes after a checkpoint or write-back (page_mkwrite:
    // microseconds) happens before readers are held off, not inside the
    // window. This thread is the store's only writer, so a plain load and
    // store suffice: unlike a locked add they pipeline, and the misses of
    // thousands of scattered pages overlap instead of following each other.
    const std::span<const redo::range> page_ranges(ranges.data() + first_page_range,
                                                   page_ranges_end - first_page_range);
    std::uint64_t touched = UINT64_MAX;
    for (const redo::range& r : page_ranges) {
      const std::uint64_t page = r.off & ~(kPage - 1);
      if (page == touched) continue;
      touched = page;
      auto* b = reinterpret_cast<unsigned char*>(s.base + r.off);
      __atomic_store_n(b, __atomic_load_n(b, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    }
    s.seq_enter();
    s.apply(page_ranges);
    s.ctrl()->applied_lsn = lsn;
    s.ctrl()->applied_log_pos = s.log_end;
    s.seq_exit();
    s.last_lsn = lsn;
    s.last_commit_ns = ts;
  } catch (const error& e) {
    s.poison(e.what());
    release();
    throw;
  }
  release();
  // 5. Checkpoint triggers. A failure here poisons the handle (the next
  // commit reports it); this transaction is committed already.
  const bool due = s.log_end - sizeof(fmt::file_header) >= s.opt.checkpoint_bytes ||
                   s.jrn_end - sizeof(fmt::file_header) >= s.opt.checkpoint_bytes ||
                   std::chrono::steady_clock::now() - s.last_ckpt >= s.opt.checkpoint_interval;
  if (due) {
    std::lock_guard<std::mutex> g(s.write_mu);
    try {
      s.checkpoint_locked(false);
    } catch (const error& e) {
      s.poison(e.what());
    }
  }
  return lsn;
}

// ---- public write_txn ----

write_txn::write_txn(std::unique_ptr<impl> p) : p_(std::move(p)) {}
write_txn::write_txn(write_txn&&) noexcept = default;
write_txn::~write_txn() { abort(); }

[[noreturn, gnu::cold, gnu::noinline]] static void dead_txn() {
  throw error(errc::invalid_argument, "", "write transaction already committed or aborted");
}

write_txn::impl& live_txn(const std::unique_ptr<write_txn::impl>& p) {
  if (!p || !p->active) [[unlikely]]
    dead_txn();
  return *p;
}

static void check_arena(write_txn::impl& t, std::uint64_t off) {
  if (off < fmt::kArenaOffset)
    throw error(errc::invalid_argument, t.s.path, "offset " + std::to_string(off) + " is below the arena");
}

const std::byte* write_txn::bytes(std::uint64_t off, std::size_t len) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  return t.ro(off, len);
}

std::byte* write_txn::mut_bytes(std::uint64_t off, std::size_t len) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  return t.rw(off, len);
}

void write_txn::read(std::uint64_t off, void* dst, std::size_t len) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  auto* d = static_cast<std::byte*>(dst);
  while (len > 0) {
    const std::size_t n = off >= t.committed_cursor ? len : std::min<std::size_t>(len, kPage - off % kPage);
    std::memcpy(d, t.ro(off, n), n);
    d += n;
    off += n;
    len -= n;
  }
}

void write_txn::write(std::uint64_t off, const void* src, std::size_t len) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  auto* s = static_cast<const std::byte*>(src);
  while (len > 0) {
    const std::size_t n = off >= t.committed_cursor ? len : std::min<std::size_t>(len, kPage - off % kPage);
    std::memcpy(t.rw(off, n), s, n);
    s += n;
    off += n;
    len -= n;
  }
}

void write_txn::zero(std::uint64_t off, std::uint64_t len) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  t.zero(off, len);
}

void write_txn::prefetch(std::uint64_t off) noexcept {
  // The mapping's line: a line the transaction has not touched yet (the
  // usual case for a scattered write) is filled from there. Looking up the
  // private copy would cost the miss this hint is meant to hide.
  if (p_ && p_->active && off >= fmt::kArenaOffset && off < p_->cursor) __builtin_prefetch(p_->s.base + off);
}

void write_txn::prefault(std::uint64_t off, std::uint64_t len) noexcept {
  if (!p_ || !p_->active || !p_->s.faults) return;
  const impl& t = *p_;
  if (off < fmt::kArenaOffset || off >= t.cursor) return;
  // Whole pages (the kernel refuses an unaligned start), inside the file.
  const std::uint64_t lo = off & ~(kPage - 1);
  const std::uint64_t hi = std::min(fmt::align_up(off + std::min(len, t.cursor - off), kPage), t.s.file_size);
  if (hi > lo) t.s.faults->request(t.s.base + lo, hi - lo);
}

void write_txn::read_ahead(std::uint64_t off, std::uint64_t len) noexcept {
  if (!p_ || !p_->active || !p_->s.faults) return;
  const impl& t = *p_;
  const std::uint64_t end = std::min(t.committed_cursor, t.s.file_size);
  if (off < fmt::kArenaOffset || off >= end) return;
  const std::uint64_t lo = off & ~(kPage - 1), hi = std::min(fmt::align_up(off + std::min(len, end - off), kPage), end);
  // More than a quarter of the machine's memory would evict its own first
  // pages (or the rest of the system's) before they are used.
  if (hi - lo <= t.s.sys->physical_memory() / 4) t.s.faults->read_ahead(t.s.base + lo, hi - lo);
}

bool write_txn::first_touch(std::uint64_t key) noexcept {
  if (!p_ || !p_->active || key == p_->last_touched) return false;
  p_->last_touched = key;
  std::vector<std::uint64_t>& seen = p_->s.touched;
  if (std::find(seen.begin(), seen.end(), key) != seen.end()) return false;
  try {
    seen.push_back(key);
  } catch (...) {  // no memory: a hint not given
    return false;
  }
  return true;
}

void write_txn::prefault_ahead(std::span<const std::uint64_t> sizes) noexcept {
  if (!p_ || !p_->active || !p_->s.faults) return;
  impl& t = *p_;
  // Where each block would go, placed as allocate() would at the cursor:
  // [at, at + n) of a class-sized span.
  struct block {
    std::uint64_t at, n;
  };
  constexpr std::size_t kMaxBlocks = 4;
  if (sizes.size() > kMaxBlocks) return;
  block blocks[kMaxBlocks];
  const std::uint64_t max = t.s.sb.max_size;
  std::uint64_t hi = t.cursor;  // where the last of them would end
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::uint64_t n = sizes[i];
    if (n == 0 || n > max) return;
    const std::uint64_t bytes = allocator::class_bytes(allocator::class_of(n));
    hi = allocator::bump_at(hi, bytes);
    if (bytes > max || hi > max - bytes) return;  // they would not fit: the allocation reports it
    blocks[i] = {hi, n};
    hi += bytes;
  }
  hi = fmt::align_up(hi, kPage);
  if (hi <= fmt::align_up(t.cursor, kPage)) return;
  try {
    t.s.grow(hi, true);  // what the allocations would need; the size is durable at the next checkpoint
  } catch (...) {  // a full disk (or an I/O failure, which the next write meets too): populate what there is
  }
  // The bytes each block will hold, not its size class's slack, which
  // nothing writes: writable up to a thirty-second of the machine's memory,
  // in order, then only read in. That many dirty zero pages stay far under
  // the kernel's background write-back threshold (a tenth of memory by
  // default), which would otherwise write them back, and write-protect them
  // again, before the doubling reaches them.
  std::uint64_t budget = t.s.sys->physical_memory() / 32;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::uint64_t lo = blocks[i].at & ~(kPage - 1);
    const std::uint64_t end = std::min(fmt::align_up(blocks[i].at + blocks[i].n, kPage), t.s.file_size);
    if (end <= lo) continue;
    const std::uint64_t w = std::min(budget, end - lo);
    if (w > 0) t.s.faults->request(t.s.base + lo, w, true);
    if (w < end - lo) t.s.faults->request(t.s.base + lo + w, end - lo - w, false);
    budget -= w;
  }
}

const std::byte* write_txn::committed_bytes(std::uint64_t off, std::size_t len) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  if (off >= t.committed_cursor && off <= t.cursor && len <= t.cursor - off) return nullptr;
  if (len > t.committed_cursor - off || off % kPage + len > kPage)
    throw error(errc::invalid_argument, t.s.path,
                "committed_bytes: span [" + std::to_string(off) + ", +" + std::to_string(len) +
                    ") is not inside one page of committed space");
  return t.s.base + off;
}

std::byte* write_txn::mut_unpublished(std::uint64_t off, std::size_t len) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  return t.unpublished(off, len);
}

void write_txn::write_unpublished(std::uint64_t off, const void* a, std::size_t na, const void* b, std::size_t nb) {
  auto& t = live_txn(p_);
  check_arena(t, off);
  t.write_unpublished(off, a, na, b, nb);
}

bool write_txn::pin_for_copies(std::uint64_t off, std::size_t len) {
  auto& t = live_txn(p_);
  if (off == t.pin_lo && len <= t.pin_hi - t.pin_lo && t.pin_hi != 0) return true;
  if (!allocator::pin(t, off, len)) return false;
  t.pin_lo = off;
  t.pin_hi = off + allocator::class_bytes(allocator::class_of(len));
  return true;
}

void write_txn::copy_unpublished(std::uint64_t dst, std::uint64_t src, std::size_t len) {
  auto& t = live_txn(p_);
  check_arena(t, dst);
  check_arena(t, src);
  t.copy_unpublished(dst, src, len);
}

std::uint64_t write_txn::alloc(std::size_t n) { return allocator::allocate(live_txn(p_), n); }
void write_txn::free(std::uint64_t off, std::size_t n) { allocator::release(live_txn(p_), off, n); }

std::uint64_t write_txn::commit() { return live_txn(p_).commit(); }

const std::string& write_txn::path() const { return live_txn(p_).s.path; }
std::uint64_t write_txn::limit() const { return live_txn(p_).cursor; }

void write_txn::abort() noexcept {
  if (p_ && p_->active) p_->release();
}

}  // namespace keel
