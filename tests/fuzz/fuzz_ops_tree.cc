// Fuzz target: the input is a sequence of operations on a keel::tree_map
// <u16, 300-byte value> (about 13 entries per leaf, so a small key space
// splits and merges nodes) and a keel::bytes_tree (short keys over a
// four-letter alphabet, long keys up to 1 KiB that make deep trees, values
// across the out-of-line boundary), inside transactions that commit,
// abort, checkpoint and reopen, checked against std::map models: point
// operations, appends, range erases, ascending and descending range scans,
// bounds and prefixes. The tree checker runs after each commit. At the end
// keel::check must call the store clean. A mismatch aborts.
#include <array>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <keel/bytes_tree.h>
#include <keel/tree_map.h>
#include <map>
#include <optional>
#include <vector>

#include "fuzz_common.h"
#include "ops_harness.h"

using namespace keel_fuzz;

struct fuzz_payload {
  unsigned char b[300];
};
template <>
struct keel::type_name<fuzz_payload> {
  static std::string_view get() { return "keel_fuzz::payload300"; }
};

namespace {

constexpr const char* kTarget = "fuzz_ops_tree";
constexpr int kMaxOps = 256;

using tmodel = std::map<std::uint16_t, u8>;  // key -> payload seed
using bmodel = std::map<std::string, std::string>;
using tree = keel::tree_map<std::uint16_t, fuzz_payload>;

fuzz_payload payload(u8 seed) {
  fuzz_payload p;
  for (std::size_t i = 0; i < sizeof p.b; ++i) p.b[i] = static_cast<unsigned char>(seed + i * 13);
  return p;
}
template <class A, class B>
bool eqp(const A& a, const B& b) {
  return a.first == b.first && a.second == b.second;
}
u8 seed_of(const fuzz_payload& p) { return p.b[0]; }
bool same(const fuzz_payload& a, u8 seed) {
  const fuzz_payload b = payload(seed);
  return std::memcmp(a.b, b.b, sizeof a.b) == 0;
}

std::uint16_t tkey(reader& r) {
  const u8 k = r.byte();
  return k < 240 ? static_cast<std::uint16_t>(k * 2) : static_cast<std::uint16_t>(0xFFFF - (k - 240));
}

std::string bkey(reader& r) {
  const u8 c = r.byte();
  if (c < 170) {
    const u8 d = r.byte();
    std::string s(1 + c % 5, 'a');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('a' + ((d >> (2 * (i % 4))) & 3) + (i / 4));
    return s;
  }
  if (c < 240) {  // long keys: long separators, deep trees
    std::string s(static_cast<std::size_t>(c - 170) * 14 + 1, static_cast<char>('p' + c % 2));
    s += static_cast<char>('a' + r.byte() % 8);
    return s;
  }
  if (c < 248) return std::string(c - 240, '\0');  // "" and NUL keys
  return std::string(c - 247, '\xff');
}

std::string bval(reader& r) {
  const u8 v = r.byte();
  std::size_t len = 0;
  if (v < 128)
    len = v % 40;
  else if (v < 200)
    len = 200 + (v - 128) * 12;
  else if (v < 240)
    len = 1300 + (v - 200) * 2;  // the 1344-byte cell boundary
  else
    len = 3000 + (v - 240) * 700;
  std::string s(len, ' ');
  for (std::size_t i = 0; i < len; ++i) s[i] = static_cast<char>('A' + (i * 5 + v) % 26);
  return s;
}

struct harness : ops_harness<harness> {
  std::optional<tree> t;
  std::optional<keel::bytes_tree> bt;
  tmodel T, TT;  // committed, in the transaction
  bmodel B, TB;

  harness() : ops_harness(kTarget) {}
  void open_structures() {
    t.emplace(tree::open(*db, "t"));
    bt.emplace(keel::bytes_tree::open(*db, "bt"));
  }
  void close_structures() {
    t.reset();
    bt.reset();
  }
  void snapshot_models() {
    TT = T;
    TB = B;
  }
  void adopt_models() {
    T = TT;
    B = TB;
  }
  void after_commit() { tree_checks(); }
  std::uint64_t model_entries() const { return T.size() + B.size(); }

  void tree_checks() {
    for (u64 root : {t->root(), bt->root()}) {
      std::vector<std::pair<u64, std::string>> p;
      db->read([&](const keel::read_view& v) {
        p.clear();
        keel::detail::tree_check(v, root, p);
      });
      if (!p.empty()) bad("tree_check at node " + std::to_string(p[0].first) + ": " + p[0].second);
    }
  }

  void verify_tree_range(std::uint16_t lo, std::uint16_t hi) {
    std::vector<std::pair<std::uint16_t, u8>> got, want, rgot;
    t->for_each(lo, hi, [&](std::uint16_t k, const fuzz_payload& v) {
      if (!same(v, seed_of(v))) bad("torn value at key " + std::to_string(k));
      got.emplace_back(k, seed_of(v));
    });
    t->for_each_reverse(lo, hi, [&](std::uint16_t k, const fuzz_payload& v) { rgot.emplace_back(k, seed_of(v)); });
    for (auto it = T.lower_bound(lo); it != T.end() && it->first < hi; ++it) want.emplace_back(*it);
    if (got != want) bad("for_each [" + std::to_string(lo) + ", " + std::to_string(hi) + ") differs");
    std::reverse(rgot.begin(), rgot.end());
    if (rgot != want) bad("for_each_reverse [" + std::to_string(lo) + ", " + std::to_string(hi) + ") differs");
    auto lb = t->lower_bound(lo);
    auto wl = T.lower_bound(lo);
    if (lb.has_value() != (wl != T.end()) || (lb && lb->first != wl->first)) bad("lower_bound differs");
    auto ub = t->upper_bound(lo);
    auto wu = T.upper_bound(lo);
    if (ub.has_value() != (wu != T.end()) || (ub && ub->first != wu->first)) bad("upper_bound differs");
  }
  void verify_bytes_range(const std::string& lo, const std::string& hi) {
    std::vector<std::pair<std::string, std::string>> got, want, rgot;
    bt->for_each(lo, hi, [&](std::string_view k, std::string_view v) { got.emplace_back(k, v); });
    bt->for_each_reverse(lo, hi, [&](std::string_view k, std::string_view v) { rgot.emplace_back(k, v); });
    if (lo < hi)
      for (auto it = B.lower_bound(lo); it != B.end() && it->first < hi; ++it) want.emplace_back(*it);
    if (got != want) bad("bytes for_each range differs");
    std::reverse(rgot.begin(), rgot.end());
    if (rgot != want) bad("bytes for_each_reverse range differs");
    std::vector<std::string> pgot, pwant;
    bt->for_each_prefix(lo, [&](std::string_view k, std::string_view) { pgot.emplace_back(k); });
    for (auto it = B.lower_bound(lo); it != B.end() && it->first.compare(0, lo.size(), lo) == 0; ++it)
      pwant.push_back(it->first);
    if (pgot != pwant) bad("for_each_prefix differs");
    auto lb = bt->lower_bound(lo);
    auto wl = B.lower_bound(lo);
    if (lb.has_value() != (wl != B.end()) || (lb && !eqp(*lb, *wl))) bad("bytes lower_bound differs");
    auto ub = bt->upper_bound(lo);
    auto wu = B.upper_bound(lo);
    if (ub.has_value() != (wu != B.end()) || (ub && !eqp(*ub, *wu))) bad("bytes upper_bound differs");
  }

  void verify_committed(bool full) {
    if (t->size() != T.size()) bad("size " + std::to_string(t->size()) + ", model " + std::to_string(T.size()));
    if (bt->size() != B.size()) bad("bytes size " + std::to_string(bt->size()) + ", model " + std::to_string(B.size()));
    if (!full) return;
    std::vector<std::pair<std::uint16_t, u8>> got;
    t->for_each([&](std::uint16_t k, const fuzz_payload& v) { got.emplace_back(k, seed_of(v)); });
    if (got != std::vector<std::pair<std::uint16_t, u8>>(T.begin(), T.end())) bad("full walk differs");
    for (const auto& [k, s] : T) {
      const auto v = t->get(k);
      if (!v || !same(*v, s)) bad("get(" + std::to_string(k) + ") differs");
    }
    const auto f = t->first(), l = t->last();
    if (f.has_value() != !T.empty() || (f && f->first != T.begin()->first)) bad("first differs");
    if (l.has_value() != !T.empty() || (l && l->first != T.rbegin()->first)) bad("last differs");
    std::vector<std::pair<std::string, std::string>> bgot;
    bt->for_each([&](std::string_view k, std::string_view v) { bgot.emplace_back(k, v); });
    if (bgot != std::vector<std::pair<std::string, std::string>>(B.begin(), B.end())) bad("bytes full walk differs");
    for (const auto& [k, v] : B)
      if (bt->get(k) != v) bad("bytes get differs for a key of " + std::to_string(k.size()) + " bytes");
    const auto bf = bt->first(), bl = bt->last();
    if (bf.has_value() != !B.empty() || (bf && !eqp(*bf, *B.begin()))) bad("bytes first differs");
    if (bl.has_value() != !B.empty() || (bl && !eqp(*bl, *B.rbegin()))) bad("bytes last differs");
  }

  void step(reader& r) {
    const u8 op = r.byte();
    switch (op % 30) {
      case 0: case 1: case 2: {
        begin();
        const std::uint16_t k = tkey(r);
        const u8 s = r.byte();
        note("put " + std::to_string(k));
        const bool added = t->put(*tx, k, payload(s));
        if (added != (TT.count(k) == 0)) bad("put returned " + std::to_string(added));
        TT[k] = s;
        break;
      }
      case 3: {
        begin();
        const std::uint16_t k = tkey(r);
        const u8 s = r.byte();
        note("insert " + std::to_string(k));
        const bool added = t->insert(*tx, k, payload(s));
        if (added != (TT.count(k) == 0)) bad("insert returned " + std::to_string(added));
        TT.emplace(k, s);
        break;
      }
      case 4: case 5: {
        begin();
        const std::uint16_t k = tkey(r);
        note("erase " + std::to_string(k));
        if (t->erase(*tx, k) != (TT.erase(k) == 1)) bad("erase result differs");
        break;
      }
      case 6: {
        begin();
        const std::uint16_t k = tkey(r);
        note("tx get " + std::to_string(k));
        const auto v = t->get(*tx, k);
        const auto it = TT.find(k);
        if (v.has_value() != (it != TT.end()) || (v && !same(*v, it->second))) bad("get in tx differs");
        break;
      }
      case 7: {
        begin();
        const std::uint16_t k = tkey(r);
        note("update " + std::to_string(k));
        const bool found = t->update(*tx, k, [](fuzz_payload& v) { v = payload(static_cast<u8>(v.b[0] + 1)); });
        if (found != (TT.count(k) == 1)) bad("update result differs");
        if (found) TT[k] = static_cast<u8>(TT[k] + 1);
        break;
      }
      case 8: {
        begin();
        const std::uint16_t k = TT.empty() ? tkey(r) : static_cast<std::uint16_t>(TT.rbegin()->first + 1 + r.byte() % 4);
        if (!TT.empty() && k <= TT.rbegin()->first) break;  // wrapped past 0xFFFF
        note("append " + std::to_string(k));
        t->append(*tx, k, payload(static_cast<u8>(k)));
        TT[k] = static_cast<u8>(k);
        break;
      }
      case 9: {
        begin();
        const unsigned n = r.byte() % 64, step = 1 + r.byte() % 3;
        std::vector<std::pair<std::uint16_t, fuzz_payload>> run;
        unsigned k = TT.empty() ? 0 : TT.rbegin()->first + 1u;
        for (unsigned i = 0; i < n && k <= 0xFFFF; ++i, k += step) run.emplace_back(k, payload(static_cast<u8>(k)));
        note("append_sorted " + std::to_string(run.size()));
        t->append_sorted(*tx, run.begin(), run.end());
        for (const auto& [key, v] : run) TT[key] = static_cast<u8>(key);
        break;
      }
      case 10: {
        begin();
        std::uint16_t lo = tkey(r), hi = tkey(r);
        note("erase_range " + std::to_string(lo) + " " + std::to_string(hi));
        const u64 n = t->erase_range(*tx, lo, hi);
        u64 want = 0;
        if (lo < hi)
          for (auto it = TT.lower_bound(lo); it != TT.end() && it->first < hi;) {
            it = TT.erase(it);
            ++want;
          }
        if (n != want) bad("erase_range removed " + std::to_string(n) + ", model " + std::to_string(want));
        break;
      }
      case 11: {
        begin();
        if (r.byte() % 4 != 0) break;
        note("clear");
        t->clear(*tx);
        TT.clear();
        break;
      }
      case 12: {
        begin();
        const std::uint16_t lo = tkey(r), hi = tkey(r);
        note("tx scan");
        std::vector<std::pair<std::uint16_t, u8>> got, want;
        t->for_each(*tx, lo, hi, [&](std::uint16_t k, const fuzz_payload& v) { got.emplace_back(k, seed_of(v)); });
        for (auto it = TT.lower_bound(lo); lo < hi && it != TT.end() && it->first < hi; ++it) want.emplace_back(*it);
        if (got != want) bad("scan in tx differs");
        if (t->size(*tx) != TT.size()) bad("size in tx differs");
        break;
      }
      case 13: case 14:
        note("commit");
        commit();
        verify_committed(false);
        break;
      case 15:
        note("abort");
        abort();
        break;
      case 16: {
        const std::uint16_t lo = tkey(r), hi = tkey(r);
        note("scan " + std::to_string(lo) + " " + std::to_string(hi));
        verify_tree_range(lo, hi);
        break;
      }
      case 17:
        note("verify");
        verify_committed(true);
        break;
      case 18:
        note("reopen");
        reopen(r);
        break;
      case 19:
        if (tx) break;
        note("checkpoint");
        db->checkpoint();
        break;
      case 20: {
        begin();
        const u64 base = r.byte() * 2u, n = r.byte(), stride = 1 + r.byte() % 5;
        note("bulk put " + std::to_string(base) + "+" + std::to_string(n) + "*" + std::to_string(stride));
        for (u64 i = 0, k = base; i < n && k <= 0xFFFF; ++i, k += stride) {
          t->put(*tx, static_cast<std::uint16_t>(k), payload(static_cast<u8>(i)));
          TT[static_cast<std::uint16_t>(k)] = static_cast<u8>(i);
        }
        break;
      }
      case 21: case 22: {
        begin();
        const std::string k = bkey(r), v = bval(r);
        note("bput " + std::to_string(k.size()) + "/" + std::to_string(v.size()));
        const bool added = bt->put(*tx, k, v);
        if (added != (TB.count(k) == 0)) bad("bytes put returned " + std::to_string(added));
        TB[k] = v;
        break;
      }
      case 23: {
        begin();
        const std::string k = bkey(r), v = bval(r);
        note("binsert");
        const bool added = bt->insert(*tx, k, v);
        if (added != (TB.count(k) == 0)) bad("bytes insert returned " + std::to_string(added));
        TB.emplace(k, v);
        break;
      }
      case 24: case 25: {
        begin();
        const std::string k = bkey(r);
        note("berase " + std::to_string(k.size()));
        if (bt->erase(*tx, k) != (TB.erase(k) == 1)) bad("bytes erase differs");
        break;
      }
      case 26: {
        begin();
        const std::string k = bkey(r);
        note("bget");
        const auto it = TB.find(k);
        if (bt->get(*tx, k) != (it == TB.end() ? std::nullopt : std::optional<std::string>(it->second)))
          bad("bytes get in tx differs");
        if (bt->size(*tx) != TB.size()) bad("bytes size in tx differs");
        break;
      }
      case 27: {
        begin();
        const std::string lo = bkey(r), hi = bkey(r);
        note("berase_range");
        const u64 n = bt->erase_range(*tx, lo, hi);
        u64 want = 0;
        if (lo < hi)
          for (auto it = TB.lower_bound(lo); it != TB.end() && it->first < hi;) {
            it = TB.erase(it);
            ++want;
          }
        if (n != want) bad("bytes erase_range removed " + std::to_string(n) + ", model " + std::to_string(want));
        break;
      }
      case 28: {
        begin();
        const u8 c = r.byte();
        if (c % 8 == 0) {
          note("bclear");
          bt->clear(*tx);
          TB.clear();
        } else if (c % 8 == 1) {
          std::string k = TB.empty() ? "a" : TB.rbegin()->first + static_cast<char>('a' + c % 26);
          if (k.size() > keel::bytes_tree::max_key) break;
          note("bappend");
          const std::string v = bval(r);
          bt->append(*tx, k, v);
          TB[k] = v;
        } else {
          note("btx walk");
          std::vector<std::pair<std::string, std::string>> got;
          bt->for_each(*tx, [&](std::string_view k, std::string_view v) { got.emplace_back(k, v); });
          if (got != std::vector<std::pair<std::string, std::string>>(TB.begin(), TB.end())) bad("bytes walk in tx differs");
        }
        break;
      }
      default: {
        const std::string lo = bkey(r), hi = bkey(r);
        note("bscan");
        verify_bytes_range(lo, hi);
        break;
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return run_ops_input<harness>(data, size, "t.keel", kMaxOps);
}
