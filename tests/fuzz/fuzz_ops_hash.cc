// Fuzz target: the input is a sequence of operations on a keel::hash_map
// <u64, u64> and a keel::bytes_map, inside transactions that commit, abort,
// checkpoint and reopen, checked against std::unordered_map models (the
// open transaction's and the committed one). A mismatch aborts. Small key
// spaces make groups collide and tables resize; bulk operations run
// resizes to their end. At the end the store is closed and keel::check must
// call it clean.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fuzz_common.h"
#include "ops_harness.h"

using namespace keel_fuzz;

namespace {

constexpr const char* kTarget = "fuzz_ops_hash";
constexpr int kMaxOps = 256;

using hmodel = std::unordered_map<u64, u64>;
using bmodel = std::unordered_map<std::string, std::string>;

u64 hkey(reader& r) {
  const u8 k = r.byte();
  if (k < 224) return k % 96;
  return (static_cast<u64>(k) << 56) | k;  // far apart, same low bits
}
u64 hval(reader& r) { return static_cast<u64>(r.byte()) * 0x0101010101ull; }

std::string bkey(reader& r) {
  const u8 k = r.byte();
  if (k < 200) return "k" + std::to_string(k % 48);
  if (k < 240) return std::string(64 + (k - 200) * 49, static_cast<char>('a' + k % 3)) + std::to_string(k % 2);  // up to 2025 bytes
  if (k < 250) return std::string(k - 240, '\0');  // "" and NUL keys
  return std::string(keel::bytes_map::max_key, 'z');
}

std::string bval(reader& r) {
  const u8 v = r.byte();
  std::size_t len = 0;
  switch (v >> 5) {
    case 0: len = 0; break;
    case 1: case 2: case 3: len = (v % 32) * 3; break;
    case 4: len = 100 + (v % 32) * 30; break;
    case 5: len = 3990 + (v % 32) * 8; break;  // the inline / out-of-line boundary
    case 6: len = 8000 + (v % 32) * 100; break;
    default: len = 4096 * (2 + v % 3) + v; break;
  }
  std::string s(len, ' ');
  for (std::size_t i = 0; i < len; ++i) s[i] = static_cast<char>('a' + (i * 7 + v) % 26);
  return s;
}

struct harness : ops_harness<harness> {
  std::optional<keel::hash_map<u64, u64>> h;
  std::optional<keel::bytes_map> b;
  hmodel H, TH;  // committed, in the transaction
  bmodel B, TB;

  harness() : ops_harness(kTarget) {}
  void open_structures() {
    h.emplace(keel::hash_map<u64, u64>::open(*db, "h"));
    b.emplace(keel::bytes_map::open(*db, "b"));
  }
  void close_structures() {
    h.reset();
    b.reset();
  }
  void snapshot_models() {
    TH = H;
    TB = B;
  }
  void adopt_models() {
    H = TH;
    B = TB;
  }
  void after_commit() {}
  std::uint64_t model_entries() const { return H.size() + B.size(); }

  void verify_committed(bool full) {
    if (h->size() != H.size()) bad("size " + std::to_string(h->size()) + ", model " + std::to_string(H.size()));
    if (b->size() != B.size()) bad("bytes size " + std::to_string(b->size()) + ", model " + std::to_string(B.size()));
    if (!full) return;
    hmodel seen;
    h->for_each([&](u64 k, u64 v) {
      if (!seen.emplace(k, v).second) bad("for_each visited key " + std::to_string(k) + " twice");
    });
    if (seen != H) bad("for_each differs from the model");
    std::vector<u64> keys;
    for (const auto& [k, v] : H) keys.push_back(k);
    for (u64 k = 0; k < 96; ++k) keys.push_back(k);
    std::vector<std::optional<u64>> out(keys.size());
    (void)h->get_many(keys, out);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto it = H.find(keys[i]);
      std::optional<u64> want;
      if (it != H.end()) want = it->second;
      if (h->get(keys[i]) != want || out[i] != want) bad("get(" + std::to_string(keys[i]) + ") differs");
    }
    bmodel bseen;
    b->for_each([&](std::string_view k, std::string_view v) {
      if (!bseen.emplace(k, v).second) bad("bytes for_each visited a key twice");
    });
    if (bseen != B) bad("bytes for_each differs from the model");
    for (const auto& [k, v] : B)
      if (b->get(k) != v) bad("bytes get differs for a key of " + std::to_string(k.size()) + " bytes");
    if (b->get("absent") != std::nullopt && !B.count("absent")) bad("bytes get found an absent key");
  }

  void step(reader& r) {
    const u8 op = r.byte();
    switch (op % 26) {
      case 0: case 1: case 2: {
        begin();
        const u64 k = hkey(r), v = hval(r);
        note("put " + std::to_string(k));
        const bool added = h->put(*tx, k, v);
        if (added != (TH.count(k) == 0)) bad("put returned " + std::to_string(added));
        TH[k] = v;
        break;
      }
      case 3: {
        begin();
        const u64 k = hkey(r), v = hval(r);
        note("insert " + std::to_string(k));
        const bool added = h->insert(*tx, k, v);
        if (added != (TH.count(k) == 0)) bad("insert returned " + std::to_string(added));
        TH.emplace(k, v);
        break;
      }
      case 4: case 5: {
        begin();
        const u64 k = hkey(r);
        note("erase " + std::to_string(k));
        if (h->erase(*tx, k) != (TH.erase(k) == 1)) bad("erase result differs");
        break;
      }
      case 6: {
        begin();
        const u64 k = hkey(r);
        note("tx get " + std::to_string(k));
        const auto it = TH.find(k);
        if (h->get(*tx, k) != (it == TH.end() ? std::nullopt : std::optional<u64>(it->second))) bad("get in tx differs");
        break;
      }
      case 7: {
        begin();
        const u64 k = hkey(r);
        note("update " + std::to_string(k));
        const bool found = h->update(*tx, k, [](u64& v) { v = v * 3 + 1; });
        if (found != (TH.count(k) == 1)) bad("update result differs");
        if (found) TH[k] = TH[k] * 3 + 1;
        break;
      }
      case 8: {
        begin();
        const u64 base = r.u16(), n = r.byte();
        note("bulk put " + std::to_string(base) + "+" + std::to_string(n));
        for (u64 k = base; k < base + n; ++k) {
          h->put(*tx, k, k ^ 0x55);
          TH[k] = k ^ 0x55;
        }
        break;
      }
      case 9: {
        begin();
        const u64 base = r.u16(), n = r.byte();
        note("bulk erase " + std::to_string(base) + "+" + std::to_string(n));
        for (u64 k = base; k < base + n; ++k)
          if (h->erase(*tx, k) != (TH.erase(k) == 1)) bad("bulk erase result differs at " + std::to_string(k));
        break;
      }
      case 10: {
        begin();
        if (r.byte() % 4 != 0) break;  // rare
        note("clear");
        h->clear(*tx);
        TH.clear();
        break;
      }
      case 11: {
        begin();
        const u64 n = r.byte() * 8u;
        note("reserve " + std::to_string(n));
        h->reserve(*tx, n);
        break;
      }
      case 12: {
        begin();
        note("tx walk");
        if (h->size(*tx) != TH.size()) bad("size in tx differs");
        hmodel seen;
        h->for_each(*tx, [&](u64 k, u64 v) {
          if (!seen.emplace(k, v).second) bad("for_each in tx visited a key twice");
        });
        if (seen != TH) bad("for_each in tx differs");
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
        const u64 k = hkey(r);
        note("get " + std::to_string(k));
        const auto it = H.find(k);
        if (h->get(k) != (it == H.end() ? std::nullopt : std::optional<u64>(it->second))) bad("lock-free get differs");
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
      case 20: case 21: {
        begin();
        const std::string k = bkey(r), v = bval(r);
        note("bput " + std::to_string(k.size()) + "/" + std::to_string(v.size()));
        const bool added = b->put(*tx, k, v);
        if (added != (TB.count(k) == 0)) bad("bytes put returned " + std::to_string(added));
        TB[k] = v;
        break;
      }
      case 22: {
        begin();
        const std::string k = bkey(r), v = bval(r);
        note("binsert");
        const bool added = b->insert(*tx, k, v);
        if (added != (TB.count(k) == 0)) bad("bytes insert returned " + std::to_string(added));
        TB.emplace(k, v);
        break;
      }
      case 23: {
        begin();
        const std::string k = bkey(r);
        note("berase");
        if (b->erase(*tx, k) != (TB.erase(k) == 1)) bad("bytes erase differs");
        break;
      }
      case 24: {
        begin();
        const std::string k = bkey(r);
        note("bget");
        const auto it = TB.find(k);
        if (b->get(*tx, k) != (it == TB.end() ? std::nullopt : std::optional<std::string>(it->second)))
          bad("bytes get in tx differs");
        if (b->size(*tx) != TB.size()) bad("bytes size in tx differs");
        break;
      }
      default: {
        begin();
        const u8 c = r.byte();
        if (c % 8 == 0) {
          note("bclear");
          b->clear(*tx);
          TB.clear();
        } else {
          note("btx walk");
          bmodel seen;
          b->for_each(*tx, [&](std::string_view k, std::string_view v) {
            if (!seen.emplace(k, v).second) bad("bytes for_each in tx visited a key twice");
          });
          if (seen != TB) bad("bytes for_each in tx differs");
        }
        break;
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return run_ops_input<harness>(data, size, "h.keel", kMaxOps);
}
