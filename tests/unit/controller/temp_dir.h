// A temporary directory removed after the test.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace storcrypt::controller::test {
struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "storcrypt-ut-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::string path;
};
}  // namespace storcrypt::controller::test
