#include "adapter_keel.h"
#include "systems.h"

namespace kb {
void run_keel(const config& c, reporter& r) { run_system<keel_hash>(c, r); }
int child_keel(const config& c, const child_args& a) { return run_child<keel_hash>(c, a); }
}  // namespace kb
