// keel: the command-line tool of Keel stores (docs/CLI.md).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "commands.h"
#include "common.h"
#include "keel/error.h"
#include "keel/version.h"

namespace {

using namespace keel::cli;

int fail_line(const std::string& what, int code) {
  std::fflush(stdout);
  std::string line = what;
  for (char& c : line)
    if (c == '\n') c = ' ';
  std::fprintf(stderr, "keel: %s\n", line.c_str());
  return code;
}

int run(int argc, char** argv) {
  CLI::App app{
      "keel: create, inspect, check, dump, load, back up and compact Keel stores.\n"
      "Exit codes: 0 ok, 1 check found problems, 2 bad command line, 3 the command failed.\n"
      "Manual: docs/CLI.md",
      "keel"};
  app.set_version_flag("--version", std::string("keel ") + KEEL_VERSION);
  app.require_subcommand(1, 1);
  app.add_flag("-q,--quiet", settings().quiet, "no progress output on stderr");

  create_args create;
  auto* c = app.add_subcommand("create", "create a new, empty store");
  c->add_option("FILE", create.file, "store to create (FILE, FILE-log, FILE-journal)")->required();
  c->add_option("--size", create.size, "bytes reserved at creation (e.g. 16MiB)")->capture_default_str();
  c->add_option("--max-size", create.max_size, "growth limit, mapped by every process (e.g. 64GiB)")
      ->capture_default_str();
  c->add_option("--durability", create.durability, "sync | batch | checkpoint")->capture_default_str();
  c->add_option("--file-mode", create.file_mode, "permissions of the new files (octal)")->capture_default_str();

  info_args info;
  auto* i = app.add_subcommand("info", "superblocks, sizes, state and structures of a store");
  i->add_option("FILE", info.file, "store")->required();
  i->add_flag("--json", info.json, "one JSON object on stdout");

  check_args check;
  auto* k = app.add_subcommand("check", "verify a store (works while other processes use it); exit 1 on problems");
  k->add_option("FILE", check.file, "store")->required();
  k->add_flag("--json", check.json, "one JSON object on stdout");

  dump_args dump;
  auto* d = app.add_subcommand("dump", "write every entry of a structure as JSON lines or CSV");
  d->add_option("FILE", dump.file, "store")->required();
  d->add_option("NAME", dump.name, "structure")->required();
  d->add_option("--format", dump.format, "jsonl | csv")->capture_default_str();
  d->add_option("-o,--output", dump.output, "output file (default: standard output)");

  load_args load;
  auto* l = app.add_subcommand("load", "read entries (JSON lines or CSV) into a structure, creating it when absent");
  l->add_option("FILE", load.file, "store")->required();
  l->add_option("NAME", load.name, "structure")->required();
  l->add_option("--kind", load.kind, "hash | tree (to create the structure)");
  l->add_option("--key-type", load.key_type, "u8..u64 i8..i64 bytes fixed:SIZE[:ALIGN[:FP]]");
  l->add_option("--value-type", load.value_type, "u8..u64 i8..i64 f32 f64 bytes fixed:SIZE[:ALIGN[:FP]]");
  l->add_option("--format", load.format, "jsonl | csv")->capture_default_str();
  l->add_option("-i,--input", load.input, "input file (default: standard input)");
  l->add_option("--batch", load.batch, "commit every N entries (default 0: the whole input is one transaction)");
  l->add_option("--start-line", load.start_line, "skip the input lines before this one (resume a batched load)");
  l->add_option("--durability", load.durability, "mode of this load's commits (default: the store's)");
  l->add_option("--wait", load.wait_ms, "milliseconds to wait for the writer lock");

  maintenance_args ckpt, backup, compact;
  auto* cp = app.add_subcommand("checkpoint", "write a checkpoint now (takes the writer lock)");
  cp->add_option("FILE", ckpt.file, "store")->required();
  cp->add_option("--wait", ckpt.wait_ms, "milliseconds to wait for the writer lock");
  auto* b = app.add_subcommand("backup", "consistent copy of a store, while its writer keeps committing");
  b->add_option("FILE", backup.file, "store")->required();
  b->add_option("DEST", backup.dest, "new store to write")->required();
  auto* cm = app.add_subcommand("compact", "copy of a store without its free space (takes the writer lock)");
  cm->add_option("FILE", compact.file, "store")->required();
  cm->add_option("DEST", compact.dest, "new store to write")->required();
  cm->add_option("--wait", compact.wait_ms, "milliseconds to wait for the writer lock");

  bench_args bench;
  auto* bn = app.add_subcommand("bench", "run the quick benchmark set (keel-bench --quick)");
  bn->add_option("ARGS", bench.args, "passed on to the benchmark (e.g. a scratch directory)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string where;
    for (const auto* s : app.get_subcommands()) where = s->get_name() + ": ";
    return fail_line(where + e.what() + " (keel --help for usage)", kUsage);
  }

  if (*c) return run_create(create);
  if (*i) return run_info(info);
  if (*k) return run_check(check);
  if (*d) return run_dump(dump);
  if (*l) return run_load(load);
  if (*cp) return run_checkpoint(ckpt);
  if (*b) return run_backup(backup);
  if (*cm) return run_compact(compact);
  if (*bn) return run_bench(bench, argv[0]);
  return fail_line("no command (keel --help for usage)", kUsage);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const failure& e) {
    return fail_line(e.what(), e.code());
  } catch (const keel::error& e) {
    return fail_line(std::string(e.what()) + " [" + std::string(keel::to_string(e.code())) + "]", kError);
  } catch (const std::bad_alloc&) {
    return fail_line("out of memory", kError);
  } catch (const std::exception& e) {
    return fail_line(e.what(), kError);
  } catch (...) {
    return fail_line("unknown error", kError);
  }
}
