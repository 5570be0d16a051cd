#include "adapter_ram.h"
#include "systems.h"

namespace kb {
void run_absl(const config& c, reporter& r) { run_system<absl_hash>(c, r); }
void run_btree(const config& c, reporter& r) { run_system<absl_btree>(c, r); }
std::unique_ptr<live_reads> live_absl(const config& c, const std::string& d) { return open_live_reads<absl_hash>(c, d); }
std::unique_ptr<live_reads> live_btree(const config& c, const std::string& d) { return open_live_reads<absl_btree>(c, d); }
fill_outcome fill_absl(const config& c, const std::string& d) { return fill_once_of<absl_hash>(c, d); }
}  // namespace kb
