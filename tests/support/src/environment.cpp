#include "storcrypt/testing/environment.h"

#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "storcrypt/testing/process.h"

namespace storcrypt::testing {

bool require_all() {
  auto is_true = [](const char* v) {
    return v != nullptr && (std::string(v) == "1" || std::string(v) == "true" || std::string(v) == "yes");
  };
  return is_true(std::getenv("CI")) || is_true(std::getenv("STORCRYPT_REQUIRE_ALL"));
}

bool is_root() { return geteuid() == 0; }

bool can_use_netns() {
  if (!is_root()) return false;
  if (find_program("ip").empty()) return false;
  std::string name = "sc-probe-" + std::to_string(getpid());
  auto r = run({"ip", "netns", "add", name});
  if (r.exit_code != 0) return false;
  (void)run({"ip", "netns", "del", name});
  return true;
}

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  p += ":/usr/sbin:/sbin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string f = dir + "/" + name;
    if (access(f.c_str(), X_OK) == 0) return f;
  }
  return {};
}

}  // namespace storcrypt::testing
