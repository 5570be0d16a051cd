#include "adapter_boost.h"
#include "systems.h"

namespace kb {
void run_boost(const config& c, reporter& r) { run_system<boost_map>(c, r); }
}  // namespace kb
