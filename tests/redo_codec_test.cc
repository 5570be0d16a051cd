// The redo record's range encodings (docs/FORMAT.md, "The redo log"):
// redo::encode packs ranges into runs, redo::decode gives back exactly the
// ranges encoded, and names what is wrong with a damaged run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "file/format.h"
#include "txn/redo_log.h"

namespace fmt = keel::fmt;
namespace redo = keel::redo;
using u64 = std::uint64_t;

namespace {

constexpr u64 kLimit = u64{1} << 40;  // the store's max size for decode

// A record's payload (what lies between header and trailer), its range count.
struct payload {
  std::string bytes;
  std::uint32_t count;
};
payload encode(const std::vector<redo::range>& ranges) {
  std::vector<std::byte> rec;
  redo::encode(rec, 7, 9, ranges);
  fmt::record_header h;
  std::memcpy(&h, rec.data(), sizeof h);
  REQUIRE(rec.size() == sizeof h + h.payload_bytes + sizeof(fmt::record_trailer));
  return {std::string(reinterpret_cast<const char*>(rec.data()) + sizeof h, h.payload_bytes), h.range_count};
}
std::string decode(const payload& p, std::vector<redo::range>& out) {
  out.clear();
  return redo::decode(reinterpret_cast<const std::byte*>(p.bytes.data()), p.bytes.size(), p.count, kLimit, out);
}

void expect_same(const std::vector<redo::range>& a, const std::vector<redo::range>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("range ", i);
    CHECK(a[i].off == b[i].off);
    CHECK(a[i].len == b[i].len);
    CHECK(a[i].src == b[i].src);
    REQUIRE((a[i].data == nullptr) == (b[i].data == nullptr));
    if (a[i].data) CHECK(std::memcmp(a[i].data, b[i].data, a[i].len) == 0);
  }
}

// A payload of one run header and a hand-made body.
payload run(u64 base, const std::string& body) {
  payload p{{}, 1};
  const fmt::range_header rh{base, static_cast<std::uint32_t>(body.size()), fmt::kRangePacked};
  p.bytes.append(reinterpret_cast<const char*>(&rh), sizeof rh);
  p.bytes += body;
  p.bytes.append(fmt::align_up(body.size(), 8) - body.size(), '\0');
  return p;
}
std::string varint(u64 v) {
  std::string s;
  for (; v >= 0x80; v >>= 7) s.push_back(static_cast<char>(v | 0x80));
  s.push_back(static_cast<char>(v));
  return s;
}

}  // namespace

TEST_CASE("redo codec: random ranges of every kind come back exactly, in order") {
  std::mt19937_64 rng(42);
  std::string pool(3u << 20, '\0');
  for (char& c : pool) c = static_cast<char>(rng());
  for (int round = 0; round < 40; ++round) {
    std::vector<redo::range> in;
    const int n = round == 0 ? 0 : static_cast<int>(rng() % 3000) + 1;
    for (int i = 0; i < n; ++i) {
      const u64 off = fmt::kMetaOffset + rng() % (kLimit / 2);
      const int kind = static_cast<int>(rng() % 3);
      // Mostly slot-sized; now and then a range too large for a run (1 MiB + 1).
      const std::uint32_t len = rng() % 200 == 0 ? (1u << 20) + 1 : static_cast<std::uint32_t>(rng() % 300);
      if (kind == 0)
        in.push_back({off, len, reinterpret_cast<const std::byte*>(pool.data() + rng() % (pool.size() - len))});
      else if (kind == 1)
        in.push_back({off, len, nullptr});
      else
        in.push_back({off, len, nullptr, fmt::kMetaOffset + rng() % (kLimit / 2)});
    }
    const payload p = encode(in);
    std::vector<redo::range> out;
    REQUIRE(decode(p, out).empty());
    expect_same(in, out);
  }
}

TEST_CASE("redo codec: a run ends where an offset jump does not fit its entry") {
  // Offsets 2^62 apart cannot be a delta of a packed entry: a new run starts.
  const u64 m = fmt::kMetaOffset;
  std::vector<redo::range> in{{m, 8, nullptr}, {(u64{1} << 62) + m, 8, nullptr}, {m, 8, nullptr}};
  const payload p = encode(in);
  CHECK(p.count == 3);
  std::vector<redo::range> out;
  out.clear();
  CHECK(redo::decode(reinterpret_cast<const std::byte*>(p.bytes.data()), p.bytes.size(), p.count, u64{1} << 63, out)
            .empty());
  expect_same(in, out);
}

TEST_CASE("redo codec: packed slots and moves take a fraction of plain ranges") {
  // 10,000 inserts (a 40-byte slot and an 8-byte control word each) and
  // 50,000 moves (copies of 40 bytes, sequential source and destination).
  std::mt19937_64 rng(7);
  std::string slot(40, 's');
  std::vector<redo::range> in;
  u64 plain = 0;
  for (u64 i = 0; i < 50000; ++i) {
    in.push_back({(1u << 30) + i * 40, 40, nullptr, (1u << 20) + i * 40});
    plain += 16 + 8;
  }
  std::vector<u64> offs;
  for (int i = 0; i < 10000; ++i) offs.push_back(fmt::kMetaOffset + rng() % (640u << 20));
  std::sort(offs.begin(), offs.end());
  for (u64 o : offs) {
    in.push_back({o, 40, reinterpret_cast<const std::byte*>(slot.data())});
    plain += 16 + 40;
  }
  for (u64 o : offs) {
    in.push_back({(700u << 20) + o / 40, 8, reinterpret_cast<const std::byte*>(slot.data())});
    plain += 16 + 8;
  }
  const payload p = encode(in);
  MESSAGE("plain ", plain, " bytes, packed ", p.bytes.size());
  CHECK(p.bytes.size() * 10 < plain * 5);  // under half
  std::vector<redo::range> out;
  REQUIRE(decode(p, out).empty());
  expect_same(in, out);
}

TEST_CASE("redo codec: damaged runs are named, never read past") {
  std::vector<redo::range> out;
  auto bad = [&](const payload& p) { return decode(p, out); };
  const u64 base = fmt::kMetaOffset;
  // One good entry: 8 zero bytes at base.
  CHECK(bad(run(base, varint(0 << 2 | 1) + varint(8))).empty());
  CHECK(out.size() == 1);
  CHECK(bad(run(base, varint(0 << 2 | 1))) == "range 0, entry 0 is malformed");               // no length
  CHECK(bad(run(base, std::string(11, '\x80') + '\x01')) == "range 0, entry 0 is malformed");  // > 10 bytes
  CHECK(bad(run(base, std::string(9, '\xff') + '\x02')) == "range 0, entry 0 is malformed");   // past 64 bits
  CHECK(bad(run(base, varint(0 << 2 | 1) + varint(u64{1} << 32))) == "range 0, entry 0 is malformed");  // > u32
  CHECK(bad(run(base, varint(0 << 2 | 3) + varint(8))) == "range 0, entry 0 is malformed");  // kind 3
  CHECK(bad(run(base, varint(0 << 2 | 0) + varint(9) + "12345678")) == "range 0, entry 0 is malformed");  // bytes cut
  CHECK(bad(run(base, varint(0 << 2 | 2) + varint(8))) == "range 0, entry 0 is malformed");  // copy without source
  // The second entry jumps before the meta page (zigzag of -2 * base).
  const std::string two = varint(0 << 2 | 1) + varint(8) + varint(((2 * base + 16) * 2 - 1) << 2 | 1) + varint(8);
  const std::string why = bad(run(base, two));
  CHECK(why.find("range 0, entry 1 [") == 0);
  CHECK(why.find("lies outside the store") != std::string::npos);
  // A copy whose source lies past max size.
  const std::string far = bad(run(base, varint(0 << 2 | 2) + varint(8) + varint(kLimit * 2)));
  CHECK(far.find("range 0, entry 0's copy source [") == 0);
  // A run longer than the payload, and payload bytes after the last range.
  payload cut = run(base, varint(1) + varint(8));
  cut.bytes.resize(cut.bytes.size() - 8);
  cut.bytes[8] = 40;  // the header's length field
  CHECK(bad(cut) == "range 0 is malformed");
  payload extra = run(base, varint(1) + varint(8));
  extra.bytes += std::string(8, '\0');
  CHECK(bad(extra) == "payload holds bytes past its ranges");
  payload two_runs = run(base, varint(1) + varint(8));
  two_runs.count = 2;
  CHECK(bad(two_runs) == "range 1 is cut off");
}
