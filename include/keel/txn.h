// Transactions: write_txn (one writer across all processes) and read_view
// (lock-free, any number of processes).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/types.h"

namespace keel {

class store;
namespace detail {
struct view_access;
}

// A consistent view of committed data, handed to the callback of
// store::read(). Lock-free: the callback may race a commit, so it must copy
// out what it needs and keep no pointer past its return; store::read()
// re-runs it when a commit overlapped it. Every offset is range-checked:
// a value torn by a racing commit throws errc::corrupt, which read() treats
// as a retry, never as a crash. Not thread-safe (one per callback).
class read_view {
 public:
  // Pointer to [off, off+len) inside the allocated arena.
  // Throws errc::corrupt when the span is outside it.
  const std::byte* bytes(std::uint64_t off, std::size_t len) const {
    if (off < lo_ || len > hi_ || off > hi_ - len) [[unlikely]]
      bad_range(off, len);
    return base_ + off;
  }
  template <class T>
  T get(ref<T> r) const {
    T v;
    std::memcpy(&v, bytes(r.off, sizeof(T)), sizeof(T));
    return v;
  }
  std::optional<catalog_entry> find(std::string_view name) const;
  std::vector<catalog_entry> list() const;
  // End of the allocated arena as of this view.
  std::uint64_t limit() const noexcept { return hi_; }
  // True when no commit has begun applying since this view began: what was
  // read through it so far is one committed state. (store::read checks the
  // same at the end and runs f again otherwise; this lets a reader decide
  // early, e.g. before caching something it derived.) Always true for a
  // view over an image nobody writes.
  bool unchanged() const noexcept {
    if (seq_ == nullptr) return true;
    std::atomic_thread_fence(std::memory_order_acquire);
    return std::atomic_ref<std::uint64_t>(*seq_).load(std::memory_order_relaxed) == version_;
  }
  const std::string& path() const noexcept { return *path_; }

 private:
  friend class store;
  friend struct detail::view_access;  // keel::check: views over a file image it mapped
  [[noreturn]] void bad_range(std::uint64_t off, std::size_t len) const;
  const std::byte* base_ = nullptr;
  std::uint64_t lo_ = 0, hi_ = 0;
  const std::string* path_ = nullptr;
  std::uint64_t* seq_ = nullptr;  // the store's seqlock (null: a still image)
  std::uint64_t version_ = 0;     // its even value when the view began
};

// The one write transaction of a writable store handle. Changes are private
// until commit(): other processes, and a crash at any point before commit
// returns, see none of them. Destroying an uncommitted transaction (or an
// exception escaping store::write) aborts it. A transaction is used by one
// thread; the store serializes transactions of its threads.
//
// Memory rules: a span passed to bytes()/mut_bytes() must not cross a page
// boundary (4096 bytes) unless it lies in space allocated by this
// transaction; read()/write() take any span. Pointers stay valid until
// commit or abort.
class write_txn {
 public:
  write_txn(write_txn&&) noexcept;
  write_txn& operator=(write_txn&&) = delete;
  ~write_txn();

  const std::byte* bytes(std::uint64_t off, std::size_t len);
  // Pointer for writing [off, off+len); the range is logged at commit.
  std::byte* mut_bytes(std::uint64_t off, std::size_t len);
  void read(std::uint64_t off, void* dst, std::size_t len);
  void write(std::uint64_t off, const void* src, std::size_t len);
  // Sets [off, off+len) to zero. In space this transaction allocated it is
  // logged as one range without data, so zeroing a large new block is cheap.
  void zero(std::uint64_t off, std::uint64_t len);
  // A hint: starts loading the mapping's 64-byte line holding `off`, from
  // which a later bytes()/mut_bytes() of a line this transaction has not
  // touched yet copies, so that its cache miss overlaps other work. Changes
  // nothing. Any offset is allowed; one outside the arena, or a finished
  // transaction, is ignored.
  void prefetch(std::uint64_t off) noexcept;
  // A hint for a large block this transaction is about to fill: a
  // background thread of the store makes the pages of [off, off+len)
  // present and writable in the mapping, front to back, so that the writes
  // do not each take a page fault (store_info::prefaulted_bytes counts
  // them). Changes no byte, in the mapping or the file. The part outside
  // the space allocated so far is ignored, as is a finished transaction.
  void prefault(std::uint64_t off, std::uint64_t len) noexcept;
  // A hint that allocations of these sizes (at most four), in this order,
  // are coming (a hash table's next doubling): the store extends the file
  // now to hold them past the allocation cursor, where they go when no free
  // block serves them (a full disk skips that), and a background thread
  // makes the bytes each will hold present and writable, so that the
  // writes to them take no page fault. No byte changes. Past a thirty-
  // second of the machine's memory (os::physical_memory) the pages are only
  // read in, clean; the writable ones, dirty zeros, are written back by
  // the kernel as such if the allocations never come (a checkpoint does
  // not wait for them: they lie past the cursor). Ignored for a finished
  // transaction. docs/DURABILITY.md, "Prefaulting fresh space".
  void prefault_ahead(std::span<const std::uint64_t> sizes) noexcept;
  // A hint for committed space this transaction and the next are about to
  // touch, such as a hash map's tables at a writer's first write to it: the
  // store's background thread asks the kernel to start reading
  // [off, off+len) into the page cache (os::advise_willneed;
  // store_info::committed_read_ahead_bytes counts it), since a writable
  // mapping has no read-ahead of its own. Changes no byte. The part outside
  // the committed arena is ignored, as is a range over a quarter of the
  // machine's memory, or a finished transaction.
  void read_ahead(std::uint64_t off, std::uint64_t len) noexcept;
  // True the first time this store handle's transactions ask about `key`
  // (an offset naming a structure, such as its root) since the open, false
  // after that and for a finished transaction: lets a structure do
  // something once per writer, such as read its blocks ahead. Cheap enough
  // to ask on every write.
  bool first_touch(std::uint64_t key) noexcept;

  // The bytes [off, off+len) as the last commit left them, without this
  // transaction's writes (the mapping; the span must lie inside one page).
  // nullptr when the span lies in space this transaction allocated, which
  // nothing committed uses. For a caller deciding whether
  // mut_unpublished() applies.
  const std::byte* committed_bytes(std::uint64_t off, std::size_t len);
  // Like mut_bytes(), for bytes that nothing committed uses: the caller
  // guarantees that no reader and no committed structure reads [off,
  // off+len) as the last commit left it (a hash slot whose committed control
  // byte says empty or deleted), so they only become meaningful through a
  // mut_bytes() write of this transaction that publishes them. The write may
  // then go straight to the mapping, without a private page copy; it is
  // logged at commit like any other, and an abort leaves the bytes changed
  // but still unused. Falls back to mut_bytes() where a crash could
  // otherwise bring back a committed state that used them; a transaction
  // with many such fallbacks syncs the log once instead (docs/DURABILITY.md,
  // "Unpublished writes"), so this call can throw errc::io.
  std::byte* mut_unpublished(std::uint64_t off, std::size_t len);
  // Writes na bytes from a, then nb bytes from b, at off, under the same
  // guarantee and with the same effect as mut_unpublished(off, na + nb)
  // followed by the copies. Cheaper at commit: where the bytes go straight
  // to the mapping, the log takes them as given here instead of reading
  // them back from the mapping (docs/DURABILITY.md, "Unpublished writes").
  void write_unpublished(std::uint64_t off, const void* a, std::size_t na, const void* b = nullptr,
                         std::size_t nb = 0);

  // Pins the block of len bytes at off (allocated whole by alloc()) as a
  // source for copy_unpublished(): when it is freed, its space is not
  // reused until a checkpoint covers the freeing commit. False when the
  // store's limbo (docs/FORMAT.md, meta page) is full: no copies from it.
  bool pin_for_copies(std::uint64_t off, std::size_t len);
  // Copies len bytes from src to dst, where dst is unpublished as for
  // mut_unpublished() and src lies in a block pinned with pin_for_copies()
  // that the caller never writes again (until it frees it) and has not
  // written with mut_unpublished() in this transaction. The log then
  // records the two offsets instead of the bytes (docs/DURABILITY.md,
  // "Copied slots"); where that does not hold it falls back to writing the
  // bytes as mut_unpublished() would. Can throw errc::io like it.
  void copy_unpublished(std::uint64_t dst, std::uint64_t src, std::size_t len);

  template <class T>
  T get(ref<T> r) {
    T v;
    std::memcpy(&v, bytes(r.off, sizeof(T)), sizeof(T));
    return v;
  }
  template <class T>
  void put(ref<T> r, const T& v) {
    std::memcpy(mut_bytes(r.off, sizeof(T)), &v, sizeof(T));
  }
  template <class T>
  T* mut(ref<T> r) {
    return reinterpret_cast<T*>(mut_bytes(r.off, sizeof(T)));
  }

  // A block of at least n bytes (16-aligned; page-aligned above 4096; never
  // crossing a page when n <= 4096). Contents are unspecified. Throws
  // errc::full when max_size or the disk is exhausted; the transaction
  // stays usable.
  std::uint64_t alloc(std::size_t n);
  // Returns a block from alloc(n) (same n) for reuse.
  void free(std::uint64_t off, std::size_t n);
  template <class T>
  ref<T> create(const T& v) {
    ref<T> r{alloc(sizeof(T))};
    put(r, v);
    return r;
  }

  // Root catalog. Names are 1..63 bytes.
  // Finds `name`, or creates it with root 0. Throws errc::type_mismatch when
  // it exists with another kind or other types.
  catalog_entry open_root(std::string_view name, kind k, type_desc key, type_desc value);
  std::optional<catalog_entry> find(std::string_view name);
  std::vector<catalog_entry> list();
  // Sets root and aux of an existing name; errc::invalid_argument if absent.
  void set_root(std::string_view name, std::uint64_t root, std::uint64_t aux = 0);
  // Removes the name (the structure frees its own blocks first). False if absent.
  bool drop(std::string_view name);

  // Makes the changes durable as the store's mode says and visible to every
  // reader atomically. Returns the transaction's LSN (0 when nothing
  // changed). On failure throws and the transaction is aborted; after an
  // I/O failure the store refuses further commits until reopened.
  std::uint64_t commit();
  void abort() noexcept;
  const std::string& path() const;
  // End of the allocated arena, including this transaction's allocations.
  std::uint64_t limit() const;

  struct impl;

 private:
  friend class store;
  explicit write_txn(std::unique_ptr<impl> p);
  std::unique_ptr<impl> p_;
};

}  // namespace keel
