// Test PKI: keys and X.509 certificates generated with OpenSSL for unit and
// host tests (a root CA -> intermediate CA -> end entity chain, or single
// certificates with chosen extensions and validity windows), plus PEM/DER
// export for tools such as strongSwan's swanctl or the openssl CLI.
//
// Test-only: failures of OpenSSL abort (a test fixture cannot go on without
// its certificates). Handles are owning unique_ptrs; pass .get() to APIs that
// borrow.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace storcrypt::testing {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const;
};
struct CertFree {
  void operator()(X509* p) const;
};
using KeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;

enum class TestKey {
  kEcP384,   ///< CNSA
  kEcP256,   ///< too weak for IKE (refusal tests)
  kRsa2048,  ///< too weak for IKE (refusal tests)
  kRsa3072,  ///< CNSA minimum
};
/// A fresh key pair (RSA key generation takes ~0.1-1 s; reuse keys across tests).
KeyPtr generate_key(TestKey type);

/// Seconds since the Unix epoch, now.
std::int64_t unix_now();

/// What one certificate says. Extension values use OpenSSL's config syntax
/// (as in `openssl x509 -extfile`); an empty string omits the extension.
struct CertSpec {
  std::string common_name = "storcrypt-test";
  std::string organization = "storcrypt-test";  ///< empty: no O
  std::string san;                              ///< e.g. "DNS:node.lab,IP:192.0.2.1"
  bool ca = false;                              ///< basicConstraints critical,CA:TRUE (else CA:FALSE)
  /// keyUsage; default for a CA "critical,keyCertSign,cRLSign", for an end
  /// entity "critical,digitalSignature". Set to "" to omit the extension.
  std::optional<std::string> key_usage;
  std::string ext_key_usage;      ///< e.g. "serverAuth,clientAuth", "1.3.6.1.5.5.7.3.17"; empty: none
  std::int64_t not_before = 0;    ///< absolute Unix time; 0 = now - 1 h
  std::int64_t not_after = 0;     ///< absolute Unix time; 0 = now + 30 days
  long serial = 0;                ///< 0 = random-ish (per-process counter)
  const char* digest = "SHA384";  ///< signature digest of the issuer's signature
};

/// A certificate for `key` described by `spec`, signed by `issuer_key` with
/// `issuer` as issuer (self-signed when both are null).
CertPtr issue_cert(EVP_PKEY* key, const CertSpec& spec, X509* issuer = nullptr, EVP_PKEY* issuer_key = nullptr);

/// root CA -> intermediate CA -> end entity.
struct ChainSpec {
  TestKey ca_keys = TestKey::kEcP384;  ///< root and intermediate
  TestKey ee_key = TestKey::kEcP384;
  std::string root_cn = "storcrypt test root CA";
  std::string intermediate_cn = "storcrypt test intermediate CA";
  CertSpec ee{.common_name = "node-a.lab", .san = "DNS:node-a.lab,IP:192.0.2.1"};
};

struct TestChain {
  KeyPtr root_key;
  CertPtr root;
  KeyPtr intermediate_key;
  CertPtr intermediate;
  KeyPtr ee_key;
  CertPtr ee;
};
TestChain make_chain(const ChainSpec& spec = {});

/// PEM ("-----BEGIN CERTIFICATE-----") and DER of a certificate.
std::string cert_pem(X509* cert);
std::vector<std::uint8_t> cert_der(X509* cert);
/// Unencrypted PKCS#8 PEM of a private key (test keys only).
std::string key_pem(EVP_PKEY* key);

}  // namespace storcrypt::testing
