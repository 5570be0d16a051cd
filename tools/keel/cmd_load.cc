// keel load FILE NAME: entries from JSON lines or CSV into a structure,
// created when absent. All or nothing by default (one transaction); with
// --batch N, a commit every N entries and --start-line to resume.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "commands.h"
#include "common.h"
#include "keel/error.h"
#include "progress.h"
#include "structure.h"
#include "text_codec.h"

namespace keel::cli {

text_format format_of(const std::string& f);  // cmd_dump.cc

namespace {

layout target_layout(store& db, const load_args& a) {
  const auto existing = db.read([&](const read_view& v) { return v.find(a.name); });
  const bool asked = !a.kind.empty() || !a.key_type.empty() || !a.value_type.empty();
  if (!existing) {
    if (a.kind.empty() || a.key_type.empty() || a.value_type.empty())
      throw failure(::fmt::format("{}: no structure named '{}'; give --kind, --key-type and --value-type to create it",
                                  a.file, a.name),
                    kUsage);
    if (a.name.empty() || a.name.size() > 63)
      throw failure(::fmt::format("structure names are 1..63 bytes, '{}' has {}", a.name, a.name.size()), kUsage);
    return requested_layout(a.name, a.kind, parse_type_spec(a.key_type, "--key-type"),
                            parse_type_spec(a.value_type, "--value-type"));
  }
  const layout have = layout_of(*existing);
  if (asked) {
    auto differs = [&](const std::string& what, const std::string& given) {
      return failure(::fmt::format("{}: '{}' is a {}<{}, {}>, not {} {}", a.file, a.name, kind_name(have.kind),
                                   type_spec(have.key), type_spec(have.value), what, given));
    };
    if (!a.kind.empty() && a.kind != "hash" && a.kind != "tree")
      throw failure(::fmt::format("--kind: '{}' is not hash or tree", a.kind), kUsage);
    if (!a.kind.empty() && (a.kind == "tree") != have.tree()) throw differs("--kind", a.kind);
    if (!a.key_type.empty() && !(parse_type_spec(a.key_type, "--key-type") == have.key))
      throw differs("--key-type", a.key_type);
    if (!a.value_type.empty() && !(parse_type_spec(a.value_type, "--value-type") == have.value))
      throw differs("--value-type", a.value_type);
  }
  return have;
}

}  // namespace

int run_load(const load_args& a) {
  const text_format f = format_of(a.format);
  if (a.start_line == 0) throw failure("--start-line counts from 1", kUsage);
  std::optional<durability> mode;
  if (!a.durability.empty()) mode = parse_mode(a.durability);

  int fd = STDIN_FILENO;
  std::uint64_t input_size = 0;
  if (!a.input.empty() && a.input != "-") {
    fd = ::open(a.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw failure(a.input + ": cannot open: " + std::strerror(errno));
  }
  struct fd_closer {
    int fd;
    ~fd_closer() {
      if (fd != STDIN_FILENO) ::close(fd);
    }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) input_size = static_cast<std::uint64_t>(st.st_size);
  const std::string input_name = a.input.empty() || a.input == "-" ? "standard input" : a.input;

  auto db = open_writer(a.file, mode, a.wait_ms);
  const layout l = target_layout(*db, a);

  line_source in(fd);
  progress p("load", "bytes", input_size, progress::unit::bytes);
  std::uint64_t lines = 0;  // physical lines consumed
  std::uint64_t loaded = 0, added = 0;
  std::uint64_t committed_loaded = 0;
  std::uint64_t batch_first_line = a.start_line;  // first line of the open batch
  std::uint64_t in_batch = 0;
  std::optional<write_txn> tx(db->begin_write());
  std::optional<writer> w(std::in_place, *db, *tx, l);
  token key, value;
  std::string line;

  auto fail_at = [&](std::uint64_t at, const std::string& why) -> failure {
    std::string msg = ::fmt::format("{}, line {}: {}", input_name, at, why);
    if (a.batch > 0 && committed_loaded > 0)
      msg += ::fmt::format(
          "; the {} entries before line {} were committed in earlier batches (resume with "
          "--start-line {})",
          committed_loaded, batch_first_line, batch_first_line);
    else
      msg += "; nothing was loaded";
    return failure(msg);
  };

  for (;;) {
    std::uint64_t at;
    try {
      if (f == text_format::jsonl) {
        if (!in.next(line)) break;
        at = ++lines;
        if (at < a.start_line || line.find_first_not_of(" \t\r") == std::string::npos) continue;
        parse_json_line(line, key, value);
      } else {
        at = lines + 1;
        if (!read_csv_record(in, key, value, lines)) break;
        if (at < a.start_line) continue;
        if (at == 1 && key.text == "key" && value.text == "value") continue;  // the header dump writes
      }
    } catch (const std::invalid_argument& e) {
      throw fail_at(lines, e.what());
    }
    std::string k, v;
    try {
      k = field_from_token(l.key, key);
    } catch (const std::invalid_argument& e) {
      throw fail_at(at, ::fmt::format("key: {}", e.what()));
    }
    try {
      v = field_from_token(l.value, value);
    } catch (const std::invalid_argument& e) {
      throw fail_at(at, ::fmt::format("value: {}", e.what()));
    }
    try {
      if (w->put(k, v)) ++added;
    } catch (const error& e) {
      if (e.code() != errc::invalid_argument) throw;
      // The library's reason without its "<file>: " prefix.
      std::string why = e.what();
      if (why.rfind(e.file() + ": ", 0) == 0) why.erase(0, e.file().size() + 2);
      throw fail_at(at, why);
    }
    ++loaded;
    p.update(in.bytes_read());
    if (a.batch > 0 && ++in_batch == a.batch) {
      w.reset();
      tx->commit();
      committed_loaded = loaded;
      in_batch = 0;
      batch_first_line = lines + 1;
      tx.reset();
      tx.emplace(db->begin_write());
      w.emplace(*db, *tx, l);
    }
  }
  w.reset();
  tx->commit();
  tx.reset();
  db->close();
  p.update(in.bytes_read());
  p.finish();
  std::fputs(
      ::fmt::format("loaded {} entries into '{}' ({} added, {} replaced)\n", loaded, a.name, added, loaded - added)
          .c_str(),
      stdout);
  return kOk;
}

}  // namespace keel::cli
