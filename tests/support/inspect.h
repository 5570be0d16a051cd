// Small diagnostics shared by the hash-map and crash tests.
#pragma once

#include <sys/wait.h>

#include <cstring>
#include <keel/keel.h>
#include <sstream>
#include <string>

#include "file/format.h"

namespace keel_test {

// How a child process ended, for failure messages.
inline std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// A hash map's root block as stored (docs/FORMAT.md "Hash map").
inline keel::fmt::map_root read_root(const keel::store& db, std::uint64_t root) {
  return db.read([&](const keel::read_view& v) {
    keel::fmt::map_root r;
    std::memcpy(&r, v.bytes(root, sizeof r), sizeof r);
    return r;
  });
}

inline std::string describe(const keel::fmt::map_root& r) {
  std::ostringstream o;
  o << "size " << r.size << ", cur{groups " << r.cur.groups << ", used " << r.cur.used << ", max_probe "
    << r.cur.max_probe << "}, old{groups " << r.old.groups << ", used " << r.old.used << ", max_probe "
    << r.old.max_probe << "}, migrate " << r.migrate;
  return o.str();
}

}  // namespace keel_test
