// Growing the data file is not synced: the new size becomes durable with
// the next checkpoint. These cases cut power while the file on disk is
// still at the size of its last sync, with commits in the durable log that
// write past that end, and check that recovery, keel::check and
// keel::backup extend the file instead of losing those commits
// (docs/DURABILITY.md, "Growing the file").
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <keel/backup.h>
#include <keel/check.h>
#include <keel/hash_map.h>
#include <keel/keel.h>
#include <random>
#include <vector>

#include "file/format.h"
#include "support/crash_state.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"

using keel_test::cut_policy;
using keel_test::op;
using keel_test::sim_os;
using u64 = std::uint64_t;
namespace fs = std::filesystem;

namespace {

// Nothing unsynced reaches the disk: no data page, no log tail, and the
// data file keeps the size of its last sync.
constexpr cut_policy kShortFile{cut_policy::none, false, cut_policy::no_tail, 0, cut_policy::durable_size};

// The image as a restart would find it: the control page's boot id no
// longer matches (keel::check and keel::backup, which run on the real OS,
// then treat it as a store that needs recovery).
void forget_boot(const std::string& img) {
  std::fstream f(img, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  const char zeros[16] = {};
  f.seekp(static_cast<std::streamoff>(keel::fmt::kControlOffset + offsetof(keel::fmt::control_page, boot_id)));
  f.write(zeros, sizeof zeros);
  REQUIRE(f);
}

bool clean(const keel::check_report& rep) {
  for (const auto& p : rep.problems) MESSAGE(p.where, " @", p.offset, ": ", p.what);
  return rep.clean();
}

// A sync-mode store on a simulated OS with a u64 -> u64 map "m", just
// checkpointed: its file size is durable (synced_size).
struct synced_store {
  keel_test::temp_dir dir;
  std::string path = dir.path("s.keel"), img = dir.path("cut.keel");
  sim_os sys;
  std::mt19937_64 rng;
  std::unique_ptr<keel::store> db;
  keel::hash_map<u64, u64> m;
  u64 synced_size = 0;

  explicit synced_store(u64 seed)
      : rng(seed),
        db(keel::store::open(path, keel_test::power_run_options(keel::durability::sync, &sys))),
        m(keel::hash_map<u64, u64>::open(*db, "m")) {
    db->checkpoint();
    synced_size = fs::file_size(path);
  }
  // A power cut now with the file at its synced size, the store closed,
  // and the image marked as of another boot.
  void cut_short() {
    sys.power_cut(path, img, kShortFile, rng);
    db->close();
    REQUIRE(fs::file_size(img) == synced_size);  // the grown size was lost
    forget_boot(img);
  }
  // The image opened as the first writer after a reboot.
  std::unique_ptr<keel::store> reopen(sim_os& after) {
    after.new_boot();
    return keel::store::open(img, {.create_if_missing = false, .mode = keel::durability::sync, .os = &after});
  }
};

}  // namespace

TEST_CASE("power loss: sync commits into space grown since the checkpoint survive a file cut back to its synced size") {
  synced_store st(3);
  const int fsyncs = st.sys.calls(op::fsync);
  constexpr u64 kTxns = 20, kPerTxn = 2000;
  for (u64 t = 0; t < kTxns; ++t)
    st.db->write([&](keel::write_txn& tx) {
      for (u64 k = t * kPerTxn; k < (t + 1) * kPerTxn; ++k) st.m.put(tx, k, k * 3 + 1);
    });
  CHECK(st.sys.calls(op::fsync) == fsyncs);  // growing made nothing but the log durable
  const u64 live_size = fs::file_size(st.path), last_lsn = st.db->info().last_lsn;
  REQUIRE(live_size > 4 * st.synced_size);
  st.cut_short();

  // Without recovery: keel::check and keel::backup work on a snapshot that
  // the log extends.
  CHECK(clean(keel::check(st.img)));
  const auto b = keel::backup(st.img, st.dir.path("copy.keel"));
  CHECK(b.lsn == last_lsn);
  {
    auto copy = keel::store::open(st.dir.path("copy.keel"), {.create_if_missing = false});
    auto mc = keel::hash_map<u64, u64>::open(*copy, "m");
    CHECK(mc.size() == kTxns * kPerTxn);
  }

  {
    sim_os after;
    auto back = st.reopen(after);
    CHECK(back->info().recovered_records == kTxns);
    CHECK(back->info().last_lsn == last_lsn);
    CHECK(fs::file_size(st.img) >= live_size / 2);
    auto m2 = keel::hash_map<u64, u64>::open(*back, "m");
    REQUIRE(m2.size() == kTxns * kPerTxn);
    u64 wrong = 0;
    for (u64 k = 0; k < kTxns * kPerTxn; ++k) wrong += m2.get(k).value_or(0) != k * 3 + 1;
    CHECK(wrong == 0);
    back->write([&](keel::write_txn& tx) { m2.put(tx, 1u << 30, 7); });
  }
  CHECK(clean(keel::check(st.img)));
  sim_os again;
  auto back = st.reopen(again);
  auto m3 = keel::hash_map<u64, u64>::open(*back, "m");
  CHECK(m3.size() == kTxns * kPerTxn + 1);
}

TEST_CASE("power loss: an allocation past the synced end that no record writes to its end is still inside the file") {
  // A reserved table: its control bytes are logged as a zero fill, its slot
  // block (allocated last) is not written at all, so the replayed records
  // end well before the allocator cursor they set. Recovery must cover the
  // cursor too, else the meta page points past the file.
  synced_store st(5);
  st.db->write([&](keel::write_txn& tx) {
    st.m.reserve(tx, 100000);
    st.m.put(tx, 42, 4242);
  });
  const u64 cursor = st.db->info().arena_used;
  REQUIRE(cursor > st.synced_size + (1 << 20));
  st.cut_short();
  CHECK(clean(keel::check(st.img)));

  sim_os after;
  auto back = st.reopen(after);
  CHECK(back->info().arena_used == cursor);
  CHECK(fs::file_size(st.img) >= cursor);
  auto m2 = keel::hash_map<u64, u64>::open(*back, "m");
  CHECK(m2.get(42).value_or(0) == 4242);
  back->write([&](keel::write_txn& tx) {  // fills slots across the whole table
    for (u64 k = 0; k < 50000; ++k) m2.put(tx, k * 7919 + 1, k);
  });
  CHECK(m2.size() == 50001);
  back->close();
  CHECK(clean(keel::check(st.img)));
}

TEST_CASE("power loss during the recovery that extends a short file: the next recovery finds the same commits") {
  // DURABILITY.md, "Recovery": a crash during recovery is followed by the
  // same recovery. Here that recovery extends the file (fallocate, not
  // synced until its closing checkpoint), so a cut inside it can leave the
  // file short again.
  synced_store st(7);
  constexpr u64 kTxns = 8, kPerTxn = 2000;
  for (u64 t = 0; t < kTxns; ++t)
    st.db->write([&](keel::write_txn& tx) {
      for (u64 k = t * kPerTxn; k < (t + 1) * kPerTxn; ++k) st.m.put(tx, k, k + 5);
    });
  const u64 last_lsn = st.db->info().last_lsn;
  st.cut_short();

  // Every I/O call of the recovery (and of the close after it) is a cut:
  // the file at its synced size with nothing unsynced, or random pages,
  // tails and size.
  const cut_policy policies[] = {
      kShortFile, {cut_policy::random, false, cut_policy::random_tail, 0, cut_policy::random_size}};
  sim_os rec;
  std::vector<std::string> states;
  std::vector<op> calls;
  bool in_hook = false;
  rec.on_call = [&](op which, const std::string& file) {
    if (in_hook || file.rfind(st.img, 0) != 0 || which == op::pread || which == op::open) return;
    in_hook = true;
    states.push_back(st.dir.path("again" + std::to_string(states.size()) + ".keel"));
    calls.push_back(which);
    rec.power_cut(st.img, states.back(), policies[states.size() % 2], st.rng);
    in_hook = false;
  };
  {
    auto back = st.reopen(rec);
    CHECK(back->info().last_lsn == last_lsn);
  }
  CHECK(std::find(calls.begin(), calls.end(), op::fallocate) != calls.end());
  REQUIRE(states.size() >= 5);
  MESSAGE(states.size(), " cuts during the recovery and its close");
  for (std::size_t i = 0; i < states.size(); ++i) {
    INFO("cut before call ", i, " (", std::string(keel_test::op_name(calls[i])), ") of the recovery");
    sim_os after;
    after.new_boot();
    auto db = keel::store::open(states[i], {.create_if_missing = false, .mode = keel::durability::sync, .os = &after});
    CHECK(db->info().last_lsn == last_lsn);
    auto m = keel::hash_map<u64, u64>::open(*db, "m");
    REQUIRE(m.size() == kTxns * kPerTxn);
    u64 wrong = 0;
    for (u64 k = 0; k < kTxns * kPerTxn; k += 7) wrong += m.get(k).value_or(0) != k + 5;
    CHECK(wrong == 0);
    db->close();
    CHECK(clean(keel::check(states[i])));
  }
}

TEST_CASE("a checkpoint makes a grown size durable before its superblock records it") {
  keel_test::temp_dir dir;
  const std::string path = dir.path("s.keel"), img = dir.path("cut.keel");
  sim_os sys;
  std::mt19937_64 rng(9);
  int data_syncs = 0;  // fdatasync of the data file itself
  sys.on_call = [&](op which, const std::string& file) { data_syncs += which == op::fdatasync && file == path; };
  auto db = keel::store::open(path, keel_test::power_run_options(keel::durability::checkpoint, &sys));
  db->checkpoint();
  auto checkpoint_syncs = [&] {
    const int before = data_syncs;
    db->checkpoint();
    return data_syncs - before;
  };
  db->write([&](keel::write_txn& tx) { tx.zero(tx.alloc(8), 8); });
  const int plain = checkpoint_syncs();  // the superblock's
  const u64 before = fs::file_size(path);
  db->write([&](keel::write_txn& tx) { tx.zero(tx.alloc(1 << 20), 1 << 20); });
  REQUIRE(fs::file_size(path) > before);
  CHECK(checkpoint_syncs() == plain + 1);  // the grown size first
  sys.power_cut(path, img, kShortFile, rng);
  CHECK(fs::file_size(img) == fs::file_size(path));
  db->close();
}
