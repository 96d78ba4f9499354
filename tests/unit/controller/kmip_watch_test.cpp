// KMIP faults (issue 17, kmip_watch.h): the failure category of a key server
// test and the expiry classes of its certificates as event codes, raised once
// per category/class change and marked fixed when the server works again or
// the certificate is renewed; open events found again after a restart. A
// real EventLog (SQLite in memory), a fake test function and a fake clock; the
// real watcher against PyKMIP is in tests/host/controller/kmip_watch_host_test.cpp.
#include "nouns/kmip_watch.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "storcrypt/testing/test_pki.h"

namespace storcrypt::controller {
namespace {

namespace tp = storcrypt::testing;
namespace ke = kmip_event;
constexpr int64_t kDay = 86400;
constexpr int64_t kT0 = 1'800'000'000;  // the certificates' notBefore

struct KmipFaultWatch : ::testing::Test {
  void SetUp() override {
    auto d = Db::open(":memory:");
    ASSERT_TRUE(d.ok());
    db = std::move(*d);
    auto l = EventLog::create(*db);
    ASSERT_TRUE(l.ok());
    log = std::move(*l);
    for (auto& def : kmip_fault_events()) log->define(def);
  }
  /// A server whose CA is valid [kT0, kT0 + ca_days] and client certificate [kT0, kT0 + client_days].
  KmipKeyServer server(int64_t id, int ca_days, int client_days) {
    KmipKeyServer s;
    s.id = id;
    s.name = "kms" + std::to_string(id);
    s.hostnames = {"kms" + std::to_string(id) + ".lab"};
    s.provider_id = 1;
    tp::CertSpec cs;
    cs.common_name = "ca-" + std::to_string(id);
    cs.ca = true;
    cs.not_before = kT0;
    cs.not_after = kT0 + ca_days * kDay;
    auto ck = tp::generate_key(tp::TestKey::kEcP384);
    auto ca = tp::issue_cert(ck.get(), cs);
    s.ca_pem = tp::cert_pem(ca.get());
    tp::CertSpec es;
    es.common_name = "node-a";
    es.ext_key_usage = "clientAuth";
    es.not_before = kT0;
    es.not_after = kT0 + client_days * kDay;
    auto ek = tp::generate_key(tp::TestKey::kEcP384);
    s.client_cert_pem = tp::cert_pem(tp::issue_cert(ek.get(), es, ca.get(), ck.get()).get());
    return s;
  }
  std::vector<Event> open(std::optional<int> code = std::nullopt) {
    EventFilter f;
    f.unfixed_only = true;
    f.code = code;
    f.limit = 1000;
    auto l = log->list(f);
    EXPECT_TRUE(l.ok());
    return l.ok() ? *l : std::vector<Event>{};
  }
  size_t all() { return log->list({false, std::nullopt, std::nullopt, 1000})->size(); }

  std::unique_ptr<Db> db;
  std::unique_ptr<EventLog> log;
  std::map<int64_t, std::optional<Error>> result;  ///< per server id; missing: works
  KmipFaultWatcher::TestFn test = [this](const KmipKeyServer& s) -> std::optional<Error> {
    auto it = result.find(s.id);
    return it == result.end() ? std::nullopt : it->second;
  };
};

Error fail(const std::string& name) {
  return Error(ErrorCode::kUnavailable, "key server 1 at h:5696: boom", "fix", name);
}

TEST(KmipFaultClassification, CategoriesAndClasses) {
  EXPECT_EQ(kmip_fault_category("xKeyServerUnavailable"), "connection");
  EXPECT_EQ(kmip_fault_category("xKeyServerSslError"), "tls");
  EXPECT_EQ(kmip_fault_category("xKeyServerAuthFailed"), "authentication");
  EXPECT_EQ(kmip_fault_category("xKeyServerInvalidAuth"), "authentication");
  EXPECT_EQ(kmip_fault_category("xKeyServerFailed"), "server-error");
  EXPECT_EQ(kmip_fault_category("xInternalError"), "server-error");
  EXPECT_EQ(kmip_server_fault_code("connection"), ke::kServerConnection);
  EXPECT_EQ(kmip_server_fault_code("tls"), ke::kServerTls);
  EXPECT_EQ(kmip_server_fault_code("authentication"), ke::kServerAuthentication);
  EXPECT_EQ(kmip_server_fault_code("server-error"), ke::kServerError);
  using C = certs::ExpiryClass;
  EXPECT_EQ(kmip_cert_fault_code(C::kOk), std::nullopt);
  EXPECT_EQ(kmip_cert_fault_code(C::kWarning), ke::kCertWithin30Days);
  EXPECT_EQ(kmip_cert_fault_code(C::kError), ke::kCertWithin7Days);
  EXPECT_EQ(kmip_cert_fault_code(C::kCritical), ke::kCertWithin3Days);
  EXPECT_EQ(kmip_cert_fault_code(C::kExpired), ke::kCertExpired);
  EXPECT_EQ(kmip_cert_fault_code(C::kNotYetValid), ke::kCertNotYetValid);
  // Every code is defined once, with a fix procedure naming the API to call.
  std::set<int> codes;
  for (const auto& d : kmip_fault_events()) {
    EXPECT_TRUE(codes.insert(d.code).second) << d.code;
    EXPECT_GE(d.code, 4000);
    EXPECT_LT(d.code, 4100);
    std::string actions;
    for (const auto& a : d.user_actions) actions += a + "\n";
    if (d.code >= ke::kCertWithin30Days) {
      EXPECT_NE(actions.find("ModifyKeyServerKmip"), std::string::npos) << d.code;
      EXPECT_NE(actions.find("CreatePublicPrivateKeyPair"), std::string::npos) << d.code;
      EXPECT_NE(actions.find("GetClientCertificateSignRequest"), std::string::npos) << d.code;
    } else {
      EXPECT_NE(actions.find("TestKeyServerKmip"), std::string::npos) << d.code;
    }
  }
  EXPECT_EQ(codes.size(), 9u);
  auto sev = [](int code) {
    for (const auto& d : kmip_fault_events())
      if (d.code == code) return d.severity;
    return Severity::kInfo;
  };
  EXPECT_EQ(sev(ke::kCertWithin30Days), Severity::kWarning);
  EXPECT_EQ(sev(ke::kCertWithin7Days), Severity::kError);
  EXPECT_EQ(sev(ke::kCertWithin3Days), Severity::kCritical);
  EXPECT_EQ(sev(ke::kCertExpired), Severity::kCritical);
  EXPECT_EQ(sev(ke::kCertNotYetValid), Severity::kCritical);
}

TEST_F(KmipFaultWatch, ServerFaultRaisedOnceChangedAndCleared) {
  KmipFaultWatcher w(*log, "node-a");
  auto s = server(7, 3650, 3650);
  const int64_t now = kT0 + kDay;
  w.pass({s}, test, now);
  EXPECT_EQ(all(), 0u);

  result[7] = fail("xKeyServerUnavailable");
  for (int i = 0; i < 3; ++i) w.pass({s}, test, now + i);
  auto o = open();
  ASSERT_EQ(o.size(), 1u);  // once, not once per pass
  EXPECT_EQ(o[0].code, ke::kServerConnection);
  EXPECT_EQ(o[0].severity, Severity::kError);
  EXPECT_EQ(o[0].sense["keyServerID"], 7);
  EXPECT_EQ(o[0].sense["keyServerName"], "kms7");
  EXPECT_EQ(o[0].sense["node"], "node-a");
  EXPECT_EQ(o[0].sense["category"], "connection");
  EXPECT_EQ(o[0].sense["error"], "xKeyServerUnavailable");
  EXPECT_FALSE(o[0].user_actions.empty());

  // Another category replaces it.
  result[7] = fail("xKeyServerInvalidAuth");
  w.pass({s}, test, now);
  o = open();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].code, ke::kServerAuthentication);
  EXPECT_EQ(all(), 2u);

  // Works again: cleared, nothing new.
  result.erase(7);
  w.pass({s}, test, now);
  EXPECT_TRUE(open().empty());
  EXPECT_EQ(all(), 2u);
  w.pass({s}, test, now);
  EXPECT_EQ(all(), 2u);
}

TEST_F(KmipFaultWatch, ServerFaultsPerServerAndUnassignedClears) {
  KmipFaultWatcher w(*log, "node-a");
  auto a = server(1, 3650, 3650), b = server(2, 3650, 3650);
  result[1] = fail("xKeyServerSslError");
  result[2] = fail("xKeyServerFailed");
  w.pass({a, b}, test, kT0 + kDay);
  EXPECT_EQ(open(ke::kServerTls).size(), 1u);
  EXPECT_EQ(open(ke::kServerError).size(), 1u);
  // Server 2 no longer assigned to a provider (not in the snapshot): its fault goes.
  w.pass({a}, test, kT0 + kDay);
  EXPECT_EQ(open(ke::kServerTls).size(), 1u);
  EXPECT_TRUE(open(ke::kServerError).empty());
}

TEST_F(KmipFaultWatch, CertificateClassesRaisedOncePerClassAndClearedOnRenewal) {
  KmipFaultWatcher w(*log, "node-a");
  auto s = server(3, 3650, 100);  // client certificate valid 100 days
  const int64_t end = kT0 + 100 * kDay;
  struct Step {
    int64_t now;
    std::optional<int> code;
  };
  for (const Step& st : {Step{end - 40 * kDay, std::nullopt}, Step{end - 20 * kDay, ke::kCertWithin30Days},
                         Step{end - 19 * kDay, ke::kCertWithin30Days}, Step{end - 6 * kDay, ke::kCertWithin7Days},
                         Step{end - 2 * kDay, ke::kCertWithin3Days}, Step{end - 2 * kDay + 60, ke::kCertWithin3Days},
                         Step{end + kDay, ke::kCertExpired}, Step{end + 2 * kDay, ke::kCertExpired}}) {
    w.pass({s}, test, st.now);
    w.pass({s}, test, st.now);  // a second pass in the same class raises nothing
    auto o = open();
    if (!st.code) {
      EXPECT_TRUE(o.empty());
      continue;
    }
    ASSERT_EQ(o.size(), 1u) << *st.code;
    EXPECT_EQ(o[0].code, *st.code);
    EXPECT_EQ(o[0].sense["role"], "client");
    EXPECT_EQ(o[0].sense["keyServerID"], 3);
    EXPECT_EQ(o[0].sense["node"], "node-a");
    EXPECT_NE(o[0].sense["subject"].get<std::string>().find("CN=node-a"), std::string::npos);
  }
  EXPECT_EQ(all(), 4u);  // one per class: 30, 7, 3 days, expired

  // Renewed (a new client certificate valid for years): marked fixed.
  auto renewed = server(3, 3650, 3650);
  s.client_cert_pem = renewed.client_cert_pem;
  w.pass({s}, test, end + 2 * kDay);
  EXPECT_TRUE(open().empty());
  EXPECT_EQ(all(), 4u);
}

TEST_F(KmipFaultWatch, CaCertificateAndNotYetValid) {
  KmipFaultWatcher w(*log, "node-a");
  auto s = server(4, 10, 3650);       // the CA ends in 10 days, client fine
  w.pass({s}, test, kT0 + 5 * kDay);  // 5 days left: < 7
  auto o = open();
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].code, ke::kCertWithin7Days);
  EXPECT_EQ(o[0].sense["role"], "ca");
  // The clock went back before notBefore: both are not yet valid.
  w.pass({s}, test, kT0 - kDay);
  o = open();
  ASSERT_EQ(o.size(), 2u);
  EXPECT_EQ(o[0].code, ke::kCertNotYetValid);
  EXPECT_EQ(o[1].code, ke::kCertNotYetValid);
}

TEST_F(KmipFaultWatch, RestartFindsOpenEvents) {
  auto s = server(5, 3650, 20);
  result[5] = fail("xKeyServerUnavailable");
  {
    KmipFaultWatcher w(*log, "node-a");
    w.pass({s}, test, kT0 + 15 * kDay);  // 5 days left
  }
  EXPECT_EQ(all(), 2u);
  KmipFaultWatcher again(*log, "node-a");  // a restarted daemon
  again.pass({s}, test, kT0 + 15 * kDay);
  EXPECT_EQ(all(), 2u);  // no duplicates
  EXPECT_EQ(open().size(), 2u);
  result.erase(5);
  again.pass({s}, test, kT0 + 15 * kDay);
  ASSERT_EQ(open().size(), 1u);
  EXPECT_EQ(open()[0].code, ke::kCertWithin7Days);
}

}  // namespace
}  // namespace storcrypt::controller
