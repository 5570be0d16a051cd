// Shared pieces of the keel tool: exit codes, the tool's own error, size and
// mode parsing, and how each command opens a store.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "keel/options.h"
#include "keel/store.h"

namespace keel::cli {

// Exit codes (docs/CLI.md). Every failure prints one line "keel: <what>".
enum exit_code : int {
  kOk = 0,
  kProblems = 1,  // check found problems in the store
  kUsage = 2,     // bad command line
  kError = 3,     // the command failed: missing or bad file, bad input, I/O
};

// A failure the tool reports as one line (with `code` as the exit status).
class failure : public std::runtime_error {
 public:
  explicit failure(const std::string& what, int code = kError) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// "64M", "1GiB", "4096", "16 MiB" -> bytes; throws failure(kUsage).
std::uint64_t parse_size(std::string_view text, std::string_view option);
// "sync" / "batch" / "checkpoint" -> mode; throws failure(kUsage).
durability parse_mode(std::string_view text);
std::string_view mode_name(durability m) noexcept;
// 1536 -> "1.5 KiB" (exact bytes below 1 KiB).
std::string human_bytes(std::uint64_t n);

// A store must exist (the library would create it): a clear "no such file"
// or "not a regular file" instead. Returns the file's size.
std::uint64_t require_store_file(const std::string& path);

// Read-only handle (takes no lock; works while a writer runs).
std::unique_ptr<store> open_reader(const std::string& path);
// Writable handle of an existing store; `mode` defaults to the mode the
// store's newest superblock records, so a maintenance command does not
// change it. Fails with errc::busy when another process writes.
std::unique_ptr<store> open_writer(const std::string& path, std::optional<durability> mode = std::nullopt,
                                   std::uint64_t wait_ms = 0);

// The durability mode recorded in the newest valid superblock, if any.
std::optional<durability> recorded_mode(const std::string& path);

// Whether stderr is a terminal, and whether progress output is wanted at all.
struct output_settings {
  bool quiet = false;
};
output_settings& settings();

}  // namespace keel::cli
