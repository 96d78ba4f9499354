// Host-tier helpers for the ike/ tests against strongSwan: charon-systemd in
// one namespace with its own strongswan.conf/swanctl.conf, and swanctl runs
// against it.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::testing {

inline const char* kCharonBinary = "/usr/sbin/charon-systemd";
inline const char* kNeedsCharon = "needs strongSwan (charon-systemd, swanctl: scripts/setup.sh)";

/// charon-systemd and swanctl are installed (skip with kNeedsCharon if not).
inline bool have_charon() { return access(kCharonBinary, X_OK) == 0 && !find_program("swanctl").empty(); }

/// charon in `ns` with configuration directory `dir` (removed afterwards).
/// `files` maps paths under swanctl/ (e.g. "x509ca/root.pem") to content;
/// swanctl.conf must be among them. The log has ike=2 and knl=2 (the SAD
/// lines name the SPIs charon installs).
class CharonLab {
 public:
  CharonLab(const TestNetns& ns, std::string dir, const std::map<std::string, std::string>& files)
      : ns_(ns), dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_ + "/swanctl");
    std::string conf = R"(charon {
  load_modular = yes
  port = 500
  port_nat_t = 4500
  retransmit_tries = 2
  retransmit_timeout = 1.0
  plugins {
    include /etc/strongswan.d/charon/*.conf
    vici {
      socket = unix://@DIR@/charon.vici
    }
  }
  filelog {
    main {
      path = @DIR@/charon.log
      default = 1
      ike = 2
      knl = 2
      cfg = 2
      flush_line = yes
    }
  }
  journal {
    default = -1
  }
}
swanctl {
  socket = unix://@DIR@/charon.vici
  load = pem pkcs1 pkcs8 x509 revocation constraints pubkey openssl random nonce
}
)";
    for (std::size_t at; (at = conf.find("@DIR@")) != std::string::npos;) conf.replace(at, 5, dir_);
    std::ofstream(dir_ + "/strongswan.conf") << conf;
    for (const auto& [path, content] : files) {
      const std::string full = dir_ + "/swanctl/" + path;
      std::filesystem::create_directories(std::filesystem::path(full).parent_path());
      std::ofstream(full) << content;
      if (path.rfind("private/", 0) == 0) chmod(full.c_str(), 0600);
    }
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      setenv("STRONGSWAN_CONF", (dir_ + "/strongswan.conf").c_str(), 1);
      execlp("ip", "ip", "netns", "exec", ns.name().c_str(), kCharonBinary, static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200 && !std::filesystem::exists(dir_ + "/charon.vici"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!std::filesystem::exists(dir_ + "/charon.vici")) {
      error_ = "charon did not create its vici socket";
      return;
    }
    auto r = swanctl({"--load-all", "--noprompt", "--file", dir_ + "/swanctl/swanctl.conf"});
    if (r.exit_code != 0) error_ = "swanctl --load-all failed: " + r.out + r.err;
  }
  ~CharonLab() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st = 0;
      for (int i = 0; i < 100 && waitpid(pid_, &st, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (waitpid(pid_, &st, WNOHANG) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
      }
    }
    std::filesystem::remove_all(dir_);
  }
  CharonLab(const CharonLab&) = delete;
  CharonLab& operator=(const CharonLab&) = delete;

  const std::string& error() const { return error_; }
  std::string log() const {
    std::ifstream f(dir_ + "/charon.log");
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  /// swanctl <args> inside the namespace, against this charon.
  ProcessResult swanctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"ip",
                                     "netns",
                                     "exec",
                                     ns_.name(),
                                     "env",
                                     "STRONGSWAN_CONF=" + dir_ + "/strongswan.conf",
                                     "SWANCTL_DIR=" + dir_ + "/swanctl",
                                     "swanctl"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

 private:
  const TestNetns& ns_;
  std::string dir_;
  pid_t pid_ = -1;
  std::string error_;
};

}  // namespace storcrypt::testing
