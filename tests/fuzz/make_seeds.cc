// Regenerates the seed inputs of the fuzz corpus (files named seed-*; other
// files there are found inputs and regressions and are left alone) and
// fuzz_log_replay's base image:
//
//   build/tests/fuzz/fuzz_make_seeds tests/fuzz
//
// Stores carry a random file id and hash seeds, so a regeneration gives
// different bytes with the same meaning. The log seeds are real logs
// written over log_replay_base.img, so regenerate both together.
#include <bit>
#include <cstring>
#include <filesystem>
#include <keel/bytes_tree.h>
#include <keel/tree_map.h>
#include <random>

#include "file/format.h"
#include "txn/redo_log.h"
#include "fuzz_common.h"
#include "log_input.h"
#include "samples.h"

using namespace keel_fuzz;
namespace fmt = keel::fmt;
namespace li = keel_fuzz::log_input;

namespace {

std::string g_dir;

void emit(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string p = g_dir + "/corpus/" + target + "/seed-" + name;
  keel_fuzz::write_file(p, bytes);
  std::printf("%-60s %7zu bytes\n", p.c_str(), bytes.size());
}

template <class T>
void append(std::string& s, const T& v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// A few more commits on an open sample store: what a dead writer leaves.
void more_commits(keel::store& db, int n) {
  auto h = keel::hash_map<u64, u64>::open(db, "h");
  auto b = keel::bytes_map::open(db, "b");
  auto t = keel::tree_map<u64, u64>::open(db, "t");
  auto bt = keel::bytes_tree::open(db, "bt");
  for (int i = 0; i < n; ++i)
    db.write([&](keel::write_txn& tx) {
      h.put(tx, 500 + i, i);
      if (i % 2) h.erase(tx, 7919 * i);
      b.put(tx, "key" + std::to_string(i), std::string(30 + i, 'n'));
      t.put(tx, 1000 + i, i);
      t.erase(tx, i * 3);
      bt.put(tx, "new" + std::to_string(i), std::string(i * 7, 'w'));
    });
}

void open_check_seeds() {
  const std::string t = "fuzz_open_check";
  const std::string p = scratch_dir() + "/seed.keel";
  build_sample(p);
  emit(t, "clean.img", pack(snapshot(p)));
  {  // the newest superblock destroyed: open falls back to the older slot
    image im = snapshot(p);
    u64 s0, s1;
    std::memcpy(&s0, im.data.data() + 24, 8);
    std::memcpy(&s1, im.data.data() + fmt::kPage + 24, 8);
    im.data[(s1 > s0 ? fmt::kPage : 0) + 100] ^= 0x40;
    emit(t, "newest-superblock-damaged.img", pack(im));
  }
  for (auto mode : {keel::durability::checkpoint, keel::durability::sync}) {
    build_sample(p);
    keel::options o = fuzz_opts(true, mode);
    auto db = keel::store::open(p, o);
    more_commits(*db, 4);
    image im = snapshot(p);  // the files as a writer killed now leaves them
    const std::string m = mode == keel::durability::sync ? "sync" : "checkpoint";
    emit(t, "dead-writer-" + m + "-new-boot.img", pack(im));
    im.flags = 1;
    emit(t, "dead-writer-" + m + "-same-boot.img", pack(im));
    if (mode == keel::durability::checkpoint) {
      im.data[fmt::kControlOffset + offsetof(fmt::control_page, seqlock)] = 1;
      emit(t, "dead-writer-half-applied.img", pack(im));
    }
    db->close();
  }
  {
    remove_store(p);
    keel::options o = fuzz_opts(true);
    o.create_if_missing = true;
    keel::store::open(p, o)->close();
    emit(t, "empty.img", pack(snapshot(p)));
  }
  {  // a byte-string tree of height 3 (long keys: few cells per node)
    remove_store(p);
    keel::options o = fuzz_opts(true);
    o.create_if_missing = true;
    auto db = keel::store::open(p, o);
    auto bt = keel::bytes_tree::open(*db, "deep");
    db->write([&](keel::write_txn& tx) {
      for (int i = 0; i < 40; ++i) bt.put(tx, std::string(1000, 'd') + std::to_string(100 + i * 37 % 40), "v");
    });
    db->close();
    emit(t, "deep-bytes-tree.img", pack(snapshot(p)));
  }
  remove_store(p);
}

// Real records of the log, re-encoded in the structured format.
std::string structured_records(const std::string& log) {
  std::string out;
  for (std::size_t pos = sizeof(fmt::file_header); pos + sizeof(fmt::record_header) <= log.size();) {
    fmt::record_header h;
    std::memcpy(&h, log.data() + pos, sizeof h);
    out.push_back(0);  // next LSN, nothing else
    std::vector<keel::redo::range> ranges;  // packed runs decoded: one structured range each
    const auto* body = reinterpret_cast<const std::byte*>(log.data() + pos + sizeof h);
    if (!keel::redo::decode(body, h.payload_bytes, h.range_count, std::uint64_t{1} << 62, ranges).empty()) break;
    if (ranges.size() > 63) std::fprintf(stderr, "warning: a record with %zu ranges is cut to 63\n", ranges.size());
    out.push_back(static_cast<char>(std::min<std::size_t>(ranges.size(), 63)));
    for (std::size_t i = 0; i < ranges.size() && i < 63; ++i) {
      const keel::redo::range& g = ranges[i];
      const bool zero = !g.data && g.src == 0, copy = g.src != 0;
      out.push_back(static_cast<char>(2 | 12 | (zero ? 64 : 0) | (copy ? 128 : 0)));
      append(out, g.off);
      append(out, g.len);
      if (copy) {  // flags, then the source as a raw u64
        append(out, fmt::kRangeCopy);
        out.push_back(2);
        append(out, g.src);
        continue;
      }
      if (zero) continue;
      if (g.len > li::kMaxBody) std::fprintf(stderr, "warning: a range of %u bytes is cut\n", g.len);
      out.append(reinterpret_cast<const char*>(g.data), g.len);
    }
    pos += sizeof h + h.payload_bytes + sizeof(fmt::record_trailer);
  }
  return out;
}

std::string structured_journal(const std::string& jrn) {
  std::string out;
  std::string entries;
  int n = 0;
  for (std::size_t pos = sizeof(fmt::file_header); pos + sizeof(fmt::journal_entry) <= jrn.size() && n < 7; ++n) {
    fmt::journal_entry e;
    std::memcpy(&e, jrn.data() + pos, sizeof e);
    const std::size_t lines = static_cast<std::size_t>(std::popcount(e.line_mask)) * fmt::kLine;
    entries.push_back(0);  // raw page, the checkpoint's epoch, right checksum
    append(entries, e.page_offset);
    append(entries, e.line_mask);
    entries.append(jrn, pos + sizeof e, lines);
    pos += sizeof e + lines;
  }
  out.push_back(static_cast<char>(n));
  return out + entries;
}

void log_replay_seeds() {
  const std::string t = "fuzz_log_replay";
  const std::string p = scratch_dir() + "/base.keel";
  build_sample(p);
  const image base = snapshot(p);
  keel_fuzz::write_file(log_replay_base_path(), pack(base));
  std::printf("%-60s %7zu bytes\n", log_replay_base_path().c_str(), pack(base).size());
  install(base, p);
  auto db = keel::store::open(p, fuzz_opts(true));
  more_commits(*db, 5);
  const image after = snapshot(p);
  db->close();
  remove_store(p);
  const std::string recs = structured_records(after.log);
  emit(t, "raw-log", std::string(1, li::kRaw) + after.log);
  emit(t, "header-only", std::string(1, li::kHeader));
  emit(t, "records", std::string(1, li::kStructured) + recs);
  emit(t, "records-journal", std::string(1, li::kStructured | li::kJournal) + structured_journal(after.journal) + recs);
  emit(t, "records-same-boot", std::string(1, li::kStructured | li::kSameBoot) + recs);
  emit(t, "records-half-applied", std::string(1, li::kStructured | li::kSameBoot | li::kHalfApplied) + recs);
  emit(t, "records-torn-tail", std::string(1, li::kStructured | li::kTornTail) + recs);
  // Hand-made: a range past the end of the file, and one over the superblocks.
  std::string past(1, li::kStructured);
  past += std::string{'\x04', '\x01', '\x0e'};  // next LSN + meta count; one range, raw offset and length
  append(past, u64{1} << 40);
  append(past, std::uint32_t{8});
  past += "12345678";
  emit(t, "range-past-end", past);
  std::string low(1, li::kStructured);
  low += std::string{'\x04', '\x01', '\x0e'};
  append(low, u64{0});
  append(low, std::uint32_t{8});
  low += "superblk";
  emit(t, "range-over-superblock", low);
}

void ops_seeds(const std::string& target, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 12; ++i) {
    const std::size_t len = 16u << (i % 6);
    std::string s(len, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    char name[32];
    std::snprintf(name, sizeof name, "random-%02d", i);
    emit(target, name, s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TESTS_FUZZ_DIR   (e.g. tests/fuzz)\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  ::setenv("KEEL_FUZZ_BASE", (g_dir + "/log_replay_base.img").c_str(), 1);
  for (const char* t : {"fuzz_open_check", "fuzz_log_replay", "fuzz_ops_hash", "fuzz_ops_tree"}) {
    const std::filesystem::path d = g_dir + "/corpus/" + t;
    std::filesystem::create_directories(d);
    for (const auto& e : std::filesystem::directory_iterator(d))
      if (e.path().filename().string().rfind("seed-", 0) == 0) std::filesystem::remove(e.path());
  }
  open_check_seeds();
  log_replay_seeds();
  ops_seeds("fuzz_ops_hash", 1);
  ops_seeds("fuzz_ops_tree", 2);
  {  // hand-made: bulk inserts through resizes, commit, reopen, verify
    std::string h = {'\x08', '\x08', '\x00', '\x00', '\xc8', '\x0d', '\x12', '\x01', '\x11',
                     '\x14', 'A',    '\xa0', '\x15', 'z',    '\xe0', '\x0d', '\x09', '\x10',
                     '\x00', '\x40', '\x0e', '\x12', '\x00', '\x11'};
    emit("fuzz_ops_hash", "bulk-resize-reopen", h);
    std::string t = {'\x0c', '\x14', '\x00', '\xf0', '\x01', '\x0d', '\x0a', '\x10', '\x80', '\x0d',
                     '\x09', '\x3f', '\x01', '\x0e', '\x15', '\xc8', 'a',    '\xf5', '\x15', '\xd0',
                     'b',    '\xe0', '\x0d', '\x12', '\x01', '\x1d', 'a',    '\x00', '\xd0', 'b'};
    emit("fuzz_ops_tree", "bulk-split-merge-reopen", t);
  }
  return 0;
}
