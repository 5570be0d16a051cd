#include "adapter_boost.h"
#include "systems.h"

namespace kb {
void run_boost(const config& c, reporter& r) { run_system<boost_map>(c, r); }
std::unique_ptr<live_reads> live_boost(const config& c, const std::string& d) { return open_live_reads<boost_map>(c, d); }
fill_outcome fill_boost(const config& c, const std::string& d) { return fill_once_of<boost_map>(c, d); }
}  // namespace kb
