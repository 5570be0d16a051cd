// What the two operation-sequence targets (fuzz_ops_hash, fuzz_ops_tree)
// share: a store with two structures, one write transaction at a time with
// a model of the committed state and one of the transaction's, a trace of
// the operations for the failure message, reopen in another mode, and the
// run of one input (operations, a final commit or abort, a full check of the
// committed state, keel::check of the closed store).
//
// D (the target's harness) provides: open_structures(), close_structures(),
// snapshot_models() (transaction models := committed ones),
// adopt_models() (committed := transaction's), after_commit(),
// verify_committed(bool full), model_entries() and step(reader&).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fuzz_common.h"

namespace keel_fuzz {

template <class D>
struct ops_harness {
  const char* target;
  std::string path;
  keel::options opts;
  std::unique_ptr<keel::store> db;
  std::optional<keel::write_txn> tx;
  std::string trace;  // the operations so far, for the failure message

  explicit ops_harness(const char* t) : target(t) {}
  D& self() { return static_cast<D&>(*this); }

  [[noreturn]] void bad(const std::string& what) { fail(target, what + "\noperations: " + trace); }
  void note(const std::string& op) {
    if (trace.size() < 6000) trace += op + "; ";
  }

  void open() {
    db = keel::store::open(path, opts);
    self().open_structures();
  }
  void begin() {
    if (tx) return;
    tx.emplace(db->begin_write());
    self().snapshot_models();
  }
  void commit() {
    if (!tx) return;
    tx->commit();
    tx.reset();
    self().adopt_models();
    self().after_commit();
  }
  void abort() {
    if (!tx) return;
    tx->abort();
    tx.reset();
  }
  void close() {
    self().close_structures();
    db->close();
    db.reset();
  }
  // Commits or aborts (the next byte says which, and the next mode), closes
  // and reopens, then checks the committed state in full.
  void reopen(reader& r) {
    const u8 c = r.byte();
    if (c & 1)
      commit();
    else
      abort();
    close();
    opts.mode = static_cast<keel::durability>(c % 3);
    open();
    self().verify_committed(true);
  }
};

// Runs one fuzz input through a harness H (an ops_harness) on the store
// file `file` in the scratch directory. The first byte picks the mode,
// checkpoints inside the run and whether the last transaction commits.
template <class H>
int run_ops_input(const std::uint8_t* data, std::size_t size, const char* file, int max_ops) {
  if (size > 4096) return -1;
  reader r(data, size);
  const u8 cfg = r.byte();
  H hs;
  hs.path = scratch_dir() + "/" + file;
  remove_store(hs.path);
  hs.opts = fuzz_opts(true, static_cast<keel::durability>(cfg % 3));
  hs.opts.create_if_missing = true;
  if (cfg & 4) hs.opts.checkpoint_bytes = 16 * 1024;  // checkpoints inside the run
  try {
    hs.open();
    for (int n = 0; n < max_ops && !r.empty(); ++n) hs.step(r);
    if (cfg & 8)
      hs.commit();
    else
      hs.abort();
    hs.verify_committed(true);
    hs.close();
    const keel::check_report rep = check_store(hs.path);
    if (!rep.clean()) hs.bad("check after the run: " + describe(rep));
    if (rep.entries != hs.model_entries())
      hs.bad("check counted " + std::to_string(rep.entries) + " entries, the models hold " +
             std::to_string(hs.model_entries()));
  } catch (const keel::error& e) {
    hs.bad(std::string("unexpected error: ") + e.what());
  }
  hs.tx.reset();
  hs.db.reset();
  remove_store(hs.path);
  return 0;
}

}  // namespace keel_fuzz
