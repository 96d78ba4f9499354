#include "storcrypt/keys/key_file.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <array>
#include <charconv>
#include <cstring>
#include <string>
#include <vector>

#include "storcrypt/common/hex.h"

namespace storcrypt::keys {
namespace {

constexpr std::string_view kMagic = "STORCRYPT-KEYFILE 1";
constexpr std::string_view kHkdfSalt = "storcrypt-keyfile-v1";
constexpr std::string_view kHkdfInfo = "mac";
constexpr std::size_t kMacBytes = 32;

Error corrupt(std::string msg) {
  return Error(ErrorCode::kInvalidInput, "key file corrupt: " + std::move(msg),
               "this copy cannot be used; re-initialise the medium from another valid copy (keymedia init)",
               "xKeyFileCorrupt");
}

Result<std::array<std::uint8_t, kMacBytes>> compute_mac(std::string_view system_id, std::string_view body) {
  std::array<std::uint8_t, kMacBytes> mac_key{};
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (!kdf) return Error(ErrorCode::kInternal, "OpenSSL HKDF unavailable");
  EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (!kctx) return Error(ErrorCode::kInternal, "OpenSSL HKDF context allocation failed");
  OSSL_PARAM kp[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(system_id.data()), system_id.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(kHkdfSalt.data()), kHkdfSalt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(kHkdfInfo.data()), kHkdfInfo.size()),
      OSSL_PARAM_construct_end()};
  int rc = EVP_KDF_derive(kctx, mac_key.data(), mac_key.size(), kp);
  EVP_KDF_CTX_free(kctx);
  if (rc != 1) return Error(ErrorCode::kInternal, "OpenSSL HKDF derivation failed");

  std::array<std::uint8_t, kMacBytes> out{};
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!mac) return Error(ErrorCode::kInternal, "OpenSSL HMAC unavailable");
  EVP_MAC_CTX* mctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  if (!mctx) return Error(ErrorCode::kInternal, "OpenSSL HMAC context allocation failed");
  OSSL_PARAM mp[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
                     OSSL_PARAM_construct_end()};
  std::size_t outl = 0;
  bool ok = EVP_MAC_init(mctx, mac_key.data(), mac_key.size(), mp) == 1 &&
            EVP_MAC_update(mctx, reinterpret_cast<const unsigned char*>(body.data()), body.size()) == 1 &&
            EVP_MAC_final(mctx, out.data(), &outl, out.size()) == 1 && outl == out.size();
  EVP_MAC_CTX_free(mctx);
  OPENSSL_cleanse(mac_key.data(), mac_key.size());
  if (!ok) return Error(ErrorCode::kInternal, "OpenSSL HMAC computation failed");
  return out;
}

// Canonical (lowercase) hex of exactly n bytes.
bool parse_hex_into(std::string_view h, std::uint8_t* out, std::size_t n) {
  return h.size() == n * 2 && !hex_decode_into(h, {out, n}, HexCase::kLower);
}

// Takes the next '\n'-terminated line starting at *pos; the line must be "<field>: <value>".
bool take_field(std::string_view text, std::size_t* pos, std::string_view field, std::string_view* value) {
  std::size_t nl = text.find('\n', *pos);
  if (nl == std::string_view::npos) return false;
  std::string_view line = text.substr(*pos, nl - *pos);
  if (line.size() < field.size() + 2 || line.substr(0, field.size()) != field || line.substr(field.size(), 2) != ": ")
    return false;
  *value = line.substr(field.size() + 2);
  *pos = nl + 1;
  return true;
}

}  // namespace

std::string_view key_file_problem_name(KeyFileProblem p) {
  switch (p) {
    case KeyFileProblem::kNone:
      return "ok";
    case KeyFileProblem::kCorrupt:
      return "corrupt";
    case KeyFileProblem::kOtherSystem:
      return "other-system";
    case KeyFileProblem::kWrongKey:
      return "wrong-key";
  }
  return "unknown";
}

bool valid_identifier(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<std::string> encode_key_file(const KeyFile& kf) {
  if (!valid_identifier(kf.system_id))
    return Error(ErrorCode::kInvalidInput, "system-id is empty, too long or has characters outside [A-Za-z0-9._:-]",
                 "configure a system id of 1..128 characters [A-Za-z0-9._:-]");
  if (!valid_identifier(kf.key_id))
    return Error(ErrorCode::kInvalidInput, "key-id is empty, too long or has characters outside [A-Za-z0-9._:-]",
                 "use a key id of 1..128 characters [A-Za-z0-9._:-]");
  if (kf.generation == 0) return Error(ErrorCode::kInvalidInput, "generation must be >= 1");
  if (kf.ak.size() != kAccessKeyBytes)
    return Error(ErrorCode::kInvalidInput, "access key must be 32 bytes (got " + std::to_string(kf.ak.size()) + ")");
  std::string out;
  out.reserve(400);
  out.append(kMagic).append("\n");
  out.append("system-id: ").append(kf.system_id).append("\n");
  out.append("key-id: ").append(kf.key_id).append("\n");
  out.append("generation: ").append(std::to_string(kf.generation)).append("\n");
  std::string akhex = kf.ak.reveal_hex();
  out.append("ak: ").append(akhex).append("\n");
  secure_wipe(akhex);
  auto mac = compute_mac(kf.system_id, out);
  if (!mac.ok()) {
    secure_wipe(out);
    return std::move(mac).error();
  }
  out.append("mac: ").append(to_hex(*mac)).append("\n");
  return out;
}

Result<KeyFile> parse_key_file(std::span<const std::uint8_t> bytes, KeyFileProblem* problem) {
  if (problem) *problem = KeyFileProblem::kCorrupt;
  if (bytes.size() > kMaxKeyFileBytes)
    return corrupt("file is " + std::to_string(bytes.size()) + " bytes, more than the 1024-byte maximum");
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (text.size() < kMagic.size() + 1 || text.substr(0, kMagic.size()) != kMagic || text[kMagic.size()] != '\n') {
    if (text.substr(0, 18) == "STORCRYPT-KEYFILE ")
      return corrupt("unsupported key file version (this build reads version 1)");
    return corrupt("missing 'STORCRYPT-KEYFILE 1' header line");
  }
  std::size_t pos = kMagic.size() + 1;
  std::string_view sys, kid, gen, ak, mac;
  if (!take_field(text, &pos, "system-id", &sys)) return corrupt("line 2 must be 'system-id: <id>'");
  if (!valid_identifier(sys)) return corrupt("system-id is not a valid identifier");
  if (!take_field(text, &pos, "key-id", &kid)) return corrupt("line 3 must be 'key-id: <id>'");
  if (!valid_identifier(kid)) return corrupt("key-id is not a valid identifier");
  if (!take_field(text, &pos, "generation", &gen)) return corrupt("line 4 must be 'generation: <n>'");
  std::uint64_t g = 0;
  auto [gp, gec] = std::from_chars(gen.data(), gen.data() + gen.size(), g);
  if (gec != std::errc() || gp != gen.data() + gen.size() || g == 0 || gen.size() > 20 ||
      (gen.size() > 1 && gen[0] == '0'))
    return corrupt("generation is not a positive decimal number");
  if (!take_field(text, &pos, "ak", &ak)) return corrupt("line 5 must be 'ak: <64 hex digits>'");
  std::size_t body_end = pos;
  if (!take_field(text, &pos, "mac", &mac)) return corrupt("line 6 must be 'mac: <64 hex digits>'");
  if (pos != text.size()) return corrupt("unexpected data after the mac line");

  std::array<std::uint8_t, kMacBytes> want{};
  if (!parse_hex_into(mac, want.data(), want.size())) return corrupt("mac is not 64 lowercase hex digits");
  KeyFile kf;
  kf.ak = SecretBytes(kAccessKeyBytes);
  if (!parse_hex_into(ak, kf.ak.data(), kf.ak.size())) return corrupt("ak is not 64 lowercase hex digits");
  auto got = compute_mac(sys, text.substr(0, body_end));
  if (!got.ok()) return std::move(got).error();
  if (CRYPTO_memcmp(got->data(), want.data(), want.size()) != 0) return corrupt("integrity check (MAC) mismatch");
  kf.system_id = std::string(sys);
  kf.key_id = std::string(kid);
  kf.generation = g;
  if (problem) *problem = KeyFileProblem::kNone;
  return kf;
}

Result<KeyFile> load_key_file(std::span<const std::uint8_t> bytes, std::string_view system_id, std::string_view key_id,
                              std::uint64_t generation, KeyFileProblem* problem) {
  STORCRYPT_ASSIGN_OR_RETURN(KeyFile kf, parse_key_file(bytes, problem));
  if (kf.system_id != system_id) {
    if (problem) *problem = KeyFileProblem::kOtherSystem;
    return Error(ErrorCode::kConflict,
                 "key file belongs to system '" + kf.system_id + "', not this system '" + std::string(system_id) + "'",
                 "remove the foreign medium or use it on its own system", "xKeyFileOtherSystem");
  }
  if (kf.key_id != key_id || kf.generation != generation) {
    if (problem) *problem = KeyFileProblem::kWrongKey;
    return Error(ErrorCode::kConflict,
                 "key file holds key '" + kf.key_id + "' generation " + std::to_string(kf.generation) +
                     ", expected key '" + std::string(key_id) + "' generation " + std::to_string(generation),
                 "the file was renamed or copied by hand; restore it from a medium with the right key",
                 "xKeyFileWrongKey");
  }
  return kf;
}

}  // namespace storcrypt::keys
