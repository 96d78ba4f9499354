#include "storcrypt/common/hex.h"

#include <gtest/gtest.h>

#include <array>

namespace storcrypt {
namespace {

TEST(Hex, EncodeCasesAndSeparators) {
  const std::uint8_t b[] = {0x00, 0xde, 0xad, 0x0f};
  EXPECT_EQ(to_hex(b), "00dead0f");
  EXPECT_EQ(to_hex(b, HexCase::kUpper), "00DEAD0F");
  EXPECT_EQ(to_hex(b, HexCase::kUpper, ':'), "00:DE:AD:0F");
  EXPECT_EQ(to_hex({}, HexCase::kUpper, ':'), "");
  std::array<char, 8> out{};
  hex_encode_into(b, out);
  EXPECT_EQ(std::string(out.data(), out.size()), "00dead0f");
}

TEST(Hex, DecodeReportsTheFirstBadDigit) {
  std::array<std::uint8_t, 3> out{};
  EXPECT_FALSE(hex_decode_into("0aFf10", out).has_value());
  EXPECT_EQ(out, (std::array<std::uint8_t, 3>{0x0a, 0xff, 0x10}));
  EXPECT_EQ(hex_decode_into("0a0g10", out), 3u);
  EXPECT_EQ(hex_decode_into("0aFf10", out, HexCase::kLower), 2u);
  EXPECT_EQ(hex_decode_into("0aff10", out, HexCase::kUpper), 1u);
  std::array<std::uint8_t, 1> one{};
  EXPECT_EQ(hex_decode_into("abc", one), 2u);  // the lone last digit
}

TEST(Hex, ParseRoundTrip) {
  for (int i = 0; i < 256; ++i) {
    const std::uint8_t b[] = {static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(255 - i)};
    auto back = parse_hex(to_hex(b, i % 2 ? HexCase::kUpper : HexCase::kLower));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, std::vector<std::uint8_t>(b, b + 2));
  }
  EXPECT_FALSE(parse_hex("abc").has_value());
  EXPECT_FALSE(parse_hex("zz").has_value());
  EXPECT_TRUE(parse_hex("")->empty());
}

}  // namespace
}  // namespace storcrypt
