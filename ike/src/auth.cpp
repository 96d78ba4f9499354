#include "storcrypt/ike/auth.h"

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <string>

namespace storcrypt::ike {

namespace {

// RFC 7427 Appendix A.3.2, ecdsa-with-sha384: SEQUENCE { OID 1.2.840.10045.4.3.3 }.
constexpr std::array<std::uint8_t, 12> kEcdsaSha384AlgId = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                            0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};

Error ossl_error(std::string_view what) { return Error(ErrorCode::kInternal, "OpenSSL: " + std::string(what)); }
Error protocol(std::string what) { return Error(ErrorCode::kProtocol, std::move(what)); }

struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct AlgorFree {
  void operator()(X509_ALGOR* p) const { X509_ALGOR_free(p); }
};
struct NameFree {
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
};

bool is_p384(EVP_PKEY* key) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "EC")) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) return false;
  return OBJ_txt2nid(group) == NID_secp384r1 || OBJ_sn2nid(group) == NID_secp384r1;
}

}  // namespace

void X509Deleter::operator()(X509* x) const { X509_free(x); }

std::span<const std::uint8_t> ecdsa_sha384_algorithm_identifier() { return kEcdsaSha384AlgId; }

Result<AuthPayload> sign_auth_ecdsa_p384(EVP_PKEY* key, std::span<const std::uint8_t> octets) {
  if (!is_p384(key)) return Error(ErrorCode::kInvalidInput, "IKE signing key is not an EC P-384 key");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key) != 1)
    return ossl_error("ECDSA sign init");
  size_t sig_len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &sig_len, octets.data(), octets.size()) != 1)
    return ossl_error("ECDSA sign size");
  constexpr std::size_t kHead = 1 + kEcdsaSha384AlgId.size();
  AuthPayload auth;
  auth.method = auth_method::kDigitalSignature;
  auth.data.resize(kHead + sig_len);
  auth.data[0] = static_cast<std::uint8_t>(kEcdsaSha384AlgId.size());
  std::copy(kEcdsaSha384AlgId.begin(), kEcdsaSha384AlgId.end(), auth.data.begin() + 1);
  if (EVP_DigestSign(ctx.get(), auth.data.data() + kHead, &sig_len, octets.data(), octets.size()) != 1)
    return ossl_error("ECDSA sign");
  auth.data.resize(kHead + sig_len);
  return auth;
}

Status verify_auth_ecdsa_p384(const AuthPayload& auth, X509* peer_cert, std::span<const std::uint8_t> octets) {
  if (auth.method != auth_method::kDigitalSignature)
    return protocol("AUTH method " + std::to_string(auth.method) + " is not digital signature (14)");
  if (auth.data.empty()) return protocol("AUTH data empty");
  const std::size_t alg_len = auth.data[0];
  if (alg_len == 0 || auth.data.size() < 1 + alg_len + 1) return protocol("AUTH data shorter than its ASN.1 length");
  const unsigned char* p = auth.data.data() + 1;
  std::unique_ptr<X509_ALGOR, AlgorFree> algor(d2i_X509_ALGOR(nullptr, &p, static_cast<long>(alg_len)));
  if (!algor || p != auth.data.data() + 1 + alg_len) return protocol("AUTH AlgorithmIdentifier malformed");
  const ASN1_OBJECT* oid = nullptr;
  int param_type = 0;
  const void* param = nullptr;
  X509_ALGOR_get0(&oid, &param_type, &param, algor.get());
  if (OBJ_obj2nid(oid) != NID_ecdsa_with_SHA384) return protocol("AUTH signature algorithm is not ecdsa-with-SHA384");
  if (param_type != V_ASN1_UNDEF) return protocol("AUTH ecdsa-with-SHA384 AlgorithmIdentifier has parameters");
  if (peer_cert == nullptr) return Error(ErrorCode::kInvalidInput, "no peer certificate");
  EVP_PKEY* pub = X509_get0_pubkey(peer_cert);
  if (!is_p384(pub)) return protocol("peer certificate key is not EC P-384");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha384(), nullptr, pub) != 1)
    return ossl_error("ECDSA verify init");
  const std::uint8_t* sig = auth.data.data() + 1 + alg_len;
  const std::size_t sig_len = auth.data.size() - 1 - alg_len;
  const int r = EVP_DigestVerify(ctx.get(), sig, sig_len, octets.data(), octets.size());
  if (r != 1) return protocol("AUTH signature invalid");
  return ok_status();
}

Result<CertPayload> cert_payload(X509* cert) {
  if (cert == nullptr) return Error(ErrorCode::kInvalidInput, "no certificate");
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) return ossl_error("i2d_X509");
  CertPayload c;
  c.encoding = kCertX509Signature;
  c.data.assign(der, der + n);
  OPENSSL_free(der);
  return c;
}

Result<X509Ptr> parse_cert_payload(const CertPayload& payload) {
  if (payload.encoding != kCertX509Signature)
    return protocol("CERT encoding " + std::to_string(payload.encoding) + " is not X.509 signature (4)");
  const unsigned char* p = payload.data.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(payload.data.size())));
  if (!cert || p != payload.data.data() + payload.data.size())
    return protocol("CERT payload is not one DER certificate");
  return cert;
}

Result<IdPayload> id_from_subject(X509* cert) {
  if (cert == nullptr) return Error(ErrorCode::kInvalidInput, "no certificate");
  unsigned char* der = nullptr;
  const int n = i2d_X509_NAME(X509_get_subject_name(cert), &der);
  if (n <= 0) return ossl_error("i2d_X509_NAME");
  IdPayload id;
  id.id_type = id_type::kDerAsn1Dn;
  id.data.assign(der, der + n);
  OPENSSL_free(der);
  return id;
}

Status check_id_matches_cert(const IdPayload& id, X509* cert) {
  if (cert == nullptr) return Error(ErrorCode::kInvalidInput, "no peer certificate");
  const Error mismatch = protocol("ID does not match certificate");
  switch (id.id_type) {
    case id_type::kDerAsn1Dn: {
      const unsigned char* p = id.data.data();
      std::unique_ptr<X509_NAME, NameFree> name(d2i_X509_NAME(nullptr, &p, static_cast<long>(id.data.size())));
      if (!name || p != id.data.data() + id.data.size()) return protocol("ID_DER_ASN1_DN malformed");
      if (X509_NAME_cmp(name.get(), X509_get_subject_name(cert)) != 0) return mismatch;
      return ok_status();
    }
    case id_type::kFqdn: {
      if (id.data.empty()) return mismatch;
      for (std::uint8_t c : id.data)
        if (c == 0) return protocol("ID_FQDN contains NUL");
      const std::string host(id.data.begin(), id.data.end());
      const int r = X509_check_host(cert, host.data(), host.size(),
                                    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS, nullptr);
      if (r != 1) return mismatch;
      return ok_status();
    }
    case id_type::kIpv4Addr: {
      if (id.data.size() != 4) return protocol("ID_IPV4_ADDR not 4 bytes");
      if (X509_check_ip(cert, id.data.data(), id.data.size(), 0) != 1) return mismatch;
      return ok_status();
    }
    default:
      return protocol("ID type " + std::to_string(id.id_type) + " not accepted for certificate authentication");
  }
}

}  // namespace storcrypt::ike
