// Store lifecycle: create/open/reopen, commit visibility, abort, reading
// one's own writes, page-crossing spans, LSNs, checkpoints and info(),
// option validation, growth, errc::full, read-only handles, the writer lock.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <keel/keel.h>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "file/format.h"
#include "support/sim_os.h"
#include "support/temp_dir.h"
#include "support/testing.h"
#include "support/value_store.h"

using namespace keel;
namespace fs = std::filesystem;
using namespace keel_test;

namespace {

std::optional<catalog_entry> read_find(const store& s, const std::string& name) {
  return s.read([&](const read_view& v) { return v.find(name); });
}

std::vector<unsigned char> pattern(std::size_t n, unsigned seed) {
  std::vector<unsigned char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>((i * 131 + seed * 7 + (i >> 9)) & 0xff);
  return v;
}

}  // namespace

TEST_CASE("create, close and reopen a store") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  REQUIRE_FALSE(fs::exists(p));
  {
    auto s = store::open(p, small_opts());
    CHECK(s->writable());
    CHECK(s->path() == p);
    CHECK(fs::exists(p));
    CHECK(fs::exists(p + "-log"));
    CHECK(fs::exists(p + "-journal"));
    const auto i = s->info();
    CHECK(i.path == p);
    CHECK(i.max_size == 64_MiB);
    CHECK(i.file_size == 1_MiB);
    CHECK(i.arena_used == fmt::kArenaOffset);
    CHECK(i.live_bytes == 0);
    CHECK(i.free_bytes == 0);
    CHECK(i.last_lsn == 0);
    CHECK(fs::file_size(p) == 1_MiB);
    s->close();
    CHECK_NOTHROW(s->close());  // idempotent
    const auto after = catch_error([&] { (void)s->info(); });  // the mapping is gone: an error, not a crash
    REQUIRE(after.has_value());
    CHECK(after->code() == errc::invalid_argument);
  }
  {
    auto s = store::open(p, small_opts());
    CHECK(s->writable());
    const auto i = s->info();
    CHECK(i.last_lsn == 0);
    CHECK(i.clean_close);
    CHECK(i.recovery == 0);
    CHECK(i.arena_used == fmt::kArenaOffset);
  }
  {
    auto r = store::open(p, read_only_opts());
    CHECK_FALSE(r->writable());
    CHECK(r->info().last_lsn == 0);
  }
  // max_size is fixed at creation; opening with another max_size keeps it.
  {
    options o = small_opts();
    o.max_size = 128_MiB;
    auto s = store::open(p, o);
    CHECK(s->info().max_size == 64_MiB);
  }
}

TEST_CASE("commit makes data visible to a reader in the same process and after reopen") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto w = store::open(p, small_opts());
  auto r = store::open(p, read_only_opts());
  u64 off = 0;
  {
    auto tx = w->begin_write();
    off = tx.alloc(sizeof(u64));
    put64(tx, off, 0xC0FFEEull);
    tx.open_root("x", kind::raw, type_desc::none(), type_desc::of<u64>());
    tx.set_root("x", off, 7);
    // Nothing is visible before commit.
    CHECK_FALSE(read_find(*r, "x").has_value());
    CHECK(r->read([](const read_view& v) { return v.limit(); }) <= off);
    CHECK(r->info().last_lsn == 0);
    CHECK(tx.commit() == 1);
  }
  auto e = read_find(*r, "x");
  REQUIRE(e.has_value());
  CHECK(e->root == off);
  CHECK(e->aux == 7);
  CHECK(read_u64(*r, off) == 0xC0FFEEull);
  CHECK(read_u64(*w, off) == 0xC0FFEEull);
  CHECK(r->info().last_lsn == 1);

  // An update in a second transaction replaces the value for the reader.
  w->write([&](write_txn& tx) { put64(tx, off, 99); });
  CHECK(read_u64(*r, off) == 99);

  r->close();
  w->close();
  {
    auto r2 = store::open(p, read_only_opts());
    auto e2 = read_find(*r2, "x");
    REQUIRE(e2.has_value());
    CHECK(e2->root == off);
    CHECK(read_u64(*r2, off) == 99);
  }
  {
    auto w2 = store::open(p, small_opts());
    auto tx = w2->begin_write();
    CHECK(tx.get(ref<u64>{off}) == 99);
    CHECK(tx.find("x")->aux == 7);
  }
}

TEST_CASE("abort and exceptions discard every change") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  const u64 off = make_value_store(p, 1);
  auto w = store::open(p, small_opts());
  auto r = store::open(p, read_only_opts());
  const auto before = w->info();
  REQUIRE(before.last_lsn == 1);

  auto change_everything = [&](write_txn& tx) {
    put64(tx, off, 2);
    const u64 b = tx.alloc(5000);
    const auto pat = pattern(5000, 3);
    tx.write(b, pat.data(), pat.size());
    tx.open_root("gone", kind::raw, type_desc::none(), type_desc::none());
    tx.set_root("v", b, 5);
    CHECK(tx.get(ref<u64>{off}) == 2);
  };

  SUBCASE("explicit abort") {
    auto tx = w->begin_write();
    change_everything(tx);
    tx.abort();
    // A finished transaction refuses further use.
    auto err = catch_error([&] { tx.alloc(16); });
    REQUIRE(err);
    CHECK(err->code() == errc::invalid_argument);
    CHECK_NOTHROW(tx.abort());
  }
  SUBCASE("destroyed without commit") {
    auto tx = w->begin_write();
    change_everything(tx);
  }
  SUBCASE("exception thrown inside store::write") {
    CHECK_THROWS_AS(w->write([&](write_txn& tx) {
      change_everything(tx);
      throw std::runtime_error("boom");
    }),
                    std::runtime_error);
  }
  SUBCASE("keel::error thrown inside store::write") {
    auto err = catch_error([&] {
      w->write([&](write_txn& tx) {
        change_everything(tx);
        tx.free(7, 16);  // invalid: throws errc::invalid_argument
      });
    });
    REQUIRE(err);
    CHECK(err->code() == errc::invalid_argument);
  }

  auto check_untouched = [&](const store& s) {
    CHECK(read_u64(s, off) == 1);
    CHECK_FALSE(read_find(s, "gone").has_value());
    auto v = read_find(s, "v");
    REQUIRE(v.has_value());
    CHECK(v->root == off);
    CHECK(v->aux == 0);
    const auto i = s.info();
    CHECK(i.last_lsn == 1);
    CHECK(i.arena_used == before.arena_used);
    CHECK(i.live_bytes == before.live_bytes);
    CHECK(i.free_bytes == before.free_bytes);
  };
  check_untouched(*r);
  check_untouched(*w);
  // The next transaction sees the old state and can commit.
  {
    auto tx = w->begin_write();
    CHECK(tx.get(ref<u64>{off}) == 1);
    CHECK_FALSE(tx.find("gone").has_value());
    put64(tx, off, 3);
    CHECK(tx.commit() == 2);
  }
  CHECK(read_u64(*r, off) == 3);
  w->write([&](write_txn& tx) { put64(tx, off, 1); });
  r->close();
  w->close();
  auto w2 = store::open(p, small_opts());
  CHECK(read_u64(*w2, off) == 1);
  CHECK_FALSE(read_find(*w2, "gone").has_value());
  CHECK(w2->info().last_lsn == 3);
}

TEST_CASE("a committed or aborted transaction refuses further use") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  const u64 off = make_value_store(p, 1);
  auto w = store::open(p, small_opts());
  auto finished = [&](write_txn& tx) {
    auto each = {
        std::function<void()>([&] { tx.alloc(16); }),
        std::function<void()>([&] { tx.free(off, 8); }),
        std::function<void()>([&] { tx.get(ref<u64>{off}); }),
        std::function<void()>([&] { put64(tx, off, 5); }),
        std::function<void()>([&] { tx.find("v"); }),
        std::function<void()>([&] { tx.list(); }),
        std::function<void()>([&] { tx.open_root("n", kind::raw, type_desc::none(), type_desc::none()); }),
        std::function<void()>([&] { tx.set_root("v", 1); }),
        std::function<void()>([&] { tx.drop("v"); }),
        std::function<void()>([&] { tx.commit(); }),
    };
    int k = 0;
    for (auto& f : each) {
      auto e = catch_error(f);
      REQUIRE_MESSAGE(e, "operation " << k << " on a finished transaction did not throw");
      CHECK(e->code() == errc::invalid_argument);
      ++k;
    }
    CHECK_NOTHROW(tx.abort());
  };
  {
    auto tx = w->begin_write();
    put64(tx, off, 2);
    CHECK(tx.commit() == 2);
    finished(tx);
  }
  {
    auto tx = w->begin_write();
    put64(tx, off, 3);
    tx.abort();
    finished(tx);
  }
  // Nothing leaked through the finished transactions, and the lock is free.
  CHECK(read_u64(*w, off) == 2);
  CHECK(w->info().last_lsn == 2);
  auto v = read_find(*w, "v");
  REQUIRE(v.has_value());
  CHECK(v->root == off);
  w->write([&](write_txn& tx) { put64(tx, off, 4); });
  CHECK(read_u64(*w, off) == 4);
}

TEST_CASE("a transaction reads its own writes before commit") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  const u64 off = make_value_store(p, 10);
  auto w = store::open(p, small_opts());
  auto r = store::open(p, read_only_opts());
  auto tx = w->begin_write();

  put64(tx, off, 42);
  CHECK(tx.get(ref<u64>{off}) == 42);
  u64 via_bytes = 0;
  std::memcpy(&via_bytes, tx.bytes(off, 8), 8);
  CHECK(via_bytes == 42);
  u64 via_read = 0;
  tx.read(off, &via_read, 8);
  CHECK(via_read == 42);
  *tx.mut(ref<u64>{off}) += 1;
  CHECK(tx.get(ref<u64>{off}) == 43);

  // Fresh space of this transaction.
  const u64 b = tx.alloc(100);
  const auto pat = pattern(100, 1);
  tx.write(b, pat.data(), pat.size());
  std::vector<unsigned char> back(100);
  tx.read(b, back.data(), back.size());
  CHECK(back == pat);
  CHECK(std::memcmp(tx.bytes(b, 100), pat.data(), 100) == 0);

  // The catalog too.
  tx.open_root("mine", kind::raw, type_desc::none(), type_desc::none());
  tx.set_root("mine", b, 100);
  auto m = tx.find("mine");
  REQUIRE(m.has_value());
  CHECK(m->root == b);
  CHECK(tx.list().size() == 2);

  // The reader still sees the committed state.
  CHECK(read_u64(*r, off) == 10);
  CHECK_FALSE(read_find(*r, "mine").has_value());

  CHECK(tx.commit() == 2);
  CHECK(read_u64(*r, off) == 43);
  CHECK(read_find(*r, "mine")->root == b);
  CHECK(r->read([&](const read_view& v) { return std::memcmp(v.bytes(b, 100), pat.data(), 100) == 0; }));
}

TEST_CASE("write() and read() take spans across page boundaries") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto w = store::open(p, small_opts());
  const std::size_t n = 3 * fmt::kPage;
  const auto p1 = pattern(n, 1);
  const u64 off = w->write([&](write_txn& tx) {
    const u64 b = tx.alloc(n);
    CHECK(b % fmt::kPage == 0);
    tx.write(b, p1.data(), n);
    std::vector<unsigned char> back(n);
    tx.read(b, back.data(), n);
    CHECK(back == p1);
    return b;
  });

  // Now committed space: a 10000-byte span starting mid-page crosses three pages.
  const auto p2 = pattern(10000, 2);
  auto expect = p1;
  std::memcpy(expect.data() + 1000, p2.data(), p2.size());
  {
    auto tx = w->begin_write();
    tx.write(off + 1000, p2.data(), p2.size());
    std::vector<unsigned char> back(n);
    tx.read(off, back.data(), n);
    CHECK(back == expect);
    // bytes()/mut_bytes() refuse committed spans that cross a page.
    auto e1 = catch_error([&] { tx.bytes(off + 4000, 200); });
    REQUIRE(e1);
    CHECK(e1->code() == errc::invalid_argument);
    auto e2 = catch_error([&] { tx.mut_bytes(off + fmt::kPage - 8, 16); });
    REQUIRE(e2);
    CHECK(e2->code() == errc::invalid_argument);
    // ... but a span within one page is fine.
    CHECK(std::memcmp(tx.bytes(off + fmt::kPage, 100), expect.data() + fmt::kPage, 100) == 0);
    CHECK(tx.commit() == 2);
  }
  CHECK(w->read([&](const read_view& v) { return std::memcmp(v.bytes(off, n), expect.data(), n) == 0; }));
  w->close();

  auto w2 = store::open(p, small_opts());
  auto tx = w2->begin_write();
  std::vector<unsigned char> back(n);
  tx.read(off, back.data(), n);
  CHECK(back == expect);
  // Unaligned read that crosses every page of the block.
  std::vector<unsigned char> part(n - 3);
  tx.read(off + 1, part.data(), part.size());
  CHECK(std::memcmp(part.data(), expect.data() + 1, part.size()) == 0);
}

TEST_CASE("LSNs: an empty commit returns 0, each commit adds 1") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto w = store::open(p, small_opts());
  {
    auto tx = w->begin_write();
    CHECK(tx.commit() == 0);
  }
  {
    auto tx = w->begin_write();
    CHECK_FALSE(tx.find("nothing").has_value());
    CHECK(tx.list().empty());
    CHECK(tx.commit() == 0);
  }
  CHECK(w->info().last_lsn == 0);
  u64 off = w->write([](write_txn& tx) { return tx.alloc(8); });
  CHECK(w->info().last_lsn == 1);
  for (u64 i = 2; i <= 5; ++i) {
    auto tx = w->begin_write();
    put64(tx, off, i);
    CHECK(tx.commit() == i);
    CHECK(w->info().last_lsn == i);
  }
  {
    auto tx = w->begin_write();
    CHECK(tx.get(ref<u64>{off}) == 5);
    CHECK(tx.commit() == 0);  // read-only transaction
  }
  {
    auto tx = w->begin_write();
    put64(tx, off, 100);
    tx.abort();  // an aborted transaction takes no LSN
  }
  {
    auto tx = w->begin_write();
    put64(tx, off, 6);
    CHECK(tx.commit() == 6);
  }
  w->close();
  auto w2 = store::open(p, small_opts());
  CHECK(w2->info().last_lsn == 6);
  auto tx = w2->begin_write();
  put64(tx, off, 7);
  CHECK(tx.commit() == 7);
}

TEST_CASE("prefetch is only a hint: any offset, no change, no use after commit") {
  keel_test::temp_dir d;
  auto w = store::open(d.path("a.keel"), small_opts());
  const u64 off = w->write([](write_txn& tx) {
    const u64 o = tx.alloc(8);
    tx.put(ref<u64>{o}, u64{42});
    return o;
  });
  auto tx = w->begin_write();
  put64(tx, off, 43);  // a private copy exists for this line
  for (u64 o : {u64{0}, u64{1}, off, off + 1, tx.limit() - 1, tx.limit(), tx.limit() + 4096, ~u64{0}})
    tx.prefetch(o);
  CHECK(tx.get(ref<u64>{off}) == 43);  // still the transaction's own write
  CHECK(tx.commit() == 2);             // and only that write is committed
  tx.prefetch(off);                    // a finished transaction ignores the hint
  CHECK(read_u64(*w, off) == 43);
  auto empty = w->begin_write();
  empty.prefetch(off);
  CHECK(empty.commit() == 0);  // prefetching dirtied nothing
}

TEST_CASE("checkpoint, info() and reopen") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto w = store::open(p, small_opts());  // batch mode: journal in use
  const u64 seq0 = w->info().superblock_sequence;
  u64 off = 0;
  for (int i = 1; i <= 3; ++i)
    w->write([&](write_txn& tx) {
      if (!off) off = tx.alloc(8);
      put64(tx, off, static_cast<u64>(i));
    });
  auto i1 = w->info();
  CHECK(i1.last_lsn == 3);
  CHECK(i1.checkpoint_lsn == 0);
  CHECK(i1.log_bytes > 0);
  CHECK(i1.journal_bytes > 0);  // the meta page existed at the checkpoint
  CHECK(i1.mode == durability::batch);

  w->checkpoint();
  auto i2 = w->info();
  CHECK(i2.last_lsn == 3);
  CHECK(i2.checkpoint_lsn == 3);
  CHECK(i2.log_bytes == 0);
  CHECK(i2.journal_bytes == 0);
  CHECK(i2.superblock_sequence == seq0 + 1);
  CHECK_FALSE(i2.clean_close);

  w->write([&](write_txn& tx) { put64(tx, off, 4); });
  auto i3 = w->info();
  CHECK(i3.last_lsn == 4);
  CHECK(i3.checkpoint_lsn == 3);
  CHECK(i3.log_bytes > 0);
  w->close();

  {
    auto r = store::open(p, read_only_opts());
    auto i = r->info();
    CHECK(i.clean_close);
    CHECK(i.last_lsn == 4);
    CHECK(i.checkpoint_lsn == 4);
    CHECK(i.log_bytes == 0);
    CHECK(i.superblock_sequence == seq0 + 2);
    CHECK(read_u64(*r, off) == 4);
  }
  auto w2 = store::open(p, small_opts());
  auto i = w2->info();
  CHECK(i.clean_close);
  CHECK(i.recovery == 0);
  CHECK(i.recovered_records == 0);
  CHECK(i.last_lsn == 4);
  CHECK(i.checkpoint_lsn == 4);
  CHECK(i.log_bytes == 0);
  CHECK(read_u64(*w2, off) == 4);
  // Checkpoint right after reopen, then more commits on top.
  w2->checkpoint();
  w2->write([&](write_txn& tx) { put64(tx, off, 5); });
  w2->close();
  auto r = store::open(p, read_only_opts());
  CHECK(read_u64(*r, off) == 5);
  CHECK(r->info().last_lsn == 5);
}

TEST_CASE("a checkpoint runs on its own once the log exceeds checkpoint_bytes") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  options o = small_opts();
  o.checkpoint_bytes = 64_KiB;
  auto w = store::open(p, o);
  const auto pat = pattern(16_KiB, 4);
  w->write([&](write_txn& tx) { tx.write(tx.alloc(pat.size()), pat.data(), pat.size()); });
  CHECK(w->info().checkpoint_lsn == 0);  // below the threshold
  for (int i = 0; i < 8; ++i)
    w->write([&](write_txn& tx) { tx.write(tx.alloc(pat.size()), pat.data(), pat.size()); });
  const auto i = w->info();
  CHECK(i.last_lsn == 9);
  CHECK(i.checkpoint_lsn > 0);
  CHECK(i.log_bytes < 64_KiB + pat.size() + 4096);
}

TEST_CASE("options are validated") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto expect_invalid = [&](const options& o, const std::string& path) {
    auto e = catch_error([&] { store::open(path, o); });
    REQUIRE(e);
    CHECK(e->code() == errc::invalid_argument);
    CHECK_MESSAGE(contains(e->what(), path), std::string(e->what()));
  };
  {
    options o = small_opts();
    o.max_size = 16_KiB;
    expect_invalid(o, p);
    o.max_size = 1ull << 47;  // above 64 TiB
    expect_invalid(o, p);
  }
  {
    options o = small_opts();
    o.initial_size = 2_MiB;
    o.max_size = 1_MiB;
    expect_invalid(o, p);
  }
  {
    options o = small_opts();
    o.checkpoint_bytes = 0;
    expect_invalid(o, p);
  }
  {
    options o = small_opts();
    o.mode = durability::batch;
    o.batch_window = std::chrono::milliseconds(0);
    expect_invalid(o, p);
  }
  {
    options o = small_opts();
    o.lock_timeout = std::chrono::milliseconds(-1);
    expect_invalid(o, p);
  }
  CHECK_FALSE(fs::exists(p));  // no failed open created anything

  {
    options o = small_opts();
    o.create_if_missing = false;
    auto e = catch_error([&] { store::open(p, o); });
    REQUIRE(e);
    CHECK(e->code() == errc::io);
    CHECK(e->sys_errno() == ENOENT);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
    CHECK_FALSE(fs::exists(p));
  }
  {
    options o = small_opts();
    o.error_if_exists = true;
    auto s = store::open(p, o);  // missing: created
    const u64 off = s->write([](write_txn& tx) {
      const u64 b = tx.alloc(8);
      put64(tx, b, 77);
      return b;
    });
    s->close();
    expect_invalid(o, p);  // exists now
    auto s2 = store::open(p, small_opts());  // and was left alone
    CHECK(read_u64(*s2, off) == 77);
    CHECK(s2->info().last_lsn == 1);
  }
}

TEST_CASE("the file grows far beyond initial_size") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto w = store::open(p, small_opts());
  w->write([](write_txn& tx) { tx.open_root("chunks", kind::raw, type_desc::none(), type_desc::none()); });
  auto r = store::open(p, read_only_opts());  // maps the store while it is 1 MiB
  REQUIRE(r->info().file_size == 1_MiB);

  constexpr std::size_t kChunk = 512_KiB;
  constexpr int kChunks = 40;  // 20 MiB
  std::vector<u64> offs;
  for (int t = 0; t < 4; ++t)
    w->write([&](write_txn& tx) {
      for (int i = 0; i < kChunks / 4; ++i) {
        const u64 b = tx.alloc(kChunk);
        const auto pat = pattern(kChunk, static_cast<unsigned>(offs.size()));
        tx.write(b, pat.data(), pat.size());
        offs.push_back(b);
      }
    });
  const auto i = w->info();
  CHECK(i.file_size >= 20_MiB + fmt::kArenaOffset);
  CHECK(i.file_size <= i.max_size);
  CHECK(i.arena_used >= 20_MiB);
  CHECK(fs::file_size(p) >= 20_MiB + fmt::kArenaOffset);
  // The reader that mapped the small file reads the new pages in place.
  const u64 last = offs.back();
  const auto last_pat = pattern(kChunk, kChunks - 1);
  CHECK(r->read([&](const read_view& v) { return std::memcmp(v.bytes(last, kChunk), last_pat.data(), kChunk) == 0; }));
  r->close();
  w->close();

  auto w2 = store::open(p, small_opts());
  CHECK(w2->info().file_size >= 20_MiB);
  for (std::size_t k = 0; k < offs.size(); ++k) {
    const auto pat = pattern(kChunk, static_cast<unsigned>(k));
    const bool same =
        w2->read([&](const read_view& v) { return std::memcmp(v.bytes(offs[k], kChunk), pat.data(), kChunk) == 0; });
    CHECK_MESSAGE(same, "chunk " << k);
  }
}

// A reader's open takes the file's size, then reads the live meta page. A
// writer in between (another process, in production) may grow the file and
// move the cursor past the size the reader took: the open must take the size
// again, not report the store corrupt (readers_crash_test met this about
// once in eight runs).
TEST_CASE("a reader opening while the writer grows the file past the size it took") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto w = store::open(p, small_opts());
  w->write([](write_txn& tx) { tx.open_root("chunks", kind::raw, type_desc::none(), type_desc::none()); });
  REQUIRE(w->info().file_size == 1_MiB);

  constexpr std::size_t kChunk = 4_MiB;
  const auto pat = pattern(kChunk, 7);
  u64 off = 0;
  keel_test::sim_os sys;
  int grown = 0;
  // map() runs its mmap after its fstat: grow the file and commit there.
  sys.on_call = [&](op o, const std::string&) {
    if (o != op::mmap || grown++ != 0) return;
    w->write([&](write_txn& tx) {
      off = tx.alloc(kChunk);
      tx.write(off, pat.data(), pat.size());
    });
  };
  keel::options ro = read_only_opts();
  ro.os = &sys;
  auto r = store::open(p, ro);
  REQUIRE(grown == 1);
  const u64 cursor_end = off + kChunk;
  REQUIRE(cursor_end > 1_MiB);
  CHECK(r->info().file_size >= cursor_end);
  CHECK(r->read([&](const read_view& v) { return std::memcmp(v.bytes(off, kChunk), pat.data(), kChunk) == 0; }));
  r->close();
  w->close();
}

TEST_CASE("a full store throws errc::full and stays usable") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  options o = small_opts();
  o.max_size = 2_MiB;
  auto w = store::open(p, o);
  auto r = store::open(p, read_only_opts());
  const auto before = w->info();

  SUBCASE("the transaction that got full is aborted") {
    {
      auto tx = w->begin_write();
      const u64 a = tx.alloc(1_MiB);
      put64(tx, a, 1);
      auto e = catch_error([&] { tx.alloc(1_MiB); });
      REQUIRE(e);
      CHECK(e->code() == errc::full);
      CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
      // A request larger than max_size itself: full or invalid_argument, never a crash.
      auto e2 = catch_error([&] { tx.alloc(3_MiB); });
      REQUIRE(e2);
      CHECK((e2->code() == errc::full || e2->code() == errc::invalid_argument));
      tx.abort();
    }
    const auto after = w->info();
    CHECK(after.last_lsn == before.last_lsn);
    CHECK(after.arena_used == before.arena_used);
    CHECK(after.live_bytes == before.live_bytes);
  }
  SUBCASE("the transaction that got full commits what it had") {
    auto tx = w->begin_write();
    const u64 a = tx.alloc(1_MiB);
    put64(tx, a, 1);
    auto e = catch_error([&] { tx.alloc(1_MiB); });
    REQUIRE(e);
    CHECK(e->code() == errc::full);
    tx.open_root("big", kind::raw, type_desc::none(), type_desc::none());
    tx.set_root("big", a);
    CHECK(tx.commit() == 1);
    CHECK(read_u64(*r, a) == 1);
  }

  // A later small transaction succeeds.
  const u64 small = w->write([](write_txn& tx) {
    const u64 b = tx.alloc(64);
    put64(tx, b, 0x5A5A);
    tx.open_root("small", kind::raw, type_desc::none(), type_desc::none());
    tx.set_root("small", b);
    return b;
  });
  CHECK(read_u64(*r, small) == 0x5A5A);
  CHECK(w->info().file_size <= 2_MiB);
  const u64 lsn = w->info().last_lsn;
  r->close();
  w->close();
  CHECK(fs::file_size(p) <= 2_MiB);

  auto w2 = store::open(p, o);
  CHECK(w2->info().last_lsn == lsn);
  auto e = read_find(*w2, "small");
  REQUIRE(e.has_value());
  CHECK(e->root == small);
  CHECK(read_u64(*w2, small) == 0x5A5A);
  // Still full for big requests, still usable for small ones.
  auto tx = w2->begin_write();
  auto err = catch_error([&] { tx.alloc(2_MiB - 4096); });
  REQUIRE(err);
  CHECK(err->code() == errc::full);
  put64(tx, small, 1);
  CHECK(tx.commit() == lsn + 1);
}

TEST_CASE("a read-only handle refuses to write") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  const u64 off = make_value_store(p, 5);
  auto r = store::open(p, read_only_opts());
  CHECK_FALSE(r->writable());
  CHECK(read_u64(*r, off) == 5);
  auto check_ro = [&](auto&& f) {
    auto e = catch_error(f);
    REQUIRE(e);
    CHECK(e->code() == errc::read_only);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
  };
  check_ro([&] { r->begin_write(); });
  check_ro([&] { r->write([](write_txn&) {}); });
  check_ro([&] { r->checkpoint(); });
  CHECK(r->info().last_lsn == 1);
  CHECK_NOTHROW(r->close());

  // A read-only open never creates a store.
  const std::string missing = d.path("missing.keel");
  auto e = catch_error([&] { store::open(missing, read_only_opts()); });
  REQUIRE(e);
  CHECK(e->sys_errno() == ENOENT);
  CHECK_MESSAGE(contains(e->what(), missing), std::string(e->what()));
  CHECK_FALSE(fs::exists(missing));
}

TEST_CASE("one writable handle at a time") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  const u64 off = make_value_store(p, 1);
  auto w1 = store::open(p, small_opts());

  SUBCASE("a second writer gets busy, at once or after lock_timeout") {
    auto e = catch_error([&] { store::open(p, small_opts()); });
    REQUIRE(e);
    CHECK(e->code() == errc::busy);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));

    options o = small_opts();
    o.lock_timeout = std::chrono::milliseconds(300);
    const auto t0 = std::chrono::steady_clock::now();
    auto e2 = catch_error([&] { store::open(p, o); });
    const auto waited = std::chrono::steady_clock::now() - t0;
    REQUIRE(e2);
    CHECK(e2->code() == errc::busy);
    CHECK(waited >= std::chrono::milliseconds(240));
    CHECK(waited < std::chrono::seconds(5));

    // Readers take no lock.
    auto r = store::open(p, read_only_opts());
    CHECK(read_u64(*r, off) == 1);

    // The holder is unaffected by the failed attempts.
    w1->write([&](write_txn& tx) { put64(tx, off, 2); });
    CHECK(read_u64(*r, off) == 2);

    w1->close();
    auto w2 = store::open(p, small_opts());
    CHECK(read_u64(*w2, off) == 2);
    w2->write([&](write_txn& tx) { put64(tx, off, 3); });
    CHECK(read_u64(*r, off) == 3);
    CHECK(w2->info().last_lsn == 3);
  }
  SUBCASE("a waiting writer gets the lock when the holder closes") {
    std::thread closer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      w1->close();
    });
    options o = small_opts();
    o.lock_timeout = std::chrono::milliseconds(10'000);
    std::unique_ptr<store> w2;
    auto e = catch_error([&] { w2 = store::open(p, o); });
    closer.join();
    CHECK_FALSE_MESSAGE(e.has_value(), (e ? std::string(e->what()) : std::string()));
    REQUIRE(w2);
    CHECK(read_u64(*w2, off) == 1);
    w2->write([&](write_txn& tx) { put64(tx, off, 9); });
    CHECK(read_u64(*w2, off) == 9);
    CHECK(w2->info().last_lsn == 2);
  }
  SUBCASE("destroying the handle releases the lock") {
    w1.reset();
    auto w2 = store::open(p, small_opts());
    CHECK(w2->writable());
  }
}

TEST_CASE("readers never see part of a commit") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  options o = small_opts();
  o.mode = durability::checkpoint;
  auto w = store::open(p, o);
  // Two counters on different pages, always equal in every committed state.
  const auto ab = w->write([](write_txn& tx) {
    const u64 x = tx.alloc(fmt::kPage), y = tx.alloc(fmt::kPage);
    put64(tx, x, 0);
    put64(tx, y, 0);
    return std::pair<u64, u64>{x, y};
  });
  const u64 a = ab.first, b = ab.second;
  REQUIRE(a / fmt::kPage != b / fmt::kPage);
  auto r = store::open(p, read_only_opts());
  std::atomic<bool> done{false};
  std::atomic<u64> torn{0}, reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      const auto [x, y] = r->read([&](const read_view& v) {
        return std::pair<u64, u64>{v.get(ref<u64>{a}), v.get(ref<u64>{b})};
      });
      if (x != y) ++torn;
      ++reads;
    }
  });
  constexpr u64 kCommits = 3000;
  for (u64 i = 1; i <= kCommits; ++i)
    w->write([&](write_txn& tx) {
      put64(tx, a, i);
      put64(tx, b, i);
    });
  done = true;
  reader.join();
  CHECK(torn.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(read_u64(*r, a) == kCommits);
  CHECK(read_u64(*r, b) == kCommits);
}
