#include "samples.h"

#include <cstdlib>
#include <keel/bytes_tree.h>
#include <keel/tree_map.h>

namespace keel_fuzz {

void build_sample(const std::string& path) {
  remove_store(path);
  keel::options o = fuzz_opts(true);
  o.create_if_missing = true;
  auto db = keel::store::open(path, o);
  auto h = keel::hash_map<u64, u64>::open(*db, "h");
  auto b = keel::bytes_map::open(*db, "b");
  auto t = keel::tree_map<u64, u64>::open(*db, "t");
  auto bt = keel::bytes_tree::open(*db, "bt");
  db->write([&](keel::write_txn& tx) {
    tx.open_root("raw", keel::kind::raw, keel::type_desc::none(), keel::type_desc::of<u64>());
    const u64 blk = tx.alloc(64);
    tx.write(blk, "raw block", 9);
    tx.set_root("raw", blk, 1);
  });
  for (u64 i = 0; i < 15; ++i)
    db->write([&](keel::write_txn& tx) {
      h.put(tx, i * 7919, i);
      b.put(tx, "key" + std::to_string(i), std::string(i * 9 % 120, static_cast<char>('a' + i % 26)));
      if (i % 5 == 4) b.erase(tx, "key" + std::to_string(i - 2));
      for (u64 j = 0; j < 20; ++j) t.put(tx, (j * 37 + i * 11) % 300, i * 100 + j);
      bt.put(tx, "k" + std::to_string(i * 13 % 15), std::string(i == 7 ? 2000 : i * 3, 'v'));
    });
  db->write([&](keel::write_txn& tx) {
    b.put(tx, "big", std::string(5000, 'B'));
    for (u64 i = 0; i < 6; ++i) h.put(tx, 1000 + i, i);  // starts a resize (16 slots, 7/8 full)
  });
  db->close();
}

std::string log_replay_base_path() {
  if (const char* e = std::getenv("KEEL_FUZZ_BASE"); e && *e) return e;
#ifdef KEEL_FUZZ_DIR
  return std::string(KEEL_FUZZ_DIR) + "/log_replay_base.img";
#else
  return "log_replay_base.img";
#endif
}

image log_replay_base() {
  const std::string packed = read_file(log_replay_base_path());
  if (!packed.empty()) return unpack(reinterpret_cast<const u8*>(packed.data()), packed.size());
  std::fprintf(stderr, "fuzz_log_replay: %s missing, building a fresh base image\n", log_replay_base_path().c_str());
  const std::string p = scratch_dir() + "/base.keel";
  build_sample(p);
  image im = snapshot(p);
  remove_store(p);
  return im;
}

}  // namespace keel_fuzz
