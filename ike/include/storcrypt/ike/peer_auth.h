// storcrypt IKEv2: peer certificate validation for IKE_AUTH.
//
// A PeerValidator holds the authorities trusted for IPsec (self-signed root
// CAs as trust anchors, plus CA certificates that only help path building)
// and checks the certificate a peer sent in its CERT payloads:
//
//  1. chain: OpenSSL's X509_verify_cert builds a path from the end entity
//     through the intermediates of the CERT payloads and of the truststore to
//     a trust anchor (signatures, basicConstraints CA:TRUE and keyCertSign of
//     every issuer, security level 3 = 128-bit: RSA >= 3072, no SHA-1);
//  2. validity of every certificate of that path at the given time;
//  3. end entity usage: keyUsage, when present, must include
//     digitalSignature; extendedKeyUsage, when present, must include one of
//     serverAuth, clientAuth, ipsecIKE (1.3.6.1.5.5.7.3.17, RFC 4945 §5.1.3.12)
//     or anyExtendedKeyUsage (an IKE peer is both client and server, and
//     deployed CAs issue IPsec certificates with any of these); no EKU at
//     all is accepted, as RFC 4945 says;
//  4. end entity key acceptable for the CNSA suite: EC P-384, or RSA of at
//     least 3072 bits;
//  5. the peer's ID names the certificate (check_id_matches_cert in auth.h:
//     subject DN, SAN dNSName, SAN iPAddress).
//
// Errors: kProtocol with a reason an operator can act on, naming the
// subject and issuer involved, a fix text, and a stable name:
//   xIkePeerUntrusted     the chain does not end in an ipsec truststore root
//                         ("peer certificate not trusted: unable to get local
//                         issuer certificate (issuer CN=... not in the ipsec
//                         truststore) ...")
//   xIkePeerExpired       "peer certificate expired on 2026-...Z ..." (or a
//                         CA certificate of the chain)
//   xIkePeerNotYetValid   "peer certificate not valid before ..."
//   xIkePeerWrongUsage    keyUsage/extendedKeyUsage/basicConstraints
//   xIkePeerWeakKey       not EC P-384 / RSA >= 3072 (or a weak CA key/digest)
//   xIkePeerBadSignature  a certificate signature does not verify
//   xIkePeerChainInvalid  any other OpenSSL verification failure (its reason)
//   xIkeIdMismatch        "ID does not match certificate: ..."
// kInvalidInput for null handles; kInternal when OpenSSL fails to allocate.
//
// Cache: successful chain validations (steps 1, 3, 4) are cached, keyed by
// SHA-256 over the SHA-256 of each presented certificate's DER (end entity
// first, then the intermediates in the order given), bounded LRU
// (cache_entries, default 1024; 0 disables). A cache hit still checks the
// validity of every certificate of the verified path at the given time
// (X509_cmp_time, as OpenSSL does) and still checks the ID (step 5), so a hit
// never skips the time or ID check; a hit outside the window falls back to a
// full validation (which reports the expiry). Trust changes are not seen by
// an existing validator: build a new one when the truststore changes (its
// cache starts empty). No revocation checking (no CRL/OCSP) yet.
//
// Thread-safe: validate() may be called concurrently. Handles are borrowed.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "storcrypt/common/result.h"
#include "storcrypt/ike/message.h"

namespace storcrypt::certs {
class CertStore;
}

namespace storcrypt::ike {

/// Seconds since the Unix epoch (UTC).
using UnixSeconds = std::int64_t;

/// What the IKE engine calls with the peer's end-entity certificate, the
/// other certificates of its CERT payloads and its ID.
using PeerCertValidator =
    std::function<Status(X509* end_entity, std::span<X509* const> intermediates, const IdPayload& peer_id)>;

struct PeerValidatorStats {
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;  ///< full validations run
  std::size_t cache_entries = 0;
};

class PeerValidator {
 public:
  static constexpr std::size_t kDefaultCacheEntries = 1024;

  /// From certificates: `anchors` must be self-signed CA certificates
  /// (kInvalidInput otherwise); `intermediates` are CA certificates offered
  /// for path building (not trusted by themselves).
  static Result<PeerValidator> from_certificates(std::span<X509* const> anchors,
                                                 std::span<X509* const> intermediates = {},
                                                 std::size_t cache_entries = kDefaultCacheEntries);

  /// From the truststore entries marked for ipsec (certs::CertStore::
  /// x509_store_for(kIpsec)): self-signed entries become anchors, the others
  /// intermediates. An empty truststore gives a validator that refuses all.
  static Result<PeerValidator> from_truststore(const certs::CertStore& store,
                                               std::size_t cache_entries = kDefaultCacheEntries);

  PeerValidator(PeerValidator&&) noexcept;
  PeerValidator& operator=(PeerValidator&&) noexcept;
  ~PeerValidator();

  /// Steps 1-5 above at `now`.
  Status validate(X509* end_entity, std::span<X509* const> intermediates, const IdPayload& peer_id,
                  UnixSeconds now) const;

  PeerValidatorStats stats() const;
  std::size_t anchor_count() const;

 private:
  struct Impl;
  explicit PeerValidator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The engine's callback over a shared validator, reading the time from
/// `clock` (the system clock when empty).
PeerCertValidator make_peer_cert_validator(std::shared_ptr<const PeerValidator> validator,
                                           std::function<UnixSeconds()> clock = {});

}  // namespace storcrypt::ike
