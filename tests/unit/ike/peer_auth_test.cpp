// Peer certificate validation for IKE_AUTH (peer_auth.h): chains built by
// the test PKI (root CA -> intermediate CA -> end entity), validated with the
// intermediate from CERT payloads or from the truststore (including a real
// certs::CertStore truststore), refusals with the names an operator needs,
// the IKE key usage rule, CNSA key sizes, the ID match and the chain cache.
#include "storcrypt/ike/peer_auth.h"

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <filesystem>
#include <string>
#include <vector>

#include "storcrypt/certs/certs.h"
#include "storcrypt/ike/auth.h"
#include "storcrypt/testing/test_pki.h"

namespace storcrypt::ike {
namespace {

using storcrypt::testing::CertSpec;
using storcrypt::testing::ChainSpec;
using storcrypt::testing::issue_cert;
using storcrypt::testing::make_chain;
using storcrypt::testing::TestChain;
using storcrypt::testing::TestKey;
using storcrypt::testing::unix_now;

constexpr std::int64_t kDay = 86400;

IdPayload fqdn(std::string_view s) {
  IdPayload id;
  id.id_type = id_type::kFqdn;
  id.data.assign(s.begin(), s.end());
  return id;
}
IdPayload ipv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  IdPayload id;
  id.id_type = id_type::kIpv4Addr;
  id.data = {a, b, c, d};
  return id;
}
IdPayload dn_of(X509* cert) {
  auto id = id_from_subject(cert);
  if (!id.ok()) std::abort();
  return *id;
}

PeerValidator validator(std::vector<X509*> anchors, std::vector<X509*> intermediates = {},
                        std::size_t cache = PeerValidator::kDefaultCacheEntries) {
  auto v = PeerValidator::from_certificates(anchors, intermediates, cache);
  if (!v.ok()) std::abort();
  return std::move(v).value();
}

std::string subject(X509* x) { return certs::Certificate::share(x).info().subject; }

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "in: " << (haystack)

class PeerAuth : public ::testing::Test {
 protected:
  TestChain pki = make_chain();
  std::vector<X509*> inter{pki.intermediate.get()};
  std::int64_t now = unix_now();
};

TEST_F(PeerAuth, IntermediateFromCertPayloads) {
  PeerValidator v = validator({pki.root.get()});
  EXPECT_EQ(v.anchor_count(), 1u);
  auto st = v.validate(pki.ee.get(), inter, dn_of(pki.ee.get()), now);
  EXPECT_TRUE(st.ok()) << st.error().to_string();
}

TEST_F(PeerAuth, IntermediateFromTruststoreList) {
  PeerValidator v = validator({pki.root.get()}, {pki.intermediate.get()});
  auto st = v.validate(pki.ee.get(), {}, dn_of(pki.ee.get()), now);
  EXPECT_TRUE(st.ok()) << st.error().to_string();
}

TEST_F(PeerAuth, MissingIntermediateNamesTheIssuer) {
  PeerValidator v = validator({pki.root.get()});
  auto st = v.validate(pki.ee.get(), {}, dn_of(pki.ee.get()), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(st.error().name(), "xIkePeerUntrusted");
  const std::string m = st.error().message();
  EXPECT_EQ(m.rfind("peer certificate not trusted: unable to get local issuer certificate (issuer " +
                        subject(pki.intermediate.get()) + " not in the ipsec truststore",
                    0),
            0u)
      << m;
  EXPECT_CONTAINS(m, "peer certificate subject " + subject(pki.ee.get()));
  EXPECT_FALSE(st.error().fix().empty());
}

TEST_F(PeerAuth, WrongRootNamesTheUntrustedIssuer) {
  TestChain theirs = make_chain(ChainSpec{.root_cn = "their root CA", .intermediate_cn = "their intermediate CA"});
  PeerValidator v = validator({pki.root.get()});
  std::vector<X509*> their_inter{theirs.intermediate.get()};
  auto st = v.validate(theirs.ee.get(), their_inter, dn_of(theirs.ee.get()), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(st.error().name(), "xIkePeerUntrusted");
  EXPECT_CONTAINS(st.error().message(), "peer certificate not trusted: unable to get local issuer certificate");
  EXPECT_CONTAINS(st.error().message(), "issuer CN=their root CA,O=storcrypt-test not in the ipsec truststore");
  EXPECT_CONTAINS(st.error().message(), "issuer " + subject(theirs.intermediate.get()));
  // The peer also sends its self-signed root: still not trusted, the root is named.
  std::vector<X509*> with_root{theirs.intermediate.get(), theirs.root.get()};
  st = v.validate(theirs.ee.get(), with_root, dn_of(theirs.ee.get()), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerUntrusted");
  EXPECT_CONTAINS(st.error().message(), "root CN=their root CA,O=storcrypt-test not in the ipsec truststore");
  // An empty truststore says so.
  PeerValidator empty = validator({});
  st = empty.validate(pki.ee.get(), inter, dn_of(pki.ee.get()), now);
  ASSERT_FALSE(st.ok());
  EXPECT_CONTAINS(st.error().message(), "the ipsec truststore is empty");
}

TEST_F(PeerAuth, ExpiredAndNotYetValid) {
  PeerValidator v = validator({pki.root.get()});
  CertSpec old{
      .common_name = "old.lab", .san = "DNS:old.lab", .not_before = now - 60 * kDay, .not_after = now - 2 * kDay};
  storcrypt::testing::KeyPtr k = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto expired = issue_cert(k.get(), old, pki.intermediate.get(), pki.intermediate_key.get());
  auto st = v.validate(expired.get(), inter, fqdn("old.lab"), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(st.error().name(), "xIkePeerExpired");
  EXPECT_EQ(st.error().message().rfind("peer certificate expired on " + certs::format_utc(now - 2 * kDay), 0), 0u)
      << st.error().message();
  EXPECT_CONTAINS(st.error().message(), "subject CN=old.lab,O=storcrypt-test");
  EXPECT_CONTAINS(st.error().message(), "issuer " + subject(pki.intermediate.get()));

  CertSpec future{
      .common_name = "future.lab", .san = "DNS:future.lab", .not_before = now + 2 * kDay, .not_after = now + 60 * kDay};
  auto early = issue_cert(k.get(), future, pki.intermediate.get(), pki.intermediate_key.get());
  st = v.validate(early.get(), inter, fqdn("future.lab"), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerNotYetValid");
  EXPECT_CONTAINS(st.error().message(), "peer certificate not valid before " + certs::format_utc(now + 2 * kDay));
  // ...and valid once the time has come.
  EXPECT_TRUE(v.validate(early.get(), inter, fqdn("future.lab"), now + 3 * kDay).ok());

  // The validation time is the caller's: the normal chain (30 days) expires 31 days from now.
  st = v.validate(pki.ee.get(), inter, dn_of(pki.ee.get()), now + 31 * kDay);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerExpired");
}

TEST_F(PeerAuth, ExpiredIntermediateIsNamed) {
  storcrypt::testing::KeyPtr ik = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto old_inter = issue_cert(
      ik.get(),
      CertSpec{.common_name = "old intermediate", .ca = true, .not_before = now - 60 * kDay, .not_after = now - kDay},
      pki.root.get(), pki.root_key.get());
  storcrypt::testing::KeyPtr ek = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto ee = issue_cert(ek.get(), CertSpec{.common_name = "ee.lab", .san = "DNS:ee.lab"}, old_inter.get(), ik.get());
  PeerValidator v = validator({pki.root.get()});
  std::vector<X509*> chain{old_inter.get()};
  auto st = v.validate(ee.get(), chain, fqdn("ee.lab"), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerExpired");
  EXPECT_CONTAINS(st.error().message(),
                  "CA certificate CN=old intermediate,O=storcrypt-test of the peer's chain expired on");
}

// EKU rule: absent, or one of serverAuth, clientAuth, ipsecIKE, anyExtendedKeyUsage.
TEST_F(PeerAuth, ExtendedKeyUsageRule) {
  PeerValidator v = validator({pki.root.get()});
  storcrypt::testing::KeyPtr k = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto with_eku = [&](const std::string& eku) {
    auto c = issue_cert(k.get(), CertSpec{.common_name = "eku.lab", .san = "DNS:eku.lab", .ext_key_usage = eku},
                        pki.intermediate.get(), pki.intermediate_key.get());
    return v.validate(c.get(), inter, fqdn("eku.lab"), now);
  };
  for (const char* ok : {"serverAuth", "clientAuth", "serverAuth,clientAuth", "1.3.6.1.5.5.7.3.17",
                         "anyExtendedKeyUsage", "emailProtection,ipsecIKE"}) {
    auto st = with_eku(ok);
    EXPECT_TRUE(st.ok()) << ok << ": " << st.error().to_string();
  }
  for (const char* bad : {"emailProtection", "codeSigning,timeStamping", "1.3.6.1.5.5.7.3.5"}) {
    auto st = with_eku(bad);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
    EXPECT_EQ(st.error().name(), "xIkePeerWrongUsage");
    EXPECT_CONTAINS(st.error().message(), "extendedKeyUsage");
    EXPECT_CONTAINS(st.error().message(), "subject CN=eku.lab,O=storcrypt-test");
  }
}

TEST_F(PeerAuth, KeyUsageNeedsDigitalSignature) {
  PeerValidator v = validator({pki.root.get()});
  storcrypt::testing::KeyPtr k = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto with_ku = [&](const std::string& ku) {
    auto c = issue_cert(k.get(), CertSpec{.common_name = "ku.lab", .san = "DNS:ku.lab", .key_usage = ku},
                        pki.intermediate.get(), pki.intermediate_key.get());
    return v.validate(c.get(), inter, fqdn("ku.lab"), now);
  };
  EXPECT_TRUE(with_ku("critical,digitalSignature").ok());
  EXPECT_TRUE(with_ku("digitalSignature,keyAgreement").ok());
  EXPECT_TRUE(with_ku("").ok());  // no keyUsage extension at all
  for (const char* bad : {"critical,keyAgreement", "nonRepudiation", "keyEncipherment"}) {
    auto st = with_ku(bad);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.error().name(), "xIkePeerWrongUsage");
    EXPECT_CONTAINS(st.error().message(), "keyUsage does not include digitalSignature");
  }
}

TEST_F(PeerAuth, IssuerThatIsNoCaRefused) {
  storcrypt::testing::KeyPtr ik = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto not_ca =
      issue_cert(ik.get(), CertSpec{.common_name = "not a CA", .san = "DNS:x.lab"}, pki.root.get(), pki.root_key.get());
  storcrypt::testing::KeyPtr ek = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto ee = issue_cert(ek.get(), CertSpec{.common_name = "ee.lab", .san = "DNS:ee.lab"}, not_ca.get(), ik.get());
  PeerValidator v = validator({pki.root.get()});
  std::vector<X509*> chain{not_ca.get()};
  auto st = v.validate(ee.get(), chain, fqdn("ee.lab"), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
}

TEST_F(PeerAuth, CnsaKeysOnly) {
  PeerValidator v = validator({pki.root.get()});
  auto ee_with = [&](TestKey t) {
    storcrypt::testing::KeyPtr k = storcrypt::testing::generate_key(t);
    auto c = issue_cert(k.get(), CertSpec{.common_name = "k.lab", .san = "DNS:k.lab"}, pki.intermediate.get(),
                        pki.intermediate_key.get());
    return v.validate(c.get(), inter, fqdn("k.lab"), now);
  };
  auto st = ee_with(TestKey::kRsa2048);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(st.error().name(), "xIkePeerWeakKey");
  EXPECT_CONTAINS(st.error().message(), "subject CN=k.lab,O=storcrypt-test");
  st = ee_with(TestKey::kEcP256);  // 128-bit, but CNSA wants P-384
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerWeakKey");
  EXPECT_CONTAINS(st.error().message(), "ec-p256");
  st = ee_with(TestKey::kRsa3072);
  EXPECT_TRUE(st.ok()) << st.error().to_string();
}

TEST_F(PeerAuth, IdByDnFqdnAndIp) {
  PeerValidator v = validator({pki.root.get()});
  // make_chain's end entity: CN=node-a.lab, SAN DNS:node-a.lab, IP:192.0.2.1.
  EXPECT_TRUE(v.validate(pki.ee.get(), inter, dn_of(pki.ee.get()), now).ok());
  EXPECT_TRUE(v.validate(pki.ee.get(), inter, fqdn("node-a.lab"), now).ok());
  EXPECT_TRUE(v.validate(pki.ee.get(), inter, ipv4(192, 0, 2, 1), now).ok());
  for (const IdPayload& wrong : {fqdn("node-b.lab"), ipv4(192, 0, 2, 2), dn_of(pki.intermediate.get())}) {
    auto st = v.validate(pki.ee.get(), inter, wrong, now);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
    EXPECT_EQ(st.error().name(), "xIkeIdMismatch");
    EXPECT_EQ(st.error().message().rfind("ID does not match certificate", 0), 0u);
    EXPECT_CONTAINS(st.error().message(), "peer certificate subject " + subject(pki.ee.get()));
    EXPECT_CONTAINS(st.error().message(), "SAN DNS:node-a.lab,IP:192.0.2.1");
  }
  auto st = v.validate(pki.ee.get(), inter, fqdn("node-b.lab"), now);
  EXPECT_CONTAINS(st.error().message(), "peer ID FQDN node-b.lab");
}

TEST_F(PeerAuth, CacheHitsStillCheckTimeAndId) {
  PeerValidator v = validator({pki.root.get()});
  const IdPayload id = dn_of(pki.ee.get());
  ASSERT_TRUE(v.validate(pki.ee.get(), inter, id, now).ok());
  EXPECT_EQ(v.stats().cache_misses, 1u);
  EXPECT_EQ(v.stats().cache_hits, 0u);
  ASSERT_TRUE(v.validate(pki.ee.get(), inter, id, now + 60).ok());
  EXPECT_EQ(v.stats().cache_hits, 1u);
  EXPECT_EQ(v.stats().cache_entries, 1u);
  // A cached chain is not valid after its expiry nor before its start.
  auto st = v.validate(pki.ee.get(), inter, id, now + 31 * kDay);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerExpired");
  ASSERT_TRUE(v.validate(pki.ee.get(), inter, id, now).ok());  // re-validated and cached again
  st = v.validate(pki.ee.get(), inter, id, now - 2 * 3600);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerNotYetValid");
  // The ID is checked on every hit.
  ASSERT_TRUE(v.validate(pki.ee.get(), inter, id, now).ok());
  const auto hits = v.stats().cache_hits;
  st = v.validate(pki.ee.get(), inter, fqdn("node-b.lab"), now);
  EXPECT_EQ(v.stats().cache_hits, hits + 1);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkeIdMismatch");
  // Another set of presented intermediates is another key (the peer might
  // send a chain that does not verify).
  EXPECT_FALSE(v.validate(pki.ee.get(), {}, id, now).ok());
}

TEST_F(PeerAuth, CacheIsBounded) {
  PeerValidator v = validator({pki.root.get()}, {pki.intermediate.get()}, 2);
  std::vector<storcrypt::testing::CertPtr> ees;
  for (int i = 0; i < 4; ++i) {
    storcrypt::testing::KeyPtr k = storcrypt::testing::generate_key(TestKey::kEcP384);
    ees.push_back(issue_cert(k.get(), CertSpec{.common_name = "n" + std::to_string(i) + ".lab"}, pki.intermediate.get(),
                             pki.intermediate_key.get()));
    ASSERT_TRUE(v.validate(ees.back().get(), {}, dn_of(ees.back().get()), now).ok());
  }
  EXPECT_EQ(v.stats().cache_entries, 2u);
  EXPECT_EQ(v.stats().cache_misses, 4u);
  // The most recent two hit, the oldest was evicted.
  ASSERT_TRUE(v.validate(ees[3].get(), {}, dn_of(ees[3].get()), now).ok());
  ASSERT_TRUE(v.validate(ees[0].get(), {}, dn_of(ees[0].get()), now).ok());
  EXPECT_EQ(v.stats().cache_hits, 1u);
  EXPECT_EQ(v.stats().cache_misses, 5u);
  // Capacity 0: no caching.
  PeerValidator none = validator({pki.root.get()}, {pki.intermediate.get()}, 0);
  ASSERT_TRUE(none.validate(ees[0].get(), {}, dn_of(ees[0].get()), now).ok());
  ASSERT_TRUE(none.validate(ees[0].get(), {}, dn_of(ees[0].get()), now).ok());
  EXPECT_EQ(none.stats().cache_hits, 0u);
  EXPECT_EQ(none.stats().cache_entries, 0u);
}

TEST_F(PeerAuth, EngineCallbackUsesItsClock) {
  auto shared = std::make_shared<const PeerValidator>(validator({pki.root.get()}));
  std::int64_t t = now;
  PeerCertValidator cb = make_peer_cert_validator(shared, [&t] { return t; });
  EXPECT_TRUE(cb(pki.ee.get(), inter, dn_of(pki.ee.get())).ok());
  t = now + 31 * kDay;
  EXPECT_FALSE(cb(pki.ee.get(), inter, dn_of(pki.ee.get())).ok());
  PeerCertValidator sys = make_peer_cert_validator(shared);
  EXPECT_TRUE(sys(pki.ee.get(), inter, dn_of(pki.ee.get())).ok());
}

TEST_F(PeerAuth, AnchorsMustBeSelfSigned) {
  std::vector<X509*> anchors{pki.intermediate.get()};
  auto v = PeerValidator::from_certificates(anchors);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(PeerValidator::from_certificates({}).value().anchor_count(), 0u);
  PeerValidator ok = validator({pki.root.get()});
  EXPECT_EQ(ok.validate(nullptr, inter, fqdn("x"), now).error().code(), ErrorCode::kInvalidInput);
}

// Through a real truststore (certs::CertStore): entries marked ipsec are used,
// entries for other uses are not.
class PeerAuthTruststore : public PeerAuth {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() / ("storcrypt-peer-auth-" + std::to_string(::getpid()) + "-" +
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
};

TEST_F(PeerAuthTruststore, IpsecEntriesWithIntermediate) {
  auto store = certs::CertStore::open(dir);
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  const std::string bundle =
      storcrypt::testing::cert_pem(pki.intermediate.get()) + storcrypt::testing::cert_pem(pki.root.get());
  auto added = store->trust_add(bundle, {certs::TrustUse::kIpsec});
  ASSERT_TRUE(added.ok()) << added.error().to_string();
  auto v = PeerValidator::from_truststore(*store);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_EQ(v->anchor_count(), 1u);
  // Intermediate from the truststore, none in CERT payloads.
  auto st = v->validate(pki.ee.get(), {}, fqdn("node-a.lab"), now);
  EXPECT_TRUE(st.ok()) << st.error().to_string();
  // A chain under another root is refused.
  TestChain theirs = make_chain(ChainSpec{.root_cn = "their root CA"});
  std::vector<X509*> their_inter{theirs.intermediate.get()};
  st = v->validate(theirs.ee.get(), their_inter, fqdn("node-a.lab"), now);
  ASSERT_FALSE(st.ok());
  EXPECT_CONTAINS(st.error().message(), "CN=their root CA,O=storcrypt-test not in the ipsec truststore");
}

TEST_F(PeerAuthTruststore, OtherUsesAreNotTrustedForIpsec) {
  auto store = certs::CertStore::open(dir);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store->trust_add(storcrypt::testing::cert_pem(pki.root.get()), {certs::TrustUse::kKmip}).ok());
  auto v = PeerValidator::from_truststore(*store);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->anchor_count(), 0u);
  auto st = v->validate(pki.ee.get(), inter, fqdn("node-a.lab"), now);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xIkePeerUntrusted");
  // Marked for ipsec as well: now trusted (a new validator sees the change).
  ASSERT_TRUE(store->trust_add(storcrypt::testing::cert_pem(pki.root.get()), {certs::TrustUse::kIpsec}).ok());
  auto v2 = PeerValidator::from_truststore(*store);
  ASSERT_TRUE(v2.ok());
  EXPECT_TRUE(v2->validate(pki.ee.get(), inter, fqdn("node-a.lab"), now).ok());
}

}  // namespace
}  // namespace storcrypt::ike
