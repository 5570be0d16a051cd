// keel-bench output: one line per workload per system as results arrive,
// then the ratio tables and the targets, and optionally JSON.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common.h"

namespace kb {

namespace {

std::string per_op(double ns) { return ns < 1000 ? fmt::format("{:.1f} ns/op", ns) : fmt::format("{:.3f} µs/op", ns / 1e3); }

std::string rate(double per_s) {
  if (per_s >= 1e6) return fmt::format("{:.2f}M/s", per_s / 1e6);
  if (per_s >= 1e3) return fmt::format("{:.1f}k/s", per_s / 1e3);
  return fmt::format("{:.0f}/s", per_s);
}

double x(const result& r, const char* k) {
  const auto it = r.extra.find(k);
  return it == r.extra.end() ? -1 : it->second;
}

// a's time per op over b's: the median of per-round ratios when both ran the
// same rounds side by side (read-interleaved), else the ratio of the figures.
double time_ratio(const result& a, const result& b) {
  std::vector<double> r;
  for (std::size_t k = 0;; ++k) {
    const std::string key = fmt::format("round_{}", k);
    const double ta = x(a, key.c_str()), tb = x(b, key.c_str());
    if (ta <= 0 || tb <= 0) break;
    r.push_back(ta / tb);
  }
  if (r.empty()) return a.ns_per_op / b.ns_per_op;
  std::sort(r.begin(), r.end());
  const std::size_t m = r.size() / 2;  // an even count: the geometric mean of the middle two, so b/a = 1/(a/b)
  return r.size() % 2 == 1 ? r[m] : std::sqrt(r[m - 1] * r[m]);
}

// a's open + first lookup over b's: the median of per-round ratios when
// both ran side by side (restart-interleaved), else the ratio of medians.
double open_ratio(const result& a, const result& b) {
  return x(a, "round_0") > 0 ? time_ratio(a, b) : x(a, "open_ms") / x(b, "open_ms");
}

std::string figures(const result& r) {
  if (r.workload.rfind("restart", 0) == 0) {
    std::string s;
    if (x(r, "open_ms") >= 0) s += fmt::format("open+lookup {:.3f} ms  main->lookup {:.3f} ms  ", x(r, "open_ms"), x(r, "main_ms"));
    s += fmt::format("fork->answer {:.3f} ms", x(r, "total_ms"));
    if (x(r, "recovered") >= 0) s += fmt::format("  recovered {:.0f} records", x(r, "recovered"));
    return s;
  }
  if (r.workload == "multi-process")
    return fmt::format("readers {} alone, {} with writer ({:.0f}%); writer {} alone, {} with readers ({:.0f}%)",
                       rate(x(r, "reader_alone_per_s")), rate(x(r, "reader_with_writer_per_s")), 100 * x(r, "reader_ratio"),
                       rate(x(r, "writer_alone_per_s")), rate(x(r, "writer_with_readers_per_s")), 100 * x(r, "writer_ratio"));
  if (r.workload == "verify") return fmt::format("{} keys checked in {:.2f} s", r.ops, r.secs);
  std::string s = fmt::format("{:>14} {:>10}", per_op(r.ns_per_op), rate(1e9 / r.ns_per_op));
  if (r.mb_per_s > 0) s += fmt::format(" {:>7.1f} MB/s", r.mb_per_s);
  else s += fmt::format(" {:>12}", "");
  if (!r.hist.empty()) s += "  " + r.hist.brief();
  return s;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += fmt::format("\\u{:04x}", int(c));
    else o += c;
  }
  return o + "\"";
}

}  // namespace

bool g_histogram_tables = false;

void reporter::add(result r) {
  std::string line = fmt::format("{:<19} {:<10} {:<26} {}", r.workload, r.system, r.variant, figures(r));
  if (r.mismatches) line += fmt::format("  ** {} MISMATCHES **", r.mismatches);
  if (!r.note.empty()) line += "  (" + r.note + ")";
  fmt::print("{}\n", line);
  if (g_histogram_tables && !r.hist.empty()) fmt::print("{}", r.hist.table());
  std::fflush(stdout);
  results_.push_back(std::move(r));
}

void reporter::note(const std::string& system, const std::string& workload, const std::string& text) {
  fmt::print("{:<19} {:<10} {}\n", workload, system, text);
  std::fflush(stdout);
}

std::uint64_t reporter::mismatches() const {
  std::uint64_t n = 0;
  for (const auto& r : results_) n += r.mismatches;
  return n;
}

const result* reporter::find(const std::string& w, const std::string& s, const std::string& v) const {
  for (const auto& r : results_)
    if (r.workload == w && r.system == s && r.variant == v) return &r;
  return nullptr;
}

void reporter::summary(const config& c) const {
  std::vector<std::string> systems;
  for (const auto& r : results_)
    if (std::find(systems.begin(), systems.end(), r.system) == systems.end()) systems.push_back(r.system);
  const std::string bulk_variant = variant(c.batch, c.modes.empty() ? mode::none : c.modes.front());

  // Per-op ratio tables: subject's time per op / peer's.
  for (const std::string subject : {"keel", "keel-tree"}) {
    std::vector<std::string> peers;
    for (const auto& s : systems)
      if (s != "keel" && s != "keel-tree" && s != "redis") peers.push_back(s);
    std::vector<const result*> rows;
    for (const auto& r : results_)
      if (r.system == subject && r.ns_per_op > 0 && r.workload != "wicked") rows.push_back(&r);
    if (rows.empty() || peers.empty()) continue;
    fmt::print("\n== {} time per op / peer's (below 1.00x: {} faster; same run, same machine) ==\n", subject, subject);
    std::string head = fmt::format("{:<14} {:<26}", "workload", "variant");
    for (const auto& p : peers) head += fmt::format(" {:>9}", p);
    fmt::print("{}\n", head);
    for (const result* k : rows) {
      std::string line = fmt::format("{:<14} {:<26}", k->workload, k->variant);
      bool any = false;
      for (const auto& p : peers) {
        const result* o = find(k->workload, p, k->variant);
        if (!o && k->variant == bulk_variant) o = find(k->workload, p, "");
        if (o && o->ns_per_op > 0) {
          line += fmt::format(" {:>8.2f}x", time_ratio(*k, *o));
          any = true;
        } else {
          line += fmt::format(" {:>9}", "-");
        }
      }
      if (any) fmt::print("{}\n", line);
    }
    // p50 latency ratios of the one-per-transaction rows (commit latency).
    bool header = false;
    for (const result* k : rows) {
      if (k->variant.rfind("txn=1 ", 0) != 0 || k->hist.empty()) continue;
      std::string line = fmt::format("{:<14} {:<26}", k->workload, k->variant);
      bool any = false;
      for (const auto& p : peers) {
        const result* o = find(k->workload, p, k->variant);
        if (o && !o->hist.empty()) {
          line += fmt::format(" {:>8.2f}x", k->hist.percentile(0.5) / o->hist.percentile(0.5));
          any = true;
        } else {
          line += fmt::format(" {:>9}", "-");
        }
      }
      if (!any) continue;
      if (!header) fmt::print("-- p50 latency, one operation per transaction (commit included) --\n");
      header = true;
      fmt::print("{}\n", line);
    }
  }

  // Restart and multi-process.
  for (const std::string subject : {"keel", "keel-tree"}) {
    for (const char* w : {"restart-clean", "restart-interleaved", "restart-kill9"}) {
      const result* k = find(w, subject, "");
      if (!k) continue;
      std::string line = fmt::format("{:<19} {:<10}", w, subject);
      for (const auto& p : systems) {
        if (p == "keel" || p == "keel-tree") continue;
        const result* o = find(w, p, "");
        if (!o) continue;
        if (x(*o, "open_ms") > 0) line += fmt::format("  open+lookup / {} {:.2f}x", p, open_ratio(*k, *o));
        line += fmt::format("  fork->answer / {} {:.3g}x", p, x(*k, "total_ms") / x(*o, "total_ms"));
      }
      fmt::print("{}\n", line);
    }
    if (const result* k = find("multi-process", subject, fmt::format("readers={}", c.readers))) {
      std::string line = fmt::format("{:<19} {:<10}  reader throughput with a writer: {:.0f}% of alone", "multi-process",
                                     subject, 100 * x(*k, "reader_ratio"));
      if (const result* o = find("multi-process", "lmdb", k->variant))
        line += fmt::format(" (lmdb {:.0f}%); writer commits/s keel/lmdb {:.2f}x", 100 * x(*o, "reader_ratio"),
                            x(*k, "writer_with_readers_per_s") / x(*o, "writer_with_readers_per_s"));
      fmt::print("{}\n", line);
    }
  }

  // The targets (stated at 10M u64 keys, 32-byte values, warm cache).
  fmt::print("\n== targets (stated for --num=10000000 --value_size=32; this run: --num={} --value_size={}) ==\n", c.num,
             c.value_size);
  auto target = [](const std::string& what, double v, bool ok, const std::string& goal) {
    if (v < 0) fmt::print("{:<58} {:>9}   (target {:<10}) not measured\n", what, "n/a", goal);
    else fmt::print("{:<58} {:>8.2f}x   (target {:<10}) {}\n", what, v, goal, ok ? "met" : "MISSED");
  };
  auto ratio = [&](const std::string& w, const std::string& a, const std::string& b, const std::string& v) -> double {
    const result *ra = find(w, a, v), *rb = find(w, b, v);
    if (!ra || !rb || ra->ns_per_op <= 0 || rb->ns_per_op <= 0) return -1;
    return time_ratio(*ra, *rb);
  };
  // Random gets: from read-interleaved (median of per-round ratios) when it
  // ran for both systems, else from read-random.
  auto get_ratio = [&](const std::string& a, const std::string& b, std::string& label) {
    const double r = ratio("read-interleaved", a, b, "");
    label = r >= 0 ? "read-interleaved" : "read-random ";
    return r >= 0 ? r : ratio("read-random", a, b, "");
  };
  std::string src;
  double r = get_ratio("keel", "absl", src);
  target(src + " keel / absl::flat_hash_map (time per get)", r, r <= 1.5, "<= 1.5x");
  r = get_ratio("lmdb", "keel", src);
  target(src + " LMDB / keel", r, r >= 4, ">= 4x");
  r = get_ratio("boost", "keel", src);
  target(src + " Boost.Interprocess / keel", r, r >= 1.7, ">= 1.7x");
  // Bulk writes (issue 3: inserts; issue 4: appends) in checkpoint mode,
  // where LMDB runs MDB_NOSYNC as the issues state; Boost has no modes.
  {
    const std::string v = variant(10000, mode::checkpoint);
    auto bulk = [&](const std::string& w, const std::string& a, const std::string& b) -> double {
      auto of = [&](const std::string& sys) {
        const result* x = find(w, sys, v);
        return x ? x : find(w, sys, "");  // systems without modes
      };
      const result *ra = of(a), *rb = of(b);
      return ra && rb && ra->ns_per_op > 0 && rb->ns_per_op > 0 ? time_ratio(*ra, *rb) : -1;
    };
    // Inserts: from fill-interleaved (median of per-round ratios) when it
    // ran for both systems, else from each system's own fill-random.
    auto insert_ratio = [&](const std::string& a, const std::string& b, std::string& label) {
      const double i = bulk("fill-interleaved", a, b);
      label = i >= 0 ? "fill-interleaved" : "fill-random";
      return i >= 0 ? i : bulk("fill-random", a, b);
    };
    std::string fill_src;
    r = insert_ratio("lmdb", "keel", fill_src);
    target(fill_src + " txn=10000 checkpoint  LMDB / keel (inserts)", r, r >= 2, ">= 2x");
    r = insert_ratio("boost", "keel", fill_src);
    target(fill_src + " txn=10000  Boost.Interprocess / keel (inserts)", r, r > 1, "> 1x");
    r = bulk("append", "lmdb", "keel-tree");
    target("append txn=10000 checkpoint  LMDB MDB_APPEND / keel-tree", r, r >= 3, ">= 3x");
  }
  {
    std::string label;
    r = get_ratio("lmdb", "keel-tree", label);
    target(label + " LMDB / keel-tree", r, r >= 1, ">= 1x");
    r = ratio("read-seq", "lmdb", "keel-tree", "");
    target("read-seq (full scan)  LMDB / keel-tree (time per key)", r, r >= 1.5, ">= 1.5x");
  }
  {
    // From restart-interleaved (median of per-round ratios) when it ran for
    // both, else from each system's own restart-clean.
    const char* w = find("restart-interleaved", "keel", "") && find("restart-interleaved", "lmdb", "") ? "restart-interleaved"
                                                                                                       : "restart-clean";
    const result *k = find(w, "keel", ""), *l = find(w, "lmdb", "");
    r = k && l ? open_ratio(*k, *l) : -1;
    target(fmt::format("{}  keel / LMDB (open + first lookup)", w), r, r <= 1.0, "<= 1x");
    if (k && l)
      fmt::print("    keel {:.3f} ms, LMDB {:.3f} ms open+lookup (medians); fork->answer keel {:.2f} ms, LMDB {:.2f} ms\n",
                 x(*k, "open_ms"), x(*l, "open_ms"), x(*k, "total_ms"), x(*l, "total_ms"));
    if (const result* rd = find("restart-clean", "redis", ""))
      fmt::print("    redis RDB load to first GET: {:.1f} ms (fork->answer)\n", x(*rd, "total_ms"));
  }
  {
    const result* k = find("restart-kill9", "keel", "");
    const double ms = k ? x(*k, "open_ms") : -1;
    if (ms < 0) fmt::print("{:<58} {:>9}   (target {:<10}) not measured\n", "restart-kill9  keel open (recovery) + first lookup", "n/a", "< 50 ms");
    else fmt::print("{:<58} {:>6.2f} ms   (target {:<10}) {}\n", "restart-kill9  keel open (recovery) + first lookup", ms,
                    "< 50 ms", ms < 50 ? "met" : "MISSED");
  }
  {
    const std::string v = "txn=1 mode=sync";
    const result *k = find("overwrite", "keel", v), *l = find("overwrite", "lmdb", v);
    r = k && l && !k->hist.empty() && !l->hist.empty() ? k->hist.percentile(0.5) / l->hist.percentile(0.5) : -1;
    target("overwrite txn=1 sync  keel / LMDB commit p50", r, r <= 0.6, "<= 0.6x");
  }
  {
    const result* k = find("multi-process", "keel", fmt::format("readers={}", c.readers));
    r = k ? x(*k, "reader_ratio") : -1;
    target(fmt::format("multi-process  keel readers with writer / alone (R={})", c.readers), r, r >= 0.6, ">= 0.6x");
  }
  const std::uint64_t m = mismatches();
  fmt::print("\nconsistency: {}\n", m ? fmt::format("{} MISMATCHES (see ** lines above)", m) : std::string("every check passed"));
}

void reporter::write_json(const config& c, const std::string& path) const {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) die("cannot write " + path);
  fmt::print(f, "{{\"num\": {}, \"value_size\": {}, \"results\": [\n", c.num, c.value_size);
  for (std::size_t i = 0; i < results_.size(); ++i) {
    const result& r = results_[i];
    fmt::print(f, "  {{\"workload\": {}, \"system\": {}, \"variant\": {}, \"ops\": {}, \"secs\": {}, \"ns_per_op\": {}, "
                  "\"mb_per_s\": {}, \"mismatches\": {}",
               json_str(r.workload), json_str(r.system), json_str(r.variant), r.ops, r.secs, r.ns_per_op, r.mb_per_s,
               r.mismatches);
    if (!r.hist.empty())
      fmt::print(f, ", \"p50_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"max_ns\": {}, \"samples\": {}", r.hist.percentile(0.5),
                 r.hist.percentile(0.99), r.hist.percentile(0.999), r.hist.max(), r.hist.count());
    for (const auto& [k, v] : r.extra) fmt::print(f, ", {}: {}", json_str(k), v);
    fmt::print(f, ", \"note\": {}}}{}\n", json_str(r.note), i + 1 < results_.size() ? "," : "");
  }
  fmt::print(f, "]}}\n");
  std::fclose(f);
}

}  // namespace kb
