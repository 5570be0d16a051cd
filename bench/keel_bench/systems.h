// keel-bench: one entry point per system, each in its own translation unit
// (sys_*.cc) so the instantiations build in parallel.
#pragma once

#include "common.h"
#include "suite.h"

namespace kb {

struct system_entry {
  const char* name;
  void (*run)(const config&, reporter&);
  int (*child)(const config&, const child_args&);  // nullptr: no child modes
  const char* what;
};

const std::vector<system_entry>& all_systems();

void run_keel(const config&, reporter&);
int child_keel(const config&, const child_args&);
void run_keel_tree(const config&, reporter&);
int child_keel_tree(const config&, const child_args&);
void run_lmdb(const config&, reporter&);
int child_lmdb(const config&, const child_args&);
void run_boost(const config&, reporter&);
void run_absl(const config&, reporter&);
void run_btree(const config&, reporter&);
void run_redis(const config&, reporter&);

}  // namespace kb
