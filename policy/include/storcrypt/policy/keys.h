// storcrypt policy: named keys for manual keying, and their export to (and
// import from) a passphrase-protected file.
//
// Key file (text; everything before the `data` line is authenticated):
//   storcrypt-key-file 1
//   kdf = scrypt            (or pbkdf2-sha256)
//   scrypt-n = 32768 / scrypt-r = 8 / scrypt-p = 1   (or pbkdf2-iterations = N)
//   salt = <hex>
//   nonce = <hex>
//   data = <hex: AES-256-GCM ciphertext || 16-byte tag>
// The plaintext holds one line per key: `<name> <algorithm> <hex value>`.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/policy/model.h"

namespace storcrypt::policy {

struct NamedKey {
  std::string name;
  Algorithm algorithm = Algorithm::kAesGcm256;
  SecretBytes value;
};

/// What listings show: never the value.
struct KeyInfo {
  std::string name;
  Algorithm algorithm;
  std::size_t bytes;
};

/// Check a key name (same rules as policy names).
Status check_key_name(std::string_view name);

class KeyStore {
 public:
  /// A random value of the algorithm's length.
  Status create_random(std::string name, Algorithm alg);
  /// A value entered as hexadecimal (no separators).
  Status create_hex(std::string name, Algorithm alg, std::string_view hex);
  /// A value entered as ASCII text; its bytes are the key.
  Status create_ascii(std::string name, Algorithm alg, std::string_view ascii);
  /// Add a key (length checked). `replace` overwrites an existing key of the name.
  Status add(NamedKey key, bool replace = false);
  Status remove(std::string_view name);
  const NamedKey* find(std::string_view name) const;
  std::vector<KeyInfo> list() const;
  std::size_t size() const { return keys_.size(); }

 private:
  std::map<std::string, NamedKey, std::less<>> keys_;
};

enum class Kdf : std::uint8_t { kScrypt, kPbkdf2Sha256 };

struct KeyExportOptions {
  Kdf kdf = Kdf::kScrypt;
  std::uint64_t scrypt_n = 1u << 15;
  std::uint32_t scrypt_r = 8;
  std::uint32_t scrypt_p = 1;
  std::uint64_t pbkdf2_iterations = 600000;
};

/// Encrypt the named keys (all when `names` is empty) under the passphrase.
/// The returned text holds no key material in clear.
Result<std::string> export_keys(const KeyStore& store, const std::vector<std::string>& names,
                                const SecretBytes& passphrase, const KeyExportOptions& opt = {});

/// Decrypt a key file. A wrong passphrase or a modified file gives
/// kPermission "wrong passphrase or damaged key file".
Result<std::vector<NamedKey>> import_keys(std::string_view file_text, const SecretBytes& passphrase);

/// Import into a store; existing names are refused unless `replace`.
Status import_keys_into(KeyStore& store, std::string_view file_text, const SecretBytes& passphrase,
                        bool replace = false);

/// The key file's outer layer, parsed without decrypting (fuzzed).
struct KeyFileEnvelope {
  Kdf kdf = Kdf::kScrypt;
  std::uint64_t scrypt_n = 0;
  std::uint32_t scrypt_r = 0;
  std::uint32_t scrypt_p = 0;
  std::uint64_t pbkdf2_iterations = 0;
  std::vector<std::uint8_t> salt;
  std::vector<std::uint8_t> nonce;
  std::vector<std::uint8_t> data;  ///< ciphertext || tag
  std::string header;              ///< authenticated text (all lines before `data`)
};
Result<KeyFileEnvelope> parse_key_file(std::string_view text);
/// The decrypted body (fuzzed).
Result<std::vector<NamedKey>> parse_key_payload(std::span<const std::uint8_t> plain);
/// The body of a key file (`<name> <algorithm> <hex value>` per line), in
/// clear: for the key file's encryption and for storcryptd's 0600 key store.
SecretBytes key_payload(const std::vector<const NamedKey*>& keys);
/// Every key of a store, in name order.
std::vector<const NamedKey*> all_keys(const KeyStore& store);

Result<std::string> read_file(const std::string& path);

}  // namespace storcrypt::policy
