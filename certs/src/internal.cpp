#include "internal.h"

#include <openssl/core_names.h>
#include <openssl/err.h>

#include <cctype>
#include <ctime>

#include "storcrypt/common/hex.h"

namespace storcrypt::certs::detail {

Error cert_error(ErrorCode code, std::string_view name, std::string message, std::string fix) {
  return Error(code, std::move(message), std::move(fix), std::string(name));
}

Error openssl_error(std::string_view what) {
  std::string msg(what);
  unsigned long e;
  bool first = true;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += first ? ": " : "; ";
    msg += buf;
    first = false;
  }
  return cert_error(ErrorCode::kInternal, "xCertOpenSsl", std::move(msg));
}

std::string bio_to_string(BIO* bio) {
  char* p = nullptr;
  long n = BIO_get_mem_data(bio, &p);
  if (n <= 0 || p == nullptr) return {};
  return std::string(p, static_cast<std::size_t>(n));
}

UnixTime asn1_to_unix(const ASN1_TIME* t) {
  if (t == nullptr) return 0;
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<UnixTime>(timegm(&tm));
}

std::string describe_pkey(const EVP_PKEY* k) {
  if (k == nullptr) return "unknown";
  if (EVP_PKEY_is_a(k, "EC")) {
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1)
      return "ec-unknown";
    std::string g(group, len);
    if (g == "secp384r1" || g == "P-384") return "ec-p384";
    if (g == "prime256v1" || g == "P-256") return "ec-p256";
    if (g == "secp521r1" || g == "P-521") return "ec-p521";
    return "ec-" + g;
  }
  if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS")) return "rsa-" + std::to_string(EVP_PKEY_get_bits(k));
  if (EVP_PKEY_is_a(k, "ED25519")) return "ed25519";
  if (EVP_PKEY_is_a(k, "ED448")) return "ed448";
  return "unknown";
}

Status check_key_policy(const EVP_PKEY* k, std::string_view what) {
  std::string d = describe_pkey(k);
  if (d == "ec-p384" || d == "ec-p256" || d == "ec-p521") return ok_status();
  if (d.rfind("rsa-", 0) == 0 && EVP_PKEY_get_bits(k) >= 3072) return ok_status();
  return cert_error(ErrorCode::kInvalidInput, "xCertWeakKey",
                    std::string(what) + " has a " + d +
                        " key; accepted are ECDSA P-384 (default), P-256, P-521 "
                        "and RSA with at least 3072 bits",
                    "issue the certificate for a key made by `storcrypt cert csr` (ECDSA P-384) or RSA 3072/4096");
}

std::string sha256_fingerprint(X509* x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(x, EVP_sha256(), md, &n) != 1) return {};
  return to_hex({md, n}, HexCase::kUpper, ':');
}

std::string fingerprint_id(std::string_view fp) {
  std::string out;
  for (char c : fp) {
    if (c == ':' || c == ' ') continue;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

Certificate wrap_up_ref(X509* x) {
  X509_up_ref(x);
  return Certificate(x);
}

}  // namespace storcrypt::certs::detail
