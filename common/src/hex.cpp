#include "storcrypt/common/hex.h"

#include <algorithm>

namespace storcrypt {

namespace {

constexpr char kLowerDigits[] = "0123456789abcdef";
constexpr char kUpperDigits[] = "0123456789ABCDEF";

int digit_value(char c, std::optional<HexCase> only) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f' && only != HexCase::kUpper) return c - 'a' + 10;
  if (c >= 'A' && c <= 'F' && only != HexCase::kLower) return c - 'A' + 10;
  return -1;
}

}  // namespace

void hex_encode_into(std::span<const std::uint8_t> bytes, std::span<char> out, HexCase hex_case) {
  const char* d = hex_case == HexCase::kUpper ? kUpperDigits : kLowerDigits;
  for (std::size_t i = 0; i < bytes.size() && 2 * i + 1 < out.size(); ++i) {
    out[2 * i] = d[bytes[i] >> 4];
    out[2 * i + 1] = d[bytes[i] & 15];
  }
}

std::string to_hex(std::span<const std::uint8_t> bytes, HexCase hex_case, char sep) {
  if (sep == '\0') {
    std::string out(bytes.size() * 2, '\0');
    hex_encode_into(bytes, out, hex_case);
    return out;
  }
  std::string out;
  out.reserve(bytes.size() * 3);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    char two[2];
    hex_encode_into(bytes.subspan(i, 1), two, hex_case);
    if (i > 0) out += sep;
    out.append(two, 2);
  }
  return out;
}

std::optional<std::size_t> hex_decode_into(std::string_view hex, std::span<std::uint8_t> out,
                                           std::optional<HexCase> only) {
  const std::size_t n = std::min(hex.size() / 2, out.size());
  for (std::size_t i = 0; i < n; ++i) {
    const int hi = digit_value(hex[2 * i], only);
    if (hi < 0) return 2 * i;
    const int lo = digit_value(hex[2 * i + 1], only);
    if (lo < 0) return 2 * i + 1;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  if (hex.size() % 2 != 0) return hex.size() - 1;  // a lone last digit
  return std::nullopt;
}

std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::vector<std::uint8_t> out(hex.size() / 2);
  if (hex_decode_into(hex, out)) return std::nullopt;
  return out;
}

}  // namespace storcrypt
