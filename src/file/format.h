// Every constant and fixed layout of the file format (docs/FORMAT.md).
// Structs here are read from untrusted bytes with memcpy and validated by
// the code that reads them; the static_asserts pin every offset.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

static_assert(std::endian::native == std::endian::little,
              "Keel's format is little-endian and read in place: big-endian hosts are not supported");

namespace keel::fmt {

inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint64_t kPage = 4096;
inline constexpr std::uint32_t kByteOrderMark = 0x01020304;

inline constexpr std::uint64_t kControlOffset = 2 * kPage;
inline constexpr std::uint64_t kMetaOffset = 3 * kPage;
inline constexpr std::uint64_t kArenaOffset = 4 * kPage;
// 64 TiB: far below the 128 TiB user address space of x86-64/arm64.
inline constexpr std::uint64_t kMaxMaxSize = 1ull << 46;

// \x89 (high bit) and \r\n \x1a catch 7-bit and text-mode transfers (as PNG's magic does).
inline constexpr unsigned char kSuperMagic[8] = {0x89, 'K', 'E', 'E', 'L', '\r', '\n', 0x1a};
inline constexpr unsigned char kControlMagic[8] = {'K', 'E', 'E', 'L', 'C', 'T', 'R', 'L'};
inline constexpr unsigned char kMetaMagic[8] = {'K', 'E', 'E', 'L', 'M', 'E', 'T', 'A'};
inline constexpr unsigned char kCatalogMagic[8] = {'K', 'E', 'E', 'L', 'C', 'A', 'T', 'P'};
inline constexpr unsigned char kLogMagic[8] = {'K', 'E', 'E', 'L', 'L', 'O', 'G', 0x1a};
inline constexpr unsigned char kJournalMagic[8] = {'K', 'E', 'E', 'L', 'J', 'R', 'N', 0x1a};
inline constexpr std::uint32_t kRecordMagic = 0x4345524B;   // "KREC"
inline constexpr std::uint32_t kCommitMagic = 0x544D434B;   // "KCMT"
inline constexpr std::uint32_t kJournalEntryMagic = 0x47504A4B;  // "KJPG"

inline constexpr std::uint32_t kFlagCleanClose = 1;

struct superblock {
  unsigned char magic[8];
  std::uint32_t version;
  std::uint32_t byte_order;
  std::uint32_t page_size;
  std::uint32_t slot;
  std::uint64_t sequence;
  std::uint64_t checkpoint_lsn;
  std::uint64_t file_id;
  std::uint64_t file_size;
  std::uint64_t max_size;
  std::uint64_t arena_offset;
  std::uint64_t meta_offset;
  std::uint64_t control_offset;
  std::uint64_t cursor;
  std::uint64_t catalog_head;
  std::uint64_t created_ns;
  std::uint64_t checkpoint_ns;
  std::uint32_t mode;
  std::uint32_t flags;
  unsigned char reserved[120];
  std::uint64_t checksum;  // of bytes [0, 248)
};
static_assert(sizeof(superblock) == 256 && offsetof(superblock, checksum) == 248);
static_assert(offsetof(superblock, cursor) == 88 && offsetof(superblock, mode) == 120);

struct control_page {
  unsigned char magic[8];
  std::uint8_t boot_id[16];
  std::uint64_t file_id;
  std::uint64_t applied_lsn;
  std::uint64_t applied_log_pos;
  std::uint64_t journal_end;
  std::uint64_t checkpoint_lsn;
  std::uint32_t writer_pid;
  std::uint32_t reserved0;
  unsigned char pad[56];
  std::uint64_t seqlock;  // own cache line
};
static_assert(offsetof(control_page, writer_pid) == 64 && offsetof(control_page, seqlock) == 128);

inline constexpr int kSmallClasses = 28;
inline constexpr int kPageRunClasses = 63;  // 2..64 pages, exact
// Runs above 64 pages: four classes per doubling (80, 96, 112, 128, 160, ...
// pages) up to 2^34 pages (kMaxMaxSize). Blocks are never split, so a freed
// block is reused whole by any request of its class.
inline constexpr int kGeoClasses = 4 * (34 - 6);  // 112
inline constexpr int kGeoFirst = kSmallClasses + kPageRunClasses;  // 91
inline constexpr int kClasses = kGeoFirst + kGeoClasses;           // 203
inline constexpr std::uint32_t kSmallClassSize[kSmallClasses] = {
    16,   32,   48,   64,   80,   96,   112,  128,  160,  192,  224,  256,  320,  384,
    448,  512,  640,  768,  896,  1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096};

// A block held back from reuse (docs/DURABILITY.md, "Copied slots"): while
// pinned it belongs to its structure; once freed it joins its free list at
// the first allocation after a checkpoint whose LSN reaches free_lsn.
inline constexpr int kLimbo = 32;
inline constexpr std::uint64_t kPinned = UINT64_MAX;  // free_lsn of a block still in use
struct limbo_entry {
  std::uint64_t off;
  std::uint64_t bytes;     // the block's class size
  std::uint64_t free_lsn;  // LSN of the commit that freed it, or kPinned
};

struct meta_page {
  unsigned char magic[8];
  std::uint64_t cursor;
  std::uint64_t catalog_head;
  std::uint64_t live_bytes;
  std::uint64_t free_bytes;  // on free lists or freed in limbo
  std::uint64_t commits;
  std::uint64_t free_head[kClasses];
  std::uint64_t limbo_count;  // entries in use, <= kLimbo (0 in files from before limbo: the page was zero)
  limbo_entry limbo[kLimbo];
};
static_assert(offsetof(meta_page, free_head) == 48 && offsetof(meta_page, limbo_count) == 1672 &&
              sizeof(meta_page) == 2448 && sizeof(meta_page) <= kPage);

inline constexpr std::size_t kCatalogHeader = 32;
inline constexpr std::size_t kCatalogEntry = 128;
inline constexpr std::size_t kCatalogEntries = (kPage - kCatalogHeader) / kCatalogEntry;  // 31
inline constexpr std::size_t kMaxName = 63;

struct type_bytes {
  std::uint16_t code;
  std::uint16_t align;
  std::uint32_t size;
  std::uint64_t fp;
};

struct catalog_slot {
  std::uint8_t in_use;
  std::uint8_t name_len;
  std::uint16_t kind;
  std::uint32_t reserved0;
  type_bytes key;
  type_bytes value;
  std::uint64_t root;
  char name[64];
  std::uint64_t aux;
  std::uint64_t reserved1;
};
static_assert(sizeof(catalog_slot) == kCatalogEntry && offsetof(catalog_slot, name) == 48);

struct file_header {  // the log's and the journal's
  unsigned char magic[8];
  std::uint32_t version;
  std::uint32_t reserved0;
  std::uint64_t file_id;
  unsigned char reserved1[32];
  std::uint64_t checksum;  // of bytes [0, 56)
};
static_assert(sizeof(file_header) == 64);

struct record_header {
  std::uint32_t magic;
  std::uint32_t range_count;
  std::uint64_t lsn;
  std::uint64_t payload_bytes;
  std::uint64_t commit_ns;
  std::uint64_t checksum;  // of bytes [0, 32)
};
static_assert(sizeof(record_header) == 40);

inline constexpr std::uint32_t kRangeZero = 1;  // range flag: set the bytes to zero; no payload follows
// Range flag: copy `length` bytes to `offset` from the u64 source offset that
// is the payload, as the store holds them when the range is replayed (the
// writer guarantees the source does not change until a checkpoint covers
// the record: docs/DURABILITY.md, "Copied slots").
inline constexpr std::uint32_t kRangeCopy = 2;
// Range flag: a packed run. `length` is the byte count of the packed body
// that is the payload (padded with zeros to 8); `offset` is the base the
// first sub-range's offset is relative to. The body is a sequence of
// sub-ranges, each: LEB128 v = zigzag(offset - previous end) << 2 | kind,
// LEB128 length, then by kind: 0 `length` bytes, 1 nothing (zero fill),
// 2 LEB128 zigzag(source - previous source end) (a copy, as kRangeCopy).
// Both "previous" values start at the run's base. docs/FORMAT.md, "The
// redo log".
inline constexpr std::uint32_t kRangePacked = 3;

struct range_header {
  std::uint64_t offset;
  std::uint32_t length;
  std::uint32_t flags;
};
static_assert(sizeof(range_header) == 16);

struct record_trailer {
  std::uint32_t magic;
  std::uint32_t reserved;
  std::uint64_t lsn;
  std::uint64_t checksum;  // of header + payload
};
static_assert(sizeof(record_trailer) == 24);

// Copy-on-write, logging and journaling work in 64-byte lines: bit i of a
// line mask stands for bytes [64 i, 64 i + 64) of a page.
inline constexpr std::uint64_t kLine = 64;
static_assert(kPage / kLine == 64);

struct journal_entry {
  std::uint32_t magic;
  std::uint32_t reserved;
  std::uint64_t page_offset;
  std::uint64_t epoch_lsn;
  std::uint64_t line_mask;  // which lines of the page follow, in order
  std::uint64_t checksum;   // of bytes [0, 32) + the lines
};
static_assert(sizeof(journal_entry) == 40);

// ---- hash map (docs/FORMAT.md, "Hash map")
inline constexpr unsigned char kMapMagic[8] = {'K', 'E', 'E', 'L', 'H', 'M', 'A', 'P'};
inline constexpr std::uint8_t kCtrlEmpty = 0x00;
inline constexpr std::uint8_t kCtrlDeleted = 0x01;  // full slots: 0x80 | low 7 bits of the hash
inline constexpr std::uint64_t kGroup = 16;          // slots per control group
inline constexpr std::uint64_t kMaxGroups = 1ull << 28;

struct map_table {
  std::uint64_t ctrl;       // offset of groups * 16 control bytes
  std::uint64_t slots;      // offset of the slot pages
  std::uint64_t groups;     // power of two; 0 = no table
  std::uint64_t used;       // slots not empty (live + deleted)
  std::uint64_t max_probe;  // farthest any entry sits from its home group, in groups
};
static_assert(sizeof(map_table) == 40);

struct map_root {
  unsigned char magic[8];
  std::uint32_t key_size;
  std::uint32_t value_size;  // both 0 for a byte-string map
  std::uint64_t seed;
  std::uint64_t size;   // live entries in both tables
  map_table cur;        // where inserts go
  map_table old;        // being moved into cur; groups = 0 when no resize runs
  std::uint64_t migrate;  // old groups below this one have been moved
  std::uint64_t layout_gen;  // changes whenever seed or a table's blocks or groups change
};
static_assert(sizeof(map_root) == 128);

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace keel::fmt
