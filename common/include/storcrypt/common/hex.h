// storcrypt: the one hexadecimal codec (keys, key files, fingerprints, SPIs,
// KMIP diagnostics). Not OpenSSL's OPENSSL_buf2hexstr/OPENSSL_hexstr2buf:
// those work on NUL-terminated strings they allocate (a key's hex would need
// an unwiped copy) and do not say which digit is bad; callers here need to
// write into wiped buffers and name the offset of a bad digit without echoing
// a key.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace storcrypt {

enum class HexCase { kLower, kUpper };

/// Hex of public (non-secret) bytes, e.g. fingerprints and SPIs: two digits
/// per byte, lowercase by default, `sep` (e.g. ':') between bytes unless '\0'.
/// Key material goes through SecretBytes::reveal_hex().
std::string to_hex(std::span<const std::uint8_t> bytes, HexCase hex_case = HexCase::kLower, char sep = '\0');

/// Write the hex of `bytes` (two digits per byte, no separator) to `out`,
/// which holds exactly 2 * bytes.size() characters; for sinks that must not
/// leave copies (a wiped or secure buffer).
void hex_encode_into(std::span<const std::uint8_t> bytes, std::span<char> out, HexCase hex_case = HexCase::kLower);

/// Decode `hex` (two digits per byte, no separators) into `out`, which holds
/// exactly hex.size() / 2 bytes (hex.size() must be even). Both cases are
/// accepted unless `only` is given. Returns the offset of the first character
/// that is not an accepted digit, nullopt on success (then `out` is filled).
std::optional<std::size_t> hex_decode_into(std::string_view hex, std::span<std::uint8_t> out,
                                           std::optional<HexCase> only = std::nullopt);

/// Parse hex of public bytes; nullopt on odd length or a non-hex character.
std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view hex);

}  // namespace storcrypt
