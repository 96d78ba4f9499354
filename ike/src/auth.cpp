#include "storcrypt/ike/auth.h"

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <string>

#include "cnsa_key.h"

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

using detail::is_p384;
using detail::is_rsa;
using detail::kMinRsaBits;

enum class Family { kEcdsa, kRsaPss, kRsaPkcs1 };

Family family_of(SignatureScheme s) {
  switch (s) {
    case SignatureScheme::kEcdsaSha256:
    case SignatureScheme::kEcdsaSha384:
    case SignatureScheme::kEcdsaSha512:
      return Family::kEcdsa;
    case SignatureScheme::kRsaPssSha256:
    case SignatureScheme::kRsaPssSha384:
    case SignatureScheme::kRsaPssSha512:
      return Family::kRsaPss;
    default:
      return Family::kRsaPkcs1;
  }
}

const EVP_MD* md_of(SignatureScheme s) {
  switch (s) {
    case SignatureScheme::kEcdsaSha256:
    case SignatureScheme::kRsaPssSha256:
    case SignatureScheme::kRsaPkcs1Sha256:
      return EVP_sha256();
    case SignatureScheme::kEcdsaSha384:
    case SignatureScheme::kRsaPssSha384:
    case SignatureScheme::kRsaPkcs1Sha384:
      return EVP_sha384();
    default:
      return EVP_sha512();
  }
}

/// "EC P-384", "RSA 2048-bit", "ED25519" (for messages; no key material).
std::string describe_key(EVP_PKEY* key) {
  if (key == nullptr) return "no key";
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1)
      return "EC (unknown curve)";
    const int nid = OBJ_sn2nid(group) != NID_undef ? OBJ_sn2nid(group) : OBJ_txt2nid(group);
    const char* nist = nid != NID_undef ? EC_curve_nid2nist(nid) : nullptr;
    return std::string("EC ") + (nist != nullptr ? nist : group);
  }
  if (is_rsa(key)) return "RSA " + std::to_string(EVP_PKEY_get_bits(key)) + "-bit";
  const char* name = EVP_PKEY_get0_type_name(key);
  return name != nullptr ? name : "unknown key type";
}

struct PssParamsFree {
  void operator()(RSA_PSS_PARAMS* p) const { RSA_PSS_PARAMS_free(p); }
};

bool hash_params_ok(const X509_ALGOR* a) {
  int type = 0;
  const void* v = nullptr;
  X509_ALGOR_get0(nullptr, &type, &v, a);
  return type == V_ASN1_UNDEF || type == V_ASN1_NULL;
}

/// The hash NID of an AlgorithmIdentifier for SHA-256/384/512 with absent or NULL parameters.
Result<int> sha2_nid(const X509_ALGOR* a, std::string_view what) {
  const ASN1_OBJECT* oid = nullptr;
  X509_ALGOR_get0(&oid, nullptr, nullptr, a);
  const int nid = OBJ_obj2nid(oid);
  if (nid != NID_sha256 && nid != NID_sha384 && nid != NID_sha512)
    return protocol("AUTH RSASSA-PSS " + std::string(what) + " is " + (nid == NID_sha1 ? "SHA-1" : "not SHA-2") +
                    "; SHA-384 or SHA-512 needed");
  if (!hash_params_ok(a)) return protocol("AUTH RSASSA-PSS " + std::string(what) + " has parameters");
  return nid;
}

/// RSASSA-PSS-params (RFC 4055 §3.1) decoded by OpenSSL; returns the scheme.
Result<SignatureScheme> parse_pss_params(int param_type, const void* param) {
  if (param_type != V_ASN1_SEQUENCE)
    return protocol("AUTH RSASSA-PSS AlgorithmIdentifier without parameters (SHA-1 defaults) is not accepted");
  const auto* seq = static_cast<const ASN1_STRING*>(param);
  const unsigned char* p = ASN1_STRING_get0_data(seq);
  const long n = ASN1_STRING_length(seq);
  std::unique_ptr<RSA_PSS_PARAMS, PssParamsFree> pss(d2i_RSA_PSS_PARAMS(nullptr, &p, n));
  if (!pss || p != ASN1_STRING_get0_data(seq) + n) return protocol("AUTH RSASSA-PSS parameters malformed");
  if (pss->hashAlgorithm == nullptr) return protocol("AUTH RSASSA-PSS hashAlgorithm is SHA-1 (default); not accepted");
  STORCRYPT_ASSIGN_OR_RETURN(int hash, sha2_nid(pss->hashAlgorithm, "hashAlgorithm"));
  if (pss->maskGenAlgorithm == nullptr)
    return protocol("AUTH RSASSA-PSS maskGenAlgorithm is MGF1 with SHA-1 (default); not accepted");
  const ASN1_OBJECT* mgf = nullptr;
  int mgf_type = 0;
  const void* mgf_param = nullptr;
  X509_ALGOR_get0(&mgf, &mgf_type, &mgf_param, pss->maskGenAlgorithm);
  if (OBJ_obj2nid(mgf) != NID_mgf1) return protocol("AUTH RSASSA-PSS maskGenAlgorithm is not MGF1");
  if (mgf_type != V_ASN1_SEQUENCE) return protocol("AUTH RSASSA-PSS MGF1 hash missing");
  const auto* mseq = static_cast<const ASN1_STRING*>(mgf_param);
  const unsigned char* mp = ASN1_STRING_get0_data(mseq);
  const long mn = ASN1_STRING_length(mseq);
  std::unique_ptr<X509_ALGOR, AlgorFree> mgf_hash(d2i_X509_ALGOR(nullptr, &mp, mn));
  if (!mgf_hash || mp != ASN1_STRING_get0_data(mseq) + mn) return protocol("AUTH RSASSA-PSS MGF1 hash malformed");
  STORCRYPT_ASSIGN_OR_RETURN(int mgf_nid, sha2_nid(mgf_hash.get(), "MGF1 hash"));
  if (mgf_nid != hash) return protocol("AUTH RSASSA-PSS MGF1 hash differs from hashAlgorithm");
  const long want_salt = hash == NID_sha256 ? 32 : hash == NID_sha384 ? 48 : 64;
  const long salt = pss->saltLength == nullptr ? 20 : ASN1_INTEGER_get(pss->saltLength);
  if (salt != want_salt)
    return protocol("AUTH RSASSA-PSS saltLength " + std::to_string(salt) + " is not the hash length " +
                    std::to_string(want_salt));
  if (pss->trailerField != nullptr && ASN1_INTEGER_get(pss->trailerField) != 1)
    return protocol("AUTH RSASSA-PSS trailerField is not 1");
  return hash == NID_sha256   ? SignatureScheme::kRsaPssSha256
         : hash == NID_sha384 ? SignatureScheme::kRsaPssSha384
                              : SignatureScheme::kRsaPssSha512;
}

/// The scheme an RFC 7427 AlgorithmIdentifier names.
Result<SignatureScheme> parse_algorithm(const X509_ALGOR* algor) {
  const ASN1_OBJECT* oid = nullptr;
  int param_type = 0;
  const void* param = nullptr;
  X509_ALGOR_get0(&oid, &param_type, &param, algor);
  const int nid = OBJ_obj2nid(oid);
  auto ecdsa = [&](SignatureScheme s) -> Result<SignatureScheme> {
    if (param_type != V_ASN1_UNDEF)
      return protocol("AUTH " + std::string(signature_scheme_name(s)) + " AlgorithmIdentifier has parameters");
    return s;
  };
  auto pkcs1 = [&](SignatureScheme s) -> Result<SignatureScheme> {
    if (param_type != V_ASN1_UNDEF && param_type != V_ASN1_NULL)
      return protocol("AUTH " + std::string(signature_scheme_name(s)) + " AlgorithmIdentifier parameters not NULL");
    return s;
  };
  switch (nid) {
    case NID_ecdsa_with_SHA256:
      return ecdsa(SignatureScheme::kEcdsaSha256);
    case NID_ecdsa_with_SHA384:
      return ecdsa(SignatureScheme::kEcdsaSha384);
    case NID_ecdsa_with_SHA512:
      return ecdsa(SignatureScheme::kEcdsaSha512);
    case NID_sha256WithRSAEncryption:
      return pkcs1(SignatureScheme::kRsaPkcs1Sha256);
    case NID_sha384WithRSAEncryption:
      return pkcs1(SignatureScheme::kRsaPkcs1Sha384);
    case NID_sha512WithRSAEncryption:
      return pkcs1(SignatureScheme::kRsaPkcs1Sha512);
    case NID_rsassaPss:
      return parse_pss_params(param_type, param);
    case NID_sha1WithRSAEncryption:
    case NID_ecdsa_with_SHA1:
      return protocol("AUTH signature algorithm " + std::string(OBJ_nid2sn(nid)) + " (SHA-1) is never accepted");
    default: {
      char text[128] = {};
      OBJ_obj2txt(text, sizeof text, oid, 1);
      return protocol("AUTH signature algorithm " + std::string(text) + " not supported");
    }
  }
}

}  // namespace

void X509Deleter::operator()(X509* x) const { X509_free(x); }

std::string_view signature_scheme_name(SignatureScheme s) {
  switch (s) {
    case SignatureScheme::kEcdsaSha256:
      return "ecdsa-with-SHA256";
    case SignatureScheme::kEcdsaSha384:
      return "ecdsa-with-SHA384";
    case SignatureScheme::kEcdsaSha512:
      return "ecdsa-with-SHA512";
    case SignatureScheme::kRsaPssSha256:
      return "rsassa-pss-SHA256";
    case SignatureScheme::kRsaPssSha384:
      return "rsassa-pss-SHA384";
    case SignatureScheme::kRsaPssSha512:
      return "rsassa-pss-SHA512";
    case SignatureScheme::kRsaPkcs1Sha256:
      return "sha256WithRSAEncryption";
    case SignatureScheme::kRsaPkcs1Sha384:
      return "sha384WithRSAEncryption";
    case SignatureScheme::kRsaPkcs1Sha512:
      return "sha512WithRSAEncryption";
  }
  return "unknown";
}

std::string SignatureSchemeSet::to_string() const {
  std::string out;
  for (unsigned i = 0; i <= static_cast<unsigned>(SignatureScheme::kRsaPkcs1Sha512); ++i) {
    const auto s = static_cast<SignatureScheme>(i);
    if (!contains(s)) continue;
    if (!out.empty()) out += ", ";
    out += signature_scheme_name(s);
  }
  return out.empty() ? "none" : out;
}

SignatureSchemeSet cnsa_signature_schemes() {
  return {SignatureScheme::kEcdsaSha384,  SignatureScheme::kEcdsaSha512,    SignatureScheme::kRsaPssSha384,
          SignatureScheme::kRsaPssSha512, SignatureScheme::kRsaPkcs1Sha384, SignatureScheme::kRsaPkcs1Sha512};
}

std::optional<std::uint16_t> choose_signature_hash(std::span<const std::uint16_t> peer_hashes) {
  for (std::uint16_t want : {hash_alg::kSha384, hash_alg::kSha512})
    if (std::find(peer_hashes.begin(), peer_hashes.end(), want) != peer_hashes.end()) return want;
  return std::nullopt;
}

std::span<const std::uint8_t> ecdsa_sha384_algorithm_identifier() { return kEcdsaSha384AlgId; }

Result<AuthPayload> sign_auth(EVP_PKEY* key, std::span<const std::uint8_t> octets, std::uint16_t hash, RsaPadding rsa) {
  const EVP_MD* md = hash == hash_alg::kSha384 ? EVP_sha384() : hash == hash_alg::kSha512 ? EVP_sha512() : nullptr;
  if (md == nullptr)
    return Error(ErrorCode::kInvalidInput, "IKE signature hash " + std::to_string(hash) + " is not SHA-384 or SHA-512");
  const bool rsa_key = is_rsa(key);
  if (!detail::is_cnsa_key(key))
    return Error(ErrorCode::kInvalidInput,
                 "IKE signing key is " + describe_key(key) + "; EC P-384 or RSA of at least 3072 bits needed");
  if (rsa_key && rsa == RsaPadding::kPkcs1 && EVP_PKEY_is_a(key, "RSA-PSS"))
    return Error(ErrorCode::kInvalidInput, "IKE signing key is restricted to RSASSA-PSS");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key) != 1) return ossl_error("sign init");
  if (rsa_key) {
    if (rsa == RsaPadding::kPss) {
      if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
          EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1)
        return ossl_error("RSASSA-PSS parameters");
    } else if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
      return ossl_error("RSA PKCS#1 padding");
    }
  }
  // The AlgorithmIdentifier the provider derives from this context (for
  // PSS: hash, MGF1 hash and salt length as set above).
  std::array<unsigned char, 128> aid{};
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, aid.data(), aid.size()),
                          OSSL_PARAM_construct_end()};
  if (EVP_PKEY_CTX_get_params(pctx, params) != 1 || !OSSL_PARAM_modified(&params[0]) || params[0].return_size == 0 ||
      params[0].return_size > 255)
    return ossl_error("signature AlgorithmIdentifier");
  const std::size_t aid_len = params[0].return_size;
  size_t sig_len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &sig_len, octets.data(), octets.size()) != 1) return ossl_error("sign size");
  const std::size_t head = 1 + aid_len;
  AuthPayload auth;
  auth.method = auth_method::kDigitalSignature;
  auth.data.resize(head + sig_len);
  auth.data[0] = static_cast<std::uint8_t>(aid_len);
  std::copy(aid.begin(), aid.begin() + static_cast<std::ptrdiff_t>(aid_len), auth.data.begin() + 1);
  if (EVP_DigestSign(ctx.get(), auth.data.data() + head, &sig_len, octets.data(), octets.size()) != 1)
    return ossl_error("sign");
  auth.data.resize(head + sig_len);
  return auth;
}

Status verify_auth(const AuthPayload& auth, X509* peer_cert, std::span<const std::uint8_t> octets,
                   SignatureSchemeSet allowed) {
  if (auth.method != auth_method::kDigitalSignature)
    return protocol("AUTH method " + std::to_string(auth.method) + " is not digital signature (14)");
  if (auth.data.empty()) return protocol("AUTH data empty");
  const std::size_t alg_len = auth.data[0];
  if (alg_len == 0 || auth.data.size() < 1 + alg_len + 1) return protocol("AUTH data shorter than its ASN.1 length");
  const unsigned char* p = auth.data.data() + 1;
  std::unique_ptr<X509_ALGOR, AlgorFree> algor(d2i_X509_ALGOR(nullptr, &p, static_cast<long>(alg_len)));
  if (!algor || p != auth.data.data() + 1 + alg_len) return protocol("AUTH AlgorithmIdentifier malformed");
  STORCRYPT_ASSIGN_OR_RETURN(SignatureScheme scheme, parse_algorithm(algor.get()));
  const std::string name(signature_scheme_name(scheme));
  if (!allowed.contains(scheme))
    return protocol("AUTH signature algorithm " + name + " not allowed (allowed: " + allowed.to_string() + ")");
  if (peer_cert == nullptr) return Error(ErrorCode::kInvalidInput, "no peer certificate");
  EVP_PKEY* pub = X509_get0_pubkey(peer_cert);
  const Family fam = family_of(scheme);
  if (fam == Family::kEcdsa) {
    if (is_rsa(pub))
      return protocol("AUTH signature algorithm " + name + " does not fit the peer certificate's " + describe_key(pub) +
                      " key");
    if (!is_p384(pub)) return protocol("peer certificate key is not EC P-384");
  } else {
    if (!is_rsa(pub))
      return protocol("AUTH signature algorithm " + name + " does not fit the peer certificate's " + describe_key(pub) +
                      " key");
    if (EVP_PKEY_get_bits(pub) < kMinRsaBits)
      return protocol("peer certificate key is " + describe_key(pub) + "; RSA needs at least 3072 bits");
    if (fam == Family::kRsaPkcs1 && EVP_PKEY_is_a(pub, "RSA-PSS"))
      return protocol("peer certificate key is restricted to RSASSA-PSS; AUTH uses " + name);
  }
  const EVP_MD* md = md_of(scheme);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pub) != 1) return ossl_error("verify init");
  if (fam == Family::kRsaPss) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, EVP_MD_get_size(md)) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1)
      return ossl_error("RSASSA-PSS parameters");
  } else if (fam == Family::kRsaPkcs1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    return ossl_error("RSA PKCS#1 padding");
  }
  const std::uint8_t* sig = auth.data.data() + 1 + alg_len;
  const std::size_t sig_len = auth.data.size() - 1 - alg_len;
  const int r = EVP_DigestVerify(ctx.get(), sig, sig_len, octets.data(), octets.size());
  ERR_clear_error();
  if (r != 1) return protocol("AUTH signature invalid");
  return ok_status();
}

Result<AuthPayload> sign_auth_ecdsa_p384(EVP_PKEY* key, std::span<const std::uint8_t> octets) {
  if (!is_p384(key)) return Error(ErrorCode::kInvalidInput, "IKE signing key is not an EC P-384 key");
  return sign_auth(key, octets, hash_alg::kSha384);
}

Status verify_auth_ecdsa_p384(const AuthPayload& auth, X509* peer_cert, std::span<const std::uint8_t> octets) {
  return verify_auth(auth, peer_cert, octets, SignatureSchemeSet{SignatureScheme::kEcdsaSha384});
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
    case id_type::kIpv4Addr:
    case id_type::kIpv6Addr: {
      const bool v4 = id.id_type == id_type::kIpv4Addr;
      if (id.data.size() != (v4 ? 4u : 16u))
        return protocol(v4 ? "ID_IPV4_ADDR not 4 bytes" : "ID_IPV6_ADDR not 16 bytes");
      if (X509_check_ip(cert, id.data.data(), id.data.size(), 0) != 1) return mismatch;
      return ok_status();
    }
    default:
      return protocol("ID type " + std::to_string(id.id_type) + " not accepted for certificate authentication");
  }
}

}  // namespace storcrypt::ike
