// The root catalog: open_root/find/list/drop/set_root, type checks, name
// limits, more names than one catalog page holds, and a corrupt catalog page.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <cstdint>
#include <cstring>
#include <keel/keel.h>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "file/format.h"
#include "support/temp_dir.h"
#include "support/testing.h"

using namespace keel;
using namespace keel_test;

struct point {
  double x, y;
};
struct other_point {
  double x, y;
};
template <>
struct keel::type_name<point> {
  static std::string_view get() { return "catalog_test::point"; }
};

namespace {

std::optional<catalog_entry> read_find(const store& s, const std::string& name) {
  return s.read([&](const read_view& v) { return v.find(name); });
}
std::vector<catalog_entry> read_list(const store& s) {
  return s.read([](const read_view& v) { return v.list(); });
}
std::set<std::string> names_of(const std::vector<catalog_entry>& v) {
  std::set<std::string> s;
  for (auto& e : v) s.insert(e.name);
  return s;
}


const type_desc k_u64 = type_desc::of<std::uint64_t>();
const type_desc k_u32 = type_desc::of<std::uint32_t>();
const type_desc k_f64 = type_desc::of<double>();

std::string name_n(int i) { return "name-" + std::to_string(i); }

}  // namespace

TEST_CASE("open_root creates a name and finds it again later") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  {
    auto s = store::open(p, small_opts());
    auto tx = s->begin_write();
    CHECK_FALSE(tx.find("quotes").has_value());
    auto e = tx.open_root("quotes", kind::hash_map, k_u64, k_f64);
    CHECK(e.name == "quotes");
    CHECK(e.kind == kind::hash_map);
    CHECK(e.key == k_u64);
    CHECK(e.value == k_f64);
    CHECK(e.root == 0);
    CHECK(e.aux == 0);
    auto f = tx.find("quotes");
    REQUIRE(f.has_value());
    CHECK(f->kind == kind::hash_map);
    tx.open_root("pts", kind::tree_map, k_u32, type_desc::of<point>());
    tx.open_root("blob", kind::bytes_hash_map, type_desc::bytes(), type_desc::bytes());
    CHECK(tx.commit() == 1);

    // A later transaction: open_root with the same kind/types finds it, no change.
    auto tx2 = s->begin_write();
    tx2.set_root("quotes", 12345, 3);
    auto again = tx2.open_root("quotes", kind::hash_map, k_u64, k_f64);
    CHECK(again.root == 12345);
    CHECK(again.aux == 3);
    CHECK(tx2.commit() == 2);

    auto tx3 = s->begin_write();
    auto e3 = tx3.open_root("pts", kind::tree_map, k_u32, type_desc::of<point>());
    CHECK(e3.value == type_desc::of<point>());
    CHECK(tx3.commit() == 0);  // finding changes nothing
    s->close();
  }
  auto s = store::open(p, small_opts());
  auto tx = s->begin_write();
  auto e = tx.open_root("quotes", kind::hash_map, k_u64, k_f64);
  CHECK(e.root == 12345);
  CHECK(e.aux == 3);
  auto b = tx.find("blob");
  REQUIRE(b.has_value());
  CHECK(b->kind == kind::bytes_hash_map);
  CHECK(b->key == type_desc::bytes());
  CHECK(names_of(tx.list()) == std::set<std::string>{"quotes", "pts", "blob"});
  CHECK(tx.commit() == 0);
}

TEST_CASE("list, drop and set_root, seen by the writer, readers and after reopen") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto s = store::open(p, small_opts());
  auto r = store::open(p, read_only_opts());
  CHECK(read_list(*r).empty());
  s->write([](write_txn& tx) {
    CHECK(tx.list().empty());
    for (const char* n : {"a", "b", "c", "d"}) tx.open_root(n, kind::raw, type_desc::none(), k_u64);
    tx.set_root("b", 4096 * 10, 77);
    CHECK(tx.list().size() == 4);
  });
  CHECK(names_of(read_list(*r)) == std::set<std::string>{"a", "b", "c", "d"});
  auto b = read_find(*r, "b");
  REQUIRE(b.has_value());
  CHECK(b->root == 4096 * 10);
  CHECK(b->aux == 77);
  CHECK(b->kind == kind::raw);
  CHECK(b->value == k_u64);

  // set_root of a missing name is an error; of an existing one overwrites both words.
  {
    auto tx = s->begin_write();
    auto e = catch_error([&] { tx.set_root("nope", 1, 2); });
    REQUIRE(e);
    CHECK(e->code() == errc::invalid_argument);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
    tx.set_root("b", 99);
    CHECK(tx.find("b")->root == 99);
    CHECK(tx.find("b")->aux == 0);
    tx.commit();
  }
  CHECK(read_find(*r, "b")->root == 99);

  const u64 used = s->info().arena_used;
  {
    auto tx = s->begin_write();
    CHECK(tx.drop("c"));
    CHECK_FALSE(tx.drop("c"));
    CHECK_FALSE(tx.drop("never"));
    CHECK_FALSE(tx.find("c").has_value());
    CHECK(tx.list().size() == 3);
    // The reader still sees it until commit.
    CHECK(read_find(*r, "c").has_value());
    tx.commit();
  }
  CHECK_FALSE(read_find(*r, "c").has_value());
  CHECK(names_of(read_list(*r)) == std::set<std::string>{"a", "b", "d"});

  // A dropped name can be created again, with other types, reusing its slot.
  s->write([](write_txn& tx) {
    auto e = tx.open_root("c", kind::tree_map, k_u32, k_u32);
    CHECK(e.root == 0);
    tx.open_root("e", kind::raw, type_desc::none(), type_desc::none());
  });
  CHECK(s->info().arena_used == used);
  CHECK(read_find(*r, "c")->kind == kind::tree_map);

  // An aborted drop leaves the name.
  {
    auto tx = s->begin_write();
    CHECK(tx.drop("a"));
    tx.abort();
  }
  CHECK(read_find(*r, "a").has_value());

  r->close();
  s->close();
  auto s2 = store::open(p, read_only_opts());
  CHECK(names_of(read_list(*s2)) == std::set<std::string>{"a", "b", "c", "d", "e"});
  CHECK(read_find(*s2, "b")->root == 99);
  CHECK(read_find(*s2, "c")->key == k_u32);
}

TEST_CASE("open_root with another kind or type throws errc::type_mismatch") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto s = store::open(p, small_opts());
  s->write([](write_txn& tx) {
    tx.open_root("m", kind::hash_map, k_u64, k_f64);
    tx.open_root("pt", kind::tree_map, k_u64, type_desc::of<point>());
    tx.set_root("m", 4096 * 5, 1);
  });
  auto tx = s->begin_write();
  auto mismatch = [&](const char* name, kind k, type_desc key, type_desc value) {
    auto e = catch_error([&] { tx.open_root(name, k, key, value); });
    REQUIRE_MESSAGE(e, "no type_mismatch for " << name);
    CHECK(e->code() == errc::type_mismatch);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
    return std::string(e->what());
  };
  {
    const auto m = mismatch("m", kind::tree_map, k_u64, k_f64);
    CHECK_MESSAGE(contains(m, "hash_map"), m);
    CHECK_MESSAGE(contains(m, "tree_map"), m);
    CHECK_MESSAGE(contains(m, "'m'"), m);
  }
  {
    const auto m = mismatch("m", kind::hash_map, k_u32, k_f64);
    CHECK_MESSAGE(contains(m, "u64"), m);
    CHECK_MESSAGE(contains(m, "u32"), m);
  }
  {
    const auto m = mismatch("m", kind::hash_map, k_u64, type_desc::of<float>());
    CHECK_MESSAGE(contains(m, "f64"), m);
    CHECK_MESSAGE(contains(m, "f32"), m);
  }
  mismatch("m", kind::hash_map, k_u64, type_desc::of<std::int64_t>());  // same size, other signedness
  mismatch("m", kind::raw, k_u64, k_f64);
  // A struct of the same size and alignment but another name.
  mismatch("pt", kind::tree_map, k_u64, type_desc::of<other_point>());
  mismatch("pt", kind::tree_map, k_u64, type_desc::bytes());
  // The entry is unchanged and the transaction still usable.
  auto e = tx.open_root("m", kind::hash_map, k_u64, k_f64);
  CHECK(e.root == 4096 * 5);
  CHECK(e.aux == 1);
  CHECK(tx.open_root("pt", kind::tree_map, k_u64, type_desc::of<point>()).kind == kind::tree_map);
  tx.abort();
  s->close();
  // After reopen too.
  auto s2 = store::open(p, small_opts());
  auto tx2 = s2->begin_write();
  auto err = catch_error([&] { tx2.open_root("m", kind::bytes_tree_map, type_desc::bytes(), type_desc::bytes()); });
  REQUIRE(err);
  CHECK(err->code() == errc::type_mismatch);
}

TEST_CASE("a writable handle opens an existing structure without a write transaction") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto s = store::open(p, small_opts());
  // Absent names: open creates each one, one commit apiece.
  const std::uint64_t h = hash_map<std::uint64_t, double>::open(*s, "h").root();
  const std::uint64_t t = tree_map<std::uint64_t, double>::open(*s, "t").root();
  const std::uint64_t b = bytes_map::open(*s, "b").root();
  const std::uint64_t bt = bytes_tree::open(*s, "bt").root();
  CHECK(s->info().last_lsn == 4);
  // Another transaction holds the writer's mutex while the names are opened
  // again: each open returns (it waits for no write transaction), with the
  // same root, and a mismatched type is still refused.
  auto held = s->begin_write();
  auto again = std::async(std::launch::async, [&] {
    std::vector<std::uint64_t> roots = {hash_map<std::uint64_t, double>::open(*s, "h").root(),
                                        tree_map<std::uint64_t, double>::open(*s, "t").root(),
                                        bytes_map::open(*s, "b").root(), bytes_tree::open(*s, "bt").root()};
    auto e = catch_error([&] { hash_map<std::uint64_t, float>::open(*s, "h"); });
    roots.push_back(e && e->code() == errc::type_mismatch ? 1 : 0);
    e = catch_error([&] { tree_map<std::uint64_t, double>::open(*s, "h"); });
    roots.push_back(e && e->code() == errc::type_mismatch ? 1 : 0);
    return roots;
  });
  const bool returned = again.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  held.abort();  // lets a blocked open finish, so that a failure ends the case rather than hanging it
  CHECK(returned);
  CHECK(again.get() == std::vector<std::uint64_t>{h, t, b, bt, 1, 1});
  CHECK(s->info().last_lsn == 4);  // opening existing names committed nothing
}

TEST_CASE("names are 1..63 bytes") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  auto s = store::open(p, small_opts());
  auto r = store::open(p, read_only_opts());
  const std::string n63(63, 'x'), n64(64, 'y'), n200(200, 'z');
  auto tx = s->begin_write();
  auto invalid = [&](auto&& f) {
    auto e = catch_error(f);
    REQUIRE(e);
    CHECK(e->code() == errc::invalid_argument);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
  };
  invalid([&] { tx.open_root("", kind::raw, type_desc::none(), type_desc::none()); });
  invalid([&] { tx.open_root(n64, kind::raw, type_desc::none(), type_desc::none()); });
  invalid([&] { tx.open_root(n200, kind::raw, type_desc::none(), type_desc::none()); });
  invalid([&] { tx.find(""); });
  invalid([&] { tx.find(n64); });
  invalid([&] { tx.drop(""); });
  invalid([&] { tx.set_root(n64, 1); });
  invalid([&] { read_find(*r, ""); });
  invalid([&] { read_find(*r, n64); });
  // 1 and 63 bytes are fine; so are arbitrary bytes.
  tx.open_root("a", kind::raw, type_desc::none(), type_desc::none());
  tx.open_root(n63, kind::raw, type_desc::none(), type_desc::none());
  const std::string odd("\x01\xff/ \0x", 6);
  tx.open_root(odd, kind::raw, type_desc::none(), type_desc::none());
  CHECK(tx.commit() == 1);
  CHECK(read_find(*r, n63).has_value());
  CHECK(read_find(*r, "a").has_value());
  CHECK(read_find(*r, odd).has_value());
  CHECK_FALSE(read_find(*r, std::string(62, 'x')).has_value());
  CHECK(read_find(*r, n63)->name == n63);
  CHECK(read_find(*r, odd)->name == odd);
}

TEST_CASE("more names than one catalog page holds") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  constexpr int kNames = 70;  // three catalog pages of 31
  {
    auto s = store::open(p, small_opts());
    // Some in one transaction, the rest one per transaction.
    s->write([](write_txn& tx) {
      for (int i = 0; i < 40; ++i) {
        tx.open_root(name_n(i), kind::raw, type_desc::none(), k_u64);
        tx.set_root(name_n(i), 4096 * (i + 1), static_cast<u64>(i));
      }
      CHECK(tx.list().size() == 40);
    });
    for (int i = 40; i < kNames; ++i)
      s->write([&](write_txn& tx) {
        tx.open_root(name_n(i), kind::raw, type_desc::none(), k_u64);
        tx.set_root(name_n(i), 4096 * (i + 1), static_cast<u64>(i));
      });
    const auto i = s->info();
    CHECK(i.live_bytes == 3 * fmt::kPage);  // the three catalog pages
    s->close();
  }
  auto check_all = [&](auto&& find, const std::vector<catalog_entry>& listed) {
    CHECK(listed.size() == kNames);
    std::set<std::string> want;
    for (int i = 0; i < kNames; ++i) {
      want.insert(name_n(i));
      auto e = find(name_n(i));
      REQUIRE_MESSAGE(e.has_value(), name_n(i));
      CHECK(e->root == 4096u * static_cast<u64>(i + 1));
      CHECK(e->aux == static_cast<u64>(i));
    }
    CHECK(names_of(listed) == want);
    CHECK_FALSE(find("name-70").has_value());
  };
  {
    auto r = store::open(p, read_only_opts());
    check_all([&](const std::string& n) { return read_find(*r, n); }, read_list(*r));
  }
  auto s = store::open(p, small_opts());
  auto tx = s->begin_write();
  check_all([&](const std::string& n) { return tx.find(n); }, tx.list());
  // Drop names on every page, then list and find what is left.
  for (int i = 0; i < kNames; i += 3) CHECK(tx.drop(name_n(i)));
  tx.commit();
  auto after = read_list(*s);
  CHECK(after.size() == kNames - 24);
  CHECK_FALSE(read_find(*s, name_n(0)).has_value());
  CHECK(read_find(*s, name_n(1)).has_value());
  CHECK(read_find(*s, name_n(68)).has_value());
  CHECK_FALSE(read_find(*s, name_n(69)).has_value());
}

TEST_CASE("a corrupt catalog page gives errc::corrupt to the writer and to readers") {
  keel_test::temp_dir d;
  const std::string p = d.path("a.keel");
  {
    auto s = store::open(p, small_opts());
    s->write([](write_txn& tx) {
      for (int i = 0; i < 40; ++i) tx.open_root(name_n(i), kind::raw, type_desc::none(), type_desc::none());
    });
    s->close();
  }
  const u64 head = peek64(p, fmt::kMetaOffset + offsetof(fmt::meta_page, catalog_head));
  REQUIRE(head >= fmt::kArenaOffset);
  REQUIRE(head % fmt::kPage == 0);
  const u64 second = peek64(p, head + 8);
  REQUIRE(second >= fmt::kArenaOffset);

  SUBCASE("magic of the first page") { poke(p, head, "XXXXXXXX", 8); }
  SUBCASE("magic of the second page") { poke(p, second, "\0\0\0\0\0\0\0\0", 8); }
  SUBCASE("link to a page outside the file") {
    const u64 bogus = 1ull << 40;
    poke(p, head + 8, &bogus, 8);
  }
  SUBCASE("link that is not page aligned") {
    const u64 bogus = head + 100;
    poke(p, head + 8, &bogus, 8);
  }
  SUBCASE("link loop") { poke(p, second + 8, &head, 8); }

  auto expect_corrupt = [&](auto&& f) {
    auto e = catch_error(f);
    REQUIRE(e);
    CHECK(e->code() == errc::corrupt);
    CHECK_MESSAGE(contains(e->what(), p), std::string(e->what()));
  };
  // A name that is not in the catalog forces a walk of every page.
  {
    auto s = store::open(p, small_opts());
    auto r = store::open(p, read_only_opts());
    {
      auto tx = s->begin_write();
      expect_corrupt([&] { tx.find("absent"); });
      expect_corrupt([&] { tx.list(); });
      expect_corrupt([&] { tx.open_root("new", kind::raw, type_desc::none(), type_desc::none()); });
      tx.abort();
    }
    expect_corrupt([&] { read_find(*r, "absent"); });
    expect_corrupt([&] { read_list(*r); });
    expect_corrupt([&] { read_find(*s, "absent"); });
    // The store is still usable for what does not touch the catalog.
    const u64 b = s->write([](write_txn& tx) {
      const u64 x = tx.alloc(8);
      tx.put(ref<u64>{x}, u64{5});
      return x;
    });
    CHECK(r->read([&](const read_view& v) { return v.get(ref<u64>{b}); }) == 5);
  }
}
