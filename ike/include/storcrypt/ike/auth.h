// storcrypt IKEv2: certificate authentication for IKE_AUTH.
//
//  - AUTH method 14 (RFC 7427 digital signature) with ECDSA P-384 / SHA-384:
//    AUTH data = ASN.1 length (1 octet) | AlgorithmIdentifier (ecdsa-with-SHA384,
//    RFC 7427 Appendix A.3.2) | DER Ecdsa-Sig-Value (as OpenSSL produces it),
//    over the AUTH octets that auth_octets() (crypto.h) builds.
//  - CERT payloads with encoding 4 (X.509 certificate, DER).
//  - The peer's ID must name its certificate: DER_ASN1_DN equal to the subject,
//    FQDN equal to a SAN dNSName (no wildcards), IPv4 equal to a SAN iPAddress.
//
// All ASN.1 is parsed by OpenSSL (d2i_X509_ALGOR, d2i_X509, d2i_X509_NAME,
// X509_check_host/ip). Handles are borrowed: the caller owns every X509 and
// EVP_PKEY passed in. Errors: kProtocol for what a peer sent (malformed AUTH,
// wrong algorithm, bad signature, ID mismatch), kInvalidInput for an unusable
// local key, kInternal when OpenSSL fails. Nothing here logs.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <span>

#include "storcrypt/common/result.h"
#include "storcrypt/ike/message.h"

namespace storcrypt::ike {

/// AlgorithmIdentifier for ecdsa-with-SHA384 exactly as RFC 7427 Appendix A
/// lists it (30 0a 06 08 2a 86 48 ce 3d 04 03 03: no parameters).
std::span<const std::uint8_t> ecdsa_sha384_algorithm_identifier();

/// AUTH payload (method 14) signing `octets` with `key`, which must be an
/// EC P-384 private key.
Result<AuthPayload> sign_auth_ecdsa_p384(EVP_PKEY* key, std::span<const std::uint8_t> octets);

/// Checks a peer's AUTH payload against `octets` with the public key of the
/// peer's certificate: method 14, AlgorithmIdentifier ecdsa-with-SHA384
/// (parsed by OpenSSL, parameters absent), an EC P-384 certificate key and a
/// valid signature. kProtocol "AUTH signature invalid" when the signature fails.
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
/// Status::ok when the peer's ID (DER_ASN1_DN, FQDN or IPv4) matches its
/// certificate's subject or a SAN; kProtocol "ID does not match certificate"
/// otherwise (also for ID types we do not accept).
Status check_id_matches_cert(const IdPayload& id, X509* cert);

}  // namespace storcrypt::ike
