// keel compact FILE DEST: a logical copy of every structure into a new
// store, without the free space of the old one.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "common.h"
#include "file/format.h"
#include "keel/detail/tree_engine.h"
#include "keel/error.h"
#include "keel/hash_map.h"
#include "progress.h"
#include "structure.h"

namespace keel::cli {

namespace {

constexpr std::uint64_t kEntriesPerCommit = 100'000;

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

std::uint64_t size_of(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

void remove_store_files(const std::string& p) {
  for (const char* suffix : {"", "-log", "-journal"}) ::unlink((p + suffix).c_str());
}

void sync_dir_of(const std::string& p) {
  const auto slash = p.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::uint64_t count_in(store& db, write_txn& tx, const layout& l) {
  switch (l.kind) {
    case kind::bytes_hash_map:
      return bytes_map::open(db, tx, l.name).size(tx);
    case kind::bytes_tree_map:
      return bytes_tree::open(db, tx, l.name).size(tx);
    case kind::hash_map:
      return detail::map_size(tx, l.root, {l.key.size, l.value.size});
    default:
      return detail::tree_size(tx, l.root);
  }
}

}  // namespace

int run_compact(const maintenance_args& a) {
  require_store_file(a.file);
  for (const char* suffix : {"", "-log", "-journal"})
    if (exists(a.dest + suffix)) throw failure(a.dest + suffix + ": already exists; compact writes a new store");

  std::unique_ptr<store> src;
  try {
    src = open_writer(a.file, std::nullopt, a.wait_ms);
  } catch (const error& e) {
    if (e.code() != errc::busy) throw;
    throw failure(std::string(e.what()) +
                  "; compact needs the writer lock for a consistent copy (stop the writer, or use keel backup)");
  }
  const store_info si = src->info();
  const std::uint64_t before = size_of(a.file);

  // One transaction on the source, never committed: a consistent view of
  // every structure, and no other writer meanwhile.
  auto stx = src->begin_write();
  std::vector<layout> all;
  std::uint64_t total = 0;
  std::vector<std::uint64_t> counts;
  for (const auto& e : stx.list()) {
    all.push_back(layout_of(e));  // a raw root stops the compaction before anything is written
    counts.push_back(count_in(*src, stx, all.back()));
    total += counts.back();
  }

  const std::string tmp = a.dest + ".compacting-" + std::to_string(::getpid());
  remove_store_files(tmp);
  try {
    options o;
    o.error_if_exists = true;
    o.max_size = si.max_size;
    o.mode = durability::checkpoint;  // nothing is visible until the rename; close() checkpoints
    o.initial_size = std::min(si.max_size, fmt::align_up(fmt::kArenaOffset + si.live_bytes + 64 * 1024, fmt::kPage));
    auto dst = store::open(tmp, o);
    progress p("compact", "entries", total);
    std::uint64_t copied = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      const layout& l = all[i];
      std::optional<write_txn> tx(dst->begin_write());
      std::optional<writer> w(std::in_place, *dst, *tx, l);
      w->reserve(counts[i]);
      std::uint64_t in_txn = 0;
      scan(*src, stx, l, [&](std::string_view k, std::string_view v) {
        if (l.tree())
          w->append(k, v);
        else
          w->put(k, v);
        p.update(++copied);
        if (++in_txn == kEntriesPerCommit) {
          w.reset();
          tx->commit();
          tx.reset();
          tx.emplace(dst->begin_write());
          w.emplace(*dst, *tx, l);
          in_txn = 0;
        }
        return true;
      });
      w.reset();
      tx->commit();
    }
    const store_info di = dst->info();
    dst->close();
    p.finish();
    stx.abort();
    src->close();

    for (const char* suffix : {"-log", "-journal", ""})
      if (::rename((tmp + suffix).c_str(), (a.dest + suffix).c_str()) != 0)
        throw failure(::fmt::format("cannot rename {} to {}: {}", tmp + suffix, a.dest + suffix, std::strerror(errno)));
    sync_dir_of(a.dest);
    const std::uint64_t after = size_of(a.dest);
    std::fputs(
        ::fmt::format("compacted {} -> {}: {} structures, {} entries\n"
                      "  file size   {} -> {}\n"
                      "  arena used  {} -> {} ({} free -> {})\n",
                      a.file, a.dest, all.size(), copied, human_bytes(before), human_bytes(after),
                      human_bytes(si.arena_used - fmt::kArenaOffset), human_bytes(di.arena_used - fmt::kArenaOffset),
                      human_bytes(si.free_bytes), human_bytes(di.free_bytes))
            .c_str(),
        stdout);
  } catch (...) {
    remove_store_files(tmp);
    throw;
  }
  return kOk;
}

}  // namespace keel::cli
