#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cctype>

#include "internal.h"

namespace storcrypt::certs {

using detail::BioPtr;
using detail::cert_error;

std::string_view key_type_name(KeyType t) {
  switch (t) {
    case KeyType::kEcP384:
      return "ec-p384";
    case KeyType::kRsa3072:
      return "rsa-3072";
    case KeyType::kRsa4096:
      return "rsa-4096";
  }
  return "unknown";
}

Result<KeyType> parse_key_type(std::string_view name) {
  std::string n;
  for (char c : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "ec-p384" || n == "ecdsa-p384" || n == "p384" || n == "p-384" || n == "ec" || n == "ecdsa")
    return KeyType::kEcP384;
  if (n == "rsa-3072" || n == "rsa3072") return KeyType::kRsa3072;
  if (n == "rsa-4096" || n == "rsa4096") return KeyType::kRsa4096;
  return cert_error(ErrorCode::kInvalidInput, "xCertBadKeyType",
                    "unknown key type \"" + std::string(name.substr(0, 32)) + "\"",
                    "use ec-p384 (default), rsa-3072 or rsa-4096");
}

PrivateKey::PrivateKey() = default;
PrivateKey::~PrivateKey() { EVP_PKEY_free(pkey_); }
PrivateKey::PrivateKey(PrivateKey&& o) noexcept : pkey_(std::exchange(o.pkey_, nullptr)) {}
PrivateKey& PrivateKey::operator=(PrivateKey&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(o.pkey_, nullptr);
  }
  return *this;
}

Result<PrivateKey> PrivateKey::generate(KeyType type) {
  EVP_PKEY* k = nullptr;
  switch (type) {
    case KeyType::kEcP384:
      k = EVP_EC_gen("P-384");
      break;
    case KeyType::kRsa3072:
      k = EVP_RSA_gen(3072);
      break;
    case KeyType::kRsa4096:
      k = EVP_RSA_gen(4096);
      break;
  }
  if (k == nullptr) return detail::openssl_error("generating a " + std::string(key_type_name(type)) + " key");
  return PrivateKey(k);
}

Result<PrivateKey> PrivateKey::from_pem(const SecretBytes& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return detail::openssl_error("allocating a memory BIO");
  // Empty passphrase callback: encrypted keys fail instead of prompting.
  EVP_PKEY* k = PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  ERR_clear_error();
  if (k == nullptr)
    return cert_error(ErrorCode::kInvalidInput, "xCertGarbage", "the private key file is not an unencrypted PEM key",
                      "restore the key file from backup or create a new key pair");
  return PrivateKey(k);
}

Result<SecretBytes> PrivateKey::to_pem() const {
  if (pkey_ == nullptr) return detail::cert_error(ErrorCode::kInternal, "xCertNoKey", "empty private key");
  // Secure-heap BIO: its buffer is cleansed when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) return detail::openssl_error("allocating a secure memory BIO");
  if (PEM_write_bio_PrivateKey(bio.get(), pkey_, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return detail::openssl_error("encoding the private key");
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  if (n <= 0 || p == nullptr) return detail::openssl_error("reading the encoded private key");
  return SecretBytes(reinterpret_cast<const std::uint8_t*>(p), static_cast<std::size_t>(n));
}

Result<std::string> PrivateKey::public_key_pem() const {
  if (pkey_ == nullptr) return detail::cert_error(ErrorCode::kInternal, "xCertNoKey", "empty private key");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_) != 1) return detail::openssl_error("encoding the public key");
  return detail::bio_to_string(bio.get());
}

std::string PrivateKey::describe() const { return detail::describe_pkey(pkey_); }

Result<PrivateKey> read_private_key_file(const std::filesystem::path& path) {
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes pem, detail::read_secret(path));
  return PrivateKey::from_pem(pem);
}

Status write_private_key_file(const std::filesystem::path& path, const PrivateKey& key) {
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes pem, key.to_pem());
  return detail::write_secret_atomic(path, pem);
}

}  // namespace storcrypt::certs
