#include "storcrypt/common/text.h"

#include <cstdint>

namespace storcrypt {

namespace {

// Length of the well-formed UTF-8 sequence at s[i], 0 when there is none
// (Unicode 15, table 3-7 "Well-Formed UTF-8 Byte Sequences").
std::size_t sequence_length(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
  const std::uint8_t b = at(i);
  if (b == 0) return 0;
  if (b < 0x80) return 1;
  std::size_t n = 0;
  std::uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;  // overlong
    if (b == 0xED) hi = 0x9F;  // surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;  // overlong
    if (b == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // a continuation byte, C0/C1 (overlong) or F5..FF
  }
  if (i + n > s.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return n;
}

}  // namespace

std::optional<std::size_t> first_non_text_byte(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

std::string printable(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (std::size_t n = sequence_length(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    const auto b = static_cast<std::uint8_t>(s[i++]);
    out += "\\x";
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

Status require_text(std::string_view s, std::string_view what, std::string_view fix) {
  auto bad = first_non_text_byte(s);
  if (!bad) return ok_status();
  const bool nul = s[*bad] == '\0';
  return Error(ErrorCode::kInvalidInput,
               std::string(what) + " is not text: byte " + std::to_string(*bad + 1) +
                   (nul ? " is a NUL byte" : " is not valid UTF-8"),
               fix.empty() ? "give UTF-8 text (is it a binary file, or text in another encoding?)" : std::string(fix),
               "xNotText");
}

std::vector<std::string> split_tokens(std::string_view s, std::string_view separators) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t end = s.find_first_of(separators, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace storcrypt
