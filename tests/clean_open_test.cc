// A writable open that finds nothing past the checkpoint (a log and a
// journal of a header each, an even seqlock) leaves the control page as it
// found it and reads no boot id: the first write transaction or checkpoint
// takes the page over (DURABILITY.md, "Recovery"; FORMAT.md, "Control
// page"). What that must not break: readers attached before the first
// write, a writer that dies before writing, the paths that still recover.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <keel/keel.h>
#include <memory>
#include <string>

#include "file/format.h"
#include "support/proc.h"
#include "support/sim_os.h"
#include "support/stores.h"
#include "support/temp_dir.h"
#include "support/testing.h"
#include "support/value_store.h"

using namespace keel;
using namespace keel_test;

namespace {

// The control page as the data file holds it now (through the page cache,
// so what every mapping shows).
fmt::control_page control_of(const std::string& path) {
  const std::string data = read_file(path);
  REQUIRE(data.size() >= fmt::kControlOffset + sizeof(fmt::control_page));
  fmt::control_page c;
  std::memcpy(&c, data.data() + fmt::kControlOffset, sizeof c);
  return c;
}

options with_os(options o, sim_os& sys) {
  o.os = &sys;
  return o;
}

}  // namespace

TEST_CASE("an open of a clean store writes nothing and reads no boot id until the writer's first write") {
  temp_dir d;
  const std::string path = d.path("s.keel");
  const u64 off = make_value_store(path, 42);
  const std::string before = all_files(path);
  sim_os sys;
  sys.new_boot();  // the control page on disk is from another boot: not valid for this one
  auto w = store::open(path, with_os(small_opts(), sys));
  CHECK(w->info().recovery == 0);
  CHECK(read_u64(*w, off) == 42);
  CHECK(sys.boot_id_reads() == 0);
  CHECK(all_files(path) == before);  // no byte of the data file (its control page included), log or journal

  // A reader attached now finds a control page of another boot; with nothing
  // to recover it opens anyway, and it must follow the writer's commits.
  auto r = store::open(path, with_os(read_only_opts(), sys));
  CHECK(read_u64(*r, off) == 42);
  CHECK(sys.boot_id_reads() == 0);  // nothing to recover: the reader need not trust the page either
  const int reads_before_write = sys.boot_id_reads();

  w->write([&](write_txn& tx) { put64(tx, off, 43); });
  CHECK(sys.boot_id_reads() == reads_before_write + 1);
  const fmt::control_page c = control_of(path);
  const auto boot = sys.boot_id();
  CHECK(std::memcmp(c.magic, fmt::kControlMagic, 8) == 0);
  CHECK(std::memcmp(c.boot_id, boot.data(), 16) == 0);  // this boot's now: readers trust it
  CHECK(c.writer_pid == static_cast<std::uint32_t>(::getpid()));
  CHECK(c.applied_lsn == w->info().last_lsn);
  CHECK((c.seqlock & 1) == 0);
  CHECK(read_u64(*r, off) == 43);

  const int reads_after_first = sys.boot_id_reads();
  w->write([&](write_txn& tx) { put64(tx, off, 44); });
  CHECK(sys.boot_id_reads() == reads_after_first);  // taken over once per handle
  CHECK(read_u64(*r, off) == 44);
  CHECK(control_of(path).applied_lsn == w->info().last_lsn);
  r.reset();
  w->close();

  auto again = store::open(path, with_os(read_only_opts(), sys));
  CHECK(read_u64(*again, off) == 44);
}

TEST_CASE("a checkpoint, a close or an adopted meta page before any write takes the control page over") {
  temp_dir d;
  const std::string path = d.path("s.keel");
  const u64 off = make_value_store(path, 5);
  sim_os sys;
  sys.new_boot();
  // The page carries this boot's id and the checkpoint LSN the handle
  // reached; exactly one boot id read took it over.
  auto taken_over = [&](u64 checkpoint_lsn) {
    CHECK(sys.boot_id_reads() == 1);
    const fmt::control_page c = control_of(path);
    const auto boot = sys.boot_id();
    CHECK(std::memcmp(c.boot_id, boot.data(), 16) == 0);
    CHECK(c.checkpoint_lsn == checkpoint_lsn);
  };
  SUBCASE("store::checkpoint") {
    auto w = store::open(path, with_os(small_opts(), sys));
    CHECK(sys.boot_id_reads() == 0);
    w->checkpoint();
    taken_over(w->info().checkpoint_lsn);
    CHECK(read_u64(*w, off) == 5);
  }
  SUBCASE("close") {
    auto w = store::open(path, with_os(small_opts(), sys));
    CHECK(sys.boot_id_reads() == 0);
    w->close();
    taken_over(1);
  }
  SUBCASE("open adopting a meta page newer than its superblock") {
    // The newest superblock (checkpoint LSN 1) destroyed: open falls back to
    // the creation's (LSN 0) with an empty log, finds the meta page at 1 and
    // checkpoints at once (DURABILITY.md, "Recovery").
    store_files f = read_store(path);
    fmt::superblock s0, s1;
    std::memcpy(&s0, f.data.data(), sizeof s0);
    std::memcpy(&s1, f.data.data() + fmt::kPage, sizeof s1);
    const std::size_t newest = s0.sequence > s1.sequence ? 0 : fmt::kPage;
    REQUIRE((newest == 0 ? s0 : s1).checkpoint_lsn == 1);
    f.data[newest + 100] = static_cast<char>(f.data[newest + 100] ^ 0x5a);
    write_store(path, f);
    auto w = store::open(path, with_os(small_opts(), sys));
    CHECK(w->info().recovery == 2);
    taken_over(1);
    CHECK(read_u64(*w, off) == 5);
  }
}

TEST_CASE("a writer killed before its first write leaves the files as it found them") {
  temp_dir d;
  const std::string path = d.path("s.keel");
  const u64 off = make_value_store(path, 7);
  const std::string before = all_files(path);
  auto child = child_proc::spawn([&](int fd) {
    auto s = store::open(path, small_opts());
    const u64 v = read_u64(*s, off);
    write_all(fd, &v, sizeof v);
    ::pause();  // killed here, holding the writer lock, the store never closed
  });
  REQUIRE(child.pid() > 0);
  u64 seen = 0;
  REQUIRE(::read(child.fd(), &seen, sizeof seen) == static_cast<ssize_t>(sizeof seen));
  CHECK(seen == 7);
  child.kill_and_wait();
  CHECK(all_files(path) == before);

  auto s = store::open(path, small_opts());
  CHECK(s->info().recovery == 0);
  CHECK(read_u64(*s, off) == 7);
  s->write([&](write_txn& tx) { put64(tx, off, 8); });
  s->close();
  auto r = store::open(path, read_only_opts());
  CHECK(read_u64(*r, off) == 8);
}

TEST_CASE("an odd seqlock with an empty log still runs recovery at open") {
  // A writer that died inside recovery's checkpoint leaves the log and the
  // journal recycled but the seqlock odd: readers would wait for ever. The
  // open must not take the clean path, and it leaves the seqlock even.
  temp_dir d;
  const std::string path = d.path("s.keel");
  const u64 off = make_value_store(path, 9);
  store_files f = read_store(path);
  fmt::control_page c;
  std::memcpy(&c, f.data.data() + fmt::kControlOffset, sizeof c);
  c.seqlock |= 1;
  std::memcpy(f.data.data() + fmt::kControlOffset, &c, sizeof c);
  write_store(path, f);
  REQUIRE((control_of(path).seqlock & 1) == 1);

  sim_os sys;
  auto w = store::open(path, with_os(small_opts(), sys));
  CHECK(sys.boot_id_reads() >= 1);  // the control page was taken over at open
  CHECK((control_of(path).seqlock & 1) == 0);
  auto r = store::open(path, with_os(read_only_opts(), sys));
  CHECK(read_u64(*r, off) == 9);  // a reader's read would spin on an odd seqlock
}

TEST_CASE("a log with records runs recovery at open, not the clean path") {
  // A writer killed after a commit: the log holds its record. The next
  // writable open replays (same boot) and takes the control page at once.
  temp_dir d;
  const std::string path = d.path("s.keel");
  const u64 off = make_value_store(path, 1);
  auto child = child_proc::spawn([&](int fd) {
    options o = small_opts();
    o.mode = durability::sync;
    auto s = store::open(path, o);
    s->write([&](write_txn& tx) { put64(tx, off, 2); });
    const char ok = 1;
    write_all(fd, &ok, 1);
    ::pause();
  });
  REQUIRE(child.pid() > 0);
  REQUIRE(child.wait_ready());
  child.kill_and_wait();
  REQUIRE(read_file(path + "-log").size() > sizeof(fmt::file_header));

  sim_os sys;
  auto w = store::open(path, with_os(small_opts(), sys));
  CHECK(sys.boot_id_reads() >= 1);
  CHECK(control_of(path).writer_pid == static_cast<std::uint32_t>(::getpid()));
  CHECK(read_u64(*w, off) == 2);
}
