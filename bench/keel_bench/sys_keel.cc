#include "adapter_keel.h"
#include "systems.h"

namespace kb {
void run_keel(const config& c, reporter& r) { run_system<keel_hash>(c, r); }
int child_keel(const config& c, const child_args& a) { return run_child<keel_hash>(c, a); }
std::unique_ptr<live_reads> live_keel(const config& c, const std::string& d) { return open_live_reads<keel_hash>(c, d); }
void restart_store_keel(const config& c, const std::string& d) { make_restart_store<keel_hash>(c, d); }
fill_outcome fill_keel(const config& c, const std::string& d) { return fill_once_of<keel_hash>(c, d); }
}  // namespace kb
