// keel::store: one memory-mapped store file shared by the processes of a host.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "keel/error.h"
#include "keel/options.h"
#include "keel/txn.h"

namespace keel {

struct store_info {
  std::string path;
  std::uint64_t file_size = 0;       // bytes reserved on disk
  std::uint64_t max_size = 0;        // growth limit
  std::uint64_t arena_used = 0;      // allocator cursor
  std::uint64_t live_bytes = 0;      // handed out and not freed
  std::uint64_t free_bytes = 0;      // on free lists, reusable
  std::uint64_t last_lsn = 0;        // last committed transaction
  std::uint64_t checkpoint_lsn = 0;  // last transaction in the last checkpoint
  std::uint64_t superblock_sequence = 0;
  std::uint64_t log_bytes = 0;       // redo log since the checkpoint
  std::uint64_t journal_bytes = 0;   // before-image journal since the checkpoint
  bool clean_close = false;          // newest superblock was written by a clean close
  durability mode = durability::batch;
  // What the last open had to do: 0 nothing, 1 replayed a dead writer's log
  // tail, 2 full recovery after a restart (journal restored, log replayed).
  int recovery = 0;
  std::uint64_t recovered_records = 0;
  std::uint64_t restored_pages = 0;
  // Bytes of the mapping the writer's background thread has made present
  // and writable ahead of its writes since the open (write_txn::prefault,
  // and write_txn::prefault_ahead within its budget); 0 for a read-only
  // handle or where the OS cannot do it.
  std::uint64_t prefaulted_bytes = 0;
  // Bytes of fresh space past the allocation cursor the same thread has
  // only read into memory (clean) ahead of a large allocation since the
  // open (write_txn::prefault_ahead past its budget); 0 where it cannot.
  std::uint64_t read_ahead_bytes = 0;
  // Bytes of committed space the same thread has asked the kernel to read
  // ahead since the open (write_txn::read_ahead: a hash map's tables, at
  // this handle's first write to it); 0 where it cannot.
  std::uint64_t committed_read_ahead_bytes = 0;
};

// Thread-safety: read() and info() may be called from any thread at once;
// write transactions of one handle are serialized by the handle. Processes:
// any number of read-only handles and one writable handle per store at a
// time (the writer lock is an open-file-description lock, released by the
// kernel if the writer dies).
//
// Crash: kill -9 at any instruction loses no committed transaction; the next
// writable open replays what the dead writer logged. Power loss loses at
// most what the durability mode allows (docs/DURABILITY.md).
class store {
 public:
  // Opens or creates `path` (plus `path`-log and `path`-journal). A writable
  // open takes the writer lock (waiting up to lock_timeout, then
  // errc::busy) and recovers the store if its last writer died. Throws
  // keel::error naming the file and what is wrong.
  static std::unique_ptr<store> open(const std::string& path, const options& opts = {});

  ~store();  // close(), with errors swallowed: call close() to see them
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // Checkpoints (writer) and releases the file. Idempotent.
  // REQUIRES: no write_txn of this handle is open (a write_txn must not
  // outlive its store).
  void close();

  // Starts the handle's write transaction (waits for another thread's).
  // REQUIRES: a writable handle, else errc::read_only.
  write_txn begin_write();

  // Runs f(write_txn&) and commits; an exception from f aborts and
  // propagates. Returns what f returns.
  template <class F>
  decltype(auto) write(F&& f) {
    auto tx = begin_write();
    if constexpr (std::is_void_v<std::invoke_result_t<F, write_txn&>>) {
      std::forward<F>(f)(tx);
      tx.commit();
    } else {
      decltype(auto) r = std::forward<F>(f)(tx);
      tx.commit();
      return r;
    }
  }

  // Runs f(const read_view&) on committed data without taking a lock, and
  // returns its result. f sees all of every commit it sees, or none: when a
  // commit overlaps f, f runs again (so f must be free of side effects
  // beyond its result). Throws errc::busy after options.read_timeout of
  // overlaps, or if a dead writer left a commit half applied.
  template <class F>
  auto read(F&& f) const {
    read_attempt a;
    for (;;) {
      read_begin(a);
      try {
        if constexpr (std::is_void_v<std::invoke_result_t<F, const read_view&>>) {
          f(a.view);
          if (read_end(a)) return;
        } else {
          auto r = f(a.view);
          if (read_end(a)) return r;
        }
      } catch (const error&) {
        if (read_end(a)) throw;  // not a race: real corruption or misuse
      }
    }
  }

  // Optimistic reads, for the inline fast paths of structures (how
  // hash_map::get skips building a read_view). optimistic_begin returns a
  // token, odd when the store is closed or a commit is applying: use read()
  // then. Everything read between an even token and a true
  // optimistic_validate(token) is one committed state; after a false
  // validate, discard it. No bounds are offered: follow only offsets checked
  // earlier against a read_view of this store (the arena never shrinks).
  std::uint64_t optimistic_begin() const noexcept {
    return std::atomic_ref<std::uint64_t>(*seq_).load(std::memory_order_acquire);
  }
  bool optimistic_validate(std::uint64_t token) const noexcept {
    std::atomic_thread_fence(std::memory_order_acquire);
    return std::atomic_ref<std::uint64_t>(*seq_).load(std::memory_order_relaxed) == token;
  }
  // Start of the mapping: offset 0 of the file.
  const std::byte* mapping() const noexcept { return base_; }

  // msync the data, write the other superblock, recycle log and journal.
  void checkpoint();
  store_info info() const;
  const std::string& path() const noexcept;
  bool writable() const noexcept;

  struct impl;

 private:
  struct read_attempt {
    read_view view;  // also holds the seqlock value it began at
    std::uint64_t deadline_ns = 0;
    std::uint64_t spin_until_ns = 0;  // spin (no sleep) until then while a commit applies
    unsigned spins = 0;
  };
  explicit store(std::unique_ptr<impl> p);
  // The common case inline: an even seqlock and a cursor inside the known
  // file size. Everything else (a commit applying, a dead writer, growth,
  // a closed store) goes to read_begin_slow.
  void read_begin(read_attempt& a) const {
    if (closed_) [[unlikely]] {  // the mapping is gone: never touch it
      read_begin_slow(a);
      return;
    }
    const std::uint64_t v = std::atomic_ref<std::uint64_t>(*seq_).load(std::memory_order_acquire);
    const std::uint64_t cursor = std::atomic_ref<std::uint64_t>(*cursor_).load(std::memory_order_relaxed);
    if ((v & 1) != 0 || cursor > known_size_->load(std::memory_order_relaxed)) [[unlikely]] {
      read_begin_slow(a);
      return;
    }
    a.view.base_ = base_;
    a.view.lo_ = kArena;
    a.view.hi_ = cursor;
    a.view.path_ = path_;
    a.view.seq_ = seq_;
    a.view.version_ = v;
  }
  bool read_end(read_attempt& a) const noexcept {
    if (a.view.unchanged()) [[likely]] return true;
    note_retry(a);
    return false;
  }
  void read_begin_slow(read_attempt& a) const;
  void note_retry(read_attempt& a) const noexcept;

  static constexpr std::uint64_t kArena = 4 * 4096;  // = fmt::kArenaOffset (checked in store.cc)
  std::unique_ptr<impl> p_;
  // Inline read path: pointers into the mapping and the impl, set at open.
  const std::byte* base_ = nullptr;
  std::uint64_t* seq_ = nullptr;
  std::uint64_t* cursor_ = nullptr;
  const std::atomic<std::uint64_t>* known_size_ = nullptr;
  const std::string* path_ = nullptr;
  bool closed_ = false;  // close() was called: reads throw (REQUIRES: not concurrent with close)
  std::uint64_t closed_seq_ = 1;  // seq_ points here once closed: optimistic_begin's token is odd
};

}  // namespace keel
