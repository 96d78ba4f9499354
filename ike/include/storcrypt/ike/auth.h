// storcrypt IKEv2: certificate authentication for IKE_AUTH.
//
//  - AUTH method 14 (RFC 7427 digital signature): AUTH data = ASN.1 length
//    (1 octet) | AlgorithmIdentifier | signature, over the AUTH octets that
//    auth_octets() (crypto.h) builds. Schemes (SignatureScheme):
//      ECDSA (EC P-384 keys only): ecdsa-with-SHA384/512 (RFC 7427 A.3,
//        no parameters), signature a DER Ecdsa-Sig-Value;
//      RSASSA-PSS (RSA >= 3072): id-RSASSA-PSS with explicit RSASSA-PSS-params
//        (RFC 4055 / RFC 7427 A.4.2): hashAlgorithm SHA-384 or SHA-512,
//        maskGenAlgorithm MGF1 with the same hash, saltLength = hash length,
//        trailerField 1 (default); hash parameters NULL or absent;
//      RSA PKCS#1 v1.5 (RSA >= 3072): sha384/sha512WithRSAEncryption (RFC
//        7427 A.1, NULL parameters, absent also accepted).
//    SHA-256 variants are recognised (so a refusal names them) and accepted
//    only when the caller's allowed set says so; SHA-1 and anything else is
//    refused. AlgorithmIdentifiers we send are the DER OpenSSL's provider
//    produces for the signing context (OSSL_SIGNATURE_PARAM_ALGORITHM_ID).
//  - CERT payloads with encoding 4 (X.509 certificate, DER).
//  - The peer's ID must name its certificate: DER_ASN1_DN equal to the subject,
//    FQDN equal to a SAN dNSName (no wildcards), IPv4/IPv6 equal to a SAN
//    iPAddress.
//
// All ASN.1 is parsed by OpenSSL (d2i_X509_ALGOR, d2i_X509, d2i_X509_NAME,
// X509_check_host/ip). Handles are borrowed: the caller owns every X509 and
// EVP_PKEY passed in. Errors: kProtocol for what a peer sent (malformed AUTH,
// wrong algorithm, bad signature, ID mismatch), kInvalidInput for an unusable
// local key, kInternal when OpenSSL fails. Nothing here logs.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "storcrypt/common/result.h"
#include "storcrypt/ike/message.h"

namespace storcrypt::ike {

/// A signature scheme for AUTH method 14.
enum class SignatureScheme : std::uint8_t {
  kEcdsaSha256,
  kEcdsaSha384,
  kEcdsaSha512,
  kRsaPssSha256,
  kRsaPssSha384,
  kRsaPssSha512,
  kRsaPkcs1Sha256,
  kRsaPkcs1Sha384,
  kRsaPkcs1Sha512,
};
/// "ecdsa-with-SHA384", "rsassa-pss-SHA384", "sha384WithRSAEncryption", ...
std::string_view signature_scheme_name(SignatureScheme s);

/// A set of SignatureSchemes (a bit set).
class SignatureSchemeSet {
 public:
  constexpr SignatureSchemeSet() = default;
  constexpr SignatureSchemeSet(std::initializer_list<SignatureScheme> l) {
    for (SignatureScheme s : l) add(s);
  }
  constexpr SignatureSchemeSet& add(SignatureScheme s) {
    bits_ |= bit(s);
    return *this;
  }
  constexpr bool contains(SignatureScheme s) const { return (bits_ & bit(s)) != 0; }
  constexpr bool empty() const { return bits_ == 0; }
  /// "ecdsa-with-SHA384, rsassa-pss-SHA384, ..." (for messages).
  std::string to_string() const;

 private:
  static constexpr std::uint32_t bit(SignatureScheme s) { return 1u << static_cast<unsigned>(s); }
  std::uint32_t bits_ = 0;
};

/// The CNSA set we accept by default: ECDSA, RSASSA-PSS and RSA PKCS#1 v1.5
/// with SHA-384 or SHA-512 (no SHA-256).
SignatureSchemeSet cnsa_signature_schemes();

/// How sign_auth() pads with an RSA key.
enum class RsaPadding { kPss, kPkcs1 };

/// The hash to sign with, from the peer's SIGNATURE_HASH_ALGORITHMS list
/// (hash_alg IDs): SHA-384 when listed, else SHA-512; nullopt when neither
/// (the peer cannot verify a CNSA method 14 signature).
std::optional<std::uint16_t> choose_signature_hash(std::span<const std::uint16_t> peer_hashes);

/// AUTH payload (method 14) signing `octets` with `key`: EC P-384 ->
/// ecdsa-with-SHA384/512, RSA >= 3072 -> RSASSA-PSS (default) or PKCS#1 v1.5
/// with SHA-384/512. `hash` is hash_alg::kSha384 or kSha512. kInvalidInput for
/// any other key (P-256, RSA-2048, ...) or hash.
Result<AuthPayload> sign_auth(EVP_PKEY* key, std::span<const std::uint8_t> octets,
                              std::uint16_t hash = hash_alg::kSha384, RsaPadding rsa = RsaPadding::kPss);

/// Checks a peer's AUTH payload (method 14) against `octets` with the public
/// key of `peer_cert`: the AlgorithmIdentifier (parsed by OpenSSL) must be one
/// of the schemes above, in `allowed`, and fit the certificate's key (EC
/// P-384 for ECDSA, RSA >= 3072 for PSS/PKCS#1); then the signature must
/// verify. kProtocol with the reason otherwise ("AUTH signature invalid",
/// "AUTH signature algorithm sha256WithRSAEncryption not allowed (allowed:
/// ...)", "peer certificate RSA key has 2048 bits, at least 3072 needed", ...).
Status verify_auth(const AuthPayload& auth, X509* peer_cert, std::span<const std::uint8_t> octets,
                   SignatureSchemeSet allowed = cnsa_signature_schemes());

/// AlgorithmIdentifier for ecdsa-with-SHA384 exactly as RFC 7427 Appendix A
/// lists it (30 0a 06 08 2a 86 48 ce 3d 04 03 03: no parameters).
std::span<const std::uint8_t> ecdsa_sha384_algorithm_identifier();

/// AUTH payload (method 14) signing `octets` with `key`, which must be an
/// EC P-384 private key (sign_auth with SHA-384, refusing other keys).
Result<AuthPayload> sign_auth_ecdsa_p384(EVP_PKEY* key, std::span<const std::uint8_t> octets);

/// Checks a peer's AUTH payload against `octets` with the public key of the
/// peer's certificate: method 14, AlgorithmIdentifier ecdsa-with-SHA384
/// (parsed by OpenSSL, parameters absent), an EC P-384 certificate key and a
/// valid signature. kProtocol "AUTH signature invalid" when the signature fails.
/// (verify_auth restricted to {kEcdsaSha384}.)
Status verify_auth_ecdsa_p384(const AuthPayload& auth, X509* peer_cert, std::span<const std::uint8_t> octets);

struct X509Deleter {
  void operator()(X509* x) const;
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

/// CERT payload (encoding 4, X.509 DER) carrying `cert`.
Result<CertPayload> cert_payload(X509* cert);
/// The certificate in a CERT payload: encoding 4 only, exactly one DER certificate.
Result<X509Ptr> parse_cert_payload(const CertPayload& payload);

/// ID payload naming `cert` by its subject (ID_DER_ASN1_DN).
Result<IdPayload> id_from_subject(X509* cert);
/// Status::ok when the peer's ID (DER_ASN1_DN, FQDN, IPv4 or IPv6) matches its
/// certificate's subject or a SAN; kProtocol "ID does not match certificate"
/// otherwise (also for ID types we do not accept).
Status check_id_matches_cert(const IdPayload& id, X509* cert);

}  // namespace storcrypt::ike
