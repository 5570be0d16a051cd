// A fresh directory per test, removed afterwards (kept when KEEL_KEEP_TEST_FILES is set).
#pragma once

#include <string>

namespace keel_test {

class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

// Reads / writes a whole file as bytes (for byte surgery on store files).
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// A store's three files (data, -log, -journal) as bytes: a state to damage,
// cut or put back.
struct store_files {
  std::string data, log, journal;
  bool operator==(const store_files&) const = default;
};
inline store_files read_store(const std::string& path) {
  return {read_file(path), read_file(path + "-log"), read_file(path + "-journal")};
}
inline void write_store(const std::string& path, const store_files& f) {
  write_file(path, f.data);
  write_file(path + "-log", f.log);
  write_file(path + "-journal", f.journal);
}

}  // namespace keel_test
