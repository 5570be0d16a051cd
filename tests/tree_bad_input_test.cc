// B+trees given bad input: keys and values over the limits, wrong types, and
// nodes corrupted on disk.
//
// Corruption: a closed store holding a tree_map (height >= 2) and a
// bytes_tree with out-of-line values gets one node (or the tree root block)
// poked at a time: magic, level, count, heap, a cell offset, a sibling
// pointer forming a cycle, child pointers out of range or to the branch
// itself, keys out of order, a key above its parent's bound, a blob length.
// For each: detail::tree_check reports a problem naming the poked block, and
// gets, walks in both directions, bounds, size and writes on the damaged tree
// either answer or throw errc::corrupt; never a crash, a hang or a loop. The
// reads run in a forked child with a time limit, so a hang or a crash fails
// the test (with the child's status) instead of stalling or killing it.
#include <doctest/doctest.h>
#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/inspect.h"
#include "support/proc.h"
#include "support/temp_dir.h"
#include "support/testing.h"

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using u64 = std::uint64_t;
using u32 = std::uint32_t;
using u16 = std::uint16_t;

using problems_t = std::vector<std::pair<u64, std::string>>;

std::string describe(const problems_t& p) {
  std::ostringstream o;
  for (std::size_t i = 0; i < p.size() && i < 6; ++i) o << "[" << p[i].first << "] " << p[i].second << "; ";
  if (p.size() > 6) o << "... " << p.size() << " problems";
  return o.str();
}

template <class T>
T get_at(const std::string& f, u64 off) {
  T v;
  REQUIRE(off + sizeof v <= f.size());
  std::memcpy(&v, f.data() + off, sizeof v);
  return v;
}
template <class T>
void put_at(std::string& f, u64 off, T v) {
  REQUIRE(off + sizeof v <= f.size());
  std::memcpy(f.data() + off, &v, sizeof v);
}

// docs/FORMAT.md "B+tree": tree root and node header fields.
constexpr u64 kRootNode = 16, kRootHeight = 32, kRootFirstLeaf = 40;
constexpr u64 kMagic = 0, kLevel = 4, kCount = 6, kHeap = 8, kPrev = 16, kNext = 24, kChild0 = 32, kSlots = 48;

std::string expect_ok_or_corrupt(const std::function<void()>& f, const char* what, u64& corrupt, u64& answered) {
  try {
    f();
    ++answered;
  } catch (const keel::error& e) {
    if (e.code() != keel::errc::corrupt)
      return std::string(what) + " threw " + std::string(keel::to_string(e.code())) + ": " + e.what();
    ++corrupt;
  }
  return {};
}

// In a child: every kind of read (and some writes) on the damaged store.
// Returns "" or what went wrong (an error other than corrupt).
std::string exercise(const std::string& path, u64* answered_out, u64* corrupt_out) {
  u64 answered = 0, corrupt = 0;
  std::string bad;
  auto run = [&](const char* what, const std::function<void()>& f) {
    if (bad.empty()) bad = expect_ok_or_corrupt(f, what, corrupt, answered);
  };
  {
    auto ro = keel::store::open(path, keel_test::read_only_opts());
    std::optional<keel::tree_map<u64, u64>> t;
    std::optional<keel::bytes_tree> b;
    run("tree_map open (read-only)", [&] { t.emplace(keel::tree_map<u64, u64>::open(*ro, "t")); });
    run("bytes_tree open (read-only)", [&] { b.emplace(keel::bytes_tree::open(*ro, "b")); });
    if (t) {
      for (u64 k = 0; k < 60000; k += 97) run("get", [&] { (void)t->get(k * 2); });
      run("size", [&] { (void)t->size(); });
      run("first", [&] { (void)t->first(); });
      run("last", [&] { (void)t->last(); });
      for (u64 k = 0; k < 60000; k += 3001) {
        run("lower_bound", [&] { (void)t->lower_bound(k); });
        run("upper_bound", [&] { (void)t->upper_bound(k); });
      }
      u64 visits = 0;
      run("for_each", [&] { t->for_each([&](const u64&, const u64&) { ++visits; }); });
      run("for_each_reverse", [&] { t->for_each_reverse(0, ~u64{0}, [&](const u64&, const u64&) { ++visits; }); });
      run("for_each range", [&] { t->for_each(10000, 50000, [&](const u64&, const u64&) { ++visits; }); });
      if (visits > 3 * 40000) bad = "walks visited " + std::to_string(visits) + " entries of a 40000-entry tree (a loop?)";
    }
    if (b) {
      for (int i = 0; i < 400; i += 7) run("bytes get", [&] { (void)b->get("key/" + std::to_string(i)); });
      u64 visits = 0;
      run("bytes for_each", [&] { b->for_each([&](std::string_view, std::string_view) { ++visits; }); });
      run("bytes for_each_reverse",
          [&] { b->for_each_reverse("", "\xff", [&](std::string_view, std::string_view) { ++visits; }); });
      run("bytes prefix", [&] { b->for_each_prefix("key/1", [&](std::string_view, std::string_view) { ++visits; }); });
      if (visits > 3 * 800) bad = "byte walks visited " + std::to_string(visits) + " entries (a loop?)";
    }
    ro->close();
  }
  {
    // The writer: opens, reads and writes either work or throw corrupt.
    auto db = keel::store::open(path, keel_test::small_opts());
    std::optional<keel::tree_map<u64, u64>> t;
    run("tree_map open (writable)", [&] { t.emplace(keel::tree_map<u64, u64>::open(*db, "t")); });
    if (t) {
      for (u64 k = 1; k < 60000; k += 1999)
        run("put + erase in a transaction", [&] {
          auto tx = db->begin_write();
          (void)t->get(tx, k * 2);
          t->put(tx, k * 2 + 1, 1);
          t->erase(tx, k * 2);
          u64 n = 0;
          t->for_each(tx, k, k + 5000, [&](const u64&, const u64&) { ++n; });
          tx.abort();
        });
      run("erase_range in a transaction", [&] {
        auto tx = db->begin_write();
        t->erase_range(tx, 0, 30000);
        tx.abort();
      });
    }
    db->close();
  }
  *answered_out = answered;
  *corrupt_out = corrupt;
  return bad;
}

struct child_result {
  bool ok = false;
  std::string text;    // the child's report: "P <block> <problem>", "S <answered> <corrupt>", "E <error>" lines
  std::string status;  // when not ok: how the child ended
};

// Runs exercise() and tree_check in a forked child with a time limit.
child_result run_child(const std::string& path, u64 t_root, u64 b_root, std::chrono::seconds limit) {
  keel_test::child_proc c = keel_test::child_proc::spawn([&](int out) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::ostringstream o;
    int rc = 0;
    try {
      auto ro = keel::store::open(path, keel_test::read_only_opts());
      for (u64 root : {t_root, b_root}) {
        problems_t p;
        try {
          ro->read([&](const keel::read_view& v) {
            p.clear();
            keel::detail::tree_check(v, root, p);
          });
        } catch (const keel::error& e) {
          p.emplace_back(root, std::string("tree_check threw: ") + e.what());
        }
        for (const auto& [off, text] : p) o << "P " << off << " " << text << "\n";
      }
      ro->close();
      u64 answered = 0, corrupt = 0;
      const std::string bad = exercise(path, &answered, &corrupt);
      o << "S " << answered << " " << corrupt << "\n";
      if (!bad.empty()) {
        o << "E " << bad << "\n";
        rc = 3;
      }
    } catch (const std::exception& e) {
      o << "E exception: " << e.what() << "\n";
      rc = 4;
    }
    const std::string s = o.str();
    keel_test::write_all(out, s.data(), s.size());
    ::_exit(rc);
  });
  REQUIRE(c.pid() > 0);
  std::vector<char> buf;
  const auto deadline = clk::now() + limit;
  while (c.pump(buf, 50))
    if (clk::now() > deadline) {
      c.kill_and_wait();
      return {false, std::string(buf.begin(), buf.end()),
              "timed out after " + std::to_string(limit.count()) + " s (a hang or a loop)"};
    }
  const int status = c.wait();
  std::string text(buf.begin(), buf.end());
  if (!WIFEXITED(status)) return {false, text, "the child crashed: " + keel_test::describe_status(status)};
  if (WEXITSTATUS(status) != 0) return {false, text, "the child failed: " + keel_test::describe_status(status)};
  return {true, text, ""};
}

}  // namespace

TEST_CASE("bytes_tree size limits: oversized keys are invalid_argument and change nothing; limits as documented") {
  keel_test::temp_dir dir;
  keel::options o = keel_test::small_opts();
  o.max_size = keel::operator""_GiB(1);
  auto db = keel::store::open(dir.path("s"), o);
  auto b = keel::bytes_tree::open(*db, "b");
  CHECK(keel::bytes_tree::max_key == 1024);
  CHECK(keel::bytes_tree::max_value >= keel::operator""_MiB(64));
  CHECK(keel::bytes_tree::max_value == keel::detail::kTreeMaxValue);
  db->write([&](keel::write_txn& tx) {
    b.put(tx, "a", "1");
    b.put(tx, std::string(1024, 'z'), "max key");  // exactly the limit
    b.put(tx, "", "the empty key");
  });
  const keel::store_info before = db->info();
  const std::string big(1025, 'k');
  for (int how = 0; how < 3; ++how) {
    CAPTURE(how);
    auto e = keel_test::catch_error([&] {
      db->write([&](keel::write_txn& tx) {
        if (how == 0) b.put(tx, big, "v");
        if (how == 1) b.insert(tx, big, "v");
        if (how == 2) b.append(tx, std::string(1025, '\xff'), "v");
      });
    });
    REQUIRE(e);
    CHECK(e->code() == keel::errc::invalid_argument);
    CHECK(keel_test::contains(e->what(), dir.path("s")));
    // Caught inside the transaction: nothing changed, the transaction goes on.
    db->write([&](keel::write_txn& tx) {
      auto e2 = keel_test::catch_error([&] { b.put(tx, big, std::string(5000, 'v')); });
      REQUIRE(e2);
      CHECK(e2->code() == keel::errc::invalid_argument);
      CHECK(b.size(tx) == 3);
    });
  }
  // Lookups with an oversized key find nothing (or say invalid_argument), never crash.
  auto g = keel_test::catch_error([&] { CHECK(!b.get(big)); });
  if (g) CHECK(g->code() == keel::errc::invalid_argument);
  CHECK(b.size() == 3);
  CHECK(db->info().live_bytes == before.live_bytes);
  CHECK(b.get(std::string(1024, 'z')) == "max key");
  CHECK(b.get("") == "the empty key");
  // A large value (out of line) round-trips.
  std::string v(3 << 20, '\0');
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<char>(keel_test::mix(i));
  db->write([&](keel::write_txn& tx) { b.put(tx, "big", v); });
  CHECK(b.get("big") == v);
  db->write([&](keel::write_txn& tx) { CHECK(b.erase(tx, "big")); });
  CHECK(db->info().live_bytes == before.live_bytes);
  problems_t p = db->read([&](const keel::read_view& rv) {
    problems_t q;
    keel::detail::tree_check(rv, b.root(), q);
    return q;
  });
  CHECK_MESSAGE(p.empty(), describe(p));
}

TEST_CASE("tree names opened with the wrong kind or types are type_mismatch") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s"), keel_test::small_opts());
  keel::tree_map<u64, u64>::open(*db, "t");
  keel::bytes_tree::open(*db, "b");
  keel::hash_map<u64, u64>::open(*db, "h");
  db->write([&](keel::write_txn& tx) {
    tx.open_root("raw", keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<u64>());
  });
  auto code = [&](auto&& f) {
    auto e = keel_test::catch_error(f);
    return e ? e->code() : keel::errc{};
  };
  CHECK(code([&] { keel::tree_map<u32, u64>::open(*db, "t"); }) == keel::errc::type_mismatch);
  CHECK(code([&] { keel::tree_map<u64, std::array<char, 8>>::open(*db, "t"); }) == keel::errc::type_mismatch);
  CHECK(code([&] { keel::bytes_tree::open(*db, "t"); }) == keel::errc::type_mismatch);
  CHECK(code([&] { keel::tree_map<u64, u64>::open(*db, "b"); }) == keel::errc::type_mismatch);
  CHECK(code([&] { keel::tree_map<u64, u64>::open(*db, "h"); }) == keel::errc::type_mismatch);
  CHECK(code([&] { keel::bytes_tree::open(*db, "raw"); }) == keel::errc::type_mismatch);
  CHECK(code([&] { keel::hash_map<u64, u64>::open(*db, "t"); }) == keel::errc::type_mismatch);
  // The trees are intact afterwards.
  auto t = keel::tree_map<u64, u64>::open(*db, "t");
  db->write([&](keel::write_txn& tx) { t.put(tx, 1, 2); });
  CHECK(t.get(1) == std::optional<u64>(2));
}

TEST_CASE("corrupt tree nodes: tree_check names the block; reads and writes answer or throw corrupt, never crash or hang") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s");
  u64 t_root = 0, b_root = 0;
  {
    auto db = keel::store::open(path, keel_test::small_opts());
    auto t = keel::tree_map<u64, u64>::open(*db, "t");
    auto b = keel::bytes_tree::open(*db, "b");
    std::mt19937_64 rng(7);
    db->write([&](keel::write_txn& tx) {
      for (u64 k = 0; k < 40000; ++k) t.put(tx, (rng() % 30000) * 2, k);  // random order: a branch level
      for (int i = 0; i < 400; ++i)
        b.put(tx, "key/" + std::to_string(i), std::string(i % 10 == 0 ? 3000 : 50, static_cast<char>('a' + i % 26)));
    });
    t_root = t.root();
    b_root = b.root();
    db->close();
  }
  const std::string pristine = keel_test::read_file(path);
  REQUIRE(std::memcmp(pristine.data() + t_root, "KEELTREE", 8) == 0);
  const u64 node = get_at<u64>(pristine, t_root + kRootNode);
  const u32 height = get_at<u32>(pristine, t_root + kRootHeight);
  REQUIRE_MESSAGE(height >= 2, "the test tree must have a branch level (height ", height, ")");
  // Leaves in chain order.
  std::vector<u64> leaves;
  for (u64 l = get_at<u64>(pristine, t_root + kRootFirstLeaf); l != 0 && leaves.size() < 100000;
       l = get_at<u64>(pristine, l + kNext))
    leaves.push_back(l);
  REQUIRE(leaves.size() >= 6);
  const u64 leaf = leaves[leaves.size() / 2], prev_leaf = leaves[leaves.size() / 2 - 2];
  const u16 leaf_count = get_at<u16>(pristine, leaf + kCount);
  REQUIRE(leaf_count >= 8);
  REQUIRE(get_at<u32>(pristine, node + kMagic) == 0x444E544Bu);
  REQUIRE(get_at<std::uint8_t>(pristine, node + kLevel) == height - 1);
  // A bytes_tree leaf with an out-of-line value.
  const u64 bleaf = get_at<u64>(pristine, b_root + kRootFirstLeaf);
  u64 blob_cell = 0;
  for (u16 i = 0; i < get_at<u16>(pristine, bleaf + kCount) && !blob_cell; ++i) {
    const u64 cell = bleaf + get_at<u16>(pristine, bleaf + kSlots + 2 * i);
    if (get_at<std::uint8_t>(pristine, cell + 2) & 1) blob_cell = cell;
  }
  // The pristine store is clean.
  {
    const child_result r = run_child(path, t_root, b_root, 60s);
    REQUIRE_MESSAGE(r.ok, "pristine store: ", r.status, ":\n", r.text);
    REQUIRE_MESSAGE(r.text.find("P ") == std::string::npos, "tree_check on the pristine store: ", r.text);
  }

  struct damage {
    std::string what;
    u64 block;  // the block a problem must name
    std::function<void(std::string&)> f;
    u64 alt = 0;  // also accepted: the block a bad pointer points at
  };
  std::vector<damage> dmg = {
      {"leaf magic", leaf, [&](std::string& f) { put_at<u32>(f, leaf + kMagic, 0x12345678); }},
      {"leaf level 1", leaf, [&](std::string& f) { put_at<std::uint8_t>(f, leaf + kLevel, 1); }},
      {"leaf level 200", leaf, [&](std::string& f) { put_at<std::uint8_t>(f, leaf + kLevel, 200); }},
      {"branch level 0", node, [&](std::string& f) { put_at<std::uint8_t>(f, node + kLevel, 0); }},
      {"leaf count 0xffff", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kCount, 0xFFFF); }},
      {"leaf count + 1", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kCount, static_cast<u16>(leaf_count + 1)); }},
      {"leaf count 0", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kCount, 0); }},
      {"heap 10 (inside the header)", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kHeap, 10); }},
      {"heap 4095", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kHeap, 4095); }},
      {"heap 0xffff", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kHeap, 0xFFFF); }},
      {"cell offset 4090 (the cell crosses the page end)", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kSlots, 4090); }},
      {"cell offset 0", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kSlots + 2, 0); }},
      {"cell offset 0xffff", leaf, [&](std::string& f) { put_at<u16>(f, leaf + kSlots + 4, 0xFFFF); }},
      {"two slots with one cell", leaf,
       [&](std::string& f) { put_at<u16>(f, leaf + kSlots + 6, get_at<u16>(f, leaf + kSlots + 8)); }},
      {"keys out of order (two slots swapped)", leaf,
       [&](std::string& f) {
         const u16 a = get_at<u16>(f, leaf + kSlots + 4), b = get_at<u16>(f, leaf + kSlots + 10);
         put_at<u16>(f, leaf + kSlots + 4, b);
         put_at<u16>(f, leaf + kSlots + 10, a);
       }},
      {"a key above the parent's bound", leaf,
       [&](std::string& f) {
         const u64 cell = leaf + get_at<u16>(f, leaf + kSlots + 2 * (leaf_count - 1));
         put_at<u64>(f, cell, ~u64{0});  // the last key (big-endian) becomes the largest u64
       }},
      {"sibling cycle: next points back two leaves", leaf, [&](std::string& f) { put_at<u64>(f, leaf + kNext, prev_leaf); }},
      {"sibling cycle: next points to itself", leaf, [&](std::string& f) { put_at<u64>(f, leaf + kNext, leaf); }},
      {"prev pointer wrong", leaf, [&](std::string& f) { put_at<u64>(f, leaf + kPrev, leaf); }},
      {"next pointer out of range", leaf, [&](std::string& f) { put_at<u64>(f, leaf + kNext, u64{1} << 50); }},
      {"branch child0 out of range", node, [&](std::string& f) { put_at<u64>(f, node + kChild0, u64{1} << 45); }},
      {"branch child0 near 2^64", node, [&](std::string& f) { put_at<u64>(f, node + kChild0, ~u64{0} - 4095); }},
      {"branch child0 is the branch itself", node, [&](std::string& f) { put_at<u64>(f, node + kChild0, node); }},
      {"branch child0 misaligned", node,
       [&](std::string& f) { put_at<u64>(f, node + kChild0, get_at<u64>(f, node + kChild0) + 8); }},
      {"branch cell child is the tree root block", node,
       [&](std::string& f) {
         const u64 cell = node + get_at<u16>(f, node + kSlots);
         put_at<u64>(f, cell + 8, t_root);  // typed branch cell: 8-byte key, u64 child
       },
       t_root},
      {"tree root: height 9", t_root, [&](std::string& f) { put_at<u32>(f, t_root + kRootHeight, 9); }},
      {"tree root: root node out of range", t_root, [&](std::string& f) { put_at<u64>(f, t_root + kRootNode, u64{1} << 44); }},
      {"tree root: first leaf is the root branch", t_root, [&](std::string& f) { put_at<u64>(f, t_root + kRootFirstLeaf, node); }},
      {"tree root: entry count off by one", t_root,
       [&](std::string& f) { put_at<u64>(f, t_root + 24, get_at<u64>(f, t_root + 24) + 1); }},
  };
  if (blob_cell) {
    dmg.push_back({"bytes_tree: blob offset out of range", bleaf, [&, blob_cell](std::string& f) {
                     const u16 klen = get_at<u16>(f, blob_cell);
                     put_at<u64>(f, blob_cell + 8 + klen, u64{1} << 44);
                   }});
    dmg.push_back({"bytes_tree: blob length 2^31", bleaf,
                   [&, blob_cell](std::string& f) { put_at<u32>(f, blob_cell + 4, 0x80000000u); }});
  }
  int named = 0, unnamed = 0;
  std::string unnamed_list;
  for (const damage& d : dmg) {
    CAPTURE(d.what);
    std::string f = pristine;
    d.f(f);
    REQUIRE(f != pristine);
    keel_test::write_file(path, f);
    const auto t0 = clk::now();
    const child_result r = run_child(path, t_root, b_root, 30s);
    CHECK_MESSAGE(r.ok, d.what, ": ", r.status, ":\n", r.text);
    // The problems tree_check reported: at least one, and one names the damaged block.
    bool any = false, names = false;
    std::istringstream in(r.text);
    std::string line, summary;
    while (std::getline(in, line)) {
      if (line.rfind("S ", 0) == 0) summary = line.substr(2);
      if (line.rfind("P ", 0) != 0) continue;
      any = true;
      const u64 off = std::strtoull(line.c_str() + 2, nullptr, 10);
      if (off == d.block || keel_test::contains(line.substr(line.find(' ', 2)), std::to_string(d.block))) names = true;
      if (d.alt && off == d.alt) names = true;
    }
    CHECK_MESSAGE(any, d.what, ": tree_check reported no problem");
    if (any && !names) {
      ++unnamed;
      unnamed_list += d.what + "; ";
    } else if (names) {
      ++named;
    }
    CHECK_MESSAGE((!any || names), d.what, ": no problem names block ", d.block, "; tree_check said:\n", r.text);
    MESSAGE(d.what, ": ", std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t0).count(),
            " ms, reads answered / corrupt: ", summary);
  }
  MESSAGE(dmg.size(), " kinds of damage, ", named, " named by tree_check, ", unnamed, " not: ", unnamed_list);
}
