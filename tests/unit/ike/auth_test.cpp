// Certificate authentication for IKE_AUTH: RFC 7427 method 14 with ECDSA
// P-384/SHA-384, CERT payloads (X.509 DER) and the ID/certificate match.
// Keys and certificates are generated here with OpenSSL.
#include "storcrypt/ike/auth.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <string>

#include "ike_test_util.h"
#include "rsa_kat.h"
#include "storcrypt/ike/crypto.h"
#include "storcrypt/ike/ike_sa.h"  // id_ip
#include "storcrypt/testing/test_pki.h"

namespace storcrypt::ike {
namespace {

using testing::hx;

using storcrypt::testing::CertSpec;
using storcrypt::testing::issue_cert;
using storcrypt::testing::TestKey;
using PkeyPtr = storcrypt::testing::KeyPtr;
using CertPtr = storcrypt::testing::CertPtr;

PkeyPtr ec_key(const char* curve) {
  return storcrypt::testing::generate_key(std::string_view(curve) == "P-256" ? TestKey::kEcP256 : TestKey::kEcP384);
}

// A certificate for `key` with subject CN=<cn>,O=storcrypt-test, SAN `san`
// (OpenSSL config syntax, may be empty), signed by `issuer_key` (self-signed
// when issuer is null).
CertPtr make_cert(EVP_PKEY* key, const std::string& cn, const char* san, X509* issuer = nullptr,
                  EVP_PKEY* issuer_key = nullptr, bool ca = false) {
  return issue_cert(key, CertSpec{.common_name = cn, .san = san, .ca = ca}, issuer, issuer_key);
}

Bytes some_octets() {
  Bytes b;
  for (int i = 0; i < 300; ++i) b.push_back(static_cast<std::uint8_t>(i * 7));
  return b;
}

class IkeAuth : public ::testing::Test {
 protected:
  PkeyPtr key = ec_key("P-384");
  CertPtr cert = make_cert(key.get(), "node-a.lab", "DNS:node-a.lab,IP:192.0.2.1");
  Bytes octets = some_octets();
};

TEST(IkeAuthAlgId, IsRfc7427AppendixA) {
  // RFC 7427 A.3.2 ecdsa-with-sha384, copied from the RFC text.
  const Bytes expected = hx("300a06082a8648ce3d040303");
  const auto got = ecdsa_sha384_algorithm_identifier();
  EXPECT_EQ(Bytes(got.begin(), got.end()), expected);
}

TEST_F(IkeAuth, SignThenVerify) {
  auto auth = sign_auth_ecdsa_p384(key.get(), octets);
  ASSERT_TRUE(auth.ok()) << auth.error().to_string();
  EXPECT_EQ(auth->method, auth_method::kDigitalSignature);
  ASSERT_GT(auth->data.size(), 13u);
  EXPECT_EQ(auth->data[0], 12);
  EXPECT_EQ(Bytes(auth->data.begin() + 1, auth->data.begin() + 13), hx("300a06082a8648ce3d040303"));
  // The signature is a DER Ecdsa-Sig-Value that OpenSSL parses completely.
  const unsigned char* p = auth->data.data() + 13;
  const long sig_len = static_cast<long>(auth->data.size() - 13);
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, sig_len);
  ASSERT_NE(sig, nullptr);
  EXPECT_EQ(p, auth->data.data() + auth->data.size());
  ECDSA_SIG_free(sig);
  auto st = verify_auth_ecdsa_p384(*auth, cert.get(), octets);
  EXPECT_TRUE(st.ok()) << st.error().to_string();
}

TEST_F(IkeAuth, WrongKeyFails) {
  PkeyPtr other = ec_key("P-384");
  auto auth = sign_auth_ecdsa_p384(other.get(), octets);
  ASSERT_TRUE(auth.ok());
  auto st = verify_auth_ecdsa_p384(*auth, cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(st.error().message(), "AUTH signature invalid");
}

TEST_F(IkeAuth, TamperedOctetsFail) {
  auto auth = sign_auth_ecdsa_p384(key.get(), octets);
  ASSERT_TRUE(auth.ok());
  for (std::size_t i : {std::size_t{0}, octets.size() / 2, octets.size() - 1}) {
    Bytes t = octets;
    t[i] ^= 0x01;
    EXPECT_FALSE(verify_auth_ecdsa_p384(*auth, cert.get(), t).ok()) << "octet " << i;
  }
  Bytes shorter(octets.begin(), octets.end() - 1);
  EXPECT_FALSE(verify_auth_ecdsa_p384(*auth, cert.get(), shorter).ok());
}

TEST_F(IkeAuth, TamperedSignatureFails) {
  auto auth = sign_auth_ecdsa_p384(key.get(), octets);
  ASSERT_TRUE(auth.ok());
  AuthPayload t = *auth;
  t.data.back() ^= 0x01;
  EXPECT_FALSE(verify_auth_ecdsa_p384(t, cert.get(), octets).ok());
  t = *auth;
  t.data.pop_back();
  EXPECT_FALSE(verify_auth_ecdsa_p384(t, cert.get(), octets).ok());
}

TEST_F(IkeAuth, RejectsOtherAlgorithmIdentifiers) {
  auto auth = sign_auth_ecdsa_p384(key.get(), octets);
  ASSERT_TRUE(auth.ok());
  const Bytes sig(auth->data.begin() + 13, auth->data.end());
  auto with_alg = [&](const Bytes& alg) {
    AuthPayload a;
    a.method = auth_method::kDigitalSignature;
    a.data.push_back(static_cast<std::uint8_t>(alg.size()));
    a.data.insert(a.data.end(), alg.begin(), alg.end());
    a.data.insert(a.data.end(), sig.begin(), sig.end());
    return a;
  };
  // Sanity: the same assembly with the right identifier verifies.
  EXPECT_TRUE(verify_auth_ecdsa_p384(with_alg(hx("300a06082a8648ce3d040303")), cert.get(), octets).ok());
  // ecdsa-with-SHA256 (RFC 7427 A.3.1).
  EXPECT_FALSE(verify_auth_ecdsa_p384(with_alg(hx("300a06082a8648ce3d040302")), cert.get(), octets).ok());
  // ecdsa-with-SHA384 with NULL parameters.
  EXPECT_FALSE(verify_auth_ecdsa_p384(with_alg(hx("300c06082a8648ce3d0403030500")), cert.get(), octets).ok());
  // Length byte lies (longer than the blob: swallows signature bytes).
  AuthPayload lie = *auth;
  lie.data[0] = 13;
  EXPECT_FALSE(verify_auth_ecdsa_p384(lie, cert.get(), octets).ok());
  lie.data[0] = 200;
  EXPECT_FALSE(verify_auth_ecdsa_p384(lie, cert.get(), octets).ok());
  // Garbage instead of ASN.1.
  EXPECT_FALSE(verify_auth_ecdsa_p384(with_alg(hx("ffffffff")), cert.get(), octets).ok());
  AuthPayload empty;
  empty.method = auth_method::kDigitalSignature;
  EXPECT_FALSE(verify_auth_ecdsa_p384(empty, cert.get(), octets).ok());
  // Other methods.
  AuthPayload psk = *auth;
  psk.method = auth_method::kSharedKey;
  EXPECT_FALSE(verify_auth_ecdsa_p384(psk, cert.get(), octets).ok());
}

TEST_F(IkeAuth, OnlyP384Keys) {
  PkeyPtr p256 = ec_key("P-256");
  EXPECT_FALSE(sign_auth_ecdsa_p384(p256.get(), octets).ok());
  EXPECT_FALSE(sign_auth_ecdsa_p384(nullptr, octets).ok());
  // A P-256 certificate is refused even for a signature made by its own key
  // through the generic EVP path.
  CertPtr c256 = make_cert(p256.get(), "p256.lab", "DNS:p256.lab");
  auto auth = sign_auth_ecdsa_p384(key.get(), octets);
  ASSERT_TRUE(auth.ok());
  auto st = verify_auth_ecdsa_p384(*auth, c256.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "peer certificate key is not EC P-384");
}

TEST_F(IkeAuth, CertPayloadRoundTrip) {
  auto c = cert_payload(cert.get());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->encoding, 4);
  auto back = parse_cert_payload(*c);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(X509_cmp(back->get(), cert.get()), 0);
  CertPayload trailing = *c;
  trailing.data.push_back(0);
  EXPECT_FALSE(parse_cert_payload(trailing).ok());
  CertPayload truncated = *c;
  truncated.data.resize(truncated.data.size() - 1);
  EXPECT_FALSE(parse_cert_payload(truncated).ok());
  CertPayload other_encoding = *c;
  other_encoding.encoding = 1;  // PKCS #7 wrapped
  EXPECT_FALSE(parse_cert_payload(other_encoding).ok());
  EXPECT_FALSE(parse_cert_payload(CertPayload{}).ok());
}

TEST_F(IkeAuth, IdSubjectDn) {
  auto id = id_from_subject(cert.get());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->id_type, id_type::kDerAsn1Dn);
  EXPECT_TRUE(check_id_matches_cert(*id, cert.get()).ok());
  PkeyPtr k2 = ec_key("P-384");
  CertPtr other = make_cert(k2.get(), "node-b.lab", "DNS:node-b.lab");
  auto st = check_id_matches_cert(*id, other.get());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "ID does not match certificate");
  IdPayload bad = *id;
  bad.data.push_back(0);
  EXPECT_FALSE(check_id_matches_cert(bad, cert.get()).ok());
}

IdPayload id_of(std::uint8_t type, const Bytes& data) {
  IdPayload id;
  id.id_type = type;
  id.data = data;
  return id;
}
Bytes str(std::string_view s) { return Bytes(s.begin(), s.end()); }

TEST_F(IkeAuth, IdFqdnAndIpv4AgainstSan) {
  EXPECT_TRUE(check_id_matches_cert(id_of(id_type::kFqdn, str("node-a.lab")), cert.get()).ok());
  EXPECT_TRUE(check_id_matches_cert(id_of(id_type::kFqdn, str("NODE-A.lab")), cert.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kFqdn, str("node-b.lab")), cert.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kFqdn, str("x.node-a.lab")), cert.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kFqdn, str("")), cert.get()).ok());
  EXPECT_TRUE(check_id_matches_cert(id_of(id_type::kIpv4Addr, {192, 0, 2, 1}), cert.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kIpv4Addr, {192, 0, 2, 2}), cert.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kIpv4Addr, {192, 0, 2}), cert.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kRfc822Addr, str("a@node-a.lab")), cert.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kKeyId, str("node-a.lab")), cert.get()).ok());
}

TEST(IkeAuthId, Ipv6IdAgainstSan) {  // id_ip() of an IPv6 address must name a certificate that says it
  PkeyPtr k = ec_key("P-384");
  CertPtr c = make_cert(k.get(), "v6", "DNS:v6.lab,IP:2001:db8::1");
  EXPECT_TRUE(check_id_matches_cert(id_ip(*IpAddress::parse("2001:db8::1")), c.get()).ok());
  EXPECT_FALSE(check_id_matches_cert(id_ip(*IpAddress::parse("2001:db8::2")), c.get()).ok());
  Bytes short_v6(15, 0);
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kIpv6Addr, short_v6), c.get()).ok());
  // The IPv4-mapped form of an IPv4 SAN is a different ID.
  CertPtr v4 = make_cert(k.get(), "v4", "IP:192.0.2.1");
  EXPECT_FALSE(check_id_matches_cert(
                   id_of(id_type::kIpv6Addr, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}), v4.get())
                   .ok());
}

TEST(IkeAuthId, FqdnNeedsSanNotSubjectCnAndNoWildcards) {
  PkeyPtr k = ec_key("P-384");
  CertPtr no_san = make_cert(k.get(), "cn-only.lab", "");
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kFqdn, str("cn-only.lab")), no_san.get()).ok());
  CertPtr wild = make_cert(k.get(), "wild", "DNS:*.lab");
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kFqdn, str("node.lab")), wild.get()).ok());
}

TEST(IkeAuthChain, CaIssuedEndEntity) {
  PkeyPtr ca_key = ec_key("P-384");
  CertPtr ca = make_cert(ca_key.get(), "storcrypt test CA", "", nullptr, nullptr, true);
  PkeyPtr ee_key = ec_key("P-384");
  CertPtr ee = make_cert(ee_key.get(), "ee.lab", "DNS:ee.lab", ca.get(), ca_key.get());
  // The end entity's certificate is what AUTH is checked against, not the CA's.
  const Bytes octets = some_octets();
  auto auth = sign_auth_ecdsa_p384(ee_key.get(), octets);
  ASSERT_TRUE(auth.ok());
  EXPECT_TRUE(verify_auth_ecdsa_p384(*auth, ee.get(), octets).ok());
  EXPECT_FALSE(verify_auth_ecdsa_p384(*auth, ca.get(), octets).ok());
  // Through auth_octets with a real PRF and the subject DN ID.
  auto id = id_from_subject(ee.get());
  ASSERT_TRUE(id.ok());
  SecretBytes sk_p(48);
  const Bytes nonce(32, 0x5a);
  auto o = auth_octets(PrfAlg::kHmacSha384, octets, nonce, sk_p, *id);
  ASSERT_TRUE(o.ok());
  auto a2 = sign_auth_ecdsa_p384(ee_key.get(), *o);
  ASSERT_TRUE(a2.ok());
  EXPECT_TRUE(verify_auth_ecdsa_p384(*a2, ee.get(), *o).ok());
  // A different ID in the AUTH octets (the ID is bound by the signature).
  IdPayload other_id = id_of(id_type::kFqdn, str("ee.lab"));
  auto o2 = auth_octets(PrfAlg::kHmacSha384, octets, nonce, sk_p, other_id);
  ASSERT_TRUE(o2.ok());
  EXPECT_FALSE(verify_auth_ecdsa_p384(*a2, ee.get(), *o2).ok());
}

// ------------------------------------------------------------------ RSA (RFC 7427 method 14)

PkeyPtr kat_key() {
  BIO* b = BIO_new_mem_buf(testing::kRsaKatKeyPem, -1);
  PkeyPtr k(PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr));
  BIO_free(b);
  if (!k) std::abort();
  return k;
}

// RFC 7427 Appendix A.1.2-A.1.4 (PKCS#1 v1.5), copied from the RFC text.
const Bytes kSha256WithRsa = hx("300d06092a864886f70d01010b0500");
const Bytes kSha384WithRsa = hx("300d06092a864886f70d01010c0500");
const Bytes kSha512WithRsa = hx("300d06092a864886f70d01010d0500");
// sha1WithRSAEncryption (RFC 7427 A.1.1).
const Bytes kSha1WithRsa = hx("300d06092a864886f70d0101050500");
// id-RSASSA-PSS with RSASSA-PSS-params (RFC 4055 §3.1, the layout of RFC 7427
// A.4.2 with SHA-384): hashAlgorithm [0] sha384 (NULL params), maskGenAlgorithm
// [1] mgf1 with sha384, saltLength [2] 48, trailerField default.
const Bytes kPssSha384 = hx(R"(30 41  06 09 2a864886f70d01010a  30 34
                               a0 0f 30 0d 06 09 608648016503040202 05 00
                               a1 1c 30 1a 06 09 2a864886f70d010108 30 0d 06 09 608648016503040202 05 00
                               a2 03 02 01 30)");
const Bytes kPssSha512 = hx(R"(30 41  06 09 2a864886f70d01010a  30 34
                               a0 0f 30 0d 06 09 608648016503040203 05 00
                               a1 1c 30 1a 06 09 2a864886f70d010108 30 0d 06 09 608648016503040203 05 00
                               a2 03 02 01 40)");
// The same SHA-384 parameters with the hash parameters absent (also valid per RFC 4055).
const Bytes kPssSha384Absent = hx(R"(30 3d  06 09 2a864886f70d01010a  30 30
                                     a0 0d 30 0b 06 09 608648016503040202
                                     a1 1a 30 18 06 09 2a864886f70d010108 30 0b 06 09 608648016503040202
                                     a2 03 02 01 30)");
// Mismatches: MGF1 with SHA-256 under a SHA-384 hash; salt 32 instead of 48;
// RFC 7427 A.4.1 (no parameters: SHA-1 defaults).
const Bytes kPssMgfSha256 = hx(R"(30 41  06 09 2a864886f70d01010a  30 34
                                  a0 0f 30 0d 06 09 608648016503040202 05 00
                                  a1 1c 30 1a 06 09 2a864886f70d010108 30 0d 06 09 608648016503040201 05 00
                                  a2 03 02 01 30)");
const Bytes kPssSalt32 = hx(R"(30 41  06 09 2a864886f70d01010a  30 34
                               a0 0f 30 0d 06 09 608648016503040202 05 00
                               a1 1c 30 1a 06 09 2a864886f70d010108 30 0d 06 09 608648016503040202 05 00
                               a2 03 02 01 20)");
const Bytes kPssNoParams = hx("300b06092a864886f70d01010a");

AuthPayload auth_of(const Bytes& alg, const Bytes& sig) {
  AuthPayload a;
  a.method = auth_method::kDigitalSignature;
  a.data.push_back(static_cast<std::uint8_t>(alg.size()));
  a.data.insert(a.data.end(), alg.begin(), alg.end());
  a.data.insert(a.data.end(), sig.begin(), sig.end());
  return a;
}

Bytes alg_of(const AuthPayload& a) { return Bytes(a.data.begin() + 1, a.data.begin() + 1 + a.data[0]); }
Bytes sig_of(const AuthPayload& a) { return Bytes(a.data.begin() + 1 + a.data[0], a.data.end()); }

// A raw RSA signature made directly with OpenSSL (bypassing sign_auth's checks).
Bytes raw_rsa_sig(EVP_PKEY* key, const EVP_MD* md, bool pss, int salt, const Bytes& msg) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx, &pctx, md, nullptr, key) != 1) std::abort();
  if (pss) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt);
    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md);
  }
  size_t n = 0;
  EVP_DigestSign(ctx, nullptr, &n, msg.data(), msg.size());
  Bytes sig(n);
  if (EVP_DigestSign(ctx, sig.data(), &n, msg.data(), msg.size()) != 1) std::abort();
  sig.resize(n);
  EVP_MD_CTX_free(ctx);
  return sig;
}

class IkeAuthRsa : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_ = kat_key().release();
    other_ = storcrypt::testing::generate_key(TestKey::kRsa3072).release();
    weak_ = storcrypt::testing::generate_key(TestKey::kRsa2048).release();
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(key_);
    EVP_PKEY_free(other_);
    EVP_PKEY_free(weak_);
  }
  static EVP_PKEY* key_;
  static EVP_PKEY* other_;
  static EVP_PKEY* weak_;
  CertPtr cert = make_cert(key_, "rsa.lab", "DNS:rsa.lab");
  Bytes octets = some_octets();
};
EVP_PKEY* IkeAuthRsa::key_ = nullptr;
EVP_PKEY* IkeAuthRsa::other_ = nullptr;
EVP_PKEY* IkeAuthRsa::weak_ = nullptr;

TEST_F(IkeAuthRsa, Pkcs1KnownAnswerFromOpensslCli) {
  // some_octets() is the `octets` the KAT signatures were made over.
  auto a384 = sign_auth(key_, octets, hash_alg::kSha384, RsaPadding::kPkcs1);
  ASSERT_TRUE(a384.ok()) << a384.error().to_string();
  EXPECT_EQ(a384->method, auth_method::kDigitalSignature);
  EXPECT_EQ(alg_of(*a384), kSha384WithRsa);
  EXPECT_EQ(sig_of(*a384), hx(testing::kPkcs1Sha384Sig));
  EXPECT_TRUE(verify_auth(*a384, cert.get(), octets).ok());
  auto a512 = sign_auth(key_, octets, hash_alg::kSha512, RsaPadding::kPkcs1);
  ASSERT_TRUE(a512.ok());
  EXPECT_EQ(alg_of(*a512), kSha512WithRsa);
  EXPECT_EQ(sig_of(*a512), hx(testing::kPkcs1Sha512Sig));
  EXPECT_TRUE(verify_auth(*a512, cert.get(), octets).ok());
  // The RFC 4055 form without NULL parameters is accepted too.
  EXPECT_TRUE(verify_auth(auth_of(hx("300b06092a864886f70d01010c"), sig_of(*a384)), cert.get(), octets).ok());
}

TEST_F(IkeAuthRsa, PssKnownAnswerFromOpensslCliVerifies) {
  const Bytes s384 = hx(testing::kPssSha384Sig);
  const Bytes s512 = hx(testing::kPssSha512Sig);
  auto st = verify_auth(auth_of(kPssSha384, s384), cert.get(), octets);
  EXPECT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_TRUE(verify_auth(auth_of(kPssSha384Absent, s384), cert.get(), octets).ok());
  EXPECT_TRUE(verify_auth(auth_of(kPssSha512, s512), cert.get(), octets).ok());
  // Crossed: the SHA-512 parameters over the SHA-384 signature.
  EXPECT_EQ(verify_auth(auth_of(kPssSha512, s384), cert.get(), octets).error().message(), "AUTH signature invalid");
  Bytes t = octets;
  t[7] ^= 0x80;
  EXPECT_FALSE(verify_auth(auth_of(kPssSha384, s384), cert.get(), t).ok());
  // PKCS#1 identifier over a PSS signature.
  EXPECT_FALSE(verify_auth(auth_of(kSha384WithRsa, s384), cert.get(), octets).ok());
}

TEST_F(IkeAuthRsa, PssRoundTripAndIdentifier) {
  for (std::uint16_t h : {hash_alg::kSha384, hash_alg::kSha512}) {
    auto a = sign_auth(key_, octets, h);  // PSS is the default for RSA
    ASSERT_TRUE(a.ok()) << a.error().to_string();
    EXPECT_EQ(alg_of(*a), h == hash_alg::kSha384 ? kPssSha384 : kPssSha512);
    EXPECT_EQ(sig_of(*a).size(), 384u);
    auto st = verify_auth(*a, cert.get(), octets);
    EXPECT_TRUE(st.ok()) << st.error().to_string();
    // Randomized salt: two signatures differ, both verify.
    auto b = sign_auth(key_, octets, h);
    ASSERT_TRUE(b.ok());
    EXPECT_NE(sig_of(*a), sig_of(*b));
    EXPECT_TRUE(verify_auth(*b, cert.get(), octets).ok());
    // Only the allowed schemes.
    const SignatureScheme pss =
        h == hash_alg::kSha384 ? SignatureScheme::kRsaPssSha384 : SignatureScheme::kRsaPssSha512;
    EXPECT_TRUE(verify_auth(*a, cert.get(), octets, SignatureSchemeSet{pss}).ok());
    EXPECT_FALSE(verify_auth(*a, cert.get(), octets, SignatureSchemeSet{SignatureScheme::kRsaPkcs1Sha384}).ok());
  }
}

TEST_F(IkeAuthRsa, WrongKeyAndTamperingFail) {
  auto a = sign_auth(other_, octets);
  ASSERT_TRUE(a.ok());
  auto st = verify_auth(*a, cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_EQ(st.error().message(), "AUTH signature invalid");
  auto good = sign_auth(key_, octets, hash_alg::kSha384, RsaPadding::kPkcs1);
  ASSERT_TRUE(good.ok());
  AuthPayload t = *good;
  t.data.back() ^= 1;
  EXPECT_FALSE(verify_auth(t, cert.get(), octets).ok());
  t = *good;
  t.data.pop_back();
  EXPECT_FALSE(verify_auth(t, cert.get(), octets).ok());
  // An RSA signature against an EC certificate, an ECDSA identifier against an RSA certificate.
  PkeyPtr ec = ec_key("P-384");
  CertPtr ec_cert = make_cert(ec.get(), "ec.lab", "DNS:ec.lab");
  st = verify_auth(*good, ec_cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("does not fit"), std::string::npos) << st.error().message();
  auto ecdsa = sign_auth(ec.get(), octets);
  ASSERT_TRUE(ecdsa.ok());
  EXPECT_FALSE(verify_auth(*ecdsa, cert.get(), octets).ok());
}

TEST_F(IkeAuthRsa, WeakRsaRefused) {
  auto a = sign_auth(weak_, octets);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(a.error().message().find("RSA 2048-bit"), std::string::npos) << a.error().message();
  // A genuine RSA-2048 PSS signature with correct parameters is refused for the key size.
  CertPtr weak_cert = make_cert(weak_, "weak.lab", "DNS:weak.lab");
  const Bytes sig = raw_rsa_sig(weak_, EVP_sha384(), true, 48, octets);
  auto st = verify_auth(auth_of(kPssSha384, sig), weak_cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_NE(st.error().message().find("3072"), std::string::npos) << st.error().message();
}

TEST_F(IkeAuthRsa, Sha256AndSha1RefusedUnlessAllowed) {
  const Bytes s256 = raw_rsa_sig(key_, EVP_sha256(), false, 0, octets);
  const AuthPayload a256 = auth_of(kSha256WithRsa, s256);
  auto st = verify_auth(a256, cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kProtocol);
  EXPECT_NE(st.error().message().find("sha256WithRSAEncryption not allowed"), std::string::npos)
      << st.error().message();
  // The same signature passes when the caller allows SHA-256: the set decides.
  EXPECT_TRUE(verify_auth(a256, cert.get(), octets, SignatureSchemeSet{SignatureScheme::kRsaPkcs1Sha256}).ok());
  // SHA-1 is never accepted, whatever the set.
  const Bytes s1 = raw_rsa_sig(key_, EVP_sha1(), false, 0, octets);
  SignatureSchemeSet all = cnsa_signature_schemes();
  all.add(SignatureScheme::kRsaPkcs1Sha256).add(SignatureScheme::kRsaPssSha256).add(SignatureScheme::kEcdsaSha256);
  st = verify_auth(auth_of(kSha1WithRsa, s1), cert.get(), octets, all);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("SHA-1"), std::string::npos) << st.error().message();
  // sign_auth offers no SHA-256 or SHA-1.
  EXPECT_FALSE(sign_auth(key_, octets, hash_alg::kSha256).ok());
  EXPECT_FALSE(sign_auth(key_, octets, hash_alg::kSha1).ok());
}

TEST_F(IkeAuthRsa, PssParameterMismatchesRefused) {
  const Bytes s384 = raw_rsa_sig(key_, EVP_sha384(), true, 48, octets);
  ASSERT_TRUE(verify_auth(auth_of(kPssSha384, s384), cert.get(), octets).ok());
  auto st = verify_auth(auth_of(kPssMgfSha256, s384), cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("MGF1"), std::string::npos) << st.error().message();
  st = verify_auth(auth_of(kPssSalt32, s384), cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("saltLength 32"), std::string::npos) << st.error().message();
  st = verify_auth(auth_of(kPssNoParams, s384), cert.get(), octets);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("SHA-1"), std::string::npos) << st.error().message();
  // A signature made with salt 32 under correct SHA-384 parameters (salt 48) fails.
  const Bytes salt32 = raw_rsa_sig(key_, EVP_sha384(), true, 32, octets);
  EXPECT_EQ(verify_auth(auth_of(kPssSha384, salt32), cert.get(), octets).error().message(), "AUTH signature invalid");
  // Trailing garbage inside the parameters.
  Bytes junk = kPssSha384;
  junk[1] += 2;
  junk[14] += 2;
  junk.push_back(0x05);
  junk.push_back(0x00);
  EXPECT_FALSE(verify_auth(auth_of(junk, s384), cert.get(), octets).ok());
}

TEST(IkeAuthEcdsa, Sha512AndTheGenericPath) {
  PkeyPtr k = ec_key("P-384");
  CertPtr c = make_cert(k.get(), "ec.lab", "DNS:ec.lab");
  const Bytes o = some_octets();
  auto a = sign_auth(k.get(), o, hash_alg::kSha512);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(alg_of(*a), hx("300a06082a8648ce3d040304"));  // RFC 7427 A.3.3
  EXPECT_TRUE(verify_auth(*a, c.get(), o).ok());
  EXPECT_FALSE(verify_auth_ecdsa_p384(*a, c.get(), o).ok());
  auto b = sign_auth(k.get(), o);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(alg_of(*b), hx("300a06082a8648ce3d040303"));
  EXPECT_TRUE(verify_auth_ecdsa_p384(*b, c.get(), o).ok());
  PkeyPtr p256 = ec_key("P-256");
  EXPECT_EQ(sign_auth(p256.get(), o).error().code(), ErrorCode::kInvalidInput);
}

TEST(IkeAuthHash, ChooseFromPeerList) {
  const std::vector<std::uint16_t> both{hash_alg::kSha256, hash_alg::kSha512, hash_alg::kSha384};
  EXPECT_EQ(choose_signature_hash(both), hash_alg::kSha384);
  const std::vector<std::uint16_t> only512{hash_alg::kSha1, hash_alg::kSha512};
  EXPECT_EQ(choose_signature_hash(only512), hash_alg::kSha512);
  const std::vector<std::uint16_t> weak{hash_alg::kSha1, hash_alg::kSha256};
  EXPECT_FALSE(choose_signature_hash(weak).has_value());
  EXPECT_EQ(cnsa_signature_schemes().to_string(),
            "ecdsa-with-SHA384, ecdsa-with-SHA512, rsassa-pss-SHA384, rsassa-pss-SHA512, sha384WithRSAEncryption, "
            "sha512WithRSAEncryption");
}

}  // namespace
}  // namespace storcrypt::ike
