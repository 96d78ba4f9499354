// Host tier fixture: a real storcryptd in a temporary state directory with
// its own socket (optionally inside a network namespace), driven only through
// the storcrypt binary.
#pragma once

#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cli_client.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::testing {

/// A policy file with a transport-mode PROTECT pair between 192.0.2.1 and
/// 192.0.2.2 for TCP port 5000: prot-out (SPI 0x2000) and prot-in (SPI
/// 0x2001), AES-GCM-256 with the named keys.
inline std::string protect_pair_policy(const std::string& out_key, const std::string& in_key) {
  std::string text;
  for (const auto& [dir, spi, key] : {std::tuple{"out", "0x2000", out_key}, std::tuple{"in", "0x2001", in_key}}) {
    text += std::string(text.empty() ? "" : "\n") + "Name = prot-" + dir + "\nDirection = " + dir +
            "bound\nLocalAddress = 192.0.2.1\nRemoteAddress = 192.0.2.2\nProtocol = TCP\nRemotePort = 5000\n"
            "Action = PROTECT\nSPI = " + spi + "\nEncryptionAlgorithm = AES-GCM-256\nEncryptionKey = " + key + "\n";
  }
  return text;
}

class Daemon : public ::testing::Test {
 protected:
  void SetUp() override {
    STORCRYPT_REQUIRE(storcrypt::testing::is_root(), "needs root (socket group storcrypt, setpriv)");
    STORCRYPT_REQUIRE(getgrnam("storcrypt") != nullptr, "needs group storcrypt (scripts/setup.sh)");
    std::string tmpl = (std::filesystem::temp_directory_path() / "storcrypt-ht-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    ::chmod(dir_.c_str(), 0755);
    sock_ = dir_ + "/api.sock";
    state_ = dir_ + "/state";
    conf_ = dir_ + "/storcrypt.conf";
    write_config("");
  }
  void TearDown() override {
    stop(SIGKILL);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  void write_config(const std::string& extra) {
    std::ofstream(conf_) << "# host test\nstate_directory = " << state_ << "\nsocket_path = " << sock_
                         << "\nlog_level = debug\n"
                         << extra;
  }

  // Start in the background: storcryptd exits its parent only once serving.
  void start() {
    std::vector<std::string> argv{STORCRYPTD_BIN, "--config", conf_};
    if (!env_.empty()) {
      argv.insert(argv.begin(), env_.begin(), env_.end());
      argv.insert(argv.begin(), "env");
    }
    if (!netns_.empty()) argv.insert(argv.begin(), {"ip", "netns", "exec", netns_});
    ProcessResult r = run(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json st = cli_json({"system", "status"});
    ASSERT_EQ(st["ok"], true) << st.dump();
    pid_ = st["result"]["pid"].get<pid_t>();
    ASSERT_GT(pid_, 1);
  }

  // Start with --foreground as a background process whose output goes to `log`
  // (for tests that read the daemon's log).
  void start_logged(const std::string& log) {
    std::string cmd = netns_.empty() ? "" : "ip netns exec " + netns_ + " ";
    if (!env_.empty()) cmd += "env ";
    for (const auto& e : env_) cmd += e + " ";
    cmd += std::string(STORCRYPTD_BIN) + " --foreground --config " + conf_ + " >" + log + " 2>&1 & echo $!";
    ProcessResult bg = sh(cmd);
    ASSERT_EQ(bg.exit_code, 0);
    pid_ = static_cast<pid_t>(std::stol(bg.out));
    // Wait until it serves (the CLI retries are the readiness probe).
    ProcessResult st;
    for (int i = 0; i < 3000; ++i) {
      st = cli({"system", "status"});
      if (st.exit_code == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(st.exit_code, 0) << st.err;
  }

  // Signal the daemon and wait until its process is gone.
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    while (::kill(pid_, 0) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pid_ = -1;
  }

  ProcessResult cli(std::vector<std::string> args, const std::string& bin = STORCRYPT_BIN) {
    return storcrypt_cli(sock_, std::move(args), bin);
  }
  nlohmann::json cli_json(std::vector<std::string> args) {
    nlohmann::json j = storcrypt_cli_json(sock_, std::move(args));
    if (!j.empty()) {
      EXPECT_EQ(j["version"], 1);
    }
    return j;
  }
  int64_t raise_test_event() {
    nlohmann::json j = cli_json({"event", "test"});
    return j["ok"] == true ? j["result"]["id"].get<int64_t>() : -1;
  }

  std::string dir_, sock_, state_, conf_;
  std::string netns_;             ///< start the daemon inside this namespace ("" = the test's)
  std::vector<std::string> env_;  ///< extra NAME=VALUE for the daemon
  pid_t pid_ = -1;
};

}  // namespace storcrypt::testing
