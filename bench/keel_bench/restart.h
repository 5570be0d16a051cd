// keel-bench: the restart child, shared by each system's own `restart`
// workload (suite.h) and by `restart-interleaved` (restart.cc): a child
// process (fork + exec of keel-bench) that opens a store and answers one
// lookup, timed from inside and from the parent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace kb {

// argv for a child of `kind` (open, writer, reader, mpwriter) of `system`
// over the store in `dir`, with this run's sizes.
std::vector<std::string> child_argv(const config& c, const std::string& kind, const std::string& system,
                                    const std::string& dir);

// What one open child reported, in ms (-1: not reported).
struct open_answer {
  double total_ms = -1;  // parent: before fork to reading the answer
  double main_ms = -1;   // child: main() to the first answered lookup
  double open_ms = -1;   // child: open + first lookup
  double recovered = 0;  // redo records replayed by the open
  std::uint64_t mismatches = 0;
};
// Runs one open child; extra flags are appended to its argv. A missing or
// wrong answer, or a non-zero exit, counts as a mismatch.
open_answer open_child(const config& c, const std::string& system, const std::string& dir,
                       const std::vector<std::string>& extra = {});

// The median (the upper middle one for an even count); -1 for none.
double median(std::vector<double> v);

// restart-interleaved: every wanted persistent system's store is filled and
// closed, then rounds of one open child per system in turn (docs/BENCH.md).
void run_restart_interleaved(const config& c, reporter& rep);

}  // namespace kb
