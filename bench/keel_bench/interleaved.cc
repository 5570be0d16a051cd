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

namespace {

// An interleaved result's figures from its per-round ns: the median round
// as ns_per_op, and every round as round_k (which time_ratio pairs between
// systems). Returns the rounds as text, for the note.
std::string take_rounds(result& r, const std::vector<double>& ns) {
  std::vector<double> sorted = ns;
  std::sort(sorted.begin(), sorted.end());
  r.ns_per_op = sorted[sorted.size() / 2];
  std::string rounds;
  for (std::size_t k = 0; k < ns.size(); ++k) {
    r.extra[fmt::format("round_{}", k)] = ns[k];
    rounds += fmt::format("{}{:.0f}", k ? " " : "", ns[k]);
  }
  return rounds;
}

}  // namespace

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
    const std::string rounds = take_rounds(r, ns[i]);
    r.mb_per_s = double(q.size()) * double(8 + c.value_size) / (r.ns_per_op * double(q.size()) / 1e9) / 1e6;
    r.mismatches = bad[i];
    r.note = fmt::format("median of {} rounds, ns per pass: {}; each round one pass of {} lookups per system, round r from the r-th of: {}",
                         c.interleave_rounds, rounds, q.size(), order);
    rep.add(std::move(r));
  }
  live.clear();
  for (const auto& s : all_systems()) std::filesystem::remove_all(c.dir + "/interleaved-" + s.name);
}


// fill-interleaved: every round gives each wanted system with a fill one
// fresh store of --num random keys (fill_once: the largest --txn, the first
// --modes), in turn, so that a drift of the machine over the minutes of a
// run moves all systems alike instead of whichever filled then. The write-
// back of the previous fill is flushed first (its files are gone, but the
// kernel may still be writing them), and round r starts with the r-th
// system. Reported as read-interleaved's passes are: each system's median
// round, and ratios as medians of per-round ratios (reporter.cc).
// docs/BENCH.md.
void run_fill_interleaved(const config& c, reporter& rep) {
  std::vector<const system_entry*> sys;
  for (const auto& s : all_systems())
    if (c.want_system(s.name) && s.fill) sys.push_back(&s);
  if (sys.empty()) return;
  std::vector<std::vector<double>> ns(sys.size());
  std::vector<std::vector<process_usage>> use(sys.size());
  std::vector<std::uint64_t> bad(sys.size(), 0);
  std::vector<double> secs(sys.size(), 0);
  std::vector<bool> txn(sys.size(), false);
  for (int round = 0; round < c.fill_rounds; ++round)
    for (std::size_t j = 0; j < sys.size(); ++j) {
      const std::size_t i = (j + std::size_t(round)) % sys.size();
      const std::string dir = c.dir + "/fill-interleaved-" + sys[i]->name;
      ::sync();
      const fill_outcome f = sys[i]->fill(c, dir);
      std::filesystem::remove_all(dir);
      secs[i] += f.secs;
      bad[i] += f.bad;
      txn[i] = f.txn;
      ns[i].push_back(f.secs * 1e9 / double(c.num));
      use[i].push_back(f.usage);
    }
  std::string order;
  for (const system_entry* s : sys) order += (order.empty() ? "" : " ") + std::string(s->name);
  const mode m = c.modes.front();
  for (std::size_t i = 0; i < sys.size(); ++i) {
    result r;
    r.workload = "fill-interleaved";
    r.system = sys[i]->name;
    r.variant = txn[i] ? variant(c.fill_txn(), m) : "";
    r.ops = c.num * std::uint64_t(c.fill_rounds);
    r.secs = secs[i];
    const std::string rounds = take_rounds(r, ns[i]);
    r.mb_per_s = double(8 + c.value_size) / r.ns_per_op * 1e3;
    r.mismatches = bad[i];
    // Where each round's time went, summed over the process's threads: the
    // kernel's share is mostly page faults on fresh file pages (whose price
    // varies from day to day on a VM), user time is the map's own work.
    std::string cost;
    for (std::size_t k = 0; k < use[i].size(); ++k) {
      const process_usage& u = use[i][k];
      r.extra[fmt::format("round_{}_sys_s", k)] = u.sys_s;
      r.extra[fmt::format("round_{}_user_s", k)] = u.user_s;
      r.extra[fmt::format("round_{}_faults", k)] = double(u.faults);
      cost += fmt::format("{}{:.2f}/{:.2f}/{}k", k ? " " : "", u.sys_s, u.user_s, (u.faults + 500) / 1000);
    }
    r.note = fmt::format("median of {} rounds, ns per insert: {}; each round one fresh fill of {} keys per system, round r "
                         "from the r-th of: {}; per round kernel s / user s / page faults, all threads: {}",
                         c.fill_rounds, rounds, c.num, order, cost);
    rep.add(std::move(r));
  }
}

}  // namespace kb
