#include "keel/error.h"

#include <xxhash.h>

#include <cstring>

#include "keel/types.h"

namespace keel {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::not_a_keel_file: return "not_a_keel_file";
    case errc::version_mismatch: return "version_mismatch";
    case errc::corrupt: return "corrupt";
    case errc::full: return "full";
    case errc::busy: return "busy";
    case errc::io: return "io";
    case errc::read_only: return "read_only";
    case errc::permission: return "permission";
    case errc::invalid_argument: return "invalid_argument";
    case errc::type_mismatch: return "type_mismatch";
    case errc::needs_recovery: return "needs_recovery";
  }
  return "unknown";
}

static std::string compose(const std::string& file, const std::string& what, int sys_errno) {
  std::string m = file.empty() ? what : file + ": " + what;
  if (sys_errno != 0) {
    m += ": ";
    m += std::strerror(sys_errno);
  }
  return m;
}

error::error(errc code, std::string file, std::string what, int sys_errno)
    : std::runtime_error(compose(file, what, sys_errno)), code_(code), file_(std::move(file)), errno_(sys_errno) {}

std::uint64_t fingerprint(std::string_view type_name) noexcept {
  return XXH3_64bits(type_name.data(), type_name.size());
}

std::string type_desc::describe() const {
  static constexpr const char* names[] = {"none", "u8",  "u16", "u32", "u64",   "i8",   "i16",
                                          "i32",  "i64", "f32", "f64", "bytes", "fixed"};
  std::string s = code < 13 ? names[code] : "code" + std::to_string(code);
  if (code == 12) {  // two such types differ in size or in the hash of their type_name
    char fp_hex[17];
    std::snprintf(fp_hex, sizeof fp_hex, "%016llx", static_cast<unsigned long long>(fp));
    s += "(" + std::to_string(size) + " bytes, type_name hash " + fp_hex + ")";
  }
  return s;
}

}  // namespace keel
