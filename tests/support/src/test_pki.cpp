#include "storcrypt/testing/test_pki.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace storcrypt::testing {

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "test_pki: OpenSSL failed: %s\n", what);
  std::abort();
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) die(value.c_str());
  if (X509_add_ext(cert, ext, -1) != 1) die("X509_add_ext");
  X509_EXTENSION_free(ext);
}

void add_name(X509_NAME* name, const char* field, const std::string& value) {
  if (value.empty()) return;
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()), -1,
                                 -1, 0) != 1)
    die(field);
}

std::atomic<long> serial_counter{1000};

}  // namespace

void PkeyFree::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
void CertFree::operator()(X509* p) const { X509_free(p); }

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

KeyPtr generate_key(TestKey type) {
  EVP_PKEY* k = nullptr;
  switch (type) {
    case TestKey::kEcP384:
      k = EVP_EC_gen("P-384");
      break;
    case TestKey::kEcP256:
      k = EVP_EC_gen("P-256");
      break;
    case TestKey::kRsa2048:
      k = EVP_RSA_gen(2048);
      break;
    case TestKey::kRsa3072:
      k = EVP_RSA_gen(3072);
      break;
  }
  if (k == nullptr) die("key generation");
  return KeyPtr(k);
}

CertPtr issue_cert(EVP_PKEY* key, const CertSpec& spec, X509* issuer, EVP_PKEY* issuer_key) {
  CertPtr cert(X509_new());
  if (!cert) die("X509_new");
  X509* c = cert.get();
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), spec.serial != 0 ? spec.serial : serial_counter++);
  const std::int64_t now = unix_now();
  const std::int64_t nb = spec.not_before != 0 ? spec.not_before : now - 3600;
  const std::int64_t na = spec.not_after != 0 ? spec.not_after : now + 30 * 86400;
  if (ASN1_TIME_set(X509_getm_notBefore(c), static_cast<time_t>(nb)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(c), static_cast<time_t>(na)) == nullptr)
    die("ASN1_TIME_set");
  if (X509_set_pubkey(c, key) != 1) die("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(c);
  add_name(name, "O", spec.organization);
  add_name(name, "CN", spec.common_name);
  X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer != nullptr ? issuer : c;
  add_ext(c, iss, NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  const std::string ku =
      spec.key_usage.value_or(spec.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (!ku.empty()) add_ext(c, iss, NID_key_usage, ku);
  if (!spec.ext_key_usage.empty()) add_ext(c, iss, NID_ext_key_usage, spec.ext_key_usage);
  add_ext(c, iss, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add_ext(c, iss, NID_authority_key_identifier, "keyid:always");
  if (!spec.san.empty()) add_ext(c, iss, NID_subject_alt_name, spec.san);
  const EVP_MD* md = EVP_get_digestbyname(spec.digest);
  if (md == nullptr) die(spec.digest);
  if (X509_sign(c, issuer_key != nullptr ? issuer_key : key, md) == 0) die("X509_sign");
  return cert;
}

TestChain make_chain(const ChainSpec& spec) {
  TestChain t;
  t.root_key = generate_key(spec.ca_keys);
  CertSpec root{.common_name = spec.root_cn, .ca = true};
  t.root = issue_cert(t.root_key.get(), root);
  t.intermediate_key = generate_key(spec.ca_keys);
  CertSpec inter{.common_name = spec.intermediate_cn, .ca = true};
  t.intermediate = issue_cert(t.intermediate_key.get(), inter, t.root.get(), t.root_key.get());
  t.ee_key = generate_key(spec.ee_key);
  t.ee = issue_cert(t.ee_key.get(), spec.ee, t.intermediate.get(), t.intermediate_key.get());
  return t;
}

namespace {
std::string bio_string(BIO* b) {
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}
}  // namespace

std::string cert_pem(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  if (b == nullptr || PEM_write_bio_X509(b, cert) != 1) die("PEM_write_bio_X509");
  return bio_string(b);
}

std::vector<std::uint8_t> cert_der(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) die("i2d_X509");
  std::vector<std::uint8_t> out(der, der + n);
  OPENSSL_free(der);
  return out;
}

std::string key_pem(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  if (b == nullptr || PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    die("PEM_write_bio_PrivateKey");
  return bio_string(b);
}

}  // namespace storcrypt::testing
