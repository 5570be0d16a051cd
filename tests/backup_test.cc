// keel::backup: copies of a closed store, of a store needing recovery, and
// of a store whose writer (another process) commits all the while; each
// copy opens cleanly, passes keel::check and equals the model after exactly
// the transaction it reports. Retries when checkpoints recycle the log,
// gives up with busy, refuses an existing dest, and a killed backup leaves
// no dest.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <keel/backup.h>
#include <keel/check.h>
#include <keel/keel.h>
#include <map>
#include <string>
#include <thread>

#include "file/format.h"
#include "support/inspect.h"
#include "support/sim_os.h"
#include "support/proc.h"
#include "support/stores.h"
#include "support/temp_dir.h"
#include "support/testing.h"

using namespace keel;
using namespace keel_test;

namespace {

constexpr u64 kKeys = 64;

bool exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

// Transaction t of the model: every counter key holds t, and the bytes map
// holds "v<t>" padded to a length that varies (some values out of line,
// some growing the file).
std::string value_of(u64 t) {
  std::string v = "v" + std::to_string(t) + ":";
  v.resize(static_cast<std::size_t>((t * 7919) % 20000), static_cast<char>('a' + t % 26));
  return v;
}

void commit_model(store& db, u64 t) {
  auto ctr = hash_map<u64, u64>::open(db, "ctr");
  auto b = bytes_map::open(db, "b");
  db.write([&](write_txn& tx) {
    for (u64 k = 0; k < kKeys; ++k) ctr.put(tx, k, t);
    b.put(tx, "latest", value_of(t));
    b.put(tx, "k" + std::to_string(t % 300), value_of(t));
  });
}

// Sets up "ctr" and "b" and some bulk so a copy takes a little while.
// Returns the LSN after setup: transaction t of the model then has LSN
// base + t + 1.
u64 setup(const std::string& path, u64 bulk = 20000) {
  auto db = store::open(path, small_opts());
  hash_map<u64, u64>::open(*db, "ctr");  // created empty; the writer fills it
  auto bulk_map = hash_map<u64, u64>::open(*db, "bulk");
  bytes_map::open(*db, "b");
  for (u64 i = 0; i < bulk; i += 1000)
    db->write([&](write_txn& tx) {
      for (u64 j = i; j < i + 1000; ++j) bulk_map.put(tx, j, j * 3);
    });
  const u64 base = db->info().last_lsn;
  db->close();
  return base;
}

// The copy at `path` equals the model after some transaction t and has LSN
// base + t + 1 (or base when no transaction of the model ran). Returns t + 1.
u64 verify_copy(const std::string& path, u64 base, u64 lsn) {
  const check_report r = check(path);
  INFO(dump(r));
  CHECK(r.clean());
  CHECK_FALSE(r.recovery_pending);
  CHECK_FALSE(r.snapshot);
  auto db = store::open(path, read_only_opts());
  const store_info info = db->info();
  CHECK(info.clean_close);
  CHECK(info.log_bytes == 0);
  CHECK(info.journal_bytes == 0);
  CHECK(info.last_lsn == lsn);
  CHECK(info.checkpoint_lsn == lsn);
  auto ctr = hash_map<u64, u64>::open(*db, "ctr");
  auto b = bytes_map::open(*db, "b");
  auto bulk = hash_map<u64, u64>::open(*db, "bulk");
  CHECK(bulk.size() == 20000);
  CHECK(bulk.get(12345) == std::optional<u64>(12345 * 3));
  REQUIRE(lsn >= base);
  const u64 n = lsn - base;  // model transactions in the copy
  if (n == 0) {
    CHECK(ctr.size() == 0);
    return 0;
  }
  const u64 t = n - 1;
  CHECK(ctr.size() == kKeys);
  for (u64 k = 0; k < kKeys; ++k) CHECK(ctr.get(k) == std::optional<u64>(t));
  CHECK(b.get("latest") == std::optional<std::string>(value_of(t)));
  CHECK(b.get("k" + std::to_string(t % 300)) == std::optional<std::string>(value_of(t)));
  CHECK(b.size() == 1 + std::min<u64>(n, 300));
  return n;
}

u64 file_id(const std::string& path) {
  const u64 a = peek64(path, offsetof(fmt::superblock, file_id));
  return a;
}

}  // namespace

TEST_CASE("backup of a closed store: an exact, independent, checkpointed copy") {
  temp_dir d;
  const std::string src = d.path("s.keel"), dest = d.path("copy.keel");
  const u64 base = setup(src);
  {
    auto db = store::open(src, small_opts());
    for (u64 t = 0; t < 10; ++t) commit_model(*db, t);
    db->close();
  }
  const std::string before = all_files(src);
  u64 calls = 0;
  const backup_result r = backup(src, dest, [&](u64 done, u64 total) {
    ++calls;
    CHECK(done <= total);
  });
  CHECK(r.attempts == 1);
  CHECK(r.lsn == base + 10);
  CHECK(r.bytes > 20000 * 16);
  CHECK(calls >= 2);
  CHECK(all_files(src) == before);
  CHECK(verify_copy(dest, base, r.lsn) == 10);
  CHECK(file_id(dest) != file_id(src));
  // The copy is a store of its own: it takes writes, and the source is unaffected.
  {
    auto db = store::open(dest, small_opts());
    commit_model(*db, 10);
    db->close();
  }
  CHECK(verify_copy(dest, base, r.lsn + 1) == 11);
  CHECK(all_files(src) == before);
}

// DURABILITY.md, "Page-cache folios": reading the live store with read-ahead
// would leave its page cache in large folios that its writer's checkpoints
// then write back whole.
TEST_CASE("backup reads the source without read-ahead, and maps its copy without it") {
  temp_dir d;
  const std::string src = d.path("s.keel"), dest = d.path("copy.keel");
  const u64 base = setup(src);
  auto db = store::open(src, small_opts());  // a live writer
  for (u64 t = 0; t < 5; ++t) commit_model(*db, t);
  keel_test::sim_os sys;
  backup_options o;
  o.os = &sys;
  const backup_result r = backup(src, dest, {}, o);
  CHECK(sys.calls(keel_test::op::advise_random_reads) == 1);
  CHECK(sys.calls(keel_test::op::advise_random) == 1);  // the copy's mapping (the source is read, not mapped)
  CHECK(verify_copy(dest, base, r.lsn) == 5);
  db->close();
}

TEST_CASE("backup refuses an existing dest, a missing or foreign source; failures leave no dest") {
  temp_dir d;
  const std::string src = d.path("s.keel"), dest = d.path("copy.keel");
  setup(src, 1000);
  write_file(dest, "precious");
  auto e = catch_error([&] { backup(src, dest); });
  REQUIRE(e);
  CHECK(e->code() == errc::invalid_argument);
  CHECK(contains(e->what(), "already exists"));
  CHECK(read_file(dest) == "precious");

  const std::string fresh = d.path("fresh.keel");
  e = catch_error([&] { backup(d.path("missing.keel"), fresh); });
  REQUIRE(e);
  CHECK(e->code() == errc::io);
  CHECK(contains(e->what(), "missing.keel"));
  CHECK_FALSE(exists(fresh));

  write_file(d.path("foreign"), std::string(40000, 'x'));
  e = catch_error([&] { backup(d.path("foreign"), fresh); });
  REQUIRE(e);
  CHECK(e->code() == errc::not_a_keel_file);
  CHECK_FALSE(exists(fresh));

  // A damaged store: verify refuses it, verify = false rescues it.
  const std::string damaged = d.path("damaged.keel");
  std::filesystem::copy_file(src, damaged);
  std::filesystem::copy_file(src + "-log", damaged + "-log");
  std::filesystem::copy_file(src + "-journal", damaged + "-journal");
  const u64 live_at = fmt::kMetaOffset + offsetof(fmt::meta_page, live_bytes);
  const u64 free_at = fmt::kMetaOffset + offsetof(fmt::meta_page, free_bytes);
  const u64 live = peek64(damaged, live_at), free_b = peek64(damaged, free_at);
  const u64 live2 = live + 4096, free2 = free_b - 4096;  // sum kept: only check() sees it
  poke(damaged, live_at, &live2, 8);
  poke(damaged, free_at, &free2, 8);
  e = catch_error([&] { backup(damaged, fresh); });
  REQUIRE(e);
  CHECK(e->code() == errc::corrupt);
  CHECK(contains(e->what(), "allocator"));
  CHECK_FALSE(exists(fresh));
  backup_options o;
  o.verify = false;
  backup(damaged, fresh, {}, o);
  CHECK(exists(fresh));
  CHECK_FALSE(check(fresh).clean());
}

TEST_CASE("backup of a store whose writer died: the copy is recovered, the original untouched") {
  temp_dir d;
  const std::string src = d.path("s.keel"), dest = d.path("copy.keel");
  const u64 base = setup(src);
  for (const durability mode : {durability::sync, durability::batch, durability::checkpoint}) {
    CAPTURE(static_cast<int>(mode));
    child_proc c = spawn_store_child([&](int) {
      auto o = small_opts();
      o.mode = mode;
      auto db = store::open(src, o);
      for (u64 t = 0; t < 15; ++t) commit_model(*db, t);
      ::_exit(0);  // dies holding a log tail
    });
    REQUIRE(c.pid() > 0);
    const int status = c.wait();
    REQUIRE(exited_ok(status));
    const std::string before = all_files(src);
    const std::string out = dest + std::to_string(static_cast<int>(mode));
    const backup_result r = backup(src, out);
    CHECK(all_files(src) == before);
    CHECK(r.lsn == base + 15);
    CHECK(verify_copy(out, base, r.lsn) == 15);
    // Recovering the original gives the same state.
    auto db = store::open(src, small_opts());
    CHECK(db->info().last_lsn == r.lsn);
    db->close();
    {
      auto w = store::open(src, small_opts());  // start the next round from an empty model
      w->write([&](write_txn& tx) {
        auto ctr = hash_map<u64, u64>::open(*w, tx, "ctr");
        ctr.clear(tx);
        auto b = bytes_map::open(*w, tx, "b");
        b.clear(tx);
      });
      w->close();
    }
    const u64 next = store::open(src, read_only_opts())->info().last_lsn;
    const_cast<u64&>(base) = next;
  }
}

TEST_CASE("backups while another process commits continuously (and checkpoints often)") {
  temp_dir d;
  const std::string src = d.path("s.keel");
  const u64 base = setup(src);
  child_proc writer = spawn_store_child([&](int out) {
    auto o = small_opts();
    o.checkpoint_bytes = 1 << 20;  // a checkpoint every few hundred commits
    auto db = store::open(src, o);
    signal_ready(out);
    for (u64 t = 0;; ++t) commit_model(*db, t);
  });
  REQUIRE(writer.pid() > 0);
  REQUIRE(writer.wait_ready());
  u64 last = 0;
  int attempts = 0, busy = 0, done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    const std::string dest = d.path("b" + std::to_string(i) + ".keel");
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    backup_result r;
    try {
      r = backup(src, dest);
    } catch (const keel::error& e) {
      REQUIRE_MESSAGE(e.code() == errc::busy, e.what());
      CHECK_FALSE(exists(dest));
      ++busy;
      continue;
    }
    ++done;
    attempts += r.attempts;
    const u64 n = verify_copy(dest, base, r.lsn);
    CHECK(n >= last);  // later backups never go back in time
    last = n;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int status = writer.kill_and_wait();
  CHECK(WIFSIGNALED(status));
  MESSAGE(done << " backups (" << attempts << " copies, " << busy << " gave up busy) in " << secs
               << " s while the writer committed " << last << "+ transactions");
  CHECK(done >= 4);
  CHECK(last > 0);
}

TEST_CASE("a checkpoint during the copy restarts it; endless checkpoints give busy") {
  temp_dir d;
  const std::string src = d.path("s.keel");
  const u64 base = setup(src);
  auto db = store::open(src, small_opts());
  u64 t = 0;
  commit_model(*db, t++);
  SUBCASE("one checkpoint: two copies, the copy has everything committed before the second") {
    int calls_at_zero = 0;
    const backup_result r = backup(src, d.path("c.keel"), [&](u64 done, u64) {
      if (done != 0 || calls_at_zero++ > 0) return;
      for (int i = 0; i < 3; ++i) commit_model(*db, t++);
      db->checkpoint();
    });
    CHECK(r.attempts == 2);
    CHECK(r.lsn == base + t);
    CHECK(verify_copy(d.path("c.keel"), base, r.lsn) == t);
  }
  SUBCASE("commits without a checkpoint during the copy are replayed, no restart") {
    bool once = false;
    const backup_result r = backup(src, d.path("c.keel"), [&](u64 done, u64 total) {
      if (once || done == 0 || done == total) return;
      once = true;
      for (int i = 0; i < 5; ++i) commit_model(*db, t++);
    });
    CHECK(r.attempts == 1);
    CHECK(r.lsn == base + t);
    CHECK(verify_copy(d.path("c.keel"), base, r.lsn) == t);
  }
  SUBCASE("a checkpoint at every copy: busy after max_attempts, no dest") {
    int copies = 0;
    backup_options o;
    o.max_attempts = 3;
    auto e = catch_error([&] {
      backup(src, d.path("c.keel"), [&](u64 done, u64) {
        if (done != 0) return;
        ++copies;
        commit_model(*db, t++);
        db->checkpoint();
      }, o);
    });
    REQUIRE(e);
    CHECK(e->code() == errc::busy);
    CHECK(copies == 3);
    CHECK_FALSE(exists(d.path("c.keel")));
  }
  db->close();
}

TEST_CASE("a backup killed at any stage leaves no dest; the next one succeeds") {
  temp_dir d;
  const std::string src = d.path("s.keel"), dest = d.path("copy.keel");
  const u64 base = setup(src);
  // Kill at the first progress call (copy starting), in the middle, and at
  // the last (copy replayed, before the superblocks and the link).
  for (const int stage : {0, 1, 2}) {
    CAPTURE(stage);
    child_proc c = spawn_store_child([&](int out) {
      backup(src, dest, [&](u64 done, u64 total) {
        const bool hit = stage == 0 ? done == 0 : stage == 1 ? (done > 0 && done < total) : done == total;
        if (!hit) return;
        signal_ready(out);
        for (;;) ::pause();
      });
      ::_exit(4);  // the stage was never reached
    });
    REQUIRE(c.pid() > 0);
    const bool reached = c.wait_ready();
    const int status = c.kill_and_wait();
    c.reset();
    REQUIRE_MESSAGE(reached, describe_status(status));
    CHECK_FALSE(exists(dest));
    for (const auto& entry : std::filesystem::directory_iterator(d.dir()))
      CHECK_MESSAGE(!contains(entry.path().filename().string(), ".partial-"), entry.path());
  }
  const backup_result r = backup(src, dest);
  CHECK(verify_copy(dest, base, r.lsn) == 0);
}
