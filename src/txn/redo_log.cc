#include "txn/redo_log.h"

#include <cstring>

#include "file/format.h"
#include "os/io.h"
#include "txn/side_file.h"
#include "util/checksum.h"

namespace keel::redo {

namespace {

// A run closes once its body reaches this; a range longer than this keeps
// its own (plain, zero or copy) header.
constexpr std::uint64_t kRunBody = std::uint64_t{1} << 20;

constexpr std::uint64_t zigzag(std::uint64_t delta) {  // delta: a two's-complement difference
  return (delta << 1) ^ (0 - (delta >> 63));
}
constexpr std::uint64_t unzigzag(std::uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

inline std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
inline std::size_t put_varint(std::byte* p, std::uint64_t v) {
  std::size_t n = 0;
  while (v >= 0x80) {
    p[n++] = static_cast<std::byte>(v | 0x80);
    v >>= 7;
  }
  p[n++] = static_cast<std::byte>(v);
  return n;
}
// Reads a LEB128 value of at most 10 bytes from [p + at, p + end); false
// when cut off or longer than a u64.
inline bool get_varint(const std::byte* p, std::uint64_t& at, std::uint64_t end, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= end) return false;
    const auto b = static_cast<std::uint8_t>(p[at++]);
    if (shift == 63 && b > 1) return false;
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

enum : std::uint64_t { kSubBytes = 0, kSubZero = 1, kSubCopy = 2 };

// Lays out the payload of `ranges`: writes it to p when p is not null, and
// returns its size and top-level range count either way (so encode sizes
// the buffer exactly, then fills it, with the same decisions).
struct layout {
  std::uint64_t bytes = 0;
  std::uint32_t count = 0;
};
layout lay_out(std::byte* p, std::span<const range> ranges) {
  using namespace fmt;
  std::uint64_t at = 0;
  std::uint32_t count = 0;
  auto plain = [&](const range& r) {
    ++count;
    if (p) {
      const range_header rh{r.off, r.len, r.src != 0 ? kRangeCopy : r.data ? 0u : kRangeZero};
      std::memcpy(p + at, &rh, sizeof rh);
    }
    at += sizeof(range_header);
    if (r.src != 0) {
      if (p) std::memcpy(p + at, &r.src, 8);
      at += 8;
    } else if (r.data) {
      if (p) {
        std::memcpy(p + at, r.data, r.len);
        std::memset(p + at + r.len, 0, align_up(r.len, 8) - r.len);
      }
      at += align_up(r.len, 8);
    }
  };
  // Ranges read from the mapping (slots written in place) are scattered:
  // start loading their bytes a few ranges ahead.
  constexpr std::size_t kAhead = 8;
  auto ahead = [&](std::size_t i) {
    if (!p || i + kAhead >= ranges.size() || !ranges[i + kAhead].data) return;
    const range& n = ranges[i + kAhead];
    __builtin_prefetch(n.data);
    if (n.len > 64) __builtin_prefetch(n.data + std::min<std::uint32_t>(n.len, 128) - 1);
  };
  for (std::size_t i = 0; i < ranges.size();) {
    if (ranges[i].len > kRunBody) {
      plain(ranges[i++]);
      continue;
    }
    const std::uint64_t header_at = at, base = ranges[i].off;
    ++count;
    at += sizeof(range_header);
    const std::uint64_t body_at = at;
    std::uint64_t prev = base, prev_src = base;
    while (i < ranges.size() && ranges[i].len <= kRunBody && at - body_at < kRunBody) {
      const range& r = ranges[i];
      const std::uint64_t z = zigzag(r.off - prev);
      if (z >> 62) break;  // no room for the kind bits: the next run starts here
      ahead(i);
      const std::uint64_t kind = r.src != 0 ? kSubCopy : r.data ? kSubBytes : kSubZero;
      if (p) {
        at += put_varint(p + at, z << 2 | kind);
        at += put_varint(p + at, r.len);
      } else {
        at += varint_size(z << 2 | kind) + varint_size(r.len);
      }
      if (kind == kSubCopy) {
        const std::uint64_t zs = zigzag(r.src - prev_src);
        at += p ? put_varint(p + at, zs) : varint_size(zs);
        prev_src = r.src + r.len;
      } else if (kind == kSubBytes) {
        if (p) std::memcpy(p + at, r.data, r.len);
        at += r.len;
      }
      prev = r.off + r.len;
      ++i;
    }
    const std::uint64_t body = at - body_at;
    if (p) {
      const range_header rh{base, static_cast<std::uint32_t>(body), kRangePacked};
      std::memcpy(p + header_at, &rh, sizeof rh);
      std::memset(p + at, 0, align_up(body, 8) - body);
    }
    at = body_at + align_up(body, 8);
  }
  return {at, count};
}

}  // namespace

void encode(std::vector<std::byte>& buf, std::uint64_t lsn, std::uint64_t commit_ns, std::span<const range> ranges) {
  using namespace fmt;
  const layout size = lay_out(nullptr, ranges);
  const std::uint64_t payload = size.bytes;
  buf.resize(sizeof(record_header) + payload + sizeof(record_trailer));
  std::byte* p = buf.data();
  (void)lay_out(p + sizeof(record_header), ranges);
  record_header h{kRecordMagic, size.count, lsn, payload, commit_ns, 0};
  h.checksum = checksum(&h, offsetof(record_header, checksum));
  std::memcpy(p, &h, sizeof h);
  const std::uint64_t at = sizeof h + payload;
  record_trailer t{kCommitMagic, 0, lsn, checksum(p, at)};
  std::memcpy(p + at, &t, sizeof t);
}

std::string decode(const std::byte* p, std::uint64_t n, std::uint32_t count, std::uint64_t data_limit,
                   std::vector<range>& out) {
  using namespace fmt;
  // Messages are built only on failure: a recovery decodes millions of ranges.
  auto num = [](std::uint64_t v) { return std::to_string(v); };
  std::uint32_t i = 0;
  std::uint64_t k = UINT64_MAX;  // the entry of a packed run, or none
  auto name = [&] { return "range " + num(i) + (k == UINT64_MAX ? "" : ", entry " + num(k)); };
  auto outside = [&](const char* what, std::uint64_t off, std::uint64_t len) {
    return name() + what + " [" + num(off) + ", +" + num(len) + ") lies outside the store [" + num(kMetaOffset) +
           ", max size " + num(data_limit) + ")";
  };
  std::uint64_t at = 0;
  for (; i < count; ++i) {
    k = UINT64_MAX;
    range_header rh;
    if (n - at < sizeof rh) return name() + " is cut off";
    std::memcpy(&rh, p + at, sizeof rh);
    at += sizeof rh;
    const std::uint64_t body = rh.flags == kRangeZero ? 0 : rh.flags == kRangeCopy ? 8 : align_up(rh.length, 8);
    if (rh.flags > kRangePacked || body > n - at) return name() + " is malformed";
    if (rh.flags != kRangePacked) {
      std::uint64_t src = 0;
      if (rh.flags == kRangeCopy) std::memcpy(&src, p + at, 8);
      if (!in_store(rh.offset, rh.length, data_limit)) return outside("", rh.offset, rh.length);
      if (rh.flags == kRangeCopy && !in_store(src, rh.length, data_limit))
        return outside("'s copy source", src, rh.length);
      out.push_back({rh.offset, rh.length, rh.flags == 0 ? p + at : nullptr, src});
      at += body;
      continue;
    }
    // A packed run: sub-ranges until its body is used up.
    const std::uint64_t end = at + rh.length;
    std::uint64_t prev = rh.offset, prev_src = rh.offset;
    k = 0;
    for (std::uint64_t q = at; q < end; ++k) {
      std::uint64_t v, len, zs = 0;
      if (!get_varint(p, q, end, v) || !get_varint(p, q, end, len) || len > UINT32_MAX) return name() + " is malformed";
      const std::uint64_t kind = v & 3, off = prev + unzigzag(v >> 2);
      if (kind == kSubCopy && !get_varint(p, q, end, zs)) return name() + " is malformed";
      if (kind > kSubCopy || (kind == kSubBytes && len > end - q)) return name() + " is malformed";
      const std::uint64_t src = kind == kSubCopy ? prev_src + unzigzag(zs) : 0;
      if (!in_store(off, len, data_limit)) return outside("", off, len);
      if (kind == kSubCopy && !in_store(src, len, data_limit)) return outside("'s copy source", src, len);
      out.push_back({off, static_cast<std::uint32_t>(len), kind == kSubBytes ? p + q : nullptr, src});
      if (kind == kSubBytes) q += len;
      if (kind == kSubCopy) prev_src = src + len;
      prev = off + len;
    }
    at += body;
  }
  if (at != n) return "payload holds bytes past its ranges";
  return {};
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
    const std::string bad = decode(rp + sizeof(record_header), h.payload_bytes, h.range_count, data_limit, ranges);
    if (!bad.empty()) {
      // Checksums matched, so this was written as is: not a torn tail.
      throw error(errc::corrupt, path,
                  "record LSN " + std::to_string(h.lsn) + " at " + std::to_string(pos) + ": " + bad);
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
