#include "fuzz_common.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <keel/detail/tree_engine.h>
#include <sstream>
#include <vector>

namespace keel_fuzz {

namespace {

constexpr u64 kPage = 4096;

void put_u32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u16(std::string& s, std::uint16_t v) {
  s.push_back(static_cast<char>(v));
  s.push_back(static_cast<char>(v >> 8));
}

std::string dir_for_scratch() {
  if (const char* e = std::getenv("KEEL_FUZZ_TMP"); e && *e) return e;
  if (::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  if (const char* t = std::getenv("TMPDIR"); t && *t) return t;
  return "/tmp";
}

std::string* g_scratch = nullptr;
void remove_scratch() {
  if (!g_scratch) return;
  std::error_code ec;
  std::filesystem::remove_all(*g_scratch, ec);
}

}  // namespace

void fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "\n[%s] FAILURE: %s\n", target, what.c_str());
  std::fflush(stderr);
  std::abort();
}

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("KEEL_FUZZ_VERBOSE");
    return e && *e && *e != '0';
  }();
  return v;
}

void say(const std::string& line) {
  if (verbose()) std::fprintf(stderr, "  %s\n", line.c_str());
}

const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string tmpl = dir_for_scratch() + "/keel-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::fprintf(stderr, "keel fuzz: cannot create a scratch directory %s\n", tmpl.c_str());
      std::abort();
    }
    g_scratch = new std::string(tmpl);
    std::atexit(remove_scratch);
    return tmpl;
  }();
  return dir;
}

void remove_store(const std::string& path) {
  for (const char* suffix : {"", "-log", "-journal"}) ::unlink((path + suffix).c_str());
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fail("fuzz", "cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::int64_t file_size(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? -1 : static_cast<std::int64_t>(n);
}

std::string pack(const image& im) {
  std::string out;
  out.push_back(static_cast<char>(im.flags));
  put_u32(out, static_cast<std::uint32_t>(im.data.size()));
  // Non-zero runs, merged across gaps of fewer than 16 zero bytes.
  const std::string& d = im.data;
  std::size_t i = 0;
  while (i < d.size()) {
    if (d[i] == 0) {
      ++i;
      continue;
    }
    std::size_t end = i, zeros = 0;
    for (std::size_t j = i; j < d.size() && j - i < 0xFFFF; ++j) {
      if (d[j] != 0) {
        end = j + 1;
        zeros = 0;
      } else if (++zeros >= 16) {
        break;
      }
    }
    put_u32(out, static_cast<std::uint32_t>(i));
    put_u16(out, static_cast<std::uint16_t>(end - i));
    out.append(d, i, end - i);
    i = end;
  }
  put_u32(out, 0);
  put_u16(out, 0);
  put_u32(out, static_cast<std::uint32_t>(im.log.size()));
  out += im.log;
  out += im.journal;
  return out;
}

image unpack(const u8* p, std::size_t n) {
  reader r(p, n);
  image im;
  im.flags = r.byte();
  const std::uint32_t size = std::min<std::uint32_t>(r.u32(), kMaxData);
  im.data.assign(size, '\0');
  while (!r.empty()) {
    const std::uint32_t off = r.u32();
    const std::uint16_t len = r.u16();
    if (len == 0) break;
    const std::string_view bytes = r.take(len);
    if (off < im.data.size()) im.data.replace(off, std::min<std::size_t>(bytes.size(), im.data.size() - off), bytes.substr(0, im.data.size() - off));
  }
  const std::uint32_t log_size = r.u32();
  im.log = std::string(r.take(log_size));
  im.journal = std::string(r.rest());
  return im;
}

image snapshot(const std::string& path) {
  image im;
  im.data = read_file(path);
  im.log = read_file(path + "-log");
  im.journal = read_file(path + "-journal");
  if (file_size(path + "-log") < 0) im.flags |= 2;
  if (file_size(path + "-journal") < 0) im.flags |= 4;
  return im;
}

void stamp_boot_id(std::string& data) {
  constexpr std::size_t at = 2 * kPage + 8;  // control page, boot id (docs/FORMAT.md)
  if (data.size() < at + 16) return;
  const auto id = keel::posix_os().boot_id();
  std::memcpy(data.data() + at, id.data(), 16);
}

void install(const image& im, const std::string& path) {
  remove_store(path);
  std::string data = im.data;
  if (im.flags & 1) {
    stamp_boot_id(data);
  } else if (data.size() >= 2 * kPage + 24) {
    // Not this boot's: a control page that happens to carry the running
    // boot's id (a seed made here) is made foreign, so an image recovers
    // the same way on every machine.
    std::string mine = data;
    stamp_boot_id(mine);
    if (mine == data) data[2 * kPage + 8] ^= 1;
  }
  write_file(path, data);
  if (!(im.flags & 2)) write_file(path + "-log", im.log);
  if (!(im.flags & 4)) write_file(path + "-journal", im.journal);
}

keel::options fuzz_opts(bool writable, keel::durability mode) {
  keel::options o;
  o.create_if_missing = false;
  o.read_only = !writable;
  o.initial_size = 64 * 1024;
  o.max_size = 64ull << 20;
  o.mode = mode;
  o.batch_window = std::chrono::milliseconds(1);
  o.checkpoint_interval = std::chrono::hours(1);
  o.read_timeout = std::chrono::milliseconds(20);
  return o;
}

keel::check_report check_store(const std::string& path) {
  keel::check_options o;
  o.temp_dir = scratch_dir();
  return keel::check(path, {}, o);
}

std::string describe(const keel::check_report& r) {
  std::string s = "clean " + std::to_string(r.clean()) + ", lsn " + std::to_string(r.lsn) + ", entries " +
                  std::to_string(r.entries) + ", structures " + std::to_string(r.structures) + ", recovery_pending " +
                  std::to_string(r.recovery_pending);
  for (std::size_t i = 0; i < r.problems.size() && i < 5; ++i)
    s += "\n  problem " + r.problems[i].where + " @" + std::to_string(r.problems[i].offset) + ": " + r.problems[i].what;
  for (std::size_t i = 0; i < r.notes.size() && i < 5; ++i)
    s += "\n  note " + r.notes[i].where + " @" + std::to_string(r.notes[i].offset) + ": " + r.notes[i].what;
  return s;
}

// ---------------------------------------------------------------- reading

namespace {

constexpr u64 kWalkLimit = 4000;

struct collected {
  std::vector<std::string> keys;
  u64 visits = 0;
};

bool collect_fixed(void* ctx, const void* k, const void*) {
  auto* c = static_cast<collected*>(ctx);
  (void)k;
  return ++c->visits < kWalkLimit;
}

bool collect_tree(void* ctx, std::string_view k, std::string_view) {
  auto* c = static_cast<collected*>(ctx);
  if (c->keys.size() < 256) c->keys.emplace_back(k);
  return ++c->visits < kWalkLimit;
}

bool fits(const keel::catalog_entry& e) {
  return e.key.size >= 1 && e.key.size <= 4000 && e.value.size <= 4000 && e.key.size + e.value.size <= 4000;
}

void read_hash(keel::store& db, const keel::catalog_entry& e, read_stats& st) {
  if (!fits(e)) return;
  const keel::detail::map_shape shape{e.key.size, e.value.size};
  const u64 root = db.read([&](const keel::read_view& v) { return keel::detail::map_find(v, e.name, shape, e.key, e.value); });
  st.entries += db.read([&](const keel::read_view& v) { return keel::detail::map_size(v, root, shape); });
  collected c;
  keel::detail::map_for_each(db, root, shape, &collect_fixed, &c);
  if (e.key == keel::type_desc::of<u64>() && e.value == keel::type_desc::of<u64>()) {
    auto m = keel::hash_map<u64, u64>::open(db, e.name);
    std::vector<u64> keys;
    m.for_each([&](u64 k, u64) {
      keys.push_back(k);
      return keys.size() < kWalkLimit;
    });
    keys.push_back(0xFFFF'FFFF'FFFF'FFF1ull);
    for (u64 k : keys) (void)m.get(k);
    std::vector<std::optional<u64>> out(keys.size());
    (void)m.get_many(keys, out);
  }
}

void read_bytes_map(keel::store& db, const keel::catalog_entry& e, read_stats& st) {
  auto m = keel::bytes_map::open(db, e.name);
  st.entries += m.size();
  std::vector<std::string> keys;
  m.for_each([&](std::string_view k, std::string_view) {
    if (keys.size() < 256) keys.emplace_back(k);
    return keys.size() < kWalkLimit;
  });
  keys.emplace_back("no such key");
  for (const auto& k : keys) (void)m.get(k);
}

void read_tree(keel::store& db, const keel::catalog_entry& e, read_stats& st) {
  u64 root = 0;
  if (e.kind == keel::kind::tree_map) {
    if (e.key.size < 1 || e.key.size > keel::detail::kTreeMaxKey ||
        e.key.size + e.value.size > keel::detail::kTreeMaxFixedEntry)
      return;
    const keel::detail::tree_shape shape{e.key.size, e.value.size};
    root = db.read([&](const keel::read_view& v) {
      return keel::detail::tree_find(v, e.name, e.kind, shape, e.key, e.value);
    });
  } else {
    root = keel::bytes_tree::open(db, e.name).root();
  }
  st.entries += db.read([&](const keel::read_view& v) { return keel::detail::tree_size(v, root); });
  collected c;
  keel::detail::tree_scan(db, root, {}, &collect_tree, &c);
  std::vector<char> value(std::max<std::size_t>(e.value.size, 1));
  std::string var;
  for (const auto& k : c.keys)
    db.read([&](const keel::read_view& v) {
      return keel::detail::tree_get(v, root, k, {e.kind == keel::kind::tree_map ? value.data() : nullptr,
                                                 e.kind == keel::kind::tree_map ? nullptr : &var});
    });
  if (c.keys.size() >= 2) {
    keel::detail::tree_range r;
    r.lo = {c.keys[c.keys.size() / 4], true};
    r.hi = {c.keys[c.keys.size() - 1], true};
    r.reverse = true;
    collected d;
    keel::detail::tree_scan(db, root, r, &collect_tree, &d);
    r.reverse = false;
    r.lo_exclusive = true;
    keel::detail::tree_scan(db, root, r, &collect_tree, &d);
  }
  std::vector<std::pair<u64, std::string>> problems;
  db.read([&](const keel::read_view& v) {
    problems.clear();
    keel::detail::tree_check(v, root, problems);
    (void)keel::detail::tree_stat(v, root);
  });
  st.tree_problems += problems.size();
  if (e.kind == keel::kind::bytes_tree_map) {
    auto t = keel::bytes_tree::open(db, e.name);
    (void)t.first();
    (void)t.last();
    (void)t.lower_bound("k");
    (void)t.upper_bound("k");
    u64 n = 0;
    t.for_each_prefix("k", [&](std::string_view, std::string_view) { return ++n < kWalkLimit; });
  }
}

}  // namespace

read_stats read_everything(const keel::store& cdb) {
  auto& db = const_cast<keel::store&>(cdb);
  read_stats st;
  const auto entries = db.read([](const keel::read_view& v) { return v.list(); });
  for (const auto& e : entries) {
    ++st.structures;
    try {
      switch (e.kind) {
        case keel::kind::hash_map:
          read_hash(db, e, st);
          break;
        case keel::kind::bytes_hash_map:
          read_bytes_map(db, e, st);
          break;
        case keel::kind::tree_map:
        case keel::kind::bytes_tree_map:
          read_tree(db, e, st);
          break;
        default:
          if (e.root) db.read([&](const keel::read_view& v) { (void)v.bytes(e.root, 8); });
          break;
      }
    } catch (const keel::error& x) {
      if (st.errors++ == 0) st.first_error = e.name + ": " + x.what();
    }
  }
  return st;
}

// ---------------------------------------------------------------- writing

void write_something(keel::store& db) {
  std::vector<keel::catalog_entry> entries;
  try {
    entries = db.read([](const keel::read_view& v) { return v.list(); });
  } catch (const keel::error&) {
  }
  for (const auto& e : entries) {
    try {
      db.write([&](keel::write_txn& tx) {
        switch (e.kind) {
          case keel::kind::hash_map: {
            if (!fits(e)) return;
            const keel::detail::map_shape shape{e.key.size, e.value.size};
            const u64 root = keel::detail::map_open(tx, e.name, shape, e.key, e.value);
            std::vector<char> k(e.key.size, 'k'), v(std::max<std::size_t>(e.value.size, 1), 'v');
            keel::detail::map_put(tx, root, shape, k.data(), v.data(), 1);
            k[0] = 'x';
            keel::detail::map_put(tx, root, shape, k.data(), v.data(), 0);
            (void)keel::detail::map_get(tx, root, shape, k.data(), v.data());
            keel::detail::map_erase(tx, root, shape, k.data());
            (void)keel::detail::map_size(tx, root, shape);
            break;
          }
          case keel::kind::bytes_hash_map: {
            auto m = keel::bytes_map::open(db, tx, e.name);
            m.put(tx, "fuzz", "written by write_something");
            m.put(tx, "fuzz-big", std::string(5000, 'b'));
            (void)m.get(tx, "fuzz");
            m.erase(tx, "fuzz-big");
            break;
          }
          case keel::kind::tree_map: {
            if (e.key.size < 1 || e.key.size > keel::detail::kTreeMaxKey ||
                e.key.size + e.value.size > keel::detail::kTreeMaxFixedEntry)
              return;
            const keel::detail::tree_shape shape{e.key.size, e.value.size};
            const u64 root = keel::detail::tree_open(tx, e.name, e.kind, shape, e.key, e.value);
            std::string k(e.key.size, '\x7f'), v(e.value.size, 'v');
            keel::detail::tree_put(tx, root, k, v, keel::detail::put_mode::assign);
            std::string hi(e.key.size, '\xff');
            keel::detail::tree_put(tx, root, hi, v, keel::detail::put_mode::assign);
            keel::detail::tree_erase(tx, root, k);
            std::string lo(e.key.size, '\0');
            keel::detail::tree_erase_range(tx, root, {lo, true}, {k, true});
            break;
          }
          case keel::kind::bytes_tree_map: {
            auto t = keel::bytes_tree::open(db, tx, e.name);
            t.put(tx, "fuzz", std::string(2000, 'f'));
            t.put(tx, "k", "v");
            t.erase(tx, "fuzz");
            t.erase_range(tx, "a", "c");
            break;
          }
          default:
            break;
        }
      });
    } catch (const keel::error&) {
    }
  }
  try {
    auto m = keel::hash_map<u64, u64>::open(db, "fuzz-new");
    db.write([&](keel::write_txn& tx) {
      for (u64 i = 0; i < 20; ++i) m.put(tx, i, i);
    });
  } catch (const keel::error&) {
  }
}

}  // namespace keel_fuzz
