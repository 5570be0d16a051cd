// Looking into a B+tree from a test: detail::tree_check's problems, as text,
// and detail::tree_stat. Header-only.
#pragma once

#include <keel/keel.h>
#include <keel/tree_map.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace keel_test {

using tree_problems_t = std::vector<std::pair<std::uint64_t, std::string>>;

// What detail::tree_check finds in the tree at root (empty: none).
inline tree_problems_t tree_problems(const keel::store& db, std::uint64_t root) {
  return db.read([&](const keel::read_view& v) {
    tree_problems_t p;
    keel::detail::tree_check(v, root, p);
    return p;
  });
}

// The first `most` problems, one "[node N] what; " each.
inline std::string describe(const tree_problems_t& p, std::size_t most = 8) {
  std::ostringstream o;
  for (std::size_t i = 0; i < p.size() && i < most; ++i) o << "[node " << p[i].first << "] " << p[i].second << "; ";
  if (p.size() > most) o << "... " << p.size() << " problems";
  return o.str();
}

inline keel::detail::tree_stats tstat(const keel::store& db, std::uint64_t root) {
  return db.read([&](const keel::read_view& v) { return keel::detail::tree_stat(v, root); });
}

}  // namespace keel_test
