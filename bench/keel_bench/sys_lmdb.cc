#include "adapter_lmdb.h"
#include "systems.h"

namespace kb {
void run_lmdb(const config& c, reporter& r) { run_system<lmdb_kv>(c, r); }
int child_lmdb(const config& c, const child_args& a) { return run_child<lmdb_kv>(c, a); }
std::unique_ptr<live_reads> live_lmdb(const config& c, const std::string& d) { return open_live_reads<lmdb_kv>(c, d); }
void restart_store_lmdb(const config& c, const std::string& d) { make_restart_store<lmdb_kv>(c, d); }
fill_outcome fill_lmdb(const config& c, const std::string& d) { return fill_once_of<lmdb_kv>(c, d); }
}  // namespace kb
