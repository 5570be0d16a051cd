#include "txn/journal.h"

#include <bit>
#include <cstring>

#include "file/format.h"
#include "os/io.h"
#include "txn/side_file.h"
#include "util/checksum.h"

namespace keel::journal {

using fmt::journal_entry;
using fmt::kLine;

void append_entry(std::vector<std::byte>& buf, std::uint64_t page_off, std::uint64_t epoch, std::uint64_t mask,
                  const std::byte* page) {
  const std::size_t lines = static_cast<std::size_t>(std::popcount(mask));
  const std::size_t at = buf.size();
  buf.resize(at + sizeof(journal_entry) + lines * kLine);
  std::byte* out = buf.data() + at + sizeof(journal_entry);
  for (std::uint64_t m = mask; m != 0; m &= m - 1, out += kLine)
    std::memcpy(out, page + std::countr_zero(m) * kLine, kLine);
  journal_entry e{fmt::kJournalEntryMagic, 0, page_off, epoch, mask, 0};
  e.checksum = checksum2(&e, offsetof(journal_entry, checksum), buf.data() + at + sizeof e, lines * kLine);
  std::memcpy(buf.data() + at, &e, sizeof e);
}

scan_result scan(os& sys, int fd, const std::string& path, std::uint64_t epoch, std::uint64_t data_limit,
                 const std::function<void(std::uint64_t, std::uint64_t, const std::byte*)>& on_entry) {
  const std::int64_t len = sys.file_size(fd);
  if (len < 0) io::fail(path, "fstat", static_cast<int>(len));
  side::reader rd(sys, fd, path, static_cast<std::uint64_t>(len));
  scan_result res;
  std::uint64_t pos = sizeof(fmt::file_header);
  for (;;) {
    res.end = pos;
    const std::byte* h = rd.at(pos, sizeof(journal_entry));
    if (!h) {
      if (pos < rd.size()) res.stop = "torn entry at " + std::to_string(pos);
      return res;
    }
    journal_entry e;
    std::memcpy(&e, h, sizeof e);
    const std::size_t body = static_cast<std::size_t>(std::popcount(e.line_mask)) * kLine;
    const std::byte* p = e.magic == fmt::kJournalEntryMagic ? rd.at(pos, sizeof e + body) : nullptr;
    if (!p || e.line_mask == 0 || e.epoch_lsn != epoch || e.page_offset % fmt::kPage != 0 ||
        e.page_offset < fmt::kMetaOffset || e.page_offset >= data_limit ||
        e.checksum != checksum2(&e, offsetof(journal_entry, checksum), p + sizeof e, body)) {
      res.stop = "invalid entry at " + std::to_string(pos);
      return res;
    }
    on_entry(e.page_offset, e.line_mask, p + sizeof e);
    ++res.entries;
    pos += sizeof e + body;
  }
}

}  // namespace keel::journal
