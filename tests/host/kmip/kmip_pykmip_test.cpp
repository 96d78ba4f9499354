// Host tests: the storcrypt KMIP client against real PyKMIP 0.10 servers
// (independent judge) over mutual TLS on loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "pykmip_fixture.h"
#include "storcrypt/testing/environment.h"

namespace storcrypt::kmip {
namespace {

using testing::client_config;
using testing::PyKmipServer;
using testing::TestPki;

std::string unique_name(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

class KmipPyKmip : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    STORCRYPT_REQUIRE(testing::pykmip_available(why), why);
    std::string err;
    pki_ = testing::make_pki(err);
    ASSERT_TRUE(err.empty()) << err;
  }
  // Start `n` servers sharing the PKI.
  void start_servers(int n) {
    for (int i = 0; i < n; ++i) {
      servers_.push_back(std::make_unique<PyKmipServer>());
      std::string err;
      ASSERT_TRUE(servers_.back()->start(pki_, err)) << err;
    }
  }
  std::unique_ptr<Client> client_for(const std::vector<std::uint16_t>& ports, ClientConfig* tweak = nullptr) {
    ClientConfig c = tweak ? *tweak : client_config(pki_, ports);
    auto r = Client::create(c);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  std::uint16_t port(int i) const { return servers_[static_cast<std::size_t>(i)]->port(); }

  TestPki pki_;
  std::vector<std::unique_ptr<PyKmipServer>> servers_;
};

const Attribute* find_attr(const std::vector<Attribute>& attrs, const std::string& name) {
  for (const auto& a : attrs)
    if (a.name == name) return &a;
  return nullptr;
}

void run_lifecycle(Client& c, const std::string& name) {
  CreateKeyParams p;
  p.name = name;
  p.object_group = "storcrypt-test";
  auto uid = c.create_key(p);
  ASSERT_TRUE(uid.ok()) << uid.error().to_string();

  auto attrs0 = c.get_attributes(*uid, {"State"});
  ASSERT_TRUE(attrs0.ok()) << attrs0.error().to_string();
  ASSERT_NE(find_attr(*attrs0, "State"), nullptr);
  EXPECT_EQ(find_attr(*attrs0, "State")->value.num, static_cast<std::int64_t>(State::kPreActive));

  auto act = c.activate(*uid);
  ASSERT_TRUE(act.ok()) << act.error().to_string();

  auto key = c.get(*uid);
  ASSERT_TRUE(key.ok()) << key.error().to_string();
  EXPECT_EQ(key->object_type, ObjectType::kSymmetricKey);
  EXPECT_EQ(key->unique_identifier, *uid);
  EXPECT_EQ(key->material.size(), 32u);
  EXPECT_EQ(key->algorithm, CryptographicAlgorithm::kAes);

  auto attrs = c.get_attributes(*uid, {"State", "Cryptographic Algorithm", "Cryptographic Length",
                                       "Cryptographic Usage Mask", "Name", "Object Group"});
  ASSERT_TRUE(attrs.ok()) << attrs.error().to_string();
  ASSERT_NE(find_attr(*attrs, "State"), nullptr);
  EXPECT_EQ(find_attr(*attrs, "State")->value.num, static_cast<std::int64_t>(State::kActive));
  ASSERT_NE(find_attr(*attrs, "Cryptographic Length"), nullptr);
  EXPECT_EQ(find_attr(*attrs, "Cryptographic Length")->value.num, 256);
  ASSERT_NE(find_attr(*attrs, "Cryptographic Algorithm"), nullptr);
  EXPECT_EQ(find_attr(*attrs, "Cryptographic Algorithm")->value.num, 3);
  ASSERT_NE(find_attr(*attrs, "Cryptographic Usage Mask"), nullptr);
  EXPECT_EQ(find_attr(*attrs, "Cryptographic Usage Mask")->value.num, 0x0C);
  const Attribute* n = find_attr(*attrs, "Name");
  ASSERT_NE(n, nullptr);
  ASSERT_NE(n->value.find(tag::kNameValue), nullptr);
  EXPECT_EQ(n->value.find(tag::kNameValue)->text, name);

  LocateFilter by_name;
  by_name.name = name;
  auto found = c.locate(by_name);
  ASSERT_TRUE(found.ok()) << found.error().to_string();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0], *uid);

  LocateFilter by_group;
  by_group.object_group = "storcrypt-test";
  by_group.object_type = ObjectType::kSymmetricKey;
  by_group.state = State::kActive;
  auto group = c.locate(by_group);
  ASSERT_TRUE(group.ok()) << group.error().to_string();
  EXPECT_NE(std::find(group->begin(), group->end(), *uid), group->end());

  // PyKMIP (like the SKLC profile) refuses to destroy an active key.
  auto early = c.destroy(*uid);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(failure_category(early.error()), FailureCategory::kServerError) << early.error().to_string();

  RevokeParams rp;
  rp.reason = RevocationReasonCode::kCessationOfOperation;
  rp.message = "storcrypt host test";
  auto rev = c.revoke(*uid, rp);
  ASSERT_TRUE(rev.ok()) << rev.error().to_string();
  auto attrs2 = c.get_attributes(*uid, {"State"});
  ASSERT_TRUE(attrs2.ok());
  EXPECT_EQ(find_attr(*attrs2, "State")->value.num, static_cast<std::int64_t>(State::kDeactivated));

  auto des = c.destroy(*uid);
  ASSERT_TRUE(des.ok()) << des.error().to_string();
  auto gone = c.get(*uid);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(failure_category(gone.error()), FailureCategory::kServerError);
  EXPECT_EQ(server_result_reason(gone.error()), ResultReason::kItemNotFound) << gone.error().to_string();
  auto none = c.locate(by_name);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(KmipPyKmip, FullLifecycleKmip14) {
  start_servers(1);
  auto c = client_for({port(0)});
  ASSERT_TRUE(c);
  auto v = c->negotiated_version();
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_EQ(*v, (ProtocolVersion{1, 4}));
  // PyKMIP pins TLS 1.2; the client's list must still land on a forward-secret suite.
  auto st = c->stats();
  EXPECT_EQ(st.last_tls_version, "TLSv1.2");
  EXPECT_EQ(st.last_cipher.rfind("ECDHE-", 0), 0u) << st.last_cipher;
  run_lifecycle(*c, unique_name("lifecycle14"));
}

TEST_F(KmipPyKmip, FullLifecycleKmip20) {
  start_servers(1);
  ClientConfig cfg = client_config(pki_, {port(0)});
  cfg.versions = {{2, 0}, {1, 4}};
  auto c = client_for({}, &cfg);
  ASSERT_TRUE(c);
  auto v = c->negotiated_version();
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_EQ(*v, (ProtocolVersion{2, 0}));
  run_lifecycle(*c, unique_name("lifecycle20"));
}

TEST_F(KmipPyKmip, DiscoverVersionsAndQuery) {
  start_servers(1);
  auto c = client_for({port(0)});
  ASSERT_TRUE(c);
  auto vs = c->discover_versions({{2, 0}, {1, 4}, {1, 2}, {1, 0}});
  ASSERT_TRUE(vs.ok()) << vs.error().to_string();
  EXPECT_FALSE(vs->empty());
  auto q = c->query({QueryFunction::kOperations, QueryFunction::kObjects});
  ASSERT_TRUE(q.ok()) << q.error().to_string();
  EXPECT_NE(std::find(q->operations.begin(), q->operations.end(), Operation::kGet), q->operations.end());
  EXPECT_NE(std::find(q->operations.begin(), q->operations.end(), Operation::kLocate), q->operations.end());
}

TEST_F(KmipPyKmip, RegisterAndGetExactBytes) {
  start_servers(1);
  for (ProtocolVersion v : {ProtocolVersion{1, 2}, ProtocolVersion{2, 0}}) {
    ClientConfig cfg = client_config(pki_, {port(0)});
    cfg.fixed_version = v;
    auto c = client_for({}, &cfg);
    ASSERT_TRUE(c);
    auto key = SecretBytes::random(32);
    ASSERT_TRUE(key.ok());
    RegisterParams rp;
    rp.name = unique_name("registered-" + v.to_string());
    auto uid = c->register_object(rp, *key);
    ASSERT_TRUE(uid.ok()) << v.to_string() << ": " << uid.error().to_string();
    auto got = c->get(*uid);
    ASSERT_TRUE(got.ok()) << got.error().to_string();
    EXPECT_TRUE(got->material.equals(*key)) << "symmetric key bytes differ, KMIP " << v.to_string();
    EXPECT_EQ(got->length_bits, 256);

    SecretBytes secret(reinterpret_cast<const std::uint8_t*>("drive-auth-secret-0123456789"), 28);
    RegisterParams sp;
    sp.object_type = ObjectType::kSecretData;
    sp.name = unique_name("secret-" + v.to_string());
    sp.object_group = "sed";
    auto suid = c->register_object(sp, secret);
    ASSERT_TRUE(suid.ok()) << suid.error().to_string();
    auto sgot = c->get(*suid);
    ASSERT_TRUE(sgot.ok()) << sgot.error().to_string();
    EXPECT_EQ(sgot->object_type, ObjectType::kSecretData);
    EXPECT_TRUE(sgot->material.equals(secret));
    LocateFilter f;
    f.object_group = "sed";
    f.object_type = ObjectType::kSecretData;
    auto l = c->locate(f);
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    EXPECT_NE(std::find(l->begin(), l->end(), *suid), l->end());
  }
}

TEST_F(KmipPyKmip, ModifyAttributeAndAddAttributeOutcome) {
  start_servers(1);
  for (ProtocolVersion v : {ProtocolVersion{1, 4}, ProtocolVersion{2, 0}}) {
    SCOPED_TRACE("KMIP " + v.to_string());
    ClientConfig cfg = client_config(pki_, {port(0)});
    cfg.fixed_version = v;
    auto c = client_for({}, &cfg);
    ASSERT_TRUE(c);
    CreateKeyParams p;
    p.name = unique_name("modify");
    p.object_group = "before";
    auto uid = c->create_key(p);
    ASSERT_TRUE(uid.ok()) << uid.error().to_string();
    auto m =
        c->modify_attribute(*uid, Attribute::text("Object Group", "after"), Attribute::text("Object Group", "before"));
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    auto attrs = c->get_attributes(*uid, {"Object Group"});
    ASSERT_TRUE(attrs.ok()) << attrs.error().to_string();
    ASSERT_NE(find_attr(*attrs, "Object Group"), nullptr);
    EXPECT_EQ(find_attr(*attrs, "Object Group")->value.text, "after");
    LocateFilter f;
    f.object_group = "after";
    auto l = c->locate(f);
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    EXPECT_NE(std::find(l->begin(), l->end(), *uid), l->end());
    // PyKMIP 0.10 does not implement Add Attribute: the failure must surface
    // as a server error with the server's reason, not as a transport error.
    auto add = c->add_attribute(*uid, Attribute::text("Object Group", "second"));
    ASSERT_FALSE(add.ok()) << "PyKMIP 0.10 was expected to refuse Add Attribute";
    EXPECT_EQ(failure_category(add.error()), FailureCategory::kServerError) << add.error().to_string();
    EXPECT_TRUE(server_result_reason(add.error()).has_value()) << add.error().to_string();
  }
}

TEST_F(KmipPyKmip, BatchGetPoolingAndSessionResumption) {
  start_servers(1);
  auto c = client_for({port(0)});
  ASSERT_TRUE(c);
  std::vector<std::string> uids;
  std::vector<SecretBytes> keys;
  for (int i = 0; i < 3; ++i) {
    auto k = SecretBytes::random(32);
    ASSERT_TRUE(k.ok());
    RegisterParams rp;
    rp.name = unique_name("batch");
    auto uid = c->register_object(rp, *k);
    ASSERT_TRUE(uid.ok()) << uid.error().to_string();
    uids.push_back(*uid);
    keys.push_back(std::move(k).value());
  }
  auto ask = uids;
  ask.insert(ask.begin() + 1, "no-such-object");
  auto r = c->get_many(ask);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_TRUE((*r)[0].ok() && (*r)[0]->material.equals(keys[0]));
  ASSERT_FALSE((*r)[1].ok());
  EXPECT_EQ(failure_category((*r)[1].error()), FailureCategory::kServerError);
  EXPECT_TRUE((*r)[2].ok() && (*r)[2]->material.equals(keys[1]));
  EXPECT_TRUE((*r)[3].ok() && (*r)[3]->material.equals(keys[2]));

  // Everything so far went over one pooled connection.
  EXPECT_EQ(c->stats().connections_opened, 1u);
  // A new connection resumes the cached TLS session.
  c->close_idle_connections();
  auto again = c->get(uids[0]);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(c->stats().connections_opened, 2u);
  EXPECT_EQ(c->stats().sessions_resumed, 1u);
}

TEST_F(KmipPyKmip, FailureCategories) {
  start_servers(1);
  // One Get with a changed client configuration; the failure must fall in `want`.
  auto get_fails_as = [&](const char* what, FailureCategory want, const std::function<void(ClientConfig&)>& change) {
    SCOPED_TRACE(what);
    ClientConfig cfg = client_config(pki_, {port(0)});
    change(cfg);
    auto c = client_for({}, &cfg);
    ASSERT_TRUE(c);
    auto r = c->get("1");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(failure_category(r.error()), want) << r.error().to_string();
  };
  get_fails_as("client certificate without EKU clientAuth: TLS succeeds, KMIP refuses",
               FailureCategory::kAuthenticationFailed, [&](ClientConfig& cfg) {
                 cfg.tls.cert_file = pki_.noauth_cert;
                 cfg.tls.key_file = pki_.noauth_key;
               });
  get_fails_as("wrong CA for the server certificate: we reject the server", FailureCategory::kTlsError,
               [&](ClientConfig& cfg) { cfg.tls.ca_file = pki_.other_ca; });
  get_fails_as("host name mismatch", FailureCategory::kTlsError,
               [](ClientConfig& cfg) { cfg.servers[0].verify_name = "kms.example.com"; });
  get_fails_as("EKU serverAuth only: the server's TLS layer rejects the certificate",
               FailureCategory::kInvalidCredentials, [&](ClientConfig& cfg) {
                 cfg.tls.cert_file = pki_.serveronly_cert;
                 cfg.tls.key_file = pki_.serveronly_key;
               });
  get_fails_as("client certificate from a CA the server does not trust", FailureCategory::kInvalidCredentials,
               [&](ClientConfig& cfg) {
                 cfg.tls.cert_file = pki_.foreign_cert;
                 cfg.tls.key_file = pki_.foreign_key;
               });
  // Unusable local credentials are reported before any connection.
  {
    ClientConfig cfg = client_config(pki_, {port(0)});
    cfg.tls.key_file = pki_.noauth_key;  // does not match client.pem
    auto r = Client::create(cfg);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(failure_category(r.error()), FailureCategory::kInvalidCredentials) << r.error().to_string();
  }
  // Stopped server.
  {
    servers_[0]->kill_now();
    auto c = client_for({port(0)});
    ASSERT_TRUE(c);
    auto r = c->get("1");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(failure_category(r.error()), FailureCategory::kUnavailable) << r.error().to_string();
    EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  }
}

TEST_F(KmipPyKmip, FailoverWhenPrimaryIsKilled) {
  start_servers(2);
  // Same key (bytes and name) registered on both servers, as replicated key servers hold it.
  auto key = SecretBytes::random(32);
  ASSERT_TRUE(key.ok());
  std::string name = unique_name("replicated");
  for (int i = 0; i < 2; ++i) {
    auto c = client_for({port(i)});
    ASSERT_TRUE(c);
    RegisterParams rp;
    rp.name = name;
    auto uid = c->register_object(rp, *key);
    ASSERT_TRUE(uid.ok()) << uid.error().to_string();
  }
  ClientConfig cfg = client_config(pki_, {port(0), port(1)});
  cfg.server_retry_after = std::chrono::milliseconds(60000);
  auto c = client_for({}, &cfg);
  ASSERT_TRUE(c);
  for (int i = 0; i < 8; ++i) {
    if (i == 3) servers_[0]->kill_now();  // primary dies mid-run with pooled connections open
    LocateFilter f;
    f.name = name;
    auto uids = c->locate(f);
    ASSERT_TRUE(uids.ok()) << "iteration " << i << ": " << uids.error().to_string();
    ASSERT_EQ(uids->size(), 1u);
    auto got = c->get((*uids)[0]);
    ASSERT_TRUE(got.ok()) << "iteration " << i << ": " << got.error().to_string();
    EXPECT_TRUE(got->material.equals(*key));
  }
  EXPECT_GE(c->stats().failovers, 1u);
  // Create is not idempotent but never reached the dead primary: it goes to the secondary.
  CreateKeyParams cp;
  cp.name = unique_name("after-failover");
  auto created = c->create_key(cp);
  EXPECT_TRUE(created.ok()) << created.error().to_string();
}

}  // namespace
}  // namespace storcrypt::kmip
