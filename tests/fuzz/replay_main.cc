// Runs a fuzz target (linked in) over every file of the corpus directories
// or files named on the command line, in name order: how CTest replays the
// committed corpus with the project's compiler (no libFuzzer needed). A
// failing input aborts, and the name printed last is the culprit.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...  (no inputs found)\n", argv[0]);
    return 2;
  }
  using clk = std::chrono::steady_clock;
  const auto t0 = clk::now();
  double slowest = 0;
  std::string slowest_name;
  for (const auto& f : files) {
    std::printf("%s\n", f.filename().c_str());
    std::fflush(stdout);
    std::ifstream in(f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto t = clk::now();
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    const double s = std::chrono::duration<double>(clk::now() - t).count();
    if (s > slowest) {
      slowest = s;
      slowest_name = f.filename().string();
    }
  }
  std::printf("replayed %zu inputs in %.2f s (slowest %s: %.0f ms)\n", files.size(),
              std::chrono::duration<double>(clk::now() - t0).count(), slowest_name.c_str(), slowest * 1000);
  return 0;
}
