// storcrypt: the system's PKI (endpoint certificate, internal root CA, CSR,
// truststore, peer verification, expiry classes), built on OpenSSL 3.
//
// All ASN.1 is produced and parsed by OpenSSL (EVP/X509 APIs). Private keys
// live only in the state directory (files 0600) and in SecretBytes; they are
// never part of any message, CertInfo or error text.
//
// Stable error names (Error::name()) returned by this module:
//
//   name                       code            meaning
//   xCertGarbage               kInvalidInput   input is neither PEM nor DER certificate/CSR data
//   xCertPemEscaped            kInvalidInput   (not returned today: literal "\n" sequences are
//                                              normalized; reserved for a strict mode)
//   xCertBadSubject            kInvalidInput   a subject field is missing or malformed
//   xCertBadSan                kInvalidInput   a DNS name or IP address SAN is malformed
//   xCertBadKeyType            kInvalidInput   unknown key type name
//   xCertWeakKey               kInvalidInput   key is not EC P-384/P-256/P-521 or RSA >= 3072
//                              (kTls when a peer chain is too weak: ipsec needs 128-bit
//                              security, RSA >= 3072; restapi/kmip accept RSA >= 2048)
//   xCertBadDays               kInvalidInput   validity days out of range (1..36500)
//   xCertKeyMismatch           kInvalidInput   the certificate does not match the system's key
//   xCertNotEndpoint           kInvalidInput   installing a CA certificate as the endpoint
//   xCertExpired               kTls            certificate (or one in the chain) has expired
//   xCertNotYetValid           kTls            certificate (or one in the chain) is not yet valid
//   xCertUntrustedRoot         kTls            the chain ends in an authority that is not
//                                              trusted for the requested use
//   xCertMissingIntermediate   kTls            the leaf's issuer is neither in the presented
//                                              chain nor in the truststore (an intermediate
//                                              CA is missing) while the truststore does hold
//                                              authorities for the use
//   xCertWrongUsage            kTls            keyUsage/extendedKeyUsage/basicConstraints do
//                                              not allow the use, or the issuing authority is
//                                              trusted only for other uses
//   xCertBadSignature          kTls            a signature in the chain does not verify
//   xCertChainInvalid          kTls            any other chain validation failure (message
//                                              carries OpenSSL's reason)
//   xCertNoKey                 kNotFound       install without a pending CSR key or endpoint key
//   xCertNoEndpoint            kNotFound       no endpoint certificate installed
//   xCertNoInternalRoot        kNotFound       export-root when no internal root CA exists
//   xTrustBadUse               kInvalidInput   unknown truststore use (ipsec, restapi, kmip)
//   xTrustEntryNotFound        kNotFound       truststore remove of an unknown fingerprint
//   xTrustAmbiguousFingerprint kInvalidInput   fingerprint prefix matches several entries
//   xCertStateIo               kInternal       reading/writing the state directory failed
//   xCertOpenSsl               kInternal       OpenSSL failed unexpectedly (bug/environment)
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt::certs {

/// Seconds since the Unix epoch (UTC).
using UnixTime = std::int64_t;

// ---------------------------------------------------------------- key pairs

enum class KeyType {
  kEcP384,   ///< default (CNSA)
  kRsa3072,  ///< accepted
  kRsa4096,  ///< accepted
};
/// "ec-p384", "rsa-3072", "rsa-4096".
std::string_view key_type_name(KeyType t);
/// Accepts the names above, plus "ecdsa-p384", "p384", "rsa3072", "rsa4096".
Result<KeyType> parse_key_type(std::string_view name);

/// A private key (EVP_PKEY). Move-only; PEM export goes to SecretBytes.
class PrivateKey {
 public:
  PrivateKey();
  ~PrivateKey();
  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;

  static Result<PrivateKey> generate(KeyType type);
  /// Unencrypted PKCS#8 or traditional PEM.
  static Result<PrivateKey> from_pem(const SecretBytes& pem);
  /// Unencrypted PKCS#8 PEM.
  Result<SecretBytes> to_pem() const;
  /// SubjectPublicKeyInfo PEM (public, printable).
  Result<std::string> public_key_pem() const;
  /// e.g. "ec-p384", "rsa-3072"; "unknown" otherwise.
  std::string describe() const;
  bool valid() const { return pkey_ != nullptr; }
  /// Borrowed native handle (for TLS/IKE signing); owned by this object.
  EVP_PKEY* native() const { return pkey_; }
  /// Takes ownership.
  explicit PrivateKey(EVP_PKEY* owned) : pkey_(owned) {}

 private:
  EVP_PKEY* pkey_ = nullptr;
};

// ------------------------------------------------------------- certificates

/// Printable facts about one certificate (no secrets).
struct CertInfo {
  std::string subject;             ///< RFC 2253, e.g. "CN=node1,O=Example,C=DE"
  std::string issuer;              ///< RFC 2253
  std::string serial_hex;          ///< lowercase hex
  std::string sha256_fingerprint;  ///< uppercase hex pairs joined by ':' (as `openssl x509 -fingerprint`)
  UnixTime not_before = 0;
  UnixTime not_after = 0;
  bool is_ca = false;
  bool self_signed = false;
  std::string key;                         ///< "ec-p384", "rsa-3072", ...
  std::vector<std::string> dns_names;      ///< SAN dNSName entries
  std::vector<std::string> ip_addresses;   ///< SAN iPAddress entries, textual
  std::vector<std::string> ext_key_usage;  ///< "serverAuth", "clientAuth", other short names/OIDs
};

/// One X.509 certificate (shared, immutable X509 handle).
class Certificate {
 public:
  Certificate();
  ~Certificate();
  Certificate(const Certificate&);
  Certificate& operator=(const Certificate&);
  Certificate(Certificate&&) noexcept;
  Certificate& operator=(Certificate&&) noexcept;
  /// Takes ownership of one reference.
  explicit Certificate(X509* owned) : x509_(owned) {}
  /// Shares a borrowed handle (takes a new reference), e.g. from SSL_get_peer_cert_chain().
  static Certificate share(X509* borrowed);

  bool valid() const { return x509_ != nullptr; }
  CertInfo info() const;
  std::string to_pem() const;
  std::vector<std::uint8_t> to_der() const;
  /// True when `key` is the private key of this certificate's public key.
  bool matches(const PrivateKey& key) const;
  /// Borrowed native handle; owned by this object.
  X509* native() const { return x509_; }

 private:
  X509* x509_ = nullptr;
};

/// Normalize pasted PEM text: strips surrounding whitespace, turns CRLF/CR
/// into LF, and turns literal "\n" / "\r\n" two-character sequences (JSON or
/// shell escaped pastes) into newlines. Input without a PEM header is
/// returned unchanged (it may be DER).
std::string normalize_pem_text(std::string_view input);

/// Parse one or more certificates: a PEM bundle (any order, any text between
/// blocks) or a single DER certificate. Errors: xCertGarbage (with a message
/// saying which block/byte is wrong and a fix text).
Result<std::vector<Certificate>> parse_certificates(std::string_view input);
/// Exactly one certificate (xCertGarbage when zero or more than one).
Result<Certificate> parse_certificate(std::string_view input);

// ------------------------------------------------------ subjects, CSR, SANs

struct SubjectFields {
  std::string country;       ///< C: two letters (ISO 3166), optional
  std::string state;         ///< ST, optional
  std::string locality;      ///< L, optional
  std::string organization;  ///< O, optional
  std::string unit;          ///< OU, optional
  std::string common_name;   ///< CN, required
  std::string email;         ///< emailAddress, optional
};

struct SubjectAltNames {
  std::vector<std::string> dns;  ///< DNS names (LDH labels, optional leading "*.")
  std::vector<std::string> ip;   ///< IPv4 or IPv6 literals
};

/// Validate subject fields (xCertBadSubject naming the field) and SANs (xCertBadSan).
Status validate_subject(const SubjectFields& s);
Status validate_sans(const SubjectAltNames& s);

/// A PKCS#10 CSR (PEM) for `key` (signed by it) with the validated `subject`
/// (xCertBadSubject naming the field), requesting keyUsage digitalSignature
/// (plus keyEncipherment for RSA) and `ext_key_usage` (OpenSSL short names,
/// comma-separated), e.g. the KMIP client CSR. Built with OpenSSL's X509_REQ
/// APIs.
Result<std::string> make_csr_pem(const PrivateKey& key, const SubjectFields& subject,
                                 std::string_view ext_key_usage = "clientAuth", const SubjectAltNames& sans = {});

/// Read an unencrypted PEM private key file into SecretBytes (wiped) and
/// parse it (xCertStateIo when unreadable, xCertGarbage when not a key).
Result<PrivateKey> read_private_key_file(const std::filesystem::path& path);
/// Write `key` as PKCS#8 PEM to `path`: mode 0600, atomic, fsync'ed.
Status write_private_key_file(const std::filesystem::path& path, const PrivateKey& key);

// ---------------------------------------------------------- expiry classes

enum class ExpiryClass {
  kOk,           ///< 30 days or more left
  kWarning,      ///< less than 30 days left
  kError,        ///< less than 7 days left
  kCritical,     ///< less than 3 days left
  kExpired,      ///< not_after has passed (severity: critical)
  kNotYetValid,  ///< not_before is in the future (severity: critical, "invalid")
};
/// "ok", "warning", "error", "critical", "expired", "not-yet-valid".
std::string_view expiry_class_name(ExpiryClass c);
ExpiryClass classify_expiry(UnixTime not_before, UnixTime not_after, UnixTime now);
/// "2026-11-29T08:00:00Z"
std::string format_utc(UnixTime t);
/// Fault severity for health reports: "ok", "warning", "error" or "critical"
/// (expired and not-yet-valid certificates are critical).
std::string_view expiry_severity(ExpiryClass c);

// ---------------------------------------------------------------- trust

enum class TrustUse { kIpsec, kRestApi, kKmip };
/// "ipsec", "restapi", "kmip".
std::string_view trust_use_name(TrustUse u);
/// Also accepts "rest-api", "rest_api", case-insensitive; xTrustBadUse otherwise.
Result<TrustUse> parse_trust_use(std::string_view name);
/// Comma separated list ("ipsec,kmip"); empty list is xTrustBadUse.
Result<std::set<TrustUse>> parse_trust_uses(std::string_view list);

struct TrustEntry {
  CertInfo cert;
  std::set<TrustUse> uses;
};

/// Which side the peer plays: decides the EKU it needs (serverAuth or clientAuth).
enum class PeerRole { kServer, kClient };

struct VerifyOptions {
  TrustUse use = TrustUse::kIpsec;
  PeerRole role = PeerRole::kServer;
  std::optional<UnixTime> at;  ///< verification time; store clock when unset
};

// ---------------------------------------------------------------- store

namespace detail {
struct TrustCache;
}

enum class EndpointMode { kNone, kInternal, kExternal, kSelfSigned };
/// "none", "internal", "external", "self-signed".
std::string_view endpoint_mode_name(EndpointMode m);

struct CreateOptions {
  KeyType key_type = KeyType::kEcP384;
  SubjectFields subject;
  SubjectAltNames sans;
  int days = 825;                ///< endpoint certificate validity
  int root_days = 3650;          ///< internal root CA validity (create_internal only)
  std::string root_common_name;  ///< default: "<CN> storcrypt root CA"
};

struct CreateResult {
  CertInfo endpoint;
  std::optional<CertInfo> root;       ///< internal mode: the new root CA
  std::vector<std::string> warnings;  ///< e.g. the self-signed warning
};

struct CsrResult {
  std::string csr_pem;  ///< PKCS#10, signed by the new pending key
  std::string key;      ///< "ec-p384", ...
};

struct InstallResult {
  CertInfo endpoint;
  std::vector<CertInfo> chain;        ///< intermediates installed with it
  std::vector<std::string> warnings;  ///< e.g. missing clientAuth EKU, chain incomplete
};

struct EndpointStatus {
  EndpointMode mode = EndpointMode::kNone;
  std::optional<CertInfo> cert;
  std::vector<CertInfo> chain;
  std::optional<CertInfo> root;  ///< internal root CA, when one exists
  bool csr_pending = false;      ///< a CSR key waits for its signed certificate
  std::optional<ExpiryClass> expiry;
  /// Set when the chain is incomplete: the endpoint certificate's issuer (its
  /// subject name) is neither installed with it nor in the truststore.
  std::optional<std::string> missing_issuer;
};

struct ExpiryItem {
  std::string role;  ///< "endpoint", "endpoint-chain", "internal-root", "truststore"
  CertInfo cert;
  ExpiryClass cls = ExpiryClass::kOk;
  UnixTime seconds_left = 0;  ///< negative when expired
};

/// The system's certificates in one state directory. CLI mapping:
///   storcrypt cert create --internal     create_internal()
///   storcrypt cert create --self-signed  create_self_signed() (print the warnings)
///   storcrypt cert csr                   create_csr()
///   storcrypt cert install <file>        install()
///   storcrypt cert show                  show()
///   storcrypt cert export-root           export_root_pem()
///   storcrypt truststore add|list|remove trust_add() / trust_list() / trust_remove()
///   storcrypt system doctor              expiry_report() + expiry_severity()
/// Layout:
///   <dir>/endpoint/{key.pem,cert.pem,chain.pem,mode}
///   <dir>/pending/{key.pem,csr.pem}           (external flow, until install)
///   <dir>/ca/{key.pem,cert.pem}               (internal root CA)
///   <dir>/truststore/{index.json,<sha256>.pem}
/// Key files are created 0600 with O_EXCL, written, fsync'ed and renamed
/// into place. Not thread-safe: the controller serializes calls. The parsed
/// truststore is cached and reloaded when truststore/index.json is replaced.
class CertStore {
 public:
  using Clock = std::function<UnixTime()>;

  /// Creates the directory (0700) when missing.
  static Result<CertStore> open(std::filesystem::path state_dir, Clock clock = {});

  const std::filesystem::path& dir() const { return dir_; }
  UnixTime now() const;

  // --- endpoint certificate -------------------------------------------
  /// New key + own root CA (reused when it exists) + endpoint signed by it.
  Result<CreateResult> create_internal(const CreateOptions& o);
  /// New key + self-signed endpoint certificate; warns (as data) that this is not recommended.
  Result<CreateResult> create_self_signed(const CreateOptions& o);
  /// New pending key + CSR for an external CA. The current endpoint keeps
  /// working until install() succeeds.
  Result<CsrResult> create_csr(const CreateOptions& o);
  /// The pending CSR (if any).
  Result<std::string> pending_csr_pem() const;
  /// Install an externally signed certificate (PEM/DER; PEM may carry the
  /// chain in any order). It must match the pending key (or the current
  /// endpoint key): xCertKeyMismatch otherwise. Refuses expired, not yet
  /// valid and CA certificates. A certificate whose issuer is neither given
  /// with it nor in the truststore is installed with a warning (the chain is
  /// incomplete: partners will need the intermediate).
  Result<InstallResult> install(std::string_view cert_input);
  Result<EndpointStatus> show() const;
  /// PEM of the internal root CA (xCertNoInternalRoot when none).
  Result<std::string> export_root_pem() const;
  /// Endpoint certificate followed by its chain (PEM).
  Result<std::string> endpoint_chain_pem() const;
  Result<std::vector<Certificate>> endpoint_chain() const;
  /// The endpoint private key (for TLS/IKE). Never print it.
  Result<PrivateKey> endpoint_key() const;

  // --- truststore -------------------------------------------------------
  /// Add every certificate of a PEM bundle (chain in any order) trusted for
  /// `uses` (merged into existing entries). Every non-root certificate must
  /// chain to a self-signed root within the bundle or the truststore
  /// (xCertMissingIntermediate otherwise). Returns the entries added/updated.
  Result<std::vector<TrustEntry>> trust_add(std::string_view bundle, const std::set<TrustUse>& uses);
  Result<std::vector<TrustEntry>> trust_list() const;
  /// Remove by SHA-256 fingerprint (with or without ':'; case-insensitive;
  /// a unique prefix of at least 8 hex digits is accepted).
  Status trust_remove(std::string_view fingerprint);
  /// Validate a peer chain (leaf first, then what the peer sent) against the
  /// entries trusted for o.use: full path validation, time, keyUsage/EKU.
  /// Returns the leaf's info.
  /// Names are not matched here: the caller compares the peer identity (IKE
  /// ID, host name) with the returned dns_names/ip_addresses/subject.
  Result<CertInfo> verify_peer(const std::vector<Certificate>& chain, const VerifyOptions& o) const;
  /// A new X509_STORE holding the authorities trusted for `use` (for
  /// SSL_CTX_set_cert_store, which takes ownership; else X509_STORE_free).
  Result<X509_STORE*> x509_store_for(TrustUse use) const;

  // --- health -------------------------------------------------------------
  /// Expiry class of every installed and trusted certificate.
  Result<std::vector<ExpiryItem>> expiry_report() const;

 private:
  CertStore(std::filesystem::path dir, Clock clock) : dir_(std::move(dir)), clock_(std::move(clock)) {}
  /// The issuer name of `leaf` when it is not self-signed and neither
  /// `chain` nor the truststore holds a certificate that issued it.
  Result<std::optional<std::string>> missing_issuer(const Certificate& leaf,
                                                    const std::vector<Certificate>& chain) const;
  std::filesystem::path dir_;
  Clock clock_;
  /// Parsed truststore, reloaded when index.json changes.
  mutable std::shared_ptr<const detail::TrustCache> trust_cache_;
};

/// The text returned as a warning by create_self_signed().
inline constexpr std::string_view kSelfSignedWarning =
    "a self-signed endpoint certificate is not recommended: every partner must trust this exact "
    "certificate and it cannot be renewed without updating every partner; prefer an internally or "
    "externally signed certificate";

}  // namespace storcrypt::certs
