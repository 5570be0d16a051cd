// Options for keel::store::open. Every field has a documented default.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>

namespace keel {

class os;

// Size literals: `using namespace keel::literals;` then 64_GiB.
inline namespace literals {
inline constexpr std::uint64_t operator""_KiB(unsigned long long v) { return v << 10; }
inline constexpr std::uint64_t operator""_MiB(unsigned long long v) { return v << 20; }
inline constexpr std::uint64_t operator""_GiB(unsigned long long v) { return v << 30; }
inline constexpr std::uint64_t operator""_TiB(unsigned long long v) { return v << 40; }
}  // namespace literals

// What a crash can lose (see docs/DURABILITY.md). A process crash loses no
// committed transaction in any mode; the modes differ on power loss / OS crash.
enum class durability : std::uint32_t {
  sync = 0,        // commit returns after fdatasync of the log: nothing lost
  batch = 1,       // log synced at least every batch_window: at most that window lost
  checkpoint = 2,  // log never synced on commit: back to the last checkpoint
};

struct options {
  // Create the store when the file does not exist. Default: true.
  bool create_if_missing = true;
  // Fail with errc::invalid_argument when the file already exists. Default: false.
  bool error_if_exists = false;
  // Open without the writer lock; write() then throws errc::read_only.
  // Readers take no lock at all. Default: false.
  bool read_only = false;
  // File size reserved (posix_fallocate) at creation. Default 16 MiB.
  std::uint64_t initial_size = 16_MiB;
  // Address space every process maps; the file can grow up to it, then
  // allocation fails with errc::full and the store stays usable. Fixed at
  // creation (ignored when opening an existing store). Default 1 TiB.
  std::uint64_t max_size = 1_TiB;
  // Durability mode of this handle's commits. Default: batch.
  durability mode = durability::batch;
  // batch mode: the log is fdatasync'ed at least this often. Default 10 ms.
  std::chrono::milliseconds batch_window{10};
  // A checkpoint runs after a commit once the log or journal since the last
  // checkpoint exceeds this many bytes. Default 1 GiB.
  // A checkpoint writes back every page changed since the last one, so with
  // scattered writes it costs about the store's size whatever the trigger:
  // a larger trigger means fewer of them (10M random inserts: 2.8 us per
  // insert at 64 MiB, 2.0 us at 1 GiB) and fewer first-write faults after
  // them. The price: after power loss or an OS crash, open replays up to
  // this much log (measured 2 s for 227 MB from a cold cache); a killed
  // process is not affected (its open replays only unapplied commits). The
  // log and journal files keep their largest size, up to about this much.
  std::uint64_t checkpoint_bytes = 1_GiB;
  // ... or once this much time has passed since the last one. Default 60 s.
  std::chrono::milliseconds checkpoint_interval{60'000};
  // Ask the kernel to back this handle's mapping with 2 MiB page-cache folios
  // mapped by one page-table entry each (madvise MADV_HUGEPAGE; file huge
  // pages: ext4 or XFS on Linux 6.x, elsewhere the hint does nothing). The
  // folio size is chosen when a page enters the page cache, so the handle
  // that first touches the data (usually the writer) decides it.
  // Gain: a random lookup in a store of hundreds of MiB takes no TLB miss per
  // 4 KiB page (measured: a hash get at 10M entries 211 ns instead of 279
  // before get prefetched the key's slot; since then 179 against 176 ns in
  // one pair of runs, within noise; a tree get 830 instead of 1,081 ns).
  // Cost: the dirty unit is the folio, so a checkpoint writes back 2 MiB for
  // every folio with one changed line (measured: msync after 100 scattered
  // 4 KiB writes 52 ms instead of 2 ms), and a page-cache miss reads 2 MiB.
  // Turn it on for read-heavy stores that fit in RAM; leave it off for large
  // stores with scattered writes or stores larger than RAM. Default: false.
  bool huge_pages = false;
  // Permissions of files Keel creates (before umask). Default 0600.
  mode_t file_mode = 0600;
  // How long open waits for the writer lock before errc::busy. Default 0:
  // fail at once.
  std::chrono::milliseconds lock_timeout{0};
  // How long a read may keep retrying while commits race it (or while a dead
  // writer left a commit half applied) before errc::busy. Default 2 s.
  std::chrono::milliseconds read_timeout{2'000};
  // The OS seam; nullptr = the real POSIX calls. Tests inject faults here.
  // Must outlive the store.
  keel::os* os = nullptr;
};

}  // namespace keel
