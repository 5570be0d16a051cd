// keel-bench: read-interleaved. Each wanted system's store is filled and
// kept open, then every round runs one pass of the same random lookups on
// each system in turn. A machine whose speed drifts over minutes then moves
// all systems alike; the figure is each system's median pass, and a ratio
// between two systems is the median of their per-round ratios
// (reporter.cc). docs/BENCH.md.
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "systems.h"

namespace kb {

void run_interleaved(const config& c, reporter& rep) {
  std::vector<std::pair<std::string, std::unique_ptr<live_reads>>> live;
  for (const auto& s : all_systems()) {
    if (!c.want_system(s.name) || !s.live) continue;
    const std::string dir = c.dir + "/interleaved-" + s.name;
    live.emplace_back(s.name, s.live(c, dir));
  }
  if (live.empty()) return;
  ::sync();  // the fills' write-back must not run during the passes
  rng g{0x7265616400000000ull};
  std::vector<std::uint64_t> q(c.n_reads());
  for (auto& k : q) k = rkey(g.below(c.num));
  std::vector<std::vector<double>> ns(live.size());
  std::vector<std::uint64_t> bad(live.size(), 0);
  std::vector<double> secs(live.size(), 0);
  // Round r starts with system r mod n, so that no system always follows
  // the same one (whose data the shared L3 cache still holds).
  for (int round = 0; round < c.interleave_rounds; ++round)
    for (std::size_t j = 0; j < live.size(); ++j) {
      const std::size_t i = (j + std::size_t(round)) % live.size();
      const double s = live[i].second->pass(q, bad[i]);
      secs[i] += s;
      ns[i].push_back(s * 1e9 / double(q.size()));
    }
  std::string order;
  for (const auto& [name, _] : live) order += (order.empty() ? "" : " ") + name;
  for (std::size_t i = 0; i < live.size(); ++i) {
    result r;
    r.workload = "read-interleaved";
    r.system = live[i].first;
    r.ops = q.size() * std::uint64_t(c.interleave_rounds);
    r.secs = secs[i];
    std::vector<double> sorted = ns[i];
    std::sort(sorted.begin(), sorted.end());
    r.ns_per_op = sorted[sorted.size() / 2];
    r.mb_per_s = double(q.size()) * double(8 + c.value_size) / (r.ns_per_op * double(q.size()) / 1e9) / 1e6;
    r.mismatches = bad[i];
    std::string rounds;
    for (std::size_t k = 0; k < ns[i].size(); ++k) {
      r.extra[fmt::format("round_{}", k)] = ns[i][k];
      rounds += fmt::format("{}{:.0f}", k ? " " : "", ns[i][k]);
    }
    r.note = fmt::format("median of {} rounds, ns per pass: {}; each round one pass of {} lookups per system, round r from the r-th of: {}",
                         c.interleave_rounds, rounds, q.size(), order);
    rep.add(std::move(r));
  }
  live.clear();
  for (const auto& s : all_systems()) std::filesystem::remove_all(c.dir + "/interleaved-" + s.name);
}

}  // namespace kb
