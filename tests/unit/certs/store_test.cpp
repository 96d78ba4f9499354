// CertStore against the openssl command as the independent judge: our root
// and endpoint verify with `openssl verify`, our CSR with `openssl req`, and
// a foreign CA made with openssl commands signs our CSR.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "storcrypt/certs/certs.h"
#include "storcrypt/common/files.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"
#include "store_fixture.h"
#include "test_pki.h"

namespace storcrypt::certs {
namespace {

using namespace storcrypt::certs::testing;  // NOLINT
namespace fs = std::filesystem;

TEST_F(StoreTest, InternalRootAndEndpointVerifyWithOpenssl) {
  auto r = store_->create_internal(full_options());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_TRUE(r->root.has_value());
  EXPECT_TRUE(r->warnings.empty());
  auto root_pem = store_->export_root_pem();
  ASSERT_TRUE(root_pem.ok());
  auto chain = store_->endpoint_chain();
  ASSERT_TRUE(chain.ok());
  const std::string root = write("root.pem", *root_pem);
  const std::string leaf = write("leaf.pem", chain->front().to_pem());

  auto v = ossl({"verify", "-CAfile", root, "-purpose", "sslserver", leaf});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find(": OK"), std::string::npos) << v.out;
  v = ossl({"verify", "-CAfile", root, "-purpose", "sslclient", leaf});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  auto rt = ossl({"x509", "-in", root, "-noout", "-text"});
  ASSERT_EQ(rt.exit_code, 0);
  EXPECT_NE(rt.out.find("X509v3 Basic Constraints: critical"), std::string::npos) << rt.out;
  EXPECT_NE(rt.out.find("CA:TRUE"), std::string::npos);
  EXPECT_NE(rt.out.find("Certificate Sign, CRL Sign"), std::string::npos);
  EXPECT_NE(rt.out.find("ASN1 OID: secp384r1"), std::string::npos);

  auto lt = ossl({"x509", "-in", leaf, "-noout", "-text"});
  ASSERT_EQ(lt.exit_code, 0);
  EXPECT_NE(lt.out.find("TLS Web Server Authentication, TLS Web Client Authentication"), std::string::npos) << lt.out;
  EXPECT_NE(lt.out.find("CA:FALSE"), std::string::npos);
  EXPECT_NE(lt.out.find("DNS:node1.example.com, DNS:node1, IP Address:192.0.2.10, IP Address:2001:DB8:0:0:0:0:0:10"),
            std::string::npos)
      << lt.out;
  EXPECT_NE(lt.out.find("ecdsa-with-SHA384"), std::string::npos);
  auto subj = ossl({"x509", "-in", leaf, "-noout", "-subject", "-nameopt", "compat"});
  EXPECT_NE(subj.out.find("/C=DE/ST=Bavaria/L=Munich/O=Example Storage/OU=Replication/CN=node1.example.com/"
                          "emailAddress=ops@example.com"),
            std::string::npos)
      << subj.out;

  // Key files are 0600 and the key matches the certificate (openssl judge).
  const fs::path key = tmp_ / "state/endpoint/key.pem";
  EXPECT_EQ(file_mode(key), 0600u);
  EXPECT_EQ(file_mode(tmp_ / "state/ca/key.pem"), 0600u);
  auto pub_cert = ossl({"x509", "-in", leaf, "-noout", "-pubkey"});
  auto pub_key = ossl({"pkey", "-in", key.string(), "-pubout"});
  ASSERT_EQ(pub_key.exit_code, 0) << pub_key.err;
  EXPECT_EQ(pub_cert.out, pub_key.out);

  auto s = store_->show();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mode, EndpointMode::kInternal);
  ASSERT_TRUE(s->root.has_value());
  EXPECT_EQ(s->root->sha256_fingerprint, r->root->sha256_fingerprint);
  EXPECT_EQ(s->expiry, ExpiryClass::kOk);

  // A second create_internal reuses the root.
  auto r2 = store_->create_internal(full_options());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->root->sha256_fingerprint, r->root->sha256_fingerprint);
  EXPECT_NE(r2->endpoint.sha256_fingerprint, r->endpoint.sha256_fingerprint);
}

TEST_F(StoreTest, Rsa3072Internal) {
  auto o = full_options();
  o.key_type = KeyType::kRsa3072;
  auto r = store_->create_internal(o);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->endpoint.key, "rsa-3072");
  const std::string root = write("root.pem", store_->export_root_pem().value());
  const std::string leaf = write("leaf.pem", store_->endpoint_chain().value().front().to_pem());
  auto v = ossl({"verify", "-CAfile", root, leaf});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(StoreTest, SelfSignedWarnsAndVerifiesAgainstItself) {
  auto r = store_->create_self_signed(full_options());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("not recommended"), std::string::npos);
  EXPECT_FALSE(r->root.has_value());
  const std::string leaf = write("self.pem", store_->endpoint_chain_pem().value());
  auto v = ossl({"verify", "-CAfile", leaf, leaf});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_EQ(store_->show()->mode, EndpointMode::kSelfSigned);
  auto er = store_->export_root_pem();
  ASSERT_FALSE(er.ok());
  EXPECT_EQ(er.error().name(), "xCertNoInternalRoot");
}

TEST_F(StoreTest, CsrAcceptedByOpensslWithOurFields) {
  const std::string csr = our_csr_file();
  auto v = ossl({"req", "-in", csr, "-noout", "-verify"});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE((v.out + v.err).find("verify OK"), std::string::npos) << v.out << v.err;
  auto s = ossl({"req", "-in", csr, "-noout", "-subject", "-nameopt", "compat"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("/C=DE/ST=Bavaria/L=Munich/O=Example Storage/OU=Replication/CN=node1.example.com/"
                       "emailAddress=ops@example.com"),
            std::string::npos)
      << s.out;
  auto t = ossl({"req", "-in", csr, "-noout", "-text"});
  EXPECT_NE(t.out.find("DNS:node1.example.com, DNS:node1, IP Address:192.0.2.10"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("TLS Web Server Authentication, TLS Web Client Authentication"), std::string::npos);
  EXPECT_NE(t.out.find("NIST CURVE: P-384"), std::string::npos) << t.out;
  EXPECT_EQ(file_mode(tmp_ / "state/pending/key.pem"), 0600u);
  EXPECT_TRUE(store_->show()->csr_pending);
  EXPECT_EQ(store_->pending_csr_pem().value(), slurp(csr));
}

TEST_F(StoreTest, ForeignIntermediateSignsOurCsrAndItInstalls) {
  make_foreign_ca();
  const std::string csr = our_csr_file();
  auto sr = foreign_sign(csr, path("signed.pem"));
  ASSERT_EQ(sr.exit_code, 0) << sr.err;
  // Chain in any order: root, leaf, intermediate; CRLF line ends.
  std::string bundle = slurp(path("froot.pem")) + slurp(path("signed.pem")) + slurp(path("fint.pem"));
  std::string crlf;
  for (char c : bundle) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  auto inst = store_->install(crlf);
  ASSERT_TRUE(inst.ok()) << inst.error().to_string();
  EXPECT_TRUE(inst->warnings.empty()) << inst->warnings.front();
  ASSERT_EQ(inst->chain.size(), 2u);
  EXPECT_NE(inst->chain[0].subject.find("Foreign Intermediate"), std::string::npos);
  EXPECT_NE(inst->chain[1].subject.find("Foreign Root"), std::string::npos);
  auto s = store_->show();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mode, EndpointMode::kExternal);
  EXPECT_FALSE(s->csr_pending);
  EXPECT_FALSE(fs::exists(tmp_ / "state/pending"));
  // openssl agrees the installed chain is valid and the key is ours.
  const std::string chain = write("ours.pem", store_->endpoint_chain_pem().value());
  auto v = ossl({"verify", "-CAfile", path("froot.pem"), "-untrusted", path("fint.pem"), chain});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  auto pub_cert = ossl({"x509", "-in", chain, "-noout", "-pubkey"});
  auto pub_key = ossl({"pkey", "-in", (tmp_ / "state/endpoint/key.pem").string(), "-pubout"});
  EXPECT_EQ(pub_cert.out, pub_key.out);
  EXPECT_EQ(file_mode(tmp_ / "state/endpoint/key.pem"), 0600u);
  // DER install of the same (renewal with the current key) works too.
  auto der = ossl({"x509", "-in", path("signed.pem"), "-outform", "DER", "-out", path("signed.der")});
  ASSERT_EQ(der.exit_code, 0);
  auto inst2 = store_->install(slurp(path("signed.der")));
  ASSERT_TRUE(inst2.ok()) << inst2.error().to_string();
}

TEST_F(StoreTest, LeafWithoutItsIntermediateInstallsWithAnIncompleteChainWarning) {
  make_foreign_ca();
  const std::string csr = our_csr_file();
  ASSERT_EQ(foreign_sign(csr, path("signed.pem")).exit_code, 0);
  // The leaf alone: its issuer (the intermediate) is neither given nor trusted.
  auto inst = store_->install(slurp(path("signed.pem")));
  ASSERT_TRUE(inst.ok()) << inst.error().to_string();
  std::string all;
  for (const auto& w : inst->warnings) all += w + "\n";
  EXPECT_NE(all.find("the chain is incomplete"), std::string::npos) << all;
  EXPECT_NE(all.find("f Foreign Intermediate CA"), std::string::npos) << all;
  EXPECT_NE(all.find("partners will need that intermediate"), std::string::npos) << all;
  auto s = store_->show();
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->missing_issuer.has_value());
  EXPECT_NE(s->missing_issuer->find("f Foreign Intermediate CA"), std::string::npos);
  // Once the issuing CA is in the truststore the chain partners see is complete.
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kIpsec}).ok());
  EXPECT_FALSE(store_->show()->missing_issuer.has_value());
  ASSERT_TRUE(store_->trust_remove(store_->trust_list()->front().cert.sha256_fingerprint).ok());
  ASSERT_TRUE(store_->trust_remove(store_->trust_list()->front().cert.sha256_fingerprint).ok());
  EXPECT_TRUE(store_->show()->missing_issuer.has_value());
  // The leaf with its intermediate (no root): complete, no warning.
  auto inst2 = store_->install(slurp(path("signed.pem")) + slurp(path("fint.pem")));
  ASSERT_TRUE(inst2.ok()) << inst2.error().to_string();
  for (const auto& w : inst2->warnings) EXPECT_EQ(w.find("incomplete"), std::string::npos) << w;
  EXPECT_FALSE(store_->show()->missing_issuer.has_value());
}

TEST_F(StoreTest, InstallRefusesCertOfAnotherKey) {
  make_foreign_ca();
  (void)our_csr_file();
  auto other = ossl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout",
                     path("other.key"), "-out", path("other.csr"), "-subj", "/CN=node1.example.com"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  ASSERT_EQ(foreign_sign(path("other.csr"), path("other.pem")).exit_code, 0);
  auto inst = store_->install(slurp(path("other.pem")));
  ASSERT_FALSE(inst.ok());
  EXPECT_EQ(inst.error().name(), "xCertKeyMismatch");
  EXPECT_TRUE(store_->show()->csr_pending);  // nothing changed
  EXPECT_FALSE(store_->show()->cert.has_value());
}

TEST_F(StoreTest, InstallRefusesExpired) {
  make_foreign_ca();
  const std::string csr = our_csr_file();
  ASSERT_EQ(foreign_sign(csr, path("exp.pem"), {"-days", "-1"}).exit_code, 0);
  auto inst = store_->install(slurp(path("exp.pem")));
  ASSERT_FALSE(inst.ok());
  EXPECT_EQ(inst.error().name(), "xCertExpired") << inst.error().to_string();
}

TEST_F(StoreTest, InstallRefusesNotYetValid) {
  make_foreign_ca();
  const std::string csr = our_csr_file();
  // `openssl ca` can set a start date (openssl 3.0's x509 cannot).
  fs::create_directories(tmp_ / "db");
  write("db/index.txt", "");
  write("db/serial", "01\n");
  write("ca.cnf", "[ca]\ndefault_ca=d\n[d]\ndatabase=" + path("db/index.txt") + "\nnew_certs_dir=" + path("db") +
                      "\nserial=" + path("db/serial") +
                      "\ndefault_md=sha384\npolicy=p\ncopy_extensions=copy\nunique_subject=no\n[p]\n"
                      "commonName=supplied\n");
  auto r = ossl({"ca", "-batch", "-config", path("ca.cnf"), "-cert", path("fint.pem"), "-keyfile", path("fint.key"),
                 "-in", csr, "-out", path("nyv.pem"), "-startdate", "20991231000000Z", "-enddate", "21001231000000Z"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto inst = store_->install(slurp(path("nyv.pem")));
  ASSERT_FALSE(inst.ok());
  EXPECT_EQ(inst.error().name(), "xCertNotYetValid") << inst.error().to_string();
}

TEST_F(StoreTest, InstallWithoutAnyKey) {
  make_foreign_ca();
  auto inst = store_->install(slurp(path("fint.pem")));
  ASSERT_FALSE(inst.ok());
  EXPECT_EQ(inst.error().name(), "xCertNoKey");
}

TEST_F(StoreTest, InstallGarbage) {
  (void)our_csr_file();
  auto inst = store_->install("not a certificate at all");
  ASSERT_FALSE(inst.ok());
  EXPECT_EQ(inst.error().name(), "xCertGarbage");
  auto csr_back = store_->install(store_->pending_csr_pem().value());
  ASSERT_FALSE(csr_back.ok());
  EXPECT_EQ(csr_back.error().name(), "xCertGarbage");
  EXPECT_NE(csr_back.error().message().find("signing request"), std::string::npos);
}

TEST_F(StoreTest, NoEndpointYet) {
  auto c = store_->endpoint_chain();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().name(), "xCertNoEndpoint");
  auto s = store_->show();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mode, EndpointMode::kNone);
}

TEST_F(StoreTest, BadSubjectNamesTheField) {
  auto o = full_options();
  o.subject.country = "Germany";
  auto r = store_->create_internal(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xCertBadSubject");
  EXPECT_NE(r.error().message().find("country"), std::string::npos);
  o = full_options();
  o.sans.ip = {"192.0.2.300"};
  r = store_->create_self_signed(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xCertBadSan");
}

TEST_F(StoreTest, PendingCsrKeepsTheEndpointUntilInstall) {
  ASSERT_TRUE(store_->create_internal(full_options()).ok());
  const std::string before = store_->endpoint_chain_pem().value();
  make_foreign_ca();
  const std::string csr = our_csr_file();
  auto s = store_->show();
  EXPECT_EQ(s->mode, EndpointMode::kInternal);
  EXPECT_TRUE(s->csr_pending);
  EXPECT_EQ(store_->endpoint_chain_pem().value(), before);
  ASSERT_EQ(foreign_sign(csr, path("signed.pem")).exit_code, 0);
  auto inst = store_->install(slurp(path("signed.pem")));
  ASSERT_TRUE(inst.ok()) << inst.error().to_string();
  EXPECT_EQ(store_->show()->mode, EndpointMode::kExternal);
  EXPECT_TRUE(store_->endpoint_chain().value().front().matches(store_->endpoint_key().value()));
  // the internal root stays exportable for partners that still trust it
  EXPECT_TRUE(store_->export_root_pem().ok());
}

TEST_F(StoreTest, NoPrivateKeyInAnyOutput) {
  auto r = store_->create_internal(full_options());
  ASSERT_TRUE(r.ok());
  auto csr = store_->create_csr(full_options());
  ASSERT_TRUE(csr.ok());
  for (const std::string& out : {store_->export_root_pem().value(), store_->endpoint_chain_pem().value(), csr->csr_pem,
                                 store_->pending_csr_pem().value()})
    EXPECT_EQ(out.find("PRIVATE"), std::string::npos);
  // the key files hold keys, and only they
  EXPECT_NE(slurp(path("state/endpoint/key.pem")).find("PRIVATE KEY"), std::string::npos);
  for (const char* f : {"state/endpoint/key.pem", "state/pending/key.pem", "state/ca/key.pem"})
    EXPECT_EQ(file_mode(tmp_ / f), 0600u) << f;
  for (const auto& e : fs::recursive_directory_iterator(tmp_ / "state"))
    EXPECT_FALSE(atomic_write_target(e.path().filename().string())) << e.path();
}

TEST_F(StoreTest, InterruptedSwapIsRecoveredOnOpen) {
  ASSERT_TRUE(store_->create_internal(full_options()).ok());
  const std::string before = store_->endpoint_chain_pem().value();
  // crash after "endpoint" was renamed away, before "endpoint.new" took its place
  fs::rename(tmp_ / "state/endpoint", tmp_ / "state/endpoint.old");
  fs::create_directories(tmp_ / "state/endpoint.new");
  write("state/endpoint.new/key.pem", "half written");
  auto reopened = CertStore::open(tmp_ / "state");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(reopened->endpoint_chain_pem().value(), before);
  EXPECT_TRUE(reopened->endpoint_chain().value().front().matches(reopened->endpoint_key().value()));
  EXPECT_FALSE(fs::exists(tmp_ / "state/endpoint.new"));
  EXPECT_FALSE(fs::exists(tmp_ / "state/endpoint.old"));
}

}  // namespace
}  // namespace storcrypt::certs
