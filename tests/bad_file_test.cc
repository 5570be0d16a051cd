// Bad input gets a typed error naming the file, and nothing is lost: foreign
// files, truncation, corrupt superblocks, future versions, permissions,
// missing or foreign side files, a second writer, a full store, and a store
// that needs recovery before a reader may open it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <keel/keel.h>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "file/format.h"
#include "support/temp_dir.h"
#include "support/testing.h"
#include "util/checksum.h"

using namespace keel;
namespace fs = std::filesystem;
using namespace keel_test;

namespace {

// Opens `path` with `o`, expects keel::error `code` naming the path; returns the message.
std::string expect_open_error(const std::string& path, const options& o, errc code) {
  auto e = catch_error([&] { store::open(path, o); });
  REQUIRE_MESSAGE(e, "open of " << path << " did not throw");
  CHECK_MESSAGE(e->code() == code, std::string(e->what()));
  CHECK_MESSAGE(contains(e->what(), path), std::string(e->what()));
  return e->what();
}

void flip_byte(const std::string& path, u64 off) {
  auto bytes = keel_test::read_file(path);
  REQUIRE(off < bytes.size());
  const char c = static_cast<char>(bytes[off] ^ 0x5A);
  poke(path, off, &c, 1);
}

u64 read_u64(const store& s, u64 off) {
  return s.read([&](const read_view& v) { return v.get(ref<u64>{off}); });
}

// A store with a u64 `value` in a block under the raw root "v"; returns the block.
u64 make_store(const std::string& path, u64 value, const options& o = small_opts()) {
  auto s = store::open(path, o);
  const u64 off = s->write([&](write_txn& tx) {
    const u64 b = tx.alloc(sizeof(u64));
    tx.put(ref<u64>{b}, value);
    tx.open_root("v", kind::raw, type_desc::none(), type_desc::of<u64>());
    tx.set_root("v", b);
    return b;
  });
  s->close();
  return off;
}

// The value under "v", or nullopt.
std::optional<u64> value_of(const store& s) {
  return s.read([](const read_view& v) -> std::optional<u64> {
    auto e = v.find("v");
    if (!e) return std::nullopt;
    return v.get(ref<u64>{e->root});
  });
}

fmt::superblock read_super(const std::string& path, int slot) {
  const auto bytes = keel_test::read_file(path);
  REQUIRE(bytes.size() >= (slot + 1) * fmt::kPage);
  fmt::superblock sb;
  std::memcpy(&sb, bytes.data() + slot * fmt::kPage, sizeof sb);
  return sb;
}
bool super_valid(const fmt::superblock& sb) {
  return std::memcmp(sb.magic, fmt::kSuperMagic, 8) == 0 &&
         sb.checksum == keel::checksum(&sb, offsetof(fmt::superblock, checksum));
}

// Runs f in a child process, as user/group 65534 when `unprivileged` (we
// must be root then). Exit status: 0 no error, 100+code for a keel::error
// naming `path` (150+code if the message lacks it), 97 other exception, 98
// could not drop privileges.
int in_child(bool unprivileged, const std::string& path, const std::function<void()>& f) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (unprivileged) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(98);
    }
    try {
      f();
      ::_exit(0);
    } catch (const keel::error& e) {
      ::_exit((contains(e.what(), path) ? 100 : 150) + static_cast<int>(e.code()));
    } catch (...) {
      ::_exit(97);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}
int error_status(errc c) { return 100 + static_cast<int>(c); }

}  // namespace

TEST_CASE("files that are not Keel stores give errc::not_a_keel_file and are left alone") {
  keel_test::temp_dir d;
  const std::string p = d.path("x.keel");
  std::string content;
  SUBCASE("empty file") { content = ""; }
  SUBCASE("64 KiB of random bytes") {
    std::mt19937_64 rng(99);
    content.resize(64_KiB);
    for (auto& c : content) c = static_cast<char>(rng());
  }
  SUBCASE("another program's executable") {
    content = keel_test::read_file("/bin/true");
    REQUIRE(content.size() > 8192);
  }
  SUBCASE("a PNG header and junk") {
    content = std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    content.resize(20000, '\x42');
  }
  SUBCASE("a short text file") { content = "hello, world\n"; }
  SUBCASE("a page of zeros and more") { content.assign(3 * fmt::kPage, '\0'); }
  keel_test::write_file(p, content);

  // (One writable attempt only: see "a failed writable open releases the writer lock".)
  expect_open_error(p, read_only_opts(), errc::not_a_keel_file);
  const auto msg = expect_open_error(p, small_opts(), errc::not_a_keel_file);
  CHECK_MESSAGE(contains(msg, "not a Keel"), msg);
  // Nothing was written to it or next to it.
  CHECK(keel_test::read_file(p) == content);
  CHECK_FALSE(fs::exists(p + "-log"));
  CHECK_FALSE(fs::exists(p + "-journal"));
}

TEST_CASE("a truncated store is corrupt, and says truncated") {
  keel_test::temp_dir d;
  const std::string p = d.path("t.keel");
  make_store(p, 11);
  REQUIRE(fs::file_size(p) >= 1_MiB);
  fs::resize_file(p, 20000);
  auto msg = expect_open_error(p, small_opts(), errc::corrupt);
  CHECK_MESSAGE(contains(msg, "truncated"), msg);
  msg = expect_open_error(p, read_only_opts(), errc::corrupt);
  CHECK_MESSAGE(contains(msg, "truncated"), msg);
  CHECK(fs::file_size(p) == 20000);  // not "repaired" by growing it
}

TEST_CASE("one corrupt superblock slot: the other is used and the data is intact") {
  keel_test::temp_dir d;
  const std::string p = d.path("s.keel");
  u64 off = 0;
  {
    // Two checkpoints, so both slots describe the same state.
    auto s = store::open(p, small_opts());
    off = s->write([](write_txn& tx) {
      const u64 b = tx.alloc(8);
      tx.put(ref<u64>{b}, u64{1234});
      tx.open_root("v", kind::raw, type_desc::none(), type_desc::none());
      tx.set_root("v", b);
      return b;
    });
    s->checkpoint();
    s->close();
  }
  REQUIRE(read_super(p, 0).checkpoint_lsn == 1);
  REQUIRE(read_super(p, 1).checkpoint_lsn == 1);
  int bad = 0;
  SUBCASE("slot 0") { bad = 0; }
  SUBCASE("slot 1") { bad = 1; }
  flip_byte(p, bad * fmt::kPage + 100);
  REQUIRE_FALSE(super_valid(read_super(p, bad)));
  {
    auto r = store::open(p, read_only_opts());
    CHECK(value_of(*r) == 1234u);
  }
  {
    auto s = store::open(p, small_opts());
    CHECK(value_of(*s) == 1234u);
    CHECK(s->info().last_lsn == 1);
    s->write([&](write_txn& tx) { tx.put(ref<u64>{off}, u64{5678}); });
    s->close();
  }
  // The close's checkpoint rewrote the bad slot.
  CHECK(super_valid(read_super(p, 0)));
  CHECK(super_valid(read_super(p, 1)));
  auto r = store::open(p, read_only_opts());
  CHECK(value_of(*r) == 5678u);
}

TEST_CASE("a corrupt newest superblock falls back to the older one without losing data") {
  // After a single checkpoint the older slot describes an earlier state
  // (here: creation). FORMAT.md: "One bad slot is survivable (the other is
  // used)"; the design brief: bit flips give a clear error "and nothing is lost".
  keel_test::temp_dir d;
  const std::string p = d.path("s.keel");
  make_store(p, 4321);
  const auto s0 = read_super(p, 0), s1 = read_super(p, 1);
  const int newest = s0.sequence > s1.sequence ? 0 : 1;
  REQUIRE(read_super(p, newest).checkpoint_lsn == 1);
  REQUIRE(read_super(p, 1 - newest).checkpoint_lsn == 0);
  flip_byte(p, newest * fmt::kPage + 100);
  {
    auto r = store::open(p, read_only_opts());
    CHECK(value_of(*r) == 4321u);
  }
  std::unique_ptr<store> s;
  auto e = catch_error([&] { s = store::open(p, small_opts()); });
  CHECK_MESSAGE(!e, "writable open with the older superblock failed: " << (e ? std::string(e->what()) : std::string()));
  if (s) {
    CHECK(value_of(*s) == 4321u);
    CHECK(s->info().last_lsn == 1);
  }
}

TEST_CASE("both superblocks corrupt is errc::corrupt") {
  keel_test::temp_dir d;
  const std::string p = d.path("s.keel");
  make_store(p, 1);
  const auto before = keel_test::read_file(p);
  flip_byte(p, 100);
  flip_byte(p, fmt::kPage + 100);
  auto msg = expect_open_error(p, small_opts(), errc::corrupt);
  CHECK_MESSAGE(contains(msg, "superblock"), msg);
  expect_open_error(p, read_only_opts(), errc::corrupt);
  // Repairing the bytes brings everything back: the failed opens changed nothing.
  flip_byte(p, 100);
  flip_byte(p, fmt::kPage + 100);
  CHECK(keel_test::read_file(p) == before);
  auto r = store::open(p, read_only_opts());
  CHECK(value_of(*r) == 1u);
}

TEST_CASE("a future format version is errc::version_mismatch") {
  keel_test::temp_dir d;
  const std::string p = d.path("v.keel");
  make_store(p, 1);
  for (int slot = 0; slot < 2; ++slot) {
    auto sb = read_super(p, slot);
    REQUIRE(super_valid(sb));
    sb.version = 2;
    sb.checksum = keel::checksum(&sb, offsetof(fmt::superblock, checksum));
    poke(p, slot * fmt::kPage, &sb, sizeof sb);
  }
  auto msg = expect_open_error(p, small_opts(), errc::version_mismatch);
  CHECK_MESSAGE(contains(msg, "2"), msg);
  expect_open_error(p, read_only_opts(), errc::version_mismatch);
  CHECK(read_super(p, 0).version == 2);  // left alone
}

TEST_CASE("permission denied is errc::permission") {
  keel_test::temp_dir d;
  const std::string p = d.path("p.keel");
  const u64 off = make_store(p, 77);
  const bool root = ::geteuid() == 0;
  // An unprivileged child must be able to reach the files.
  REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
  const auto before = keel_test::read_file(p);

  SUBCASE("a read-only (0444) file") {
    for (const char* suffix : {"", "-log", "-journal"}) REQUIRE(::chmod((p + suffix).c_str(), 0444) == 0);
    // A read-only handle works on it.
    {
      auto r = store::open(p, read_only_opts());
      CHECK(read_u64(*r, off) == 77);
    }
    if (root) {
      // Root bypasses file permissions: check as an unprivileged user.
      const int st = in_child(true, p, [&] { store::open(p, small_opts()); });
      if (st == 98) {
        MESSAGE("cannot drop privileges; skipping the unprivileged checks");
      } else {
        CHECK(st == error_status(errc::permission));
        CHECK(in_child(true, p, [&] {
                auto r = store::open(p, read_only_opts());
                if (read_u64(*r, off) != 77) throw std::runtime_error("bad value");
              }) == 0);
      }
    } else {
      expect_open_error(p, small_opts(), errc::permission);
    }
  }
  SUBCASE("no access at all (000)") {
    REQUIRE(::chmod(p.c_str(), 0) == 0);
    if (root) {
      const int st = in_child(true, p, [&] { store::open(p, read_only_opts()); });
      if (st == 98) {
        MESSAGE("cannot drop privileges; skipping the unprivileged checks");
      } else {
        CHECK(st == error_status(errc::permission));
        CHECK(in_child(true, p, [&] { store::open(p, small_opts()); }) == error_status(errc::permission));
      }
    } else {
      expect_open_error(p, read_only_opts(), errc::permission);
      expect_open_error(p, small_opts(), errc::permission);
    }
    REQUIRE(::chmod(p.c_str(), 0600) == 0);
  }
  SUBCASE("creating in a directory without write permission") {
    const std::string sub = d.path("ro-dir");
    fs::create_directory(sub);
    REQUIRE(::chmod(sub.c_str(), 0555) == 0);
    const std::string np = sub + "/new.keel";
    if (root) {
      const int st = in_child(true, np, [&] { store::open(np, small_opts()); });
      if (st != 98) CHECK(st == error_status(errc::permission));
    } else {
      expect_open_error(np, small_opts(), errc::permission);
    }
    CHECK_FALSE(fs::exists(np));
  }
  for (const char* suffix : {"", "-log", "-journal"}) ::chmod((p + suffix).c_str(), 0600);
  CHECK(keel_test::read_file(p) == before);
  auto s = store::open(p, small_opts());
  CHECK(read_u64(*s, off) == 77);
}

TEST_CASE("a missing redo log or journal is errc::corrupt") {
  keel_test::temp_dir d;
  const std::string p = d.path("m.keel");
  {
    auto s = store::open(p, small_opts());
    s->write([](write_txn& tx) { tx.put(ref<u64>{tx.alloc(8)}, u64{1}); });
    s->checkpoint();
    s->write([](write_txn& tx) { tx.put(ref<u64>{tx.alloc(8)}, u64{2}); });
    s->close();
  }
  std::string side;
  SUBCASE("log") { side = p + "-log"; }
  SUBCASE("journal") { side = p + "-journal"; }
  REQUIRE(fs::remove(side));
  auto msg = expect_open_error(p, read_only_opts(), errc::corrupt);
  CHECK_MESSAGE(contains(msg, side), msg);
  msg = expect_open_error(p, small_opts(), errc::corrupt);
  CHECK_MESSAGE(contains(msg, side), msg);
  CHECK_FALSE(fs::exists(side));  // not silently recreated
}

TEST_CASE("another store's redo log or journal is errc::corrupt") {
  keel_test::temp_dir d;
  const std::string a = d.path("a.keel"), b = d.path("b.keel");
  make_store(a, 1);
  make_store(b, 2);
  std::string suffix;
  SUBCASE("log") { suffix = "-log"; }
  SUBCASE("journal") { suffix = "-journal"; }
  fs::copy_file(b + suffix, a + suffix, fs::copy_options::overwrite_existing);
  auto msg = expect_open_error(a, small_opts(), errc::corrupt);
  CHECK_MESSAGE(contains(msg, a + suffix), msg);
  CHECK_MESSAGE(contains(msg, "another store"), msg);
  expect_open_error(a, read_only_opts(), errc::corrupt);
  // b is unaffected.
  auto s = store::open(b, read_only_opts());
  CHECK(value_of(*s) == 2u);
}

TEST_CASE("a failed writable open releases the writer lock") {
  // Once the cause is fixed (or when simply retried), the same process must
  // get the real error or the store, not errc::busy from its own failed open.
  keel_test::temp_dir d;
  const std::string p = d.path("l.keel");
  SUBCASE("missing log, restored") {
    make_store(p, 3);
    const auto saved = keel_test::read_file(p + "-log");
    REQUIRE(fs::remove(p + "-log"));
    expect_open_error(p, small_opts(), errc::corrupt);  // took the lock, then failed
    keel_test::write_file(p + "-log", saved);
    std::unique_ptr<store> s;
    auto e = catch_error([&] { s = store::open(p, small_opts()); });
    CHECK_MESSAGE(!e, "reopen after fixing the cause failed: " << (e ? std::string(e->what()) : std::string()));
    if (s) CHECK(value_of(*s) == 3u);
  }
  SUBCASE("a foreign file, opened twice") {
    keel_test::write_file(p, std::string(64_KiB, 'k'));
    expect_open_error(p, small_opts(), errc::not_a_keel_file);
    expect_open_error(p, small_opts(), errc::not_a_keel_file);
  }
}

TEST_CASE("a second writer is errc::busy") {
  keel_test::temp_dir d;
  const std::string p = d.path("b.keel");
  make_store(p, 8);
  options o = small_opts();
  o.mode = durability::checkpoint;  // no flusher thread in the process we fork
  auto w = store::open(p, o);
  auto msg = expect_open_error(p, small_opts(), errc::busy);
  CHECK_MESSAGE(contains(msg, "lock"), msg);
  // Another process too.
  CHECK(in_child(false, p, [&] { store::open(p, small_opts()); }) == error_status(errc::busy));
  CHECK(in_child(false, p, [&] {
          auto r = store::open(p, read_only_opts());
          if (value_of(*r) != 8u) throw std::runtime_error("bad value");
        }) == 0);
  CHECK(value_of(*w) == 8u);
}

TEST_CASE("a full store is errc::full and stays usable") {
  keel_test::temp_dir d;
  const std::string p = d.path("f.keel");
  options o = small_opts();
  o.max_size = 2_MiB;
  make_store(p, 5, o);
  auto s = store::open(p, o);
  {
    auto tx = s->begin_write();
    auto e = catch_error([&] {
      for (int i = 0; i < 100; ++i) tx.alloc(256_KiB);
    });
    REQUIRE(e);
    CHECK(e->code() == errc::full);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
    tx.abort();
  }
  s->write([](write_txn& tx) {
    auto v = tx.find("v");
    tx.put(ref<u64>{v->root}, u64{6});
  });
  s->close();
  auto r = store::open(p, read_only_opts());
  CHECK(value_of(*r) == 6u);
  CHECK(r->info().last_lsn == 2);
}

TEST_CASE("a reader needs a writer to recover a store left by a dead writer of another boot") {
  keel_test::temp_dir d;
  const std::string p = d.path("r.keel");
  options o = small_opts();
  o.mode = durability::checkpoint;
  o.checkpoint_bytes = 1_GiB;
  const u64 off = make_store(p, 1, o);

  // A child commits three transactions and dies without closing.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      auto s = store::open(p, o);
      for (u64 v = 2; v <= 4; ++v)
        s->write([&](write_txn& tx) {
          tx.put(ref<u64>{off}, v);
          tx.write(tx.alloc(5000), std::string(5000, static_cast<char>('a' + v)).data(), 5000);
        });
      ::_exit(s->info().last_lsn == 4 ? 0 : 2);
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  // Same boot: readers see the dead writer's commits.
  {
    auto r = store::open(p, read_only_opts());
    CHECK(value_of(*r) == 4u);
  }
  // Pretend the machine restarted: the control page's boot id no longer matches.
  const unsigned char zeros[16] = {};
  poke(p, fmt::kControlOffset + 8, zeros, sizeof zeros);

  auto msg = expect_open_error(p, read_only_opts(), errc::needs_recovery);
  CHECK_MESSAGE(contains(msg, "recover"), msg);
  {
    auto w = store::open(p, o);
    const auto i = w->info();
    CHECK(i.recovery == 2);
    CHECK(i.recovered_records == 3);
    CHECK(i.restored_pages > 0);
    CHECK(i.last_lsn == 4);
    CHECK(i.checkpoint_lsn == 4);
    CHECK(value_of(*w) == 4u);
    // And a reader may now open while the writer is still open.
    auto r = store::open(p, read_only_opts());
    CHECK(value_of(*r) == 4u);
  }
  auto r = store::open(p, read_only_opts());
  CHECK(value_of(*r) == 4u);
  CHECK(r->info().last_lsn == 4);
  CHECK(r->info().clean_close);
}
