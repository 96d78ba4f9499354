// Host tier: one storcryptd in a test network namespace, driven only through
// the storcrypt binary (ike_cli_test.cpp, ike_flood_test.cpp). The binaries
// come from the test target's STORCRYPT_BIN / STORCRYPTD_BIN.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cli_client.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::testing {

/// One storcryptd in a namespace, driven through the storcrypt binary.
/// `extra_conf` is appended to its storcrypt.conf (`key = value` lines).
class IkeNode {
 public:
  IkeNode(const std::string& name, const TestNetns& ns, const std::string& extra_conf = "") : ns_(ns) {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("storcrypt-ike-" + name + "-XXXXXX")).string();
    dir_ = ::mkdtemp(tmpl.data());
    ::chmod(dir_.c_str(), 0755);
    sock_ = dir_ + "/api.sock";
    conf_ = dir_ + "/storcrypt.conf";
    // The IKE keys are left at their defaults (0.0.0.0,:: ports 500/4500) unless extra_conf sets them.
    std::ofstream(conf_) << "state_directory = " << dir_ << "/state\nsocket_path = " << sock_
                         << "\nlog_level = debug\n"
                         << extra_conf;
  }
  ~IkeNode() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      while (::kill(pid_, 0) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  IkeNode(const IkeNode&) = delete;
  IkeNode& operator=(const IkeNode&) = delete;

  void start() {
    ProcessResult r = run({"ip", "netns", "exec", ns_.name(), STORCRYPTD_BIN, "--config", conf_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json st = ok({"system", "status"});
    pid_ = st.value("pid", -1);
    ASSERT_GT(pid_, 1);
  }
  pid_t pid() const { return pid_; }
  ProcessResult cli(std::vector<std::string> args) { return storcrypt_cli(sock_, std::move(args)); }
  nlohmann::json cli_json(std::vector<std::string> args) { return storcrypt_cli_json(sock_, std::move(args)); }
  /// The result of a command that must succeed.
  nlohmann::json ok(std::vector<std::string> args) {
    nlohmann::json j = cli_json(args);
    EXPECT_EQ(j.value("ok", false), true) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << j.dump();
    return j.value("result", nlohmann::json::object());
  }
  std::vector<nlohmann::json> events(int code) {
    nlohmann::json r = ok({"event", "list", "--code", std::to_string(code)});
    std::vector<nlohmann::json> out;
    for (const auto& e : r.value("events", nlohmann::json::array())) out.push_back(e);
    return out;
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

 private:
  const TestNetns& ns_;
  std::string dir_, sock_, conf_;
  pid_t pid_ = -1;
};

/// Poll pred every 20 ms, at most ~30 s (a bound, not a timing assertion).
template <class F>
bool eventually(F pred, int tries = 1500) {
  for (int i = 0; i < tries; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace storcrypt::testing
