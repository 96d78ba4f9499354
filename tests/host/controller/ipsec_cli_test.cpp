// Host tier: `storcrypt policy|key|ipsec` against a real storcryptd running
// inside a network namespace the test creates, with the kernel's XFRM as the
// judge (`ip -n NS xfrm policy|state`). The host kernel may lack ESP: then a
// PROTECT list must fail to enable with the "unsupported" exit code and leave
// nothing behind; with ESP the SAs must be in the kernel.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <regex>

#include "daemon_fixture.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

namespace {

using nlohmann::json;
using storcrypt::testing::Daemon;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::TestNetns;

constexpr const char* kKeyHex = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4";

class IpsecCli : public Daemon {
 protected:
  void SetUp() override {
    Daemon::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    ns_ = std::make_unique<TestNetns>("scipsec");
    STORCRYPT_REQUIRE(ns_->ok(), "needs network namespaces (ip netns add)");
    netns_ = ns_->name();
  }
  void TearDown() override {
    Daemon::TearDown();
    ns_.reset();
  }
  std::string xfrm(const std::string& what) {
    std::string out;
    EXPECT_EQ(ns_->ip("xfrm " + what, &out), 0);
    return out;
  }
  static int count_lines_starting(const std::string& text, const std::string& prefix) {
    int n = 0;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) n += l.rfind(prefix, 0) == 0;
    return n;
  }
  std::string file(const std::string& name, const std::string& text, mode_t mode = 0600) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  std::unique_ptr<TestNetns> ns_;
};

TEST_F(IpsecCli, EditTestCommitEnableDisableJudgedByTheKernel) {
  start();
  // Build the list with the editing verbs.
  ProcessResult r =
      cli({"policy", "add", "--name", "out-tcp", "--direction", "outbound", "--protocol", "TCP", "--action", "BYPASS"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"policy", "add", "--name", "drop-telnet", "--direction", "outbound", "--protocol", "TCP", "--remote-port",
           "23", "--action", "DISCARD", "--position", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"policy", "add", "--name", "in-all", "--direction", "inbound", "--action", "BYPASS"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"policy", "clone", "drop-telnet", "drop-ftp"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"policy", "modify", "drop-ftp", "--remote-port", "20-21"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("RemotePort = 20-21"), std::string::npos) << r.out;
  r = cli({"policy", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(1 +drop-telnet +outbound .* 23 .*DISCARD)"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(2 +drop-ftp +outbound .* 20-21 .*DISCARD)"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(3 +out-tcp )"))) << r.out;

  // Bad input: exit code 2 and the field named; unknown policy: exit code 3.
  r = cli({"policy", "add", "--name", "x", "--direction", "sideways", "--action", "BYPASS"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Direction"), std::string::npos) << r.err;
  r = cli({"policy", "move", "nope", "1"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  r = cli({"policy", "add", "--name", "z", "--direction", "outbound", "--action", "BYPASS", "--position", "0"});
  EXPECT_EQ(r.exit_code, 2) << "position 0 must be refused, not appended: " << r.out;
  r = cli({"key", "import", "-", "--passphrase-file", "-"});
  EXPECT_EQ(r.exit_code, 2) << r.err;

  // The test tool on the uncommitted list.
  r = cli({"policy", "test", "--direction", "outbound", "--protocol", "TCP", "--local", "192.0.2.1", "--remote",
           "192.0.2.2", "--remote-port", "1-100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("remote 20-21: DISCARD by drop-ftp"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("remote 23: DISCARD by drop-telnet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("remote 24-100: BYPASS by out-tcp"), std::string::npos) << r.out;

  // Export, then re-import the file: the same list.
  std::string exported = dir_ + "/list.txt";
  ASSERT_EQ(cli({"policy", "export", exported}).exit_code, 0);
  std::string before = cli({"policy", "list"}).out;
  ASSERT_EQ(cli({"policy", "import", exported}).exit_code, 0);
  EXPECT_EQ(cli({"policy", "list"}).out, before);

  ASSERT_EQ(cli({"policy", "commit"}).exit_code, 0);
  EXPECT_EQ(count_lines_starting(xfrm("policy"), "src"), 0) << "commit of a disabled node touched the kernel";
  r = cli({"ipsec", "enable"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string pol = xfrm("policy");
  // The kernel's view: port 23 and 20-21 (as port/mask pairs) blocked at the first priorities.
  EXPECT_TRUE(std::regex_search(
      pol, std::regex(R"(src 0\.0\.0\.0/0 dst 0\.0\.0\.0/0 proto tcp dport 23 \n\s*dir out action block priority 1000 )")))
      << pol;
  EXPECT_NE(pol.find("dport 20"), std::string::npos) << pol;
  EXPECT_NE(pol.find("priority 1001"), std::string::npos) << pol;
  int ours = count_lines_starting(pol, "src");
  EXPECT_GE(ours, 5);

  json st = cli_json({"ipsec", "status"});
  ASSERT_EQ(st["ok"], true) << st.dump();
  EXPECT_EQ(st["result"]["enabled"], true);
  EXPECT_EQ(st["result"]["policies"][0]["name"], "drop-telnet");
  EXPECT_EQ(st["result"]["policies"][0]["action"], "DISCARD");

  // Default DENYALL adds catch-alls; DENY keeps the control exemptions.
  ASSERT_EQ(cli({"ipsec", "default", "DENYALL"}).exit_code, 0);
  std::string denyall = xfrm("policy");
  EXPECT_EQ(denyall.find("dport 500 "), std::string::npos) << "DENYALL must not exempt IKE";
  ASSERT_EQ(cli({"ipsec", "default", "DENY"}).exit_code, 0);
  EXPECT_NE(xfrm("policy").find("dport 500 "), std::string::npos) << "DENY exempts IKE";
  r = cli({"ipsec", "default", "MAYBE"});
  EXPECT_EQ(r.exit_code, 2) << r.err;

  // A foreign policy survives disable; ours are gone.
  ASSERT_EQ(ns_->ip("xfrm policy add src 203.0.113.1 dst 203.0.113.2 dir out priority 10 action allow"), 0);
  ASSERT_EQ(cli({"ipsec", "disable"}).exit_code, 0);
  pol = xfrm("policy");
  EXPECT_EQ(count_lines_starting(pol, "src"), 1) << pol;
  EXPECT_NE(pol.find("203.0.113.1"), std::string::npos) << pol;
}

TEST_F(IpsecCli, KeysNeverInListingsArgvOrLogsAndProtectEnforcedOrRefusedCleanly) {
  env_ = {"STORCRYPT_IPSEC_WATCH_SECONDS=1"};
  std::string log = dir_ + "/daemon.log";
  start_logged(log);
  std::string hex = file("k.hex", std::string(kKeyHex) + "\n");
  ProcessResult r = cli({"key", "create", "k1", "--algorithm", "AES-GCM-256", "--hex-file", hex});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli({"key", "create", "short", "--algorithm", "AES-GCM-256", "--hex-file", file("s.hex", "0011\n")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("36"), std::string::npos) << "the error says the length needed: " << r.err;
  r = cli({"key", "list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(k1 +AES-GCM-256 +36)"))) << r.out;

  // Export: 0600, passphrase from a file, no value in clear; a wrong passphrase on import is refused.
  std::string pass = file("pass", "correct horse battery staple\n");
  std::string keyfile = dir_ + "/keys.scx";
  r = cli({"key", "export", keyfile, "--passphrase-file", pass});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat sb {};
  ASSERT_EQ(::stat(keyfile.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  std::ifstream kf(keyfile);
  std::string ktext((std::istreambuf_iterator<char>(kf)), std::istreambuf_iterator<char>());
  EXPECT_EQ(ktext.find(kKeyHex), std::string::npos);
  r = cli({"key", "import", keyfile, "--passphrase-file", file("wrong", "wrong horse battery staple\n")});
  EXPECT_EQ(r.exit_code, 6) << r.err;  // permission: wrong passphrase
  r = cli({"key", "import", keyfile, "--passphrase-file", pass});
  EXPECT_EQ(r.exit_code, 4) << r.err;  // conflict: exists
  r = cli({"key", "import", keyfile, "--passphrase-file", pass, "--replace"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  std::string list = file("list.txt", storcrypt::testing::protect_pair_policy("k1", "k1"));
  ASSERT_EQ(cli({"policy", "import", list}).exit_code, 0);
  r = cli({"key", "delete", "k1"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("prot-out"), std::string::npos) << r.err;
  ASSERT_EQ(cli({"policy", "commit"}).exit_code, 0);
  r = cli({"ipsec", "enable"});
  std::string state = xfrm("state");
  if (r.exit_code == 0) {
    // This kernel has ESP: both SAs are there with the imported key.
    EXPECT_EQ(count_lines_starting(state, "src"), 2) << state;
    EXPECT_NE(state.find("rfc4106(gcm(aes))"), std::string::npos) << state;
    ASSERT_EQ(cli({"ipsec", "disable"}).exit_code, 0);
  } else {
    // No ESP here: refused as unsupported, with the reason, and nothing left behind.
    EXPECT_EQ(r.exit_code, 10) << r.err;
    EXPECT_NE(r.err.find("kernel"), std::string::npos) << r.err;
    EXPECT_EQ(count_lines_starting(state, "src"), 0) << state;
    EXPECT_EQ(count_lines_starting(xfrm("policy"), "src"), 0) << xfrm("policy");
    EXPECT_EQ(cli_json({"ipsec", "status"})["result"]["enabled"], false);
  }

  // The key value never reached the daemon's (debug) log or the state database in clear.
  std::ifstream lf(log);
  std::string logtext((std::istreambuf_iterator<char>(lf)), std::istreambuf_iterator<char>());
  EXPECT_NE(logtext.find("key.create"), std::string::npos) << "the debug log was not captured";
  EXPECT_EQ(logtext.find(kKeyHex), std::string::npos);
  ProcessResult db =
      storcrypt::testing::sh("grep -rl " + std::string(kKeyHex).substr(0, 24) + " " + state_ + " --exclude=ipsec-keys");
  EXPECT_NE(db.exit_code, 0) << "key value found in: " << db.out;
  ASSERT_EQ(::stat((state_ + "/ipsec-keys").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
}

}  // namespace
