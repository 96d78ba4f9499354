// storcrypt certs: internal helpers (OpenSSL ownership, errors, file I/O).
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "storcrypt/certs/certs.h"
#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt::certs::detail {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    if (p != nullptr) Fn(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GenNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using Asn1IntPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

struct StackX509Free {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), StackX509Free>;

/// Error with stable name; for kInternal OpenSSL failures the OpenSSL error
/// queue is appended (it never contains key material) and cleared.
Error cert_error(ErrorCode code, std::string_view name, std::string message, std::string fix = {});
Error openssl_error(std::string_view what);

/// Contents of a memory BIO.
std::string bio_to_string(BIO* bio);

/// UnixTime of an ASN1_TIME (0 on failure).
UnixTime asn1_to_unix(const ASN1_TIME* t);

/// Key description "ec-p384", "rsa-3072", "ed25519", ... ("unknown").
std::string describe_pkey(const EVP_PKEY* k);
/// Endpoint/CA key policy: EC P-256/P-384/P-521 or RSA >= 3072 (xCertWeakKey).
Status check_key_policy(const EVP_PKEY* k, std::string_view what);

/// Uppercase colon-separated SHA-256 of the DER certificate.
std::string sha256_fingerprint(X509* x);
/// Canonical fingerprint form (uppercase hex, no colons) for file names.
std::string fingerprint_id(std::string_view fp);

Certificate wrap_up_ref(X509* x);

// ---- files (files.cpp)
Status ensure_dir(const std::filesystem::path& p);
/// Atomically replace `path` with `data`; mode applied with fchmod before
/// any byte is written; temp file created with O_EXCL.
Status write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode);
Status write_secret_atomic(const std::filesystem::path& path, const SecretBytes& data);
Result<std::string> read_file(const std::filesystem::path& path);
Result<SecretBytes> read_secret(const std::filesystem::path& path);
bool file_exists(const std::filesystem::path& path);
Status remove_file(const std::filesystem::path& path);

}  // namespace storcrypt::certs::detail
