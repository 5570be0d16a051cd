// write_txn::mut_unpublished: bytes nothing committed uses may go straight
// to the mapping. These cases check when they do, that they are logged in
// the right order, and that the fallback keeps a power cut from bringing
// back a committed entry over bytes a later, lost transaction wrote there
// (docs/DURABILITY.md, "Unpublished writes").
#include <doctest/doctest.h>

#include <cstring>
#include <keel/check.h>
#include <keel/hash_map.h>
#include <keel/keel.h>
#include <random>

#include "support/crash_state.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"

using keel_test::cut_policy;
using keel_test::sim_os;
using u64 = std::uint64_t;

namespace {

u64 read_u64(keel::store& db, u64 off) {
  return db.read([&](const keel::read_view& v) {
    u64 x;
    std::memcpy(&x, v.bytes(off, 8), 8);
    return x;
  });
}

// A committed 4 KiB block of zeros, allocated after the store's creation
// checkpoint.
u64 new_block(keel::store& db) {
  u64 off = 0;
  db.write([&](keel::write_txn& tx) {
    off = tx.alloc(4096);
    tx.zero(off, 4096);
  });
  return off;
}

// Opens a power-cut image as the first writer after the reboot.
std::unique_ptr<keel::store> reopen(const std::string& img, keel::durability mode, sim_os& after) {
  after.new_boot();
  return keel::store::open(img, {.create_if_missing = false, .mode = mode, .os = &after});
}

// A checkpoint-mode store on a simulated OS with a u64 -> u64 map "m".
// erase_after_checkpoint() then builds keys 1..n (values k * 100; the table
// reserved for `reserve` entries when nonzero), a checkpoint, more than
// 64 KiB of unsynced log in space that did not exist at the checkpoint (so
// the next commits journal their first-changed lines rather than sync the
// log), and a commit erasing every key: nothing since the checkpoint durable.
struct erased_map {
  keel_test::temp_dir dir;
  std::string path = dir.path("s.keel");
  sim_os sys;
  std::mt19937_64 rng;
  std::unique_ptr<keel::store> db;
  keel::hash_map<u64, u64> map;
  sim_os after;

  // checkpoint_first: the checkpoint comes before the puts instead, so a
  // reserved table lies in space that did not exist at the checkpoint.
  erased_map(u64 seed, u64 n, u64 reserve, bool checkpoint_first = false)
      : rng(seed),
        db(keel::store::open(path, keel_test::power_run_options(keel::durability::checkpoint, &sys))),
        map(keel::hash_map<u64, u64>::open(*db, "m")) {
    if (checkpoint_first) db->checkpoint();
    db->write([&](keel::write_txn& tx) {
      if (reserve != 0) map.reserve(tx, reserve);
      for (u64 k = 1; k <= n; ++k) map.put(tx, k, k * 100);
    });
    if (!checkpoint_first) db->checkpoint();
    db->write([&](keel::write_txn& tx) {
      const u64 big = tx.alloc(256 * 1024);
      for (u64 o = 0; o < 256 * 1024; o += 4096) std::memset(tx.mut_bytes(big + o, 4096), 0x5a, 4096);
      tx.free(big, 256 * 1024);  // still logged: only the record's size matters here
    });
    db->write([&](keel::write_txn& tx) {
      for (u64 k = 1; k <= n; ++k) CHECK(map.erase(tx, k));
    });
  }
  // A power cut now (every dirty data page reaches the disk, none of the
  // unsynced log), the store closed, and its image opened after the reboot.
  std::unique_ptr<keel::store> cut_and_reopen() {
    sys.power_cut(path, dir.path("cut.keel"), {cut_policy::all, false, cut_policy::no_tail}, rng);
    db->close();
    return reopen(dir.path("cut.keel"), keel::durability::checkpoint, after);
  }
  // keel::check of the image, its problems printed.
  bool image_clean() {
    const keel::check_report rep = keel::check(dir.path("cut.keel"));
    for (const auto& p : rep.problems) MESSAGE(p.where, " @", p.offset, ": ", p.what);
    return rep.clean();
  }
};

}  // namespace

TEST_CASE("unpublished bytes of a page without a private copy go to the mapping; with one, they wait for commit") {
  keel_test::temp_dir dir;
  auto db = keel::store::open(dir.path("s.keel"), {});
  const u64 off = new_block(*db);

  keel::write_txn tx = db->begin_write();
  const u64 x = 0x1111;
  std::memcpy(tx.mut_unpublished(off, 8), &x, 8);
  CHECK(read_u64(*db, off) == x);  // written in place: a reader could see it, and nothing reads it
  CHECK(*reinterpret_cast<const u64*>(tx.bytes(off, 8)) == x);

  // The page now gets a private copy; later unpublished bytes go there.
  const u64 y = 0x2222;
  std::memcpy(tx.mut_bytes(off + 512, 8), &y, 8);
  std::memcpy(tx.mut_unpublished(off + 1024, 8), &y, 8);
  CHECK(read_u64(*db, off + 1024) == 0);
  CHECK(*reinterpret_cast<const u64*>(tx.bytes(off + 1024, 8)) == y);
  tx.commit();
  CHECK(read_u64(*db, off) == x);
  CHECK(read_u64(*db, off + 512) == y);
  CHECK(read_u64(*db, off + 1024) == y);

  // committed_bytes: the last commit's bytes, without this transaction's.
  keel::write_txn t2 = db->begin_write();
  const u64 z = 0x3333;
  std::memcpy(t2.mut_bytes(off, 8), &z, 8);
  u64 c;
  std::memcpy(&c, t2.committed_bytes(off, 8), 8);
  CHECK(c == x);
  const u64 fresh = t2.alloc(64);
  CHECK(t2.committed_bytes(fresh, 8) == nullptr);
  CHECK_THROWS_AS(t2.committed_bytes(off + 4090, 8), keel::error);  // crosses a page
  t2.abort();
}

TEST_CASE("unpublished bytes come before the private pages' ranges in the record: a later write of the same bytes wins on replay") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s.keel");
  sim_os sys;
  std::mt19937_64 rng(7);
  auto db = keel::store::open(path, keel_test::power_run_options(keel::durability::sync, &sys));
  const u64 off = new_block(*db);
  db->checkpoint();
  db->write([&](keel::write_txn& tx) {
    const u64 a = 0xaaaa, b = 0xbbbb;
    std::memcpy(tx.mut_unpublished(off, 8), &a, 8);  // in place (the log is durable)
    std::memcpy(tx.mut_bytes(off, 8), &b, 8);         // then a private copy changes the same bytes
  });
  CHECK(read_u64(*db, off) == 0xbbbb);
  // Nothing of the data file written back since the checkpoint: recovery
  // rebuilds the block from the log alone.
  sys.power_cut(path, dir.path("cut.keel"), {cut_policy::none, false, cut_policy::no_tail}, rng);
  db->close();
  sim_os after;
  auto back = reopen(dir.path("cut.keel"), keel::durability::sync, after);
  CHECK(read_u64(*back, off) == 0xbbbb);
}

TEST_CASE("power loss: a slot erased and refilled by lost commits comes back with its checkpointed entry") {
  // The hazard unpublished writes must avoid: at the checkpoint, slot S holds
  // key k. A commit erases k (its control line journaled, the log not
  // synced), and a second one puts a new key into S. If the new key's bytes
  // went straight to the mapping, write-back could take them to disk, and a
  // power cut then restores the journaled control byte (k's tag) over them.
  constexpr u64 kKeys = 13;  // one 16-slot group, below the 7/8 load limit
  erased_map e(11, kKeys, 0);
  e.db->write([&](keel::write_txn& tx) {
    for (u64 k = 1001; k < 1001 + kKeys; ++k) e.map.put(tx, k, k);
  });
  CHECK(e.map.size() == kKeys);
  CHECK(e.map.get(1001).value_or(0) == 1001);
  auto back = e.cut_and_reopen();
  auto m2 = keel::hash_map<u64, u64>::open(*back, "m");
  CHECK(m2.size() == kKeys);
  for (u64 k = 1; k <= kKeys; ++k) CHECK(m2.get(k).value_or(0) == k * 100);
  for (u64 k = 1001; k < 1001 + kKeys; ++k) CHECK(!m2.get(k).has_value());
  back->close();
  CHECK(e.image_clean());
}

TEST_CASE("a table in space the last commit used otherwise (freed blocks) fills its slots through private copies") {
  // After clear() the old tables' blocks are on the free lists, their first
  // bytes the lists' links. A map growing again in the next transaction
  // gets those blocks; their committed bytes are links, not control bytes,
  // so nothing may be written there before commit. An abort must leave the
  // free lists intact.
  keel_test::temp_dir dir;
  const std::string path = dir.path("s.keel");
  auto db = keel::store::open(path, {});
  auto map = keel::hash_map<u64, u64>::open(*db, "m");
  db->write([&](keel::write_txn& tx) {
    for (u64 k = 1; k <= 2000; ++k) map.put(tx, k, k);
  });
  db->write([&](keel::write_txn& tx) { map.clear(tx); });
  {
    keel::write_txn tx = db->begin_write();
    for (u64 k = 1; k <= 2000; ++k) map.put(tx, 10000 + k, k);
    tx.abort();
  }
  db->write([&](keel::write_txn& tx) {
    for (u64 k = 1; k <= 2000; ++k) map.put(tx, 20000 + k, k);
  });
  CHECK(map.size() == 2000);
  bool all = true;
  for (u64 k = 1; k <= 2000; ++k) all = all && map.get(20000 + k).value_or(0) == k && !map.get(10000 + k);
  CHECK(all);
  db->close();
  CHECK(keel::check(path).clean());
}

TEST_CASE("power loss: a large refill after lost erases syncs the log once, then writes in place; recovery is a committed prefix") {
  // As above, with enough slots that the refill's private copies pass the
  // limit: the transaction then syncs the log (the erase becomes durable)
  // and writes the remaining slots straight into the mapping.
  constexpr u64 kKeys = 4000;  // slots on more pages than the copies a transaction makes before it syncs
  // Reserved: no group fills up, so the erases leave empty slots and the
  // refill needs no rehash.
  erased_map e(13, kKeys, 8 * kKeys);
  const int syncs = e.sys.calls(keel_test::op::fdatasync);
  e.db->write([&](keel::write_txn& tx) {
    for (u64 k = 100001; k < 100001 + kKeys; ++k) e.map.put(tx, k, k);
    CHECK(e.sys.calls(keel_test::op::fdatasync) == syncs + 1);  // before commit: the refill's log sync
  });
  auto back = e.cut_and_reopen();
  auto m2 = keel::hash_map<u64, u64>::open(*back, "m");
  // The erase was made durable by the refill's log sync. The refill is
  // there whole (its commit synced the log too) or not at all.
  u64 old_keys = 0, new_keys = 0, right = 0;
  for (u64 k = 1; k <= kKeys; ++k) {
    old_keys += m2.get(k).has_value();
    const auto v = m2.get(100000 + k);
    new_keys += v.has_value();
    right += v.value_or(0) == 100000 + k;
  }
  CHECK(old_keys == 0);
  CHECK((new_keys == 0 || new_keys == kKeys));
  CHECK(right == new_keys);
  CHECK(m2.size() == new_keys);
  MESSAGE("recovered the state after the " << std::string(new_keys == 0 ? "erase" : "refill"));
  back->close();
  CHECK(e.image_clean());
}

TEST_CASE("power loss: a table newer than the checkpoint is refilled in place; recovery rewrites it from the durable log") {
  // The first of the durability rules: a page that did not exist at the
  // checkpoint takes unpublished writes whatever the log's state, because
  // recovery rewrites every durable byte of it. The refill writes all its
  // slots in place (no private copies, hence no mid-transaction log sync)
  // while the erase before it is not durable; after the cut the map must be
  // the one after the puts, rebuilt from their log record (small enough
  // that their commit synced the log rather than journal the root's lines),
  // never a refilled slot under an erased key's tag.
  constexpr u64 kKeys = 200;
  erased_map e(17, kKeys, 8 * kKeys, true);
  const int syncs = e.sys.calls(keel_test::op::fdatasync);
  e.db->write([&](keel::write_txn& tx) {
    for (u64 k = 100001; k < 100001 + kKeys; ++k) e.map.put(tx, k, k);
    CHECK(e.sys.calls(keel_test::op::fdatasync) == syncs);  // in place: no copies, no log sync
  });
  auto back = e.cut_and_reopen();
  auto m2 = keel::hash_map<u64, u64>::open(*back, "m");
  u64 old_right = 0, new_keys = 0;
  for (u64 k = 1; k <= kKeys; ++k) {
    old_right += m2.get(k).value_or(0) == k * 100;
    new_keys += m2.get(100000 + k).has_value();
  }
  CHECK(new_keys == 0);
  CHECK(old_right == kKeys);
  CHECK(m2.size() == kKeys);
  back->close();
  CHECK(e.image_clean());
}
