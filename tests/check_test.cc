// keel::check: a healthy store (in place, with a live writer, with a dead
// writer's log tail) is clean; each kind of damage is reported with the
// right part and offset; random byte flips never crash or hang it; it never
// modifies the files.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <keel/check.h>
#include <keel/bytes_tree.h>
#include <keel/keel.h>
#include <keel/tree_map.h>
#include <random>
#include <string>

#include "file/format.h"
#include "hash/table.h"
#include "support/inspect.h"
#include "support/proc.h"
#include "support/stores.h"
#include "support/log_file.h"
#include "support/temp_dir.h"
#include "support/testing.h"

using namespace keel;
using namespace keel_test;
using fmt::kPage;

namespace {

constexpr u64 kMeta = fmt::kMetaOffset;

const check_problem* find(const std::vector<check_problem>& v, const std::string& where, u64 offset,
                          const std::string& text = "") {
  for (const auto& p : v)
    if (p.where == where && p.offset == offset && contains(p.what, text)) return &p;
  return nullptr;
}

bool any_note(const check_report& r, const std::string& text) {
  for (const auto& n : r.notes)
    if (contains(n.what, text)) return true;
  return false;
}

struct built {
  u64 m_root = 0, empty_root = 0, b_root = 0, t_root = 0, bt_root = 0;
  u64 m_size = 0, b_size = 0, t_size = 0, bt_size = 0;
};

// A store with a fixed-key hash map left in the middle of a resize, a bytes
// map with inline and out-of-line values (some erased, so free lists are
// populated), an empty map; ~400 commits. Closed cleanly.
built build(const std::string& path) {
  built out;
  auto db = store::open(path, small_opts());
  auto m = hash_map<u64, u64>::open(*db, "m");
  auto e = hash_map<u64, u64>::open(*db, "empty");
  auto b = bytes_map::open(*db, "b");
  for (u64 i = 0; i < 300; ++i)
    db->write([&](write_txn& tx) {
      m.put(tx, i, i * 10);
      if (i % 3 == 0) b.put(tx, "key-" + std::to_string(i), std::string(i % 7 == 0 ? 5000 : 20 + i % 50, char('a' + i % 26)));
    });
  for (u64 i = 0; i < 300; i += 5)
    db->write([&](write_txn& tx) {
      m.erase(tx, i);
      b.erase(tx, "key-" + std::to_string(i));
    });
  // Two B+trees: several levels, blobs, erased entries.
  auto t = tree_map<u64, u64>::open(*db, "t");
  auto bt = bytes_tree::open(*db, "bt");
  for (u64 i = 0; i < 3000; i += 100)
    db->write([&](write_txn& tx) {
      for (u64 j = i; j < i + 100; ++j) t.put(tx, j * 7919 % 3001, j);
      bt.put(tx, "row-" + std::to_string(i), std::string(i % 700 == 0 ? 9000 : 40, 'r'));
    });
  db->write([&](write_txn& tx) {
    for (u64 j = 0; j < 3000; j += 3) t.erase(tx, j);
    bt.erase(tx, "row-700");
  });
  // Leave a resize running.
  for (u64 k = 1000; k < 3000 && read_root(*db, m.root()).old.groups == 0; ++k)
    db->write([&](write_txn& tx) { m.put(tx, k, k); });
  REQUIRE(read_root(*db, m.root()).old.groups != 0);
  out.m_root = m.root();
  out.empty_root = e.root();
  out.b_root = b.root();
  out.t_root = t.root();
  out.bt_root = bt.root();
  out.t_size = t.size();
  out.bt_size = bt.size();
  out.m_size = m.size();
  out.b_size = b.size();
  db->close();
  return out;
}

fmt::meta_page read_meta(const std::string& path) {
  fmt::meta_page m;
  const std::string f = read_file(path);
  std::memcpy(&m, f.data() + kMeta, sizeof m);
  return m;
}

fmt::map_root read_root_file(const std::string& path, u64 root) {
  fmt::map_root r;
  const std::string f = read_file(path);
  std::memcpy(&r, f.data() + root, sizeof r);
  return r;
}

// Offset of the catalog entry named `name`.
u64 catalog_slot_at(const std::string& path, const std::string& name) {
  const std::string f = read_file(path);
  u64 page = read_meta(path).catalog_head;
  while (page != 0) {
    for (u64 i = 0; i < fmt::kCatalogEntries; ++i) {
      const u64 at = page + fmt::kCatalogHeader + i * fmt::kCatalogEntry;
      const auto len = static_cast<std::uint8_t>(f[at + 1]);
      if (f[at] == 1 && std::string(f.data() + at + 48, len) == name) return at;
    }
    std::memcpy(&page, f.data() + page + 8, 8);
  }
  FAIL("no catalog entry " << name);
  return 0;
}

void poke64(const std::string& path, u64 off, u64 v) { poke(path, off, &v, 8); }

// A child commits `n` transactions to "m" (values = 7 * key + t) and dies
// without closing: the store is left with a log tail to recover.
void dead_writer(const std::string& path, int n, durability mode = durability::sync) {
  child_proc c = spawn_store_child([&](int) {
    auto o = small_opts();
    o.mode = mode;
    auto db = store::open(path, o);
    auto m = hash_map<u64, u64>::open(*db, "m");
    for (int t = 0; t < n; ++t)
      db->write([&](write_txn& tx) {
        for (u64 k = 0; k < 20; ++k) m.put(tx, 5000 + k, 7 * k + static_cast<u64>(t));
      });
    ::_exit(0);  // no close (nor destructor): the log keeps the commits
  });
  REQUIRE(c.pid() > 0);
  const int status = c.wait();
  REQUIRE_MESSAGE(exited_ok(status), describe_status(status));
}

// Record offsets in the log.
std::vector<u64> record_offsets(const std::string& path) {
  const std::string log = read_file(path + "-log");
  std::vector<u64> out;
  for (const log_record& r : log_records(log)) out.push_back(r.pos);
  return out;
}

}  // namespace

TEST_CASE("a healthy store is clean, in place") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  const built b = build(p);
  const std::string before = all_files(p);
  u64 calls = 0, last_done = 0, last_total = 0;
  const check_report r = check(p, [&](u64 done, u64 total) {
    ++calls;
    last_done = done;
    last_total = total;
  });
  INFO(dump(r));
  CHECK(r.clean());
  CHECK_FALSE(r.snapshot);
  CHECK_FALSE(r.recovery_pending);
  CHECK(r.structures == 5);
  CHECK(r.entries == b.m_size + b.b_size + b.t_size + b.bt_size);
  CHECK(r.blocks > 100);
  CHECK(r.log_records == 0);
  CHECK(r.lsn > 400);
  CHECK((find(r.notes, "superblock 0", 0, "in use") != nullptr || find(r.notes, "superblock 1", kPage, "in use") != nullptr));
  CHECK(calls > 2);
  CHECK(last_done <= last_total);
  CHECK(all_files(p) == before);  // never modifies the store
}

TEST_CASE("a dead writer's log tail: checked as recovery will leave it, files untouched") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  build(p);
  dead_writer(p, 25);
  const std::string before = all_files(p);
  const check_report r = check(p);
  INFO(dump(r));
  CHECK(r.clean());
  CHECK(r.recovery_pending);
  CHECK(r.snapshot);
  CHECK(r.log_records == 25);
  CHECK(any_note(r, "recovery pending"));
  CHECK(all_files(p) == before);
  // Recovery then gives exactly what was checked.
  auto db = store::open(p, small_opts());
  CHECK(db->info().last_lsn == r.lsn);
  db->close();
  const check_report after = check(p);
  INFO(dump(after));
  CHECK(after.clean());
  CHECK_FALSE(after.recovery_pending);
  CHECK(after.lsn == r.lsn);
}

TEST_CASE("a store with a live writer in another process is checked on a snapshot") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  build(p);
  child_proc writer = spawn_store_child([&](int out) {
    auto o = small_opts();
    o.checkpoint_bytes = 256 * 1024;
    auto db = store::open(p, o);
    auto m = hash_map<u64, u64>::open(*db, "m");
    auto bm = bytes_map::open(*db, "b");
    for (u64 t = 0;; ++t) {
      db->write([&](write_txn& tx) {
        m.put(tx, 10000 + t % 500, t);
        bm.put(tx, "live-" + std::to_string(t % 200), std::string(t % 9000, 'x'));
      });
      if (t == 0) signal_ready(out);  // after its first write, which takes the control page over
    }
  });
  REQUIRE(writer.pid() > 0);
  REQUIRE(writer.wait_ready());
  for (int i = 0; i < 3; ++i) {
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(r.clean());
    CHECK(r.snapshot);
    CHECK_FALSE(r.recovery_pending);
    CHECK(any_note(r, "a writer holds the writer lock; the page names pid " + std::to_string(writer.pid()) + ","));
  }
  const int status = writer.kill_and_wait();
  CHECK(WIFSIGNALED(status));
}

TEST_CASE("a destroyed superblock is reported; the check names the one in use") {
  for (std::uint32_t slot = 0; slot < 2; ++slot) {
    CAPTURE(slot);
    temp_dir d;
    const std::string p = d.path("s.keel");
    build(p);
    const char junk[16] = "garbage garbage";
    poke(p, slot * kPage + 8, junk, sizeof junk);
    const check_report r = check(p);
    INFO(dump(r));
    REQUIRE(r.problems.size() == 1);
    CHECK(find(r.problems, "superblock " + std::to_string(slot), slot * kPage, "unusable") != nullptr);
    const std::uint32_t other = 1 - slot;
    CHECK(find(r.notes, "superblock " + std::to_string(other), other * kPage, "only copy") != nullptr);
  }
  temp_dir d;
  const std::string p = d.path("s.keel");
  build(p);
  poke64(p, 0, 0);
  poke64(p, kPage, 0);
  const check_report r = check(p);
  INFO(dump(r));
  CHECK(find(r.problems, "superblock", 0, "no valid superblock") != nullptr);
}

TEST_CASE("meta page: a cursor past the end of the file") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  build(p);
  const u64 size = read_file(p).size();
  poke64(p, kMeta + offsetof(fmt::meta_page, cursor), size + 10 * kPage);
  const check_report r = check(p);
  INFO(dump(r));
  CHECK(find(r.problems, "meta page", kMeta + offsetof(fmt::meta_page, cursor), "outside the arena") != nullptr);
}

TEST_CASE("allocator: a free-list cycle, a free block over a live table, accounting off") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  const built b = build(p);
  const std::string pristine = read_file(p);
  const fmt::meta_page m = read_meta(p);
  int cls = -1;
  for (int c = 0; c < fmt::kClasses && cls < 0; ++c)
    if (m.free_head[c] != 0) cls = c;
  REQUIRE(cls >= 0);

  SUBCASE("cycle") {
    const u64 head = m.free_head[cls];
    poke64(p, head, head);  // the block links to itself
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "allocator", head, "cycle") != nullptr);
  }
  SUBCASE("a free block overlapping a live table") {
    // The empty map's control block: 16 zero bytes (class 0), so as a free
    // block it ends the list cleanly.
    const u64 ctrl = read_root_file(p, b.empty_root).cur.ctrl;
    poke64(p, kMeta + offsetof(fmt::meta_page, free_head), ctrl);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "allocator", ctrl, "overlaps") != nullptr);
    bool names_both = false;
    for (const auto& q : r.problems)
      names_both |= contains(q.what, "free list of class 0") && contains(q.what, "hash_map 'empty' table");
    CHECK(names_both);
  }
  SUBCASE("live bytes off by 12288") {
    poke64(p, kMeta + offsetof(fmt::meta_page, live_bytes), m.live_bytes + 12288);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "allocator", kMeta + offsetof(fmt::meta_page, live_bytes), "off by +12288") != nullptr);
  }
  SUBCASE("free bytes off") {
    poke64(p, kMeta + offsetof(fmt::meta_page, free_bytes), m.free_bytes - 32);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "allocator", kMeta + offsetof(fmt::meta_page, free_bytes), "off by -32") != nullptr);
  }
  SUBCASE("a block on two free lists") {
    // Put the head block of the first list at the head of class 0 as well
    // (any 16-aligned block is a valid place for a 16-byte one).
    if (cls != 0) {
      poke64(p, kMeta + offsetof(fmt::meta_page, free_head), m.free_head[cls]);
      const check_report r = check(p);
      INFO(dump(r));
      bool two = false;
      for (const auto& q : r.problems) two |= q.where == "allocator" && contains(q.what, "free lists of classes");
      CHECK(two);
    }
  }
  (void)pristine;
}

TEST_CASE("catalog: an entry with a bad kind or a root outside the arena") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  build(p);
  const u64 at = catalog_slot_at(p, "m");
  SUBCASE("kind") {
    const std::uint16_t k = 9;
    poke(p, at + offsetof(fmt::catalog_slot, kind), &k, 2);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "catalog", at + offsetof(fmt::catalog_slot, kind), "unknown kind 9") != nullptr);
  }
  SUBCASE("root") {
    poke64(p, at + offsetof(fmt::catalog_slot, root), u64{1} << 40);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "catalog", at + offsetof(fmt::catalog_slot, root), "outside the arena") != nullptr);
  }
  SUBCASE("a second entry sharing the map's blocks") {
    // Copy the entry into a free slot of the same page under another name.
    const u64 page = at - (at % kPage);
    const std::string f = read_file(p);
    u64 free_slot = 0;
    for (u64 i = 0; i < fmt::kCatalogEntries && free_slot == 0; ++i) {
      const u64 s2 = page + fmt::kCatalogHeader + i * fmt::kCatalogEntry;
      if (f[s2] == 0) free_slot = s2;
    }
    REQUIRE(free_slot != 0);
    std::string e = f.substr(at, fmt::kCatalogEntry);
    e[1] = 2;
    e[48] = 'm';
    e[49] = '2';
    poke(p, free_slot, e.data(), e.size());
    u64 root;
    std::memcpy(&root, e.data() + offsetof(fmt::catalog_slot, root), 8);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "allocator", root, "hash_map 'm") != nullptr);
    CHECK(r.structures == 6);
  }
  SUBCASE("type") {
    fmt::type_bytes t{3, 4, 8, 0};  // a u32 code with 8 bytes
    poke(p, at + offsetof(fmt::catalog_slot, value), &t, sizeof t);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "catalog", at + offsetof(fmt::catalog_slot, value), "value type") != nullptr);
  }
}

TEST_CASE("hash map damage: misplaced key, size, control byte, used count, bad root") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  const built b = build(p);
  const fmt::map_root rt = read_root_file(p, b.m_root);
  const hash::geom g(8, 8);
  const std::string f = read_file(p);
  const u64 mask = rt.cur.groups - 1;
  auto ctrl_at = [&](u64 idx) { return static_cast<std::uint8_t>(f[rt.cur.ctrl + idx]); };
  // A live slot of the current table, and its key's home group.
  u64 idx = 0;
  while (ctrl_at(idx) < 0x80) ++idx;
  u64 key;
  std::memcpy(&key, f.data() + g.slot_off(rt.cur, idx), 8);
  const u64 h = hash::hash_of(&key, 8, rt.seed);
  REQUIRE(hash::tag_of(h) == ctrl_at(idx));
  const std::string where = "hash_map 'm'";

  SUBCASE("a key far from its hash position") {
    // Move the entry (slot and control byte) half the table away from home.
    const u64 home = hash::home_of(h, rt.cur.groups);
    u64 target = UINT64_MAX;
    for (u64 gi = (home + rt.cur.groups / 2) & mask; target == UINT64_MAX; gi = (gi + 1) & mask)
      for (u64 i = 0; i < 16; ++i)
        if (ctrl_at(gi * 16 + i) == 0) {
          target = gi * 16 + i;
          break;
        }
    REQUIRE(((target / 16 - home) & mask) > rt.cur.max_probe);
    const std::uint8_t tag = ctrl_at(idx), deleted = fmt::kCtrlDeleted;
    poke(p, g.slot_off(rt.cur, target), f.data() + g.slot_off(rt.cur, idx), 16);
    poke(p, rt.cur.ctrl + target, &tag, 1);
    poke(p, rt.cur.ctrl + idx, &deleted, 1);
    poke64(p, b.m_root + offsetof(fmt::map_root, cur) + offsetof(fmt::map_table, used), rt.cur.used + 1);
    const check_report r = check(p);
    INFO(dump(r));
    REQUIRE(r.problems.size() == 1);
    CHECK(find(r.problems, where, g.slot_off(rt.cur, target), "past max probe") != nullptr);
  }
  SUBCASE("a key rewritten in place (its hash no longer matches its control byte)") {
    u64 other = key ^ 0x5a5a5a5a00000000ull;
    while (hash::tag_of(hash::hash_of(&other, 8, rt.seed)) == ctrl_at(idx)) ++other;
    poke64(p, g.slot_off(rt.cur, idx), other);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, where, rt.cur.ctrl + idx, "does not match its key's hash") != nullptr);
  }
  SUBCASE("size off by one") {
    poke64(p, b.m_root + offsetof(fmt::map_root, size), rt.size + 1);
    const check_report r = check(p);
    INFO(dump(r));
    REQUIRE(r.problems.size() == 1);
    CHECK(find(r.problems, where, b.m_root + offsetof(fmt::map_root, size), "the tables hold " + std::to_string(rt.size)) != nullptr);
  }
  SUBCASE("an invalid control byte") {
    u64 e = 0;
    while (ctrl_at(e) != 0) ++e;
    const std::uint8_t bad = 0x05;
    poke(p, rt.cur.ctrl + e, &bad, 1);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, where, rt.cur.ctrl + e, "neither empty, deleted nor full") != nullptr);
  }
  SUBCASE("the old table's used count") {
    poke64(p, b.m_root + offsetof(fmt::map_root, old) + offsetof(fmt::map_table, used), rt.old.used + 3);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, where, b.m_root + offsetof(fmt::map_root, old) + offsetof(fmt::map_table, used), "old table") != nullptr);
  }
  SUBCASE("a root without magic") {
    poke64(p, b.m_root, 0);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, where, b.m_root, "magic") != nullptr);
  }
}

TEST_CASE("bytes map damage: entry block, stored hash") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  const built b = build(p);
  const fmt::map_root rt = read_root_file(p, b.b_root);
  const hash::geom g(16, 0);
  const std::string f = read_file(p);
  u64 idx = 0;
  while (static_cast<std::uint8_t>(f[rt.cur.ctrl + idx]) < 0x80) ++idx;
  const u64 so = g.slot_off(rt.cur, idx);
  SUBCASE("entry offset outside the arena") {
    poke64(p, so + 8, u64{1} << 40);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "bytes_map 'b'", so, "outside the arena") != nullptr);
  }
  SUBCASE("stored hash") {
    u64 hv;
    std::memcpy(&hv, f.data() + so, 8);
    poke64(p, so, hv ^ 1);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "bytes_map 'b'", so, "stored hash") != nullptr);
  }
}

TEST_CASE("log: a flipped byte in the middle is an error, a torn tail a note") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  build(p);
  dead_writer(p, 12);
  const auto recs = record_offsets(p);
  REQUIRE(recs.size() == 12);
  SUBCASE("flip") {
    const std::string f = read_file(p + "-log");
    const char flipped = static_cast<char>(f[recs[5] + 60] ^ 0x10);
    poke(p + "-log", recs[5] + 60, &flipped, 1);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "log", recs[5], "follows") != nullptr);
    CHECK(r.log_records == 5);
    CHECK(r.recovery_pending);
  }
  SUBCASE("torn tail") {
    REQUIRE(::truncate((p + "-log").c_str(), static_cast<off_t>(recs[11] + 50)) == 0);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(r.clean());
    CHECK(find(r.notes, "log", recs[11], "torn tail") != nullptr);
    CHECK(r.log_records == 11);
  }
  SUBCASE("a record whose checksums match but whose range lies outside the file") {
    // Rewrite record 3's first range offset and re-seal both checksums.
    std::string f = read_file(p + "-log");
    fmt::record_header h;
    std::memcpy(&h, f.data() + recs[3], sizeof h);
    const u64 bad = u64{1} << 40;
    std::memcpy(f.data() + recs[3] + sizeof h, &bad, 8);
    const u64 total = sizeof h + h.payload_bytes;
    fmt::record_trailer t;
    std::memcpy(&t, f.data() + recs[3] + total, sizeof t);
    t.checksum = XXH3_64bits(f.data() + recs[3], total);
    std::memcpy(f.data() + recs[3] + total, &t, sizeof t);
    write_file(p + "-log", f);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "log", recs[3], "outside the store") != nullptr);
  }
}

TEST_CASE("journal: an entry corrupt in the middle is an error, a torn tail a note") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  build(p);
  dead_writer(p, 30, durability::batch);  // batch mode journals before-images
  const std::string j = read_file(p + "-journal");
  std::vector<u64> entries;
  for (u64 pos = sizeof(fmt::file_header); pos + sizeof(fmt::journal_entry) <= j.size();) {
    fmt::journal_entry e;
    std::memcpy(&e, j.data() + pos, sizeof e);
    entries.push_back(pos);
    pos += sizeof e + static_cast<u64>(std::popcount(e.line_mask)) * 64;
  }
  REQUIRE(entries.size() >= 2);
  {
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(r.clean());
    CHECK(r.journal_entries == entries.size());
  }
  SUBCASE("middle") {
    const char x = static_cast<char>(j[entries[0] + 50] ^ 1);
    poke(p + "-journal", entries[0] + 50, &x, 1);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "journal", entries[0], "valid entries follow") != nullptr);
  }
  SUBCASE("tail") {
    REQUIRE(::truncate((p + "-journal").c_str(), static_cast<off_t>(entries.back() + 45)) == 0);
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(r.clean());
    CHECK(find(r.notes, "journal", entries.back(), "torn tail") != nullptr);
  }
}

TEST_CASE("tree damage is reported through the tree engine's checker, with its blocks accounted") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  const built b = build(p);
  // The tree root's first node pointer (docs/FORMAT.md, "B+tree": u64 at 16).
  const u64 node = peek64(p, b.t_root + 16);
  REQUIRE(node % kPage == 0);
  SUBCASE("a node's bytes") {
    const std::string f = read_file(p);
    std::string junk(64, '\xee');
    poke(p, node + 64, junk.data(), junk.size());
    const check_report r = check(p);
    INFO(dump(r));
    bool tree = false;
    for (const auto& q : r.problems) tree |= q.where == "tree_map 't'";
    CHECK(tree);
  }
  SUBCASE("a free block over a tree node") {
    const int cls = fmt::kSmallClasses - 1;  // 4096-byte blocks
    const fmt::meta_page m = read_meta(p);
    poke64(p, kMeta + offsetof(fmt::meta_page, free_head) + 8 * cls, node);
    (void)m;
    const check_report r = check(p);
    INFO(dump(r));
    CHECK(find(r.problems, "allocator", node, "tree_map 't'") != nullptr);
  }
}

TEST_CASE("a raw structure is named, not guessed at") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  {
    auto db = store::open(p, small_opts());
    db->write([&](write_txn& tx) {
      tx.open_root("raw", kind::raw, type_desc::none(), type_desc::none());
      const u64 blk = tx.alloc(100);
      tx.set_root("raw", blk, 0);
    });
    db->close();
  }
  const check_report r = check(p);
  INFO(dump(r));
  CHECK(r.clean());
  CHECK(any_note(r, "raw structure 'raw'"));
  CHECK(any_note(r, "live bytes are not reachable"));
}

TEST_CASE("random byte flips never crash or hang the checker") {
  temp_dir d;
  const std::string p = d.path("s.keel");
  {
    auto db = store::open(p, small_opts());
    auto m = hash_map<u64, u64>::open(*db, "m");
    auto b = bytes_map::open(*db, "b");
    auto t = tree_map<u64, u64>::open(*db, "t");
    auto bt = bytes_tree::open(*db, "bt");
    for (u64 i = 0; i < 200; ++i)
      db->write([&](write_txn& tx) {
        m.put(tx, i, i);
        for (u64 j = 0; j < 5; ++j) t.put(tx, i * 5 + j, j);
        bt.put(tx, "k" + std::to_string(i * 31 % 200), std::string(i % 50 == 0 ? 6000 : i % 40, 't'));
        b.put(tx, std::to_string(i), std::string(i % 11 == 0 ? 4500 : i % 60, 'v'));
        if (i % 4 == 0) b.erase(tx, std::to_string(i / 2));
      });
    db->close();
  }
  // Two originals: closed cleanly (checked in place), and with a dead
  // writer's log and journal (checked on a snapshot), damaged in turn.
  const store_files clean = read_store(p);
  dead_writer(p, 6, durability::batch);
  const store_files tail_state = read_store(p);
  const u64 cursor = read_meta(p).cursor;
  const char* env = std::getenv("KEEL_FUZZ_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 300;
  const char* seed_env = std::getenv("KEEL_FUZZ_SEED");  // to replay a failure
  const u64 seed = seed_env ? std::strtoull(seed_env, nullptr, 10)
                            : static_cast<u64>(std::chrono::steady_clock::now().time_since_epoch().count());
  INFO("seed " << seed << " (KEEL_FUZZ_SEED)");
  std::mt19937_64 rng(seed);
  int problems = 0, snapshots = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int it = 0; it < iterations; ++it) {
    const bool tail = it % 2 == 1;
    store_files f = tail ? tail_state : clean;
    std::string &dd = f.data, &ll = f.log, &jj = f.journal;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) {
      const auto which = rng() % 10;
      std::string& s = which < 7 || !tail ? dd : which < 9 ? ll : jj;
      // Mostly the metadata and structures, sometimes anywhere.
      u64 limit = &s == &dd ? (rng() % 2 ? 4 * kPage + 64 * 1024 : cursor) : s.size();
      limit = std::min<u64>(limit, s.size());
      const u64 at = rng() % limit;
      s[at] = static_cast<char>(rng() % 3 == 0 ? rng() : s[at] ^ (1 << (rng() % 8)));
    }
    if (tail && rng() % 20 == 0) ll.resize(rng() % ll.size());
    write_store(p, f);
    check_report r;
    try {
      r = check(p);
    } catch (const keel::error& e) {
      FAIL("check threw " << e.what());
    }
    problems += r.clean() ? 0 : 1;
    snapshots += r.snapshot ? 1 : 0;
  }
  MESSAGE(iterations << " damaged files in "
                     << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s: "
                     << problems << " reported damage, " << snapshots << " checked on a snapshot");
  // Many flips land in values or unused bytes: undetectable by design. Over
  // seeds 1-12 the checker reported 84-102 of 300 (about 31%, binomial
  // sd about 8); a time seed once gave 73, so a bound of a quarter failed
  // about one run in a hundred. An eighth is over six sd below the mean,
  // and still fails a checker that reports (almost) nothing.
  CHECK(problems > iterations / 8);
}
