// Host tier: two storcryptd, each in its own network namespace (joined by a
// veth pair, TEST-NET-1 192.0.2.1 <-> 192.0.2.2), configured only through
// `storcrypt`: an internal root CA and endpoint certificate on each node,
// each root exported and added to the other's truststore for ipsec, `ike peer
// add` on both, `ike peer up` on one. The daemons bind the real IKE ports
// (UDP 500/4500) in their namespaces and program XFRM there. Judged by `ike
// list` on both sides (IKE SA established with the CNSA suite) and by the
// event log. The host kernel may lack ESP: then the CHILD_SA cannot be
// installed and the daemon must say so (event 2024 with the kernel's reason)
// while the IKE SA stands; with ESP the CHILD_SA must be listed on both sides.
// Wrong root: the node that does not trust the peer's root raises event 2020
// naming the peer certificate's subject and issuer.
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ike_node.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

namespace {

using nlohmann::json;
using storcrypt::testing::eventually;
using storcrypt::testing::IkeNode;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::run;
using storcrypt::testing::TestNetns;
using storcrypt::testing::VethPair;

class IkeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    STORCRYPT_REQUIRE(storcrypt::testing::is_root(), "needs root (network namespaces, UDP 500)");
    STORCRYPT_REQUIRE(getgrnam("storcrypt") != nullptr, "needs group storcrypt (scripts/setup.sh)");
    net_ = std::make_unique<VethPair>();
    STORCRYPT_REQUIRE(net_->ok, "needs network namespaces and veth (ip netns add, ip link add type veth)");
    left_ = std::make_unique<IkeNode>("left", net_->left);
    right_ = std::make_unique<IkeNode>("right", net_->right);
    left_->start();
    right_->start();
    if (HasFatalFailure()) return;
    left_->ok({"cert", "create", "--cn", "left", "--org", "storcrypt-test", "--ip", "192.0.2.1"});
    right_->ok({"cert", "create", "--cn", "right", "--org", "storcrypt-test", "--ip", "192.0.2.2"});
  }
  void TearDown() override {
    left_.reset();
    right_.reset();
    net_.reset();
  }
  /// `to` trusts `from`'s internal root for ipsec (exported to a file, added from it).
  void trust(IkeNode& to, IkeNode& from) {
    const std::string pem = from.file("root.pem");
    ProcessResult ex = from.cli({"cert", "export-root", "--out", pem});  // --out is written by the human form
    ASSERT_EQ(ex.exit_code, 0) << ex.err;
    to.ok({"truststore", "add", pem, "--use", "ipsec"});
  }
  void add_peers() {
    left_->ok({"ike", "peer", "add", "right", "--remote", "192.0.2.2", "--local", "192.0.2.1", "--local-ts",
               "192.0.2.1/32", "--remote-ts", "192.0.2.2/32", "--id", "ip:192.0.2.1"});
    right_->ok({"ike", "peer", "add", "left", "--remote", "192.0.2.1", "--local-ts", "192.0.2.2/32",
                "--remote-ts", "192.0.2.1/32", "--remote-id", "ip:192.0.2.1"});
  }
  static std::optional<json> established(IkeNode& n) {
    json r = n.ok({"ike", "list"});
    for (const auto& s : r.value("sas", json::array()))
      if (s["state"] == "established") return s;
    return std::nullopt;
  }
  std::unique_ptr<VethPair> net_;
  std::unique_ptr<IkeNode> left_, right_;
};

TEST_F(IkeCli, TwoNodesOneTunnelWithTheCnsaSuite) {
  trust(*left_, *right_);
  trust(*right_, *left_);
  add_peers();
  json lr = left_->ok({"ike", "list"});
  EXPECT_EQ(lr["running"], true);
  EXPECT_FALSE(lr["listening"].empty());  // the real sockets: 0.0.0.0 and :: on 500 and 4500
  left_->ok({"ike", "peer", "up", "right"});
  std::optional<json> l, r;
  ASSERT_TRUE(eventually([&] { return (l = established(*left_)) && (r = established(*right_)); }))
      << "left: " << left_->ok({"ike", "list"}).dump() << "\nright: " << right_->ok({"ike", "list"}).dump()
      << "\nleft events: " << left_->ok({"event", "list"}).dump();
  // CNSA: the first default proposal, AES-CBC-256 / HMAC-SHA-384-192 / PRF-HMAC-SHA-384 / ECP-384.
  EXPECT_EQ((*l)["suite"], "aes256-sha384-prfsha384-ecp384");
  EXPECT_EQ((*r)["suite"], "aes256-sha384-prfsha384-ecp384");
  EXPECT_EQ((*l)["role"], "initiator");
  EXPECT_EQ((*r)["role"], "responder");
  EXPECT_EQ((*l)["spi_i"], (*r)["spi_i"]);
  EXPECT_EQ((*l)["spi_r"], (*r)["spi_r"]);
  EXPECT_EQ((*l)["local"]["address"], "192.0.2.1");
  EXPECT_EQ((*l)["remote"]["address"], "192.0.2.2");
  EXPECT_EQ((*l)["nat"], false);
  EXPECT_TRUE(eventually([&] { return !left_->events(2021).empty() && !right_->events(2021).empty(); }));
  EXPECT_EQ(left_->ok({"ike", "peer", "show", "right"})["peer"]["state"], "up");
  EXPECT_TRUE(left_->events(2020).empty());
  EXPECT_TRUE(right_->events(2020).empty());

  // The CHILD_SA: in the kernel when it has ESP, else a clear report.
  const bool children = !(*l)["children"].empty() && !(*r)["children"].empty();
  if (children) {
    EXPECT_EQ((*l)["children"][0]["suite"], "aes256gcm16-noesn");
    EXPECT_EQ((*l)["children"][0]["spi_in"], (*r)["children"][0]["spi_out"]);
    EXPECT_EQ((*l)["children"][0]["local_ts"], json::array({"192.0.2.1/32"}));
  } else {
    // Whichever side could not install it says why (event 2024, error).
    std::vector<json> failed;
    ASSERT_TRUE(eventually([&] {
      failed = left_->events(2024);
      auto more = right_->events(2024);
      failed.insert(failed.end(), more.begin(), more.end());
      return !failed.empty();
    })) << "no CHILD_SA and no event 2024: " << left_->ok({"ike", "list"}).dump();
    for (const auto& e : failed) {
      EXPECT_EQ(e["severity"], "error") << e.dump();
      EXPECT_FALSE(e["sense"].value("reason", "").empty()) << e.dump();
      EXPECT_NE(e["message"].get<std::string>().find("CHILD_SA with peer"), std::string::npos) << e.dump();
    }
  }

  // The human output names the suite too.
  ProcessResult human = left_->cli({"ike", "list"});
  EXPECT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("right: established, initiator, aes256-sha384-prfsha384-ecp384"), std::string::npos)
      << human.out;

  // Down on one side: both sides lose the IKE SA.
  left_->ok({"ike", "peer", "down", "right"});
  EXPECT_TRUE(eventually([&] { return !established(*left_) && !established(*right_); }));
  EXPECT_TRUE(eventually([&] { return !right_->events(2022).empty(); }));
}

TEST_F(IkeCli, WrongRootRaises2020OnTheSideThatRejected) {
  trust(*left_, *right_);
  trust(*right_, *right_);  // right trusts only its own root, not left's
  add_peers();
  const json cert = left_->ok({"cert", "show"});
  const std::string subject = cert["endpoint"]["subject"], issuer = cert["endpoint"]["issuer"];
  left_->ok({"ike", "peer", "up", "right"});
  std::vector<json> ev;
  ASSERT_TRUE(eventually([&] { return !(ev = right_->events(2020)).empty(); }))
      << "right events: " << right_->ok({"event", "list"}).dump();
  EXPECT_EQ(ev[0]["severity"], "error");
  EXPECT_EQ(ev[0]["sense"]["peer"], "left");
  EXPECT_EQ(ev[0]["sense"]["peer_subject"], subject);
  EXPECT_EQ(ev[0]["sense"]["peer_issuer"], issuer);
  EXPECT_NE(ev[0]["message"].get<std::string>().find(subject), std::string::npos) << ev[0].dump();
  EXPECT_FALSE(established(*left_));
  EXPECT_FALSE(established(*right_));
}

TEST_F(IkeCli, PortTakenFailsPeerAddAndLeavesTheDaemonAlone) {
  // Another daemon on UDP 500 in left's namespace (as charon would be).
  ProcessResult holder = storcrypt::testing::sh(
      "ip netns exec " + net_->left.name() +
      " python3 -c 'import socket,time,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
      "s.bind((\"0.0.0.0\",500)); print(\"bound\",flush=True); time.sleep(60)' >/dev/null 2>&1 & echo $!");
  ASSERT_EQ(holder.exit_code, 0);
  const pid_t pid = static_cast<pid_t>(std::stol(holder.out));
  bool bound = eventually([&] {
    ProcessResult ss = storcrypt::testing::sh("ip netns exec " + net_->left.name() + " ss -uln 'sport = :500'");
    return ss.out.find(":500") != std::string::npos;
  });
  ASSERT_TRUE(bound);
  trust(*left_, *right_);
  json j = left_->cli_json({"ike", "peer", "add", "right", "--remote", "192.0.2.2", "--local-ts", "192.0.2.1/32",
                            "--remote-ts", "192.0.2.2/32"});
  ::kill(pid, SIGKILL);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"]["category"], "conflict") << j.dump();
  EXPECT_NE(j["error"]["message"].get<std::string>().find("in use"), std::string::npos) << j.dump();
  EXPECT_TRUE(left_->ok({"ike", "peer", "list"})["peers"].empty());
  EXPECT_EQ(left_->ok({"ike", "list"})["running"], false);
  left_->ok({"system", "status"});  // still serving
}

}  // namespace
