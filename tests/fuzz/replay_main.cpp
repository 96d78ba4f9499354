// Replay driver for fuzz targets in ordinary (non-libFuzzer) builds: runs
// LLVMFuzzerTestOneInput over every file given (directories are walked).
// A crash or sanitizer report fails the unit test that runs it.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static int replay(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(buf.data(), buf.size());
  return 1;
}

int main(int argc, char** argv) {
  int n = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file()) n += replay(e.path());
    } else {
      n += replay(p);
    }
  }
  // Always also run the empty input and a few degenerate ones.
  const uint8_t zeros[64] = {};
  LLVMFuzzerTestOneInput(nullptr, 0);
  LLVMFuzzerTestOneInput(zeros, sizeof zeros);
  std::printf("replayed %d corpus inputs\n", n);
  if (n == 0) {
    std::fprintf(stderr, "no corpus inputs found: give a corpus directory\n");
    return 1;
  }
  return 0;
}
