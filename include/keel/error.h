// Keel errors: one exception type carrying a code, the file and what is wrong.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace keel {

// Every failure Keel reports has one of these codes. Lookups that find
// nothing are not errors: they return std::optional.
enum class errc {
  not_a_keel_file = 1,  // empty file, random bytes, another program's file
  version_mismatch,     // a Keel file of a format version this build cannot read
  corrupt,              // checksum, bound or structure check failed
  full,                 // max_size reached or the disk has no space: store stays usable
  busy,                 // the writer lock is held by another process, or reads kept racing
  io,                   // the OS failed a read/write/sync; after a failed sync the handle is poisoned
  read_only,            // a write on a handle opened read-only
  permission,           // the OS denied access to the file
  invalid_argument,     // bad options, oversized names, out-of-range offsets from the caller
  type_mismatch,        // a catalog name opened with another kind or key/value type
  needs_recovery,       // a read-only open of a store that must first be recovered by a writer
};

std::string_view to_string(errc code) noexcept;

class error : public std::runtime_error {
 public:
  // The message is "<file>: <what>" (plus the OS's words when sys_errno != 0).
  error(errc code, std::string file, std::string what, int sys_errno = 0);

  errc code() const noexcept { return code_; }
  const std::string& file() const noexcept { return file_; }
  int sys_errno() const noexcept { return errno_; }

 private:
  errc code_;
  std::string file_;
  int errno_;
};

}  // namespace keel
