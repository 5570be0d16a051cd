// keel-bench: the workloads, written once over the adapter interface and
// instantiated per system (adapter_*.h). An adapter A provides:
//   value_type; kName; kTxn (transactions, durability modes, abort),
//   kPersistent (reopen, restart), kOrdered (scan), kMultiProcess;
//   create(dir, mode) / open(dir, mode, read_only) / close() / drop(dir);
//   begin() / commit() / abort(); put(k, v); erase(k) -> bool;
//   read_begin() / read_end() around runs of get (LMDB's read transaction);
//   get(k, out) -> bool; size(); for_each(f(k, v)); scan(lo, n, f) -> count;
//   describe(); recovered().
// State carries between workloads as in db_bench: fill-random builds the
// store the reads, overwrite and erase use; a model of every key's version
// checks each answer, and the store is verified in full at the end of each
// pass.
#pragma once

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "process.h"
#include "restart.h"

namespace kb {

// Puts rkey(0..num) at version 1 into a created store, c.batch per
// transaction, in index order or in key order (the same content; key order
// lets a B+tree peer fill 100M entries in minutes rather than the better
// part of an hour). Used by restart, the build child and read-interleaved.
template <class A>
void fill_store(A& db, const config& c, bool key_order = false) {
  std::vector<std::uint64_t> keys;
  if (key_order) {
    keys.resize(c.num);
    for (std::uint64_t j = 0; j < c.num; ++j) keys[j] = rkey(j);
    std::sort(keys.begin(), keys.end());
  }
  typename A::value_type v;
  for (std::uint64_t i = 0; i < c.num; i += c.batch) {
    db.begin();
    for (std::uint64_t j = i; j < std::min(c.num, i + c.batch); ++j) {
      const std::uint64_t k = key_order ? keys[j] : rkey(j);
      make_val(v, k, 1);
      db.put(k, v);
    }
    db.commit();
  }
}

// A created store of c.num entries (fill_store), closed: what restart and
// restart-interleaved open, and what multi-process shares.
template <class A>
void make_store(const config& c, const std::string& d, mode m, bool key_order) {
  A db(c);
  db.create(d, m);
  fill_store(db, c, key_order);
  db.close();
}

template <class A>
class suite {
 public:
  using V = typename A::value_type;

  suite(const config& c, reporter& r) : c_(c), rep_(r), dir_(c.dir + "/" + A::kName) {}

  void run() {
    const std::vector<mode> modes = A::kTxn ? c_.modes : std::vector<mode>{mode::none};
    bool reads_done = false;
    const bool need_store = c_.want("fill-random") || c_.want("read-random") || c_.want("read-miss") ||
                            c_.want("read-seq") || c_.want("scan") || c_.want("overwrite") || c_.want("erase");
    for (const mode m : modes) {
      if (c_.want("fill-seq"))
        for (std::uint64_t t : c_.txn)
          if (t > 1 || A::kTxn) fill_seq(t, m, false);
      if constexpr (A::kOrdered)
        if (c_.want("append"))
          for (std::uint64_t t : c_.txn)
            if (t > 1 || A::kTxn) fill_seq(t, m, true);
      if (!need_store) continue;
      bool filled = false;
      for (std::uint64_t t : c_.txn)
        if (t > 1) {
          fill_random_fresh(m, t, c_.want("fill-random"));
          filled = true;
        }
      if (!filled) fill_random_fresh(m, c_.batch, false);
      if (c_.want("fill-random") && A::kTxn)
        for (std::uint64_t t : c_.txn)
          if (t == 1) fill_random_more(m);
      if (!reads_done) {
        // Write-back of what the fill left dirty would otherwise run during
        // the timed reads of whichever systems keep files (it is due 30 s
        // after the pages were dirtied), and not during those of the
        // in-RAM peers: flush it first, for every system alike.
        ::sync();
        if (c_.want("read-random")) read_random();
        if (c_.want("read-miss")) read_miss();
        if (c_.want("read-seq")) read_seq();
        if (c_.want("scan") && A::kOrdered) scan();
        reads_done = true;
      }
      if (c_.want("overwrite"))
        for (std::uint64_t t : c_.txn)
          if (t > 1 || A::kTxn) overwrite(t, m);
      if (c_.want("erase"))
        for (std::uint64_t t : c_.txn)
          if (t > 1 || A::kTxn) erase(t, m);
      verify_all(m);
      db_->close();
      db_.reset();
      A::drop(dir_ + "/main");
    }
    if (c_.want("wicked")) wicked();
    if (c_.want("restart") && A::kPersistent) restart();
    if (c_.want("multi-process") && A::kMultiProcess) multi_process();
  }

 private:
  // ---- timing

  // Runs ops operations op(i), t per transaction; one in c_.sample (every
  // one when t == 1, and every commit) is timed alone for the histogram.
  template <class Op>
  result timed_writes(A& db, const char* workload, std::uint64_t t, mode m, std::uint64_t ops, Op&& op) {
    result r;
    r.workload = workload;
    r.system = A::kName;
    r.variant = variant(A::kTxn ? t : 0, m);
    const std::uint64_t sample = t == 1 ? 1 : std::uint64_t(c_.sample);
    const auto t0 = clk::now();
    for (std::uint64_t i = 0; i < ops; ++i) {
      const bool first = i % t == 0, last = i % t == t - 1 || i + 1 == ops;
      if (i % sample == 0 || last) {
        const auto s0 = clk::now();
        if (first) db.begin();
        op(i);
        if (last) db.commit();
        r.hist.add(std::uint64_t((clk::now() - s0).count()));
      } else {
        if (first) db.begin();
        op(i);
      }
    }
    r.secs = secs_since(t0);
    r.ops = ops;
    r.ns_per_op = r.secs * 1e9 / double(ops);
    r.mb_per_s = double(ops) * double(8 + sizeof(V)) / r.secs / 1e6;
    return r;
  }

  // Passes of lookups of keys q; expect_found says whether each should hit.
  // Pass 0 times 1 in c_.sample lookups alone for the histogram; the
  // ns/op figure is the best of the other passes (no timer inside the
  // loop), or pass 0's when --reps=1. Mismatches count over all passes.
  result timed_reads(const char* workload, const std::vector<std::uint64_t>& q, bool expect_found) {
    result out;
    out.workload = workload;
    out.system = A::kName;
    std::uint64_t mism = 0;
    double best = -1;
    for (int pass = 0; pass < c_.reps; ++pass) {
      V v;
      std::uint64_t fold = 0;
      const std::uint64_t sample = pass == 0 ? std::uint64_t(c_.sample) : ~0ull;
      const auto t0 = clk::now();
      for (std::size_t i = 0; i < q.size(); ++i) {
        if (i % 1000 == 0) {
          if (i) db_->read_end();
          db_->read_begin();
        }
        bool found;
        if (i % sample == 0) {
          const auto s0 = clk::now();
          found = db_->get(q[i], v);
          out.hist.add(std::uint64_t((clk::now() - s0).count()));
        } else {
          found = db_->get(q[i], v);
        }
        if (found != expect_found || (found && val_key(v.b) != q[i]))
          ++mism;
        else if (found)
          fold ^= val_fold(v);
      }
      db_->read_end();
      sink_ ^= fold;
      const double secs = secs_since(t0);
      if ((pass > 0 || c_.reps == 1) && (best < 0 || secs < best)) best = secs;
    }
    out.secs = best;
    out.ops = q.size();
    out.ns_per_op = best * 1e9 / double(q.size());
    out.mb_per_s = expect_found ? double(q.size()) * double(8 + sizeof(V)) / best / 1e6 : 0;
    out.mismatches = mism;
    out.note = c_.reps > 1 ? fmt::format("best of {} untimed passes", c_.reps - 1) : "1 pass";
    return out;
  }

  // ---- workloads

  // Ascending keys into a fresh store; `append` uses the structure's
  // append path (keys above the maximum) where it has one.
  void fill_seq(std::uint64_t t, mode m, bool append) {
    A db(c_);
    const std::string d = dir_ + "/seq";
    db.create(d, m);
    V v;
    const std::uint64_t ops = c_.ops_for(t, m);
    result r = timed_writes(db, append ? "append" : "fill-seq", t, m, ops, [&](std::uint64_t i) {
      make_val(v, skey(i), 1);
      if constexpr (requires { db.append(skey(i), v); }) {
        if (append) db.append(skey(i), v);
        else db.put(skey(i), v);
      } else {
        db.put(skey(i), v);
      }
    });
    r.note = db.describe();
    // Check: the count and every 1 in 16 keys.
    if (db.size() != ops) ++r.mismatches;
    db.read_begin();
    for (std::uint64_t i = 0; i < ops; i += 16) {
      if (i % 16000 == 0) {
        db.read_end();
        db.read_begin();
      }
      if (!db.get(skey(i), v) || check_val(v, skey(i)) != 1) ++r.mismatches;
    }
    db.read_end();
    rep_.add(std::move(r));
    db.close();
    A::drop(d);
  }

  void fill_random_fresh(mode m, std::uint64_t t, bool report) {
    if (db_) {
      db_->close();
      db_.reset();
    }
    db_ = std::make_unique<A>(c_);
    db_->create(dir_ + "/main", m);
    model_.assign(c_.num, 1);
    erase_pos_ = 0;
    V v;
    result r = timed_writes(*db_, "fill-random", t, m, c_.num, [&](std::uint64_t i) {
      make_val(v, rkey(i), 1);
      db_->put(rkey(i), v);
    });
    r.note = db_->describe();
    if (report) rep_.add(std::move(r));
  }

  // New keys, one per transaction, into the filled store.
  void fill_random_more(mode m) {
    const std::uint64_t base = model_.size(), ops = c_.ops_for(1, m);
    model_.resize(base + ops, 1);
    V v;
    result r = timed_writes(*db_, "fill-random", 1, m, ops, [&](std::uint64_t i) {
      make_val(v, rkey(base + i), 1);
      db_->put(rkey(base + i), v);
    });
    r.note = fmt::format("into the {}-entry store", base);
    rep_.add(std::move(r));
  }

  void read_random() {
    rng g{0x7265616400000000ull};
    std::vector<std::uint64_t> q(c_.n_reads());
    for (auto& k : q) {
      std::uint64_t i;
      do i = g.below(model_.size());
      while (model_[i] == 0);
      k = rkey(i);
    }
    rep_.add(timed_reads("read-random", q, true));
  }

  void read_miss() {
    std::vector<std::uint64_t> q(c_.n_reads());
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = miss_key(i);
    rep_.add(timed_reads("read-miss", q, false));
  }

  // Every entry once, in the structure's own order (table order for hash
  // maps, key order for trees).
  void read_seq() {
    result best;
    const std::uint64_t want = present();
    for (int pass = 0; pass < c_.reps; ++pass) {
      result r;
      r.workload = "read-seq";
      r.system = A::kName;
      std::uint64_t n = 0, bad = 0, prev = 0;
      const auto t0 = clk::now();
      db_->for_each([&](std::uint64_t k, const V& v) {
        if (val_key(v.b) != k || (A::kOrdered && n > 0 && k <= prev)) ++bad;
        prev = k;
        ++n;
      });
      r.secs = secs_since(t0);
      r.ops = n;
      r.mismatches = bad + (n != want);
      r.ns_per_op = r.secs * 1e9 / double(std::max<std::uint64_t>(n, 1));
      r.mb_per_s = double(n) * double(8 + sizeof(V)) / r.secs / 1e6;
      r.note = fmt::format("best of {}; {} order", c_.reps, A::kOrdered ? "key" : "table");
      if (pass == 0 || r.secs < best.secs) {
        r.mismatches += best.mismatches;
        best = std::move(r);
      } else {
        best.mismatches += r.mismatches;
      }
    }
    rep_.add(std::move(best));
  }

  // Range scans of scan_len entries from random start keys (ordered
  // structures only). ns/op is per entry; the histogram per scan.
  void scan() {
    result r;
    r.workload = "scan";
    r.system = A::kName;
    const std::uint64_t scans = std::max<std::uint64_t>(100, c_.n_reads() / c_.scan_len);
    rng g{0x7363616e00000000ull};
    std::uint64_t entries = 0;
    const auto t0 = clk::now();
    for (std::uint64_t s = 0; s < scans; ++s) {
      const std::uint64_t lo = g.next();
      std::uint64_t prev = lo, n = 0;
      const auto s0 = clk::now();
      db_->scan(lo, c_.scan_len, [&](std::uint64_t k, const V& v) {
        if (k < prev || (n > 0 && k == prev) || val_key(v.b) != k) ++r.mismatches;
        prev = k;
        ++n;
      });
      r.hist.add(std::uint64_t((clk::now() - s0).count()));
      // Short only at the end of the key space.
      if (n < c_.scan_len && prev < ~0ull - (~0ull / std::max<std::uint64_t>(present(), 1)) * 64) ++r.mismatches;
      entries += n;
    }
    r.secs = secs_since(t0);
    r.ops = entries;
    r.ns_per_op = r.secs * 1e9 / double(std::max<std::uint64_t>(entries, 1));
    r.mb_per_s = double(entries) * double(8 + sizeof(V)) / r.secs / 1e6;
    r.note = fmt::format("{} scans of up to {}; histogram per scan", scans, c_.scan_len);
    rep_.add(std::move(r));
  }

  void overwrite(std::uint64_t t, mode m) {
    const std::uint64_t ops = c_.ops_for(t, m);
    rng g{0x6f76657200000000ull + t};
    V v;
    result r = timed_writes(*db_, "overwrite", t, m, ops, [&](std::uint64_t) {
      std::uint64_t i;
      do i = g.below(model_.size());
      while (model_[i] == 0);
      const std::uint64_t k = rkey(i);
      make_val(v, k, ++model_[i]);
      db_->put(k, v);
    });
    rep_.add(std::move(r));
  }

  // Erases keys in a pseudo-random order that visits each index once
  // (i -> i * a mod M): half the store for a bulk pass, then single ops.
  void erase(std::uint64_t t, mode m) {
    const std::uint64_t M = model_.size();
    std::uint64_t a = 0x9E3779B1ull % M | 1;
    while (std::gcd(a, M) != 1) a += 2;
    const std::uint64_t ops = std::min<std::uint64_t>(t > 1 ? c_.num / 2 : c_.ops_for(t, m), M - std::min(M, erase_pos_));
    if (ops == 0) return;
    std::uint64_t bad = 0;
    result r = timed_writes(*db_, "erase", t, m, ops, [&](std::uint64_t) {
      const std::uint64_t i = std::uint64_t(u128(erase_pos_++) * a % M);
      const bool was = model_[i] != 0;
      if (db_->erase(rkey(i)) != was) ++bad;
      model_[i] = 0;
    });
    r.mismatches = bad;
    rep_.add(std::move(r));
  }

  std::uint64_t present() const {
    return std::uint64_t(std::count_if(model_.begin(), model_.end(), [](std::uint32_t x) { return x != 0; }));
  }

  // Every key ever written: present with its last version, or absent; and
  // the size. Reported as its own line so a failure is visible.
  void verify_all(mode m) {
    result r;
    r.workload = "verify";
    r.system = A::kName;
    r.variant = variant(0, m);
    V v;
    if (c_.inject_mismatch) ++model_[0];  // self-test: the check must catch this
    const auto t0 = clk::now();
    for (std::uint64_t i = 0; i < model_.size(); ++i) {
      if (i % 1000 == 0) {
        if (i) db_->read_end();
        db_->read_begin();
      }
      const bool found = db_->get(rkey(i), v);
      if (found != (model_[i] != 0) || (found && check_val(v, rkey(i)) != model_[i])) ++r.mismatches;
    }
    db_->read_end();
    if (db_->size() != present()) ++r.mismatches;
    r.secs = secs_since(t0);
    r.ops = model_.size();
    r.note = fmt::format("{} keys present, {} erased; {}", present(), model_.size() - present(), db_->describe());
    rep_.add(std::move(r));
  }

  // ---- wicked: random transactions of puts and erases (some aborted),
  // reads between them, periodic size and scan checks, all against a model;
  // then a full check, a reopen and the full check again.
  void wicked() {
    const mode m = A::kTxn ? c_.modes.front() : mode::none;
    const std::string d = dir_ + "/wicked";
    const std::uint64_t K = std::clamp<std::uint64_t>(c_.num / 10, 1000, 100'000);
    std::vector<std::uint64_t> model(K, 0);
    std::unordered_map<std::uint64_t, std::uint32_t> index;
    for (std::uint32_t i = 0; i < K; ++i) index[rkey(i)] = i;
    A db(c_);
    db.create(d, m);
    rng g{0x7769636b00000000ull};
    std::uint64_t ops = 0, txns = 0, aborted = 0, version = 0, bad = 0, live = 0;
    V v;
    auto full_check = [&](const char*) {
      db.read_begin();
      std::uint64_t n = 0;
      for (std::uint64_t i = 0; i < K; ++i) {
        if (i % 1000 == 999) {
          db.read_end();
          db.read_begin();
        }
        const bool found = db.get(rkey(i), v);
        if (found != (model[i] != 0) || (found && check_val(v, rkey(i)) != model[i])) ++bad;
        n += found;
      }
      db.read_end();
      if (db.size() != live || n != live) ++bad;
      std::uint64_t seen = 0, prev = 0;
      db.for_each([&](std::uint64_t k, const V& x) {
        const auto it = index.find(k);
        if (it == index.end() || model[it->second] == 0 || check_val(x, k) != model[it->second]) ++bad;
        if (A::kOrdered && seen > 0 && k <= prev) ++bad;
        prev = k;
        ++seen;
      });
      if (seen != live) ++bad;
    };
    const auto t0 = clk::now();
    std::vector<std::pair<std::uint32_t, std::uint64_t>> pend;
    while (ops < c_.wicked_ops) {
      const std::uint64_t len = 1 + g.below(64);
      const bool abort = A::kTxn && g.below(10) == 0;
      pend.clear();
      db.begin();
      for (std::uint64_t j = 0; j < len; ++j) {
        const auto i = std::uint32_t(g.below(K));
        if (g.below(4) == 0) {
          db.erase(rkey(i));
          pend.emplace_back(i, 0);
        } else {
          make_val(v, rkey(i), ++version);
          db.put(rkey(i), v);
          pend.emplace_back(i, version);
        }
      }
      ops += len;
      ++txns;
      if (abort) {
        db.abort();
        ++aborted;
      } else {
        db.commit();
        for (const auto& [i, ver] : pend) {
          live += (ver != 0) - (model[i] != 0);
          model[i] = ver;
        }
      }
      const std::uint64_t reads = g.below(16);
      db.read_begin();
      for (std::uint64_t j = 0; j < reads; ++j) {
        const auto i = g.below(K);
        const bool found = db.get(rkey(i), v);
        if (found != (model[i] != 0) || (found && check_val(v, rkey(i)) != model[i])) ++bad;
      }
      db.read_end();
      ops += reads;
      if (txns % 2000 == 0) {
        if (db.size() != live) ++bad;
        if constexpr (A::kOrdered) {
          std::uint64_t prev = 0, n = 0;
          db.scan(g.next(), 20, [&](std::uint64_t k, const V& x) {
            const auto it = index.find(k);
            if (it == index.end() || model[it->second] == 0 || check_val(x, k) != model[it->second]) ++bad;
            if (n++ > 0 && k <= prev) ++bad;
            prev = k;
          });
        }
      }
    }
    const double secs = secs_since(t0);
    full_check("end");
    if constexpr (A::kPersistent) {
      db.close();
      db.open(d, m, false);
      full_check("reopen");
    }
    db.close();
    A::drop(d);
    result r;
    r.workload = "wicked";
    r.system = A::kName;
    r.variant = variant(0, m);
    r.ops = ops;
    r.secs = secs;
    r.ns_per_op = secs * 1e9 / double(ops);
    r.mismatches = bad;
    r.note = fmt::format("{} keys, {} txns ({} aborted), {} live at end; checked at end{}", K, txns, aborted, live,
                         A::kPersistent ? " and after reopen" : "");
    rep_.add(std::move(r));
  }

  // ---- restart: a child process opens the store and answers one lookup.

  // A store for restart (see fill_store).
  void prepare(const std::string& d, mode m, bool key_order) { make_store<A>(c_, d, m, key_order); }

  std::vector<std::string> child_args(const std::string& kind, const std::string& d) const {
    return child_argv(c_, kind, A::kName, d);
  }

  void restart() {
    const std::string d = dir_ + "/restart";
    const mode m = A::kTxn ? mode::batch : mode::none;  // Keel's default mode
    prepare(d, m, /*key_order=*/true);  // open + first lookup do not depend on the order of the puts
    // After a clean close.
    {
      std::vector<double> total, main_ms, open_ms;
      result r;
      r.workload = "restart-clean";
      r.system = A::kName;
      for (int i = 0; i < c_.restart_reps; ++i) {
        const open_answer a = open_child(c_, A::kName, d);
        total.push_back(a.total_ms);
        main_ms.push_back(a.main_ms);
        open_ms.push_back(a.open_ms);
        r.mismatches += a.mismatches;
      }
      r.ops = std::uint64_t(c_.restart_reps);
      r.extra["open_ms"] = median(open_ms);
      r.extra["main_ms"] = median(main_ms);
      r.extra["total_ms"] = median(total);
      r.note = fmt::format("{} entries; median of {}", c_.num, c_.restart_reps);
      rep_.add(std::move(r));
    }
    // After kill -9 of a writer in the middle of a stream of commits.
    if (A::kTxn && c_.kill_reps > 0) {
      std::vector<double> total, main_ms, open_ms, rec;
      result r;
      r.workload = "restart-kill9";
      r.system = A::kName;
      std::uint64_t commits = 0;
      const std::string ack_path = c_.dir + "/ack";
      for (int rep = 0; rep < c_.kill_reps; ++rep) {
        ack_file ack(ack_path, true);
        auto wargs = child_args("writer", d);
        wargs.push_back("--ack=" + ack_path);
        wargs.push_back(fmt::format("--rep={}", rep));
        child_proc w = spawn(c_.self, wargs);
        if (read_line(w, 600) != "ready") die(fmt::format("{}: writer child did not start", A::kName));
        std::this_thread::sleep_for(std::chrono::milliseconds(c_.kill_after_ms));
        kill9(w);
        wait_exit(w);
        const std::uint64_t acked = ack.get();
        commits += acked;
        const open_answer a =
            open_child(c_, A::kName, d, {fmt::format("--check_commit={}", acked), fmt::format("--rep={}", rep)});
        total.push_back(a.total_ms);
        main_ms.push_back(a.main_ms);
        open_ms.push_back(a.open_ms);
        rec.push_back(a.recovered);
        r.mismatches += a.mismatches;
      }
      std::filesystem::remove(ack_path);
      r.ops = std::uint64_t(c_.kill_reps);
      r.extra["open_ms"] = median(open_ms);
      r.extra["main_ms"] = median(main_ms);
      r.extra["total_ms"] = median(total);
      r.extra["recovered"] = median(rec);
      r.note = fmt::format("{} entries; writer killed after {} ms ({:.0f} commits of 10 keys each, median); median of {}",
                           c_.num, c_.kill_after_ms, double(commits) / c_.kill_reps, c_.kill_reps);
      rep_.add(std::move(r));
    }
    A::drop(d);
  }

  // ---- multi-process: R reader processes and one writer process, alone
  // and together.
  struct phase_result {
    double reader_ops = 0, writer_commits = 0;
    std::uint64_t mismatches = 0;
  };
  phase_result phase(const std::string& d, int readers, bool writer) {
    const std::uint64_t start = mono_ns() + 500'000'000ull;
    std::vector<child_proc> rs;
    auto extra = [&](std::vector<std::string> a, int seed) {
      a.push_back(fmt::format("--start_ns={}", start));
      a.push_back(fmt::format("--seconds={}", c_.mp_seconds));
      a.push_back(fmt::format("--rep={}", seed));
      return a;
    };
    for (int i = 0; i < readers; ++i) rs.push_back(spawn(c_.self, extra(child_args("reader", d), i)));
    child_proc w;
    if (writer) w = spawn(c_.self, extra(child_args("mpwriter", d), 99));
    phase_result p;
    const double timeout = c_.mp_seconds + 120;
    for (auto& ch : rs) {
      const auto f = parse_fields(read_line(ch, timeout));
      const double ops = field(f, "ops"), secs = field(f, "secs"), mism = field(f, "mismatches");
      if (ops < 0 || secs <= 0 || mism != 0) ++p.mismatches;
      if (mism > 0) p.mismatches += std::uint64_t(mism);
      if (ops > 0 && secs > 0) p.reader_ops += ops / secs;
      if (wait_exit(ch) != 0) ++p.mismatches;
    }
    if (writer) {
      const auto f = parse_fields(read_line(w, timeout));
      const double commits = field(f, "commits"), secs = field(f, "secs");
      if (commits < 0 || secs <= 0) ++p.mismatches;
      else p.writer_commits = commits / secs;
      if (wait_exit(w) != 0) ++p.mismatches;
    }
    return p;
  }

  // Rounds of (readers alone, writer alone, both): each round's ratios are
  // taken within the round, and the median round is reported, so a burst of
  // noise on a shared machine moves one round, not the figure.
  void multi_process() {
    const std::string d = dir_ + "/mp";
    prepare(d, mode::batch, /*key_order=*/false);
    std::vector<double> r_alone, r_with, w_alone, w_with, r_ratio, w_ratio;
    std::uint64_t mismatches = 0;
    for (int round = 0; round < c_.mp_rounds; ++round) {
      const phase_result ra = phase(d, c_.readers, false);
      const phase_result wa = phase(d, 0, true);
      const phase_result both = phase(d, c_.readers, true);
      mismatches += ra.mismatches + wa.mismatches + both.mismatches;
      r_alone.push_back(ra.reader_ops);
      r_with.push_back(both.reader_ops);
      w_alone.push_back(wa.writer_commits);
      w_with.push_back(both.writer_commits);
      r_ratio.push_back(ra.reader_ops > 0 ? both.reader_ops / ra.reader_ops : 0);
      w_ratio.push_back(wa.writer_commits > 0 ? both.writer_commits / wa.writer_commits : 0);
    }
    result r;
    r.workload = "multi-process";
    r.system = A::kName;
    r.variant = fmt::format("readers={}", c_.readers);
    r.ops = std::uint64_t(median(r_with) * c_.mp_seconds);
    r.mismatches = mismatches;
    r.extra["reader_alone_per_s"] = median(r_alone);
    r.extra["reader_with_writer_per_s"] = median(r_with);
    r.extra["writer_alone_per_s"] = median(w_alone);
    r.extra["writer_with_readers_per_s"] = median(w_with);
    r.extra["reader_ratio"] = median(r_ratio);
    r.extra["writer_ratio"] = median(w_ratio);
    std::string rounds;
    for (double x : r_ratio) rounds += fmt::format("{}{:.0f}%", rounds.empty() ? "" : " ", 100 * x);
    r.note = fmt::format(
        "median of {} round{} of {} s phases; reader share per round: {}; writer: 1 random overwrite per commit, "
        "batch mode; readers check every value",
        c_.mp_rounds, c_.mp_rounds == 1 ? "" : "s", c_.mp_seconds, rounds);
    rep_.add(std::move(r));
    A::drop(d);
  }

  const config& c_;
  reporter& rep_;
  std::string dir_;
  std::unique_ptr<A> db_;
  std::uint64_t sink_ = 0;  // the values read, folded (val_fold: each read delivers its whole value)
  std::vector<std::uint32_t> model_;  // version of rkey(i); 0 = absent
  std::uint64_t erase_pos_ = 0;
};

// ---- child processes (restart, multi-process, out-of-core)

struct child_args {
  std::string kind;  // open, writer, reader, mpwriter, build, ooc-read
  std::string ack;
  std::int64_t check_commit = -1;
  int rep = 0;
  std::uint64_t start_ns = 0;
  double seconds = 1;
};

extern clk::time_point g_main_start;

template <class A>
int child_main(const config& c, const child_args& a) {
  using V = typename A::value_type;
  const std::string d = c.dir;
  V v;
  if (a.kind == "open") {
    const auto t0 = clk::now();
    A db(c);
    db.open(d, A::kDefaultMode, false);
    // The first lookup: the first key of the checked commit, or key 0.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> want;  // index, version (0: any)
    if (a.check_commit > 0)
      for (std::uint64_t j = 0; j < 10; ++j)
        want.emplace_back((std::uint64_t(a.check_commit) * 10 + j) % c.num,
                          (std::uint64_t(a.rep + 1) << 32) | std::uint64_t(a.check_commit));
    else
      want.emplace_back(0, 0);
    const bool found = db.get(rkey(want[0].first), v);
    const auto t1 = clk::now();
    std::printf("main_ms=%.4f open_ms=%.4f found=%d\n", std::chrono::duration<double, std::milli>(t1 - g_main_start).count(),
                std::chrono::duration<double, std::milli>(t1 - t0).count(), found ? 1 : 0);
    std::fflush(stdout);
    std::uint64_t bad = 0;
    for (const auto& [i, ver] : want) {
      if (!db.get(rkey(i), v)) {
        ++bad;
        continue;
      }
      const std::uint64_t got = check_val(v, rkey(i));
      if (got == 0 || (ver != 0 && got != ver)) ++bad;
    }
    std::printf("mismatches=%llu recovered=%llu\n", (unsigned long long)bad, (unsigned long long)db.recovered());
    std::fflush(stdout);
    db.close();
    return 0;
  }
  if (a.kind == "writer") {  // runs until killed
    A db(c);
    db.open(d, mode::batch, false);
    ack_file ack(a.ack, false);
    std::printf("ready\n");
    std::fflush(stdout);
    const auto t0 = clk::now();
    for (std::uint64_t n = 1; secs_since(t0) < 600; ++n) {
      db.begin();
      for (std::uint64_t j = 0; j < 10; ++j) {
        const std::uint64_t i = (n * 10 + j) % c.num;
        make_val(v, rkey(i), (std::uint64_t(a.rep + 1) << 32) | n);
        db.put(rkey(i), v);
      }
      db.commit();
      ack.set(n);
    }
    return 1;
  }
  auto wait_start = [&] {
    while (mono_ns() < a.start_ns) std::this_thread::sleep_for(std::chrono::microseconds(200));
    return a.start_ns + std::uint64_t(a.seconds * 1e9);
  };
  if (a.kind == "reader" || a.kind == "ooc-read") {
    A db(c);
    db.open(d, A::kTxn ? mode::batch : mode::none, true);
    const auto res0 = residency(A::data_file(d));
    const std::uint64_t end = a.kind == "reader" ? wait_start() : mono_ns() + std::uint64_t(a.seconds * 1e9);
    const std::uint64_t t0 = mono_ns();
    rng g{0x7265616465720000ull + std::uint64_t(a.rep) * kGamma + std::uint64_t(::getpid())};
    std::uint64_t ops = 0, bad = 0, now = t0;
    db.read_begin();
    while (now < end) {
      for (int j = 0; j < 250; ++j) {
        const std::uint64_t k = rkey(g.below(c.num));
        if (!db.get(k, v) || check_val(v, k) == 0) ++bad;
      }
      ops += 250;
      if (ops % 1000 == 0) {
        db.read_end();
        db.read_begin();
      }
      now = mono_ns();
    }
    db.read_end();
    const double secs = double(now - t0) / 1e9;
    const auto res1 = residency(A::data_file(d));
    std::printf("ops=%llu secs=%.4f mismatches=%llu resident_before=%llu resident_after=%llu file=%llu\n",
                (unsigned long long)ops, secs, (unsigned long long)bad, (unsigned long long)res0.first,
                (unsigned long long)res1.first, (unsigned long long)res1.second);
    std::fflush(stdout);
    db.close();
    return bad ? 3 : 0;
  }
  if (a.kind == "mpwriter") {
    A db(c);
    db.open(d, mode::batch, false);
    const std::uint64_t end = wait_start();
    const std::uint64_t t0 = mono_ns();
    rng g{0x7772697465720000ull};
    std::uint64_t commits = 0, now = t0;
    while (now < end) {
      for (int j = 0; j < 64; ++j) {
        const std::uint64_t k = rkey(g.below(c.num));
        make_val(v, k, (1ull << 40) + commits);
        db.begin();
        db.put(k, v);
        db.commit();
        ++commits;
      }
      now = mono_ns();
    }
    std::printf("commits=%llu secs=%.4f\n", (unsigned long long)commits, double(now - t0) / 1e9);
    std::fflush(stdout);
    db.close();
    return 0;
  }
  if (a.kind == "build") {
    const auto t0 = clk::now();
    A db(c);
    db.create(d, A::kTxn ? mode::batch : mode::none);
    fill_store(db, c);
    const std::string desc = db.describe();
    db.close();
    std::printf("built=%llu secs=%.2f file=%llu  (%s)\n", (unsigned long long)c.num, secs_since(t0),
                (unsigned long long)residency(A::data_file(d)).second, desc.c_str());
    return 0;
  }
  die("unknown child kind " + a.kind);
}

// Value-size dispatch: f.template operator()<A<val<N>>>() for the sizes
// keel-bench is compiled for.
template <template <class> class A, class F>
decltype(auto) for_value_size(const config& c, F&& f) {
  switch (c.value_size) {
    case 16: return f.template operator()<A<val<16>>>();
    case 32: return f.template operator()<A<val<32>>>();
    case 100: return f.template operator()<A<val<100>>>();
    case 256: return f.template operator()<A<val<256>>>();
    case 1000: return f.template operator()<A<val<1000>>>();
    default: die(fmt::format("--value_size={} not compiled in (16, 32, 100, 256, 1000)", c.value_size));
  }
}

template <template <class> class A>
void run_system(const config& c, reporter& r) {
  for_value_size<A>(c, [&]<class S>() { suite<S>(c, r).run(); });
}

// ---- read-interleaved: every system's store filled and open at once, then
// rounds of one lookup pass per system in turn, so that a machine whose
// speed drifts over minutes (other tenants of the host) shifts all systems
// alike instead of whichever happened to run then (docs/BENCH.md).
template <class A>
class live_reads_of final : public live_reads {
 public:
  live_reads_of(const config& c, const std::string& dir) : db_(c) {
    db_.create(dir, A::kTxn ? c.modes.front() : mode::none);
    fill_store(db_, c);
  }
  ~live_reads_of() override { db_.close(); }
  double pass(const std::vector<std::uint64_t>& q, std::uint64_t& bad) override {
    V v;
    std::uint64_t fold = 0;
    const auto t0 = clk::now();
    for (std::size_t i = 0; i < q.size(); ++i) {
      if (i % 1000 == 0) {
        if (i) db_.read_end();
        db_.read_begin();
      }
      if (!db_.get(q[i], v) || val_key(v.b) != q[i])
        ++bad;
      else
        fold ^= val_fold(v);
    }
    db_.read_end();
    sink_ ^= fold;
    return secs_since(t0);
  }

 private:
  using V = typename A::value_type;
  A db_;
  std::uint64_t sink_ = 0;  // as suite::sink_
};

template <template <class> class A>
std::unique_ptr<live_reads> open_live_reads(const config& c, const std::string& dir) {
  return for_value_size<A>(c, [&]<class S>() -> std::unique_ptr<live_reads> {
    return std::make_unique<live_reads_of<S>>(c, dir);
  });
}

// ---- fill-interleaved: one fresh fill of c.num random keys per system in
// turn, round after round (the bulk transaction size, the first durability
// mode), so that the machine's drift moves all systems alike. `bad` counts
// a store that does not hold what was put (its size, and 1,000 sampled keys
// read back).
struct fill_outcome {
  double secs = 0;
  std::uint64_t bad = 0;
  bool txn = false;  // the system has transactions (the fill's variant names them)
  // The timed loop's cost to the whole process (every thread: Keel's
  // prefaulter and flusher count): CPU seconds in the kernel and in user
  // space, and page faults. A fill's kernel share is mostly page faults on
  // fresh file pages, whose price this VM varies from day to day.
  process_usage usage;
};

template <class A>
fill_outcome fill_once(const config& c, const std::string& dir) {
  fill_outcome out;
  out.txn = A::kTxn;
  using V = typename A::value_type;
  const std::uint64_t t = c.fill_txn();
  A db(c);
  db.create(dir, A::kTxn ? c.modes.front() : mode::none);
  V v;
  const process_usage u0 = process_usage::now();
  const auto t0 = clk::now();
  for (std::uint64_t i = 0; i < c.num; ++i) {
    if (i % t == 0) db.begin();
    make_val(v, rkey(i), 1);
    db.put(rkey(i), v);
    if (i % t == t - 1 || i + 1 == c.num) db.commit();
  }
  out.secs = secs_since(t0);
  out.usage = process_usage::now() - u0;
  std::uint64_t& bad = out.bad;
  if (db.size() != c.num) ++bad;
  db.read_begin();
  for (std::uint64_t j = 0; j < 1000; ++j) {
    const std::uint64_t k = rkey(j * c.num / 1000);  // spread over the whole fill
    const std::uint64_t want = c.inject_mismatch && j == 0 ? k + 1 : k;  // self-test: the check must catch this
    if (!db.get(k, v) || val_key(v.b) != want) ++bad;
  }
  db.read_end();
  db.close();
  A::drop(dir);
  return out;
}

template <template <class> class A>
fill_outcome fill_once_of(const config& c, const std::string& dir) {
  return for_value_size<A>(c, [&]<class S>() { return fill_once<S>(c, dir); });
}

// restart-interleaved's store (as restart's: default mode, key order).
template <template <class> class A>
void make_restart_store(const config& c, const std::string& dir) {
  for_value_size<A>(c, [&]<class S>() { make_store<S>(c, dir, S::kTxn ? mode::batch : mode::none, /*key_order=*/true); });
}

template <template <class> class A>
int run_child(const config& c, const child_args& a) {
  return for_value_size<A>(c, [&]<class S>() { return child_main<S>(c, a); });
}

}  // namespace kb
