// keel::backup: a snapshot (snapshot.h) turned into a clean, checkpointed
// store of its own and published atomically under `dest`.
#include "keel/backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <random>

#include "backup/snapshot.h"
#include "check/check_internal.h"
#include "file/superblock.h"
#include "keel/error.h"
#include "os/io.h"
#include "txn/side_file.h"

namespace keel {

namespace {

using fmt::kPage;

std::string num(std::uint64_t v) { return std::to_string(v); }

std::uint64_t random_id() {
  std::random_device rd;
  std::uint64_t v = 0;
  while (v == 0) v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return v;
}

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// The file that becomes `dest`: unnamed (O_TMPFILE) when the file system
// allows, so a crash leaves nothing; else a temporary name next to dest.
struct staging {
  os& sys;
  std::string dest, temp;  // temp empty: unnamed
  int fd = -1;
  bool published = false;
  staging(os& s, const std::string& d, mode_t mode) : sys(s), dest(d) {
    fd = sys.open(dir_of(dest), O_TMPFILE | O_RDWR, mode);
    if (fd >= 0) return;
    temp = dest + ".partial-" + num(static_cast<std::uint64_t>(::getpid())) + "-" + num(random_id() % 1000000);
    fd = sys.open(temp, O_RDWR | O_CREAT | O_EXCL, mode);
    if (fd < 0) io::fail(temp, "cannot create the backup", fd);
  }
  ~staging() {
    if (!published && !temp.empty()) sys.unlink(temp);
  }
  // Links the finished file in as `dest`, never replacing an existing file.
  void publish() {
    int r;
    if (temp.empty()) {
      const std::string self = "/proc/self/fd/" + num(static_cast<std::uint64_t>(fd));
      r = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, dest.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
    } else {
      r = sys.rename(temp, dest);
    }
    if (r == -EEXIST) throw error(errc::invalid_argument, dest, "already exists (created while the backup ran)");
    if (r < 0) io::fail(dest, "cannot put the backup in place", r);
    published = true;
  }
};

// Turns the recovered copy into a store of its own: checked meta page,
// zeroed control page, both superblocks describing a clean checkpoint.
fmt::superblock finalize(snapshot::copy& cp, const snapshot::result& res, const std::string& src) {
  fmt::meta_page m;
  std::memcpy(&m, cp.base + fmt::kMetaOffset, sizeof m);
  auto bad = [&](const std::string& why) { throw error(errc::corrupt, src, why + "; no backup written"); };
  if (std::memcmp(m.magic, fmt::kMetaMagic, 8) != 0) bad("meta page has no magic");
  if (m.cursor < fmt::kArenaOffset || m.cursor > cp.size) bad("meta page cursor " + num(m.cursor) + " is outside the file");
  if (m.catalog_head != 0 && (m.catalog_head < fmt::kArenaOffset || m.catalog_head >= m.cursor))
    bad("meta page catalog head is outside the arena");
  if (m.live_bytes + m.free_bytes != m.cursor - fmt::kArenaOffset) bad("allocator accounting does not add up");
  if (m.commits != res.lsn)
    bad("meta page records " + num(m.commits) + " commits but the log ends at LSN " + num(res.lsn));
  std::memset(cp.base + fmt::kControlOffset, 0, kPage);  // volatile: a fresh store has none
  fmt::superblock sb = res.sb;
  sb.file_id = random_id();
  sb.file_size = cp.size;
  sb.cursor = m.cursor;
  sb.catalog_head = m.catalog_head;
  sb.checkpoint_lsn = res.lsn;
  sb.checkpoint_ns = now_ns();
  sb.flags = fmt::kFlagCleanClose;
  std::memset(sb.reserved, 0, sizeof sb.reserved);
  sb.slot = 0;
  sb.sequence = 1;
  superblock::seal(sb);
  if (std::string why = superblock::problem(sb, 0); !why.empty()) bad("the copy's superblock would be invalid: " + why);
  return sb;
}

}  // namespace

backup_result backup(const std::string& src, const std::string& dest, const progress_fn& progress,
                     const backup_options& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  os& sys = opts.os ? *opts.os : posix_os();
  if (dest.empty()) throw error(errc::invalid_argument, dest, "empty backup path");
  if (opts.max_attempts < 1) throw error(errc::invalid_argument, dest, "max_attempts must be at least 1");
  struct stat st;
  if (::lstat(dest.c_str(), &st) == 0) throw error(errc::invalid_argument, dest, "already exists");
  const int f = sys.open(src, O_RDONLY, 0);
  if (f < 0) io::fail(src, "cannot open for reading", f);
  io::fd_guard src_fd(sys, f);
  // Reading the live store with read-ahead would turn its page cache into
  // large folios, and its writer's checkpoints would then write back whole
  // folios for single lines (os::advise_random).
  (void)sys.advise_random_reads(src_fd.get());
  if (::fstat(src_fd.get(), &st) != 0) io::fail(src, "fstat", -errno);
  const mode_t mode = st.st_mode & 0777;

  staging out(sys, dest, mode);
  snapshot::copy cp;
  cp.sys = &sys;
  cp.fd = out.fd;  // owned by cp from here
  const snapshot::result res = snapshot::take(sys, src, src_fd.get(), cp, progress, opts.max_attempts);
  fmt::superblock sb = finalize(cp, res, src);

  if (opts.verify) {
    check_report rep;
    checker::context c{rep};
    c.img = {cp.base, cp.size};
    c.path = src;
    checker::check_data(c, sb);
    if (!rep.clean()) {
      std::string what = "the store is damaged (" + num(rep.problems.size() + rep.problems_not_listed) + " problems";
      for (std::size_t i = 0; i < rep.problems.size() && i < 3; ++i)
        what += "; " + rep.problems[i].where + " at " + num(rep.problems[i].offset) + ": " + rep.problems[i].what;
      throw error(errc::corrupt, src, what + "); no backup written (keel::check lists every problem)");
    }
  }

  // Data before headers, headers before the name.
  if (int r = sys.msync(cp.base, cp.size); r < 0) io::fail(dest, "msync of the backup", r);
  io::check(sys.fsync(cp.fd), dest, "fsync of the backup");
  for (std::uint32_t slot = 0; slot < 2; ++slot) {
    sb.slot = slot;
    sb.sequence = slot + 1;
    superblock::write(sys, cp.fd, dest, sb);
  }
  io::check(sys.fsync(cp.fd), dest, "fsync of the backup");
  for (const auto& [side_path, magic] : {std::pair{dest + "-log", &fmt::kLogMagic}, std::pair{dest + "-journal", &fmt::kJournalMagic}}) {
    const int s = sys.open(side_path, O_RDWR | O_CREAT | O_TRUNC, mode);
    if (s < 0) io::fail(side_path, "cannot create", s);
    io::fd_guard g(sys, s);
    side::create(sys, s, side_path, *magic, sb.file_id);
  }
  out.publish();
  io::check(sys.sync_dir(dest), dest, "fsync of the directory");

  backup_result r;
  r.lsn = res.lsn;
  r.bytes = res.copied + (res.log_end > sizeof(fmt::file_header) ? res.log_end - sizeof(fmt::file_header) : 0);
  r.attempts = res.attempts;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace keel
