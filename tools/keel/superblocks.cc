#include "superblocks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"
#include "file/superblock.h"

namespace keel::cli {

std::array<superblock_slot, 2> read_superblocks(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw failure(path + ": cannot open: " + std::strerror(errno));
  std::array<superblock_slot, 2> slots;
  for (std::uint32_t i = 0; i < 2; ++i) {
    fmt::superblock sb{};
    const ssize_t n = ::pread(fd, &sb, sizeof sb, static_cast<off_t>(i * fmt::kPage));
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw failure(path + ": cannot read superblock " + std::to_string(i) + ": " + std::strerror(e));
    }
    slots[i].present = n == static_cast<ssize_t>(sizeof sb);
    if (!slots[i].present) {
      slots[i].problem = "file too short to hold it";
      continue;
    }
    slots[i].sb = sb;
    slots[i].problem = superblock::problem(sb, i);
  }
  ::close(fd);
  return slots;
}

int newest_slot(const std::array<superblock_slot, 2>& slots) {
  int best = -1;
  for (int i = 0; i < 2; ++i)
    if (slots[i].valid() && (best < 0 || slots[i].sb.sequence > slots[best].sb.sequence)) best = i;
  return best;
}

}  // namespace keel::cli
