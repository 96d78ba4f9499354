// Certificate authentication for IKE_AUTH: RFC 7427 method 14 with ECDSA
// P-384/SHA-384, CERT payloads (X.509 DER) and the ID/certificate match.
// Keys and certificates are generated here with OpenSSL.
#include "storcrypt/ike/auth.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

#include "ike_test_util.h"
#include "storcrypt/ike/crypto.h"

namespace storcrypt::ike {
namespace {

using testing::hx;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

PkeyPtr ec_key(const char* curve) {
  PkeyPtr k(EVP_EC_gen(curve));
  if (!k) std::abort();
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) std::abort();
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` with subject CN=<cn>,O=storcrypt-test, SAN `san`
// (OpenSSL config syntax, may be empty), signed by `issuer_key` (self-signed
// when issuer is null).
X509Ptr make_cert(EVP_PKEY* key, const std::string& cn, const char* san, X509* issuer = nullptr,
                  EVP_PKEY* issuer_key = nullptr) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1000 + static_cast<long>(cn.size()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("storcrypt-test"), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  if (san != nullptr && *san != '\0') add_ext(cert.get(), issuer ? issuer : cert.get(), NID_subject_alt_name, san);
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha384()) == 0) std::abort();
  return cert;
}

Bytes some_octets() {
  Bytes b;
  for (int i = 0; i < 300; ++i) b.push_back(static_cast<std::uint8_t>(i * 7));
  return b;
}

class IkeAuth : public ::testing::Test {
 protected:
  PkeyPtr key = ec_key("P-384");
  X509Ptr cert = make_cert(key.get(), "node-a.lab", "DNS:node-a.lab,IP:192.0.2.1");
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
  X509Ptr c256 = make_cert(p256.get(), "p256.lab", "DNS:p256.lab");
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
  X509Ptr other = make_cert(k2.get(), "node-b.lab", "DNS:node-b.lab");
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

TEST(IkeAuthId, FqdnNeedsSanNotSubjectCnAndNoWildcards) {
  PkeyPtr k = ec_key("P-384");
  X509Ptr no_san = make_cert(k.get(), "cn-only.lab", "");
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kFqdn, str("cn-only.lab")), no_san.get()).ok());
  X509Ptr wild = make_cert(k.get(), "wild", "DNS:*.lab");
  EXPECT_FALSE(check_id_matches_cert(id_of(id_type::kFqdn, str("node.lab")), wild.get()).ok());
}

TEST(IkeAuthChain, CaIssuedEndEntity) {
  PkeyPtr ca_key = ec_key("P-384");
  X509Ptr ca = make_cert(ca_key.get(), "storcrypt test CA", "");
  PkeyPtr ee_key = ec_key("P-384");
  X509Ptr ee = make_cert(ee_key.get(), "ee.lab", "DNS:ee.lab", ca.get(), ca_key.get());
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

}  // namespace
}  // namespace storcrypt::ike
