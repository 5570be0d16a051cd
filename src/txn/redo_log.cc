#include "txn/redo_log.h"

#include <cstring>

#include "file/format.h"
#include "os/io.h"
#include "txn/side_file.h"
#include "util/checksum.h"

namespace keel::redo {

void encode(std::vector<std::byte>& buf, std::uint64_t lsn, std::uint64_t commit_ns, std::span<const range> ranges) {
  using namespace fmt;
  std::uint64_t payload = 0;
  for (const auto& r : ranges) payload += sizeof(range_header) + payload_of(r);
  buf.resize(sizeof(record_header) + payload + sizeof(record_trailer));
  std::byte* p = buf.data();
  record_header h{kRecordMagic, static_cast<std::uint32_t>(ranges.size()), lsn, payload, commit_ns, 0};
  h.checksum = checksum(&h, offsetof(record_header, checksum));
  std::memcpy(p, &h, sizeof h);
  std::size_t at = sizeof h;
  // Ranges read from the mapping (slots written in place) are scattered:
  // start loading their bytes a few ranges ahead.
  constexpr std::size_t kAhead = 8;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (i + kAhead < ranges.size() && ranges[i + kAhead].data) {
      const range& n = ranges[i + kAhead];
      __builtin_prefetch(n.data);
      if (n.len > 64) __builtin_prefetch(n.data + std::min<std::uint32_t>(n.len, 128) - 1);
    }
    const range& r = ranges[i];
    range_header rh{r.off, r.len, r.src != 0 ? kRangeCopy : r.data ? 0u : kRangeZero};
    std::memcpy(p + at, &rh, sizeof rh);
    at += sizeof rh;
    if (r.src != 0) {
      std::memcpy(p + at, &r.src, 8);
      at += 8;
      continue;
    }
    if (!r.data) continue;
    std::memcpy(p + at, r.data, r.len);
    std::memset(p + at + r.len, 0, align_up(r.len, 8) - r.len);
    at += align_up(r.len, 8);
  }
  record_trailer t{kCommitMagic, 0, lsn, checksum(p, at)};
  std::memcpy(p + at, &t, sizeof t);
}

scan_result scan(os& sys, int fd, const std::string& path, std::uint64_t pos, std::optional<std::uint64_t> prev_lsn,
                 std::uint64_t skip_upto, std::uint64_t data_limit,
                 const std::function<void(std::uint64_t, std::span<const range>)>& on_record) {
  using namespace fmt;
  const std::int64_t len = sys.file_size(fd);
  if (len < 0) io::fail(path, "fstat", static_cast<int>(len));
  side::reader rd(sys, fd, path, static_cast<std::uint64_t>(len));
  scan_result res;
  res.last_lsn = prev_lsn.value_or(0);
  bool first = !prev_lsn.has_value();
  std::vector<range> ranges;
  for (;;) {
    res.end = pos;
    const std::byte* hp = rd.at(pos, sizeof(record_header));
    if (!hp) {
      if (pos != rd.size()) res.stop = "torn record header at " + std::to_string(pos);
      return res;
    }
    record_header h;
    std::memcpy(&h, hp, sizeof h);
    if (h.magic != kRecordMagic || h.checksum != checksum(&h, offsetof(record_header, checksum))) {
      res.stop = "invalid record header at " + std::to_string(pos);
      return res;
    }
    if (first) {
      if (h.lsn == 0) {
        res.stop = "record at " + std::to_string(pos) + " has LSN 0";
        return res;
      }
      if (h.lsn > skip_upto + 1)
        throw error(errc::corrupt, path,
                    "log starts at LSN " + std::to_string(h.lsn) + " but the checkpoint holds only up to LSN " +
                        std::to_string(skip_upto) + ": transactions are missing");
      res.last_lsn = h.lsn - 1;
    }
    if (h.lsn != res.last_lsn + 1) {
      res.stop = "record at " + std::to_string(pos) + " has LSN " + std::to_string(h.lsn) + ", expected " +
                 std::to_string(res.last_lsn + 1);
      return res;
    }
    const std::uint64_t total = sizeof(record_header) + h.payload_bytes + sizeof(record_trailer);
    if (h.payload_bytes > rd.size() || total > rd.size() - pos) {
      res.stop = "torn record at " + std::to_string(pos);
      return res;
    }
    const std::byte* rp = rd.at(pos, static_cast<std::size_t>(total));
    if (!rp) {  // the log shrank under the reader (a checkpoint recycled it during a backup)
      res.stop = "torn record at " + std::to_string(pos);
      return res;
    }
    record_trailer t;
    std::memcpy(&t, rp + total - sizeof t, sizeof t);
    if (t.magic != kCommitMagic || t.lsn != h.lsn ||
        t.checksum != checksum(rp, static_cast<std::size_t>(total - sizeof t))) {
      res.stop = "record at " + std::to_string(pos) + " has no valid commit marker";
      return res;
    }
    ranges.clear();
    std::uint64_t at = sizeof(record_header);
    const std::uint64_t end = sizeof(record_header) + h.payload_bytes;
    bool ok = true;
    for (std::uint32_t i = 0; i < h.range_count && ok; ++i) {
      range_header rh;
      if (end - at < sizeof rh) { ok = false; break; }
      std::memcpy(&rh, rp + at, sizeof rh);
      at += sizeof rh;
      const bool zero = rh.flags == kRangeZero, copy = rh.flags == kRangeCopy;
      const std::uint64_t body = zero ? 0 : copy ? 8 : align_up(rh.length, 8);
      if (rh.flags > kRangeCopy || body > end - at || !in_store(rh.offset, rh.length, data_limit)) {
        ok = false;
        break;
      }
      std::uint64_t src = 0;
      if (copy) {
        std::memcpy(&src, rp + at, 8);
        if (!in_store(src, rh.length, data_limit)) {
          ok = false;
          break;
        }
      }
      ranges.push_back({rh.offset, rh.length, zero || copy ? nullptr : rp + at, src});
      at += body;
    }
    if (!ok || at != end) {
      // Checksums matched, so this was written as is: not a torn tail.
      throw error(errc::corrupt, path,
                  "record LSN " + std::to_string(h.lsn) + " at " + std::to_string(pos) +
                      " has a range (or a copy's source) outside the store (before the meta page or past max_size), "
                      "or is malformed");
    }
    if (h.lsn > skip_upto) {
      on_record(h.lsn, ranges);
      ++res.applied;
    }
    res.last_lsn = h.lsn;
    res.last_commit_ns = h.commit_ns;
    first = false;
    pos += total;
  }
}

}  // namespace keel::redo
