// Fuzz the admin command's inputs: argv (every noun, verb and option of the
// CLI's table) and the content of the files it reads, through run_cli() as
// storcrypt's main runs it. The transport encodes each request as it would be
// sent (so bytes the JSON serializer would refuse must have been refused
// before) and answers "unavailable". Invariants: no crash, no uncaught
// exception (an abort), an exit code from storcrypt(8)'s EXIT STATUS.
//
// Input: argv words separated by NUL, a double NUL, then the file content.
// A word "@F" (and "-", so nothing waits on stdin) names a file holding
// that content.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/controller/client.h"

namespace {

const std::string& input_file() {
  static const std::string path = [] {
    std::string t = (std::filesystem::temp_directory_path() / "storcrypt-cli-fuzz-XXXXXX").string();
    int fd = ::mkstemp(t.data());
    if (fd < 0) std::abort();
    ::close(fd);
    return t;
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace storcrypt;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto split = in.find(std::string_view("\0\0", 2));
  std::string_view words = in.substr(0, split);
  std::string_view content = split == std::string_view::npos ? std::string_view() : in.substr(split + 2);
  {
    std::ofstream f(input_file(), std::ios::binary | std::ios::trunc);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  std::vector<std::string> args{"storcrypt"};
  for (size_t pos = 0; pos <= words.size() && args.size() < 32;) {
    size_t end = words.find('\0', pos);
    if (end == std::string_view::npos) end = words.size();
    std::string w(words.substr(pos, end - pos));
    args.push_back(w == "@F" || w == "-" ? input_file() : w);
    pos = end + 1;
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());

  controller::ClientContext cc;
  cc.socket_path = "/nonexistent/storcrypt-fuzz.sock";
  cc.transport = [](const std::string& method, const nlohmann::json& params) -> Result<nlohmann::json> {
    auto line = controller::encode_request(method, params);
    if (!line.ok()) return std::move(line).error();
    return Error(ErrorCode::kUnavailable, "fuzz: no daemon");
  };
  // Quiet: help texts and errors would flood the fuzzer's output.
  auto* out = std::cout.rdbuf(nullptr);
  auto* err = std::cerr.rdbuf(nullptr);
  int rc = controller::run_cli(static_cast<int>(argv.size()), argv.data(), cc, "fuzz");
  std::cout.rdbuf(out);
  std::cerr.rdbuf(err);
  static const std::set<int> kDocumented = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 70};
  if (!kDocumented.count(rc)) std::abort();
  return 0;
}
