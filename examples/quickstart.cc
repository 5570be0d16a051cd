// The README's example, compiled and run by the test suite (quickstart test).
#include <cstdio>
#include <keel/keel.h>
#include <string>

struct quote {
  double bid, ask;
};

int main(int argc, char** argv) {
  using namespace keel::literals;
  const std::string path = argc > 1 ? argv[1] : "quotes.keel";

  auto db = keel::store::open(path, {.max_size = 64_GiB, .mode = keel::durability::batch});
  db->write([](keel::write_txn& tx) {  // atomic: all of it or none, in every process
    tx.open_root("last", keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<quote>());
    auto q = tx.create(quote{101.5, 101.7});  // allocates in the file, returns a typed offset
    tx.set_root("last", q.off);
  });
  // Any process, no lock: retried automatically if a commit overlaps.
  quote q = db->read([](const keel::read_view& v) { return v.get(keel::ref<quote>{v.find("last")->root}); });
  db->checkpoint();  // also runs on log size/time triggers and at close

  std::printf("bid %.2f ask %.2f\n", q.bid, q.ask);
  return q.bid == 101.5 && q.ask == 101.7 ? 0 : 1;
}
