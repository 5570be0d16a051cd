// The README's first command runs this: create a store under ./data, commit,
// close, reopen, read back, and print what happened and how long it took.
#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <keel/keel.h>

namespace {

struct account {
  std::uint64_t id;
  std::int64_t balance;
};

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "data/demo.keel";
  const int accounts = 1000, transfers = argc > 2 ? std::atoi(argv[2]) : 20000;
  try {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path().empty()
                                            ? "."
                                            : std::filesystem::path(path).parent_path());
    for (const char* suffix : {"", "-log", "-journal"}) std::filesystem::remove(path + suffix);

    auto t0 = clock_type::now();
    auto db = keel::store::open(path, {.max_size = 1ull << 30, .mode = keel::durability::batch});
    fmt::print("created {} in {:.2f} ms\n", path, ms_since(t0));

    // One transaction creates the accounts; each later one moves money
    // between two of them, so the total never changes.
    db->write([&](keel::write_txn& tx) {
      tx.open_root("accounts", keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<account>());
      const std::uint64_t arr = tx.alloc(sizeof(account) * accounts);
      for (int i = 0; i < accounts; ++i) {
        const account a{static_cast<std::uint64_t>(i), 1000};
        tx.write(arr + i * sizeof(account), &a, sizeof a);
      }
      tx.set_root("accounts", arr, accounts);
    });
    t0 = clock_type::now();
    std::uint64_t x = 12345;
    for (int n = 0; n < transfers; ++n) {
      db->write([&](keel::write_txn& tx) {
        const auto arr = tx.find("accounts")->root;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const auto from = (x >> 33) % accounts, to = (x >> 13) % accounts;
        account a, b;
        tx.read(arr + from * sizeof(account), &a, sizeof a);
        a.balance -= 7;
        tx.write(arr + from * sizeof(account), &a, sizeof a);
        tx.read(arr + to * sizeof(account), &b, sizeof b);
        b.balance += 7;
        tx.write(arr + to * sizeof(account), &b, sizeof b);
      });
    }
    const double commit_ms = ms_since(t0);
    fmt::print("committed {} transfers in {:.1f} ms ({:.0f} commits/s, batch mode)\n", transfers, commit_ms,
               transfers / (commit_ms / 1000));
    db->close();

    t0 = clock_type::now();
    auto ro = keel::store::open(path, {.read_only = true});
    const double open_ms = ms_since(t0);
    const auto total = ro->read([](const keel::read_view& v) {
      const auto e = v.find("accounts");
      std::int64_t sum = 0;
      for (std::uint64_t i = 0; i < e->aux; ++i)
        sum += v.get(keel::ref<account>{e->root + i * sizeof(account)}).balance;
      return sum;
    });
    const auto info = ro->info();
    fmt::print("reopened read-only in {:.3f} ms: {} accounts, total balance {} (expected {})\n", open_ms, accounts,
               total, accounts * 1000);
    fmt::print("last LSN {}, checkpoint LSN {}, clean close: {}, file {} KiB\n", info.last_lsn, info.checkpoint_lsn,
               info.clean_close ? "yes" : "no", info.file_size / 1024);
    return total == accounts * 1000 ? 0 : 1;
  } catch (const keel::error& e) {
    fmt::print(stderr, "keel-demo: {} ({})\n", e.what(), keel::to_string(e.code()));
    return 1;
  }
}
