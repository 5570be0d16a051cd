// Fuzz target: a fixed valid store (samples.h) with the input as its redo
// log (and optionally journal), decoded as log_input.h says so that the
// fuzzer gets past the checksums. Recovery (a writable open) replays it.
// Oracles: no crash or sanitizer report; check never throws on damage;
// check's snapshot replay and recovery agree (same LSN; a clean check stays
// clean with the same entries after recovery); recovery never shrinks the
// data file and grows it at most to the superblock's max size (a record
// may write past the end of a file a power cut took back to its synced
// size, DURABILITY.md "Growing the file"; ranges past max size are refused).
#include <algorithm>
#include <bit>
#include <deque>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "file/format.h"
#include "fuzz_common.h"
#include "log_input.h"
#include "samples.h"
#include "txn/redo_log.h"
#include "util/checksum.h"

using namespace keel_fuzz;
namespace fmt = keel::fmt;
namespace li = keel_fuzz::log_input;

namespace {

constexpr const char* kTarget = "fuzz_log_replay";

struct base_info {
  image im;
  u64 file_id = 0, ckpt_lsn = 0, file_size = 0, max_size = 0;
  std::string log_header, journal_header;
};

const base_info& base() {
  static const base_info b = [] {
    base_info b;
    b.im = log_replay_base();
    u64 best_seq = 0;
    for (int slot = 0; slot < 2; ++slot) {
      fmt::superblock sb;
      if (b.im.data.size() < (slot + 1) * fmt::kPage) continue;
      std::memcpy(&sb, b.im.data.data() + slot * fmt::kPage, sizeof sb);
      if (sb.checksum != keel::checksum(&sb, offsetof(fmt::superblock, checksum))) continue;
      if (sb.sequence >= best_seq) {
        best_seq = sb.sequence;
        b.file_id = sb.file_id;
        b.ckpt_lsn = sb.checkpoint_lsn;
        b.file_size = sb.file_size;
        b.max_size = sb.max_size;
      }
    }
    if (b.file_size == 0) fail(kTarget, "the base image has no valid superblock");
    b.log_header = b.im.log.substr(0, sizeof(fmt::file_header));
    b.journal_header = b.im.journal.substr(0, sizeof(fmt::file_header));
    return b;
  }();
  return b;
}

template <class T>
void append(std::string& s, const T& v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void append_bytes(std::string& s, reader& r, std::size_t n) {
  const std::string_view got = r.take(n);
  s += got;
  s.append(n - got.size(), '\xa5');
}

std::string journal_entries(reader& r, const base_info& b) {
  std::string out;
  const int n = r.byte() % 8;
  const u64 pages = (b.file_size - fmt::kArenaOffset) / fmt::kPage;
  for (int i = 0; i < n; ++i) {
    const u8 c = r.byte();
    fmt::journal_entry e{};
    e.magic = fmt::kJournalEntryMagic;
    e.page_offset = (c & 1) ? fmt::kArenaOffset + (r.u16() % pages) * fmt::kPage : r.u64v();
    e.epoch_lsn = (c & 2) ? r.u64v() : b.ckpt_lsn;
    e.line_mask = r.u64v();
    if (e.line_mask == 0) e.line_mask = 1;
    std::string lines;
    append_bytes(lines, r, static_cast<std::size_t>(std::popcount(e.line_mask)) * fmt::kLine);
    e.checksum = keel::checksum2(&e, 32, lines.data(), lines.size());
    if (c & 4) e.checksum ^= 1;
    append(out, e);
    out += lines;
  }
  return out;
}

// A range length chosen by bits 2-3 of sel (log_input.h): u8 mod 65,
// u16 mod 4097, eight, or a raw u32.
std::uint32_t pick_length(reader& r, u8 sel) {
  switch ((sel >> 2) & 3) {
    case 0: return r.byte() % 65;
    case 1: return r.u16() % 4097;
    case 2: return 8;
    default: return r.u32();
  }
}

// Appends to payload the ranges redo::encode makes of up to 7 sub-ranges
// drawn from the input (log_input.h, "a packed run"), then maybe damages a
// byte of them. Returns how many top-level ranges it appended.
template <class Pick>
std::uint32_t packed_run(std::string& payload, reader& r, Pick&& pick_offset) {
  std::vector<keel::redo::range> subs;
  std::deque<std::string> bytes;  // the sub-ranges' data: stays put while more is added, until encoded
  const int m = r.byte() % 8;
  for (int j = 0; j < m; ++j) {
    const u8 sc = r.byte();
    const u64 off = pick_offset(sc);
    const std::uint32_t len = std::min<std::uint32_t>(pick_length(r, sc), li::kMaxBody);
    if (sc & 16) {
      subs.push_back({off, len, nullptr});
    } else if (sc & 32) {
      u64 src = pick_offset(r.byte());
      if (src == 0) src = 1;  // 0 would mean "not a copy" to the encoder
      subs.push_back({off, len, nullptr, src});
    } else {
      std::string b;
      append_bytes(b, r, len);
      bytes.push_back(std::move(b));
      subs.push_back({off, len, reinterpret_cast<const std::byte*>(bytes.back().data())});
    }
  }
  std::vector<std::byte> rec;
  keel::redo::encode(rec, 1, 0, subs);
  fmt::record_header h;
  std::memcpy(&h, rec.data(), sizeof h);
  std::string runs(reinterpret_cast<const char*>(rec.data()) + sizeof h, h.payload_bytes);
  const u8 d = r.byte();
  if ((d & 1) && !runs.empty()) runs[r.u16() % runs.size()] ^= static_cast<char>(r.byte());
  payload += runs;
  return h.range_count;
}

std::string records(reader& r, const base_info& b, bool torn) {
  std::string out;
  u64 expect = b.ckpt_lsn + 1;
  std::size_t last_start = 0;
  for (int n = 0; n < li::kMaxRecords && !r.empty(); ++n) {
    const u8 c = r.byte();
    u64 lsn = expect;
    switch (c & 3) {
      case 1: lsn = expect - 1; break;
      case 2: lsn = expect + 1 + r.byte() % 3; break;
      case 3: lsn = r.u64v(); break;
      default: break;
    }
    std::string payload;
    std::uint32_t nranges = 0;
    if (c & 4) {
      append(payload, fmt::range_header{fmt::kMetaOffset + offsetof(fmt::meta_page, commits), 8, 0});
      append(payload, lsn);
      ++nranges;
    }
    // An offset chosen by two bits (log_input.h): the meta page, inside the
    // file, anywhere, or near the file's end.
    auto pick_offset = [&](u8 sel) -> u64 {
      switch (sel & 3) {
        case 0: return fmt::kMetaOffset + r.u16() % 4096;
        case 1: return fmt::kMetaOffset + r.u32() % (b.file_size - fmt::kMetaOffset);
        case 2: return r.u64v();
        default: return b.file_size - r.u16() % 4096;
      }
    };
    const int k = r.byte() % 64;
    for (int i = 0; i < k; ++i) {
      const u8 rc = r.byte();
      const u64 off = pick_offset(rc);
      const std::uint32_t len = pick_length(r, rc);
      if ((rc & 96) == 96) {  // a packed run, from Keel's encoder, perhaps damaged
        nranges += packed_run(payload, r, pick_offset);
        continue;
      }
      std::uint32_t flags = (rc & 64) ? fmt::kRangeZero : (rc & 32) ? fmt::kRangeCopy : 0;
      if (rc & 128) flags = r.u32();
      append(payload, fmt::range_header{off, len, flags});
      ++nranges;
      if (flags == fmt::kRangeZero) continue;
      if (flags == fmt::kRangeCopy) {  // the source offset, chosen like the destination's
        append(payload, pick_offset(r.byte()));
        continue;
      }
      const std::size_t body = static_cast<std::size_t>(std::min<u64>(fmt::align_up(len, 8), li::kMaxBody));
      const std::size_t from_input = std::min<std::size_t>(len, body);
      append_bytes(payload, r, from_input);
      payload.append(body - from_input, '\0');
    }
    fmt::record_header h{fmt::kRecordMagic, nranges, lsn, payload.size(), static_cast<u64>(n + 1), 0};
    if (c & 8) h.payload_bytes += static_cast<u64>(static_cast<std::int64_t>(r.byte() % 17) - 8);
    if (c & 16) h.magic ^= 0x100;
    if (c & 32) h.range_count = r.byte();
    h.checksum = keel::checksum(&h, offsetof(fmt::record_header, checksum));
    last_start = out.size();
    std::string rec;
    append(rec, h);
    rec += payload;
    fmt::record_trailer t{fmt::kCommitMagic, 0, (c & 64) ? lsn + 1 : lsn, keel::checksum(rec.data(), rec.size())};
    if (c & 128) t.checksum ^= 0x8000;
    append(rec, t);
    out += rec;
    expect = lsn + 1;
  }
  if (torn && out.size() > last_start) out.resize(last_start + (out.size() - last_start) / 2);
  return out;
}

void set_control(std::string& data, const base_info& b, bool same_boot, bool odd) {
  fmt::control_page c{};
  std::memcpy(&c, data.data() + fmt::kControlOffset, sizeof c);
  if (same_boot) {
    std::memcpy(c.magic, fmt::kControlMagic, 8);
    c.file_id = b.file_id;
    c.applied_lsn = b.ckpt_lsn;
    c.applied_log_pos = sizeof(fmt::file_header);
    c.journal_end = sizeof(fmt::file_header);
    c.checkpoint_lsn = b.ckpt_lsn;
    c.seqlock = odd ? 1 : 0;
  } else {
    std::memset(&c, 0, sizeof c);
  }
  std::memcpy(data.data() + fmt::kControlOffset, &c, sizeof c);
  if (same_boot) stamp_boot_id(data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* in, std::size_t size) {
  if (size > (256u << 10)) return -1;
  const base_info& b = base();
  reader r(in, size);
  const unsigned mode = r.byte();
  image im = b.im;
  im.flags = 0;
  set_control(im.data, b, mode & li::kSameBoot, mode & li::kHalfApplied);
  switch (mode & 3) {
    case li::kRaw:
      im.log = std::string(r.rest());
      break;
    case li::kHeader:
      im.log = b.log_header + std::string(r.rest());
      break;
    default:
      im.journal = b.journal_header;
      if (mode & li::kJournal) im.journal += journal_entries(r, b);
      im.log = b.log_header + records(r, b, mode & li::kTornTail);
      break;
  }
  const std::string path = scratch_dir() + "/r.keel";
  remove_store(path);
  keel_fuzz::write_file(path, im.data);
  keel_fuzz::write_file(path + "-log", im.log);
  keel_fuzz::write_file(path + "-journal", im.journal);
  if (const char* keep = std::getenv("KEEL_FUZZ_KEEP"); keep && *keep) {  // the files, to look at by hand
    keel_fuzz::write_file(std::string(keep) + "/r.keel", im.data);
    keel_fuzz::write_file(std::string(keep) + "/r.keel-log", im.log);
    keel_fuzz::write_file(std::string(keep) + "/r.keel-journal", im.journal);
  }
  const std::int64_t size_before = file_size(path);

  bool clean = false;
  keel::check_report first;
  try {
    first = check_store(path);
    clean = first.clean();
    say("check: " + describe(first));
  } catch (const keel::error& e) {
    say(std::string("check threw: ") + e.what());
    if (e.code() == keel::errc::corrupt) fail(kTarget, std::string("check threw on a damaged log: ") + e.what());
  }

  bool recovered = false;
  try {
    auto db = keel::store::open(path, fuzz_opts(true));
    recovered = true;
    const keel::store_info info = db->info();
    if (clean && info.last_lsn != first.lsn)
      fail(kTarget, "check's replay reached LSN " + std::to_string(first.lsn) + " (" + describe(first) +
                        "), recovery LSN " + std::to_string(info.last_lsn) + " (recovery " +
                        std::to_string(info.recovery) + ", " + std::to_string(info.recovered_records) + " records)");
    const read_stats st = read_everything(*db);
    say("recovery " + std::to_string(info.recovery) + ": " + std::to_string(info.recovered_records) +
        " records, " + std::to_string(info.restored_pages) + " pages restored, LSN " + std::to_string(info.last_lsn) +
        "; read " + std::to_string(st.entries) + " entries, " + std::to_string(st.errors) + " errors " + st.first_error);
    db->close();
  } catch (const keel::error& e) {
    say(std::string("writable open: ") + e.what());
    if (clean && e.code() == keel::errc::corrupt)
      fail(kTarget, "check called the store clean (" + describe(first) + ") but recovery refused it: " + e.what());
  }
  if (file_size(path) < size_before || file_size(path) > static_cast<std::int64_t>(base().max_size))
    fail(kTarget, "recovery took the data file's size from " + std::to_string(size_before) + " to " +
                      std::to_string(file_size(path)) + " (max size " + std::to_string(base().max_size) + ")");
  if (recovered) {
    try {
      const keel::check_report again = check_store(path);
      if (clean && (!again.clean() || again.entries != first.entries || again.lsn != first.lsn))
        fail(kTarget, "check before recovery: " + describe(first) + "\nafter: " + describe(again));
    } catch (const keel::error& e) {
      if (e.code() == keel::errc::corrupt) fail(kTarget, std::string("check threw after recovery: ") + e.what());
    }
    try {
      auto db = keel::store::open(path, fuzz_opts(true));
      write_something(*db);
      db->close();
      (void)check_store(path);
    } catch (const keel::error&) {
    }
  }
  remove_store(path);
  return 0;
}
