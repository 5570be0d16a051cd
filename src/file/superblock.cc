#include "file/superblock.h"

#include <cstring>

#include "keel/error.h"
#include "os/io.h"
#include "util/checksum.h"

namespace keel::superblock {

void seal(fmt::superblock& sb) noexcept { sb.checksum = checksum(&sb, offsetof(fmt::superblock, checksum)); }

std::string problem(const fmt::superblock& sb, std::uint32_t slot) {
  if (std::memcmp(sb.magic, fmt::kSuperMagic, 8) != 0) return "no Keel magic";
  if (sb.checksum != checksum(&sb, offsetof(fmt::superblock, checksum))) return "checksum mismatch";
  if (sb.version != fmt::kVersion) return "format version " + std::to_string(sb.version);
  if (sb.byte_order != fmt::kByteOrderMark) return "written with another byte order";
  if (sb.page_size != fmt::kPage) return "page size " + std::to_string(sb.page_size) + ", this host uses " + std::to_string(fmt::kPage);
  if (sb.slot != slot) return "slot number " + std::to_string(sb.slot) + " stored in slot " + std::to_string(slot);
  if (sb.file_id == 0) return "file id is zero";
  if (sb.arena_offset != fmt::kArenaOffset || sb.meta_offset != fmt::kMetaOffset || sb.control_offset != fmt::kControlOffset)
    return "unknown layout offsets";
  if (sb.max_size % fmt::kPage != 0 || sb.max_size > fmt::kMaxMaxSize || sb.max_size < fmt::kArenaOffset)
    return "max size " + std::to_string(sb.max_size) + " out of range";
  if (sb.file_size % fmt::kPage != 0 || sb.file_size < fmt::kArenaOffset || sb.file_size > sb.max_size)
    return "file size " + std::to_string(sb.file_size) + " out of range";
  if (sb.cursor < fmt::kArenaOffset || sb.cursor > sb.file_size) return "cursor " + std::to_string(sb.cursor) + " out of range";
  if (sb.catalog_head != 0 && (sb.catalog_head < fmt::kArenaOffset || sb.catalog_head >= sb.cursor))
    return "catalog head out of range";
  if (sb.mode > 2) return "unknown durability mode";
  return {};
}

fmt::superblock choose(os& sys, int fd, const std::string& path, std::uint64_t actual_size) {
  if (actual_size == 0) throw error(errc::not_a_keel_file, path, "empty file, not a Keel store");
  fmt::superblock s[2]{};
  std::string why[2];
  bool magic[2]{}, version_only[2]{};
  for (std::uint32_t i = 0; i < 2; ++i) {
    if (!io::read_at(sys, fd, &s[i], sizeof(fmt::superblock), i * fmt::kPage, path)) {
      why[i] = "missing (file is " + std::to_string(actual_size) + " bytes)";
      continue;
    }
    why[i] = problem(s[i], i);
    magic[i] = std::memcmp(s[i].magic, fmt::kSuperMagic, 8) == 0;
    version_only[i] = magic[i] && s[i].checksum == checksum(&s[i], offsetof(fmt::superblock, checksum)) &&
                      s[i].version != fmt::kVersion;
  }
  const bool ok0 = why[0].empty(), ok1 = why[1].empty();
  if (!ok0 && !ok1) {
    const std::string detail = "superblock 0: " + why[0] + "; superblock 1: " + why[1];
    if (!magic[0] && !magic[1]) throw error(errc::not_a_keel_file, path, "not a Keel store (" + detail + ")");
    if (version_only[0] || version_only[1])
      throw error(errc::version_mismatch, path,
                  "format version " + std::to_string(version_only[0] ? s[0].version : s[1].version) +
                      ", this build reads version " + std::to_string(fmt::kVersion));
    throw error(errc::corrupt, path, "no valid fmt::superblock (" + detail + ")");
  }
  const fmt::superblock& best = (ok0 && (!ok1 || s[0].sequence > s[1].sequence)) ? s[0] : s[1];
  if (ok0 && ok1 && s[0].file_id != s[1].file_id)
    throw error(errc::corrupt, path, "the two superblocks belong to different stores");
  if (best.file_size > actual_size)
    throw error(errc::corrupt, path,
                "truncated: file is " + std::to_string(actual_size) + " bytes, fmt::superblock says " +
                    std::to_string(best.file_size));
  return best;
}

void write(os& sys, int fd, const std::string& path, fmt::superblock& sb) {
  seal(sb);
  unsigned char page[fmt::kPage] = {};
  std::memcpy(page, &sb, sizeof sb);
  io::write_at(sys, fd, page, sizeof page, sb.slot * fmt::kPage, path);
  io::check(sys.fdatasync(fd), path, "fdatasync after fmt::superblock write");
}

}  // namespace keel::superblock
