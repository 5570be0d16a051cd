// keel-bench: the restart child and restart-interleaved. Each system's own
// restart workload runs right after that system's fills, minutes away from
// the others', and this machine's speed drifts over minutes; here every
// system's store is built first, then each round opens each store once in
// a fresh process, so the drift moves all systems alike. The figure is each
// system's median; a ratio between two systems is the median of their
// per-round ratios (reporter.cc time_ratio). docs/BENCH.md.
#include "restart.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "process.h"
#include "systems.h"

namespace kb {

std::vector<std::string> child_argv(const config& c, const std::string& kind, const std::string& system,
                                    const std::string& dir) {
  return {"--child=" + kind, "--system=" + system, "--dir=" + dir, fmt::format("--num={}", c.num),
          fmt::format("--value_size={}", c.value_size), fmt::format("--huge_pages={}", c.huge_pages ? 1 : 0)};
}

open_answer open_child(const config& c, const std::string& system, const std::string& dir,
                       const std::vector<std::string>& extra) {
  auto args = child_argv(c, "open", system, dir);
  args.insert(args.end(), extra.begin(), extra.end());
  open_answer a;
  const auto t0 = clk::now();
  child_proc ch = spawn(c.self, args);
  const std::string line = read_line(ch, 600);
  a.total_ms = secs_since(t0) * 1e3;
  const auto f = parse_fields(line);
  a.main_ms = field(f, "main_ms");
  a.open_ms = field(f, "open_ms");
  if (field(f, "found") != 1) ++a.mismatches;
  const auto f2 = parse_fields(read_line(ch, 600));
  a.recovered = field(f2, "recovered");
  if (field(f2, "mismatches") != 0) ++a.mismatches;
  if (wait_exit(ch) != 0) ++a.mismatches;
  return a;
}

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_restart_interleaved(const config& c, reporter& rep) {
  struct sys {
    std::string name, dir;
    std::vector<double> open_ms, main_ms, total_ms;
    std::uint64_t mismatches = 0;
  };
  std::vector<sys> ss;
  for (const auto& s : all_systems()) {
    if (!c.want_system(s.name) || !s.restart_store) continue;
    sys x;
    x.name = s.name;
    x.dir = c.dir + "/restart-interleaved-" + s.name;
    s.restart_store(c, x.dir);
    ss.push_back(std::move(x));
  }
  if (ss.empty()) return;
  ::sync();  // the fills' write-back must not run during the opens
  const int rounds = c.restart_reps;
  // Round r starts with system r mod n, so that none always opens first
  // (after the parent's idle wait) or always right after another's exit.
  for (int round = 0; round < rounds; ++round)
    for (std::size_t j = 0; j < ss.size(); ++j) {
      sys& x = ss[(j + std::size_t(round)) % ss.size()];
      const open_answer a = open_child(c, x.name, x.dir);
      x.open_ms.push_back(a.open_ms);
      x.main_ms.push_back(a.main_ms);
      x.total_ms.push_back(a.total_ms);
      x.mismatches += a.mismatches;
    }
  std::string order;
  for (const auto& x : ss) order += (order.empty() ? "" : " ") + x.name;
  for (auto& x : ss) {
    result r;
    r.workload = "restart-interleaved";
    r.system = x.name;
    r.ops = std::uint64_t(rounds);
    r.mismatches = x.mismatches;
    r.extra["open_ms"] = median(x.open_ms);
    r.extra["main_ms"] = median(x.main_ms);
    r.extra["total_ms"] = median(x.total_ms);
    std::string each;
    for (std::size_t k = 0; k < x.open_ms.size(); ++k) {
      // time_ratio pairs two systems' round_k figures: the open + first lookup.
      r.extra[fmt::format("round_{}", k)] = x.open_ms[k];
      each += fmt::format("{}{:.3f}", k ? " " : "", x.open_ms[k]);
    }
    r.note = fmt::format("{} entries; median of {} rounds, open+lookup ms per round: {}; each round one open per system, "
                         "round r from the r-th of: {}",
                         c.num, rounds, each, order);
    rep.add(std::move(r));
  }
  for (const auto& x : ss) std::filesystem::remove_all(x.dir);
}

}  // namespace kb
