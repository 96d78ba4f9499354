#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace storcrypt {
/// Lowercase hex of public (non-secret) bytes, e.g. fingerprints and SPIs.
std::string to_hex(std::span<const std::uint8_t> bytes);
/// Parse hex of public bytes; nullopt on odd length or a non-hex character.
std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view hex);
}  // namespace storcrypt
