// Host tier, issue 17 (KMIP faults, kmip_watch.h): a real storcryptd with
// kmip_watch_interval_seconds = 1 and a real PyKMIP server (mutual TLS 1.2).
// The server stopped raises KmipServerFault 4010 (connection), listed by
// `storcrypt event list`; the server back (a new PyKMIP server, the key
// server's port changed with ModifyKeyServerKmip) marks it fixed. Client
// certificates signed with the openssl command to expire in 2, 6 and 20 days
// and one already expired raise 4022, 4021, 4020 and 4023; a renewed
// certificate marks its event fixed. Events are polled (bounded), no test
// asserts wall-clock time.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "kmip_daemon_fixture.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace {

using nlohmann::json;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::run;
namespace kt = storcrypt::kmip::testing;

const char* kClientExt = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";

class KmipWatchDaemon : public KmipDaemonBase {
 protected:
  void SetUp() override {
    KmipDaemonBase::SetUp();
    if (stopped()) return;
    serial_base_ = 200;
    write_config("kmip_watch_interval_seconds = 1\n");
    start();
    ASSERT_EQ(cli({"kmip-client", "create-keypair", "--cn", "storcrypt-node"}).exit_code, 0);
    csr_ = dir_ + "/node.csr";
    ASSERT_EQ(cli({"kmip-client", "csr", "--out", csr_}).exit_code, 0);
  }

  /// The node's CSR signed by the test CA, valid for `days` (negative: already expired).
  std::string signed_for(int days) {
    return sign(csr_, "ca", kClientExt, dir_ + "/node-" + std::to_string(days) + ".pem", days);
  }

  std::string create_server(const std::string& name, std::uint16_t port, const std::string& cert) {
    json c = cli_json({"keyserver", "create", "--name", name, "--hostname", "127.0.0.1", "--port", std::to_string(port),
                       "--ca-cert", pki_.ca, "--client-cert", cert});
    EXPECT_EQ(c["ok"], true) << c.dump();
    return c["ok"] == true ? std::to_string(c["result"]["keyServerID"].get<int64_t>()) : "0";
  }

  std::string provider() {
    if (provider_.empty()) {
      json p = cli_json({"keyprovider", "create", "--name", "kmip"});
      EXPECT_EQ(p["ok"], true) << p.dump();
      provider_ = std::to_string(p["result"]["keyProviderID"].get<int64_t>());
    }
    return provider_;
  }

  /// Events of `code` (all, or only unfixed ones).
  json events(int code, bool unfixed) {
    std::vector<std::string> a{"event", "list", "--code", std::to_string(code)};
    if (unfixed) a.push_back("--unfixed");
    json j = cli_json(a);
    EXPECT_EQ(j["ok"], true) << j.dump();
    return j["ok"] == true ? j["result"]["events"] : json::array();
  }

  /// Poll (the watcher ticks every second) until `pred` holds; bounded.
  bool eventually(const std::function<bool()>& pred) {
    for (int i = 0; i < 300; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pred();
  }

  std::string csr_, provider_;
};

/// The events of key server `id` (certificate events: of our client certificate; the
/// test CA itself is valid for 2 days and raises its own "ca" events).
json for_server(const json& evs, const std::string& id) {
  json out = json::array();
  for (const auto& e : evs)
    if (std::to_string(e["sense"].value("keyServerID", int64_t{0})) == id &&
        e["sense"].value("role", "client") == "client")
      out.push_back(e);
  return out;
}

TEST_F(KmipWatchDaemon, ServerFaultRaisedWhenStoppedAndClearedWhenBack) {
  kt::PyKmipServer srv;
  std::string err;
  ASSERT_TRUE(srv.start(pki_, err)) << err;
  const std::string id = create_server("kms1", srv.port(), signed_for(365));
  ASSERT_EQ(cli({"keyserver", "test", id}).exit_code, 0) << "PyKMIP log: " << srv.log_path();
  ASSERT_EQ(cli({"keyprovider", "add-server", provider(), id}).exit_code, 0);

  srv.kill_now();
  ASSERT_TRUE(eventually([&] { return events(4010, true).size() == 1; })) << events(4010, false).dump();
  json e = events(4010, true)[0];
  EXPECT_EQ(e["severity"], "error");
  EXPECT_EQ(std::to_string(e["sense"]["keyServerID"].get<int64_t>()), id);
  EXPECT_EQ(e["sense"]["category"], "connection");
  EXPECT_EQ(e["sense"]["error"], "xKeyServerUnavailable");
  EXPECT_FALSE(e["sense"]["node"].get<std::string>().empty());
  EXPECT_NE(e["fix_procedure"]["user_actions"].dump().find("TestKeyServerKmip"), std::string::npos);
  // Listed by `storcrypt event list` (the table).
  ProcessResult r = cli({"event", "list", "--unfixed"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("4010"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kms1"), std::string::npos) << r.out;
  // Raised once, not once per tick.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(events(4010, false).size(), 1u);

  // The key server back (a new PyKMIP server; the key server follows its port).
  kt::PyKmipServer back;
  ASSERT_TRUE(back.start(pki_, err)) << err;
  ASSERT_EQ(cli({"keyserver", "modify", id, "--port", std::to_string(back.port())}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return events(4010, true).empty(); })) << events(4010, false).dump();
  json all = events(4010, false);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["fixed"], true);
  EXPECT_TRUE(events(4011, false).empty());
  EXPECT_TRUE(events(4012, false).empty());
  EXPECT_TRUE(events(4013, false).empty());
}

TEST_F(KmipWatchDaemon, CertificateClassesRaisedAndClearedOnRenewal) {
  // The key servers point at a port nothing listens on: the certificates are
  // checked whether or not the server answers.
  const std::uint16_t port = kt::free_port();
  const std::string in2 = create_server("in2days", port, signed_for(2));
  const std::string in6 = create_server("in6days", port, signed_for(6));
  const std::string in20 = create_server("in20days", port, signed_for(20));
  const std::string expired = create_server("expired", port, signed_for(-1));
  const std::string fine = create_server("fine", port, signed_for(365));
  for (const auto& id : {in2, in6, in20, expired, fine})
    ASSERT_EQ(cli({"keyprovider", "add-server", provider(), id}).exit_code, 0);

  const std::vector<std::pair<std::string, int>> want{{in2, 4022}, {in6, 4021}, {in20, 4020}, {expired, 4023}};
  ASSERT_TRUE(eventually([&] {
    for (const auto& [id, code] : want)
      if (for_server(events(code, true), id).size() != 1) return false;
    return true;
  }));
  for (const auto& [id, code] : want) {
    json e = for_server(events(code, true), id)[0];
    EXPECT_EQ(e["sense"]["role"], "client") << e.dump();
    EXPECT_NE(e["fix_procedure"]["user_actions"].dump().find("ModifyKeyServerKmip"), std::string::npos);
  }
  EXPECT_EQ(for_server(events(4022, false), in2)[0]["severity"], "critical");
  EXPECT_EQ(for_server(events(4021, false), in6)[0]["severity"], "error");
  EXPECT_EQ(for_server(events(4020, false), in20)[0]["severity"], "warning");
  EXPECT_EQ(for_server(events(4023, false), expired)[0]["severity"], "critical");
  // The test CA (valid for 2 days) of every server: role ca, < 3 days.
  EXPECT_EQ(events(4022, false).size(), 6u);
  for (int code : {4020, 4021, 4022, 4023, 4024}) EXPECT_TRUE(for_server(events(code, false), fine).empty()) << code;
  // Once per class, not once per tick; every server also has its connection fault, once.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  for (const auto& [id, code] : want) EXPECT_EQ(for_server(events(code, false), id).size(), 1u) << code;
  EXPECT_EQ(events(4010, false).size(), 5u);

  // Renewed: ModifyKeyServerKmip with a certificate valid for a year.
  ASSERT_EQ(cli({"keyserver", "modify", in2, "--client-cert", signed_for(365)}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return for_server(events(4022, true), in2).empty(); }));
  json e = for_server(events(4022, false), in2);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0]["fixed"], true);
  EXPECT_EQ(for_server(events(4023, true), expired).size(), 1u);  // the others stay
}

}  // namespace
