// keel::tree_map unit tests.
//
//  - key_codec: for random pairs (and the extremes) of every provided codec
//    type, a < b exactly when the encodings memcmp-compare below, equal keys
//    encode equally, and decode(encode(x)) == x; the documented byte layout
//    (big-endian, sign bit flipped, tuples concatenated);
//  - every operation against a std::map on small trees (get / insert / put /
//    append / update / erase / erase_range / clear / size / first / last /
//    lower_bound / upper_bound / for_each and for_each_reverse over ranges,
//    empty ranges, lo >= hi, early stop), detail::tree_check clean after every
//    phase;
//  - append of a key not above the maximum is errc::invalid_argument and
//    changes nothing; type checks by name; read-only opens; reopen;
//  - leaf fill: appends fill leaves densely (>= 90 %), random inserts less;
//  - space: a 1,000,000-entry tree's live bytes against the raw bytes (printed).
//
// Environment: KEEL_TREE_SEED (default: from the clock; printed).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "support/seeds.h"
#include "support/temp_dir.h"
#include "support/testing.h"
#include "support/trees.h"

namespace {

using u64 = std::uint64_t;
using i64 = std::int64_t;
using u32 = std::uint32_t;
using i32 = std::int32_t;
using clk = std::chrono::steady_clock;
using keel::operator""_MiB;
using keel::operator""_GiB;
using keel_test::describe;
using keel_test::env_u64;
using keel_test::tstat;

u64 base_seed() {
  static const u64 s = [] {
    const u64 v = keel_test::env_seed("KEEL_TREE_SEED");
    std::printf("tree_map_test: seed %llu (set KEEL_TREE_SEED to repeat)\n", static_cast<unsigned long long>(v));
    return v;
  }();
  return s;
}

// ------------------------------------------------------------ helpers

using problems_t = keel_test::tree_problems_t;

problems_t check_tree(const keel::store& db, u64 root) { return keel_test::tree_problems(db, root); }
#define REQUIRE_TREE_OK(db, root, phase)                                                            \
  do {                                                                                              \
    const problems_t probs_ = check_tree((db), (root));                                             \
    REQUIRE_MESSAGE(probs_.empty(), "tree_check after ", (phase), ": ", describe(probs_));          \
  } while (0)


template <class K>
std::array<unsigned char, keel::key_codec<K>::size> enc(const K& k) {
  std::array<unsigned char, keel::key_codec<K>::size> b;
  keel::key_codec<K>::encode(k, b.data());
  return b;
}

template <class K>
int enc_cmp(const K& a, const K& b) {
  const auto ea = enc(a), eb = enc(b);
  const int c = std::memcmp(ea.data(), eb.data(), ea.size());
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

template <class K>
std::string hex(const K& k) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : enc(k)) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

// Property check of one codec: order, equality and round trip, over the
// given values (all pairs when few, else random pairs).
template <class K>
void check_codec(const std::vector<K>& vals, std::mt19937_64& rng, const char* what_c) {
  const std::string what(what_c);
  CAPTURE(what);
  u64 pairs = 0, less = 0, greater = 0, bad_order = 0, bad_trip = 0;
  std::string first;
  auto one = [&](const K& a, const K& b) {
    const int want = a < b ? -1 : b < a ? 1 : 0;
    const int got = enc_cmp(a, b);
    if (want != got && bad_order++ == 0)
      first = "keys encoded " + hex(a) + " and " + hex(b) + ": K's operator< says " + std::to_string(want) +
              ", memcmp of the encodings says " + std::to_string(got);
    ++pairs;
    if (want < 0) ++less;
    if (want > 0) ++greater;
  };
  for (const K& a : vals) {
    const K back = keel::key_codec<K>::decode(enc(a).data());
    if (!(back == a) && bad_trip++ == 0) first += "; decode(encode(x)) != x for x encoded " + hex(a);
    one(a, a);
  }
  if (vals.size() <= 400) {
    for (const K& a : vals)
      for (const K& b : vals) one(a, b);
  } else {
    for (int i = 0; i < 200000; ++i) one(vals[rng() % vals.size()], vals[rng() % vals.size()]);
    // Neighbours in sorted order (the pairs random sampling rarely hits).
    std::vector<K> s = vals;
    std::sort(s.begin(), s.end());
    for (std::size_t i = 1; i < s.size(); ++i) one(s[i - 1], s[i]);
  }
  CHECK_MESSAGE(bad_order == 0, what, ": ", bad_order, " of ", pairs, " pairs order differently, e.g. ", first);
  CHECK_MESSAGE(bad_trip == 0, what, ": ", bad_trip, " of ", vals.size(), " values do not round-trip: ", first);
  CHECK_MESSAGE(less > 0, what, ": no ordered pair was tested");
  CHECK_MESSAGE(greater > 0, what, ": no reversed pair was tested");
}

// Integers: extremes, small values around 0, random bits, random small widths.
template <class T>
std::vector<T> int_values(std::mt19937_64& rng, std::size_t n) {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {L::min(), L::max(), T(0), T(1), static_cast<T>(L::max() - 1), static_cast<T>(L::min() + 1)};
  if constexpr (std::is_signed_v<T>) {
    v.push_back(T(-1));
    v.push_back(T(-2));
  }
  while (v.size() < n) {
    const u64 r = rng();
    const int shape = static_cast<int>(rng() % 4);
    T x;
    if (shape == 0)
      x = static_cast<T>(r);
    else if (shape == 1)
      x = static_cast<T>(static_cast<i64>(r % 512) - 256);
    else if (shape == 2)
      x = static_cast<T>(r >> (rng() % 64));
    else
      x = static_cast<T>(L::min() + static_cast<T>(r % 300));
    v.push_back(x);
  }
  return v;
}

enum class side : std::int16_t { sell = -5, none = 0, buy = 7 };
enum class level : std::uint8_t { lo = 1, mid = 100, hi = 250 };

// A tree equals a model: size, every key, an ascending and a descending walk,
// first and last.
template <class K, class V>
void require_equal(const keel::tree_map<K, V>& t, const std::map<K, V>& m, const std::string& phase) {
  INFO("phase: ", phase);
  REQUIRE(t.size() == m.size());
  for (const auto& [k, v] : m) {
    const auto got = t.get(k);
    REQUIRE_MESSAGE(got.has_value(), "key ", hex(k), " missing");
    REQUIRE(*got == v);
  }
  auto it = m.begin();
  u64 n = 0;
  t.for_each([&](const K& k, const V& v) {
    REQUIRE_MESSAGE(it != m.end(), "for_each visits more than the model's ", m.size(), " keys");
    REQUIRE_MESSAGE(k == it->first, "for_each visit ", n, ": key ", hex(k), ", model ", hex(it->first));
    REQUIRE(v == it->second);
    ++it;
    ++n;
  });
  REQUIRE(n == m.size());
  if (m.empty()) {
    REQUIRE(!t.first());
    REQUIRE(!t.last());
  } else {
    REQUIRE(t.first() == std::optional<std::pair<K, V>>(*m.begin()));
    REQUIRE(t.last() == std::optional<std::pair<K, V>>(*m.rbegin()));
  }
}

template <class K, class V>
std::vector<std::pair<K, V>> walk(const keel::tree_map<K, V>& t, const K& lo, const K& hi, bool reverse,
                                  std::size_t limit = SIZE_MAX) {
  std::vector<std::pair<K, V>> out;
  auto f = [&](const K& k, const V& v) {
    out.emplace_back(k, v);
    return out.size() < limit;
  };
  if (reverse)
    t.for_each_reverse(lo, hi, f);
  else
    t.for_each(lo, hi, f);
  return out;
}
template <class K, class V>
std::vector<std::pair<K, V>> model_walk(const std::map<K, V>& m, const K& lo, const K& hi, bool reverse,
                                        std::size_t limit = SIZE_MAX) {
  std::vector<std::pair<K, V>> out;
  if (!(lo < hi)) return out;
  auto a = m.lower_bound(lo), b = m.lower_bound(hi);
  if (!reverse) {
    for (auto it = a; it != b && out.size() < limit; ++it) out.emplace_back(*it);
  } else {
    for (auto it = b; it != a && out.size() < limit;) {
      --it;
      out.emplace_back(*it);
    }
  }
  return out;
}

}  // namespace

// ====================================================================== key_codec

TEST_CASE("key_codec: integers order as memcmp of their encodings and round-trip, extremes included") {
  std::mt19937_64 rng(base_seed());
  check_codec(int_values<std::uint8_t>(rng, 300), rng, "u8");
  check_codec(int_values<std::int8_t>(rng, 300), rng, "i8");
  check_codec(int_values<std::uint16_t>(rng, 5000), rng, "u16");
  check_codec(int_values<std::int16_t>(rng, 5000), rng, "i16");
  check_codec(int_values<u32>(rng, 5000), rng, "u32");
  check_codec(int_values<i32>(rng, 5000), rng, "i32");
  check_codec(int_values<u64>(rng, 5000), rng, "u64");
  check_codec(int_values<i64>(rng, 5000), rng, "i64");
  check_codec(std::vector<bool>{false, true}, rng, "bool");
  check_codec(std::vector<side>{side::sell, side::none, side::buy}, rng, "enum : int16");
  check_codec(std::vector<level>{level::lo, level::mid, level::hi}, rng, "enum : uint8");

  // The documented layout: big-endian, sign bit flipped.
  CHECK(hex<u32>(0x01020304u) == "01020304");
  CHECK(hex<i32>(0) == "80000000");
  CHECK(hex<i32>(-1) == "7fffffff");
  CHECK(hex<i64>(std::numeric_limits<i64>::min()) == "0000000000000000");
  CHECK(hex<i64>(std::numeric_limits<i64>::max()) == "ffffffffffffffff");
  CHECK(hex<u64>(std::numeric_limits<u64>::max()) == "ffffffffffffffff");
  CHECK(hex<std::int8_t>(-128) == "00");
  CHECK(keel::key_codec<u64>::size == 8);
  CHECK(keel::key_codec<std::int16_t>::size == 2);
}

TEST_CASE("key_codec: pairs and tuples (symbol u32, time i64) order by symbol, then time") {
  std::mt19937_64 rng(base_seed() ^ 0x77);
  using P = std::pair<u32, i64>;
  using T = std::tuple<u32, i64>;
  using T3 = std::tuple<std::uint8_t, std::int16_t, u64, i32>;
  static_assert(keel::key_codec<P>::size == 12 && keel::key_codec<T>::size == 12);
  static_assert(keel::key_codec<T3>::size == 1 + 2 + 8 + 4);
  const auto syms = int_values<u32>(rng, 40);
  const auto times = int_values<i64>(rng, 60);
  std::vector<P> ps;
  std::vector<T> ts;
  std::vector<T3> t3;
  for (u32 s : syms)
    for (i64 t : times) {
      ps.emplace_back(s, t);
      ts.emplace_back(s, t);
    }
  const auto a = int_values<std::uint8_t>(rng, 20);
  const auto b = int_values<std::int16_t>(rng, 20);
  const auto c = int_values<u64>(rng, 20);
  const auto d = int_values<i32>(rng, 20);
  for (int i = 0; i < 20000; ++i)
    t3.emplace_back(a[rng() % a.size()], b[rng() % b.size()], c[rng() % c.size()], d[rng() % d.size()]);
  check_codec(ps, rng, "pair<u32, i64>");
  check_codec(ts, rng, "tuple<u32, i64>");
  check_codec(t3, rng, "tuple<u8, i16, u64, i32>");
  // Concatenated: the symbol's bytes, then the time's.
  CHECK(hex(P{0x0A0B0C0Du, -1}) == "0a0b0c0d7fffffffffffffff");
  CHECK(hex(T{1u, 0}) == "000000018000000000000000");
  // Nested: a pair inside a tuple.
  using N = std::tuple<P, std::uint16_t>;
  std::vector<N> ns;
  for (int i = 0; i < 3000; ++i)
    ns.emplace_back(ps[rng() % ps.size()], static_cast<std::uint16_t>(rng() % 4));
  check_codec(ns, rng, "tuple<pair<u32, i64>, u16>");
}

TEST_CASE("key_codec: std::array of unsigned bytes, std::byte and of integers; chrono durations and time points") {
  std::mt19937_64 rng(base_seed() ^ 0x99);
  {
    std::vector<std::array<unsigned char, 6>> v;
    for (int i = 0; i < 5000; ++i) {
      std::array<unsigned char, 6> a;
      for (auto& x : a) x = static_cast<unsigned char>(rng() % 4 == 0 ? (rng() % 2 ? 0xFF : 0x00) : rng());
      v.push_back(a);
    }
    check_codec(v, rng, "array<unsigned char, 6>");
  }
  {
    std::vector<std::array<std::byte, 3>> v;
    for (int i = 0; i < 3000; ++i) v.push_back({std::byte(rng() % 3 * 0x7F), std::byte(rng()), std::byte(rng() % 2 ? 0x80 : 0x7F)});
    check_codec(v, rng, "array<std::byte, 3>");
  }
  {
    std::vector<std::array<i32, 3>> v;
    const auto x = int_values<i32>(rng, 30);
    for (int i = 0; i < 5000; ++i) v.push_back({x[rng() % x.size()], x[rng() % x.size()], x[rng() % x.size()]});
    check_codec(v, rng, "array<i32, 3>");
    static_assert(keel::key_codec<std::array<i32, 3>>::size == 12);
  }
  {
    using namespace std::chrono;
    std::vector<nanoseconds> ns;
    std::vector<duration<i32, std::milli>> ms;
    std::vector<time_point<system_clock, nanoseconds>> tp;
    std::vector<time_point<steady_clock, microseconds>> stp;
    std::vector<time_point<system_clock, duration<u32>>> utp;
    for (i64 x : int_values<i64>(rng, 4000)) {
      ns.emplace_back(x);
      tp.emplace_back(nanoseconds(x));
      stp.emplace_back(microseconds(x));
    }
    for (i32 x : int_values<i32>(rng, 4000)) ms.emplace_back(x);
    for (u32 x : int_values<u32>(rng, 4000)) utp.emplace_back(duration<u32>(x));
    check_codec(ns, rng, "nanoseconds");
    check_codec(ms, rng, "duration<i32, milli>");
    check_codec(tp, rng, "system_clock time_point<ns>");
    check_codec(stp, rng, "steady_clock time_point<us>");
    check_codec(utp, rng, "time_point<duration<u32>>");
    using Q = std::pair<u32, time_point<system_clock, nanoseconds>>;
    std::vector<Q> q;
    for (int i = 0; i < 5000; ++i) q.emplace_back(static_cast<u32>(rng() % 5), tp[rng() % tp.size()]);
    check_codec(q, rng, "pair<u32, system_clock time_point>");
  }
}

// key_codec.h promises "a < b exactly when encode(a) memcmp-precedes
// encode(b)" for every provided codec, and lists "std::array of
// bytes/chars (as is)". Copying signed bytes as is breaks that promise:
// std::array<signed char>'s operator< is signed (-1 < 1), memcmp is not
// (0xff > 0x01). The scalar signed char codec flips the sign bit; the
// array one does not. (std::array<char> is the same on every ABI where
// char is signed, such as x86-64 Linux.)
TEST_CASE("key_codec: std::array of signed bytes orders as its operator< (signed char, and char where signed)") {
  std::mt19937_64 rng(base_seed() ^ 0x5C);
  std::vector<std::array<signed char, 2>> sv;
  for (int i = 0; i < 300; ++i) sv.push_back({static_cast<signed char>(rng()), static_cast<signed char>(rng())});
  sv.push_back({-1, 0});
  sv.push_back({1, 0});
  check_codec(sv, rng, "array<signed char, 2>");
  if (std::is_signed_v<char>) {
    std::vector<std::array<char, 2>> cv;
    for (int i = 0; i < 300; ++i) cv.push_back({static_cast<char>(rng()), static_cast<char>(rng())});
    check_codec(cv, rng, "array<char, 2> (char is signed here)");
  }
}

// ====================================================================== operations

TEST_CASE("tree_map operations against std::map on small trees, tree_check after every phase") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("t"), keel_test::small_opts());
  auto t = keel::tree_map<i64, u64>::open(*db, "t");
  std::map<i64, u64> m;
  REQUIRE_TREE_OK(*db, t.root(), "open");

  // Empty tree.
  CHECK(t.size() == 0);
  CHECK(!t.get(0));
  CHECK(!t.contains(5));
  CHECK(!t.first());
  CHECK(!t.last());
  CHECK(!t.lower_bound(std::numeric_limits<i64>::min()));
  CHECK(!t.upper_bound(0));
  CHECK(walk(t, std::numeric_limits<i64>::min(), std::numeric_limits<i64>::max(), false).empty());
  CHECK(walk(t, std::numeric_limits<i64>::min(), std::numeric_limits<i64>::max(), true).empty());
  db->write([&](keel::write_txn& tx) {
    CHECK(!t.erase(tx, 3));
    CHECK(t.erase_range(tx, -100, 100) == 0);
    CHECK(!t.update(tx, 3, [](u64& v) { v = 1; }));
    t.clear(tx);
    CHECK(t.size(tx) == 0);
  });
  require_equal(t, m, "empty");
  REQUIRE_TREE_OK(*db, t.root(), "empty operations");

  // insert / put / get semantics, keys at the extremes and around 0.
  const i64 mn = std::numeric_limits<i64>::min(), mx = std::numeric_limits<i64>::max();
  db->write([&](keel::write_txn& tx) {
    CHECK(t.insert(tx, 0, 100));
    CHECK(!t.insert(tx, 0, 999));  // present: unchanged
    CHECK(t.get(tx, 0) == std::optional<u64>(100));
    CHECK(t.put(tx, -1, 101));
    CHECK(!t.put(tx, -1, 102));  // present: assigned
    CHECK(t.get(tx, -1) == std::optional<u64>(102));
    CHECK(t.insert(tx, mn, 1));
    CHECK(t.insert(tx, mx, 2));
    CHECK(t.put(tx, 1, 103));
    CHECK(t.size(tx) == 5);
  });
  m = {{0, 100}, {-1, 102}, {mn, 1}, {mx, 2}, {1, 103}};
  require_equal(t, m, "five keys");
  REQUIRE_TREE_OK(*db, t.root(), "five keys");
  CHECK(t.first()->first == mn);
  CHECK(t.last()->first == mx);
  CHECK(t.lower_bound(mn)->first == mn);
  CHECK(t.upper_bound(mn)->first == -1);
  CHECK(t.lower_bound(-1)->first == -1);
  CHECK(t.upper_bound(-1)->first == 0);
  CHECK(t.lower_bound(2)->first == mx);
  CHECK(!t.upper_bound(mx));
  CHECK(t.lower_bound(mx)->second == 2);

  // Many keys (several levels), update in place, ranges, erase, erase_range.
  std::mt19937_64 rng(base_seed() ^ 0x0b5);
  std::vector<i64> keys;
  for (i64 k = -20000; k < 20000; k += 3) keys.push_back(k * 7919);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (std::size_t i = 0; i < keys.size(); i += 2000)
    db->write([&](keel::write_txn& tx) {
      for (std::size_t j = i; j < std::min(keys.size(), i + 2000); ++j) {
        const u64 v = static_cast<u64>(keys[j]) * 3 + 1;
        CHECK(t.insert(tx, keys[j], v) == (m.count(keys[j]) == 0));
        m.emplace(keys[j], v);
      }
    });
  require_equal(t, m, "random inserts");
  REQUIRE_TREE_OK(*db, t.root(), "random inserts");
  CHECK(tstat(*db, t.root()).height >= 2);
  CHECK(tstat(*db, t.root()).entries == m.size());

  db->write([&](keel::write_txn& tx) {
    for (int i = 0; i < 500; ++i) {
      const i64 k = keys[rng() % keys.size()];
      CHECK(t.update(tx, k, [](u64& v) { v ^= 0xABCDEF; }));
      m[k] ^= 0xABCDEF;
    }
    CHECK(t.update(tx, 1, [](u64& v) { v = 0; }));  // from the five-key phase
    CHECK(!t.update(tx, 2, [](u64& v) { v = 0; }));  // absent
    CHECK(!t.get(tx, 2));
  });
  m[1] = 0;
  require_equal(t, m, "updates");

  // Ranges both directions, with limits, empty and reversed bounds.
  for (int i = 0; i < 300; ++i) {
    i64 lo = static_cast<i64>(rng() % 400000) - 200000, hi = lo + static_cast<i64>(rng() % 50000);
    lo *= 797;
    hi *= 797;
    if (i % 10 == 0) std::swap(lo, hi);  // lo >= hi: nothing
    if (i % 17 == 0) hi = lo;
    if (i % 23 == 0) lo = mn;
    if (i % 29 == 0) hi = mx;
    const std::size_t limit = i % 3 == 0 ? SIZE_MAX : rng() % 40;
    for (bool rev : {false, true}) {
      const auto got = walk(t, lo, hi, rev, limit == 0 ? 1 : limit);
      const auto want = model_walk(m, lo, hi, rev, limit == 0 ? 1 : limit);
      REQUIRE_MESSAGE(got == want, "range [", lo, ", ", hi, ") ", rev ? "reverse" : "forward", " limit ", limit,
                      ": got ", got.size(), " entries, model ", want.size());
    }
    const auto lb = t.lower_bound(lo);
    auto mlb = m.lower_bound(lo);
    REQUIRE(lb == (mlb == m.end() ? std::nullopt : std::optional<std::pair<i64, u64>>(*mlb)));
    const auto ub = t.upper_bound(lo);
    auto mub = m.upper_bound(lo);
    REQUIRE(ub == (mub == m.end() ? std::nullopt : std::optional<std::pair<i64, u64>>(*mub)));
  }
  // Inside the transaction: for_each(tx, lo, hi) sees its own writes.
  {
    auto tx = db->begin_write();
    const i64 lo = -5 * 7919 * 3, hi = 5 * 7919 * 3;
    t.put(tx, 7, 7);
    std::vector<std::pair<i64, u64>> got;
    t.for_each(tx, lo, hi, [&](const i64& k, const u64& v) { got.emplace_back(k, v); });
    auto mm = m;
    mm[7] = 7;
    CHECK(got == model_walk(mm, lo, hi, false));
    got.clear();
    t.for_each(tx, hi, lo, [&](const i64& k, const u64& v) { got.emplace_back(k, v); });
    CHECK(got.empty());
    tx.abort();
  }
  require_equal(t, m, "aborted put");

  // erase single keys, erase_range, then most of the tree (merges, root collapse).
  db->write([&](keel::write_txn& tx) {
    for (int i = 0; i < 3000; ++i) {
      const i64 k = keys[rng() % keys.size()];
      CHECK(t.erase(tx, k) == (m.erase(k) == 1));
    }
  });
  require_equal(t, m, "erases");
  REQUIRE_TREE_OK(*db, t.root(), "erases");
  for (int i = 0; i < 40; ++i) {
    i64 lo = (static_cast<i64>(rng() % 40000) - 20000) * 7919, hi = lo + static_cast<i64>(rng() % 3000) * 7919;
    if (i % 8 == 0) std::swap(lo, hi);
    const u64 n = db->write([&](keel::write_txn& tx) { return t.erase_range(tx, lo, hi); });
    u64 want = 0;
    if (lo < hi)
      for (auto it = m.lower_bound(lo); it != m.end() && it->first < hi;) {
        it = m.erase(it);
        ++want;
      }
    REQUIRE_MESSAGE(n == want, "erase_range [", lo, ", ", hi, ")");
    if (i % 10 == 0) REQUIRE_TREE_OK(*db, t.root(), "erase_range");
  }
  require_equal(t, m, "erase_range");
  REQUIRE_TREE_OK(*db, t.root(), "erase_range");
  const u64 n_all = db->write([&](keel::write_txn& tx) { return t.erase_range(tx, mn, 0); });
  u64 want_all = 0;
  for (auto it = m.begin(); it != m.end() && it->first < 0;) {
    it = m.erase(it);
    ++want_all;
  }
  CHECK(n_all == want_all);
  require_equal(t, m, "erase the lower half");
  REQUIRE_TREE_OK(*db, t.root(), "erase the lower half");
  // Erase one by one down to one key: the root collapses to a leaf.
  db->write([&](keel::write_txn& tx) {
    while (m.size() > 1) {  // keep the smallest key
      const i64 k = std::next(m.begin(), 1 + static_cast<std::ptrdiff_t>(rng() % (m.size() - 1)))->first;
      REQUIRE(t.erase(tx, k));
      m.erase(k);
    }
  });
  require_equal(t, m, "one key left");
  REQUIRE_TREE_OK(*db, t.root(), "one key left");
  CHECK(tstat(*db, t.root()).height == 1);
  CHECK(tstat(*db, t.root()).leaves == 1);
  CHECK(tstat(*db, t.root()).branches == 0);

  // append, then clear.
  db->write([&](keel::write_txn& tx) {
    i64 k = m.rbegin()->first;
    for (int i = 0; i < 5000 && k < mx - 10; ++i) {
      k += 1 + static_cast<i64>(rng() % 5);
      t.append(tx, k, static_cast<u64>(i));
      m[k] = static_cast<u64>(i);
    }
  });
  require_equal(t, m, "appends");
  REQUIRE_TREE_OK(*db, t.root(), "appends");
  const u64 live_before_clear = db->info().live_bytes;
  db->write([&](keel::write_txn& tx) { t.clear(tx); });
  m.clear();
  require_equal(t, m, "clear");
  REQUIRE_TREE_OK(*db, t.root(), "clear");
  CHECK(tstat(*db, t.root()).leaves + tstat(*db, t.root()).branches <= 1);
  CHECK_MESSAGE(db->info().live_bytes + 20 * 4096 < live_before_clear, "clear freed too little: live ",
                db->info().live_bytes, " before ", live_before_clear);
  // The tree works after clear.
  db->write([&](keel::write_txn& tx) {
    t.append(tx, 5, 55);
    t.insert(tx, 3, 33);
  });
  m = {{3, 33}, {5, 55}};
  require_equal(t, m, "after clear");
  REQUIRE_TREE_OK(*db, t.root(), "after clear");
}

TEST_CASE("for_each: early stop, void visitors, struct values, tuple keys") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("t"), keel_test::small_opts());
  struct quote {
    double bid, ask;
    u32 size;
    bool operator==(const quote&) const = default;
  };
  using K = std::tuple<u32, i64>;
  auto t = keel::tree_map<K, quote>::open(*db, "quotes");
  std::map<K, quote> m;
  db->write([&](keel::write_txn& tx) {
    for (u32 sym = 0; sym < 50; ++sym)
      for (i64 ts = -100; ts < 100; ++ts) {
        const quote q{static_cast<double>(sym) + ts * 0.01, static_cast<double>(sym) + ts * 0.01 + 0.5,
                      static_cast<u32>(ts + 1000)};
        t.put(tx, K{sym, ts * 1000}, q);
        m[K{sym, ts * 1000}] = q;
      }
  });
  require_equal(t, m, "quotes");
  REQUIRE_TREE_OK(*db, t.root(), "quotes");
  // All quotes of one symbol in a time window, newest first.
  const auto got = walk(t, K{17, -5000}, K{17, 5001}, true);
  REQUIRE(got.size() == 11);
  CHECK(std::get<1>(got.front().first) == 5000);
  CHECK(std::get<1>(got.back().first) == -5000);
  for (const auto& [k, q] : got) CHECK(std::get<0>(k) == 17u);
  // Early stop after 3, void visitor over everything.
  int n = 0;
  t.for_each(K{0, 0}, K{100, 0}, [&](const K&, const quote&) { return ++n < 3; });
  CHECK(n == 3);
  u64 all = 0;
  t.for_each([&](const K&, const quote&) { ++all; });
  CHECK(all == m.size());
  // The last symbol's last quote.
  CHECK(t.last()->first == K{49, 99000});
  CHECK(t.lower_bound(K{20, 99001})->first == K{21, -100000});
  CHECK(t.upper_bound(K{20, 99000})->first == K{21, -100000});
}

TEST_CASE("lock-free scans: exact without commits; with commits racing every chunk, pinned keys all seen in order") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("t"), keel_test::small_opts());
  auto t = keel::tree_map<u64, u64>::open(*db, "t");
  constexpr u64 kKeys = 20000;  // even keys are pinned (never changed); odd keys churn
  db->write([&](keel::write_txn& tx) {
    for (u64 k = 0; k < kKeys; k += 2) t.append(tx, k, k * 3);
  });
  // No writer: a scan of any length (chunks of 32, 64, ... resume where
  // the last one stopped) is exactly the range, both ways.
  for (u64 len : {1, 31, 32, 33, 95, 96, 97, 1000, 5000}) {
    for (bool rev : {false, true}) {
      CAPTURE(len);
      CAPTURE(rev);
      const u64 lo = 2 * 1234, hi = lo + 2 * len;
      std::vector<u64> got;
      auto f = [&](const u64& k, const u64& v) {
        CHECK(v == k * 3);
        got.push_back(k);
      };
      if (rev) t.for_each_reverse(lo, hi, f);
      else t.for_each(lo, hi, f);
      REQUIRE(got.size() == len);
      for (u64 i = 0; i < len; ++i) CHECK(got[i] == (rev ? hi - 2 - 2 * i : lo + 2 * i));
    }
  }
  // A writer thread commits odd keys in and out (splits and merges all
  // along the tree) while this thread scans: every pinned key, strictly in
  // order, values never torn.
  std::atomic<bool> stop{false};
  std::atomic<u64> commits{0};
  const u64 seed = keel_test::env_seed("KEEL_SCAN_RACE_SEED");
  MESSAGE("writer seed " << seed << " (KEEL_SCAN_RACE_SEED)");
  std::thread writer([&] {
    std::mt19937_64 rng(seed);
    while (!stop.load()) {
      db->write([&](keel::write_txn& tx) {
        for (int i = 0; i < 16; ++i) {
          const u64 k = (rng() % (kKeys / 2)) * 2 + 1;
          if (rng() % 2) t.put(tx, k, k * 3);
          else t.erase(tx, k);
        }
      });
      commits.fetch_add(1);
    }
  });
  u64 scans = 0, bad_order = 0, bad_values = 0, missed = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2000);
  while ((std::chrono::steady_clock::now() < until || commits.load() < 50) && bad_order + bad_values + missed == 0) {
    const bool rev = scans % 2 == 1;
    u64 pinned = 0, prev = rev ? kKeys : 0, seen = 0;
    auto f = [&](const u64& k, const u64& v) {
      if (seen++ > 0 && (rev ? k >= prev : k <= prev)) ++bad_order;
      if (v != k * 3) ++bad_values;
      if (k % 2 == 0) ++pinned;
      prev = k;
    };
    if (rev) t.for_each_reverse(0, kKeys, f);
    else t.for_each(f);
    missed += kKeys / 2 - pinned;
    ++scans;
  }
  stop.store(true);
  writer.join();
  MESSAGE(scans << " scans raced " << commits.load() << " commits");
  CHECK(bad_order == 0);
  CHECK(bad_values == 0);
  CHECK(missed == 0);
  REQUIRE_TREE_OK(*db, t.root(), "t");
}

TEST_CASE("append of a key not above the maximum is invalid_argument and changes nothing") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("t"), keel_test::small_opts());
  auto t = keel::tree_map<u64, u64>::open(*db, "t");
  db->write([&](keel::write_txn& tx) {
    for (u64 k = 10; k < 5000; k += 10) t.append(tx, k, k);
  });
  const keel::store_info before = db->info();
  const u64 n = t.size();
  for (u64 bad : {u64{4990}, u64{4980}, u64{10}, u64{0}, u64{4989}, u64{1234}}) {
    CAPTURE(bad);
    // In a committed transaction: the failed append throws out of write().
    auto e = keel_test::catch_error([&] { db->write([&](keel::write_txn& tx) { t.append(tx, bad, 1); }); });
    REQUIRE(e);
    CHECK(e->code() == keel::errc::invalid_argument);
    // Caught inside the transaction: the transaction goes on and commits; the tree is unchanged by the failed call.
    db->write([&](keel::write_txn& tx) {
      auto e2 = keel_test::catch_error([&] { t.append(tx, bad, 1); });
      REQUIRE(e2);
      CHECK(e2->code() == keel::errc::invalid_argument);
      CHECK(t.size(tx) == n);
      CHECK(t.get(tx, bad) == (bad % 10 == 0 && bad >= 10 ? std::optional<u64>(bad) : std::nullopt));
    });
  }
  CHECK(t.size() == n);
  CHECK(db->info().live_bytes == before.live_bytes);
  CHECK(t.get(4990) == std::optional<u64>(4990));
  CHECK(!t.get(4995));
  REQUIRE_TREE_OK(*db, t.root(), "rejected appends");
  // Above the maximum still works; after erasing the maximum, a key between works too.
  db->write([&](keel::write_txn& tx) {
    t.append(tx, 5000, 1);
    CHECK(t.erase(tx, 5000));
    CHECK(t.erase(tx, 4990));
    t.append(tx, 4985, 2);  // above the current maximum 4980
  });
  CHECK(t.last()->first == 4985);
  REQUIRE_TREE_OK(*db, t.root(), "appends after erasing the maximum");
  // An empty tree accepts any key.
  auto e = keel::tree_map<i64, u64>::open(*db, "empty");
  db->write([&](keel::write_txn& tx) { e.append(tx, std::numeric_limits<i64>::min(), 1); });
  CHECK(e.size() == 1);
  auto e2 = keel_test::catch_error(
      [&] { db->write([&](keel::write_txn& tx) { e.append(tx, std::numeric_limits<i64>::min(), 2); }); });
  REQUIRE(e2);
  CHECK(e2->code() == keel::errc::invalid_argument);
  CHECK(e.get(std::numeric_limits<i64>::min()) == std::optional<u64>(1));
}

TEST_CASE("type checks by name; read-only stores; values survive reopen") {
  keel_test::temp_dir dir;
  const std::string p = dir.path("t");
  {
    auto db = keel::store::open(p, keel_test::small_opts());
    auto t = keel::tree_map<u64, u64>::open(*db, "t");
    auto b = keel::bytes_tree::open(*db, "b");
    auto h = keel::hash_map<u64, u64>::open(*db, "h");
    auto q = keel::tree_map<std::pair<u32, i64>, double>::open(*db, "q");
    db->write([&](keel::write_txn& tx) {
      for (u64 k = 0; k < 20000; ++k) t.append(tx, k * 2, k * k);
      for (int i = 0; i < 3000; ++i) b.put(tx, "key" + std::to_string(i), std::string(static_cast<std::size_t>(i % 2000), 'v'));
      h.put(tx, 1, 2);
      q.put(tx, {7u, -5}, 1.5);
    });
    db->close();
  }
  auto expect_code = [](auto&& f, keel::errc want, const char* what) {
    auto e = keel_test::catch_error(f);
    REQUIRE_MESSAGE(e.has_value(), what, ": no error");
    CHECK_MESSAGE(e->code() == want, what, ": ", keel::to_string(e->code()), ": ", std::string(e->what()));
  };
  {
    auto db = keel::store::open(p, keel_test::small_opts());
    expect_code([&] { keel::tree_map<u32, u64>::open(*db, "t"); }, keel::errc::type_mismatch, "other key type");
    expect_code([&] { keel::tree_map<i64, u64>::open(*db, "t"); }, keel::errc::type_mismatch, "other key signedness");
    expect_code([&] { keel::tree_map<u64, u32>::open(*db, "t"); }, keel::errc::type_mismatch, "other value type");
    expect_code([&] { keel::tree_map<u64, double>::open(*db, "t"); }, keel::errc::type_mismatch, "u64 vs double value");
    expect_code([&] { keel::tree_map<std::array<unsigned char, 8>, u64>::open(*db, "t"); }, keel::errc::type_mismatch,
                "8-byte array key for a u64 key");
    expect_code([&] { keel::bytes_tree::open(*db, "t"); }, keel::errc::type_mismatch, "bytes_tree on a tree_map");
    expect_code([&] { keel::tree_map<u64, u64>::open(*db, "b"); }, keel::errc::type_mismatch, "tree_map on a bytes_tree");
    expect_code([&] { keel::tree_map<u64, u64>::open(*db, "h"); }, keel::errc::type_mismatch, "tree_map on a hash map");
    expect_code([&] { keel::bytes_tree::open(*db, "h"); }, keel::errc::type_mismatch, "bytes_tree on a hash map");
    expect_code([&] { keel::hash_map<u64, u64>::open(*db, "t"); }, keel::errc::type_mismatch, "hash map on a tree_map");
    expect_code([&] { keel::bytes_map::open(*db, "b"); }, keel::errc::type_mismatch, "bytes_map on a bytes_tree");
    expect_code([&] { keel::tree_map<std::pair<u32, u64>, double>::open(*db, "q"); }, keel::errc::type_mismatch,
                "pair<u32, u64> for pair<u32, i64>");
    expect_code([&] { keel::tree_map<std::tuple<i64, u32>, double>::open(*db, "q"); }, keel::errc::type_mismatch,
                "tuple<i64, u32> (same size) for pair<u32, i64>");
    expect_code([&] { db->write([&](keel::write_txn& tx) { keel::tree_map<u32, u64>::open(*db, tx, "t"); }); },
                keel::errc::type_mismatch, "other key type in a transaction");
    // Values survive the reopen.
    auto t = keel::tree_map<u64, u64>::open(*db, "t");
    CHECK(t.size() == 20000);
    CHECK(t.get(39998) == std::optional<u64>(19999ull * 19999ull));
    CHECK(!t.get(39999));
    auto b = keel::bytes_tree::open(*db, "b");
    CHECK(b.size() == 3000);
    CHECK(b.get("key1999") == std::string(1999, 'v'));
    auto q = keel::tree_map<std::pair<u32, i64>, double>::open(*db, "q");
    CHECK(q.get({7u, -5}) == std::optional<double>(1.5));
    REQUIRE_TREE_OK(*db, t.root(), "reopen");
    REQUIRE_TREE_OK(*db, b.root(), "reopen (bytes)");
    db->close();
  }
  {
    auto ro = keel::store::open(p, keel_test::read_only_opts());
    expect_code([&] { keel::tree_map<u64, u64>::open(*ro, "absent"); }, keel::errc::invalid_argument,
                "read-only store lacking the name");
    expect_code([&] { keel::bytes_tree::open(*ro, "absent"); }, keel::errc::invalid_argument,
                "read-only store lacking the name (bytes_tree)");
    expect_code([&] { keel::tree_map<u32, u64>::open(*ro, "t"); }, keel::errc::type_mismatch,
                "other key type, read-only");
    auto t = keel::tree_map<u64, u64>::open(*ro, "t");
    CHECK(t.size() == 20000);
    CHECK(t.first()->first == 0);
    CHECK(t.last()->first == 39998);
    expect_code([&] { ro->write([&](keel::write_txn& tx) { t.put(tx, 1, 1); }); }, keel::errc::read_only,
                "write on a read-only store");
    ro->close();
  }
}

// ====================================================================== fill and space

TEST_CASE("appends fill leaves densely; random inserts fill them less") {
  keel_test::temp_dir dir;
  keel::options o = keel_test::small_opts();
  o.max_size = 1_GiB;
  o.mode = keel::durability::checkpoint;
  auto db = keel::store::open(dir.path("t"), o);
  auto a = keel::tree_map<u64, u64>::open(*db, "appends");
  auto r = keel::tree_map<u64, u64>::open(*db, "random");
  constexpr u64 N = 200'000;
  // A leaf holds (4096 - 48) / (16 + 2) = 224 u64 -> u64 cells.
  constexpr double kPerLeaf = (4096.0 - 48.0) / 18.0;
  std::vector<u64> keys(N);
  std::iota(keys.begin(), keys.end(), u64{1});
  std::mt19937_64 rng(base_seed() ^ 0xF111);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (u64 i = 0; i < N; i += 10000)
    db->write([&](keel::write_txn& tx) {
      for (u64 j = i; j < i + 10000; ++j) {
        a.append(tx, (j + 1) * 1000, j);
        r.insert(tx, keys[j] * 1000, j);
      }
    });
  REQUIRE_TREE_OK(*db, a.root(), "appends");
  REQUIRE_TREE_OK(*db, r.root(), "random inserts");
  const auto sa = tstat(*db, a.root()), sr = tstat(*db, r.root());
  CHECK(sa.entries == N);
  CHECK(sr.entries == N);
  const double fill_a = static_cast<double>(N) / (static_cast<double>(sa.leaves) * kPerLeaf);
  const double fill_r = static_cast<double>(N) / (static_cast<double>(sr.leaves) * kPerLeaf);
  MESSAGE("leaf fill for ", N, " u64 -> u64 entries: appends ", sa.leaves, " leaves (", fill_a * 100,
          " %), height ", sa.height, ", ", sa.branches, " branches; random inserts ", sr.leaves, " leaves (",
          fill_r * 100, " %), height ", sr.height, ", ", sr.branches, " branches");
  CHECK_MESSAGE(fill_a >= 0.90, "appended leaves are ", fill_a * 100, " % full");
  CHECK(fill_a <= 1.0);
  CHECK(fill_r >= 0.45);
  CHECK(fill_r < fill_a);
  // The branches above appended leaves are dense too: well under one per 100 leaves.
  CHECK(sa.branches * 100 <= sa.leaves + 100);
  // Appends through put (keys above the maximum) take the same path: dense too.
  auto p = keel::tree_map<u64, u64>::open(*db, "puts");
  db->write([&](keel::write_txn& tx) {
    for (u64 j = 0; j < 50'000; ++j) p.put(tx, j, j);
  });
  const auto sp = tstat(*db, p.root());
  const double fill_p = 50'000.0 / (static_cast<double>(sp.leaves) * kPerLeaf);
  MESSAGE("ascending puts: ", sp.leaves, " leaves (", fill_p * 100, " %)");
  CHECK(fill_p >= 0.90);
  REQUIRE_TREE_OK(*db, p.root(), "ascending puts");
}

TEST_CASE("a 1,000,000-entry tree's live bytes are within a small factor of the raw bytes") {
  keel_test::temp_dir dir;
  keel::options o = keel_test::small_opts();
  o.max_size = 2_GiB;
  o.mode = keel::durability::checkpoint;
  auto db = keel::store::open(dir.path("t"), o);
  constexpr u64 N = 1'000'000;
  constexpr double raw = N * 16.0;
  struct result {
    double appended, random;
  } res{};
  for (int pass = 0; pass < 2; ++pass) {
    const std::string name = pass == 0 ? "appended" : "random";
    const u64 base = db->info().live_bytes;
    auto t = keel::tree_map<u64, u64>::open(*db, name);
    std::mt19937_64 rng(base_seed() + static_cast<u64>(pass));
    const auto t0 = clk::now();
    for (u64 i = 0; i < N; i += 50'000)
      db->write([&](keel::write_txn& tx) {
        for (u64 j = i; j < i + 50'000; ++j) {
          if (pass == 0)
            t.append(tx, j * 16, j);
          else
            t.put(tx, rng(), j);
        }
      });
    const double secs = std::chrono::duration<double>(clk::now() - t0).count();
    const u64 live = db->info().live_bytes - base;
    const auto st = tstat(*db, t.root());
    CHECK(st.entries == t.size());
    const double ratio = static_cast<double>(live) / raw;
    (pass == 0 ? res.appended : res.random) = ratio;
    MESSAGE(name, ": ", st.entries, " entries (16 raw bytes each, ", raw / 1048576.0, " MiB) use ",
            static_cast<double>(live) / 1048576.0, " MiB live: ", ratio, "x raw; ", st.leaves, " leaves, ",
            st.branches, " branches, height ", st.height, "; ", secs, " s to build");
    REQUIRE_TREE_OK(*db, t.root(), name);
  }
  CHECK(res.appended <= 1.25);
  CHECK(res.random <= 2.5);
}
