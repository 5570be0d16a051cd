#include "adapter_keel_tree.h"
#include "systems.h"

namespace kb {
void run_keel_tree(const config& c, reporter& r) { run_system<keel_tree>(c, r); }
int child_keel_tree(const config& c, const child_args& a) { return run_child<keel_tree>(c, a); }
}  // namespace kb
