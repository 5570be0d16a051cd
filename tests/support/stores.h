// Looking at a store's files from a test: all three files as one string (to
// show a call left them untouched) and a check_report's findings as text
// (for INFO). Header-only.
#pragma once

#include <keel/check.h>

#include <string>

#include "support/temp_dir.h"

namespace keel_test {

// The data file, the log and the journal, as one string.
inline std::string all_files(const std::string& path) {
  const store_files f = read_store(path);
  return f.data + "|" + f.log + "|" + f.journal;
}

// Every problem and note of a check report, one a line.
inline std::string dump(const keel::check_report& r) {
  std::string s;
  for (const auto& p : r.problems) s += "  PROBLEM " + p.where + " @" + std::to_string(p.offset) + ": " + p.what + "\n";
  for (const auto& p : r.notes) s += "  note " + p.where + " @" + std::to_string(p.offset) + ": " + p.what + "\n";
  return s;
}

}  // namespace keel_test
