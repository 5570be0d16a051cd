#include "txn/journal.h"

#include <cstring>

#include "file/format.h"
#include "os/io.h"
#include "txn/side_file.h"
#include "util/checksum.h"

namespace keel::journal {

void append_entry(std::vector<std::byte>& buf, std::uint64_t page_off, std::uint64_t epoch, const std::byte* image) {
  using namespace fmt;
  journal_entry e{kJournalEntryMagic, 0, page_off, epoch, 0};
  e.checksum = checksum2(&e, offsetof(journal_entry, checksum), image, kPage);
  const std::size_t at = buf.size();
  buf.resize(at + sizeof e + kPage);
  std::memcpy(buf.data() + at, &e, sizeof e);
  std::memcpy(buf.data() + at + sizeof e, image, kPage);
}

scan_result scan(os& sys, int fd, const std::string& path, std::uint64_t epoch, std::uint64_t data_limit,
                 const std::function<void(std::uint64_t, const std::byte*)>& on_entry) {
  using namespace fmt;
  const std::int64_t len = sys.file_size(fd);
  if (len < 0) io::fail(path, "fstat", static_cast<int>(len));
  side::reader rd(sys, fd, path, static_cast<std::uint64_t>(len));
  scan_result res;
  std::uint64_t pos = sizeof(file_header);
  for (;; pos += sizeof(journal_entry) + kPage) {
    res.end = pos;
    const std::byte* p = rd.at(pos, sizeof(journal_entry) + kPage);
    if (!p) {
      if (pos < rd.size()) res.stop = "torn entry at " + std::to_string(pos);
      return res;
    }
    journal_entry e;
    std::memcpy(&e, p, sizeof e);
    if (e.magic != kJournalEntryMagic ||
        e.checksum != checksum2(&e, offsetof(journal_entry, checksum), p + sizeof e, kPage) ||
        e.epoch_lsn != epoch || e.page_offset % kPage != 0 || e.page_offset < kMetaOffset ||
        e.page_offset >= data_limit) {
      res.stop = "invalid entry at " + std::to_string(pos);
      return res;
    }
    on_entry(e.page_offset, p + sizeof e);
    ++res.entries;
  }
}

}  // namespace keel::journal
