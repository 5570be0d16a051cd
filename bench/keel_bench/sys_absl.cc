#include "adapter_ram.h"
#include "systems.h"

namespace kb {
void run_absl(const config& c, reporter& r) { run_system<absl_hash>(c, r); }
void run_btree(const config& c, reporter& r) { run_system<absl_btree>(c, r); }
}  // namespace kb
