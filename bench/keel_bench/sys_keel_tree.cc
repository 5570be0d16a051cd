#include "adapter_keel_tree.h"
#include "systems.h"

namespace kb {
void run_keel_tree(const config& c, reporter& r) { run_system<keel_tree>(c, r); }
int child_keel_tree(const config& c, const child_args& a) { return run_child<keel_tree>(c, a); }
std::unique_ptr<live_reads> live_keel_tree(const config& c, const std::string& d) { return open_live_reads<keel_tree>(c, d); }
void restart_store_keel_tree(const config& c, const std::string& d) { make_restart_store<keel_tree>(c, d); }
}  // namespace kb
