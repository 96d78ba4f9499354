// storcrypt: the key-media key file format (version 1).
//
//   STORCRYPT-KEYFILE 1
//   system-id: <id>
//   key-id: <id>
//   generation: <decimal>
//   ak: <64 lowercase hex>
//   mac: <64 lowercase hex>
//
// `mac` is HMAC-SHA256 over every byte before the "mac: " line, keyed with
// HKDF-SHA256(ikm = system id, salt = "storcrypt-keyfile-v1", info = "mac").
// The system id is not secret: the MAC detects corruption and copies written
// for another system, it does not authenticate the writer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt::keys {

inline constexpr std::size_t kAccessKeyBytes = 32;
inline constexpr std::size_t kMaxKeyFileBytes = 1024;

struct KeyFile {
  std::string system_id;
  std::string key_id;
  std::uint64_t generation = 0;
  SecretBytes ak;
};

/// Why a key file was rejected (so callers can report the copy precisely).
enum class KeyFileProblem {
  kNone,
  kCorrupt,      ///< malformed, truncated or MAC mismatch
  kOtherSystem,  ///< intact, but written for another system id
  kWrongKey,     ///< intact, ours, but a different key id or generation
};

std::string_view key_file_problem_name(KeyFileProblem p);

/// Identifier syntax for system and key ids: 1..128 of [A-Za-z0-9._:-].
bool valid_identifier(std::string_view s);

/// Serialize (with MAC). The result holds key material: write it only to a 0600 file.
Result<std::string> encode_key_file(const KeyFile& kf);

/// Parse and verify a key file's bytes. On error, *problem (if given) tells
/// the category; error messages never contain key material.
Result<KeyFile> parse_key_file(std::span<const std::uint8_t> bytes, KeyFileProblem* problem = nullptr);

/// Parse, verify and check that the file is `key_id`/`generation` of `system_id`.
Result<KeyFile> load_key_file(std::span<const std::uint8_t> bytes, std::string_view system_id, std::string_view key_id,
                              std::uint64_t generation, KeyFileProblem* problem = nullptr);

}  // namespace storcrypt::keys
