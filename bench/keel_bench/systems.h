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
  // A filled store in dir for read-interleaved; nullptr: not part of it.
  std::unique_ptr<live_reads> (*live)(const config&, const std::string& dir) = nullptr;
  // Builds restart-interleaved's store in dir, closed; nullptr: not part of it.
  void (*restart_store)(const config&, const std::string& dir) = nullptr;
  // One timed fresh fill in dir for fill-interleaved (suite.h fill_once);
  // nullptr: not part of it.
  fill_outcome (*fill)(const config&, const std::string& dir) = nullptr;
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
std::unique_ptr<live_reads> live_keel(const config&, const std::string&);
std::unique_ptr<live_reads> live_keel_tree(const config&, const std::string&);
std::unique_ptr<live_reads> live_lmdb(const config&, const std::string&);
std::unique_ptr<live_reads> live_boost(const config&, const std::string&);
std::unique_ptr<live_reads> live_absl(const config&, const std::string&);
std::unique_ptr<live_reads> live_btree(const config&, const std::string&);
void restart_store_keel(const config&, const std::string&);
void restart_store_keel_tree(const config&, const std::string&);
void restart_store_lmdb(const config&, const std::string&);
fill_outcome fill_keel(const config&, const std::string&);
fill_outcome fill_lmdb(const config&, const std::string&);
fill_outcome fill_boost(const config&, const std::string&);
fill_outcome fill_absl(const config&, const std::string&);
// read-interleaved over the wanted systems that have a live store.
void run_interleaved(const config&, reporter&);
// fill-interleaved over the wanted systems that have a fill.
void run_fill_interleaved(const config&, reporter&);

}  // namespace kb
