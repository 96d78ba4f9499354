// The KMIP nouns (issue 17) through the dispatcher: the client key pair and
// its CSR (real OpenSSL keys; the CSR is signed by a test CA in memory), key
// servers and providers in SQLite, every refusal rule, validation errors that
// name the field, and the Test* methods over a fake prober (the real one is
// covered against PyKMIP by tests/host/controller/kmip_cli_test.cpp).
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "node.h"
#include "nouns/kmip_service.h"
#include "storcrypt/testing/test_pki.h"
#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

using nlohmann::json;
using test::Node;
namespace tp = storcrypt::testing;

/// What the fake prober saw and answers.
struct FakeKmip {
  std::mutex mu;
  std::vector<KmipProbeTarget> calls;
  std::vector<std::string> ca_seen;   ///< content of ca_file during the call
  std::vector<bool> files_present;    ///< ca, cert and key files existed during the call
  std::map<std::string, Error> fail;  ///< by hostname
};

std::function<void(Context&)> fake_prober(std::shared_ptr<FakeKmip> f) {
  return [f](Context& ctx) {
    auto p = std::make_shared<KmipProber>();
    p->probe = [f](const KmipProbeTarget& t) -> Result<json> {
      std::lock_guard lock(f->mu);
      f->calls.push_back(t);
      std::ifstream in(t.ca_file);
      f->ca_seen.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      f->files_present.push_back(std::filesystem::exists(t.ca_file) && std::filesystem::exists(t.cert_file) &&
                                 std::filesystem::exists(t.key_file));
      if (auto it = f->fail.find(t.hostname); it != f->fail.end()) return it->second;
      return json{{"kmipVersion", "1.2"},
                  {"operations", 20},
                  {"vendor", "fake"},
                  {"tlsVersion", "TLSv1.2"},
                  {"cipher", "FAKE"}};
    };
    ctx.set_service(p);
  };
}

/// A test CA that signs CSRs.
struct TestCa {
  tp::KeyPtr key = tp::generate_key(tp::TestKey::kEcP384);
  tp::CertPtr cert;
  explicit TestCa(const std::string& cn) {
    tp::CertSpec s;
    s.common_name = cn;
    s.ca = true;
    cert = tp::issue_cert(key.get(), s);
  }
  std::string pem() const { return tp::cert_pem(cert.get()); }
  /// Sign the public key of a PEM CSR.
  std::string sign(const std::string& csr_pem, const std::string& eku = "clientAuth") const {
    BIO* b = BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size()));
    X509_REQ* req = PEM_read_bio_X509_REQ(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    EXPECT_NE(req, nullptr);
    if (!req) return {};
    tp::KeyPtr pub(X509_REQ_get_pubkey(req));
    X509_REQ_free(req);
    tp::CertSpec s;
    s.common_name = "node-a";
    s.ext_key_usage = eku;
    return tp::cert_pem(tp::issue_cert(pub.get(), s, cert.get(), key.get()).get());
  }
};

/// The public key (DER SubjectPublicKeyInfo) of a PEM CSR ("" when unparsable).
std::string csr_public_key(const std::string& csr) {
  BIO* b = BIO_new_mem_buf(csr.data(), static_cast<int>(csr.size()));
  X509_REQ* req = PEM_read_bio_X509_REQ(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (!req) return {};
  tp::KeyPtr pub(X509_REQ_get_pubkey(req));
  X509_REQ_free(req);
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(pub.get(), &der);
  std::string out = n > 0 ? std::string(reinterpret_cast<char*>(der), static_cast<std::size_t>(n)) : std::string();
  OPENSSL_free(der);
  return out;
}

/// `p` with one field replaced.
json with(json p, const std::string& key, const json& value) {
  p[key] = value;
  return p;
}

std::string error_name(const Result<json>& r) { return r.ok() ? "(ok)" : r.error().name(); }

class KmipNouns : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = std::make_shared<FakeKmip>();
    node_ = std::make_unique<Node>(dir_.path, false, fake_prober(fake_));
  }
  void restart() {
    node_.reset();
    node_ = std::make_unique<Node>(dir_.path, false, fake_prober(fake_));
  }
  KmipService& svc() { return *node_->ctx.service<KmipService>(); }
  std::string make_pair_and_cert(const std::string& eku = "clientAuth") {
    node_->ok("CreatePublicPrivateKeyPair", {{"commonName", "node-a"}, {"organization", "storcrypt-test"}});
    json csr = node_->ok("GetClientCertificateSignRequest");
    return ca_.sign(csr["clientCertificateSignRequest"].get<std::string>(), eku);
  }
  json server_params(const std::string& name, const std::string& client_cert,
                     const json& hosts = json::array({"kms1.lab", "kms2.lab"})) {
    return json{{"keyServerName", name},
                {"kmipKeyServerHostnames", hosts},
                {"kmipCaCertificate", ca_.pem()},
                {"kmipClientCertificate", client_cert}};
  }
  int64_t create_server(const std::string& name, const std::string& client_cert) {
    json r = node_->ok("CreateKeyServerKmip", server_params(name, client_cert));
    return r.value("keyServerID", int64_t{0});
  }

  test::TempDir dir_;
  std::shared_ptr<FakeKmip> fake_;
  std::unique_ptr<Node> node_;
  TestCa ca_{"kmip test CA"};
};

TEST_F(KmipNouns, NoKeyPairYet) {
  auto r = node_->call("GetClientCertificateSignRequest");
  EXPECT_EQ(error_name(r), "xSslKeysDoNotExist");
  EXPECT_NE(r.error().fix().find("CreatePublicPrivateKeyPair"), std::string::npos) << r.error().fix();
  // A certificate from another key cannot be installed either.
  auto other = tp::generate_key(tp::TestKey::kEcP384);
  std::string foreign = tp::cert_pem(tp::issue_cert(other.get(), {}, ca_.cert.get(), ca_.key.get()).get());
  EXPECT_EQ(error_name(node_->call("CreateKeyServerKmip", server_params("kms", foreign))), "xSslKeysDoNotExist");
}

TEST_F(KmipNouns, KeyPairAndCsr) {
  auto bad = node_->call("CreatePublicPrivateKeyPair", {{"commonName", "node-a"}, {"country", "Germany"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().name(), "xInvalidParameter");
  EXPECT_NE(bad.error().message().find("country"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(bad.error().fix().empty());

  json r = node_->ok("CreatePublicPrivateKeyPair", {{"commonName", "node-a"},
                                                    {"organization", "Example"},
                                                    {"organizationalUnit", "Storage"},
                                                    {"locality", "Berlin"},
                                                    {"state", "Berlin"},
                                                    {"country", "DE"},
                                                    {"emailAddress", "ops@example.com"}});
  EXPECT_EQ(r["keyType"], "ec-p384");
  EXPECT_EQ(r.dump().find("PRIVATE"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(svc().key_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::string csr = node_->ok("GetClientCertificateSignRequest")["clientCertificateSignRequest"];
  ASSERT_EQ(csr.rfind("-----BEGIN CERTIFICATE REQUEST-----", 0), 0u) << csr;
  BIO* b = BIO_new_mem_buf(csr.data(), static_cast<int>(csr.size()));
  X509_REQ* req = PEM_read_bio_X509_REQ(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  ASSERT_NE(req, nullptr);
  tp::KeyPtr pub(X509_REQ_get_pubkey(req));
  EXPECT_EQ(X509_REQ_verify(req, pub.get()), 1);  // signed by the pair's key
  char buf[512];
  X509_NAME_oneline(X509_REQ_get_subject_name(req), buf, sizeof buf);
  // The CSR asks for extended key usage clientAuth only.
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  bool client_auth = false, server_auth = false;
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* e = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_ext_key_usage) continue;
    auto* eku = static_cast<EXTENDED_KEY_USAGE*>(X509V3_EXT_d2i(e));
    for (int j = 0; eku && j < sk_ASN1_OBJECT_num(eku); ++j) {
      int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, j));
      client_auth |= nid == NID_client_auth;
      server_auth |= nid == NID_server_auth;
    }
    EXTENDED_KEY_USAGE_free(eku);
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  EXPECT_TRUE(client_auth);
  EXPECT_FALSE(server_auth);
  X509_REQ_free(req);
  std::string subject = buf;
  for (const char* part : {"CN=node-a", "O=Example", "OU=Storage", "L=Berlin", "C=DE", "ops@example.com"})
    EXPECT_NE(subject.find(part), std::string::npos) << subject;

  // The pair survives a restart (same key; ECDSA signatures differ); a new pair replaces it.
  const std::string key = csr_public_key(csr);
  ASSERT_FALSE(key.empty());
  restart();
  EXPECT_EQ(csr_public_key(node_->ok("GetClientCertificateSignRequest")["clientCertificateSignRequest"]), key);
  node_->ok("CreatePublicPrivateKeyPair", {{"commonName", "node-a"}});
  EXPECT_NE(csr_public_key(node_->ok("GetClientCertificateSignRequest")["clientCertificateSignRequest"]), key);
}

TEST_F(KmipNouns, CsrGenerationFailsOnADamagedKey) {
  make_pair_and_cert();
  std::ofstream(svc().key_path(), std::ios::trunc)
      << "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n";
  auto r = node_->call("GetClientCertificateSignRequest");
  EXPECT_EQ(error_name(r), "xCsrGenerationFailed");
  EXPECT_NE(r.error().fix().find("CreatePublicPrivateKeyPair"), std::string::npos);
  EXPECT_EQ(r.error().message().find("garbage"), std::string::npos);
}

TEST_F(KmipNouns, KeyServerValidationNamesTheField) {
  std::string cert = make_pair_and_cert();
  auto expect_invalid = [&](const char* what, json p, const std::string& field) {
    SCOPED_TRACE(what);
    auto r = node_->call("CreateKeyServerKmip", p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput) << r.error().to_string();
    EXPECT_NE(r.error().message().find(field), std::string::npos) << r.error().to_string();
    EXPECT_FALSE(r.error().fix().empty()) << r.error().to_string();
  };
  json p = server_params("kms", cert);
  expect_invalid("no hostnames", with(p, "kmipKeyServerHostnames", json::array()), "kmipKeyServerHostnames");
  expect_invalid("empty hostname", with(p, "kmipKeyServerHostnames", json::array({""})), "kmipKeyServerHostnames");
  expect_invalid("bad hostname", with(p, "kmipKeyServerHostnames", json::array({"kms 1"})), "kmipKeyServerHostnames");
  expect_invalid("hostname twice", with(p, "kmipKeyServerHostnames", json::array({"a", "a"})),
                 "kmipKeyServerHostnames");
  expect_invalid("hostname not a string", with(p, "kmipKeyServerHostnames", json::array({1})),
                 "kmipKeyServerHostnames");
  expect_invalid("port", with(p, "kmipKeyServerPort", 70000), "kmipKeyServerPort");
  expect_invalid("CA garbage", with(p, "kmipCaCertificate", "not a certificate"), "kmipCaCertificate");
  expect_invalid("client garbage", with(p, "kmipClientCertificate", "junk"), "kmipClientCertificate");
  auto other = tp::generate_key(tp::TestKey::kEcP384);
  std::string foreign = tp::cert_pem(tp::issue_cert(other.get(), {}, ca_.cert.get(), ca_.key.get()).get());
  expect_invalid("client certificate of another key", with(p, "kmipClientCertificate", foreign),
                 "kmipClientCertificate");
  json noname = p;
  noname.erase("keyServerName");
  expect_invalid("no name", noname, "keyServerName");
  expect_invalid("empty name", with(p, "keyServerName", ""), "keyServerName");
  EXPECT_TRUE(node_->ok("ListKeyServersKmip")["kmipKeyServers"].empty());
}

TEST_F(KmipNouns, KeyServerLifecycle) {
  std::string cert = make_pair_and_cert();
  json r = node_->ok("CreateKeyServerKmip", server_params("kms", cert));
  EXPECT_TRUE(r["warnings"].empty()) << r.dump();
  int64_t id = r["keyServerID"];
  json ks = r["kmipKeyServer"];
  EXPECT_EQ(ks["keyServerName"], "kms");
  EXPECT_EQ(ks["kmipKeyServerHostnames"], json::array({"kms1.lab", "kms2.lab"}));
  EXPECT_EQ(ks["kmipKeyServerPort"], 5696);
  EXPECT_TRUE(ks["keyProviderID"].is_null());
  EXPECT_EQ(ks["kmipClientCertificateInfo"]["subject"], "CN=node-a,O=storcrypt-test");
  EXPECT_EQ(node_->call("CreateKeyServerKmip", server_params("kms", cert)).error().name(), "xKeyServerNameExists");

  // Alias name, explicit port, certificate without clientAuth: accepted with a warning.
  std::string noeku = ca_.sign(node_->ok("GetClientCertificateSignRequest")["clientCertificateSignRequest"], "");
  json p2 = server_params("", noeku, json::array({"10.0.0.1"}));
  p2.erase("keyServerName");
  p2["kmipKeyServerName"] = "kms-b";
  p2["kmipKeyServerPort"] = 15696;
  json r2 = node_->ok("CreateKeyServerKmip", p2);
  ASSERT_EQ(r2["warnings"].size(), 1u) << r2.dump();
  EXPECT_NE(r2["warnings"][0].get<std::string>().find("clientAuth"), std::string::npos);
  EXPECT_EQ(r2["kmipKeyServer"]["kmipKeyServerPort"], 15696);

  // Certificates renewed in place; other fields kept.
  TestCa ca2("kmip test CA 2");
  std::string cert2 = ca2.sign(node_->ok("GetClientCertificateSignRequest")["clientCertificateSignRequest"]);
  json m = node_->ok("ModifyKeyServerKmip",
                     {{"keyServerID", id}, {"kmipCaCertificate", ca2.pem()}, {"kmipClientCertificate", cert2}});
  EXPECT_EQ(m["kmipKeyServer"]["kmipCaCertificate"], ca2.pem());
  EXPECT_EQ(m["kmipKeyServer"]["kmipKeyServerHostnames"], json::array({"kms1.lab", "kms2.lab"}));
  auto bad = node_->call("ModifyKeyServerKmip", {{"keyServerID", id}, {"kmipKeyServerHostnames", json::array()}});
  EXPECT_EQ(error_name(bad), "xInvalidParameter");
  EXPECT_EQ(error_name(node_->call("ModifyKeyServerKmip", {{"keyServerID", id}, {"keyServerName", "kms-b"}})),
            "xKeyServerNameExists");

  restart();
  json got = node_->ok("GetKeyServerKmip", {{"keyServerID", id}})["kmipKeyServer"];
  EXPECT_EQ(got["kmipClientCertificate"], cert2);
  json list = node_->ok("ListKeyServersKmip")["kmipKeyServers"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list.dump().find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(error_name(node_->call("GetKeyServerKmip", {{"keyServerID", 99}})), "xKeyServerIDDoesNotExist");

  node_->ok("DeleteKeyServerKmip", {{"keyServerID", id}});
  EXPECT_EQ(node_->ok("ListKeyServersKmip")["kmipKeyServers"].size(), 1u);
}

TEST_F(KmipNouns, ProviderRules) {
  std::string cert = make_pair_and_cert();
  int64_t s1 = create_server("kms1", cert), s2 = create_server("kms2", cert);
  int64_t p = node_->ok("CreateKeyProviderKmip", {{"keyProviderName", "kmip"}})["keyProviderID"];
  EXPECT_EQ(error_name(node_->call("CreateKeyProviderKmip", {{"keyProviderName", "kmip"}})), "xKeyProviderNameExists");
  EXPECT_EQ(error_name(node_->call("CreateKeyProviderKmip", {{"keyProviderName", ""}})), "xInvalidParameter");
  int64_t other = node_->ok("CreateKeyProviderKmip", {{"keyProviderName", "other"}})["keyProviderID"];

  json kp = node_->ok("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", s1}})["kmipKeyProvider"];
  EXPECT_EQ(kp["keyServerIDs"], json::array({s1}));
  // Idempotent.
  kp = node_->ok("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", s1}})["kmipKeyProvider"];
  EXPECT_EQ(kp["keyServerIDs"], json::array({s1}));
  // A server belongs to one provider.
  auto twice = node_->call("AddKeyServerToProviderKmip", {{"keyProviderID", other}, {"keyServerID", s1}});
  EXPECT_EQ(error_name(twice), "xKeyServerHasProviderAssigned");
  EXPECT_EQ(error_name(node_->call("AddKeyServerToProviderKmip", {{"keyProviderID", 99}, {"keyServerID", s1}})),
            "xKeyProviderIDDoesNotExist");
  EXPECT_EQ(error_name(node_->call("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", 99}})),
            "xKeyServerIDDoesNotExist");

  // An assigned server cannot be deleted.
  auto del = node_->call("DeleteKeyServerKmip", {{"keyServerID", s1}});
  EXPECT_EQ(error_name(del), "xKeyServerHasProviderAssigned");
  EXPECT_NE(del.error().fix().find("RemoveKeyServerFromProviderKmip"), std::string::npos);
  // The key pair cannot be replaced while a provider uses it.
  auto pair = node_->call("CreatePublicPrivateKeyPair", {{"commonName", "node-a"}});
  EXPECT_EQ(error_name(pair), "xKeyPairInUse");
  EXPECT_EQ(node_->ok("GetKeyServerKmip", {{"keyServerID", s1}})["kmipKeyServer"]["keyProviderID"], p);

  // Active provider (set by encryption at rest): not deletable, its last server stays.
  ASSERT_TRUE(svc().set_provider_active(p, true).ok());
  EXPECT_EQ(node_->ok("GetKeyProviderKmip", {{"keyProviderID", p}})["kmipKeyProvider"]["keyProviderIsActive"], true);
  auto dp = node_->call("DeleteKeyProviderKmip", {{"keyProviderID", p}});
  EXPECT_EQ(error_name(dp), "xKeyProviderActive");
  auto last = node_->call("RemoveKeyServerFromProviderKmip", {{"keyProviderID", p}, {"keyServerID", s1}});
  EXPECT_EQ(error_name(last), "xKeyServerLastForActiveProvider");
  EXPECT_NE(last.error().fix().find("AddKeyServerToProviderKmip"), std::string::npos);
  // With a second server the first can go.
  kp = node_->ok("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", s2}})["kmipKeyProvider"];
  EXPECT_EQ(kp["keyServerIDs"], json::array({s1, s2}));
  kp = node_->ok("RemoveKeyServerFromProviderKmip", {{"keyProviderID", p}, {"keyServerID", s1}})["kmipKeyProvider"];
  EXPECT_EQ(kp["keyServerIDs"], json::array({s2}));
  EXPECT_EQ(error_name(node_->call("RemoveKeyServerFromProviderKmip", {{"keyProviderID", p}, {"keyServerID", s1}})),
            "xKeyServerNotAssignedToProvider");

  restart();  // state survives
  EXPECT_EQ(node_->ok("ListKeyProvidersKmip")["kmipKeyProviders"].size(), 2u);
  EXPECT_EQ(node_->ok("ListKeyServersKmip", {{"keyProviderID", p}})["kmipKeyServers"].size(), 1u);
  ASSERT_TRUE(svc().set_provider_active(p, false).ok());
  node_->ok("DeleteKeyProviderKmip", {{"keyProviderID", p}});
  EXPECT_TRUE(node_->ok("GetKeyServerKmip", {{"keyServerID", s2}})["kmipKeyServer"]["keyProviderID"].is_null());
  node_->ok("DeleteKeyServerKmip", {{"keyServerID", s2}});
  node_->ok("CreatePublicPrivateKeyPair", {{"commonName", "node-a"}});  // no longer in use
  EXPECT_EQ(error_name(node_->call("GetKeyProviderKmip", {{"keyProviderID", p}})), "xKeyProviderIDDoesNotExist");
}

TEST_F(KmipNouns, TestKeyServerAndProvider) {
  std::string cert = make_pair_and_cert();
  int64_t s1 = create_server("kms1", cert);
  json ok = node_->ok("TestKeyServerKmip", {{"keyServerID", s1}});
  EXPECT_EQ(ok["ok"], true);
  ASSERT_EQ(ok["hostnames"].size(), 2u);
  EXPECT_EQ(ok["hostnames"][0]["hostname"], "kms1.lab");
  {
    std::lock_guard lock(fake_->mu);
    ASSERT_EQ(fake_->calls.size(), 2u);
    EXPECT_EQ(fake_->calls[0].hostname, "kms1.lab");  // priority order
    EXPECT_EQ(fake_->calls[1].hostname, "kms2.lab");
    EXPECT_EQ(fake_->calls[0].port, 5696);
    EXPECT_EQ(fake_->calls[0].key_file, svc().key_path().string());
    EXPECT_EQ(fake_->ca_seen[0], ca_.pem());
    EXPECT_TRUE(fake_->files_present[0]);
    // The temporary PEM files are gone afterwards.
    EXPECT_FALSE(std::filesystem::exists(fake_->calls[0].ca_file));
  }

  // Each failure category of the KMIP client becomes the Element error name.
  const std::vector<std::pair<std::string, std::string>> mapping = {
      {"xKmipUnavailable", "xKeyServerUnavailable"},
      {"xKmipTlsError", "xKeyServerSslError"},
      {"xKmipAuthenticationFailed", "xKeyServerAuthFailed"},
      {"xKmipInvalidCredentials", "xKeyServerInvalidAuth"},
      {"xKmipServerError", "xKeyServerFailed"},
      {"xKmipProtocolError", "xKeyServerFailed"}};
  for (const auto& [from, to] : mapping) {
    SCOPED_TRACE(from);
    {
      std::lock_guard lock(fake_->mu);
      fake_->fail.clear();
      fake_->fail.emplace("kms2.lab", Error(ErrorCode::kUnavailable, "boom", "", from));
    }
    auto r = node_->call("TestKeyServerKmip", {{"keyServerID", s1}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().name(), to);
    EXPECT_NE(r.error().message().find("kms2.lab"), std::string::npos) << r.error().message();
    EXPECT_FALSE(r.error().fix().empty());
  }
  {
    std::lock_guard lock(fake_->mu);
    fake_->fail.clear();
  }

  int64_t p = node_->ok("CreateKeyProviderKmip", {{"keyProviderName", "kmip"}})["keyProviderID"];
  auto empty = node_->call("TestKeyProviderKmip", {{"keyProviderID", p}});
  EXPECT_EQ(error_name(empty), "xKeyProviderConfigurationError");
  EXPECT_NE(empty.error().fix().find("AddKeyServerToProviderKmip"), std::string::npos);
  int64_t s2 = node_->ok("CreateKeyServerKmip", server_params("kms2", cert, json::array({"kms3.lab"})))["keyServerID"];
  node_->ok("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", s2}});
  node_->ok("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", s1}});
  {
    std::lock_guard lock(fake_->mu);
    fake_->calls.clear();
  }
  json pr = node_->ok("TestKeyProviderKmip", {{"keyProviderID", p}});
  ASSERT_EQ(pr["keyServers"].size(), 2u);
  EXPECT_EQ(pr["keyServers"][0]["keyServerID"], s2);  // in the order added
  {
    std::lock_guard lock(fake_->mu);
    ASSERT_EQ(fake_->calls.size(), 3u);
    EXPECT_EQ(fake_->calls[0].hostname, "kms3.lab");
    fake_->fail.emplace("kms1.lab", Error(ErrorCode::kUnavailable, "refused", "", "xKmipUnavailable"));
  }
  auto down = node_->call("TestKeyProviderKmip", {{"keyProviderID", p}});
  EXPECT_EQ(error_name(down), "xKeyServerUnavailable");
  EXPECT_NE(down.error().message().find("kms1"), std::string::npos);
  EXPECT_EQ(error_name(node_->call("TestKeyServerKmip", {{"keyServerID", 42}})), "xKeyServerIDDoesNotExist");
}

// EnableEncryptionAtRest / DisableEncryptionAtRest with a KMIP key provider:
// the rules, with the fake prober (the volumes' keys on a real PyKMIP are
// covered by tests/host/kmip/kmip_provider_host_test.cpp).
TEST_F(KmipNouns, EncryptionAtRestWithAKmipProvider) {
  std::string cert = make_pair_and_cert();
  int64_t s1 = create_server("kms1", cert);
  int64_t p = node_->ok("CreateKeyProviderKmip", {{"keyProviderName", "kmip"}})["keyProviderID"];
  int64_t other = node_->ok("CreateKeyProviderKmip", {{"keyProviderName", "other"}})["keyProviderID"];

  // Unknown id (integer or string, as the CLI sends it).
  EXPECT_EQ(error_name(node_->call("EnableEncryptionAtRest", {{"keyProviderID", 99}})),
            "xNoOnlineKeyProviderWithThatID");
  EXPECT_EQ(error_name(node_->call("EnableEncryptionAtRest", {{"keyProviderID", "99"}})),
            "xNoOnlineKeyProviderWithThatID");
  // No key server: unavailable, nothing probed.
  auto none = node_->call("EnableEncryptionAtRest", {{"keyProviderID", p}});
  EXPECT_EQ(error_name(none), "xKeyProviderUnavailable");
  EXPECT_NE(none.error().fix().find("AddKeyServerToProviderKmip"), std::string::npos);
  node_->ok("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", s1}});
  // A key server that fails the probe: unavailable, naming the server and host; not active.
  {
    std::lock_guard lock(fake_->mu);
    fake_->fail.emplace("kms2.lab", Error(ErrorCode::kUnavailable, "connection refused", "", "xKmipUnavailable"));
  }
  auto down = node_->call("EnableEncryptionAtRest", {{"keyProviderID", std::to_string(p)}});
  EXPECT_EQ(error_name(down), "xKeyProviderUnavailable");
  EXPECT_NE(down.error().message().find("kms2.lab"), std::string::npos) << down.error().message();
  EXPECT_NE(down.error().message().find("xKeyServerUnavailable"), std::string::npos) << down.error().message();
  EXPECT_EQ(node_->ok("GetKeyProviderKmip", {{"keyProviderID", p}})["kmipKeyProvider"]["keyProviderIsActive"], false);
  {
    std::lock_guard lock(fake_->mu);
    fake_->fail.clear();
  }
  json en = node_->ok("EnableEncryptionAtRest", {{"keyProviderID", std::to_string(p)}});
  EXPECT_EQ(en["enabled"], true);
  EXPECT_EQ(en["keyProviderID"], p);
  EXPECT_EQ(node_->ok("GetKeyProviderKmip", {{"keyProviderID", p}})["kmipKeyProvider"]["keyProviderIsActive"], true);
  node_->ok("EnableEncryptionAtRest", {{"keyProviderID", p}});  // again: no change
  // One active provider at a time.
  int64_t s2 = node_->ok("CreateKeyServerKmip", server_params("kms2", cert, json::array({"kms3.lab"})))["keyServerID"];
  node_->ok("AddKeyServerToProviderKmip", {{"keyProviderID", other}, {"keyServerID", s2}});
  EXPECT_EQ(error_name(node_->call("EnableEncryptionAtRest", {{"keyProviderID", other}})), "xKeyProviderActive");
  EXPECT_EQ(error_name(node_->call("DeleteKeyProviderKmip", {{"keyProviderID", p}})), "xKeyProviderActive");

  // A volume keyed from the provider (as volume.create registers it): disable refused.
  ASSERT_TRUE(node_->db
                  ->exec("INSERT INTO dm_volumes(uuid, device, name, key_id, provider_kind, provider_id) "
                         "VALUES('u1', '/dev/loop9', 'vol1', 'vol-1', 'kmip', ?1)",
                         {std::to_string(p)})
                  .ok());
  auto dis = node_->call("DisableEncryptionAtRest");
  EXPECT_EQ(error_name(dis), "xKeyProviderHasVolumes");
  EXPECT_NE(dis.error().message().find("1 volume(s)"), std::string::npos) << dis.error().message();
  EXPECT_EQ(node_->ok("GetKeyProviderKmip", {{"keyProviderID", p}})["kmipKeyProvider"]["keyProviderIsActive"], true);
  ASSERT_TRUE(node_->db->exec("DELETE FROM dm_volumes WHERE uuid = 'u1'").ok());
  json d = node_->ok("DisableEncryptionAtRest");
  EXPECT_EQ(d["enabled"], false);
  EXPECT_EQ(d["keyProviderID"], p);
  EXPECT_EQ(node_->ok("GetKeyProviderKmip", {{"keyProviderID", p}})["kmipKeyProvider"]["keyProviderIsActive"], false);
  // Now another provider may become active; an inactive provider that still
  // keeps volume keys cannot be deleted.
  node_->ok("EnableEncryptionAtRest", {{"keyProviderID", other}});
  ASSERT_TRUE(node_->db
                  ->exec("INSERT INTO dm_volumes(uuid, device, name, key_id, provider_kind, provider_id) "
                         "VALUES('u2', '/dev/loop8', 'vol2', 'vol-2', 'kmip', ?1)",
                         {std::to_string(p)})
                  .ok());
  EXPECT_EQ(error_name(node_->call("DeleteKeyProviderKmip", {{"keyProviderID", p}})), "xKeyProviderActive");
  // Disable checks only the active provider's volumes.
  EXPECT_EQ(node_->ok("DisableEncryptionAtRest")["keyProviderID"], other);
}

}  // namespace
}  // namespace storcrypt::controller
