// Certificate expiry events: the cert noun's watcher raises one event per
// certificate and expiry class (3010 < 30 days, 3011 < 7 days, 3012 expired),
// supersedes it when the class worsens, marks it fixed when the certificate is
// renewed, and raises no duplicate after a restart.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <thread>

#include "node.h"
#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

using nlohmann::json;
using test::Node;

std::vector<Event> cert_events(Node& n, bool unfixed_only) {
  std::vector<Event> out;
  for (int code : {3010, 3011, 3012}) {
    EventFilter f;
    f.code = code;
    f.unfixed_only = unfixed_only;
    auto l = n.events->list(f);
    EXPECT_TRUE(l.ok());
    if (l.ok()) out.insert(out.end(), l->begin(), l->end());
  }
  return out;
}

bool wait_until(const std::function<bool()>& pred) {
  for (int i = 0; i < 100 && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return pred();
}

class CertExpiryEvents : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("STORCRYPT_CERT_CHECK_SECONDS", "1", 1); }
  void TearDown() override { ::unsetenv("STORCRYPT_CERT_CHECK_SECONDS"); }
  test::TempDir dir;
};

TEST_F(CertExpiryEvents, RaisedPerClassFixedOnRenewalAndNotDuplicatedAfterRestart) {
  std::string fp5;
  {
    Node n(dir.path, /*run_start_hooks=*/true);
    EXPECT_TRUE(cert_events(n, false).empty()) << "no certificate, no expiry event";
    json c = n.ok("cert.create", {{"common_name", "node1.example"}, {"days", 5}});
    fp5 = c["endpoint"]["sha256_fingerprint"];
    ASSERT_FALSE(fp5.empty()) << c.dump();
    ASSERT_TRUE(wait_until([&] { return cert_events(n, true).size() == 1; })) << "no expiry event for 5 days left";
    Event e = cert_events(n, true).front();
    EXPECT_EQ(e.code, 3011);
    EXPECT_EQ(e.severity, Severity::kError);
    EXPECT_EQ(e.sense["role"], "endpoint");
    EXPECT_EQ(e.sense["fingerprint"], fp5);
    EXPECT_NE(e.message.find("node1.example"), std::string::npos) << e.message;
    EXPECT_FALSE(e.user_actions.empty());
  }
  {
    // Restart: the open event is found again; no second one for the same certificate.
    Node n(dir.path, /*run_start_hooks=*/true);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    auto all = cert_events(n, false);
    ASSERT_EQ(all.size(), 1u) << "a restart raised a duplicate";
    EXPECT_FALSE(all.front().fixed);

    // Renewed with 20 days: the 3011 event is fixed, a 3010 one is raised for the new certificate.
    json c = n.ok("cert.create", {{"common_name", "node1.example"}, {"days", 20}});
    std::string fp20 = c["endpoint"]["sha256_fingerprint"];
    ASSERT_TRUE(wait_until([&] {
      auto open = cert_events(n, true);
      return open.size() == 1 && open.front().code == 3010;
    })) << "no 3010 event after renewal with 20 days";
    EXPECT_EQ(cert_events(n, true).front().sense["fingerprint"], fp20);
    EXPECT_EQ(cert_events(n, false).size(), 2u);

    // Renewed for a year: nothing open.
    n.ok("cert.create", {{"common_name", "node1.example"}, {"days", 365}});
    EXPECT_TRUE(wait_until([&] { return cert_events(n, true).empty(); })) << "expiry events left open after renewal";
    for (const auto& e : cert_events(n, false)) EXPECT_TRUE(e.fixed) << e.message;
  }
}

}  // namespace
}  // namespace storcrypt::controller
