// Truststore and peer verification, with chains made by openssl commands
// acting as a foreign CA.
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <cctype>

#include "storcrypt/certs/certs.h"
#include "store_fixture.h"

namespace storcrypt::certs {
namespace {

using namespace storcrypt::certs::testing;  // NOLINT

class TrustTest : public StoreTest {
 protected:
  std::vector<Certificate> chain_of(const std::string& pem) {
    auto v = parse_certificates(pem);
    EXPECT_TRUE(v.ok()) << v.error().to_string();
    return v.ok() ? *v : std::vector<Certificate>{};
  }
  Result<CertInfo> verify(const std::string& pem, TrustUse use = TrustUse::kIpsec, PeerRole role = PeerRole::kServer) {
    VerifyOptions o;
    o.use = use;
    o.role = role;
    return store_->verify_peer(chain_of(pem), o);
  }
  std::string openssl_fp(const std::string& file) {
    auto r = ossl({"x509", "-in", file, "-noout", "-fingerprint", "-sha256"});
    EXPECT_EQ(r.exit_code, 0);
    auto eq = r.out.find('=');
    std::string fp = r.out.substr(eq + 1);
    while (!fp.empty() && std::isspace(static_cast<unsigned char>(fp.back()))) fp.pop_back();
    return fp;
  }
};

TEST_F(TrustTest, ConcatenatedChainValidatesPeerOfTheIntermediate) {
  make_foreign_ca();
  // intermediate first, root second: any order
  auto add = store_->trust_add(slurp(path("fint.pem")) + slurp(path("froot.pem")), {TrustUse::kIpsec});
  ASSERT_TRUE(add.ok()) << add.error().to_string();
  ASSERT_EQ(add->size(), 2u);
  const std::string peer = foreign_peer("peer1");
  // openssl agrees this chain is valid.
  auto ov = ossl({"verify", "-CAfile", path("froot.pem"), "-untrusted", path("fint.pem"), path("peer1.pem")});
  ASSERT_EQ(ov.exit_code, 0) << ov.out;
  auto v = verify(peer);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_NE(v->subject.find("CN=peer1"), std::string::npos);
  EXPECT_TRUE(verify(peer, TrustUse::kIpsec, PeerRole::kClient).ok());
  // the peer may also send its intermediate (and root)
  EXPECT_TRUE(verify(peer + slurp(path("fint.pem"))).ok());
  EXPECT_TRUE(verify(peer + slurp(path("fint.pem")) + slurp(path("froot.pem"))).ok());

  auto list = store_->trust_list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].cert.sha256_fingerprint, openssl_fp(path("fint.pem")));
  EXPECT_EQ((*list)[1].cert.sha256_fingerprint, openssl_fp(path("froot.pem")));
  EXPECT_NE((*list)[0].cert.issuer.find("Foreign Root"), std::string::npos);
  EXPECT_TRUE((*list)[1].cert.is_ca);
  EXPECT_LT((*list)[1].cert.not_before, (*list)[1].cert.not_after);
  EXPECT_EQ((*list)[0].uses, std::set<TrustUse>{TrustUse::kIpsec});
}

TEST_F(TrustTest, X509StoreForTls) {
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("fint.pem")) + slurp(path("froot.pem")), {TrustUse::kKmip}).ok());
  auto peer = chain_of(foreign_peer("kmipserver"));
  ASSERT_EQ(peer.size(), 1u);
  for (TrustUse use : {TrustUse::kKmip, TrustUse::kIpsec}) {
    auto st = store_->x509_store_for(use);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    Certificate shared = Certificate::share(peer[0].native());
    ASSERT_EQ(X509_STORE_CTX_init(ctx, *st, shared.native(), nullptr), 1);
    EXPECT_EQ(X509_verify_cert(ctx) == 1, use == TrustUse::kKmip);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(*st);
  }
}

TEST_F(TrustTest, UsesMergeAndWrongUseIsItsOwnError) {
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kKmip}).ok());
  const std::string peer = foreign_peer("peer1");
  auto v = verify(peer, TrustUse::kIpsec);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().name(), "xCertWrongUsage") << v.error().to_string();
  EXPECT_NE(v.error().message().find("kmip"), std::string::npos);
  EXPECT_TRUE(verify(peer, TrustUse::kKmip).ok());
  // adding again for ipsec merges the uses
  auto add = store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kIpsec});
  ASSERT_TRUE(add.ok());
  EXPECT_EQ((*add)[0].uses, (std::set<TrustUse>{TrustUse::kIpsec, TrustUse::kKmip}));
  EXPECT_EQ(store_->trust_list()->size(), 2u);
  EXPECT_TRUE(verify(peer, TrustUse::kIpsec).ok());
}

TEST_F(TrustTest, UntrustedRoot) {
  make_foreign_ca("f");
  make_foreign_ca("g");
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kIpsec}).ok());
  const std::string peer = foreign_peer("gpeer", {}, "g");
  for (const std::string& chain :
       {peer + slurp(path("gint.pem")), peer + slurp(path("gint.pem")) + slurp(path("groot.pem"))}) {
    auto v = verify(chain);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().name(), "xCertUntrustedRoot") << v.error().to_string();
    EXPECT_EQ(v.error().code(), ErrorCode::kTls);
    EXPECT_NE(v.error().fix().find("truststore add"), std::string::npos);
  }
  // empty truststore: nothing is trusted
  auto empty = CertStore::open(tmp_ / "empty");
  ASSERT_TRUE(empty.ok());
  VerifyOptions o;
  auto v = empty->verify_peer(chain_of(peer), o);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().name(), "xCertUntrustedRoot") << v.error().to_string();
}

TEST_F(TrustTest, MissingIntermediate) {
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")), {TrustUse::kIpsec}).ok());
  const std::string peer = foreign_peer("peer1");
  auto v = verify(peer);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().name(), "xCertMissingIntermediate") << v.error().to_string();
  // with the intermediate sent by the peer it validates
  EXPECT_TRUE(verify(peer + slurp(path("fint.pem"))).ok());
}

TEST_F(TrustTest, ExpiredPeer) {
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kIpsec}).ok());
  const std::string peer = foreign_peer("old", {"-days", "-1"});
  auto ov = ossl({"verify", "-CAfile", path("froot.pem"), "-untrusted", path("fint.pem"), path("old.pem")});
  EXPECT_NE(ov.exit_code, 0);  // openssl agrees
  auto v = verify(peer);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().name(), "xCertExpired") << v.error().to_string();
}

TEST_F(TrustTest, NotYetValidAtTheGivenTime) {
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kIpsec}).ok());
  const std::string peer = foreign_peer("peer1");
  VerifyOptions o;
  o.at = static_cast<UnixTime>(::time(nullptr)) - 86400;  // a clock one day behind
  auto v = store_->verify_peer(chain_of(peer), o);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().name(), "xCertNotYetValid") << v.error().to_string();
  EXPECT_NE(v.error().fix().find("clock"), std::string::npos);
}

TEST_F(TrustTest, WrongEku) {
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kIpsec}).ok());
  const std::string signer = foreign_peer("signer", {}, "f", "codeSigning");
  auto ov = ossl({"verify", "-CAfile", path("froot.pem"), "-untrusted", path("fint.pem"), "-purpose", "sslserver",
                  path("signer.pem")});
  EXPECT_NE(ov.exit_code, 0);  // openssl agrees
  auto v = verify(signer);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().name(), "xCertWrongUsage") << v.error().to_string();
  // serverAuth only: fine as a server, wrong as a client
  const std::string server = foreign_peer("server", {}, "f", "serverAuth");
  EXPECT_TRUE(verify(server, TrustUse::kIpsec, PeerRole::kServer).ok());
  auto c = verify(server, TrustUse::kIpsec, PeerRole::kClient);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().name(), "xCertWrongUsage");
}

TEST_F(TrustTest, AddRefusesGarbageIncompleteAndExpired) {
  make_foreign_ca();
  auto g = store_->trust_add("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", {TrustUse::kIpsec});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().name(), "xCertGarbage");
  auto inc = store_->trust_add(slurp(path("fint.pem")), {TrustUse::kIpsec});
  ASSERT_FALSE(inc.ok());
  EXPECT_EQ(inc.error().name(), "xCertMissingIntermediate") << inc.error().to_string();
  auto nouse = store_->trust_add(slurp(path("froot.pem")), {});
  ASSERT_FALSE(nouse.ok());
  EXPECT_EQ(nouse.error().name(), "xTrustBadUse");
  // an intermediate that has expired (openssl x509 -days -1), with its valid root
  auto r = ossl({"x509", "-req", "-in", path("fint.csr"), "-CA", path("froot.pem"), "-CAkey", path("froot.key"),
                 "-days", "-1", "-extfile", path("fint.ext"), "-out", path("oldint.pem")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto exp = store_->trust_add(slurp(path("froot.pem")) + slurp(path("oldint.pem")), {TrustUse::kIpsec});
  ASSERT_FALSE(exp.ok());
  EXPECT_EQ(exp.error().name(), "xCertExpired") << exp.error().to_string();
  EXPECT_TRUE(store_->trust_list()->empty());
}

TEST_F(TrustTest, Remove) {
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")) + slurp(path("fint.pem")), {TrustUse::kIpsec}).ok());
  std::string fp = openssl_fp(path("fint.pem"));
  for (auto& c : fp) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  ASSERT_TRUE(store_->trust_remove(fp).ok());
  auto list = store_->trust_list();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_NE((*list)[0].cert.subject.find("Foreign Root"), std::string::npos);
  auto again = store_->trust_remove(fp);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().name(), "xTrustEntryNotFound");
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
  // prefix of the root's fingerprint (no colons)
  std::string root_id;
  for (char c : openssl_fp(path("froot.pem")))
    if (c != ':') root_id += c;
  ASSERT_TRUE(store_->trust_remove(root_id.substr(0, 12)).ok());
  EXPECT_TRUE(store_->trust_list()->empty());
  // the intermediate is gone: a peer of it no longer validates
  auto v = verify(foreign_peer("peer1"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().name(), "xCertUntrustedRoot");
}

TEST_F(TrustTest, TwoStorcryptSystemsInternalMode) {
  // System A (this store) makes an internal root; system B trusts it for ipsec.
  ASSERT_TRUE(store_->create_internal(full_options()).ok());
  auto b = CertStore::open(tmp_ / "systemB");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->trust_add(store_->export_root_pem().value(), {TrustUse::kIpsec}).ok());
  VerifyOptions o;
  auto v = b->verify_peer(store_->endpoint_chain().value(), o);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  o.role = PeerRole::kClient;
  EXPECT_TRUE(b->verify_peer(store_->endpoint_chain().value(), o).ok());
  // leaf only (IKE peers often send just the end-entity certificate)
  EXPECT_TRUE(b->verify_peer({store_->endpoint_chain().value().front()}, o).ok());
  o.use = TrustUse::kRestApi;
  auto wrong = b->verify_peer(store_->endpoint_chain().value(), o);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().name(), "xCertWrongUsage") << wrong.error().to_string();
}

TEST_F(TrustTest, SelfSignedPartnerTrustedDirectly) {
  ASSERT_TRUE(store_->create_self_signed(full_options()).ok());
  auto b = CertStore::open(tmp_ / "systemB");
  ASSERT_TRUE(b.ok());
  auto add = b->trust_add(store_->endpoint_chain_pem().value(), {TrustUse::kIpsec});
  ASSERT_TRUE(add.ok()) << add.error().to_string();
  VerifyOptions o;
  auto v = b->verify_peer(store_->endpoint_chain().value(), o);
  EXPECT_TRUE(v.ok()) << v.error().to_string();
  // a different self-signed system is not trusted
  auto c = CertStore::open(tmp_ / "systemC");
  ASSERT_TRUE(c->create_self_signed(full_options()).ok());
  auto other = b->verify_peer(c->endpoint_chain().value(), o);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().name(), "xCertUntrustedRoot") << other.error().to_string();
}

TEST_F(TrustTest, ExpiryReportClasses) {
  auto o = full_options();
  o.days = 40;
  ASSERT_TRUE(store_->create_internal(o).ok());
  make_foreign_ca();
  ASSERT_TRUE(store_->trust_add(slurp(path("froot.pem")), {TrustUse::kKmip}).ok());
  const UnixTime t0 = static_cast<UnixTime>(::time(nullptr));
  auto endpoint_class = [&](UnixTime at) {
    clock_ = at;
    auto r = store_->expiry_report();
    EXPECT_TRUE(r.ok());
    std::optional<ExpiryClass> c;
    int roles = 0;
    for (const auto& e : *r) {
      if (e.role == "endpoint") c = e.cls;
      if (e.role == "internal-root" || e.role == "truststore") ++roles;
      EXPECT_NE(e.role, "endpoint-chain");  // the internal root is reported once
    }
    EXPECT_EQ(roles, 2);
    return c.value_or(ExpiryClass::kOk);
  };
  constexpr UnixTime kDay = 86400;
  EXPECT_EQ(endpoint_class(t0), ExpiryClass::kOk);
  EXPECT_EQ(endpoint_class(t0 + 15 * kDay), ExpiryClass::kWarning);
  EXPECT_EQ(endpoint_class(t0 + 35 * kDay), ExpiryClass::kError);
  EXPECT_EQ(endpoint_class(t0 + 38 * kDay), ExpiryClass::kCritical);
  EXPECT_EQ(endpoint_class(t0 + 41 * kDay), ExpiryClass::kExpired);
  EXPECT_EQ(endpoint_class(t0 - kDay), ExpiryClass::kNotYetValid);
}

}  // namespace
}  // namespace storcrypt::certs
