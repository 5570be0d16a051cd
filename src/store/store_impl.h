// State of an open store and of its write transaction. Internal.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "file/format.h"
#include "keel/store.h"
#include "store/prefaulter.h"
#include "txn/byte_buffer.h"
#include "txn/line_marks.h"
#include "txn/page_index.h"
#include "txn/redo_log.h"

namespace keel {

// A private copy of a page the open transaction changed, filled lazily in
// 64-byte lines: `valid` lines hold the committed bytes (or the
// transaction's), `dirty` lines were written and are logged at commit. The
// header and the 4 KiB copy live apart (page_slab), so the headers a
// transaction uses are a dense, warm array.
struct txn_page {
  std::uint64_t off = 0;
  std::uint64_t valid = 0;
  std::uint64_t dirty = 0;
  std::byte* data = nullptr;  // kPage bytes, 64-byte aligned
};

// Headers and copies for the open transaction, handed out in order and all
// taken back at its end; the memory is kept for the next transaction.
// Headers come in chunks of 1024 with one 4 MiB block of copies each (huge
// pages where the kernel gives them), so addresses stay stable.
class page_slab {
 public:
  txn_page* take() {
    const std::size_t c = used_ / kPerChunk;
    if (c == chunks_.size()) add_chunk();
    txn_page* p = &chunks_[c].heads[used_ % kPerChunk];
    ++used_;
    return p;
  }
  void reset() noexcept { used_ = 0; }
  ~page_slab();

 private:
  static constexpr std::size_t kPerChunk = 1024;
  struct chunk {
    std::unique_ptr<txn_page[]> heads;
    std::byte* data = nullptr;
  };
  void add_chunk();
  std::vector<chunk> chunks_;
  std::size_t used_ = 0;
};

// Lines of a page covered by bytes [lo, hi) of it (hi > lo).
inline std::uint64_t line_mask(std::uint64_t lo, std::uint64_t hi) noexcept {
  const std::uint64_t first = lo / fmt::kLine, n = (hi - 1) / fmt::kLine - first + 1;
  return (n >= 64 ? ~0ull : ((1ull << n) - 1)) << first;
}

// A write transaction's lists of what it wrote outside private page copies
// (write_txn::impl says what each holds). The store keeps them between
// transactions so that their capacity is reused: a transaction of 10,000
// hash inserts fills about 400 KiB of captured bytes and 240 KiB of spans,
// which grown from nothing each time would be reallocated, copied and
// faulted in again in every transaction.
struct txn_extent {
  std::uint64_t lo, hi;
};
struct copy_span {
  std::uint64_t dst;
  std::uint64_t from;  // copy_unpublished(): the source offset; write_unpublished(): the bytes' place in captured
  std::uint32_t len;
  bool copy;
};
struct txn_lists {
  std::vector<txn_extent> fresh, fresh_zero, direct;
  std::vector<copy_span> copies;
  byte_buffer captured;
  std::vector<txn_extent> extent_buf;  // commit's scratch for sorting extents
  // Empties every list; one far larger than what it held (after a resize's
  // transaction) gives its memory back, as byte_buffer::clear does.
  void clear() noexcept;
};

struct store::impl {
  std::string path, log_path, jrn_path;
  options opt;
  os* sys = nullptr;
  int fd = -1, log_fd = -1, jrn_fd = -1;
  std::byte* base = nullptr;
  std::uint64_t map_len = 0;
  bool writable = false;
  bool closed = false;
  fmt::superblock sb{};                       // newest superblock
  // File bytes known to exist; readers raise it (a cache) when they see the
  // writer's cursor pass it.
  mutable std::atomic<std::uint64_t> known_size{0};
  // Asks the kernel for the file's size again and raises known_size to it
  // (at most the mapping); returns known_size. A writer grows the file
  // before it moves the cursor past the old end, and never shrinks it, so a
  // cursor read before this call lies within what it returns.
  std::uint64_t observe_growth() const noexcept;

  // ---- writer state (guarded by write_mu) ----
  std::mutex write_mu;
  std::uint64_t file_size = 0;
  std::uint64_t last_lsn = 0;
  std::uint64_t last_commit_ns = 0;
  std::uint64_t log_end = 0;  // where the next record goes
  // Bytes the log file spans: past log_end it is reserved and zero, so a
  // commit overwrites allocated space and its fdatasync need not also make
  // a new file size durable (docs/FORMAT.md, "The redo log").
  std::uint64_t log_cap = 0;
  std::uint64_t jrn_end = 0;  // where the next journal entry goes
  std::uint64_t ckpt_cursor = 0;  // pages starting below it existed at the checkpoint
  // Per page that existed at the checkpoint: lines journaled in this epoch,
  // and lines changed under a log sync instead (txn/line_marks.h).
  line_marks marks;
  std::chrono::steady_clock::time_point last_ckpt;
  std::vector<std::byte> rec_buf, jrn_buf;
  std::vector<txn_page*> dirty_buf;      // reused by every commit
  std::vector<std::pair<txn_page*, std::uint64_t>> hot_buf, first_buf;
  std::vector<redo::range> range_buf;
  page_slab page_pool;
  // The open transaction's page index and dirty list, kept between
  // transactions so their capacity is reused.
  page_index txn_index;
  std::vector<txn_page*> txn_dirty;
  txn_lists txn_lists_kept;
  // Keys write_txn::first_touch has answered true for since the open.
  std::vector<std::uint64_t> touched;

  // ---- durability state (guarded by sync_mu) ----
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  bool stop_flusher = false;
  std::string poison_why;
  std::atomic<bool> poisoned{false};
  std::atomic<std::uint64_t> log_written{0}, log_synced{0};
  std::thread flusher;

  // Populates space the writer is about to fill (write_txn::prefault);
  // writable handles only. Stopped before the mapping goes.
  std::unique_ptr<prefaulter> faults;

  // ---- what the open did ----
  int recovery = 0;
  bool defer_control = false;  // clean open: the control page is left as found (ensure_control)
  bool control_ready = false;  // init_control ran on this handle
  std::uint64_t recovered_records = 0, restored_pages = 0;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl() { release_resources(); }
  // Stops the flusher and the prefaulter, unmaps, closes the files (releasing the writer lock).
  // Also what a failed open leaves behind. Idempotent.
  void release_resources() noexcept;

  fmt::control_page* ctrl() const noexcept { return reinterpret_cast<fmt::control_page*>(base + fmt::kControlOffset); }
  fmt::meta_page* meta() const noexcept { return reinterpret_cast<fmt::meta_page*>(base + fmt::kMetaOffset); }
  std::atomic_ref<std::uint64_t> seq() const noexcept { return std::atomic_ref<std::uint64_t>(ctrl()->seqlock); }

  // Readers see an odd seqlock while the mapping changes.
  void seq_enter() noexcept;
  void seq_exit() noexcept;
  void apply(std::span<const redo::range> ranges) noexcept;

  // After a failed sync no later commit may succeed on this handle.
  void poison(const std::string& why);
  void check_usable();  // throws when poisoned, closed or read-only
  // Extends the file (fallocate; no fsync, DURABILITY.md "Growing the
  // file") so [0, need) exists: by at least half its size (up to 1 GiB)
  // at a time, or to exactly need when `exact`. errc::full past max_size or
  // when the disk is full.
  void grow(std::uint64_t need, bool exact = false);
  // fdatasync of the log: every record written so far becomes durable
  // (log_synced advances to log_end). Throws errc::io; the caller poisons.
  void sync_log();
  // Makes the log file span at least `need` bytes (zero-filled reserve).
  void reserve_log(std::uint64_t need);
  void checkpoint_locked(bool clean_close);
  void start_flusher();
  void stop_flusher_thread() noexcept;

  // open steps (store.cc / recovery.cc)
  void open_files(bool create_ok);
  void create_new();
  void map();
  void recover();
  // Validates the meta page against the recovered log. Returns true when the
  // data is a complete checkpoint newer than the superblock in use (the
  // newest superblock was destroyed after its log was recycled): the meta
  // page's commit count is then adopted and the caller must checkpoint.
  bool check_meta();
  bool control_valid() const;
  bool quiescent();  // nothing in log or journal past the checkpoint
  // The cheap case of it, from the sizes alone: log and journal a header
  // each (what every checkpoint leaves) and an even seqlock (no commit or
  // recovery died half-applied). Then the data is the checkpoint's,
  // whatever the boot.
  bool nothing_past_checkpoint();
  // Takes the control page over for this writer (file id, applied LSN and
  // log position, checkpoint LSN, pid, then the boot id). A writable open
  // does it at once unless recovery found nothing past the checkpoint
  // (defer_control); then ensure_control does it once, called before a
  // write transaction begins and before a checkpoint that is not part of
  // recovery (store::checkpoint, close, open's adoption of a newer meta
  // page). Recovery's own checkpoint runs before the page is taken: the
  // page must not be valid for this boot before the recovered state is
  // whole in the mapping.
  void init_control();
  void ensure_control();
  // The log's write, sync and reserved positions from log_end (open).
  void init_log_state();
};

struct write_txn::impl {
  store::impl& s;
  std::unique_lock<std::mutex> lock;
  std::uint64_t committed_cursor = 0;  // cursor when the transaction began
  std::uint64_t cursor = 0;            // including this transaction's allocations
  page_index& pages;                  // = s.txn_index
  std::vector<txn_page*>& dirty_list;  // = s.txn_dirty: pages with a dirty line, in the order they got one
  // The few pages touched most recently (one map operation alternates
  // between its root, control and slot pages), checked before the index.
  txn_page* recent[4] = {};
  unsigned recent_next = 0;
  std::uint64_t last_touched = 0;  // first_touch's last key: most writes ask about the same one
  txn_page* cached(std::uint64_t page) const noexcept {
    for (txn_page* p : recent)
      if (p && p->off == page) return p;
    return nullptr;
  }
  void remember(txn_page* p) noexcept { recent[recent_next++ & 3] = p; }
  // Byte ranges written (or zeroed) in fresh space (at or past
  // committed_cursor), which goes straight to the mapping: nothing committed
  // refers to it yet.
  using extent = txn_extent;
  std::vector<extent>& fresh = s.txn_lists_kept.fresh;
  std::vector<extent>& fresh_zero = s.txn_lists_kept.fresh_zero;
  // Byte ranges of committed space written straight to the mapping by
  // mut_unpublished(): logged at commit, with the bytes the mapping then
  // holds, after the spans below and ahead of the private pages' ranges.
  std::vector<extent>& direct = s.txn_lists_kept.direct;
  // Unpublished spans whose bytes are known when written, in the order
  // they were made: copies from a pinned block (copy_unpublished(), copy
  // set), and bytes written by write_unpublished() (or a copy that could
  // not be logged as one), kept in `captured`: the log takes them from
  // there, not from slots scattered over the mapping (each a cache and TLB
  // miss at commit).
  using copy_span = keel::copy_span;
  std::vector<copy_span>& copies = s.txn_lists_kept.copies;
  byte_buffer& captured = s.txn_lists_kept.captured;
  std::uint64_t pin_lo = 0, pin_hi = 0;  // the block pin_for_copies() pinned last in this transaction
  std::uint64_t clean_src_page = UINT64_MAX;  // a pinned page seen without a private copy
  std::vector<extent>& extent_buf = s.txn_lists_kept.extent_buf;
  std::uint32_t unpublished_copies = 0;  // unpublished writes that took a private copy
  bool active = true;

  impl(store::impl& st, std::unique_lock<std::mutex> lk);

  // Unchecked against the arena start (internal users reach the meta page).
  const std::byte* ro(std::uint64_t off, std::size_t len);
  std::byte* rw(std::uint64_t off, std::size_t len);
  std::byte* unpublished(std::uint64_t off, std::size_t len);
  void copy_unpublished(std::uint64_t dst, std::uint64_t src, std::size_t len);
  void write_unpublished(std::uint64_t off, const void* a, std::size_t na, const void* b, std::size_t nb);
  // Unpublished writes a transaction lets take a private copy before it
  // syncs the log to write the rest in place.
  static constexpr std::uint32_t kSyncAfterCopies = 64;
  void sync_log_now();
  void zero(std::uint64_t off, std::uint64_t len);
  std::uint64_t get64(std::uint64_t off) {
    std::uint64_t v;
    std::memcpy(&v, ro(off, 8), 8);
    return v;
  }
  void set64(std::uint64_t off, std::uint64_t v) { std::memcpy(rw(off, 8), &v, 8); }

  std::uint64_t commit();
  void release() noexcept;

 private:
  // Throws errc::invalid_argument unless [off, off+len) lies in the arena
  // allocated so far and, in committed space, inside one page.
  void check_span(std::uint64_t off, std::size_t len) const {
    const bool bad = off < fmt::kMetaOffset || off > cursor || len > cursor - off ||
                     (off < committed_cursor && (len > committed_cursor - off || (off % fmt::kPage) + len > fmt::kPage));
    if (bad) [[unlikely]]
      span_error(off, len);
  }
  [[noreturn, gnu::cold, gnu::noinline]] void span_error(std::uint64_t off, std::size_t len) const;
  txn_page* page_for_write(std::uint64_t page_off);
  void fill(txn_page* p, std::uint64_t mask) noexcept;  // copy missing lines from the mapping
  bool direct_ok(std::uint64_t off, std::size_t len);  // whether unpublished() may write the mapping
  std::byte* unpublished_at(std::uint64_t off, std::size_t len, bool in_place);  // unpublished(), decided
  // Writes a then b in place at off and keeps their bytes for the log.
  void capture(std::uint64_t off, const void* a, std::size_t na, const void* b, std::size_t nb);
};

// The impl of a transaction that is still open; errc::invalid_argument after
// commit or abort.
write_txn::impl& live_txn(const std::unique_ptr<write_txn::impl>& p);

inline std::uint64_t meta_field(std::size_t field_offset) { return fmt::kMetaOffset + field_offset; }
#define KEEL_META(field) ::keel::meta_field(offsetof(::keel::fmt::meta_page, field))

std::uint64_t now_ns() noexcept;

}  // namespace keel
