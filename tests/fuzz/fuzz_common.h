// Shared pieces of the fuzz targets (tests/fuzz/README.md): a scratch
// directory, a byte reader over the fuzzer's input, the store-image
// container the file-level targets read, and walks that read every
// catalogued structure of an unknown store.
//
// Built twice: with clang -fsanitize=fuzzer,address,undefined by
// scripts/fuzz.sh, and with the project's compiler into the replay drivers
// that CTest runs over the committed corpus (replay_main.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <keel/bytes_tree.h>
#include <keel/check.h>
#include <keel/keel.h>
#include <keel/tree_map.h>
#include <string>
#include <string_view>

namespace keel_fuzz {

using u8 = std::uint8_t;
using u64 = std::uint64_t;

// Reads the fuzzer's bytes front to back; past the end every read is zero,
// so any input decodes to something.
class reader {
 public:
  reader(const u8* p, std::size_t n) : p_(p), n_(n) {}
  bool empty() const { return at_ == n_; }
  std::size_t left() const { return n_ - at_; }
  u8 byte() { return at_ < n_ ? p_[at_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() | byte() << 8); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(u16() | static_cast<std::uint32_t>(u16()) << 16); }
  u64 u64v() { return u32() | static_cast<u64>(u32()) << 32; }
  // Up to n bytes (fewer at the end of the input).
  std::string_view take(std::size_t n) {
    n = n < left() ? n : left();
    std::string_view s(reinterpret_cast<const char*>(p_ + at_), n);
    at_ += n;
    return s;
  }
  std::string_view rest() { return take(left()); }

 private:
  const u8* p_;
  std::size_t n_, at_ = 0;
};

// Prints what went wrong and aborts: the fuzzer (or the replay test) reports
// a crash with this input.
[[noreturn]] void fail(const char* target, const std::string& what);

// KEEL_FUZZ_VERBOSE=1: the targets print what each input did (stderr).
bool verbose();
void say(const std::string& line);

// A directory private to this process (under $KEEL_FUZZ_TMP, else /dev/shm
// when writable, else $TMPDIR or /tmp), removed at exit.
const std::string& scratch_dir();
// Removes `path`, `path`-log and `path`-journal (missing files are fine).
void remove_store(const std::string& path);
void write_file(const std::string& path, std::string_view bytes);
std::string read_file(const std::string& path);  // "" when missing
std::int64_t file_size(const std::string& path);  // -1 when missing

// ---- store images: the three files of a store packed into one input.
//
//   u8  flags   bit 0: stamp this boot's id into the control page (so a
//                      dead writer's image takes the same-boot recovery path)
//               bit 1: no -log file;  bit 2: no -journal file
//   u32 data file size (capped at kMaxData; zero-filled)
//   segments:   u32 offset, u16 length (0 ends the list), `length` bytes
//               copied into the data file at `offset` (clipped to its size)
//   u32 log size, then that many bytes of the -log file
//   the rest:   the -journal file
//
// Zero runs cost nothing, so a real store of a few dozen pages packs into a
// few KiB of bytes the fuzzer can usefully mutate.
struct image {
  u8 flags = 0;
  std::string data, log, journal;
};
inline constexpr std::size_t kMaxData = 4u << 20;
std::string pack(const image& im);
image unpack(const u8* p, std::size_t n);
// The three files of the store at `path`, as they are now.
image snapshot(const std::string& path);
// Writes the image as the store `path` (removing what was there).
void install(const image& im, const std::string& path);
// The running boot's id as Keel reads it (control page bytes 8..24).
void stamp_boot_id(std::string& data);

// ---- options for stores under test: small, quick to fail.
keel::options fuzz_opts(bool writable, keel::durability mode = keel::durability::checkpoint);
keel::check_report check_store(const std::string& path);  // temp files in scratch_dir()
std::string describe(const keel::check_report& r);

// Reads every structure in the catalog through the untyped engines (every
// entry, size, point lookups of what a walk found, ordered and reverse
// scans, the tree checker). Bounded: stops walks after a few thousand
// entries. Throws only keel::error (from the catalog itself); errors of one
// structure are swallowed and counted. Returns the number of entries seen.
struct read_stats {
  u64 structures = 0, entries = 0, errors = 0, tree_problems = 0;
  std::string first_error;
};
read_stats read_everything(const keel::store& db);
// One small write per structure (own transaction each, errors swallowed),
// plus a new hash map. Exercises write paths over whatever the file holds.
void write_something(keel::store& db);

}  // namespace keel_fuzz
